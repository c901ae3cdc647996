/* SPDX-License-Identifier: MIT */
/* Listing an HTTP source from its directory pages: a breadth-first walk
 * from the base URL with up to list_threads requests in flight through the
 * fetch engine.  Each page is nginx's JSON autoindex or an HTML listing
 * (nginx, Apache, python's http.server; see http_index.c), told apart by
 * its first byte.  A file whose page gives no exact size (python prints
 * none, Apache and nginx's autoindex_exact_size off print "12K") gets a
 * HEAD, as stat() does, for its size and Last-Modified; the HEADs share
 * the walk's queue and its bound on requests in flight. */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "http_int.h"
#include "backends/base/log.h"

#define LIST_QUEUE_MAX (64u << 20)  /* bytes of names waiting */
#define LIST_DIRS_MAX 1000000u      /* directories in one walk (loops) */

/* One request of the walk, in flight or done: a directory page, or a HEAD
 * for a file's size. */
struct list_job {
	struct fetch_job job;
	struct walk *w;
	struct list_job *next;
	char *url;
	int head;
	char path[];     /* a directory: "" or ending in '/'; a file: its key */
};

struct walk {
	struct http_backend *h;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct list_job *done;         /* completed, guarded by lock */
	struct list_job *todo, *todo_tail;
	size_t todo_bytes;
	unsigned long dirs, heads;
	backend_list_fn fn;
	void *arg;
	struct list_job *cur;          /* being parsed */
	int html_noted;
};

static void job_done(struct fetch_job *job)
{
	struct list_job *d = (struct list_job *)job;
	struct walk *w = d->w;

	pthread_mutex_lock(&w->lock);
	d->next = w->done;
	w->done = d;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

/* Queue a page (`path` relative, "" or ending in '/') or a HEAD of a file. */
static int queue_job(struct walk *w, const char *path, int head)
{
	size_t n = strlen(path);
	struct list_job *d;

	if (w->todo_bytes + n > LIST_QUEUE_MAX || (!head && ++w->dirs > LIST_DIRS_MAX)) {
		log_err("%s: too many directories to walk", w->h->be.url);
		return -E2BIG;
	}
	if (!(d = calloc(1, sizeof(*d) + n + 1)))
		return -ENOMEM;
	memcpy(d->path, path, n + 1);
	if (!(d->url = http_object_url(w->h, path))) {
		free(d);
		return -ENOMEM;
	}
	d->w = w;
	d->head = head;
	d->job.url = d->url;
	d->job.name = d->path[0] ? d->path : "/";
	d->job.mode = head ? FETCH_HEAD : FETCH_BODY;
	d->job.done = job_done;
	if (w->todo_tail)
		w->todo_tail->next = d;
	else
		w->todo = d;
	w->todo_tail = d;
	w->todo_bytes += n;
	return 0;
}

static void free_job(struct list_job *d)
{
	free(d->job.body);
	free(d->url);
	free(d);
}

static void skipped(struct walk *w, const char *what, const char *why)
{
	atomic_fetch_add(&w->h->be.counters.skipped_keys, 1);
	log_warn("%s: skipping %s of %s: %s", w->h->be.url, what, w->cur->job.name, why);
}

/* One entry of the page being parsed: walk a directory, pass a file on,
 * or ask for its size first.  size_exact 0: the page gave no exact size. */
static int on_entry(struct walk *w, const char *name, int is_dir, int is_file,
		    uint64_t size, int size_exact, const char *mtime)
{
	struct backend_stat st = { .size = size };
	char path[PATH_MAX + 2];
	const char *why;
	time_t t;
	int n;

	n = snprintf(path, sizeof(path), "%s%s", w->cur->path, name ? name : "");
	if (!name || !name[0] || strchr(name, '/') || n >= PATH_MAX) {
		skipped(w, "an entry", "its name cannot be represented");
		return 0;
	}
	if (is_dir) {
		if (key_classify(path, &why) != KEY_OK) {
			skipped(w, "a directory", why);
			return 0;
		}
		strcat(path, "/");
		return queue_job(w, path, 0);
	}
	if (!is_file || key_classify(path, &why) != KEY_OK) {
		skipped(w, "an entry", !is_file ? "not a regular file" : why);
		return 0;
	}
	if (!size_exact) {
		w->heads++;
		return queue_job(w, path, 1);
	}
	if (mtime && !fetch_parse_http_date(mtime, &t))
		st.mtime_ns = (int64_t)t * 1000000000;
	return w->fn(w->arg, path, &st);
}

static int on_json_entry(void *arg, const char *name, const char *type, uint64_t size,
			 const char *mtime)
{
	return on_entry(arg, name, !strcmp(type, "directory"), !strcmp(type, "file"), size, 1,
			mtime);
}

static int on_html_entry(void *arg, const struct http_index_entry *e)
{
	/* An HTML page's dates are in the server's time zone and to the
	 * minute: not an identity.  An exact size is; else the HEAD gives
	 * both size and Last-Modified. */
	return on_entry(arg, e->name, e->is_dir, !e->is_dir, e->size, e->size_exact, NULL);
}

/* A completed request: parse its page or pass its file on. */
static int settle(struct walk *w, struct list_job *d)
{
	struct http_backend *h = w->h;
	const char *body = d->job.body ? d->job.body : "", *p = body;
	struct backend_stat st;
	int rc = (int)d->job.result;

	w->cur = d;
	if (rc == -ENOENT && d->path[0]) {
		log_warn("%s: %s %s vanished while listing", h->be.url,
			 d->head ? "file" : "directory", d->path);
		if (d->head)
			atomic_fetch_add(&h->be.counters.skipped_keys, 1);
		return 0;
	}
	if (rc < 0) {
		log_err("%s: cannot %s %s: %s%s", h->be.url, d->head ? "get the size of" : "list",
			d->job.name, strerror(-rc), !d->head && (rc == -EACCES || rc == -ENOENT) ?
			" (is a directory listing on: nginx autoindex, Apache Indexes?)" : "");
		return rc;
	}
	if (d->head) {
		http_head_identity(&d->job.current, &st);
		return w->fn(w->arg, d->path, &st);
	}
	while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
		p++;
	if (*p == '[') {
		rc = http_parse_autoindex(body, on_json_entry, w);
	} else {
		rc = http_parse_html_index(body, on_html_entry, w);
		if (!w->html_noted++ && rc != -EIO)
			log_info("%s: reading HTML directory listings", h->be.url);
	}
	if (rc == -EIO)
		log_err("%s: %s is not a directory listing epochfs reads (nginx autoindex, JSON or"
			" HTML; Apache mod_autoindex; python3 -m http.server)", h->be.url, d->job.name);
	return rc;
}

static struct list_job *wait_done(struct walk *w)
{
	struct list_job *d;

	pthread_mutex_lock(&w->lock);
	while (!w->done)
		pthread_cond_wait(&w->cond, &w->lock);
	d = w->done;
	w->done = d->next;
	pthread_mutex_unlock(&w->lock);
	return d;
}

int http_list_walk(struct http_backend *h, backend_list_fn fn, void *arg)
{
	struct walk w = { .h = h, .fn = fn, .arg = arg };
	unsigned inflight = 0;
	int rc;

	pthread_mutex_init(&w.lock, NULL);
	pthread_cond_init(&w.cond, NULL);
	rc = queue_job(&w, "", 0);
	while (!rc && (w.todo || inflight)) {
		struct list_job *d;

		while (!rc && w.todo && inflight < h->list_par) {
			d = w.todo;
			w.todo = d->next;
			if (!w.todo)
				w.todo_tail = NULL;
			w.todo_bytes -= strlen(d->path);
			if ((rc = fetch_submit(h->eng, &d->job)))
				free_job(d);
			else
				inflight++;
		}
		if (rc || !inflight)
			break;
		d = wait_done(&w);
		inflight--;
		rc = settle(&w, d);
		free_job(d);
	}
	while (inflight) {   /* on error, let the jobs still out finish */
		free_job(wait_done(&w));
		inflight--;
	}
	while (w.todo) {
		struct list_job *d = w.todo;

		w.todo = d->next;
		free_job(d);
	}
	if (!rc && w.heads)
		log_info("%s: %lu sizes were asked for with HEAD (the listing gave none exact)",
			 h->be.url, w.heads);
	pthread_cond_destroy(&w.cond);
	pthread_mutex_destroy(&w.lock);
	return rc;
}
