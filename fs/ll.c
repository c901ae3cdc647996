/* SPDX-License-Identifier: MIT */
/* The FUSE low-level operations: each handler logs, calls a helper or the
 * cache, and replies exactly once.  Errors inside are negative errno values,
 * negated once at the reply.  Writes anywhere but the control files: EROFS. */
#define _GNU_SOURCE
#define FUSE_USE_VERSION 312
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <fuse_lowlevel.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "ctl.h"
#include "ll.h"
#include "backends/base/log.h"
#include "backends/base/util.h"

#define XATTR_CACHED "user.epochfs.cached"

static struct ll_ctx *ctx(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* Files changed at the source whose new attributes the kernel has not been
 * given yet.  With opens, a handle keeps the identity it was opened with and
 * a read of a changed file fails with EIO; without, each READ would take the
 * new identity while the kernel still reads to the old size: new bytes, then
 * zeros.  So until a GETATTR or LOOKUP has answered with the new attributes
 * (the kernel asks after the invalidation), such READs fail with EIO. */
#define CHANGED_MAX 256
static struct {
	pthread_mutex_t lock;
	atomic_int n;
	uint64_t ino[CHANGED_MAX];
} changed = { .lock = PTHREAD_MUTEX_INITIALIZER };

void ll_changed(uint64_t ino)
{
	pthread_mutex_lock(&changed.lock);
	if (atomic_load(&changed.n) < CHANGED_MAX)
		changed.ino[atomic_fetch_add(&changed.n, 1)] = ino;
	else /* full (256 files changed at once): one mark is overwritten */
		changed.ino[ino % CHANGED_MAX] = ino;
	pthread_mutex_unlock(&changed.lock);
}

/* Is ino marked?  clear: and remove the mark (its attributes were sent). */
static int changed_test(uint64_t ino, int clear)
{
	int found = 0;

	if (!atomic_load_explicit(&changed.n, memory_order_relaxed))
		return 0;
	pthread_mutex_lock(&changed.lock);
	for (int i = 0; i < atomic_load(&changed.n); i++)
		if (changed.ino[i] == ino) {
			found = 1;
			if (clear) {
				changed.ino[i] = changed.ino[atomic_load(&changed.n) - 1];
				atomic_fetch_sub(&changed.n, 1);
				i--;
			}
		}
	pthread_mutex_unlock(&changed.lock);
	return found;
}

static void fill_stat(const struct ll_ctx *x, const struct ns_attr *a, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = a->ino;
	st->st_uid = x->uid;
	st->st_gid = x->gid;
	st->st_mode = a->is_dir ? S_IFDIR | 0555 : S_IFREG | 0444;
	st->st_nlink = a->is_dir ? 2 : 1;
	st->st_size = (off_t)a->size;
	st->st_blksize = 1 << 20;
	st->st_blocks = (blkcnt_t)((a->size + 511) / 512);
	st->st_mtim.tv_sec = a->mtime_ns ? a->mtime_ns / 1000000000ll : x->start_time;
	st->st_mtim.tv_nsec = a->mtime_ns % 1000000000ll;
	st->st_ctim = st->st_mtim;
	st->st_atim = st->st_mtim;
}

/* pid: the requester, for the no-open mode's rendering; -1: do not render.
 * lookup: a LOOKUP (see ctl_nopen_attr). */
static void ctl_stat_ex(const struct ll_ctx *x, uint64_t ino, pid_t pid, int lookup,
			struct stat *st)
{
	const struct ctl_file *f = ctl_by_ino(ino);

	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_uid = x->uid;
	st->st_gid = x->gid;
	st->st_mtim.tv_sec = x->start_time;
	st->st_ctim = st->st_atim = st->st_mtim;
	if (!f) {
		st->st_mode = S_IFDIR | 0555;
		st->st_nlink = 2;
	} else {
		/* Writable control files: only the mounting user. */
		st->st_mode = S_IFREG | f->mode;
		st->st_nlink = 1;
		if (x->no_open && pid != -1) {
			/* Reads go through the page cache: the size must be the
			 * content's, and a new mtime makes the kernel drop pages
			 * of an older rendering (auto_inval_data). */
			uint64_t size, gen;

			if (!ctl_nopen_attr(x->cache, ino, pid, lookup, &size, &gen)) {
				st->st_size = (off_t)size;
				st->st_mtim.tv_nsec = (long)(gen % 1000000000ull);
				st->st_ctim = st->st_atim = st->st_mtim;
			}
		}
	}
}

static void ctl_stat(const struct ll_ctx *x, uint64_t ino, pid_t pid, struct stat *st)
{
	ctl_stat_ex(x, ino, pid, 0, st);
}

static int do_getattr(struct ll_ctx *x, fuse_ino_t ino, pid_t pid, struct stat *st)
{
	struct ns_attr a;
	int rc;

	if (ctl_is_ino(ino)) {
		if (ino != CTL_DIR_INO && !ctl_by_ino(ino))
			return -ENOENT;
		ctl_stat(x, ino, pid, st);
		return 0;
	}
	rc = cache_getattr(x->cache, ino, &a);
	if (rc)
		return rc;
	fill_stat(x, &a, st);
	if (x->no_open)
		changed_test(ino, 1); /* the kernel now has the new attributes */
	return 0;
}

static int do_lookup(struct ll_ctx *x, fuse_ino_t parent, const char *name, pid_t pid,
		     struct fuse_entry_param *e)
{
	struct ns_attr a;
	uint64_t ino;
	int rc;

	memset(e, 0, sizeof(*e));
	e->attr_timeout = x->timeout;
	e->entry_timeout = x->timeout;
	if (parent == FUSE_ROOT_ID && !strcmp(name, CTL_NAME)) {
		ctl_stat(x, CTL_DIR_INO, pid, &e->attr);
		e->ino = CTL_DIR_INO;
		return 0;
	}
	if (parent == CTL_DIR_INO) {
		if (!ctl_by_name(name, &ino))
			return -ENOENT;
		ctl_stat_ex(x, ino, pid, 1, &e->attr);
		e->ino = ino;
		e->attr_timeout = e->entry_timeout = 0;
		return 0;
	}
	if (ctl_is_ino(parent))
		return -ENOENT;
	rc = cache_lookup(x->cache, parent, name, &a);
	if (rc)
		return rc;
	fill_stat(x, &a, &e->attr);
	e->ino = a.ino;
	if (x->no_open)
		changed_test(a.ino, 1);
	if (!a.is_dir && cache_substitute_mode(x->cache))
		e->attr_timeout = 0; /* sizes follow substituted handles */
	return 0;
}

static void ll_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e;
	int rc = do_lookup(ctx(req), parent, name, fuse_req_ctx(req)->pid, &e);

	if (rc == -ENOENT && !ctl_is_ino(parent)) {
		/* A stable miss in a read-only snapshot: let the kernel cache it. */
		memset(&e, 0, sizeof(e));
		e.entry_timeout = ctx(req)->timeout;
		fuse_reply_entry(req, &e);
		return;
	}
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_entry(req, &e);
}

static void ll_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct stat st;
	int rc;

	(void)fi;
	rc = do_getattr(ctx(req), ino, fuse_req_ctx(req)->pid, &st);
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_attr(req, &st, ctl_is_ino(ino) || (S_ISREG(st.st_mode) &&
							      cache_substitute_mode(ctx(req)->cache))
						  ? 0
						  : ctx(req)->timeout);
}

/* setattr: only truncation of a writable control file (the shell's '>'). */
static void ll_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	const struct ctl_file *f = ctl_by_ino(ino);
	struct stat st;

	(void)fi;
	if (!f || !f->apply || (to_set & ~(FUSE_SET_ATTR_SIZE | FUSE_SET_ATTR_ATIME |
					   FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_ATIME_NOW |
					   FUSE_SET_ATTR_MTIME_NOW | FUSE_SET_ATTR_CTIME)) ||
	    ((to_set & FUSE_SET_ATTR_SIZE) && attr->st_size != 0)) {
		fuse_reply_err(req, ctl_is_ino(ino) && ino != CTL_DIR_INO ? EACCES : EROFS);
		return;
	}
	if (ctx(req)->no_open && (to_set & FUSE_SET_ATTR_SIZE)) {
		int rc = ctl_nopen_truncate(ctx(req)->cache, ino, fuse_req_ctx(req)->pid);

		if (rc) {
			fuse_reply_err(req, -rc);
			return;
		}
	}
	ctl_stat(ctx(req), ino, -1, &st);
	if (to_set & FUSE_SET_ATTR_SIZE)
		st.st_size = 0;
	fuse_reply_attr(req, &st, 0);
}

/* ---- directories ---- */

struct dir_entry {
	uint64_t ino;
	int is_dir;
	struct ns_attr attr;
	char *name;
};

struct dir_handle {
	struct dir_entry *e;
	size_t n, cap;
};

static int dir_add(struct dir_handle *d, const char *name, const struct ns_attr *a)
{
	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 64;
		struct dir_entry *n = ec_realloc(d->e, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		d->e = n;
		d->cap = cap;
	}
	d->e[d->n].name = strdup(name);
	if (!d->e[d->n].name)
		return -ENOMEM;
	d->e[d->n].attr = *a;
	d->e[d->n].ino = a->ino;
	d->e[d->n].is_dir = a->is_dir;
	d->n++;
	return 0;
}

static int dir_cb(void *arg, const char *name, const struct ns_attr *a)
{
	return dir_add(arg, name, a) ? 1 : 0;
}

static void dir_free(struct dir_handle *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->n; i++)
		free(d->e[i].name);
	free(d->e);
	free(d);
}

static int do_opendir(struct ll_ctx *x, fuse_ino_t ino, struct dir_handle **out)
{
	struct dir_handle *d = ec_calloc(1, sizeof(*d));
	struct ns_attr self = { .ino = ino, .is_dir = 1 }, a;
	int rc;

	if (!d)
		return -ENOMEM;
	if (ino == CTL_DIR_INO) {
		rc = dir_add(d, ".", &self);
		self.ino = FUSE_ROOT_ID;
		rc = rc ? rc : dir_add(d, "..", &self);
		for (uint64_t i = CTL_DIR_INO + 1; !rc && ctl_by_ino(i); i++) {
			memset(&a, 0, sizeof(a));
			a.ino = i;
			rc = dir_add(d, ctl_by_ino(i)->name, &a);
		}
		goto out;
	}
	rc = cache_getattr(x->cache, ino, &a);
	if (!rc && !a.is_dir)
		rc = -ENOTDIR;
	if (rc)
		goto out;
	rc = dir_add(d, ".", &a);
	self.ino = a.parent;
	rc = rc ? rc : dir_add(d, "..", &self);
	if (!rc)
		rc = cache_readdir(x->cache, ino, dir_cb, d);
	/* .epochfs is reachable by name but never listed: loaders that take
	 * every directory of the root as a class must see only the dataset's. */
out:
	if (rc) {
		dir_free(d);
		return rc;
	}
	*out = d;
	return 0;
}

static void ll_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct dir_handle *d;
	int rc = do_opendir(ctx(req), ino, &d);

	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	fi->fh = (uintptr_t)d;
	fi->cache_readdir = 1;
	fi->keep_cache = 1;
	if (fuse_reply_open(req, fi) == -ENOENT)
		dir_free(d);
}

static void do_readdir(fuse_req_t req, size_t size, off_t off, struct fuse_file_info *fi,
		       int plus)
{
	struct dir_handle *d = (struct dir_handle *)(uintptr_t)fi->fh;
	struct ll_ctx *x = ctx(req);
	char *buf = ec_malloc(size);
	size_t pos = 0, n;
	struct fuse_entry_param e;

	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	for (size_t i = (size_t)off; i < d->n; i++) {
		struct dir_entry *de = &d->e[i];

		memset(&e, 0, sizeof(e));
		if (ctl_is_ino(de->ino))
			ctl_stat(x, de->ino, -1, &e.attr);
		else
			fill_stat(x, &de->attr, &e.attr);
		if (plus) {
			int dots = !strcmp(de->name, ".") || !strcmp(de->name, "..");

			e.ino = dots ? 0 : de->ino;
			e.attr_timeout = e.entry_timeout = ctl_is_ino(de->ino) ? 0 : x->timeout;
			/* A dot entry carries no lookup count (e.ino = 0). */
			n = fuse_add_direntry_plus(req, buf + pos, size - pos, de->name, &e, (off_t)i + 1);
		} else {
			n = fuse_add_direntry(req, buf + pos, size - pos, de->name, &e.attr, (off_t)i + 1);
		}
		if (n > size - pos)
			break; /* did not fit: not emitted, so no lookup to undo */
		pos += n;
	}
	fuse_reply_buf(req, buf, pos);
	free(buf);
}

static void ll_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	(void)ino;
	do_readdir(req, size, off, fi, 0);
}

static void ll_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	(void)ino;
	do_readdir(req, size, off, fi, 1);
}

static void ll_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	dir_free((struct dir_handle *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

/* ---- files ---- */

/* An open file: a control file or a dataset file.  The kernel can send
 * RELEASE while a READ of the same handle is still being served (a reader
 * killed mid-read), so the handle is reference counted: the open holds one
 * reference, each request on it another, and the last one frees it. */
struct fh {
	atomic_int refs;
	struct ctl_handle *ctl;
	struct cache_file *file;
};

static struct fh *fh_new(struct ctl_handle *ctl, struct cache_file *file)
{
	struct fh *h = ec_malloc(sizeof(*h));

	if (!h)
		return NULL;
	atomic_init(&h->refs, 1);
	h->ctl = ctl;
	h->file = file;
	return h;
}

static struct fh *fh_get(struct fuse_file_info *fi)
{
	struct fh *h = (struct fh *)(uintptr_t)fi->fh;

	atomic_fetch_add(&h->refs, 1);
	return h;
}

static void fh_put(struct fh *h)
{
	if (atomic_fetch_sub(&h->refs, 1) != 1)
		return;
	if (h->ctl)
		ctl_close(h->ctl);
	else
		cache_file_close(h->file);
	free(h);
}

static void ll_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct ll_ctx *x = ctx(req);
	int writing = (fi->flags & O_ACCMODE) != O_RDONLY;
	struct cache_file *f;
	struct ctl_handle *h;
	struct fh *fh;
	int rc;

	if (x->no_open) {
		/* The kernel stops sending OPEN (and RELEASE) for good; every
		 * request then comes with fh 0 (see ll_read, ll_write). */
		fuse_reply_err(req, ENOSYS);
		return;
	}
	if (ctl_is_ino(ino)) {
		if (writing && fuse_req_ctx(req)->uid != x->uid && fuse_req_ctx(req)->uid != 0) {
			fuse_reply_err(req, EACCES);
			return;
		}
		rc = ctl_open(x->cache, ino, writing, !!(fi->flags & O_TRUNC), &h);
		if (rc) {
			fuse_reply_err(req, -rc);
			return;
		}
		fh = fh_new(h, NULL);
		if (!fh) {
			ctl_close(h);
			fuse_reply_err(req, ENOMEM);
			return;
		}
		fi->fh = (uintptr_t)fh;
		fi->direct_io = 1;
		if (fuse_reply_open(req, fi) == -ENOENT)
			fh_put(fh);
		return;
	}
	if (writing) {
		fuse_reply_err(req, EROFS);
		return;
	}
	rc = cache_file_open(x->cache, ino, &f);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	fh = fh_new(NULL, f);
	if (!fh) {
		cache_file_close(f);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	fi->fh = (uintptr_t)fh;
	if (cache_file_substituted(f)) {
		/* Another file's bytes: never through (or into) the page cache. */
		fi->direct_io = 1;
		fi->keep_cache = 0;
	} else {
		fi->keep_cache = 1;
	}
	/* Nothing to do at close of a dataset file: spare the round trip. */
	fi->noflush = 1;
	if (fuse_reply_open(req, fi) == -ENOENT)
		fh_put(fh);
}

static void do_read(fuse_req_t req, size_t size, off_t off, const struct fh *fh)
{
	struct ctl_handle *h = fh->ctl;
	struct cache_file *f = fh->file;
	struct {
		struct fuse_bufvec v;
		struct fuse_buf more[CACHE_MAX_SEGS];
	} bv;
	struct cache_read rd;
	ssize_t n;

	if (h) {
		size_t o = MIN((size_t)off, h->len);

		fuse_reply_buf(req, h->buf ? h->buf + o : NULL, MIN(size, h->len - o));
		return;
	}
	n = cache_file_read(f, (uint64_t)off, size, &rd);
	if (n < 0) {
		fuse_reply_err(req, (int)-n);
		return;
	}
	memset(&bv, 0, sizeof(bv));
	bv.v.count = (size_t)rd.nseg;
	for (int i = 0; i < rd.nseg; i++) {
		struct fuse_buf *b = &bv.v.buf[i];

		b->size = rd.seg[i].len;
		if (rd.seg[i].fd >= 0) {
			b->flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
			b->fd = rd.seg[i].fd;
			b->pos = (off_t)rd.seg[i].off;
		} else {
			b->mem = (void *)rd.seg[i].buf;
		}
	}
	if (rd.nseg == 0)
		fuse_reply_buf(req, NULL, 0);
	else
		fuse_reply_data(req, &bv.v, FUSE_BUF_SPLICE_MOVE);
	cache_read_release(&rd);
}

static void do_write(fuse_req_t req, const char *buf, size_t size, off_t off, const struct fh *fh)
{
	struct ctl_handle *h = fh->ctl;
	int rc;

	if (!h) {
		fuse_reply_err(req, EROFS);
		return;
	}
	rc = ctl_write(ctx(req)->cache, h, (uint64_t)off, buf, size);
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_write(req, size);
}

static void do_flush(fuse_req_t req, const struct fh *fh)
{
	struct ctl_handle *h = fh->ctl;
	int rc = 0;

	if (h)
		rc = ctl_commit(ctx(req)->cache, h);
	fuse_reply_err(req, -rc);
}

/* A READ without a handle (no-open mode): a handle for this request only.
 * The read at offset 0 is the file's open, for stats and the prefetcher. */
static void read_nopen(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off)
{
	struct fh tmp = { 0 };
	char *buf;
	int rc;

	if (ctl_is_ino(ino)) {
		buf = ec_malloc(size ? size : 1);
		if (!buf) {
			fuse_reply_err(req, ENOMEM);
			return;
		}
		fuse_reply_buf(req, buf, ctl_nopen_read(ino, (uint64_t)off, size, buf));
		free(buf);
		return;
	}
	if (changed_test(ino, 0)) {
		fuse_reply_err(req, EIO);
		return;
	}
	rc = cache_file_open_ex(ctx(req)->cache, ino, off == 0, &tmp.file);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	do_read(req, size, off, &tmp);
	cache_file_close(tmp.file);
}

static void ll_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct fh *fh;

	if (!fi->fh) {
		read_nopen(req, ino, size, off);
		return;
	}
	fh = fh_get(fi);
	do_read(req, size, off, fh);
	fh_put(fh);
}

static void ll_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	struct fh *fh;
	int rc;

	if (!fi->fh) {
		rc = ctl_is_ino(ino) ? ctl_nopen_write(ctx(req)->cache, ino, fuse_req_ctx(req)->pid,
						       (uint64_t)off, buf, size)
				     : -EROFS;
		if (rc)
			fuse_reply_err(req, -rc);
		else
			fuse_reply_write(req, size);
		return;
	}
	fh = fh_get(fi);
	do_write(req, buf, size, off, fh);
	fh_put(fh);
}

static void ll_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fh *fh;

	(void)ino;
	if (!fi->fh) {
		/* No-open mode: nothing to do at close, and this tells the
		 * kernel to stop asking. */
		fuse_reply_err(req, ENOSYS);
		return;
	}
	fh = fh_get(fi);
	do_flush(req, fh);
	fh_put(fh);
}

static void ll_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fh *fh = (struct fh *)(uintptr_t)fi->fh;

	(void)ino;
	if (!fh) { /* the open that switched the kernel to no-open mode */
		fuse_reply_err(req, 0);
		return;
	}
	if (fh->ctl)
		ctl_commit(ctx(req)->cache, fh->ctl);
	fh_put(fh); /* the open's reference */
	fuse_reply_err(req, 0);
}

static void ll_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct ll_ctx *x = ctx(req);
	struct statvfs sv;

	(void)ino;
	memset(&sv, 0, sizeof(sv));
	sv.f_bsize = 4096;
	sv.f_frsize = 4096;
	sv.f_blocks = cache_capacity(x->cache) / 4096;
	sv.f_bfree = sv.f_bavail = 0;
	sv.f_files = cache_nfiles(x->cache);
	sv.f_namemax = 255;
	sv.f_flag = ST_RDONLY;
	fuse_reply_statfs(req, &sv);
}

static void ll_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	uint64_t cached, total;
	char val[64];
	int n, rc;

	if (strcmp(name, XATTR_CACHED) || ctl_is_ino(ino)) {
		fuse_reply_err(req, ENODATA);
		return;
	}
	rc = cache_cached_bytes(ctx(req)->cache, ino, &cached, &total);
	if (rc) {
		fuse_reply_err(req, rc == -EISDIR ? ENODATA : -rc);
		return;
	}
	n = snprintf(val, sizeof(val), "%llu/%llu", (unsigned long long)cached,
		     (unsigned long long)total);
	if (size == 0)
		fuse_reply_xattr(req, (size_t)n);
	else if (size < (size_t)n)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, val, (size_t)n);
}

static void ll_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct ns_attr a;
	size_t n = sizeof(XATTR_CACHED);

	if (ctl_is_ino(ino) || cache_getattr(ctx(req)->cache, ino, &a) || a.is_dir) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	if (size == 0)
		fuse_reply_xattr(req, n);
	else if (size < n)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, XATTR_CACHED, n);
}

static void ll_init(void *userdata, struct fuse_conn_info *conn)
{
	struct ll_ctx *x = userdata;

	if (conn->capable & FUSE_CAP_SPLICE_WRITE)
		conn->want |= FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE;
	if (conn->capable & FUSE_CAP_READDIRPLUS)
		conn->want |= FUSE_CAP_READDIRPLUS;
	if (conn->capable & FUSE_CAP_CACHE_SYMLINKS)
		conn->want |= FUSE_CAP_CACHE_SYMLINKS;
	conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
	/* O_TRUNC arrives with the open (": > .epochfs/manifest" means "empty"). */
	if (x->no_open && !(conn->capable & FUSE_CAP_NO_OPEN_SUPPORT)) {
		log_warn("--no-open: this kernel always sends opens; using the normal mode");
		x->no_open = 0;
		cache_set_no_open(x->cache, 0);
		ctl_nopen_stop();
	}
	if (x->no_open) {
		/* Without OPEN the kernel would truncate locally only: ask for
		 * the SETATTR that says a control file was truncated.  Control
		 * files are read through the page cache: their new mtime must
		 * drop the old pages. */
		conn->want &= ~FUSE_CAP_ATOMIC_O_TRUNC;
		if (conn->capable & FUSE_CAP_AUTO_INVAL_DATA)
			conn->want |= FUSE_CAP_AUTO_INVAL_DATA;
	} else if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC) {
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	}
	conn->max_readahead = CACHE_MAX_READ;
	conn->max_read = CACHE_MAX_READ;
	conn->max_background = 128;
	conn->congestion_threshold = 96;
	conn->time_gran = 1;
}

static void ll_erofs_mk(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	(void)parent; (void)name; (void)mode;
	fuse_reply_err(req, EROFS);
}

static void ll_erofs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
			   dev_t rdev)
{
	(void)parent; (void)name; (void)mode; (void)rdev;
	fuse_reply_err(req, EROFS);
}

static void ll_erofs_name(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	(void)parent; (void)name;
	fuse_reply_err(req, EROFS);
}

static void ll_erofs_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	(void)link; (void)parent; (void)name;
	fuse_reply_err(req, EROFS);
}

static void ll_erofs_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
			    fuse_ino_t newparent, const char *newname, unsigned int flags)
{
	(void)parent; (void)name; (void)newparent; (void)newname; (void)flags;
	fuse_reply_err(req, EROFS);
}

static void ll_erofs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	(void)ino; (void)newparent; (void)newname;
	fuse_reply_err(req, EROFS);
}

static void ll_erofs_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
			    struct fuse_file_info *fi)
{
	(void)parent; (void)name; (void)mode; (void)fi;
	fuse_reply_err(req, EROFS);
}

static void ll_erofs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			      size_t size, int flags)
{
	(void)ino; (void)name; (void)value; (void)size; (void)flags;
	fuse_reply_err(req, EROFS);
}

static void ll_erofs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	(void)ino; (void)name;
	fuse_reply_err(req, EROFS);
}

static void ll_erofs_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset,
			       off_t length, struct fuse_file_info *fi)
{
	(void)ino; (void)mode; (void)offset; (void)length; (void)fi;
	fuse_reply_err(req, EROFS);
}

const struct fuse_lowlevel_ops ll_ops = {
	.init = ll_init,
	.lookup = ll_lookup,
	.getattr = ll_getattr,
	.setattr = ll_setattr,
	.opendir = ll_opendir,
	.readdir = ll_readdir,
	.readdirplus = ll_readdirplus,
	.releasedir = ll_releasedir,
	.open = ll_open,
	.read = ll_read,
	.write = ll_write,
	.flush = ll_flush,
	.release = ll_release,
	.statfs = ll_statfs,
	.getxattr = ll_getxattr,
	.listxattr = ll_listxattr,
	.mkdir = ll_erofs_mk,
	.mknod = ll_erofs_mknod,
	.unlink = ll_erofs_name,
	.rmdir = ll_erofs_name,
	.symlink = ll_erofs_symlink,
	.rename = ll_erofs_rename,
	.link = ll_erofs_link,
	.create = ll_erofs_create,
	.setxattr = ll_erofs_setxattr,
	.removexattr = ll_erofs_removexattr,
	.fallocate = ll_erofs_fallocate,
};
