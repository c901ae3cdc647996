/* SPDX-License-Identifier: MIT */
/* Unit tests of fs/options.c (Check): long options, -o lists as mount(8) passes
 * them, FUSE pass-through, and every refusal giving -EINVAL with a reason;
 * and of fs/preflight.c: paths, the mount table, the cache size. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/stat.h>
#include <unistd.h>

#include "fs/options.h"
#include "fs/preflight.h"

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


/* Parse expecting a refusal; the reason is returned in e. */
static int parse_bad(char *e, const char *const *args)
{
	struct epochfs_opts o;
	int rc = parse(&o, e, args);

	opts_free(&o);
	return rc;
}

/* An unknown option is unknown wherever it stands; "needs a value" only for
 * one of ours given last without its value. */
START_TEST(test_unknown_last)
{
	static const char *const last[] = { "s", "m", "--frobnicate", NULL };
	static const char *const last_o[] = { "s", "m", "--cache_dir", NULL };
	static const char *const needs[] = { "s", "m", "--log-file", NULL };
	static const char *const flag_val[] = { "--refresh=yes", "s", "m", NULL };
	char e[256];

	ck_assert_int_eq(parse_bad(e, last), -EINVAL);
	ck_assert_msg(strstr(e, "unknown option '--frobnicate'"), "%s", e);
	ck_assert_int_eq(parse_bad(e, last_o), -EINVAL);
	ck_assert_msg(strstr(e, "unknown option"), "%s", e);
	ck_assert_int_eq(parse_bad(e, needs), -EINVAL);
	ck_assert_msg(strstr(e, "'--log-file' needs a value"), "%s", e);
	ck_assert_int_eq(parse_bad(e, flag_val), -EINVAL);
	ck_assert_msg(strstr(e, "takes no value"), "%s", e);
}
END_TEST

START_TEST(test_long_forms)
{
	struct epochfs_opts o;

	PARSE_OK(&o, "--foreground", "--allow-other", "--read-only", "--nonempty", "s", "m");
	ck_assert_int_eq(o.foreground, 1);
	ck_assert_int_eq(o.nonempty, 1);
	ck_assert_str_eq(o.fuse_opts, "allow_other");
	opts_free(&o);
	/* nonempty is ours: fuse3 does not know it */
	PARSE_OK(&o, "s", "m", "-o", "nonempty,read_only,foreground,ro");
	ck_assert_int_eq(o.nonempty, 1);
	ck_assert_int_eq(o.foreground, 1);
	ck_assert_ptr_null(o.fuse_opts);
	opts_free(&o);
}
END_TEST

START_TEST(test_log_options)
{
	struct epochfs_opts o;

	PARSE_OK(&o, "s", "m");
	ck_assert_ptr_null(o.log_file);
	ck_assert_int_eq(o.log_level, LOG_LVL_INFO);
	opts_free(&o);
	PARSE_OK(&o, "--log-file", "/l/e.log", "--log-level=warn", "s", "m");
	ck_assert_str_eq(o.log_file, "/l/e.log");
	ck_assert_int_eq(o.log_level, LOG_LVL_WARN);
	opts_free(&o);
	PARSE_OK(&o, "s", "m", "-o", "log_file=/x.log,log_level=error");
	ck_assert_str_eq(o.log_file, "/x.log");
	ck_assert_int_eq(o.log_level, LOG_LVL_ERR);
	opts_free(&o);
	PARSE_OK(&o, "--log-level", "debug", "s", "m");
	ck_assert_int_eq(o.log_level, LOG_LVL_DEBUG);
	ck_assert_int_eq(o.foreground, 0); /* unlike -d */
	opts_free(&o);
	PARSE_OK(&o, "-d", "--log-level", "error", "s", "m"); /* -d wins */
	ck_assert_int_eq(o.log_level, LOG_LVL_DEBUG);
	opts_free(&o);
}
END_TEST

START_TEST(test_timeout_retries)
{
	struct epochfs_opts o;

	PARSE_OK(&o, "s", "m");
	ck_assert_uint_eq(o.be.timeout_s, 10);
	ck_assert_uint_eq(o.be.retries, 6);
	opts_free(&o);
	PARSE_OK(&o, "--timeout", "30", "--retries=2", "s", "m");
	ck_assert_uint_eq(o.be.timeout_s, 30);
	ck_assert_uint_eq(o.be.retries, 2);
	opts_free(&o);
	PARSE_OK(&o, "s", "m", "-o", "timeout=5,retries=0");
	ck_assert_uint_eq(o.be.timeout_s, 5);
	ck_assert_uint_eq(o.be.retries, 0);
	opts_free(&o);
}
END_TEST

/* As df -h and numfmt: K/M/G/T binary, KB/MB/GB/TB decimal. */
START_TEST(test_size_units)
{
	struct epochfs_opts o;
	uint64_t b;
	double pct;

	ck_assert_int_eq(opts_parse_size("500GB", &b, &pct), 0);
	ck_assert_uint_eq(b, 500000000000ull);
	ck_assert_int_eq(opts_parse_size("500G", &b, &pct), 0);
	ck_assert_uint_eq(b, 500ull << 30);
	ck_assert_int_eq(opts_parse_size("500GiB", &b, &pct), 0);
	ck_assert_uint_eq(b, 500ull << 30);
	ck_assert_int_eq(opts_parse_size("1.5TB", &b, &pct), 0);
	ck_assert_uint_eq(b, 1500000000000ull);
	ck_assert_int_eq(opts_parse_size("2kb", &b, &pct), 0);
	ck_assert_uint_eq(b, 2000);
	ck_assert_int_eq(opts_parse_size("7MB", &b, &pct), 0);
	ck_assert_uint_eq(b, 7000000);
	ck_assert_int_eq(opts_parse_size("4K", &b, &pct), 0);
	ck_assert_uint_eq(b, 4096);
	ck_assert_int_eq(opts_parse_size("123", &b, &pct), 0);
	ck_assert_uint_eq(b, 123);
	ck_assert_int_eq(opts_parse_size("80%", &b, &pct), 0);
	ck_assert_uint_eq(b, 0);
	ck_assert_double_eq(pct, 80);
	ck_assert_int_eq(opts_parse_size("5QB", &b, &pct), -EINVAL);
	ck_assert_int_eq(opts_parse_size("GB", &b, &pct), -EINVAL);
	ck_assert_int_eq(opts_parse_size("-1GB", &b, &pct), -EINVAL);
	ck_assert_int_eq(opts_parse_size("99999999EB", &b, &pct), -EINVAL);
	PARSE_OK(&o, "--cache-size", "500GB", "s", "m");
	ck_assert_uint_eq(o.cache.capacity, 500000000000ull);
	opts_free(&o);
}
END_TEST

/* N% is of what the cache can have (free + its own), and a size larger
 * than that is refused with the numbers. */
START_TEST(test_capacity)
{
	struct pf_space sp = { .fs_size = 100ull << 30, .fs_avail = 30ull << 30,
			       .cache_used = 10ull << 30 };
	char err[512] = "";
	uint64_t cap;

	ck_assert_int_eq(pf_capacity(&sp, 0, 50, &cap, err, sizeof(err)), 0);
	ck_assert_uint_eq(cap, 20ull << 30); /* not 50% of the 100 GiB filesystem */
	ck_assert_int_eq(pf_capacity(&sp, 40ull << 30, 0, &cap, err, sizeof(err)), 0);
	ck_assert_uint_eq(cap, 40ull << 30);
	ck_assert_int_eq(pf_capacity(&sp, 10ull << 40, 0, &cap, err, sizeof(err)), -ENOSPC);
	ck_assert_msg(strstr(err, "10.00 TiB") && strstr(err, "30.00 GiB free") &&
			      strstr(err, "10.00 GiB already in the cache") &&
			      strstr(err, "100.00 GiB"),
		      "%s", err);
	ck_assert_int_eq(pf_capacity(&sp, (40ull << 30) + 1, 0, &cap, err, sizeof(err)), -ENOSPC);
}
END_TEST

START_TEST(test_paths)
{
	char tmpl[] = "/tmp/check_options.XXXXXX", p[4096], q[4096], made[4096];
	char *d = mkdtemp(tmpl), *real;
	struct pf_space sp;

	ck_assert_ptr_nonnull(d);
	real = realpath(d, NULL);
	ck_assert_ptr_nonnull(real);
	/* missing components are appended to the real path of what exists */
	snprintf(p, sizeof(p), "%s/./a//b/", d);
	ck_assert_int_eq(pf_abspath(p, q, sizeof(q)), 0);
	snprintf(p, sizeof(p), "%s/a/b", real);
	ck_assert_str_eq(q, p);
	ck_assert_int_eq(chdir(d), 0);
	ck_assert_int_eq(pf_abspath("x/y", q, sizeof(q)), 0);
	snprintf(p, sizeof(p), "%s/x/y", real);
	ck_assert_str_eq(q, p);
	ck_assert_int_eq(pf_abspath("x/../y", q, sizeof(q)), -EINVAL);
	ck_assert_int_eq(pf_abspath("/", q, sizeof(q)), 0);
	ck_assert_str_eq(q, "/");
	ck_assert_int_eq(pf_is_under("/m/c", "/m"), 1);
	ck_assert_int_eq(pf_is_under("/m", "/m"), 1);
	ck_assert_int_eq(pf_is_under("/mc", "/m"), 0);
	ck_assert_int_eq(pf_is_under("/x", "/"), 1);
	/* the first directory made is reported, none when all exist */
	snprintf(p, sizeof(p), "%s/a/b/c", real);
	ck_assert_int_eq(pf_space_get(p, 1, &sp), 0); /* measured on its parent */
	ck_assert_uint_eq(sp.cache_used, 0);
	ck_assert_int_eq(pf_mkdirs(p, made, sizeof(made)), 0);
	snprintf(q, sizeof(q), "%s/a", real);
	ck_assert_str_eq(made, q);
	ck_assert_int_eq(pf_mkdirs(p, made, sizeof(made)), 0);
	ck_assert_str_eq(made, "");
	ck_assert_int_eq(pf_dir_nonempty(p), 0);
	ck_assert_int_eq(pf_dir_nonempty(q), 1);
	char fp[4200];

	snprintf(fp, sizeof(fp), "%s/f", p);
	FILE *f = fopen(fp, "w");
	ck_assert_ptr_nonnull(f);
	for (int i = 0; i < 100000; i++)
		fputc('x', f);
	fclose(f);
	ck_assert_int_eq(pf_space_get(p, 0, &sp), 0);
	ck_assert_uint_eq(sp.cache_used, 0); /* not counted */
	ck_assert_int_eq(pf_space_get(p, 1, &sp), 0);
	ck_assert_uint_ge(sp.cache_used, 100000); /* its blocks */
	ck_assert_uint_gt(sp.fs_size, 0);
	ck_assert_int_eq(pf_dir_nonempty("/nonexistent-dir"), -ENOENT);
	ck_assert_int_eq(chdir("/"), 0);
	snprintf(q, sizeof(q), "rm -rf '%s'", real);
	ck_assert_int_eq(system(q), 0);
	free(real);
}
END_TEST

/* A mount point that has an epochfs mount already, read from a made-up
 * table (escaped spaces as the kernel writes them). */
START_TEST(test_mounted)
{
	char tmpl[] = "/tmp/check_mi.XXXXXX";
	int fd = mkstemp(tmpl);
	FILE *f = fdopen(fd, "w");

	ck_assert_ptr_nonnull(f);
	fprintf(f, "22 1 0:21 / /proc rw,nosuid - proc proc rw\n"
		   "40 22 0:50 / /mnt/a\\040b rw,nosuid,nodev shared:1 - fuse.epochfs /src rw\n"
		   "41 22 0:51 / /mnt/c rw - fuse.sshfs host: rw\n");
	fclose(f);
	ck_assert_int_eq(pf_epochfs_mounted(tmpl, "/mnt/a b"), -EBUSY);
	ck_assert_int_eq(pf_epochfs_mounted(tmpl, "/mnt/c"), 0);
	ck_assert_int_eq(pf_epochfs_mounted(tmpl, "/mnt/a"), 0);
	ck_assert_int_eq(pf_epochfs_mounted("/nonexistent-table", "/mnt/c"), -ENOENT);
	unlink(tmpl);
}
END_TEST

START_TEST(test_usage_new)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	static const char *const want[] = { "--log-file", "--log-level", "--timeout", "--retries",
					    "--foreground", "--allow-other", "--read-only",
					    "--nonempty", "KB/MB/GB/TB", "exit status" };

	ck_assert_ptr_nonnull(f);
	opts_usage(f, "epochfs");
	fclose(f);
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		ck_assert_msg(strstr(buf, want[i]), "--help lacks %s", want[i]);
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
	{ "--log-level=loud", "s", "m" },
	{ "-o", "log_level=", "s", "m" },
	{ "--timeout=0", "s", "m" },
	{ "--timeout", "abc", "s", "m" },
	{ "-o", "timeout=86401", "s", "m" },
	{ "--retries=101", "s", "m" },
	{ "--retries=-1", "s", "m" },
	{ "--cache-size=5QB", "s", "m" },
	{ "s", "m", "--bogus" },
	{ "s", "m", "--timeout" },
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
	tcase_add_test(tc, test_unknown_last);
	tcase_add_test(tc, test_long_forms);
	tcase_add_test(tc, test_log_options);
	tcase_add_test(tc, test_timeout_retries);
	tcase_add_test(tc, test_size_units);
	tcase_add_test(tc, test_capacity);
	tcase_add_test(tc, test_paths);
	tcase_add_test(tc, test_mounted);
	tcase_add_test(tc, test_usage_new);
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
