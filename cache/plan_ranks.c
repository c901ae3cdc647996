/* SPDX-License-Identifier: MIT */
/* The plan's epochs, positions and ranks.
 *
 * Ranks.  A node runs one reader rank per GPU, each reading its own shard
 * of every epoch through the one mount.  The plan follows up to
 * PLAN_MAX_RANKS of them, sorted by rank id; the k-th is rank index k.
 * Data-parallel ranks advance in lockstep, so the node as a whole needs the
 * samples in the merged order: position 0 of every rank (in rank order),
 * then position 1, and so on.  Slot s = q * nranks + k holds rank k's
 * position q (PLAN_HOLE where its order is shorter).  One merged order per
 * epoch, 4 bytes a slot, plus 4 bytes a sample for the sample -> first slot
 * map and a bit a slot for what was opened: nothing per sample grows with
 * the number of ranks or the world size.
 *
 * Use numbers.  u = epoch * STRIDE + slot.  A sample's next use is its
 * first slot, over both epochs the plan holds (the slowest rank's epoch,
 * the base, and the next), that its rank has yet to read: unopened in the
 * rank's epoch, or in a later epoch.  Belady's rule evicts the largest.
 *
 * Following the readers.  Each rank has its own epoch and position (its
 * first position not opened: loader workers open slightly out of order, so
 * a low-water mark, not the last one opened).  An open of sample i is
 * located in the rank that holds i nearest ahead of its position: at an
 * unopened slot of the rank's epoch, or at the rank's next epoch when it
 * has opened 90% of its own (a dataloader that skipped or lost a few).  A
 * rank that has opened all of its epoch moves to the next; when no rank is
 * left in the base epoch, the base moves on and the epoch after the new one
 * is made.  A rank more than one epoch ahead of the slowest is not
 * followed until the others catch up (its opens are plain reads). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "plan_int.h"
#include "backends/base/util.h"

void eo_free(struct epoch_order *e)
{
	if (e->ord_owned)
		free(e->ord);
	free(e->pos);
	free(e->again);
	free(e->again_key);
	free(e->again_val);
	free(e->opened);
	free(e->jperm);
	free(e->jq);
	memset(e, 0, sizeof(*e));
}

void plan_free_lists(struct plan_rank *r)
{
	for (size_t i = 0; i < r->nlists; i++)
		free(r->lists[i]);
	free(r->lists);
	free(r->lens);
	r->lists = NULL;
	r->lens = NULL;
	r->nlists = 0;
}

static size_t bitmap_words(uint64_t bits)
{
	return (size_t)(bits / 64) + 1;
}

/* The merged order of a seed job for epoch e. */
static int seed_order(const struct plan *p, const struct plan_job *job, uint64_t e,
		      struct epoch_order *eo)
{
	struct order_spec s = job->spec;
	uint32_t ids[PLAN_MAX_RANKS];
	uint64_t len;
	int rc;

	s.epoch = e;
	s.rank = job->rk[0].id;
	rc = order_len(&s, p->n, &len);
	if (rc)
		return rc;
	if (len * job->nr >= PLAN_HOLE)
		return -EINVAL;
	for (unsigned k = 0; k < job->nr; k++) {
		ids[k] = job->rk[k].id;
		eo->rlen[k] = len;
	}
	eo->slots = len * job->nr;
	eo->ord = ec_malloc((size_t)eo->slots * sizeof(*eo->ord) + 4);
	if (!eo->ord)
		return -ENOMEM;
	eo->ord_owned = 1;
	return order_generate_ranks(&s, ids, job->nr, p->n, eo->ord, eo->slots);
}

/* The merged order of an explicit job for epoch e; -ENOENT when no rank
 * has a list for it. */
static int explicit_order(const struct plan_job *job, uint64_t e, struct epoch_order *eo)
{
	uint64_t maxlen = 0;
	const uint32_t *l[PLAN_MAX_RANKS];

	for (unsigned k = 0; k < job->nr; k++) {
		const struct plan_rank *r = &job->rk[k];

		l[k] = NULL;
		eo->rlen[k] = 0;
		if (e >= r->first_epoch && e - r->first_epoch < r->nlists) {
			l[k] = r->lists[e - r->first_epoch];
			eo->rlen[k] = r->lens[e - r->first_epoch];
		}
		maxlen = MAX(maxlen, eo->rlen[k]);
	}
	if (!maxlen)
		return -ENOENT;
	if (maxlen * job->nr >= PLAN_HOLE)
		return -EINVAL;
	eo->slots = maxlen * job->nr;
	if (job->nr == 1) { /* the rank keeps the list: read the order there */
		eo->ord = (uint32_t *)l[0];
		return 0;
	}
	eo->ord = ec_malloc((size_t)eo->slots * sizeof(*eo->ord) + 4);
	if (!eo->ord)
		return -ENOMEM;
	eo->ord_owned = 1;
	for (uint64_t q = 0; q < maxlen; q++)
		for (unsigned k = 0; k < job->nr; k++)
			eo->ord[q * job->nr + k] = q < eo->rlen[k] ? l[k][q] : PLAN_HOLE;
	return 0;
}

static uint32_t again_slot(uint32_t s, uint32_t mask)
{
	return (s * 0x9e3779b1u) & mask;
}

uint32_t eo_again(const struct epoch_order *eo, uint32_t s)
{
	if (eo->again)
		return eo->again[s];
	if (!eo->again_mask)
		return PLAN_NONE;
	for (uint32_t h = again_slot(s, eo->again_mask);; h = (h + 1) & eo->again_mask) {
		if (eo->again_key[h] == s)
			return eo->again_val[h];
		if (eo->again_key[h] == PLAN_NONE)
			return PLAN_NONE;
	}
}

/* Chain the slots of samples planned more than once (ndup slots have a
 * next one): a dense slot -> next slot array when many do, a hash of the
 * pairs when few do.  eo->pos is rebuilt on the way.  0 or -ENOMEM. */
static int again_make(const struct plan *p, struct epoch_order *eo, uint64_t ndup)
{
	uint64_t cap = 16;

	if (ndup * 4 > eo->slots) {
		eo->again = ec_malloc((size_t)eo->slots * sizeof(*eo->again) + 4);
		if (!eo->again)
			return -ENOMEM;
	} else {
		while (cap < ndup * 2)
			cap *= 2;
		eo->again_key = ec_malloc((size_t)cap * sizeof(*eo->again_key));
		eo->again_val = ec_malloc((size_t)cap * sizeof(*eo->again_val));
		if (!eo->again_key || !eo->again_val)
			return -ENOMEM;
		memset(eo->again_key, 0xff, (size_t)cap * sizeof(*eo->again_key));
		eo->again_mask = (uint32_t)(cap - 1);
	}
	memset(eo->pos, 0xff, (size_t)p->n * sizeof(*eo->pos));
	for (uint64_t s = eo->slots; s-- > 0;) {
		uint32_t next = PLAN_NONE, h;

		if (eo->ord[s] < p->n) {
			next = eo->pos[eo->ord[s]];
			eo->pos[eo->ord[s]] = (uint32_t)s;
		}
		if (eo->again) {
			eo->again[s] = next;
		} else if (next != PLAN_NONE) {
			for (h = again_slot((uint32_t)s, eo->again_mask); eo->again_key[h] != PLAN_NONE;
			     h = (h + 1) & eo->again_mask)
				;
			eo->again_key[h] = (uint32_t)s;
			eo->again_val[h] = next;
		}
	}
	return 0;
}

/* The whole job's order of epoch e, for cluster prefetching: every rank's
 * shard comes from one shuffle of all indices (torch's DistributedSampler
 * draws randperm(n) whatever the world), so the job's order is that of a
 * world of one, cut to a multiple of the world with drop_last; padding
 * repeats indices already met.  Without memory the plan simply has none. */
static void job_order_make(const struct plan *p, const struct plan_job *job, uint64_t e,
			   struct epoch_order *eo)
{
	struct order_spec s = job->spec;
	uint64_t len, w = job->spec.world;

	if (!p->cluster || job->mode != PLAN_SEED || s.sampler != ORDER_DISTRIBUTED ||
	    w <= job->nr || !p->n)
		return;
	s.epoch = e;
	s.world = 1;
	s.rank = 0;
	s.drop_last = 0;
	if (order_len(&s, p->n, &len) || len != p->n)
		return;
	eo->jperm = ec_malloc((size_t)p->n * sizeof(*eo->jperm));
	eo->jq = ec_malloc((size_t)p->n * sizeof(*eo->jq));
	if (!eo->jperm || !eo->jq || order_generate(&s, p->n, eo->jperm, p->n)) {
		free(eo->jperm);
		free(eo->jq);
		eo->jperm = eo->jq = NULL;
		return;
	}
	eo->jlen = job->spec.drop_last ? p->n / w * w : p->n;
	memset(eo->jq, 0xff, (size_t)p->n * sizeof(*eo->jq));
	for (uint64_t j = 0; j < eo->jlen; j++)
		eo->jq[eo->jperm[j]] = (uint32_t)(j / w);
}

/* Make epoch e's merged order and its indexes into eo.  -ENOENT when the
 * mode cannot (an explicit plan that does not reach that far). */
static int eo_make(const struct plan *p, const struct plan_job *job, uint64_t e,
		   struct epoch_order *eo)
{
	uint64_t ndup = 0;
	int rc;

	memset(eo, 0, sizeof(*eo));
	if (job->mode == PLAN_SEED)
		rc = seed_order(p, job, e, eo);
	else if (job->mode == PLAN_EXPLICIT)
		rc = explicit_order(job, e, eo);
	else
		rc = -ENOENT;
	if (rc)
		goto fail;
	rc = -ENOMEM;
	eo->pos = ec_malloc((size_t)p->n * sizeof(*eo->pos) + 4);
	eo->opened = ec_calloc(bitmap_words(eo->slots), sizeof(*eo->opened));
	if (!eo->pos || !eo->opened)
		goto fail;
	memset(eo->pos, 0xff, (size_t)p->n * sizeof(*eo->pos));
	for (uint64_t s = eo->slots; s-- > 0;)
		if (eo->ord[s] < p->n) {
			ndup += eo->pos[eo->ord[s]] != PLAN_NONE;
			eo->pos[eo->ord[s]] = (uint32_t)s;
		}
	if (ndup) {
		/* Padding, ranks sharing samples, or sampling with replacement:
		 * chain each slot to the sample's next one, so that finding its
		 * next unopened slot does not scan the order.  A few such slots
		 * (DistributedSampler pads at most world - 1) go in a small hash
		 * instead of 4 bytes for every slot. */
		rc = again_make(p, eo, ndup);
		if (rc)
			goto fail;
	}
	for (unsigned k = 0; k < job->nr; k++)
		eo->npos += eo->rlen[k];
	job_order_make(p, job, e, eo);
	eo->epoch = e;
	eo->valid = 1;
	return 0;
fail:
	eo_free(eo);
	return rc;
}

static inline int is_opened(const struct epoch_order *eo, uint64_t s)
{
	return (int)(eo->opened[s / 64] >> (s % 64) & 1);
}

/* The order rank k reads now, NULL when it is not followed. */
static struct epoch_order *rank_eo(struct plan *p, unsigned k)
{
	uint64_t e = p->rk[k].epoch;

	if (p->cur.valid && e == p->cur.epoch)
		return &p->cur;
	if (p->next.valid && e == p->next.epoch)
		return &p->next;
	return NULL;
}

/* Mark rank k's position q of its epoch's order opened; move its mark. */
static void mark(struct plan *p, unsigned k, struct epoch_order *eo, uint64_t q)
{
	struct plan_rank *r = &p->rk[k];
	uint64_t s = q * p->nr + k;

	if (is_opened(eo, s))
		return;
	eo->opened[s / 64] |= 1ull << (s % 64);
	r->nopened++;
	while (r->frontier < eo->rlen[k] && is_opened(eo, r->frontier * p->nr + k))
		r->frontier++;
}

/* Ranks that opened all of their epoch move to the next; when none is left
 * in the base epoch, the base moves on.  Returns 1 when it did. */
static int settle(struct plan *p)
{
	int moved = 0;

	for (int round = 0; round < 4; round++) {
		unsigned in_base = 0;

		for (unsigned k = 0; k < p->nr; k++) {
			struct plan_rank *r = &p->rk[k];
			struct epoch_order *eo = rank_eo(p, k);

			if (eo && r->frontier >= eo->rlen[k]) {
				r->epoch++;
				r->frontier = r->nopened = 0;
				p->gen++;
			}
			in_base += p->cur.valid && r->epoch == p->cur.epoch;
		}
		if (in_base || !p->cur.valid || !p->next.valid)
			return moved;
		/* The base moves on: the next epoch's order is made now. */
		eo_free(&p->cur);
		p->cur = p->next;
		memset(&p->next, 0, sizeof(p->next));
		{
			struct plan_job job = { .mode = p->mode, .spec = p->spec, .nr = p->nr };

			memcpy(job.rk, p->rk, sizeof(job.rk));
			if (eo_make(p, &job, p->cur.epoch + 1, &p->next))
				memset(&p->next, 0, sizeof(p->next));
		}
		moved = 1;
		p->gen++;
	}
	return moved;
}

/* Apply each rank's epoch and position to freshly made orders. */
static void apply_positions(struct plan *p)
{
	for (unsigned k = 0; k < p->nr; k++) {
		struct plan_rank *r = &p->rk[k];
		struct epoch_order *eo = rank_eo(p, k);
		uint64_t q = r->frontier;

		r->frontier = r->nopened = 0;
		if (!eo)
			continue;
		q = MIN(q, eo->rlen[k]);
		for (uint64_t i = 0; i < q; i++)
			mark(p, k, eo, i);
	}
}

int plan_commit_prepare(struct plan *p, const struct plan_job *job, struct epoch_order *cur,
			struct epoch_order *next)
{
	uint64_t base = UINT64_MAX;
	int rc;

	if (!job->nr || job->nr > PLAN_MAX_RANKS)
		return -EINVAL;
	for (unsigned k = 0; k < job->nr; k++)
		base = MIN(base, job->rk[k].epoch);
	rc = eo_make(p, job, base, cur);
	if (rc)
		return rc;
	if (eo_make(p, job, base + 1, next))
		memset(next, 0, sizeof(*next)); /* the plan ends there, for now */
	return 0;
}

void plan_commit_install(struct plan *p, const struct plan_job *job, struct epoch_order *cur,
			 struct epoch_order *next)
{
	for (unsigned k = 0; k < p->nr; k++) {
		unsigned j;

		for (j = 0; j < job->nr && job->rk[j].lists != p->rk[k].lists; j++)
			;
		if (j == job->nr)
			plan_free_lists(&p->rk[k]);
	}
	eo_free(&p->cur);
	eo_free(&p->next);
	p->mode = job->mode;
	p->spec = job->spec;
	p->nr = job->nr;
	memcpy(p->rk, job->rk, sizeof(p->rk));
	p->cur = *cur;
	p->next = *next;
	apply_positions(p);
	settle(p);
	p->gen++;
}

int plan_commit(struct plan *p, struct plan_job *job)
{
	struct epoch_order cur, next;
	int rc = plan_commit_prepare(p, job, &cur, &next);

	if (rc)
		return rc;
	plan_commit_install(p, job, &cur, &next);
	return 0;
}

/* ---- where the readers are ---- */

uint64_t plan_epoch(const struct plan *p)
{
	return p->cur.epoch;
}

const uint32_t *plan_order(const struct plan *p, uint64_t *slots)
{
	*slots = p->cur.valid ? p->cur.slots : 0;
	return p->cur.ord;
}

uint64_t plan_position(const struct plan *p)
{
	uint64_t v = 0;

	for (unsigned k = 0; p->cur.valid && k < p->nr; k++)
		if (p->rk[k].epoch == p->cur.epoch)
			v += p->rk[k].frontier;
		else if (p->rk[k].epoch > p->cur.epoch)
			v += p->cur.rlen[k];
	return v;
}

uint64_t plan_opened(const struct plan *p)
{
	uint64_t v = 0;

	for (unsigned k = 0; p->cur.valid && k < p->nr; k++)
		if (p->rk[k].epoch == p->cur.epoch)
			v += p->rk[k].nopened;
		else if (p->rk[k].epoch > p->cur.epoch)
			v += p->cur.rlen[k];
	return v;
}

uint64_t plan_epoch_length(const struct plan *p)
{
	return p->cur.valid ? p->cur.npos : 0;
}

uint64_t plan_first_pending_slot(const struct plan *p)
{
	uint64_t s = p->cur.valid ? p->cur.slots : 0;

	for (unsigned k = 0; p->cur.valid && k < p->nr; k++)
		if (p->rk[k].epoch == p->cur.epoch)
			s = MIN(s, p->rk[k].frontier * p->nr + k);
	return s;
}

uint64_t plan_now(const struct plan *p)
{
	uint64_t u = PLAN_NEVER;

	for (unsigned k = 0; k < p->nr; k++) {
		const struct plan_rank *r = &p->rk[k];

		if (p->cur.valid && (r->epoch == p->cur.epoch ||
				     (p->next.valid && r->epoch == p->next.epoch)))
			u = MIN(u, r->epoch * STRIDE + r->frontier * p->nr + k);
	}
	return u == PLAN_NEVER ? p->cur.epoch * STRIDE : u;
}

uint64_t plan_use_epoch(uint64_t u)
{
	return u == PLAN_NEVER ? UINT64_MAX : u / STRIDE;
}

/* Slot s of eo (epoch e) is yet to be read by its rank. */
static int slot_pending(const struct plan *p, const struct epoch_order *eo, uint64_t s)
{
	const struct plan_rank *r = &p->rk[s % p->nr];

	return r->epoch < eo->epoch || (r->epoch == eo->epoch && !is_opened(eo, s));
}

/* The first pending slot of sample i in eo, PLAN_NONE. */
static uint32_t first_pending(const struct plan *p, const struct epoch_order *eo, uint32_t i)
{
	uint32_t s = eo->pos[i];

	while (s != PLAN_NONE && !slot_pending(p, eo, s))
		s = eo_again(eo, s);
	return s;
}

uint64_t plan_next_use(const struct plan *p, uint32_t i)
{
	uint32_t s;

	if (p->mode == PLAN_OFF || i >= p->n)
		return PLAN_NEVER;
	if (p->cur.valid && (s = first_pending(p, &p->cur, i)) != PLAN_NONE)
		return p->cur.epoch * STRIDE + s;
	if (p->next.valid && (s = first_pending(p, &p->next, i)) != PLAN_NONE)
		return p->next.epoch * STRIDE + s;
	return PLAN_NEVER;
}

uint64_t plan_normalize(const struct plan *p, uint64_t u)
{
	if (p->cur.valid && u / STRIDE == p->cur.epoch && u % STRIDE >= p->cur.slots)
		return (p->cur.epoch + 1) * STRIDE;
	return u;
}

uint64_t plan_distance(const struct plan *p, uint64_t a, uint64_t b)
{
	uint64_t left;

	if (b <= a)
		return 0;
	if (a / STRIDE == b / STRIDE)
		return b - a;
	if (!p->cur.valid || a / STRIDE != p->cur.epoch || b / STRIDE != p->cur.epoch + 1)
		return UINT64_MAX;
	left = a % STRIDE < p->cur.slots ? p->cur.slots - a % STRIDE : 0;
	return left + b % STRIDE;
}

uint32_t plan_sample_at(const struct plan *p, uint64_t u)
{
	uint64_t e = u / STRIDE, s = u % STRIDE;
	const struct epoch_order *eo = NULL;

	if (p->cur.valid && e == p->cur.epoch)
		eo = &p->cur;
	else if (p->next.valid && e == p->next.epoch)
		eo = &p->next;
	if (!eo || s >= eo->slots)
		return PLAN_NONE;
	if (eo->ord[s] >= p->n || !slot_pending(p, eo, s))
		return PLAN_HOLE;
	return eo->ord[s];
}

int plan_pending(const struct plan *p, uint32_t i)
{
	uint64_t u = plan_next_use(p, i);

	return u != PLAN_NEVER && u / STRIDE == p->cur.epoch;
}

int plan_use_current(const struct plan *p, uint64_t u)
{
	return p->cur.valid && u != PLAN_NEVER && u / STRIDE == p->cur.epoch;
}

/* A stable pseudo-random place in epoch e for sample i. */
static uint64_t spread_place(uint64_t e, uint32_t i)
{
	uint64_t z = (uint64_t)i * 0x9e3779b97f4a7c15ull;

	z = (z ^ (z >> 31)) * 0xbf58476d1ce4e5b9ull;
	z ^= z >> 29;
	return e * STRIDE + z % (STRIDE / 2);
}

uint64_t plan_spread_key(const struct plan *p, uint32_t i)
{
	uint64_t u = plan_next_use(p, i);

	if (u == PLAN_NEVER || u / STRIDE == p->cur.epoch)
		return u;
	/* A later epoch: a stable pseudo-random place in it instead of the
	 * real one, so that what is kept for it is spread over all of it. */
	return spread_place(u / STRIDE, i);
}

uint64_t plan_spread_key_after(const struct plan *p, uint32_t i)
{
	if (p->mode == PLAN_OFF || i >= p->n || !p->next.valid || p->next.pos[i] == PLAN_NONE)
		return PLAN_NEVER;
	return spread_place(p->next.epoch, i);
}

/* ---- the whole job (cluster prefetching) ---- */

void plan_set_cluster(struct plan *p, int on)
{
	p->cluster = on;
}

/* The slowest followed rank's epoch and position: where the job is, the
 * ranks of a data-parallel job moving in lockstep. */
static void job_now(const struct plan *p, uint64_t *e, uint64_t *q)
{
	int found = 0;

	*e = p->cur.epoch;
	*q = 0;
	for (unsigned k = 0; k < p->nr; k++) {
		const struct plan_rank *r = &p->rk[k];

		if (!rank_eo((struct plan *)p, k))
			continue;
		if (!found || r->epoch < *e || (r->epoch == *e && r->frontier < *q)) {
			*e = r->epoch;
			*q = r->frontier;
		}
		found = 1;
	}
}

static const struct epoch_order *job_eo(const struct plan *p, uint64_t e)
{
	if (p->cur.valid && p->cur.jperm && e == p->cur.epoch)
		return &p->cur;
	if (p->next.valid && p->next.jperm && e == p->next.epoch)
		return &p->next;
	return NULL;
}

uint64_t plan_job_use(const struct plan *p, uint32_t i)
{
	const struct epoch_order *eos[2] = { &p->cur, &p->next };
	uint64_t e, q;

	if (p->mode == PLAN_OFF || i >= p->n || !p->cur.valid || !p->cur.jq)
		return PLAN_NEVER;
	job_now(p, &e, &q);
	for (int x = 0; x < 2; x++) {
		const struct epoch_order *eo = eos[x];

		if (!eo->valid || !eo->jq || eo->jq[i] == PLAN_NONE)
			continue;
		if (eo->epoch > e || (eo->epoch == e && eo->jq[i] >= q))
			return eo->epoch * STRIDE + (uint64_t)eo->jq[i] * p->nr;
	}
	return PLAN_NEVER;
}

uint64_t plan_job_now(const struct plan *p)
{
	uint64_t e, q;

	if (p->mode == PLAN_OFF || !p->cur.valid || !p->cur.jperm)
		return PLAN_NEVER;
	job_now(p, &e, &q);
	return e * STRIDE + q * p->spec.world;
}

uint32_t plan_job_sample_at(const struct plan *p, uint64_t *jc, uint64_t *u)
{
	const struct epoch_order *eo = job_eo(p, *jc / STRIDE);

	if (eo && *jc % STRIDE >= eo->jlen) {
		*jc = (eo->epoch + 1) * STRIDE;
		eo = job_eo(p, *jc / STRIDE);
	}
	if (!eo || *jc % STRIDE >= eo->jlen)
		return PLAN_NONE;
	*u = eo->epoch * STRIDE + (*jc % STRIDE) / p->spec.world * p->nr;
	return eo->jperm[*jc % STRIDE];
}

/* ---- locating an open ---- */

struct spot {
	unsigned k;
	struct epoch_order *eo;
	uint64_t q, dist;
	int advance;  /* the rank moves to eo's epoch first */
};

/* Consider the slots of sample i in eo for the nearest spot ahead. */
static void nearest_in(struct plan *p, struct epoch_order *eo, uint32_t i, struct spot *best)
{
	for (uint32_t s = eo->pos[i]; s != PLAN_NONE; s = eo_again(eo, s)) {
		unsigned k = s % p->nr;
		struct plan_rank *r = &p->rk[k];
		struct epoch_order *reo = rank_eo(p, k);
		uint64_t q = s / p->nr, d;
		int adv = 0;

		if (r->epoch == eo->epoch) {
			if (is_opened(eo, s))
				continue;
			d = q - r->frontier;
		} else if (reo && r->epoch + 1 == eo->epoch && r->nopened * 10 >= reo->rlen[k] * 9) {
			d = reo->rlen[k] - r->frontier + q;
			adv = 1;
		} else {
			continue;
		}
		if (!best->eo || d < best->dist)
			*best = (struct spot){ k, eo, q, d, adv };
	}
}

int plan_on_open_rank(struct plan *p, uint32_t i, int *rank)
{
	struct spot best = { 0 };
	uint64_t base = p->cur.epoch;

	*rank = -1;
	if (p->mode == PLAN_OFF || !p->cur.valid || i >= p->n)
		return 0;
	nearest_in(p, &p->cur, i, &best);
	if (p->next.valid)
		nearest_in(p, &p->next, i, &best);
	if (!best.eo)
		return 0;
	*rank = (int)best.k;
	if (best.advance) {
		/* Its epoch is over for it: the rest it did not open is let go. */
		p->rk[best.k].epoch = best.eo->epoch;
		p->rk[best.k].frontier = p->rk[best.k].nopened = 0;
		p->gen++;
	}
	mark(p, best.k, best.eo, best.q);
	settle(p);
	return p->cur.epoch != base;
}

int plan_on_open(struct plan *p, uint32_t i)
{
	int rank;

	return plan_on_open_rank(p, i, &rank);
}
