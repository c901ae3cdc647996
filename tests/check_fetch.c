/* SPDX-License-Identifier: MIT */
/* Unit tests of the fetch engine and the helpers the http backend uses:
 * retry classification, backoff bounds, date and header parsing, key
 * sanitation and the file/prefix filter, the autoindex and manifest parsers,
 * and the engine itself against a scripted HTTP server on 127.0.0.1. */
#define _GNU_SOURCE    /* strcasestr */
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <curl/curl.h>
#include "backends/fetch.h"
#include "backends/base/log.h"
#include "backends/base/util.h"

START_TEST(classify)
{
	int err;

	ck_assert_int_eq(fetch_classify(CURLE_OK, 206, "", &err), FETCH_OK);
	ck_assert_int_eq(fetch_classify(CURLE_OK, 200, "", &err), FETCH_OK);
	ck_assert_int_eq(fetch_classify(CURLE_OK, 404, "NoSuchKey", &err), FETCH_FAIL);
	ck_assert_int_eq(err, -ENOENT);
	ck_assert_int_eq(fetch_classify(CURLE_OK, 403, "AccessDenied", &err), FETCH_FAIL);
	ck_assert_int_eq(err, -EACCES);
	ck_assert_int_eq(fetch_classify(CURLE_OK, 401, "", &err), FETCH_FAIL);
	ck_assert_int_eq(err, -EACCES);
	ck_assert_int_eq(fetch_classify(CURLE_OK, 412, "", &err), FETCH_FAIL);
	ck_assert_int_eq(err, -ESTALE);
	for (long s = 500; s <= 504; s++)
		if (s != 501)
			ck_assert_int_eq(fetch_classify(CURLE_OK, s, "", &err), FETCH_RETRY);
	ck_assert_int_eq(fetch_classify(CURLE_OK, 501, "", &err), FETCH_FAIL);
	ck_assert_int_eq(err, -EIO);
	ck_assert_int_eq(fetch_classify(CURLE_OK, 429, "", &err), FETCH_RETRY);
	ck_assert_int_eq(fetch_classify(CURLE_OK, 400, "SlowDown", &err), FETCH_RETRY);
	ck_assert_int_eq(fetch_classify(CURLE_OK, 400, "RequestTimeout", &err), FETCH_RETRY);
	ck_assert_int_eq(fetch_classify(CURLE_OK, 400, "InvalidArgument", &err), FETCH_FAIL);
	ck_assert_int_eq(fetch_classify(CURLE_OK, 301, "PermanentRedirect", &err), FETCH_FAIL);
	ck_assert_int_eq(fetch_classify(CURLE_COULDNT_CONNECT, 0, "", &err), FETCH_RETRY);
	ck_assert_int_eq(fetch_classify(CURLE_OPERATION_TIMEDOUT, 0, "", &err), FETCH_RETRY);
	ck_assert_int_eq(fetch_classify(CURLE_RECV_ERROR, 0, "", &err), FETCH_RETRY);
	ck_assert_int_eq(fetch_classify(CURLE_PARTIAL_FILE, 206, "", &err), FETCH_RETRY);
	ck_assert_int_eq(fetch_classify(CURLE_GOT_NOTHING, 0, "", &err), FETCH_RETRY);
	ck_assert_int_eq(fetch_classify(CURLE_PEER_FAILED_VERIFICATION, 0, "", &err), FETCH_FAIL);
	ck_assert_int_eq(err, -EIO);
	ck_assert_int_eq(fetch_classify(CURLE_OUT_OF_MEMORY, 0, "", &err), FETCH_FAIL);
	ck_assert_int_eq(err, -ENOMEM);
}
END_TEST

START_TEST(backoff)
{
	unsigned total_max = 0, total_min = 0;

	for (unsigned n = 1; n <= 30; n++) {
		unsigned lo = fetch_backoff_ms(n, 0.0), hi = fetch_backoff_ms(n, 0.999999);

		ck_assert_uint_le(lo, hi);
		ck_assert_uint_le(hi, FETCH_BACKOFF_CAP_MS);
		ck_assert_uint_ge(lo, FETCH_BACKOFF_BASE_MS / 2);
		if (n > 1)
			ck_assert_uint_ge(hi, fetch_backoff_ms(n - 1, 0.999999));
		if (n <= FETCH_DEFAULT_RETRIES) {
			total_max += hi;
			total_min += lo;
		}
	}
	/* the documented bound of a request that fails fast: 5.1 s .. 10.2 s */
	ck_assert_uint_le(total_max, 10200);
	ck_assert_uint_ge(total_min, 5000);
	ck_assert_uint_eq(fetch_backoff_ms(1, 0.0), FETCH_BACKOFF_BASE_MS / 2);
	ck_assert_uint_eq(fetch_backoff_ms(1000, 2.0), FETCH_BACKOFF_CAP_MS / 2);
}
END_TEST

START_TEST(dates)
{
	time_t t;

	ck_assert_int_eq(fetch_parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT", &t), 0);
	ck_assert_int_eq((long)t, 784111777L);
	ck_assert_int_eq(fetch_parse_http_date("Mon, 23 Nov 2026 18:57:46 GMT", &t), 0);
	ck_assert_int_eq(fetch_parse_http_date("Sun, 06 Foo 1994 08:49:37 GMT", &t), -EINVAL);
	ck_assert_int_eq(fetch_parse_http_date("garbage", &t), -EINVAL);
	ck_assert_int_eq(fetch_parse_http_date("Sun, 06 Nov 1994 08:49:37", &t), -EINVAL);
	ck_assert_int_eq(fetch_parse_http_date("Sun, 99 Nov 1994 08:49:37 GMT", &t), -EINVAL);
	ck_assert_int_eq(fetch_parse_iso8601("1994-11-06T08:49:37.000Z", &t), 0);
	ck_assert_int_eq((long)t, 784111777L);
	ck_assert_int_eq(fetch_parse_iso8601("1994-13-06T08:49:37Z", &t), -EINVAL);
	ck_assert_int_eq(fetch_parse_iso8601("", &t), -EINVAL);
}
END_TEST

START_TEST(headers)
{
	uint64_t a, t;

	ck_assert_int_eq(fetch_parse_content_range("bytes 0-0/1", &a, &t), 0);
	ck_assert(a == 0 && t == 1);
	ck_assert_int_eq(fetch_parse_content_range(" bytes 100-199/1000", &a, &t), 0);
	ck_assert(a == 100 && t == 1000);
	ck_assert_int_eq(fetch_parse_content_range("bytes */77", &a, &t), 0);
	ck_assert(t == 77);
	ck_assert_int_eq(fetch_parse_content_range("bytes 0-0/0", &a, &t), -EINVAL);
	ck_assert_int_eq(fetch_parse_content_range("bytes 5-4/10", &a, &t), -EINVAL);
	ck_assert_int_eq(fetch_parse_content_range("items 0-1/2", &a, &t), -EINVAL);
	ck_assert(fetch_etag_equal("\"abc\"", "abc"));
	ck_assert(fetch_etag_equal("W/\"abc\"", "\"abc\""));
	ck_assert(!fetch_etag_equal("\"abc\"", "\"abd\""));
	ck_assert(!fetch_etag_equal("\"abc\"", "\"ab\""));
}
END_TEST

START_TEST(urlcoding)
{
	char b[64];

	ck_assert_int_eq(key_urlencode("a b/c~d%e", 1, b, sizeof(b)), 0);
	ck_assert_str_eq(b, "a%20b/c~d%25e");
	ck_assert_int_eq(key_urlencode("a/b+=", 0, b, sizeof(b)), 0);
	ck_assert_str_eq(b, "a%2Fb%2B%3D");
	ck_assert_int_eq(key_urlencode("\xff\x01", 1, b, sizeof(b)), 0);
	ck_assert_str_eq(b, "%FF%01");
	ck_assert_int_eq(key_urlencode("aaaa", 1, b, 4), -ENAMETOOLONG);
	ck_assert_int_eq(key_urlencode("   ", 1, b, 9), -ENAMETOOLONG);
	ck_assert_int_eq(key_urldecode("a%20b%2fc", 9, b, sizeof(b)), 0);
	ck_assert_str_eq(b, "a b/c");
	ck_assert_int_eq(key_urldecode("%00", 3, b, sizeof(b)), -EINVAL);
	ck_assert_int_eq(key_urldecode("%4", 2, b, sizeof(b)), -EINVAL);
	ck_assert_int_eq(key_urldecode("%zz", 3, b, sizeof(b)), -EINVAL);
	ck_assert_int_eq(key_urldecode("abcd", 4, b, 4), -ENAMETOOLONG);
}
END_TEST

START_TEST(keys)
{
	const char *why;
	char longseg[300];

	memset(longseg, 'x', sizeof(longseg) - 1);
	longseg[sizeof(longseg) - 1] = 0;
	ck_assert_int_eq(key_classify("a/b.jpg", &why), KEY_OK);
	ck_assert_int_eq(key_classify("caf\xc3\xa9/\xff\xfe", &why), KEY_OK);  /* bytes kept */
	ck_assert_int_eq(key_classify("a b/c?d#e%f", &why), KEY_OK);
	ck_assert_int_eq(key_classify("..a/b..", &why), KEY_OK);
	ck_assert_int_eq(key_classify("dir/", &why), KEY_DIRMARK);
	ck_assert_int_eq(key_classify("", &why), KEY_BAD);
	ck_assert_int_eq(key_classify("/abs", &why), KEY_BAD);
	ck_assert_int_eq(key_classify("a//b", &why), KEY_BAD);
	ck_assert_int_eq(key_classify("./a", &why), KEY_BAD);
	ck_assert_int_eq(key_classify("a/../../etc/passwd", &why), KEY_BAD);
	ck_assert_int_eq(key_classify("..", &why), KEY_BAD);
	ck_assert_int_eq(key_classify("a/.", &why), KEY_BAD);
	ck_assert_int_eq(key_classify(longseg, &why), KEY_BAD);
	ck_assert_int_eq(key_classify("a\nb", &why), KEY_BAD);
	ck_assert_int_eq(key_classify("a\x7f", &why), KEY_BAD);
	ck_assert_int_eq(key_classify(".epochfs/stats", &why), KEY_BAD);
	ck_assert_int_eq(key_classify("x/.epochfs", &why), KEY_OK);
}
END_TEST

struct seen {
	char keys[32][64];
	int n;
	int stop_at;
};

static int collect(void *arg, const char *key, const struct backend_stat *st)
{
	struct seen *s = arg;

	(void)st;
	ck_assert_int_lt(s->n, 32);
	snprintf(s->keys[s->n++], 64, "%s", key);
	return s->stop_at && s->n == s->stop_at ? 42 : 0;
}

static int has(struct seen *s, const char *k)
{
	for (int i = 0; i < s->n; i++)
		if (!strcmp(s->keys[i], k))
			return 1;
	return 0;
}

START_TEST(filter_sorted)
{
	static const char *in[] = { "a", "a!", "a!/x", "a-1", "a/b", "a/b/c", "a/bc", "b",
				    "b/", "c//d", "d", "d", "e/../f", "z" };
	struct backend_counters c = { 0 };
	struct backend_stat st = { .size = 1 };
	struct key_filter *kf;
	struct seen s = { .n = 0 };

	ck_assert_int_eq(key_filter_create(collect, &s, &c, "test", &kf), 0);
	for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++)
		ck_assert_int_eq(key_filter_push(kf, in[i], &st), 0);
	ck_assert_int_eq(key_filter_flush(kf), 0);
	ck_assert_int_eq(key_filter_unsorted(kf), 0);
	key_filter_destroy(kf);
	/* shown */
	ck_assert(has(&s, "a!/x") && has(&s, "a-1") && has(&s, "a/b/c") && has(&s, "a/bc"));
	ck_assert(has(&s, "b") && has(&s, "d") && has(&s, "z"));
	/* skipped: a (prefix of a/b), a! (prefix of a!/x), a/b (prefix of a/b/c),
	 * c//d, the second d, e/../f; b/ is a silent directory marker */
	ck_assert(!has(&s, "a") && !has(&s, "a!") && !has(&s, "a/b"));
	ck_assert_int_eq(s.n, 7);
	ck_assert_uint_eq(atomic_load(&c.skipped_keys), 6);
}
END_TEST

START_TEST(filter_unsorted_and_stop)
{
	struct backend_counters c = { 0 };
	struct backend_stat st = { 0 };
	struct key_filter *kf;
	struct seen s = { .n = 0, .stop_at = 2 };
	int rc = 0;

	ck_assert_int_eq(key_filter_create(collect, &s, &c, "test", &kf), 0);
	ck_assert_int_eq(key_filter_push(kf, "m", &st), 0);
	ck_assert_int_eq(key_filter_push(kf, "b", &st), 0);    /* out of order */
	ck_assert_int_eq(key_filter_unsorted(kf), 1);
	ck_assert_int_eq(s.n, 1);
	rc = key_filter_push(kf, "c", &st);
	ck_assert_int_eq(rc, 42);                              /* callback's stop */
	key_filter_destroy(kf);
}
END_TEST

struct entries {
	int n, files, dirs, lost;
	uint64_t size_sum;
	char last[1100];
	char mtime[64];
};

static int on_entry(void *arg, const char *name, const char *type, uint64_t size,
		    const char *mtime)
{
	struct entries *e = arg;

	e->n++;
	if (!name) {
		e->lost++;
		return 0;
	}
	snprintf(e->last, sizeof(e->last), "%s", name);
	snprintf(e->mtime, sizeof(e->mtime), "%s", mtime);
	if (!strcmp(type, "file"))
		e->files++;
	if (!strcmp(type, "directory"))
		e->dirs++;
	e->size_sum += size;
	return 0;
}

START_TEST(autoindex_json)
{
	struct entries e = { 0 };
	char big[4000];

	ck_assert_int_eq(http_parse_autoindex(
		"[\n{ \"name\":\"d\", \"type\":\"directory\", \"mtime\":\"Sun, 06 Nov 1994 08:49:37 GMT\" },\n"
		"{ \"name\":\"a \\\"q\\\" \\\\ \\u00e9\\ud83d\\ude00\", \"type\":\"file\", "
		"\"mtime\":\"Sun, 06 Nov 1994 08:49:37 GMT\", \"size\":12345 }\n]", on_entry, &e), 0);
	ck_assert_int_eq(e.n, 2);
	ck_assert_int_eq(e.dirs, 1);
	ck_assert_int_eq(e.files, 1);
	ck_assert_uint_eq(e.size_sum, 12345);
	ck_assert_str_eq(e.last, "a \"q\" \\ \xc3\xa9\xf0\x9f\x98\x80");
	ck_assert_str_eq(e.mtime, "Sun, 06 Nov 1994 08:49:37 GMT");
	ck_assert_int_eq(http_parse_autoindex("[]", on_entry, &e), 0);
	ck_assert_int_eq(http_parse_autoindex(" [ ] ", on_entry, &e), 0);
	/* hostile */
	memset(&e, 0, sizeof(e));
	ck_assert_int_eq(http_parse_autoindex("", on_entry, &e), -EIO);
	ck_assert_int_eq(http_parse_autoindex("<html>", on_entry, &e), -EIO);
	ck_assert_int_eq(http_parse_autoindex("[{\"name\":\"x", on_entry, &e), -EIO);
	ck_assert_int_eq(http_parse_autoindex("[{\"name\":\"x\"", on_entry, &e), -EIO);
	ck_assert_int_eq(http_parse_autoindex("[{\"name\":{\"a\":1}}]", on_entry, &e), -EIO);
	ck_assert_int_eq(http_parse_autoindex("[{\"name\":\"\\q\"}]", on_entry, &e), -EIO);
	ck_assert_int_eq(http_parse_autoindex("[{\"name\":\"\\u12\"}]", on_entry, &e), -EIO);
	ck_assert_int_eq(http_parse_autoindex("[{\"size\":-1}]", on_entry, &e), -EIO);
	ck_assert_int_eq(http_parse_autoindex("[{\"size\":99999999999999999999999}]", on_entry, &e),
			 -EIO);
	ck_assert_int_eq(http_parse_autoindex("[{}", on_entry, &e), -EIO);
	ck_assert_int_eq(http_parse_autoindex("[{} {}]", on_entry, &e), -EIO);
	/* names that cannot become a path are passed as NULL, not truncated */
	memset(&e, 0, sizeof(e));
	ck_assert_int_eq(http_parse_autoindex("[{\"name\":\"a\\u0000b\",\"type\":\"file\"}]",
					      on_entry, &e), 0);
	ck_assert_int_eq(e.lost, 1);
	strcpy(big, "[{\"name\":\"");
	memset(big + 10, 'n', 3000);
	strcpy(big + 3010, "\",\"type\":\"file\"}]");
	ck_assert_int_eq(http_parse_autoindex(big, on_entry, &e), 0);
	ck_assert_int_eq(e.lost, 2);
}
END_TEST

START_TEST(manifest)
{
	char line[256], key[64];
	uint64_t size;

	strcpy(line, "a/b%20c.jpg 1234\n");
	ck_assert_int_eq(http_parse_manifest_line(line, key, sizeof(key), &size), 1);
	ck_assert_str_eq(key, "a/b c.jpg");
	ck_assert_uint_eq(size, 1234);
	strcpy(line, "./x\t 0\r\n");
	ck_assert_int_eq(http_parse_manifest_line(line, key, sizeof(key), &size), 1);
	ck_assert_str_eq(key, "x");
	strcpy(line, "# comment 12\n");
	ck_assert_int_eq(http_parse_manifest_line(line, key, sizeof(key), &size), 0);
	strcpy(line, "   \n");
	ck_assert_int_eq(http_parse_manifest_line(line, key, sizeof(key), &size), 0);
	strcpy(line, "nosize\n");
	ck_assert_int_eq(http_parse_manifest_line(line, key, sizeof(key), &size), -EINVAL);
	strcpy(line, "a b 12\n");
	ck_assert_int_eq(http_parse_manifest_line(line, key, sizeof(key), &size), -EINVAL);
	strcpy(line, "a -12\n");
	ck_assert_int_eq(http_parse_manifest_line(line, key, sizeof(key), &size), -EINVAL);
	strcpy(line, "a 12x\n");
	ck_assert_int_eq(http_parse_manifest_line(line, key, sizeof(key), &size), -EINVAL);
	strcpy(line, "a%00b 12\n");
	ck_assert_int_eq(http_parse_manifest_line(line, key, sizeof(key), &size), -EINVAL);
	strcpy(line, "a 99999999999999999999999\n");
	ck_assert_int_eq(http_parse_manifest_line(line, key, sizeof(key), &size), -EINVAL);
}
END_TEST

/* A scripted HTTP server: answers the n-th request with script[n]; records
 * each request's Range and If-Match headers. */
struct script {
	const char *resp[8];
	int n, listen_fd, port;
	char range[8][64], ifmatch[8][64];
	pthread_t thread;
};

static void grab(const char *req, const char *name, char *out, size_t n)
{
	const char *p = strcasestr(req, name);
	size_t l;

	out[0] = 0;
	if (!p)
		return;
	p += strlen(name);
	l = strcspn(p, "\r\n");
	snprintf(out, n, "%.*s", (int)l, p);
}

static void *serve(void *arg)
{
	struct script *s = arg;

	while (s->n < 8 && s->resp[s->n]) {
		int fd = accept(s->listen_fd, NULL, NULL);
		char req[4096];
		ssize_t got;

		if (fd < 0)
			break;
		/* one request per connection; "Connection: close" in every reply */
		got = read(fd, req, sizeof(req) - 1);
		req[got > 0 ? got : 0] = 0;
		grab(req, "\nRange: ", s->range[s->n], sizeof(s->range[0]));
		grab(req, "\nIf-Match: ", s->ifmatch[s->n], sizeof(s->ifmatch[0]));
		if (write(fd, s->resp[s->n], strlen(s->resp[s->n])) < 0)
			break;
		s->n++;
		shutdown(fd, SHUT_WR);
		while (read(fd, req, sizeof(req)) > 0)
			;
		close(fd);
	}
	return NULL;
}

static void script_start(struct script *s)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t l = sizeof(a);

	s->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(s->listen_fd, 0);
	ck_assert_int_eq(bind(s->listen_fd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(listen(s->listen_fd, 8), 0);
	getsockname(s->listen_fd, (struct sockaddr *)&a, &l);
	s->port = ntohs(a.sin_port);
	pthread_create(&s->thread, NULL, serve, s);
}

static void script_stop(struct script *s)
{
	shutdown(s->listen_fd, SHUT_RDWR);
	close(s->listen_fd);
	pthread_join(s->thread, NULL);
}

/* Read 10 bytes at offset 0 of /obj through a fresh engine. */
static ssize_t read_through(struct script *s, struct backend_counters *c, unsigned checks,
			    const char *etag, uint64_t size, char *buf, struct fetch_job *job)
{
	struct fetch_config cfg = { .concurrency = 4, .retries = 2, .timeout_s = 5, .counters = c };
	struct fetch_engine *e;
	char url[64];
	ssize_t r;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/obj", s->port);
	memset(job, 0, sizeof(*job));
	job->url = url;
	job->name = "obj";
	job->mode = FETCH_RANGE;
	job->len = 10;
	job->buf = buf;
	job->checks = checks;
	job->expect.size = size;
	snprintf(job->expect.etag, sizeof(job->expect.etag), "%s", etag);
	ck_assert_int_eq(fetch_engine_create(&cfg, &e), 0);
	r = fetch_run(e, job);
	fetch_engine_destroy(e);
	return r;
}

#define CLOSE "Connection: close\r\nContent-Length: 0\r\n\r\n"

START_TEST(engine_retry_and_resume)
{
	struct backend_counters c = { 0 };
	struct script s = { .resp = {
		"HTTP/1.1 503 Slow Down\r\n" CLOSE,
		/* promises 10 bytes, sends 4, closes: the rest is asked again */
		"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-9/20\r\nETag: \"e1\"\r\n"
		"Content-Length: 10\r\nConnection: close\r\n\r\n0123",
		"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 4-9/20\r\nETag: \"e1\"\r\n"
		"Content-Length: 6\r\nConnection: close\r\n\r\n456789",
	} };
	struct fetch_job job;
	char buf[16] = { 0 };

	script_start(&s);
	ck_assert_int_eq(read_through(&s, &c, FETCH_CHECK_ETAG | FETCH_CHECK_SIZE, "\"e1\"", 20,
				      buf, &job), 10);
	script_stop(&s);
	ck_assert_str_eq(buf, "0123456789");
	ck_assert_str_eq(s.range[1], "bytes=0-9");
	ck_assert_str_eq(s.range[2], "bytes=4-9");
	ck_assert_str_eq(s.ifmatch[2], "\"e1\"");
	ck_assert_int_eq(job.attempts, 3);
	ck_assert_uint_eq(atomic_load(&c.retries), 2);
	ck_assert_uint_eq(atomic_load(&c.requests), 3);
	ck_assert_uint_eq(atomic_load(&c.errors), 0);
}
END_TEST

START_TEST(engine_status_mapping)
{
	struct backend_counters c = { 0 };
	struct script s404 = { .resp = { "HTTP/1.1 404 Not Found\r\n" CLOSE } };
	struct script s403 = { .resp = { "HTTP/1.1 403 Forbidden\r\n" CLOSE } };
	struct script s500 = { .resp = { "HTTP/1.1 500 Oops\r\n" CLOSE, "HTTP/1.1 502 Oops\r\n" CLOSE,
					 "HTTP/1.1 504 Oops\r\n" CLOSE } };
	struct fetch_job job;
	char buf[16];

	script_start(&s404);
	ck_assert_int_eq(read_through(&s404, &c, 0, "", 0, buf, &job), -ENOENT);
	script_stop(&s404);
	ck_assert_int_eq(job.attempts, 1);
	script_start(&s403);
	ck_assert_int_eq(read_through(&s403, &c, 0, "", 0, buf, &job), -EACCES);
	script_stop(&s403);
	ck_assert_int_eq(job.attempts, 1);
	script_start(&s500);
	ck_assert_int_eq(read_through(&s500, &c, 0, "", 0, buf, &job), -EIO);
	script_stop(&s500);
	ck_assert_int_eq(job.attempts, 3);    /* retries = 2 */
	ck_assert_uint_eq(atomic_load(&c.errors), 3);
}
END_TEST

START_TEST(engine_stale)
{
	struct backend_counters c = { 0 };
	struct script changed = { .resp = {
		"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-9/30\r\nETag: \"new\"\r\n"
		"Content-Length: 10\r\nConnection: close\r\n\r\nXXXXXXXXXX" } };
	struct script precond = { .resp = {
		"HTTP/1.1 412 Precondition Failed\r\n" CLOSE,
		"HTTP/1.1 200 OK\r\nETag: \"v2\"\r\nContent-Length: 33\r\n"
		"Last-Modified: Sun, 06 Nov 1994 08:49:37 GMT\r\nConnection: close\r\n\r\n" } };
	struct script resized = { .resp = {
		"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-9/11\r\n"
		"Content-Length: 10\r\nConnection: close\r\n\r\nXXXXXXXXXX" } };
	struct fetch_job job;
	char buf[16] = { 0 };

	script_start(&changed);
	ck_assert_int_eq(read_through(&changed, &c, FETCH_CHECK_ETAG | FETCH_CHECK_SIZE, "\"old\"",
				      30, buf, &job), -ESTALE);
	script_stop(&changed);
	ck_assert_str_eq(job.current.etag, "\"new\"");
	ck_assert_int_eq(buf[0], 0);          /* no byte of the new version taken */
	script_start(&precond);
	ck_assert_int_eq(read_through(&precond, &c, FETCH_CHECK_ETAG | FETCH_CHECK_SIZE, "v1", 30,
				      buf, &job), -ESTALE);
	script_stop(&precond);
	ck_assert_str_eq(precond.ifmatch[0], "\"v1\"");
	ck_assert_str_eq(job.current.etag, "\"v2\"");
	ck_assert_uint_eq(job.current.size, 33);
	ck_assert_int_eq(job.current.mtime_ns, 784111777LL * 1000000000LL);
	script_start(&resized);
	ck_assert_int_eq(read_through(&resized, &c, FETCH_CHECK_SIZE, "", 10, buf, &job), -ESTALE);
	script_stop(&resized);
	ck_assert_uint_eq(job.current.size, 11);
}
END_TEST

START_TEST(engine_ignored_range)
{
	struct backend_counters c = { 0 };
	/* a server that ignores Range and sends the whole 14-byte object */
	struct script s = { .resp = {
		"HTTP/1.1 200 OK\r\nContent-Length: 14\r\nConnection: close\r\n\r\nabcdefghijklmn" } };
	struct fetch_config cfg = { .concurrency = 1, .retries = 1, .counters = &c };
	struct fetch_engine *e;
	struct fetch_job job = { 0 };
	char url[64], buf[8] = { 0 };

	script_start(&s);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/obj", s.port);
	job.url = url;
	job.name = "obj";
	job.mode = FETCH_RANGE;
	job.off = 3;
	job.len = 4;
	job.buf = buf;
	ck_assert_int_eq(fetch_engine_create(&cfg, &e), 0);
	ck_assert_int_eq(fetch_run(e, &job), 4);
	fetch_engine_destroy(e);
	script_stop(&s);
	ck_assert_str_eq(buf, "defg");
}
END_TEST

START_TEST(engine_refused)
{
	struct backend_counters c = { 0 };
	struct fetch_config cfg = { .concurrency = 2, .retries = 1, .counters = &c };
	struct fetch_engine *e;
	struct fetch_job job = { 0 };
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t l = sizeof(a);
	char url[64], buf[8];

	/* a port bound but not listening refuses connections */
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	getsockname(fd, (struct sockaddr *)&a, &l);
	port = ntohs(a.sin_port);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/obj", port);
	job.url = url;
	job.name = "obj";
	job.mode = FETCH_RANGE;
	job.len = 8;
	job.buf = buf;
	ck_assert_int_eq(fetch_engine_create(&cfg, &e), 0);
	ck_assert_int_eq(fetch_run(e, &job), -EIO);
	fetch_engine_destroy(e);
	close(fd);
	ck_assert_int_eq(job.attempts, 2);
	ck_assert_uint_eq(atomic_load(&c.retries), 1);
}
END_TEST

/* A server that accepts and never answers, or answers and then stalls:
 * each connection is held open until the test ends. */
struct hung {
	int listen_fd, port, held[32], nheld;
	const char *first;     /* sent on each connection, then nothing */
	pthread_t thread;
};

static void *hung_serve(void *arg)
{
	struct hung *h = arg;
	int fd;

	while ((fd = accept(h->listen_fd, NULL, NULL)) >= 0) {
		if (h->first && write(fd, h->first, strlen(h->first)) < 0)
			break;
		if (h->nheld < 32)
			h->held[h->nheld++] = fd;
		else
			close(fd);
	}
	return NULL;
}

static void hung_start(struct hung *h, int backlog, int accept_them)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t l = sizeof(a);

	h->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(h->listen_fd, 0);
	ck_assert_int_eq(bind(h->listen_fd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(listen(h->listen_fd, backlog), 0);
	getsockname(h->listen_fd, (struct sockaddr *)&a, &l);
	h->port = ntohs(a.sin_port);
	if (accept_them)
		pthread_create(&h->thread, NULL, hung_serve, h);
}

static void hung_stop(struct hung *h, int accepted)
{
	shutdown(h->listen_fd, SHUT_RDWR);
	close(h->listen_fd);
	if (accepted)
		pthread_join(h->thread, NULL);
	while (h->nheld)
		close(h->held[--h->nheld]);
}

/* Read /obj through an engine with a 1 s timeout and `retries`; returns
 * the result, the seconds it took in *secs and the log in logbuf. */
static ssize_t read_timed(int port, unsigned retries, struct fetch_job *job, double *secs,
			  char *logbuf, size_t loglen)
{
	struct backend_counters c = { 0 };
	struct fetch_config cfg = { .concurrency = 2, .retries = retries, .timeout_s = 1,
				    .counters = &c };
	struct fetch_engine *e;
	char url[64], logpath[] = "/tmp/check_fetch_log.XXXXXX";
	static char buf[64];
	uint64_t t0;
	ssize_t r, n;
	int fd = mkstemp(logpath);

	ck_assert_int_ge(fd, 0);
	log_init("check_fetch", LOG_LVL_INFO, 0);
	ck_assert_int_eq(log_to_file(logpath), 0);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/obj", port);
	memset(job, 0, sizeof(*job));
	job->url = url;
	job->name = "obj";
	job->mode = FETCH_RANGE;
	job->len = sizeof(buf);
	job->buf = buf;
	ck_assert_int_eq(fetch_engine_create(&cfg, &e), 0);
	t0 = now_ms();
	r = fetch_run(e, job);
	*secs = (double)(now_ms() - t0) / 1000.0;
	fprintf(stderr, "check_fetch: %d attempt(s) of a hung server: %s after %.2f s\n",
		job->attempts, r < 0 ? strerror((int)-r) : "read", *secs);
	fetch_engine_destroy(e);
	n = pread(fd, logbuf, loglen - 1, 0);
	logbuf[n > 0 ? n : 0] = 0;
	close(fd);
	unlink(logpath);
	job->url = NULL;
	return r;
}

/* Issue 15 (7): a server that accepts and never answers fails each attempt
 * after the timeout, every retry is logged with its reason, and the whole
 * request ends after about timeout * (retries + 1) plus the backoff. */
START_TEST(engine_hung_server)
{
	struct hung h = { 0 };
	struct fetch_job job;
	char log[8192];
	double secs;

	hung_start(&h, 8, 1);
	ck_assert_int_eq(read_timed(h.port, 2, &job, &secs, log, sizeof(log)), -EIO);
	hung_stop(&h, 1);
	ck_assert_int_eq(job.attempts, 3);
	/* 3 x 1 s (the watchdog looks 4 times a second), plus 0.1-0.2 s and
	 * 0.2-0.4 s of backoff */
	ck_assert_msg(secs >= 2.8 && secs <= 5.0, "took %.2f s", secs);
	ck_assert_msg(strstr(log, "obj: attempt 1 of 3 failed: connected, but no answer within 1 s;"),
		      "log: %s", log);
	ck_assert_msg(strstr(log, "obj: attempt 2 of 3 failed: connected, but no answer within 1 s;"),
		      "log: %s", log);
	ck_assert_msg(strstr(log, "giving up on obj after 3 attempts: connected, but no answer"
			     " within 1 s (http://127.0.0.1:"), "log: %s", log);
}
END_TEST

/* A transfer that starts and then stops moving is cut after the timeout
 * too, and said to have stalled. */
START_TEST(engine_stalled_transfer)
{
	struct hung h = { .first = "HTTP/1.1 200 OK\r\nContent-Length: 64\r\n\r\nabc" };
	struct fetch_job job;
	char log[8192];
	double secs;

	hung_start(&h, 8, 1);
	ck_assert_int_eq(read_timed(h.port, 1, &job, &secs, log, sizeof(log)), -EIO);
	hung_stop(&h, 1);
	ck_assert_int_eq(job.attempts, 2);
	ck_assert_msg(secs >= 1.8 && secs <= 3.5, "took %.2f s", secs);
	ck_assert_msg(strstr(log, "obj: attempt 1 of 2 failed: the transfer stalled for 1 s;"),
		      "log: %s", log);
}
END_TEST

/* A connection that is never accepted (the listen queue is full, so the
 * SYN is dropped) is bounded by the same timeout. */
START_TEST(engine_connect_timeout)
{
	struct hung h = { 0 };
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct fetch_job job;
	int fill[4];
	char log[8192];
	double secs;

	hung_start(&h, 0, 0);
	a.sin_port = htons((uint16_t)h.port);
	for (int i = 0; i < 4; i++) {   /* fill the queue; later SYNs are dropped */
		fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		connect(fill[i], (struct sockaddr *)&a, sizeof(a));
	}
	usleep(100000);
	ck_assert_int_eq(read_timed(h.port, 0, &job, &secs, log, sizeof(log)), -EIO);
	for (int i = 0; i < 4; i++)
		close(fill[i]);
	hung_stop(&h, 0);
	ck_assert_int_eq(job.attempts, 1);
	ck_assert_msg(secs >= 0.9 && secs <= 2.0, "took %.2f s", secs);
	ck_assert_msg(strstr(log, "giving up on obj after 1 attempt: no connection within 1 s"),
		      "log: %s", log);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("fetch");
	TCase *t = tcase_create("pure");
	TCase *n = tcase_create("engine");

	tcase_add_test(t, classify);
	tcase_add_test(t, backoff);
	tcase_add_test(t, dates);
	tcase_add_test(t, headers);
	tcase_add_test(t, urlcoding);
	tcase_add_test(t, keys);
	tcase_add_test(t, filter_sorted);
	tcase_add_test(t, filter_unsorted_and_stop);
	tcase_add_test(t, autoindex_json);
	tcase_add_test(t, manifest);
	suite_add_tcase(s, t);
	tcase_set_timeout(n, 30);
	tcase_add_test(n, engine_retry_and_resume);
	tcase_add_test(n, engine_status_mapping);
	tcase_add_test(n, engine_stale);
	tcase_add_test(n, engine_ignored_range);
	tcase_add_test(n, engine_refused);
	tcase_add_test(n, engine_hung_server);
	tcase_add_test(n, engine_stalled_transfer);
	tcase_add_test(n, engine_connect_timeout);
	suite_add_tcase(s, n);
	return s;
}

int main(void)
{
	SRunner *r = srunner_create(suite());
	int failed;

	srunner_run_all(r, CK_NORMAL);
	failed = srunner_ntests_failed(r);
	srunner_free(r);
	return failed ? 1 : 0;
}
