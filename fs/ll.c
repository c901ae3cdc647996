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
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "ctl.h"
#include "ll.h"
#include "passthrough.h"
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
		rc = 0;
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

/* setattr: only truncation of a writable control file (the shell's '>');
 * anything else is EACCES on a control file, EROFS elsewhere. */
static int do_setattr(struct ll_ctx *x, fuse_ino_t ino, const struct stat *attr, int to_set,
		      pid_t pid, struct stat *st)
{
	const struct ctl_file *f = ctl_by_ino(ino);
	int rc;

	if (!f || !f->apply || (to_set & ~(FUSE_SET_ATTR_SIZE | FUSE_SET_ATTR_ATIME |
					   FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_ATIME_NOW |
					   FUSE_SET_ATTR_MTIME_NOW | FUSE_SET_ATTR_CTIME)) ||
	    ((to_set & FUSE_SET_ATTR_SIZE) && attr->st_size != 0))
		return ctl_is_ino(ino) && ino != CTL_DIR_INO ? -EACCES : -EROFS;
	if (x->no_open && (to_set & FUSE_SET_ATTR_SIZE)) {
		rc = ctl_nopen_truncate(x->cache, ino, pid);
		if (rc)
			return rc;
	}
	ctl_stat(x, ino, -1, st);
	if (to_set & FUSE_SET_ATTR_SIZE)
		st->st_size = 0;
	return 0;
}

static void ll_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	struct stat st;
	int rc;

	(void)fi;
	rc = do_setattr(ctx(req), ino, attr, to_set, fuse_req_ctx(req)->pid, &st);
	if (rc)
		fuse_reply_err(req, -rc);
	else
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
	int err;        /* why the listing stopped short (dir_cb) */
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
	d->e[d->n].name = ec_strdup(name);
	if (!d->e[d->n].name)
		return -ENOMEM;
	d->e[d->n].attr = *a;
	d->e[d->n].ino = a->ino;
	d->e[d->n].is_dir = a->is_dir;
	d->n++;
	return 0;
}

/* The index stops a listing at a non-zero return and reports success:
 * the reason is kept for do_opendir, so that a listing cut short by ENOMEM
 * fails instead of showing part of the directory. */
static int dir_cb(void *arg, const char *name, const struct ns_attr *a)
{
	struct dir_handle *d = arg;

	d->err = dir_add(d, name, a);
	return d->err ? 1 : 0;
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
	if (!rc)
		rc = d->err;
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
	if (fuse_reply_open(req, fi) == -ENOENT) /* the opener is gone */
		dir_free(d);
}

/* Fill *out (malloc'd, size bytes at most; *len used) with the entries of d
 * from off on.  plus: READDIRPLUS, where every emitted entry but the dots
 * counts as a lookup; an entry that does not fit is not emitted, so there is
 * no count to undo.  0 or -ENOMEM. */
static int do_readdir(fuse_req_t req, const struct dir_handle *d, size_t size, off_t off,
		      int plus, char **out, size_t *len)
{
	struct ll_ctx *x = ctx(req);
	char *buf = ec_malloc(size ? size : 1);
	size_t pos = 0, n;
	struct fuse_entry_param e;

	if (!buf)
		return -ENOMEM;
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
	*out = buf;
	*len = pos;
	return 0;
}

static void reply_readdir(fuse_req_t req, size_t size, off_t off, struct fuse_file_info *fi,
			  int plus)
{
	const struct dir_handle *d = (const struct dir_handle *)(uintptr_t)fi->fh;
	char *buf = NULL;
	size_t len = 0;
	int rc = do_readdir(req, d, size, off, plus, &buf, &len);

	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_buf(req, buf, len);
	free(buf);
}

static void ll_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	(void)ino;
	reply_readdir(req, size, off, fi, 0);
}

static void ll_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	(void)ino;
	reply_readdir(req, size, off, fi, 1);
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
	uint64_t ino;
	int pt_mode;                /* PT_*: how the kernel reads this open */
	int backing;                /* PT_PASSTHROUGH: the store file's id */
};

static struct fh *fh_new(struct ctl_handle *ctl, struct cache_file *file)
{
	struct fh *h = ec_malloc(sizeof(*h));

	if (!h)
		return NULL;
	atomic_init(&h->refs, 1);
	h->ctl = ctl;
	h->file = file;
	h->ino = 0;
	h->pt_mode = PT_NONE;
	h->backing = 0;
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
	pt_close(h->ino, h->pt_mode); /* while the object is still pinned */
	if (h->ctl)
		ctl_close(h->ctl);
	else
		cache_file_close(h->file);
	free(h);
}

/* Open ino: a control file (writing only by the mounting user or root) or a
 * dataset file (read only).  Fills fi's flags and *out (one reference, the
 * open's).  0 or -ENOSYS (no-open mode), -EACCES, -EROFS, -ENOMEM, or the
 * cache's error. */
static int do_open(struct ll_ctx *x, fuse_ino_t ino, uid_t uid, struct fuse_file_info *fi,
		   struct fh **out)
{
	int writing = (fi->flags & O_ACCMODE) != O_RDONLY;
	struct cache_file *f;
	struct ctl_handle *h;
	struct fh *fh;
	int rc, subst;

	/* No-open mode: the kernel stops sending OPEN (and RELEASE) for good;
	 * every request then comes with fh 0 (see ll_read, ll_write). */
	if (x->no_open)
		return -ENOSYS;
	if (ctl_is_ino(ino)) {
		if (writing && uid != x->uid && uid != 0)
			return -EACCES;
		rc = ctl_open(x->cache, ino, writing, !!(fi->flags & O_TRUNC), &h);
		if (rc)
			return rc;
		fh = fh_new(h, NULL);
		if (!fh) {
			ctl_close(h);
			return -ENOMEM;
		}
		fi->direct_io = 1;
		*out = fh;
		return 0;
	}
	if (writing)
		return -EROFS;
	rc = cache_file_open(x->cache, ino, &f);
	if (rc)
		return rc;
	fh = fh_new(NULL, f);
	if (!fh) {
		cache_file_close(f);
		return -ENOMEM;
	}
	/* Whole and checked: the kernel reads the store file itself
	 * (passthrough.h); else through the daemon, kept in the mount's page
	 * cache, or, for another file's bytes (substitution), never through
	 * (or into) the page cache. */
	fh->ino = ino;
	subst = cache_file_substituted(f);
	rc = pt_open(ino, f, subst, &fh->backing);
	if (rc < 0) {
		fh_put(fh);
		return rc;
	}
	fh->pt_mode = rc;
	if (fh->pt_mode == PT_PASSTHROUGH) {
		fi->direct_io = 0;
		fi->keep_cache = 0;
		cache_note_passthrough(f);
	} else if (subst) {
		fi->direct_io = 1;
		fi->keep_cache = 0;
	} else {
		fi->keep_cache = 1;
	}
	/* Nothing to do at close of a dataset file: spare the round trip. */
	fi->noflush = 1;
	*out = fh;
	return 0;
}

static void ll_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fh *fh = NULL;
	int rc = do_open(ctx(req), ino, fuse_req_ctx(req)->uid, fi, &fh);

	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	fi->fh = (uintptr_t)fh;
	/* Not taken by the kernel (the opener is gone, ENOENT, or any other
	 * failed write): no RELEASE will come for it. */
	if (pt_reply_open(req, fi, fh->pt_mode == PT_PASSTHROUGH ? fh->backing : 0) < 0)
		fh_put(fh);
}

/* What a READ is answered with: a control file's bytes (buf, len), or the
 * segments of a cache read (rd, spliced from the store where they are
 * fds).  What it holds is let go after the reply (read_reply_release). */
struct read_reply {
	const char *buf;
	size_t len;
	char *owned;               /* buf, when it was made for this request */
	struct cache_read rd;
	int has_rd;
	struct cache_file *tmp;    /* no-open mode: the handle of this request */
	/* A fuse_bufvec of CACHE_MAX_SEGS buffers: the struct declares buf[1],
	 * so the buffers are written through reply_bufs(), a pointer into
	 * `room` (written as bv.v.buf[i], gcc -O2 takes the loop to run once
	 * and drops every buffer but the first: a read across chunks was
	 * answered short, which the kernel takes for the end of the file). */
	union {
		struct fuse_bufvec v;
		unsigned char room[sizeof(struct fuse_bufvec) +
				   (CACHE_MAX_SEGS - 1) * sizeof(struct fuse_buf)];
	} bv;
};

static struct fuse_buf *reply_bufs(struct read_reply *r)
{
	return (struct fuse_buf *)(void *)(r->bv.room + offsetof(struct fuse_bufvec, buf));
}

/* Read size bytes at off of an open file into r.  0 or the cache's error. */
static int do_read(const struct fh *fh, size_t size, off_t off, struct read_reply *r)
{
	struct ctl_handle *h = fh->ctl;
	struct fuse_buf *bufs = reply_bufs(r);
	ssize_t n;

	if (h) {
		size_t o = MIN((size_t)off, h->len);

		r->buf = h->buf ? h->buf + o : NULL;
		r->len = MIN(size, h->len - o);
		return 0;
	}
	n = cache_file_read(fh->file, (uint64_t)off, size, &r->rd);
	if (n < 0)
		return (int)n;
	r->has_rd = 1;
	r->bv.v.count = (size_t)r->rd.nseg;
	for (int i = 0; i < r->rd.nseg; i++) {
		struct fuse_buf *b = &bufs[i];

		b->size = r->rd.seg[i].len;
		if (r->rd.seg[i].fd >= 0) {
			b->flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
			b->fd = r->rd.seg[i].fd;
			b->pos = (off_t)r->rd.seg[i].off;
		} else {
			b->mem = (void *)r->rd.seg[i].buf;
		}
	}
	return 0;
}

/* A READ without a handle (no-open mode): a handle for this request only
 * (r->tmp, closed after the reply).  The read at offset 0 is the file's
 * open, for stats and the prefetcher.  0, -ENOMEM, -EIO (the file changed at
 * the source and the kernel has not had its new attributes), or the cache's
 * error. */
static int read_nopen(struct ll_ctx *x, fuse_ino_t ino, size_t size, off_t off,
		      struct read_reply *r)
{
	struct fh tmp = { 0 };
	int rc;

	if (ctl_is_ino(ino)) {
		r->owned = ec_malloc(size ? size : 1);
		if (!r->owned)
			return -ENOMEM;
		r->buf = r->owned;
		r->len = ctl_nopen_read(ino, (uint64_t)off, size, r->owned);
		return 0;
	}
	if (changed_test(ino, 0))
		return -EIO;
	rc = cache_file_open_ex(x->cache, ino, off == 0, &r->tmp);
	if (rc)
		return rc;
	tmp.file = r->tmp;
	return do_read(&tmp, size, off, r);
}

/* Let go of what the reply was made of: the cache read's references, then
 * the request's own handle. */
static void read_reply_release(struct read_reply *r)
{
	if (r->has_rd)
		cache_read_release(&r->rd);
	if (r->tmp)
		cache_file_close(r->tmp);
	free(r->owned);
}

static void ll_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct read_reply r;
	struct fh *fh = NULL;
	int rc;

	memset(&r, 0, sizeof(r));
	if (!fi->fh) {
		rc = read_nopen(ctx(req), ino, size, off, &r);
	} else {
		fh = fh_get(fi);
		rc = do_read(fh, size, off, &r);
	}
	if (rc)
		fuse_reply_err(req, -rc);
	else if (r.has_rd && r.rd.nseg > 0)
		fuse_reply_data(req, &r.bv.v, FUSE_BUF_SPLICE_MOVE);
	else
		fuse_reply_buf(req, r.buf, r.len);
	read_reply_release(&r);
	if (fh)
		fh_put(fh);
}

/* Bytes written to an open file: a control file takes them, anything else
 * is read only.  0 or -EROFS, or ctl_write's error. */
static int do_write(struct ll_ctx *x, const struct fh *fh, const char *buf, size_t size, off_t off)
{
	if (!fh->ctl)
		return -EROFS;
	return ctl_write(x->cache, fh->ctl, (uint64_t)off, buf, size);
}

/* A WRITE without a handle (no-open mode): the control file's current
 * write stream.  0 or -EROFS, or ctl_nopen_write's error. */
static int write_nopen(struct ll_ctx *x, fuse_ino_t ino, pid_t pid, const char *buf, size_t size,
		       off_t off)
{
	if (!ctl_is_ino(ino))
		return -EROFS;
	return ctl_nopen_write(x->cache, ino, pid, (uint64_t)off, buf, size);
}

/* FLUSH of an open file: a control file applies what was written.  0 or
 * ctl_commit's error. */
static int do_flush(struct ll_ctx *x, const struct fh *fh)
{
	return fh->ctl ? ctl_commit(x->cache, fh->ctl) : 0;
}

static void ll_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	struct fh *fh = NULL;
	int rc;

	if (!fi->fh) {
		rc = write_nopen(ctx(req), ino, fuse_req_ctx(req)->pid, buf, size, off);
	} else {
		fh = fh_get(fi);
		rc = do_write(ctx(req), fh, buf, size, off);
	}
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_write(req, size);
	if (fh)
		fh_put(fh);
}

static void ll_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fh *fh = NULL;
	int rc;

	(void)ino;
	if (!fi->fh) {
		/* No-open mode: nothing to do at close, and this tells the
		 * kernel to stop asking. */
		rc = -ENOSYS;
	} else {
		fh = fh_get(fi);
		rc = do_flush(ctx(req), fh);
	}
	fuse_reply_err(req, -rc);
	if (fh)
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

/* The value of the one attribute there is (XATTR_CACHED: "CACHED/SIZE")
 * into val, its length into *n.  0 or -ENODATA (another name, a control
 * file or a directory), or the cache's error. */
static int do_getxattr(struct ll_ctx *x, fuse_ino_t ino, const char *name, char *val,
		       size_t vlen, size_t *n)
{
	uint64_t cached, total;
	int rc;

	if (strcmp(name, XATTR_CACHED) || ctl_is_ino(ino))
		return -ENODATA;
	rc = cache_cached_bytes(x->cache, ino, &cached, &total);
	if (rc)
		return rc == -EISDIR ? -ENODATA : rc;
	*n = (size_t)snprintf(val, vlen, "%llu/%llu", (unsigned long long)cached,
			      (unsigned long long)total);
	return 0;
}

/* Reply to a GETXATTR or LISTXATTR whose value (val, n bytes) is known:
 * its size when asked for with size 0, ERANGE when it does not fit. */
static void reply_xattr(fuse_req_t req, size_t size, const char *val, size_t n)
{
	if (size == 0)
		fuse_reply_xattr(req, n);
	else if (size < n)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, val, n);
}

static void ll_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	char val[64];
	size_t n = 0;
	int rc = do_getxattr(ctx(req), ino, name, val, sizeof(val), &n);

	if (rc)
		fuse_reply_err(req, -rc);
	else
		reply_xattr(req, size, val, n);
}

/* Dataset files have the one attribute; control files and directories
 * have none (an empty list, whatever the size asked for). */
static void ll_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct ns_attr a;

	if (ctl_is_ino(ino) || cache_getattr(ctx(req)->cache, ino, &a) || a.is_dir)
		fuse_reply_buf(req, NULL, 0);
	else
		reply_xattr(req, size, XATTR_CACHED, sizeof(XATTR_CACHED));
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
