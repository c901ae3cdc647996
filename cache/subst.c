/* SPDX-License-Identifier: MIT */
/* Substitutable hits (the Quiver idea).
 *
 * With a plan in force and --substitute on, an open of sample x that is not
 * cached, and whose prefetch does not land within the deadline, is served
 * the bytes of a sample y that is cached, in the same scope (the same
 * directory, or anywhere), not yet served this epoch and planned later in
 * it.  redirect[y] = x records the debt: when y's own open comes, x's bytes
 * are served in its place (by then the prefetcher, which follows redirects,
 * has had time to fetch them).  So every sample's content is served exactly
 * once per epoch and only within its scope; `served` enforces the "once".
 * Substituted handles bypass the kernel page cache (direct_io, decided in
 * fs/), and while one is open a stat of its path reports the served size. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache_int.h"
#include "log.h"
#include "util.h"

#define SCAN_MAX 65536

/* Size the per-sample arrays to the manifest; lock held. */
static int ensure_arrays(struct cache *c)
{
	uint32_t n = plan_manifest_len(c->plan);

	if (c->subst_n == n && c->sample_obj)
		return 0;
	free(c->redirect);
	free(c->served);
	free(c->sample_obj);
	c->redirect = ec_malloc(((size_t)n + 1) * sizeof(*c->redirect));
	c->served = ec_calloc((size_t)n + 1, 1);
	c->sample_obj = ec_calloc((size_t)n + 1, sizeof(*c->sample_obj));
	if (!c->redirect || !c->served || !c->sample_obj) {
		free(c->redirect);
		free(c->served);
		free(c->sample_obj);
		c->redirect = NULL;
		c->served = NULL;
		c->sample_obj = NULL;
		c->subst_n = 0;
		return -ENOMEM;
	}
	memset(c->redirect, 0xff, ((size_t)n + 1) * sizeof(*c->redirect));
	c->subst_n = n;
	c->debt = 0;
	/* Objects are told their sample again by the prefetcher's resolution. */
	for (size_t b = 0; b < c->nbuckets; b++)
		for (struct obj *o = c->table[b]; o; o = o->hnext)
			if (o->sample < n)
				c->sample_obj[o->sample] = o;
	return 0;
}

void subst_set_sample_locked(struct cache *c, struct obj *o, uint32_t i)
{
	if (o->sample != PLAN_NONE && o->sample < c->subst_n && c->sample_obj &&
	    c->sample_obj[o->sample] == o)
		c->sample_obj[o->sample] = NULL;
	o->sample = i;
	if (i != PLAN_NONE && i < c->subst_n && c->sample_obj)
		c->sample_obj[i] = o;
}

void subst_forget_obj_locked(struct cache *c, struct obj *o)
{
	if (o->sample < c->subst_n && c->sample_obj && c->sample_obj[o->sample] == o)
		c->sample_obj[o->sample] = NULL;
}

void subst_reset_locked(struct cache *c)
{
	if (!c->served)
		return;
	memset(c->served, 0, (size_t)c->subst_n + 1);
	memset(c->redirect, 0xff, ((size_t)c->subst_n + 1) * sizeof(*c->redirect));
	c->debt = 0;
}

uint32_t subst_redirect_locked(const struct cache *c, uint32_t i)
{
	if (!c->redirect || i >= c->subst_n)
		return PLAN_NONE;
	return c->redirect[i];
}

static int full(const struct obj *o)
{
	return o && o->nchunks == o->npresent;
}

/* A cached, unserved sample of x's scope planned later this epoch; lock held. */
static uint32_t candidate(struct cache *c, uint32_t x, uint64_t xparent)
{
	const uint32_t *ord;
	uint64_t len, pos = plan_position(c->plan), q, scanned = 0;
	struct ns_attr a;

	unsigned r_served = 0, r_full = 0, r_pending = 0, r_dir = 0;

	ord = plan_order(c->plan, &len);
	for (q = len; q-- > pos && scanned < SCAN_MAX; scanned++) {
		uint32_t y = ord[q];

		if (y == x || y >= c->subst_n || c->redirect[y] != PLAN_NONE)
			continue;
		if (c->served[y]) { r_served++; continue; }
		if (!full(c->sample_obj[y])) { r_full++; continue; }
		if (!plan_pending(c->plan, y)) { r_pending++; continue; }
		if (c->cfg.substitute == SUBST_DIR) {
			if (index_getattr(c->ix, c->ns.srcid, plan_manifest_ino(c->plan, y), &a) ||
			    a.parent != xparent) {
				r_dir++;
				continue;
			}
		}
		return y;
	}
	log_debug("substitution: none for %u (pos %llu/%llu): served %u, not cached %u, "
		  "not pending %u, other dir %u", x, (unsigned long long)pos,
		  (unsigned long long)len, r_served, r_full, r_pending, r_dir);
	return PLAN_NONE;
}

/* Wait up to the deadline for x's in-flight fetches; lock held. */
static void wait_arrival(struct cache *c, struct obj *o)
{
	struct timespec ts;

	if (!o->inflight || !c->cfg.substitute_deadline_ms)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec += (long)c->cfg.substitute_deadline_ms * 1000000L;
	ts.tv_sec += ts.tv_nsec / 1000000000L;
	ts.tv_nsec %= 1000000000L;
	while (o->inflight && !full(o))
		if (pthread_cond_timedwait(&c->fetch_cond, &c->lock, &ts))
			break;
}

void subst_target(struct cache *c, uint64_t ino, const struct ns_attr *xa, struct obj *xo,
		  uint64_t *target)
{
	uint32_t x, y;

	*target = ino;
	pthread_mutex_lock(&c->lock);
	if (plan_mode(c->plan) == PLAN_OFF || ensure_arrays(c)) {
		pthread_mutex_unlock(&c->lock);
		return;
	}
	x = plan_sample_of(c->plan, ino);
	if (x == PLAN_NONE || x >= c->subst_n) {
		pthread_mutex_unlock(&c->lock);
		return;
	}
	if (c->redirect[x] != PLAN_NONE) {
		/* x lent its slot earlier: serve the content it owes. */
		y = c->redirect[x];
		c->redirect[x] = PLAN_NONE;
		c->debt--;
		c->served[y] = 1;
		*target = plan_manifest_ino(c->plan, y);
		log_debug("substitution: sample %u pays back %u", x, y);
		pthread_mutex_unlock(&c->lock);
		return;
	}
	if (c->served[x] != 1 && !full(xo)) {
		/* Claimed before the wait (which drops the lock), so that no other
		 * open picks x as its substitute meanwhile. */
		c->served[x] = 1;
		wait_arrival(c, xo);
		if (!full(xo) && (y = candidate(c, x, xa->parent)) != PLAN_NONE) {
			c->redirect[y] = x;
			c->served[y] = 1;
			c->served[x] = 2; /* owed: served at y's open */
			c->debt++;
			*target = plan_manifest_ino(c->plan, y);
			log_debug("substitution: sample %u served %u's bytes", x, y);
			atomic_fetch_add_explicit(&c->substitutions, 1, memory_order_relaxed);
			if (c->nep)
				c->ep[(c->nep - 1) % EPOCH_HISTORY].substitutions++;
			pthread_mutex_unlock(&c->lock);
			return;
		}
	}
	c->served[x] = 1;
	pthread_mutex_unlock(&c->lock);
}

/* ---- sizes of open substituted handles, for stat ---- */

void subst_handle_open(struct cache *c, uint64_t ino, uint64_t size)
{
	pthread_mutex_lock(&c->lock);
	for (int i = 0; i < SUBST_OPEN_MAX; i++)
		if (!c->subst_open[i].n || c->subst_open[i].ino == ino) {
			c->subst_open[i].ino = ino;
			c->subst_open[i].size = size;
			c->subst_open[i].n++;
			break;
		}
	pthread_mutex_unlock(&c->lock);
}

void subst_handle_close(struct cache *c, uint64_t ino)
{
	pthread_mutex_lock(&c->lock);
	for (int i = 0; i < SUBST_OPEN_MAX; i++)
		if (c->subst_open[i].n && c->subst_open[i].ino == ino) {
			c->subst_open[i].n--;
			break;
		}
	pthread_mutex_unlock(&c->lock);
}

int subst_served_size(struct cache *c, uint64_t ino, uint64_t *size)
{
	int found = 0;

	pthread_mutex_lock(&c->lock);
	for (int i = 0; i < SUBST_OPEN_MAX && !found; i++)
		if (c->subst_open[i].n && c->subst_open[i].ino == ino) {
			*size = c->subst_open[i].size;
			found = 1;
		}
	pthread_mutex_unlock(&c->lock);
	return found;
}
