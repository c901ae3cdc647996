/* SPDX-License-Identifier: MIT */
/* Unit tests of fs/options.c (Check): long options, -o lists as mount(8) passes
 * them, FUSE pass-through, and every refusal giving -EINVAL with a reason. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs/options.h"

#define MAXARG 32

/* Parse a NULL-terminated list of arguments (argv[0] is added). */
static int parse(struct epochfs_opts *o, char *err, const char *const *args)
{
	char *argv[MAXARG];
	int argc = 0;

	argv[argc++] = (char *)"epochfs";
	for (; *args; args++) {
		ck_assert_int_lt(argc, MAXARG - 1);
		argv[argc++] = (char *)*args;
	}
	argv[argc] = NULL;
	err[0] = 'X';
	err[1] = 0;
	return opts_parse(argc, argv, o, err, 256);
}

#define PARSE_OK(o, ...)                                                           \
	do {                                                                       \
		static const char *const a_[] = { __VA_ARGS__, NULL };             \
		char e_[256];                                                      \
		int rc_ = parse(o, e_, a_);                                        \
		ck_assert_msg(rc_ == 0, "refused (%d): %s", rc_, e_);              \
	} while (0)

START_TEST(test_defaults)
{
	struct epochfs_opts o;

	PARSE_OK(&o, "/data", "/mnt");
	ck_assert_str_eq(o.source, "/data");
	ck_assert_str_eq(o.mountpoint, "/mnt");
	ck_assert_str_eq(o.cache_dir, "/var/cache/epochfs");
	ck_assert_str_eq(o.cache.cache_dir, "/var/cache/epochfs");
	ck_assert_uint_eq(o.cache.capacity, 0);
	ck_assert_double_eq(o.cache.capacity_pct, 50);
	ck_assert_uint_eq(o.cache.chunk_size, CACHE_DEFAULT_CHUNK);
	ck_assert_int_eq(o.cache.policy, POLICY_SHADE);
	ck_assert_int_eq(o.cache.list_ttl_s, -1);
	ck_assert_int_eq(o.cache.refresh, 0);
	ck_assert_uint_eq(o.be.concurrency, 64);
	ck_assert_double_eq(o.entry_timeout, 86400);
	ck_assert_int_eq(o.foreground, 0);
	ck_assert_ptr_null(o.fuse_opts);
	opts_free(&o);
	ck_assert_ptr_null(o.cache_dir);
}
END_TEST

START_TEST(test_long_options)
{
	struct epochfs_opts o;

	PARSE_OK(&o, "--cache-dir", "/c", "--cache-size=100G", "--chunk-size", "1M",
		 "--policy=lru", "--list-ttl", "3600", "--refresh", "--backend-concurrency=8",
		 "--entry-timeout", "5", "--manifest=/m.txt", "--s3-endpoint", "http://h:9000",
		 "--s3-path-style", "--no-sign", "--insecure", "-f", "src", "mnt");
	ck_assert_str_eq(o.cache_dir, "/c");
	ck_assert_str_eq(o.cache.cache_dir, "/c");
	ck_assert_uint_eq(o.cache.capacity, 100ull << 30);
	ck_assert_double_eq(o.cache.capacity_pct, 0);
	ck_assert_uint_eq(o.cache.chunk_size, 1u << 20);
	ck_assert_int_eq(o.cache.policy, POLICY_LRU);
	ck_assert_int_eq(o.cache.list_ttl_s, 3600);
	ck_assert_int_eq(o.cache.refresh, 1);
	ck_assert_uint_eq(o.be.concurrency, 8);
	ck_assert_double_eq(o.entry_timeout, 5);
	ck_assert_str_eq(o.be.manifest, "/m.txt");
	ck_assert_str_eq(o.be.s3_endpoint, "http://h:9000");
	ck_assert_int_eq(o.be.s3_path_style, 1);
	ck_assert_int_eq(o.be.no_sign, 1);
	ck_assert_int_eq(o.be.insecure, 1);
	ck_assert_int_eq(o.foreground, 1);
	ck_assert_str_eq(o.source, "src");
	ck_assert_str_eq(o.mountpoint, "mnt");
	opts_free(&o);

	PARSE_OK(&o, "--cache-size", "80%", "-d", "--debug", "s", "m", "-s");
	ck_assert_uint_eq(o.cache.capacity, 0);
	ck_assert_double_eq(o.cache.capacity_pct, 80);
	ck_assert_int_eq(o.debug, 1);
	ck_assert_int_eq(o.foreground, 1);
	opts_free(&o);
}
END_TEST

START_TEST(test_o_lists)
{
	struct epochfs_opts o;

	PARSE_OK(&o, "src", "mnt", "-o",
		 "rw,dev,suid,cache_dir=/cc,cache_size=2T,allow_other,nosuid,nodev,exec,auto,"
		 "_netdev,x-systemd.automount,defaults,chunk_size=256K,policy=lru,refresh",
		 "-odefault_permissions,fsname=ds", "-o", "list_ttl=60,backend_concurrency=4");
	ck_assert_str_eq(o.cache_dir, "/cc");
	ck_assert_str_eq(o.cache.cache_dir, "/cc");
	ck_assert_uint_eq(o.cache.capacity, 2ull << 40);
	ck_assert_uint_eq(o.cache.chunk_size, 256u << 10);
	ck_assert_int_eq(o.cache.policy, POLICY_LRU);
	ck_assert_int_eq(o.cache.refresh, 1);
	ck_assert_int_eq(o.cache.list_ttl_s, 60);
	ck_assert_uint_eq(o.be.concurrency, 4);
	ck_assert_str_eq(o.fuse_opts, "allow_other,default_permissions,fsname=ds");
	opts_free(&o);
}
END_TEST

START_TEST(test_no_open)
{
	struct epochfs_opts o;

	PARSE_OK(&o, "src", "mnt");
	ck_assert_int_eq(o.no_open, 0);
	opts_free(&o);
	PARSE_OK(&o, "--no-open", "src", "mnt");
	ck_assert_int_eq(o.no_open, 1);
	ck_assert_int_eq(o.cache.no_open, 1);
	ck_assert_str_eq(o.mountpoint, "mnt"); /* a flag: takes no value */
	opts_free(&o);
	PARSE_OK(&o, "src", "mnt", "-o", "no_open,allow_other", "--substitute=off");
	ck_assert_int_eq(o.no_open, 1);
	ck_assert_str_eq(o.fuse_opts, "allow_other");
	opts_free(&o);
}
END_TEST

/* Values given through -o outlive the parse (they point into a copy). */
START_TEST(test_o_values_kept)
{
	struct epochfs_opts o;
	char list[] = "manifest=http://h/m.txt,s3_endpoint=http://e:1";
	char *argv[] = { (char *)"epochfs", (char *)"-o", list, (char *)"s", (char *)"m", NULL };
	char err[256];

	ck_assert_int_eq(opts_parse(5, argv, &o, err, sizeof(err)), 0);
	memset(list, 'Z', sizeof(list) - 1);
	ck_assert_str_eq(o.be.manifest, "http://h/m.txt");
	ck_assert_str_eq(o.be.s3_endpoint, "http://e:1");
	opts_free(&o); /* must free them too: valgrind reports a leak otherwise */
}
END_TEST

START_TEST(test_help_version)
{
	struct epochfs_opts o;

	PARSE_OK(&o, "--help");
	ck_assert_int_eq(o.help, 1);
	opts_free(&o);
	PARSE_OK(&o, "src", "-h");
	ck_assert_int_eq(o.help, 1);
	opts_free(&o);
	PARSE_OK(&o, "--version");
	ck_assert_int_eq(o.version, 1);
	ck_assert_int_eq(o.help, 0);
	opts_free(&o);
	PARSE_OK(&o, "-V", "--bogus");
	ck_assert_int_eq(o.version, 1);
	opts_free(&o);
}
END_TEST

START_TEST(test_usage)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	ck_assert_ptr_nonnull(f);
	opts_usage(f, "epochfs");
	fclose(f);
	ck_assert_ptr_nonnull(strstr(buf, "usage: epochfs"));
	ck_assert_ptr_nonnull(strstr(buf, "--cache-size"));
	ck_assert_ptr_nonnull(strstr(buf, "50%"));
	free(buf);
}
END_TEST

static const char *const bad[][8] = {
	{ "--cache-size", "abc", "s", "m" },
	{ "--cache-size=0", "s", "m" },
	{ "--cache-size=0%", "s", "m" },
	{ "--cache-size=101%", "s", "m" },
	{ "--cache-size=12Q", "s", "m" },
	{ "--cache-size=", "s", "m" },
	{ "--chunk-size=300K", "s", "m" },
	{ "--chunk-size=128K", "s", "m" },
	{ "--chunk-size=2G", "s", "m" },
	{ "--chunk-size=50%", "s", "m" },
	{ "--policy=mru", "s", "m" },
	{ "--list-ttl=-1", "s", "m" },
	{ "--list-ttl=1x", "s", "m" },
	{ "--backend-concurrency=0", "s", "m" },
	{ "--backend-concurrency=5000", "s", "m" },
	{ "--entry-timeout=abc", "s", "m" },
	{ "--frobnicate", "s", "m" },
	{ "--frobnicate=1", "s", "m" },
	{ "-x", "s", "m" },
	{ "s", "m", "--cache-dir" },
	{ "s", "m", "-o" },
	{ "-o", "cache_size=abc", "s", "m" },
	{ "-o", "chunk_size=3M", "s", "m" },
	{ "-o", "policy=nope", "s", "m" },
	{ "-o", "cache_dir=", "s", "m" },
	/* a bad value followed by a good option is still refused */
	{ "-o", "cache_size=abc,allow_other", "s", "m" },
	{ "-o", "policy=nope,cache_dir=/x", "s", "m" },
	{ "-o", "chunk_size=3M,ro", "s", "m" },
	{ NULL },
	{ "s", NULL },
	{ "s", "m", "extra" },
	{ "--cache-dir", "/c", "s" },
	{ "--aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa=1", "s", "m" },
	/* substitution decides at open; no-open mode has none */
	{ "--no-open", "--substitute=dir", "s", "m" },
	{ "-o", "no_open,substitute=all", "s", "m" },
};

START_TEST(test_bad)
{
	struct epochfs_opts o;
	char err[256];
	int rc = parse(&o, err, bad[_i]);

	ck_assert_msg(rc == -EINVAL, "case %d (%s ...) gave %d", _i, bad[_i][0] ? bad[_i][0] : "",
		      rc);
	ck_assert_msg(err[0] && strcmp(err, "X"), "case %d: no reason given", _i);
	opts_free(&o);
}
END_TEST

static Suite *options_suite(void)
{
	Suite *s = suite_create("options");
	TCase *tc = tcase_create("parse");

	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_defaults);
	tcase_add_test(tc, test_long_options);
	tcase_add_test(tc, test_o_lists);
	tcase_add_test(tc, test_no_open);
	tcase_add_test(tc, test_o_values_kept);
	tcase_add_test(tc, test_help_version);
	tcase_add_test(tc, test_usage);
	tcase_add_loop_test(tc, test_bad, 0, (int)(sizeof(bad) / sizeof(bad[0])));
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(options_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
