/* SPDX-License-Identifier: MIT */
/* The asynchronous fetch engine shared by the http and s3 backends: one
 * thread drives a libcurl multi handle with bounded concurrency, retries
 * transient faults with capped exponential backoff and jitter, and checks the
 * identity of what it reads.  Also the small parsers both backends share
 * (HTTP dates, headers), exposed for the unit tests; keys and percent coding
 * are in keys.h. */
#ifndef EPOCHFS_FETCH_H
#define EPOCHFS_FETCH_H

#include <stdint.h>
#include <stddef.h>
#include <time.h>
#include "backend.h"
#include "keys.h"

#define FETCH_BODY_MAX (64u << 20)  /* cap of a buffered (listing) body */
#define FETCH_ERRBODY_MAX 4096      /* cap of a kept error body */
#define FETCH_BACKOFF_BASE_MS 200
#define FETCH_BACKOFF_CAP_MS 4000
#define FETCH_DEFAULT_RETRIES 6     /* backend_options_init's budget */
#define FETCH_DEFAULT_TIMEOUT_S 10
#define FETCH_RETRY_LOG_PER_S 10    /* retry lines per second; then a count */
#define FETCH_DOWN_MS 30000         /* after a give-up, later requests retry once */

enum fetch_mode {
	FETCH_RANGE,  /* ranged GET into buf[0..len) */
	FETCH_BODY,   /* whole body into a malloc'ed buffer capped at FETCH_BODY_MAX */
	FETCH_HEAD,   /* headers only (stat) */
};

/* Identity checks a job applies to each response (from backend_stat). */
enum fetch_check {
	FETCH_CHECK_ETAG = 1,   /* ETag header must equal expect.etag */
	FETCH_CHECK_MTIME = 2,  /* Last-Modified must equal expect.mtime_ns (s) */
	FETCH_CHECK_SIZE = 4,   /* total size must equal expect.size */
};

/* Where an attempt hung, when the engine's watchdog cut it (a connection
 * that does not complete is curl's CONNECTTIMEOUT). */
enum fetch_hung {
	FETCH_HUNG_NO = 0,
	FETCH_HUNG_ANSWER,    /* connected; no byte of an answer in timeout_s */
	FETCH_HUNG_STALL,     /* the answer began, then no byte for timeout_s */
};

struct fetch_job;
struct curl_slist;
/* fetch_config has the per-attempt credentials hook (s3.c tests for it). */
#define FETCH_AUTH_HOOK 1
typedef void (*fetch_done_fn)(struct fetch_job *job);

/* One request.  The caller fills the inputs, keeps the job (and the strings
 * it points to) alive until done() ran, exactly once, on the engine thread. */
struct fetch_job {
	/* inputs */
	const char *url;      /* absolute, already percent-encoded */
	const char *name;     /* what log lines call it (a key, never a secret) */
	enum fetch_mode mode;
	uint64_t off;         /* FETCH_RANGE */
	size_t len;
	void *buf;
	struct backend_stat expect;
	unsigned checks;      /* enum fetch_check bits */
	fetch_done_fn done;
	void *arg;
	/* results */
	ssize_t result;       /* bytes read (RANGE/BODY), 0 (HEAD) or -errno */
	long http;            /* last HTTP status, 0 when none */
	int attempts;
	struct backend_stat current; /* identity seen in the last response */
	char *body;           /* FETCH_BODY: owned by the caller after done() */
	size_t body_len;
	char errcode[64];     /* S3 <Code> of the last error body, if any */
	/* private to the engine */
	struct fetch_job *next, *prev; /* queue links; prev only when active */
	struct fetch_engine *engine;
	void *easy;
	struct curl_slist *hdrs;
	uint64_t due_ms;      /* when a backed-off retry may start */
	size_t got;           /* RANGE: bytes in buf so far */
	size_t body_cap;
	uint64_t skip;        /* bytes to drop (server ignored Range) */
	uint64_t total;       /* object size from the last response, or -1 */
	int noretry;          /* input: give up after the first attempt */
	int complete, stale, probing, toobig, badrange, curlrc;
	int hung;             /* enum fetch_hung: why the watchdog cut it */
	uint64_t attempt_ms;  /* when this attempt started */
	uint64_t byte_ms;     /* when its last byte arrived (0: none yet) */
	char curlerr[256];    /* curl's own words for the last failure */
	char errbody[FETCH_ERRBODY_MAX];
	size_t errbody_len;
};

/* How the engine signs and limits its requests. */
struct fetch_config {
	unsigned concurrency;    /* max transfers in flight (0: 64) */
	unsigned retries;        /* retries after the first attempt (0: none) */
	unsigned timeout_s;      /* bound on connecting, on the first byte of
				  * the answer and on a stalled transfer, each
				  * (0: FETCH_DEFAULT_TIMEOUT_S) */
	int insecure;            /* skip TLS verification */
	const char *userpwd;     /* "key:secret" for SigV4, or NULL */
	const char *sigv4;       /* "aws:amz:REGION:s3", or NULL */
	const char *const *headers; /* extra request headers, NULL-terminated */
	struct backend_counters *counters;
	/* Per-attempt credentials (credentials that are renewed while the
	 * engine runs): called on the engine thread for every attempt, it sets
	 * the easy handle's CURLOPT_USERPWD and may append headers (the session
	 * token) to *hdrs.  0 or -ENOMEM.  NULL: userpwd is fixed. */
	int (*auth)(void *arg, void *easy, struct curl_slist **hdrs);
	void *auth_arg;
};

struct fetch_engine;

/* libcurl's global initialisation, once for the process (every user of
 * libcurl calls this first: it is not thread-safe on its own).  0 or -ENOMEM. */
int fetch_curl_init(void);

/* Start an engine and its thread.  0, -ENOMEM or -EIO (curl init failed). */
int fetch_engine_create(const struct fetch_config *cfg, struct fetch_engine **out);

/* Stop the thread; jobs still queued complete with -ECANCELED first. */
void fetch_engine_destroy(struct fetch_engine *e);

/* Queue a job.  0, or -ESHUTDOWN when the engine is stopping (done() is then
 * not called). */
int fetch_submit(struct fetch_engine *e, struct fetch_job *job);

/* Run a job and wait for it (its done field is overwritten); returns
 * job->result. */
ssize_t fetch_run(struct fetch_engine *e, struct fetch_job *job);

/* Queue a ranged read of url (ownership of the malloc'ed url passes to the
 * engine) on behalf of a backend request, applying `checks` when req->expect
 * is set; req->done() follows.  0, or -ENOMEM/-ESHUTDOWN (url freed, done()
 * not called). */
int fetch_submit_req(struct fetch_engine *e, char *url, struct backend_req *req,
		     unsigned checks);

/* HEAD url synchronously and fill st from the headers (size, Last-Modified,
 * ETag).  0, -ENOENT, -EACCES, -EIO. */
int fetch_head(struct fetch_engine *e, const char *url, const char *name,
	       struct backend_stat *st);

/* Helpers shared by the backends; pure functions, unit-tested. */

enum fetch_verdict { FETCH_OK, FETCH_RETRY, FETCH_FAIL };

/* Classify the outcome of one attempt: curl result code, HTTP status and
 * the S3 error code (may be ""); *err gets the errno for FETCH_FAIL. */
enum fetch_verdict fetch_classify(int curlcode, long http, const char *s3code, int *err);

/* Backoff before retry number n (1-based), in ms, for a jitter value
 * in [0,1): between half and all of min(cap, base * 2^(n-1)). */
unsigned fetch_backoff_ms(unsigned n, double jitter);

/* Parse an RFC 1123 date ("Sun, 06 Nov 1994 08:49:37 GMT"); 0 or -EINVAL. */
int fetch_parse_http_date(const char *s, time_t *out);

/* Parse an ISO 8601 UTC time ("2024-11-23T18:51:00.000Z"); 0 or -EINVAL. */
int fetch_parse_iso8601(const char *s, time_t *out);

/* Parse "bytes A-B/TOTAL" or "bytes * /TOTAL"; 0 or -EINVAL. */
int fetch_parse_content_range(const char *s, uint64_t *start, uint64_t *total);

/* Compare two ETags ignoring quotes and a weak "W/" prefix. */
int fetch_etag_equal(const char *a, const char *b);

/* http_index.c and http.c: the listing formats, exposed for the unit tests. */

typedef int (*autoindex_fn)(void *arg, const char *name, const char *type,
			    uint64_t size, const char *mtime);

/* Parse nginx's JSON autoindex (an array of flat objects), calling fn per
 * entry; names are JSON-unescaped (an entry whose name does not fit
 * NAME_MAX*4 bytes or contains \u0000 is passed with name NULL).  0, -EIO
 * (malformed) or fn's non-zero value. */
int http_parse_autoindex(const char *json, autoindex_fn fn, void *arg);

/* One entry of an HTML directory listing. */
struct http_index_entry {
	const char *name;   /* decoded from the href; NULL when it cannot be
			     * (a bad reference or escape, a '/' inside) */
	int is_dir;         /* the href ends in '/' */
	int size_exact;     /* the page printed the exact size in bytes */
	uint64_t size;
};
typedef int (*html_entry_fn)(void *arg, const struct http_index_entry *e);

/* Parse an HTML directory listing: nginx's autoindex, Apache's
 * mod_autoindex (table, pre or plain list) or python3 -m http.server,
 * calling fn per entry of the directory (the parent and navigation links
 * are not entries).  0, -EIO (not such a page, or malformed) or fn's
 * non-zero value. */
int http_parse_html_index(const char *html, html_entry_fn fn, void *arg);

/* Parse one manifest line ("PATH SIZE", PATH percent-encoded) into key and
 * size.  1 for an entry, 0 for a blank or comment line, -EINVAL if bad. */
int http_parse_manifest_line(char *line, char *key, size_t keylen, uint64_t *size);

/* s3.c: pure parsers, exposed for the unit tests. */

/* Split s3://BUCKET[/PREFIX] into bucket and prefix ("" or ending in '/').
 * 0 or -EINVAL. */
int s3_parse_url(const char *url, char *bucket, size_t blen, char *prefix, size_t plen);

/* Find `key` of `profile` in ~/.aws/config text ("[profile NAME]" or
 * "[default]"); 0 or -ENOENT. */
int s3_parse_config(const char *text, const char *profile, const char *key,
		    char *out, size_t outlen);

/* Decode XML text (the five entities and numeric references) into dst.
 * 0, -EINVAL (unknown entity, bad reference, &#0;) or -ENAMETOOLONG. */
int s3_xml_decode(const char *src, size_t n, char *dst, size_t dstlen);

typedef int (*s3_key_fn)(void *arg, const char *key, int bad, const struct backend_stat *st);

/* Parse one ListObjectsV2 page: fn per <Contents> (bad set when its key
 * could not be decoded), the continuation token (or "") and IsTruncated.
 * 0, -EIO (not a ListBucketResult) or fn's non-zero value. */
int s3_parse_list(const char *xml, s3_key_fn fn, void *arg, char *token, size_t toklen,
		  int *truncated);

#endif
