/* SPDX-License-Identifier: MIT */
/* Test helper shared by the Check programs that need a real cache: a small
 * POSIX source in a temp directory (files of known bytes in a few class
 * directories), a backend that reads it with plain system calls and a
 * cache opened on a second temp directory.  Header only (each check_*.c
 * is linked alone): include it once per program, after <check.h>, with
 * _GNU_SOURCE defined before any include (for nftw). */
#ifndef EPOCHFS_TESTCACHE_H
#define EPOCHFS_TESTCACHE_H

#include <dirent.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <lmdb.h>

#include "cache/cache.h"
#include "backends/backend.h"

/* cache_open maps a 64 GiB index, more address space than valgrind gives a
 * process; clamp the map (the tests use a few MiB of it). */
int mdb_env_set_mapsize(MDB_env *env, size_t size)
{
	static int (*real)(MDB_env *, size_t);

	if (!real)
		*(void **)&real = dlsym(RTLD_NEXT, "mdb_env_set_mapsize");
	return real(env, size < ((size_t)1 << 30) ? size : (size_t)1 << 30);
}

/* The source's backend: a directory read with plain system calls (the
 * POSIX backend's io_uring is more than valgrind models).  Reads complete
 * inline, or, while `hold` is set, wait in `held` until tc_release: the
 * tests see what was asked of the source, and how much is in flight. */
#define TC_HELD_MAX 4096
struct tc_be {
	struct backend base;
	char dir[96];
	pthread_mutex_t lock;
	int hold;
	struct backend_req *held[TC_HELD_MAX];
	int nheld;
	int submits;
};

struct tc {
	char root[64];       /* the temp dir: src/ and cache/ under it */
	char src[96];
	char cdir[96];
	struct tc_be *be;
	struct cache *c;
};

static int tc_list_dir(struct tc_be *b, const char *rel, backend_list_fn fn, void *arg)
{
	char path[1024], key[512];
	struct dirent *de;
	struct stat st;
	DIR *d;
	int rc = 0;

	snprintf(path, sizeof(path), "%s%s%s", b->dir, *rel ? "/" : "", rel);
	d = opendir(path);
	if (!d)
		return -errno;
	while (!rc && (de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(key, sizeof(key), "%s%s%s", rel, *rel ? "/" : "", de->d_name);
		snprintf(path, sizeof(path), "%s/%s", b->dir, key);
		if (stat(path, &st) < 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			rc = tc_list_dir(b, key, fn, arg);
		} else if (S_ISREG(st.st_mode)) {
			struct backend_stat bs = { .size = (uint64_t)st.st_size,
						   .mtime_ns = st.st_mtim.tv_sec * 1000000000ll +
							       st.st_mtim.tv_nsec };

			rc = fn(arg, key, &bs);
		}
	}
	closedir(d);
	return rc;
}

static int tc_be_list(struct backend *be, backend_list_fn fn, void *arg)
{
	return tc_list_dir((struct tc_be *)be, "", fn, arg);
}

static int tc_be_stat(struct backend *be, const char *key, struct backend_stat *out)
{
	struct tc_be *b = (struct tc_be *)be;
	char path[512];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", b->dir, key);
	if (stat(path, &st) < 0)
		return -errno;
	memset(out, 0, sizeof(*out));
	out->size = (uint64_t)st.st_size;
	out->mtime_ns = st.st_mtim.tv_sec * 1000000000ll + st.st_mtim.tv_nsec;
	return 0;
}

/* Read what req asks for and complete it. */
static void tc_be_complete(struct tc_be *b, struct backend_req *req)
{
	char path[512];
	ssize_t n;
	int rc, fd;

	rc = tc_be_stat(&b->base, req->key, &req->current);
	if (!rc && (req->expect.size || req->expect.mtime_ns) &&
	    (req->expect.size != req->current.size || req->expect.mtime_ns != req->current.mtime_ns))
		rc = -ESTALE;
	if (!rc) {
		snprintf(path, sizeof(path), "%s/%s", b->dir, req->key);
		fd = open(path, O_RDONLY);
		rc = fd < 0 ? -errno : 0;
		if (fd >= 0) {
			n = pread(fd, req->buf, req->len, (off_t)req->off);
			rc = n < 0 ? -errno : (int)0;
			req->result = n;
			close(fd);
		}
	}
	if (rc)
		req->result = rc;
	else
		atomic_fetch_add(&b->base.counters.bytes, (uint64_t)req->result);
	req->done(req);
}

static int tc_be_submit(struct backend *be, struct backend_req *req)
{
	struct tc_be *b = (struct tc_be *)be;

	atomic_fetch_add(&be->counters.requests, 1);
	pthread_mutex_lock(&b->lock);
	b->submits++;
	if (b->hold && b->nheld < TC_HELD_MAX) {
		b->held[b->nheld++] = req;
		pthread_mutex_unlock(&b->lock);
		return 0;
	}
	pthread_mutex_unlock(&b->lock);
	tc_be_complete(b, req);
	return 0;
}

/* Complete every held request (and stop holding when hold is 0). */
static inline void tc_release(struct tc *t, int hold)
{
	struct backend_req *r[TC_HELD_MAX];
	int n;

	pthread_mutex_lock(&t->be->lock);
	n = t->be->nheld;
	memcpy(r, t->be->held, (size_t)n * sizeof(*r));
	t->be->nheld = 0;
	t->be->hold = hold;
	pthread_mutex_unlock(&t->be->lock);
	for (int i = 0; i < n; i++)
		tc_be_complete(t->be, r[i]);
}

static inline void tc_hold(struct tc *t)
{
	pthread_mutex_lock(&t->be->lock);
	t->be->hold = 1;
	pthread_mutex_unlock(&t->be->lock);
}

static void tc_be_destroy(struct backend *be)
{
	struct tc_be *b = (struct tc_be *)be;

	pthread_mutex_destroy(&b->lock);
	free(be->url);
	free(b);
}

static const struct backend_ops tc_be_ops = {
	.name = "testdir", .list = tc_be_list, .stat = tc_be_stat, .submit = tc_be_submit,
	.destroy = tc_be_destroy,
};

/* The byte at offset i of file number seed. */
static inline unsigned char tc_byte(unsigned seed, uint64_t i)
{
	uint64_t z = i * 0x9e3779b97f4a7c15ull + (seed + 1) * 0xbf58476d1ce4e5b9ull;

	return (unsigned char)((z ^ (z >> 29)) >> 24);
}

static inline void tc_write_file(const char *path, unsigned seed, size_t size)
{
	unsigned char *b = malloc(size ? size : 1);
	FILE *f;

	ck_assert_ptr_nonnull(b);
	for (size_t i = 0; i < size; i++)
		b[i] = tc_byte(seed, i);
	f = fopen(path, "w");
	ck_assert_msg(f != NULL, "cannot create %s", path);
	ck_assert_uint_eq(fwrite(b, 1, size, f), size);
	fclose(f);
	free(b);
}

/* The source: ndirs class directories c0, c1, ... of nper files
 * img_<k>.jpg of size bytes each; file number (seed) = dir * nper + k. */
static inline void tc_make_source(struct tc *t, int ndirs, int nper, size_t size)
{
	char path[256];

	for (int d = 0; d < ndirs; d++) {
		snprintf(path, sizeof(path), "%s/c%d", t->src, d);
		ck_assert_int_eq(mkdir(path, 0755), 0);
		for (int k = 0; k < nper; k++) {
			snprintf(path, sizeof(path), "%s/c%d/img_%02d.jpg", t->src, d, k);
			tc_write_file(path, (unsigned)(d * nper + k), size);
		}
	}
}

static inline void tc_init(struct tc *t, const char *name)
{
	memset(t, 0, sizeof(*t));
	snprintf(t->root, sizeof(t->root), "/tmp/%s.XXXXXX", name);
	ck_assert_ptr_nonnull(mkdtemp(t->root));
	snprintf(t->src, sizeof(t->src), "%s/src", t->root);
	snprintf(t->cdir, sizeof(t->cdir), "%s/cache", t->root);
	ck_assert_int_eq(mkdir(t->src, 0755), 0);
	ck_assert_int_eq(mkdir(t->cdir, 0755), 0);
}

static inline void tc_config(struct tc *t, struct cache_config *cfg, uint64_t capacity)
{
	cache_config_init(cfg);
	cfg->cache_dir = t->cdir;
	cfg->capacity = capacity;
	cfg->chunk_size = 64u << 10;
	cfg->flush_ms = 50;
}

/* The backend over t->src and the cache (cfg's cache_dir is t->cdir). */
static inline void tc_open(struct tc *t, const struct cache_config *cfg)
{
	char err[256] = "";
	int rc;

	if (!t->be) {
		t->be = calloc(1, sizeof(*t->be));
		ck_assert_ptr_nonnull(t->be);
		t->be->base.ops = &tc_be_ops;
		ck_assert_int_gt(asprintf(&t->be->base.url, "file://%s", t->src), 0);
		t->be->base.concurrency = 8;
		snprintf(t->be->dir, sizeof(t->be->dir), "%s", t->src);
		pthread_mutex_init(&t->be->lock, NULL);
	}
	rc = cache_open(cfg, &t->be->base, &t->c, err, sizeof(err));
	ck_assert_msg(rc == 0, "cache_open: %d %s", rc, err);
}

static inline void tc_close_cache(struct tc *t)
{
	cache_close(t->c);
	t->c = NULL;
}

static int tc_rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static inline void tc_fini(struct tc *t)
{
	if (t->be)
		tc_release(t, 0);
	if (t->c)
		cache_close(t->c);
	t->c = NULL;
	if (t->be)
		backend_destroy(&t->be->base);
	t->be = NULL;
	if (t->root[0])
		nftw(t->root, tc_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	t->root[0] = 0; /* a second call (the teardown after a test's own) does nothing */
}

/* The inode of a path of the mount. */
static inline uint64_t tc_ino(struct tc *t, const char *path)
{
	struct ns_attr a;

	ck_assert_msg(cache_resolve(t->c, path, &a) == 0, "no %s", path);
	return a.ino;
}

/* Read a whole file through an open handle and check its bytes are
 * those of file number seed.  Returns the bytes read or -errno. */
static inline ssize_t tc_read_check(struct cache_file *f, unsigned seed)
{
	unsigned char *buf = malloc(CACHE_MAX_READ);
	uint64_t off = 0, size = cache_file_size(f);
	struct cache_read rd;
	ssize_t n;

	ck_assert_ptr_nonnull(buf);
	while (off < size) {
		size_t pos = 0;

		n = cache_file_read(f, off, CACHE_MAX_READ, &rd);
		if (n <= 0) {
			free(buf);
			return n < 0 ? n : -EIO;
		}
		for (int i = 0; i < rd.nseg; i++) {
			const struct cache_seg *s = &rd.seg[i];

			if (s->fd >= 0)
				ck_assert_int_eq(pread(s->fd, buf + pos, s->len, (off_t)s->off),
						 (ssize_t)s->len);
			else
				memcpy(buf + pos, s->buf, s->len);
			pos += s->len;
		}
		cache_read_release(&rd);
		for (size_t i = 0; i < pos; i++)
			if (buf[i] != tc_byte(seed, off + i)) {
				free(buf);
				ck_abort_msg("byte %llu is not file %u's",
					     (unsigned long long)(off + i), seed);
			}
		off += pos;
	}
	free(buf);
	return (ssize_t)off;
}

/* A control file's rendering as a NUL-terminated string (caller frees). */
static inline char *tc_render(struct cache *c, int (*render)(struct cache *, char **, size_t *))
{
	char *out = NULL, *s;
	size_t len = 0;

	ck_assert_int_eq(render(c, &out, &len), 0);
	s = malloc(len + 1);
	ck_assert_ptr_nonnull(s);
	if (len)
		memcpy(s, out, len);
	s[len] = 0;
	free(out);
	return s;
}

#endif
