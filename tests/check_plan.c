/* SPDX-License-Identifier: MIT */
/* Unit tests of cache/plan.c (Check): next uses across the epoch boundary,
 * samples planned twice (padding, replacement) and the move to the next
 * epoch, against a brute-force reading of the orders. */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cache/plan.h"
#include "cache/util.h"

#define N 6

static struct plan *mk(void)
{
	struct plan *p = NULL;
	uint64_t *inos = malloc(N * sizeof(*inos));

	for (int i = 0; i < N; i++)
		inos[i] = 100 + (uint64_t)i;
	ck_assert_int_eq(plan_create(&p), 0);
	ck_assert_int_eq(plan_set_manifest(p, inos, N), 0);
	return p;
}

/* Explicit orders, epoch 0 then 1, taking copies of the arrays. */
static void set_orders(struct plan *p, const uint32_t *e0, uint64_t n0, const uint32_t *e1,
		       uint64_t n1)
{
	uint32_t **lists = malloc(2 * sizeof(*lists));
	uint64_t *lens = malloc(2 * sizeof(*lens));

	lists[0] = malloc(n0 * sizeof(uint32_t));
	lists[1] = malloc(n1 * sizeof(uint32_t));
	memcpy(lists[0], e0, n0 * sizeof(uint32_t));
	memcpy(lists[1], e1, n1 * sizeof(uint32_t));
	lens[0] = n0;
	lens[1] = n1;
	ck_assert_int_eq(plan_set_explicit(p, lists, lens, 2, 0), 0);
}

/* Next use of sample i as (epoch, position), checked through the plan's own
 * accessors; pos -1 for never. */
static void expect(struct plan *p, uint32_t i, int epoch, int pos)
{
	uint64_t u = plan_next_use(p, i), base, len;

	if (pos < 0) {
		ck_assert_uint_eq(u, PLAN_NEVER);
		ck_assert_uint_eq(plan_use_epoch(u), UINT64_MAX);
		return;
	}
	ck_assert_uint_eq(plan_use_epoch(u), (uint64_t)epoch);
	ck_assert_uint_eq(plan_sample_at(p, u), i);
	/* the position: u minus the first use of that epoch */
	base = plan_now(p) - plan_position(p);
	plan_order(p, &len);
	if ((uint64_t)epoch != plan_epoch(p))
		base = plan_normalize(p, base + len); /* the next epoch's first use */
	ck_assert_uint_eq(u - base, (uint64_t)pos);
}

START_TEST(test_permutation)
{
	static const uint32_t e0[] = { 3, 1, 4, 0, 5, 2 }, e1[] = { 0, 1, 2, 3, 4, 5 };
	struct plan *p = mk();

	set_orders(p, e0, 6, e1, 6);
	expect(p, 3, 0, 0);
	expect(p, 2, 0, 5);
	ck_assert_int_eq(plan_on_open(p, 3), 0);
	expect(p, 3, 1, 3); /* opened: its use in the next epoch */
	ck_assert_uint_eq(plan_position(p), 1);
	ck_assert_int_eq(plan_on_open(p, 4), 0); /* out of order */
	ck_assert_uint_eq(plan_position(p), 1);
	expect(p, 4, 1, 4);
	expect(p, 1, 0, 1);
	for (int k = 0; k < 6; k++)
		if (e0[k] != 3 && e0[k] != 4)
			ck_assert_int_eq(plan_on_open(p, e0[k]), e0[k] == 2);
	ck_assert_uint_eq(plan_epoch(p), 1);
	expect(p, 4, 1, 4);
	expect(p, 0, 1, 0);
	plan_destroy(p);
}
END_TEST

START_TEST(test_planned_twice)
{
	/* 0 at 0, 3 and 5 (as padding or sampling with replacement make it);
	 * 5 never in epoch 0. */
	static const uint32_t e0[] = { 0, 1, 2, 0, 3, 0, 4 }, e1[] = { 2, 0, 1 };
	struct plan *p = mk();

	set_orders(p, e0, 7, e1, 3);
	expect(p, 0, 0, 0);
	expect(p, 5, -1, -1);
	ck_assert_int_eq(plan_on_open(p, 0), 0);
	expect(p, 0, 0, 3);
	ck_assert_int_eq(plan_on_open(p, 0), 0);
	expect(p, 0, 0, 5);
	ck_assert_int_eq(plan_on_open(p, 0), 0);
	expect(p, 0, 1, 1);
	expect(p, 3, 0, 4);
	ck_assert_uint_eq(plan_position(p), 1);
	ck_assert(plan_pending(p, 1));
	ck_assert(!plan_pending(p, 0));
	ck_assert_int_eq(plan_on_open(p, 1), 0);
	ck_assert_int_eq(plan_on_open(p, 2), 0);
	ck_assert_uint_eq(plan_position(p), 4);
	ck_assert_int_eq(plan_on_open(p, 3), 0);
	ck_assert_int_eq(plan_on_open(p, 4), 1); /* all 7 opened */
	ck_assert_uint_eq(plan_epoch(p), 1);
	expect(p, 2, 1, 0);
	expect(p, 3, -1, -1); /* not planned in epoch 1, and epoch 2 is unknown */
	plan_destroy(p);
}
END_TEST

/* Many samples planned many times: the next use is always the first
 * unopened place, as a scan of the order says. */
START_TEST(test_planned_twice_random)
{
	enum { LEN = 200 };
	uint32_t e0[LEN], e1[LEN];
	uint8_t opened[LEN] = { 0 };
	uint64_t z = 88172645463325252ull;
	struct plan *p = mk();

	for (int k = 0; k < LEN; k++) {
		z ^= z << 13, z ^= z >> 7, z ^= z << 17;
		e0[k] = (uint32_t)(z % N);
		e1[k] = (uint32_t)((z >> 20) % N);
	}
	set_orders(p, e0, LEN, e1, LEN);
	for (int step = 0; step < LEN; step++) {
		/* open a random unopened place's sample; the plan marks its
		 * first unopened place, so mirror that */
		int k;

		z ^= z << 13, z ^= z >> 7, z ^= z << 17;
		do
			k = (int)(z++ % LEN);
		while (opened[k]);
		for (int q = 0; q < LEN; q++)
			if (e0[q] == e0[k] && !opened[q]) {
				opened[q] = 1;
				break;
			}
		plan_on_open(p, e0[k]);
		if (step == LEN - 1)
			break;
		for (uint32_t i = 0; i < N; i++) {
			int q, r;

			for (q = 0; q < LEN && (e0[q] != i || opened[q]); q++)
				;
			for (r = 0; r < LEN && e1[r] != i; r++)
				;
			if (q < LEN)
				expect(p, i, 0, q);
			else if (r < LEN)
				expect(p, i, 1, r);
			else
				expect(p, i, -1, -1);
		}
	}
	ck_assert_uint_eq(plan_epoch(p), 1);
	plan_destroy(p);
}
END_TEST

START_TEST(test_use_epoch)
{
	ck_assert_uint_eq(plan_use_epoch(PLAN_NEVER), UINT64_MAX);
	ck_assert_uint_eq(plan_use_epoch(0), 0);
}
END_TEST

static Suite *plan_suite(void)
{
	Suite *s = suite_create("plan");
	TCase *tc = tcase_create("plan");

	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_permutation);
	tcase_add_test(tc, test_planned_twice);
	tcase_add_test(tc, test_planned_twice_random);
	tcase_add_test(tc, test_use_epoch);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(plan_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
