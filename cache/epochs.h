/* SPDX-License-Identifier: MIT */
/* Per-epoch statistics: one record per epoch the readers went through (the
 * last EPOCH_HISTORY kept), written by the layers that see the events (the
 * read path, the fill, the prefetcher, substitution) under the engine's
 * lock, and shown by the stats file. */
#ifndef EPOCHFS_EPOCHS_H
#define EPOCHFS_EPOCHS_H

#include <stdint.h>

#define EPOCH_HISTORY 16

struct epoch_stats {
	uint64_t epoch, opens, open_hits, backend_bytes_at_start, substitutions;
	/* The node's counters when the epoch began: the epoch's figures are
	 * the differences to the next record's (or to now), so the read path
	 * counts nothing per epoch. */
	uint64_t read_bytes_at_start, hit_bytes_at_start, stall_ns_at_start;
	uint64_t prefetch_used_at_start, prefetch_late_at_start;
	/* Where the backend bytes of an epoch went (issue 4's accounting). */
	uint64_t cached_objects_at_start, cached_bytes_at_start;
	uint64_t fetched_bytes;      /* chunks asked of the backend */
	uint64_t refetched_bytes;    /* ... that had been fetched already this epoch */
	uint64_t prefetched_ahead_bytes; /* ... by prefetches for a later epoch */
	uint64_t evicted_planned;    /* evictions of objects still planned this epoch */
	uint64_t not_stored_prefetch; /* prefetched chunks the cache did not keep */
};

struct epoch_log {
	struct epoch_stats ep[EPOCH_HISTORY];
	unsigned n;                  /* records ever begun */
};

/* The current record, NULL before the first.  Lock held. */
static inline struct epoch_stats *epoch_cur(struct epoch_log *l)
{
	return l->n ? &l->ep[(l->n - 1) % EPOCH_HISTORY] : (struct epoch_stats *)0;
}

/* Begin a record for epoch e (cleared; the caller fills what it knows of
 * the start).  Lock held. */
static inline struct epoch_stats *epoch_begin(struct epoch_log *l, uint64_t e)
{
	struct epoch_stats *s = &l->ep[l->n++ % EPOCH_HISTORY];

	*s = (struct epoch_stats){ .epoch = e };
	return s;
}

#endif
