/* SPDX-License-Identifier: MIT */
/* Unit tests of backends/posix.c and backends/backend.c (Check): the parallel
 * listing, ranged and concurrent io_uring reads, identity checks, key sanitation. */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backends/backend.h"
#include "backends/keys.h"
#include "backends/base/log.h"

static char tmpdir[64];

struct tfile {
	const char *key;
	size_t size;
};

static const struct tfile files[] = {
	{ "top.bin", 5000 },
	{ "empty", 0 },
	{ "a/one.bin", 100 },
	{ "a/b/c/deep.bin", 3 * 1024 * 1024 + 17 },
	{ "a/b/two", 4096 },
	{ "with space/caf\xc3\xa9.txt", 77 },
	{ "many/f0", 10 }, { "many/f1", 11 }, { "many/f2", 12 }, { "many/f3", 13 },
};
#define NF ((int)(sizeof(files) / sizeof(files[0])))

static unsigned char byte_at(const char *key, uint64_t i)
{
	return (unsigned char)(i * 131 + (i >> 12) + (unsigned char)key[0]);
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb; (void)flag; (void)ftw;
	return remove(p);
}

static void put_file(const char *key, size_t size)
{
	char path[512], *slash;
	unsigned char *b = malloc(size ? size : 1);
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, key);
	for (slash = strchr(path + strlen(tmpdir) + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
		*slash = 0;
		mkdir(path, 0700);
		*slash = '/';
	}
	for (size_t i = 0; i < size; i++)
		b[i] = byte_at(key, i);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(b, 1, size, f), size);
	fclose(f);
	free(b);
}

static void setup(void)
{
	char path[512], target[512];

	strcpy(tmpdir, "/tmp/check_posix.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	for (int i = 0; i < NF; i++)
		put_file(files[i].key, files[i].size);
	/* a link to a file is listed as that file; a link to a directory, a
	 * dangling link and a FIFO are not */
	snprintf(path, sizeof(path), "%s/link-to-file", tmpdir);
	ck_assert_int_eq(symlink("a/one.bin", path), 0);
	snprintf(path, sizeof(path), "%s/link-to-dir", tmpdir);
	snprintf(target, sizeof(target), "%s/a", tmpdir);
	ck_assert_int_eq(symlink(target, path), 0);
	snprintf(path, sizeof(path), "%s/a/loop", tmpdir);
	ck_assert_int_eq(symlink("..", path), 0);
	snprintf(path, sizeof(path), "%s/dangling", tmpdir);
	ck_assert_int_eq(symlink("nowhere", path), 0);
	snprintf(path, sizeof(path), "%s/fifo", tmpdir);
	ck_assert_int_eq(mkfifo(path, 0600), 0);
	snprintf(path, sizeof(path), "%s/emptydir", tmpdir);
	ck_assert_int_eq(mkdir(path, 0700), 0);
}

static void teardown(void)
{
	nftw(tmpdir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static struct backend *mk(unsigned concurrency)
{
	struct backend_options o;
	struct backend *be = NULL;
	char err[256] = "";
	int rc;

	backend_options_init(&o);
	o.concurrency = concurrency;
	o.list_threads = 4;
	rc = backend_posix_create(tmpdir, &o, &be, err, sizeof(err));
	ck_assert_msg(rc == 0, "create: %d %s", rc, err);
	ck_assert_ptr_nonnull(be);
	return be;
}

struct seen {
	char keys[64][256];
	uint64_t sizes[64];
	int n, stop_at;
};

static int list_cb(void *arg, const char *key, const struct backend_stat *st)
{
	struct seen *s = arg;

	ck_assert_int_lt(s->n, 64);
	ck_assert_int_eq(backend_key_check(key), 0);
	snprintf(s->keys[s->n], sizeof(s->keys[0]), "%s", key);
	s->sizes[s->n] = st->size;
	ck_assert_int_gt(st->mtime_ns, 0);
	s->n++;
	return s->stop_at && s->n >= s->stop_at ? 42 : 0;
}

static int find(const struct seen *s, const char *key)
{
	int hits = 0, at = -1;

	for (int i = 0; i < s->n; i++)
		if (!strcmp(s->keys[i], key)) {
			hits++;
			at = i;
		}
	ck_assert_msg(hits <= 1, "%s listed %d times", key, hits);
	return at;
}

START_TEST(test_list)
{
	struct backend *be = mk(8);
	struct seen *s = calloc(1, sizeof(*s));
	int at;

	ck_assert_str_eq(be->ops->name, "posix");
	ck_assert_int_eq(strncmp(be->url, "file:///", 8), 0);
	ck_assert_int_eq(backend_list(be, list_cb, s), 0);
	for (int i = 0; i < NF; i++) {
		at = find(s, files[i].key);
		ck_assert_msg(at >= 0, "%s not listed", files[i].key);
		ck_assert_uint_eq(s->sizes[at], files[i].size);
	}
	at = find(s, "link-to-file");
	ck_assert_int_ge(at, 0);
	ck_assert_uint_eq(s->sizes[at], 100);
	ck_assert_int_lt(find(s, "link-to-dir/one.bin"), 0);
	ck_assert_int_lt(find(s, "a/loop/top.bin"), 0);
	ck_assert_int_lt(find(s, "dangling"), 0);
	ck_assert_int_lt(find(s, "fifo"), 0);
	ck_assert_int_eq(s->n, NF + 1);
	/* a non-zero return stops the listing and is returned */
	memset(s, 0, sizeof(*s));
	s->stop_at = 2;
	ck_assert_int_eq(backend_list(be, list_cb, s), 42);
	ck_assert_int_eq(s->n, 2);
	backend_destroy(be);
	free(s);
}
END_TEST

START_TEST(test_stat)
{
	struct backend *be = mk(8);
	struct backend_stat st;
	struct stat sb;
	char path[512];

	ck_assert_int_eq(be->ops->stat(be, "a/b/c/deep.bin", &st), 0);
	ck_assert_uint_eq(st.size, files[3].size);
	snprintf(path, sizeof(path), "%s/a/b/c/deep.bin", tmpdir);
	ck_assert_int_eq(stat(path, &sb), 0);
	ck_assert_int_eq(st.mtime_ns, (int64_t)sb.st_mtim.tv_sec * 1000000000ll + sb.st_mtim.tv_nsec);
	ck_assert_str_eq(st.etag, "");
	ck_assert_int_eq(be->ops->stat(be, "link-to-file", &st), 0);
	ck_assert_uint_eq(st.size, 100);
	ck_assert_int_eq(be->ops->stat(be, "nope", &st), -ENOENT);
	ck_assert_int_eq(be->ops->stat(be, "a", &st), -EISDIR);
	backend_destroy(be);
}
END_TEST

START_TEST(test_read_ranges)
{
	struct backend *be = mk(8);
	const struct tfile *f = &files[3];
	size_t big = f->size;
	unsigned char *buf = malloc(big + 100);
	ssize_t n;

	n = backend_read(be, f->key, 0, buf, big, NULL, NULL);
	ck_assert_int_eq(n, (ssize_t)big);
	for (size_t i = 0; i < big; i++)
		if (buf[i] != byte_at(f->key, i))
			ck_abort_msg("byte %zu differs", i);
	n = backend_read(be, f->key, 1000000, buf, 12345, NULL, NULL);
	ck_assert_int_eq(n, 12345);
	for (size_t i = 0; i < 12345; i++)
		ck_assert_int_eq(buf[i], byte_at(f->key, 1000000 + i));
	/* over the end: short; at and past it: 0; zero length: 0 */
	ck_assert_int_eq(backend_read(be, f->key, big - 10, buf, 100, NULL, NULL), 10);
	ck_assert_int_eq(buf[9], byte_at(f->key, big - 1));
	ck_assert_int_eq(backend_read(be, f->key, big, buf, 100, NULL, NULL), 0);
	ck_assert_int_eq(backend_read(be, f->key, big + 5000, buf, 100, NULL, NULL), 0);
	ck_assert_int_eq(backend_read(be, f->key, 0, buf, 0, NULL, NULL), 0);
	ck_assert_int_eq(backend_read(be, "empty", 0, buf, 100, NULL, NULL), 0);
	ck_assert_int_eq(backend_read(be, "link-to-file", 0, buf, 100, NULL, NULL), 100);
	ck_assert_int_eq(buf[0], byte_at("a/one.bin", 0));
	/* missing file: -ENOENT, not counted as an error */
	ck_assert_int_eq(backend_read(be, "a/missing", 0, buf, 100, NULL, NULL), -ENOENT);
	ck_assert_uint_eq(atomic_load(&be->counters.errors), 0);
	ck_assert_uint_ge(atomic_load(&be->counters.requests), 9);
	ck_assert_uint_ge(atomic_load(&be->counters.bytes), big + 12345 + 10 + 100);
	backend_destroy(be);
	free(buf);
}
END_TEST

START_TEST(test_identity)
{
	struct backend *be = mk(8);
	struct backend_stat st, cur, wrong;
	unsigned char buf[200];

	ck_assert_int_eq(be->ops->stat(be, "top.bin", &st), 0);
	ck_assert_int_eq(backend_read(be, "top.bin", 0, buf, 200, &st, &cur), 200);
	ck_assert_uint_eq(cur.size, 5000);
	wrong = st;
	wrong.size = 4999;
	memset(&cur, 0, sizeof(cur));
	ck_assert_int_eq(backend_read(be, "top.bin", 0, buf, 200, &wrong, &cur), -ESTALE);
	ck_assert_uint_eq(cur.size, 5000);
	ck_assert_int_eq(cur.mtime_ns, st.mtime_ns);
	wrong = st;
	wrong.mtime_ns += 1;
	ck_assert_int_eq(backend_read(be, "top.bin", 0, buf, 200, &wrong, &cur), -ESTALE);
	/* the file changes */
	put_file("top.bin", 6000);
	ck_assert_int_eq(backend_read(be, "top.bin", 0, buf, 200, &st, &cur), -ESTALE);
	ck_assert_uint_eq(cur.size, 6000);
	ck_assert_uint_eq(atomic_load(&be->counters.errors), 0);
	backend_destroy(be);
}
END_TEST

/* ---- many requests in flight ---- */

#define NREQ 500

struct waiter {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int done;
};

static void count_done(struct backend_req *req)
{
	struct waiter *w = req->arg;

	pthread_mutex_lock(&w->lock);
	w->done++;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

static void many_reads(unsigned concurrency)
{
	struct backend *be = mk(concurrency);
	struct backend_req *reqs = calloc(NREQ, sizeof(*reqs));
	unsigned char *bufs = malloc((size_t)NREQ * 8192);
	struct waiter w = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0 };

	for (int i = 0; i < NREQ; i++) {
		const struct tfile *f = &files[i % 5 == 4 ? 0 : 3];
		struct backend_req *r = &reqs[i];

		r->key = f->key;
		r->off = (uint64_t)i * 6007 % f->size;
		r->len = 8192;
		r->buf = bufs + (size_t)i * 8192;
		r->done = count_done;
		r->arg = &w;
		if (i % 50 == 7)
			r->key = "missing/file";
		ck_assert_int_eq(backend_submit(be, r), 0);
	}
	pthread_mutex_lock(&w.lock);
	while (w.done < NREQ)
		pthread_cond_wait(&w.cond, &w.lock);
	pthread_mutex_unlock(&w.lock);
	for (int i = 0; i < NREQ; i++) {
		struct backend_req *r = &reqs[i];
		const struct tfile *f = &files[i % 5 == 4 ? 0 : 3];
		size_t want = f->size - r->off < 8192 ? f->size - r->off : 8192;

		if (i % 50 == 7) {
			ck_assert_int_eq(r->result, -ENOENT);
			continue;
		}
		ck_assert_msg(r->result == (ssize_t)want, "req %d: %zd, expected %zu", i,
			      r->result, want);
		for (size_t k = 0; k < want; k++)
			if (((unsigned char *)r->buf)[k] != byte_at(f->key, r->off + k))
				ck_abort_msg("req %d byte %zu differs", i, k);
	}
	ck_assert_uint_eq(atomic_load(&be->counters.requests), NREQ);
	backend_destroy(be);
	free(reqs);
	free(bufs);
}

START_TEST(test_many_async)
{
	many_reads(64);
}
END_TEST

START_TEST(test_many_async_narrow)
{
	many_reads(1);
}
END_TEST

/* ---- creation and keys ---- */

START_TEST(test_create_errors)
{
	struct backend_options o;
	struct backend *be = (struct backend *)1;
	char err[256], path[256];

	backend_options_init(&o);
	err[0] = 0;
	snprintf(path, sizeof(path), "%s/none", tmpdir);
	ck_assert_int_eq(backend_posix_create(path, &o, &be, err, sizeof(err)), -ENOENT);
	ck_assert_str_ne(err, "");
	snprintf(path, sizeof(path), "%s/top.bin", tmpdir);
	ck_assert_int_eq(backend_posix_create(path, &o, &be, err, sizeof(err)), -ENOTDIR);
	err[0] = 0;
	ck_assert_int_eq(backend_create("ftp://host/x", &o, &be, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_null(be);
	ck_assert_str_ne(err, "");
	/* file:// and a plain path both reach the POSIX backend */
	snprintf(path, sizeof(path), "file://%s", tmpdir);
	ck_assert_int_eq(backend_create(path, &o, &be, err, sizeof(err)), 0);
	ck_assert_str_eq(be->ops->name, "posix");
	backend_destroy(be);
	ck_assert_int_eq(backend_create(tmpdir, &o, &be, err, sizeof(err)), 0);
	ck_assert_str_eq(be->ops->name, "posix");
	backend_destroy(be);
	backend_destroy(NULL);
}
END_TEST

START_TEST(test_key_check)
{
	static const char *const good[] = { "a", "a/b", "a/b/c.d", ".hidden", "a/..b", "a/b.",
					    "...", "x y/\xc3\xa9" };
	static const char *const badk[] = { "", "/a", "a//b", "a/./b", "a/../b", "a/", ".", "..",
					    "a/.", "a/..", "./a", "../a", "/" };
	char seg[300];

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		ck_assert_msg(backend_key_check(good[i]) == 0, "'%s' refused", good[i]);
	for (size_t i = 0; i < sizeof(badk) / sizeof(badk[0]); i++)
		ck_assert_msg(backend_key_check(badk[i]) == -EINVAL, "'%s' accepted", badk[i]);
	ck_assert_int_eq(backend_key_check(NULL), -EINVAL);
	memset(seg, 'x', 255);
	strcpy(seg + 255, "/b");
	ck_assert_int_eq(backend_key_check(seg), 0);
	memset(seg, 'x', 256);
	strcpy(seg + 256, "/b");
	ck_assert_int_eq(backend_key_check(seg), -EINVAL);
	/* the last segment too: "a/" + 255 bytes is fine, "a/" + 256 is not */
	memcpy(seg, "a/", 2);
	memset(seg + 2, 'y', 255);
	seg[257] = 0;
	ck_assert_int_eq(backend_key_check(seg), 0);
	seg[257] = 'y';
	seg[258] = 0;
	ck_assert_int_eq(backend_key_check(seg), -EINVAL);
}
END_TEST

static Suite *posix_suite(void)
{
	Suite *s = suite_create("posix");
	TCase *tc = tcase_create("posix");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_list);
	tcase_add_test(tc, test_stat);
	tcase_add_test(tc, test_read_ranges);
	tcase_add_test(tc, test_identity);
	tcase_add_test(tc, test_many_async);
	tcase_add_test(tc, test_many_async_narrow);
	tcase_add_test(tc, test_create_errors);
	suite_add_tcase(s, tc);

	tc = tcase_create("keys");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_key_check);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(posix_suite());
	int failed;

	log_init("check_posix", LOG_LVL_ERR, 0);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
