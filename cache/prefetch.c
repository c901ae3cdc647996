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
#include <fcntl.h>
#include <stdio.h>
#include <strings.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "prefetch.h"
#include "backends/base/log.h"
#include "backends/base/util.h"

#define SCAN_PER_ROUND 4096

/* Start a per-epoch stats record. */
static void epoch_begin_locked(struct prefetcher *pf)
{
	struct epoch_stats *e = epoch_begin(pf->ep, plan_epoch(pf->plan));

	e->backend_bytes_at_start = atomic_load(&pf->be->counters.bytes);
	/* Prefetches in flight count: fetched before, stored when they land. */
	e->cached_objects_at_start = pf->ot->cached_objs + pf->fl->pf_objs;
	e->cached_bytes_at_start = pf->ot->cached_bytes + pf->fl->pf_inflight_bytes;
	e->read_bytes_at_start = atomic_load(&pf->ot->ctr->read_bytes);
	e->hit_bytes_at_start = atomic_load(&pf->ot->ctr->read_bytes_from_cache);
	e->stall_ns_at_start = atomic_load(&pf->ot->ctr->stall_ns);
	e->prefetch_used_at_start = atomic_load(&pf->used);
	e->prefetch_late_at_start = atomic_load(&pf->late);
}

/* Lock held.  Not after prefetch_stop: the store workers, which report a
 * settled prefetch here, outlive the prefetcher's thread and condition. */
void prefetch_wake_locked(struct prefetcher *pf)
{
	if (pf->started)
		pthread_cond_signal(&pf->cond);
}

void prefetch_on_settled(void *arg)
{
	prefetch_wake_locked(arg);
}

void prefetch_rewind_locked(struct prefetcher *pf, uint64_t u)
{
	if (pf->cursor > u)
		pf->cursor = u;
	prefetch_wake_locked(pf);
}

void prefetch_plan_changed_locked(struct prefetcher *pf)
{
	subst_reset_locked(pf->sb);
	epoch_begin_locked(pf);
	prefetch_wake_locked(pf);
}

void prefetch_on_evict(void *arg, struct obj *o)
{
	struct prefetcher *pf = arg;
	struct epoch_stats *e = epoch_cur(pf->ep);

	if (o->flags & OBJ_PREFETCHED)
		atomic_fetch_add_explicit(&pf->wasted, 1, memory_order_relaxed);
	if (e && plan_mode(pf->plan) != PLAN_OFF &&
	    plan_use_epoch(o->pe.next_use) == plan_epoch(pf->plan))
		e->evicted_planned++;
}

static int owned(const struct prefetcher *pf, uint32_t i)
{
	return pf->owned && i < pf->owned_n && (pf->owned[i / 64] >> (i % 64) & 1);
}

/* The eviction key of sample i under the plan: its next use by this node's
 * ranks, or by any rank of the job when this node owns it (peers). */
static uint64_t key_of(const struct prefetcher *pf, uint32_t i)
{
	uint64_t u = pf->sb->mode ? subst_key_locked(pf->sb, i) : plan_next_use(pf->plan, i);

	if (owned(pf, i))
		u = MIN(u, plan_job_use(pf->plan, i));
	return u;
}

/* The rank the opener was last located in (its pid's entry), -1. */
static int pid_rank(const struct prefetcher *pf, uint32_t pid)
{
	const struct pid_slot *sl = &pf->pids[pid % PREFETCH_PIDS];

	return pid && sl->pid == pid ? sl->rank : -1;
}

void prefetch_on_open_locked(struct prefetcher *pf, struct obj *o, uint64_t ino,
			     uint64_t content_ino, uint32_t pid)
{
	struct plan_rank_stats *st;
	int used = 0, late = 0, rank, k;
	uint32_t i;

	if (o->flags & OBJ_PREFETCHED) {
		atomic_fetch_add_explicit(&pf->used, 1, memory_order_relaxed);
		o->flags &= ~OBJ_PREFETCHED;
		used = 1;
	} else if ((o->flags & OBJ_PREFETCHING) && !(o->flags & OBJ_LATE)) {
		atomic_fetch_add_explicit(&pf->late, 1, memory_order_relaxed);
		o->flags |= OBJ_LATE; /* counted once: not "used" when it lands */
		late = 1;
	}
	if (plan_mode(pf->plan) == PLAN_OFF)
		return;
	if (content_ino != ino)
		subst_set_sample_locked(pf->sb, o, plan_sample_of(pf->plan, content_ino));
	i = plan_sample_of(pf->plan, ino);
	if (content_ino == ino)
		subst_set_sample_locked(pf->sb, o, i);
	if (i != PLAN_NONE && plan_on_open_rank(pf->plan, i, &rank)) {
		subst_reset_locked(pf->sb);
		epoch_begin_locked(pf);
		log_debug("readers moved to epoch %llu", (unsigned long long)plan_epoch(pf->plan));
	}
	if (i == PLAN_NONE)
		rank = -1;
	/* Per-rank figures: a located open counts for its rank, which its
	 * opener's later plain reads are put down to. */
	if (rank >= 0 && pid)
		pf->pids[pid % PREFETCH_PIDS] = (struct pid_slot){ pid, rank };
	k = rank >= 0 ? rank : pid_rank(pf, pid);
	if (rank < 0)
		atomic_fetch_add_explicit(&pf->plain_reads, 1, memory_order_relaxed);
	if ((st = k >= 0 ? plan_rank_stats(pf->plan, (unsigned)k) : NULL)) {
		st->opens++;
		st->prefetch_used += used;
		st->prefetch_late += late;
		st->plain_reads += rank < 0;
	}
	if (o->sample != PLAN_NONE)
		o->pe.next_use = key_of(pf, o->sample);
	prefetch_wake_locked(pf);
}

/* Re-key every cached object by the plan and pick the policy. */
static void rekey_locked(struct prefetcher *pf)
{
	int on = plan_mode(pf->plan) != PLAN_OFF;
	struct obj *o;

	for (size_t b = 0; b < pf->ot->nbuckets; b++)
		for (o = pf->ot->table[b]; o; o = o->hnext)
			o->pe.next_use = on && o->sample != PLAN_NONE ? key_of(pf, o->sample) : UINT64_MAX;
	if (policy_rekey(pf->ot->pol, on ? POLICY_BELADY : pf->policy))
		log_warn("out of memory re-sorting the cache policy");
}

/* Tell every in-memory object which sample it is (objects loaded at start
 * carry only a content id); with peers, note which samples this node owns.
 * Lock not held. */
static void resolve_samples(struct prefetcher *pf, uint64_t gen)
{
	uint8_t cid[CID_LEN];
	struct ns_attr a;
	char key[KEY_MAX];
	struct obj *o;
	uint64_t *own = NULL;
	uint32_t n, i;
	uint64_t ino;

	pthread_mutex_lock(&pf->ot->lock);
	n = plan_manifest_len(pf->plan);
	pthread_mutex_unlock(&pf->ot->lock);
	if (pf->fl->owns && n && !(own = ec_calloc((size_t)n / 64 + 1, sizeof(*own))))
		log_warn("out of memory for the samples this node owns: no cluster prefetch");
	for (i = 0; i < n; i++) {
		pthread_mutex_lock(&pf->ot->lock);
		if (plan_manifest_gen(pf->plan) != gen || pf->stop) {
			pthread_mutex_unlock(&pf->ot->lock);
			free(own);
			return;
		}
		ino = plan_manifest_ino(pf->plan, i);
		pthread_mutex_unlock(&pf->ot->lock);
		if (ns_identity(pf->ns, ino, &a, key, sizeof(key), cid))
			continue;
		if (own && pf->fl->owns(pf->fl->owns_arg, key))
			own[i / 64] |= 1ull << (i % 64);
		pthread_mutex_lock(&pf->ot->lock);
		o = objtab_get_locked(pf->ot, cid);
		if (o && plan_manifest_gen(pf->plan) == gen)
			subst_set_sample_locked(pf->sb, o, i);
		pthread_mutex_unlock(&pf->ot->lock);
	}
	pthread_mutex_lock(&pf->ot->lock);
	free(pf->owned);
	pf->owned = own;
	pf->owned_n = own ? n : 0;
	pthread_mutex_unlock(&pf->ot->lock);
}

static int consider_sample(struct prefetcher *pf, uint32_t i, uint64_t gen);

/* Consider the sample at use number u; lock held on entry and exit.
 * Returns 1 to go on to the next position, 0 to stop for now. */
static int consider(struct prefetcher *pf, uint64_t u)
{
	uint64_t gen = plan_gen(pf->plan);
	uint32_t i = plan_sample_at(pf->plan, u);

	if (i == PLAN_NONE)
		return 0;
	if (i == PLAN_HOLE)
		return 1; /* nothing to read there (any more) */
	/* A slot lent to a substitution is where the owed content is read. */
	if (plan_use_current(pf->plan, u) && subst_redirect_locked(pf->sb, i) != PLAN_NONE)
		i = subst_redirect_locked(pf->sb, i);
	return consider_sample(pf, i, gen);
}

/* Prefetch sample i unless it is cached or on its way; lock held on entry
 * and exit.  Returns 1 to go on, 0 to stop for now (no room, or the plan
 * changed). */
static int consider_sample(struct prefetcher *pf, uint32_t i, uint64_t gen)
{
	uint8_t cid[CID_LEN];
	struct ns_fid id;
	struct ns_attr a;
	char key[KEY_MAX];
	struct backend_stat ident;
	struct obj *o;
	uint64_t ino;
	int rc, ok = 1, have_key;

	ino = plan_manifest_ino(pf->plan, i);
	pthread_mutex_unlock(&pf->ot->lock);
	/* The identity table answers for what is cached (the walk passes over
	 * every planned sample); the key and version only for a fetch. */
	rc = ns_file_id_ex(pf->ns, ino, &id, &a, key, sizeof(key));
	have_key = rc == 1;
	if (rc >= 0)
		rc = objtab_pin(pf->ot, id.cid, id.size, &o);
	pthread_mutex_lock(&pf->ot->lock);
	if (rc)
		return 1; /* vanished from the namespace: nothing to fetch */
	if (gen != plan_gen(pf->plan)) {
		pthread_mutex_unlock(&pf->ot->lock);
		fill_unpin(pf->fl, o);
		pthread_mutex_lock(&pf->ot->lock);
		return 0;
	}
	subst_set_sample_locked(pf->sb, o, i);
	o->pe.next_use = key_of(pf, i);
	if (o->npresent == obj_nchunks(o) || obj_inflight(o)) {
		pthread_mutex_unlock(&pf->ot->lock);
		fill_unpin(pf->fl, o);
		pthread_mutex_lock(&pf->ot->lock);
		return 1;
	}
	/* With substitution, room comes only from contents already served in
	 * this epoch (subst.c); either way cache_prefetch_obj reserves it. */
	if (pf->sb->mode &&
	    !subst_make_room_locked(pf->sb, &o->pe, round_block(o->size) + STORE_FILE_OVERHEAD)) {
		pthread_mutex_unlock(&pf->ot->lock);
		fill_unpin(pf->fl, o);
		pthread_mutex_lock(&pf->ot->lock);
		return 0;
	}
	pthread_mutex_unlock(&pf->ot->lock);
	if (!have_key && (ns_identity(pf->ns, ino, &a, key, sizeof(key), cid) ||
			  memcmp(cid, id.cid, CID_LEN))) {
		fill_unpin(pf->fl, o); /* changed meanwhile: the next look sees the new one */
		pthread_mutex_lock(&pf->ot->lock);
		return 1;
	}
	memset(&ident, 0, sizeof(ident));
	ident.size = a.size;
	ident.mtime_ns = a.mtime_ns;
	memcpy(ident.etag, a.etag, sizeof(ident.etag));
	/* Room is reserved now, taken only from objects needed in a later
	 * epoch (objtab_reserve_prefetch_locked); none: stop here. */
	rc = fill_prefetch_obj(pf->fl, o, ino, key, &ident);
	if (rc > 0)
		atomic_fetch_add_explicit(&pf->issued, 1, memory_order_relaxed);
	else if (rc == -ENOSPC)
		ok = 0;
	fill_unpin(pf->fl, o);
	pthread_mutex_lock(&pf->ot->lock);
	return ok;
}

/* Stage the cached samples among the next pf->stage uses into the page
 * cache: the SSD's latency is then paid here, several files at a time,
 * instead of in each reader's first read (with FUSE passthrough the kernel
 * reads exactly these pages).  A file found evicted meanwhile is skipped;
 * pages staged and then reclaimed before their read cost a second read,
 * never a wrong byte.  Lock held on entry and exit. */
#define STAGE_BATCH 16
#define STAGE_PIECE (1ull << 20)
/* Returns 1 when it staged a whole batch (there may be more), else 0. */
static int stage_ahead_locked(struct prefetcher *pf, uint64_t now)
{
	uint8_t cids[STAGE_BATCH][CID_LEN];
	uint64_t sizes[STAGE_BATCH], gen = plan_gen(pf->plan);
	unsigned n = 0;

	if (!pf->sring && !(pf->sring = ec_calloc(pf->stage, sizeof(*pf->sring)))) {
		pf->stage = 0;
		log_warn("out of memory for staging: off");
		return 0;
	}
	/* What the readers have passed is theirs now. */
	while (pf->slen && pf->sring[pf->shead].u < now) {
		pf->sbytes -= pf->sring[pf->shead].size;
		pf->shead = (pf->shead + 1) % pf->stage;
		pf->slen--;
	}
	if (pf->scursor < now)
		pf->scursor = now;
	while (n < STAGE_BATCH && plan_distance(pf->plan, now, pf->scursor) < pf->stage &&
	       pf->slen < pf->stage && !pf->stop) {
		uint64_t u = plan_normalize(pf->plan, pf->scursor);
		uint32_t i = plan_sample_at(pf->plan, u);
		struct ns_fid id;
		struct obj *o;
		uint64_t ino;
		int rc;

		if (i == PLAN_NONE)
			break;
		pf->scursor = u + 1;
		if (i == PLAN_HOLE)
			continue;
		ino = plan_manifest_ino(pf->plan, i);
		pthread_mutex_unlock(&pf->ot->lock);
		rc = ns_file_id(pf->ns, ino, &id);
		pthread_mutex_lock(&pf->ot->lock);
		if (gen != plan_gen(pf->plan))
			return 0; /* the walk starts over */
		if (rc || !(o = objtab_get_locked(pf->ot, id.cid)) || !obj_full(o) || !o->size)
			continue;
		/* The byte bound: at least one file is staged, whatever its size. */
		if (pf->slen && pf->sbytes + o->size > pf->stage_bytes) {
			pf->scursor = u; /* when the readers have moved on */
			break;
		}
		pf->sring[(pf->shead + pf->slen++) % pf->stage] = (struct stage_ent){ u, o->size };
		pf->sbytes += o->size;
		memcpy(cids[n], o->cid, CID_LEN);
		sizes[n++] = o->size;
	}
	if (!n)
		return 0;
	pthread_mutex_unlock(&pf->ot->lock);
	for (unsigned k = 0; k < n; k++) {
		int fd = store_obj_open_read(pf->ot->st, cids[k]);

		if (fd < 0)
			continue; /* evicted meanwhile */
		/* The kernel reads ahead at most the device's readahead window
		 * or largest request (128 KiB to a few MiB) per call: a large
		 * file is asked for in pieces. */
		for (uint64_t off = 0; off < sizes[k]; off += STAGE_PIECE)
			if (posix_fadvise(fd, (off_t)off, (off_t)MIN(STAGE_PIECE, sizes[k] - off),
					  POSIX_FADV_WILLNEED))
				break;
		atomic_fetch_add_explicit(&pf->staged, 1, memory_order_relaxed);
		close(fd);
	}
	pthread_mutex_lock(&pf->ot->lock);
	return n == STAGE_BATCH;
}

static void *prefetch_main(void *arg)
{
	struct prefetcher *pf = arg;
	struct timespec ts;
	uint64_t gen, now;
	unsigned scanned;

	pthread_mutex_lock(&pf->ot->lock);
	while (!pf->stop) {
		if (plan_mode(pf->plan) != PLAN_OFF &&
		    pf->resolved_mgen != plan_manifest_gen(pf->plan)) {
			gen = plan_manifest_gen(pf->plan);
			pthread_mutex_unlock(&pf->ot->lock);
			resolve_samples(pf, gen);
			pthread_mutex_lock(&pf->ot->lock);
			if (plan_manifest_gen(pf->plan) == gen)
				pf->resolved_mgen = gen;
			pf->rekey = 1; /* keys must follow */
		}
		if (pf->rekey || pf->rekeyed_gen != plan_gen(pf->plan)) {
			rekey_locked(pf);
			pf->rekeyed_gen = plan_gen(pf->plan);
			pf->rekey = 0;
			pf->cursor = pf->jcursor = pf->scursor = 0;
			pf->slen = 0;
			pf->sbytes = 0;
		}
		if (plan_mode(pf->plan) != PLAN_OFF) {
			/* Two walks, nearest use first: this node's ranks' order,
			 * and (peers) the whole job's order for what this node
			 * owns, which the other nodes' ranks read through it. */
			uint64_t jnow = pf->owned ? plan_job_now(pf->plan) : PLAN_NEVER, ju = 0;
			int lstop = 0, jstop = jnow == PLAN_NEVER;
			uint32_t ji;

			now = plan_now(pf->plan);
			if (pf->cursor < now)
				pf->cursor = now;
			if (!jstop && pf->jcursor < jnow)
				pf->jcursor = jnow;
			for (scanned = 0; scanned < SCAN_PER_ROUND && !pf->stop && !(lstop && jstop) &&
					  pf->fl->pf_inflight < pf->max &&
					  pf->fl->pf_inflight_bytes < pf->max_bytes &&
					  pf->rekeyed_gen == plan_gen(pf->plan);
			     scanned++) {
				if (!lstop)
					pf->cursor = plan_normalize(pf->plan, pf->cursor);
				ji = jstop ? PLAN_NONE : plan_job_sample_at(pf->plan, &pf->jcursor, &ju);
				jstop = ji == PLAN_NONE;
				if (!jstop && (lstop || ju < pf->cursor)) {
					if (owned(pf, ji) &&
					    !consider_sample(pf, ji, plan_gen(pf->plan)))
						jstop = 1;
					else
						pf->jcursor++;
					continue;
				}
				if (lstop || !consider(pf, pf->cursor))
					lstop = 1;
				else
					pf->cursor++;
			}
			if (pf->stage && pf->rekeyed_gen == plan_gen(pf->plan) &&
			    stage_ahead_locked(pf, now))
				continue; /* a full batch: there may be more */
			if (scanned == SCAN_PER_ROUND)
				continue; /* more to look at: go on after a breath */
		}
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 50 * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&pf->cond, &pf->ot->lock, &ts);
	}
	pthread_mutex_unlock(&pf->ot->lock);
	return NULL;
}

int prefetch_start(struct prefetcher *pf)
{
	int rc;

	pthread_cond_init(&pf->cond, NULL);
	rc = -pthread_create(&pf->thread, NULL, prefetch_main, pf);
	if (rc) {
		pthread_cond_destroy(&pf->cond);
		return rc;
	}
	pthread_mutex_lock(&pf->ot->lock); /* read by wake-ups under the lock */
	pf->started = 1;
	pthread_mutex_unlock(&pf->ot->lock);
	return 0;
}

void prefetch_stop(struct prefetcher *pf)
{
	if (!pf->started)
		return;
	pthread_mutex_lock(&pf->ot->lock);
	pf->stop = 1;
	pthread_cond_broadcast(&pf->cond);
	pthread_mutex_unlock(&pf->ot->lock);
	pthread_join(pf->thread, NULL);
	pthread_mutex_lock(&pf->ot->lock); /* no wake-up can be on its way */
	pf->started = 0;
	pthread_cond_destroy(&pf->cond);
	free(pf->owned);
	pf->owned = NULL;
	pf->owned_n = 0;
	free(pf->sring);
	pf->sring = NULL;
	pf->slen = 0;
	pf->sbytes = 0;
	pthread_mutex_unlock(&pf->ot->lock);
}
