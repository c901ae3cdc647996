/* SPDX-License-Identifier: MIT */
/* Unit tests of the identity table (cache/ns.c, Check): what an open needs
 * of a file (content id, size) answered from memory, filled at the first
 * lookup, always the index's record: dropped when a file's identity changes
 * (also against a lookup that read the index before the change), replaced
 * by a relisting, read by threads while it changes; and, through a whole
 * cache, an open answered from the table never stores a new version's
 * bytes under the content id it was opened at. */
#define _GNU_SOURCE
#include <check.h>
#include <sys/time.h>

#include "testcache.h"
#include "cache/engine.h"
#include "backends/base/log.h"

/* ---- a source listed from memory ---- */

#define MAXF 512

struct mem_be {
	struct backend base;
	int n;
	char keys[MAXF][128];
	struct backend_stat st[MAXF];
};

static int mem_list(struct backend *be, backend_list_fn fn, void *arg)
{
	struct mem_be *m = (struct mem_be *)be;
	int rc;

	for (int i = 0; i < m->n; i++)
		if ((rc = fn(arg, m->keys[i], &m->st[i])))
			return rc;
	return 0;
}

static void mem_destroy(struct backend *be)
{
	free(be->url);
	free(be);
}

static const struct backend_ops mem_ops = { .name = "mem", .list = mem_list, .destroy = mem_destroy };

static void mem_add(struct mem_be *m, const char *key, uint64_t size, int64_t mtime)
{
	ck_assert_int_lt(m->n, MAXF);
	snprintf(m->keys[m->n], sizeof(m->keys[0]), "%s", key);
	m->st[m->n] = (struct backend_stat){ .size = size, .mtime_ns = mtime };
	snprintf(m->st[m->n].etag, sizeof(m->st[0].etag), "\"e%d\"", m->n);
	m->n++;
}

static char tmpdir[64];
static struct mem_be *mb;
static struct ns ns;

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb; (void)flag; (void)ftw;
	return remove(p);
}

/* nd directories of nper files each: d<k>/f<i>, sizes 1000 + file number. */
static void setup_ns(int nd, int nper)
{
	char path[128], err[256] = "";

	strcpy(tmpdir, "/tmp/check_ns.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	snprintf(path, sizeof(path), "%s/index", tmpdir);
	memset(&ns, 0, sizeof(ns));
	ck_assert_int_eq(index_open(path, 1ull << 30, &ns.ix), 0);
	mb = calloc(1, sizeof(*mb));
	ck_assert_ptr_nonnull(mb);
	mb->base.ops = &mem_ops;
	mb->base.url = strdup("mem://set");
	for (int d = 0; d < nd; d++)
		for (int i = 0; i < nper; i++) {
			snprintf(path, sizeof(path), "d%d/f%03d", d, i);
			mem_add(mb, path, 1000 + (uint64_t)(d * nper + i), 5000 + d * nper + i);
		}
	ns.be = &mb->base;
	ck_assert_msg(ns_build(&ns, err, sizeof(err)) == 0, "%s", err);
}

static void teardown_ns(void)
{
	ns_table_close(&ns);
	index_close(ns.ix);
	backend_destroy(&mb->base);
	mb = NULL;
	nftw(tmpdir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static uint64_t ino_of(const char *path)
{
	struct ns_attr a;

	ck_assert_int_eq(index_resolve(ns.ix, ns.src.srcid, path, &a), 0);
	return a.ino;
}

/* The index's content id and size of ino (ns_identity). */
static void index_id(uint64_t ino, struct ns_fid *out)
{
	struct ns_attr a;
	char key[4096];

	ck_assert_int_eq(ns_identity(&ns, ino, &a, key, sizeof(key), out->cid), 0);
	out->size = a.size;
}

static void assert_same(const struct ns_fid *x, const struct ns_fid *y)
{
	ck_assert_uint_eq(x->size, y->size);
	ck_assert_mem_eq(x->cid, y->cid, CID_LEN);
}

static struct ns_table_stats tstats(void)
{
	struct ns_table_stats s;

	ns_table_stats(&ns, &s);
	return s;
}

/* Inodes are dense: 1 (the root) to next_ino - 1, files and directories. */
START_TEST(test_dense_inodes)
{
	struct ns_attr a;

	setup_ns(4, 25);
	ck_assert_uint_eq(ns.src.files, 100);
	ck_assert_uint_eq(ns.src.dirs, 5);
	ck_assert_uint_eq(ns.src.next_ino, ns.src.files + ns.src.dirs + 1);
	for (uint64_t i = INDEX_ROOT_INO; i < ns.src.next_ino; i++)
		ck_assert_int_eq(ns_getattr(&ns, i, &a), 0);
	ck_assert_int_eq(ns_getattr(&ns, ns.src.next_ino, &a), -ENOENT);
	ck_assert_int_eq(ns_getattr(&ns, 0, &a), -ENOENT);
	teardown_ns();
}
END_TEST

/* Filled by the first lookup, answered from memory after; directories and
 * inodes out of range are the index's errors and fill nothing. */
START_TEST(test_fill_and_hit)
{
	struct ns_fid id, ref;
	struct ns_attr a;
	uint64_t nfiles = 0;

	setup_ns(4, 25);
	/* no table yet: every lookup reads the index */
	ck_assert_int_eq(ns_file_id(&ns, ino_of("d0/f000"), &id), 0);
	ck_assert_uint_eq(tstats().entries, 0);
	ck_assert_int_eq(ns_table_open(&ns), 0);
	ck_assert_uint_eq(tstats().entries, ns.src.next_ino);
	for (uint64_t i = INDEX_ROOT_INO; i < ns.src.next_ino; i++) {
		ck_assert_int_eq(ns_getattr(&ns, i, &a), 0);
		if (a.is_dir) {
			ck_assert_int_eq(ns_file_id(&ns, i, &id), -EISDIR);
			continue;
		}
		nfiles++;
		ck_assert_int_eq(ns_file_id(&ns, i, &id), 0);
		index_id(i, &ref);
		assert_same(&id, &ref);
	}
	ck_assert_uint_eq(nfiles, 100);
	ck_assert_uint_eq(tstats().fills, 100);
	ck_assert_uint_eq(tstats().misses, 105); /* 100 files, 5 directories */
	/* the second pass is all hits */
	for (uint64_t i = INDEX_ROOT_INO; i < ns.src.next_ino; i++) {
		ck_assert_int_eq(ns_getattr(&ns, i, &a), 0);
		if (a.is_dir)
			continue;
		ck_assert_int_eq(ns_file_id(&ns, i, &id), 0);
		index_id(i, &ref);
		assert_same(&id, &ref);
	}
	ck_assert_uint_eq(tstats().misses, 105);
	ck_assert_uint_eq(tstats().fills, 100);
	ck_assert_int_eq(ns_file_id(&ns, ns.src.next_ino, &id), -ENOENT);
	ck_assert_int_eq(ns_file_id(&ns, 1ull << 40, &id), -ENOENT);
	teardown_ns();
}
END_TEST

/* A changed identity drops the entry: the next lookup reads the new one. */
START_TEST(test_set_identity_invalidates)
{
	struct backend_stat st = { .size = 77, .mtime_ns = 1 };
	struct ns_fid before, after, ref;
	uint64_t ino;

	setup_ns(2, 10);
	ck_assert_int_eq(ns_table_open(&ns), 0);
	ino = ino_of("d1/f003");
	ck_assert_int_eq(ns_file_id(&ns, ino, &before), 0);
	ck_assert_int_eq(ns_file_id(&ns, ino, &before), 0);
	ck_assert_uint_eq(tstats().misses, 1);
	strcpy(st.etag, "\"new\"");
	ck_assert_int_eq(ns_set_identity(&ns, ino, &st), 0);
	ck_assert_int_eq(ns_file_id(&ns, ino, &after), 0);
	ck_assert_uint_eq(tstats().misses, 2);
	ck_assert_uint_eq(after.size, 77);
	ck_assert_mem_ne(after.cid, before.cid, CID_LEN);
	index_id(ino, &ref);
	assert_same(&after, &ref);
	/* the same size and mtime, another ETag: another content id */
	strcpy(st.etag, "\"newer\"");
	ck_assert_int_eq(ns_set_identity(&ns, ino, &st), 0);
	ck_assert_int_eq(ns_file_id(&ns, ino, &before), 0);
	ck_assert_mem_ne(after.cid, before.cid, CID_LEN);
	index_id(ino, &ref);
	assert_same(&before, &ref);
	/* an entry never filled: the change is seen too */
	ck_assert_int_eq(ns_set_identity(&ns, ino_of("d0/f000"), &st), 0);
	ck_assert_int_eq(ns_file_id(&ns, ino_of("d0/f000"), &after), 0);
	ck_assert_uint_eq(after.size, 77);
	teardown_ns();
}
END_TEST

/* A lookup that read the index before a change and publishes after it
 * must not leave the old identity in the table.  The lookup's read
 * transaction is held (mdb_txn_begin below) while the change is made. */
static pthread_mutex_t hk_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hk_cond = PTHREAD_COND_INITIALIZER;
static pthread_t hk_thread;
static int hk_armed, hk_in, hk_go;
static __thread unsigned ro_txns; /* read transactions begun by this thread */

int mdb_txn_begin(MDB_env *env, MDB_txn *parent, unsigned flags, MDB_txn **txn)
{
	static int (*real)(MDB_env *, MDB_txn *, unsigned, MDB_txn **);
	int rc;

	if (!real)
		*(void **)&real = dlsym(RTLD_NEXT, "mdb_txn_begin");
	rc = real(env, parent, flags, txn);
	if (flags & MDB_RDONLY)
		ro_txns++;
	pthread_mutex_lock(&hk_lock);
	if (hk_armed && (flags & MDB_RDONLY) && pthread_equal(pthread_self(), hk_thread)) {
		hk_armed = 0;
		hk_in = 1;
		pthread_cond_broadcast(&hk_cond);
		while (!hk_go)
			pthread_cond_wait(&hk_cond, &hk_lock);
	}
	pthread_mutex_unlock(&hk_lock);
	return rc;
}

struct lookup_arg {
	uint64_t ino;
	struct ns_fid id;
	int rc;
};

static void *lookup_main(void *p)
{
	struct lookup_arg *la = p;

	la->rc = ns_file_id(&ns, la->ino, &la->id);
	return NULL;
}

START_TEST(test_fill_races_change)
{
	struct backend_stat st = { .size = 4242, .mtime_ns = 9 };
	struct lookup_arg la = { 0 };
	struct ns_fid old, now, ref;

	setup_ns(2, 10);
	la.ino = ino_of("d0/f005");
	index_id(la.ino, &old); /* before the table: it stays empty */
	ck_assert_int_eq(ns_table_open(&ns), 0);
	pthread_mutex_lock(&hk_lock);
	hk_armed = 1;
	hk_in = hk_go = 0;
	ck_assert_int_eq(pthread_create(&hk_thread, NULL, lookup_main, &la), 0);
	while (!hk_in)
		pthread_cond_wait(&hk_cond, &hk_lock);
	pthread_mutex_unlock(&hk_lock);
	/* the lookup holds a read transaction of the old record */
	ck_assert_int_eq(ns_set_identity(&ns, la.ino, &st), 0);
	pthread_mutex_lock(&hk_lock);
	hk_go = 1;
	pthread_cond_broadcast(&hk_cond);
	pthread_mutex_unlock(&hk_lock);
	pthread_join(hk_thread, NULL);
	ck_assert_int_eq(la.rc, 0);
	assert_same(&la.id, &old); /* it answered what it read, */
	ck_assert_int_eq(ns_file_id(&ns, la.ino, &now), 0); /* but the table has the change */
	ck_assert_uint_eq(now.size, 4242);
	index_id(la.ino, &ref);
	assert_same(&now, &ref);
	ck_assert_uint_eq(tstats().fills, 1); /* the lookup above: the racing one published nothing */
	teardown_ns();
}
END_TEST

/* Readers never see a torn entry while it changes under them. */
#define READERS 3
#define CHANGES 1000

struct hammer {
	uint64_t ino;
	struct ns_fid a, b;
	atomic_int stop;
	long n, bad;
};

static int same_id(const struct ns_fid *x, const struct ns_fid *y)
{
	return x->size == y->size && !memcmp(x->cid, y->cid, CID_LEN);
}

static void *reader_main(void *p)
{
	struct hammer *h = p;
	struct ns_fid x;
	long n = 0, bad = 0;

	while (!atomic_load(&h->stop) || n < 100) {
		if (ns_file_id(&ns, h->ino, &x) || (!same_id(&x, &h->a) && !same_id(&x, &h->b)))
			bad++;
		n++;
	}
	h->n = n; /* joined before it is read */
	h->bad += bad;
	return NULL;
}

/* Under valgrind, threads run one at a time and each change is an LMDB
 * write: 1,000 of them beside three spinning readers took over 10 min. */
static int under_valgrind(void)
{
	const char *p = getenv("LD_PRELOAD");

	return p && strstr(p, "vgpreload") != NULL;
}

START_TEST(test_concurrent_change)
{
	const int changes = under_valgrind() ? 20 : CHANGES;
	struct backend_stat sa = { .size = 111, .mtime_ns = 1 }, sb = { .size = 222222, .mtime_ns = 2 };
	struct hammer h[READERS];
	pthread_t th[READERS];
	struct ns_fid a, b, x;
	uint64_t ino;

	setup_ns(2, 10);
	ck_assert_int_eq(ns_table_open(&ns), 0);
	ino = ino_of("d1/f009");
	ck_assert_int_eq(ns_set_identity(&ns, ino, &sb), 0);
	index_id(ino, &b);
	ck_assert_int_eq(ns_set_identity(&ns, ino, &sa), 0);
	index_id(ino, &a);
	ck_assert_mem_ne(a.cid, b.cid, CID_LEN);
	for (int i = 0; i < READERS; i++) {
		h[i] = (struct hammer){ .ino = ino, .a = a, .b = b };
		ck_assert_int_eq(pthread_create(&th[i], NULL, reader_main, &h[i]), 0);
	}
	for (int k = 0; k < changes; k++)
		ck_assert_int_eq(ns_set_identity(&ns, ino, k & 1 ? &sa : &sb), 0);
	for (int i = 0; i < READERS; i++) {
		atomic_store(&h[i].stop, 1);
		pthread_join(th[i], NULL);
		ck_assert_msg(h[i].bad == 0, "reader %d: %ld of %ld lookups wrong", i, h[i].bad, h[i].n);
	}
	/* the last change (k odd: sa) is what the table says now */
	ck_assert_int_eq(ns_file_id(&ns, ino, &x), 0);
	assert_same(&x, &a);
	teardown_ns();
}
END_TEST

/* ---- a relisting replaces the table ---- */

START_TEST(test_relist_replaces)
{
	struct ns_fid id, ref;
	char err[256] = "";
	uint64_t ino, srcid;

	setup_ns(2, 10);
	ck_assert_int_eq(ns_table_open(&ns), 0);
	ino = ino_of("d1/f000");
	ck_assert_int_eq(ns_file_id(&ns, ino, &id), 0);
	ck_assert_uint_eq(id.size, 1010);
	/* a relisting with a file in front: every inode moves by one (the
	 * new directory comes first), so ino is another file */
	memmove(&mb->keys[1], &mb->keys[0], sizeof(mb->keys[0]) * (size_t)mb->n);
	memmove(&mb->st[1], &mb->st[0], sizeof(mb->st[0]) * (size_t)mb->n);
	mb->n++;
	snprintf(mb->keys[0], sizeof(mb->keys[0]), "a/first");
	mb->st[0] = (struct backend_stat){ .size = 3, .mtime_ns = 3 };
	srcid = ns.src.srcid;
	ck_assert_msg(ns_build(&ns, err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_ne(ns.src.srcid, srcid);
	ck_assert_uint_eq(tstats().entries, ns.src.next_ino);
	ck_assert_uint_eq(tstats().fills, 0);
	ck_assert_uint_ne(ino_of("d1/f000"), ino);
	ck_assert_int_eq(ns_file_id(&ns, ino, &id), 0);
	index_id(ino, &ref);
	assert_same(&id, &ref);
	ck_assert_int_eq(ns_file_id(&ns, ino_of("d1/f000"), &id), 0);
	ck_assert_uint_eq(id.size, 1010);
	index_id(ino_of("d1/f000"), &ref);
	assert_same(&id, &ref);
	ck_assert_int_eq(ns_file_id(&ns, ino_of("a/first"), &id), 0);
	ck_assert_uint_eq(id.size, 3);
	teardown_ns();
}
END_TEST

/* Without a table, a relisting makes none. */
START_TEST(test_relist_without_table)
{
	char err[256] = "";

	setup_ns(1, 5);
	ck_assert_msg(ns_build(&ns, err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(tstats().entries, 0);
	teardown_ns();
}
END_TEST

/* ---- through a whole cache ---- */

/* An open answered by the table does no index transaction: after the
 * first open of a file, open, read (cached) and close read nothing; and
 * the first open's fetch reads nothing more than the open did. */
START_TEST(test_open_reads_no_index)
{
	struct cache_config cfg;
	struct cache_file *f;
	struct tc t;
	uint64_t ino;
	unsigned n;

	tc_init(&t, "check_ns");
	tc_make_source(&t, 2, 3, 100000);
	tc_config(&t, &cfg, 64u << 20);
	tc_open(&t, &cfg);
	ino = tc_ino(&t, "c1/img_02.jpg");
	ro_txns = 0;
	ck_assert_int_eq(cache_file_open(t.c, ino, &f), 0);
	n = ro_txns;
	ck_assert_uint_gt(n, 0); /* the first open reads the index... */
	ck_assert_int_eq(tc_read_check(f, 5), 100000);
	ck_assert_uint_eq(ro_txns, n); /* ...and its fetch uses what it read */
	cache_file_close(f);
	ro_txns = 0;
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(cache_file_open(t.c, ino, &f), 0);
		ck_assert_int_eq(tc_read_check(f, 5), 100000);
		cache_file_close(f);
	}
	ck_assert_uint_eq(ro_txns, 0);
	tc_fini(&t);
}
END_TEST

/* A handle opened at a version, then the source changes and another
 * handle's fetch finds out: the first handle's first read must not fetch
 * the new bytes into the object of the version it was opened at (the
 * table knew only that version's content id; the key and ETag it reads
 * at its first fetch are the new version's). */
START_TEST(test_open_then_change)
{
	struct cache_config cfg;
	struct cache_file *f1, *f2;
	struct timespec ts[2] = { { .tv_sec = 0 }, { .tv_sec = 0 } };
	struct ns_fid old, now;
	struct obj *o;
	char path[256];
	struct tc t;
	uint64_t ino;

	tc_init(&t, "check_ns");
	tc_make_source(&t, 1, 2, 100000);
	tc_config(&t, &cfg, 64u << 20);
	tc_open(&t, &cfg);
	ino = tc_ino(&t, "c0/img_00.jpg");
	/* the first open fills the table (and that handle keeps the key and
	 * identity it read); f1 is answered by the table: content id and size */
	ck_assert_int_eq(cache_file_open(t.c, ino, &f1), 0);
	cache_file_close(f1);
	ck_assert_int_eq(cache_file_open(t.c, ino, &f1), 0);
	ck_assert_int_eq(ns_file_id(&t.c->ns, ino, &old), 0);
	/* the same size, other bytes, a later mtime */
	snprintf(path, sizeof(path), "%s/c0/img_00.jpg", t.src);
	tc_write_file(path, 99, 100000);
	ts[0].tv_sec = ts[1].tv_sec = time(NULL) + 1000;
	ck_assert_int_eq(utimensat(AT_FDCWD, path, ts, 0), 0);
	/* opened at the old version too; its fetch finds the change and it
	 * reads the new version (cache_file_read, changed_under) */
	ck_assert_int_eq(cache_file_open(t.c, ino, &f2), 0);
	ck_assert_int_eq(tc_read_check(f2, 99), 100000);
	ck_assert_int_eq(ns_file_id(&t.c->ns, ino, &now), 0);
	ck_assert_mem_ne(now.cid, old.cid, CID_LEN);
	/* f1 reads the new version, and nothing went into the old object */
	ck_assert_int_eq(tc_read_check(f1, 99), 100000);
	pthread_mutex_lock(&t.c->ot.lock);
	o = objtab_get_locked(&t.c->ot, old.cid);
	ck_assert(!o || o->npresent == 0);
	pthread_mutex_unlock(&t.c->ot.lock);
	cache_file_close(f1);
	cache_file_close(f2);
	ck_assert_int_eq(cache_file_open(t.c, ino, &f1), 0);
	ck_assert_int_eq(tc_read_check(f1, 99), 100000);
	cache_file_close(f1);
	tc_fini(&t);
}
END_TEST

static Suite *ns_suite(void)
{
	Suite *s = suite_create("ns");
	TCase *tc = tcase_create("table");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_dense_inodes);
	tcase_add_test(tc, test_fill_and_hit);
	tcase_add_test(tc, test_set_identity_invalidates);
	tcase_add_test(tc, test_fill_races_change);
	tcase_add_test(tc, test_concurrent_change);
	tcase_add_test(tc, test_relist_replaces);
	tcase_add_test(tc, test_relist_without_table);
	tcase_add_test(tc, test_open_reads_no_index);
	tcase_add_test(tc, test_open_then_change);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(ns_suite());
	int failed;

	log_init("check_ns", LOG_LVL_ERR, 0);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
