/* SPDX-License-Identifier: MIT */
/* The plan: which sample the node's readers will open at every future
 * position.  It holds the manifest (sample index -> inode; ImageFolder's
 * order by default), the job (a sampler spec reproduced bit for bit, or
 * explicit lists), the reader ranks the node follows (one per local GPU,
 * each with its own shard of every epoch, its own epoch and position), the
 * merged orders of the current and the next epoch, and what was opened.
 * Pure bookkeeping on indices: no I/O, no locking (the cache locks it).
 * plan_ranks.c explains positions, use numbers and how opens are located. */
#ifndef EPOCHFS_PLAN_H
#define EPOCHFS_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "order.h"

#define PLAN_NONE UINT32_MAX
#define PLAN_HOLE (UINT32_MAX - 1)  /* a slot with nothing to read (yet) */
#define PLAN_NEVER UINT64_MAX
#define PLAN_MAX_RANKS 64           /* reader ranks one plan follows */

enum plan_mode { PLAN_OFF = 0, PLAN_SEED, PLAN_EXPLICIT };

struct plan;

int plan_create(struct plan **out);
void plan_destroy(struct plan *p);

/* Replace the manifest (takes ownership of inos, n entries: on success the
 * plan may narrow it to 32 bits and shrink it in place, so the caller must
 * not touch it again; on failure it is the caller's, unchanged).  Turns the
 * plan off: orders index into the manifest. */
int plan_set_manifest(struct plan *p, uint64_t *inos, uint32_t n);
uint32_t plan_manifest_len(const struct plan *p);
uint64_t plan_manifest_ino(const struct plan *p, uint32_t i);
/* Sample index of an inode, or PLAN_NONE. */
uint32_t plan_sample_of(const struct plan *p, uint64_t ino);
/* Changes of the plan, for those who act on it: plan_gen moves at every
 * change (a new manifest, job, order or epoch; a rank that moved to its
 * next epoch), plan_manifest_gen when the manifest is replaced. */
uint64_t plan_gen(const struct plan *p);
uint64_t plan_manifest_gen(const struct plan *p);
/* A manifest was set (the default one, possibly empty, included). */
int plan_has_manifest(const struct plan *p);

/* ---- the job ---- */

/* Ranks of a seed job: spec gives the sampler, seed, world and drop_last
 * (its rank is ignored), ranks[0..nranks) the ranks declared (distinct,
 * any order), each at epoch spec->epoch with its first `start` positions
 * already consumed (a resumed job).  When the plan is a seed job of the
 * same sampler, seed, world and drop_last and join is set, the declared
 * ranks are set and the others kept; else the plan becomes this job with
 * these ranks.  All or nothing: -EINVAL (does not fit the manifest, too
 * many ranks, start past the end of an order), -ENOMEM leave the plan as it
 * was. */
int plan_seed_ranks(struct plan *p, const struct order_spec *spec, const uint32_t *ranks,
		    unsigned nranks, uint64_t start, int join);
/* One rank's explicit orders: lists[k] (lens[k] sample indices, PLAN_NONE
 * for none) is what rank reads in epoch first_epoch + k, from position
 * `start` of the first.  Takes ownership of the lists and the two arrays on
 * success.  When the plan is explicit and join is set, the rank's orders
 * are replaced and the other ranks kept; else the plan becomes explicit
 * with this rank alone.  -EINVAL, -ENOMEM (nothing changed). */
int plan_explicit_rank(struct plan *p, uint32_t rank, uint32_t **lists, uint64_t *lens,
		       size_t nlists, uint64_t first_epoch, uint64_t start, int join);
/* Plan by a sampler spec for its one rank at spec->epoch (a new job). */
int plan_set_seed(struct plan *p, const struct order_spec *spec);
/* Plan by explicit lists of one reader (rank 0), one per epoch from
 * first_epoch on (takes ownership of each list and of the arrays). */
int plan_set_explicit(struct plan *p, uint32_t **lists, uint64_t *lens, size_t nlists,
		      uint64_t first_epoch);
/* plan_set_explicit with a new manifest inos[0..n) at once (an order that
 * names files the manifest lacks extends it): all or nothing.  Takes
 * ownership of inos and the lists either way.  0, -EINVAL, -ENOMEM. */
int plan_set_explicit_manifest(struct plan *p, uint64_t *inos, uint32_t n, uint32_t **lists,
			       uint64_t *lens, size_t nlists, uint64_t first_epoch);
void plan_off(struct plan *p);
enum plan_mode plan_mode(const struct plan *p);
/* The job's spec (its rank and epoch: the first rank's). */
int plan_spec(const struct plan *p, struct order_spec *out);

/* ---- the ranks ---- */

struct plan_rank_stats {
	uint64_t opens, prefetch_used, prefetch_late, plain_reads;
};

struct plan_rank_info {
	uint32_t rank;
	uint64_t epoch;      /* the epoch it reads */
	uint64_t position;   /* its first position not opened yet */
	uint64_t len;        /* positions of its order in that epoch (0: not followed) */
	struct plan_rank_stats st;
};

unsigned plan_nranks(const struct plan *p);
/* The k-th rank in rank order.  -ENOENT past the last. */
int plan_rank_get(const struct plan *p, unsigned k, struct plan_rank_info *out);
/* The k-th rank's counters, for the prefetcher to count in; NULL. */
struct plan_rank_stats *plan_rank_stats(struct plan *p, unsigned k);

/* ---- epochs and positions ---- */

/* The node's epoch: the one its slowest rank reads. */
uint64_t plan_epoch(const struct plan *p);
/* Every rank to epoch e at position 0 (its order is made as the mode
 * allows); -ENOENT, -EINVAL, -ENOMEM leave the plan as it was. */
int plan_set_epoch(struct plan *p, uint64_t e);
/* The current epoch's merged order: slot s = position q * nranks + rank
 * index; PLAN_HOLE where a rank has no position q.  Owned by the plan,
 * valid until it changes. */
const uint32_t *plan_order(const struct plan *p, uint64_t *slots);
/* Positions of the ranks in the current epoch: the sum of each one's first
 * position not yet opened, and of the positions opened. */
uint64_t plan_position(const struct plan *p);
uint64_t plan_opened(const struct plan *p);
/* Positions (holes excluded) of the current epoch. */
uint64_t plan_epoch_length(const struct plan *p);
/* The lowest slot of the current epoch a rank there has yet to open. */
uint64_t plan_first_pending_slot(const struct plan *p);

/* A reader opened sample i: located in the rank whose plan holds i nearest
 * ahead of its position (*rank gets its index, -1 for a plain read outside
 * every plan).  Returns 1 when this moved the node to the next epoch, 0
 * otherwise. */
int plan_on_open_rank(struct plan *p, uint32_t i, int *rank);
int plan_on_open(struct plan *p, uint32_t i);

/* Absolute use number of sample i's nearest next use over all ranks
 * (epoch * stride + slot), PLAN_NEVER when it is not planned in the
 * current or next epoch. */
uint64_t plan_next_use(const struct plan *p, uint32_t i);
/* plan_next_use, except that a use in a later epoch is replaced by a stable
 * pseudo-random place in that epoch (for substitution: keep a spread stock). */
uint64_t plan_spread_key(const struct plan *p, uint32_t i);
/* The spread key of sample i's use in the next epoch, as if its uses in the
 * current one were done (a content already served this epoch), PLAN_NEVER. */
uint64_t plan_spread_key_after(const struct plan *p, uint32_t i);
/* Use number u falls in the current epoch. */
int plan_use_current(const struct plan *p, uint64_t u);
/* The sample at use number u (current or next epoch): PLAN_NONE past the
 * planned epochs, PLAN_HOLE for a slot with nothing to read any more (a
 * hole, or a position its rank has opened or passed). */
uint32_t plan_sample_at(const struct plan *p, uint64_t u);
/* u, or the first use of the next epoch when u is past the current one. */
uint64_t plan_normalize(const struct plan *p, uint64_t u);
/* Positions from use number a to b (b after a, across at most the next
 * epoch's boundary): 0 when b <= a, UINT64_MAX past the next epoch. */
uint64_t plan_distance(const struct plan *p, uint64_t a, uint64_t b);
/* Sample i is planned later in the current epoch and not opened yet. */
int plan_pending(const struct plan *p, uint32_t i);
/* Absolute use number of the earliest rank's position. */
uint64_t plan_now(const struct plan *p);
/* The epoch of use number u; UINT64_MAX for PLAN_NEVER. */
uint64_t plan_use_epoch(uint64_t u);

/* ---- the whole job (peers: cluster prefetching, docs/peers.md) ---- */

/* Make, with every epoch order from now on, the whole job's order too, for
 * distributed seed jobs whose world has ranks this node does not follow:
 * 8 bytes a sample per epoch held. */
void plan_set_cluster(struct plan *p, int on);
/* The use number of sample i's next use by any rank of the job, in the
 * node's use numbers (the job's position q maps to the node's slot
 * q * nranks), counting the job as at its slowest followed rank's position;
 * PLAN_NEVER without the job's order. */
uint64_t plan_job_use(const struct plan *p, uint32_t i);
/* A walk over the job's order: jc = epoch * 2^33 + j.  plan_job_now is
 * where the job is (PLAN_NEVER without the job's order); plan_job_sample_at
 * moves *jc past an epoch's end, then gives the sample at *jc and its use
 * number in *u, or PLAN_NONE past the epochs held. */
uint64_t plan_job_now(const struct plan *p);
uint32_t plan_job_sample_at(const struct plan *p, uint64_t *jc, uint64_t *u);

/* ---- saving and restoring (the index keeps the plan across remounts) ---- */

/* The plan without its manifest as bytes (malloc'd; the caller frees):
 * the job, the explicit lists and every rank's epoch and position. */
int plan_export(const struct plan *p, void **out, size_t *len);
/* Only the ranks' epochs and positions (small; saved often). */
int plan_export_positions(const struct plan *p, void **out, size_t *len);
/* Restore from plan_export's bytes (and positions, may be NULL) onto the
 * plan's manifest.  -EINVAL for bytes that do not fit it (nothing changed). */
int plan_import(struct plan *p, const void *buf, size_t len, const void *pos, size_t poslen);

#endif
