/* SPDX-License-Identifier: MIT */
/* The HTTP backend: objects under a base URL read with ranged GETs through
 * the fetch engine.  The namespace comes from a manifest ("PATH SIZE" lines,
 * a local file or a URL) or else from nginx's JSON autoindex, walked
 * breadth-first with several directories in flight.  Identity is size plus
 * Last-Modified (the autoindex has no ETags). */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fetch.h"
#include "backends/base/log.h"

#define LIST_QUEUE_MAX (64u << 20)  /* bytes of directory names waiting */
#define LIST_DIRS_MAX 1000000u      /* directories in one walk (loops) */
#define MANIFEST_LINE_MAX 16384

struct http_backend {
	struct backend be;
	struct fetch_engine *eng;
	char *manifest;
	unsigned list_par;
	int autoindex;     /* identity carries mtime (autoindex listings) */
};

static struct http_backend *hb(struct backend *be)
{
	return (struct http_backend *)be;
}

/* base URL + percent-encoded key; NULL when out of memory. */
static char *object_url(struct http_backend *h, const char *key)
{
	size_t bl = strlen(h->be.url), n = bl + 3 * strlen(key) + 1;
	char *u = malloc(n);

	if (!u)
		return NULL;
	memcpy(u, h->be.url, bl);
	if (key_urlencode(key, 1, u + bl, n - bl)) {
		free(u);
		return NULL;
	}
	return u;
}

/* JSON string at *pp (after the opening quote) into out; *pp moves past the
 * closing quote.  0, 1 when it does not fit or holds \u0000 (still consumed),
 * -EIO when malformed. */
static int json_string(const char **pp, char *out, size_t outlen)
{
	const char *p = *pp;
	size_t o = 0;
	int lost = 0;

	for (;;) {
		unsigned c = (unsigned char)*p++;
		char enc[4];
		size_t n = 1;

		if (c == 0 || c < 0x20)
			return -EIO;
		if (c == '"')
			break;
		enc[0] = (char)c;
		if (c == '\\') {
			c = (unsigned char)*p++;
			switch (c) {
			case '"': case '\\': case '/': enc[0] = (char)c; break;
			case 'b': enc[0] = '\b'; break;
			case 'f': enc[0] = '\f'; break;
			case 'n': enc[0] = '\n'; break;
			case 'r': enc[0] = '\r'; break;
			case 't': enc[0] = '\t'; break;
			case 'u': {
				unsigned cp, lo;

				if (sscanf(p, "%4x", &cp) != 1 || strspn(p, "0123456789abcdefABCDEF") < 4)
					return -EIO;
				p += 4;
				if (cp >= 0xd800 && cp < 0xdc00 && p[0] == '\\' && p[1] == 'u' &&
				    strspn(p + 2, "0123456789abcdefABCDEF") >= 4 &&
				    sscanf(p + 2, "%4x", &lo) == 1 && lo >= 0xdc00 && lo < 0xe000) {
					cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
					p += 6;
				}
				if (cp == 0 || (cp >= 0xd800 && cp < 0xe000))
					lost = 1;
				if (cp < 0x80) {
					enc[0] = (char)cp;
				} else if (cp < 0x800) {
					enc[0] = (char)(0xc0 | cp >> 6);
					enc[1] = (char)(0x80 | (cp & 0x3f));
					n = 2;
				} else if (cp < 0x10000) {
					enc[0] = (char)(0xe0 | cp >> 12);
					enc[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
					enc[2] = (char)(0x80 | (cp & 0x3f));
					n = 3;
				} else {
					enc[0] = (char)(0xf0 | cp >> 18);
					enc[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
					enc[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
					enc[3] = (char)(0x80 | (cp & 0x3f));
					n = 4;
				}
				break;
			}
			default:
				return -EIO;
			}
		}
		if (o + n >= outlen)
			lost = 1;
		else
			memcpy(out + o, enc, n), o += n;
	}
	out[o] = 0;
	*pp = p;
	return lost;
}

static void copy_trunc(char *dst, size_t n, const char *src)
{
	size_t l = strnlen(src, n - 1);

	memcpy(dst, src, l);
	dst[l] = 0;
}

static const char *ws(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
		p++;
	return p;
}

int http_parse_autoindex(const char *json, autoindex_fn fn, void *arg)
{
	const char *p = ws(json);
	char name[NAME_MAX * 4 + 1], type[32], mtime[64], k[16], v[NAME_MAX * 4 + 1];

	if (*p++ != '[')
		return -EIO;
	p = ws(p);
	if (*p == ']')
		return 0;
	for (;;) {
		unsigned long long size = 0;
		int name_lost = 0, rc;

		name[0] = type[0] = mtime[0] = 0;
		if (*p++ != '{')
			return -EIO;
		p = ws(p);
		while (*p != '}') {
			if (*p++ != '"' || json_string(&p, k, sizeof(k)) < 0)
				return -EIO;
			p = ws(p);
			if (*p++ != ':')
				return -EIO;
			p = ws(p);
			if (*p == '"') {
				p++;
				if ((rc = json_string(&p, v, sizeof(v))) < 0)
					return -EIO;
				if (!strcmp(k, "name")) {
					name_lost = rc;
					memcpy(name, v, sizeof(name));
				} else if (!strcmp(k, "type")) {
					copy_trunc(type, sizeof(type), v);
				} else if (!strcmp(k, "mtime")) {
					copy_trunc(mtime, sizeof(mtime), v);
				}
			} else if ((*p >= '0' && *p <= '9') || *p == '-') {
				char *end;

				errno = 0;
				if (*p == '-')
					return -EIO;
				size = strtoull(p, &end, 10);
				if (errno || end == p)
					return -EIO;
				if (strcmp(k, "size"))
					size = 0;
				p = end;
				while ((*p >= '0' && *p <= '9') || *p == '.' || *p == 'e' ||
				       *p == 'E' || *p == '+' || *p == '-')
					p++;
			} else if (!strncmp(p, "true", 4) || !strncmp(p, "null", 4)) {
				p += 4;
			} else if (!strncmp(p, "false", 5)) {
				p += 5;
			} else {
				return -EIO;
			}
			p = ws(p);
			if (*p == ',')
				p = ws(p + 1);
			else if (*p != '}')
				return -EIO;
		}
		if ((rc = fn(arg, name_lost ? NULL : name, type, size, mtime)))
			return rc;
		p = ws(p + 1);
		if (*p == ']')
			return 0;
		if (*p++ != ',')
			return -EIO;
		p = ws(p);
	}
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

/* One directory of an autoindex walk, in flight or done. */
struct dir_job {
	struct fetch_job job;
	struct walk *w;
	struct dir_job *next;
	char *url;
	char path[];     /* relative, "" or ending in '/' */
};

struct walk {
	struct http_backend *h;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct dir_job *done;          /* completed, guarded by lock */
	struct dir_job *todo, *todo_tail;
	size_t todo_bytes;
	unsigned long dirs;
	backend_list_fn fn;
	void *arg;
	struct dir_job *cur;           /* being parsed */
	int rc;
};

static void dir_done(struct fetch_job *job)
{
	struct dir_job *d = (struct dir_job *)job;
	struct walk *w = d->w;

	pthread_mutex_lock(&w->lock);
	d->next = w->done;
	w->done = d;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

/* Queue the directory `path` (relative, ending in '/'). */
static int queue_dir(struct walk *w, const char *path)
{
	size_t n = strlen(path);
	struct dir_job *d;

	if (w->todo_bytes + n > LIST_QUEUE_MAX || ++w->dirs > LIST_DIRS_MAX) {
		log_err("%s: too many directories to walk", w->h->be.url);
		return -E2BIG;
	}
	if (!(d = calloc(1, sizeof(*d) + n + 1)))
		return -ENOMEM;
	memcpy(d->path, path, n + 1);
	if (!(d->url = object_url(w->h, path))) {
		free(d);
		return -ENOMEM;
	}
	d->w = w;
	d->job.url = d->url;
	d->job.name = d->path[0] ? d->path : "/";
	d->job.mode = FETCH_BODY;
	d->job.done = dir_done;
	if (w->todo_tail)
		w->todo_tail->next = d;
	else
		w->todo = d;
	w->todo_tail = d;
	w->todo_bytes += n;
	return 0;
}

static void free_dir(struct dir_job *d)
{
	free(d->job.body);
	free(d->url);
	free(d);
}

static int on_entry(void *arg, const char *name, const char *type, uint64_t size,
		    const char *mtime)
{
	struct walk *w = arg;
	struct backend_stat st = { .size = size };
	char path[PATH_MAX + 2];
	const char *why;
	time_t t;
	int n;

	n = snprintf(path, sizeof(path), "%s%s", w->cur->path, name ? name : "");
	if (!name || !name[0] || strchr(name, '/') || n >= PATH_MAX) {
		atomic_fetch_add(&w->h->be.counters.skipped_keys, 1);
		log_warn("%s: skipping an unrepresentable name in %s", w->h->be.url,
			  w->cur->job.name);
		return 0;
	}
	if (!strcmp(type, "directory")) {
		if (key_classify(path, &why) != KEY_OK) {
			atomic_fetch_add(&w->h->be.counters.skipped_keys, 1);
			log_warn("%s: skipping directory %s: %s", w->h->be.url,
				  w->cur->job.name, why);
			return 0;
		}
		strcat(path, "/");
		return queue_dir(w, path);
	}
	if (strcmp(type, "file") || key_classify(path, &why) != KEY_OK) {
		atomic_fetch_add(&w->h->be.counters.skipped_keys, 1);
		log_warn("%s: skipping an entry of %s: %s", w->h->be.url,
			  w->cur->job.name, strcmp(type, "file") ? "not a regular file" : why);
		return 0;
	}
	if (!fetch_parse_http_date(mtime, &t))
		st.mtime_ns = (int64_t)t * 1000000000;
	return w->fn(w->arg, path, &st);
}

static int list_autoindex(struct http_backend *h, backend_list_fn fn, void *arg)
{
	struct walk w = { .h = h, .fn = fn, .arg = arg };
	unsigned inflight = 0;
	int rc = 0;

	pthread_mutex_init(&w.lock, NULL);
	pthread_cond_init(&w.cond, NULL);
	rc = queue_dir(&w, "");
	while (!rc && (w.todo || inflight)) {
		struct dir_job *d;

		while (!rc && w.todo && inflight < h->list_par) {
			d = w.todo;
			w.todo = d->next;
			if (!w.todo)
				w.todo_tail = NULL;
			w.todo_bytes -= strlen(d->path);
			if ((rc = fetch_submit(h->eng, &d->job)))
				free_dir(d);
			else
				inflight++;
		}
		if (rc || !inflight)
			break;
		pthread_mutex_lock(&w.lock);
		while (!w.done)
			pthread_cond_wait(&w.cond, &w.lock);
		d = w.done;
		w.done = d->next;
		pthread_mutex_unlock(&w.lock);
		inflight--;
		w.cur = d;
		if (d->job.result == -ENOENT && d->path[0]) {
			log_warn("%s: directory %s vanished while listing", h->be.url,
				  d->path);
		} else if (d->job.result < 0) {
			rc = (int)d->job.result;
			log_err("%s: cannot list %s: %s%s", h->be.url, d->job.name,
				  strerror(-rc), rc == -EACCES || rc == -ENOENT ?
				  " (is autoindex on, with autoindex_format json?)" : "");
		} else if ((rc = http_parse_autoindex(d->job.body ? d->job.body : "", on_entry, &w))
			   == -EIO) {
			log_err("%s: %s is not a JSON autoindex (autoindex_format json)",
				  h->be.url, d->job.name);
		}
		free_dir(d);
	}
	while (inflight) {   /* on error, let the jobs still out finish */
		struct dir_job *d;

		pthread_mutex_lock(&w.lock);
		while (!w.done)
			pthread_cond_wait(&w.cond, &w.lock);
		d = w.done;
		w.done = d->next;
		pthread_mutex_unlock(&w.lock);
		inflight--;
		free_dir(d);
	}
	while (w.todo) {
		struct dir_job *d = w.todo;

		w.todo = d->next;
		free_dir(d);
	}
	pthread_cond_destroy(&w.cond);
	pthread_mutex_destroy(&w.lock);
	return rc;
}

static int http_list(struct backend *be, backend_list_fn fn, void *arg)
{
	struct http_backend *h = hb(be);

	return h->manifest ? list_manifest(h, fn, arg) : list_autoindex(h, fn, arg);
}

static int http_stat(struct backend *be, const char *key, struct backend_stat *st)
{
	struct http_backend *h = hb(be);
	char *url = object_url(h, key);
	int rc;

	if (!url)
		return -ENOMEM;
	rc = fetch_head(h->eng, url, key, st);
	free(url);
	if (rc)
		return rc;
	st->etag[0] = 0;     /* identity as the listing gives it */
	if (!h->autoindex)
		st->mtime_ns = 0;
	return 0;
}

static int http_submit(struct backend *be, struct backend_req *req)
{
	struct http_backend *h = hb(be);
	char *url = object_url(h, req->key);

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
