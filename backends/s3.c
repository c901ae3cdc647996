/* SPDX-License-Identifier: MIT */
/* The S3 backend: a bucket prefix listed with ListObjectsV2 page by page
 * (each page parsed and streamed to the caller, never the whole listing),
 * objects read with ranged GETs that carry If-Match with the listed ETag.
 * Requests are signed by libcurl's SigV4; credentials, region and endpoint
 * are found the way the AWS tools find them.  XML is parsed here, minimally:
 * only the few elements a listing or an error needs. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE     /* memmem */
#endif
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "creds.h"
#include "fetch.h"
#include "backends/base/log.h"
#include "backends/base/util.h"

#define S3_FILE_MAX (1u << 20)   /* cap of a credentials or config file */
#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

struct s3_backend {
	struct backend be;
	struct fetch_engine *eng;
	char *base;        /* bucket URL, ends in '/' */
	char *prefix;      /* "" or "dir/" */
	unsigned max_keys;
	struct creds_provider *creds;   /* NULL with --no-sign */
};

static struct s3_backend *sb(struct backend *be)
{
	return (struct s3_backend *)be;
}

int s3_parse_url(const char *url, char *bucket, size_t blen, char *prefix, size_t plen)
{
	const char *b, *p;
	size_t n;

	if (strncmp(url, "s3://", 5))
		return -EINVAL;
	b = url + 5;
	n = strcspn(b, "/");
	if (n < 1 || n > 63 || n >= blen)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)b[i]) && b[i] != '-' && b[i] != '.' && b[i] != '_')
			return -EINVAL;
	memcpy(bucket, b, n);
	bucket[n] = 0;
	p = b + n;
	while (*p == '/')
		p++;
	n = strlen(p);
	if (n + 2 > plen)
		return -EINVAL;
	memcpy(prefix, p, n + 1);
	if (n && prefix[n - 1] != '/')
		strcat(prefix, "/");
	return 0;
}

static void copy_value(char *dst, size_t n, const char *v)
{
	size_t l = strnlen(v, n - 1);

	memcpy(dst, v, l);
	dst[l] = 0;
}

int s3_parse_config(const char *text, const char *profile, const char *key,
		    char *out, size_t outlen)
{
	char section[256];

	if (!strcmp(profile, "default"))
		snprintf(section, sizeof(section), "default");
	else
		snprintf(section, sizeof(section), "profile %s", profile);
	return creds_ini_get(text, section, key, out, outlen) ? -ENOENT : 0;
}

/* Append code point cp as UTF-8; 0 or -ENAMETOOLONG. */
static int put_utf8(unsigned long cp, char *dst, size_t *o, size_t dstlen)
{
	char b[4];
	size_t n = utf8_put(cp, b);

	if (*o + n >= dstlen)
		return -ENAMETOOLONG;
	memcpy(dst + *o, b, n);
	*o += n;
	return 0;
}

int s3_xml_decode(const char *src, size_t n, char *dst, size_t dstlen)
{
	static const struct { const char *name; char c; } ents[] = {
		{ "amp;", '&' }, { "lt;", '<' }, { "gt;", '>' }, { "quot;", '"' }, { "apos;", '\'' },
	};
	size_t o = 0, i = 0;

	while (i < n) {
		unsigned long cp;
		size_t k;

		if (src[i] != '&') {
			if (src[i] == 0)
				return -EINVAL;
			if (o + 1 >= dstlen)
				return -ENAMETOOLONG;
			dst[o++] = src[i++];   /* raw bytes, UTF-8 or not, pass unchanged */
			continue;
		}
		for (k = 0; k < 5; k++) {
			size_t l = strlen(ents[k].name);

			if (n - i - 1 >= l && !memcmp(src + i + 1, ents[k].name, l)) {
				if (o + 1 >= dstlen)
					return -ENAMETOOLONG;
				dst[o++] = ents[k].c;
				i += 1 + l;
				break;
			}
		}
		if (k < 5)
			continue;
		if (n - i < 4 || src[i + 1] != '#')
			return -EINVAL;
		{
			int hex = src[i + 2] == 'x' || src[i + 2] == 'X';
			size_t j = i + 2 + (size_t)hex, start = j;

			cp = 0;
			while (j < n && j - start < 8 && (hex ? isxdigit((unsigned char)src[j])
						      : isdigit((unsigned char)src[j]))) {
				int d = isdigit((unsigned char)src[j]) ? src[j] - '0'
					: (tolower((unsigned char)src[j]) - 'a' + 10);
				cp = cp * (hex ? 16 : 10) + (unsigned long)d;
				j++;
			}
			if (j == start || j >= n || src[j] != ';' || cp == 0 || cp > 0x10ffff ||
			    (cp >= 0xd800 && cp < 0xe000))
				return -EINVAL;
			if (put_utf8(cp, dst, &o, dstlen))
				return -ENAMETOOLONG;
			i = j + 1;
		}
	}
	if (o >= dstlen)
		return -ENAMETOOLONG;
	dst[o] = 0;
	return 0;
}

/* Text of the first <tag> element inside [p, end): sets *s and *n.  0 or
 * -ENOENT.  Element text never holds a raw '<', so a plain search is safe. */
static int xml_elem(const char *p, const char *end, const char *tag, const char **s, size_t *n)
{
	char open[64], close[64];
	const char *a, *b;

	snprintf(open, sizeof(open), "<%s>", tag);
	snprintf(close, sizeof(close), "</%s>", tag);
	a = memmem(p, (size_t)(end - p), open, strlen(open));
	if (!a)
		return -ENOENT;
	a += strlen(open);
	b = memmem(a, (size_t)(end - a), close, strlen(close));
	if (!b)
		return -ENOENT;
	*s = a;
	*n = (size_t)(b - a);
	return 0;
}

int s3_parse_list(const char *xml, s3_key_fn fn, void *arg, char *token, size_t toklen,
		  int *truncated)
{
	const char *end = xml + strlen(xml), *p, *s;
	char key[PATH_MAX + 1], num[32];
	int urlenc = 0, rc;
	size_t n;

	*truncated = 0;
	token[0] = 0;
	if (!strstr(xml, "<ListBucketResult"))
		return -EIO;
	if (!xml_elem(xml, end, "IsTruncated", &s, &n))
		*truncated = n == 4 && !memcmp(s, "true", 4);
	if (!xml_elem(xml, end, "EncodingType", &s, &n))
		urlenc = n == 3 && !memcmp(s, "url", 3);
	if (!xml_elem(xml, end, "NextContinuationToken", &s, &n) &&
	    s3_xml_decode(s, n, token, toklen))
		return -EIO;
	for (p = xml; (p = strstr(p, "<Contents>")); ) {
		const char *ce = strstr(p, "</Contents>");
		struct backend_stat st = { 0 };
		int bad = 0;
		time_t t;

		if (!ce)
			return -EIO;
		if (xml_elem(p, ce, "Key", &s, &n))
			return -EIO;
		if (s3_xml_decode(s, n, key, sizeof(key)))
			bad = 1;
		else if (urlenc && key_urldecode(key, strlen(key), key, sizeof(key)))
			bad = 1;
		if (!xml_elem(p, ce, "Size", &s, &n) && n < sizeof(num)) {
			memcpy(num, s, n);
			num[n] = 0;
			st.size = strtoull(num, NULL, 10);
		}
		if (!xml_elem(p, ce, "ETag", &s, &n) && s3_xml_decode(s, n, st.etag, sizeof(st.etag)))
			st.etag[0] = 0;
		if (!xml_elem(p, ce, "LastModified", &s, &n) && n < sizeof(num)) {
			memcpy(num, s, n);
			num[n] = 0;
			if (!fetch_parse_iso8601(num, &t))
				st.mtime_ns = (int64_t)t * 1000000000;
		}
		if ((rc = fn(arg, bad ? "" : key, bad, &st)))
			return rc;
		p = ce + 11;
	}
	return 0;
}

/* Object URL: bucket URL + percent-encoded (prefix + key); NULL on ENOMEM. */
static char *object_url(struct s3_backend *s, const char *key)
{
	size_t bl = strlen(s->base), pl = strlen(s->prefix);
	size_t n = bl + 3 * (pl + strlen(key)) + 1;
	char *u = malloc(n);

	if (!u)
		return NULL;
	memcpy(u, s->base, bl);
	if (key_urlencode(s->prefix, 1, u + bl, n - bl) ||
	    key_urlencode(key, 1, u + strlen(u), n - strlen(u))) {
		free(u);
		return NULL;
	}
	return u;
}

/* ListObjectsV2 URL, its query in the sorted order SigV4 signs. */
static char *list_url(struct s3_backend *s, const char *token, unsigned max_keys)
{
	size_t n = strlen(s->base) + 3 * (strlen(token) + strlen(s->prefix)) + 128;
	char *u = malloc(n), *t = malloc(3 * strlen(token) + 1), *p = malloc(3 * strlen(s->prefix) + 1);
	char *r = NULL;

	if (!u || !t || !p || key_urlencode(token, 0, t, 3 * strlen(token) + 1) ||
	    key_urlencode(s->prefix, 0, p, 3 * strlen(s->prefix) + 1))
		goto out;
	snprintf(u, n, "%s?%s%s%sencoding-type=url&list-type=2&max-keys=%u&prefix=%s", s->base,
		 token[0] ? "continuation-token=" : "", t, token[0] ? "&" : "", max_keys, p);
	r = u;
	u = NULL;
out:
	free(u);
	free(t);
	free(p);
	return r;
}

struct list_ctx {
	struct s3_backend *s;
	struct key_filter *kf;
};

static int on_key(void *arg, const char *key, int bad, const struct backend_stat *st)
{
	struct list_ctx *lc = arg;
	size_t pl = strlen(lc->s->prefix);

	if (bad || strncmp(key, lc->s->prefix, pl)) {
		atomic_fetch_add(&lc->s->be.counters.skipped_keys, 1);
		log_warn("%s: skipping a key that %s", lc->s->be.url,
			  bad ? "is not valid XML text" : "lies outside the prefix");
		return 0;
	}
	if (!key[pl])
		return 0;     /* the prefix's own directory marker */
	return key_filter_push(lc->kf, key + pl, st);
}

/* Explain a failed listing in err (and the log); returns rc. */
static int list_error(struct s3_backend *s, int rc, const struct fetch_job *job,
		      char *err, size_t errlen)
{
	const char *code = job->errcode[0] ? job->errcode : "no error code";

	if (rc == -EACCES)
		snprintf(err, errlen, "access denied listing %s (HTTP %ld, %s) with the"
			 " credentials from %s: check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/"
			 "AWS_PROFILE or the role, or use --no-sign for a public bucket", s->be.url,
			 job->http, code, s->creds ? creds_source_name(creds_source(s->creds))
						   : "nowhere (--no-sign)");
	else if (rc == -ENOENT)
		snprintf(err, errlen, "%s: no such bucket (HTTP 404, %s)", s->be.url, code);
	else
		snprintf(err, errlen, "cannot list %s: %s (HTTP %ld, %s)", s->be.url,
			 strerror(-rc), job->http, code);
	log_err("%s", err);
	return rc;
}

/* One ListObjectsV2 request; 0 or -errno, the body in job->body. */
static int list_page(struct s3_backend *s, const char *token, unsigned max_keys, int noretry,
		     struct fetch_job *job, char *err, size_t errlen)
{
	char *url = list_url(s, token, max_keys);
	ssize_t rc;

	memset(job, 0, sizeof(*job));
	if (!url)
		return -ENOMEM;
	job->url = url;
	job->name = s->be.url;
	job->mode = FETCH_BODY;
	job->noretry = noretry;
	rc = fetch_run(s->eng, job);
	free(url);
	if (rc < 0)
		return list_error(s, (int)rc, job, err, errlen);
	return 0;
}

static int s3_list(struct backend *be, backend_list_fn fn, void *arg)
{
	struct s3_backend *s = sb(be);
	struct list_ctx lc = { s, NULL };
	char *token = calloc(1, 4096), *prev = calloc(1, 4096), err[512];
	struct fetch_job job;
	unsigned long pages = 0;
	int rc, truncated;

	memset(&job, 0, sizeof(job));
	if (!token || !prev || (rc = key_filter_create(fn, arg, &be->counters, be->url, &lc.kf))) {
		rc = -ENOMEM;
		goto out;
	}
	do {
		strcpy(prev, token);
		free(job.body);
		if ((rc = list_page(s, token, s->max_keys, 0, &job, err, sizeof(err))))
			goto out;
		pages++;
		rc = s3_parse_list(job.body ? job.body : "", on_key, &lc, token, 4096, &truncated);
		if (rc == -EIO)
			log_err("%s: page %lu of the listing is not a ListBucketResult",
				  be->url, pages);
		if (rc)
			goto out;
		if (truncated && (!token[0] || !strcmp(token, prev))) {
			log_err("%s: truncated listing without a new continuation token",
				  be->url);
			rc = -EIO;
			goto out;
		}
	} while (truncated);
	rc = key_filter_flush(lc.kf);
out:
	free(job.body);
	key_filter_destroy(lc.kf);
	free(token);
	free(prev);
	return rc;
}

static int s3_stat(struct backend *be, const char *key, struct backend_stat *st)
{
	struct s3_backend *s = sb(be);
	char *url = object_url(s, key);
	int rc;

	if (!url)
		return -ENOMEM;
	rc = fetch_head(s->eng, url, key, st);
	free(url);
	return rc;
}

static int s3_submit(struct backend *be, struct backend_req *req)
{
	struct s3_backend *s = sb(be);
	char *url = object_url(s, req->key);

	if (!url)
		return -ENOMEM;
	return fetch_submit_req(s->eng, url, req, FETCH_CHECK_ETAG | FETCH_CHECK_SIZE);
}

static void s3_destroy(struct backend *be)
{
	struct s3_backend *s = sb(be);

	fetch_engine_destroy(s->eng);
	creds_destroy(s->creds);   /* after the engine: its requests may use them */
	free(s->base);
	free(s->prefix);
	free(s->be.url);
	free(s);
}

static const struct backend_ops s3_ops = {
	.name = "s3",
	.list = s3_list,
	.stat = s3_stat,
	.submit = s3_submit,
	.destroy = s3_destroy,
};

/* Read a whole small text file; NULL if missing or too big. */
static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t n;

	if (!f)
		return NULL;
	if (!(buf = malloc(S3_FILE_MAX + 1)))
		goto out;
	n = fread(buf, 1, S3_FILE_MAX + 1, f);
	if (n > S3_FILE_MAX) {
		free(buf);
		buf = NULL;
		goto out;
	}
	buf[n] = 0;
out:
	fclose(f);
	return buf;
}

static const char *env(const char *name)
{
	const char *v = getenv(name);

	return v && *v ? v : NULL;
}

/* Region, then credentials, the way the AWS tools find them (the chain is
 * backends/creds.c; the region is needed first, for its STS endpoint).  0,
 * or -errno with err saying where it looked. */
static int find_credentials(struct creds_provider **creds, char *region, size_t rlen,
			    char *err, size_t errlen)
{
	const char *profile = env("AWS_PROFILE") ? env("AWS_PROFILE") : "default";
	const char *home = env("HOME") ? env("HOME") : "/";
	struct creds_options co = { 0 };
	char path[PATH_MAX], *text;

	if (env("AWS_REGION"))
		copy_value(region, rlen, env("AWS_REGION"));
	else if (env("AWS_DEFAULT_REGION"))
		copy_value(region, rlen, env("AWS_DEFAULT_REGION"));
	else {
		if (env("AWS_CONFIG_FILE"))
			snprintf(path, sizeof(path), "%s", env("AWS_CONFIG_FILE"));
		else
			snprintf(path, sizeof(path), "%s/.aws/config", home);
		if (!(text = slurp(path)) || s3_parse_config(text, profile, "region", region, rlen))
			copy_value(region, rlen, "us-east-1");
		free(text);
	}
	co.region = region;
	return creds_resolve(&co, creds, err, errlen);
}

/* Bucket URL for the endpoint: path-style (ENDPOINT/BUCKET/) when asked,
 * when the host is an IP address or localhost, or for a dotted bucket over
 * https; else virtual-hosted (SCHEME://BUCKET.HOST/).  NULL on ENOMEM. */
static char *bucket_url(const char *endpoint, const char *bucket, int path_style)
{
	const char *host = strstr(endpoint, "://") + 3;
	size_t schemelen = (size_t)(host - endpoint), hl = strcspn(host, "/"), n;
	char *u, hostname[256];
	size_t el = strlen(endpoint);

	while (el > schemelen && endpoint[el - 1] == '/')
		el--;
	snprintf(hostname, sizeof(hostname), "%.*s", (int)strcspn(host, ":/"), host);
	if (hostname[0] == '[' || strspn(hostname, "0123456789.") == strlen(hostname) ||
	    !strcmp(hostname, "localhost") ||
	    (strchr(bucket, '.') && !strncmp(endpoint, "https", 5)))
		path_style = 1;
	n = el + strlen(bucket) + 4;
	if (!(u = malloc(n)))
		return NULL;
	if (path_style)
		snprintf(u, n, "%.*s/%s/", (int)el, endpoint, bucket);
	else
		snprintf(u, n, "%.*s%s.%.*s/", (int)schemelen, endpoint, bucket,
			 (int)(el - schemelen < hl ? el - schemelen : hl), host);
	return u;
}

/* Check the credentials with a one-key listing, so that a mount with bad
 * ones fails at once with a clear reason.  Network trouble only warns: a
 * remount must work from the cache while the store is down. */
static int probe(struct s3_backend *s, char *err, size_t errlen)
{
	struct fetch_job job;
	int rc = list_page(s, "", 1, 1, &job, err, errlen);

	free(job.body);
	if (rc == -EACCES || rc == -ENOENT)
		return rc;
	if (rc)
		log_warn("%s: the store does not answer now; going on", s->be.url);
	err[0] = 0;
	return 0;
}

int backend_s3_create(const char *url, const struct backend_options *o,
		      struct backend **out, char *err, size_t errlen)
{
	char bucket[64], prefix[PATH_MAX], region[64], sigv4[128], endpoint[1024];
	const char *headers[3] = { NULL, NULL, NULL };
	struct fetch_config cfg = { 0 };
	struct s3_backend *s = NULL;
	struct creds_provider *creds = NULL;
	size_t n;
	int rc;

	if (s3_parse_url(url, bucket, sizeof(bucket), prefix, sizeof(prefix))) {
		snprintf(err, errlen, "not an s3://BUCKET/PREFIX URL: %s", url);
		return -EINVAL;
	}
	if (o->no_sign) {
		copy_value(region, sizeof(region), env("AWS_REGION") ? env("AWS_REGION") :
			   env("AWS_DEFAULT_REGION") ? env("AWS_DEFAULT_REGION") : "us-east-1");
	} else if ((rc = find_credentials(&creds, region, sizeof(region), err, errlen))) {
		return rc;
	}
	if (o->s3_endpoint)
		copy_value(endpoint, sizeof(endpoint), o->s3_endpoint);
	else if (env("AWS_ENDPOINT_URL_S3"))
		copy_value(endpoint, sizeof(endpoint), env("AWS_ENDPOINT_URL_S3"));
	else if (env("AWS_ENDPOINT_URL"))
		copy_value(endpoint, sizeof(endpoint), env("AWS_ENDPOINT_URL"));
	else
		snprintf(endpoint, sizeof(endpoint), "https://s3.%s.amazonaws.com", region);
	if ((strncmp(endpoint, "http://", 7) && strncmp(endpoint, "https://", 8)) ||
	    strpbrk(endpoint, " ?#")) {
		snprintf(err, errlen, "the S3 endpoint must be an http(s):// URL: %s", endpoint);
		rc = -EINVAL;
		goto out;
	}
	rc = -ENOMEM;
	if (!(s = calloc(1, sizeof(*s))))
		goto out;
	s->creds = creds;
	creds = NULL;
	s->be.ops = &s3_ops;
	s->be.concurrency = o->concurrency ? o->concurrency : 64;
	s->max_keys = 1000;
	if (env("EPOCHFS_S3_MAX_KEYS") && atoi(env("EPOCHFS_S3_MAX_KEYS")) > 0 &&
	    atoi(env("EPOCHFS_S3_MAX_KEYS")) <= 1000)
		s->max_keys = (unsigned)atoi(env("EPOCHFS_S3_MAX_KEYS"));
	n = strlen(bucket) + strlen(prefix) + 8;
	if (!(s->be.url = malloc(n)) || !(s->prefix = strdup(prefix)) ||
	    !(s->base = bucket_url(endpoint, bucket, o->s3_path_style)))
		goto out;
	snprintf(s->be.url, n, "s3://%s/%s", bucket, prefix);
	headers[0] = "x-amz-content-sha256: " EMPTY_SHA256;
	if (!o->no_sign) {
		snprintf(sigv4, sizeof(sigv4), "aws:amz:%s:s3", region);
		cfg.sigv4 = sigv4;
		/* every attempt takes the provider's current credentials, so
		 * renewed ones reach the requests without a remount */
		cfg.auth = creds_apply;
		cfg.auth_arg = s->creds;
	}
	if (o->insecure && !strncmp(endpoint, "https://", 8))
		log_warn("--insecure: TLS certificates of %s are not verified", endpoint);
	cfg.headers = headers;
	cfg.concurrency = s->be.concurrency;
	cfg.retries = o->retries;
	cfg.timeout_s = o->timeout_s;
	cfg.insecure = o->insecure;
	cfg.counters = &s->be.counters;
	if ((rc = fetch_engine_create(&cfg, &s->eng))) {
		snprintf(err, errlen, "cannot start the fetch engine: %s", strerror(-rc));
		goto out;
	}
	if ((rc = probe(s, err, errlen)))
		goto out;
	*out = &s->be;
	s = NULL;
out:
	if (rc == -ENOMEM)
		snprintf(err, errlen, "out of memory");
	if (s)
		s3_destroy(&s->be);
	creds_destroy(creds);
	return rc;
}
