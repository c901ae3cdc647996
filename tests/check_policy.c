/* SPDX-License-Identifier: MIT */
/* Unit tests of cache/policy.c (Check): SHADE's admission margin and heap order
 * against a brute-force minimum, LRU order, and policy_parse. */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cache/policy.h"
#include "backends/base/util.h"

static struct pol_entry ent(double imp, uint64_t freq, uint64_t last)
{
	struct pol_entry e;

	memset(&e, 0, sizeof(e));
	e.importance = imp;
	e.freq = freq;
	e.last = last;
	return e;
}

static struct policy *mk(enum policy_kind k)
{
	struct policy *p = NULL;

	ck_assert_int_eq(policy_create(k, &p), 0);
	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(policy_kind(p), k);
	return p;
}

START_TEST(test_outranks_margin)
{
	struct pol_entry a = ent(0, 5, 1), b = ent(0, 5, 2);

	ck_assert(!policy_outranks(&a, &b)); /* equals never displace each other */
	a.freq = 6;
	ck_assert(!policy_outranks(&a, &b)); /* one read more is not enough */
	a.freq = 7;
	ck_assert(policy_outranks(&a, &b));
	ck_assert(!policy_outranks(&b, &a));
	a.freq = 0;
	a.importance = 0.5;
	ck_assert(policy_outranks(&a, &b)); /* importance decides first */
	ck_assert(!policy_outranks(&b, &a));
	/* near the top of the range */
	a = ent(0, UINT64_MAX, 0);
	b = ent(0, UINT64_MAX - 1, 0);
	ck_assert(!policy_outranks(&a, &b));
}
END_TEST

START_TEST(test_shade_never_evicts_equals)
{
	struct policy *p = mk(POLICY_SHADE);
	struct pol_entry e[10], in;

	for (int i = 0; i < 10; i++) {
		e[i] = ent(1.0, 3 + (i & 1), (uint64_t)i);
		ck_assert_int_eq(policy_insert(p, &e[i]), 0);
	}
	ck_assert_uint_eq(policy_count(p), 10);
	in = ent(1.0, 3, 100);
	ck_assert_ptr_null(policy_victim(p, &in));
	in.freq = 4; /* one more than the worst: still no */
	ck_assert_ptr_null(policy_victim(p, &in));
	in.freq = 5; /* two more: the worst goes, the oldest of freq 3 first */
	ck_assert_ptr_eq(policy_victim(p, &in), &e[0]);
	in = ent(0.5, 1000, 0); /* lower importance never wins */
	ck_assert_ptr_null(policy_victim(p, &in));
	/* unconditionally: the worst */
	ck_assert_ptr_eq(policy_victim(p, NULL), &e[0]);
	policy_destroy(p);
}
END_TEST

START_TEST(test_shade_evicts_lowest_first)
{
	struct policy *p = mk(POLICY_SHADE);
	struct pol_entry e[6], in = ent(5.0, 0, 0);
	const int order[6] = { 3, 5, 1, 0, 4, 2 };

	e[0] = ent(1.0, 9, 0);
	e[1] = ent(1.0, 2, 0);
	e[2] = ent(2.0, 0, 0);
	e[3] = ent(0.0, 50, 0);
	e[4] = ent(1.0, 10, 0);
	e[5] = ent(0.5, 1, 0);
	for (int i = 0; i < 6; i++)
		ck_assert_int_eq(policy_insert(p, &e[i]), 0);
	for (int i = 0; i < 6; i++) {
		struct pol_entry *v = policy_victim(p, &in);

		ck_assert_ptr_eq(v, &e[order[i]]);
		policy_remove(p, v);
		ck_assert_uint_eq(v->idx, 0);
	}
	ck_assert_uint_eq(policy_count(p), 0);
	ck_assert_ptr_null(policy_victim(p, &in));
	ck_assert_ptr_null(policy_victim(p, NULL));
	policy_destroy(p);
}
END_TEST

START_TEST(test_insert_remove_idempotent)
{
	struct policy *p = mk(POLICY_SHADE);
	struct pol_entry a = ent(0, 1, 1), b = ent(0, 2, 2);

	policy_remove(p, &a); /* absent: harmless */
	ck_assert_int_eq(policy_insert(p, &a), 0);
	ck_assert_int_eq(policy_insert(p, &a), 0); /* already in */
	ck_assert_uint_eq(policy_count(p), 1);
	ck_assert_int_eq(policy_insert(p, &b), 0);
	policy_remove(p, &a);
	policy_remove(p, &a);
	ck_assert_uint_eq(policy_count(p), 1);
	ck_assert_ptr_eq(policy_victim(p, NULL), &b);
	policy_update(p, &a); /* absent: harmless */
	ck_assert_uint_eq(policy_count(p), 1);
	policy_destroy(p);
	policy_destroy(NULL);
}
END_TEST

/* Peers: under every rule, objects another node owns go first, and an
 * incoming object never displaces one of the other kind but an owned one a
 * foreign one. */
START_TEST(test_foreign_first)
{
	const enum policy_kind kinds[3] = { POLICY_SHADE, POLICY_LRU, POLICY_BELADY };

	for (int k = 0; k < 3; k++) {
		struct policy *p = mk(kinds[k]);
		struct pol_entry own = ent(0.0, 0, 1), fa = ent(9.0, 100, 50), fb = ent(9.0, 100, 60);
		struct pol_entry in;

		own.next_use = 5; /* needed first: Belady would keep it anyway */
		fa.next_use = fb.next_use = 1;
		fa.foreign = fb.foreign = 1;
		ck_assert_int_eq(policy_insert(p, &own), 0);
		ck_assert_int_eq(policy_insert(p, &fa), 0);
		ck_assert_int_eq(policy_insert(p, &fb), 0);
		/* the owned one is worth least by every other measure, yet the
		 * foreign ones go first */
		ck_assert_ptr_eq(policy_victim(p, NULL), &fa);
		policy_remove(p, &fa);
		ck_assert_ptr_eq(policy_victim(p, NULL), &fb);
		/* an owned incoming, worth nothing by the rule, displaces a foreign one */
		in = ent(0.0, 0, 0);
		in.next_use = UINT64_MAX;
		ck_assert_ptr_eq(policy_victim(p, &in), &fb);
		policy_remove(p, &fb);
		/* a foreign incoming worth everything displaces no owned one */
		in = ent(100.0, 1000, 1000);
		in.next_use = 0;
		in.foreign = 1;
		ck_assert_ptr_null(policy_victim(p, &in));
		ck_assert_ptr_eq(policy_victim(p, NULL), &own);
		policy_destroy(p);
	}
}
END_TEST

/* ---- randomized heap check ---- */

static uint64_t rng = 88172645463325252ull;

static uint64_t xorshift(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static int less(const struct pol_entry *a, const struct pol_entry *b)
{
	if (a->importance != b->importance)
		return a->importance < b->importance;
	if (a->freq != b->freq)
		return a->freq < b->freq;
	return a->last < b->last;
}

#define NE 3000

START_TEST(test_heap_random)
{
	struct policy *p = mk(POLICY_SHADE);
	struct pol_entry *e = calloc(NE, sizeof(*e));
	int in[NE] = { 0 };
	uint64_t stamp = 0;
	size_t n = 0;

	ck_assert_ptr_nonnull(e);
	for (int step = 0; step < 60000; step++) {
		int i = (int)(xorshift() % NE), op = (int)(xorshift() % 10);

		if (!in[i]) {
			e[i].importance = (double)(xorshift() % 4);
			e[i].freq = xorshift() % 8;
			e[i].last = ++stamp;
			ck_assert_int_eq(policy_insert(p, &e[i]), 0);
			in[i] = 1;
			n++;
		} else if (op < 4) {
			policy_remove(p, &e[i]);
			ck_assert_uint_eq(e[i].idx, 0);
			in[i] = 0;
			n--;
		} else if (op < 9) {
			/* the changes the cache makes: reads, and importance both ways */
			if (op < 6)
				e[i].freq++;
			else if (op < 8)
				e[i].importance = (double)(xorshift() % 4);
			else
				e[i].freq = xorshift() % 8;
			e[i].last = ++stamp;
			policy_update(p, &e[i]);
		} else {
			/* evict the victim, as the cache does */
			struct pol_entry *v = policy_victim(p, NULL);
			ck_assert_ptr_nonnull(v);
			policy_remove(p, v);
			in[v - e] = 0;
			n--;
		}
		ck_assert_uint_eq(policy_count(p), n);
		if (step % 7 == 0 && n) {
			struct pol_entry *min = NULL, *v = policy_victim(p, NULL);

			for (int j = 0; j < NE; j++)
				if (in[j] && (!min || less(&e[j], min)))
					min = &e[j];
			ck_assert_ptr_eq(v, min);
		}
	}
	/* drain in order */
	for (struct pol_entry *prev = NULL, *v; (v = policy_victim(p, NULL)); prev = v) {
		if (prev)
			ck_assert(!less(v, prev));
		policy_remove(p, v);
		n--;
	}
	ck_assert_uint_eq(n, 0);
	policy_destroy(p);
	free(e);
}
END_TEST

START_TEST(test_insert_enomem)
{
	struct policy *p = mk(POLICY_SHADE);
	struct pol_entry *e = calloc(1025, sizeof(*e));

	for (int i = 0; i < 1024; i++)
		ck_assert_int_eq(policy_insert(p, &e[i]), 0);
	ec_fail_alloc_after = 0; /* the heap must grow now */
	ck_assert_int_eq(policy_insert(p, &e[1024]), -ENOMEM);
	ec_fail_alloc_after = -1;
	ck_assert_uint_eq(e[1024].idx, 0);
	ck_assert_uint_eq(policy_count(p), 1024);
	policy_destroy(p);
	free(e);
}
END_TEST

START_TEST(test_lru)
{
	struct policy *p = mk(POLICY_LRU);
	struct pol_entry e[4], hi = ent(100, 100, 100);

	for (int i = 0; i < 4; i++) {
		e[i] = ent(10 - i, 10, (uint64_t)i);
		ck_assert_int_eq(policy_insert(p, &e[i]), 0);
	}
	ck_assert_uint_eq(policy_count(p), 4);
	/* least recently used (oldest stamp), whatever the scores */
	ck_assert_ptr_eq(policy_victim(p, NULL), &e[0]);
	ck_assert_ptr_eq(policy_victim(p, &hi), &e[0]);
	e[0].last = 10; /* used now */
	policy_update(p, &e[0]);
	ck_assert_ptr_eq(policy_victim(p, NULL), &e[1]);
	policy_remove(p, &e[1]);
	ck_assert_ptr_eq(policy_victim(p, NULL), &e[2]);
	policy_remove(p, &e[3]); /* from the middle... */
	ck_assert_ptr_eq(policy_victim(p, NULL), &e[2]);
	policy_remove(p, &e[2]);
	ck_assert_ptr_eq(policy_victim(p, NULL), &e[0]);
	ck_assert_int_eq(policy_insert(p, &e[1]), 0);
	ck_assert_ptr_eq(policy_victim(p, NULL), &e[1]); /* stamp 1 < 10 */
	policy_remove(p, &e[0]);
	policy_remove(p, &e[0]);
	ck_assert_uint_eq(policy_count(p), 1);
	policy_remove(p, &e[1]);
	ck_assert_uint_eq(policy_count(p), 0);
	ck_assert_ptr_null(policy_victim(p, NULL));
	policy_destroy(p);
}
END_TEST

START_TEST(test_belady)
{
	struct policy *p = mk(POLICY_BELADY);
	struct pol_entry e[4], in;

	for (int i = 0; i < 4; i++) {
		e[i] = ent(0, 0, (uint64_t)i);
		e[i].next_use = 100 + 10 * (uint64_t)i;
		ck_assert_int_eq(policy_insert(p, &e[i]), 0);
	}
	e[2].next_use = UINT64_MAX; /* never used again */
	policy_update(p, &e[2]);
	in = ent(0, 0, 9);
	in.next_use = 500;
	ck_assert_ptr_eq(policy_victim(p, &in), &e[2]);
	in.next_use = UINT64_MAX; /* needed no sooner than the furthest */
	ck_assert_ptr_null(policy_victim(p, &in));
	policy_remove(p, &e[2]);
	in.next_use = 129;
	ck_assert_ptr_eq(policy_victim(p, &in), &e[3]);
	in.next_use = 130;
	ck_assert_ptr_null(policy_victim(p, &in));
	policy_destroy(p);
}
END_TEST

START_TEST(test_rekey)
{
	struct policy *p = mk(POLICY_SHADE);
	struct pol_entry e[3];

	for (int i = 0; i < 3; i++) {
		e[i] = ent(0, 10 - (uint64_t)i, (uint64_t)i); /* SHADE worst: e[2] */
		e[i].next_use = 100 + (uint64_t)i * (i == 1 ? 50 : 1); /* furthest: e[1] */
		ck_assert_int_eq(policy_insert(p, &e[i]), 0);
	}
	ck_assert_ptr_eq(policy_victim(p, NULL), &e[2]);
	ck_assert_int_eq(policy_rekey(p, POLICY_BELADY), 0);
	ck_assert_int_eq(policy_kind(p), POLICY_BELADY);
	ck_assert_uint_eq(policy_count(p), 3);
	ck_assert_ptr_eq(policy_victim(p, NULL), &e[1]);
	ck_assert_int_eq(policy_rekey(p, POLICY_LRU), 0);
	ck_assert_uint_eq(policy_count(p), 3);
	ck_assert_int_eq(policy_rekey(p, POLICY_SHADE), 0);
	ck_assert_ptr_eq(policy_victim(p, NULL), &e[2]);
	policy_destroy(p);
}
END_TEST

/* policy.h: "-ENOMEM leaves the policy as it was". */
START_TEST(test_rekey_enomem)
{
	struct policy *p = mk(POLICY_LRU);
	struct pol_entry e[3];

	for (int i = 0; i < 3; i++) {
		e[i] = ent(0, 0, (uint64_t)i);
		ck_assert_int_eq(policy_insert(p, &e[i]), 0);
	}
	/* the copy of the entries cannot be made */
	ec_fail_alloc_after = 0;
	ck_assert_int_eq(policy_rekey(p, POLICY_SHADE), -ENOMEM);
	ec_fail_alloc_after = -1;
	ck_assert_int_eq(policy_kind(p), POLICY_LRU);
	ck_assert_uint_eq(policy_count(p), 3);
	ck_assert_ptr_eq(policy_victim(p, NULL), &e[0]);
	policy_destroy(p);
}
END_TEST

START_TEST(test_parse)
{
	enum policy_kind k = POLICY_LRU;

	ck_assert_int_eq(policy_parse("shade", &k), 0);
	ck_assert_int_eq(k, POLICY_SHADE);
	ck_assert_int_eq(policy_parse("lru", &k), 0);
	ck_assert_int_eq(k, POLICY_LRU);
	ck_assert_int_eq(policy_parse("belady", &k), 0);
	ck_assert_int_eq(k, POLICY_BELADY);
	ck_assert_str_eq(policy_name(POLICY_BELADY), "belady");
	ck_assert_int_eq(policy_parse("default", &k), 0);
	ck_assert_int_eq(k, POLICY_SHADE);
	k = POLICY_LRU;
	ck_assert_int_eq(policy_parse("", &k), -EINVAL);
	ck_assert_int_eq(policy_parse("LRUX", &k), -EINVAL);
	ck_assert_int_eq(policy_parse("shade ", &k), -EINVAL);
	ck_assert_int_eq(k, POLICY_LRU);
	ck_assert_str_eq(policy_name(POLICY_SHADE), "shade");
	ck_assert_str_eq(policy_name(POLICY_LRU), "lru");
}
END_TEST

static Suite *policy_suite(void)
{
	Suite *s = suite_create("policy");
	TCase *tc = tcase_create("shade");

	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_outranks_margin);
	tcase_add_test(tc, test_shade_never_evicts_equals);
	tcase_add_test(tc, test_shade_evicts_lowest_first);
	tcase_add_test(tc, test_insert_remove_idempotent);
	tcase_add_test(tc, test_heap_random);
	tcase_add_test(tc, test_insert_enomem);
	suite_add_tcase(s, tc);

	tc = tcase_create("lru-belady");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_lru);
	tcase_add_test(tc, test_belady);
	tcase_add_test(tc, test_rekey);
	tcase_add_test(tc, test_rekey_enomem);
	tcase_add_test(tc, test_parse);
	tcase_add_test(tc, test_foreign_first);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(policy_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
