/* SPDX-License-Identifier: MIT */
/* Internals of the plan shared by plan.c (the manifest, the job, saving)
 * and plan_ranks.c (epoch orders, positions, locating opens).  Nothing else
 * includes this. */
#ifndef EPOCHFS_PLAN_INT_H
#define EPOCHFS_PLAN_INT_H

#include "plan.h"

#define STRIDE (1ull << 33)

/* The merged order of one epoch over the followed ranks. */
struct epoch_order {
	uint32_t *ord;   /* slot -> sample, PLAN_HOLE */
	int ord_owned;   /* 0: ord is one rank's explicit list (the rank's) */
	uint64_t slots;  /* longest rank order * number of ranks */
	uint64_t rlen[PLAN_MAX_RANKS]; /* positions of each rank (by index) */
	uint64_t npos;   /* their sum */
	uint32_t *pos;   /* sample -> its first slot, PLAN_NONE */
	uint32_t *again; /* slot -> the sample's next slot, PLAN_NONE; NULL
			  * when no sample is planned twice, or when few are
			  * (then the pairs are in the hash below) */
	uint32_t *again_key, *again_val; /* open addressing, PLAN_NONE = empty */
	uint32_t again_mask;             /* capacity - 1; 0: no hash */
	uint64_t *opened; /* bitmap over the slots */
	/* The whole job's order (plan_set_cluster, distributed seed jobs with
	 * ranks on other nodes): j -> sample for j < jlen (the shuffled
	 * indices; rank r reads j = q * world + r at its position q), and
	 * sample -> its job position q, PLAN_NONE.  NULL otherwise. */
	uint32_t *jperm, *jq;
	uint64_t jlen;
	uint64_t epoch;
	int valid;
};

/* The next slot of the sample in slot s, PLAN_NONE (see plan_ranks.c). */
uint32_t eo_again(const struct epoch_order *eo, uint32_t s);

/* A reader rank the plan follows. */
struct plan_rank {
	uint32_t id;
	uint64_t epoch;     /* the epoch it reads */
	uint64_t frontier;  /* its first position (not slot) not opened */
	uint64_t nopened;   /* positions of that epoch it opened */
	/* explicit plans: its orders, lists[k] for epoch first_epoch + k */
	uint32_t **lists;
	uint64_t *lens;
	size_t nlists;
	uint64_t first_epoch;
	struct plan_rank_stats st;
};

struct plan {
	/* The manifest: sample index -> inode, 32 bits wide when every inode
	 * fits (ino32), else 64 (ino64); the other one is NULL. */
	uint32_t *ino32;
	uint64_t *ino64;
	uint32_t n;
	/* Inode -> sample index.  Dense inode numbers: a direct array,
	 * dmap[ino - dbase] for ino in [dbase, dbase + dlen), PLAN_NONE for
	 * none.  Otherwise (huge or sparse numbers) open addressing over
	 * sample indices (PLAN_NONE empty), the key being the sample's inode. */
	uint32_t *dmap;
	uint64_t dbase;
	size_t dlen;
	uint32_t *hslots;
	size_t hcap;

	enum plan_mode mode;
	struct order_spec spec;       /* seed jobs */
	unsigned nr;
	struct plan_rank rk[PLAN_MAX_RANKS]; /* by rank id */
	struct epoch_order cur, next; /* epochs base and base + 1 */

	int cluster;          /* make the job's orders too (plan_set_cluster) */
	uint64_t gen;         /* bumped at every change but an open's */
	uint64_t mgen;        /* bumped when the manifest is replaced */
	int mset;             /* a manifest was set */
};

/* A job as it is being changed: applied to the plan only when its orders
 * could be made. */
struct plan_job {
	enum plan_mode mode;
	struct order_spec spec;
	unsigned nr;
	struct plan_rank rk[PLAN_MAX_RANKS];
};

/* plan_ranks.c */
void eo_free(struct epoch_order *e);
/* Make job's orders of its slowest rank's epoch and the next, apply the
 * ranks' positions (ranks that finished an epoch move on), then put the
 * job in force; the lists of ranks the job no longer has are freed.
 * -EINVAL (an order does not fit), -ENOENT (no order for that epoch),
 * -ENOMEM: nothing changed. */
int plan_commit(struct plan *p, struct plan_job *job);
/* plan_commit in two steps: make the orders (the only part that can fail:
 * -EINVAL, -ENOENT, -ENOMEM, nothing changed), then put them in force. */
int plan_commit_prepare(struct plan *p, const struct plan_job *job, struct epoch_order *cur,
			struct epoch_order *next);
void plan_commit_install(struct plan *p, const struct plan_job *job, struct epoch_order *cur,
			 struct epoch_order *next);
void plan_free_lists(struct plan_rank *r);

#endif
