/* SPDX-License-Identifier: MIT */
/* The backend interface: one small table of operations that every data source
 * (a POSIX directory, an HTTP server, an S3 bucket) implements.  Backends know
 * nothing of caching: they list a namespace, stat one object and read byte
 * ranges asynchronously with bounded concurrency. */
#ifndef EPOCHFS_BACKEND_H
#define EPOCHFS_BACKEND_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define BACKEND_ETAG_MAX 80

/* Identity of one object: what the cache checks before trusting its copy. */
struct backend_stat {
	uint64_t size;
	int64_t mtime_ns;             /* 0 when the backend has none */
	char etag[BACKEND_ETAG_MAX];  /* "" when the backend has none */
};

/* Counters a backend keeps; read without locks by the stats file. */
struct backend_counters {
	atomic_uint_fast64_t requests;   /* requests sent (each retry counts) */
	atomic_uint_fast64_t bytes;      /* payload bytes received */
	atomic_uint_fast64_t errors;     /* requests that failed for good */
	atomic_uint_fast64_t retries;    /* attempts beyond the first */
	atomic_uint_fast64_t skipped_keys; /* listing entries not representable */
};

struct backend_req;
typedef void (*backend_done_fn)(struct backend_req *req);

/* One asynchronous ranged read.  The caller owns the request and the buffer
 * and must keep both alive until done() has been called; done() runs on a
 * backend thread, exactly once, and must not block for long.
 * On completion: result is the number of bytes read (len, or fewer only at
 * the end of the object) or a negative errno: -ENOENT (gone), -EACCES,
 * -ESTALE (the object no longer matches expect: it changed), -EIO (retries
 * exhausted).  When result is -ESTALE, current holds the new identity. */
struct backend_req {
	const char *key;        /* object path relative to the source root */
	uint64_t off;
	size_t len;
	void *buf;
	struct backend_stat expect; /* identity the caller believes in; size 0 and
				     * empty etag and mtime 0 = do not check */
	backend_done_fn done;
	void *arg;              /* caller's cookie */
	/* results */
	ssize_t result;
	struct backend_stat current;
	/* The backend's own state of this request (queue links, a state
	 * machine...), whatever its type; callers never touch it. */
	void *priv;
};

/* Called once per listed regular file with its key (relative path, '/'
 * separated, no leading slash, already validated by the backend as a safe
 * path) and identity.  A non-zero return stops the listing and is returned
 * by list(). Calls are serialized (never concurrent). */
typedef int (*backend_list_fn)(void *arg, const char *key, const struct backend_stat *st);

struct backend;

struct backend_ops {
	const char *name;
	/* Stream the whole namespace to fn.  0 or a negative errno. */
	int (*list)(struct backend *be, backend_list_fn fn, void *arg);
	/* Identity of one object. 0, -ENOENT, -EACCES, -EIO. */
	int (*stat)(struct backend *be, const char *key, struct backend_stat *st);
	/* Queue an asynchronous read; done() is called later, even on error.
	 * Returns 0, or a negative errno when the request could not be queued
	 * (then done() is not called). */
	int (*submit)(struct backend *be, struct backend_req *req);
	void (*destroy)(struct backend *be);
};

struct backend {
	const struct backend_ops *ops;
	struct backend_counters counters;
	char *url;     /* canonical source URL, identifies the dataset */
	unsigned concurrency; /* max requests in flight */
};

struct backend_options {
	unsigned concurrency;      /* default 64 */
	unsigned list_threads;     /* parallel listing; default 8 */
	/* object stores (issue: object-store backends) */
	const char *manifest;      /* http: FILE or URL of "path size" lines */
	const char *s3_endpoint;
	int s3_path_style;
	int no_sign;
	int insecure;
	unsigned timeout_s;        /* bound on connecting, on the first byte and
				    * on a stalled transfer, each; default 10 */
	unsigned retries;          /* retries per request (0: none); default 6 */
};

void backend_options_init(struct backend_options *o);

/* Create the backend for a SOURCE (a path, file://, http(s)://, s3://).
 * 0 or -EINVAL (unsupported URL), -ENOENT, -ENOTDIR, -EACCES, -ENOMEM;
 * err receives a one-line reason. */
int backend_create(const char *source, const struct backend_options *o,
		   struct backend **out, char *err, size_t errlen);

/* Synchronous ranged read through submit(); returns bytes read or -errno. */
ssize_t backend_read(struct backend *be, const char *key, uint64_t off,
		     void *buf, size_t len, const struct backend_stat *expect,
		     struct backend_stat *current);

/* The ways in: callers use these, not be->ops. */
static inline int backend_list(struct backend *be, backend_list_fn fn, void *arg)
{
	return be->ops->list(be, fn, arg);
}

static inline int backend_submit(struct backend *be, struct backend_req *req)
{
	return be->ops->submit(be, req);
}

static inline void backend_destroy(struct backend *be)
{
	if (be)
		be->ops->destroy(be);
}

/* Constructors of the individual backends (backend_create dispatches). */
int backend_posix_create(const char *dir, const struct backend_options *o,
			 struct backend **out, char *err, size_t errlen);
int backend_http_create(const char *url, const struct backend_options *o,
			struct backend **out, char *err, size_t errlen);
int backend_s3_create(const char *url, const struct backend_options *o,
		      struct backend **out, char *err, size_t errlen);

#endif
