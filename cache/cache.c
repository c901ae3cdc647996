/* SPDX-License-Identifier: MIT */
/* The cache engine.
 *
 * Objects.  Every object the daemon has touched, or that has bytes on the
 * SSD, has a `struct obj` in one hash table keyed by content id (a hash of
 * the source URL, the key and the source identity: size+mtime or ETag), so a
 * changed source file is simply a different object.  An object is pinned
 * (refs > 0) while a file handle or a fetch uses it; pinned objects are out
 * of the policy and are never evicted.  `c->lock` guards the table, the
 * policy, the accounting and every object's chunk bits; no I/O to the
 * backend or the store is done under it, except the unlink of an evicted
 * object (so that no open can race with it).
 *
 * Chunks.  An object is cut in chunk_size pieces.  A chunk is fetched once
 * (concurrent readers wait on one `struct fetch`), written to the object's
 * sparse file, and only then marked present; the index record that claims it
 * is written later by the flusher.  So the index can lag the data, never lead
 * it.  Each chunk's xxh3 is kept; the first time a chunk is served in a
 * daemon's life it is read back and checked, and a mismatch drops it.
 *
 * Accounting.  used = data blocks of object files + a per-file overhead +
 * the index and directory files + an allowance for index growth since it
 * was last measured.  A chunk is stored only after space is reserved; the
 * reservation asks the policy for victims, and if the policy will not give
 * any, the chunk is served from memory and not stored. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "cache.h"
#include "log.h"
#include "store.h"
#include "util.h"

#define OBJ_DIRTY 1u
#define META_PER_RECORD 256ull
#define META_HEADROOM (64ull << 10)
#define KEY_MAX 4096

struct fetch;

struct obj {
	struct pol_entry pe;
	struct obj *hnext;
	struct obj *dnext;        /* dirty list */
	uint8_t cid[CID_LEN];
	uint64_t size;
	uint32_t chunk_size;
	uint32_t nchunks;
	uint32_t npresent;
	uint32_t refs;
	uint32_t flags;
	int fd;                   /* store file, open while pinned */
	uint64_t alloc;           /* bytes accounted to this object */
	int64_t last_access_ns;
	uint64_t next_use;
	struct fetch *fetches;
	uint8_t *present;         /* chunk bits */
	uint8_t *verified;        /* checked since this daemon started */
	uint64_t *sums;
};

struct fetch {
	struct fetch *next;
	struct cache *c;
	struct obj *o;
	uint32_t chunk;
	int refs;                 /* waiters + the backend */
	int done;
	ssize_t result;
	int stored;
	size_t len;
	void *buf;
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
	struct policy *pol;
	struct obj *dirty;
	uint64_t capacity;
	uint64_t data_bytes;     /* sum of obj->alloc */
	uint64_t reserved;
	uint64_t meta_bytes;     /* index + directories, as last measured */
	uint64_t meta_pending;   /* growth allowance since then */
	uint64_t cached_objs;
	int degraded;            /* ENOSPC seen: store nothing for a while */
	uint64_t degraded_until;

	pthread_t flusher;
	pthread_cond_t flush_cond;
	pthread_cond_t fetch_cond;   /* fetch progress */
	int stopping;
	uint64_t started_ns;

	void (*inval)(void *arg, uint64_t ino);
	void *inval_arg;
};

void cache_config_init(struct cache_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->cache_dir = "/var/cache/epochfs";
	cfg->capacity_pct = 50;
	cfg->chunk_size = CACHE_DEFAULT_CHUNK;
	cfg->policy = POLICY_SHADE;
	cfg->list_ttl_s = -1;
	cfg->flush_ms = 1000;
}

static uint64_t round_block(uint64_t n)
{
	return (n + STORE_BLOCK - 1) / STORE_BLOCK * STORE_BLOCK;
}

static size_t hash_cid(const struct cache *c, const uint8_t *cid)
{
	uint64_t h;

	memcpy(&h, cid, sizeof(h));
	return (size_t)(h & (c->nbuckets - 1));
}

static struct obj *table_get(struct cache *c, const uint8_t *cid)
{
	struct obj *o;

	for (o = c->table[hash_cid(c, cid)]; o; o = o->hnext)
		if (!memcmp(o->cid, cid, CID_LEN))
			return o;
	return NULL;
}

static int table_grow(struct cache *c)
{
	size_t n = c->nbuckets * 2, i;
	struct obj **t = ec_calloc(n, sizeof(*t)), **old = c->table, *o, *next;
	size_t oldn = c->nbuckets;

	if (!t)
		return -ENOMEM;
	c->table = t;
	c->nbuckets = n;
	for (i = 0; i < oldn; i++)
		for (o = old[i]; o; o = next) {
			next = o->hnext;
			o->hnext = t[hash_cid(c, o->cid)];
			t[hash_cid(c, o->cid)] = o;
		}
	free(old);
	return 0;
}

static void table_put(struct cache *c, struct obj *o)
{
	size_t b;

	if (c->nobjs >= c->nbuckets)
		table_grow(c); /* on failure the chains just get longer */
	b = hash_cid(c, o->cid);
	o->hnext = c->table[b];
	c->table[b] = o;
	c->nobjs++;
}

static struct obj *obj_new(const uint8_t *cid, uint64_t size, uint32_t chunk_size)
{
	uint64_t n = size ? (size + chunk_size - 1) / chunk_size : 0;
	size_t bb = ((size_t)n + 7) / 8;
	struct obj *o;

	if (n > UINT32_MAX)
		return NULL;
	o = ec_calloc(1, sizeof(*o) + 2 * bb + (size_t)n * 8 + 8);
	if (!o)
		return NULL;
	memcpy(o->cid, cid, CID_LEN);
	o->size = size;
	o->chunk_size = chunk_size;
	o->nchunks = (uint32_t)n;
	o->fd = -1;
	o->sums = (uint64_t *)(o + 1);
	o->present = (uint8_t *)(o->sums + n);
	o->verified = o->present + bb;
	return o;
}

static int bit(const uint8_t *b, uint32_t i)
{
	return (b[i >> 3] >> (i & 7)) & 1;
}

static void bit_set(uint8_t *b, uint32_t i, int v)
{
	if (v)
		b[i >> 3] |= (uint8_t)(1u << (i & 7));
	else
		b[i >> 3] &= (uint8_t)~(1u << (i & 7));
}

static size_t chunk_len(const struct obj *o, uint32_t c)
{
	uint64_t off = (uint64_t)c * o->chunk_size;

	return (size_t)MIN((uint64_t)o->chunk_size, o->size - off);
}

static void mark_dirty(struct cache *c, struct obj *o)
{
	if (o->flags & OBJ_DIRTY)
		return;
	o->flags |= OBJ_DIRTY;
	o->dnext = c->dirty;
	c->dirty = o;
}

static uint64_t used_locked(const struct cache *c)
{
	return c->data_bytes + c->reserved + c->meta_bytes + c->meta_pending + META_HEADROOM;
}

/* Drop every stored chunk of o (which is unpinned and in no fetch):
 * remove its file and its bytes from the accounting.  Lock held. */
static void evict_locked(struct cache *c, struct obj *o)
{
	policy_remove(c->pol, &o->pe);
	store_obj_unlink(c->st, o->cid);
	c->data_bytes -= o->alloc;
	o->alloc = 0;
	memset(o->present, 0, ((size_t)o->nchunks + 7) / 8);
	memset(o->verified, 0, ((size_t)o->nchunks + 7) / 8);
	if (o->npresent)
		c->cached_objs--;
	o->npresent = 0;
	if (!(o->flags & OBJ_DIRTY))
		c->meta_pending += META_PER_RECORD;
	mark_dirty(c, o);
	atomic_fetch_add_explicit(&c->ctr.evictions, 1, memory_order_relaxed);
}

/* Reserve bytes for a chunk of o, evicting what the policy allows.
 * 0 when reserved; -ENOSPC when o is not admitted.  Lock held. */
static int reserve_locked(struct cache *c, struct obj *o, uint64_t bytes)
{
	struct pol_entry *v;

	if (c->degraded) {
		if (now_ns() < c->degraded_until)
			return -ENOSPC;
		c->degraded = 0;
	}
	while (used_locked(c) + bytes > c->capacity) {
		v = policy_victim(c->pol, &o->pe);
		if (!v)
			return -ENOSPC;
		evict_locked(c, (struct obj *)v);
	}
	c->reserved += bytes;
	return 0;
}

/* ---- opening ---- */

static int lock_dir(struct cache *c, char *err, size_t errlen)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/lock", c->dir);
	c->lockfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (c->lockfd < 0) {
		snprintf(err, errlen, "cache dir %s: %s", c->dir, strerror(errno));
		return -errno;
	}
	if (flock(c->lockfd, LOCK_EX | LOCK_NB) < 0) {
		snprintf(err, errlen, "cache dir %s is in use by another epochfs daemon; "
			 "give each mount its own --cache-dir", c->dir);
		return -EBUSY;
	}
	return 0;
}

struct list_ctx {
	struct ns_builder *b;
	uint64_t n, skipped;
	uint64_t t0;
};

static int list_cb(void *arg, const char *key, const struct backend_stat *st)
{
	struct list_ctx *lc = arg;
	int rc;

	/* The control directory cannot be shadowed by the dataset. */
	if (!strcmp(key, ".epochfs") || !strncmp(key, ".epochfs/", 9)) {
		log_warn("listing: '%s' hidden by the control directory .epochfs", key);
		lc->skipped++;
		return 0;
	}
	rc = index_ns_add(lc->b, key, st);
	if (rc == -EEXIST || rc == -ENAMETOOLONG) {
		log_warn("listing: '%s' skipped (%s)", key,
			 rc == -EEXIST ? "a file and a directory of the same name" : "name too long");
		lc->skipped++;
		return 0;
	}
	if (rc)
		return rc;
	if (++lc->n % 100000 == 0)
		log_info("listing: %llu files", (unsigned long long)lc->n);
	return 0;
}

static int build_namespace(struct cache *c, char *err, size_t errlen)
{
	struct list_ctx lc = { .t0 = now_ns() };
	int rc;

	rc = index_ns_begin(c->ix, c->be->url, &lc.b);
	if (rc) {
		snprintf(err, errlen, "index: cannot start a listing: %s", strerror(-rc));
		return rc;
	}
	rc = c->be->ops->list(c->be, list_cb, &lc);
	if (rc) {
		index_ns_abort(lc.b);
		if (!*err)
			snprintf(err, errlen, "listing %s failed: %s", c->be->url, strerror(-rc));
		return rc;
	}
	rc = index_ns_commit(lc.b, &c->ns);
	if (rc) {
		snprintf(err, errlen, "index: cannot save the listing: %s", strerror(-rc));
		return rc;
	}
	log_info("listed %s: %llu files, %llu directories, %llu skipped, in %.2f s",
		 c->be->url, (unsigned long long)c->ns.files, (unsigned long long)c->ns.dirs,
		 (unsigned long long)lc.skipped, (double)(now_ns() - lc.t0) / 1e9);
	return 0;
}

static int load_cb(void *arg, const struct obj_rec *r)
{
	struct cache *c = arg;
	struct obj *o;
	uint32_t i;
	int64_t blocks;

	o = obj_new(r->cid, r->size, r->chunk_size);
	if (!o || o->nchunks != r->nchunks) {
		free(o);
		return 0;
	}
	o->pe.freq = r->access_count;
	o->pe.importance = r->importance;
	o->pe.last = (uint64_t)r->last_access_ns;
	o->last_access_ns = r->last_access_ns;
	o->next_use = r->next_use;
	for (i = 0; i < r->nchunks; i++)
		if (obj_chunk_present(r, i)) {
			bit_set(o->present, i, 1);
			o->sums[i] = r->sums[i];
			o->npresent++;
		}
	if (!o->npresent) {
		free(o); /* a tracking record: loaded when the object is next used */
		return 0;
	}
	blocks = store_obj_blocks(c->st, o->cid);
	if (blocks < 0) {
		/* The file is gone: the record must not claim anything. */
		memset(o->present, 0, ((size_t)o->nchunks + 7) / 8);
		o->npresent = 0;
		table_put(c, o);
		mark_dirty(c, o);
		return 0;
	}
	o->alloc = (uint64_t)blocks + STORE_FILE_OVERHEAD;
	c->data_bytes += o->alloc;
	c->cached_objs++;
	table_put(c, o);
	policy_insert(c->pol, &o->pe);
	return 0;
}

static int gc_cb(void *arg, const uint8_t cid[CID_LEN])
{
	struct cache *c = arg;
	struct obj *o;
	int drop;

	pthread_mutex_lock(&c->lock);
	o = table_get(c, cid);
	drop = !o || (!o->npresent && !o->refs && !o->fetches);
	pthread_mutex_unlock(&c->lock);
	return drop;
}

/* Write dirty records in one transaction; free objects that hold nothing. */
static void flush_dirty(struct cache *c)
{
	struct obj_rec **recs = NULL;
	struct obj *o, *list, *next, **pp;
	size_t n = 0, cap = 0, i;
	uint32_t k;
	int rc;

	pthread_mutex_lock(&c->lock);
	list = c->dirty;
	c->dirty = NULL;
	for (o = list; o; o = o->dnext)
		cap++;
	if (cap)
		recs = ec_calloc(cap, sizeof(*recs));
	for (o = list; o; o = next) {
		struct obj_rec *r;

		next = o->dnext;
		o->flags &= ~OBJ_DIRTY;
		r = recs ? index_obj_alloc(o->nchunks) : NULL;
		if (!r) {
			mark_dirty(c, o); /* try again next time */
			continue;
		}
		memcpy(r->cid, o->cid, CID_LEN);
		r->size = o->size;
		r->chunk_size = o->chunk_size;
		r->access_count = o->pe.freq;
		r->last_access_ns = o->last_access_ns;
		r->importance = o->pe.importance;
		r->next_use = o->next_use;
		for (k = 0; k < o->nchunks; k++)
			if (bit(o->present, k)) {
				r->present[k >> 3] |= (uint8_t)(1u << (k & 7));
				r->sums[k] = o->sums[k];
			}
		recs[n++] = r;
	}
	pthread_mutex_unlock(&c->lock);
	if (n) {
		rc = index_obj_put_many(c->ix, recs, n);
		if (rc)
			log_warn("index: cannot save %zu records: %s", n, strerror(-rc));
	}
	for (i = 0; i < n; i++)
		index_obj_free(recs[i]);
	free(recs);

	pthread_mutex_lock(&c->lock);
	c->meta_bytes = index_disk_bytes(c->ix) + store_dir_bytes(c->st);
	c->meta_pending = 0;
	/* Objects that hold nothing and are unused live on only in the index. */
	for (size_t b = 0; b < c->nbuckets; b++)
		for (pp = &c->table[b]; *pp;) {
			o = *pp;
			if (!o->refs && !o->npresent && !o->fetches && !(o->flags & OBJ_DIRTY)) {
				*pp = o->hnext;
				c->nobjs--;
				free(o);
				continue;
			}
			pp = &o->hnext;
		}
	/* The index may have grown past the bound: give back data. */
	while (used_locked(c) > c->capacity) {
		struct pol_entry *v = policy_victim(c->pol, NULL);

		if (!v)
			break;
		evict_locked(c, (struct obj *)v);
	}
	pthread_mutex_unlock(&c->lock);
}

static void *flusher_main(void *arg)
{
	struct cache *c = arg;
	struct timespec ts;
	unsigned ticks = 0;

	pthread_mutex_lock(&c->lock);
	while (!c->stopping) {
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += (long)(c->cfg.flush_ms % 1000) * 1000000L;
		ts.tv_sec += c->cfg.flush_ms / 1000 + ts.tv_nsec / 1000000000L;
		ts.tv_nsec %= 1000000000L;
		pthread_cond_timedwait(&c->flush_cond, &c->lock, &ts);
		if (c->stopping)
			break;
		pthread_mutex_unlock(&c->lock);
		flush_dirty(c);
		if (++ticks % 5 == 0)
			index_sync(c->ix);
		pthread_mutex_lock(&c->lock);
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

static int resolve_capacity(struct cache *c, char *err, size_t errlen)
{
	struct statvfs sv;

	c->capacity = c->cfg.capacity;
	if (!c->capacity) {
		if (statvfs(c->dir, &sv) < 0) {
			snprintf(err, errlen, "cache dir %s: %s", c->dir, strerror(errno));
			return -errno;
		}
		c->capacity = (uint64_t)((double)sv.f_blocks * sv.f_frsize * c->cfg.capacity_pct / 100.0);
	}
	return 0;
}

int cache_open(const struct cache_config *cfg, struct backend *be, struct cache **out,
	       char *err, size_t errlen)
{
	char path[PATH_MAX];
	struct cache *c;
	int rc, need_list;

	*out = NULL;
	*err = 0;
	c = ec_calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->cfg = *cfg;
	c->be = be;
	c->lockfd = -1;
	c->started_ns = now_ns();
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->flush_cond, NULL);
	pthread_cond_init(&c->fetch_cond, NULL);
	c->dir = realpath(cfg->cache_dir, NULL);
	if (!c->dir) {
		rc = -errno;
		snprintf(err, errlen, "cache dir %s: %s", cfg->cache_dir, strerror(errno));
		goto fail;
	}
	rc = lock_dir(c, err, errlen);
	if (rc)
		goto fail;
	rc = resolve_capacity(c, err, errlen);
	if (rc)
		goto fail;
	snprintf(path, sizeof(path), "%s/index", c->dir);
	rc = index_open(path, 1ull << 36, &c->ix);
	if (rc == -EUCLEAN) {
		log_warn("cache index %s is damaged; starting an empty cache", path);
		snprintf(path, sizeof(path), "%s/index/data.mdb", c->dir);
		unlink(path);
		snprintf(path, sizeof(path), "%s/index", c->dir);
		rc = index_open(path, 1ull << 36, &c->ix);
	}
	if (rc) {
		snprintf(err, errlen, "cache index %s: %s", path, strerror(-rc));
		goto fail;
	}
	rc = store_open(c->dir, &c->st);
	if (rc) {
		snprintf(err, errlen, "cache store in %s: %s", c->dir, strerror(-rc));
		goto fail;
	}
	rc = policy_create(cfg->policy, &c->pol);
	if (rc)
		goto fail;
	c->nbuckets = 1024;
	c->table = ec_calloc(c->nbuckets, sizeof(*c->table));
	if (!c->table) {
		rc = -ENOMEM;
		goto fail;
	}

	rc = index_source_get(c->ix, be->url, &c->ns);
	need_list = rc != 0 || cfg->refresh ||
		    (cfg->list_ttl_s >= 0 &&
		     wall_ns() - c->ns.listed_ns > cfg->list_ttl_s * 1000000000ll);
	if (need_list) {
		rc = build_namespace(c, err, errlen);
		if (rc)
			goto fail;
	} else {
		log_info("using the snapshot of %s from the index (%llu files)", be->url,
			 (unsigned long long)c->ns.files);
	}

	rc = index_obj_foreach(c->ix, load_cb, c);
	if (rc) {
		snprintf(err, errlen, "cache index: cannot load records: %s", strerror(-rc));
		goto fail;
	}
	store_scan(c->st, gc_cb, c);
	c->meta_bytes = index_disk_bytes(c->ix) + store_dir_bytes(c->st);
	flush_dirty(c); /* also enforces the bound if capacity shrank */
	log_info("cache %s: %llu objects, %llu of %llu bytes used", c->dir,
		 (unsigned long long)c->cached_objs, (unsigned long long)used_locked(c),
		 (unsigned long long)c->capacity);
	if (c->meta_bytes + META_HEADROOM > c->capacity)
		log_warn("cache size %llu is smaller than the index (%llu bytes): nothing will be cached",
			 (unsigned long long)c->capacity, (unsigned long long)c->meta_bytes);
	rc = -pthread_create(&c->flusher, NULL, flusher_main, c);
	if (rc)
		goto fail;
	*out = c;
	return 0;
fail:
	if (!*err)
		snprintf(err, errlen, "cannot open the cache: %s", strerror(-rc));
	c->flusher = 0;
	c->stopping = 1;
	cache_close(c);
	return rc;
}

void cache_close(struct cache *c)
{
	struct obj *o, *next;

	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	c->stopping = 1;
	pthread_cond_broadcast(&c->flush_cond);
	pthread_mutex_unlock(&c->lock);
	if (c->flusher)
		pthread_join(c->flusher, NULL);
	if (c->ix && c->table)
		flush_dirty(c);
	for (size_t b = 0; c->table && b < c->nbuckets; b++)
		for (o = c->table[b]; o; o = next) {
			next = o->hnext;
			if (o->fd >= 0)
				close(o->fd);
			free(o);
		}
	free(c->table);
	policy_destroy(c->pol);
	store_close(c->st);
	index_close(c->ix);
	if (c->lockfd >= 0)
		close(c->lockfd);
	free(c->dir);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->flush_cond);
	pthread_cond_destroy(&c->fetch_cond);
	free(c);
}

void cache_set_inval_hook(struct cache *c, void (*fn)(void *arg, uint64_t ino), void *arg)
{
	c->inval = fn;
	c->inval_arg = arg;
}

/* ---- namespace ---- */

int cache_lookup(struct cache *c, uint64_t parent, const char *name, struct ns_attr *out)
{
	return index_lookup(c->ix, c->ns.srcid, parent, name, out);
}

int cache_getattr(struct cache *c, uint64_t ino, struct ns_attr *out)
{
	return index_getattr(c->ix, c->ns.srcid, ino, out);
}

int cache_readdir(struct cache *c, uint64_t ino, index_dir_fn fn, void *arg)
{
	return index_readdir(c->ix, c->ns.srcid, ino, fn, arg);
}

int cache_resolve(struct cache *c, const char *path, struct ns_attr *out)
{
	return index_resolve(c->ix, c->ns.srcid, path, out);
}

uint64_t cache_nfiles(const struct cache *c)
{
	return c->ns.files;
}

/* ---- files ---- */

static void content_id(const struct cache *c, const char *key, const struct ns_attr *a,
		       uint8_t cid[CID_LEN])
{
	XXH3_state_t st;
	XXH128_hash_t h;
	XXH128_canonical_t canon;

	XXH3_128bits_reset(&st);
	XXH3_128bits_update(&st, c->be->url, strlen(c->be->url) + 1);
	XXH3_128bits_update(&st, key, strlen(key) + 1);
	XXH3_128bits_update(&st, &a->size, sizeof(a->size));
	XXH3_128bits_update(&st, &a->mtime_ns, sizeof(a->mtime_ns));
	XXH3_128bits_update(&st, a->etag, strlen(a->etag));
	h = XXH3_128bits_digest(&st);
	XXH128_canonicalFromHash(&canon, h);
	memcpy(cid, canon.digest, CID_LEN);
}

/* The in-memory object for cid, loaded from the index or made fresh, pinned.
 * Lock not held on entry. */
static int obj_pin(struct cache *c, const uint8_t *cid, uint64_t size, struct obj **out)
{
	struct obj_rec *r = NULL;
	struct obj *o, *fresh = NULL;
	uint32_t i;
	int rc;

	pthread_mutex_lock(&c->lock);
	o = table_get(c, cid);
	if (!o) {
		pthread_mutex_unlock(&c->lock);
		rc = index_obj_get(c->ix, cid, &r);
		if (rc && rc != -ENOENT)
			log_warn("index: object record unreadable (%s); refetching", strerror(-rc));
		if (r && (r->size != size || !r->chunk_size)) {
			index_obj_free(r);
			r = NULL;
		}
		fresh = obj_new(cid, size, r ? r->chunk_size : c->cfg.chunk_size);
		if (!fresh) {
			index_obj_free(r);
			return -ENOMEM;
		}
		if (r && r->nchunks == fresh->nchunks) {
			/* Only the policy state: chunks not loaded at start are not trusted. */
			fresh->pe.freq = r->access_count;
			fresh->pe.importance = r->importance;
			fresh->last_access_ns = r->last_access_ns;
			fresh->next_use = r->next_use;
		}
		index_obj_free(r);
		pthread_mutex_lock(&c->lock);
		o = table_get(c, cid);
		if (!o) {
			o = fresh;
			fresh = NULL;
			table_put(c, o);
			c->meta_pending += META_PER_RECORD;
		}
	}
	if (o->refs++ == 0)
		policy_remove(c->pol, &o->pe);
	pthread_mutex_unlock(&c->lock);
	free(fresh);
	(void)i;
	*out = o;
	return 0;
}

static void obj_unpin(struct cache *c, struct obj *o)
{
	int fd = -1;

	pthread_mutex_lock(&c->lock);
	if (--o->refs == 0) {
		fd = o->fd;
		o->fd = -1;
		if (o->npresent)
			policy_insert(c->pol, &o->pe);
	}
	pthread_mutex_unlock(&c->lock);
	if (fd >= 0)
		close(fd);
}

/* The store fd of a pinned object, opened on first need. */
static int obj_fd(struct cache *c, struct obj *o, int create)
{
	int fd;

	pthread_mutex_lock(&c->lock);
	fd = o->fd;
	pthread_mutex_unlock(&c->lock);
	if (fd >= 0)
		return fd;
	fd = store_obj_open(c->st, o->cid, create);
	if (fd < 0)
		return fd;
	pthread_mutex_lock(&c->lock);
	if (o->fd >= 0) {
		close(fd);
		fd = o->fd;
	} else {
		o->fd = fd;
	}
	pthread_mutex_unlock(&c->lock);
	return fd;
}

int cache_file_open(struct cache *c, uint64_t ino, struct cache_file **out)
{
	struct cache_file *f;
	struct ns_attr a;
	int rc, hit;

	*out = NULL;
	rc = index_getattr(c->ix, c->ns.srcid, ino, &a);
	if (rc)
		return rc;
	if (a.is_dir)
		return -EISDIR;
	f = ec_calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->c = c;
	f->ino = ino;
	rc = index_path(c->ix, c->ns.srcid, ino, f->key, sizeof(f->key));
	if (rc)
		goto fail;
	f->ident.size = a.size;
	f->ident.mtime_ns = a.mtime_ns;
	memcpy(f->ident.etag, a.etag, sizeof(a.etag));
	{
		uint8_t cid[CID_LEN];

		content_id(c, f->key, &a, cid);
		rc = obj_pin(c, cid, a.size, &f->o);
		if (rc)
			goto fail;
	}
	pthread_mutex_lock(&c->lock);
	f->o->pe.freq++;
	f->o->last_access_ns = wall_ns();
	f->o->pe.last = now_ns();
	hit = f->o->npresent == f->o->nchunks;
	mark_dirty(c, f->o);
	pthread_mutex_unlock(&c->lock);
	atomic_fetch_add_explicit(&c->ctr.opens, 1, memory_order_relaxed);
	if (hit)
		atomic_fetch_add_explicit(&c->ctr.open_hits, 1, memory_order_relaxed);
	*out = f;
	return 0;
fail:
	free(f);
	return rc;
}

void cache_file_close(struct cache_file *f)
{
	if (!f)
		return;
	obj_unpin(f->c, f->o);
	free(f);
}

uint64_t cache_file_size(const struct cache_file *f)
{
	return f->o->size;
}

static void fetch_put(struct cache *c, struct fetch *fe)
{
	int last;

	pthread_mutex_lock(&c->lock);
	last = --fe->refs == 0;
	pthread_mutex_unlock(&c->lock);
	if (last) {
		free(fe->buf);
		free(fe);
	}
}

static void fetch_done(struct backend_req *req)
{
	struct fetch *fe = req->arg;
	struct cache *c = fe->c;

	pthread_mutex_lock(&c->lock);
	fe->result = req->result;
	fe->done = 1;
	pthread_cond_broadcast(&c->fetch_cond);
	pthread_mutex_unlock(&c->lock);
	fetch_put(c, fe);
}

/* Store a fetched chunk if the policy admits it; mark it present. */
static void fetch_store(struct cache *c, struct cache_file *f, struct fetch *fe)
{
	struct obj *o = f->o;
	uint64_t need, sum;
	int fd, rc;
	static atomic_int enospc_logged;

	need = round_block(fe->len) + (o->alloc ? 0 : STORE_FILE_OVERHEAD);
	pthread_mutex_lock(&c->lock);
	rc = reserve_locked(c, o, need);
	pthread_mutex_unlock(&c->lock);
	if (rc) {
		atomic_fetch_add_explicit(&c->ctr.not_admitted, 1, memory_order_relaxed);
		return;
	}
	sum = store_checksum(fe->buf, fe->len);
	fd = obj_fd(c, o, 1);
	rc = fd < 0 ? fd : store_write(fd, (uint64_t)fe->chunk * o->chunk_size, fe->buf, fe->len);
	pthread_mutex_lock(&c->lock);
	c->reserved -= need;
	if (rc == 0) {
		if (!o->npresent)
			c->cached_objs++;
		bit_set(o->present, fe->chunk, 1);
		bit_set(o->verified, fe->chunk, 1);
		o->sums[fe->chunk] = sum;
		o->npresent++;
		o->alloc += need;
		c->data_bytes += need;
		mark_dirty(c, o);
		fe->stored = 1;
	} else if (rc == -ENOSPC) {
		c->degraded = 1;
		c->degraded_until = now_ns() + 30ull * 1000000000ull;
	}
	pthread_mutex_unlock(&c->lock);
	if (rc == -ENOSPC) {
		store_punch(fd, (uint64_t)fe->chunk * o->chunk_size, fe->len);
		log_once(enospc_logged, LOG_LVL_WARN,
			 "cache disk full (ENOSPC) in %s: serving reads from the source uncached", c->dir);
	} else if (rc) {
		atomic_fetch_add_explicit(&c->ctr.store_errors, 1, memory_order_relaxed);
		log_warn("cache store write failed: %s", strerror(-rc));
	}
}

/* The source changed under an open file: record the new identity, drop the
 * kernel's view, and fail the handle. */
static void source_changed(struct cache *c, struct cache_file *f, const struct backend_stat *cur)
{
	atomic_fetch_add_explicit(&c->ctr.stale, 1, memory_order_relaxed);
	log_warn("%s changed at the source (size %llu -> %llu); its cached copy is dropped",
		 f->key, (unsigned long long)f->ident.size, (unsigned long long)cur->size);
	f->stale = 1;
	index_set_identity(c->ix, c->ns.srcid, f->ino, cur);
	if (c->inval)
		c->inval(c->inval_arg, f->ino);
	/* Content-addressed: the old object is simply never asked for again. */
}

/* Make chunk k of f's object readable: a segment of the store file, or of
 * memory held in *hold.  0 or -errno. */
static int chunk_get(struct cache_file *f, uint32_t k, struct cache_seg *seg, void **hold,
		     int *from_cache)
{
	struct cache *c = f->c;
	struct obj *o = f->o;
	struct fetch *fe;
	size_t len = chunk_len(o, k);
	uint64_t off = (uint64_t)k * o->chunk_size, t0;
	int fd, rc, present, verified, mine = 0;
	void *buf;

	*hold = NULL;
	*from_cache = 0;
	pthread_mutex_lock(&c->lock);
	present = bit(o->present, k);
	verified = bit(o->verified, k);
	pthread_mutex_unlock(&c->lock);
	if (present) {
		fd = obj_fd(c, o, 0);
		if (fd >= 0 && verified) {
			*seg = (struct cache_seg){ .fd = fd, .off = off, .len = len };
			*from_cache = 1;
			return 0;
		}
		buf = fd >= 0 ? ec_malloc(len) : NULL;
		if (buf && store_read(fd, off, buf, len) == 0 &&
		    store_checksum(buf, len) == o->sums[k]) {
			pthread_mutex_lock(&c->lock);
			bit_set(o->verified, k, 1);
			pthread_mutex_unlock(&c->lock);
			*seg = (struct cache_seg){ .fd = -1, .off = off, .len = len, .buf = buf };
			*hold = buf;
			*from_cache = 1;
			return 0;
		}
		if (!buf && fd >= 0)
			return -ENOMEM;
		free(buf);
		/* Missing file or wrong bytes: drop the chunk and fetch again. */
		atomic_fetch_add_explicit(&c->ctr.verify_failures, 1, memory_order_relaxed);
		log_warn("cached chunk %u of %s failed its check; fetching it again", k, f->key);
		pthread_mutex_lock(&c->lock);
		if (bit(o->present, k)) {
			uint64_t give = round_block(len);

			bit_set(o->present, k, 0);
			o->npresent--;
			if (!o->npresent) {
				c->cached_objs--;
				give = o->alloc;
			}
			give = MIN(give, o->alloc);
			o->alloc -= give;
			c->data_bytes -= give;
			mark_dirty(c, o);
		}
		pthread_mutex_unlock(&c->lock);
		if (fd >= 0)
			store_punch(fd, off, len);
	}

	/* Join the fetch of this chunk, or start it. */
	pthread_mutex_lock(&c->lock);
	for (fe = o->fetches; fe; fe = fe->next)
		if (fe->chunk == k)
			break;
	if (!fe) {
		fe = ec_calloc(1, sizeof(*fe));
		buf = fe ? ec_malloc(len ? len : 1) : NULL;
		if (!buf) {
			pthread_mutex_unlock(&c->lock);
			free(fe);
			return -ENOMEM;
		}
		fe->c = c;
		fe->o = o;
		fe->chunk = k;
		fe->len = len;
		fe->buf = buf;
		fe->refs = 2; /* this reader and the backend */
		fe->next = o->fetches;
		o->fetches = fe;
		mine = 1;
	} else {
		fe->refs++;
	}
	pthread_mutex_unlock(&c->lock);

	t0 = now_ns();
	if (mine) {
		memcpy(fe->key, f->key, sizeof(fe->key));
		fe->req.key = fe->key;
		fe->req.off = off;
		fe->req.len = len;
		fe->req.buf = fe->buf;
		fe->req.expect = f->ident;
		fe->req.done = fetch_done;
		fe->req.arg = fe;
		atomic_fetch_add_explicit(&c->ctr.fetches, 1, memory_order_relaxed);
		rc = c->be->ops->submit(c->be, &fe->req);
		if (rc) {
			pthread_mutex_lock(&c->lock);
			fe->result = rc;
			fe->done = 1;
			fe->refs--; /* the backend's reference */
			pthread_mutex_unlock(&c->lock);
		}
	}
	pthread_mutex_lock(&c->lock);
	while (!fe->done)
		pthread_cond_wait(&c->fetch_cond, &c->lock);
	pthread_mutex_unlock(&c->lock);
	atomic_fetch_add_explicit(&c->ctr.stall_ns, now_ns() - t0, memory_order_relaxed);

	rc = 0;
	if (fe->result == -ESTALE) {
		if (mine)
			source_changed(c, f, &fe->req.current);
		rc = -ESTALE;
	} else if (fe->result < 0) {
		rc = (int)fe->result;
	} else if ((size_t)fe->result != len) {
		log_warn("%s: source returned %zd bytes of chunk %u, expected %zu", f->key,
			 fe->result, k, len);
		rc = -EIO;
	}
	if (mine) {
		if (!rc) {
			atomic_fetch_add_explicit(&c->ctr.fetch_bytes, len, memory_order_relaxed);
			fetch_store(c, f, fe);
		}
		/* Unlink from the object: later readers start afresh. */
		pthread_mutex_lock(&c->lock);
		for (struct fetch **pp = &o->fetches; *pp; pp = &(*pp)->next)
			if (*pp == fe) {
				*pp = fe->next;
				break;
			}
		fe->stored |= 2; /* settled: waiters may look at the bits */
		pthread_cond_broadcast(&c->fetch_cond);
		pthread_mutex_unlock(&c->lock);
	} else {
		pthread_mutex_lock(&c->lock);
		while (!(fe->stored & 2) && !rc)
			pthread_cond_wait(&c->fetch_cond, &c->lock);
		pthread_mutex_unlock(&c->lock);
	}
	if (rc) {
		fetch_put(c, fe);
		return rc;
	}
	*seg = (struct cache_seg){ .fd = -1, .off = off, .len = len, .buf = fe->buf };
	*hold = fe; /* released by cache_read_release via fetch_put */
	return 1;
}

ssize_t cache_file_read(struct cache_file *f, uint64_t off, size_t len, struct cache_read *rd)
{
	struct cache *c = f->c;
	struct obj *o = f->o;
	uint64_t end, pos;
	uint32_t k;
	size_t total = 0, from_cache = 0;
	int rc = 0;

	memset(rd, 0, sizeof(*rd));
	rd->c = c;
	if (f->stale)
		return -EIO;
	atomic_fetch_add_explicit(&c->ctr.reads, 1, memory_order_relaxed);
	if (off >= o->size || len == 0)
		return 0;
	end = MIN(o->size, off + len);
	for (pos = off; pos < end && rd->nseg < CACHE_MAX_SEGS;) {
		struct cache_seg seg;
		void *hold;
		int cached;
		uint64_t cstart, skip;
		size_t take;

		k = (uint32_t)(pos / o->chunk_size);
		rc = chunk_get(f, k, &seg, &hold, &cached);
		if (rc < 0)
			break;
		if (hold) {
			/* Tag fetch references so release knows how to drop them. */
			rd->hold[rd->nhold++] = (void *)((uintptr_t)hold | (rc == 1 ? 1u : 0u));
		}
		cstart = (uint64_t)k * o->chunk_size;
		skip = pos - cstart;
		take = (size_t)MIN(end - pos, seg.len - skip);
		seg.off += skip;
		if (seg.buf)
			seg.buf = (const char *)seg.buf + skip;
		seg.len = take;
		rd->seg[rd->nseg++] = seg;
		total += take;
		if (cached)
			from_cache += take;
		pos += take;
		rc = 0;
	}
	if (rc == 0 && pos < end)
		rc = -EIO; /* more chunks than segments: chunk size below the minimum */
	if (rc < 0) {
		/* Never a short count: the kernel would take it for end of file. */
		cache_read_release(rd);
		if (rc == -ESTALE)
			f->stale = 1;
		return rc == -ESTALE || rc == -ETIMEDOUT ? -EIO : rc;
	}
	atomic_fetch_add_explicit(&c->ctr.read_bytes, total, memory_order_relaxed);
	atomic_fetch_add_explicit(&c->ctr.read_bytes_from_cache, from_cache, memory_order_relaxed);
	return (ssize_t)total;
}

void cache_read_release(struct cache_read *rd)
{
	for (int i = 0; i < rd->nhold; i++) {
		uintptr_t h = (uintptr_t)rd->hold[i];

		if (h & 1)
			fetch_put(rd->c, (struct fetch *)(h & ~(uintptr_t)1));
		else
			free((void *)h);
	}
	rd->nhold = 0;
	rd->nseg = 0;
}

int cache_cached_bytes(struct cache *c, uint64_t ino, uint64_t *cached, uint64_t *size)
{
	char key[KEY_MAX];
	uint8_t cid[CID_LEN];
	struct ns_attr a;
	struct obj *o;
	int rc;

	rc = index_getattr(c->ix, c->ns.srcid, ino, &a);
	if (!rc && a.is_dir)
		rc = -EISDIR;
	if (!rc)
		rc = index_path(c->ix, c->ns.srcid, ino, key, sizeof(key));
	if (rc)
		return rc;
	content_id(c, key, &a, cid);
	*size = a.size;
	*cached = 0;
	pthread_mutex_lock(&c->lock);
	o = table_get(c, cid);
	if (o)
		for (uint32_t k = 0; k < o->nchunks; k++)
			if (bit(o->present, k))
				*cached += chunk_len(o, k);
	pthread_mutex_unlock(&c->lock);
	return 0;
}

const struct cache_counters *cache_counters(const struct cache *c)
{
	return &c->ctr;
}

uint64_t cache_used_bytes(struct cache *c)
{
	uint64_t v;

	pthread_mutex_lock(&c->lock);
	v = c->data_bytes + c->reserved + c->meta_bytes;
	pthread_mutex_unlock(&c->lock);
	return v;
}

uint64_t cache_capacity(const struct cache *c)
{
	return c->capacity;
}

/* JSON string body of s (quotes, backslashes and control bytes escaped). */
static void json_escape(const char *s, char *out, size_t len)
{
	size_t o = 0;

	for (; *s && o + 7 < len; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\') {
			out[o++] = '\\';
			out[o++] = (char)ch;
		} else if (ch < 0x20) {
			o += (size_t)snprintf(out + o, len - o, "\\u%04x", ch);
		} else {
			out[o++] = (char)ch;
		}
	}
	out[o] = 0;
}

#define LD(x) ((unsigned long long)atomic_load_explicit(&(x), memory_order_relaxed))

int cache_stats_json(struct cache *c, char **out, size_t *len)
{
	const struct backend_counters *b = &c->be->counters;
	uint64_t data, meta, objs, cap = c->capacity;
	int degraded;
	char *s, src[1024];
	int n;

	json_escape(c->be->url, src, sizeof(src));
	pthread_mutex_lock(&c->lock);
	data = c->data_bytes + c->reserved;
	meta = c->meta_bytes;
	objs = c->cached_objs;
	degraded = c->degraded;
	pthread_mutex_unlock(&c->lock);
	n = asprintf(&s,
		     "{\"version\":1,\"source\":\"%s\",\"backend\":\"%s\",\"policy\":\"%s\","
		     "\"uptime_ns\":%llu,\"files\":%llu,"
		     "\"opens\":%llu,\"open_hits\":%llu,\"reads\":%llu,\"read_bytes\":%llu,"
		     "\"read_bytes_from_cache\":%llu,\"stall_ns\":%llu,"
		     "\"backend_requests\":%llu,\"backend_bytes\":%llu,\"backend_errors\":%llu,"
		     "\"backend_retries\":%llu,\"skipped_keys\":%llu,"
		     "\"fetches\":%llu,\"fetch_bytes\":%llu,"
		     "\"cache_bytes\":%llu,\"cache_data_bytes\":%llu,\"cache_meta_bytes\":%llu,"
		     "\"cache_capacity\":%llu,\"cache_objects\":%llu,\"evictions\":%llu,"
		     "\"not_admitted\":%llu,\"verify_failures\":%llu,\"stale\":%llu,"
		     "\"store_errors\":%llu,\"cache_degraded\":%d}\n",
		     src, c->be->ops->name, policy_name(c->cfg.policy),
		     (unsigned long long)(now_ns() - c->started_ns), (unsigned long long)c->ns.files,
		     LD(c->ctr.opens), LD(c->ctr.open_hits), LD(c->ctr.reads), LD(c->ctr.read_bytes),
		     LD(c->ctr.read_bytes_from_cache), LD(c->ctr.stall_ns),
		     LD(b->requests), LD(b->bytes), LD(b->errors), LD(b->retries), LD(b->skipped_keys),
		     LD(c->ctr.fetches), LD(c->ctr.fetch_bytes),
		     (unsigned long long)(data + meta), (unsigned long long)data,
		     (unsigned long long)meta, (unsigned long long)cap, (unsigned long long)objs,
		     LD(c->ctr.evictions), LD(c->ctr.not_admitted), LD(c->ctr.verify_failures),
		     LD(c->ctr.stale), LD(c->ctr.store_errors), degraded);
	if (n < 0)
		return -ENOMEM;
	*out = s;
	*len = (size_t)n;
	return 0;
}
