/* SPDX-License-Identifier: MIT */
/* Shuffle orders: the sample indices a training job will read in one epoch, reproduced
 * bit-exactly from the sampler's seed (torch DistributedSampler, a plain torch.randperm,
 * numpy's default_rng().permutation). Pure C11 over libc; knows nothing of FUSE or the
 * cache. See docs/samplers.md. */
#ifndef EPOCHFS_ORDER_H
#define EPOCHFS_ORDER_H

#include <stddef.h>
#include <stdint.h>

enum order_sampler {
	ORDER_DISTRIBUTED, /* torch.utils.data.DistributedSampler(shuffle=True) */
	ORDER_RANDPERM,    /* torch.randperm(n, generator=Generator().manual_seed(seed+epoch)) */
	ORDER_NUMPY,       /* numpy.random.default_rng(seed+epoch).permutation(n) */
};

struct order_spec {
	enum order_sampler sampler;
	uint64_t seed;
	uint64_t epoch;
	uint32_t world, rank; /* num_replicas, rank: distributed only (else 1, 0) */
	int drop_last;        /* 0 or 1: distributed only (else 0) */
};

/* Largest n the torch samplers accept: torch 2.x switches randperm to another
 * algorithm from n = UINT32_MAX / 20 on, so orders there depend on the torch version. */
#define ORDER_TORCH_MAX_N 214748363u

/* Number of indices order_generate() produces for this spec over n samples (n for
 * randperm and numpy, DistributedSampler's num_samples for distributed).
 * 0, or -EINVAL for a bad spec (unknown sampler, world == 0, rank >= world, drop_last
 * not 0/1, world/rank/drop_last set for a non-distributed sampler), n > UINT32_MAX,
 * n > ORDER_TORCH_MAX_N for a torch sampler, or seed + epoch >= 2^64 for a torch
 * sampler (torch's manual_seed rejects it too). */
int order_len(const struct order_spec *spec, uint64_t n, uint64_t *len);

/* Fill out[0 .. order_len) with the sample indices in read order for epoch spec->epoch
 * over a dataset of n samples. len is the number of entries out has room for. If
 * len >= n the permutation is built inside out and nothing is allocated; otherwise a
 * scratch array of n uint32_t is allocated and freed.
 * 0, -EINVAL as for order_len(), -ENOSPC if len < order_len, -ENOMEM. */
int order_generate(const struct order_spec *spec, uint64_t n, uint32_t *out, uint64_t len);

/* The orders of several ranks of one distributed job at once, merged by
 * position: out[q * nranks + r] is the q-th index rank ranks[r] reads (each
 * rank reads the same number of indices).  spec's rank is ignored; ranks
 * must each be valid for spec.  One permutation is made for all of them.
 * For a non-distributed sampler nranks must be 1.  len: entries out has
 * room for (at least order_len * nranks).  0, -EINVAL, -ENOSPC, -ENOMEM. */
int order_generate_ranks(const struct order_spec *spec, const uint32_t *ranks, unsigned nranks,
			 uint64_t n, uint32_t *out, uint64_t len);

/* Parse "seed=42 sampler=distributed world=8 rank=3 drop_last=0 epoch=0" (keys in any
 * order, separated by blanks; a trailing newline is fine). Keys: seed (required),
 * sampler (distributed|randperm|numpy, default distributed), world (default 1), rank
 * (default 0), drop_last (0|1, default 0), epoch (default 0); numbers are unsigned
 * decimal. *out is written only on success. -EINVAL with a human reason in err
 * (NUL-terminated, truncated to errlen; err may be NULL) for an unknown or duplicate
 * key, a token without '=', a bad or out-of-range number, a missing seed, or a spec
 * order_len() would reject for every n. */
int order_spec_parse(const char *line, struct order_spec *out, char *err, size_t errlen);

/* Write the canonical one-line form of *spec (no newline), which order_spec_parse()
 * reads back to the same spec. 0, -EINVAL for a spec the parser would reject, -ENOSPC
 * if buf (len bytes) is too small (buf then holds a truncated string if len > 0). */
int order_spec_format(const struct order_spec *spec, char *buf, size_t len);

/* ---- The generators, exposed for the unit tests ---- */

/* mt19937 as torch's CPU generator: manual_seed(s) seeds it with the low 32 bits of s. */
struct order_mt19937 {
	uint32_t state[624];
	uint32_t next; /* index of the next word to temper; 624 = regenerate */
};
void order_mt19937_seed(struct order_mt19937 *g, uint64_t seed);
uint32_t order_mt19937_next(struct order_mt19937 *g);

/* numpy's SeedSequence(entropy).generate_state(nout, uint32), pool size 4, no spawn
 * key. entropy holds the seed's 32-bit words, least significant first (numpy turns the
 * int 0 into one word 0). */
void order_seedseq_generate(const uint32_t *entropy, size_t nentropy, uint32_t *out,
			    size_t nout);

/* numpy's PCG64 (128-bit LCG, XSL-RR output) with its 32-bit draw buffering. */
struct order_pcg64 {
	uint64_t state_hi, state_lo, inc_hi, inc_lo;
	int has_uint32;
	uint32_t uinteger;
};
/* As PCG64(SeedSequence(entropy)). */
void order_pcg64_seed(struct order_pcg64 *g, const uint32_t *entropy, size_t nentropy);
uint64_t order_pcg64_next64(struct order_pcg64 *g); /* random_raw() */
uint32_t order_pcg64_next32(struct order_pcg64 *g); /* next_uint32: low half, then high */

#endif
