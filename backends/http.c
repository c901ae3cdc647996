/* SPDX-License-Identifier: MIT */
/* The HTTP backend: objects under a base URL read with ranged GETs through
 * the fetch engine.  The namespace comes from a manifest ("PATH SIZE" lines,
 * a local file or a URL) or else from the server's directory listings
 * (http_list.c walks them, http_index.c parses them).  Identity is size
 * plus Last-Modified where a listing or a HEAD gives it (listings have no
 * ETags), the size alone from a manifest or an exact size in an HTML page. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "http_int.h"
#include "backends/base/log.h"

#define MANIFEST_LINE_MAX 16384

static struct http_backend *hb(struct backend *be)
{
	return (struct http_backend *)be;
}

int http_parse_manifest_line(char *line, char *key, size_t keylen, uint64_t *size)
{
	size_t n = strlen(line);
	char *sp, *end, *path = line;
	unsigned long long v;

	while (n && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' ' ||
		     line[n - 1] == '\t'))
		line[--n] = 0;
	while (*path == ' ' || *path == '\t')
		path++;
	if (!*path || *path == '#')
		return 0;
	sp = path + strcspn(path, " \t");
	if (!*sp)
		return -EINVAL;
	*sp++ = 0;
	while (*sp == ' ' || *sp == '\t')
		sp++;
	if (*sp < '0' || *sp > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(sp, &end, 10);
	if (errno || *end)
		return -EINVAL;
	if (!strncmp(path, "./", 2))
		path += 2;
	if (key_urldecode(path, strlen(path), key, keylen))
		return -EINVAL;
	*size = v;
	return 1;
}

/* Feed manifest lines to the key filter; 0, -errno, or fn's value. */
static int list_manifest_text(struct http_backend *h, FILE *f, const char *text,
			      struct key_filter *kf)
{
	char *line = malloc(MANIFEST_LINE_MAX), key[PATH_MAX];
	unsigned long lineno = 0;
	int rc = 0;

	if (!line)
		return -ENOMEM;
	for (;;) {
		struct backend_stat st = { 0 };
		size_t n;
		int r;

		if (f) {
			if (!fgets(line, MANIFEST_LINE_MAX, f))
				break;
		} else {
			if (!*text)
				break;
			n = strcspn(text, "\n");
			if (n >= MANIFEST_LINE_MAX)
				n = MANIFEST_LINE_MAX - 1;
			memcpy(line, text, n);
			line[n] = 0;
			text += strcspn(text, "\n");
			if (*text)
				text++;
		}
		lineno++;
		n = strlen(line);
		if (f && n == MANIFEST_LINE_MAX - 1 && line[n - 1] != '\n') {
			log_err("%s: manifest line %lu is too long", h->be.url, lineno);
			rc = -EINVAL;
			break;
		}
		r = http_parse_manifest_line(line, key, sizeof(key), &st.size);
		if (r == 0)
			continue;
		if (r < 0) {
			atomic_fetch_add(&h->be.counters.skipped_keys, 1);
			log_warn("%s: manifest line %lu is not 'PATH SIZE': skipped",
				  h->be.url, lineno);
			continue;
		}
		if ((rc = key_filter_push(kf, key, &st)))
			break;
	}
	free(line);
	return rc;
}

static int list_manifest(struct http_backend *h, backend_list_fn fn, void *arg)
{
	struct key_filter *kf = NULL;
	struct fetch_job job;
	FILE *f = NULL;
	int rc;

	memset(&job, 0, sizeof(job));
	if ((rc = key_filter_create(fn, arg, &h->be.counters, h->be.url, &kf)))
		return rc;
	if (!strncmp(h->manifest, "http://", 7) || !strncmp(h->manifest, "https://", 8)) {
		job.url = h->manifest;
		job.name = "manifest";
		job.mode = FETCH_BODY;
		if ((rc = (int)fetch_run(h->eng, &job)) < 0) {
			log_err("cannot fetch the manifest %s: %s", h->manifest,
				  strerror(-rc));
			goto out;
		}
		rc = list_manifest_text(h, NULL, job.body ? job.body : "", kf);
	} else {
		if (!(f = fopen(h->manifest, "r"))) {
			rc = -errno;
			log_err("cannot open the manifest %s: %s", h->manifest,
				  strerror(errno));
			goto out;
		}
		rc = list_manifest_text(h, f, NULL, kf);
		if (!rc && ferror(f))
			rc = -EIO;
	}
	if (!rc)
		rc = key_filter_flush(kf);
out:
	if (f)
		fclose(f);
	free(job.body);
	key_filter_destroy(kf);
	return rc;
}

static int http_list(struct backend *be, backend_list_fn fn, void *arg)
{
	struct http_backend *h = hb(be);

	return h->manifest ? list_manifest(h, fn, arg) : http_list_walk(h, fn, arg);
}

static int http_stat(struct backend *be, const char *key, struct backend_stat *st)
{
	struct http_backend *h = hb(be);
	char *url = http_object_url(h, key);
	int rc;

	if (!url)
		return -ENOMEM;
	rc = fetch_head(h->eng, url, key, st);
	free(url);
	if (rc)
		return rc;
	http_head_identity(st, st);
	if (!h->autoindex)
		st->mtime_ns = 0;
	return 0;
}

static int http_submit(struct backend *be, struct backend_req *req)
{
	struct http_backend *h = hb(be);
	char *url = http_object_url(h, req->key);

	if (!url)
		return -ENOMEM;
	return fetch_submit_req(h->eng, url, req,
				FETCH_CHECK_SIZE | FETCH_CHECK_MTIME | FETCH_CHECK_ETAG);
}

static void http_destroy(struct backend *be)
{
	struct http_backend *h = hb(be);

	fetch_engine_destroy(h->eng);
	free(h->manifest);
	free(h->be.url);
	free(h);
}

static const struct backend_ops http_ops = {
	.name = "http",
	.list = http_list,
	.stat = http_stat,
	.submit = http_submit,
	.destroy = http_destroy,
};

int backend_http_create(const char *url, const struct backend_options *o,
			struct backend **out, char *err, size_t errlen)
{
	struct fetch_config cfg = { 0 };
	struct http_backend *h;
	const char *host;
	size_t n = strlen(url);
	int rc = -ENOMEM;

	if (!strncmp(url, "http://", 7))
		host = url + 7;
	else if (!strncmp(url, "https://", 8))
		host = url + 8;
	else
		host = NULL;
	if (!host || !*host || *host == '/' || strpbrk(url, " \t\r\n?#")) {
		snprintf(err, errlen, "not an http(s)://HOST/PATH/ URL: %s", url);
		return -EINVAL;
	}
	if (!(h = calloc(1, sizeof(*h))))
		goto fail;
	h->be.ops = &http_ops;
	h->be.concurrency = o->concurrency ? o->concurrency : 64;
	h->list_par = o->list_threads ? o->list_threads : 8;
	h->autoindex = !o->manifest;
	if (!(h->be.url = malloc(n + 2)))
		goto fail;
	memcpy(h->be.url, url, n + 1);
	if (!strchr(host, '/'))
		strcat(h->be.url, "/");
	else if (url[n - 1] != '/')
		strcat(h->be.url, "/");
	if (o->manifest && !(h->manifest = strdup(o->manifest)))
		goto fail;
	if (o->insecure && !strncmp(url, "https://", 8))
		log_warn("--insecure: TLS certificates of %s are not verified", url);
	cfg.concurrency = h->be.concurrency;
	cfg.retries = o->retries;
	cfg.timeout_s = o->timeout_s;
	cfg.insecure = o->insecure;
	cfg.counters = &h->be.counters;
	if ((rc = fetch_engine_create(&cfg, &h->eng))) {
		snprintf(err, errlen, "cannot start the fetch engine: %s", strerror(-rc));
		goto fail;
	}
	*out = &h->be;
	return 0;
fail:
	if (rc == -ENOMEM)
		snprintf(err, errlen, "out of memory");
	if (h) {
		free(h->manifest);
		free(h->be.url);
		free(h);
	}
	return rc;
}
