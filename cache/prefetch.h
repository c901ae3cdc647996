/* SPDX-License-Identifier: MIT */
/* The clairvoyant prefetcher: its thread, its state and what the other
 * layers tell it (prefetch.c explains the rules).  Under the object table's
 * lock but where a function says otherwise. */
#ifndef EPOCHFS_PREFETCH_H
#define EPOCHFS_PREFETCH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "epochs.h"
#include "fill.h"
#include "ns.h"
#include "objtab.h"
#include "plan.h"
#include "subst.h"

/* Which rank an opener's pid was last located in. */
#define PREFETCH_PIDS 1024
struct pid_slot {
	uint32_t pid;
	int rank;
};

/* Files staged ahead of the readers by default (--stage-ahead). */
#define PREFETCH_STAGE_DEFAULT 128
#define PREFETCH_STAGE_BYTES (64ull << 20)

struct prefetcher {
	struct objtab *ot;
	struct ns *ns;
	struct fill *fl;
	struct plan *plan;
	struct subst *sb;
	struct epoch_log *ep;
	struct backend *be;          /* its byte counter marks an epoch's start */
	enum policy_kind policy;     /* the policy when no plan is in force */
	unsigned max;                /* fetches in flight */
	uint64_t max_bytes;          /* bytes in flight */
	/* Staging: the store files of the next `stage` planned samples that are
	 * cached are read ahead into the page cache (POSIX_FADV_WILLNEED), so
	 * that a reader's open finds them in RAM rather than waiting on the
	 * SSD; scursor is the next use number to stage.  0: off. */
	unsigned stage;
	uint64_t stage_bytes;        /* and at most these bytes ahead */
	uint64_t scursor;
	/* What is staged ahead of the readers, to bound its bytes: a ring of
	 * (use number, size), oldest first (NULL until the first stage). */
	struct stage_ent { uint64_t u, size; } *sring;
	unsigned shead, slen;
	uint64_t sbytes;
	atomic_uint_fast64_t staged;

	pthread_t thread;
	pthread_cond_t cond;         /* work to look at */
	int started, stop;
	uint64_t cursor;             /* next use number to look at */
	/* Peers: the samples this node owns (a bitmap over the manifest, made
	 * with the samples' resolution when the fill has an ownership
	 * function), and the walk over the whole job's order that prefetches
	 * them for every rank of the job (plan_job_sample_at). */
	uint64_t *owned;
	uint32_t owned_n;
	uint64_t jcursor;
	uint64_t resolved_mgen;      /* manifest whose samples objects know */
	uint64_t rekeyed_gen;        /* plan whose keys the policy has */
	int rekey;                   /* keys must follow (a resolution) */
	atomic_uint_fast64_t issued, used, late, wasted;
	atomic_uint_fast64_t plain_reads;  /* opens of samples no rank plans */
	struct pid_slot pids[PREFETCH_PIDS];
};

/* Start the thread (the fields above set by the caller).  0 or -errno. */
int prefetch_start(struct prefetcher *pf) __attribute__((warn_unused_result));
void prefetch_stop(struct prefetcher *pf);

/* Something changed that the prefetcher should look at. */
void prefetch_wake_locked(struct prefetcher *pf);
/* Look again from use number u on (a slot substitution made due). */
void prefetch_rewind_locked(struct prefetcher *pf, uint64_t u);
/* The plan was replaced or moved to another epoch (by a control write):
 * the substitution books start over, a new epoch record begins, the
 * prefetcher looks. */
void prefetch_plan_changed_locked(struct prefetcher *pf);
/* An open of ino by process pid (0: unknown) whose content (content_ino:
 * ino but for a substitution) is o: follow the readers, count prefetch use
 * for the node and for the rank the open is located in. */
void prefetch_on_open_locked(struct prefetcher *pf, struct obj *o, uint64_t ino,
			     uint64_t content_ino, uint32_t pid);
/* o is being evicted (statistics).  The objtab's on_evict hook. */
void prefetch_on_evict(void *pf, struct obj *o);
/* A prefetch fetch settled.  The fill's on_prefetch_settled hook. */
void prefetch_on_settled(void *pf);

#endif
