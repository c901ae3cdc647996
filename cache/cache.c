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
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "cache_int.h"
#include "backends/base/log.h"
#include "backends/base/mountinfo.h"
#include "store.h"
#include "backends/base/util.h"

static void *store_worker(void *arg);
static void fetch_put(struct cache *c, struct fetch *fe);

/* Chunks fetched for an open file and not stored are kept for its next
 * reads: at most this many per object (the latest), this much in all. */
#define HELD_PER_OBJ 2
#define HELD_MAX_BYTES (64ull << 20)
/* Store files of prefetched objects kept open from the write to their first
 * read (which would otherwise open them again). */
#define IDLE_FDS_MAX 256

void cache_config_init(struct cache_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->cache_dir = "/var/cache/epochfs";
	cfg->capacity_pct = 50;
	cfg->chunk_size = CACHE_DEFAULT_CHUNK;
	cfg->policy = POLICY_SHADE;
	cfg->list_ttl_s = -1;
	cfg->flush_ms = 1000;
	cfg->substitute_deadline_ms = 20;
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

	/* Two objects per bucket on average: 4 bytes of table per object. */
	if (c->nobjs >= 2 * c->nbuckets)
		table_grow(c); /* on failure the chains just get longer */
	b = hash_cid(c, o->cid);
	o->hnext = c->table[b];
	c->table[b] = o;
	c->nobjs++;
}

/* Objects come from slabs of OBJ_SLAB, mapped directly: no allocator
 * header per object, and none of the per-thread arenas' fragmentation.
 * Lock held (or the cache not running yet). */
#define OBJ_SLAB 1024

static struct obj *obj_take_locked(struct cache *c)
{
	struct obj *o = c->obj_free;

	if (!o) {
		void **ns = ec_realloc(c->slabs, (c->nslabs + 1) * sizeof(*ns));
		struct obj *blk;

		if (!ns)
			return NULL;
		c->slabs = ns;
		blk = mmap(NULL, OBJ_SLAB * sizeof(*blk), PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (blk == MAP_FAILED)
			return NULL;
		c->slabs[c->nslabs++] = blk;
		for (size_t i = OBJ_SLAB; i-- > 0;) {
			blk[i].hnext = c->obj_free;
			c->obj_free = &blk[i];
		}
		o = c->obj_free;
	}
	c->obj_free = o->hnext;
	memset(o, 0, sizeof(*o));
	return o;
}

/* Give o back to its slab (it is in no table, policy or fetch). */
static void obj_release_locked(struct cache *c, struct obj *o)
{
	if (obj_nchunks(o) > 1)
		free(o->u.sums);
	free(o->act);
	o->act = NULL;
	o->hnext = c->obj_free;
	c->obj_free = o;
}

/* A chunk size objects can have: a power of two, 4 KiB to 1 GiB. */
static int chunk_size_ok(uint64_t cs)
{
	return cs >= 4096 && cs <= (1ull << 30) && !(cs & (cs - 1));
}

static struct obj *obj_new_locked(struct cache *c, const uint8_t *cid, uint64_t size,
				  uint32_t chunk_size)
{
	uint64_t n = size ? (size + chunk_size - 1) / chunk_size : 0;
	size_t bb = ((size_t)n + 7) / 8;
	struct obj *o;

	if (!chunk_size_ok(chunk_size) || n > UINT32_MAX / 2)
		return NULL;
	o = obj_take_locked(c);
	if (!o)
		return NULL;
	if (n > 1) {
		o->u.sums = ec_calloc(1, (size_t)n * 8 + 3 * bb);
		if (!o->u.sums) {
			obj_release_locked(c, o); /* size still 0: nothing to free */
			return NULL;
		}
	}
	memcpy(o->cid, cid, CID_LEN);
	o->size = size;
	o->chunk_shift = (uint8_t)__builtin_ctz(chunk_size);
	o->sample = PLAN_NONE;
	o->pe.next_use = UINT64_MAX;
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

/* Chunk bits of an object (struct obj explains where they live). */
enum { PRESENT, VERIFIED, FETCHED };

static uint8_t *obj_bits(const struct obj *o, int which)
{
	return (uint8_t *)(o->u.sums + obj_nchunks(o)) + (size_t)which * (((size_t)obj_nchunks(o) + 7) / 8);
}

static int obj_bit(const struct obj *o, int which, uint32_t k)
{
	if (obj_nchunks(o) <= 1)
		return k == 0 && (o->flags & (OBJ_C_PRESENT << which));
	return bit(obj_bits(o, which), k);
}

static void obj_bit_set(struct obj *o, int which, uint32_t k, int v)
{
	if (obj_nchunks(o) > 1)
		bit_set(obj_bits(o, which), k, v);
	else if (v)
		o->flags |= OBJ_C_PRESENT << which;
	else
		o->flags &= ~(OBJ_C_PRESENT << which);
}

static void obj_bits_clear(struct obj *o, int which)
{
	if (obj_nchunks(o) > 1)
		memset(obj_bits(o, which), 0, ((size_t)obj_nchunks(o) + 7) / 8);
	else
		o->flags &= ~(OBJ_C_PRESENT << which);
}

static uint64_t *obj_sum(struct obj *o, uint32_t k)
{
	return obj_nchunks(o) > 1 ? &o->u.sums[k] : &o->u.sum;
}

/* The in-use part of o, made when it is first pinned.  Lock held. */
static int obj_activate_locked(struct obj *o)
{
	if (o->act)
		return 0;
	o->act = ec_calloc(1, sizeof(*o->act));
	if (!o->act)
		return -ENOMEM;
	o->act->fd = -1;
	return 0;
}

/* Drop the in-use part of o when nothing uses it any more.  Lock held. */
static void obj_deactivate_locked(struct obj *o)
{
	struct obj_act *a = o->act;

	if (a && !o->refs && !(o->flags & OBJ_IDLEFD) && a->fd < 0 && !a->inflight && !a->held &&
	    !a->fetches && !a->resv) {
		free(a);
		o->act = NULL;
	}
}

static size_t chunk_len(const struct obj *o, uint32_t c)
{
	uint64_t off = (uint64_t)c * obj_chunk_size(o);

	return (size_t)MIN((uint64_t)obj_chunk_size(o), o->size - off);
}

/* File bytes of o's present chunks. */
static uint64_t present_bytes(const struct obj *o)
{
	uint64_t b = 0;

	for (uint32_t k = 0; o->npresent && k < obj_nchunks(o); k++)
		if (obj_bit(o, PRESENT, k))
			b += chunk_len(o, k);
	return b;
}

struct epoch_stats *cache_epoch_locked(struct cache *c)
{
	return c->nep ? &c->ep[(c->nep - 1) % EPOCH_HISTORY] : NULL;
}

static uint64_t used_locked(const struct cache *c)
{
	return c->data_bytes + c->reserved + c->meta_bytes + c->meta_pending + META_HEADROOM(c->capacity);
}

/* Drop every stored chunk of o (which is unpinned and in no fetch):
 * remove its file and its bytes from the accounting.  Lock held. */
static void evict_locked(struct cache *c, struct obj *o)
{
	if (o->flags & OBJ_PREFETCHED)
		atomic_fetch_add_explicit(&c->prefetch_wasted, 1, memory_order_relaxed);
	if (cache_epoch_locked(c) && plan_mode(c->plan) != PLAN_OFF &&
	    plan_use_epoch(o->pe.next_use) == plan_epoch(c->plan))
		cache_epoch_locked(c)->evicted_planned++;
	o->flags &= ~OBJ_PREFETCHED;
	policy_remove(c->pol, &o->pe);
	store_obj_unlink(c->st, o->cid);
	if (o->flags & OBJ_IDLEFD) {
		close(o->act->fd);
		o->act->fd = -1;
		o->flags &= ~OBJ_IDLEFD;
		c->idle_fds--;
		obj_deactivate_locked(o);
	}
	c->cached_bytes -= present_bytes(o);
	c->data_bytes -= o->alloc;
	o->alloc = 0;
	obj_bits_clear(o, PRESENT);
	obj_bits_clear(o, VERIFIED);
	if (o->npresent)
		c->cached_objs--;
	o->npresent = 0;
	if (!(o->flags & OBJ_DIRTY))
		c->meta_pending += META_PER_RECORD;
	cache_mark_dirty(o);
	atomic_fetch_add_explicit(&c->ctr.evictions, 1, memory_order_relaxed);
}

/* The cache disk was full a moment ago: admit nothing until the pause ends.
 * Lock held. */
static int degraded_locked(struct cache *c)
{
	if (c->degraded) {
		if (now_ns() < c->degraded_until)
			return 1;
		c->degraded = 0;
	}
	return 0;
}

/* Reserve bytes for a chunk of o, evicting what the policy allows.
 * 0 when reserved; -ENOSPC when o is not admitted.  Lock held. */
static int reserve_locked(struct cache *c, struct obj *o, uint64_t bytes)
{
	struct pol_entry *v;

	if (degraded_locked(c))
		return -ENOSPC;
	while (used_locked(c) + bytes > c->capacity) {
		v = policy_victim(c->pol, &o->pe);
		if (!v)
			return -ENOSPC;
		evict_locked(c, (struct obj *)v);
	}
	c->reserved += bytes;
	return 0;
}

/* Reserve bytes for a prefetch of o (keyed by its next use), evicting only
 * objects whose next use falls in a later epoch than o's.  Stricter than
 * Belady's "needed later", on purpose: a read that is not prefetched is
 * still served (from memory, uncached), so displacing an object needed in
 * the same epoch only moves a fetch from o to it, and adds one.  Objects
 * needed in a later epoch can make room: o, once read, is one of them, and
 * the cache is as full at the next epoch's start either way.  0, or -ENOSPC
 * (no room it may take).  Lock held. */
static int reserve_prefetch_locked(struct cache *c, struct obj *o, uint64_t bytes)
{
	uint64_t epoch = plan_use_epoch(o->pe.next_use);
	struct pol_entry *v;

	if (degraded_locked(c))
		return -ENOSPC;
	while (used_locked(c) + bytes > c->capacity) {
		v = policy_victim(c->pol, NULL);
		if (!v || plan_use_epoch(v->next_use) <= epoch)
			return -ENOSPC;
		evict_locked(c, (struct obj *)v);
	}
	c->reserved += bytes;
	o->act->resv += bytes;
	return 0;
}

/* ---- opening ---- */

/* The lock file says what its holder is doing, one line: "<pid> starting",
 * "<pid> mounted <dev> <mountpoint>" or "<pid> closing", where dev and the
 * mount point are as /proc/self/mountinfo gives them (major:minor, octal
 * escapes).  A daemon that finds the directory locked waits for a holder
 * that has left its mount (closing, or its fuse.epochfs mount gone from
 * mountinfo: `umount` returns before the old daemon has written back its
 * index) and fails at once on one that is starting or still mounted. */
#define LOCK_WAIT_S 60

const char *cache_mountinfo = "/proc/self/mountinfo";

void cache_note_owner(struct cache *c, const char *state)
{
	char line[5 * PATH_MAX];
	int n = snprintf(line, sizeof(line), "%ld %s\n", (long)getpid(), state), err;

	if (c->lockfd < 0 || n < 0 || (size_t)n >= sizeof(line))
		return;
	/* Written before the old line is cut off, so that a reader never sees
	 * an empty file; readers stop at the first newline. */
	if (pwrite(c->lockfd, line, (size_t)n, 0) != n || ftruncate(c->lockfd, n) < 0) {
		err = errno;
		log_warn("cache dir %s: cannot note the daemon's state: %s", c->dir,
			 strerror(err));
	}
}

struct mi_match {
	const char *esc, *dev;
	char *devout;
	size_t devlen;
	int found;
};

static int mi_match_cb(void *arg, const struct mountinfo_ent *e)
{
	struct mi_match *m = arg;

	if (strcmp(e->fstype, "fuse.epochfs") || strcmp(e->mp_escaped, m->esc))
		return 0;
	if (strcmp(m->dev, "-") && strcmp(e->dev, m->dev))
		return 0;
	m->found = 1;
	if (m->devout)
		snprintf(m->devout, m->devlen, "%s", e->dev);
	return 0;
}

/* The last fuse.epochfs mount at esc (and of device dev, unless dev is "-")
 * in cache_mountinfo: 1 and its device in devout, 0 if none, -1 if the file
 * cannot be read. */
static int mi_find(const char *esc, const char *dev, char *devout, size_t devlen)
{
	struct mi_match m = { esc, dev, devout, devlen, 0 };

	if (mountinfo_each(cache_mountinfo, mi_match_cb, &m) < 0)
		return -1;
	return m.found;
}

void cache_note_mounted(struct cache *c, const char *mountpoint)
{
	char esc[4 * PATH_MAX + 1], dev[32] = "-", state[sizeof(esc) + 48];

	/* Not noted (the holder stays "starting", which waiters do not wait
	 * for) when the path could not be matched against mountinfo anyway. */
	if (mountpoint[0] != '/' || mountinfo_escape(mountpoint, esc, sizeof(esc)) < 0)
		return;
	if (mi_find(esc, "-", dev, sizeof(dev)) != 1)
		snprintf(dev, sizeof(dev), "-");
	snprintf(state, sizeof(state), "mounted %s %s", dev, esc);
	cache_note_owner(c, state);
}

/* What the holder noted: 1 when it has left its mount, 0 when it has not,
 * -1 when the note is empty or partial; who gets a description. */
static int holder_leaving(int fd, char *who, size_t wholen)
{
	char buf[5 * PATH_MAX], dev[32], *state, *nl;
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
	long pid;
	int off = 0;

	buf[n > 0 ? n : 0] = 0;
	snprintf(who, wholen, "another epochfs daemon");
	if (!(nl = strchr(buf, '\n')))
		return -1;
	*nl = 0;
	if (sscanf(buf, "%ld ", &pid) != 1 || !(state = strchr(buf, ' ')))
		return -1;
	state++;
	if (sscanf(state, "mounted %31s %n", dev, &off) == 1 && off > 0) {
		snprintf(who, wholen, "epochfs pid %ld, mounted on %s", pid, state + off);
		return mi_find(state + off, dev, NULL, 0) == 0;
	}
	snprintf(who, wholen, "epochfs pid %ld, %s", pid, state);
	return !strcmp(state, "closing");
}

/* The lock was not taken: the fd goes, so that nothing this cache does
 * on its way out (cache_close notes "closing") touches the holder's note. */
static int unlocked(struct cache *c, int rc)
{
	close(c->lockfd);
	c->lockfd = -1;
	return rc;
}

static int lock_dir(struct cache *c, char *err, size_t errlen)
{
	char path[PATH_MAX], who[5 * PATH_MAX + 64];
	int logged = 0, seen_leaving = 0, e, r;

	snprintf(path, sizeof(path), "%s/lock", c->dir);
	c->lockfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (c->lockfd < 0) {
		e = errno;
		snprintf(err, errlen, "cache dir %s: %s", c->dir, strerror(e));
		return -e;
	}
	for (int waited_ms = 0; flock(c->lockfd, LOCK_EX | LOCK_NB) < 0; waited_ms += 20) {
		if (errno != EWOULDBLOCK) {
			e = errno;
			snprintf(err, errlen, "cache dir %s: lock: %s", c->dir, strerror(e));
			return unlocked(c, -e);
		}
		r = holder_leaving(c->lockfd, who, sizeof(who));
		if (r == 1)
			seen_leaving = 1;
		else if (!(r == -1 && seen_leaving)) { /* a note being rewritten */
			snprintf(err, errlen, "cache dir %s is in use by another epochfs daemon (%s); "
				 "give each mount its own --cache-dir", c->dir, who);
			return unlocked(c, -EBUSY);
		}
		if (waited_ms >= LOCK_WAIT_S * 1000) {
			snprintf(err, errlen, "cache dir %s is still held after %d s by %s, which "
				 "has left its mount", c->dir, LOCK_WAIT_S, who);
			return unlocked(c, -EBUSY);
		}
		if (!logged++)
			log_info("cache dir %s is held by %s, which has left its mount: "
				 "waiting for it to close", c->dir, who);
		usleep(20 * 1000);
	}
	cache_note_owner(c, "starting");
	return 0;
}

/* Listing.  Backends call back from threads of their own, but an LMDB write
 * transaction belongs to the thread that began it: so the backend lists on a
 * thread of its own into a bounded queue, and this thread fills the index. */
#define LIST_QUEUE 4096

struct list_item {
	char *key;
	struct backend_stat st;
};

struct list_ctx {
	struct cache *c;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct list_item q[LIST_QUEUE];
	unsigned head, n;
	int done, list_rc, stop_rc;
};

static int list_cb(void *arg, const char *key, const struct backend_stat *st)
{
	struct list_ctx *lc = arg;
	char *k = strdup(key);
	int rc;

	if (!k)
		return -ENOMEM;
	pthread_mutex_lock(&lc->lock);
	while (lc->n == LIST_QUEUE && !lc->stop_rc)
		pthread_cond_wait(&lc->cond, &lc->lock);
	rc = lc->stop_rc;
	if (!rc) {
		struct list_item *it = &lc->q[(lc->head + lc->n++) % LIST_QUEUE];

		it->key = k;
		it->st = *st;
		k = NULL;
		pthread_cond_broadcast(&lc->cond);
	}
	pthread_mutex_unlock(&lc->lock);
	free(k);
	return rc;
}

static void *lister_main(void *arg)
{
	struct list_ctx *lc = arg;
	int rc = lc->c->be->ops->list(lc->c->be, list_cb, lc);

	pthread_mutex_lock(&lc->lock);
	lc->done = 1;
	lc->list_rc = rc;
	pthread_cond_broadcast(&lc->cond);
	pthread_mutex_unlock(&lc->lock);
	return NULL;
}

/* Add one listed key; skipped keys are logged and counted, not errors. */
static int list_add(struct ns_builder *b, const char *key, const struct backend_stat *st,
		    uint64_t *n, uint64_t *skipped)
{
	int rc;

	/* The control directory cannot be shadowed by the dataset. */
	if (!strcmp(key, ".epochfs") || !strncmp(key, ".epochfs/", 9)) {
		log_warn("listing: '%s' hidden by the control directory .epochfs", key);
		(*skipped)++;
		return 0;
	}
	rc = index_ns_add(b, key, st);
	if (rc == -EEXIST || rc == -ENAMETOOLONG) {
		log_warn("listing: '%s' skipped (%s)", key,
			 rc == -EEXIST ? "a file and a directory of the same name" : "name too long");
		(*skipped)++;
		return 0;
	}
	if (rc)
		return rc;
	if (++*n % 100000 == 0)
		log_info("listing: %llu files", (unsigned long long)*n);
	return 0;
}

static int build_namespace(struct cache *c, char *err, size_t errlen)
{
	struct list_ctx *lc;
	struct ns_builder *b;
	uint64_t t0 = now_ns(), n = 0, skipped = 0;
	pthread_t th;
	int rc, rc2 = 0;

	lc = ec_calloc(1, sizeof(*lc));
	if (!lc)
		return -ENOMEM;
	lc->c = c;
	pthread_mutex_init(&lc->lock, NULL);
	pthread_cond_init(&lc->cond, NULL);
	rc = index_ns_begin(c->ix, c->be->url, &b);
	if (rc) {
		snprintf(err, errlen, "index: cannot start a listing: %s", strerror(-rc));
		goto out;
	}
	rc = -pthread_create(&th, NULL, lister_main, lc);
	if (rc) {
		index_ns_abort(b);
		goto out;
	}
	pthread_mutex_lock(&lc->lock);
	for (;;) {
		struct list_item it;

		while (!lc->n && !lc->done)
			pthread_cond_wait(&lc->cond, &lc->lock);
		if (!lc->n)
			break;
		it = lc->q[lc->head];
		lc->head = (lc->head + 1) % LIST_QUEUE;
		lc->n--;
		pthread_cond_broadcast(&lc->cond);
		pthread_mutex_unlock(&lc->lock);
		if (!rc2)
			rc2 = list_add(b, it.key, &it.st, &n, &skipped);
		free(it.key);
		pthread_mutex_lock(&lc->lock);
		if (rc2 && !lc->stop_rc) {
			lc->stop_rc = rc2; /* the lister stops at its next entry */
			pthread_cond_broadcast(&lc->cond);
		}
	}
	pthread_mutex_unlock(&lc->lock);
	pthread_join(th, NULL);
	rc = rc2 ? rc2 : lc->list_rc;
	if (rc) {
		index_ns_abort(b);
		if (!*err)
			snprintf(err, errlen, "listing %s failed: %s", c->be->url, strerror(-rc));
		goto out;
	}
	rc = index_ns_commit(b, &c->ns);
	if (rc) {
		snprintf(err, errlen, "index: cannot save the listing: %s", strerror(-rc));
		goto out;
	}
	log_info("listed %s: %llu files, %llu directories, %llu skipped, in %.2f s",
		 c->be->url, (unsigned long long)c->ns.files, (unsigned long long)c->ns.dirs,
		 (unsigned long long)skipped, (double)(now_ns() - t0) / 1e9);
out:
	pthread_mutex_destroy(&lc->lock);
	pthread_cond_destroy(&lc->cond);
	free(lc);
	return rc;
}

static int load_cb(void *arg, const struct obj_rec *r)
{
	struct cache *c = arg;
	struct obj *o;
	uint32_t i;
	int64_t blocks;

	for (i = 0; i < r->nchunks; i++)
		if (obj_chunk_present(r, i))
			break;
	if (i == r->nchunks)
		return 0; /* a tracking record: loaded when the object is next used */
	o = obj_new_locked(c, r->cid, r->size, r->chunk_size);
	if (!o)
		return 0;
	if (obj_nchunks(o) != r->nchunks) {
		obj_release_locked(c, o);
		return 0;
	}
	o->pe.freq = (uint32_t)MIN(r->access_count, (uint64_t)UINT32_MAX);
	o->pe.importance = (float)r->importance;
	o->pe.last = (uint64_t)r->last_access_ns;
	for (i = 0; i < r->nchunks; i++)
		if (obj_chunk_present(r, i)) {
			obj_bit_set(o, PRESENT, i, 1);
			*obj_sum(o, i) = r->sums[i];
			o->npresent++;
		}
	blocks = store_obj_blocks(c->st, o->cid);
	if (blocks < 0) {
		/* The file is gone: the record must not claim anything. */
		obj_bits_clear(o, PRESENT);
		o->npresent = 0;
		table_put(c, o);
		cache_mark_dirty(o);
		return 0;
	}
	o->alloc = (uint64_t)blocks + STORE_FILE_OVERHEAD;
	c->data_bytes += o->alloc;
	c->cached_bytes += present_bytes(o);
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
	drop = !o || (!o->npresent && !o->refs && !(o->act && o->act->fetches));
	pthread_mutex_unlock(&c->lock);
	return drop;
}

/* Records written per index transaction.  LMDB keeps the dirty pages of its
 * largest transaction for reuse, and the records are copied out first: a
 * batch bounds both (one transaction of a whole epoch's access counts held
 * tens of MiB). */
#define FLUSH_BATCH 256

/* Buckets looked at per hold of the lock while looking for dirty records. */
#define FLUSH_SCAN 65536

/* Write dirty records, FLUSH_BATCH per transaction; then free objects that
 * hold nothing.  Dirty objects are found by a pass over the table (a list
 * would cost a pointer in every object): one dirtied behind the pass waits
 * for the next tick, so a busy reader cannot keep this loop going. */
static void flush_dirty(struct cache *c)
{
	struct obj_rec *recs[FLUSH_BATCH];
	struct obj *o, **pp;
	size_t n, i, b = 0, scanned;
	uint32_t k;
	int rc, full = 0, done;

	for (;;) {
		n = 0;
		scanned = 0;
		pthread_mutex_lock(&c->lock);
		for (; b < c->nbuckets && n < FLUSH_BATCH && scanned < FLUSH_SCAN && !full;
		     scanned++) {
			for (o = c->table[b]; o; o = o->hnext) {
				struct obj_rec *r;

				if (!(o->flags & OBJ_DIRTY))
					continue;
				if (n == FLUSH_BATCH)
					break; /* the rest of this bucket next round */
				r = index_obj_alloc(obj_nchunks(o));
				if (!r) {
					full = 1; /* stays dirty: next time */
					break;
				}
				o->flags &= ~OBJ_DIRTY;
				memcpy(r->cid, o->cid, CID_LEN);
				r->size = o->size;
				r->chunk_size = obj_chunk_size(o);
				r->access_count = o->pe.freq;
				r->last_access_ns = (int64_t)o->pe.last;
				r->importance = o->pe.importance;
				r->next_use = o->pe.next_use;
				for (k = 0; k < obj_nchunks(o); k++)
					if (obj_bit(o, PRESENT, k)) {
						r->present[k >> 3] |= (uint8_t)(1u << (k & 7));
						r->sums[k] = *obj_sum(o, k);
					}
				recs[n++] = r;
			}
			if (!o)
				b++;
			else
				break;
		}
		done = b >= c->nbuckets;
		pthread_mutex_unlock(&c->lock);
		if (n) {
			rc = index_obj_put_many(c->ix, recs, n);
			if (rc)
				log_warn("index: cannot save %zu records: %s", n, strerror(-rc));
			for (i = 0; i < n; i++)
				index_obj_free(recs[i]);
		}
		if (full || done)
			break;
	}

	/* Objects that hold nothing and are unused live on only in the index.
	 * FLUSH_SCAN buckets per hold of the lock, as above: the table may grow
	 * between holds, and what this pass misses the next one frees. */
	for (b = 0, done = 0; !done;) {
		pthread_mutex_lock(&c->lock);
		for (scanned = 0; b < c->nbuckets && scanned < FLUSH_SCAN; b++, scanned++)
			for (pp = &c->table[b]; *pp;) {
				o = *pp;
				if (!o->refs && !o->npresent && !o->act &&
				    !(o->flags & OBJ_DIRTY)) {
					*pp = o->hnext;
					c->nobjs--;
					subst_forget_obj_locked(c, o);
					obj_release_locked(c, o);
					continue;
				}
				pp = &o->hnext;
			}
		done = b >= c->nbuckets;
		pthread_mutex_unlock(&c->lock);
	}

	pthread_mutex_lock(&c->lock);
	c->meta_bytes = index_disk_bytes(c->ix) + store_dir_bytes(c->st);
	c->meta_pending = 0;
	/* The index may have grown past the bound: give back data. */
	while (used_locked(c) > c->capacity) {
		struct pol_entry *v = policy_victim(c->pol, NULL);

		if (!v)
			break;
		evict_locked(c, (struct obj *)v);
		atomic_fetch_add_explicit(&c->ctr.evictions_for_index, 1, memory_order_relaxed);
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
		index_trim(c->ix);
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
	if (!chunk_size_ok(cfg->chunk_size)) {
		snprintf(err, errlen, "chunk size %u: not a power of two from 4K to 1G",
			 cfg->chunk_size);
		return -EINVAL;
	}
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
	pthread_cond_init(&c->cq_cond, NULL);
	pthread_cond_init(&c->pf_cond, NULL);
	c->pf_max = cfg->prefetch_concurrency ? cfg->prefetch_concurrency : be->concurrency;
	c->pf_max_bytes = cfg->prefetch_bytes ? cfg->prefetch_bytes : 256ull << 20;
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
	index_trim(c->ix); /* the listing and the load touched every page */
	log_info("cache %s: %llu objects, %llu of %llu bytes used", c->dir,
		 (unsigned long long)c->cached_objs, (unsigned long long)used_locked(c),
		 (unsigned long long)c->capacity);
	if (c->meta_bytes + META_HEADROOM(c->capacity) > c->capacity)
		log_warn("cache size %llu is smaller than the index (%llu bytes): nothing will be cached",
			 (unsigned long long)c->capacity, (unsigned long long)c->meta_bytes);
	rc = -pthread_create(&c->flusher, NULL, flusher_main, c);
	if (rc)
		goto fail;
	for (; c->nworkers < (int)ARRAY_SIZE(c->workers); c->nworkers++) {
		rc = -pthread_create(&c->workers[c->nworkers], NULL, store_worker, c);
		if (rc)
			goto fail;
	}
	rc = plan_create(&c->plan);
	if (!rc)
		rc = prefetch_start(c);
	if (rc)
		goto fail;
	*out = c;
	return 0;
fail:
	if (!*err)
		snprintf(err, errlen, "cannot open the cache: %s", strerror(-rc));
	c->flusher = 0;
	cache_close(c);
	return rc;
}

void cache_close(struct cache *c)
{
	struct obj *o, *next;

	if (!c)
		return;
	cache_note_owner(c, "closing"); /* a daemon waiting for the dir waits on */
	prefetch_stop(c);
	/* Every fetch in flight must settle before the workers go. */
	pthread_mutex_lock(&c->lock);
	while (c->fetches_inflight)
		pthread_cond_wait(&c->fetch_cond, &c->lock);
	c->stopping = 1;
	pthread_cond_broadcast(&c->flush_cond);
	pthread_cond_broadcast(&c->cq_cond);
	pthread_mutex_unlock(&c->lock);
	for (int i = 0; i < c->nworkers; i++)
		pthread_join(c->workers[i], NULL);
	if (c->flusher)
		pthread_join(c->flusher, NULL);
	plan_destroy(c->plan);
	free(c->redirect);
	free(c->served);
	free(c->sample_obj);
	if (c->ix && c->table)
		flush_dirty(c);
	for (size_t b = 0; c->table && b < c->nbuckets; b++)
		for (o = c->table[b]; o; o = next) {
			next = o->hnext;
			if (o->act && o->act->fd >= 0)
				close(o->act->fd);
			obj_release_locked(c, o);
		}
	for (size_t i = 0; i < c->nslabs; i++)
		munmap(c->slabs[i], OBJ_SLAB * sizeof(struct obj));
	free(c->slabs);
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
	pthread_cond_destroy(&c->cq_cond);
	pthread_cond_destroy(&c->pf_cond);
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
	int rc = index_getattr(c->ix, c->ns.srcid, ino, out);

	/* While a substituted handle is open, its path shows the served size. */
	if (!rc && c->cfg.substitute && !out->is_dir)
		subst_served_size(c, ino, &out->size);
	return rc;
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
	struct obj *o;
	int rc;

	pthread_mutex_lock(&c->lock);
	o = table_get(c, cid);
	if (!o) { /* read its record unlocked, then look again */
		pthread_mutex_unlock(&c->lock);
		rc = index_obj_get(c->ix, cid, &r);
		if (rc && rc != -ENOENT)
			log_warn("index: object record unreadable (%s); refetching", strerror(-rc));
		if (r && (r->size != size || !chunk_size_ok(r->chunk_size))) {
			index_obj_free(r);
			r = NULL;
		}
		pthread_mutex_lock(&c->lock);
		o = table_get(c, cid);
	}
	if (!o) {
		o = obj_new_locked(c, cid, size, r ? r->chunk_size : c->cfg.chunk_size);
		if (!o) {
			pthread_mutex_unlock(&c->lock);
			index_obj_free(r);
			return -ENOMEM;
		}
		if (r && r->nchunks == obj_nchunks(o)) {
			/* Only the policy state: chunks not loaded at start are not trusted. */
			o->pe.freq = (uint32_t)MIN(r->access_count, (uint64_t)UINT32_MAX);
			o->pe.importance = (float)r->importance;
			o->pe.last = (uint64_t)r->last_access_ns;
		}
		table_put(c, o);
		c->meta_pending += META_PER_RECORD;
	}
	if (obj_activate_locked(o)) { /* a fresh o is freed by the flusher */
		pthread_mutex_unlock(&c->lock);
		index_obj_free(r);
		return -ENOMEM;
	}
	if (o->refs++ == 0) {
		policy_remove(c->pol, &o->pe);
		if (o->flags & OBJ_IDLEFD) {
			o->flags &= ~OBJ_IDLEFD;
			c->idle_fds--;
		}
	}
	pthread_mutex_unlock(&c->lock);
	index_obj_free(r);
	*out = o;
	return 0;
}

/* o was just unpinned: the store fd to close (unlocked), or -1 when there
 * is none or it is kept for the first read of a prefetched object. */
static int unpinned_fd_locked(struct cache *c, struct obj *o)
{
	int fd = o->act->fd;

	if (fd >= 0 && (o->flags & OBJ_PREFETCHED) && o->npresent && c->idle_fds < IDLE_FDS_MAX) {
		o->flags |= OBJ_IDLEFD;
		c->idle_fds++;
		return -1;
	}
	o->act->fd = -1;
	return fd;
}

/* o's held chunks, off the object and the count; put them unlocked. */
static struct fetch *take_held_locked(struct cache *c, struct obj *o)
{
	struct fetch *held = o->act->held;

	for (struct fetch *fe = held; fe; fe = fe->next)
		c->held_bytes -= fe->len;
	o->act->held = NULL;
	return held;
}

/* o's last pin went (lock held): back in the policy if it holds anything,
 * its in-use part dropped; *fd and *held are for the caller to release
 * unlocked. */
static void obj_unpinned_locked(struct cache *c, struct obj *o, int *fd, struct fetch **held)
{
	*fd = unpinned_fd_locked(c, o);
	*held = take_held_locked(c, o);
	if (o->npresent)
		policy_insert(c->pol, &o->pe);
	obj_deactivate_locked(o);
}

static void obj_unpin(struct cache *c, struct obj *o)
{
	struct fetch *held = NULL, *next;
	int fd = -1;

	pthread_mutex_lock(&c->lock);
	if (--o->refs == 0)
		obj_unpinned_locked(c, o, &fd, &held);
	pthread_mutex_unlock(&c->lock);
	if (fd >= 0)
		close(fd);
	for (; held; held = next) {
		next = held->next;
		fetch_put(c, held);
	}
}

/* Open the store file of a pinned object whose fd was found closed; kept
 * until the object is unpinned. */
static int obj_fd(struct cache *c, struct obj *o)
{
	int fd = store_obj_open(c->st, o->cid, 0);

	if (fd < 0)
		return fd;
	pthread_mutex_lock(&c->lock);
	if (o->act->fd >= 0) {
		close(fd);
		fd = o->act->fd;
	} else {
		o->act->fd = fd;
	}
	pthread_mutex_unlock(&c->lock);
	return fd;
}

int cache_identity(struct cache *c, uint64_t ino, struct ns_attr *a, char *key, size_t keylen,
		   uint8_t cid[CID_LEN])
{
	int rc = index_getattr(c->ix, c->ns.srcid, ino, a);

	if (!rc && a->is_dir)
		rc = -EISDIR;
	if (!rc)
		rc = index_path(c->ix, c->ns.srcid, ino, key, keylen);
	if (!rc)
		content_id(c, key, a, cid);
	return rc;
}

/* With substitution on: which file's bytes this open of ino (whose object
 * is cid) serves; 0 or -errno. */
static int pick_content(struct cache *c, uint64_t ino, const struct ns_attr *a,
			const uint8_t *cid, uint64_t *content)
{
	struct obj *xo;
	int rc;

	*content = ino;
	if (!c->cfg.substitute)
		return 0;
	rc = obj_pin(c, cid, a->size, &xo);
	if (rc)
		return rc;
	subst_target(c, ino, a, xo, content);
	obj_unpin(c, xo);
	return 0;
}

int cache_file_open(struct cache *c, uint64_t ino, struct cache_file **out)
{
	return cache_file_open_ex(c, ino, 1, out);
}

int cache_file_open_ex(struct cache *c, uint64_t ino, int access, struct cache_file **out)
{
	struct cache_file *f;
	struct ns_attr a;
	uint8_t cid[CID_LEN];
	uint64_t content;
	int rc, hit;

	*out = NULL;
	f = ec_calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	rc = cache_identity(c, ino, &a, f->key, sizeof(f->key), cid);
	if (!rc)
		rc = pick_content(c, ino, &a, cid, &content);
	if (!rc && content != ino)
		rc = cache_identity(c, content, &a, f->key, sizeof(f->key), cid);
	if (rc)
		goto fail;
	f->c = c;
	f->ino = content;
	f->open_ino = ino;
	f->substituted = content != ino;
	f->ident.size = a.size;
	f->ident.mtime_ns = a.mtime_ns;
	memcpy(f->ident.etag, a.etag, sizeof(a.etag));
	rc = obj_pin(c, cid, a.size, &f->o);
	if (rc)
		goto fail;
	if (!access) {
		*out = f;
		return 0;
	}
	pthread_mutex_lock(&c->lock);
	if (f->o->pe.freq < UINT32_MAX)
		f->o->pe.freq++;
	f->o->pe.last = (uint64_t)wall_ns();
	hit = f->o->npresent == obj_nchunks(f->o);
	cache_mark_dirty(f->o);
	if (c->nep) {
		c->ep[(c->nep - 1) % EPOCH_HISTORY].opens++;
		c->ep[(c->nep - 1) % EPOCH_HISTORY].open_hits += hit;
	}
	prefetch_on_open_locked(c, f->o, ino, content);
	pthread_mutex_unlock(&c->lock);
	if (f->substituted)
		subst_handle_open(c, ino, a.size);
	atomic_fetch_add_explicit(&c->ctr.opens, 1, memory_order_relaxed);
	if (hit)
		atomic_fetch_add_explicit(&c->ctr.open_hits, 1, memory_order_relaxed);
	*out = f;
	return 0;
fail:
	free(f);
	return rc;
}

int cache_file_substituted(const struct cache_file *f)
{
	return f->substituted;
}

void cache_set_no_open(struct cache *c, int no_open)
{
	c->cfg.no_open = no_open;
}

int cache_substitute_mode(const struct cache *c)
{
	return c->cfg.substitute;
}

void cache_file_close(struct cache_file *f)
{
	if (!f)
		return;
	if (f->substituted)
		subst_handle_close(f->c, f->open_ino);
	obj_unpin(f->c, f->o);
	free(f);
}

uint64_t cache_file_size(const struct cache_file *f)
{
	return f->o->size;
}

static void fetch_free(struct fetch *fe)
{
	pthread_cond_destroy(&fe->done);
	free(fe->buf);
	free(fe);
}

static void fetch_put(struct cache *c, struct fetch *fe)
{
	int last;

	pthread_mutex_lock(&c->lock);
	last = --fe->refs == 0;
	pthread_mutex_unlock(&c->lock);
	if (last)
		fetch_free(fe);
}

/* Backend thread: queue the completion for a store worker. */
static void fetch_done(struct backend_req *req)
{
	struct fetch *fe = req->arg;
	struct cache *c = fe->c;

	pthread_mutex_lock(&c->lock);
	fe->result = req->result;
	fe->qnext = NULL;
	if (c->cq_tail)
		c->cq_tail->qnext = fe;
	else
		c->cq_head = fe;
	c->cq_tail = fe;
	pthread_cond_signal(&c->cq_cond);
	pthread_mutex_unlock(&c->lock);
}

/* Store a fetched chunk if the policy admits it; mark it present. */
static void fetch_store_and_lock(struct cache *c, struct fetch *fe)
{
	struct obj *o = fe->o;
	uint64_t need, sum;
	int fd, rc, created = 0;
	static atomic_int enospc_logged;

	pthread_mutex_lock(&c->lock);
	need = round_block(fe->len) + (o->alloc ? 0 : STORE_FILE_OVERHEAD);
	if (o->act->resv >= need) {
		/* Reserved when the prefetch was issued: stored whatever the
		 * object's key has become since (a reader may have opened it). */
		o->act->resv -= need;
		rc = 0;
	} else {
		c->reserved -= o->act->resv;
		o->act->resv = 0;
		rc = reserve_locked(c, o, need);
	}
	if (rc) {
		atomic_fetch_add_explicit(&c->ctr.not_admitted, 1, memory_order_relaxed);
		if (fe->prefetch && cache_epoch_locked(c))
			cache_epoch_locked(c)->not_stored_prefetch++;
		return;
	}
	fd = o->act->fd;
	pthread_mutex_unlock(&c->lock);
	sum = store_checksum(fe->buf, fe->len);
	if (fd < 0) {
		fd = store_obj_open(c->st, o->cid, 1);
		created = fd >= 0;
	}
	rc = fd < 0 ? fd : store_write(fd, (uint64_t)fe->chunk * obj_chunk_size(o), fe->buf, fe->len);
	if (rc == -ENOSPC) {
		store_punch(fd, (uint64_t)fe->chunk * obj_chunk_size(o), fe->len);
		log_once(enospc_logged, LOG_LVL_WARN,
			 "cache disk full (ENOSPC) in %s: serving reads from the source uncached", c->dir);
	} else if (rc) {
		atomic_fetch_add_explicit(&c->ctr.store_errors, 1, memory_order_relaxed);
		log_warn("cache store write failed: %s", strerror(-rc));
	}
	pthread_mutex_lock(&c->lock);
	if (created) {
		if (o->act->fd < 0)
			o->act->fd = fd; /* closed when the object is unpinned */
		else
			close(fd); /* another worker opened it meanwhile */
	}
	c->reserved -= need;
	if (rc == 0 && !obj_bit(o, PRESENT, fe->chunk)) {
		if (!o->npresent)
			c->cached_objs++;
		obj_bit_set(o, PRESENT, fe->chunk, 1);
		obj_bit_set(o, VERIFIED, fe->chunk, 1);
		*obj_sum(o, fe->chunk) = sum;
		o->npresent++;
		c->cached_bytes += fe->len;
		o->alloc += need;
		c->data_bytes += need;
		cache_mark_dirty(o);
	} else if (rc == -ENOSPC) {
		c->degraded = 1;
		c->degraded_until = now_ns() + 30ull * 1000000000ull;
	}
}

/* The source changed under a file: record the new identity and drop the
 * kernel's view.  Content-addressed, the old object is simply never asked
 * for again; the next open fetches the new version. */
static void source_changed(struct cache *c, uint64_t ino, const char *key, uint64_t old_size,
			   const struct backend_stat *cur)
{
	atomic_fetch_add_explicit(&c->ctr.stale, 1, memory_order_relaxed);
	log_warn("%s changed at the source (size %llu -> %llu); its cached copy is dropped", key,
		 (unsigned long long)old_size, (unsigned long long)cur->size);
	index_set_identity(c->ix, c->ns.srcid, ino, cur);
	if (c->inval)
		c->inval(c->inval_arg, ino);
}

/* Store worker: settle completed fetches.  Per fetch: one critical section
 * to take it off the queue, one to reserve room, and one to record the
 * chunk, settle the fetch, wake its waiters and drop its references. */
static void *store_worker(void *arg)
{
	struct cache *c = arg;
	struct fetch *fe, *held, *next, *drop;
	struct obj *o;
	int fd, last;

	pthread_mutex_lock(&c->lock);
	for (;;) {
		while (!c->cq_head && !c->stopping)
			pthread_cond_wait(&c->cq_cond, &c->lock);
		if (!c->cq_head)
			break;
		fe = c->cq_head;
		c->cq_head = fe->qnext;
		if (!c->cq_head)
			c->cq_tail = NULL;
		pthread_mutex_unlock(&c->lock);

		o = fe->o;
		if (fe->result == (ssize_t)fe->len) {
			atomic_fetch_add_explicit(&c->ctr.fetch_bytes, fe->len, memory_order_relaxed);
			fetch_store_and_lock(c, fe);
		} else {
			if (fe->result == -ESTALE) {
				source_changed(c, fe->ino, fe->key, o->size, &fe->req.current);
			} else if (fe->result >= 0) {
				log_warn("%s: source returned %zd bytes of chunk %u, expected %zu",
					 fe->key, fe->result, fe->chunk, fe->len);
				fe->result = -EIO;
			}
			pthread_mutex_lock(&c->lock);
		}

		for (struct fetch **pp = &o->act->fetches; *pp; pp = &(*pp)->next)
			if (*pp == fe) {
				*pp = fe->next;
				break;
			}
		fe->settled = 1;
		o->act->inflight--;
		c->fetches_inflight--;
		if (!o->act->inflight && o->act->resv) {
			c->reserved -= o->act->resv; /* failed or unneeded fetches */
			o->act->resv = 0;
		}
		drop = NULL;
		if (fe->result == (ssize_t)fe->len && !obj_bit(o, PRESENT, fe->chunk) &&
		    o->refs > 1 && c->held_bytes + fe->len <= HELD_MAX_BYTES) {
			/* Not stored, but the object is open: keep the bytes for
			 * its reads, which would otherwise fetch them again. */
			struct fetch **pp = &o->act->held;
			int n = 0;

			for (; *pp && ++n < HELD_PER_OBJ; pp = &(*pp)->next)
				;
			if (*pp) { /* the oldest goes */
				drop = *pp;
				*pp = NULL;
				c->held_bytes -= drop->len;
			}
			fe->refs++;
			fe->next = o->act->held;
			o->act->held = fe;
			c->held_bytes += fe->len;
		}
		if (fe->prefetch) {
			c->pf_inflight--;
			c->pf_inflight_bytes -= fe->len;
			pthread_cond_signal(&c->pf_cond);
		}
		if (!o->act->inflight && (o->flags & OBJ_PREFETCHING)) {
			o->flags &= ~OBJ_PREFETCHING;
			c->pf_objs--;
			if (o->npresent == obj_nchunks(o) && !(o->flags & OBJ_LATE))
				o->flags |= OBJ_PREFETCHED;
			o->flags &= ~OBJ_LATE;
		}
		pthread_cond_broadcast(&fe->done);
		/* subst.c waits on fetch_cond for an object's arrival, and
		 * cache_close for the last fetch to settle. */
		if (c->cfg.substitute || !c->fetches_inflight)
			pthread_cond_broadcast(&c->fetch_cond);
		/* The fetch's pin on the object (obj_unpin) and its reference. */
		fd = -1;
		held = NULL;
		if (--o->refs == 0)
			obj_unpinned_locked(c, o, &fd, &held);
		last = --fe->refs == 0;
		pthread_mutex_unlock(&c->lock);
		if (fd >= 0)
			close(fd);
		if (drop)
			fetch_put(c, drop);
		for (; held; held = next) {
			next = held->next;
			fetch_put(c, held);
		}
		if (last)
			fetch_free(fe);
		pthread_mutex_lock(&c->lock);
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

/* Start fetching chunk k of o, which the caller has pinned; lock held.  The
 * fetch pins o again until it settles.  The caller submits it (outside the
 * lock) with fetch_submit.  NULL on ENOMEM. */
static struct fetch *fetch_new_locked(struct cache *c, struct obj *o, uint32_t k, uint64_t ino,
				      const char *key, const struct backend_stat *ident, int prefetch)
{
	size_t len = chunk_len(o, k);
	struct fetch *fe = ec_calloc(1, sizeof(*fe));

	if (!fe)
		return NULL;
	fe->buf = ec_malloc(len ? len : 1);
	if (!fe->buf) {
		free(fe);
		return NULL;
	}
	pthread_cond_init(&fe->done, NULL);
	fe->c = c;
	fe->o = o;
	fe->chunk = k;
	fe->len = len;
	fe->ino = ino;
	fe->prefetch = prefetch;
	fe->refs = 1;
	snprintf(fe->key, sizeof(fe->key), "%s", key);
	fe->req.key = fe->key;
	fe->req.off = (uint64_t)k * obj_chunk_size(o);
	fe->req.len = len;
	fe->req.buf = fe->buf;
	fe->req.expect = *ident;
	fe->req.done = fetch_done;
	fe->req.arg = fe;
	fe->next = o->act->fetches;
	o->act->fetches = fe;
	o->refs++;
	o->act->inflight++;
	c->fetches_inflight++;
	if (cache_epoch_locked(c)) {
		struct epoch_stats *e = cache_epoch_locked(c);

		if (o->fseq != (uint8_t)c->nep) {
			obj_bits_clear(o, FETCHED);
			o->fseq = (uint8_t)c->nep;
		}
		e->fetched_bytes += len;
		if (prefetch && plan_use_epoch(o->pe.next_use) > plan_epoch(c->plan))
			e->prefetched_ahead_bytes += len;
		if (obj_bit(o, FETCHED, k))
			e->refetched_bytes += len;
		obj_bit_set(o, FETCHED, k, 1);
	}
	if (prefetch) {
		c->pf_inflight++;
		c->pf_inflight_bytes += len;
		if (!(o->flags & OBJ_PREFETCHING))
			c->pf_objs++;
		o->flags |= OBJ_PREFETCHING;
	}
	return fe;
}

static void fetch_submit(struct cache *c, struct fetch *fe)
{
	int rc;

	atomic_fetch_add_explicit(&c->ctr.fetches, 1, memory_order_relaxed);
	rc = c->be->ops->submit(c->be, &fe->req);
	if (rc) {
		log_warn("%s: the backend refused the read: %s", fe->key, strerror(-rc));
		fe->req.result = rc == -ENOMEM ? rc : -EIO;
		fetch_done(&fe->req);
	}
}

int cache_prefetch_obj(struct cache *c, struct obj *o, uint64_t ino, const char *key,
		       const struct backend_stat *ident)
{
	struct fetch *batch[64], *fe;
	int n = 0, total = 0;
	uint32_t k = 0;

	while (k < obj_nchunks(o)) {
		uint64_t need = 0;
		uint32_t kk;
		int want = 0;

		pthread_mutex_lock(&c->lock);
		/* Room for this batch first: what it would fetch. */
		for (kk = k; kk < obj_nchunks(o) && want < (int)ARRAY_SIZE(batch); kk++) {
			if (obj_bit(o, PRESENT, kk))
				continue;
			for (fe = o->act->fetches; fe && fe->chunk != kk; fe = fe->next)
				;
			if (fe)
				continue;
			need += round_block(chunk_len(o, kk));
			want++;
		}
		if (!want) {
			pthread_mutex_unlock(&c->lock);
			break;
		}
		if (!o->alloc && !o->act->resv)
			need += STORE_FILE_OVERHEAD;
		if (reserve_prefetch_locked(c, o, need)) {
			pthread_mutex_unlock(&c->lock);
			return total ? total : -ENOSPC;
		}
		for (; k < kk; k++) {
			if (obj_bit(o, PRESENT, k))
				continue;
			for (fe = o->act->fetches; fe && fe->chunk != k; fe = fe->next)
				;
			if (fe)
				continue;
			fe = fetch_new_locked(c, o, k, ino, key, ident, 1);
			if (!fe)
				break;
			batch[n++] = fe;
		}
		if (k < kk) {
			/* Out of memory.  What is reserved is given back when the
			 * object's last fetch settles, or now if none is in flight. */
			if (!o->act->inflight) {
				c->reserved -= o->act->resv;
				o->act->resv = 0;
			}
			k = obj_nchunks(o);
		}
		pthread_mutex_unlock(&c->lock);
		for (int i = 0; i < n; i++)
			fetch_submit(c, batch[i]);
		total += n;
		if (n < (int)ARRAY_SIZE(batch))
			break;
		n = 0;
	}
	return total;
}

/* Make chunk k of f's object readable: a segment of the store file, or of
 * memory held in *hold (a fetch when *is_fetch).  0 or -errno. */
static int chunk_get(struct cache_file *f, uint32_t k, struct cache_seg *seg, void **hold,
		     int *is_fetch, int *from_cache)
{
	struct cache *c = f->c;
	struct obj *o = f->o;
	struct fetch *fe;
	size_t len = chunk_len(o, k);
	uint64_t off = (uint64_t)k * obj_chunk_size(o), t0;
	int fd, rc, present, verified, start = 0;
	void *buf;

	*hold = NULL;
	*is_fetch = 0;
	*from_cache = 0;
	/* One look under the lock: on a warm read that is all the locking. */
	pthread_mutex_lock(&c->lock);
	present = obj_bit(o, PRESENT, k);
	verified = obj_bit(o, VERIFIED, k);
	fd = o->act->fd;
	pthread_mutex_unlock(&c->lock);
	if (present) {
		if (fd < 0)
			fd = obj_fd(c, o);
		if (fd >= 0 && verified) {
			*seg = (struct cache_seg){ .fd = fd, .off = off, .len = len };
			*from_cache = 1;
			return 0;
		}
		buf = fd >= 0 ? ec_malloc(len) : NULL;
		if (buf && store_read(fd, off, buf, len) == 0 &&
		    store_checksum(buf, len) == *obj_sum(o, k)) {
			pthread_mutex_lock(&c->lock);
			obj_bit_set(o, VERIFIED, k, 1);
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
		if (obj_bit(o, PRESENT, k)) {
			uint64_t give = round_block(len);

			obj_bit_set(o, PRESENT, k, 0);
			o->npresent--;
			c->cached_bytes -= len;
			if (!o->npresent) {
				c->cached_objs--;
				give = o->alloc;
			}
			give = MIN(give, o->alloc);
			o->alloc -= give;
			c->data_bytes -= give;
			cache_mark_dirty(o);
		}
		pthread_mutex_unlock(&c->lock);
		if (fd >= 0)
			store_punch(fd, off, len);
	}

	/* Join the fetch of this chunk, or start it. */
	pthread_mutex_lock(&c->lock);
	for (fe = o->act->fetches; fe && fe->chunk != k; fe = fe->next)
		;
	if (!fe) {
		if (obj_bit(o, PRESENT, k)) { /* settled in the meantime */
			pthread_mutex_unlock(&c->lock);
			return chunk_get(f, k, seg, hold, is_fetch, from_cache);
		}
		for (fe = o->act->held; fe && fe->chunk != k; fe = fe->next)
			;
		if (fe) { /* fetched while open, not stored */
			fe->refs++;
			pthread_mutex_unlock(&c->lock);
			*seg = (struct cache_seg){ .fd = -1, .off = off, .len = len, .buf = fe->buf };
			*hold = fe;
			*is_fetch = 1;
			return 0;
		}
		fe = fetch_new_locked(c, o, k, f->ino, f->key, &f->ident, 0);
		if (!fe) {
			pthread_mutex_unlock(&c->lock);
			return -ENOMEM;
		}
		start = 1;
	}
	fe->refs++;
	pthread_mutex_unlock(&c->lock);
	if (start)
		fetch_submit(c, fe);

	t0 = now_ns();
	pthread_mutex_lock(&c->lock);
	while (!fe->settled)
		pthread_cond_wait(&fe->done, &c->lock);
	rc = fe->result < 0 ? (int)fe->result : 0;
	pthread_mutex_unlock(&c->lock);
	atomic_fetch_add_explicit(&c->ctr.stall_ns, now_ns() - t0, memory_order_relaxed);
	if (rc) {
		if (rc == -ESTALE)
			f->stale = 1;
		fetch_put(c, fe);
		return rc;
	}
	*seg = (struct cache_seg){ .fd = -1, .off = off, .len = len, .buf = fe->buf };
	*hold = fe;
	*is_fetch = 1;
	return 0;
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
		int cached, is_fetch;
		uint64_t cstart, skip;
		size_t take;

		k = (uint32_t)(pos / obj_chunk_size(o));
		rc = chunk_get(f, k, &seg, &hold, &is_fetch, &cached);
		if (rc < 0)
			break;
		if (hold) {
			/* Tag fetch references so release knows how to drop them. */
			rd->hold[rd->nhold++] = (void *)((uintptr_t)hold | (is_fetch ? 1u : 0u));
		}
		cstart = (uint64_t)k * obj_chunk_size(o);
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

	rc = cache_identity(c, ino, &a, key, sizeof(key), cid);
	if (rc)
		return rc;
	*size = a.size;
	*cached = 0;
	pthread_mutex_lock(&c->lock);
	o = table_get(c, cid);
	if (o)
		for (uint32_t k = 0; k < obj_nchunks(o); k++)
			if (obj_bit(o, PRESENT, k))
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
	uint64_t data, meta, objs, fbytes, cap = c->capacity, epoch = 0, pos = 0, nep, eplen = 0, debt;
	uint64_t bb_now = atomic_load(&b->bytes);
	struct epoch_stats ep[EPOCH_HISTORY];
	int degraded, planned;
	char *s, *t, src[1024];
	int n;

	json_escape(c->be->url, src, sizeof(src));
	pthread_mutex_lock(&c->lock);
	data = c->data_bytes + c->reserved;
	meta = c->meta_bytes;
	objs = c->cached_objs;
	fbytes = c->cached_bytes;
	degraded = c->degraded;
	planned = plan_mode(c->plan) != PLAN_OFF;
	if (planned) {
		epoch = plan_epoch(c->plan);
		pos = plan_position(c->plan);
		plan_order(c->plan, &eplen);
	}
	nep = c->nep;
	debt = c->debt;
	memcpy(ep, c->ep, sizeof(ep));
	pthread_mutex_unlock(&c->lock);
	n = asprintf(&s,
		     "{\"version\":1,\"source\":\"%s\",\"backend\":\"%s\",\"policy\":\"%s\","
		     "\"open_mode\":\"%s\","
		     "\"uptime_ns\":%llu,\"files\":%llu,"
		     "\"opens\":%llu,\"open_hits\":%llu,\"reads\":%llu,\"read_bytes\":%llu,"
		     "\"read_bytes_from_cache\":%llu,\"stall_ns\":%llu,"
		     "\"backend_requests\":%llu,\"backend_bytes\":%llu,\"backend_errors\":%llu,"
		     "\"backend_retries\":%llu,\"skipped_keys\":%llu,"
		     "\"fetches\":%llu,\"fetch_bytes\":%llu,"
		     "\"cache_bytes\":%llu,\"cache_data_bytes\":%llu,\"cache_meta_bytes\":%llu,"
		     "\"cache_capacity\":%llu,\"cache_objects\":%llu,\"cache_file_bytes\":%llu,"
		     "\"evictions\":%llu,"
		     "\"evictions_for_index\":%llu,"
		     "\"not_admitted\":%llu,\"verify_failures\":%llu,\"stale\":%llu,"
		     "\"store_errors\":%llu,\"cache_degraded\":%d,"
		     "\"planned\":%d,\"epoch\":%llu,\"position\":%llu,\"epoch_length\":%llu,"
		     "\"prefetch_issued\":%llu,\"prefetch_used\":%llu,\"prefetch_late\":%llu,"
		     "\"prefetch_wasted\":%llu,\"substitutions\":%llu,\"substitution_debt\":%llu,"
		     "\"epochs\":[",
		     src, c->be->ops->name,
		     policy_name(planned ? POLICY_BELADY : c->cfg.policy),
		     c->cfg.no_open ? "no-open" : "open",
		     (unsigned long long)(now_ns() - c->started_ns), (unsigned long long)c->ns.files,
		     LD(c->ctr.opens), LD(c->ctr.open_hits), LD(c->ctr.reads), LD(c->ctr.read_bytes),
		     LD(c->ctr.read_bytes_from_cache), LD(c->ctr.stall_ns),
		     LD(b->requests), LD(b->bytes), LD(b->errors), LD(b->retries), LD(b->skipped_keys),
		     LD(c->ctr.fetches), LD(c->ctr.fetch_bytes),
		     (unsigned long long)(data + meta), (unsigned long long)data,
		     (unsigned long long)meta, (unsigned long long)cap, (unsigned long long)objs,
		     (unsigned long long)fbytes,
		     LD(c->ctr.evictions), LD(c->ctr.evictions_for_index), LD(c->ctr.not_admitted), LD(c->ctr.verify_failures),
		     LD(c->ctr.stale), LD(c->ctr.store_errors), degraded, planned,
		     (unsigned long long)epoch, (unsigned long long)pos, (unsigned long long)eplen,
		     LD(c->prefetch_issued), LD(c->prefetch_used), LD(c->prefetch_late),
		     LD(c->prefetch_wasted), LD(c->substitutions), (unsigned long long)debt);
	if (n < 0)
		return -ENOMEM;
	for (uint64_t i = nep > EPOCH_HISTORY ? nep - EPOCH_HISTORY : 0; i < nep; i++) {
		const struct epoch_stats *e = &ep[i % EPOCH_HISTORY];
		uint64_t end = i + 1 < nep ? ep[(i + 1) % EPOCH_HISTORY].backend_bytes_at_start : bb_now;

		n = asprintf(&t, "%s%s{\"epoch\":%llu,\"opens\":%llu,\"open_hits\":%llu,"
				 "\"backend_bytes\":%llu,\"substitutions\":%llu,"
				 "\"cached_objects_at_start\":%llu,\"cached_bytes_at_start\":%llu,"
				 "\"fetched_bytes\":%llu,\"refetched_bytes\":%llu,"
				 "\"prefetched_ahead_bytes\":%llu,\"evicted_planned\":%llu,"
				 "\"not_stored_prefetch\":%llu}",
			     s, i > (nep > EPOCH_HISTORY ? nep - EPOCH_HISTORY : 0) ? "," : "",
			     (unsigned long long)e->epoch, (unsigned long long)e->opens,
			     (unsigned long long)e->open_hits,
			     (unsigned long long)(end - e->backend_bytes_at_start),
			     (unsigned long long)e->substitutions,
			     (unsigned long long)e->cached_objects_at_start,
			     (unsigned long long)e->cached_bytes_at_start,
			     (unsigned long long)e->fetched_bytes, (unsigned long long)e->refetched_bytes,
			     (unsigned long long)e->prefetched_ahead_bytes,
			     (unsigned long long)e->evicted_planned,
			     (unsigned long long)e->not_stored_prefetch);
		free(s);
		if (n < 0)
			return -ENOMEM;
		s = t;
	}
	n = asprintf(&t, "%s]}\n", s);
	free(s);
	if (n < 0)
		return -ENOMEM;
	*out = t;
	*len = (size_t)n;
	return 0;
}

/* ---- internal interface for prefetch.c and control.c ---- */

struct obj *cache_table_get(struct cache *c, const uint8_t *cid)
{
	return table_get(c, cid);
}

int cache_obj_pin(struct cache *c, const uint8_t *cid, uint64_t size, struct obj **out)
{
	return obj_pin(c, cid, size, out);
}

void cache_obj_unpin(struct cache *c, struct obj *o)
{
	obj_unpin(c, o);
}

void cache_evict_obj_locked(struct cache *c, struct obj *o)
{
	evict_locked(c, o);
}

uint64_t cache_used_locked(const struct cache *c)
{
	return used_locked(c);
}
