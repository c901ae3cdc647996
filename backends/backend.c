/* SPDX-License-Identifier: MIT */
/* What all backends share: option defaults, dispatch by URL, the synchronous
 * read wrapper over submit().  (The check that keeps keys inside the mount is
 * in keys.c, beside the other key rules.) */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "backend.h"

void backend_options_init(struct backend_options *o)
{
	memset(o, 0, sizeof(*o));
	o->concurrency = 64;
	o->list_threads = 8;
	o->timeout_s = 10;
	o->retries = 6;
}

int backend_create(const char *source, const struct backend_options *o,
		   struct backend **out, char *err, size_t errlen)
{
	*out = NULL;
	if (!strncmp(source, "file://", 7))
		return backend_posix_create(source + 7, o, out, err, errlen);
	if (!strncmp(source, "http://", 7) || !strncmp(source, "https://", 8))
		return backend_http_create(source, o, out, err, errlen);
	if (!strncmp(source, "s3://", 5))
		return backend_s3_create(source, o, out, err, errlen);
	if (strstr(source, "://")) {
		snprintf(err, errlen, "unsupported source URL '%s' (use a path, file://, http(s):// or s3://)", source);
		return -EINVAL;
	}
	return backend_posix_create(source, o, out, err, errlen);
}

struct sync_wait {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int done;
};

static void sync_done(struct backend_req *req)
{
	struct sync_wait *w = req->arg;

	pthread_mutex_lock(&w->lock);
	w->done = 1;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

ssize_t backend_read(struct backend *be, const char *key, uint64_t off,
		     void *buf, size_t len, const struct backend_stat *expect,
		     struct backend_stat *current)
{
	struct sync_wait w = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0 };
	struct backend_req req;
	int rc;

	memset(&req, 0, sizeof(req));
	req.key = key;
	req.off = off;
	req.len = len;
	req.buf = buf;
	if (expect)
		req.expect = *expect;
	req.done = sync_done;
	req.arg = &w;
	rc = backend_submit(be, &req);
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&w.lock);
	while (!w.done)
		pthread_cond_wait(&w.cond, &w.lock);
	pthread_mutex_unlock(&w.lock);
	if (current)
		*current = req.current;
	return req.result;
}
