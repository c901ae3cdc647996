/* SPDX-License-Identifier: MIT */
/* The fill: fetches, the store workers that settle them, and the chunks
 * held in memory for open files (fill.h explains the rules). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fill.h"
#include "backends/base/log.h"
#include "backends/base/util.h"

/* Chunks fetched for an open file and not stored are kept for its next
 * reads: at most this many per object (the latest), this much in all. */
#define HELD_PER_OBJ 2
#define HELD_MAX_BYTES (64ull << 20)

/* o's held chunks, off the object and the count; put them unlocked. */
static struct fetch *take_held_locked(struct fill *fl, struct obj *o)
{
	struct fetch *held = o->act->held;

	for (struct fetch *fe = held; fe; fe = fe->next)
		fl->held_bytes -= fe->len;
	o->act->held = NULL;
	return held;
}

static void fetch_free(struct fetch *fe)
{
	pthread_cond_destroy(&fe->done);
	free(fe->buf);
	free(fe);
}

void fetch_put(struct fill *fl, struct fetch *fe)
{
	int last;

	pthread_mutex_lock(&fl->ot->lock);
	last = --fe->refs == 0;
	pthread_mutex_unlock(&fl->ot->lock);
	if (last)
		fetch_free(fe);
}

/* o's last pin went (lock held): its held chunks and its store file are
 * the caller's to release unlocked. */
static void unpinned_locked(struct fill *fl, struct obj *o, int *fd, struct fetch **held)
{
	*held = take_held_locked(fl, o);
	objtab_unpinned_locked(fl->ot, o, fd);
}

static void release(struct fill *fl, int fd, struct fetch *held)
{
	struct fetch *next;

	if (fd >= 0)
		close(fd);
	for (; held; held = next) {
		next = held->next;
		fetch_put(fl, held);
	}
}

void fill_unpin(struct fill *fl, struct obj *o)
{
	struct fetch *held = NULL;
	int fd = -1;

	pthread_mutex_lock(&fl->ot->lock);
	if (--o->refs == 0)
		unpinned_locked(fl, o, &fd, &held);
	pthread_mutex_unlock(&fl->ot->lock);
	release(fl, fd, held);
}


/* Backend thread: queue the completion for a store worker. */
static void fetch_done(struct backend_req *req)
{
	struct fetch *fe = req->arg;
	struct fill *fl = fe->fl;

	pthread_mutex_lock(&fl->ot->lock);
	fe->result = req->result;
	fe->qnext = NULL;
	if (fl->cq_tail)
		fl->cq_tail->qnext = fe;
	else
		fl->cq_head = fe;
	fl->cq_tail = fe;
	pthread_cond_signal(&fl->cq_cond);
	pthread_mutex_unlock(&fl->ot->lock);
}

/* Store a fetched chunk if the policy admits it; mark it present. */
static void fetch_store_and_lock(struct fill *fl, struct fetch *fe)
{
	struct obj *o = fe->o;
	uint64_t need, sum;
	int fd, rc, created = 0;
	static atomic_int enospc_logged;

	pthread_mutex_lock(&fl->ot->lock);
	need = round_block(fe->len) + (o->alloc ? 0 : STORE_FILE_OVERHEAD);
	if (o->act->resv >= need) {
		/* Reserved when the prefetch was issued: stored whatever the
		 * object's key has become since (a reader may have opened it). */
		o->act->resv -= need;
		rc = 0;
	} else {
		fl->ot->reserved -= o->act->resv;
		o->act->resv = 0;
		rc = objtab_reserve_locked(fl->ot, o, need);
	}
	if (rc) {
		atomic_fetch_add_explicit(&fl->ctr->not_admitted, 1, memory_order_relaxed);
		if (fe->prefetch && epoch_cur(fl->ep))
			epoch_cur(fl->ep)->not_stored_prefetch++;
		return;
	}
	fd = o->act->fd;
	pthread_mutex_unlock(&fl->ot->lock);
	sum = store_checksum(fe->buf, fe->len);
	if (fd < 0) {
		fd = store_obj_open(fl->st, o->cid, 1);
		created = fd >= 0;
	}
	rc = fd < 0 ? fd : store_write(fd, (uint64_t)fe->chunk * obj_chunk_size(o), fe->buf, fe->len);
	if (rc == 0) /* its readers are served from fe->buf */
		store_written(fl->st, fd, (uint64_t)fe->chunk * obj_chunk_size(o), fe->len);
	if (rc == -ENOSPC) {
		store_punch(fd, (uint64_t)fe->chunk * obj_chunk_size(o), fe->len);
		log_once(enospc_logged, LOG_LVL_WARN,
			 "cache disk full (ENOSPC) in %s: serving reads from the source uncached", fl->dir);
	} else if (rc) {
		atomic_fetch_add_explicit(&fl->ctr->store_errors, 1, memory_order_relaxed);
		log_warn("cache store write failed: %s", strerror(-rc));
	}
	pthread_mutex_lock(&fl->ot->lock);
	if (created) {
		if (o->act->fd < 0)
			o->act->fd = fd; /* closed when the object is unpinned */
		else
			close(fd); /* another worker opened it meanwhile */
	}
	fl->ot->reserved -= need;
	if (rc == 0 && !obj_bit(o, OBJ_PRESENT, fe->chunk)) {
		if (!o->npresent)
			fl->ot->cached_objs++;
		obj_bit_set(o, OBJ_PRESENT, fe->chunk, 1);
		obj_bit_set(o, OBJ_VERIFIED, fe->chunk, 1);
		*obj_sum(o, fe->chunk) = sum;
		o->npresent++;
		fl->ot->cached_bytes += fe->len;
		o->alloc += need;
		fl->ot->data_bytes += need;
		obj_mark_dirty(o);
	} else if (rc == -ENOSPC) {
		fl->ot->degraded = 1;
		fl->ot->degraded_until = now_ns() + 30ull * 1000000000ull;
	}
}

/* The source changed under a file: record the new identity and drop the
 * kernel's view.  Content-addressed, the old object is simply never asked
 * for again; the next open fetches the new version. */
static void source_changed(struct fill *fl, uint64_t ino, const char *key, uint64_t old_size,
			   const struct backend_stat *cur)
{
	atomic_fetch_add_explicit(&fl->ctr->stale, 1, memory_order_relaxed);
	log_warn("%s changed at the source (size %llu -> %llu); its cached copy is dropped", key,
		 (unsigned long long)old_size, (unsigned long long)cur->size);
	ns_set_identity(fl->ns, ino, cur); /* the index, then the identity table */
	if (fl->inval)
		fl->inval(fl->inval_arg, ino);
}

/* Store worker: settle completed fetches.  Per fetch: one critical section
 * to take it off the queue, one to reserve room, and one to record the
 * chunk, settle the fetch, wake its waiters and drop its references. */
static void *store_worker(void *arg)
{
	struct fill *fl = arg;
	struct fetch *fe, *held, *drop;
	struct obj *o;
	int fd, last;

	pthread_mutex_lock(&fl->ot->lock);
	for (;;) {
		while (!fl->cq_head && !fl->stopping)
			pthread_cond_wait(&fl->cq_cond, &fl->ot->lock);
		if (!fl->cq_head)
			break;
		fe = fl->cq_head;
		fl->cq_head = fe->qnext;
		if (!fl->cq_head)
			fl->cq_tail = NULL;
		pthread_mutex_unlock(&fl->ot->lock);

		o = fe->o;
		if (fe->result == (ssize_t)fe->len) {
			atomic_fetch_add_explicit(&fl->ctr->fetch_bytes, fe->len, memory_order_relaxed);
			fetch_store_and_lock(fl, fe);
		} else {
			if (fe->result == -ESTALE) {
				source_changed(fl, fe->ino, fe->key, o->size, &fe->req.current);
			} else if (fe->result >= 0) {
				log_warn("%s: source returned %zd bytes of chunk %u, expected %zu",
					 fe->key, fe->result, fe->chunk, fe->len);
				fe->result = -EIO;
			}
			pthread_mutex_lock(&fl->ot->lock);
		}

		for (struct fetch **pp = &o->act->fetches; *pp; pp = &(*pp)->next)
			if (*pp == fe) {
				*pp = fe->next;
				break;
			}
		fe->settled = 1;
		o->act->inflight--;
		fl->fetches_inflight--;
		if (!o->act->inflight && o->act->resv) {
			fl->ot->reserved -= o->act->resv; /* failed or unneeded fetches */
			o->act->resv = 0;
		}
		drop = NULL;
		if (fe->result == (ssize_t)fe->len && !obj_bit(o, OBJ_PRESENT, fe->chunk) &&
		    o->refs > 1 && fl->held_bytes + fe->len <= HELD_MAX_BYTES) {
			/* Not stored, but the object is open: keep the bytes for
			 * its reads, which would otherwise fetch them again. */
			struct fetch **pp = &o->act->held;
			int n = 0;

			for (; *pp && ++n < HELD_PER_OBJ; pp = &(*pp)->next)
				;
			if (*pp) { /* the oldest goes */
				drop = *pp;
				*pp = NULL;
				fl->held_bytes -= drop->len;
			}
			fe->refs++;
			fe->next = o->act->held;
			o->act->held = fe;
			fl->held_bytes += fe->len;
		}
		if (fe->prefetch) {
			fl->pf_inflight--;
			fl->pf_inflight_bytes -= fe->len;
			if (fl->on_prefetch_settled)
				fl->on_prefetch_settled(fl->hook_arg);
		}
		if (!o->act->inflight && (o->flags & OBJ_PREFETCHING)) {
			o->flags &= ~OBJ_PREFETCHING;
			fl->pf_objs--;
			if (o->npresent == obj_nchunks(o) && !(o->flags & OBJ_LATE))
				o->flags |= OBJ_PREFETCHED;
			o->flags &= ~OBJ_LATE;
		}
		pthread_cond_broadcast(&fe->done);
		/* subst.c waits on fetch_cond for an object's arrival, and
		 * cache_close for the last fetch to settle. */
		if (fl->wake_all || !fl->fetches_inflight)
			pthread_cond_broadcast(&fl->fetch_cond);
		/* The fetch's pin on the object (obj_unpin) and its reference. */
		fd = -1;
		held = NULL;
		if (--o->refs == 0)
			unpinned_locked(fl, o, &fd, &held);
		last = --fe->refs == 0;
		pthread_mutex_unlock(&fl->ot->lock);
		if (drop)
			fetch_put(fl, drop);
		release(fl, fd, held);
		if (last)
			fetch_free(fe);
		pthread_mutex_lock(&fl->ot->lock);
	}
	pthread_mutex_unlock(&fl->ot->lock);
	return NULL;
}

/* Start fetching chunk k of o, which the caller has pinned; lock held.  The
 * fetch pins o again until it settles.  The caller submits it (outside the
 * lock) with fetch_submit.  NULL on ENOMEM. */
static struct fetch *fetch_new_locked(struct fill *fl, struct obj *o, uint32_t k, uint64_t ino,
				      const char *key, const struct backend_stat *ident, int prefetch)
{
	size_t len = obj_chunk_len(o, k);
	struct fetch *fe = ec_calloc(1, sizeof(*fe));

	if (!fe)
		return NULL;
	fe->buf = ec_malloc(len ? len : 1);
	if (!fe->buf) {
		free(fe);
		return NULL;
	}
	pthread_cond_init(&fe->done, NULL);
	fe->fl = fl;
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
	fl->fetches_inflight++;
	if (epoch_cur(fl->ep)) {
		struct epoch_stats *e = epoch_cur(fl->ep);

		if (o->fseq != (uint8_t)fl->ep->n) {
			obj_bits_clear(o, OBJ_FETCHED);
			o->fseq = (uint8_t)fl->ep->n;
		}
		e->fetched_bytes += len;
		if (prefetch && plan_use_epoch(o->pe.next_use) > plan_epoch(fl->plan))
			e->prefetched_ahead_bytes += len;
		if (obj_bit(o, OBJ_FETCHED, k))
			e->refetched_bytes += len;
		obj_bit_set(o, OBJ_FETCHED, k, 1);
	}
	if (prefetch) {
		fl->pf_inflight++;
		fl->pf_inflight_bytes += len;
		if (!(o->flags & OBJ_PREFETCHING))
			fl->pf_objs++;
		o->flags |= OBJ_PREFETCHING;
	}
	return fe;
}

static void fetch_submit(struct fill *fl, struct fetch *fe)
{
	int rc;

	atomic_fetch_add_explicit(&fl->ctr->fetches, 1, memory_order_relaxed);
	rc = backend_submit(fl->be, &fe->req);
	if (rc) {
		log_warn("%s: the backend refused the read: %s", fe->key, strerror(-rc));
		fe->req.result = rc == -ENOMEM ? rc : -EIO;
		fetch_done(&fe->req);
	}
}

/* Whether another node owns key (peers); asked before the lock. */
static int foreign_key(const struct fill *fl, const char *key)
{
	return fl->owns && !fl->owns(fl->owns_arg, key);
}

int fill_prefetch_obj(struct fill *fl, struct obj *o, uint64_t ino, const char *key,
		       const struct backend_stat *ident)
{
	struct fetch *batch[64], *fe;
	int n = 0, total = 0, foreign = foreign_key(fl, key);
	uint32_t k = 0;

	while (k < obj_nchunks(o)) {
		uint64_t need = 0;
		uint32_t kk;
		int want = 0;

		pthread_mutex_lock(&fl->ot->lock);
		o->pe.foreign = (uint8_t)foreign; /* pinned: not in the policy */
		/* Room for this batch first: what it would fetch. */
		for (kk = k; kk < obj_nchunks(o) && want < (int)ARRAY_SIZE(batch); kk++) {
			if (obj_bit(o, OBJ_PRESENT, kk))
				continue;
			for (fe = o->act->fetches; fe && fe->chunk != kk; fe = fe->next)
				;
			if (fe)
				continue;
			need += round_block(obj_chunk_len(o, kk));
			want++;
		}
		if (!want) {
			pthread_mutex_unlock(&fl->ot->lock);
			break;
		}
		if (!o->alloc && !o->act->resv)
			need += STORE_FILE_OVERHEAD;
		if (objtab_reserve_prefetch_locked(fl->ot, o, need)) {
			pthread_mutex_unlock(&fl->ot->lock);
			return total ? total : -ENOSPC;
		}
		for (; k < kk; k++) {
			if (obj_bit(o, OBJ_PRESENT, k))
				continue;
			for (fe = o->act->fetches; fe && fe->chunk != k; fe = fe->next)
				;
			if (fe)
				continue;
			fe = fetch_new_locked(fl, o, k, ino, key, ident, 1);
			if (!fe)
				break;
			batch[n++] = fe;
		}
		if (k < kk) {
			/* Out of memory.  What is reserved is given back when the
			 * object's last fetch settles, or now if none is in flight. */
			if (!o->act->inflight) {
				fl->ot->reserved -= o->act->resv;
				o->act->resv = 0;
			}
			k = obj_nchunks(o);
		}
		pthread_mutex_unlock(&fl->ot->lock);
		for (int i = 0; i < n; i++)
			fetch_submit(fl, batch[i]);
		total += n;
		if (n < (int)ARRAY_SIZE(batch))
			break;
		n = 0;
	}
	return total;
}

int fill_get_chunk(struct fill *fl, struct obj *o, uint32_t k, uint64_t ino, const char *key,
		   const struct backend_stat *ident, struct fetch **out)
{
	struct fetch *fe;
	uint64_t t0;
	int rc, start = 0, foreign = foreign_key(fl, key);

	*out = NULL;
	pthread_mutex_lock(&fl->ot->lock);
	o->pe.foreign = (uint8_t)foreign; /* pinned: not in the policy */
	for (fe = o->act->fetches; fe && fe->chunk != k; fe = fe->next)
		;
	if (!fe) {
		if (obj_bit(o, OBJ_PRESENT, k)) { /* settled in the meantime */
			pthread_mutex_unlock(&fl->ot->lock);
			return 1;
		}
		for (fe = o->act->held; fe && fe->chunk != k; fe = fe->next)
			;
		if (fe) { /* fetched while open, not stored */
			fe->refs++;
			pthread_mutex_unlock(&fl->ot->lock);
			*out = fe;
			return 0;
		}
		fe = fetch_new_locked(fl, o, k, ino, key, ident, 0);
		if (!fe) {
			pthread_mutex_unlock(&fl->ot->lock);
			return -ENOMEM;
		}
		start = 1;
	}
	fe->refs++;
	pthread_mutex_unlock(&fl->ot->lock);
	if (start)
		fetch_submit(fl, fe);

	t0 = now_ns();
	pthread_mutex_lock(&fl->ot->lock);
	while (!fe->settled)
		pthread_cond_wait(&fe->done, &fl->ot->lock);
	rc = fe->result < 0 ? (int)fe->result : 0;
	pthread_mutex_unlock(&fl->ot->lock);
	atomic_fetch_add_explicit(&fl->ctr->stall_ns, now_ns() - t0, memory_order_relaxed);
	if (rc) {
		fetch_put(fl, fe);
		return rc;
	}
	*out = fe;
	return 0;
}

int fill_start(struct fill *fl)
{
	int rc = 0;

	pthread_cond_init(&fl->cq_cond, NULL);
	pthread_cond_init(&fl->fetch_cond, NULL);
	fl->conds = 1;
	for (; fl->nworkers < (int)ARRAY_SIZE(fl->workers); fl->nworkers++) {
		rc = -pthread_create(&fl->workers[fl->nworkers], NULL, store_worker, fl);
		if (rc)
			break;
	}
	return rc;
}

void fill_stop(struct fill *fl)
{
	if (!fl->conds)
		return;
	/* Every fetch in flight must settle before the workers go. */
	pthread_mutex_lock(&fl->ot->lock);
	while (fl->fetches_inflight)
		pthread_cond_wait(&fl->fetch_cond, &fl->ot->lock);
	fl->stopping = 1;
	pthread_cond_broadcast(&fl->cq_cond);
	pthread_mutex_unlock(&fl->ot->lock);
	for (int i = 0; i < fl->nworkers; i++)
		pthread_join(fl->workers[i], NULL);
	fl->nworkers = 0;
	pthread_cond_destroy(&fl->cq_cond);
	pthread_cond_destroy(&fl->fetch_cond);
	fl->conds = 0;
}
