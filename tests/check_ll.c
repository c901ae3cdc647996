/* SPDX-License-Identifier: MIT */
/* Unit tests of fs/ll.c (Check): the FUSE handlers of ll_ops called with a
 * request of this test's making, on a real cache over a small POSIX source.
 * libfuse's reply functions are defined here (the program's own definitions
 * come before the shared library's), so every reply is recorded: each
 * request is answered exactly once, with what the kernel should see
 * (entries, negative lookups, attributes, directory listings with the
 * readdirplus lookup rule, spliced or copied data, control files, EROFS,
 * xattrs, the --no-open mode).  The allocation-failure walk fails the k-th
 * allocation of each handler, k = 0, 1, ...: one reply, ENOMEM, nothing
 * left behind (run it under valgrind with CK_FORK=no). */
#define _GNU_SOURCE
#define FUSE_USE_VERSION 312
#include <check.h>
#include <fuse_lowlevel.h>
#include <linux/fuse.h>
#include <sys/statvfs.h>

#include "testcache.h"
#include "cache/engine.h"
#include "fs/ctl.h"
#include "fs/ll.h"
#include "backends/base/log.h"
#include "backends/base/util.h"

#define NDIRS 2
#define NPER 3
#define CHUNK (64u << 10)
#define FSIZE (2 * CHUNK + 500)

/* ---- a request, and libfuse's replies recorded ---- */

enum { R_NONE, R_ERR, R_ENTRY, R_ATTR, R_OPEN, R_BUF, R_DATA, R_WRITE, R_STATFS, R_XATTR };

struct fuse_req {
	int replies;
	int kind;
	int err;
	struct fuse_entry_param e;
	struct stat st;
	double timeout;
	struct fuse_file_info fi;
	char *data;                 /* R_BUF, R_DATA: a copy */
	size_t len;                 /* and R_WRITE's count, R_XATTR's size */
	int spliced;                /* R_DATA: store fds among the buffers */
	int open_rc;                /* what fuse_reply_open returns */
};

static struct ll_ctx X;
static struct fuse_ctx CTX;

static void rec(fuse_req_t req, int kind)
{
	req->replies++;
	req->kind = kind;
}

void *fuse_req_userdata(fuse_req_t req)
{
	(void)req;
	return &X;
}

const struct fuse_ctx *fuse_req_ctx(fuse_req_t req)
{
	(void)req;
	return &CTX;
}

int fuse_reply_err(fuse_req_t req, int err)
{
	rec(req, R_ERR);
	req->err = err;
	return 0;
}

int fuse_reply_entry(fuse_req_t req, const struct fuse_entry_param *e)
{
	rec(req, R_ENTRY);
	req->e = *e;
	return 0;
}

int fuse_reply_attr(fuse_req_t req, const struct stat *attr, double attr_timeout)
{
	rec(req, R_ATTR);
	req->st = *attr;
	req->timeout = attr_timeout;
	return 0;
}

int fuse_reply_open(fuse_req_t req, const struct fuse_file_info *fi)
{
	rec(req, R_OPEN);
	req->fi = *fi;
	return req->open_rc;
}

int fuse_reply_write(fuse_req_t req, size_t count)
{
	rec(req, R_WRITE);
	req->len = count;
	return 0;
}

int fuse_reply_buf(fuse_req_t req, const char *buf, size_t size)
{
	rec(req, R_BUF);
	free(req->data);
	req->data = malloc(size + 1);
	ck_assert_ptr_nonnull(req->data);
	if (size)
		memcpy(req->data, buf, size);
	req->len = size;
	return 0;
}

int fuse_reply_data(fuse_req_t req, struct fuse_bufvec *bufv, enum fuse_buf_copy_flags flags)
{
	size_t total = 0, pos = 0;

	rec(req, R_DATA);
	ck_assert_int_eq(flags, FUSE_BUF_SPLICE_MOVE);
	for (size_t i = 0; i < bufv->count; i++)
		total += bufv->buf[i].size;
	free(req->data);
	req->data = malloc(total + 1);
	ck_assert_ptr_nonnull(req->data);
	req->spliced = 0;
	for (size_t i = 0; i < bufv->count; i++) {
		const struct fuse_buf *b = &bufv->buf[i];

		if (b->flags & FUSE_BUF_IS_FD) {
			ck_assert(b->flags & FUSE_BUF_FD_SEEK);
			ck_assert_int_eq(pread(b->fd, req->data + pos, b->size, b->pos),
					 (ssize_t)b->size);
			req->spliced = 1;
		} else {
			memcpy(req->data + pos, b->mem, b->size);
		}
		pos += b->size;
	}
	req->len = total;
	return 0;
}

int fuse_reply_statfs(fuse_req_t req, const struct statvfs *stbuf)
{
	rec(req, R_STATFS);
	req->len = stbuf->f_files;
	return 0;
}

int fuse_reply_xattr(fuse_req_t req, size_t count)
{
	rec(req, R_XATTR);
	req->len = count;
	return 0;
}

static void req_init(struct fuse_req *r)
{
	free(r->data);
	memset(r, 0, sizeof(*r));
}

static void req_done(struct fuse_req *r)
{
	free(r->data);
	r->data = NULL;
}

/* Exactly one reply, of this kind (and for R_ERR, this error). */
static void once(const struct fuse_req *r, int kind, int err)
{
	ck_assert_msg(r->replies == 1, "%d replies", r->replies);
	ck_assert_msg(r->kind == kind, "reply kind %d, not %d (err %d)", r->kind, kind, r->err);
	if (kind == R_ERR)
		ck_assert_msg(r->err == err, "error %d, not %d", r->err, err);
}

/* ---- the cache ---- */

static struct tc t;

static void setup_mode(int no_open)
{
	struct cache_config cfg;

	tc_init(&t, "check_ll");
	tc_make_source(&t, NDIRS, NPER, FSIZE);
	tc_config(&t, &cfg, 64ull << 20);
	cfg.chunk_size = CHUNK;
	tc_open(&t, &cfg);
	memset(&X, 0, sizeof(X));
	X.cache = t.c;
	X.uid = getuid();
	X.gid = getgid();
	X.timeout = 86400;
	X.start_time = 1000;
	X.no_open = no_open;
	memset(&CTX, 0, sizeof(CTX));
	CTX.uid = getuid();
	CTX.pid = getpid();
	if (no_open)
		ck_assert_int_eq(ctl_nopen_start(t.c), 0);
}

static void setup(void)
{
	setup_mode(0);
}

static void setup_noopen(void)
{
	setup_mode(1);
}

static void teardown(void)
{
	if (X.no_open)
		ctl_nopen_stop();
	tc_fini(&t);
}

static uint64_t ctl_ino(const char *name)
{
	uint64_t ino = 0;

	ck_assert_ptr_nonnull(ctl_by_name(name, &ino));
	return ino;
}

/* Open ino (flags) through ll_ops; the handle, or 0 with *err. */
static uint64_t do_open(uint64_t ino, int flags, int *err)
{
	struct fuse_req r = { 0 };
	struct fuse_file_info fi = { .flags = flags };

	ll_ops.open(&r, ino, &fi);
	ck_assert_int_eq(r.replies, 1);
	*err = r.kind == R_ERR ? r.err : 0;
	if (r.kind == R_OPEN) {
		ck_assert_uint_eq(r.fi.fh, fi.fh);
		ck_assert_uint_ne(fi.fh, 0);
	}
	req_done(&r);
	return r.kind == R_OPEN ? fi.fh : 0;
}

static void do_release(uint64_t ino, uint64_t fh)
{
	struct fuse_req r = { 0 };
	struct fuse_file_info fi = { .fh = fh };

	ll_ops.release(&r, ino, &fi);
	once(&r, R_ERR, 0);
}

/* ---- tests ---- */

START_TEST(test_lookup_getattr)
{
	struct fuse_req r = { 0 };
	struct fuse_file_info fi = { 0 };
	uint64_t dir;

	ll_ops.lookup(&r, FUSE_ROOT_ID, "c1");
	once(&r, R_ENTRY, 0);
	ck_assert(S_ISDIR(r.e.attr.st_mode));
	dir = r.e.ino;
	req_init(&r);
	ll_ops.lookup(&r, dir, "img_02.jpg");
	once(&r, R_ENTRY, 0);
	ck_assert_uint_eq(r.e.ino, tc_ino(&t, "c1/img_02.jpg"));
	ck_assert_int_eq(r.e.attr.st_size, FSIZE);
	ck_assert_int_eq(r.e.attr.st_mode, S_IFREG | 0444);
	ck_assert_double_eq(r.e.attr_timeout, X.timeout);
	/* a stable miss: an entry with ino 0 the kernel may cache */
	req_init(&r);
	ll_ops.lookup(&r, dir, "nope.jpg");
	once(&r, R_ENTRY, 0);
	ck_assert_uint_eq(r.e.ino, 0);
	ck_assert_double_eq(r.e.entry_timeout, X.timeout);
	/* the control directory: by name only */
	req_init(&r);
	ll_ops.lookup(&r, FUSE_ROOT_ID, CTL_NAME);
	once(&r, R_ENTRY, 0);
	ck_assert_uint_eq(r.e.ino, CTL_DIR_INO);
	req_init(&r);
	ll_ops.lookup(&r, CTL_DIR_INO, "seed");
	once(&r, R_ENTRY, 0);
	ck_assert_uint_eq(r.e.ino, ctl_ino("seed"));
	ck_assert_double_eq(r.e.attr_timeout, 0);
	req_init(&r);
	ll_ops.lookup(&r, CTL_DIR_INO, "nope");
	once(&r, R_ERR, ENOENT);
	/* getattr */
	req_init(&r);
	ll_ops.getattr(&r, tc_ino(&t, "c0/img_00.jpg"), &fi);
	once(&r, R_ATTR, 0);
	ck_assert_int_eq(r.st.st_size, FSIZE);
	ck_assert_int_eq(r.st.st_uid, X.uid);
	req_init(&r);
	ll_ops.getattr(&r, ctl_ino("stats"), &fi);
	once(&r, R_ATTR, 0);
	ck_assert_double_eq(r.timeout, 0);
	req_init(&r);
	ll_ops.getattr(&r, 999999, &fi);
	once(&r, R_ERR, ENOENT);
	req_init(&r);
	ll_ops.getattr(&r, ctl_ino("evict") + 1, &fi);
	once(&r, R_ERR, ENOENT);
	req_done(&r);
}
END_TEST

/* Names in a READDIR(PLUS) reply, '|'-separated; for plus, the lookup
 * counts (nodeid != 0) of the entries too. */
static void parse_dir(const struct fuse_req *r, int plus, char *names, size_t len, int *counted)
{
	size_t pos = 0;

	*names = 0;
	*counted = 0;
	while (pos < r->len) {
		const struct fuse_dirent *d;

		if (plus) {
			const struct fuse_direntplus *dp = (const void *)(r->data + pos);

			d = &dp->dirent;
			*counted += dp->entry_out.nodeid != 0;
			if ((d->namelen == 1 && d->name[0] == '.') ||
			    (d->namelen == 2 && !memcmp(d->name, "..", 2)))
				ck_assert_uint_eq(dp->entry_out.nodeid, 0); /* no count */
			pos += FUSE_DIRENTPLUS_SIZE(dp);
		} else {
			d = (const void *)(r->data + pos);
			pos += FUSE_DIRENT_SIZE(d);
		}
		snprintf(names + strlen(names), len - strlen(names), "%.*s|", (int)d->namelen,
			 d->name);
	}
}

START_TEST(test_readdir)
{
	struct fuse_req r = { 0 };
	struct fuse_file_info fi = { 0 };
	char names[512];
	int counted;

	ll_ops.opendir(&r, FUSE_ROOT_ID, &fi);
	once(&r, R_OPEN, 0);
	ck_assert(r.fi.cache_readdir && r.fi.keep_cache);
	/* .epochfs is never listed */
	req_init(&r);
	ll_ops.readdir(&r, FUSE_ROOT_ID, 4096, 0, &fi);
	once(&r, R_BUF, 0);
	parse_dir(&r, 0, names, sizeof(names), &counted);
	ck_assert_str_eq(names, ".|..|c0|c1|");
	/* readdirplus: every entry but the dots counts as a lookup */
	req_init(&r);
	ll_ops.readdirplus(&r, FUSE_ROOT_ID, 4096, 0, &fi);
	once(&r, R_BUF, 0);
	parse_dir(&r, 1, names, sizeof(names), &counted);
	ck_assert_str_eq(names, ".|..|c0|c1|");
	ck_assert_int_eq(counted, 2);
	/* from an offset */
	req_init(&r);
	ll_ops.readdirplus(&r, FUSE_ROOT_ID, 4096, 3, &fi);
	once(&r, R_BUF, 0);
	parse_dir(&r, 1, names, sizeof(names), &counted);
	ck_assert_str_eq(names, "c1|");
	/* an entry that does not fit is not emitted (so not counted) */
	req_init(&r);
	ll_ops.readdirplus(&r, FUSE_ROOT_ID, sizeof(struct fuse_direntplus) + 8, 2, &fi);
	once(&r, R_BUF, 0);
	parse_dir(&r, 1, names, sizeof(names), &counted);
	ck_assert_str_eq(names, "c0|");
	ck_assert_int_eq(counted, 1);
	req_init(&r);
	ll_ops.readdir(&r, FUSE_ROOT_ID, 10, 0, &fi);
	once(&r, R_BUF, 0);
	ck_assert_uint_eq(r.len, 0);
	req_init(&r);
	ll_ops.releasedir(&r, FUSE_ROOT_ID, &fi);
	once(&r, R_ERR, 0);
	/* the control directory lists its files; a file is not a directory */
	req_init(&r);
	fi.fh = 0;
	ll_ops.opendir(&r, CTL_DIR_INO, &fi);
	once(&r, R_OPEN, 0);
	req_init(&r);
	ll_ops.readdir(&r, CTL_DIR_INO, 4096, 0, &fi);
	once(&r, R_BUF, 0);
	parse_dir(&r, 0, names, sizeof(names), &counted);
	ck_assert_str_eq(names, ".|..|stats|seed|manifest|order|epoch|importance|evict|");
	req_init(&r);
	ll_ops.releasedir(&r, CTL_DIR_INO, &fi);
	once(&r, R_ERR, 0);
	req_init(&r);
	ll_ops.opendir(&r, tc_ino(&t, "c0/img_00.jpg"), &fi);
	once(&r, R_ERR, ENOTDIR);
	/* the opener gone before the reply: the handle is freed (valgrind) */
	req_init(&r);
	r.open_rc = -ENOENT;
	ll_ops.opendir(&r, FUSE_ROOT_ID, &fi);
	once(&r, R_OPEN, 0);
	req_done(&r);
}
END_TEST

START_TEST(test_read)
{
	uint64_t ino = tc_ino(&t, "c1/img_01.jpg");
	struct fuse_req r = { 0 };
	struct fuse_file_info fi = { 0 };
	int err;
	uint64_t fh = do_open(ino, O_RDONLY, &err);

	ck_assert_int_eq(err, 0);
	fi.fh = fh;
	/* first read: fetched, then served; the second from the store, spliced */
	for (int pass = 0; pass < 2; pass++) {
		req_init(&r);
		ll_ops.read(&r, ino, FSIZE + 100, 0, &fi);
		once(&r, R_DATA, 0);
		ck_assert_uint_eq(r.len, FSIZE);
		for (size_t i = 0; i < r.len; i++)
			ck_assert_int_eq((unsigned char)r.data[i], tc_byte(NPER + 1, i));
	}
	ck_assert(r.spliced);
	/* a read in the middle, across a chunk boundary */
	req_init(&r);
	ll_ops.read(&r, ino, 1000, CHUNK - 300, &fi);
	once(&r, R_DATA, 0);
	ck_assert_uint_eq(r.len, 1000);
	for (size_t i = 0; i < r.len; i++)
		ck_assert_int_eq((unsigned char)r.data[i], tc_byte(NPER + 1, CHUNK - 300 + i));
	/* at the end of the file: nothing */
	req_init(&r);
	ll_ops.read(&r, ino, 4096, FSIZE, &fi);
	once(&r, R_BUF, 0);
	ck_assert_uint_eq(r.len, 0);
	/* writes and flushes of a dataset file */
	req_init(&r);
	ll_ops.write(&r, ino, "x", 1, 0, &fi);
	once(&r, R_ERR, EROFS);
	req_init(&r);
	ll_ops.flush(&r, ino, &fi);
	once(&r, R_ERR, 0);
	do_release(ino, fh);
	/* open for writing, or a directory */
	ck_assert_uint_eq(do_open(ino, O_WRONLY, &err), 0);
	ck_assert_int_eq(err, EROFS);
	ck_assert_uint_eq(do_open(tc_ino(&t, "c1"), O_RDONLY, &err), 0);
	ck_assert_int_eq(err, EISDIR);
	/* the opener gone before the reply: the handle is released */
	req_init(&r);
	r.open_rc = -ENOENT;
	fi.fh = 0;
	fi.flags = O_RDONLY;
	ll_ops.open(&r, ino, &fi);
	once(&r, R_OPEN, 0);
	req_done(&r);
}
END_TEST

START_TEST(test_control_files)
{
	uint64_t seed = ctl_ino("seed");
	struct fuse_req r = { 0 };
	struct fuse_file_info fi = { 0 };
	struct stat st = { 0 };
	int err;
	uint64_t fh;
	static const char line[] = "seed=3 sampler=numpy\n";

	fh = do_open(seed, O_WRONLY | O_TRUNC, &err);
	ck_assert_int_eq(err, 0);
	fi.fh = fh;
	ll_ops.write(&r, seed, line, sizeof(line) - 1, 0, &fi);
	once(&r, R_WRITE, 0);
	ck_assert_uint_eq(r.len, sizeof(line) - 1);
	req_init(&r);
	ll_ops.write(&r, seed, "seed=x\n", 7, sizeof(line) - 1, &fi);
	once(&r, R_ERR, EINVAL);
	req_init(&r);
	ll_ops.flush(&r, seed, &fi);
	once(&r, R_ERR, 0);
	do_release(seed, fh);
	/* read back, through a handle (direct_io) */
	req_init(&r);
	fi = (struct fuse_file_info){ .flags = O_RDONLY };
	ll_ops.open(&r, seed, &fi);
	once(&r, R_OPEN, 0);
	ck_assert(r.fi.direct_io);
	req_init(&r);
	ll_ops.read(&r, seed, 4096, 0, &fi);
	once(&r, R_BUF, 0);
	ck_assert_uint_eq(r.len, strlen("seed=3 sampler=numpy epoch=0\n"));
	ck_assert_mem_eq(r.data, "seed=3 sampler=numpy epoch=0\n", r.len);
	req_init(&r);
	ll_ops.read(&r, seed, 4096, 5, &fi);
	once(&r, R_BUF, 0);
	ck_assert_uint_eq(r.len, strlen("seed=3 sampler=numpy epoch=0\n") - 5);
	req_init(&r);
	ll_ops.read(&r, seed, 4096, 4096, &fi);
	once(&r, R_BUF, 0);
	ck_assert_uint_eq(r.len, 0);
	do_release(seed, fi.fh);
	/* stats is read only; writing needs the mounting user */
	ck_assert_uint_eq(do_open(ctl_ino("stats"), O_WRONLY, &err), 0);
	ck_assert_int_eq(err, EACCES);
	CTX.uid = X.uid + 1;
	ck_assert_uint_eq(do_open(seed, O_WRONLY, &err), 0);
	ck_assert_int_eq(err, X.uid + 1 == 0 ? 0 : EACCES);
	CTX.uid = X.uid;
	/* setattr: truncating a writable control file only */
	req_init(&r);
	ll_ops.setattr(&r, seed, &st, FUSE_SET_ATTR_SIZE, NULL);
	once(&r, R_ATTR, 0);
	ck_assert_int_eq(r.st.st_size, 0);
	req_init(&r);
	ll_ops.setattr(&r, ctl_ino("stats"), &st, FUSE_SET_ATTR_SIZE, NULL);
	once(&r, R_ERR, EACCES);
	req_init(&r);
	ll_ops.setattr(&r, tc_ino(&t, "c0/img_00.jpg"), &st, FUSE_SET_ATTR_SIZE, NULL);
	once(&r, R_ERR, EROFS);
	st.st_size = 5;
	req_init(&r);
	ll_ops.setattr(&r, seed, &st, FUSE_SET_ATTR_SIZE, NULL);
	once(&r, R_ERR, EACCES);
	req_done(&r);
}
END_TEST

START_TEST(test_xattr_statfs)
{
	uint64_t ino = tc_ino(&t, "c0/img_02.jpg");
	struct fuse_req r = { 0 };
	char want[64];

	snprintf(want, sizeof(want), "0/%u", FSIZE);
	ll_ops.getxattr(&r, ino, "user.epochfs.cached", 0);
	once(&r, R_XATTR, 0);
	ck_assert_uint_eq(r.len, strlen(want));
	req_init(&r);
	ll_ops.getxattr(&r, ino, "user.epochfs.cached", 2);
	once(&r, R_ERR, ERANGE);
	req_init(&r);
	ll_ops.getxattr(&r, ino, "user.epochfs.cached", 64);
	once(&r, R_BUF, 0);
	ck_assert_mem_eq(r.data, want, strlen(want));
	req_init(&r);
	ll_ops.getxattr(&r, ino, "user.other", 64);
	once(&r, R_ERR, ENODATA);
	req_init(&r);
	ll_ops.getxattr(&r, tc_ino(&t, "c0"), "user.epochfs.cached", 64);
	once(&r, R_ERR, ENODATA);
	req_init(&r);
	ll_ops.getxattr(&r, ctl_ino("seed"), "user.epochfs.cached", 64);
	once(&r, R_ERR, ENODATA);
	req_init(&r);
	ll_ops.listxattr(&r, ino, 0);
	once(&r, R_XATTR, 0);
	ck_assert_uint_eq(r.len, sizeof("user.epochfs.cached"));
	req_init(&r);
	ll_ops.listxattr(&r, ino, 3);
	once(&r, R_ERR, ERANGE);
	req_init(&r);
	ll_ops.listxattr(&r, ino, 100);
	once(&r, R_BUF, 0);
	ck_assert_str_eq(r.data, "user.epochfs.cached");
	req_init(&r);
	ll_ops.listxattr(&r, tc_ino(&t, "c0"), 100);
	once(&r, R_BUF, 0);
	ck_assert_uint_eq(r.len, 0);
	req_init(&r);
	ll_ops.statfs(&r, FUSE_ROOT_ID);
	once(&r, R_STATFS, 0);
	ck_assert_uint_eq(r.len, NDIRS * NPER);
	req_init(&r);
	ll_ops.mkdir(&r, FUSE_ROOT_ID, "x", 0755);
	once(&r, R_ERR, EROFS);
	req_init(&r);
	ll_ops.unlink(&r, FUSE_ROOT_ID, "c0");
	once(&r, R_ERR, EROFS);
	req_done(&r);
}
END_TEST

START_TEST(test_noopen)
{
	uint64_t ino = tc_ino(&t, "c0/img_01.jpg"), seed = ctl_ino("seed");
	struct fuse_req r = { 0 };
	struct fuse_file_info fi = { 0 };
	int err;

	/* the first OPEN is answered ENOSYS: the kernel stops sending them */
	ck_assert_uint_eq(do_open(ino, O_RDONLY, &err), 0);
	ck_assert_int_eq(err, ENOSYS);
	/* READs come with fh 0 */
	ll_ops.read(&r, ino, FSIZE, 0, &fi);
	once(&r, R_DATA, 0);
	ck_assert_uint_eq(r.len, FSIZE);
	for (size_t i = 0; i < r.len; i++)
		ck_assert_int_eq((unsigned char)r.data[i], tc_byte(1, i));
	ck_assert_uint_eq(atomic_load(&cache_counters(t.c)->opens), 1);
	req_init(&r);
	ll_ops.read(&r, ino, 100, 50, &fi);
	once(&r, R_DATA, 0);
	ck_assert_uint_eq(atomic_load(&cache_counters(t.c)->opens), 1); /* not an open */
	req_init(&r);
	ll_ops.flush(&r, ino, &fi);
	once(&r, R_ERR, ENOSYS);
	req_init(&r);
	ll_ops.write(&r, ino, "x", 1, 0, &fi);
	once(&r, R_ERR, EROFS);
	/* control files: one implicit stream each */
	req_init(&r);
	ll_ops.write(&r, seed, "seed=4 sampler=numpy\n", 21, 0, &fi);
	once(&r, R_WRITE, 0);
	req_init(&r);
	ll_ops.getattr(&r, seed, &fi); /* renders, sizes */
	once(&r, R_ATTR, 0);
	ck_assert_int_eq(r.st.st_size, (off_t)strlen("seed=4 sampler=numpy epoch=0\n"));
	req_init(&r);
	ll_ops.read(&r, seed, 4096, 0, &fi);
	once(&r, R_BUF, 0);
	ck_assert_mem_eq(r.data, "seed=4 sampler=numpy epoch=0\n", r.len);
	/* release of the open that switched modes */
	req_init(&r);
	ll_ops.release(&r, ino, &fi);
	once(&r, R_ERR, 0);
	req_done(&r);
}
END_TEST

/* ---- allocation failures ---- */

/* Run one request with the k-th allocation failing for k = 0, 1, ...
 * until it succeeds: each attempt gets exactly one reply, ENOMEM when it
 * fails.  call() makes the request and undoes what a success made. */
static void walk_ex(void (*call)(struct fuse_req *r), int ok_kind, const char *what,
		    int allocates)
{
	struct fuse_req r = { 0 };
	long k;

	for (k = 0; k < 10000; k++) {
		req_init(&r);
		ec_fail_alloc_after = k;
		call(&r);
		ec_fail_alloc_after = -1;
		ck_assert_msg(r.replies == 1, "%s, allocation %ld failing: %d replies", what, k,
			      r.replies);
		if (r.kind == ok_kind)
			break;
		ck_assert_msg(r.kind == R_ERR && r.err == ENOMEM,
			      "%s, allocation %ld failing: reply %d error %d, not ENOMEM", what, k,
			      r.kind, r.err);
	}
	ck_assert_msg(r.kind == ok_kind, "%s never succeeded", what);
	if (allocates)
		ck_assert_msg(k > 0, "%s allocates nothing through the seam", what);
	req_done(&r);
}

static void walk(void (*call)(struct fuse_req *r), int ok_kind, const char *what)
{
	walk_ex(call, ok_kind, what, 1);
}

static struct fuse_file_info wfi;
static uint64_t wino;

static void call_opendir(struct fuse_req *r)
{
	struct fuse_file_info fi = { 0 };
	struct fuse_req rr = { 0 };

	ll_ops.opendir(r, tc_ino(&t, "c1"), &fi);
	if (r->kind == R_OPEN) {
		ll_ops.releasedir(&rr, 0, &fi);
		once(&rr, R_ERR, 0);
	}
}

static void call_readdirplus(struct fuse_req *r)
{
	ll_ops.readdirplus(r, wino, 4096, 0, &wfi);
}

static void call_open(struct fuse_req *r)
{
	struct fuse_file_info fi = { .flags = O_RDONLY };

	ll_ops.open(r, wino, &fi);
	if (r->kind == R_OPEN)
		do_release(wino, fi.fh);
}

static void call_read(struct fuse_req *r)
{
	ll_ops.read(r, wino, FSIZE, 0, &wfi);
}

static void call_ctl_open(struct fuse_req *r)
{
	struct fuse_file_info fi = { .flags = O_RDONLY };

	ll_ops.open(r, ctl_ino("manifest"), &fi);
	if (r->kind == R_OPEN)
		do_release(ctl_ino("manifest"), fi.fh);
}

static void call_ctl_write(struct fuse_req *r)
{
	static const char data[] = "c0/img_00.jpg\nc1/img_02.jpg\n";

	/* a fresh handle each time: a failed write drops the open's bytes */
	wfi = (struct fuse_file_info){ .flags = O_WRONLY };
	{
		struct fuse_req ro = { 0 };
		long saved = ec_fail_alloc_after;

		ec_fail_alloc_after = -1;
		ll_ops.open(&ro, ctl_ino("manifest"), &wfi);
		once(&ro, R_OPEN, 0);
		ec_fail_alloc_after = saved;
	}
	ll_ops.write(r, ctl_ino("manifest"), data, sizeof(data) - 1, 0, &wfi);
	{
		long saved = ec_fail_alloc_after;

		ec_fail_alloc_after = -1;
		do_release(ctl_ino("manifest"), wfi.fh);
		ec_fail_alloc_after = saved;
	}
}

START_TEST(test_alloc_failures)
{
	struct fuse_req r = { 0 };
	int err;

	prefetch_stop(&t.c->pf);
	records_stop_flusher(t.c);
	walk(call_opendir, R_OPEN, "opendir");
	/* readdirplus on an open directory */
	wino = tc_ino(&t, "c1");
	wfi = (struct fuse_file_info){ 0 };
	ll_ops.opendir(&r, wino, &wfi);
	once(&r, R_OPEN, 0);
	walk(call_readdirplus, R_BUF, "readdirplus");
	req_init(&r);
	ll_ops.releasedir(&r, wino, &wfi);
	once(&r, R_ERR, 0);
	/* open and release of a dataset file */
	wino = tc_ino(&t, "c0/img_02.jpg");
	walk(call_open, R_OPEN, "open");
	/* the first read of a file (fetched) and the next (from the store) */
	wfi = (struct fuse_file_info){ .flags = O_RDONLY };
	wfi.fh = do_open(wino, O_RDONLY, &err);
	ck_assert_int_eq(err, 0);
	walk(call_read, R_DATA, "read, cold");
	walk_ex(call_read, R_DATA, "read, warm", 0); /* spliced from the store */
	do_release(wino, wfi.fh);
	/* a control file: a reader's snapshot, a writer's bytes */
	walk(call_ctl_open, R_OPEN, "open of a control file");
	walk(call_ctl_write, R_WRITE, "write of a control file");
	req_done(&r);
}
END_TEST

START_TEST(test_alloc_failures_noopen)
{
	struct fuse_req r = { 0 };

	prefetch_stop(&t.c->pf);
	records_stop_flusher(t.c);
	wino = tc_ino(&t, "c1/img_00.jpg");
	wfi = (struct fuse_file_info){ 0 };
	walk(call_read, R_DATA, "read without a handle, cold");
	walk(call_read, R_DATA, "read without a handle, warm"); /* its handle */
	/* a control file's rendering, read without a handle */
	ll_ops.getattr(&r, ctl_ino("manifest"), &wfi);
	once(&r, R_ATTR, 0);
	wino = ctl_ino("manifest");
	walk(call_read, R_BUF, "read of a control file without a handle");
	req_done(&r);
}
END_TEST

static Suite *ll_suite(void)
{
	Suite *s = suite_create("ll");
	TCase *tc = tcase_create("ll");
	TCase *tn = tcase_create("noopen");
	TCase *ta = tcase_create("alloc");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_lookup_getattr);
	tcase_add_test(tc, test_readdir);
	tcase_add_test(tc, test_read);
	tcase_add_test(tc, test_control_files);
	tcase_add_test(tc, test_xattr_statfs);
	suite_add_tcase(s, tc);
	tcase_add_checked_fixture(tn, setup_noopen, teardown);
	tcase_set_timeout(tn, 60);
	tcase_add_test(tn, test_noopen);
	suite_add_tcase(s, tn);
	tcase_add_checked_fixture(ta, setup, teardown);
	tcase_set_timeout(ta, 600);
	tcase_add_test(ta, test_alloc_failures);
	suite_add_tcase(s, ta);
	{
		TCase *tb = tcase_create("alloc_noopen");

		tcase_add_checked_fixture(tb, setup_noopen, teardown);
		tcase_set_timeout(tb, 600);
		tcase_add_test(tb, test_alloc_failures_noopen);
		suite_add_tcase(s, tb);
	}
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(ll_suite());
	int failed;

	log_init("check_ll", LOG_LVL_ERR, 0);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
