/* SPDX-License-Identifier: MIT */
/* One attempt's transfer: the easy handle's options, and the callbacks
 * that take its headers and body.  Identity (ETag, Last-Modified, size) is
 * checked when a response's headers end, before any byte of its body is
 * accepted, so no read mixes versions; a ranged read writes straight into
 * the caller's buffer and never past it; a watchdog cuts an attempt that
 * hangs past the timeout. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "fetch_int.h"
#include "backends/base/util.h"

/* Copy a header value without leading blanks and the trailing CRLF. */
static void header_value(const char *v, size_t n, char *dst, size_t dstlen)
{
	while (n && (*v == ' ' || *v == '\t')) {
		v++;
		n--;
	}
	while (n && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' '))
		n--;
	if (n >= dstlen)
		n = dstlen - 1;
	memcpy(dst, v, n);
	dst[n] = 0;
}

/* Decide at the end of a 2xx response's headers whether it is the object
 * we expect; sets job->stale (and stops the transfer) when it is not. */
static int check_identity(struct fetch_job *j, long http)
{
	if (j->probing)
		return 0;
	if (j->mode == FETCH_RANGE && http == 200 && j->off + j->got > 0)
		j->skip = j->off + j->got;
	if ((j->checks & FETCH_CHECK_ETAG) && j->expect.etag[0] && j->current.etag[0] &&
	    !fetch_etag_equal(j->expect.etag, j->current.etag))
		j->stale = 1;
	if ((j->checks & FETCH_CHECK_MTIME) && j->expect.mtime_ns && j->current.mtime_ns &&
	    j->expect.mtime_ns / 1000000000 != j->current.mtime_ns / 1000000000)
		j->stale = 1;
	if ((j->checks & FETCH_CHECK_SIZE) && j->total != UINT64_MAX &&
	    j->total != j->expect.size)
		j->stale = 1;
	return j->stale ? -ESTALE : 0;
}

static size_t on_header(char *data, size_t size, size_t nitems, void *arg)
{
	struct fetch_job *j = arg;
	size_t n = size * nitems;
	char v[BACKEND_ETAG_MAX + 64];
	long http = 0;
	uint64_t start;
	time_t t;

	j->byte_ms = now_ms();
	if (n >= 5 && !strncmp(data, "HTTP/", 5)) {
		memset(&j->current, 0, sizeof(j->current));
		j->total = UINT64_MAX;
		return n;
	}
	if (n <= 2 && (data[0] == '\r' || data[0] == '\n')) {
		curl_easy_getinfo(j->easy, CURLINFO_RESPONSE_CODE, &http);
		if (j->total != UINT64_MAX)
			j->current.size = j->total;
		if (http >= 200 && http < 300 && (j->badrange || check_identity(j, http)))
			return 0;
		return n;
	}
	if (n > 5 && !strncasecmp(data, "etag:", 5)) {
		header_value(data + 5, n - 5, j->current.etag, sizeof(j->current.etag));
	} else if (n > 14 && !strncasecmp(data, "last-modified:", 14)) {
		header_value(data + 14, n - 14, v, sizeof(v));
		if (!fetch_parse_http_date(v, &t))
			j->current.mtime_ns = (int64_t)t * 1000000000;
	} else if (n > 14 && !strncasecmp(data, "content-range:", 14)) {
		header_value(data + 14, n - 14, v, sizeof(v));
		if (!fetch_parse_content_range(v, &start, &j->total) && start != j->off + j->got &&
		    j->mode == FETCH_RANGE && !j->probing)
			j->badrange = 1; /* not the range asked for: a bad reply */
	} else if (n > 15 && !strncasecmp(data, "content-length:", 15) && j->total == UINT64_MAX) {
		long long cl;

		header_value(data + 15, n - 15, v, sizeof(v));
		curl_easy_getinfo(j->easy, CURLINFO_RESPONSE_CODE, &http);
		if (http == 200 && sscanf(v, "%lld", &cl) == 1 && cl >= 0)
			j->total = (uint64_t)cl;
	}
	return n;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
	struct fetch_job *j = arg;
	struct fetch_engine *e;
	size_t n = size * nmemb, take;
	long http = 0;

	curl_easy_getinfo(j->easy, CURLINFO_RESPONSE_CODE, &http);
	e = j->engine;
	j->byte_ms = now_ms();
	if (http < 200 || http >= 300) {
		take = FETCH_ERRBODY_MAX - 1 - j->errbody_len;
		take = n < take ? n : take;
		memcpy(j->errbody + j->errbody_len, data, take);
		j->errbody_len += take;
		j->errbody[j->errbody_len] = 0;
		return n;
	}
	if (j->mode == FETCH_BODY) {
		if (j->body_len + n + 1 > j->body_cap) {
			size_t cap = j->body_cap ? j->body_cap : 65536;
			char *nb;

			while (cap < j->body_len + n + 1)
				cap *= 2;
			if (cap > FETCH_BODY_MAX) {
				j->toobig = 1;
				return 0;
			}
			nb = realloc(j->body, cap);
			if (!nb) {
				j->toobig = 1;
				return 0;
			}
			j->body = nb;
			j->body_cap = cap;
		}
		memcpy(j->body + j->body_len, data, n);
		j->body_len += n;
		j->body[j->body_len] = 0;
		atomic_fetch_add(&e->c->bytes, n);
		return n;
	}
	if (j->mode != FETCH_RANGE)
		return n;
	if (j->skip) {
		take = n < j->skip ? n : (size_t)j->skip;
		j->skip -= take;
		data += take;
		n -= take;
	}
	take = j->len - j->got;
	take = n < take ? n : take;
	memcpy((char *)j->buf + j->got, data, take);
	j->got += take;
	atomic_fetch_add(&e->c->bytes, take);
	if (take < n && j->got == j->len) {
		j->complete = 1;   /* everything asked for: drop the excess */
		return 0;
	}
	return size * nmemb;
}

/* The watchdog, called by curl about once a second while a transfer is
 * idle: cut an attempt whose answer has not begun timeout_s after its
 * connection, or whose last byte is timeout_s old. */
static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		       curl_off_t ulnow)
{
	struct fetch_job *j = arg;
	uint64_t now = now_ms(), bound = (uint64_t)j->engine->timeout_s * 1000;
	curl_off_t conn_us = 0;

	(void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
	if (j->byte_ms) {
		if (now - j->byte_ms <= bound)
			return 0;
		j->hung = FETCH_HUNG_STALL;
		return 1;
	}
	curl_easy_getinfo(j->easy, CURLINFO_CONNECT_TIME_T, &conn_us);
	/* Still connecting is curl's to bound; but a reused connection may
	 * report no connect time, so past the connect bound count from the
	 * start. */
	if (conn_us <= 0 && now - j->attempt_ms <= bound + 1000)
		return 0;
	if (now - j->attempt_ms - (uint64_t)conn_us / 1000 <= bound)
		return 0;
	j->hung = FETCH_HUNG_ANSWER;
	return 1;
}

int fetch_setup_attempt(struct fetch_engine *e, struct fetch_job *j, CURL *h)
{
	char range[64], hdr[BACKEND_ETAG_MAX + 16];
	struct curl_slist *l = NULL, *t;

	for (char **p = e->headers; p && *p; p++) {
		if (!(t = curl_slist_append(l, *p)))
			goto nomem;
		l = t;
	}
	if ((j->checks & FETCH_CHECK_ETAG) && j->expect.etag[0] && !j->probing &&
	    j->mode != FETCH_HEAD) {
		if (j->expect.etag[0] == '"' || !strncmp(j->expect.etag, "W/", 2))
			snprintf(hdr, sizeof(hdr), "If-Match: %s", j->expect.etag);
		else
			snprintf(hdr, sizeof(hdr), "If-Match: \"%s\"", j->expect.etag);
		if (!(t = curl_slist_append(l, hdr)))
			goto nomem;
		l = t;
	}
	if (e->auth && e->auth(e->auth_arg, h, &l))
		goto nomem; /* the credentials of this attempt (renewed ones) */
	j->hdrs = l;
	j->easy = h;
	curl_easy_setopt(h, CURLOPT_URL, j->url);
	curl_easy_setopt(h, CURLOPT_PRIVATE, (char *)j);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, l);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, j);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, j);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, j->curlerr);
	/* One bound, three places a server can hang: the connection (curl's
	 * own timeout), the first byte of the answer and a transfer that stops
	 * moving (the watchdog in on_progress: curl's low-speed check averages
	 * over several seconds, so a stall after a few bytes took 4-5 times
	 * the bound to be noticed). */
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, (long)e->timeout_s);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, j);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	if (e->insecure) {
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (e->sigv4) {
		curl_easy_setopt(h, CURLOPT_AWS_SIGV4, e->sigv4);
		if (!e->auth)
			curl_easy_setopt(h, CURLOPT_USERPWD, e->userpwd);
	}
	if (j->mode == FETCH_HEAD || j->probing) {
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	} else if (j->mode == FETCH_RANGE) {
		snprintf(range, sizeof(range), "%llu-%llu",
			 (unsigned long long)(j->off + j->got),
			 (unsigned long long)(j->off + j->len - 1));
		curl_easy_setopt(h, CURLOPT_RANGE, range);
	}
	return 0;
nomem:
	curl_slist_free_all(l);
	return -ENOMEM;
}
