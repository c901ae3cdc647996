/* SPDX-License-Identifier: MIT */
/* Shuffle orders reproduced bit-exactly: torch's CPU mt19937 and randperm, torch's
 * DistributedSampler, numpy's SeedSequence + PCG64 + Generator.permutation. Pure C11
 * over libc: no int128, no FUSE, no cache. Checked against the real libraries by
 * tests/golden_orders.py + tests/check_order.c. */

/*
 * How the orders come about
 * =========================
 *
 * A training job that shuffles with a seed reads its samples in an order fixed by that
 * seed, the epoch and a few sampler parameters. If we compute the same order, the cache
 * knows every future access (Belady eviction, exact prefetch). That only works if the
 * order is the same bit for bit, so each generator here follows its library's code, not
 * the textbook algorithm it is named after.
 *
 * torch (verified against Debian's torch 1.13 and the ATen sources of 1.13 .. 2.x)
 *
 *   torch.Generator().manual_seed(s) takes s as a uint64 (a negative Python int wraps,
 *   one >= 2^64 raises) and constructs at::mt19937 from it, which seeds the standard
 *   32-bit Mersenne Twister with init_genrand(s & 0xffffffff): state[0] = s,
 *   state[i] = 1812433253 * (state[i-1] ^ (state[i-1] >> 30)) + i. So 5 and 2^32 + 5
 *   give the same stream. CPUGeneratorImpl::random() is one tempered 32-bit output.
 *
 *   randperm_cpu(n) fills r[i] = i and then, for i = 0 .. n-2,
 *       z = random() % (n - i);  swap(r[i], r[i + z]);
 *   a forward Fisher-Yates with a (slightly biased) modulo. Current torch (2.x) keeps
 *   exactly this for n < UINT32_MAX / 20 = 214748364 and uses another algorithm
 *   (random64() % (i + 1), inside-out) above it; torch 1.13 uses this one for every n. Since the two disagree
 *   we refuse torch orders from n = 214748364 on (ORDER_TORCH_MAX_N). There is no
 *   separate path for small n.
 *
 *   DistributedSampler(shuffle=True) seeds a fresh generator with seed + epoch, takes
 *   randperm(n), and with num_replicas = world:
 *     num_samples = ceil((n - world) / world)  if drop_last and n % world != 0
 *                 = ceil(n / world)            otherwise
 *   (Python's float ceil; (n - world) / world lies in (-1, 0) for n < world, so 0, and
 *   for n < 2^32 the float quotient is never rounded onto an integer, so the integer
 *   formulas below agree), total_size = num_samples * world. Without drop_last the list
 *   is padded with copies of itself from the start (indices * k, cut) to total_size,
 *   i.e. padded[p] = perm[p % n]; with drop_last it is cut to total_size. Rank r reads
 *   padded[r], padded[r + world], ... (num_samples of them).
 *
 *   randperm: the bare torch.randperm(n, generator=Generator().manual_seed(seed+epoch)).
 *
 * numpy (verified against Debian's numpy 1.24)
 *
 *   default_rng(s) = Generator(PCG64(SeedSequence(s))).
 *
 *   SeedSequence turns the non-negative int s into 32-bit words, least significant
 *   first (0 -> [0]; Python ints are unbounded, so seed + epoch = 2^64 is three words).
 *   The pool is 4 words: word i = hashmix(entropy[i] or 0), then every pool word is
 *   mixed with hashmix of every other, then entropy words beyond the pool are mixed
 *   into each pool word. hashmix(v): v ^= h; h *= MULT_A; v *= h; v ^= v >> 16, with
 *   h starting at INIT_A and running through all calls; mix(x, y) =
 *   (MIX_MULT_L * x - MIX_MULT_R * y) then ^= >> 16. generate_state(4, uint64) makes 8
 *   uint32 words from the pool cycled (v ^= h; h *= MULT_B; v *= h; v ^= v >> 16, h
 *   from INIT_B) and reads pairs as little-endian uint64 v[0..3].
 *
 *   PCG64 is pcg_setseq_128 with the XSL-RR output. pcg64_set_seed takes
 *   initstate = v[0] << 64 | v[1] and initseq = v[2] << 64 | v[3]; srandom does
 *   state = 0, inc = initseq << 1 | 1, step, state += initstate, step, where
 *   step is state = state * M + inc (M = 2549297995355413924 << 64 | 4865540595714422341).
 *   A 64-bit draw steps first, then outputs rotr64(hi ^ lo, state >> 122). A 32-bit
 *   draw (next_uint32) returns the low half of a fresh 64-bit draw and keeps the high
 *   half for the next 32-bit draw.
 *
 *   Generator.permutation(n) = shuffle(arange(n)), which for a 1-d array is
 *   _shuffle_raw: for i = n-1 down to 1: j = random_interval(i); swap(a[i], a[j]).
 *   random_interval(max) draws value = next & mask, mask the smallest 2^k - 1 >= max,
 *   until value <= max; 32-bit draws when max <= 0xffffffff (always, here: n < 2^32),
 *   64-bit draws otherwise.
 *
 * All 128-bit arithmetic is done on pairs of uint64 so the module stays plain C11.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "order.h"
#include "backends/base/util.h"

/* ---- mt19937 ---- */

#define MT_N 624
#define MT_M 397

void order_mt19937_seed(struct order_mt19937 *g, uint64_t seed)
{
	g->state[0] = (uint32_t)seed; /* torch: init_with_uint32(seed & 0xffffffff) */
	for (uint32_t i = 1; i < MT_N; i++) {
		uint32_t p = g->state[i - 1];
		g->state[i] = 1812433253u * (p ^ (p >> 30)) + i;
	}
	g->next = MT_N;
}

static void mt_twist(struct order_mt19937 *g)
{
	uint32_t *s = g->state;
	for (int i = 0; i < MT_N; i++) {
		uint32_t y = (s[i] & 0x80000000u) | (s[(i + 1) % MT_N] & 0x7fffffffu);
		s[i] = s[(i + MT_M) % MT_N] ^ (y >> 1) ^ ((y & 1u) ? 0x9908b0dfu : 0u);
	}
	g->next = 0;
}

uint32_t order_mt19937_next(struct order_mt19937 *g)
{
	if (g->next >= MT_N)
		mt_twist(g);
	uint32_t y = g->state[g->next++];
	y ^= y >> 11;
	y ^= (y << 7) & 0x9d2c5680u;
	y ^= (y << 15) & 0xefc60000u;
	y ^= y >> 18;
	return y;
}

/* ---- SeedSequence ---- */

#define SS_POOL 4
#define SS_INIT_A 0x43b0d7e5u
#define SS_MULT_A 0x931e8875u
#define SS_INIT_B 0x8b51f9ddu
#define SS_MULT_B 0x58f38dedu
#define SS_MIX_L 0xca01f9ddu
#define SS_MIX_R 0x4973f715u

static uint32_t ss_hashmix(uint32_t v, uint32_t *h)
{
	v ^= *h;
	*h *= SS_MULT_A;
	v *= *h;
	v ^= v >> 16;
	return v;
}

static uint32_t ss_mix(uint32_t x, uint32_t y)
{
	uint32_t r = SS_MIX_L * x - SS_MIX_R * y;
	return r ^ (r >> 16);
}

void order_seedseq_generate(const uint32_t *entropy, size_t nentropy, uint32_t *out,
			    size_t nout)
{
	uint32_t pool[SS_POOL];
	uint32_t h = SS_INIT_A;

	for (size_t i = 0; i < SS_POOL; i++)
		pool[i] = ss_hashmix(i < nentropy ? entropy[i] : 0, &h);
	for (size_t s = 0; s < SS_POOL; s++)
		for (size_t d = 0; d < SS_POOL; d++)
			if (s != d)
				pool[d] = ss_mix(pool[d], ss_hashmix(pool[s], &h));
	for (size_t s = SS_POOL; s < nentropy; s++)
		for (size_t d = 0; d < SS_POOL; d++)
			pool[d] = ss_mix(pool[d], ss_hashmix(entropy[s], &h));

	uint32_t hb = SS_INIT_B;
	for (size_t i = 0; i < nout; i++) {
		uint32_t v = pool[i % SS_POOL];
		v ^= hb;
		hb *= SS_MULT_B;
		v *= hb;
		v ^= v >> 16;
		out[i] = v;
	}
}

/* ---- PCG64 on uint64 pairs ---- */

#define PCG_MULT_HI 2549297995355413924ull
#define PCG_MULT_LO 4865540595714422341ull

/* Full 64 x 64 -> 128-bit product. */
static void mul64(uint64_t a, uint64_t b, uint64_t *hi, uint64_t *lo)
{
	uint64_t a0 = a & 0xffffffffu, a1 = a >> 32;
	uint64_t b0 = b & 0xffffffffu, b1 = b >> 32;
	uint64_t p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
	uint64_t mid = (p00 >> 32) + (p01 & 0xffffffffu) + (p10 & 0xffffffffu);
	*lo = (p00 & 0xffffffffu) | (mid << 32);
	*hi = p11 + (p01 >> 32) + (p10 >> 32) + (mid >> 32);
}

/* state = state * M + inc (mod 2^128). */
static void pcg_step(struct order_pcg64 *g)
{
	uint64_t hi, lo;
	mul64(g->state_lo, PCG_MULT_LO, &hi, &lo);
	hi += g->state_lo * PCG_MULT_HI + g->state_hi * PCG_MULT_LO;
	lo += g->inc_lo;
	hi += g->inc_hi + (lo < g->inc_lo);
	g->state_hi = hi;
	g->state_lo = lo;
}

void order_pcg64_seed(struct order_pcg64 *g, const uint32_t *entropy, size_t nentropy)
{
	uint32_t w[8];
	uint64_t v[4];

	order_seedseq_generate(entropy, nentropy, w, 8);
	for (int i = 0; i < 4; i++)
		v[i] = (uint64_t)w[2 * i] | (uint64_t)w[2 * i + 1] << 32;
	/* pcg64_set_seed: initstate = v0:v1, initseq = v2:v3; pcg_setseq_128_srandom_r */
	g->state_hi = 0;
	g->state_lo = 0;
	g->inc_hi = v[2] << 1 | v[3] >> 63;
	g->inc_lo = v[3] << 1 | 1u;
	pcg_step(g);
	g->state_lo += v[1];
	g->state_hi += v[0] + (g->state_lo < v[1]);
	pcg_step(g);
	g->has_uint32 = 0;
	g->uinteger = 0;
}

uint64_t order_pcg64_next64(struct order_pcg64 *g)
{
	pcg_step(g);
	uint64_t x = g->state_hi ^ g->state_lo;
	unsigned rot = (unsigned)(g->state_hi >> 58);
	return (x >> rot) | (x << ((64u - rot) & 63u));
}

uint32_t order_pcg64_next32(struct order_pcg64 *g)
{
	if (g->has_uint32) {
		g->has_uint32 = 0;
		return g->uinteger;
	}
	uint64_t next = order_pcg64_next64(g);
	g->has_uint32 = 1;
	g->uinteger = (uint32_t)(next >> 32);
	return (uint32_t)next;
}

/* ---- The samplers ---- */

/* Is the spec usable for some n? NULL if so, else why not. */
static const char *spec_problem(const struct order_spec *spec)
{
	switch (spec->sampler) {
	case ORDER_DISTRIBUTED:
		if (spec->world == 0)
			return "world must be at least 1";
		if (spec->rank >= spec->world)
			return "rank must be less than world";
		if (spec->drop_last != 0 && spec->drop_last != 1)
			return "drop_last must be 0 or 1";
		break;
	case ORDER_RANDPERM:
	case ORDER_NUMPY:
		if (spec->world != 1 || spec->rank != 0 || spec->drop_last != 0)
			return "world, rank and drop_last apply only to sampler=distributed";
		break;
	default:
		return "unknown sampler";
	}
	if (spec->sampler != ORDER_NUMPY && spec->seed + spec->epoch < spec->seed)
		return "seed + epoch must be below 2^64 for torch samplers";
	return NULL;
}

int order_len(const struct order_spec *spec, uint64_t n, uint64_t *len)
{
	if (spec_problem(spec) || n > UINT32_MAX)
		return -EINVAL;
	if (spec->sampler != ORDER_NUMPY && n > ORDER_TORCH_MAX_N)
		return -EINVAL;
	if (spec->sampler != ORDER_DISTRIBUTED) {
		*len = n;
		return 0;
	}
	/* torch: ceil((n - w) / w) if drop_last and n % w != 0, else ceil(n / w). The
	 * first is floor(n / w) (0 when n < w), and so is ceil(n / w) when w divides n. */
	uint64_t w = spec->world;
	*len = spec->drop_last ? n / w : (n + w - 1) / w;
	return 0;
}

/* torch.randperm(n, generator=manual_seed(seed)) into p[0..n). n <= ORDER_TORCH_MAX_N. */
static void torch_randperm(uint64_t seed, uint32_t n, uint32_t *p)
{
	struct order_mt19937 g;

	for (uint32_t i = 0; i < n; i++)
		p[i] = i;
	if (n < 2)
		return;
	order_mt19937_seed(&g, seed);
	for (uint32_t i = 0; i < n - 1; i++) {
		uint32_t z = order_mt19937_next(&g) % (n - i);
		uint32_t t = p[i];
		p[i] = p[i + z];
		p[i + z] = t;
	}
}

/* numpy random_interval(max) for max <= 0xffffffff. */
static uint32_t np_interval32(struct order_pcg64 *g, uint32_t max)
{
	uint32_t mask = max, v;
	if (max == 0)
		return 0;
	mask |= mask >> 1;
	mask |= mask >> 2;
	mask |= mask >> 4;
	mask |= mask >> 8;
	mask |= mask >> 16;
	while ((v = order_pcg64_next32(g) & mask) > max)
		;
	return v;
}

/* default_rng(seed + epoch).permutation(n) into p[0..n); the sum is taken without
 * wrapping, as Python does. */
static void numpy_permutation(uint64_t seed, uint64_t epoch, uint32_t n, uint32_t *p)
{
	uint64_t s = seed + epoch;
	uint32_t words[3];
	size_t nw = 0;
	struct order_pcg64 g;

	words[0] = (uint32_t)s;
	words[1] = (uint32_t)(s >> 32);
	words[2] = s < seed; /* carry: bit 64 */
	nw = words[2] ? 3 : words[1] ? 2 : 1;
	order_pcg64_seed(&g, words, nw);

	for (uint32_t i = 0; i < n; i++)
		p[i] = i;
	for (uint32_t i = n; i-- > 1;) {
		uint32_t j = np_interval32(&g, i);
		uint32_t t = p[i];
		p[i] = p[j];
		p[j] = t;
	}
}

int order_generate(const struct order_spec *spec, uint64_t n, uint32_t *out, uint64_t len)
{
	uint64_t need;
	int rc = order_len(spec, n, &need);
	if (rc)
		return rc;
	if (len < need)
		return -ENOSPC;

	if (spec->sampler == ORDER_NUMPY) {
		numpy_permutation(spec->seed, spec->epoch, (uint32_t)n, out);
		return 0;
	}
	if (spec->sampler == ORDER_RANDPERM) {
		torch_randperm(spec->seed + spec->epoch, (uint32_t)n, out);
		return 0;
	}

	/* DistributedSampler: perm in out when it fits, else in scratch. */
	uint32_t *perm = out, *scratch = NULL;
	if (need == 0)
		return 0;
	if (len < n) {
		scratch = ec_malloc((size_t)n * sizeof(*scratch));
		if (!scratch)
			return -ENOMEM;
		perm = scratch;
	}
	torch_randperm(spec->seed + spec->epoch, (uint32_t)n, perm);

	/* out[k] = padded[rank + k * world], padded[p] = perm[p % n]. Reads run ahead of
	 * writes (rank + k * world >= k), except the one padded position a rank can have
	 * (total_size - n < world), which is the last; read it first. */
	uint64_t w = spec->world, last = need - 1;
	uint64_t plast = spec->rank + last * w;
	uint32_t vlast = perm[plast % n];
	for (uint64_t k = 0; k < last; k++)
		out[k] = perm[spec->rank + k * w];
	out[last] = vlast;
	free(scratch);
	return 0;
}

int order_generate_ranks(const struct order_spec *spec, const uint32_t *ranks, unsigned nranks,
			 uint64_t n, uint32_t *out, uint64_t len)
{
	struct order_spec one = *spec;
	uint64_t need, w = spec->world;
	uint32_t *perm;
	int rc;

	if (nranks == 0)
		return -EINVAL;
	for (unsigned r = 0; r < nranks; r++) {
		one.rank = ranks[r];
		rc = order_len(&one, n, &need);
		if (rc)
			return rc;
	}
	if (len < need * nranks)
		return -ENOSPC;
	if (nranks == 1)
		return order_generate(&one, n, out, len);
	if (spec->sampler != ORDER_DISTRIBUTED)
		return -EINVAL; /* one order for the whole job: one rank */
	if (need == 0)
		return 0;
	/* One permutation for every rank: out[q * nranks + r] is rank r's q-th
	 * index, padded[ranks[r] + q * world] with padded[p] = perm[p % n]. */
	perm = ec_malloc((size_t)n * sizeof(*perm));
	if (!perm)
		return -ENOMEM;
	torch_randperm(spec->seed + spec->epoch, (uint32_t)n, perm);
	for (uint64_t q = 0; q < need; q++)
		for (unsigned r = 0; r < nranks; r++)
			out[q * nranks + r] = perm[(ranks[r] + q * w) % n];
	free(perm);
	return 0;
}

/* ---- Parsing and formatting ---- */

static const char *const sampler_names[] = {
	[ORDER_DISTRIBUTED] = "distributed",
	[ORDER_RANDPERM] = "randperm",
	[ORDER_NUMPY] = "numpy",
};

#if defined(__GNUC__)
static int fail(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
#endif

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	if (err && errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

/* Unsigned decimal in [v, v+len) to *out, at most max. 0 or -1. */
static int parse_u64(const char *v, size_t len, uint64_t max, uint64_t *out)
{
	uint64_t x = 0;
	if (len == 0)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -1;
		unsigned d = (unsigned)(v[i] - '0');
		if (x > (UINT64_MAX - d) / 10)
			return -1;
		x = x * 10 + d;
	}
	if (x > max)
		return -1;
	*out = x;
	return 0;
}

static int is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

enum { K_SEED, K_SAMPLER, K_WORLD, K_RANK, K_DROP_LAST, K_EPOCH, K_COUNT };
static const char *const key_names[K_COUNT] = {
	"seed", "sampler", "world", "rank", "drop_last", "epoch",
};
static const uint64_t key_max[K_COUNT] = {
	UINT64_MAX, 0, UINT32_MAX, UINT32_MAX, 1, UINT64_MAX,
};

int order_spec_parse(const char *line, struct order_spec *out, char *err, size_t errlen)
{
	struct order_spec s = { ORDER_DISTRIBUTED, 0, 0, 1, 0, 0 };
	int seen[K_COUNT] = { 0 };
	const char *p = line;

	if (!line)
		return fail(err, errlen, "no spec");
	for (;;) {
		while (*p && is_blank(*p))
			p++;
		if (!*p)
			break;
		const char *tok = p;
		while (*p && !is_blank(*p))
			p++;
		size_t toklen = (size_t)(p - tok);
		const char *eq = memchr(tok, '=', toklen);
		if (!eq)
			return fail(err, errlen, "'%.*s' is not key=value", (int)toklen, tok);
		size_t klen = (size_t)(eq - tok), vlen = toklen - klen - 1;
		const char *val = eq + 1;
		int k;
		for (k = 0; k < K_COUNT; k++)
			if (strlen(key_names[k]) == klen && !memcmp(key_names[k], tok, klen))
				break;
		if (k == K_COUNT)
			return fail(err, errlen,
				    "unknown key '%.*s' (keys: seed sampler world rank "
				    "drop_last epoch)",
				    (int)klen, tok);
		if (seen[k])
			return fail(err, errlen, "duplicate key '%s'", key_names[k]);
		seen[k] = 1;

		if (k == K_SAMPLER) {
			size_t i;
			for (i = 0; i < sizeof(sampler_names) / sizeof(sampler_names[0]); i++)
				if (strlen(sampler_names[i]) == vlen &&
				    !memcmp(sampler_names[i], val, vlen))
					break;
			if (i == sizeof(sampler_names) / sizeof(sampler_names[0]))
				return fail(err, errlen,
					    "sampler must be distributed, randperm or numpy, "
					    "not '%.*s'",
					    (int)vlen, val);
			s.sampler = (enum order_sampler)i;
			continue;
		}
		uint64_t x;
		if (parse_u64(val, vlen, key_max[k], &x))
			return fail(err, errlen, "%s must be a decimal number from 0 to %" PRIu64
				    ", not '%.*s'",
				    key_names[k], key_max[k], (int)vlen, val);
		switch (k) {
		case K_SEED: s.seed = x; break;
		case K_WORLD: s.world = (uint32_t)x; break;
		case K_RANK: s.rank = (uint32_t)x; break;
		case K_DROP_LAST: s.drop_last = (int)x; break;
		case K_EPOCH: s.epoch = x; break;
		}
	}
	if (!seen[K_SEED])
		return fail(err, errlen, "seed is required");
	if (s.sampler == ORDER_DISTRIBUTED && s.rank >= s.world) {
		if (s.world == 0)
			return fail(err, errlen, "world must be at least 1");
		return fail(err, errlen, "rank %" PRIu32 " must be less than world %" PRIu32,
			    s.rank, s.world);
	}
	const char *why = spec_problem(&s);
	if (why)
		return fail(err, errlen, "%s", why);
	*out = s;
	return 0;
}

int order_spec_format(const struct order_spec *spec, char *buf, size_t len)
{
	int r;
	if (spec_problem(spec))
		return -EINVAL;
	if (spec->sampler == ORDER_DISTRIBUTED)
		r = snprintf(buf, len,
			     "seed=%" PRIu64 " sampler=distributed world=%" PRIu32
			     " rank=%" PRIu32 " drop_last=%d epoch=%" PRIu64,
			     spec->seed, spec->world, spec->rank, spec->drop_last, spec->epoch);
	else
		r = snprintf(buf, len, "seed=%" PRIu64 " sampler=%s epoch=%" PRIu64, spec->seed,
			     sampler_names[spec->sampler], spec->epoch);
	if (r < 0)
		return -EINVAL;
	return (size_t)r >= len ? -ENOSPC : 0;
}
