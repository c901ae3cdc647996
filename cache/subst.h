/* SPDX-License-Identifier: MIT */
/* Substitutable hits (the Quiver idea): the books of which content is due
 * at which slot of the epoch's order, and the decision an open makes
 * (subst.c explains the rules).  All of it under the object table's lock
 * but where a function says otherwise. */
#ifndef EPOCHFS_SUBST_H
#define EPOCHFS_SUBST_H

#include <stdatomic.h>
#include <stdint.h>

#include "epochs.h"
#include "fill.h"
#include "ns.h"
#include "objtab.h"
#include "plan.h"

#define SUBST_OPEN_MAX 256

struct subst {
	struct objtab *ot;
	struct ns *ns;
	struct fill *fl;
	struct plan *plan;
	struct epoch_log *ep;
	int mode;                    /* SUBST_OFF, SUBST_DIR, SUBST_ALL */
	unsigned deadline_ms;        /* wait this long for a prefetch first */

	uint32_t *redirect;          /* slot (sample) -> content due there, if not its own */
	uint32_t *lender;            /* content -> slot it is due at, if not its own
				      * (shares redirect's allocation) */
	uint8_t *served;             /* content served (or being served) this epoch */
	struct obj **sample_obj;     /* sample -> in-memory object */
	uint32_t n;
	uint64_t debt;               /* contents due at another slot than their own */
	atomic_uint_fast64_t substitutions;
	struct {
		uint64_t ino, size;
		int n;
	} open[SUBST_OPEN_MAX];      /* open substituted handles, for stat */
};

void subst_destroy(struct subst *sb);

/* An open of ino (whose own object xo the caller has pinned): which file's
 * bytes it serves, into *target (ino itself but for a substitution).  When
 * a trade made a slot due that the prefetcher may have passed, *rewind is
 * its use number (else PLAN_NEVER): the caller rewinds the prefetcher
 * there.  Lock not held. */
void subst_target(struct subst *sb, uint64_t ino, const struct ns_attr *xa, struct obj *xo,
		  uint64_t *target, uint64_t *rewind);
/* o is the content of sample i (PLAN_NONE: of none). */
void subst_set_sample_locked(struct subst *sb, struct obj *o, uint32_t i);
/* The eviction key of sample i's content with substitution on. */
uint64_t subst_key_locked(const struct subst *sb, uint32_t i);
/* Make room for a prefetch (pe: its key, need: its bytes) by evicting only
 * contents already served this epoch; 1 when there is room, 0 when the
 * prefetch should wait. */
int subst_make_room_locked(struct subst *sb, const struct pol_entry *pe, uint64_t need);
/* o leaves memory (the flusher frees it). */
void subst_forget_obj_locked(struct subst *sb, struct obj *o);
/* A new plan or epoch: the books start over. */
void subst_reset_locked(struct subst *sb);
/* The content due at slot i if not its own, PLAN_NONE. */
uint32_t subst_redirect_locked(const struct subst *sb, uint32_t i);
/* Open substituted handles of ino and their served size (lock not held):
 * while one is open, a stat of ino's path shows the served size. */
void subst_handle_open(struct subst *sb, uint64_t ino, uint64_t size);
void subst_handle_close(struct subst *sb, uint64_t ino);
int subst_served_size(struct subst *sb, uint64_t ino, uint64_t *size);

#endif
