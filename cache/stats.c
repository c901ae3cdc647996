/* SPDX-License-Identifier: MIT */
/* The stats object (.epochfs/stats): one JSON object of the node's counters,
 * the cache's occupancy, the plan's progress and a record per recent epoch
 * (docs/control.md lists the fields).  Read without stopping the readers:
 * counters are relaxed atomics, the rest is copied under the lock. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "engine.h"
#include "backends/peer.h"
#include "backends/base/sbuf.h"
#include "backends/base/util.h"

#define LD(x) ((unsigned long long)atomic_load(&(x)))

/* What the stats need from under the lock. */
struct snap {
	uint64_t data, meta, objs, fbytes, epoch, pos, eplen, debt;
	unsigned nep, nranks;
	int degraded, planned;
	struct plan_rank_info ranks[PLAN_MAX_RANKS];
	struct epoch_stats ep[EPOCH_HISTORY];
};

static void take_snapshot(struct cache *c, struct snap *s)
{
	pthread_mutex_lock(&c->ot.lock);
	s->data = c->ot.data_bytes + c->ot.reserved;
	s->meta = c->ot.meta_bytes;
	s->objs = c->ot.cached_objs;
	s->fbytes = c->ot.cached_bytes;
	s->degraded = c->ot.degraded;
	s->planned = plan_mode(c->plan) != PLAN_OFF;
	s->epoch = s->pos = s->eplen = 0;
	if (s->planned) {
		s->epoch = plan_epoch(c->plan);
		s->pos = plan_position(c->plan);
		s->eplen = plan_epoch_length(c->plan);
	}
	s->nranks = plan_nranks(c->plan);
	for (unsigned k = 0; k < s->nranks; k++)
		plan_rank_get(c->plan, k, &s->ranks[k]);
	s->nep = c->ep.n;
	s->debt = c->sb.debt;
	memcpy(s->ep, c->ep.ep, sizeof(s->ep));
	pthread_mutex_unlock(&c->ot.lock);
}

/* The counters an epoch record is measured against: the next record's
 * starts, or now for the current one. */
struct ends {
	uint64_t backend, read, hit, stall, used, late;
};

static void epoch_json(struct sbuf *b, const struct epoch_stats *e, const struct ends *end)
{
	sbuf_printf(b,
		    "{\"epoch\":%llu,\"opens\":%llu,\"open_hits\":%llu,"
		    "\"read_bytes\":%llu,\"hit_bytes\":%llu,\"stall_ns\":%llu,"
		    "\"prefetch_used\":%llu,\"prefetch_late\":%llu,"
		    "\"backend_bytes\":%llu,\"substitutions\":%llu,"
		    "\"cached_objects_at_start\":%llu,\"cached_bytes_at_start\":%llu,"
		    "\"fetched_bytes\":%llu,\"refetched_bytes\":%llu,"
		    "\"prefetched_ahead_bytes\":%llu,\"evicted_planned\":%llu,"
		    "\"not_stored_prefetch\":%llu}",
		    (unsigned long long)e->epoch, (unsigned long long)e->opens,
		    (unsigned long long)e->open_hits,
		    (unsigned long long)(end->read - e->read_bytes_at_start),
		    (unsigned long long)(end->hit - e->hit_bytes_at_start),
		    (unsigned long long)(end->stall - e->stall_ns_at_start),
		    (unsigned long long)(end->used - e->prefetch_used_at_start),
		    (unsigned long long)(end->late - e->prefetch_late_at_start),
		    (unsigned long long)(end->backend - e->backend_bytes_at_start),
		    (unsigned long long)e->substitutions,
		    (unsigned long long)e->cached_objects_at_start,
		    (unsigned long long)e->cached_bytes_at_start,
		    (unsigned long long)e->fetched_bytes, (unsigned long long)e->refetched_bytes,
		    (unsigned long long)e->prefetched_ahead_bytes,
		    (unsigned long long)e->evicted_planned,
		    (unsigned long long)e->not_stored_prefetch);
}

static void epochs_json(struct sbuf *b, struct cache *c, const struct snap *s)
{
	struct ends now = {
		atomic_load(&c->be->counters.bytes), LD(c->ctr.read_bytes),
		LD(c->ctr.read_bytes_from_cache), LD(c->ctr.stall_ns), LD(c->pf.used),
		LD(c->pf.late),
	};
	uint64_t first = s->nep > EPOCH_HISTORY ? s->nep - EPOCH_HISTORY : 0;

	sbuf_str(b, "\"epochs\":[");
	for (uint64_t i = first; i < s->nep; i++) {
		const struct epoch_stats *e = &s->ep[i % EPOCH_HISTORY], *nx;
		struct ends end = now;

		if (i + 1 < s->nep) {
			nx = &s->ep[(i + 1) % EPOCH_HISTORY];
			end = (struct ends){ nx->backend_bytes_at_start, nx->read_bytes_at_start,
					     nx->hit_bytes_at_start, nx->stall_ns_at_start,
					     nx->prefetch_used_at_start, nx->prefetch_late_at_start };
		}
		if (i > first)
			sbuf_str(b, ",");
		epoch_json(b, e, &end);
	}
	sbuf_str(b, "]");
}

/* Each followed rank's figures, counted since the mount. */
static void ranks_json(struct sbuf *b, const struct snap *s)
{
	sbuf_str(b, "\"ranks\":[");
	for (unsigned k = 0; k < s->nranks; k++) {
		const struct plan_rank_info *r = &s->ranks[k];

		sbuf_printf(b,
			    "%s{\"rank\":%u,\"epoch\":%llu,\"position\":%llu,\"epoch_length\":%llu,"
			    "\"opens\":%llu,\"prefetch_used\":%llu,\"prefetch_late\":%llu,"
			    "\"plain_reads\":%llu}",
			    k ? "," : "", r->rank, (unsigned long long)r->epoch,
			    (unsigned long long)r->position, (unsigned long long)r->len,
			    (unsigned long long)r->st.opens, (unsigned long long)r->st.prefetch_used,
			    (unsigned long long)r->st.prefetch_late,
			    (unsigned long long)r->st.plain_reads);
	}
	sbuf_str(b, "],");
}

int cache_stats_json(struct cache *c, char **out, size_t *len)
{
	const struct backend_counters *bc = &c->be->counters;
	struct sbuf b = { 0 };
	struct snap s;

	take_snapshot(c, &s);
	sbuf_str(&b, "{\"version\":1,\"source\":\"");
	sbuf_json_str(&b, c->be->url);
	sbuf_printf(&b, "\",\"backend\":\"%s\",\"policy\":\"%s\",\"open_mode\":\"%s\",",
		    c->be->ops->name, policy_name(s.planned ? POLICY_BELADY : c->cfg.policy),
		    c->cfg.no_open ? "no-open" : "open");
	sbuf_printf(&b, "\"uptime_ns\":%llu,\"files\":%llu,",
		    (unsigned long long)(now_ns() - c->started_ns),
		    (unsigned long long)c->ns.src.files);
	sbuf_printf(&b,
		    "\"opens\":%llu,\"open_hits\":%llu,\"reads\":%llu,\"read_bytes\":%llu,"
		    "\"read_bytes_from_cache\":%llu,\"stall_ns\":%llu,\"passthrough_opens\":%llu,",
		    LD(c->ctr.opens), LD(c->ctr.open_hits), LD(c->ctr.reads),
		    LD(c->ctr.read_bytes), LD(c->ctr.read_bytes_from_cache), LD(c->ctr.stall_ns),
		    LD(c->ctr.passthrough_opens));
	sbuf_printf(&b,
		    "\"backend_requests\":%llu,\"backend_bytes\":%llu,\"backend_errors\":%llu,"
		    "\"backend_retries\":%llu,\"skipped_keys\":%llu,"
		    "\"fetches\":%llu,\"fetch_bytes\":%llu,",
		    LD(bc->requests), LD(bc->bytes), LD(bc->errors), LD(bc->retries),
		    LD(bc->skipped_keys), LD(c->ctr.fetches), LD(c->ctr.fetch_bytes));
	sbuf_printf(&b,
		    "\"cache_bytes\":%llu,\"cache_data_bytes\":%llu,\"cache_meta_bytes\":%llu,"
		    "\"cache_capacity\":%llu,\"cache_objects\":%llu,\"cache_file_bytes\":%llu,",
		    (unsigned long long)(s.data + s.meta), (unsigned long long)s.data,
		    (unsigned long long)s.meta, (unsigned long long)c->ot.capacity,
		    (unsigned long long)s.objs, (unsigned long long)s.fbytes);
	sbuf_printf(&b,
		    "\"evictions\":%llu,\"evictions_for_index\":%llu,"
		    "\"not_admitted\":%llu,\"verify_failures\":%llu,\"stale\":%llu,"
		    "\"store_errors\":%llu,\"cache_degraded\":%d,",
		    LD(c->ctr.evictions), LD(c->ctr.evictions_for_index), LD(c->ctr.not_admitted),
		    LD(c->ctr.verify_failures), LD(c->ctr.stale), LD(c->ctr.store_errors),
		    s.degraded);
	sbuf_printf(&b,
		    "\"planned\":%d,\"epoch\":%llu,\"position\":%llu,\"epoch_length\":%llu,"
		    "\"prefetch_issued\":%llu,\"prefetch_used\":%llu,\"prefetch_late\":%llu,"
		    "\"prefetch_wasted\":%llu,\"substitutions\":%llu,\"substitution_debt\":%llu,",
		    s.planned, (unsigned long long)s.epoch, (unsigned long long)s.pos,
		    (unsigned long long)s.eplen, LD(c->pf.issued), LD(c->pf.used), LD(c->pf.late),
		    LD(c->pf.wasted), LD(c->sb.substitutions), (unsigned long long)s.debt);
	sbuf_printf(&b, "\"plain_reads\":%llu,\"prefetch_staged\":%llu,", LD(c->pf.plain_reads),
		    LD(c->pf.staged));
	peer_stats_json(c->be, &b); /* peers (issue 13): nothing without them */
	ranks_json(&b, &s);
	epochs_json(&b, c, &s);
	sbuf_str(&b, "}\n");
	return sbuf_done(&b, out, len);
}
