/* SPDX-License-Identifier: MIT */
/* Unit tests of fs/ctl.c's handles (Check), on a real cache over a small
 * POSIX source: the table of control files; a reader's snapshot; one-line
 * files applied at the newline (a line split over several writes too) or at
 * the flush; multi-line files checked line by line as they arrive, a bad
 * line failing its write and dropping the open's bytes; lines too long or
 * with a NUL; a write ending mid-line checked as far as it goes; the one
 * sequential stream; the EFBIG bound; O_TRUNC and the blank line. */
#define _GNU_SOURCE
#include <check.h>

#include "testcache.h"
#include "fs/ctl.h"
#include "cache/control.h"
#include "backends/base/log.h"
#include "backends/base/util.h"

#define NDIRS 2
#define NPER 3
#define FSIZE 2000

static struct tc t;

static void setup(void)
{
	struct cache_config cfg;

	tc_init(&t, "check_ctl");
	tc_make_source(&t, NDIRS, NPER, FSIZE);
	tc_config(&t, &cfg, 64ull << 20);
	tc_open(&t, &cfg);
}

static void teardown(void)
{
	tc_fini(&t);
}

static uint64_t ino_of(const char *name)
{
	uint64_t ino = 0;

	ck_assert_ptr_nonnull(ctl_by_name(name, &ino));
	return ino;
}

static struct ctl_handle *open_w(const char *name, int trunc)
{
	struct ctl_handle *h = NULL;

	ck_assert_int_eq(ctl_open(t.c, ino_of(name), 1, trunc, &h), 0);
	return h;
}

/* Write s at the end of what this handle was given (off: the stream's). */
static int wr(struct ctl_handle *h, uint64_t *off, const char *s)
{
	int rc = ctl_write(t.c, h, *off, s, strlen(s));

	if (!rc)
		*off += strlen(s);
	return rc;
}

static void expect_render(int (*render)(struct cache *, char **, size_t *), const char *want)
{
	char *s = tc_render(t.c, render);

	ck_assert_str_eq(s, want);
	free(s);
}

static const char default_manifest[] = "c0/img_00.jpg\nc0/img_01.jpg\nc0/img_02.jpg\n"
				       "c1/img_00.jpg\nc1/img_01.jpg\nc1/img_02.jpg\n";

START_TEST(test_table)
{
	static const char *const names[] = { "stats", "seed", "manifest", "order",
					     "epoch", "importance", "evict" };
	uint64_t ino, prev = CTL_DIR_INO;

	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		const struct ctl_file *f = ctl_by_name(names[i], &ino);

		ck_assert_ptr_nonnull(f);
		ck_assert_str_eq(f->name, names[i]);
		ck_assert(ctl_is_ino(ino));
		ck_assert_uint_gt(ino, prev);
		ck_assert_ptr_eq(ctl_by_ino(ino), f);
		/* writable files have an apply; read-only ones are 0444 */
		ck_assert_int_eq(!!f->apply, !!(f->mode & 0200));
		prev = ino;
	}
	ck_assert_ptr_null(ctl_by_name("nope", &ino));
	ck_assert_ptr_null(ctl_by_name("", &ino));
	ck_assert_ptr_null(ctl_by_ino(CTL_DIR_INO));
	ck_assert_ptr_null(ctl_by_ino(prev + 1));
	ck_assert_ptr_null(ctl_by_ino(1));
	ck_assert(!ctl_is_ino(1));
	ck_assert(ctl_is_ino(CTL_DIR_INO));
}
END_TEST

START_TEST(test_open)
{
	struct ctl_handle *h = NULL, *r = NULL;
	uint64_t off = 0;

	ck_assert_int_eq(ctl_open(t.c, CTL_DIR_INO, 0, 0, &h), -ENOENT);
	ck_assert_int_eq(ctl_open(t.c, ino_of("evict") + 1, 0, 0, &h), -ENOENT);
	ck_assert_int_eq(ctl_open(t.c, ino_of("stats"), 1, 0, &h), -EACCES);
	/* stats: a JSON object */
	ck_assert_int_eq(ctl_open(t.c, ino_of("stats"), 0, 0, &h), 0);
	ck_assert_uint_gt(h->len, 2);
	ck_assert_int_eq(h->buf[0], '{');
	ctl_close(h);
	/* a reader keeps the snapshot it opened */
	ck_assert_int_eq(ctl_open(t.c, ino_of("seed"), 0, 0, &r), 0);
	ck_assert_uint_eq(r->len, 0);
	h = open_w("seed", 0);
	ck_assert_int_eq(wr(h, &off, "seed=3 sampler=numpy\n"), 0);
	ctl_close(h);
	ck_assert_uint_eq(r->len, 0);
	ctl_close(r);
	ck_assert_int_eq(ctl_open(t.c, ino_of("seed"), 0, 0, &r), 0);
	ck_assert_uint_eq(r->len, strlen("seed=3 sampler=numpy epoch=0\n"));
	ck_assert_mem_eq(r->buf, "seed=3 sampler=numpy epoch=0\n", r->len);
	ctl_close(r);
	ctl_close(NULL);
}
END_TEST

START_TEST(test_seed_split)
{
	struct ctl_handle *h = open_w("seed", 0);
	uint64_t off = 0;

	/* one line over three writes: applied at its newline */
	ck_assert_int_eq(wr(h, &off, "seed=4 sam"), 0);
	ck_assert_int_eq(wr(h, &off, "pler=rand"), 0);
	expect_render(control_seed_render, "");
	ck_assert_int_eq(wr(h, &off, "perm\n"), 0);
	expect_render(control_seed_render, "seed=4 sampler=randperm epoch=0\n");
	/* the flush has nothing left to apply */
	ck_assert_int_eq(ctl_commit(t.c, h), 0);
	/* a second line on the same open */
	ck_assert_int_eq(wr(h, &off, "seed=5 sampler=numpy\n"), 0);
	expect_render(control_seed_render, "seed=5 sampler=numpy epoch=0\n");
	ctl_close(h);
}
END_TEST

START_TEST(test_seed_no_newline)
{
	struct ctl_handle *h = open_w("seed", 0);
	uint64_t off = 0;

	/* printf 'seed=6' > seed: a line that may be complete, applied at the
	 * flush at the latest */
	ck_assert_int_eq(wr(h, &off, "seed=6"), 0);
	ck_assert_int_eq(ctl_commit(t.c, h), 0);
	expect_render(control_seed_render,
		      "seed=6 sampler=distributed world=1 rank=0 drop_last=0 epoch=0\n");
	ctl_close(h);
	/* a write ending mid-line is checked as far as it goes: a letter in
	 * a number fails that write() (a close could not tell the shell) */
	h = open_w("seed", 0);
	off = 0;
	ck_assert_int_eq(ctl_write(t.c, h, 0, "seed=abc", 8), -EINVAL);
	ctl_close(h);
	h = open_w("seed", 0);
	ck_assert_int_eq(ctl_write(t.c, h, 0, "seed=1 bogus=", 13), -EINVAL);
	ctl_close(h);
	/* a token that needs more is no error yet */
	h = open_w("seed", 0);
	off = 0;
	ck_assert_int_eq(wr(h, &off, "seed=7 world=2 rank="), 0);
	ck_assert_int_eq(wr(h, &off, "1\n"), 0);
	ctl_close(h);
	expect_render(control_seed_render,
		      "seed=7 sampler=distributed world=2 rank=1 drop_last=0 epoch=0\n");
}
END_TEST

START_TEST(test_seed_bad_line)
{
	struct ctl_handle *h = open_w("seed", 0);
	uint64_t off = 0;

	ck_assert_int_eq(wr(h, &off, "seed=7\n"), 0);
	/* the write of a bad line fails (echo reports it); nothing changes */
	ck_assert_int_eq(ctl_write(t.c, h, off, "seed=1 world=2 rank=2\n", 22), -EINVAL);
	off += 22;
	expect_render(control_seed_render,
		      "seed=7 sampler=distributed world=1 rank=0 drop_last=0 epoch=0\n");
	/* the next line starts afresh */
	ck_assert_int_eq(wr(h, &off, "seed=8\n"), 0);
	expect_render(control_seed_render,
		      "seed=8 sampler=distributed world=1 rank=0 drop_last=0 epoch=0\n");
	ck_assert_int_eq(ctl_commit(t.c, h), 0);
	ctl_close(h);
	/* epoch, the other one-line file: a bad number fails its write */
	h = open_w("epoch", 0);
	off = 0;
	ck_assert_int_eq(ctl_write(t.c, h, 0, "x\n", 2), -EINVAL);
	ck_assert_int_eq(ctl_write(t.c, h, 2, "2\n", 2), 0);
	expect_render(control_epoch_render, "2\n");
	ctl_close(h);
}
END_TEST

START_TEST(test_manifest_split)
{
	struct ctl_handle *h = open_w("manifest", 1);
	uint64_t off = 0;

	/* a path split over writes, checked when its line is complete */
	ck_assert_int_eq(wr(h, &off, "c1/img_0"), 0);
	ck_assert_int_eq(wr(h, &off, "2.jpg\nc0/im"), 0);
	ck_assert_int_eq(wr(h, &off, "g_01.jpg\n"), 0);
	expect_render(control_manifest_render, default_manifest); /* not yet: at the flush */
	ck_assert_int_eq(ctl_commit(t.c, h), 0);
	ctl_close(h);
	expect_render(control_manifest_render, "c1/img_02.jpg\nc0/img_01.jpg\n");
	/* appends only: a write elsewhere than the end is refused */
	h = open_w("manifest", 1);
	off = 0;
	ck_assert_int_eq(wr(h, &off, "c0/img_00.jpg\n"), 0);
	ck_assert_int_eq(ctl_write(t.c, h, 0, "c0/img_01.jpg\n", 14), -EINVAL);
	ck_assert_int_eq(ctl_write(t.c, h, off + 1, "c0/img_01.jpg\n", 14), -EINVAL);
	ctl_close(h);
}
END_TEST

START_TEST(test_manifest_bad_line)
{
	struct ctl_handle *h = open_w("manifest", 1);
	uint64_t off = 0;

	ck_assert_int_eq(wr(h, &off, "c0/img_00.jpg\n"), 0);
	/* a bad line fails its write; everything of this open is dropped */
	ck_assert_int_eq(ctl_write(t.c, h, off, "c0/nope.jpg\n", 12), -EINVAL);
	ck_assert_int_eq(ctl_write(t.c, h, off + 12, "c0/img_01.jpg\n", 14), -EINVAL);
	ck_assert_int_eq(ctl_commit(t.c, h), 0);
	ctl_close(h);
	expect_render(control_manifest_render, default_manifest);
	/* a directory is not a file of the mount */
	h = open_w("order", 1);
	ck_assert_int_eq(ctl_write(t.c, h, 0, "c0\n", 3), -EINVAL);
	ctl_close(h);
	/* importance: "PATH SCORE" */
	h = open_w("importance", 1);
	ck_assert_int_eq(ctl_write(t.c, h, 0, "c0/img_00.jpg 1.5\n", 18), 0);
	ck_assert_int_eq(ctl_write(t.c, h, 18, "c0/img_00.jpg\n", 14), -EINVAL);
	ctl_close(h);
	/* evict: unknown path */
	h = open_w("evict", 1);
	ck_assert_int_eq(ctl_write(t.c, h, 0, "c9/x\n", 5), -EINVAL);
	ctl_close(h);
}
END_TEST

START_TEST(test_line_too_long)
{
	struct ctl_handle *h = open_w("manifest", 1);
	size_t n = 5000;
	char *line = malloc(n + 1);

	ck_assert_ptr_nonnull(line);
	memset(line, 'a', n);
	line[n - 1] = '\n';
	line[n] = 0;
	ck_assert_int_eq(ctl_write(t.c, h, 0, line, n), -EINVAL);
	ctl_close(h);
	/* the same, a line of ordinary length with a NUL in it */
	h = open_w("manifest", 1);
	ck_assert_int_eq(ctl_write(t.c, h, 0, "c0/img\0_00.jpg\n", 15), -EINVAL);
	ctl_close(h);
	/* one-line files: a line longer than a spec can be */
	h = open_w("seed", 0);
	memset(line, '1', n);
	memcpy(line, "seed=", 5);
	line[n - 1] = '\n';
	ck_assert_int_eq(ctl_write(t.c, h, 0, line, n), -EINVAL);
	ctl_close(h);
	expect_render(control_manifest_render, default_manifest);
	expect_render(control_seed_render, "");
	free(line);
}
END_TEST

START_TEST(test_efbig)
{
	struct ctl_handle *h = open_w("evict", 1);
	static const char line[] = "c0/img_00.jpg\n";
	uint64_t off = 0;

	/* The bound is checked before a byte is copied: a write that would
	 * take the stream past CTL_WRITE_MAX is refused whole (its buffer is
	 * never read, so a small one stands for it) and the stream goes on. */
	ck_assert_int_eq(wr(h, &off, line), 0);
	ck_assert_int_eq(ctl_write(t.c, h, off, line, CTL_WRITE_MAX), -EFBIG);
	ck_assert_int_eq(ctl_write(t.c, h, off, line, CTL_WRITE_MAX - off + 1), -EFBIG);
	ck_assert_uint_eq(h->len, off);
	ck_assert_int_eq(wr(h, &off, line), 0);
	ck_assert_int_eq(ctl_commit(t.c, h), 0);
	ctl_close(h);
	/* a one-line file too */
	h = open_w("seed", 0);
	ck_assert_int_eq(ctl_write(t.c, h, 0, "seed=1\n", CTL_WRITE_MAX + 1), -EFBIG);
	ctl_close(h);
	expect_render(control_seed_render, "");
}
END_TEST

START_TEST(test_trunc_and_blank_line)
{
	struct ctl_handle *h = open_w("manifest", 1);
	uint64_t off = 0;

	ck_assert_int_eq(wr(h, &off, "c1/img_00.jpg\n"), 0);
	ck_assert_int_eq(ctl_commit(t.c, h), 0);
	ctl_close(h);
	expect_render(control_manifest_render, "c1/img_00.jpg\n");
	/* ": > manifest": an O_TRUNC open with no write changes nothing (the
	 * shell flushes a copy of the descriptor before echo writes) */
	h = open_w("manifest", 1);
	ck_assert_int_eq(ctl_commit(t.c, h), 0);
	ctl_close(h);
	expect_render(control_manifest_render, "c1/img_00.jpg\n");
	/* "echo > manifest": a blank line restores the default */
	h = open_w("manifest", 1);
	off = 0;
	ck_assert_int_eq(ctl_commit(t.c, h), 0); /* the shell's early flush */
	ck_assert_int_eq(wr(h, &off, "\n"), 0);
	ck_assert_int_eq(ctl_commit(t.c, h), 0);
	ctl_close(h);
	expect_render(control_manifest_render, default_manifest);
	/* a bad line after the shell's early flush changes nothing */
	h = open_w("manifest", 1);
	ck_assert_int_eq(ctl_commit(t.c, h), 0);
	ck_assert_int_eq(ctl_write(t.c, h, 0, "bad\n", 4), -EINVAL);
	ck_assert_int_eq(ctl_commit(t.c, h), 0);
	ctl_close(h);
	expect_render(control_manifest_render, default_manifest);
}
END_TEST

START_TEST(test_order_header)
{
	struct ctl_handle *h = open_w("order", 1);
	uint64_t off = 0;
	char *o;

	/* "# rank=R" heads one rank's order (docs/control.md); its lines are
	 * checked as they arrive like any other order. */
	ck_assert_int_eq(wr(h, &off, "# rank=1 epoch=0\n"), 0);
	ck_assert_int_eq(wr(h, &off, "c0/img_02.jpg\nc1/img_00.jpg\n"), 0);
	ck_assert_int_eq(ctl_commit(t.c, h), 0);
	ctl_close(h);
	o = tc_render(t.c, control_order_render);
	ck_assert_msg(strstr(o, "c0/img_02.jpg\n") && strstr(o, "c1/img_00.jpg\n"), "order '%s'", o);
	free(o);
}
END_TEST

static Suite *ctl_suite(void)
{
	Suite *s = suite_create("ctl");
	TCase *tc = tcase_create("ctl");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_table);
	tcase_add_test(tc, test_open);
	tcase_add_test(tc, test_seed_split);
	tcase_add_test(tc, test_seed_no_newline);
	tcase_add_test(tc, test_seed_bad_line);
	tcase_add_test(tc, test_manifest_split);
	tcase_add_test(tc, test_manifest_bad_line);
	tcase_add_test(tc, test_line_too_long);
	tcase_add_test(tc, test_efbig);
	tcase_add_test(tc, test_trunc_and_blank_line);
	tcase_add_test(tc, test_order_header);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(ctl_suite());
	int failed;

	log_init("check_ctl", LOG_LVL_ERR, 0);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
