/* SPDX-License-Identifier: MIT */
/* The fetch engine's pure helpers, apart from the engine so that each file
 * holds one thing: what a failed attempt means (retry or not, which errno:
 * the one place CURLcode and HTTP status become errno), how long to back
 * off, and the header values it reads (HTTP and ISO dates, Content-Range,
 * ETags).  Unit-tested in check_fetch. */
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include "fetch.h"

enum fetch_verdict fetch_classify(int curlcode, long http, const char *s3code, int *err)
{
	*err = -EIO;
	switch (curlcode) {
	case CURLE_OK:
		break;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
	case CURLE_WEIRD_SERVER_REPLY:
	case CURLE_HTTP2:
	case CURLE_PARTIAL_FILE:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_HTTP2_STREAM:
		return FETCH_RETRY;
	case CURLE_OUT_OF_MEMORY:
		*err = -ENOMEM;
		return FETCH_FAIL;
	default:
		return FETCH_FAIL;
	}
	if (s3code && (!strcmp(s3code, "SlowDown") || !strcmp(s3code, "RequestTimeout") ||
		       !strcmp(s3code, "InternalError")))
		return FETCH_RETRY;
	if ((http >= 200 && http < 300) || http == 416)
		return FETCH_OK;
	switch (http) {
	case 404:
		*err = -ENOENT;
		return FETCH_FAIL;
	case 401:
	case 403:
		*err = -EACCES;
		return FETCH_FAIL;
	case 412:
		*err = -ESTALE;
		return FETCH_FAIL;
	case 408:
	case 429:
	case 500:
	case 502:
	case 503:
	case 504:
		return FETCH_RETRY;
	default:
		return FETCH_FAIL;
	}
}

unsigned fetch_backoff_ms(unsigned n, double jit)
{
	uint64_t d = FETCH_BACKOFF_BASE_MS;

	while (n-- > 1 && d < FETCH_BACKOFF_CAP_MS)
		d *= 2;
	if (d > FETCH_BACKOFF_CAP_MS)
		d = FETCH_BACKOFF_CAP_MS;
	if (jit < 0 || jit >= 1)
		jit = 0;
	return (unsigned)(d / 2 + (uint64_t)(jit * (double)(d / 2)));
}

static int month_of(const char *s)
{
	static const char m[] = "JanFebMarAprMayJunJulAugSepOctNovDec";

	for (int i = 0; i < 12; i++)
		if (!strncmp(s, m + 3 * i, 3))
			return i;
	return -1;
}

int fetch_parse_http_date(const char *s, time_t *out)
{
	struct tm tm = { 0 };
	char mon[4];
	const char *p = strchr(s, ',');
	int n = 0;

	if (!p)
		return -EINVAL;
	if (sscanf(p + 1, " %2d %3s %4d %2d:%2d:%2d GMT%n", &tm.tm_mday, mon, &tm.tm_year,
		   &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &n) != 6 || n == 0)
		return -EINVAL;
	tm.tm_mon = month_of(mon);
	if (tm.tm_mon < 0 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
	    tm.tm_min > 59 || tm.tm_sec > 60 || tm.tm_year < 1970)
		return -EINVAL;
	tm.tm_year -= 1900;
	*out = timegm(&tm);
	return 0;
}

int fetch_parse_iso8601(const char *s, time_t *out)
{
	struct tm tm = { 0 };

	if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
		   &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 6)
		return -EINVAL;
	if (tm.tm_year < 1970 || tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 ||
	    tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60)
		return -EINVAL;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	*out = timegm(&tm);
	return 0;
}

int fetch_parse_content_range(const char *s, uint64_t *start, uint64_t *total)
{
	unsigned long long a, b, t;
	int n = 0;

	while (*s == ' ')
		s++;
	if (strncasecmp(s, "bytes ", 6))
		return -EINVAL;
	s += 6;
	if (sscanf(s, "*/%llu%n", &t, &n) == 1 && n) {
		*start = 0;
		*total = t;
		return 0;
	}
	if (sscanf(s, "%llu-%llu/%llu%n", &a, &b, &t, &n) != 3 || !n || b < a || b >= t)
		return -EINVAL;
	*start = a;
	*total = t;
	return 0;
}

/* Strip a weak prefix and surrounding quotes: the comparable part. */
static void etag_core(const char *s, const char **p, size_t *n)
{
	size_t l;

	if (!strncmp(s, "W/", 2))
		s += 2;
	l = strlen(s);
	if (l >= 2 && s[0] == '"' && s[l - 1] == '"') {
		s++;
		l -= 2;
	}
	*p = s;
	*n = l;
}

int fetch_etag_equal(const char *a, const char *b)
{
	const char *pa, *pb;
	size_t na, nb;

	etag_core(a, &pa, &na);
	etag_core(b, &pb, &nb);
	return na == nb && !memcmp(pa, pb, na);
}
