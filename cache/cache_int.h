/* SPDX-License-Identifier: MIT */
/* Internals of the cache engine shared by cache.c (objects, fetches, store),
 * prefetch.c (the plan-driven prefetcher) and control.c (control files).
 * Nothing outside cache/ includes this. */
#ifndef EPOCHFS_CACHE_INT_H
#define EPOCHFS_CACHE_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "cache.h"
#include "plan.h"

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

struct fetch {
	struct fetch *next;       /* on the object (in flight, then held) */
	struct fetch *qnext;      /* on the completion queue */
	struct cache *c;
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

struct cache_file {
	struct cache *c;
	struct obj *o;
	uint64_t ino;
	struct backend_stat ident;
	char key[KEY_MAX];
	int stale;
	int substituted;          /* serving another sample's bytes */
	uint64_t open_ino;        /* the inode opened (ino is the content's) */
};

#define EPOCH_HISTORY 16
struct epoch_stats {
	uint64_t epoch, opens, open_hits, backend_bytes_at_start, substitutions;
	/* Where the backend bytes of an epoch went (issue 4's accounting). */
	uint64_t cached_objects_at_start, cached_bytes_at_start;
	uint64_t fetched_bytes;      /* chunks asked of the backend */
	uint64_t refetched_bytes;    /* ... that had been fetched already this epoch */
	uint64_t prefetched_ahead_bytes; /* ... by prefetches for a later epoch */
	uint64_t evicted_planned;    /* evictions of objects still planned this epoch */
	uint64_t not_stored_prefetch; /* prefetched chunks the cache did not keep */
};

struct cache {
	struct cache_config cfg;
	char *dir;
	int lockfd;
	struct backend *be;
	struct index *ix;
	struct store *st;
	struct ns_source ns;
	struct cache_counters ctr;

	pthread_mutex_t lock;
	struct obj **table;
	size_t nbuckets, nobjs;
	struct obj *obj_free;        /* slab free list */
	void **slabs;
	size_t nslabs;
	struct policy *pol;
	uint64_t capacity;
	uint64_t data_bytes;     /* sum of obj->alloc */
	uint64_t reserved;
	uint64_t meta_bytes;     /* index + directories, as last measured */
	uint64_t meta_pending;   /* growth allowance since then */
	uint64_t cached_objs;
	uint64_t cached_bytes;   /* file bytes of the present chunks */
	uint64_t held_bytes;     /* fetched chunks kept in memory for open files */
	unsigned idle_fds;       /* store files kept open by OBJ_IDLEFD objects */
	int degraded;            /* ENOSPC seen: store nothing for a while */
	uint64_t degraded_until;

	pthread_t flusher;
	pthread_cond_t flush_cond;
	pthread_cond_t fetch_cond;   /* a fetch settled */
	int stopping;
	uint64_t started_ns;

	void (*inval)(void *arg, uint64_t ino);
	void *inval_arg;

	/* completed fetches, stored by the store workers */
	struct fetch *cq_head, *cq_tail;
	pthread_cond_t cq_cond;
	pthread_t workers[2];
	int nworkers;

	/* the plan and the prefetcher (prefetch.c) */
	struct plan *plan;
	int manifest_ready;
	uint64_t plan_gen;           /* bumped when the plan changes */
	uint64_t rekeyed_gen;        /* plan_gen the policy keys reflect */
	pthread_t prefetcher;
	int prefetch_started, pf_stop;
	uint64_t manifest_gen, resolved_gen;
	pthread_cond_t pf_cond;
	uint64_t pf_inflight_bytes, pf_inflight;
	uint64_t pf_objs;            /* objects with prefetches in flight */
	uint64_t fetches_inflight;
	uint64_t pf_max_bytes;
	unsigned pf_max;
	uint64_t pf_cursor;          /* next use number the prefetcher looks at */
	atomic_uint_fast64_t prefetch_issued, prefetch_used, prefetch_late, prefetch_wasted;
	struct epoch_stats ep[EPOCH_HISTORY];
	unsigned nep;

	/* substitution (subst.c) */
	uint32_t *redirect;          /* slot (sample) -> content due there, if not its own */
	uint32_t *lender;            /* content -> slot it is due at, if not its own
				      * (shares redirect's allocation) */
	uint8_t *served;             /* content served (or being served) this epoch */
	struct obj **sample_obj;     /* sample -> in-memory object */
	uint32_t subst_n;
	uint64_t debt;               /* contents due at another slot than their own */
	atomic_uint_fast64_t substitutions;
#define SUBST_OPEN_MAX 256
	struct {
		uint64_t ino, size;
		int n;
	} subst_open[SUBST_OPEN_MAX];
};

/* cache.c */
struct obj *cache_table_get(struct cache *c, const uint8_t *cid);
/* The attributes, key and content id of a file's current version (from the
 * snapshot, never the size a substituted handle shows).  -EISDIR, -ENOENT. */
int cache_identity(struct cache *c, uint64_t ino, struct ns_attr *a, char *key, size_t keylen,
		   uint8_t cid[CID_LEN]);
int cache_obj_pin(struct cache *c, const uint8_t *cid, uint64_t size, struct obj **out);
void cache_obj_unpin(struct cache *c, struct obj *o);
void cache_evict_obj_locked(struct cache *c, struct obj *o);
/* The flusher finds dirty objects in the table.  Lock held. */
static inline void cache_mark_dirty(struct obj *o)
{
	o->flags |= OBJ_DIRTY;
}
uint64_t cache_used_locked(const struct cache *c);
/* Start fetching every missing chunk of pinned o as a prefetch, its room
 * reserved first (see reserve_prefetch_locked); returns the number of
 * fetches started, -ENOSPC when there is no room it may take. */
int cache_prefetch_obj(struct cache *c, struct obj *o, uint64_t ino, const char *key,
		       const struct backend_stat *ident);

/* subst.c */
void subst_target(struct cache *c, uint64_t ino, const struct ns_attr *xa, struct obj *xo,
		  uint64_t *target);
void subst_set_sample_locked(struct cache *c, struct obj *o, uint32_t i);
/* The eviction key of sample i's content with substitution on (lock held). */
uint64_t subst_key_locked(const struct cache *c, uint32_t i);
/* With substitution on, make room for a prefetch (pe: its key, need: its
 * bytes) by evicting only contents already served this epoch; 1 when there
 * is room, 0 when the prefetch should wait (lock held). */
int subst_make_room_locked(struct cache *c, const struct pol_entry *pe, uint64_t need);
void subst_forget_obj_locked(struct cache *c, struct obj *o);
void subst_reset_locked(struct cache *c);
uint32_t subst_redirect_locked(const struct cache *c, uint32_t i);
void subst_handle_open(struct cache *c, uint64_t ino, uint64_t size);
void subst_handle_close(struct cache *c, uint64_t ino);
int subst_served_size(struct cache *c, uint64_t ino, uint64_t *size);

/* prefetch.c */
int prefetch_start(struct cache *c);
void prefetch_stop(struct cache *c);
/* An open of ino (lock held): follow the readers, count prefetch use. */
void prefetch_on_open_locked(struct cache *c, struct obj *o, uint64_t ino, uint64_t content_ino);
/* Re-key every cached object by the plan and pick the policy (lock held). */
void prefetch_rekey_locked(struct cache *c);
/* Build the default manifest if none is set.  Lock not held. */
int prefetch_ensure_manifest(struct cache *c);
/* ImageFolder's sample order over the namespace (malloc'd inos). */
int prefetch_default_manifest(struct cache *c, uint64_t **inos, uint32_t *n);
/* Start a per-epoch stats record (lock held). */
void prefetch_epoch_begin_locked(struct cache *c);
/* The current per-epoch stats record, NULL before the first (lock held). */
struct epoch_stats *cache_epoch_locked(struct cache *c);

#endif
