/* SPDX-License-Identifier: MIT */
/* Unit tests of the base layer (Check): size parsing and formatting, the
 * clocks, hex digits, the allocation seam, the mount table reader and the
 * logger's file destination. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include "backends/base/log.h"
#include "backends/base/mountinfo.h"
#include "backends/base/sbuf.h"
#include "backends/base/util.h"

struct good_size {
	const char *s;
	uint64_t bytes;
	double pct;
};

static const struct good_size good[] = {
	{ "0", 0, 0 },
	{ "1", 1, 0 },
	{ "123", 123, 0 },
	{ "4096B", 4096, 0 },
	{ "4K", 4096, 0 },
	{ "4k", 4096, 0 },
	{ "4KiB", 4096, 0 },
	{ "4KB", 4000, 0 },
	{ "4kib", 4096, 0 },
	{ "3M", 3ull << 20, 0 },
	{ "3MiB", 3ull << 20, 0 },
	{ "2G", 2ull << 30, 0 },
	{ "500GiB", 500ull << 30, 0 },
	{ "500GB", 500000000000ull, 0 },
	{ "1.5TB", 1500000000000ull, 0 },
	{ "1T", 1ull << 40, 0 },
	{ "2P", 2ull << 50, 0 },
	{ "1E", 1ull << 60, 0 },
	{ "1.5G", 3ull << 29, 0 },
	{ "0.5K", 512, 0 },
	{ "1.5", 1, 0 },
	{ "80%", 0, 80 },
	{ "100%", 0, 100 },
	{ "0.5%", 0, 0.5 },
	{ "15.9E", (uint64_t)(15.9 * 1152921504606846976.0), 0 },
};

START_TEST(test_parse_good)
{
	const struct good_size *g = &good[_i];
	uint64_t bytes = 777;
	double pct = 777;

	ck_assert_msg(parse_size(g->s, &bytes, &pct) == 0, "'%s' refused", g->s);
	ck_assert_msg(bytes == g->bytes, "'%s': %llu, expected %llu", g->s,
		      (unsigned long long)bytes, (unsigned long long)g->bytes);
	ck_assert_double_eq(pct, g->pct);
}
END_TEST

static const char *const bad[] = {
	"", "-1", "+1", "abc", "12Q", "0%", "101%", "-5%", " 5", "5 ", "5 K", "\t5",
	"99999999E", "16E", "1e30", "inf", "nan", "5KK", "5BB", "5KiBs", "5%%", "%", "K",
	"5Ki", "1.5.5",
};

START_TEST(test_parse_bad)
{
	uint64_t bytes = 777;
	double pct = 777;

	ck_assert_msg(parse_size(bad[_i], &bytes, &pct) == -EINVAL, "'%s' accepted (%llu, %g)",
		      bad[_i], (unsigned long long)bytes, pct);
}
END_TEST

START_TEST(test_parse_null)
{
	uint64_t bytes;
	double pct;

	ck_assert_int_eq(parse_size(NULL, &bytes, &pct), -EINVAL);
}
END_TEST

START_TEST(test_format_bytes)
{
	char buf[64];

	format_bytes(0, buf, sizeof(buf));
	ck_assert_str_eq(buf, "0 B");
	format_bytes(1023, buf, sizeof(buf));
	ck_assert_str_eq(buf, "1023 B");
	format_bytes(1024, buf, sizeof(buf));
	ck_assert_str_eq(buf, "1.00 KiB");
	format_bytes(1536, buf, sizeof(buf));
	ck_assert_str_eq(buf, "1.50 KiB");
	format_bytes(3ull << 29, buf, sizeof(buf));
	ck_assert_str_eq(buf, "1.50 GiB");
	format_bytes(5ull << 40, buf, sizeof(buf));
	ck_assert_str_eq(buf, "5.00 TiB");
	format_bytes(2048ull << 50, buf, sizeof(buf));
	ck_assert_str_eq(buf, "2048.00 PiB");
	format_bytes(UINT64_MAX, buf, sizeof(buf));
	ck_assert_str_eq(buf, "16384.00 PiB");
	/* truncated, still terminated */
	format_bytes(1536, buf, 4);
	ck_assert_str_eq(buf, "1.5");
}
END_TEST

START_TEST(test_clocks)
{
	uint64_t a = now_ns(), b = now_ns();

	ck_assert_uint_ge(b, a);
	ck_assert_int_gt(wall_ns(), 1500000000ll * 1000000000ll);
}
END_TEST

START_TEST(test_alloc_seam)
{
	void *p[4];

	ck_assert_int_lt(ec_fail_alloc_after, 0);
	p[0] = ec_malloc(16);
	ck_assert_ptr_nonnull(p[0]);
	free(p[0]);

	/* two allocations succeed, then they fail */
	ec_fail_alloc_after = 2;
	p[0] = ec_malloc(16);
	p[1] = ec_calloc(2, 8);
	p[2] = ec_realloc(NULL, 16);
	p[3] = ec_malloc(1);
	ck_assert_ptr_nonnull(p[0]);
	ck_assert_ptr_nonnull(p[1]);
	ck_assert_ptr_null(p[2]);
	ck_assert_ptr_null(p[3]);
	ck_assert_mem_eq(p[1], "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 16);
	free(p[0]);
	free(p[1]);

	/* off again */
	ec_fail_alloc_after = -1;
	p[0] = ec_malloc(16);
	ck_assert_ptr_nonnull(p[0]);
	free(p[0]);

	/* and on again: the count starts afresh, as a torture loop needs */
	ec_fail_alloc_after = 1;
	p[0] = ec_malloc(16);
	p[1] = ec_malloc(16);
	ec_fail_alloc_after = -1;
	ck_assert_ptr_nonnull(p[0]);
	ck_assert_ptr_null(p[1]);
	free(p[0]);
}
END_TEST


/* Every length's first and last code point, as UTF-8 encoders agree. */
START_TEST(test_utf8)
{
	static const struct {
		unsigned long cp;
		const char *want;
	} v[] = {
		{ 0x41, "A" }, { 0x7f, "\x7f" }, { 0x80, "\xc2\x80" }, { 0xe9, "\xc3\xa9" },
		{ 0x7ff, "\xdf\xbf" }, { 0x800, "\xe0\xa0\x80" }, { 0x20ac, "\xe2\x82\xac" },
		{ 0xffff, "\xef\xbf\xbf" }, { 0x10000, "\xf0\x90\x80\x80" },
		{ 0x1f600, "\xf0\x9f\x98\x80" }, { 0x10ffff, "\xf4\x8f\xbf\xbf" },
	};
	char b[4];

	for (size_t i = 0; i < ARRAY_SIZE(v); i++) {
		size_t n = utf8_put(v[i].cp, b);

		ck_assert_uint_eq(n, strlen(v[i].want));
		ck_assert_msg(!memcmp(b, v[i].want, n), "U+%lX", v[i].cp);
	}
}
END_TEST

START_TEST(test_hex)
{
	ck_assert_int_eq(hex_val('0'), 0);
	ck_assert_int_eq(hex_val('9'), 9);
	ck_assert_int_eq(hex_val('a'), 10);
	ck_assert_int_eq(hex_val('F'), 15);
	ck_assert_int_eq(hex_val('g'), -1);
	ck_assert_int_eq(hex_val(0), -1);
}
END_TEST

struct mi_seen {
	int n;
	char mp[4][64], dev[4][16], fs[4][32], esc[4][64];
};

static int mi_cb(void *arg, const struct mountinfo_ent *e)
{
	struct mi_seen *s = arg;

	if (s->n >= 4)
		return 7;
	snprintf(s->mp[s->n], 64, "%s", e->mountpoint);
	snprintf(s->esc[s->n], 64, "%s", e->mp_escaped);
	snprintf(s->dev[s->n], 16, "%s", e->dev);
	snprintf(s->fs[s->n], 32, "%s", e->fstype);
	s->n++;
	return 0;
}

START_TEST(test_mountinfo)
{
	char path[] = "/tmp/check_util_mi.XXXXXX", buf[64];
	int fd = mkstemp(path);
	const char *table =
		"22 1 0:21 / /proc rw,nosuid shared:12 - proc proc rw\n"
		"garbage line\n"
		"90 22 0:55 / /mnt/a\\040b\\011c rw,nosuid master:1 shared:2 - fuse.epochfs epochfs rw\n"
		"91 22 0:56 / /mnt/x\\134y rw - fuse.epochfs /data\\040set rw\n";
	struct mi_seen s = { 0 };

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, table, strlen(table)), (int)strlen(table));
	close(fd);
	ck_assert_int_eq(mountinfo_each(path, mi_cb, &s), 0);
	ck_assert_int_eq(s.n, 3);
	ck_assert_str_eq(s.mp[0], "/proc");
	ck_assert_str_eq(s.fs[0], "proc");
	ck_assert_str_eq(s.mp[1], "/mnt/a b\tc");
	ck_assert_str_eq(s.esc[1], "/mnt/a\\040b\\011c");
	ck_assert_str_eq(s.dev[1], "0:55");
	ck_assert_str_eq(s.fs[1], "fuse.epochfs");
	ck_assert_str_eq(s.mp[2], "/mnt/x\\y");
	ck_assert_int_eq(mountinfo_escape(s.mp[1], buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, s.esc[1]);
	ck_assert_int_eq(mountinfo_escape("/a b", buf, 6), -ENAMETOOLONG);
	unlink(path);
	ck_assert_int_lt(mountinfo_each(path, mi_cb, &s), 0);
}
END_TEST

START_TEST(test_log_file)
{
	char path[] = "/tmp/check_util_log.XXXXXX", buf[512];
	int fd = mkstemp(path);
	enum log_level lvl;
	ssize_t n;

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(log_level_parse("warn", &lvl), 0);
	ck_assert_int_eq(lvl, LOG_LVL_WARN);
	ck_assert_int_eq(log_level_parse("Debug", &lvl), 0);
	ck_assert_int_eq(lvl, LOG_LVL_DEBUG);
	ck_assert_int_eq(log_level_parse("loud", &lvl), -EINVAL);
	log_init("check_util", LOG_LVL_WARN, 0);
	ck_assert_int_eq(log_to_file(path), 0);
	ck_assert_int_eq(log_dest_get(), LOG_TO_FILE);
	log_info("not shown");
	log_warn("shown %d", 42);
	n = pread(fd, buf, sizeof(buf) - 1, 0);
	ck_assert_int_gt(n, 0);
	buf[n] = 0;
	ck_assert_ptr_null(strstr(buf, "not shown"));
	ck_assert_ptr_nonnull(strstr(buf, "check_util["));
	ck_assert_ptr_nonnull(strstr(buf, "warning: shown 42\n"));
	/* rotation by size: PATH.1 holds the lines before, PATH those after */
	{
		char old[sizeof(path) + 2];
		struct stat st;

		snprintf(old, sizeof(old), "%s.1", path);
		log_set_rotate_bytes(400);
		for (int i = 0; i < 10; i++)
			log_warn("line %d of forty-odd bytes or so", i);
		log_warn("the line after");
		ck_assert_int_eq(stat(old, &st), 0);
		ck_assert_int_ge(st.st_size, 400);
		ck_assert_int_eq(stat(path, &st), 0);
		ck_assert_int_lt(st.st_size, 400);
		ck_assert_int_gt(st.st_size, 0);
		close(fd);
		fd = open(path, O_RDONLY);
		ck_assert_int_ge(fd, 0);
		n = pread(fd, buf, sizeof(buf) - 1, 0);
		buf[n] = 0;
		ck_assert_ptr_nonnull(strstr(buf, "warning: the line after\n"));
		ck_assert_ptr_null(strstr(buf, "shown 42"));
		log_set_rotate_bytes(LOG_ROTATE_DEFAULT);
		unlink(old);
	}
	ck_assert_int_eq(log_to_file("/nonexistent/dir/log"), -ENOENT);
	ck_assert_int_eq(log_dest_get(), LOG_TO_FILE);
	log_init("check_util", LOG_LVL_ERR, 0);
	close(fd);
	unlink(path);
}
END_TEST

START_TEST(test_sbuf)
{
	struct sbuf b = { 0 };
	char *out;
	size_t len;

	sbuf_str(&b, "a");
	sbuf_printf(&b, "%d-%s", 12, "x");
	sbuf_json_str(&b, "q\"\\\n");
	ck_assert_int_eq(sbuf_done(&b, &out, &len), 0);
	ck_assert_str_eq(out, "a12-xq\\\"\\\\\\u000a");
	ck_assert_uint_eq(len, strlen(out));
	free(out);
	ck_assert_int_eq(sbuf_done(&b, &out, &len), 0); /* empty: "" */
	ck_assert_str_eq(out, "");
	free(out);
	b.max = 4;
	sbuf_str(&b, "12345");
	ck_assert_int_eq(sbuf_done(&b, &out, &len), -ENOMEM);
	b = (struct sbuf){ 0 };
	ec_fail_alloc_after = 0;
	sbuf_str(&b, "x");
	sbuf_str(&b, "y");
	ec_fail_alloc_after = -1;
	ck_assert_int_eq(sbuf_done(&b, &out, &len), -ENOMEM);
}
END_TEST

static Suite *util_suite(void)
{
	Suite *s = suite_create("util");
	TCase *tc = tcase_create("size");

	tcase_set_timeout(tc, 30);
	tcase_add_loop_test(tc, test_parse_good, 0, (int)(sizeof(good) / sizeof(good[0])));
	tcase_add_loop_test(tc, test_parse_bad, 0, (int)(sizeof(bad) / sizeof(bad[0])));
	tcase_add_test(tc, test_parse_null);
	tcase_add_test(tc, test_format_bytes);
	suite_add_tcase(s, tc);

	tc = tcase_create("misc");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_clocks);
	tcase_add_test(tc, test_alloc_seam);
	tcase_add_test(tc, test_hex);
	tcase_add_test(tc, test_utf8);
	tcase_add_test(tc, test_sbuf);
	tcase_add_test(tc, test_mountinfo);
	tcase_add_test(tc, test_log_file);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(util_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
