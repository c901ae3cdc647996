/* SPDX-License-Identifier: MIT */
/* Unit tests of cache/order.c (Check): the generators against published reference
 * outputs, the order formulas, spec parsing and formatting, and the golden orders from
 * real torch and numpy (tests/golden_orders.py; file named by $GOLDEN_ORDERS, the test
 * is skipped with a message when that is unset). */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache/order.h"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The golden hash: sum of splitmix64's finalizer over (i << 32 | idx[i]) + gamma. */
static uint64_t mixsum64(const uint32_t *idx, uint64_t n)
{
	uint64_t h = 0;
	for (uint64_t i = 0; i < n; i++) {
		uint64_t z = (i << 32 | idx[i]) + 0x9e3779b97f4a7c15ull;
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
		h += z ^ (z >> 31);
	}
	return h;
}

static struct order_spec spec_of(enum order_sampler s, uint64_t seed, uint64_t epoch,
				 uint32_t world, uint32_t rank, int drop_last)
{
	struct order_spec sp = { s, seed, epoch, world, rank, drop_last };
	return sp;
}

/* ---- generators ---- */

START_TEST(test_mt19937_reference)
{
	struct order_mt19937 g;
	order_mt19937_seed(&g, 5489);
	ck_assert_uint_eq(order_mt19937_next(&g), 3499211612u);
	ck_assert_uint_eq(order_mt19937_next(&g), 581869302u);
	ck_assert_uint_eq(order_mt19937_next(&g), 3890346734u);
	for (int i = 4; i < 10000; i++)
		order_mt19937_next(&g);
	/* C++11 [rand.predef]: the 10000th output of a default mt19937 is 4123659995. */
	ck_assert_uint_eq(order_mt19937_next(&g), 4123659995u);
}
END_TEST

START_TEST(test_mt19937_low32_seed)
{
	struct order_mt19937 a, b;
	order_mt19937_seed(&a, 5);
	order_mt19937_seed(&b, (1ull << 32) + 5); /* torch keeps the low 32 bits */
	for (int i = 0; i < 2000; i++)
		ck_assert_uint_eq(order_mt19937_next(&a), order_mt19937_next(&b));
}
END_TEST

START_TEST(test_seedseq_reference)
{
	/* numpy 1.24: SeedSequence(0).generate_state(4) */
	static const uint32_t want0[4] = { 2968811710u, 3677149159u, 745650761u, 2884920346u };
	/* SeedSequence([1, 2, 3, 4, 5, 6]).generate_state(8): more words than the pool */
	static const uint32_t want6[8] = { 488360481u,  3956080669u, 2986500235u, 3488252836u,
					   3841783222u, 2602687873u, 149055243u,  459133091u };
	/* SeedSequence(2**64).generate_state(4): words [0, 0, 1] */
	static const uint32_t want64[4] = { 3831201730u, 2013799314u, 3589971085u,
					    2228851942u };
	uint32_t e0 = 0, e6[6] = { 1, 2, 3, 4, 5, 6 }, e64[3] = { 0, 0, 1 }, out[8];

	order_seedseq_generate(&e0, 1, out, 4);
	for (int i = 0; i < 4; i++)
		ck_assert_uint_eq(out[i], want0[i]);
	order_seedseq_generate(e6, 6, out, 8);
	for (int i = 0; i < 8; i++)
		ck_assert_uint_eq(out[i], want6[i]);
	order_seedseq_generate(e64, 3, out, 4);
	for (int i = 0; i < 4; i++)
		ck_assert_uint_eq(out[i], want64[i]);
}
END_TEST

START_TEST(test_pcg64_reference)
{
	struct order_pcg64 g;
	uint32_t zero = 0;

	/* numpy 1.24: PCG64(0).random_raw(3) */
	order_pcg64_seed(&g, &zero, 1);
	ck_assert_uint_eq(order_pcg64_next64(&g), 11749869230777074271ull);
	ck_assert_uint_eq(order_pcg64_next64(&g), 4976686463289251617ull);
	ck_assert_uint_eq(order_pcg64_next64(&g), 755828109848996024ull);
	/* next_uint32: low half of 0xa30febcfd9c2825f first, then the buffered high half */
	order_pcg64_seed(&g, &zero, 1);
	ck_assert_uint_eq(order_pcg64_next32(&g), 0xd9c2825fu);
	ck_assert_uint_eq(order_pcg64_next32(&g), 0xa30febcfu);
	ck_assert_uint_eq(order_pcg64_next32(&g), (uint32_t)4976686463289251617ull);
	/* a 64-bit draw leaves the buffered half alone */
	ck_assert_uint_eq(order_pcg64_next64(&g), 755828109848996024ull);
	ck_assert_uint_eq(order_pcg64_next32(&g), (uint32_t)(4976686463289251617ull >> 32));
}
END_TEST

START_TEST(test_small_orders_reference)
{
	/* torch 1.13: randperm(10, generator=Generator().manual_seed(5)) and of 2^64 - 1;
	 * numpy 1.24: default_rng(42).permutation(10), default_rng(2**64).permutation(10) */
	static const uint32_t t5[10] = { 1, 4, 9, 6, 3, 5, 0, 2, 8, 7 };
	static const uint32_t tmax[10] = { 1, 4, 6, 2, 0, 5, 8, 7, 9, 3 };
	static const uint32_t n42[10] = { 5, 6, 0, 7, 3, 2, 4, 9, 1, 8 };
	static const uint32_t n64[10] = { 5, 1, 6, 3, 4, 8, 9, 7, 2, 0 };
	uint32_t out[10];
	struct order_spec s;

	s = spec_of(ORDER_RANDPERM, 5, 0, 1, 0, 0);
	ck_assert_int_eq(order_generate(&s, 10, out, 10), 0);
	ck_assert_mem_eq(out, t5, sizeof(t5));
	s = spec_of(ORDER_RANDPERM, 4, 1, 1, 0, 0);
	ck_assert_int_eq(order_generate(&s, 10, out, 10), 0);
	ck_assert_mem_eq(out, t5, sizeof(t5));
	s = spec_of(ORDER_RANDPERM, UINT64_MAX, 0, 1, 0, 0);
	ck_assert_int_eq(order_generate(&s, 10, out, 10), 0);
	ck_assert_mem_eq(out, tmax, sizeof(tmax));
	s = spec_of(ORDER_NUMPY, 42, 0, 1, 0, 0);
	ck_assert_int_eq(order_generate(&s, 10, out, 10), 0);
	ck_assert_mem_eq(out, n42, sizeof(n42));
	s = spec_of(ORDER_NUMPY, UINT64_MAX, 1, 1, 0, 0);
	ck_assert_int_eq(order_generate(&s, 10, out, 10), 0);
	ck_assert_mem_eq(out, n64, sizeof(n64));
}
END_TEST

/* ---- order_len / order_generate ---- */

START_TEST(test_len_formulas)
{
	struct order_spec s;
	uint64_t len = 99;

	s = spec_of(ORDER_DISTRIBUTED, 0, 0, 3, 0, 0);
	ck_assert_int_eq(order_len(&s, 10, &len), 0);
	ck_assert_uint_eq(len, 4);
	s.drop_last = 1;
	ck_assert_int_eq(order_len(&s, 10, &len), 0);
	ck_assert_uint_eq(len, 3); /* ceil(7 / 3) */
	ck_assert_int_eq(order_len(&s, 9, &len), 0);
	ck_assert_uint_eq(len, 3);
	s = spec_of(ORDER_DISTRIBUTED, 0, 0, 8, 7, 1);
	ck_assert_int_eq(order_len(&s, 3, &len), 0);
	ck_assert_uint_eq(len, 0); /* ceil(-5 / 8) */
	s.drop_last = 0;
	ck_assert_int_eq(order_len(&s, 3, &len), 0);
	ck_assert_uint_eq(len, 1);
	ck_assert_int_eq(order_len(&s, 0, &len), 0);
	ck_assert_uint_eq(len, 0);
	s = spec_of(ORDER_DISTRIBUTED, 0, 0, UINT32_MAX, UINT32_MAX - 1, 0);
	ck_assert_int_eq(order_len(&s, ORDER_TORCH_MAX_N, &len), 0);
	ck_assert_uint_eq(len, 1);

	s = spec_of(ORDER_RANDPERM, 0, 0, 1, 0, 0);
	ck_assert_int_eq(order_len(&s, ORDER_TORCH_MAX_N, &len), 0);
	ck_assert_uint_eq(len, ORDER_TORCH_MAX_N);
	ck_assert_int_eq(order_len(&s, ORDER_TORCH_MAX_N + 1ull, &len), -EINVAL);
	s.sampler = ORDER_DISTRIBUTED;
	ck_assert_int_eq(order_len(&s, ORDER_TORCH_MAX_N + 1ull, &len), -EINVAL);
	s.sampler = ORDER_NUMPY;
	ck_assert_int_eq(order_len(&s, UINT32_MAX, &len), 0);
	ck_assert_uint_eq(len, UINT32_MAX);
	ck_assert_int_eq(order_len(&s, UINT32_MAX + 1ull, &len), -EINVAL);
}
END_TEST

START_TEST(test_len_bad_spec)
{
	struct order_spec s;
	uint64_t len;

	s = spec_of(ORDER_DISTRIBUTED, 0, 0, 0, 0, 0);
	ck_assert_int_eq(order_len(&s, 10, &len), -EINVAL);
	s = spec_of(ORDER_DISTRIBUTED, 0, 0, 4, 4, 0);
	ck_assert_int_eq(order_len(&s, 10, &len), -EINVAL);
	s = spec_of(ORDER_DISTRIBUTED, 0, 0, 4, 0, 2);
	ck_assert_int_eq(order_len(&s, 10, &len), -EINVAL);
	s = spec_of((enum order_sampler)7, 0, 0, 1, 0, 0);
	ck_assert_int_eq(order_len(&s, 10, &len), -EINVAL);
	s = spec_of(ORDER_NUMPY, 0, 0, 2, 0, 0);
	ck_assert_int_eq(order_len(&s, 10, &len), -EINVAL);
	s = spec_of(ORDER_RANDPERM, 0, 0, 1, 0, 1);
	ck_assert_int_eq(order_len(&s, 10, &len), -EINVAL);
	/* torch's manual_seed rejects seed + epoch >= 2^64; numpy takes it */
	s = spec_of(ORDER_RANDPERM, UINT64_MAX, 1, 1, 0, 0);
	ck_assert_int_eq(order_len(&s, 10, &len), -EINVAL);
	s = spec_of(ORDER_DISTRIBUTED, UINT64_MAX, 1, 1, 0, 0);
	ck_assert_int_eq(order_len(&s, 10, &len), -EINVAL);
	s = spec_of(ORDER_NUMPY, UINT64_MAX, UINT64_MAX, 1, 0, 0);
	ck_assert_int_eq(order_len(&s, 10, &len), 0);
}
END_TEST

START_TEST(test_generate_space)
{
	struct order_spec s = spec_of(ORDER_DISTRIBUTED, 1, 2, 4, 1, 0);
	uint32_t out[16];
	ck_assert_int_eq(order_generate(&s, 10, out, 2), -ENOSPC);
	ck_assert_int_eq(order_generate(&s, 10, out, 3), 0);
	s.sampler = ORDER_NUMPY;
	s.world = 1;
	s.rank = 0;
	ck_assert_int_eq(order_generate(&s, 10, out, 9), -ENOSPC);
	ck_assert_int_eq(order_generate(&s, 10, out, 10), 0);
	ck_assert_int_eq(order_generate(&s, 0, NULL, 0), 0);
}
END_TEST

/* Every rank's share, built both in place (len >= n) and in scratch (len == share),
 * agrees; without drop_last the ranks together read every index, the first total_size
 * positions of the padded permutation; with drop_last they read distinct indices. */
START_TEST(test_distributed_partition)
{
	static const uint32_t ns[] = { 0, 1, 2, 3, 7, 8, 9, 64, 100, 1001 };
	static const uint32_t worlds[] = { 1, 2, 3, 7, 8, 64, 200 };
	uint32_t *full = malloc(2000 * sizeof(*full)), *tight = malloc(2000 * sizeof(*tight));
	uint32_t *seen = malloc(2000 * sizeof(*seen));

	ck_assert_ptr_nonnull(full);
	ck_assert_ptr_nonnull(tight);
	ck_assert_ptr_nonnull(seen);
	for (size_t a = 0; a < sizeof(ns) / sizeof(ns[0]); a++)
		for (size_t b = 0; b < sizeof(worlds) / sizeof(worlds[0]); b++)
			for (int dl = 0; dl < 2; dl++) {
				uint32_t n = ns[a], w = worlds[b];
				uint64_t total = 0;
				memset(seen, 0, 2000 * sizeof(*seen));
				for (uint32_t r = 0; r < w; r++) {
					struct order_spec s = spec_of(ORDER_DISTRIBUTED, 7, 3, w, r, dl);
					uint64_t len;
					ck_assert_int_eq(order_len(&s, n, &len), 0);
					ck_assert_int_eq(order_generate(&s, n, full, n), 0);
					ck_assert_int_eq(order_generate(&s, n, tight, len), 0);
					for (uint64_t k = 0; k < len; k++) {
						ck_assert_uint_eq(full[k], tight[k]);
						ck_assert_uint_lt(full[k], n);
						seen[full[k]]++;
					}
					total += len;
				}
				uint64_t distinct = 0;
				for (uint32_t i = 0; i < n; i++) {
					distinct += seen[i] > 0;
					if (dl)
						ck_assert_uint_le(seen[i], 1);
				}
				if (!dl) {
					ck_assert_uint_eq(distinct, n);
					ck_assert_uint_eq(total, n ? (n + w - 1) / w * w : 0);
				} else {
					ck_assert_uint_eq(distinct, total);
					ck_assert_uint_eq(total, n % w ? (n >= w ? (n - 1) / w * w : 0) : n);
				}
			}
	free(full);
	free(tight);
	free(seen);
}
END_TEST

START_TEST(test_permutations_are_permutations)
{
	enum { N = 65537 };
	uint32_t *p = malloc(N * sizeof(*p));
	unsigned char *seen = calloc(N, 1);
	ck_assert_ptr_nonnull(p);
	ck_assert_ptr_nonnull(seen);
	for (int smp = ORDER_DISTRIBUTED; smp <= ORDER_NUMPY; smp++) {
		struct order_spec s = spec_of((enum order_sampler)smp, 123, 4, 1, 0, 0);
		memset(seen, 0, N);
		ck_assert_int_eq(order_generate(&s, N, p, N), 0);
		for (uint32_t i = 0; i < N; i++) {
			ck_assert_uint_lt(p[i], N);
			ck_assert_uint_eq(seen[p[i]], 0);
			seen[p[i]] = 1;
		}
	}
	free(p);
	free(seen);
}
END_TEST

START_TEST(test_timing_imagenet)
{
	enum { N = 1281167 };
	uint32_t *p = malloc(N * sizeof(*p));
	static const char *const names[] = { "distributed world=1", "randperm", "numpy" };
	ck_assert_ptr_nonnull(p);
	for (int smp = ORDER_DISTRIBUTED; smp <= ORDER_NUMPY; smp++) {
		struct order_spec s = spec_of((enum order_sampler)smp, 42, 0, 1, 0, 0);
		double t = now_s();
		ck_assert_int_eq(order_generate(&s, N, p, N), 0);
		printf("timing: %s n=%d: %.1f ms\n", names[smp], N, (now_s() - t) * 1e3);
	}
	struct order_spec s = spec_of(ORDER_DISTRIBUTED, 42, 0, 8, 3, 0);
	double t = now_s();
	ck_assert_int_eq(order_generate(&s, N, p, N / 8 + 1), 0);
	printf("timing: distributed world=8 rank=3 n=%d (scratch): %.1f ms\n", N,
	       (now_s() - t) * 1e3);
	free(p);
}
END_TEST

/* ---- parsing and formatting ---- */

static int parse(const char *line, struct order_spec *s, char *err, size_t errlen)
{
	return order_spec_parse(line, s, err, errlen);
}

START_TEST(test_parse_good)
{
	struct order_spec s;
	char err[128] = "";

	ck_assert_int_eq(parse("seed=42 sampler=distributed world=8 rank=3 drop_last=0 epoch=0",
			       &s, err, sizeof(err)), 0);
	ck_assert_int_eq(s.sampler, ORDER_DISTRIBUTED);
	ck_assert_uint_eq(s.seed, 42);
	ck_assert_uint_eq(s.world, 8);
	ck_assert_uint_eq(s.rank, 3);
	ck_assert_int_eq(s.drop_last, 0);
	ck_assert_uint_eq(s.epoch, 0);

	ck_assert_int_eq(parse("seed=7\n", &s, err, sizeof(err)), 0); /* echo's newline */
	ck_assert_int_eq(s.sampler, ORDER_DISTRIBUTED);
	ck_assert_uint_eq(s.seed, 7);
	ck_assert_uint_eq(s.world, 1);
	ck_assert_uint_eq(s.rank, 0);
	ck_assert_int_eq(s.drop_last, 0);
	ck_assert_uint_eq(s.epoch, 0);

	ck_assert_int_eq(parse("  \tepoch=3  drop_last=1\trank=0 world=4294967295 "
			       "seed=18446744073709551615 sampler=distributed \r\n",
			       &s, err, sizeof(err)), -EINVAL); /* seed + epoch overflows */
	ck_assert_int_eq(parse("  \tepoch=0  drop_last=1\trank=4294967294 world=4294967295 "
			       "seed=18446744073709551615 sampler=distributed \r\n",
			       &s, err, sizeof(err)), 0);
	ck_assert_uint_eq(s.seed, UINT64_MAX);
	ck_assert_uint_eq(s.world, UINT32_MAX);
	ck_assert_uint_eq(s.rank, UINT32_MAX - 1);
	ck_assert_int_eq(s.drop_last, 1);

	ck_assert_int_eq(parse("sampler=numpy seed=18446744073709551615 epoch=18446744073709551615",
			       &s, err, sizeof(err)), 0);
	ck_assert_int_eq(s.sampler, ORDER_NUMPY);
	ck_assert_uint_eq(s.epoch, UINT64_MAX);
	ck_assert_int_eq(parse("sampler=randperm seed=0007 world=1 rank=0 drop_last=0", &s, err,
			       sizeof(err)), 0);
	ck_assert_int_eq(s.sampler, ORDER_RANDPERM);
	ck_assert_uint_eq(s.seed, 7);
	ck_assert_int_eq(parse("seed=1", &s, NULL, 0), 0);
}
END_TEST

static const struct {
	const char *line;
	const char *reason; /* a substring of the error */
} bad_specs[] = {
	{ "", "seed is required" },
	{ " \n", "seed is required" },
	{ "world=8 rank=3", "seed is required" },
	{ "seed=1 colour=red", "unknown key 'colour'" },
	{ "seed=1 Seed=2", "unknown key 'Seed'" },
	{ "seed=1 =5", "unknown key ''" },
	{ "seed=1 world", "'world' is not key=value" },
	{ "seed 1", "'seed' is not key=value" },
	{ "seed=", "seed must be a decimal number" },
	{ "seed=-1", "seed must be a decimal number" },
	{ "seed=+1", "seed must be a decimal number" },
	{ "seed=1x", "seed must be a decimal number" },
	{ "seed=0x10", "seed must be a decimal number" },
	{ "seed=1.5", "seed must be a decimal number" },
	{ "seed=18446744073709551616", "seed must be a decimal number" },
	{ "seed=99999999999999999999999", "seed must be a decimal number" },
	{ "seed=1 epoch=18446744073709551616", "epoch must be a decimal number" },
	{ "seed=1 world=4294967296", "world must be a decimal number" },
	{ "seed=1 world=4 rank=4294967296", "rank must be a decimal number" },
	{ "seed=1 drop_last=2", "drop_last must be a decimal number from 0 to 1" },
	{ "seed=1 drop_last=yes", "drop_last must be" },
	{ "seed=1 seed=2", "duplicate key 'seed'" },
	{ "seed=1 world=2 world=2", "duplicate key 'world'" },
	{ "seed=1 sampler=numpy sampler=numpy", "duplicate key 'sampler'" },
	{ "seed=1 world=8 rank=8", "rank 8 must be less than world 8" },
	{ "seed=1 rank=1", "rank 1 must be less than world 1" },
	{ "seed=1 world=0", "world must be at least 1" },
	{ "seed=1 sampler=torch", "sampler must be distributed, randperm or numpy, not 'torch'" },
	{ "seed=1 sampler=", "sampler must be" },
	{ "seed=1 sampler=Numpy", "sampler must be" },
	{ "seed=1 sampler=numpy world=2", "apply only to sampler=distributed" },
	{ "seed=1 sampler=randperm drop_last=1", "apply only to sampler=distributed" },
	{ "seed=1 sampler=randperm world=2 rank=1", "apply only to sampler=distributed" },
	{ "seed=18446744073709551615 epoch=1", "below 2^64" },
	{ "seed=18446744073709551615 epoch=1 sampler=randperm", "below 2^64" },
};

START_TEST(test_parse_bad)
{
	struct order_spec s = spec_of(ORDER_NUMPY, 1234, 5, 1, 0, 0), before = s;
	char err[160];
	const char *line = bad_specs[_i].line;

	strcpy(err, "untouched");
	ck_assert_int_eq(parse(line, &s, err, sizeof(err)), -EINVAL);
	ck_assert_msg(strstr(err, bad_specs[_i].reason) != NULL,
		      "'%s': error '%s' lacks '%s'", line, err, bad_specs[_i].reason);
	/* nothing half-applied */
	ck_assert_int_eq(s.sampler, before.sampler);
	ck_assert_uint_eq(s.seed, before.seed);
	ck_assert_uint_eq(s.epoch, before.epoch);
	ck_assert_uint_eq(s.world, before.world);
	ck_assert_uint_eq(s.rank, before.rank);
	ck_assert_int_eq(s.drop_last, before.drop_last);
	/* err may be NULL or tiny */
	ck_assert_int_eq(parse(line, &s, NULL, 0), -EINVAL);
	strcpy(err, "xx");
	ck_assert_int_eq(parse(line, &s, err, 1), -EINVAL);
	ck_assert_str_eq(err, "");
	ck_assert_int_eq(parse(line, &s, err, 6), -EINVAL);
	ck_assert_uint_le(strlen(err), 5);
}
END_TEST

START_TEST(test_parse_null)
{
	struct order_spec s;
	char err[64];
	ck_assert_int_eq(parse(NULL, &s, err, sizeof(err)), -EINVAL);
}
END_TEST

START_TEST(test_format_roundtrip)
{
	static const struct order_spec specs[] = {
		{ ORDER_DISTRIBUTED, 42, 0, 8, 3, 0 },
		{ ORDER_DISTRIBUTED, UINT64_MAX, 0, UINT32_MAX, UINT32_MAX - 1, 1 },
		{ ORDER_DISTRIBUTED, 0, 17, 1, 0, 1 },
		{ ORDER_RANDPERM, 5, 99, 1, 0, 0 },
		{ ORDER_NUMPY, UINT64_MAX, UINT64_MAX, 1, 0, 0 },
	};
	char buf[256], err[128];
	for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++) {
		struct order_spec back;
		ck_assert_int_eq(order_spec_format(&specs[i], buf, sizeof(buf)), 0);
		ck_assert_int_eq(order_spec_parse(buf, &back, err, sizeof(err)), 0);
		ck_assert_int_eq(back.sampler, specs[i].sampler);
		ck_assert_uint_eq(back.seed, specs[i].seed);
		ck_assert_uint_eq(back.epoch, specs[i].epoch);
		ck_assert_uint_eq(back.world, specs[i].world);
		ck_assert_uint_eq(back.rank, specs[i].rank);
		ck_assert_int_eq(back.drop_last, specs[i].drop_last);
	}
	ck_assert_int_eq(order_spec_format(&specs[0], buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "seed=42 sampler=distributed world=8 rank=3 drop_last=0 epoch=0");
	ck_assert_int_eq(order_spec_format(&specs[3], buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "seed=5 sampler=randperm epoch=99");

	size_t need = strlen("seed=5 sampler=randperm epoch=99") + 1;
	ck_assert_int_eq(order_spec_format(&specs[3], buf, need), 0);
	ck_assert_int_eq(order_spec_format(&specs[3], buf, need - 1), -ENOSPC);
	ck_assert_int_eq(order_spec_format(&specs[3], NULL, 0), -ENOSPC);

	struct order_spec bad = { ORDER_DISTRIBUTED, 1, 0, 2, 2, 0 };
	ck_assert_int_eq(order_spec_format(&bad, buf, sizeof(buf)), -EINVAL);
	bad = (struct order_spec){ ORDER_NUMPY, 1, 0, 2, 0, 0 };
	ck_assert_int_eq(order_spec_format(&bad, buf, sizeof(buf)), -EINVAL);
}
END_TEST

/* ---- golden orders ---- */

/* Decimal string to minimal little-endian uint32 words (0 -> one word 0). */
static int dec_words(const char *s, uint32_t *w, size_t maxw, size_t *nw)
{
	size_t n = 1;
	w[0] = 0;
	if (!*s)
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		uint64_t carry = (uint64_t)(*s - '0');
		for (size_t i = 0; i < n; i++) {
			uint64_t v = (uint64_t)w[i] * 10 + carry;
			w[i] = (uint32_t)v;
			carry = v >> 32;
		}
		if (carry) {
			if (n == maxw)
				return -1;
			w[n++] = (uint32_t)carry;
		}
	}
	*nw = n;
	return 0;
}

static int dec_u64(const char *s, uint64_t *v)
{
	uint32_t w[2];
	size_t n;
	if (dec_words(s, w, 2, &n))
		return -1;
	*v = w[0] | (n > 1 ? (uint64_t)w[1] << 32 : 0);
	return 0;
}

struct golden_stats {
	long orders, errs, streams, failed, rank_sets;
	long big;
	double big_s;
};

#define GFAIL(st, lineno, ...)                                                   \
	do {                                                                     \
		if ((st)->failed++ < 20) {                                       \
			printf("golden line %ld: ", (lineno));                   \
			printf(__VA_ARGS__);                                     \
			printf("\n");                                            \
		}                                                                \
	} while (0)

static void golden_stream(char **f, int nf, long lineno, struct golden_stats *st)
{
	uint32_t w[8];
	size_t nw;
	uint64_t k, v;

	if (nf < 3 || dec_words(f[1], w, 8, &nw) || dec_u64(f[2], &k) || (uint64_t)nf != 3 + k) {
		GFAIL(st, lineno, "malformed %s record", f[0]);
		return;
	}
	st->streams++;
	if (!strcmp(f[0], "torchmt")) {
		struct order_mt19937 g;
		uint64_t seed = w[0] | (nw > 1 ? (uint64_t)w[1] << 32 : 0);
		order_mt19937_seed(&g, seed);
		for (uint64_t i = 0; i < k; i++) {
			if (dec_u64(f[3 + i], &v)) {
				GFAIL(st, lineno, "bad number '%s'", f[3 + i]);
				return;
			}
			uint32_t got = order_mt19937_next(&g) % 0xffffffffu;
			if (got != v) {
				GFAIL(st, lineno, "torchmt %s draw %" PRIu64 ": %" PRIu32
				      " want %" PRIu64, f[1], i, got, v);
				return;
			}
		}
		return;
	}
	struct order_pcg64 g;
	int u32 = !strcmp(f[0], "pcg64u32");
	order_pcg64_seed(&g, w, nw);
	for (uint64_t i = 0; i < k; i++) {
		if (dec_u64(f[3 + i], &v)) {
			GFAIL(st, lineno, "bad number '%s'", f[3 + i]);
			return;
		}
		uint64_t got = u32 ? order_pcg64_next32(&g) : order_pcg64_next64(&g);
		if (got != v) {
			GFAIL(st, lineno, "%s %s draw %" PRIu64 ": %" PRIu64 " want %" PRIu64,
			      f[0], f[1], i, got, v);
			return;
		}
	}
}

static void golden_order(char **f, int nf, long lineno, struct golden_stats *st)
{
	uint64_t seed, epoch, n, world, rank, dl, len, hash, k;
	struct order_spec s;
	char line[256], err[128];
	int err_rec = nf == 9 && !strcmp(f[8], "ERR");

	if (nf < 9 || dec_u64(f[2], &seed) || dec_u64(f[3], &epoch) || dec_u64(f[4], &n) ||
	    dec_u64(f[5], &world) || dec_u64(f[6], &rank) || dec_u64(f[7], &dl) ||
	    (!err_rec && (nf < 11 || dec_u64(f[8], &len) || dec_u64(f[10], &k) ||
			  (uint64_t)nf != 11 + k))) {
		GFAIL(st, lineno, "malformed order record");
		return;
	}
	/* The parser must agree with the library about what is valid. */
	snprintf(line, sizeof(line), "seed=%s epoch=%s sampler=%s world=%s rank=%s drop_last=%s",
		 f[2], f[3], f[1], f[5], f[6], f[7]);
	int prc = order_spec_parse(line, &s, err, sizeof(err));
	if (err_rec) {
		st->errs++;
		if (prc != -EINVAL)
			GFAIL(st, lineno, "library raised, parser accepted '%s'", line);
		s = spec_of(!strcmp(f[1], "numpy") ? ORDER_NUMPY
			    : !strcmp(f[1], "randperm") ? ORDER_RANDPERM : ORDER_DISTRIBUTED,
			    seed, epoch, (uint32_t)world, (uint32_t)rank, (int)dl);
		if (order_len(&s, n, &len) != -EINVAL)
			GFAIL(st, lineno, "library raised, order_len accepted '%s'", line);
		return;
	}
	if (prc) {
		GFAIL(st, lineno, "parser rejected '%s': %s", line, err);
		return;
	}
	hash = strtoull(f[9], NULL, 16);

	uint64_t got_len;
	if (order_len(&s, n, &got_len) || got_len != len) {
		GFAIL(st, lineno, "order_len %" PRIu64 " want %" PRIu64, got_len, len);
		return;
	}
	/* in place (room for n) and, for distributed, with exactly len entries */
	uint32_t *out = malloc((n ? n : 1) * sizeof(*out));
	if (!out) {
		GFAIL(st, lineno, "out of memory");
		return;
	}
	for (int pass = 0; pass < (s.sampler == ORDER_DISTRIBUTED ? 2 : 1); pass++) {
		double t = now_s();
		int rc = order_generate(&s, n, out, pass ? len : n);
		if (n > 1000000 && pass == 0) {
			st->big++;
			st->big_s += now_s() - t;
		}
		if (rc) {
			GFAIL(st, lineno, "order_generate: %d", rc);
			break;
		}
		uint64_t h = mixsum64(out, len);
		if (h != hash) {
			GFAIL(st, lineno, "hash %016" PRIx64 " want %016" PRIx64 " (%s, pass %d)",
			      h, hash, line, pass);
			break;
		}
		for (uint64_t i = 0; i < k; i++) {
			uint64_t v;
			if (dec_u64(f[11 + i], &v) || out[i] != v) {
				GFAIL(st, lineno, "index %" PRIu64 ": %" PRIu32 " want %s", i,
				      out[i], f[11 + i]);
				break;
			}
		}
	}
	free(out);
	st->orders++;
}

/* "ranks SEED EPOCH N WORLD DL NR R1..RNR LEN HASH K FIRST...": the merged
 * plan of a set of local ranks, as order_generate_ranks makes it in one
 * permutation, against torch's DistributedSampler of each rank. */
static void golden_ranks(char **f, int nf, long lineno, struct golden_stats *st)
{
	uint64_t seed, epoch, n, world, dl, nr, len, k, v, h;
	uint32_t ranks[64];
	struct order_spec s;
	uint32_t *out;
	int at;

	if (nf < 8 || dec_u64(f[1], &seed) || dec_u64(f[2], &epoch) || dec_u64(f[3], &n) ||
	    dec_u64(f[4], &world) || dec_u64(f[5], &dl) || dec_u64(f[6], &nr) || nr < 1 ||
	    nr > 64 || (uint64_t)nf < 7 + nr + 3) {
		GFAIL(st, lineno, "malformed ranks record");
		return;
	}
	for (uint64_t i = 0; i < nr; i++) {
		if (dec_u64(f[7 + i], &v)) {
			GFAIL(st, lineno, "malformed rank");
			return;
		}
		ranks[i] = (uint32_t)v;
	}
	at = 7 + (int)nr;
	if (dec_u64(f[at], &len) || dec_u64(f[at + 2], &k) || (uint64_t)nf != (uint64_t)at + 3 + k) {
		GFAIL(st, lineno, "malformed ranks record tail");
		return;
	}
	s = spec_of(ORDER_DISTRIBUTED, seed, epoch, (uint32_t)world, 0, (int)dl);
	out = malloc((len ? len : 1) * sizeof(*out));
	if (!out) {
		GFAIL(st, lineno, "out of memory");
		return;
	}
	if (order_generate_ranks(&s, ranks, (unsigned)nr, n, out, len)) {
		GFAIL(st, lineno, "order_generate_ranks failed");
	} else if ((h = mixsum64(out, len)) != strtoull(f[at + 1], NULL, 16)) {
		GFAIL(st, lineno, "merged hash %016" PRIx64 " want %s", h, f[at + 1]);
	} else {
		for (uint64_t i = 0; i < k; i++)
			if (dec_u64(f[at + 3 + i], &v) || out[i] != v) {
				GFAIL(st, lineno, "merged index %" PRIu64 ": %" PRIu32 " want %s", i,
				      out[i], f[at + 3 + i]);
				break;
			}
	}
	free(out);
	st->rank_sets++;
}

START_TEST(test_golden)
{
	const char *path = getenv("GOLDEN_ORDERS");
	if (!path || !*path) {
		printf("golden: skipped: GOLDEN_ORDERS is unset (make it with "
		       "/usr/bin/python3 tests/golden_orders.py > FILE)\n");
		return;
	}
	FILE *fp = fopen(path, "r");
	ck_assert_msg(fp != NULL, "cannot open GOLDEN_ORDERS=%s: %s", path, strerror(errno));

	struct golden_stats st = { 0 };
	char *buf = NULL;
	size_t cap = 0;
	long lineno = 0;
	double t0 = now_s();
	while (getline(&buf, &cap, fp) > 0) {
		char *f[128], *save = NULL;
		int nf = 0;
		lineno++;
		if (buf[0] == '#' || buf[0] == '\n')
			continue;
		for (char *t = strtok_r(buf, " \n", &save); t; t = strtok_r(NULL, " \n", &save)) {
			if (nf == 128)
				break;
			f[nf++] = t;
		}
		if (nf == 0)
			continue;
		if (nf == 128) {
			GFAIL(&st, lineno, "too many fields");
			continue;
		}
		if (!strcmp(f[0], "order"))
			golden_order(f, nf, lineno, &st);
		else if (!strcmp(f[0], "ranks"))
			golden_ranks(f, nf, lineno, &st);
		else if (!strcmp(f[0], "torchmt") || !strcmp(f[0], "pcg64") ||
			 !strcmp(f[0], "pcg64u32"))
			golden_stream(f, nf, lineno, &st);
		else
			GFAIL(&st, lineno, "unknown record '%s'", f[0]);
	}
	free(buf);
	fclose(fp);
	printf("golden: %ld orders (%ld expected errors), %ld merged rank sets, %ld generator "
	       "streams, %ld failed, %.2f s; %ld orders of n > 1e6 took %.1f ms each on average\n",
	       st.orders, st.errs, st.rank_sets, st.streams, st.failed, now_s() - t0, st.big,
	       st.big ? st.big_s * 1e3 / (double)st.big : 0.0);
	ck_assert_int_eq(st.failed, 0);
	ck_assert_int_gt(st.orders, 0);
	ck_assert_int_gt(st.rank_sets, 0);
}
END_TEST

static Suite *order_suite(void)
{
	Suite *s = suite_create("order");
	TCase *tc = tcase_create("generators");
	tcase_add_test(tc, test_mt19937_reference);
	tcase_add_test(tc, test_mt19937_low32_seed);
	tcase_add_test(tc, test_seedseq_reference);
	tcase_add_test(tc, test_pcg64_reference);
	tcase_add_test(tc, test_small_orders_reference);
	suite_add_tcase(s, tc);

	tc = tcase_create("orders");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_len_formulas);
	tcase_add_test(tc, test_len_bad_spec);
	tcase_add_test(tc, test_generate_space);
	tcase_add_test(tc, test_distributed_partition);
	tcase_add_test(tc, test_permutations_are_permutations);
	tcase_add_test(tc, test_timing_imagenet);
	suite_add_tcase(s, tc);

	tc = tcase_create("spec");
	tcase_add_test(tc, test_parse_good);
	tcase_add_loop_test(tc, test_parse_bad, 0, (int)(sizeof(bad_specs) / sizeof(bad_specs[0])));
	tcase_add_test(tc, test_parse_null);
	tcase_add_test(tc, test_format_roundtrip);
	suite_add_tcase(s, tc);

	tc = tcase_create("golden");
	tcase_set_timeout(tc, 1200);
	tcase_add_test(tc, test_golden);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(order_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
