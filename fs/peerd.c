/* SPDX-License-Identifier: MIT */
/* The peer server (peerd.h): GET /v1/object?key=&size=&etag=&mtime= with a
 * Range, answered from this mount's cache.  Every request is checked in
 * this order: the secret (403, any path), the path and the method, the
 * arguments (400), the key against the backends' key rules (400) and the
 * namespace snapshot (404), the version (409), the range (416); then an
 * object neither cached here nor owned by this node is a 404 at once, which
 * keeps nodes whose peer lists disagree from asking one another in a loop.
 * A refusal is counted and logged at most once a second per reason. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "peerd.h"
#include "cache/control.h"
#include "backends/keys.h"
#include "backends/peer.h"
#include "backends/base/log.h"
#include "backends/base/util.h"

#define PEERD_CONNECTIONS 128          /* connections served at once */
#define PEERD_BUDGET (256u << 20)      /* answer bytes held in memory at once */
#define PEERD_BUDGET_WAIT_MS 2000      /* then 503 */
#define PEERD_IDLE_S 60                /* an idle keep-alive connection is closed */
#define PEERD_KEY_MAX 4096

enum refusal { R_SECRET, R_METHOD, R_PATH, R_ARGS, R_KEY, R_OUTSIDE, R_RANGE, R_NREASONS };
static const char *const reason_name[R_NREASONS] = {
	"missing or wrong secret", "method not GET", "unknown path", "malformed arguments",
	"key outside the source's rules", "key not in the mounted source", "bad range",
};

struct peerd {
	struct cache *c;
	struct backend *be;
	struct MHD_Daemon *mhd;
	const char *secret;    /* "" when none */
	pthread_mutex_t lock;  /* the memory budget */
	pthread_cond_t cond;
	uint64_t held;
	struct {
		atomic_uint_fast64_t last_s, quiet; /* rate limit of the log */
	} rl[R_NREASONS];
};

/* The answer body with what frees it. */
struct body {
	struct peerd *d;
	size_t len;
	char data[];
};

static void budget_put(struct peerd *d, size_t n)
{
	pthread_mutex_lock(&d->lock);
	d->held -= n;
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
}

/* Wait (bounded) for n bytes of the budget; 0 or -EBUSY. */
static int budget_get(struct peerd *d, size_t n)
{
	struct timespec until;
	int rc = 0;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += PEERD_BUDGET_WAIT_MS / 1000;
	pthread_mutex_lock(&d->lock);
	while (d->held && d->held + n > PEERD_BUDGET && rc == 0)
		rc = pthread_cond_timedwait(&d->cond, &d->lock, &until);
	if (!d->held || d->held + n <= PEERD_BUDGET) {
		d->held += n;
		rc = 0;
	} else {
		rc = -EBUSY;
	}
	pthread_mutex_unlock(&d->lock);
	return rc;
}

static void body_free(void *cls)
{
	struct body *b = cls;

	budget_put(b->d, b->len);
	free(b);
}

/* Equal strings, in a time that depends on neither's content. */
static int secret_equal(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	unsigned char diff = la != lb;

	for (size_t i = 0; i < la; i++)
		diff |= (unsigned char)a[i] ^ (unsigned char)(i < lb ? b[i] : 0);
	return !diff;
}

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, const char *text)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), (void *)text,
								  MHD_RESPMEM_PERSISTENT);
	enum MHD_Result rc;

	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type", "text/plain");
	rc = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return rc;
}

static void client_addr(struct MHD_Connection *conn, char *buf, size_t len)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	char a[INET6_ADDRSTRLEN] = "?";

	if (ci && ci->client_addr) {
		const struct sockaddr *sa = ci->client_addr;

		if (sa->sa_family == AF_INET)
			inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, a, sizeof(a));
		else if (sa->sa_family == AF_INET6)
			inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, a, sizeof(a));
	}
	snprintf(buf, len, "%s", a);
}

/* Count a refusal, log it (one line a second per reason, with how many
 * were not logged), answer status. */
static enum MHD_Result refuse(struct peerd *d, struct MHD_Connection *conn, unsigned status,
			      enum refusal why, const char *what)
{
	uint64_t now = (uint64_t)time(NULL), last = atomic_load(&d->rl[why].last_s);
	char from[INET6_ADDRSTRLEN], more[64] = "";

	peer_count_refused(d->be);
	if (now != last && atomic_compare_exchange_strong(&d->rl[why].last_s, &last, now)) {
		unsigned long long quiet = atomic_exchange(&d->rl[why].quiet, 0);

		if (quiet)
			snprintf(more, sizeof(more), "; %llu more since the last such line", quiet);
		client_addr(conn, from, sizeof(from));
		log_warn("peer server: refused a request from %s (%u, %s%s%.200s)%s", from, status,
			 reason_name[why], what ? ": " : "", what ? what : "", more);
	} else {
		atomic_fetch_add(&d->rl[why].quiet, 1);
	}
	return reply(conn, status, status == 403 ? "forbidden\n" : "refused\n");
}

/* An argument as it came, decoded: NULL when absent, and *bad when it holds
 * a NUL (%00) or is too long. */
static const char *arg(struct MHD_Connection *conn, const char *name, int *bad)
{
	const char *v = NULL;
	size_t vl = 0;

	if (MHD_lookup_connection_value_n(conn, MHD_GET_ARGUMENT_KIND, name, strlen(name), &v,
					  &vl) != MHD_YES || !v)
		return NULL;
	if (strlen(v) != vl || vl >= PEERD_KEY_MAX)
		*bad = 1;
	return v;
}

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;

	if (!s || !isdigit((unsigned char)*s) || strlen(s) > 20)
		return -EINVAL;
	errno = 0;
	*out = strtoull(s, &end, 10);
	return errno || *end ? -EINVAL : 0;
}

/* "bytes=A-B" or "bytes=A-" (one range); 0, -EINVAL. */
static int parse_range(const char *s, uint64_t size, uint64_t *a, uint64_t *b, int *outside)
{
	char first[24], last[24];
	const char *dash;
	size_t n;

	*outside = 0;
	if (strncmp(s, "bytes=", 6))
		return -EINVAL;
	s += 6;
	dash = strchr(s, '-');
	if (!dash || (n = (size_t)(dash - s)) == 0 || n >= sizeof(first) ||
	    strlen(dash + 1) >= sizeof(last))
		return -EINVAL;
	memcpy(first, s, n);
	first[n] = 0;
	strcpy(last, dash + 1);
	if (parse_u64(first, a))
		return -EINVAL;
	if (!*last)
		*b = size ? size - 1 : 0;
	else if (parse_u64(last, b) || *b < *a)
		return -EINVAL;
	*outside = *a >= size || *b >= size;
	return 0;
}

/* Read [a, b] of ino through the cache into buf; 0 or -errno. */
static int read_range(struct peerd *d, uint64_t ino, uint64_t a, uint64_t b, char *buf)
{
	struct cache_file *f;
	struct cache_read rd;
	uint64_t pos = a;
	int rc = cache_file_open_exact(d->c, ino, &f); /* never another file's bytes */

	if (rc)
		return rc;
	while (!rc && pos <= b) {
		ssize_t n = cache_file_read(f, pos, (size_t)MIN(b + 1 - pos, CACHE_MAX_READ), &rd);
		char *dst = buf + (pos - a);

		if (n <= 0) {
			rc = n ? (int)n : -EIO;
			break;
		}
		for (int i = 0; i < rd.nseg && !rc; i++) {
			const struct cache_seg *s = &rd.seg[i];

			if (s->fd < 0) {
				memcpy(dst, s->buf, s->len);
			} else {
				for (size_t got = 0; got < s->len;) {
					ssize_t r = pread(s->fd, dst + got, s->len - got, (off_t)(s->off + got));

					if (r <= 0) {
						rc = r < 0 ? -errno : -EIO;
						break;
					}
					got += (size_t)r;
				}
			}
			dst += s->len;
		}
		cache_read_release(&rd);
		pos += (uint64_t)n;
	}
	cache_file_close(f);
	return rc;
}

static enum MHD_Result serve(struct peerd *d, struct MHD_Connection *conn)
{
	const char *key, *ssize, *etag, *smtime, *range;
	uint64_t size, a, b, cached, csize;
	struct MHD_Response *r;
	struct ns_attr at;
	struct body *body;
	int bad = 0, outside, rc;
	int64_t mtime = 0;
	char hdr[96];
	unsigned status;

	key = arg(conn, "key", &bad);
	ssize = arg(conn, "size", &bad);
	etag = arg(conn, "etag", &bad);
	smtime = arg(conn, "mtime", &bad);
	if (bad || !key || !*key || parse_u64(ssize, &size) ||
	    (etag && strlen(etag) >= BACKEND_ETAG_MAX))
		return refuse(d, conn, MHD_HTTP_BAD_REQUEST, R_ARGS, key);
	if (smtime && *smtime) {
		char *end;

		errno = 0;
		mtime = strtoll(smtime, &end, 10);
		if (errno || *end)
			return refuse(d, conn, MHD_HTTP_BAD_REQUEST, R_ARGS, smtime);
	}
	if (backend_key_check(key))
		return refuse(d, conn, MHD_HTTP_BAD_REQUEST, R_KEY, key);
	if (cache_resolve(d->c, key, &at) || at.is_dir)
		return refuse(d, conn, MHD_HTTP_NOT_FOUND, R_OUTSIDE, key);
	if (size != at.size || (etag && *etag && *at.etag && strcmp(etag, at.etag)) ||
	    (mtime && at.mtime_ns && mtime != at.mtime_ns))
		return reply(conn, MHD_HTTP_CONFLICT, "another version here\n");
	range = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_RANGE);
	status = range ? MHD_HTTP_PARTIAL_CONTENT : MHD_HTTP_OK;
	if (!range) {
		a = 0;
		b = size ? size - 1 : 0;
	} else if (parse_range(range, size, &a, &b, &outside)) {
		return refuse(d, conn, MHD_HTTP_BAD_REQUEST, R_RANGE, range);
	} else if (outside) {
		snprintf(hdr, sizeof(hdr), "bytes */%llu", (unsigned long long)size);
		r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
		if (!r)
			return MHD_NO;
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_RANGE, hdr);
		peer_count_refused(d->be);
		rc = MHD_queue_response(conn, MHD_HTTP_RANGE_NOT_SATISFIABLE, r);
		MHD_destroy_response(r);
		return rc;
	}
	if (size && b + 1 - a > PEER_MAX_RANGE)
		return refuse(d, conn, MHD_HTTP_BAD_REQUEST, R_RANGE, "larger than 64 MiB");
	/* Serve what is here, or what this node owns; anything else would
	 * send the asker's asker round in circles. */
	if (cache_cached_bytes(d->c, at.ino, &cached, &csize))
		return reply(conn, MHD_HTTP_NOT_FOUND, "not here\n");
	if (cached < csize && !peer_owns(d->be, key))
		return reply(conn, MHD_HTTP_NOT_FOUND, "not here\n");
	{
		size_t len = size ? (size_t)(b + 1 - a) : 0;

		if (budget_get(d, len))
			return reply(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "busy\n");
		body = malloc(sizeof(*body) + len + 1);
		if (!body) {
			budget_put(d, len);
			return reply(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory\n");
		}
		body->d = d;
		body->len = len;
		rc = len ? read_range(d, at.ino, a, b, body->data) : 0;
		if (rc) {
			body_free(body);
			if (rc == -ENOENT)
				return reply(conn, MHD_HTTP_NOT_FOUND, "not here\n");
			log_warn("peer server: reading %.200s for a peer: %s", key, strerror(-rc));
			return reply(conn, MHD_HTTP_BAD_GATEWAY, "read failed\n");
		}
		r = MHD_create_response_from_buffer_with_free_callback_cls(len, body->data, body_free, body);
		if (!r) {
			body_free(body);
			return MHD_NO;
		}
		snprintf(hdr, sizeof(hdr), "%016llx", (unsigned long long)XXH3_64bits(body->data, len));
		MHD_add_response_header(r, PEER_XXH3_HEADER, hdr);
		if (range) {
			snprintf(hdr, sizeof(hdr), "bytes %llu-%llu/%llu", (unsigned long long)a,
				 (unsigned long long)b, (unsigned long long)size);
			MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_RANGE, hdr);
		}
		MHD_add_response_header(r, "Content-Type", "application/octet-stream");
		peer_count_served(d->be, len);
		rc = MHD_queue_response(conn, status, r);
		MHD_destroy_response(r);
		return rc;
	}
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **ctx)
{
	static int first_call;
	struct peerd *d = cls;
	const char *s;

	(void)version;
	(void)upload;
	if (!*ctx) {
		*ctx = &first_call; /* answer once the whole head is in */
		return MHD_YES;
	}
	if (*upload_size) {
		*upload_size = 0; /* a body is not for us: dropped */
		return MHD_YES;
	}
	if (*d->secret) {
		s = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, PEER_SECRET_HEADER);
		if (!s || !secret_equal(s, d->secret))
			return refuse(d, conn, MHD_HTTP_FORBIDDEN, R_SECRET, NULL);
	}
	if (strcmp(method, MHD_HTTP_METHOD_GET))
		return refuse(d, conn, MHD_HTTP_METHOD_NOT_ALLOWED, R_METHOD, method);
	if (strcmp(url, "/v1/object"))
		return refuse(d, conn, MHD_HTTP_NOT_FOUND, R_PATH, url);
	return serve(d, conn);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char line[512];
	size_t n;

	(void)cls;
	vsnprintf(line, sizeof(line), fmt, ap);
	n = strlen(line);
	while (n && line[n - 1] == '\n')
		line[--n] = 0;
	log_warn("peer server: %s", line);
}

/* Where to listen: the address of listen, or the loopback when there is no
 * secret.  0 or -EINVAL. */
static int bind_addr(const char *listen, int have_secret, struct sockaddr_storage *ss,
		     char *err, size_t errlen)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	struct addrinfo *res = NULL;
	char host[256], port[8];
	unsigned p;
	int rc, loop;

	if (peer_split_hostport(listen, host, sizeof(host), &p)) {
		snprintf(err, errlen, "--listen '%.200s' is not ADDR:PORT", listen);
		return -EINVAL;
	}
	snprintf(port, sizeof(port), "%u", p);
	rc = getaddrinfo(host, port, &hints, &res);
	if (rc) {
		snprintf(err, errlen, "--listen %.200s: %s", listen, gai_strerror(rc));
		return -EINVAL;
	}
	memset(ss, 0, sizeof(*ss));
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	freeaddrinfo(res);
	if (ss->ss_family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)ss;

		loop = (ntohl(in->sin_addr.s_addr) >> 24) == 127;
		if (!have_secret && !loop)
			in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	} else {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

		loop = IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
		if (!have_secret && !loop)
			in6->sin6_addr = in6addr_loopback;
	}
	if (!have_secret)
		log_warn("peer server: no --peer-secret-file: listening on the loopback only%s",
			 loop ? "" : " (not on the address --listen gave)");
	return 0;
}

int peerd_start(struct cache *c, struct backend *be, const char *listen, struct peerd **out,
		char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	struct peerd *d;
	int rc;

	*out = NULL;
	d = ec_calloc(1, sizeof(*d));
	if (!d) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	d->c = c;
	d->be = be;
	d->secret = peer_secret(be);
	pthread_mutex_init(&d->lock, NULL);
	pthread_cond_init(&d->cond, NULL);
	rc = bind_addr(listen, *d->secret != 0, &ss, err, errlen);
	if (rc)
		goto fail;
	errno = 0;
	d->mhd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
					  MHD_USE_ERROR_LOG | (ss.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0),
				  0, NULL, NULL, on_request, d,
				  MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, /* first: MHD wants it so */
				  MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
				  MHD_OPTION_CONNECTION_LIMIT, (unsigned)PEERD_CONNECTIONS,
				  MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)PEERD_IDLE_S,
				  MHD_OPTION_END);
	if (!d->mhd) {
		rc = errno ? -errno : -EADDRINUSE;
		snprintf(err, errlen, "peer server: cannot listen on %.200s: %s", listen, strerror(-rc));
		goto fail;
	}
	log_info("peer server: listening on %s%s", listen,
		 *d->secret ? " (requests must carry the secret)" : "");
	*out = d;
	return 0;
fail:
	pthread_mutex_destroy(&d->lock);
	pthread_cond_destroy(&d->cond);
	free(d);
	return rc;
}

void peerd_stop(struct peerd *d)
{
	if (!d)
		return;
	MHD_stop_daemon(d->mhd);
	pthread_mutex_destroy(&d->lock);
	pthread_cond_destroy(&d->cond);
	free(d);
}
