/* SPDX-License-Identifier: MIT */
/* The fill: fetching chunks from the backend into the store.
 *
 * A chunk is fetched once; concurrent readers wait on the same `struct
 * fetch`.  Fetches complete on the backend's thread, which only queues them;
 * two store workers write the bytes to the object's sparse file, then mark
 * them present and wake the readers of that fetch (each fetch has its own
 * condition variable).  The index record claiming the chunk is written
 * later by the flusher, so the index can lag the data, never lead it.
 * Space is reserved before a chunk is written (a prefetch's when it is
 * issued, the rest when the bytes arrive); if the policy gives no room, the
 * chunk is not stored, and its bytes are kept in memory while its object is
 * open (HELD_PER_OBJ per object, HELD_MAX_BYTES in all).  ENOSPC from the
 * disk switches storing off for 30 s.  All state is guarded by the object
 * table's lock. */
#ifndef EPOCHFS_FILL_H
#define EPOCHFS_FILL_H

#include <pthread.h>
#include <sys/types.h>

#include "epochs.h"
#include "ns.h"
#include "objtab.h"

struct fetch {
	struct fetch *next;       /* on the object (in flight, then held) */
	struct fetch *qnext;      /* on the completion queue */
	struct fill *fl;
	struct obj *o;
	uint32_t chunk;
	int refs;                 /* waiters + the fetch itself until settled */
	int settled;              /* stored (or not) and off the object */
	pthread_cond_t done;      /* signalled when settled */
	int prefetch;
	ssize_t result;
	size_t len;
	void *buf;
	uint64_t ino;
	struct backend_req req;
	char key[KEY_MAX];
};

struct fill {
	struct objtab *ot;
	struct ns *ns;
	struct backend *be;
	struct store *st;
	struct cache_counters *ctr;
	struct epoch_log *ep;
	struct plan *plan;            /* the epoch of a prefetch's use (statistics) */
	const char *dir;              /* the cache dir, for messages */

	struct fetch *cq_head, *cq_tail; /* completed fetches, for the workers */
	pthread_cond_t cq_cond;
	pthread_cond_t fetch_cond;    /* a fetch settled (see wake_all) */
	pthread_t workers[2];
	int nworkers, stopping, conds;
	int wake_all;                 /* signal fetch_cond at every settle, not
				       * only the last (substitution waits) */
	uint64_t fetches_inflight;
	uint64_t held_bytes;          /* chunks kept in memory for open files */
	uint64_t pf_inflight, pf_inflight_bytes; /* prefetch fetches in flight */
	uint64_t pf_objs;             /* objects with prefetches in flight */
	/* Under the lock when a prefetch fetch settled (the prefetcher's wake). */
	void (*on_prefetch_settled)(void *arg);
	void *hook_arg;
	/* From any thread: ino's content changed at the source. */
	void (*inval)(void *arg, uint64_t ino);
	void *inval_arg;
	/* With peers: whether this node owns key (NULL: it owns everything).
	 * Called unlocked, at each fetch; marks the object's policy entry. */
	int (*owns)(void *arg, const char *key);
	void *owns_arg;
};

/* Start the store workers (the fields above set by the caller).  0 or
 * -errno; on failure fill_stop undoes what was done. */
int fill_start(struct fill *fl) __attribute__((warn_unused_result));
/* Wait for every fetch in flight to settle, then stop the workers. */
void fill_stop(struct fill *fl);

/* Unpin o (a pin of objtab_pin): the last unpin releases its held chunks
 * and its store file.  Lock not held. */
void fill_unpin(struct fill *fl, struct obj *o);
/* Drop a reference to a fetch. */
void fetch_put(struct fill *fl, struct fetch *fe);

/* Start fetching every missing chunk of pinned o as a prefetch, its room
 * reserved first (objtab_reserve_prefetch_locked); returns the number of
 * fetches started, -ENOSPC when there is no room it may take.  Lock not
 * held. */
int fill_prefetch_obj(struct fill *fl, struct obj *o, uint64_t ino, const char *key,
		      const struct backend_stat *ident);

/* Chunk k of pinned o from memory for a reader: a chunk fetched while o was
 * open and kept, or the fetch of it in flight (joined), or a new fetch
 * (started); waits for it to settle.  *out is a reference for fetch_put;
 * its bytes are (*out)->buf.  1 when the chunk turned out to be present in
 * the store meanwhile (*out NULL: read it there), 0, or -errno (-ESTALE:
 * the source changed).  Lock not held. */
int fill_get_chunk(struct fill *fl, struct obj *o, uint32_t k, uint64_t ino, const char *key,
		   const struct backend_stat *ident, struct fetch **out);

#endif
