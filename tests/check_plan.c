/* SPDX-License-Identifier: MIT */
/* Unit tests of cache/plan.c (Check): next uses across the epoch boundary,
 * samples planned twice (padding, replacement) and the move to the next
 * epoch, against a brute-force reading of the orders; the inode -> sample
 * map in both its forms (direct array for dense inode numbers, hash for huge
 * or sparse ones); the opened-position bitmap over epochs of every length;
 * failures that leave the plan as it was. */
#include <check.h>
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cache/plan.h"
#include "backends/base/util.h"

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
/* Open random unopened places of e0 one by one; after each, every sample's
 * next use is its first unopened place in e0, else its first in e1. */
static void random_opens(const uint32_t *e0, const uint32_t *e1, int len, uint64_t z)
{
	uint8_t opened[256] = { 0 };
	struct plan *p = mk();

	ck_assert_int_le(len, 256);
	set_orders(p, e0, (uint64_t)len, e1, (uint64_t)len);
	for (int step = 0; step < len; step++) {
		/* open a random unopened place's sample; the plan marks its
		 * first unopened place, so mirror that */
		int k;

		z ^= z << 13, z ^= z >> 7, z ^= z << 17;
		do
			k = (int)(z++ % (uint64_t)len);
		while (opened[k]);
		for (int q = 0; q < len; q++)
			if (e0[q] == e0[k] && !opened[q]) {
				opened[q] = 1;
				break;
			}
		plan_on_open(p, e0[k]);
		if (step == len - 1)
			break;
		for (uint32_t i = 0; i < N; i++) {
			int q, r;

			for (q = 0; q < len && (e0[q] != i || opened[q]); q++)
				;
			for (r = 0; r < len && e1[r] != i; r++)
				;
			if (q < len)
				expect(p, i, 0, q);
			else if (r < len)
				expect(p, i, 1, r);
			else
				expect(p, i, -1, -1);
		}
	}
	ck_assert_uint_eq(plan_epoch(p), 1);
	plan_destroy(p);
}

START_TEST(test_planned_twice_random)
{
	enum { LEN = 200 };
	uint32_t e0[LEN], e1[LEN];
	uint64_t z = 88172645463325252ull;

	for (int k = 0; k < LEN; k++) {
		z ^= z << 13, z ^= z >> 7, z ^= z << 17;
		e0[k] = (uint32_t)(z % N);
		e1[k] = (uint32_t)((z >> 20) % N);
	}
	random_opens(e0, e1, LEN, z);
}
END_TEST

/* Few samples planned twice (DistributedSampler's padding): the chains go
 * in the plan's small hash instead of an array over every slot. */
START_TEST(test_planned_twice_few)
{
	static const uint32_t e0[8] = { 3, 0, 5, 1, 4, 2, 3, 0 };
	static const uint32_t e1[8] = { 2, 4, 1, 0, 5, 3, 2, 4 };

	for (uint64_t z = 1; z < 40; z++)
		random_opens(e0, e1, 8, z * 0x9e3779b97f4a7c15ull);
}
END_TEST

START_TEST(test_use_epoch)
{
	ck_assert_uint_eq(plan_use_epoch(PLAN_NEVER), UINT64_MAX);
	ck_assert_uint_eq(plan_use_epoch(0), 0);
}
END_TEST

/* ---- the manifest: inode -> sample ---- */

/* A manifest of n inodes from a fresh array. */
static struct plan *mk_man(const uint64_t *inos, uint32_t n)
{
	struct plan *p = NULL;
	uint64_t *v = malloc(((size_t)n + 1) * sizeof(*v));

	memcpy(v, inos, (size_t)n * sizeof(*v));
	ck_assert_int_eq(plan_create(&p), 0);
	ck_assert_int_eq(plan_set_manifest(p, v, n), 0);
	return p;
}

struct ino_at {
	uint64_t ino;
	uint32_t i;
};

static int ino_at_cmp(const void *a, const void *b)
{
	const struct ino_at *x = a, *y = b;

	if (x->ino != y->ino)
		return x->ino < y->ino ? -1 : 1;
	return x->i < y->i ? -1 : x->i > y->i;
}

/* The plan answers as a linear scan of the manifest does: each inode's first
 * index, the inodes back unchanged, PLAN_NONE for 0 and for the probes. */
static void check_manifest(struct plan *p, const uint64_t *inos, uint32_t n,
			   const uint64_t *absent, size_t nabsent)
{
	struct ino_at *v = malloc(((size_t)n + 1) * sizeof(*v));

	ck_assert_uint_eq(plan_manifest_len(p), n);
	for (uint32_t i = 0; i < n; i++) {
		if (plan_manifest_ino(p, i) != inos[i])
			ck_assert_uint_eq(plan_manifest_ino(p, i), inos[i]);
		v[i].ino = inos[i];
		v[i].i = i;
	}
	/* sorted by inode then index: the first of a run is the answer */
	qsort(v, n, sizeof(*v), ino_at_cmp);
	for (uint32_t k = 0, first = 0; k < n; k++) {
		if (k == 0 || v[k].ino != v[k - 1].ino)
			first = v[k].i;
		if (plan_sample_of(p, v[k].ino) != (v[k].ino ? first : PLAN_NONE))
			ck_assert_uint_eq(plan_sample_of(p, v[k].ino), (v[k].ino ? first : PLAN_NONE));
	}
	free(v);
	ck_assert_uint_eq(plan_manifest_ino(p, n), 0);
	ck_assert_uint_eq(plan_manifest_ino(p, UINT32_MAX), 0);
	ck_assert_uint_eq(plan_sample_of(p, 0), PLAN_NONE);
	for (size_t k = 0; k < nabsent; k++)
		ck_assert_uint_eq(plan_sample_of(p, absent[k]), PLAN_NONE);
}

START_TEST(test_manifest_dense)
{
	/* As the namespace numbers them: from 1, directories among the files. */
	static const uint64_t inos[] = { 5, 3, 9, 4, 12, 7, 8, 13 };
	static const uint64_t absent[] = { 1, 2, 6, 10, 11, 14, 15, 1000, UINT32_MAX,
					   1ull << 32, 1ull << 40, UINT64_MAX };
	struct plan *p = mk_man(inos, 8);

	check_manifest(p, inos, 8, absent, ARRAY_SIZE(absent));
	plan_destroy(p);
}
END_TEST

START_TEST(test_manifest_duplicates)
{
	/* A duplicate keeps its first index, in either map; inode 0 is nobody. */
	static const uint64_t dense[] = { 7, 3, 7, 0, 4, 3, 3, 0, 9 };
	static const uint64_t sparse[] = { 1ull << 40, 3, 1ull << 40, 0, UINT64_MAX, 3,
					   UINT64_MAX, (1ull << 40) + 1 };
	static const uint64_t absent[] = { 1, 2, 5, 8, 10, (1ull << 40) - 1, (1ull << 40) + 2,
					   UINT64_MAX - 1 };
	struct plan *p = mk_man(dense, ARRAY_SIZE(dense));

	check_manifest(p, dense, ARRAY_SIZE(dense), absent, ARRAY_SIZE(absent));
	ck_assert_uint_eq(plan_sample_of(p, 7), 0);
	ck_assert_uint_eq(plan_sample_of(p, 3), 1);
	plan_destroy(p);
	p = mk_man(sparse, ARRAY_SIZE(sparse));
	check_manifest(p, sparse, ARRAY_SIZE(sparse), absent, ARRAY_SIZE(absent));
	ck_assert_uint_eq(plan_sample_of(p, 1ull << 40), 0);
	ck_assert_uint_eq(plan_sample_of(p, UINT64_MAX), 4);
	plan_destroy(p);
}
END_TEST

START_TEST(test_manifest_empty)
{
	static const uint64_t zeros[] = { 0, 0 };
	static const uint64_t absent[] = { 1, 2, 1ull << 40 };
	struct plan *p = mk_man(zeros, 0);
	struct order_spec s = { ORDER_RANDPERM, 1, 0, 1, 0, 0 };

	check_manifest(p, zeros, 0, absent, ARRAY_SIZE(absent));
	ck_assert_int_eq(plan_set_seed(p, &s), 0); /* an empty order */
	ck_assert_int_eq(plan_on_open(p, 0), 0);
	plan_destroy(p);
	p = mk_man(zeros, 2);
	check_manifest(p, zeros, 2, absent, ARRAY_SIZE(absent));
	plan_destroy(p);
}
END_TEST

/* Random manifests of every shape, against the linear scan: dense from 1
 * (the direct array), dense from far up, at the edge of the direct array's
 * reach, sparse under 2^32 and huge (the hash), with duplicates. */
START_TEST(test_manifest_shapes)
{
	enum { NM = 3000 };
	static const struct {
		uint64_t base, step; /* inode i's = base + (i * step) */
	} shapes[] = {
		{ 1, 1 },                /* dense from 1 */
		{ 1ull << 40, 1 },       /* dense, far up: direct array above a base */
		{ 2, 4 },                /* span 4n: still direct */
		{ 2, 4 + 65536 / NM + 1 }, /* just too sparse: the hash, 32-bit inodes */
		{ UINT32_MAX - 3 * (uint64_t)NM, 3 }, /* up to 2^32 - 1: 32-bit */
		{ UINT32_MAX - 3 * (uint64_t)NM, 4 }, /* across 2^32 */
		{ 1ull << 40, 1000003 }, /* huge and sparse */
	};
	uint64_t *inos = malloc(NM * sizeof(*inos)), absent[64];
	uint64_t z = 0x2545f4914f6cdd1dull;

	for (size_t sh = 0; sh < ARRAY_SIZE(shapes); sh++) {
		struct plan *p;
		size_t na = 0;

		for (uint32_t i = 0; i < NM; i++)
			inos[i] = shapes[sh].base + (uint64_t)i * shapes[sh].step;
		/* shuffle, then some duplicates */
		for (uint32_t i = NM - 1; i > 0; i--) {
			uint64_t t;
			uint32_t j;

			z ^= z << 13, z ^= z >> 7, z ^= z << 17;
			j = (uint32_t)(z % (i + 1));
			t = inos[i], inos[i] = inos[j], inos[j] = t;
		}
		for (int k = 0; k < 40; k++) {
			z ^= z << 13, z ^= z >> 7, z ^= z << 17;
			inos[z % NM] = inos[(z >> 32) % NM];
		}
		absent[na++] = shapes[sh].base - 1;
		absent[na++] = shapes[sh].base + (uint64_t)NM * shapes[sh].step;
		absent[na++] = shapes[sh].base + (uint64_t)NM * shapes[sh].step + 1;
		if (shapes[sh].step > 1)
			for (uint32_t i = 0; i < 40; i++)
				absent[na++] = shapes[sh].base + (uint64_t)i * 97 * shapes[sh].step + 1;
		absent[na++] = UINT64_MAX;
		p = mk_man(inos, NM);
		check_manifest(p, inos, NM, absent, na);
		plan_destroy(p);
	}
	free(inos);
}
END_TEST

/* Replacing the manifest replaces the map, whatever the two forms. */
START_TEST(test_manifest_replace)
{
	static const uint64_t a[] = { 1, 2, 3, 4 }, b[] = { 1ull << 40, 2, 9 }, c[] = { 3, 4 };
	struct order_spec s = { ORDER_RANDPERM, 7, 0, 1, 0, 0 };
	struct plan *p = mk_man(a, 4);
	uint64_t *v;

	ck_assert_int_eq(plan_set_seed(p, &s), 0);
	v = malloc(sizeof(b));
	memcpy(v, b, sizeof(b));
	ck_assert_int_eq(plan_set_manifest(p, v, 3), 0);
	ck_assert_int_eq(plan_mode(p), PLAN_OFF);
	check_manifest(p, b, 3, a, 1);
	ck_assert_uint_eq(plan_sample_of(p, 3), PLAN_NONE);
	v = malloc(sizeof(c));
	memcpy(v, c, sizeof(c));
	ck_assert_int_eq(plan_set_manifest(p, v, 2), 0);
	check_manifest(p, c, 2, b, 3);
	plan_destroy(p);
}
END_TEST

/* Out of memory: the manifest and the plan stay as they were, and the
 * caller's array is still the caller's, as it was. */
START_TEST(test_manifest_enomem)
{
	static const uint64_t a[] = { 10, 11, 12 }, b[] = { 20, 21, 1ull << 40 };
	struct order_spec s = { ORDER_RANDPERM, 7, 0, 1, 0, 0 };
	struct plan *p = mk_man(a, 3);
	uint64_t *v = malloc(sizeof(b));

	ck_assert_int_eq(plan_set_seed(p, &s), 0);
	ck_assert_int_eq(plan_on_open(p, plan_order(p, &(uint64_t){ 0 })[0]), 0);
	memcpy(v, b, sizeof(b));
	ec_fail_alloc_after = 0;
	ck_assert_int_eq(plan_set_manifest(p, v, 3), -ENOMEM);
	ec_fail_alloc_after = -1;
	ck_assert_int_eq(memcmp(v, b, sizeof(b)), 0);
	free(v);
	check_manifest(p, a, 3, b, 3);
	ck_assert_int_eq(plan_mode(p), PLAN_SEED);
	ck_assert_uint_eq(plan_opened(p), 1);
	ck_assert_uint_eq(plan_position(p), 1);
	plan_destroy(p);
}
END_TEST

/* ---- the opened bitmap, against a byte per position ---- */

struct mirror {
	uint32_t *cur, *next; /* copies of the orders */
	uint64_t clen, nlen;
	uint8_t *opened;
};

static uint64_t rnd(uint64_t *z)
{
	*z ^= *z << 13, *z ^= *z >> 7, *z ^= *z << 17;
	return *z;
}

/* Every accessor against a scan of the mirrored orders. */
static void check_mirror(struct plan *p, const struct mirror *m, uint32_t n)
{
	uint64_t len, low = 0, cnt = 0;
	const uint32_t *ord = plan_order(p, &len);
	uint64_t *fc = malloc(((size_t)n + 1) * sizeof(*fc)), *fn = malloc(((size_t)n + 1) * sizeof(*fn));

	ck_assert_uint_eq(len, m->clen);
	ck_assert_int_eq(memcmp(ord, m->cur, (size_t)len * sizeof(*ord)), 0);
	while (low < m->clen && m->opened[low])
		low++;
	/* each sample's first unopened place, and first place in the next */
	for (uint32_t i = 0; i < n; i++)
		fc[i] = fn[i] = UINT64_MAX;
	for (uint64_t q = m->clen; q-- > 0;) {
		cnt += m->opened[q];
		if (!m->opened[q])
			fc[m->cur[q]] = q;
	}
	for (uint64_t r = m->next ? m->nlen : 0; r-- > 0;)
		fn[m->next[r]] = r;
	ck_assert_uint_eq(plan_position(p), low);
	ck_assert_uint_eq(plan_opened(p), cnt);
	ck_assert_uint_eq(plan_now(p) - plan_position(p), plan_epoch(p) << 33);
	for (uint32_t i = 0; i < n; i++) {
		uint64_t u = plan_next_use(p, i), want = PLAN_NEVER;

		if (fc[i] != UINT64_MAX)
			want = (plan_epoch(p) << 33) + fc[i];
		else if (fn[i] != UINT64_MAX)
			want = ((plan_epoch(p) + 1) << 33) + fn[i];
		/* (asserting only what is wrong: Check's asserts are slow) */
		if (u != want)
			ck_assert_uint_eq(u, want);
		if (plan_pending(p, i) != (fc[i] != UINT64_MAX))
			ck_assert_int_eq(plan_pending(p, i), fc[i] != UINT64_MAX);
		if (u != PLAN_NEVER && plan_sample_at(p, u) != i)
			ck_assert_uint_eq(plan_sample_at(p, u), i);
	}
	free(fc);
	free(fn);
}

/* Open sample i as the plan does: its first unopened place. */
static void mirror_open(struct mirror *m, uint32_t i)
{
	for (uint64_t q = 0; q < m->clen; q++)
		if (m->cur[q] == i && !m->opened[q]) {
			m->opened[q] = 1;
			return;
		}
}

/* Open every position of the mirrored epoch in a random order, checking
 * the plan against the mirror after each open but the last (which moves
 * the plan to the next epoch). */
static void read_epoch_shuffled(struct plan *p, struct mirror *m, uint32_t n, uint64_t *z)
{
	for (uint64_t step = 0; step < m->clen; step++) {
		uint64_t k;
		int moved;

		do
			k = rnd(z) % m->clen;
		while (m->opened[k]);
		mirror_open(m, m->cur[k]);
		moved = plan_on_open(p, m->cur[k]);
		ck_assert_int_eq(moved, step + 1 == m->clen);
		if (!moved)
			check_mirror(p, m, n);
	}
}

/* Explicit epochs of lengths around the bitmap's words and bytes, samples
 * planned again and again (padding chains), read in a random order to the
 * end of each; and an epoch cut short by the 90% rule. */
START_TEST(test_bitmap_epochs)
{
	enum { M = 150 };
	static const uint64_t lens[] = { 1, 7, 8, 9, 63, 64, 65, 127, 128, 129, 150, 200, 70, 5 };
	enum { NL = ARRAY_SIZE(lens) };
	uint32_t **lists = malloc(NL * sizeof(*lists)), *orders[NL];
	uint64_t *lv = malloc(NL * sizeof(*lv)), inos[M], z = 0x9e3779b97f4a7c15ull;
	struct mirror m = { 0 };
	struct plan *p;

	for (uint32_t i = 0; i < M; i++)
		inos[i] = 2 + i;
	p = mk_man(inos, M);
	for (size_t e = 0; e < NL; e++) {
		/* a permutation for some, draws with replacement (from a few
		 * samples: long chains) for the others */
		lists[e] = malloc(lens[e] * sizeof(**lists));
		for (uint64_t k = 0; k < lens[e]; k++)
			lists[e][k] = e % 3 == 0 ? (uint32_t)k % M
						 : (uint32_t)(rnd(&z) % (e % 3 == 1 ? 5 : M));
		for (uint64_t k = lens[e]; e % 3 == 0 && k-- > 1;) {
			uint64_t j = rnd(&z) % (k + 1);
			uint32_t t = lists[e][k];

			lists[e][k] = lists[e][j], lists[e][j] = t;
		}
		orders[e] = malloc(lens[e] * sizeof(**lists));
		memcpy(orders[e], lists[e], lens[e] * sizeof(**lists));
		lv[e] = lens[e];
	}
	ck_assert_int_eq(plan_set_explicit(p, lists, lv, NL, 3), 0);
	for (size_t e = 0; e < NL; e++) {
		ck_assert_uint_eq(plan_epoch(p), 3 + e);
		m.cur = orders[e];
		m.clen = lens[e];
		m.next = e + 1 < NL ? orders[e + 1] : NULL;
		m.nlen = e + 1 < NL ? lens[e + 1] : 0;
		m.opened = calloc(m.clen, 1);
		check_mirror(p, &m, M);
		if (lens[e] == 70) {
			/* 63 of 70 opened, then one opened again: the next
			 * epoch has begun, with that sample's place in it */
			uint64_t k, done = 0;
			uint32_t again;
			int in_next = 0;

			for (k = 0; done < 63; k++)
				if (!m.opened[k]) {
					mirror_open(&m, m.cur[k]);
					ck_assert_int_eq(plan_on_open(p, m.cur[k]), 0);
					done++;
				}
			check_mirror(p, &m, M);
			/* one planned in the next epoch if there is one */
			again = m.cur[0];
			for (k = 0; k < 63 && !in_next; k++)
				for (uint64_t r = 0; r < m.nlen && !in_next; r++)
					if (m.next[r] == m.cur[k]) {
						again = m.cur[k];
						in_next = 1;
					}
			ck_assert_int_eq(plan_on_open(p, again), 1);
			free(m.opened);
			m.cur = m.next;
			m.clen = m.nlen;
			m.next = NULL;
			m.opened = calloc(m.clen, 1);
			mirror_open(&m, again);
			ck_assert_int_eq(in_next, 1);
			ck_assert_uint_eq(plan_opened(p), 1);
			check_mirror(p, &m, M);
			free(m.opened);
			break;
		}
		read_epoch_shuffled(p, &m, M, &z);
		free(m.opened);
	}
	ck_assert_uint_eq(plan_epoch(p), 3 + NL - 1);
	for (size_t e = 0; e < NL; e++)
		free(orders[e]);
	plan_destroy(p);
}
END_TEST

/* Sampler plans: DistributedSampler shares with drop_last (lengths that are
 * not a multiple of 8) and with padding, read to the end of several epochs;
 * the next epoch's order is the sampler's. */
START_TEST(test_bitmap_seed)
{
	static const struct {
		uint32_t n, world, rank;
		int drop_last;
	} cases[] = { { 100, 3, 1, 1 }, { 100, 3, 2, 0 }, { 131, 1, 0, 0 }, { 5, 8, 6, 0 },
		      { 77, 4, 3, 1 } };
	uint64_t z = 12345;

	for (size_t c = 0; c < ARRAY_SIZE(cases); c++) {
		struct order_spec s = { ORDER_DISTRIBUTED, 1000 + c, 2, cases[c].world,
					cases[c].rank, cases[c].drop_last };
		uint32_t n = cases[c].n;
		uint64_t *inos = malloc(n * sizeof(*inos));
		struct mirror m = { 0 };
		struct plan *p = NULL;

		for (uint32_t i = 0; i < n; i++)
			inos[i] = 1 + 2 * (uint64_t)i; /* directories between */
		ck_assert_int_eq(plan_create(&p), 0);
		ck_assert_int_eq(plan_set_manifest(p, inos, n), 0);
		ck_assert_int_eq(plan_set_seed(p, &s), 0);
		for (uint64_t e = 2; e < 6; e++) {
			struct order_spec t = s;

			ck_assert_uint_eq(plan_epoch(p), e);
			ck_assert_int_eq(order_len(&s, n, &m.clen), 0);
			m.nlen = m.clen;
			m.cur = malloc(((size_t)m.clen + n) * sizeof(*m.cur));
			m.next = malloc(((size_t)m.clen + n) * sizeof(*m.cur));
			t.epoch = e;
			ck_assert_int_eq(order_generate(&t, n, m.cur, m.clen + n), 0);
			t.epoch = e + 1;
			ck_assert_int_eq(order_generate(&t, n, m.next, m.clen + n), 0);
			m.opened = calloc(m.clen, 1);
			check_mirror(p, &m, n);
			read_epoch_shuffled(p, &m, n, &z);
			free(m.opened);
			free(m.cur);
			free(m.next);
		}
		plan_destroy(p);
	}
}
END_TEST

/* Setting the epoch: a jump there and back, the current one again, one the
 * plan does not have (nothing changes), and out of memory while moving on
 * (nothing changes either). */
START_TEST(test_set_epoch)
{
	static const uint32_t e0[] = { 3, 1, 4, 0, 5, 2 }, e1[] = { 0, 1, 2, 3, 4, 5 };
	struct order_spec s = { ORDER_NUMPY, 9, 0, 1, 0, 0 }, got;
	struct plan *p = mk();
	uint64_t len, u;

	set_orders(p, e0, 6, e1, 6);
	ck_assert_int_eq(plan_on_open(p, 3), 0);
	ck_assert_int_eq(plan_set_epoch(p, 2), -ENOENT);
	ck_assert_uint_eq(plan_epoch(p), 0);
	ck_assert_uint_eq(plan_opened(p), 1);
	expect(p, 3, 1, 3); /* the next epoch is still known */
	ck_assert_int_eq(plan_set_epoch(p, 1), 0);
	expect(p, 3, 1, 3);
	ck_assert_uint_eq(plan_opened(p), 0);
	expect(p, 2, 1, 2);
	ck_assert_int_eq(plan_set_epoch(p, 0), 0); /* back */
	expect(p, 3, 0, 0);
	expect(p, 0, 0, 3);
	ck_assert_int_eq(plan_set_epoch(p, 0), 0); /* again */
	expect(p, 3, 0, 0);
	ck_assert_int_eq(plan_on_open(p, 3), 0);
	expect(p, 3, 1, 3);

	/* out of memory for the move to the next epoch */
	for (int k = 1; k < 5; k++)
		ck_assert_int_eq(plan_on_open(p, e0[k]), 0);
	ck_assert_uint_eq(plan_opened(p), 5);
	ec_fail_alloc_after = 0;
	ck_assert_int_eq(plan_set_epoch(p, 1), -ENOMEM);
	ec_fail_alloc_after = -1;
	ck_assert_uint_eq(plan_epoch(p), 0);
	ck_assert_uint_eq(plan_opened(p), 5);
	expect(p, 2, 0, 5);
	expect(p, 4, 1, 4);
	plan_destroy(p);

	/* a sampler plan: a jump makes both orders anew */
	p = mk();
	ck_assert_int_eq(plan_set_seed(p, &s), 0);
	ck_assert_int_eq(plan_set_epoch(p, 40), 0);
	ck_assert_int_eq(plan_spec(p, &got), 0);
	ck_assert_uint_eq(got.epoch, 40);
	plan_order(p, &len);
	ck_assert_uint_eq(len, N);
	for (uint32_t i = 0; i < N; i++) {
		u = plan_next_use(p, i);
		ck_assert_uint_eq(plan_use_epoch(u), 40);
		ck_assert_uint_eq(plan_sample_at(p, u), i);
		ck_assert_uint_ne(plan_spread_key_after(p, i), PLAN_NEVER);
		ck_assert_uint_eq(plan_use_epoch(plan_spread_key_after(p, i)), 41);
	}
	/* torch's manual_seed refuses seed + epoch >= 2^64: nothing changes */
	s.sampler = ORDER_RANDPERM;
	ck_assert_int_eq(plan_set_seed(p, &s), 0);
	ck_assert_int_eq(plan_set_epoch(p, UINT64_MAX - 3), -EINVAL);
	ck_assert_uint_eq(plan_epoch(p), 0);
	ck_assert_uint_eq(plan_use_epoch(plan_spread_key_after(p, 0)), 1);
	plan_destroy(p);
}
END_TEST

/* ---- memory: the plan's cost per sample (issue 12) ---- */

static size_t heap_used(void)
{
	struct mallinfo2 mi = mallinfo2();

	return mi.uordblks + mi.hblkhd;
}

/* Bytes a plan of ImageNet's size takes beyond its manifest, with the given
 * local ranks of a world; the manifest alone in *man. */
static size_t plan_bytes(uint32_t world, unsigned nranks, size_t *man)
{
	const uint32_t n = 1281167;
	struct order_spec s = { ORDER_DISTRIBUTED, 42, 0, world, 0, 0 };
	uint32_t ranks[8];
	struct plan *p = NULL;
	uint64_t *inos;
	size_t h0, h1, h2;

	h0 = heap_used();
	inos = malloc((size_t)n * sizeof(*inos));
	ck_assert_ptr_nonnull(inos);
	for (uint32_t i = 0; i < n; i++)
		inos[i] = 2 + i;
	ck_assert_int_eq(plan_create(&p), 0);
	ck_assert_int_eq(plan_set_manifest(p, inos, n), 0);
	h1 = heap_used();
	for (unsigned k = 0; k < nranks; k++)
		ranks[k] = k;
	ck_assert_int_eq(plan_seed_ranks(p, &s, ranks, nranks, 0, 0), 0);
	h2 = heap_used();
	plan_destroy(p);
	*man = h1 - h0;
	return h2 - h1;
}

/* The plan's cost per sample must not grow with the world size or the
 * number of local ranks beyond the orders themselves: 4 bytes a planned
 * position, two epochs held.  Prints the figures docs/benchmarks.md quotes. */
START_TEST(test_memory_ranks)
{
	const double n = 1281167;
	size_t man, one64, eight64, eight8, one1;

	one1 = plan_bytes(1, 1, &man);
	if (!man) {
		printf("plan memory: skipped: the allocator reports no heap (valgrind?)\n");
		return;
	}
	one64 = plan_bytes(64, 1, &man);
	eight64 = plan_bytes(64, 8, &man);
	eight8 = plan_bytes(8, 8, &man);
	printf("plan memory at n = 1,281,167: manifest %.1f B/sample; plan beyond it: world 1 "
	       "rank 0 %.2f B/sample, world 64 rank 0 %.2f, world 64 ranks 0-7 %.2f, world 8 "
	       "ranks 0-7 %.2f\n", man / n, one1 / n, one64 / n, eight64 / n, eight8 / n);
	/* 8 local ranks of 64 plan n/8 positions an epoch, two epochs held:
	 * at most 4 bytes each more than one rank's n/64 (plus 64 KiB). */
	ck_assert_msg(eight64 <= one64 + (size_t)(2 * 4 * (n / 8 - n / 64)) + 65536,
		      "8 local ranks of 64 cost %zu bytes, one rank %zu", eight64, one64);
	/* Every rank of world 8 plans every sample once an epoch, as world 1. */
	ck_assert_msg(eight8 <= one1 + 65536, "world 8, ranks 0-7: %zu bytes, world 1: %zu",
		      eight8, one1);
}
END_TEST

/* Peers: the whole job's order, made beside the node's own ranks' (one rank
 * of a world of 4 here): it is every rank's order interleaved, each
 * sample's job use is its first position in it, and the job moves with the
 * followed rank. */
START_TEST(test_job_order)
{
	const uint64_t stride = 1ull << 33;

	for (int dl = 0; dl < 2; dl++) {
		struct order_spec s = { ORDER_DISTRIBUTED, 77, 3, 4, 1, dl };
		const uint32_t n = 103;
		uint64_t inos[103], len, jc, u, jlen = dl ? 100 : 103;
		uint32_t *l[4], first[103];
		struct plan *p;

		for (uint32_t i = 0; i < n; i++)
			inos[i] = 10 + i;
		p = mk_man(inos, n);
		ck_assert_uint_eq(plan_job_use(p, 0), PLAN_NEVER); /* no plan */
		plan_set_cluster(p, 1);
		ck_assert_int_eq(plan_set_seed(p, &s), 0);
		ck_assert_int_eq(order_len(&s, n, &len), 0);
		for (uint32_t r = 0; r < 4; r++) {
			struct order_spec t = s;

			t.rank = r;
			l[r] = malloc((len + n) * sizeof(*l[r]));
			ck_assert_int_eq(order_generate(&t, n, l[r], len + n), 0);
		}
		memset(first, 0xff, sizeof(first));
		ck_assert_uint_eq(plan_job_now(p), 3 * stride);
		jc = 3 * stride;
		for (uint64_t j = 0; j < jlen; j++, jc++) {
			uint32_t i = plan_job_sample_at(p, &jc, &u);

			ck_assert_uint_eq(jc, 3 * stride + j);
			ck_assert_uint_eq(i, l[j % 4][j / 4]);
			ck_assert_uint_eq(u, 3 * stride + j / 4);
			if (first[i] == PLAN_NONE)
				first[i] = (uint32_t)(j / 4);
		}
		/* past the epoch's end: the next epoch's first */
		ck_assert_uint_ne(plan_job_sample_at(p, &jc, &u), PLAN_NONE);
		ck_assert_uint_eq(jc, 4 * stride);
		for (uint32_t i = 0; i < n; i++)
			if (first[i] != PLAN_NONE)
				ck_assert_uint_eq(plan_job_use(p, i), 3 * stride + first[i]);
		/* the followed rank reads 10 positions: the job is there, and
		 * what the job read before is next used in the next epoch */
		for (int q = 0; q < 10; q++)
			plan_on_open(p, l[1][q]);
		ck_assert_uint_eq(plan_job_now(p), 3 * stride + 40);
		for (uint32_t i = 0; i < n; i++) {
			u = plan_job_use(p, i);
			if (first[i] != PLAN_NONE && first[i] >= 10)
				ck_assert_uint_eq(u, 3 * stride + first[i]);
			else
				ck_assert(u == PLAN_NEVER || u / stride == 4);
		}
		for (uint32_t r = 0; r < 4; r++)
			free(l[r]);
		plan_destroy(p);
	}
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
	tcase_add_test(tc, test_planned_twice_few);
	tcase_add_test(tc, test_use_epoch);
	tcase_add_test(tc, test_manifest_dense);
	tcase_add_test(tc, test_manifest_duplicates);
	tcase_add_test(tc, test_manifest_empty);
	tcase_add_test(tc, test_manifest_shapes);
	tcase_add_test(tc, test_manifest_replace);
	tcase_add_test(tc, test_manifest_enomem);
	tcase_add_test(tc, test_bitmap_epochs);
	tcase_add_test(tc, test_bitmap_seed);
	tcase_add_test(tc, test_set_epoch);
	tcase_add_test(tc, test_memory_ranks);
	tcase_add_test(tc, test_job_order);
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
