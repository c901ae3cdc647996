/* SPDX-License-Identifier: MIT */
/* The engine behind a `struct cache`: the parts it is made of and who owns
 * what.  Only the top of cache/ includes this (cache.c: open and close;
 * read.c: the read path; records.c: the flusher; stats.c; control.c); the
 * layers below see only their own headers:
 *
 *   objtab (objects, the lock, policy, accounting)  <- fill (fetches, store
 *   workers) <- subst (substitution's books) <- prefetch (the prefetcher)
 *   ns (the namespace snapshot), plan, epochs: used by those above them.
 *
 * Each layer's state is a struct of its own, embedded here, that its file
 * owns; the layers are wired together by pointers set in cache_open. */
#ifndef EPOCHFS_ENGINE_H
#define EPOCHFS_ENGINE_H

#include <pthread.h>
#include <stdatomic.h>

#include "cache.h"
#include "epochs.h"
#include "fill.h"
#include "ns.h"
#include "objtab.h"
#include "plan.h"
#include "prefetch.h"
#include "subst.h"

struct cache {
	struct cache_config cfg;
	char *dir;
	char *mountpoint;            /* absolute, once mounted (cache_note_mounted) */
	int lockfd;
	struct backend *be;
	struct index *ix;
	struct store *st;
	struct policy *pol;
	struct cache_counters ctr;
	uint64_t started_ns;

	struct ns ns;
	struct objtab ot;            /* ot.lock is the engine's lock */
	struct fill fill;
	struct plan *plan;
	struct subst sb;
	struct prefetcher pf;
	struct epoch_log ep;

	/* the plan as last saved in the index (planstore.c) */
	uint64_t saved_mgen;
	char *saved_pos;
	size_t saved_pos_len;

	pthread_t flusher;
	pthread_cond_t flush_cond;
	int flusher_started, flush_stop;
};

/* An open file: the content it serves (o, pinned: its content id and size
 * are the identity it was opened at). */
struct file_src;
struct cache_file {
	struct cache *c;
	struct obj *o;
	uint64_t ino;
	/* Key, mtime and ETag of that version at the source: read from the
	 * index at the first read that needs a fetch (read.c, file_src). */
	_Atomic(struct file_src *) src;
	int stale;                /* the source changed: reads fail with EIO */
	int substituted;          /* serving another sample's bytes */
	int checked;              /* at open: whole, every chunk checked */
	uint64_t open_ino;        /* the inode opened (ino is the content's) */
	atomic_uint reads;        /* reads begun on this handle */
	/* The source changed before this handle served any byte: its reads go
	 * to a handle on the new version (read.c, changed_under). */
	_Atomic(struct cache_file *) repl;
};

/* records.c: load the object records at open (and drop store files no
 * record claims); write dirty records back, free what holds nothing,
 * re-measure the index; the flusher thread that does it every flush_ms. */
int records_load(struct cache *c, char *err, size_t errlen);
void records_flush(struct cache *c);
int records_start_flusher(struct cache *c);
void records_stop_flusher(struct cache *c);

#endif
