/* SPDX-License-Identifier: MIT */
/* The object table, its slabs, pinning, and the space accounting with the
 * policy's evictions (objtab.h explains the rules). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "objtab.h"
#include "backends/base/log.h"

/* Buckets looked at per hold of the lock by a sweep. */
#define SWEEP_SLICE 65536

int obj_chunk_size_ok(uint64_t cs)
{
	return cs >= 4096 && cs <= (1ull << 30) && !(cs & (cs - 1));
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

static uint8_t *obj_bits(const struct obj *o, int which)
{
	return (uint8_t *)(o->u.sums + obj_nchunks(o)) +
	       (size_t)which * (((size_t)obj_nchunks(o) + 7) / 8);
}

int obj_bit(const struct obj *o, int which, uint32_t k)
{
	if (obj_nchunks(o) <= 1)
		return k == 0 && (o->flags & (OBJ_C_PRESENT << which));
	return bit(obj_bits(o, which), k);
}

void obj_bit_set(struct obj *o, int which, uint32_t k, int v)
{
	if (obj_nchunks(o) > 1)
		bit_set(obj_bits(o, which), k, v);
	else if (v)
		o->flags |= OBJ_C_PRESENT << which;
	else
		o->flags &= ~(OBJ_C_PRESENT << which);
}

void obj_bits_clear(struct obj *o, int which)
{
	if (obj_nchunks(o) > 1)
		memset(obj_bits(o, which), 0, ((size_t)obj_nchunks(o) + 7) / 8);
	else
		o->flags &= ~(OBJ_C_PRESENT << which);
}

uint64_t *obj_sum(struct obj *o, uint32_t k)
{
	return obj_nchunks(o) > 1 ? &o->u.sums[k] : &o->u.sum;
}

uint64_t obj_present_bytes(const struct obj *o)
{
	uint64_t b = 0;

	for (uint32_t k = 0; o->npresent && k < obj_nchunks(o); k++)
		if (obj_bit(o, OBJ_PRESENT, k))
			b += obj_chunk_len(o, k);
	return b;
}

/* ---- the table ---- */

static size_t hash_cid(const struct objtab *ot, const uint8_t *cid)
{
	uint64_t h;

	memcpy(&h, cid, sizeof(h));
	return (size_t)(h & (ot->nbuckets - 1));
}

int objtab_init(struct objtab *ot, struct index *ix, struct store *st, struct policy *pol,
		struct cache_counters *ctr, uint32_t chunk_size)
{
	memset(ot, 0, sizeof(*ot));
	ot->nbuckets = 1024;
	ot->table = ec_calloc(ot->nbuckets, sizeof(*ot->table));
	if (!ot->table)
		return -ENOMEM;
	pthread_mutex_init(&ot->lock, NULL);
	ot->ix = ix;
	ot->st = st;
	ot->pol = pol;
	ot->ctr = ctr;
	ot->chunk_size = chunk_size;
	return 0;
}

struct obj *objtab_get_locked(struct objtab *ot, const uint8_t *cid)
{
	struct obj *o;

	for (o = ot->table[hash_cid(ot, cid)]; o; o = o->hnext)
		if (!memcmp(o->cid, cid, CID_LEN))
			return o;
	return NULL;
}

static int table_grow(struct objtab *ot)
{
	size_t n = ot->nbuckets * 2, i, oldn = ot->nbuckets;
	struct obj **t = ec_calloc(n, sizeof(*t)), **old = ot->table, *o, *next;

	if (!t)
		return -ENOMEM;
	ot->table = t;
	ot->nbuckets = n;
	for (i = 0; i < oldn; i++)
		for (o = old[i]; o; o = next) {
			next = o->hnext;
			o->hnext = t[hash_cid(ot, o->cid)];
			t[hash_cid(ot, o->cid)] = o;
		}
	free(old);
	return 0;
}

void objtab_put_locked(struct objtab *ot, struct obj *o)
{
	size_t b;

	/* Two objects per bucket on average: 4 bytes of table per object. */
	if (ot->nobjs >= 2 * ot->nbuckets)
		(void)table_grow(ot); /* on failure the chains just get longer */
	b = hash_cid(ot, o->cid);
	o->hnext = ot->table[b];
	ot->table[b] = o;
	ot->nobjs++;
}

/* Objects come from slabs of OBJ_SLAB, mapped directly: no allocator
 * header per object, and none of the per-thread arenas' fragmentation. */
#define OBJ_SLAB 1024

static struct obj *obj_take_locked(struct objtab *ot)
{
	struct obj *o = ot->obj_free;

	if (!o) {
		void **ns = ec_realloc(ot->slabs, (ot->nslabs + 1) * sizeof(*ns));
		struct obj *blk;

		if (!ns)
			return NULL;
		ot->slabs = ns;
		blk = mmap(NULL, OBJ_SLAB * sizeof(*blk), PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (blk == MAP_FAILED)
			return NULL;
		ot->slabs[ot->nslabs++] = blk;
		for (size_t i = OBJ_SLAB; i-- > 0;) {
			blk[i].hnext = ot->obj_free;
			ot->obj_free = &blk[i];
		}
		o = ot->obj_free;
	}
	ot->obj_free = o->hnext;
	memset(o, 0, sizeof(*o));
	return o;
}

void objtab_release_locked(struct objtab *ot, struct obj *o)
{
	if (obj_nchunks(o) > 1)
		free(o->u.sums);
	free(o->act);
	o->act = NULL;
	o->hnext = ot->obj_free;
	ot->obj_free = o;
}

struct obj *objtab_new_locked(struct objtab *ot, const uint8_t *cid, uint64_t size,
			      uint32_t chunk_size)
{
	uint64_t n = size ? (size + chunk_size - 1) / chunk_size : 0;
	size_t bb = ((size_t)n + 7) / 8;
	struct obj *o;

	if (!obj_chunk_size_ok(chunk_size) || n > UINT32_MAX / 2)
		return NULL;
	o = obj_take_locked(ot);
	if (!o)
		return NULL;
	if (n > 1) {
		o->u.sums = ec_calloc(1, (size_t)n * 8 + 3 * bb);
		if (!o->u.sums) {
			objtab_release_locked(ot, o); /* size still 0: nothing to free */
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

void objtab_destroy(struct objtab *ot)
{
	struct obj *o, *next;

	for (size_t b = 0; ot->table && b < ot->nbuckets; b++)
		for (o = ot->table[b]; o; o = next) {
			next = o->hnext;
			if (o->act && o->act->fd >= 0)
				close(o->act->fd);
			objtab_release_locked(ot, o);
		}
	for (size_t i = 0; i < ot->nslabs; i++)
		munmap(ot->slabs[i], OBJ_SLAB * sizeof(struct obj));
	free(ot->slabs);
	free(ot->table);
	if (ot->table)
		pthread_mutex_destroy(&ot->lock);
	memset(ot, 0, sizeof(*ot));
}

void objtab_sweep(struct objtab *ot, void (*forget)(void *arg, struct obj *o), void *arg)
{
	struct obj *o, **pp;
	size_t b = 0, scanned;
	int done = 0;

	/* SWEEP_SLICE buckets per hold of the lock: the table may grow between
	 * holds, and what this pass misses the next one frees. */
	while (!done) {
		pthread_mutex_lock(&ot->lock);
		for (scanned = 0; b < ot->nbuckets && scanned < SWEEP_SLICE; b++, scanned++)
			for (pp = &ot->table[b]; *pp;) {
				o = *pp;
				if (!o->refs && !o->npresent && !o->act && !(o->flags & OBJ_DIRTY)) {
					*pp = o->hnext;
					ot->nobjs--;
					if (forget)
						forget(arg, o);
					objtab_release_locked(ot, o);
					continue;
				}
				pp = &o->hnext;
			}
		done = b >= ot->nbuckets;
		pthread_mutex_unlock(&ot->lock);
	}
}

/* ---- pinning ---- */

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

void obj_deactivate_locked(struct obj *o)
{
	struct obj_act *a = o->act;

	if (a && !o->refs && !(o->flags & OBJ_IDLEFD) && a->fd < 0 && !a->inflight && !a->held &&
	    !a->fetches && !a->resv) {
		free(a);
		o->act = NULL;
	}
}

int objtab_pin(struct objtab *ot, const uint8_t *cid, uint64_t size, struct obj **out)
{
	struct obj_rec *r = NULL;
	struct obj *o;
	int rc;

	pthread_mutex_lock(&ot->lock);
	o = objtab_get_locked(ot, cid);
	if (!o) { /* read its record unlocked, then look again */
		pthread_mutex_unlock(&ot->lock);
		rc = index_obj_get(ot->ix, cid, &r);
		if (rc && rc != -ENOENT)
			log_warn("index: object record unreadable (%s); refetching", strerror(-rc));
		if (r && (r->size != size || !obj_chunk_size_ok(r->chunk_size))) {
			index_obj_free(r);
			r = NULL;
		}
		pthread_mutex_lock(&ot->lock);
		o = objtab_get_locked(ot, cid);
	}
	if (!o) {
		o = objtab_new_locked(ot, cid, size, r ? r->chunk_size : ot->chunk_size);
		if (!o) {
			pthread_mutex_unlock(&ot->lock);
			index_obj_free(r);
			return -ENOMEM;
		}
		if (r && r->nchunks == obj_nchunks(o)) {
			/* Only the policy state: chunks not loaded at start are not trusted. */
			o->pe.freq = (uint32_t)MIN(r->access_count, (uint64_t)UINT32_MAX);
			o->pe.importance = (float)r->importance;
			o->pe.last = (uint64_t)r->last_access_ns;
		}
		objtab_put_locked(ot, o);
		ot->meta_pending += META_PER_RECORD;
	}
	if (obj_activate_locked(o)) { /* a fresh o is freed by the flusher */
		pthread_mutex_unlock(&ot->lock);
		index_obj_free(r);
		return -ENOMEM;
	}
	if (o->refs++ == 0) {
		policy_remove(ot->pol, &o->pe);
		if (o->flags & OBJ_IDLEFD) {
			o->flags &= ~OBJ_IDLEFD;
			ot->idle_fds--;
		}
	}
	pthread_mutex_unlock(&ot->lock);
	index_obj_free(r);
	*out = o;
	return 0;
}

void objtab_unpinned_locked(struct objtab *ot, struct obj *o, int *fd)
{
	*fd = o->act->fd;
	if (*fd >= 0 && (o->flags & OBJ_PREFETCHED) && o->npresent && ot->idle_fds < IDLE_FDS_MAX) {
		/* kept for the first read of a prefetched object */
		o->flags |= OBJ_IDLEFD;
		ot->idle_fds++;
		*fd = -1;
	} else {
		o->act->fd = -1;
	}
	if (o->npresent)
		policy_insert(ot->pol, &o->pe);
	obj_deactivate_locked(o);
}

/* ---- accounting ---- */

uint64_t objtab_used_locked(const struct objtab *ot)
{
	return ot->data_bytes + ot->reserved + ot->meta_bytes + ot->meta_pending +
	       META_HEADROOM(ot->capacity);
}

int objtab_degraded_locked(struct objtab *ot)
{
	if (ot->degraded) {
		if (now_ns() < ot->degraded_until)
			return 1;
		ot->degraded = 0;
	}
	return 0;
}

void objtab_evict_locked(struct objtab *ot, struct obj *o)
{
	if (ot->on_evict)
		ot->on_evict(ot->on_evict_arg, o);
	o->flags &= ~OBJ_PREFETCHED;
	policy_remove(ot->pol, &o->pe);
	store_obj_unlink(ot->st, o->cid);
	if (o->flags & OBJ_IDLEFD) {
		close(o->act->fd);
		o->act->fd = -1;
		o->flags &= ~OBJ_IDLEFD;
		ot->idle_fds--;
		obj_deactivate_locked(o);
	}
	ot->cached_bytes -= obj_present_bytes(o);
	ot->data_bytes -= o->alloc;
	o->alloc = 0;
	obj_bits_clear(o, OBJ_PRESENT);
	obj_bits_clear(o, OBJ_VERIFIED);
	if (o->npresent)
		ot->cached_objs--;
	o->npresent = 0;
	if (!(o->flags & OBJ_DIRTY))
		ot->meta_pending += META_PER_RECORD;
	obj_mark_dirty(o);
	atomic_fetch_add_explicit(&ot->ctr->evictions, 1, memory_order_relaxed);
}

int objtab_reserve_locked(struct objtab *ot, struct obj *o, uint64_t bytes)
{
	struct pol_entry *v;

	if (objtab_degraded_locked(ot))
		return -ENOSPC;
	while (objtab_used_locked(ot) + bytes > ot->capacity) {
		v = policy_victim(ot->pol, &o->pe);
		if (!v)
			return -ENOSPC;
		objtab_evict_locked(ot, (struct obj *)v);
	}
	ot->reserved += bytes;
	return 0;
}

/* Stricter than Belady's "needed later", on purpose: a read that is not
 * prefetched is still served (from memory, uncached), so displacing an
 * object needed in the same epoch only moves a fetch from o to it, and adds
 * one.  Objects needed in a later epoch can make room: o, once read, is one
 * of them, and the cache is as full at the next epoch's start either way.
 * Ownership comes first (policy.h): an object this node owns displaces any
 * object another node owns (whose owner serves it again), and a foreign one
 * never displaces an owned one. */
int objtab_reserve_prefetch_locked(struct objtab *ot, struct obj *o, uint64_t bytes)
{
	uint64_t epoch = plan_use_epoch(o->pe.next_use);
	struct pol_entry *v;

	if (objtab_degraded_locked(ot))
		return -ENOSPC;
	while (objtab_used_locked(ot) + bytes > ot->capacity) {
		v = policy_victim(ot->pol, NULL);
		if (!v)
			return -ENOSPC;
		if (v->foreign != o->pe.foreign ? !v->foreign : plan_use_epoch(v->next_use) <= epoch)
			return -ENOSPC;
		objtab_evict_locked(ot, (struct obj *)v);
	}
	ot->reserved += bytes;
	o->act->resv += bytes;
	return 0;
}

uint64_t objtab_shrink_locked(struct objtab *ot)
{
	uint64_t n = 0;

	while (objtab_used_locked(ot) > ot->capacity) {
		struct pol_entry *v = policy_victim(ot->pol, NULL);

		if (!v)
			break;
		objtab_evict_locked(ot, (struct obj *)v);
		n++;
	}
	return n;
}
