/* SPDX-License-Identifier: MIT */
/* The cache engine: namespace snapshot, object table, SSD store, policy and
 * fetch path behind one handle.  fs/ calls it; it never sees FUSE.  Every
 * function returns 0 (or a count) or a negative errno. */
#ifndef EPOCHFS_CACHE_H
#define EPOCHFS_CACHE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "../backends/backend.h"
#include "index.h"
#include "policy.h"

#define CACHE_DEFAULT_CHUNK (4u << 20)
#define CACHE_MAX_SEGS 8
#define CACHE_MIN_CHUNK (256u << 10) /* with reads of at most 1 MiB, <= 5 chunks a read */
#define CACHE_MAX_READ (1u << 20)

enum { SUBST_OFF = 0, SUBST_DIR, SUBST_ALL };

struct cache_config {
	const char *cache_dir;
	uint64_t capacity;        /* bytes; 0 = use capacity_pct */
	double capacity_pct;      /* percent of the cache filesystem */
	uint32_t chunk_size;      /* power of two, >= 64 KiB */
	enum policy_kind policy;
	int64_t list_ttl_s;       /* relist when the snapshot is older; <0 never */
	int refresh;              /* relist now */
	unsigned flush_ms;        /* dirty record flush period (default 1000) */
	unsigned prefetch_concurrency; /* fetches in flight (default: backend's) */
	uint64_t prefetch_bytes;  /* bytes in flight (default 256 MiB) */
	int stage_ahead;          /* files ahead staged into RAM (-1: default) */
	int substitute;           /* SUBST_OFF, SUBST_DIR, SUBST_ALL */
	unsigned substitute_deadline_ms; /* wait this long for a prefetch first */
	int no_open;              /* reported only: opens are counted at first reads */
	int forget_plan;          /* discard the plan saved in the index */
	/* Peers (docs/peers.md): whether this node owns the object of key;
	 * objects it does not are evicted first (cache/policy.h).  NULL: it
	 * owns everything.  Called from the cache's threads, unlocked. */
	int (*owns)(void *arg, const char *key);
	void *owns_arg;
};

void cache_config_init(struct cache_config *cfg);

/* Counters, exact, updated with relaxed atomics on the data path. */
struct cache_counters {
	atomic_uint_fast64_t opens, open_hits, reads, read_bytes, read_bytes_from_cache;
	atomic_uint_fast64_t stall_ns, evictions, fetches, fetch_bytes;
	atomic_uint_fast64_t evictions_for_index; /* to keep the bound as the index grew */
	atomic_uint_fast64_t verify_failures, stale, store_errors, not_admitted;
	atomic_uint_fast64_t passthrough_opens;
};

struct cache;
struct cache_file;

/* Open (creating) the cache under cfg->cache_dir for the dataset behind be:
 * lock the directory (a second daemon is refused with -EBUSY), open the
 * index, reuse or build the namespace snapshot, load the object records.
 * err gets a one-line reason on failure. */
int cache_open(const struct cache_config *cfg, struct backend *be,
	       struct cache **out, char *err, size_t errlen)
	__attribute__((warn_unused_result));
void cache_close(struct cache *c);
/* Note in the cache dir's lock file what this daemon is doing, so that a
 * daemon started on the same cache dir right after an unmount waits for this
 * one to close instead of failing: cache_note_mounted once the FUSE mount is
 * up (an absolute path, resolved before mounting); cache_close notes
 * "closing" itself. */
void cache_note_mounted(struct cache *c, const char *mountpoint);
void cache_note_owner(struct cache *c, const char *state);
/* The mount table those notes are checked against (/proc/self/mountinfo;
 * tests point it at a file of their own). */
extern const char *cache_mountinfo;

/* Called (from any thread) when a file's content changed at the source, so
 * the front end can drop the kernel's cached pages and attributes. */
void cache_set_inval_hook(struct cache *c, void (*fn)(void *arg, uint64_t ino), void *arg);

int cache_lookup(struct cache *c, uint64_t parent, const char *name, struct ns_attr *out);
int cache_getattr(struct cache *c, uint64_t ino, struct ns_attr *out);
int cache_readdir(struct cache *c, uint64_t ino, index_dir_fn fn, void *arg);
int cache_resolve(struct cache *c, const char *path, struct ns_attr *out);
uint64_t cache_nfiles(const struct cache *c);

/* Open a regular file for reading.  -EISDIR, -ENOENT, -ENOMEM. */
int cache_file_open(struct cache *c, uint64_t ino, struct cache_file **out);
/* The same, for a read that is not an access of its own (the kernel's no-open
 * mode opens nothing: each READ makes a handle, and only the read at offset 0
 * counts as the open, for stats, access counts and the prefetcher). */
int cache_file_open_ex(struct cache *c, uint64_t ino, int access, struct cache_file **out);
/* The same, telling which process opens (0: unknown): the per-rank figures
 * put a process's opens outside every plan down to the rank it reads for. */
int cache_file_open_pid(struct cache *c, uint64_t ino, int access, uint32_t pid,
			struct cache_file **out);
/* ino's own bytes, never another file's (substitution or not), and no
 * access counted, but a prefetch of it counted used: for serving peers
 * (fs/peerd.c), which the owner's cluster prefetch is for. */
int cache_file_open_exact(struct cache *c, uint64_t ino, struct cache_file **out);
void cache_file_close(struct cache_file *f);
uint64_t cache_file_size(const struct cache_file *f);
/* The handle serves another file's bytes (substitution): no page cache. */
int cache_file_substituted(const struct cache_file *f);
/* Whether the kernel may read f's bytes from its store file itself (FUSE
 * passthrough, fs/passthrough.h): f serves its own inode's bytes, and at
 * its open every chunk was stored and had passed its check in this
 * daemon's life (the object stays pinned, so stored, while f is open). */
int cache_file_passable(const struct cache_file *f);
/* A new read-only descriptor of the store file of f's object (the caller
 * closes it), or -errno. */
int cache_file_store_fd(struct cache_file *f);
/* f's open is served by the kernel from the store (stats:
 * passthrough_opens).  Its reads will not be seen: the file's size is
 * counted as read from the cache now (read_bytes, read_bytes_from_cache),
 * as a training reader reads a file whole. */
void cache_note_passthrough(struct cache_file *f);
/* The content id of the version f serves (CACHE_CID_LEN bytes): two
 * handles serve the same bytes when their ids are equal. */
#define CACHE_CID_LEN 16
const uint8_t *cache_file_version(const struct cache_file *f);
int cache_substitute_mode(const struct cache *c);
/* What the stats report as the open mode (the kernel may refuse no-open). */
void cache_set_no_open(struct cache *c, int no_open);

/* One piece of a read reply: bytes of a cache file (fd >= 0), or memory. */
struct cache_seg {
	int fd;
	uint64_t off;
	size_t len;
	const void *buf;
};

/* A read's reply, valid until cache_read_release(). */
struct cache_read {
	struct cache_seg seg[CACHE_MAX_SEGS];
	int nseg;
	void *hold[CACHE_MAX_SEGS];   /* references released afterwards */
	int nhold;
	struct cache *c;
};

/* Read up to len bytes at off: returns the byte count (short only at end of
 * file) and fills rd, or a negative errno (-EIO when the backend failed for
 * good, -ESTALE->-EIO when the source changed under an open file). */
ssize_t cache_file_read(struct cache_file *f, uint64_t off, size_t len, struct cache_read *rd);
void cache_read_release(struct cache_read *rd);

/* How many bytes of ino are cached, and its size. */
int cache_cached_bytes(struct cache *c, uint64_t ino, uint64_t *cached, uint64_t *size);

/* The stats object as JSON (malloc'd, NUL-terminated; caller frees). */
int cache_stats_json(struct cache *c, char **out, size_t *len);

const struct cache_counters *cache_counters(const struct cache *c);
uint64_t cache_used_bytes(struct cache *c);
uint64_t cache_capacity(const struct cache *c);

#endif
