/* SPDX-License-Identifier: MIT */
/* Unit tests of cache/cache.c (Check): the engine end to end over a fake in-memory
 * backend that can complete inline or from threads and inject errors. */
#define _GNU_SOURCE
#include <check.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <lmdb.h>

#include "cache/cache.h"
#include "backends/base/log.h"

#define CHUNK (256u << 10)
#define MIN_U(a, b) ((a) < (b) ? (a) : (b))

/* cache_open maps a 64 GiB index, more address space than valgrind gives a
 * process; this test seam clamps the map (the tests use a few MiB of it). */
int mdb_env_set_mapsize(MDB_env *env, size_t size)
{
	static int (*real)(MDB_env *, size_t);

	if (!real)
		*(void **)&real = dlsym(RTLD_NEXT, "mdb_env_set_mapsize");
	return real(env, MIN_U(size, (size_t)1 << 30));
}

/* ---- the fake backend ---- */

enum fail_mode { FAIL_NONE, FAIL_EIO, FAIL_SHORT, FAIL_QUEUE };

struct mem_file {
	const char *key;
	uint64_t size;
	int64_t mtime_ns;
	unsigned seed;
};

struct fake_be {
	struct backend base;
	struct mem_file *files;
	int nfiles;
	int threaded;
	enum fail_mode fail;
	atomic_int submits, lists;
	pthread_mutex_t lock;
	pthread_t threads[4096];
	int nthreads;
};

static struct mem_file dataset[] = {
	{ "a.bin", 3 * CHUNK + 1234, 1000, 1 },
	{ "d0/f0.bin", 4 * CHUNK, 2000, 2 },
	{ "d0/f1.bin", 2 * CHUNK - 1, 3000, 3 },
	{ "d1/sub/f2.bin", 5 * CHUNK + 77, 4000, 4 },
	{ "d1/sub/f3.bin", 100, 5000, 5 },
	{ "d1/empty", 0, 6000, 6 },
	{ "d2/with space.bin", 3 * CHUNK, 7000, 7 },
	{ "d2/\xc3\xa9t\xc3\xa9.bin", 2 * CHUNK + 5, 8000, 8 },
};
#define NFILES ((int)(sizeof(dataset) / sizeof(dataset[0])))

static unsigned char byte_at(unsigned seed, uint64_t i)
{
	uint64_t z = i * 0x9e3779b97f4a7c15ull + seed * 0xbf58476d1ce4e5b9ull;
	return (unsigned char)((z ^ (z >> 29)) >> 24);
}

static struct mem_file *fb_find(struct fake_be *fb, const char *key)
{
	for (int i = 0; i < fb->nfiles; i++)
		if (!strcmp(fb->files[i].key, key))
			return &fb->files[i];
	return NULL;
}

static int fb_list(struct backend *be, backend_list_fn fn, void *arg)
{
	struct fake_be *fb = (struct fake_be *)be;
	int rc;

	atomic_fetch_add(&fb->lists, 1);
	for (int i = 0; i < fb->nfiles; i++) {
		struct backend_stat st = { .size = fb->files[i].size, .mtime_ns = fb->files[i].mtime_ns };

		rc = fn(arg, fb->files[i].key, &st);
		if (rc)
			return rc;
	}
	return 0;
}

static int fb_stat(struct backend *be, const char *key, struct backend_stat *st)
{
	struct mem_file *f = fb_find((struct fake_be *)be, key);

	if (!f)
		return -ENOENT;
	memset(st, 0, sizeof(*st));
	st->size = f->size;
	st->mtime_ns = f->mtime_ns;
	return 0;
}

static void *complete_thread(void *arg)
{
	struct backend_req *req = arg;

	usleep(1000);
	req->done(req);
	return NULL;
}

static int fb_submit(struct backend *be, struct backend_req *req)
{
	struct fake_be *fb = (struct fake_be *)be;
	struct mem_file *f;
	uint64_t n = 0;

	if (fb->fail == FAIL_QUEUE)
		return -EAGAIN;
	atomic_fetch_add(&fb->submits, 1);
	atomic_fetch_add(&be->counters.requests, 1);
	f = fb_find(fb, req->key);
	memset(&req->current, 0, sizeof(req->current));
	if (!f) {
		req->result = -ENOENT;
	} else if (fb->fail == FAIL_EIO) {
		req->result = -EIO;
	} else {
		req->current.size = f->size;
		req->current.mtime_ns = f->mtime_ns;
		if ((req->expect.size || req->expect.mtime_ns) &&
		    (req->expect.size != f->size || req->expect.mtime_ns != f->mtime_ns)) {
			req->result = -ESTALE;
		} else {
			if (req->off < f->size)
				n = MIN_U(f->size - req->off, req->len);
			for (uint64_t i = 0; i < n; i++)
				((unsigned char *)req->buf)[i] = byte_at(f->seed, req->off + i);
			if (fb->fail == FAIL_SHORT && n > 1)
				n /= 2;
			req->result = (ssize_t)n;
			atomic_fetch_add(&be->counters.bytes, n);
		}
	}
	if (req->result < 0 && req->result != -ESTALE)
		atomic_fetch_add(&be->counters.errors, 1);
	if (fb->threaded) {
		pthread_mutex_lock(&fb->lock);
		ck_assert_int_lt(fb->nthreads, (int)(sizeof(fb->threads) / sizeof(fb->threads[0])));
		ck_assert_int_eq(pthread_create(&fb->threads[fb->nthreads++], NULL, complete_thread, req), 0);
		pthread_mutex_unlock(&fb->lock);
	} else {
		req->done(req);
	}
	return 0;
}

static void fb_join(struct fake_be *fb)
{
	pthread_mutex_lock(&fb->lock);
	for (int i = 0; i < fb->nthreads; i++)
		pthread_join(fb->threads[i], NULL);
	fb->nthreads = 0;
	pthread_mutex_unlock(&fb->lock);
}

static void fb_destroy(struct backend *be)
{
	struct fake_be *fb = (struct fake_be *)be;

	fb_join(fb);
	pthread_mutex_destroy(&fb->lock);
	free(fb->files);
	free(be->url);
	free(fb);
}

static const struct backend_ops fake_ops = {
	.name = "fake", .list = fb_list, .stat = fb_stat, .submit = fb_submit, .destroy = fb_destroy,
};

static struct fake_be *fb_new(int threaded)
{
	struct fake_be *fb = calloc(1, sizeof(*fb));

	ck_assert_ptr_nonnull(fb);
	fb->base.ops = &fake_ops;
	fb->base.url = strdup("mem://test/\"quoted\"\\set");
	fb->base.concurrency = 16;
	fb->files = malloc(sizeof(dataset));
	memcpy(fb->files, dataset, sizeof(dataset));
	fb->nfiles = NFILES;
	fb->threaded = threaded;
	pthread_mutex_init(&fb->lock, NULL);
	return fb;
}

/* ---- helpers ---- */

static char tmpdir[64];

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb; (void)flag; (void)ftw;
	return remove(p);
}

static void setup(void)
{
	strcpy(tmpdir, "/tmp/check_cache.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown(void)
{
	nftw(tmpdir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static uint64_t total_data(void)
{
	uint64_t t = 0;

	for (int i = 0; i < NFILES; i++)
		t += dataset[i].size;
	return t;
}

static void cfg_init(struct cache_config *cfg, uint64_t capacity, enum policy_kind pol)
{
	cache_config_init(cfg);
	cfg->cache_dir = tmpdir;
	cfg->capacity = capacity;
	cfg->chunk_size = CHUNK;
	cfg->policy = pol;
	cfg->flush_ms = 50;
}

static struct cache *open_cache(const struct cache_config *cfg, struct fake_be *fb)
{
	struct cache *c;
	char err[256];
	int rc = cache_open(cfg, &fb->base, &c, err, sizeof(err));

	ck_assert_msg(rc == 0, "cache_open: %d %s", rc, err);
	return c;
}

/* Copy a read reply into out: store segments by pread, memory by memcpy. */
static ssize_t read_into(struct cache_file *f, uint64_t off, size_t len, unsigned char *out)
{
	struct cache_read rd;
	ssize_t n = cache_file_read(f, off, len, &rd);
	size_t pos = 0;

	if (n < 0) {
		ck_assert_int_eq(rd.nhold, 0);
		return n;
	}
	for (int i = 0; i < rd.nseg; i++) {
		const struct cache_seg *s = &rd.seg[i];

		if (s->fd >= 0)
			ck_assert_int_eq(pread(s->fd, out + pos, s->len, (off_t)s->off), (ssize_t)s->len);
		else
			memcpy(out + pos, s->buf, s->len);
		pos += s->len;
	}
	ck_assert_uint_eq(pos, (size_t)n);
	cache_read_release(&rd);
	return n;
}

static void check_bytes(const unsigned char *buf, size_t n, unsigned seed, uint64_t off)
{
	for (size_t i = 0; i < n; i++)
		if (buf[i] != byte_at(seed, off + i))
			ck_abort_msg("byte %llu differs (seed %u)", (unsigned long long)(off + i), seed);
}

/* Read a whole file in `step`-byte pieces and compare; returns 0 or the error. */
static int read_file(struct cache *c, const struct mem_file *mf, size_t step)
{
	unsigned char *buf = malloc(CACHE_MAX_READ);
	struct cache_file *f;
	struct ns_attr a;
	uint64_t off = 0;
	ssize_t n;

	ck_assert_ptr_nonnull(buf);

	ck_assert_int_eq(cache_resolve(c, mf->key, &a), 0);
	ck_assert_int_eq(cache_file_open(c, a.ino, &f), 0);
	ck_assert_uint_eq(cache_file_size(f), mf->size);
	for (;;) {
		n = read_into(f, off, step, buf);
		if (n < 0) {
			cache_file_close(f);
			free(buf);
			return (int)n;
		}
		if (n == 0)
			break;
		check_bytes(buf, (size_t)n, mf->seed, off);
		off += (uint64_t)n;
	}
	ck_assert_uint_eq(off, mf->size);
	cache_file_close(f);
	free(buf);
	return 0;
}

static void read_all(struct cache *c, const struct fake_be *fb, size_t step)
{
	for (int i = 0; i < fb->nfiles; i++)
		ck_assert_int_eq(read_file(c, &fb->files[i], step), 0);
}

static unsigned long long ctr_load(const atomic_uint_fast64_t *v)
{
	return (unsigned long long)atomic_load(v);
}
#define CTR(c, name) ctr_load(&cache_counters(c)->name)

/* ---- tests ---- */

static int collect(void *arg, const char *name, const struct ns_attr *a)
{
	char *out = arg;

	(void)a;
	strcat(out, name);
	strcat(out, "|");
	return 0;
}

START_TEST(test_namespace)
{
	struct fake_be *fb = fb_new(0);
	struct cache_config cfg;
	struct cache *c;
	struct ns_attr a, d;
	struct cache_file *f;
	char names[512] = "";

	cfg_init(&cfg, 1ull << 30, POLICY_SHADE);
	c = open_cache(&cfg, fb);
	ck_assert_int_eq(atomic_load(&fb->lists), 1);
	ck_assert_uint_eq(cache_nfiles(c), NFILES);
	ck_assert_int_eq(cache_lookup(c, INDEX_ROOT_INO, "d1", &d), 0);
	ck_assert(d.is_dir);
	ck_assert_int_eq(cache_lookup(c, d.ino, "sub", &a), 0);
	ck_assert(a.is_dir);
	ck_assert_int_eq(cache_resolve(c, "d1/sub/f2.bin", &a), 0);
	ck_assert(!a.is_dir);
	ck_assert_uint_eq(a.size, dataset[3].size);
	ck_assert_int_eq(a.mtime_ns, dataset[3].mtime_ns);
	ck_assert_int_eq(cache_getattr(c, a.ino, &a), 0);
	ck_assert_uint_eq(a.size, dataset[3].size);
	ck_assert_int_eq(cache_resolve(c, "d2/with space.bin", &a), 0);
	ck_assert_int_eq(cache_resolve(c, "nope", &a), -ENOENT);
	ck_assert_int_eq(cache_lookup(c, INDEX_ROOT_INO, "zz", &a), -ENOENT);
	ck_assert_int_eq(cache_readdir(c, INDEX_ROOT_INO, collect, names), 0);
	ck_assert_str_eq(names, "a.bin|d0|d1|d2|");
	ck_assert_int_eq(cache_file_open(c, d.ino, &f), -EISDIR);
	ck_assert_int_eq(cache_file_open(c, 999999, &f), -ENOENT);
	cache_close(c);
	backend_destroy(&fb->base);
}
END_TEST

static void do_read_test(int threaded)
{
	struct fake_be *fb = fb_new(threaded);
	struct cache_config cfg;
	struct cache *c;
	uint64_t cached, size;
	struct ns_attr a;
	unsigned long long hit0;
	int before;

	cfg_init(&cfg, 1ull << 30, POLICY_SHADE);
	c = open_cache(&cfg, fb);
	/* odd step: reads straddle chunk boundaries */
	read_all(c, fb, 100003);
	ck_assert_uint_eq(CTR(c, opens), NFILES);
	ck_assert_uint_eq(CTR(c, open_hits), 1); /* only the empty file */
	ck_assert_uint_eq(CTR(c, read_bytes), total_data());
	ck_assert_uint_lt(CTR(c, read_bytes_from_cache), total_data());
	ck_assert_uint_eq(CTR(c, fetch_bytes), total_data()); /* each chunk fetched once */
	ck_assert_int_eq(cache_resolve(c, "d0/f0.bin", &a), 0);
	ck_assert_int_eq(cache_cached_bytes(c, a.ino, &cached, &size), 0);
	ck_assert_uint_eq(cached, size);
	ck_assert_uint_eq(size, dataset[1].size);

	/* the second pass does not touch the backend, and reads 1 MiB at a time */
	before = atomic_load(&fb->submits);
	hit0 = CTR(c, read_bytes_from_cache);
	read_all(c, fb, CACHE_MAX_READ);
	ck_assert_int_eq(atomic_load(&fb->submits), before);
	ck_assert_uint_eq(CTR(c, open_hits), 1 + NFILES);
	ck_assert_uint_eq(CTR(c, read_bytes_from_cache) - hit0, total_data());
	ck_assert_uint_le(cache_used_bytes(c), cache_capacity(c));
	cache_close(c);
	backend_destroy(&fb->base);
}

START_TEST(test_read_inline)
{
	do_read_test(0);
}
END_TEST

START_TEST(test_read_threaded)
{
	do_read_test(1);
}
END_TEST

START_TEST(test_read_edges)
{
	struct fake_be *fb = fb_new(0);
	struct cache_config cfg;
	struct cache *c;
	struct cache_file *f;
	struct ns_attr a;
	unsigned char *buf = malloc(CACHE_MAX_READ);
	const struct mem_file *mf = &dataset[0];

	cfg_init(&cfg, 1ull << 30, POLICY_SHADE);
	c = open_cache(&cfg, fb);
	ck_assert_int_eq(cache_resolve(c, mf->key, &a), 0);
	ck_assert_int_eq(cache_file_open(c, a.ino, &f), 0);
	/* at end of file: short; past it: 0; zero length: 0 */
	ck_assert_int_eq(read_into(f, mf->size - 10, 4096, buf), 10);
	check_bytes(buf, 10, mf->seed, mf->size - 10);
	ck_assert_int_eq(read_into(f, mf->size, 4096, buf), 0);
	ck_assert_int_eq(read_into(f, mf->size + 12345, 4096, buf), 0);
	ck_assert_int_eq(read_into(f, 0, 0, buf), 0);
	/* one read over the boundary of chunks 1 and 2, then a full 1 MiB */
	ck_assert_int_eq(read_into(f, 2 * CHUNK - 7, 14, buf), 14);
	check_bytes(buf, 14, mf->seed, 2 * CHUNK - 7);
	cache_file_close(f);
	/* a full 1 MiB read over 5 chunks, not aligned */
	mf = &dataset[3];
	ck_assert_int_eq(cache_resolve(c, mf->key, &a), 0);
	ck_assert_int_eq(cache_file_open(c, a.ino, &f), 0);
	ck_assert_int_eq(read_into(f, 17, CACHE_MAX_READ, buf), CACHE_MAX_READ);
	check_bytes(buf, CACHE_MAX_READ, mf->seed, 17);
	cache_file_close(f);
	/* the empty file */
	ck_assert_int_eq(cache_resolve(c, "d1/empty", &a), 0);
	ck_assert_int_eq(cache_file_open(c, a.ino, &f), 0);
	ck_assert_int_eq(read_into(f, 0, 4096, buf), 0);
	cache_file_close(f);
	cache_close(c);
	backend_destroy(&fb->base);
	free(buf);
}
END_TEST

struct reader_arg {
	struct cache *c;
	const struct mem_file *mf;
	int rc;
};

static void *reader(void *arg)
{
	struct reader_arg *ra = arg;

	ra->rc = read_file(ra->c, ra->mf, 65536);
	return NULL;
}

/* Concurrent readers of one file share fetches and all get the right bytes. */
START_TEST(test_concurrent_readers)
{
	struct fake_be *fb = fb_new(1);
	struct cache_config cfg;
	struct cache *c;
	pthread_t th[6];
	struct reader_arg ra[6];
	const struct mem_file *mf = &dataset[3];

	cfg_init(&cfg, 1ull << 30, POLICY_SHADE);
	c = open_cache(&cfg, fb);
	for (int i = 0; i < 6; i++) {
		ra[i] = (struct reader_arg){ c, mf, -1 };
		ck_assert_int_eq(pthread_create(&th[i], NULL, reader, &ra[i]), 0);
	}
	for (int i = 0; i < 6; i++) {
		pthread_join(th[i], NULL);
		ck_assert_int_eq(ra[i].rc, 0);
	}
	/* every chunk fetched at most once per reader, at least once */
	ck_assert_int_ge(atomic_load(&fb->submits), 6);
	ck_assert_uint_eq(CTR(c, fetch_bytes), mf->size);
	cache_close(c);
	backend_destroy(&fb->base);
}
END_TEST

/* With room for about half the data: SHADE keeps what it has, LRU churns. */
static void capacity_run(enum policy_kind pol, unsigned long long *evictions,
			 unsigned long long *from_cache)
{
	struct fake_be *fb = fb_new(0);
	struct cache_config cfg;
	struct cache *c;
	uint64_t used;

	cfg_init(&cfg, total_data() / 2 + (1u << 20), pol);
	c = open_cache(&cfg, fb);
	for (int pass = 0; pass < 3; pass++) {
		read_all(c, fb, 200000);
		usleep(120 * 1000); /* let the flusher run */
		used = cache_used_bytes(c);
		ck_assert_msg(used <= cache_capacity(c), "pass %d: used %llu > capacity %llu", pass,
			      (unsigned long long)used, (unsigned long long)cache_capacity(c));
	}
	ck_assert_uint_gt(CTR(c, not_admitted) + CTR(c, evictions), 0);
	*evictions = CTR(c, evictions);
	*from_cache = CTR(c, read_bytes_from_cache);
	cache_close(c);
	backend_destroy(&fb->base);
}

START_TEST(test_capacity_shade)
{
	unsigned long long ev, hit;

	capacity_run(POLICY_SHADE, &ev, &hit);
	ck_assert_uint_eq(ev, 0);
	ck_assert_uint_gt(hit, 0);
}
END_TEST

START_TEST(test_capacity_lru)
{
	unsigned long long ev, hit;

	capacity_run(POLICY_LRU, &ev, &hit);
	ck_assert_uint_gt(ev, 0);
}
END_TEST

/* Peers: with an ownership function, objects this node owns stay cached
 * through passes that would evict them under plain LRU (read in dataset
 * order, the owned ones early, a cache of half the data). */
static int owns_d0(void *arg, const char *key)
{
	(void)arg;
	return !strncmp(key, "d0/", 3) || !strcmp(key, "d1/sub/f3.bin");
}

START_TEST(test_owned_first)
{
	struct fake_be *fb = fb_new(0);
	struct cache_config cfg;
	struct cache *c;

	cfg_init(&cfg, total_data() / 2 + (1u << 20), POLICY_LRU);
	cfg.owns = owns_d0;
	c = open_cache(&cfg, fb);
	for (int pass = 0; pass < 3; pass++) {
		read_all(c, fb, 200000);
		ck_assert_uint_le(cache_used_bytes(c), cache_capacity(c));
		for (int i = 0; i < NFILES; i++) {
			struct ns_attr a;
			uint64_t cached, size;

			if (!owns_d0(NULL, dataset[i].key))
				continue;
			ck_assert_int_eq(cache_resolve(c, dataset[i].key, &a), 0);
			ck_assert_int_eq(cache_cached_bytes(c, a.ino, &cached, &size), 0);
			ck_assert_msg(cached == size, "pass %d: owned %s: %llu of %llu bytes cached", pass,
				      dataset[i].key, (unsigned long long)cached,
				      (unsigned long long)size);
		}
	}
	/* foreign objects were cached in the room left, and evicted for each other */
	ck_assert_uint_gt(CTR(c, evictions), 0);
	cache_close(c);
	backend_destroy(&fb->base);
}
END_TEST

START_TEST(test_persistence)
{
	struct fake_be *fb = fb_new(0);
	struct cache_config cfg;
	struct cache *c;
	char *js;
	size_t jl;

	cfg_init(&cfg, 1ull << 30, POLICY_SHADE);
	c = open_cache(&cfg, fb);
	read_all(c, fb, CACHE_MAX_READ);
	cache_close(c);
	backend_destroy(&fb->base);

	fb = fb_new(0);
	c = open_cache(&cfg, fb);
	ck_assert_int_eq(atomic_load(&fb->lists), 0); /* the snapshot is reused */
	ck_assert_uint_eq(cache_nfiles(c), NFILES);
	ck_assert_uint_eq(CTR(c, opens), 0);
	ck_assert_int_eq(cache_stats_json(c, &js, &jl), 0);
	ck_assert_ptr_nonnull(strstr(js, "\"cache_objects\":7,"));
	free(js);
	read_all(c, fb, 300000);
	ck_assert_int_eq(atomic_load(&fb->submits), 0);
	ck_assert_uint_eq(CTR(c, verify_failures), 0);
	ck_assert_uint_eq(CTR(c, read_bytes_from_cache), total_data());
	ck_assert_uint_eq(CTR(c, open_hits), NFILES);
	cache_close(c);
	backend_destroy(&fb->base);
}
END_TEST

static int corrupted;

static int corrupt_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	int fd;

	(void)ftw;
	if (flag != FTW_F || !strstr(p, "/objects/") || sb->st_size < 2)
		return 0;
	fd = open(p, O_WRONLY);
	ck_assert_int_ge(fd, 0);
	/* flip bytes in the first chunk and in the last byte */
	ck_assert_int_eq(pwrite(fd, "XYZ", 1, 0), 1);
	ck_assert_int_eq(pwrite(fd, "\x55", 1, sb->st_size - 1), 1);
	close(fd);
	corrupted++;
	return 0;
}

START_TEST(test_corruption_detected)
{
	struct fake_be *fb = fb_new(0);
	struct cache_config cfg;
	struct cache *c;

	cfg_init(&cfg, 1ull << 30, POLICY_SHADE);
	c = open_cache(&cfg, fb);
	read_all(c, fb, CACHE_MAX_READ);
	cache_close(c);
	backend_destroy(&fb->base);

	corrupted = 0;
	ck_assert_int_eq(nftw(tmpdir, corrupt_cb, 16, FTW_PHYS), 0);
	ck_assert_int_eq(corrupted, NFILES - 1); /* all but the empty file */

	fb = fb_new(0);
	c = open_cache(&cfg, fb);
	read_all(c, fb, CACHE_MAX_READ); /* the bytes are right all the same */
	ck_assert_uint_ge(CTR(c, verify_failures), (unsigned long long)corrupted);
	ck_assert_int_gt(atomic_load(&fb->submits), 0);
	/* refetched chunks are trusted again: a third pass needs no backend */
	{
		int before = atomic_load(&fb->submits);

		read_all(c, fb, CACHE_MAX_READ);
		ck_assert_int_eq(atomic_load(&fb->submits), before);
	}
	cache_close(c);
	backend_destroy(&fb->base);
}
END_TEST

static void *close_later(void *arg)
{
	usleep(200 * 1000);
	cache_close(arg);
	return NULL;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A made-up mount table: two epochfs mounts (one with escaped characters in
 * its path) and an ext4 mount. */
static const char fake_mountinfo[] =
	"22 1 253:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"
	"40 22 0:40 / /mnt/with\\040space rw,nosuid,nodev shared:9 - fuse.epochfs /src rw\n"
	"41 22 0:41 / /mnt/t\\011b\\134c rw - fuse.epochfs /src2 rw\n"
	"42 22 253:1 / /mnt/other rw - ext4 /dev/vdb rw\n";

/* The state in the cache dir's lock file: its one line without the pid. */
static void lock_line(char *out, size_t len)
{
	char path[128], buf[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/lock", tmpdir);
	ck_assert_ptr_nonnull(f = fopen(path, "r"));
	ck_assert_ptr_nonnull(fgets(buf, sizeof(buf), f));
	ck_assert_ptr_null(fgets(path, sizeof(path), f)); /* one line, nothing left over */
	fclose(f);
	ck_assert_ptr_nonnull(strchr(buf, ' '));
	buf[strcspn(buf, "\n")] = 0;
	snprintf(out, len, "%s", strchr(buf, ' ') + 1);
}

/* A second open of a locked cache dir fails at once while the holder is
 * starting or still mounted, and waits for a holder that has left its
 * mount: closing, or its epochfs mount gone from the mount table. */
START_TEST(test_ebusy)
{
	static const struct {
		const char *state, *says;
		int waits;
	} cases[] = {
		{ NULL, "starting", 0 },
		{ "mounted 0:40 /mnt/with\\040space", "mounted on /mnt/with\\040space", 0 },
		{ "mounted - /mnt/with\\040space", "mounted on", 0 },   /* device not known */
		{ "mounted 0:99 /mnt/with\\040space", NULL, 1 },        /* another mount there now */
		{ "mounted - /mnt/other", NULL, 1 },                    /* not epochfs */
		{ "mounted 0:50 /nonexistent/mnt", NULL, 1 },           /* unmounted */
		{ "closing", NULL, 1 },
	};
	struct fake_be *fb = fb_new(0), *fb2 = fb_new(0);
	struct cache_config cfg;
	struct cache *c, *c2;
	char err[512], mi[] = "/tmp/check_cache_mi.XXXXXX", line[256];
	const char *old_mi = cache_mountinfo;
	int fd = mkstemp(mi);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, fake_mountinfo, strlen(fake_mountinfo)),
			 (ssize_t)strlen(fake_mountinfo));
	close(fd);
	cache_mountinfo = mi;
	cfg_init(&cfg, 1ull << 30, POLICY_SHADE);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		pthread_t t;
		double t0;

		c = open_cache(&cfg, fb);
		if (cases[i].state)
			cache_note_owner(c, cases[i].state);
		c2 = (struct cache *)1;
		if (!cases[i].waits) {
			ck_assert_int_eq(cache_open(&cfg, &fb2->base, &c2, err, sizeof(err)), -EBUSY);
			ck_assert_ptr_null(c2);
			ck_assert_msg(strstr(err, "in use by another epochfs daemon") &&
				      strstr(err, cases[i].says), "%s: %s", cases[i].says, err);
			/* the refused daemon left the holder's note as it was */
			lock_line(line, sizeof(line));
			ck_assert_str_eq(line, cases[i].state ? cases[i].state : "starting");
			cache_close(c);
			continue;
		}
		t0 = now_s();
		ck_assert_int_eq(pthread_create(&t, NULL, close_later, c), 0);
		ck_assert_msg(cache_open(&cfg, &fb2->base, &c2, err, sizeof(err)) == 0,
			      "%s: %s", cases[i].state, err);
		/* it got the directory by waiting for the close, 200 ms later */
		ck_assert_msg(now_s() - t0 >= 0.15, "%s: did not wait", cases[i].state);
		pthread_join(t, NULL);
		cache_close(c2);
	}

	/* The holder's own note: the device and the escaped path of its mount. */
	c = open_cache(&cfg, fb);
	cache_note_mounted(c, "/mnt/with space");
	lock_line(line, sizeof(line));
	ck_assert_str_eq(line, "mounted 0:40 /mnt/with\\040space");
	cache_note_mounted(c, "/mnt/t\tb\\c");
	lock_line(line, sizeof(line));
	ck_assert_str_eq(line, "mounted 0:41 /mnt/t\\011b\\134c");
	cache_close(c);

	cache_mountinfo = old_mi;
	unlink(mi);
	/* once closed, the directory can be opened again */
	c = open_cache(&cfg, fb2);
	cache_close(c);
	backend_destroy(&fb->base);
	backend_destroy(&fb2->base);
}
END_TEST

START_TEST(test_bad_cache_dir)
{
	struct fake_be *fb = fb_new(0);
	struct cache_config cfg;
	struct cache *c;
	char err[256], path[128];

	cfg_init(&cfg, 1ull << 30, POLICY_SHADE);
	snprintf(path, sizeof(path), "%s/missing", tmpdir);
	cfg.cache_dir = path;
	ck_assert_int_eq(cache_open(&cfg, &fb->base, &c, err, sizeof(err)), -ENOENT);
	ck_assert_str_ne(err, "");
	backend_destroy(&fb->base);
}
END_TEST

static void expect_read_error(enum fail_mode mode, int threaded)
{
	struct fake_be *fb = fb_new(threaded);
	struct cache_config cfg;
	struct cache *c;

	cfg_init(&cfg, 1ull << 30, POLICY_SHADE);
	c = open_cache(&cfg, fb);
	fb->fail = mode;
	if (mode == FAIL_QUEUE)
		ck_assert_int_lt(read_file(c, &dataset[1], 100000), 0);
	else
		ck_assert_int_eq(read_file(c, &dataset[1], 100000), -EIO);
	/* once the source recovers the file reads fine */
	fb->fail = FAIL_NONE;
	ck_assert_int_eq(read_file(c, &dataset[1], 100000), 0);
	if (mode == FAIL_EIO)
		ck_assert_uint_ge(atomic_load(&fb->base.counters.errors), 1);
	cache_close(c);
	backend_destroy(&fb->base);
}

START_TEST(test_backend_eio)
{
	expect_read_error(FAIL_EIO, 0);
}
END_TEST

START_TEST(test_backend_eio_threaded)
{
	expect_read_error(FAIL_EIO, 1);
}
END_TEST

START_TEST(test_backend_short)
{
	expect_read_error(FAIL_SHORT, 0);
}
END_TEST

START_TEST(test_backend_refuses)
{
	expect_read_error(FAIL_QUEUE, 0);
}
END_TEST

static uint64_t inval_ino;
static int inval_calls;

static void inval_hook(void *arg, uint64_t ino)
{
	ck_assert_ptr_eq(arg, &inval_calls);
	inval_ino = ino;
	inval_calls++;
}

START_TEST(test_stale)
{
	struct fake_be *fb = fb_new(0);
	struct cache_config cfg;
	struct cache *c;
	struct cache_file *f;
	struct ns_attr a;
	unsigned char *buf = malloc(CACHE_MAX_READ);
	struct mem_file *mf = &fb->files[1];

	cfg_init(&cfg, 1ull << 30, POLICY_SHADE);
	c = open_cache(&cfg, fb);
	cache_set_inval_hook(c, inval_hook, &inval_calls);
	inval_calls = 0;
	ck_assert_int_eq(cache_resolve(c, mf->key, &a), 0);
	ck_assert_int_eq(cache_file_open(c, a.ino, &f), 0);
	ck_assert_int_eq(read_into(f, 0, 1000, buf), 1000);
	/* the source file changes under the open handle */
	mf->size += 1000;
	mf->mtime_ns += 1;
	mf->seed = 99;
	ck_assert_int_eq(read_into(f, 2 * CHUNK, 1000, buf), -EIO);
	ck_assert_int_eq(inval_calls, 1);
	ck_assert_uint_eq(inval_ino, a.ino);
	ck_assert_uint_eq(CTR(c, stale), 1);
	/* the handle stays failed, even for cached bytes */
	ck_assert_int_eq(read_into(f, 0, 1000, buf), -EIO);
	cache_file_close(f);
	/* the index now has the new identity, and a new open reads the new bytes */
	ck_assert_int_eq(cache_getattr(c, a.ino, &a), 0);
	ck_assert_uint_eq(a.size, mf->size);
	ck_assert_int_eq(a.mtime_ns, mf->mtime_ns);
	ck_assert_int_eq(read_file(c, mf, 77777), 0);
	cache_close(c);
	backend_destroy(&fb->base);
	free(buf);
}
END_TEST

static int json_has_number(const char *js, const char *key)
{
	char pat[64];
	const char *p;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	p = strstr(js, pat);
	return p && p[strlen(pat)] >= '0' && p[strlen(pat)] <= '9';
}

START_TEST(test_stats_json)
{
	static const char *keys[] = {
		"opens", "open_hits", "reads", "read_bytes", "read_bytes_from_cache",
		"backend_requests", "backend_bytes", "backend_errors", "stall_ns", "cache_bytes",
		"cache_capacity", "cache_objects", "evictions",
	};
	struct fake_be *fb = fb_new(0);
	struct cache_config cfg;
	struct cache *c;
	char *js, pat[64];
	size_t len, quotes = 0, esc = 0;

	cfg_init(&cfg, 123456789, POLICY_SHADE);
	c = open_cache(&cfg, fb);
	read_all(c, fb, CACHE_MAX_READ);
	ck_assert_int_eq(cache_stats_json(c, &js, &len), 0);
	ck_assert_uint_eq(strlen(js), len);
	ck_assert_int_eq(js[0], '{');
	ck_assert_ptr_nonnull(strstr(js, "}"));
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		ck_assert_msg(json_has_number(js, keys[i]), "key %s missing in %s", keys[i], js);
	ck_assert_ptr_nonnull(strstr(js, "\"cache_capacity\":123456789,"));
	snprintf(pat, sizeof(pat), "\"opens\":%d,", NFILES);
	ck_assert_ptr_nonnull(strstr(js, pat));
	snprintf(pat, sizeof(pat), "\"read_bytes\":%llu,", (unsigned long long)total_data());
	ck_assert_ptr_nonnull(strstr(js, pat));
	ck_assert_ptr_nonnull(strstr(js, "\"source\":\"mem://test/\\\"quoted\\\"\\\\set\""));
	ck_assert_ptr_nonnull(strstr(js, "\"policy\":\"shade\""));
	/* unescaped quotes pair up */
	for (size_t i = 0; i < len; i++) {
		if (js[i] == '\\') {
			esc++;
			i++;
			continue;
		}
		if (js[i] == '"')
			quotes++;
	}
	ck_assert_uint_eq(quotes % 2, 0);
	ck_assert_uint_eq(esc, 3);
	free(js);
	cache_close(c);
	backend_destroy(&fb->base);
}
END_TEST

static Suite *cache_suite(void)
{
	Suite *s = suite_create("cache");
	TCase *tc = tcase_create("engine");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_namespace);
	tcase_add_test(tc, test_read_inline);
	tcase_add_test(tc, test_read_threaded);
	tcase_add_test(tc, test_read_edges);
	tcase_add_test(tc, test_concurrent_readers);
	tcase_add_test(tc, test_capacity_shade);
	tcase_add_test(tc, test_capacity_lru);
	tcase_add_test(tc, test_owned_first);
	tcase_add_test(tc, test_persistence);
	tcase_add_test(tc, test_corruption_detected);
	tcase_add_test(tc, test_ebusy);
	tcase_add_test(tc, test_bad_cache_dir);
	tcase_add_test(tc, test_backend_eio);
	tcase_add_test(tc, test_backend_eio_threaded);
	tcase_add_test(tc, test_backend_short);
	tcase_add_test(tc, test_backend_refuses);
	tcase_add_test(tc, test_stale);
	tcase_add_test(tc, test_stats_json);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(cache_suite());
	int failed;

	log_init("check_cache", LOG_LVL_ERR, 0);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
