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

#include "subst.h"
#include "backends/base/log.h"
#include "backends/base/util.h"

#define SCAN_MAX 65536
#define SERVED 1 /* served[i]: i's content served (or claimed) this epoch */

/* Size the per-sample arrays to the manifest; lock held. */
static int ensure_arrays(struct subst *sb)
{
	uint32_t n = plan_manifest_len(sb->plan);

	if (sb->n == n && sb->sample_obj)
		return 0;
	free(sb->redirect);
	free(sb->served);
	free(sb->sample_obj);
	/* redirect and lender share one block (freed with redirect). */
	sb->redirect = ec_malloc(((size_t)n + 1) * 2 * sizeof(*sb->redirect));
	sb->lender = sb->redirect ? sb->redirect + n + 1 : NULL;
	sb->served = ec_calloc((size_t)n + 1, 1);
	sb->sample_obj = ec_calloc((size_t)n + 1, sizeof(*sb->sample_obj));
	if (!sb->redirect || !sb->served || !sb->sample_obj) {
		free(sb->redirect);
		free(sb->served);
		free(sb->sample_obj);
		sb->redirect = NULL;
		sb->lender = NULL;
		sb->served = NULL;
		sb->sample_obj = NULL;
		sb->n = 0;
		return -ENOMEM;
	}
	memset(sb->redirect, 0xff, ((size_t)n + 1) * 2 * sizeof(*sb->redirect));
	sb->n = n;
	sb->debt = 0;
	/* Objects are told their sample again by the prefetcher's resolution. */
	for (size_t b = 0; b < sb->ot->nbuckets; b++)
		for (struct obj *o = sb->ot->table[b]; o; o = o->hnext)
			if (o->sample < n)
				sb->sample_obj[o->sample] = o;
	return 0;
}

void subst_set_sample_locked(struct subst *sb, struct obj *o, uint32_t i)
{
	if (o->sample != PLAN_NONE && o->sample < sb->n && sb->sample_obj &&
	    sb->sample_obj[o->sample] == o)
		sb->sample_obj[o->sample] = NULL;
	o->sample = i;
	if (i != PLAN_NONE && i < sb->n && sb->sample_obj)
		sb->sample_obj[i] = o;
}

void subst_forget_obj_locked(struct subst *sb, struct obj *o)
{
	if (o->sample < sb->n && sb->sample_obj && sb->sample_obj[o->sample] == o)
		sb->sample_obj[o->sample] = NULL;
}

void subst_reset_locked(struct subst *sb)
{
	if (!sb->served)
		return;
	memset(sb->served, 0, (size_t)sb->n + 1);
	memset(sb->redirect, 0xff, ((size_t)sb->n + 1) * 2 * sizeof(*sb->redirect));
	sb->debt = 0;
}

uint32_t subst_redirect_locked(const struct subst *sb, uint32_t i)
{
	if (!sb->redirect || i >= sb->n)
		return PLAN_NONE;
	return sb->redirect[i];
}

/* The slot content i is due at: its lender's, or its own. */
static uint32_t slot_of(const struct subst *sb, uint32_t i)
{
	return sb->lender[i] != PLAN_NONE ? sb->lender[i] : i;
}

/* The content due at slot y (y pending), PLAN_NONE when nothing is (y's
 * own content was served or moved, and nothing was moved to y). */
static uint32_t due_at(const struct subst *sb, uint32_t y)
{
	uint32_t d = sb->redirect[y] != PLAN_NONE ? sb->redirect[y] : y;

	return !sb->served[d] && slot_of(sb, d) == y ? d : PLAN_NONE;
}

/* Content i becomes due at slot y (PLAN_NONE: at its own); keeps the debt. */
static void set_slot(struct subst *sb, uint32_t i, uint32_t y)
{
	uint32_t old = sb->lender[i];

	if (old != PLAN_NONE && sb->redirect[old] == i)
		sb->redirect[old] = PLAN_NONE;
	if (y == i)
		y = PLAN_NONE;
	sb->lender[i] = y;
	if (y != PLAN_NONE)
		sb->redirect[y] = i;
	sb->debt += (y != PLAN_NONE) - (old != PLAN_NONE);
}

/* The eviction key of content i.  Not served yet: the use of the slot it is
 * due at.  Served through another slot than its own: its next use is in the
 * next epoch, whatever the plan says of its own slot (which now serves
 * another content).  Otherwise its next use, spread when in a later epoch
 * (docs/policy.md). */
uint64_t subst_key_locked(const struct subst *sb, uint32_t i)
{
	if (sb->served && i < sb->n) {
		if (!sb->served[i] && sb->lender[i] != PLAN_NONE)
			return plan_next_use(sb->plan, sb->lender[i]);
		if (sb->served[i] && sb->redirect[i] != PLAN_NONE)
			return plan_spread_key_after(sb->plan, i);
	}
	return plan_spread_key(sb->plan, i);
}

/* Every content not yet served this epoch is a hit to come, at its own slot
 * or another's: trading one for another gains no hit and costs a fetch.  So
 * a prefetch only takes the room of contents already served (keyed in a
 * later epoch), and a content for a later epoch only free room (one served
 * content of the stock kept for the next epoch is as good as another).  The
 * room is made now, not when the bytes land, so that prefetches in flight
 * never count on the same victim. */
int subst_make_room_locked(struct subst *sb, const struct pol_entry *pe, uint64_t need)
{
	struct pol_entry *v;

	/* Prefetches in flight hold reservations, counted in what is used. */
	while (objtab_used_locked(sb->ot) + need > sb->ot->capacity) {
		if (!plan_use_current(sb->plan, pe->next_use))
			return 0;
		v = policy_victim(sb->ot->pol, pe);
		if (!v || plan_use_current(sb->plan, v->next_use))
			return 0;
		objtab_evict_locked(sb->ot, (struct obj *)v);
	}
	return 1;
}

/* The latest pending slot of the current epoch other than x whose due
 * content is cached and of x's scope; lock held. */
static uint32_t candidate(struct subst *sb, uint32_t x, uint64_t xparent)
{
	const uint32_t *ord;
	uint64_t len, pos = plan_first_pending_slot(sb->plan), q, scanned = 0;
	struct ns_attr a;
	unsigned r_none = 0, r_full = 0, r_dir = 0;

	ord = plan_order(sb->plan, &len);
	for (q = len; q-- > pos && scanned < SCAN_MAX; scanned++) {
		uint32_t w = ord[q], e;

		if (w == x || w >= sb->n || !plan_pending(sb->plan, w))
			continue;
		if ((e = due_at(sb, w)) == PLAN_NONE) {
			r_none++;
			continue;
		}
		if (!obj_full(sb->sample_obj[e])) {
			r_full++;
			continue;
		}
		if (sb->mode == SUBST_DIR &&
		    (ns_getattr(sb->ns, plan_manifest_ino(sb->plan, e), &a) ||
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
static void wait_arrival(struct subst *sb, struct obj *o)
{
	struct timespec ts;

	if (!obj_inflight(o) || !sb->deadline_ms)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec += (long)sb->deadline_ms * 1000000L;
	ts.tv_sec += ts.tv_nsec / 1000000000L;
	ts.tv_nsec %= 1000000000L;
	while (obj_inflight(o) && !obj_full(o))
		if (pthread_cond_timedwait(&sb->fl->fetch_cond, &sb->ot->lock, &ts))
			break;
}

/* The in-memory object of content d, pinned; lock held on entry and exit
 * (dropped meanwhile).  NULL if it cannot be had. */
static struct obj *pin_content(struct subst *sb, uint32_t d)
{
	uint8_t cid[CID_LEN];
	struct ns_attr a;
	char key[KEY_MAX];
	struct obj *o = NULL;
	uint64_t ino = plan_manifest_ino(sb->plan, d);

	pthread_mutex_unlock(&sb->ot->lock);
	if (ns_identity(sb->ns, ino, &a, key, sizeof(key), cid) || objtab_pin(sb->ot, cid, a.size, &o))
		o = NULL;
	pthread_mutex_lock(&sb->ot->lock);
	return o;
}

/* An open of slot x: serve the content due there if it is cached or lands
 * within the deadline; else swap it with the content due at the latest
 * pending slot of the scope whose content is cached (served now), the
 * missing one becoming due at that slot.  Contents only ever trade slots
 * within a scope, and each is served once: the exactly-once guarantee. */
void subst_target(struct subst *sb, uint64_t ino, const struct ns_attr *xa, struct obj *xo,
		  uint64_t *target, uint64_t *rewind)
{
	struct obj *o, *pinned = NULL;
	uint64_t gen, u;
	uint32_t x, d, w, e;

	*target = ino;
	*rewind = PLAN_NEVER;
	pthread_mutex_lock(&sb->ot->lock);
	if (plan_mode(sb->plan) == PLAN_OFF || ensure_arrays(sb)) {
		pthread_mutex_unlock(&sb->ot->lock);
		return;
	}
	x = plan_sample_of(sb->plan, ino);
	/* Not planned (now): its own bytes, as an open outside the plan. */
	if (x == PLAN_NONE || x >= sb->n || !plan_pending(sb->plan, x) ||
	    (d = due_at(sb, x)) == PLAN_NONE) {
		pthread_mutex_unlock(&sb->ot->lock);
		return;
	}
	/* Claimed before any wait (which drops the lock), so that no other
	 * open takes d meanwhile. */
	sb->served[d] = SERVED;
	gen = plan_gen(sb->plan);
	o = xo;
	if (d != x)
		o = pinned = pin_content(sb, d);
	if (o && !obj_full(o))
		wait_arrival(sb, o);
	if (gen != plan_gen(sb->plan)) {
		/* The plan or the epoch changed meanwhile: the books were reset. */
		d = x;
	} else if (!o || obj_full(o) || (w = candidate(sb, x, xa->parent)) == PLAN_NONE) {
		/* Here (or nothing to swap with: a miss) */
		set_slot(sb, d, PLAN_NONE);
		sb->redirect[x] = PLAN_NONE;
		if (d != x)
			log_debug("substitution: sample %u serves %u's bytes, as owed", x, d);
	} else {
		e = due_at(sb, w);
		u = plan_next_use(sb->plan, w);
		sb->served[e] = SERVED;
		set_slot(sb, e, PLAN_NONE);
		sb->redirect[w] = PLAN_NONE;
		sb->served[d] = 0;
		set_slot(sb, d, w);
		sb->redirect[x] = PLAN_NONE;
		/* d's bytes are now needed at w's slot (o is pinned: the key
		 * takes effect when it rejoins the policy); e's are keyed at this
		 * open.  The prefetcher may have passed w's slot while it held a
		 * cached content: it looks there again. */
		o->pe.next_use = u;
		*rewind = u;
		log_debug("substitution: sample %u served %u's bytes; %u due at %u", x, e, d, w);
		atomic_fetch_add_explicit(&sb->substitutions, 1, memory_order_relaxed);
		if (epoch_cur(sb->ep))
			epoch_cur(sb->ep)->substitutions++;
		d = e;
	}
	*target = plan_manifest_ino(sb->plan, d);
	pthread_mutex_unlock(&sb->ot->lock);
	if (pinned)
		fill_unpin(sb->fl, pinned);
}

void subst_destroy(struct subst *sb)
{
	free(sb->redirect);
	free(sb->served);
	free(sb->sample_obj);
	sb->redirect = sb->lender = NULL;
	sb->served = NULL;
	sb->sample_obj = NULL;
	sb->n = 0;
}

/* ---- sizes of open substituted handles, for stat ---- */

void subst_handle_open(struct subst *sb, uint64_t ino, uint64_t size)
{
	pthread_mutex_lock(&sb->ot->lock);
	for (int i = 0; i < SUBST_OPEN_MAX; i++)
		if (!sb->open[i].n || sb->open[i].ino == ino) {
			sb->open[i].ino = ino;
			sb->open[i].size = size;
			sb->open[i].n++;
			break;
		}
	pthread_mutex_unlock(&sb->ot->lock);
}

void subst_handle_close(struct subst *sb, uint64_t ino)
{
	pthread_mutex_lock(&sb->ot->lock);
	for (int i = 0; i < SUBST_OPEN_MAX; i++)
		if (sb->open[i].n && sb->open[i].ino == ino) {
			sb->open[i].n--;
			break;
		}
	pthread_mutex_unlock(&sb->ot->lock);
}

int subst_served_size(struct subst *sb, uint64_t ino, uint64_t *size)
{
	int found = 0;

	pthread_mutex_lock(&sb->ot->lock);
	for (int i = 0; i < SUBST_OPEN_MAX && !found; i++)
		if (sb->open[i].n && sb->open[i].ino == ino) {
			*size = sb->open[i].size;
			found = 1;
		}
	pthread_mutex_unlock(&sb->ot->lock);
	return found;
}

