/* SPDX-License-Identifier: MIT */
/* The object table: every object the daemon tracks in memory, the engine's
 * one lock, the eviction policy and the space accounting.
 *
 * Every object the daemon has touched, or that has bytes on the SSD, has a
 * `struct obj` in one hash table keyed by content id (a hash of the source
 * URL, the key and the source identity: size+mtime or ETag), so a changed
 * source file is simply a different object.  An object is pinned (refs > 0)
 * while a file handle or a fetch uses it; pinned objects are out of the
 * policy and are never evicted.  `ot->lock` guards the table, the policy,
 * the accounting and every object's chunk bits, and the state of the layers
 * above that say "lock held" (fill, plan, prefetcher, substitution).  No
 * backend or store I/O is done under it, except the unlink of an evicted
 * object (so that no open can race with it).
 *
 * Accounting: used = data blocks of object files + a per-file overhead +
 * the index and directory files + an allowance for index growth since it
 * was last measured + headroom.  A chunk is stored only after space is
 * reserved; the reservation asks the policy for victims. */
#ifndef EPOCHFS_OBJTAB_H
#define EPOCHFS_OBJTAB_H

#include <pthread.h>
#include <stdint.h>

#include "cache.h"
#include "index.h"
#include "plan.h"
#include "policy.h"
#include "store.h"
#include "backends/base/util.h"

/* obj->flags (16 bits) */
#define OBJ_DIRTY 1u
#define OBJ_PREFETCHED 2u   /* arrived by prefetch, not opened since */
#define OBJ_PREFETCHING 4u  /* prefetch fetches in flight */
#define OBJ_LATE 8u         /* opened while its prefetch was in flight */
#define OBJ_IDLEFD 16u      /* unpinned, store file kept open for its first read */
#define OBJ_C_PRESENT 32u   /* one-chunk objects: the chunk's bits */
#define OBJ_C_VERIFIED 64u
#define OBJ_C_FETCHED 128u
#define META_PER_RECORD 256ull
/* Room kept for index growth between two measurements: 1% of the bound,
 * at least 64 KiB, at most 64 MiB. */
#define META_HEADROOM(cap) MIN(MAX((cap) / 100, 64ull << 10), 64ull << 20)
#define KEY_MAX 4096
/* Store files of prefetched objects kept open from the write to their first
 * read (which would otherwise open them again). */
#define IDLE_FDS_MAX 256

struct fetch;

/* What only an object in use needs: it exists while the object is pinned
 * (refs > 0) or keeps its store file open (OBJ_IDLEFD), else it is NULL. */
struct obj_act {
	int fd;                   /* store file, open while pinned */
	uint32_t inflight;        /* fetches in flight */
	uint64_t resv;            /* bytes reserved for its prefetches in flight */
	struct fetch *held;       /* fetched chunks not stored, kept while pinned */
	struct fetch *fetches;
};

/* One per object the cache tracks in memory, which is every cached object:
 * 104 bytes, from slabs (no allocator header), since a cache of millions of
 * objects keeps them all.  Chunk state: an object of one chunk keeps its
 * checksum in u.sum and its bits in flags (OBJ_C_*); a larger one points
 * u.sums at nchunks checksums followed by three bitmaps (present, verified,
 * fetched).  Objects that hold nothing and are not in use live only in the
 * index; the flusher frees them. */
struct obj {
	struct pol_entry pe;      /* pe.last: last access, wall-clock ns */
	struct obj *hnext;        /* hash chain; the slab's free list */
	uint8_t cid[CID_LEN];
	uint64_t size;
	uint64_t alloc;           /* bytes accounted to this object */
	uint32_t npresent;
	uint32_t refs;            /* open handles + fetches in flight */
	uint32_t sample;          /* manifest index, PLAN_NONE */
	uint16_t flags;
	uint8_t chunk_shift;      /* chunk size: 1 << chunk_shift */
	uint8_t fseq;             /* the fetched bits are of epoch record
				   * fseq - 1, modulo 256 (statistics only) */
	union {
		uint64_t sum;     /* one chunk */
		uint64_t *sums;   /* more */
	} u;
	struct obj_act *act;
};

static inline uint64_t obj_chunk_size(const struct obj *o)
{
	return 1ull << o->chunk_shift;
}

static inline uint32_t obj_nchunks(const struct obj *o)
{
	return (uint32_t)((o->size + obj_chunk_size(o) - 1) >> o->chunk_shift);
}

static inline uint32_t obj_inflight(const struct obj *o)
{
	return o->act ? o->act->inflight : 0;
}

static inline int obj_full(const struct obj *o)
{
	return o && obj_nchunks(o) == o->npresent;
}

/* Bytes of chunk k of o. */
static inline size_t obj_chunk_len(const struct obj *o, uint32_t k)
{
	uint64_t off = (uint64_t)k * obj_chunk_size(o);

	return (size_t)MIN((uint64_t)obj_chunk_size(o), o->size - off);
}

static inline uint64_t round_block(uint64_t n)
{
	return (n + STORE_BLOCK - 1) / STORE_BLOCK * STORE_BLOCK;
}

/* The flusher finds dirty objects in the table.  Lock held. */
static inline void obj_mark_dirty(struct obj *o)
{
	o->flags |= OBJ_DIRTY;
}

/* Chunk bits of an object (struct obj says where they live).  Lock held. */
enum { OBJ_PRESENT, OBJ_VERIFIED, OBJ_FETCHED };
int obj_bit(const struct obj *o, int which, uint32_t k);
void obj_bit_set(struct obj *o, int which, uint32_t k, int v);
void obj_bits_clear(struct obj *o, int which);
uint64_t *obj_sum(struct obj *o, uint32_t k);
/* File bytes of o's present chunks. */
uint64_t obj_present_bytes(const struct obj *o);
/* A chunk size objects can have: a power of two, 4 KiB to 1 GiB. */
int obj_chunk_size_ok(uint64_t cs);

struct objtab {
	pthread_mutex_t lock;     /* the engine's one lock (see above) */
	struct obj **table;
	size_t nbuckets, nobjs;
	struct obj *obj_free;     /* slab free list */
	void **slabs;
	size_t nslabs;
	struct policy *pol;
	struct index *ix;         /* object records, read by objtab_pin */
	struct store *st;         /* an evicted object's file is unlinked */
	struct cache_counters *ctr;
	uint32_t chunk_size;      /* of new objects */

	uint64_t capacity;
	uint64_t data_bytes;      /* sum of obj->alloc */
	uint64_t reserved;
	uint64_t meta_bytes;      /* index + directories, as last measured */
	uint64_t meta_pending;    /* growth allowance since then */
	uint64_t cached_objs;
	uint64_t cached_bytes;    /* file bytes of the present chunks */
	unsigned idle_fds;        /* store files kept open by OBJ_IDLEFD objects */
	int degraded;             /* ENOSPC seen: store nothing for a while */
	uint64_t degraded_until;

	/* Called under the lock before o's chunks are dropped by an eviction
	 * (the plan's statistics). */
	void (*on_evict)(void *arg, struct obj *o);
	void *on_evict_arg;
};

/* Set up an empty table (ix, st, pol, ctr are the caller's, kept).
 * 0 or -ENOMEM. */
int objtab_init(struct objtab *ot, struct index *ix, struct store *st, struct policy *pol,
		struct cache_counters *ctr, uint32_t chunk_size) __attribute__((warn_unused_result));
/* Free every object (closing store files still open) and the table. */
void objtab_destroy(struct objtab *ot);

/* The object of cid, NULL.  Lock held. */
struct obj *objtab_get_locked(struct objtab *ot, const uint8_t *cid);
/* A new object (not in the table yet), NULL on ENOMEM or a bad chunk
 * size.  Lock held. */
struct obj *objtab_new_locked(struct objtab *ot, const uint8_t *cid, uint64_t size,
			      uint32_t chunk_size);
void objtab_put_locked(struct objtab *ot, struct obj *o);
/* Give o back to its slab (it is in no table, policy or fetch). */
void objtab_release_locked(struct objtab *ot, struct obj *o);
/* Free, from the table, every object that holds nothing and is unused,
 * calling forget(arg, o) first.  Takes the lock a slice at a time. */
void objtab_sweep(struct objtab *ot, void (*forget)(void *arg, struct obj *o), void *arg);

/* The in-memory object for cid (size: the source's), loaded from its index
 * record or made fresh, pinned.  Lock not held.  0 or -ENOMEM. */
int objtab_pin(struct objtab *ot, const uint8_t *cid, uint64_t size, struct obj **out);
/* o's last pin went (lock held, its held chunks already taken off): back in
 * the policy if it holds anything, its in-use part dropped; *fd is a store
 * file for the caller to close unlocked, or -1. */
void objtab_unpinned_locked(struct objtab *ot, struct obj *o, int *fd);
/* Drop the in-use part of o when nothing uses it any more.  Lock held. */
void obj_deactivate_locked(struct obj *o);

/* Bytes counted against the capacity.  Lock held. */
uint64_t objtab_used_locked(const struct objtab *ot);
/* The cache disk was full a moment ago: admit nothing until the pause
 * ends.  Lock held. */
int objtab_degraded_locked(struct objtab *ot);
/* Drop every stored chunk of o (unpinned, in no fetch): its file goes, its
 * bytes leave the accounting.  Lock held. */
void objtab_evict_locked(struct objtab *ot, struct obj *o);
/* Reserve bytes for a chunk of o, evicting what the policy allows.
 * 0, or -ENOSPC when o is not admitted.  Lock held. */
int objtab_reserve_locked(struct objtab *ot, struct obj *o, uint64_t bytes);
/* Reserve bytes for a prefetch of o, evicting only objects whose next use
 * is in a later epoch than o's.  0 or -ENOSPC.  Lock held. */
int objtab_reserve_prefetch_locked(struct objtab *ot, struct obj *o, uint64_t bytes);
/* Evict the policy's worst until used fits the capacity (the index grew);
 * returns the number evicted.  Lock held. */
uint64_t objtab_shrink_locked(struct objtab *ot);

#endif
