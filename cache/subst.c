/* SPDX-License-Identifier: MIT */
/* Substitutable hits (the Quiver idea).
 *
 * With a plan in force and --substitute on, each sample of the epoch's order
 * is a slot, and every content not yet served this epoch is due at exactly
 * one pending slot: its own at first.  An open of slot x whose due content d
 * is neither cached nor lands within the deadline takes the content e due at
 * the latest pending slot w of x's scope (the same directory, or anywhere)
 * whose content is cached; d becomes due at w (redirect[w] = d,
 * lender[d] = w).  An open of w later serves d, or trades again if d is
 * still missing.  Contents only trade slots within a scope and each is
 * served at one open: every content is served exactly once per epoch, only
 * within its scope.  `served` marks contents served (or claimed by an open
 * deciding) this epoch.
 *
 * Each content is keyed for eviction by the slot it is due at; a content
 * served through another slot than its own is keyed in the next epoch.  A
 * prefetch only takes the room of contents already served (docs/policy.md):
 * the cached contents not yet served are the stock that substitutions draw
 * on.  The prefetcher follows redirects, and looks again at a slot a trade
 * made due.  Substituted handles bypass the kernel page cache (direct_io,
 * decided in fs/), and while one is open a stat of its path reports the
 * served size. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache_int.h"
#include "backends/base/log.h"
#include "backends/base/util.h"

#define SCAN_MAX 65536
#define SERVED 1 /* served[i]: i's content served (or claimed) this epoch */

/* Size the per-sample arrays to the manifest; lock held. */
static int ensure_arrays(struct cache *c)
{
	uint32_t n = plan_manifest_len(c->plan);

	if (c->subst_n == n && c->sample_obj)
		return 0;
	free(c->redirect);
	free(c->served);
	free(c->sample_obj);
	/* redirect and lender share one block (freed with redirect). */
	c->redirect = ec_malloc(((size_t)n + 1) * 2 * sizeof(*c->redirect));
	c->lender = c->redirect ? c->redirect + n + 1 : NULL;
	c->served = ec_calloc((size_t)n + 1, 1);
	c->sample_obj = ec_calloc((size_t)n + 1, sizeof(*c->sample_obj));
	if (!c->redirect || !c->served || !c->sample_obj) {
		free(c->redirect);
		free(c->served);
		free(c->sample_obj);
		c->redirect = NULL;
		c->lender = NULL;
		c->served = NULL;
		c->sample_obj = NULL;
		c->subst_n = 0;
		return -ENOMEM;
	}
	memset(c->redirect, 0xff, ((size_t)n + 1) * 2 * sizeof(*c->redirect));
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
	memset(c->redirect, 0xff, ((size_t)c->subst_n + 1) * 2 * sizeof(*c->redirect));
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
	return o && obj_nchunks(o) == o->npresent;
}

/* The slot content i is due at: its lender's, or its own. */
static uint32_t slot_of(const struct cache *c, uint32_t i)
{
	return c->lender[i] != PLAN_NONE ? c->lender[i] : i;
}

/* The content due at slot y (y pending), PLAN_NONE when nothing is (y's
 * own content was served or moved, and nothing was moved to y). */
static uint32_t due_at(const struct cache *c, uint32_t y)
{
	uint32_t d = c->redirect[y] != PLAN_NONE ? c->redirect[y] : y;

	return !c->served[d] && slot_of(c, d) == y ? d : PLAN_NONE;
}

/* Content i becomes due at slot y (PLAN_NONE: at its own); keeps the debt. */
static void set_slot(struct cache *c, uint32_t i, uint32_t y)
{
	uint32_t old = c->lender[i];

	if (old != PLAN_NONE && c->redirect[old] == i)
		c->redirect[old] = PLAN_NONE;
	if (y == i)
		y = PLAN_NONE;
	c->lender[i] = y;
	if (y != PLAN_NONE)
		c->redirect[y] = i;
	c->debt += (y != PLAN_NONE) - (old != PLAN_NONE);
}

/* The eviction key of content i.  Not served yet: the use of the slot it is
 * due at.  Served through another slot than its own: its next use is in the
 * next epoch, whatever the plan says of its own slot (which now serves
 * another content).  Otherwise its next use, spread when in a later epoch
 * (docs/policy.md). */
uint64_t subst_key_locked(const struct cache *c, uint32_t i)
{
	if (c->served && i < c->subst_n) {
		if (!c->served[i] && c->lender[i] != PLAN_NONE)
			return plan_next_use(c->plan, c->lender[i]);
		if (c->served[i] && c->redirect[i] != PLAN_NONE)
			return plan_spread_key_after(c->plan, i);
	}
	return plan_spread_key(c->plan, i);
}

/* Every content not yet served this epoch is a hit to come, at its own slot
 * or another's: trading one for another gains no hit and costs a fetch.  So
 * a prefetch only takes the room of contents already served (keyed in a
 * later epoch), and a content for a later epoch only free room (one served
 * content of the stock kept for the next epoch is as good as another).  The
 * room is made now, not when the bytes land, so that prefetches in flight
 * never count on the same victim. */
int subst_make_room_locked(struct cache *c, const struct pol_entry *pe, uint64_t need)
{
	struct pol_entry *v;

	/* Prefetches in flight hold reservations, counted in what is used. */
	while (cache_used_locked(c) + need > c->capacity) {
		if (!plan_use_current(c->plan, pe->next_use))
			return 0;
		v = policy_victim(c->pol, pe);
		if (!v || plan_use_current(c->plan, v->next_use))
			return 0;
		cache_evict_obj_locked(c, (struct obj *)v);
	}
	return 1;
}

/* The latest pending slot of the current epoch other than x whose due
 * content is cached and of x's scope; lock held. */
static uint32_t candidate(struct cache *c, uint32_t x, uint64_t xparent)
{
	const uint32_t *ord;
	uint64_t len, pos = plan_position(c->plan), q, scanned = 0;
	struct ns_attr a;
	unsigned r_none = 0, r_full = 0, r_dir = 0;

	ord = plan_order(c->plan, &len);
	for (q = len; q-- > pos && scanned < SCAN_MAX; scanned++) {
		uint32_t w = ord[q], e;

		if (w == x || w >= c->subst_n || !plan_pending(c->plan, w))
			continue;
		if ((e = due_at(c, w)) == PLAN_NONE) {
			r_none++;
			continue;
		}
		if (!full(c->sample_obj[e])) {
			r_full++;
			continue;
		}
		if (c->cfg.substitute == SUBST_DIR &&
		    (index_getattr(c->ix, c->ns.srcid, plan_manifest_ino(c->plan, e), &a) ||
		     a.parent != xparent)) {
			r_dir++;
			continue;
		}
		return w;
	}
	log_debug("substitution: none for %u (pos %llu/%llu): nothing due %u, not cached %u, "
		  "other dir %u", x, (unsigned long long)pos, (unsigned long long)len, r_none,
		  r_full, r_dir);
	return PLAN_NONE;
}

/* Wait up to the deadline for o's in-flight fetches; lock held. */
static void wait_arrival(struct cache *c, struct obj *o)
{
	struct timespec ts;

	if (!obj_inflight(o) || !c->cfg.substitute_deadline_ms)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec += (long)c->cfg.substitute_deadline_ms * 1000000L;
	ts.tv_sec += ts.tv_nsec / 1000000000L;
	ts.tv_nsec %= 1000000000L;
	while (obj_inflight(o) && !full(o))
		if (pthread_cond_timedwait(&c->fetch_cond, &c->lock, &ts))
			break;
}

/* The in-memory object of content d, pinned; lock held on entry and exit
 * (dropped meanwhile).  NULL if it cannot be had. */
static struct obj *pin_content(struct cache *c, uint32_t d)
{
	uint8_t cid[CID_LEN];
	struct ns_attr a;
	char key[KEY_MAX];
	struct obj *o = NULL;
	uint64_t ino = plan_manifest_ino(c->plan, d);

	pthread_mutex_unlock(&c->lock);
	if (cache_identity(c, ino, &a, key, sizeof(key), cid) || cache_obj_pin(c, cid, a.size, &o))
		o = NULL;
	pthread_mutex_lock(&c->lock);
	return o;
}

/* An open of slot x: serve the content due there if it is cached or lands
 * within the deadline; else swap it with the content due at the latest
 * pending slot of the scope whose content is cached (served now), the
 * missing one becoming due at that slot.  Contents only ever trade slots
 * within a scope, and each is served once: the exactly-once guarantee. */
void subst_target(struct cache *c, uint64_t ino, const struct ns_attr *xa, struct obj *xo,
		  uint64_t *target)
{
	struct obj *o, *pinned = NULL;
	uint64_t gen, u;
	uint32_t x, d, w, e;

	*target = ino;
	pthread_mutex_lock(&c->lock);
	if (plan_mode(c->plan) == PLAN_OFF || ensure_arrays(c)) {
		pthread_mutex_unlock(&c->lock);
		return;
	}
	x = plan_sample_of(c->plan, ino);
	/* Not planned (now): its own bytes, as an open outside the plan. */
	if (x == PLAN_NONE || x >= c->subst_n || !plan_pending(c->plan, x) ||
	    (d = due_at(c, x)) == PLAN_NONE) {
		pthread_mutex_unlock(&c->lock);
		return;
	}
	/* Claimed before any wait (which drops the lock), so that no other
	 * open takes d meanwhile. */
	c->served[d] = SERVED;
	gen = c->plan_gen;
	o = xo;
	if (d != x)
		o = pinned = pin_content(c, d);
	if (o && !full(o))
		wait_arrival(c, o);
	if (gen != c->plan_gen) {
		/* The plan or the epoch changed meanwhile: the books were reset. */
		d = x;
	} else if (!o || full(o) || (w = candidate(c, x, xa->parent)) == PLAN_NONE) {
		/* Here (or nothing to swap with: a miss) */
		set_slot(c, d, PLAN_NONE);
		c->redirect[x] = PLAN_NONE;
		if (d != x)
			log_debug("substitution: sample %u serves %u's bytes, as owed", x, d);
	} else {
		e = due_at(c, w);
		u = plan_next_use(c->plan, w);
		c->served[e] = SERVED;
		set_slot(c, e, PLAN_NONE);
		c->redirect[w] = PLAN_NONE;
		c->served[d] = 0;
		set_slot(c, d, w);
		c->redirect[x] = PLAN_NONE;
		/* d's bytes are now needed at w's slot (o is pinned: the key
		 * takes effect when it rejoins the policy); e's are keyed at this
		 * open.  The prefetcher may have passed w's slot while it held a
		 * cached content: it looks there again. */
		o->pe.next_use = u;
		if (c->pf_cursor > u)
			c->pf_cursor = u;
		pthread_cond_signal(&c->pf_cond);
		log_debug("substitution: sample %u served %u's bytes; %u due at %u", x, e, d, w);
		atomic_fetch_add_explicit(&c->substitutions, 1, memory_order_relaxed);
		if (c->nep)
			c->ep[(c->nep - 1) % EPOCH_HISTORY].substitutions++;
		d = e;
	}
	*target = plan_manifest_ino(c->plan, d);
	pthread_mutex_unlock(&c->lock);
	if (pinned)
		cache_obj_unpin(c, pinned);
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

