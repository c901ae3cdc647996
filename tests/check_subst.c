/* SPDX-License-Identifier: MIT */
/* Unit tests of cache/subst.c (Check), on a real cache with --substitute=dir
 * over a small POSIX source whose reads the test holds (so what is not
 * cached does not arrive within the deadline): an open of a missed sample
 * is served the bytes of a cached sample of the same directory not read yet
 * this epoch, and the missed one is served later, in that one's place:
 * every content exactly once per epoch; a stat of a substituted path shows
 * the served size while the handle is open; no substitution across
 * directories, without a plan, or for a cached sample. */
#define _GNU_SOURCE
#include <check.h>
#include <time.h>

#include "testcache.h"
#include "cache/control.h"
#include "cache/engine.h"
#include "backends/base/log.h"
#include "backends/base/util.h"

#define NDIRS 2
#define NPER 4
#define NFILES (NDIRS * NPER)

static struct tc t;

/* Every file a size of its own, so that a size tells which was served. */
static size_t size_of(int i)
{
	return 3000 + (size_t)i * 111;
}

static const char *path_of(int i)
{
	static char buf[8][64];
	static int k;
	char *p = buf[k++ % 8];

	snprintf(p, 64, "c%d/img_%02d.jpg", i / NPER, i % NPER);
	return p;
}

static void setup(void)
{
	struct cache_config cfg;
	char path[256];

	tc_init(&t, "check_subst");
	for (int d = 0; d < NDIRS; d++) {
		snprintf(path, sizeof(path), "%s/c%d", t.src, d);
		ck_assert_int_eq(mkdir(path, 0755), 0);
	}
	for (int i = 0; i < NFILES; i++) {
		snprintf(path, sizeof(path), "%s/%s", t.src, path_of(i));
		tc_write_file(path, (unsigned)i, size_of(i));
	}
	tc_config(&t, &cfg, 64ull << 20);
	cfg.substitute = SUBST_DIR;
	cfg.substitute_deadline_ms = 20;
	tc_open(&t, &cfg);
}

static void teardown(void)
{
	tc_fini(&t);
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* Wait until the source has been asked at least min requests in all and
 * then nothing new for 300 ms. */
static void settle_n(int min)
{
	int last = -1, same = 0, n = 0;

	for (int i = 0; i < 800 && (same < 12 || n < min); i++) {
		sleep_ms(25);
		pthread_mutex_lock(&t.be->lock);
		n = t.be->submits;
		pthread_mutex_unlock(&t.be->lock);
		same = n == last ? same + 1 : 0;
		last = n;
	}
}

static void settle(void)
{
	settle_n(0);
}

/* After an order is given: the prefetcher has asked for something (so it
 * has resolved the samples), then nothing more. */
static void settle_more(int before)
{
	settle_n(before + 1);
}

static int submits(void)
{
	int n;

	pthread_mutex_lock(&t.be->lock);
	n = t.be->submits;
	pthread_mutex_unlock(&t.be->lock);
	return n;
}

static void read_plain(int i)
{
	struct cache_file *f;

	ck_assert_int_eq(cache_file_open(t.c, tc_ino(&t, path_of(i)), &f), 0);
	ck_assert(!cache_file_substituted(f));
	ck_assert_int_eq(tc_read_check(f, (unsigned)i), (ssize_t)size_of(i));
	cache_file_close(f);
}

static uint64_t cached_of(int i)
{
	uint64_t cached = 0, size = 0;

	ck_assert_int_eq(cache_cached_bytes(t.c, tc_ino(&t, path_of(i)), &cached, &size), 0);
	return cached;
}

static void write_order(const int *files, int n)
{
	char buf[1024], err[256] = "";
	size_t pos = 0;

	for (int i = 0; i < n; i++)
		pos += (size_t)snprintf(buf + pos, sizeof(buf) - pos, "%s\n", path_of(files[i]));
	ck_assert_msg(control_order_apply(t.c, buf, pos, err, sizeof(err)) == 0, "order: %s", err);
}

/* Open sample i and say whose bytes it serves (checking every byte and
 * the size a stat of its path shows meanwhile). */
static int open_served(int i)
{
	uint64_t ino = tc_ino(&t, path_of(i));
	struct cache_file *f;
	struct ns_attr a;
	int served = -1;
	ssize_t n;

	ck_assert_int_eq(cache_file_open(t.c, ino, &f), 0);
	for (int j = 0; j < NFILES; j++)
		if (cache_file_size(f) == size_of(j))
			served = j;
	ck_assert_int_ge(served, 0);
	ck_assert_int_eq(cache_file_substituted(f), served != i);
	ck_assert_int_eq(cache_getattr(t.c, ino, &a), 0);
	ck_assert_uint_eq(a.size, size_of(served));
	n = tc_read_check(f, (unsigned)served);
	ck_assert_int_eq(n, (ssize_t)size_of(served));
	cache_file_close(f);
	ck_assert_int_eq(cache_getattr(t.c, ino, &a), 0);
	ck_assert_uint_eq(a.size, size_of(i)); /* closed: its own size again */
	return served;
}

START_TEST(test_missed_served_later_once)
{
	static const int order[] = { 0, 1, 2, 3, 4, 5, 6, 7 };
	int served[NFILES], seen[NFILES] = { 0 };

	/* The stock: samples 2 and 3 (directory c0) cached before the epoch. */
	read_plain(2);
	read_plain(3);
	/* Nothing else arrives: the source's reads are held. */
	tc_hold(&t);
	{
		int before = submits();

		write_order(order, NFILES);
		settle_more(before); /* the prefetcher knows the samples, its fetches held */
	}
	ck_assert_uint_eq(cached_of(0), 0);

	/* A peer's read (fs/peerd.c) of 0 is 0's own bytes, and trades nothing */
	{
		struct cache_file *f;

		ck_assert_int_eq(cache_file_open_exact(t.c, tc_ino(&t, path_of(0)), &f), 0);
		ck_assert(!cache_file_substituted(f));
		ck_assert_uint_eq(cache_file_size(f), size_of(0));
		cache_file_close(f);
		ck_assert_uint_eq(atomic_load(&t.c->sb.substitutions), 0);
	}
	/* 0 missed: served 3's bytes (the latest pending cached one of c0);
	 * 0 becomes due at 3's slot */
	served[0] = open_served(0);
	ck_assert_int_eq(served[0], 3);
	/* 1 missed: 3's slot now owes 0 (not cached), so 2's bytes */
	served[1] = open_served(1);
	ck_assert_int_eq(served[1], 2);
	ck_assert_uint_eq(atomic_load(&t.c->sb.substitutions), 2);

	/* The source answers now: the slots that lent their content serve
	 * what they are owed, each exactly once. */
	tc_release(&t, 0);
	served[2] = open_served(2);
	ck_assert_int_eq(served[2], 1);
	served[3] = open_served(3);
	ck_assert_int_eq(served[3], 0);
	for (int i = 4; i < NFILES; i++) {
		served[i] = open_served(i);
		ck_assert_int_eq(served[i], i); /* cached by now: no trade */
	}
	for (int i = 0; i < NFILES; i++)
		seen[served[i]]++;
	for (int i = 0; i < NFILES; i++)
		ck_assert_msg(seen[i] == 1, "sample %d served %d times this epoch", i, seen[i]);
	ck_assert_uint_eq(atomic_load(&t.c->sb.substitutions), 2);
}
END_TEST

START_TEST(test_same_directory_only)
{
	static const int order[] = { 4, 5, 0, 1, 2, 3, 6, 7 };

	/* The stock is all in c0; a miss in c1 waits for its own bytes. */
	read_plain(2);
	read_plain(3);
	tc_hold(&t);
	{
		int before = submits();

		write_order(order, NFILES);
		settle_more(before);
	}
	{
		uint64_t ino = tc_ino(&t, path_of(4));
		struct cache_file *f;

		ck_assert_int_eq(cache_file_open(t.c, ino, &f), 0);
		ck_assert(!cache_file_substituted(f));
		ck_assert_uint_eq(cache_file_size(f), size_of(4));
		tc_release(&t, 0);
		ck_assert_int_eq(tc_read_check(f, 4), (ssize_t)size_of(4));
		cache_file_close(f);
	}
	ck_assert_uint_eq(atomic_load(&t.c->sb.substitutions), 0);
}
END_TEST

START_TEST(test_no_plan_no_substitution)
{
	/* Substitution needs the order: without one, every open is its own. */
	read_plain(2);
	read_plain(3);
	read_plain(0);
	read_plain(1);
	ck_assert_uint_eq(atomic_load(&t.c->sb.substitutions), 0);
}
END_TEST

START_TEST(test_cached_not_traded)
{
	static const int order[] = { 2, 0, 1, 3 };

	/* A sample that is cached is served its own bytes. */
	read_plain(2);
	read_plain(3);
	tc_hold(&t);
	{
		int before = submits();

		write_order(order, 4);
		settle_more(before);
	}
	ck_assert_int_eq(open_served(2), 2);
	/* the one missed takes 3 (the latest cached pending one) */
	ck_assert_int_eq(open_served(0), 3);
	tc_release(&t, 0);
	ck_assert_int_eq(open_served(1), 1);
	ck_assert_int_eq(open_served(3), 0);
}
END_TEST

START_TEST(test_new_epoch_resets)
{
	static const int order[] = { 0, 1, 2, 3 };
	char err[256];

	read_plain(3);
	tc_hold(&t);
	{
		int before = submits();

		write_order(order, 4);
		settle_more(before);
	}
	ck_assert_int_eq(open_served(0), 3);
	/* a new plan: the books start over, 0 is no longer owed at 3's slot */
	tc_release(&t, 0);
	write_order(order, 4);
	settle();
	ck_assert_int_eq(open_served(3), 3);
	ck_assert_int_eq(open_served(0), 0);
	ck_assert_int_eq(control_seed_apply(t.c, "clear", 5, err, sizeof(err)), 0);
}
END_TEST

static Suite *subst_suite(void)
{
	Suite *s = suite_create("subst");
	TCase *tc = tcase_create("subst");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_missed_served_later_once);
	tcase_add_test(tc, test_same_directory_only);
	tcase_add_test(tc, test_no_plan_no_substitution);
	tcase_add_test(tc, test_cached_not_traded);
	tcase_add_test(tc, test_new_epoch_resets);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(subst_suite());
	int failed;

	log_init("check_subst", LOG_LVL_ERR, 0);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
