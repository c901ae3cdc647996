/* SPDX-License-Identifier: MIT */
/* The POSIX backend: a dataset directory (local, Lustre, GPFS, NFS).  Reads go
 * through one io_uring with up to `concurrency` requests in flight; each is a
 * small state machine (openat -> statx -> read... -> close) so that metadata
 * latency overlaps as well as data latency.  Listing is a parallel walk. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend.h"
#include "backends/base/log.h"
#include "backends/base/util.h"

enum { ST_OPEN = 1, ST_STATX, ST_READ };

#define WAKE_TAG ((uint64_t)1)

struct posix_be {
	struct backend base;
	int dirfd;
	int efd;
	uint64_t efd_buf;
	struct io_uring ring;
	pthread_t thread;
	pthread_mutex_t lock;
	struct posix_req *head, *tail; /* queued, not yet in the ring */
	unsigned inflight;
	int stop;
	unsigned list_threads;
};

/* A request's state machine, allocated at submit and hung on req->priv;
 * it is also what the ring's completions point at. */
struct posix_req {
	struct backend_req *req;
	struct posix_req *next;   /* the queue before the ring */
	int state, fd;
	size_t got;
	struct statx stx;
};

static struct posix_be *pbe(struct backend *be)
{
	return (struct posix_be *)be;
}

static void st_from_statx(const struct statx *stx, struct backend_stat *st)
{
	memset(st, 0, sizeof(*st));
	st->size = stx->stx_size;
	st->mtime_ns = (int64_t)stx->stx_mtime.tv_sec * 1000000000ll + stx->stx_mtime.tv_nsec;
}

static int identity_matches(const struct backend_stat *expect, const struct backend_stat *cur)
{
	if (!expect->size && !expect->mtime_ns)
		return 1;
	return expect->size == cur->size && expect->mtime_ns == cur->mtime_ns;
}

/* Finish a request: close its file, count it, call back.  Ring thread only. */
static void req_finish(struct posix_be *p, struct posix_req *pr, ssize_t res)
{
	struct backend_req *req = pr->req;

	if (pr->fd >= 0)
		close(pr->fd);
	free(pr);
	req->priv = NULL;
	req->result = res;
	if (res < 0 && res != -ESTALE && res != -ENOENT)
		atomic_fetch_add(&p->base.counters.errors, 1);
	else if (res > 0)
		atomic_fetch_add(&p->base.counters.bytes, (uint64_t)res);
	p->inflight--;
	req->done(req);
}

static void prep_next(struct posix_be *p, struct posix_req *pr)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&p->ring);
	struct backend_req *req = pr->req;

	/* The ring has room for every request in flight (see posix_create). */
	switch (pr->state) {
	case ST_OPEN:
		io_uring_prep_openat(sqe, p->dirfd, req->key, O_RDONLY | O_CLOEXEC, 0);
		break;
	case ST_STATX:
		io_uring_prep_statx(sqe, pr->fd, "", AT_EMPTY_PATH,
				    STATX_SIZE | STATX_MTIME, &pr->stx);
		break;
	case ST_READ:
		io_uring_prep_read(sqe, pr->fd, (char *)req->buf + pr->got,
				   (unsigned)MIN(req->len - pr->got, 1u << 30),
				   req->off + pr->got);
		break;
	}
	io_uring_sqe_set_data(sqe, pr);
}

/* Advance a request on its completion. Ring thread only. */
static void on_cqe(struct posix_be *p, struct posix_req *pr, int res)
{
	struct backend_req *req = pr->req;

	switch (pr->state) {
	case ST_OPEN:
		if (res < 0)
			return req_finish(p, pr, res);
		pr->fd = res;
		pr->state = ST_STATX;
		break;
	case ST_STATX:
		if (res < 0)
			return req_finish(p, pr, res);
		st_from_statx(&pr->stx, &req->current);
		if (!identity_matches(&req->expect, &req->current))
			return req_finish(p, pr, -ESTALE);
		if (req->len == 0 || req->off >= req->current.size)
			return req_finish(p, pr, 0);
		pr->state = ST_READ;
		break;
	case ST_READ:
		if (res == -EAGAIN || res == -EINTR)
			break;
		if (res < 0)
			return req_finish(p, pr, res);
		pr->got += (size_t)res;
		if (res == 0 || pr->got >= req->len ||
		    req->off + pr->got >= req->current.size)
			return req_finish(p, pr, (ssize_t)pr->got);
		break;
	}
	prep_next(p, pr);
}

static void arm_wakeup(struct posix_be *p)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&p->ring);

	io_uring_prep_read(sqe, p->efd, &p->efd_buf, sizeof(p->efd_buf), 0);
	io_uring_sqe_set_data64(sqe, WAKE_TAG);
}

static void *ring_thread(void *arg)
{
	struct posix_be *p = arg;
	struct io_uring_cqe *cqe;
	struct posix_req *pr;
	unsigned head, n;

	arm_wakeup(p);
	for (;;) {
		pthread_mutex_lock(&p->lock);
		while (p->head && p->inflight < p->base.concurrency) {
			pr = p->head;
			p->head = pr->next;
			if (!p->head)
				p->tail = NULL;
			p->inflight++;
			pthread_mutex_unlock(&p->lock);
			atomic_fetch_add(&p->base.counters.requests, 1);
			prep_next(p, pr);
			pthread_mutex_lock(&p->lock);
		}
		if (p->stop && !p->inflight && !p->head) {
			pthread_mutex_unlock(&p->lock);
			break;
		}
		pthread_mutex_unlock(&p->lock);
		io_uring_submit_and_wait(&p->ring, 1);
		n = 0;
		io_uring_for_each_cqe(&p->ring, head, cqe) {
			uint64_t tag = io_uring_cqe_get_data64(cqe);
			int res = cqe->res;

			n++;
			if (tag == WAKE_TAG) {
				arm_wakeup(p);
				continue;
			}
			on_cqe(p, (struct posix_req *)(uintptr_t)tag, res);
		}
		io_uring_cq_advance(&p->ring, n);
	}
	return NULL;
}

static void wake(struct posix_be *p)
{
	uint64_t one = 1;
	ssize_t rc = write(p->efd, &one, sizeof(one));

	(void)rc;
}

static int posix_submit(struct backend *be, struct backend_req *req)
{
	struct posix_be *p = pbe(be);
	struct posix_req *pr = ec_calloc(1, sizeof(*pr));

	if (!pr)
		return -ENOMEM;
	pr->req = req;
	pr->state = ST_OPEN;
	pr->fd = -1;
	req->priv = pr;
	pthread_mutex_lock(&p->lock);
	if (p->stop) {
		pthread_mutex_unlock(&p->lock);
		req->priv = NULL;
		free(pr);
		return -ESHUTDOWN;
	}
	if (p->tail)
		p->tail->next = pr;
	else
		p->head = pr;
	p->tail = pr;
	pthread_mutex_unlock(&p->lock);
	wake(p);
	return 0;
}

static int posix_stat(struct backend *be, const char *key, struct backend_stat *st)
{
	struct stat sb;

	if (fstatat(pbe(be)->dirfd, key, &sb, 0) < 0)
		return -errno;
	if (!S_ISREG(sb.st_mode))
		return -EISDIR;
	memset(st, 0, sizeof(*st));
	st->size = (uint64_t)sb.st_size;
	st->mtime_ns = (int64_t)sb.st_mtim.tv_sec * 1000000000ll + sb.st_mtim.tv_nsec;
	return 0;
}

/* ---- parallel directory walk ---- */

struct walk_dir {
	struct walk_dir *next;
	char path[]; /* "" for the root */
};

struct walk {
	struct posix_be *p;
	backend_list_fn fn;
	void *arg;
	pthread_mutex_t lock;     /* queue, counters, and serializes fn */
	pthread_cond_t cond;
	struct walk_dir *queue;
	unsigned active;
	int rc;
};

static int walk_push(struct walk *w, const char *path)
{
	size_t n = strlen(path) + 1;
	struct walk_dir *d = ec_malloc(sizeof(*d) + n);

	if (!d)
		return -ENOMEM;
	memcpy(d->path, path, n);
	d->next = w->queue;
	w->queue = d;
	pthread_cond_signal(&w->cond);
	return 0;
}

/* Read one directory; called without the lock held. */
static int walk_one(struct walk *w, const char *dir)
{
	char key[PATH_MAX];
	struct backend_stat st;
	struct dirent *de;
	struct stat sb;
	int fd, rc = 0;
	DIR *d;

	fd = openat(w->p->dirfd, *dir ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		rc = -errno;
		close(fd);
		return rc;
	}
	while ((de = readdir(d)) != NULL && !rc) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if ((size_t)snprintf(key, sizeof(key), "%s%s%s", dir, *dir ? "/" : "",
				     de->d_name) >= sizeof(key)) {
			log_warn("listing: path too long, skipped: %s/%s", dir, de->d_name);
			atomic_fetch_add(&w->p->base.counters.skipped_keys, 1);
			continue;
		}
		if (fstatat(dirfd(d), de->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0) {
			log_warn("listing: cannot stat %s: %s", key, strerror(errno));
			atomic_fetch_add(&w->p->base.counters.skipped_keys, 1);
			continue;
		}
		if (S_ISLNK(sb.st_mode)) {
			/* Links to files are shown as the file; links to
			 * directories could loop, so they are skipped. */
			if (fstatat(dirfd(d), de->d_name, &sb, 0) < 0 || !S_ISREG(sb.st_mode)) {
				log_warn("listing: symlink not to a regular file, skipped: %s", key);
				atomic_fetch_add(&w->p->base.counters.skipped_keys, 1);
				continue;
			}
		}
		if (S_ISDIR(sb.st_mode)) {
			pthread_mutex_lock(&w->lock);
			rc = walk_push(w, key);
			pthread_mutex_unlock(&w->lock);
			continue;
		}
		if (!S_ISREG(sb.st_mode))
			continue;
		memset(&st, 0, sizeof(st));
		st.size = (uint64_t)sb.st_size;
		st.mtime_ns = (int64_t)sb.st_mtim.tv_sec * 1000000000ll + sb.st_mtim.tv_nsec;
		/* A callback's non-zero return stops the whole walk at once: no
		 * other thread may call it again (w->rc is checked under the
		 * lock that serializes the calls). */
		pthread_mutex_lock(&w->lock);
		if (w->rc)
			rc = w->rc;
		else if ((rc = w->fn(w->arg, key, &st)))
			w->rc = rc;
		pthread_mutex_unlock(&w->lock);
	}
	closedir(d);
	return rc;
}

static void *walk_thread(void *arg)
{
	struct walk *w = arg;
	struct walk_dir *d;
	int rc;

	pthread_mutex_lock(&w->lock);
	for (;;) {
		while (!w->queue && w->active && !w->rc)
			pthread_cond_wait(&w->cond, &w->lock);
		if (!w->queue || w->rc)
			break;
		d = w->queue;
		w->queue = d->next;
		w->active++;
		pthread_mutex_unlock(&w->lock);
		rc = walk_one(w, d->path);
		if (rc < 0 && rc != -ENOMEM && w->fn && *d->path) {
			/* A subdirectory that vanished or is unreadable: warn. */
			log_warn("listing: cannot read directory %s: %s", d->path, strerror(-rc));
			atomic_fetch_add(&w->p->base.counters.skipped_keys, 1);
			if (rc == -ENOENT || rc == -EACCES)
				rc = 0;
		}
		free(d);
		pthread_mutex_lock(&w->lock);
		w->active--;
		if (rc && !w->rc)
			w->rc = rc;
		pthread_cond_broadcast(&w->cond);
	}
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

static int posix_list(struct backend *be, backend_list_fn fn, void *arg)
{
	struct posix_be *p = pbe(be);
	struct walk w = { .p = p, .fn = fn, .arg = arg };
	pthread_t th[64];
	unsigned i, n = MIN(MAX(p->list_threads, 1u), ARRAY_SIZE(th));
	struct walk_dir *d;
	int rc;

	pthread_mutex_init(&w.lock, NULL);
	pthread_cond_init(&w.cond, NULL);
	rc = walk_push(&w, "");
	w.rc = rc;
	/* The first thread counts as active until it has taken the root.
	 * w.rc belongs to the walkers once the first one runs: test the local. */
	for (i = 0; i < n && !rc; i++)
		if (pthread_create(&th[i], NULL, walk_thread, &w))
			break;
	n = i;
	for (i = 0; i < n; i++)
		pthread_join(th[i], NULL);
	while ((d = w.queue)) {
		w.queue = d->next;
		free(d);
	}
	pthread_mutex_destroy(&w.lock);
	pthread_cond_destroy(&w.cond);
	return n || w.rc ? w.rc : -EAGAIN; /* no walker could start */
}

static void posix_destroy(struct backend *be)
{
	struct posix_be *p = pbe(be);

	pthread_mutex_lock(&p->lock);
	p->stop = 1;
	pthread_mutex_unlock(&p->lock);
	wake(p);
	pthread_join(p->thread, NULL);
	io_uring_queue_exit(&p->ring);
	close(p->efd);
	close(p->dirfd);
	pthread_mutex_destroy(&p->lock);
	free(p->base.url);
	free(p);
}

static const struct backend_ops posix_ops = {
	.name = "posix",
	.list = posix_list,
	.stat = posix_stat,
	.submit = posix_submit,
	.destroy = posix_destroy,
};

int backend_posix_create(const char *dir, const struct backend_options *o,
			 struct backend **out, char *err, size_t errlen)
{
	struct posix_be *p;
	char real[PATH_MAX];
	unsigned entries;
	int rc;

	if (!realpath(dir, real)) {
		rc = -errno;
		snprintf(err, errlen, "source %s: %s", dir, strerror(errno));
		return rc;
	}
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->base.ops = &posix_ops;
	p->base.concurrency = o->concurrency ? o->concurrency : 64;
	p->list_threads = o->list_threads;
	pthread_mutex_init(&p->lock, NULL);
	p->dirfd = open(real, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (p->dirfd < 0) {
		rc = -errno;
		snprintf(err, errlen, "source %s: %s", real, strerror(errno));
		goto out_free;
	}
	if (asprintf(&p->base.url, "file://%s", real) < 0) {
		rc = -ENOMEM;
		goto out_dir;
	}
	p->efd = eventfd(0, EFD_CLOEXEC);
	if (p->efd < 0) {
		rc = -errno;
		goto out_url;
	}
	/* One SQE per request in flight plus the wakeup read. */
	entries = 1;
	while (entries < p->base.concurrency + 1)
		entries <<= 1;
	rc = io_uring_queue_init(entries, &p->ring, 0);
	if (rc < 0) {
		snprintf(err, errlen, "io_uring setup failed: %s", strerror(-rc));
		goto out_efd;
	}
	rc = -pthread_create(&p->thread, NULL, ring_thread, p);
	if (rc < 0)
		goto out_ring;
	*out = &p->base;
	return 0;
out_ring:
	io_uring_queue_exit(&p->ring);
out_efd:
	close(p->efd);
out_url:
	free(p->base.url);
out_dir:
	close(p->dirfd);
out_free:
	free(p);
	return rc;
}
