/* SPDX-License-Identifier: MIT */
/* The object records in the index: loaded at open, written back by the
 * flusher.  The index can lag the store (a chunk is written, then marked
 * present, then its record is written here) but never lead it. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine.h"
#include "planstore.h"
#include "backends/base/log.h"
#include "backends/base/util.h"

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
	o = objtab_new_locked(&c->ot, r->cid, r->size, r->chunk_size);
	if (!o)
		return 0;
	if (obj_nchunks(o) != r->nchunks) {
		objtab_release_locked(&c->ot, o);
		return 0;
	}
	o->pe.freq = (uint32_t)MIN(r->access_count, (uint64_t)UINT32_MAX);
	o->pe.importance = (float)r->importance;
	o->pe.last = (uint64_t)r->last_access_ns;
	for (i = 0; i < r->nchunks; i++)
		if (obj_chunk_present(r, i)) {
			obj_bit_set(o, OBJ_PRESENT, i, 1);
			*obj_sum(o, i) = r->sums[i];
			o->npresent++;
		}
	blocks = store_obj_blocks(c->st, o->cid);
	if (blocks < 0) {
		/* The file is gone: the record must not claim anything. */
		obj_bits_clear(o, OBJ_PRESENT);
		o->npresent = 0;
		objtab_put_locked(&c->ot, o);
		obj_mark_dirty(o);
		return 0;
	}
	o->alloc = (uint64_t)blocks + STORE_FILE_OVERHEAD;
	c->ot.data_bytes += o->alloc;
	c->ot.cached_bytes += obj_present_bytes(o);
	c->ot.cached_objs++;
	objtab_put_locked(&c->ot, o);
	policy_insert(c->pol, &o->pe);
	return 0;
}

static int gc_cb(void *arg, const uint8_t cid[CID_LEN])
{
	struct cache *c = arg;
	struct obj *o;
	int drop;

	pthread_mutex_lock(&c->ot.lock);
	o = objtab_get_locked(&c->ot, cid);
	drop = !o || (!o->npresent && !o->refs && !(o->act && o->act->fetches));
	pthread_mutex_unlock(&c->ot.lock);
	return drop;
}

/* An object leaves memory: substitution's sample map forgets it. */
static void forget(void *arg, struct obj *o)
{
	struct cache *c = arg;

	subst_forget_obj_locked(&c->sb, o);
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
void records_flush(struct cache *c)
{
	struct obj_rec *recs[FLUSH_BATCH];
	struct obj *o;
	size_t n, i, b = 0, scanned;
	uint32_t k;
	int rc, full = 0, done;

	for (;;) {
		n = 0;
		scanned = 0;
		pthread_mutex_lock(&c->ot.lock);
		for (; b < c->ot.nbuckets && n < FLUSH_BATCH && scanned < FLUSH_SCAN && !full;
		     scanned++) {
			for (o = c->ot.table[b]; o; o = o->hnext) {
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
					if (obj_bit(o, OBJ_PRESENT, k)) {
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
		done = b >= c->ot.nbuckets;
		pthread_mutex_unlock(&c->ot.lock);
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

	/* Objects that hold nothing and are unused live on only in the index. */
	objtab_sweep(&c->ot, forget, c);

	pthread_mutex_lock(&c->ot.lock);
	c->ot.meta_bytes = index_disk_bytes(c->ix) + store_dir_bytes(c->st);
	c->ot.meta_pending = 0;
	/* The index may have grown past the bound: give back data. */
	atomic_fetch_add_explicit(&c->ctr.evictions_for_index, objtab_shrink_locked(&c->ot),
				  memory_order_relaxed);
	pthread_mutex_unlock(&c->ot.lock);
}

static void *flusher_main(void *arg)
{
	struct cache *c = arg;
	struct timespec ts;
	unsigned ticks = 0;

	pthread_mutex_lock(&c->ot.lock);
	while (!c->flush_stop) {
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += (long)(c->cfg.flush_ms % 1000) * 1000000L;
		ts.tv_sec += c->cfg.flush_ms / 1000 + ts.tv_nsec / 1000000000L;
		ts.tv_nsec %= 1000000000L;
		pthread_cond_timedwait(&c->flush_cond, &c->ot.lock, &ts);
		if (c->flush_stop)
			break;
		pthread_mutex_unlock(&c->ot.lock);
		records_flush(c);
		planstore_tick(c);
		if (++ticks % 5 == 0)
			index_sync(c->ix);
		index_trim(c->ix);
		pthread_mutex_lock(&c->ot.lock);
	}
	pthread_mutex_unlock(&c->ot.lock);
	return NULL;
}

int records_load(struct cache *c, char *err, size_t errlen)
{
	int rc;

	pthread_mutex_lock(&c->ot.lock); /* no other thread runs yet */
	rc = index_obj_foreach(c->ix, load_cb, c);
	pthread_mutex_unlock(&c->ot.lock);
	if (rc) {
		snprintf(err, errlen, "cache index: cannot load records: %s", strerror(-rc));
		return rc;
	}
	store_scan(c->st, gc_cb, c);
	c->ot.meta_bytes = index_disk_bytes(c->ix) + store_dir_bytes(c->st);
	records_flush(c); /* also enforces the bound if capacity shrank */
	index_trim(c->ix); /* the listing and the load touched every page */
	return 0;
}

int records_start_flusher(struct cache *c)
{
	int rc;

	pthread_cond_init(&c->flush_cond, NULL);
	rc = -pthread_create(&c->flusher, NULL, flusher_main, c);
	if (rc)
		pthread_cond_destroy(&c->flush_cond);
	else
		c->flusher_started = 1;
	return rc;
}

void records_stop_flusher(struct cache *c)
{
	if (!c->flusher_started)
		return;
	pthread_mutex_lock(&c->ot.lock);
	c->flush_stop = 1;
	pthread_cond_broadcast(&c->flush_cond);
	pthread_mutex_unlock(&c->ot.lock);
	pthread_join(c->flusher, NULL);
	pthread_cond_destroy(&c->flush_cond);
	c->flusher_started = 0;
}
