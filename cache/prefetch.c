/* SPDX-License-Identifier: MIT */
/* The clairvoyant prefetcher.
 *
 * Told the order (cache/plan.c), one thread walks the plan from the readers'
 * position forward, across the epoch boundary when the next epoch is known,
 * and starts fetches for what is not cached, nearest use first, keeping at
 * most pf_max fetches and pf_max_bytes in flight.  The room for a prefetch
 * is reserved when it is issued, and may be taken only from objects whose
 * next use is in a later epoch than the prefetched one's (so nothing is
 * fetched whose next use is later than that of what it displaces, and
 * nothing is displaced that this epoch still needs: docs/policy.md).  It
 * stops at the first sample it finds no such room for, and waits for the
 * readers to move.
 *
 * While a plan is in force the eviction policy is BELADY: each cached
 * object's key is its next use.  Keys change only when the object is opened
 * (done at the open) or when the plan or the epoch changes (a rekey of every
 * object, done here, off the read path). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <strings.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache_int.h"
#include "store.h"
#include "backends/base/log.h"
#include "backends/base/util.h"

#define SCAN_PER_ROUND 4096

void prefetch_epoch_begin_locked(struct cache *c)
{
	struct epoch_stats *e = &c->ep[c->nep % EPOCH_HISTORY];

	memset(e, 0, sizeof(*e));
	e->epoch = plan_epoch(c->plan);
	e->backend_bytes_at_start = atomic_load(&c->be->counters.bytes);
	/* Prefetches in flight count: fetched before, stored when they land. */
	e->cached_objects_at_start = c->cached_objs + c->pf_objs;
	e->cached_bytes_at_start = c->cached_bytes + c->pf_inflight_bytes;
	c->nep++;
}

/* The eviction key of sample i under the plan. */
static uint64_t key_of(const struct cache *c, uint32_t i)
{
	return c->cfg.substitute ? subst_key_locked(c, i) : plan_next_use(c->plan, i);
}

void prefetch_on_open_locked(struct cache *c, struct obj *o, uint64_t ino, uint64_t content_ino)
{
	uint32_t i;

	if (o->flags & OBJ_PREFETCHED) {
		atomic_fetch_add_explicit(&c->prefetch_used, 1, memory_order_relaxed);
		o->flags &= ~OBJ_PREFETCHED;
	} else if ((o->flags & OBJ_PREFETCHING) && !(o->flags & OBJ_LATE)) {
		atomic_fetch_add_explicit(&c->prefetch_late, 1, memory_order_relaxed);
		o->flags |= OBJ_LATE; /* counted once: not "used" when it lands */
	}
	if (plan_mode(c->plan) == PLAN_OFF)
		return;
	if (content_ino != ino)
		subst_set_sample_locked(c, o, plan_sample_of(c->plan, content_ino));
	i = plan_sample_of(c->plan, ino);
	if (content_ino == ino)
		subst_set_sample_locked(c, o, i);
	if (i == PLAN_NONE)
		return;
	if (plan_on_open(c->plan, i)) {
		c->plan_gen++;
		subst_reset_locked(c);
		prefetch_epoch_begin_locked(c);
		log_debug("readers moved to epoch %llu", (unsigned long long)plan_epoch(c->plan));
	}
	if (o->sample != PLAN_NONE)
		o->pe.next_use = key_of(c, o->sample);
	pthread_cond_signal(&c->pf_cond);
}

void prefetch_rekey_locked(struct cache *c)
{
	int on = plan_mode(c->plan) != PLAN_OFF;
	struct obj *o;

	for (size_t b = 0; b < c->nbuckets; b++)
		for (o = c->table[b]; o; o = o->hnext)
			o->pe.next_use = on && o->sample != PLAN_NONE ? key_of(c, o->sample) : UINT64_MAX;
	if (policy_rekey(c->pol, on ? POLICY_BELADY : c->cfg.policy))
		log_warn("out of memory re-sorting the cache policy");
}

/* Tell every in-memory object which sample it is (objects loaded at start
 * carry only a content id).  Lock not held. */
static void resolve_samples(struct cache *c, uint64_t gen)
{
	uint8_t cid[CID_LEN];
	struct ns_attr a;
	char key[KEY_MAX];
	struct obj *o;
	uint32_t n, i;
	uint64_t ino;

	pthread_mutex_lock(&c->lock);
	n = plan_manifest_len(c->plan);
	pthread_mutex_unlock(&c->lock);
	for (i = 0; i < n; i++) {
		pthread_mutex_lock(&c->lock);
		if (c->manifest_gen != gen || c->pf_stop) {
			pthread_mutex_unlock(&c->lock);
			return;
		}
		ino = plan_manifest_ino(c->plan, i);
		pthread_mutex_unlock(&c->lock);
		if (cache_identity(c, ino, &a, key, sizeof(key), cid))
			continue;
		pthread_mutex_lock(&c->lock);
		o = cache_table_get(c, cid);
		if (o && c->manifest_gen == gen)
			subst_set_sample_locked(c, o, i);
		pthread_mutex_unlock(&c->lock);
	}
}

/* Consider the sample at use number u; lock held on entry and exit.
 * Returns 1 to go on to the next position, 0 to stop for now. */
static int consider(struct cache *c, uint64_t u)
{
	uint8_t cid[CID_LEN];
	struct ns_attr a;
	char key[KEY_MAX];
	struct backend_stat ident;
	struct obj *o;
	uint64_t ino, gen = c->plan_gen;
	uint32_t i = plan_sample_at(c->plan, u);
	int rc, ok = 1;

	if (i == PLAN_NONE)
		return 0;
	/* A slot lent to a substitution is where the owed content is read. */
	if (plan_use_current(c->plan, u) && subst_redirect_locked(c, i) != PLAN_NONE)
		i = subst_redirect_locked(c, i);
	ino = plan_manifest_ino(c->plan, i);
	pthread_mutex_unlock(&c->lock);
	rc = cache_identity(c, ino, &a, key, sizeof(key), cid);
	if (!rc)
		rc = cache_obj_pin(c, cid, a.size, &o);
	pthread_mutex_lock(&c->lock);
	if (rc)
		return 1; /* vanished from the namespace: nothing to fetch */
	if (gen != c->plan_gen) {
		pthread_mutex_unlock(&c->lock);
		cache_obj_unpin(c, o);
		pthread_mutex_lock(&c->lock);
		return 0;
	}
	subst_set_sample_locked(c, o, i);
	o->pe.next_use = key_of(c, i);
	if (o->npresent == obj_nchunks(o) || obj_inflight(o)) {
		pthread_mutex_unlock(&c->lock);
		cache_obj_unpin(c, o);
		pthread_mutex_lock(&c->lock);
		return 1;
	}
	/* With substitution, room comes only from contents already served in
	 * this epoch (subst.c); either way cache_prefetch_obj reserves it. */
	if (c->cfg.substitute &&
	    !subst_make_room_locked(c, &o->pe, (o->size + STORE_BLOCK - 1) / STORE_BLOCK *
							STORE_BLOCK + STORE_FILE_OVERHEAD)) {
		pthread_mutex_unlock(&c->lock);
		cache_obj_unpin(c, o);
		pthread_mutex_lock(&c->lock);
		return 0;
	}
	pthread_mutex_unlock(&c->lock);
	memset(&ident, 0, sizeof(ident));
	ident.size = a.size;
	ident.mtime_ns = a.mtime_ns;
	memcpy(ident.etag, a.etag, sizeof(ident.etag));
	/* Room is reserved now, taken only from objects needed in a later
	 * epoch (cache.c, reserve_prefetch_locked); none: stop here. */
	rc = cache_prefetch_obj(c, o, ino, key, &ident);
	if (rc > 0)
		atomic_fetch_add_explicit(&c->prefetch_issued, 1, memory_order_relaxed);
	else if (rc == -ENOSPC)
		ok = 0;
	cache_obj_unpin(c, o);
	pthread_mutex_lock(&c->lock);
	return ok;
}

static void *prefetch_main(void *arg)
{
	struct cache *c = arg;
	struct timespec ts;
	uint64_t gen, now;
	unsigned scanned;

	pthread_mutex_lock(&c->lock);
	while (!c->pf_stop) {
		if (plan_mode(c->plan) != PLAN_OFF && c->resolved_gen != c->manifest_gen) {
			gen = c->manifest_gen;
			pthread_mutex_unlock(&c->lock);
			resolve_samples(c, gen);
			pthread_mutex_lock(&c->lock);
			if (c->manifest_gen == gen)
				c->resolved_gen = gen;
			c->rekeyed_gen = c->plan_gen - 1; /* keys must follow */
		}
		if (c->rekeyed_gen != c->plan_gen) {
			prefetch_rekey_locked(c);
			c->rekeyed_gen = c->plan_gen;
			c->pf_cursor = 0;
		}
		if (plan_mode(c->plan) != PLAN_OFF) {
			now = plan_now(c->plan);
			if (c->pf_cursor < now)
				c->pf_cursor = now;
			for (scanned = 0; scanned < SCAN_PER_ROUND && !c->pf_stop &&
					  c->pf_inflight < c->pf_max &&
					  c->pf_inflight_bytes < c->pf_max_bytes &&
					  c->rekeyed_gen == c->plan_gen;
			     scanned++) {
				c->pf_cursor = plan_normalize(c->plan, c->pf_cursor);
				if (!consider(c, c->pf_cursor))
					break;
				c->pf_cursor++;
			}
			if (scanned == SCAN_PER_ROUND)
				continue; /* more to look at: go on after a breath */
		}
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 50 * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&c->pf_cond, &c->lock, &ts);
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

int prefetch_start(struct cache *c)
{
	int rc = -pthread_create(&c->prefetcher, NULL, prefetch_main, c);

	if (!rc)
		c->prefetch_started = 1;
	return rc;
}

void prefetch_stop(struct cache *c)
{
	if (!c->prefetch_started)
		return;
	pthread_mutex_lock(&c->lock);
	c->pf_stop = 1;
	pthread_cond_broadcast(&c->pf_cond);
	pthread_mutex_unlock(&c->lock);
	pthread_join(c->prefetcher, NULL);
	c->prefetch_started = 0;
}

/* ---- the default manifest: torchvision ImageFolder's order ---- */

static const char *const img_ext[] = { ".jpg", ".jpeg", ".png", ".ppm", ".bmp",
				       ".pgm", ".tif", ".tiff", ".webp" };

static int is_image(const char *name)
{
	size_t n = strlen(name);

	for (size_t i = 0; i < ARRAY_SIZE(img_ext); i++) {
		size_t e = strlen(img_ext[i]);

		if (n >= e && !strcasecmp(name + n - e, img_ext[i]))
			return 1;
	}
	return 0;
}

struct names {
	char **name;
	uint64_t *ino;
	int *is_dir;
	size_t n, cap;
};

static int names_cb(void *arg, const char *name, const struct ns_attr *a)
{
	struct names *v = arg;

	if (v->n == v->cap) {
		size_t cap = v->cap ? v->cap * 2 : 64;
		char **nn = realloc(v->name, cap * sizeof(*nn));
		uint64_t *ni = nn ? realloc(v->ino, cap * sizeof(*ni)) : NULL;
		int *nd = ni ? realloc(v->is_dir, cap * sizeof(*nd)) : NULL;

		if (nn)
			v->name = nn;
		if (ni)
			v->ino = ni;
		if (!nd)
			return 1;
		v->is_dir = nd;
		v->cap = cap;
	}
	v->name[v->n] = strdup(name);
	if (!v->name[v->n])
		return 1;
	v->ino[v->n] = a->ino;
	v->is_dir[v->n] = a->is_dir;
	v->n++;
	return 0;
}

static void names_free(struct names *v)
{
	for (size_t i = 0; i < v->n; i++)
		free(v->name[i]);
	free(v->name);
	free(v->ino);
	free(v->is_dir);
	memset(v, 0, sizeof(*v));
}

struct ulist {
	uint64_t *v;
	size_t n, cap;
};

static int ulist_add(struct ulist *l, uint64_t x)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 1024;
		uint64_t *nv = realloc(l->v, cap * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		l->v = nv;
		l->cap = cap;
	}
	l->v[l->n++] = x;
	return 0;
}

struct dirpath {
	char *path;
	uint64_t ino;
};

static int dirpath_cmp(const void *a, const void *b)
{
	return strcmp(((const struct dirpath *)a)->path, ((const struct dirpath *)b)->path);
}

/* One class: sorted(os.walk(class_dir)) then sorted file names per dir. */
static int add_class(struct cache *c, const char *cls, uint64_t ino, struct ulist *out)
{
	struct dirpath *dirs = NULL;
	size_t nd = 0, cap = 0, next = 0;
	int rc = 0;

	/* Collect every directory under the class (breadth first), then sort by path. */
	dirs = malloc(sizeof(*dirs) * (cap = 16));
	if (!dirs)
		return -ENOMEM;
	dirs[nd].path = strdup(cls);
	dirs[nd++].ino = ino;
	while (next < nd && !rc) {
		struct names v = { 0 };
		uint64_t dino = dirs[next].ino;
		char *dpath = dirs[next].path;

		next++;
		rc = cache_readdir(c, dino, names_cb, &v);
		for (size_t i = 0; !rc && i < v.n; i++) {
			if (!v.is_dir[i])
				continue;
			if (nd == cap) {
				struct dirpath *nn = realloc(dirs, sizeof(*dirs) * (cap *= 2));

				if (!nn) {
					rc = -ENOMEM;
					break;
				}
				dirs = nn;
			}
			if (asprintf(&dirs[nd].path, "%s/%s", dpath, v.name[i]) < 0) {
				rc = -ENOMEM;
				break;
			}
			dirs[nd++].ino = v.ino[i];
		}
		names_free(&v);
	}
	if (!rc)
		qsort(dirs, nd, sizeof(*dirs), dirpath_cmp);
	for (size_t d = 0; d < nd && !rc; d++) {
		struct names v = { 0 };

		rc = cache_readdir(c, dirs[d].ino, names_cb, &v);
		for (size_t i = 0; !rc && i < v.n; i++)
			if (!v.is_dir[i] && is_image(v.name[i]))
				rc = ulist_add(out, v.ino[i]);
		names_free(&v);
	}
	for (size_t d = 0; d < nd; d++)
		free(dirs[d].path);
	free(dirs);
	return rc;
}

int prefetch_default_manifest(struct cache *c, uint64_t **inos, uint32_t *n)
{
	struct names root = { 0 };
	struct ulist out = { 0 };
	int rc;

	rc = cache_readdir(c, INDEX_ROOT_INO, names_cb, &root);
	for (size_t i = 0; !rc && i < root.n; i++)
		if (root.is_dir[i])
			rc = add_class(c, root.name[i], root.ino[i], &out);
	names_free(&root);
	if (!rc && out.n > UINT32_MAX)
		rc = -EFBIG;
	if (rc) {
		free(out.v);
		return rc;
	}
	*inos = out.v ? out.v : calloc(1, sizeof(uint64_t));
	*n = (uint32_t)out.n;
	return *inos ? 0 : -ENOMEM;
}

int prefetch_ensure_manifest(struct cache *c)
{
	uint64_t *inos;
	uint32_t n;
	int rc;

	pthread_mutex_lock(&c->lock);
	rc = c->manifest_ready;
	pthread_mutex_unlock(&c->lock);
	if (rc)
		return 0;
	rc = prefetch_default_manifest(c, &inos, &n);
	if (rc)
		return rc;
	pthread_mutex_lock(&c->lock);
	if (!c->manifest_ready) {
		rc = plan_set_manifest(c->plan, inos, n);
		if (!rc) {
			c->manifest_ready = 1;
			c->manifest_gen++;
			inos = NULL;
		}
	}
	pthread_mutex_unlock(&c->lock);
	free(inos);
	return rc;
}
