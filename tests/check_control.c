/* SPDX-License-Identifier: MIT */
/* Unit tests of cache/control.c and cache/control_plan.c (Check), on a real
 * cache over a small POSIX source: seed specs render back canonically, rank
 * lists and 'clear'; every bad write is -EINVAL with a reason and changes
 * nothing (seed, order, manifest and epoch rendered before and after);
 * manifest, order, epoch, importance and evict do what docs/control.md says.
 * The allocation-failure walk (every k-th allocation failed in turn) is in
 * its own test case: run it under valgrind with CK_FORK=no. */
#define _GNU_SOURCE
#include <check.h>

#include "testcache.h"
#include "cache/control.h"
#include "cache/engine.h"
#include "backends/base/log.h"
#include "backends/base/util.h"

#define NDIRS 3
#define NPER 4
#define FSIZE 3000

static struct tc t;

static void setup(void)
{
	struct cache_config cfg;

	tc_init(&t, "check_control");
	tc_make_source(&t, NDIRS, NPER, FSIZE);
	tc_config(&t, &cfg, 64ull << 20);
	tc_open(&t, &cfg);
}

static void teardown(void)
{
	tc_fini(&t);
}

/* Everything a control write may change, as one string. */
struct state {
	char *seed, *order, *manifest, *epoch;
};

static void snap(struct state *s)
{
	s->seed = tc_render(t.c, control_seed_render);
	s->order = tc_render(t.c, control_order_render);
	s->manifest = tc_render(t.c, control_manifest_render);
	s->epoch = tc_render(t.c, control_epoch_render);
}

static void snap_free(struct state *s)
{
	free(s->seed);
	free(s->order);
	free(s->manifest);
	free(s->epoch);
}

static void expect_unchanged(const struct state *before, const char *what)
{
	struct state now;

	snap(&now);
	ck_assert_msg(!strcmp(before->seed, now.seed), "%s changed the seed: '%s' -> '%s'", what,
		      before->seed, now.seed);
	ck_assert_msg(!strcmp(before->order, now.order), "%s changed the order", what);
	ck_assert_msg(!strcmp(before->manifest, now.manifest), "%s changed the manifest", what);
	ck_assert_msg(!strcmp(before->epoch, now.epoch), "%s changed the epoch", what);
	snap_free(&now);
}

typedef int (*apply_fn)(struct cache *, const char *, size_t, char *, size_t);

static int apply(apply_fn fn, const char *data, char *err)
{
	err[0] = 0;
	return fn(t.c, data, strlen(data), err, 256);
}

/* A write that must be refused: -EINVAL, a reason, nothing changed. */
static void expect_rejected(apply_fn fn, const char *data)
{
	struct state before;
	char err[256];

	snap(&before);
	ck_assert_msg(apply(fn, data, err) == -EINVAL, "'%s' was not rejected", data);
	ck_assert_msg(err[0], "'%s' rejected without a reason", data);
	expect_unchanged(&before, data);
	snap_free(&before);
}

static void expect_render(int (*render)(struct cache *, char **, size_t *), const char *want)
{
	char *s = tc_render(t.c, render);

	ck_assert_str_eq(s, want);
	free(s);
}

/* The default manifest: ImageFolder's order. */
static char *default_manifest(void)
{
	static char buf[4096];
	size_t pos = 0;

	for (int d = 0; d < NDIRS; d++)
		for (int k = 0; k < NPER; k++)
			pos += (size_t)snprintf(buf + pos, sizeof(buf) - pos, "c%d/img_%02d.jpg\n", d, k);
	return buf;
}

/* o (taken, freed) holds every file of the default manifest, one a line,
 * and nothing else: a permutation of it. */
static void expect_permutation(char *o)
{
	char *m = default_manifest();
	size_t lines = 0;

	for (char *p = o; *p; p++)
		lines += *p == '\n';
	ck_assert_uint_eq(lines, NDIRS * NPER);
	for (char *l = m; *l;) {
		char *nl = strchr(l, '\n'), one[64];

		snprintf(one, sizeof(one), "%.*s", (int)(nl - l + 1), l);
		ck_assert_msg(strstr(o, one), "%s missing from the order", one);
		l = nl + 1;
	}
	free(o);
}

START_TEST(test_seed_canonical)
{
	char err[256];

	expect_render(control_seed_render, "");
	expect_render(control_epoch_render, "0\n");
	expect_render(control_order_render, "");
	/* keys in any order, a trailing newline: rendered in canonical form */
	ck_assert_int_eq(apply(control_seed_apply, "rank=1 world=2 seed=42\n", err), 0);
	expect_render(control_seed_render,
		      "seed=42 sampler=distributed world=2 rank=1 drop_last=0 epoch=0\n");
	ck_assert_int_eq(apply(control_seed_apply, "sampler=randperm seed=7 epoch=2", err), 0);
	expect_render(control_seed_render, "seed=7 sampler=randperm epoch=2\n");
	expect_render(control_epoch_render, "2\n");
	ck_assert_int_eq(apply(control_seed_apply, "seed=9 sampler=numpy", err), 0);
	expect_render(control_seed_render, "seed=9 sampler=numpy epoch=0\n");
	/* the order is a permutation of the manifest */
	expect_permutation(tc_render(t.c, control_order_render));
}
END_TEST

START_TEST(test_seed_ranks)
{
	char err[256];

	ck_assert_int_eq(apply(control_seed_apply, "seed=5 world=4 rank=0-3", err), 0);
	expect_render(control_seed_render,
		      "seed=5 sampler=distributed world=4 rank=0 drop_last=0 epoch=0\n"
		      "seed=5 sampler=distributed world=4 rank=1 drop_last=0 epoch=0\n"
		      "seed=5 sampler=distributed world=4 rank=2 drop_last=0 epoch=0\n"
		      "seed=5 sampler=distributed world=4 rank=3 drop_last=0 epoch=0\n");
	pthread_mutex_lock(&t.c->ot.lock);
	ck_assert_uint_eq(plan_nranks(t.c->plan), 4);
	pthread_mutex_unlock(&t.c->ot.lock);
	/* the merged order of four ranks covers every sample once */
	expect_permutation(tc_render(t.c, control_order_render));

	/* a list and a range; the same job: ranks join, others kept */
	ck_assert_int_eq(apply(control_seed_apply, "seed=5 world=8 rank=0,2,5-6", err), 0);
	expect_render(control_seed_render,
		      "seed=5 sampler=distributed world=8 rank=0 drop_last=0 epoch=0\n"
		      "seed=5 sampler=distributed world=8 rank=2 drop_last=0 epoch=0\n"
		      "seed=5 sampler=distributed world=8 rank=5 drop_last=0 epoch=0\n"
		      "seed=5 sampler=distributed world=8 rank=6 drop_last=0 epoch=0\n");
	ck_assert_int_eq(apply(control_seed_apply, "seed=5 world=8 rank=7", err), 0);
	pthread_mutex_lock(&t.c->ot.lock);
	ck_assert_uint_eq(plan_nranks(t.c->plan), 5);
	pthread_mutex_unlock(&t.c->ot.lock);
	/* start=K: positions consumed */
	ck_assert_int_eq(apply(control_seed_apply, "seed=5 world=8 rank=1 start=1", err), 0);
	{
		struct plan_rank_info ri;
		int found = 0;

		pthread_mutex_lock(&t.c->ot.lock);
		for (unsigned k = 0; plan_rank_get(t.c->plan, k, &ri) == 0; k++)
			if (ri.rank == 1) {
				ck_assert_uint_eq(ri.position, 1);
				found = 1;
			}
		pthread_mutex_unlock(&t.c->ot.lock);
		ck_assert(found);
	}

	/* clear forgets every spec */
	ck_assert_int_eq(apply(control_seed_apply, "clear\n", err), 0);
	expect_render(control_seed_render, "");
	expect_render(control_order_render, "");
	expect_render(control_epoch_render, "0\n");
	pthread_mutex_lock(&t.c->ot.lock);
	ck_assert_int_eq(plan_mode(t.c->plan), PLAN_OFF);
	pthread_mutex_unlock(&t.c->ot.lock);
	/* clear with no plan is fine */
	ck_assert_int_eq(apply(control_seed_apply, "clear", err), 0);
}
END_TEST

START_TEST(test_seed_bad)
{
	static const char *const bad[] = {
		"", "\n", "seed=abc", "seed=", "seed=-1", "world=2", "seed=1 world=2 rank=2",
		"seed=1 world=4 rank=0,,1", "seed=1 world=4 rank=,1", "seed=1 world=4 rank=1,",
		"seed=1 bogus=3", "seed=1 seed=2", "seed=1 sampler=bogus", "seed=1 drop_last=2",
		"seed=1 sampler=randperm world=2", "seed=1 world=4 rank=3-1", "seed=1 world=4 rank=",
		"seed=1 world=4 rank=a", "seed=1 world=4 rank=1 rank=2", "seed=1 world=4 rank=0-4",
		"seed=1 world=100 rank=0-99", "seed=1 world=4 rank=,", "seed=1 start=x",
		"seed=1\nseed=2\n", "seed=1 rank=0 world=2 start=99", "clear now",
		"seed=18446744073709551616", "seed=1 epoch=x",
	};
	char err[256];

	/* with no plan, then with one in force */
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		expect_rejected(control_seed_apply, bad[i]);
	ck_assert_int_eq(apply(control_seed_apply, "seed=3 world=2 rank=0-1", err), 0);
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		expect_rejected(control_seed_apply, bad[i]);
	/* a NUL byte inside the line */
	{
		struct state before;

		snap(&before);
		err[0] = 0;
		ck_assert_int_eq(control_seed_apply(t.c, "seed=1\0x", 8, err, sizeof(err)), -EINVAL);
		expect_unchanged(&before, "a NUL byte");
		snap_free(&before);
	}
}
END_TEST

START_TEST(test_manifest)
{
	char err[256];

	expect_render(control_manifest_render, default_manifest());
	/* relative paths, ./ and blank lines are fine */
	ck_assert_int_eq(apply(control_manifest_apply, "c2/img_01.jpg\n./c0/img_03.jpg\n\nc1/img_00.jpg\n",
			       err), 0);
	expect_render(control_manifest_render, "c2/img_01.jpg\nc0/img_03.jpg\nc1/img_00.jpg\n");
	expect_rejected(control_manifest_apply, "c0/img_00.jpg\nc0/nope.jpg\n");
	{
		/* the reason names the line */
		err[0] = 0;
		ck_assert_int_eq(apply(control_manifest_apply, "c0/img_00.jpg\nc0\n", err), -EINVAL);
		ck_assert_msg(strstr(err, "line 2"), "reason '%s' does not name line 2", err);
	}
	expect_rejected(control_manifest_apply, "/abs/c0/img_00.jpg\n"); /* mount point unknown */
	expect_rejected(control_manifest_apply, "../src/c0/img_00.jpg\n");
	expect_rejected(control_manifest_apply, "c0/img_00.jpg/\n"); /* a file is no directory */
	/* an empty write, or a blank line, restores the default */
	ck_assert_int_eq(apply(control_manifest_apply, "", err), 0);
	expect_render(control_manifest_render, default_manifest());
	ck_assert_int_eq(apply(control_manifest_apply, "c0/img_01.jpg\n", err), 0);
	ck_assert_int_eq(apply(control_manifest_apply, "\n", err), 0);
	expect_render(control_manifest_render, default_manifest());
}
END_TEST

START_TEST(test_manifest_under_seed)
{
	char err[256], *before;

	/* a new manifest turns the seed off: orders index into it */
	ck_assert_int_eq(apply(control_seed_apply, "seed=1", err), 0);
	before = tc_render(t.c, control_order_render);
	ck_assert_str_ne(before, "");
	free(before);
	ck_assert_int_eq(apply(control_manifest_apply, "c0/img_00.jpg\nc0/img_01.jpg\n", err), 0);
	expect_render(control_seed_render, "");
	/* a seed over a 2-sample manifest: the order has those 2 */
	ck_assert_int_eq(apply(control_seed_apply, "seed=1 sampler=randperm", err), 0);
	before = tc_render(t.c, control_order_render);
	ck_assert_msg(!strcmp(before, "c0/img_00.jpg\nc0/img_01.jpg\n") ||
			      !strcmp(before, "c0/img_01.jpg\nc0/img_00.jpg\n"),
		      "order '%s'", before);
	free(before);
}
END_TEST

START_TEST(test_order)
{
	char err[256];

	ck_assert_int_eq(apply(control_order_apply, "c1/img_02.jpg\nc0/img_00.jpg\n\nc2/img_03.jpg\n",
			       err), 0);
	expect_render(control_order_render, "c1/img_02.jpg\nc0/img_00.jpg\n");
	expect_render(control_epoch_render, "0\n");
	expect_render(control_seed_render, ""); /* an order replaces a seed spec */
	/* the next epoch's block */
	ck_assert_int_eq(apply(control_epoch_apply, "1\n", err), 0);
	expect_render(control_order_render, "c2/img_03.jpg\n");
	ck_assert_int_eq(apply(control_epoch_apply, "0", err), 0);
	expect_rejected(control_order_apply, "c0/img_00.jpg\nc9/img_00.jpg\n");
	expect_rejected(control_order_apply, "\n\n");
	expect_rejected(control_order_apply, "c0\n");
	/* a rank header: that rank's orders */
	ck_assert_int_eq(apply(control_order_apply, "# rank=2 epoch=0\nc0/img_01.jpg\nc0/img_02.jpg\n",
			       err), 0);
	{
		struct plan_rank_info ri;
		int found = 0;

		pthread_mutex_lock(&t.c->ot.lock);
		for (unsigned k = 0; plan_rank_get(t.c->plan, k, &ri) == 0; k++)
			found |= ri.rank == 2;
		pthread_mutex_unlock(&t.c->ot.lock);
		ck_assert(found);
	}
	expect_rejected(control_order_apply, "# rank=x\nc0/img_01.jpg\n");
	expect_rejected(control_order_apply, "# rank=1 bogus=2\nc0/img_01.jpg\n");
	expect_rejected(control_order_apply, "# rank=1\n");
	expect_rejected(control_order_apply, "# rank=1 start=5\nc0/img_01.jpg\n");
}
END_TEST

START_TEST(test_order_joins_manifest)
{
	char err[256], *m;

	/* a file outside the manifest joins it at its end */
	ck_assert_int_eq(apply(control_manifest_apply, "c0/img_00.jpg\n", err), 0);
	ck_assert_int_eq(apply(control_order_apply, "c2/img_02.jpg\nc0/img_00.jpg\nc1/img_01.jpg\n", err),
			 0);
	m = tc_render(t.c, control_manifest_render);
	ck_assert_msg(!strcmp(m, "c0/img_00.jpg\nc1/img_01.jpg\nc2/img_02.jpg\n") ||
			      !strcmp(m, "c0/img_00.jpg\nc2/img_02.jpg\nc1/img_01.jpg\n"),
		      "manifest '%s'", m);
	free(m);
	expect_render(control_order_render, "c2/img_02.jpg\nc0/img_00.jpg\nc1/img_01.jpg\n");
}
END_TEST

START_TEST(test_epoch)
{
	static const char *const bad[] = { "", "x", "-1", "+1", " 1", "1 2", "1x",
					   "99999999999999999999999" };
	char err[256];

	/* no plan: refused */
	expect_rejected(control_epoch_apply, "1");
	ck_assert_int_eq(apply(control_seed_apply, "seed=11 sampler=randperm", err), 0);
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		expect_rejected(control_epoch_apply, bad[i]);
	ck_assert_int_eq(apply(control_epoch_apply, "3\n", err), 0);
	expect_render(control_epoch_render, "3\n");
	expect_render(control_seed_render, "seed=11 sampler=randperm epoch=3\n");
}
END_TEST

START_TEST(test_importance)
{
	char err[256], key[KEY_MAX];
	uint8_t cid[CID_LEN];
	struct ns_attr a;
	struct obj *o;
	uint64_t ino = tc_ino(&t, "c1/img_02.jpg"), ino0 = tc_ino(&t, "c0/img_00.jpg");

	ck_assert_int_eq(apply(control_importance_apply, "c1/img_02.jpg 2.5\n0\t-1e3\n\n", err), 0);
	ck_assert_int_eq(ns_identity(&t.c->ns, ino, &a, key, sizeof(key), cid), 0);
	ck_assert_int_eq(objtab_pin(&t.c->ot, cid, a.size, &o), 0);
	ck_assert_double_eq(o->pe.importance, 2.5);
	fill_unpin(&t.c->fill, o);
	ck_assert_int_eq(ns_identity(&t.c->ns, ino0, &a, key, sizeof(key), cid), 0);
	ck_assert_int_eq(objtab_pin(&t.c->ot, cid, a.size, &o), 0);
	ck_assert_double_eq(o->pe.importance, -1000);
	fill_unpin(&t.c->fill, o);

	/* all or nothing: one bad line and no score changes */
	ck_assert_int_eq(apply(control_importance_apply, "c1/img_02.jpg 7\nc1/nope.jpg 1\n", err),
			 -EINVAL);
	ck_assert_int_eq(apply(control_importance_apply, "c1/img_02.jpg 7\n999 1\n", err), -EINVAL);
	ck_assert_int_eq(apply(control_importance_apply, "c1/img_02.jpg 7\nc0/img_00.jpg nan\n", err),
			 -EINVAL);
	ck_assert_int_eq(apply(control_importance_apply, "c1/img_02.jpg\n", err), -EINVAL);
	ck_assert_int_eq(apply(control_importance_apply, "c1/img_02.jpg 1e400\n", err), -EINVAL);
	ck_assert_int_eq(ns_identity(&t.c->ns, ino, &a, key, sizeof(key), cid), 0);
	ck_assert_int_eq(objtab_pin(&t.c->ot, cid, a.size, &o), 0);
	ck_assert_double_eq(o->pe.importance, 2.5);
	fill_unpin(&t.c->fill, o);

	/* the line checks */
	ck_assert_int_eq(control_check_importance_line(t.c, "c0/img_00.jpg 1", err, sizeof(err)), 0);
	ck_assert_int_eq(control_check_importance_line(t.c, "", err, sizeof(err)), 0);
	ck_assert_int_eq(control_check_importance_line(t.c, "c0/img_00.jpg", err, sizeof(err)),
			 -EINVAL);
	ck_assert_int_eq(control_check_path_line(t.c, "c0/img_00.jpg", err, sizeof(err)), 0);
	ck_assert_int_eq(control_check_path_line(t.c, "", err, sizeof(err)), 0);
	ck_assert_int_eq(control_check_path_line(t.c, "c0", err, sizeof(err)), -EINVAL);
}
END_TEST

START_TEST(test_evict)
{
	char err[256];
	uint64_t ino = tc_ino(&t, "c2/img_01.jpg"), cached = 0, size = 0;
	struct cache_file *f;

	ck_assert_int_eq(cache_file_open(t.c, ino, &f), 0);
	ck_assert_int_eq(tc_read_check(f, 2 * NPER + 1), FSIZE);
	cache_file_close(f);
	ck_assert_int_eq(cache_cached_bytes(t.c, ino, &cached, &size), 0);
	ck_assert_uint_eq(cached, FSIZE);
	/* one unknown path: nothing dropped */
	ck_assert_int_eq(apply(control_evict_apply, "c2/img_01.jpg\nc2/nope\n", err), -EINVAL);
	ck_assert_int_eq(cache_cached_bytes(t.c, ino, &cached, &size), 0);
	ck_assert_uint_eq(cached, FSIZE);
	ck_assert_int_eq(apply(control_evict_apply, "c2/img_01.jpg\n", err), 0);
	ck_assert_int_eq(cache_cached_bytes(t.c, ino, &cached, &size), 0);
	ck_assert_uint_eq(cached, 0);
	/* and it reads back right, fetched again */
	ck_assert_int_eq(cache_file_open(t.c, ino, &f), 0);
	ck_assert_int_eq(tc_read_check(f, 2 * NPER + 1), FSIZE);
	cache_file_close(f);
}
END_TEST

/* ---- allocation failures: every k-th allocation fails in turn ---- */

/* The known-bug cases report through this instead of failing at once, so
 * that they can remove their temp dir first (a failed check ends the test
 * without its teardown). */
static char bug[1024];

/* Nothing changed since before; else the first difference into bug. */
static int unchanged_soft(const struct state *before, const char *what)
{
	struct state now;
	const char *which = NULL;

	snap(&now);
	if (strcmp(before->seed, now.seed))
		which = "seed";
	else if (strcmp(before->order, now.order))
		which = "order";
	else if (strcmp(before->manifest, now.manifest))
		which = "manifest";
	else if (strcmp(before->epoch, now.epoch))
		which = "epoch";
	if (which)
		snprintf(bug, sizeof(bug), "%s changed the %s", what, which);
	snap_free(&now);
	return !which;
}

/* Run op with the k-th allocation failing, k = 0, 1, ... until it succeeds:
 * each failure is -ENOMEM and changes nothing.  soft: 0 and the reason in
 * bug instead of a failed check. */
static int walk_soft(apply_fn fn, const char *data, const char *what, int allocates, int soft)
{
	char err[256];
	int rc = -ENOMEM;
	long k;

	for (k = 0; k < 10000; k++) {
		struct state before;
		int same;

		snap(&before);
		err[0] = 0;
		ec_fail_alloc_after = k;
		rc = fn(t.c, data, strlen(data), err, sizeof(err));
		ec_fail_alloc_after = -1;
		if (rc == 0) {
			snap_free(&before);
			break;
		}
		if (soft && rc != -ENOMEM) {
			snprintf(bug, sizeof(bug), "%s: allocation %ld failing gave %d (%s), not -ENOMEM",
				 what, k, rc, err);
			snap_free(&before);
			return 0;
		}
		ck_assert_msg(rc == -ENOMEM, "%s: allocation %ld failing gave %d (%s), not -ENOMEM",
			      what, k, rc, err);
		if (soft) {
			same = unchanged_soft(&before, what);
			snap_free(&before);
			if (!same)
				return 0;
			continue;
		}
		expect_unchanged(&before, what);
		snap_free(&before);
	}
	ck_assert_msg(rc == 0, "%s never succeeded", what);
	if (allocates)
		ck_assert_msg(k > 0, "%s allocates nothing through the seam", what);
	return 1;
}

static void walk_ex(apply_fn fn, const char *data, const char *what, int allocates)
{
	walk_soft(fn, data, what, allocates, 0);
}

static void walk(apply_fn fn, const char *data, const char *what)
{
	walk_ex(fn, data, what, 1);
}

/* Renders that fail cleanly: -ENOMEM, nothing returned. */
static void walk_render(int (*render)(struct cache *, char **, size_t *), const char *what)
{
	char *out;
	size_t len;
	int rc = -ENOMEM;
	long k;

	for (k = 0; k < 10000; k++) {
		out = NULL;
		ec_fail_alloc_after = k;
		rc = render(t.c, &out, &len);
		ec_fail_alloc_after = -1;
		if (rc == 0)
			break;
		ck_assert_msg(rc == -ENOMEM, "%s: allocation %ld failing gave %d", what, k, rc);
		ck_assert_ptr_null(out);
	}
	ck_assert_msg(rc == 0, "%s never succeeded", what);
	free(out);
}

START_TEST(test_alloc_failures)
{
	char err[256];

	/* Nothing else may allocate meanwhile: the prefetcher and the flusher
	 * are stopped (cache_close copes), no fetch is in flight. */
	prefetch_stop(&t.c->pf);
	records_stop_flusher(t.c);

	walk(control_manifest_apply, "c2/img_01.jpg\nc0/img_03.jpg\nc1/img_00.jpg\n", "manifest");
	walk(control_manifest_apply, "", "manifest default");
	walk(control_seed_apply, "seed=5 world=4 rank=0-3", "seed ranks");
	walk(control_seed_apply, "seed=5 world=4 rank=2 start=1", "seed join");
	walk(control_seed_apply, "seed=9 sampler=numpy", "seed new job");
	walk(control_order_apply, "c1/img_02.jpg\nc0/img_00.jpg\n\nc2/img_03.jpg\n", "order");
	walk(control_order_apply, "# rank=1 epoch=0\nc0/img_01.jpg\nc0/img_02.jpg\n", "order rank");
	walk(control_manifest_apply, "c0/img_00.jpg\n", "manifest small");
	walk_ex(control_seed_apply, "clear", "clear", 0); /* allocates only to save the plan */
	walk(control_importance_apply, "c1/img_02.jpg 2.5\n0 1\n", "importance");
	walk(control_evict_apply, "c1/img_02.jpg\n", "evict");
	ck_assert_int_eq(apply(control_seed_apply, "seed=5 world=2 rank=0-1", err), 0);
	walk_render(control_seed_render, "seed render");
	walk_render(control_order_render, "order render");
	walk_render(control_manifest_render, "manifest render");
	walk_render(control_epoch_render, "epoch render");
}
END_TEST

/* BUG (cache/control.c, control_epoch_apply): plan_set_epoch's -ENOMEM
 * is reported as -EINVAL with the reason "epoch N is not in the plan".
 * Fails until fixed; EPOCHFS_SKIP_KNOWN_BUGS=1 leaves it out. */
START_TEST(test_bug_epoch_enomem)
{
	char err[256];

	prefetch_stop(&t.c->pf);
	records_stop_flusher(t.c);
	int ok;

	ck_assert_int_eq(apply(control_seed_apply, "seed=5 world=4 rank=0-3", err), 0);
	ok = walk_soft(control_epoch_apply, "1", "BUG(control.c) epoch", 1, 1);
	tc_fini(&t);
	ck_assert_msg(ok, "%s", bug);
}
END_TEST

/* BUG (cache/control_plan.c, order_apply_whole): an order naming files
 * outside the manifest extends the manifest (plan_set_manifest, which also
 * turns the plan off) before it allocates the per-epoch lists; when one of
 * those allocations fails the write returns -ENOMEM with the manifest
 * already changed and the plan off.  Fails until fixed;
 * EPOCHFS_SKIP_KNOWN_BUGS=1 leaves it out. */
START_TEST(test_bug_order_enomem_changes_manifest)
{
	char err[256];

	prefetch_stop(&t.c->pf);
	records_stop_flusher(t.c);
	ck_assert_int_eq(apply(control_manifest_apply, "c0/img_00.jpg\n", err), 0);
	int ok;

	ck_assert_int_eq(apply(control_seed_apply, "seed=1 sampler=randperm", err), 0);
	ok = walk_soft(control_order_apply, "c2/img_02.jpg\nc0/img_00.jpg\n",
		       "BUG(control_plan.c) order joining the manifest", 1, 1);
	tc_fini(&t);
	ck_assert_msg(ok, "%s", bug);
}
END_TEST

/* The importance of a file as its object has it (pinned for the look). */
static double importance_of(const char *path)
{
	char key[KEY_MAX];
	uint8_t cid[CID_LEN];
	struct ns_attr a;
	struct obj *o;
	double v;

	ck_assert_int_eq(ns_identity(&t.c->ns, tc_ino(&t, path), &a, key, sizeof(key), cid), 0);
	ck_assert_int_eq(objtab_pin(&t.c->ot, cid, a.size, &o), 0);
	pthread_mutex_lock(&t.c->ot.lock);
	v = o->pe.importance;
	pthread_mutex_unlock(&t.c->ot.lock);
	fill_unpin(&t.c->fill, o);
	return v;
}

/* BUG (cache/control.c, control_importance_apply): when objtab_pin fails
 * (-ENOMEM) for a line, that score is skipped and the write reports
 * success: with the k-th allocation failing, the walk meets a 0 return
 * with the scores not applied.  Fails until fixed;
 * EPOCHFS_SKIP_KNOWN_BUGS=1 leaves it out. */
START_TEST(test_bug_importance_enomem_partial)
{
	static const char data[] = "c1/img_02.jpg 2.5\nc2/img_00.jpg 4\n";
	char err[256];
	int rc = -ENOMEM;

	prefetch_stop(&t.c->pf);
	records_stop_flusher(t.c);
	free(tc_render(t.c, control_manifest_render)); /* built once, not in the walk */
	for (long k = 0; k < 10000 && rc; k++) {
		err[0] = 0;
		ec_fail_alloc_after = k;
		rc = control_importance_apply(t.c, data, sizeof(data) - 1, err, sizeof(err));
		ec_fail_alloc_after = -1;
		if (rc) {
			ck_assert_int_eq(rc, -ENOMEM);
			continue;
		}
		if (importance_of("c1/img_02.jpg") != 2.5 || importance_of("c2/img_00.jpg") != 4)
			snprintf(bug, sizeof(bug), "BUG(control.c) importance: allocation %ld failing, "
				 "the write returned 0 with scores %g and %g not applied", k,
				 importance_of("c1/img_02.jpg"), importance_of("c2/img_00.jpg"));
	}
	tc_fini(&t);
	ck_assert_msg(!bug[0], "%s", bug);
}
END_TEST

static Suite *control_suite(void)
{
	Suite *s = suite_create("control");
	TCase *tc = tcase_create("control");
	TCase *ta = tcase_create("alloc");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_seed_canonical);
	tcase_add_test(tc, test_seed_ranks);
	tcase_add_test(tc, test_seed_bad);
	tcase_add_test(tc, test_manifest);
	tcase_add_test(tc, test_manifest_under_seed);
	tcase_add_test(tc, test_order);
	tcase_add_test(tc, test_order_joins_manifest);
	tcase_add_test(tc, test_epoch);
	tcase_add_test(tc, test_importance);
	tcase_add_test(tc, test_evict);
	suite_add_tcase(s, tc);
	tcase_add_checked_fixture(ta, setup, teardown);
	tcase_set_timeout(ta, 600);
	tcase_add_test(ta, test_alloc_failures);
	if (!getenv("EPOCHFS_SKIP_KNOWN_BUGS"))
		tcase_add_test(ta, test_bug_epoch_enomem);
	if (!getenv("EPOCHFS_SKIP_KNOWN_BUGS"))
		tcase_add_test(ta, test_bug_order_enomem_changes_manifest);
	if (!getenv("EPOCHFS_SKIP_KNOWN_BUGS"))
		tcase_add_test(ta, test_bug_importance_enomem_partial);
	suite_add_tcase(s, ta);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(control_suite());
	int failed;

	log_init("check_control", LOG_LVL_ERR, 0);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
