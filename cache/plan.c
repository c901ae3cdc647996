/* SPDX-License-Identifier: MIT */
/* The plan of future reads: the manifest, the job and its ranks, and
 * saving the plan for a remount (plan_ranks.c has the orders and positions).
 *
 * Memory.  The daemon's RSS must stay within a few tens of bytes per file, so
 * the per-sample state is kept small: the manifest as 32-bit inode numbers
 * when they fit, the inode -> sample map as a direct array when the inode
 * numbers are dense (the namespace numbers them densely from 1), and per
 * epoch order (two are kept) 4 bytes a sample for its first slot and 4
 * bytes and a bit a slot (a rank's position).  About 24 bytes per sample
 * with one rank reading every sample; with several local ranks of a larger
 * world, each slot is one rank's position, so the cost per sample stays
 * the same: 4 + 4 + 2 * (4 + 4 * planned fraction + 1/8). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "plan_int.h"
#include "backends/base/sbuf.h"
#include "backends/base/util.h"

int plan_create(struct plan **out)
{
	*out = ec_calloc(1, sizeof(**out));
	return *out ? 0 : -ENOMEM;
}

void plan_off(struct plan *p)
{
	eo_free(&p->cur);
	eo_free(&p->next);
	for (unsigned k = 0; k < p->nr; k++)
		plan_free_lists(&p->rk[k]);
	p->nr = 0;
	p->mode = PLAN_OFF;
	p->gen++;
}

void plan_destroy(struct plan *p)
{
	if (!p)
		return;
	plan_off(p);
	free(p->ino32);
	free(p->ino64);
	free(p->dmap);
	free(p->hslots);
	free(p);
}

static size_t hslot(uint64_t ino, size_t cap)
{
	return (size_t)((ino * 0x9e3779b97f4a7c15ull) >> 20) & (cap - 1);
}

static inline uint64_t man_ino(const struct plan *p, uint32_t i)
{
	return p->ino32 ? p->ino32[i] : p->ino64[i];
}

/* The direct map when the inode numbers (inode 0 is never a sample's) span
 * at most this many slots; else the hash. */
static int dense_enough(uint64_t span, uint32_t n)
{
	return span <= (uint64_t)n * 4 + 65536;
}

/* A manifest ready to be put in force: everything that can fail done. */
struct man_prep {
	uint32_t *i32;
	uint64_t *i64;
	uint32_t n;
	uint32_t *dmap;
	uint64_t lo;
	size_t dlen;
	uint32_t *slots;
	size_t cap;
};

/* Allocate the inode -> sample map for inos and narrow inos to 32 bits
 * where every inode fits.  0, or -ENOMEM with nothing changed and inos the
 * caller's again, untouched; on success m owns inos. */
static int manifest_prepare(uint64_t *inos, uint32_t n, struct man_prep *m)
{
	uint64_t lo = UINT64_MAX, hi = 0;
	uint32_t nz = 0;

	memset(m, 0, sizeof(*m));
	for (uint32_t i = 0; i < n; i++)
		if (inos[i]) {
			lo = MIN(lo, inos[i]);
			hi = MAX(hi, inos[i]);
			nz++;
		}
	if (nz && dense_enough(hi - lo + 1, n)) {
		m->dlen = (size_t)(hi - lo + 1);
		m->dmap = ec_malloc(m->dlen * sizeof(*m->dmap));
		if (!m->dmap)
			return -ENOMEM;
	} else if (nz) {
		m->cap = 16;
		while (m->cap < (size_t)n * 2)
			m->cap <<= 1;
		m->slots = ec_malloc(m->cap * sizeof(*m->slots));
		if (!m->slots)
			return -ENOMEM;
	}
	if (hi <= UINT32_MAX) {
		/* Narrow in place (entry i's 4 bytes lie below entry i + 1's
		 * 8), then give the upper half back. */
		m->i32 = (uint32_t *)inos;
		for (uint32_t i = 0; i < n; i++)
			m->i32[i] = (uint32_t)inos[i];
		m->i32 = ec_realloc(inos, ((size_t)n + 1) * sizeof(*m->i32));
		if (!m->i32) /* cannot fail when shrinking, but if it did: */
			m->i32 = (uint32_t *)inos;
	} else {
		/* The caller's array may have room to spare (a growing list). */
		m->i64 = ec_realloc(inos, ((size_t)n + 1) * sizeof(*m->i64));
		if (!m->i64)
			m->i64 = inos;
	}
	m->n = n;
	m->lo = lo;
	return 0;
}

static void manifest_unprepare(struct man_prep *m)
{
	free(m->i32);
	free(m->i64);
	free(m->dmap);
	free(m->slots);
}

/* Put a prepared manifest in force; the plan is off afterwards. */
static void manifest_install(struct plan *p, struct man_prep *m)
{
	plan_off(p);
	free(p->ino32);
	free(p->ino64);
	free(p->dmap);
	free(p->hslots);
	p->ino32 = m->i32;
	p->ino64 = m->i64;
	p->n = m->n;
	p->dmap = m->dmap;
	p->dbase = m->lo;
	p->dlen = m->dlen;
	p->hslots = m->slots;
	p->hcap = m->cap;
	/* A duplicate inode keeps its first index. */
	if (p->dmap) {
		memset(p->dmap, 0xff, p->dlen * sizeof(*p->dmap));
		for (uint32_t i = 0; i < p->n; i++) {
			uint64_t ino = man_ino(p, i);

			if (ino && p->dmap[ino - p->dbase] == PLAN_NONE)
				p->dmap[ino - p->dbase] = i;
		}
	} else if (p->hslots) {
		memset(p->hslots, 0xff, p->hcap * sizeof(*p->hslots));
		for (uint32_t i = 0; i < p->n; i++) {
			uint64_t ino = man_ino(p, i);
			size_t s = hslot(ino, p->hcap);

			if (!ino)
				continue;
			while (p->hslots[s] != PLAN_NONE && man_ino(p, p->hslots[s]) != ino)
				s = (s + 1) & (p->hcap - 1);
			if (p->hslots[s] == PLAN_NONE)
				p->hslots[s] = i;
		}
	}
	p->mgen++;
	p->mset = 1;
}

int plan_set_manifest(struct plan *p, uint64_t *inos, uint32_t n)
{
	struct man_prep m;
	int rc = manifest_prepare(inos, n, &m);

	if (rc)
		return rc;
	manifest_install(p, &m);
	return 0;
}

uint64_t plan_gen(const struct plan *p)
{
	return p->gen;
}

uint64_t plan_manifest_gen(const struct plan *p)
{
	return p->mgen;
}

int plan_has_manifest(const struct plan *p)
{
	return p->mset;
}

uint32_t plan_manifest_len(const struct plan *p)
{
	return p->n;
}

uint64_t plan_manifest_ino(const struct plan *p, uint32_t i)
{
	return i < p->n ? man_ino(p, i) : 0;
}

uint32_t plan_sample_of(const struct plan *p, uint64_t ino)
{
	size_t s;

	if (!ino)
		return PLAN_NONE;
	if (p->dmap)
		return ino >= p->dbase && ino - p->dbase < p->dlen ? p->dmap[ino - p->dbase]
								  : PLAN_NONE;
	if (!p->hcap)
		return PLAN_NONE;
	for (s = hslot(ino, p->hcap); p->hslots[s] != PLAN_NONE; s = (s + 1) & (p->hcap - 1))
		if (man_ino(p, p->hslots[s]) == ino)
			return p->hslots[s];
	return PLAN_NONE;
}


/* ---- the job ---- */

enum plan_mode plan_mode(const struct plan *p)
{
	return p->mode;
}

/* A copy of the plan's job to change (the lists stay the plan's). */
static void job_of(const struct plan *p, struct plan_job *job)
{
	job->mode = p->mode;
	job->spec = p->spec;
	job->nr = p->nr;
	memcpy(job->rk, p->rk, sizeof(job->rk));
}

/* Rank id's entry in job, inserted in rank order (counters carried over
 * from the plan's rank of that id); NULL when the job is full. */
static struct plan_rank *job_rank(const struct plan *p, struct plan_job *job, uint32_t id)
{
	unsigned k;

	for (k = 0; k < job->nr && job->rk[k].id < id; k++)
		;
	if (k < job->nr && job->rk[k].id == id)
		return &job->rk[k];
	if (job->nr == PLAN_MAX_RANKS)
		return NULL;
	memmove(&job->rk[k + 1], &job->rk[k], (job->nr - k) * sizeof(job->rk[0]));
	job->nr++;
	memset(&job->rk[k], 0, sizeof(job->rk[k]));
	job->rk[k].id = id;
	for (unsigned j = 0; j < p->nr; j++)
		if (p->rk[j].id == id)
			job->rk[k].st = p->rk[j].st;
	return &job->rk[k];
}

static int same_job(const struct order_spec *a, const struct order_spec *b)
{
	return a->sampler == b->sampler && a->seed == b->seed && a->world == b->world &&
	       a->drop_last == b->drop_last;
}

int plan_seed_ranks(struct plan *p, const struct order_spec *spec, const uint32_t *ranks,
		    unsigned nranks, uint64_t start, int join)
{
	struct plan_job job = { .mode = PLAN_SEED, .spec = *spec };
	struct order_spec one = *spec;
	uint64_t len;
	int rc;

	if (!nranks || nranks > PLAN_MAX_RANKS)
		return -EINVAL;
	if (join && p->mode == PLAN_SEED && same_job(&p->spec, spec))
		job_of(p, &job);
	job.spec = *spec;
	for (unsigned i = 0; i < nranks; i++) {
		struct plan_rank *r;

		one.rank = ranks[i];
		rc = order_len(&one, p->n, &len);
		if (rc || start > len)
			return -EINVAL;
		r = job_rank(p, &job, ranks[i]);
		if (!r)
			return -EINVAL;
		/* A rank declared again in the epoch it reads keeps its progress. */
		r->frontier = r->epoch == spec->epoch ? MAX(r->frontier, start) : start;
		r->epoch = spec->epoch;
	}
	if (spec->sampler != ORDER_DISTRIBUTED && job.nr > 1)
		return -EINVAL;
	return plan_commit(p, &job);
}

int plan_explicit_rank(struct plan *p, uint32_t rank, uint32_t **lists, uint64_t *lens,
		       size_t nlists, uint64_t first_epoch, uint64_t start, int join)
{
	struct plan_job job = { .mode = PLAN_EXPLICIT };
	struct plan_rank *r;

	if (!nlists || start > lens[0])
		return -EINVAL;
	for (size_t e = 0; e < nlists; e++)
		for (uint64_t i = 0; i < lens[e]; i++)
			if (lists[e][i] >= p->n && lists[e][i] != PLAN_NONE)
				return -EINVAL;
	if (join && p->mode == PLAN_EXPLICIT)
		job_of(p, &job);
	job.mode = PLAN_EXPLICIT;
	r = job_rank(p, &job, rank);
	if (!r)
		return -EINVAL;
	r->lists = lists;
	r->lens = lens;
	r->nlists = nlists;
	r->first_epoch = first_epoch;
	r->epoch = first_epoch;
	r->frontier = start;
	r->nopened = 0;
	return plan_commit(p, &job);
}

int plan_set_seed(struct plan *p, const struct order_spec *spec)
{
	return plan_seed_ranks(p, spec, &spec->rank, 1, 0, 0);
}

int plan_set_explicit(struct plan *p, uint32_t **lists, uint64_t *lens, size_t nlists,
		      uint64_t first_epoch)
{
	int rc = plan_explicit_rank(p, 0, lists, lens, nlists, first_epoch, 0, 0);

	if (rc) { /* the lists are the plan's either way */
		struct plan_rank r = { .lists = lists, .lens = lens, .nlists = nlists };

		plan_free_lists(&r);
	}
	return rc;
}

int plan_set_explicit_manifest(struct plan *p, uint64_t *inos, uint32_t n, uint32_t **lists,
			       uint64_t *lens, size_t nlists, uint64_t first_epoch)
{
	struct plan_job job = { .mode = PLAN_EXPLICIT };
	struct plan_rank *r, own = { .lists = lists, .lens = lens, .nlists = nlists };
	struct epoch_order cur, next;
	struct man_prep m;
	uint32_t oldn = p->n;
	int rc = -EINVAL;

	if (!nlists)
		goto fail;
	for (size_t e = 0; e < nlists; e++)
		for (uint64_t i = 0; i < lens[e]; i++)
			if (lists[e][i] >= n && lists[e][i] != PLAN_NONE)
				goto fail;
	r = job_rank(p, &job, 0);
	if (!r)
		goto fail;
	r->lists = lists;
	r->lens = lens;
	r->nlists = nlists;
	r->first_epoch = first_epoch;
	r->epoch = first_epoch;
	r->frontier = 0;
	r->nopened = 0;
	rc = manifest_prepare(inos, n, &m);
	if (rc)
		goto fail;
	/* The orders are made for the new manifest's length; nothing reads
	 * the plan meanwhile (the caller holds its lock). */
	p->n = n;
	rc = plan_commit_prepare(p, &job, &cur, &next);
	p->n = oldn;
	if (rc) {
		manifest_unprepare(&m);
		goto out;
	}
	manifest_install(p, &m);
	plan_commit_install(p, &job, &cur, &next);
	return 0;
fail:
	free(inos);
out:
	plan_free_lists(&own);
	return rc;
}

int plan_set_epoch(struct plan *p, uint64_t e)
{
	struct plan_job job;

	if (p->mode == PLAN_OFF)
		return -ENOENT;
	job_of(p, &job);
	for (unsigned k = 0; k < job.nr; k++) {
		job.rk[k].epoch = e;
		job.rk[k].frontier = 0;
	}
	return plan_commit(p, &job);
}

int plan_spec(const struct plan *p, struct order_spec *out)
{
	if (p->mode != PLAN_SEED)
		return -ENOENT;
	*out = p->spec;
	out->rank = p->rk[0].id;
	out->epoch = p->rk[0].epoch;
	return 0;
}

/* ---- ranks ---- */

unsigned plan_nranks(const struct plan *p)
{
	return p->mode == PLAN_OFF ? 0 : p->nr;
}

int plan_rank_get(const struct plan *p, unsigned k, struct plan_rank_info *out)
{
	const struct plan_rank *r;
	const struct epoch_order *eo = NULL;

	if (k >= plan_nranks(p))
		return -ENOENT;
	r = &p->rk[k];
	if (p->cur.valid && r->epoch == p->cur.epoch)
		eo = &p->cur;
	else if (p->next.valid && r->epoch == p->next.epoch)
		eo = &p->next;
	*out = (struct plan_rank_info){ .rank = r->id, .epoch = r->epoch,
					.position = r->frontier, .len = eo ? eo->rlen[k] : 0,
					.st = r->st };
	return 0;
}

struct plan_rank_stats *plan_rank_stats(struct plan *p, unsigned k)
{
	return k < p->nr ? &p->rk[k].st : NULL;
}

/* ---- saving ---- */

#define EXPORT_MAGIC 0x324c5045u    /* "EPL2" */
#define POSITIONS_MAGIC 0x32505045u /* "EPP2" */

static void put(struct sbuf *b, const void *v, size_t n)
{
	sbuf_add(b, v, n);
}

int plan_export(const struct plan *p, void **out, size_t *len)
{
	struct sbuf b = { 0 };
	uint32_t u[6] = { EXPORT_MAGIC, p->mode, p->spec.sampler, p->spec.world,
			  (uint32_t)p->spec.drop_last, p->n };
	uint32_t nr = plan_nranks(p);

	put(&b, u, sizeof(u));
	put(&b, &p->spec.seed, 8);
	put(&b, &nr, 4);
	for (unsigned k = 0; k < nr; k++) {
		const struct plan_rank *r = &p->rk[k];
		uint64_t v[4] = { r->epoch, r->frontier, r->first_epoch, r->nlists };

		put(&b, &r->id, 4);
		put(&b, v, sizeof(v));
		for (size_t e = 0; e < r->nlists; e++) {
			put(&b, &r->lens[e], 8);
			put(&b, r->lists[e], (size_t)r->lens[e] * 4);
		}
	}
	return sbuf_done(&b, (char **)out, len);
}

int plan_export_positions(const struct plan *p, void **out, size_t *len)
{
	struct sbuf b = { 0 };
	uint32_t u[2] = { POSITIONS_MAGIC, plan_nranks(p) };

	put(&b, u, sizeof(u));
	for (unsigned k = 0; k < u[1]; k++) {
		put(&b, &p->rk[k].id, 4);
		put(&b, &p->rk[k].epoch, 8);
		put(&b, &p->rk[k].frontier, 8);
	}
	return sbuf_done(&b, (char **)out, len);
}

struct reader {
	const uint8_t *p;
	size_t left;
	int bad;
};

static void get(struct reader *r, void *v, size_t n)
{
	if (r->bad || r->left < n) {
		r->bad = 1;
		memset(v, 0, n);
		return;
	}
	memcpy(v, r->p, n);
	r->p += n;
	r->left -= n;
}

/* One rank's lists from the bytes; 0 or -EINVAL/-ENOMEM (freed). */
static int get_lists(struct reader *rd, struct plan_rank *r, uint32_t n)
{
	r->lists = ec_calloc(r->nlists + 1, sizeof(*r->lists));
	r->lens = ec_calloc(r->nlists + 1, sizeof(*r->lens));
	if (!r->lists || !r->lens)
		goto nomem;
	for (size_t e = 0; e < r->nlists; e++) {
		get(rd, &r->lens[e], 8);
		if (rd->bad || r->lens[e] > rd->left / 4)
			goto bad;
		r->lists[e] = ec_malloc((size_t)r->lens[e] * 4 + 4);
		if (!r->lists[e])
			goto nomem;
		get(rd, r->lists[e], (size_t)r->lens[e] * 4);
		for (uint64_t i = 0; i < r->lens[e]; i++)
			if (r->lists[e][i] >= n && r->lists[e][i] != PLAN_NONE)
				goto bad;
	}
	return 0;
nomem:
	r->nlists = r->lists ? r->nlists : 0;
	plan_free_lists(r);
	return -ENOMEM;
bad:
	plan_free_lists(r);
	return -EINVAL;
}

/* Positions saved later than the plan: they win, rank by rank. */
static void apply_saved_positions(struct plan_job *job, const void *pos, size_t poslen)
{
	struct reader rd = { pos, poslen, 0 };
	uint32_t u[2], id;
	uint64_t e, q;

	if (!pos)
		return;
	get(&rd, u, sizeof(u));
	if (rd.bad || u[0] != POSITIONS_MAGIC)
		return;
	for (uint32_t i = 0; i < u[1] && !rd.bad; i++) {
		get(&rd, &id, 4);
		get(&rd, &e, 8);
		get(&rd, &q, 8);
		for (unsigned k = 0; !rd.bad && k < job->nr; k++)
			if (job->rk[k].id == id) {
				job->rk[k].epoch = e;
				job->rk[k].frontier = q;
			}
	}
}

int plan_import(struct plan *p, const void *buf, size_t len, const void *pos, size_t poslen)
{
	struct reader rd = { buf, len, 0 };
	struct plan_job job = { 0 };
	uint32_t u[6], nr;
	int rc = -EINVAL;

	get(&rd, u, sizeof(u));
	get(&rd, &job.spec.seed, 8);
	get(&rd, &nr, 4);
	if (rd.bad || u[0] != EXPORT_MAGIC || u[5] != p->n || nr == 0 || nr > PLAN_MAX_RANKS ||
	    (u[1] != PLAN_SEED && u[1] != PLAN_EXPLICIT))
		return -EINVAL;
	job.mode = (enum plan_mode)u[1];
	job.spec.sampler = (enum order_sampler)u[2];
	job.spec.world = u[3];
	job.spec.drop_last = (int)u[4];
	for (job.nr = 0; job.nr < nr; job.nr++) {
		struct plan_rank *r = &job.rk[job.nr];
		uint64_t v[4];

		get(&rd, &r->id, 4);
		get(&rd, v, sizeof(v));
		r->epoch = v[0];
		r->frontier = v[1];
		r->first_epoch = v[2];
		r->nlists = (size_t)v[3];
		if (rd.bad || (job.mode == PLAN_SEED) != (r->nlists == 0) ||
		    r->nlists > rd.left / 8 || (job.nr && r->id <= job.rk[job.nr - 1].id))
			goto out;
		if (r->nlists && (rc = get_lists(&rd, r, p->n)))
			goto out;
		rc = -EINVAL;
	}
	if (rd.left)
		goto out;
	apply_saved_positions(&job, pos, poslen);
	rc = plan_commit(p, &job);
	if (!rc)
		return 0;
out:
	for (unsigned k = 0; k < job.nr; k++)
		plan_free_lists(&job.rk[k]);
	return rc;
}
