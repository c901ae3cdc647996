/* SPDX-License-Identifier: MIT */
/* Unit tests of cache/store.c (Check): object files named by content id, sparse
 * chunk writes and reads, hole punching, unlink and the scan used for GC. */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache/store.h"

#define CH (256u << 10)

static char tmpdir[64];

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb; (void)flag; (void)ftw;
	return remove(p);
}

static void setup(void)
{
	strcpy(tmpdir, "/tmp/check_store.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown(void)
{
	nftw(tmpdir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static void cid_of(uint8_t cid[CID_LEN], int n)
{
	for (int i = 0; i < CID_LEN; i++)
		cid[i] = (uint8_t)(n * 37 + i * 11);
}

/* Where the store put cid's file (the layout under objects/ is the store's
 * business): found by name; "" when absent. */
static char found[512];
static char want_name[2 * CID_LEN + 1];

static int find_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	if (flag == FTW_F && !strcmp(p + ftw->base, want_name)) {
		ck_assert_str_eq(found, ""); /* only one */
		snprintf(found, sizeof(found), "%s", p);
	}
	return 0;
}

static const char *obj_path(const uint8_t cid[CID_LEN])
{
	char root[128];

	for (int i = 0; i < CID_LEN; i++)
		snprintf(want_name + 2 * i, 3, "%02x", cid[i]);
	found[0] = 0;
	snprintf(root, sizeof(root), "%s/objects", tmpdir);
	nftw(root, find_cb, 16, FTW_PHYS);
	return found;
}

static struct store *open_store(void)
{
	struct store *s = NULL;

	ck_assert_int_eq(store_open(tmpdir, &s), 0);
	ck_assert_ptr_nonnull(s);
	return s;
}

static void fill(unsigned char *b, size_t n, int seed)
{
	for (size_t i = 0; i < n; i++)
		b[i] = (unsigned char)(i * 7 + (size_t)seed * 13 + (i >> 10));
}

START_TEST(test_open_create)
{
	struct store *s = open_store();
	uint8_t cid[CID_LEN];
	char path[256];
	struct stat st;
	int fd;

	snprintf(path, sizeof(path), "%s/objects", tmpdir);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert(S_ISDIR(st.st_mode));
	cid_of(cid, 1);
	ck_assert_int_eq(store_obj_open(s, cid, 0), -ENOENT);
	ck_assert_int_eq(store_obj_blocks(s, cid), -ENOENT);
	fd = store_obj_open(s, cid, 1);
	ck_assert_int_ge(fd, 0);
	close(fd);
	/* named by the cid's hex, under objects/ */
	ck_assert_str_ne(obj_path(cid), "");
	ck_assert_int_eq(stat(found, &st), 0);
	ck_assert(S_ISREG(st.st_mode));
	fd = store_obj_open(s, cid, 0);
	ck_assert_int_ge(fd, 0);
	close(fd);
	ck_assert_int_eq(store_obj_blocks(s, cid), 0);
	ck_assert_uint_gt(store_dir_bytes(s), 0);
	store_close(s);
	/* reopening an existing store */
	s = open_store();
	fd = store_obj_open(s, cid, 0);
	ck_assert_int_ge(fd, 0);
	close(fd);
	store_close(s);
	store_close(NULL);
}
END_TEST

START_TEST(test_open_bad_dir)
{
	struct store *s;
	char path[200];

	snprintf(path, sizeof(path), "%s/missing/deeper", tmpdir);
	ck_assert_int_eq(store_open(path, &s), -ENOENT);
}
END_TEST

START_TEST(test_write_read_sparse)
{
	struct store *s = open_store();
	uint8_t cid[CID_LEN];
	unsigned char *w = malloc(CH), *r = malloc(CH);
	int64_t b1, b2;
	int fd;

	cid_of(cid, 2);
	fd = store_obj_open(s, cid, 1);
	ck_assert_int_ge(fd, 0);
	/* chunk 5 first, then chunk 1: the file is sparse in between */
	fill(w, CH, 5);
	ck_assert_int_eq(store_write(fd, 5ull * CH, w, CH), 0);
	b1 = store_obj_blocks(s, cid);
	ck_assert_int_ge(b1, CH);
	ck_assert_int_lt(b1, 2 * CH);
	fill(w, CH, 1);
	ck_assert_int_eq(store_write(fd, 1ull * CH, w, CH), 0);
	b2 = store_obj_blocks(s, cid);
	ck_assert_int_ge(b2, 2 * CH);
	ck_assert_int_lt(b2, 3 * CH);

	ck_assert_int_eq(store_read(fd, 1ull * CH, r, CH), 0);
	fill(w, CH, 1);
	ck_assert_mem_eq(r, w, CH);
	ck_assert_int_eq(store_read(fd, 5ull * CH, r, CH), 0);
	fill(w, CH, 5);
	ck_assert_mem_eq(r, w, CH);
	/* a hole reads as zeros; past the end is -EIO */
	ck_assert_int_eq(store_read(fd, 3ull * CH, r, 100), 0);
	for (int i = 0; i < 100; i++)
		ck_assert_int_eq(r[i], 0);
	ck_assert_int_eq(store_read(fd, 6ull * CH - 10, r, 20), -EIO);
	ck_assert_int_eq(store_read(fd, 100ull * CH, r, 1), -EIO);
	ck_assert_int_eq(store_read(fd, 0, r, 0), 0);
	/* a short last chunk */
	ck_assert_int_eq(store_write(fd, 6ull * CH, w, 1234), 0);
	ck_assert_int_eq(store_read(fd, 6ull * CH, r, 1234), 0);
	ck_assert_mem_eq(r, w, 1234);

	/* punching gives chunk 5's blocks back and keeps the size */
	store_punch(fd, 5ull * CH, CH);
	ck_assert_int_lt(store_obj_blocks(s, cid), b2);
	ck_assert_int_eq(store_read(fd, 5ull * CH, r, CH), 0);
	for (size_t i = 0; i < CH; i++)
		if (r[i])
			ck_abort_msg("punched byte %zu is %d", i, r[i]);
	ck_assert_int_eq(store_read(fd, 1ull * CH, r, CH), 0);
	fill(w, CH, 1);
	ck_assert_mem_eq(r, w, CH);
	close(fd);

	ck_assert_int_eq(store_obj_unlink(s, cid), 0);
	ck_assert_int_eq(store_obj_blocks(s, cid), -ENOENT);
	ck_assert_int_eq(store_obj_open(s, cid, 0), -ENOENT);
	ck_assert_int_eq(store_obj_unlink(s, cid), 0); /* absent: fine */
	store_close(s);
	free(w);
	free(r);
}
END_TEST

START_TEST(test_write_bad_fd)
{
	char b[4] = "abc";

	ck_assert_int_eq(store_write(-1, 0, b, 3), -EBADF);
	ck_assert_int_eq(store_read(-1, 0, b, 3), -EBADF);
}
END_TEST

struct scan_ctx {
	uint8_t seen[64][CID_LEN];
	int n;
	int drop_odd;
};

static int scan_cb(void *arg, const uint8_t cid[CID_LEN])
{
	struct scan_ctx *sc = arg;
	uint8_t want[CID_LEN];
	int which = -1;

	ck_assert_int_lt(sc->n, 64);
	memcpy(sc->seen[sc->n++], cid, CID_LEN);
	for (int k = 0; k < 40 && which < 0; k++) {
		cid_of(want, k);
		if (!memcmp(want, cid, CID_LEN))
			which = k;
	}
	ck_assert_int_ge(which, 0);
	return sc->drop_odd && (which & 1);
}

START_TEST(test_scan)
{
	struct store *s = open_store();
	struct scan_ctx sc = { .n = 0 };
	uint8_t cid[CID_LEN];
	char path[256];
	FILE *f;
	int fd;

	for (int k = 0; k < 40; k++) {
		cid_of(cid, k);
		fd = store_obj_open(s, cid, 1);
		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(store_write(fd, 0, "x", 1), 0);
		close(fd);
	}
	/* strangers the scan must ignore */
	snprintf(path, sizeof(path), "%s/objects/zz", tmpdir);
	ck_assert_int_eq(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/objects/ab", tmpdir);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/objects/ab/not-a-cid", tmpdir);
	f = fopen(path, "w");
	fclose(f);
	snprintf(path, sizeof(path), "%s/objects/ab/0123456789ABCDEF0123456789ABCDEF", tmpdir);
	f = fopen(path, "w");
	fclose(f);
	snprintf(path, sizeof(path), "%s/objects/ab/0123456789abcdef0123456789abcdeg", tmpdir);
	f = fopen(path, "w");
	fclose(f);
	/* and a stranger beside a real object file */
	cid_of(cid, 0);
	ck_assert_str_ne(obj_path(cid), "");
	strcpy(strrchr(found, '/') + 1, "0123456789abcdef0123456789abcdeX");
	f = fopen(found, "w");
	ck_assert_ptr_nonnull(f);
	fclose(f);

	ck_assert_int_eq(store_scan(s, scan_cb, &sc), 0);
	ck_assert_int_eq(sc.n, 40);
	sc.n = 0;
	sc.drop_odd = 1;
	ck_assert_int_eq(store_scan(s, scan_cb, &sc), 0);
	ck_assert_int_eq(sc.n, 40);
	for (int k = 0; k < 40; k++) {
		cid_of(cid, k);
		if (k & 1)
			ck_assert_int_eq(store_obj_blocks(s, cid), -ENOENT);
		else
			ck_assert_int_ge(store_obj_blocks(s, cid), 0);
	}
	sc.n = 0;
	sc.drop_odd = 0;
	ck_assert_int_eq(store_scan(s, scan_cb, &sc), 0);
	ck_assert_int_eq(sc.n, 20);
	/* the strangers are still there */
	ck_assert_int_eq(access(path, F_OK), 0);
	ck_assert_int_eq(access(found, F_OK), 0);
	store_close(s);
}
END_TEST

START_TEST(test_checksum)
{
	unsigned char b[1000];
	uint64_t h;

	fill(b, sizeof(b), 3);
	h = store_checksum(b, sizeof(b));
	ck_assert_uint_eq(store_checksum(b, sizeof(b)), h);
	b[500] ^= 1;
	ck_assert_uint_ne(store_checksum(b, sizeof(b)), h);
	b[500] ^= 1;
	ck_assert_uint_ne(store_checksum(b, sizeof(b) - 1), h);
	/* XXH3-64 of the empty input, a published constant */
	ck_assert_uint_eq(store_checksum("", 0), 0x2D06800538D394C2ull);
}
END_TEST

static Suite *store_suite(void)
{
	Suite *s = suite_create("store");
	TCase *tc = tcase_create("store");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_open_create);
	tcase_add_test(tc, test_open_bad_dir);
	tcase_add_test(tc, test_write_read_sparse);
	tcase_add_test(tc, test_write_bad_fd);
	tcase_add_test(tc, test_scan);
	tcase_add_test(tc, test_checksum);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(store_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
