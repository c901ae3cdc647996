/* SPDX-License-Identifier: MIT */
/* The plan of future reads.
 *
 * Positions are numbered absolutely: use number u = epoch * STRIDE + position
 * in that epoch's order, STRIDE being larger than any order.  A sample's next
 * use is its first unopened position in the current epoch, else its first
 * position in the next epoch: enough for Belady's rule (evict what is needed
 * furthest away) and for a prefetcher that looks ahead across the boundary.
 *
 * Tracking the readers.  Loader workers open files slightly out of order, so
 * the position is the first planned sample not yet opened (a low-water mark),
 * not the last one opened.  The epoch ends when every planned sample has been
 * opened, or when a sample already opened this epoch is opened again while
 * 90% of the epoch is done (a dataloader that skipped or lost a few). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "plan.h"
#include "util.h"

#define STRIDE (1ull << 33)

struct epoch_order {
	uint32_t *ord;   /* sample indices in read order */
	uint64_t len;
	uint32_t *pos;   /* sample -> first position, PLAN_NONE */
	uint32_t *again; /* position -> the sample's next position, PLAN_NONE;
			  * NULL when no sample is planned twice */
	uint64_t epoch;
	int valid;
};

struct plan {
	uint64_t *ino;        /* manifest */
	uint32_t n;
	uint64_t *hkeys;      /* ino -> index, open addressing */
	uint32_t *hvals;
	size_t hcap;

	enum plan_mode mode;
	struct order_spec spec;
	uint32_t **lists;     /* explicit */
	uint64_t *lens;
	size_t nlists;
	uint64_t first_epoch; /* epoch of lists[0] */

	struct epoch_order cur, next;
	uint8_t *opened;      /* per position of cur */
	uint64_t nopened, frontier;
};

int plan_create(struct plan **out)
{
	*out = ec_calloc(1, sizeof(**out));
	return *out ? 0 : -ENOMEM;
}

static void eo_free(struct epoch_order *e)
{
	free(e->ord);
	free(e->pos);
	free(e->again);
	memset(e, 0, sizeof(*e));
}

static void lists_free(struct plan *p)
{
	for (size_t i = 0; i < p->nlists; i++)
		free(p->lists[i]);
	free(p->lists);
	free(p->lens);
	p->lists = NULL;
	p->lens = NULL;
	p->nlists = 0;
}

void plan_off(struct plan *p)
{
	eo_free(&p->cur);
	eo_free(&p->next);
	free(p->opened);
	p->opened = NULL;
	p->nopened = p->frontier = 0;
	lists_free(p);
	p->mode = PLAN_OFF;
}

void plan_destroy(struct plan *p)
{
	if (!p)
		return;
	plan_off(p);
	free(p->ino);
	free(p->hkeys);
	free(p->hvals);
	free(p);
}

static size_t hslot(uint64_t ino, size_t cap)
{
	return (size_t)((ino * 0x9e3779b97f4a7c15ull) >> 20) & (cap - 1);
}

int plan_set_manifest(struct plan *p, uint64_t *inos, uint32_t n)
{
	size_t cap = 16;
	uint64_t *k;
	uint32_t *v;

	while (cap < (size_t)n * 2)
		cap <<= 1;
	k = ec_calloc(cap, sizeof(*k));
	v = ec_calloc(cap, sizeof(*v));
	if (!k || !v) {
		free(k);
		free(v);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < n; i++) {
		size_t s = hslot(inos[i], cap);

		while (k[s] && k[s] != inos[i])
			s = (s + 1) & (cap - 1);
		if (!k[s]) { /* a duplicate path keeps its first index */
			k[s] = inos[i];
			v[s] = i;
		}
	}
	plan_off(p);
	free(p->ino);
	free(p->hkeys);
	free(p->hvals);
	p->ino = inos;
	p->n = n;
	p->hkeys = k;
	p->hvals = v;
	p->hcap = cap;
	return 0;
}

uint32_t plan_manifest_len(const struct plan *p)
{
	return p->n;
}

uint64_t plan_manifest_ino(const struct plan *p, uint32_t i)
{
	return i < p->n ? p->ino[i] : 0;
}

uint32_t plan_sample_of(const struct plan *p, uint64_t ino)
{
	size_t s;

	if (!p->hcap || !ino)
		return PLAN_NONE;
	for (s = hslot(ino, p->hcap); p->hkeys[s]; s = (s + 1) & (p->hcap - 1))
		if (p->hkeys[s] == ino)
			return p->hvals[s];
	return PLAN_NONE;
}

/* Make the order of epoch e into eo.  -ENOENT when the mode cannot (an
 * explicit plan that does not reach that far). */
static int eo_make(struct plan *p, uint64_t e, struct epoch_order *eo)
{
	struct order_spec s;
	uint64_t len;
	uint32_t *ord = NULL, *pos, *again = NULL;
	int rc, dup = 0;

	memset(eo, 0, sizeof(*eo));
	if (p->mode == PLAN_SEED) {
		s = p->spec;
		s.epoch = e;
		rc = order_len(&s, p->n, &len);
		if (rc)
			return rc;
		ord = ec_malloc((size_t)MAX(len, p->n) * sizeof(*ord) + 4);
		if (!ord)
			return -ENOMEM;
		rc = order_generate(&s, p->n, ord, MAX(len, p->n));
		if (rc) {
			free(ord);
			return rc;
		}
	} else if (p->mode == PLAN_EXPLICIT) {
		if (e < p->first_epoch || e - p->first_epoch >= p->nlists)
			return -ENOENT;
		len = p->lens[e - p->first_epoch];
		ord = ec_malloc((size_t)len * sizeof(*ord) + 4);
		if (!ord)
			return -ENOMEM;
		memcpy(ord, p->lists[e - p->first_epoch], (size_t)len * sizeof(*ord));
	} else {
		return -ENOENT;
	}
	pos = ec_malloc((size_t)p->n * sizeof(*pos) + 4);
	if (!pos) {
		free(ord);
		return -ENOMEM;
	}
	memset(pos, 0xff, (size_t)p->n * sizeof(*pos));
	for (uint64_t i = len; i-- > 0;)
		if (ord[i] < p->n) {
			dup |= pos[ord[i]] != PLAN_NONE;
			pos[ord[i]] = (uint32_t)i;
		}
	if (dup) {
		/* Padding or sampling with replacement: chain each position to
		 * the sample's next one, so that finding its first unopened
		 * position does not scan the order. */
		again = ec_malloc((size_t)len * sizeof(*again) + 4);
		if (!again) {
			free(ord);
			free(pos);
			return -ENOMEM;
		}
		memset(pos, 0xff, (size_t)p->n * sizeof(*pos));
		for (uint64_t i = len; i-- > 0;) {
			again[i] = PLAN_NONE;
			if (ord[i] < p->n) {
				again[i] = pos[ord[i]];
				pos[ord[i]] = (uint32_t)i;
			}
		}
	}
	eo->again = again;
	eo->ord = ord;
	eo->len = len;
	eo->pos = pos;
	eo->epoch = e;
	eo->valid = 1;
	return 0;
}

int plan_set_epoch(struct plan *p, uint64_t e)
{
	struct epoch_order cur, next;
	uint8_t *opened;
	int rc;

	if (p->mode == PLAN_OFF)
		return -ENOENT;
	if (p->cur.valid && p->cur.epoch + 1 == e && p->next.valid) {
		cur = p->next;
		memset(&p->next, 0, sizeof(p->next));
	} else {
		rc = eo_make(p, e, &cur);
		if (rc)
			return rc;
	}
	opened = ec_calloc((size_t)cur.len + 1, 1);
	if (!opened) {
		eo_free(&cur);
		return -ENOMEM;
	}
	if (eo_make(p, e + 1, &next))
		memset(&next, 0, sizeof(next));
	eo_free(&p->cur);
	eo_free(&p->next);
	free(p->opened);
	p->cur = cur;
	p->next = next;
	p->opened = opened;
	p->nopened = p->frontier = 0;
	return 0;
}

int plan_set_seed(struct plan *p, const struct order_spec *spec)
{
	uint64_t len;
	int rc;

	rc = order_len(spec, p->n, &len);
	if (rc)
		return rc;
	plan_off(p);
	p->mode = PLAN_SEED;
	p->spec = *spec;
	rc = plan_set_epoch(p, spec->epoch);
	if (rc)
		plan_off(p);
	return rc;
}

int plan_set_explicit(struct plan *p, uint32_t **lists, uint64_t *lens, size_t nlists,
		      uint64_t first_epoch)
{
	int rc;

	plan_off(p);
	p->mode = PLAN_EXPLICIT;
	p->lists = lists;
	p->lens = lens;
	p->nlists = nlists;
	p->first_epoch = first_epoch;
	rc = plan_set_epoch(p, first_epoch);
	if (rc)
		plan_off(p);
	return rc;
}

enum plan_mode plan_mode(const struct plan *p)
{
	return p->mode;
}

int plan_spec(const struct plan *p, struct order_spec *out)
{
	if (p->mode != PLAN_SEED)
		return -ENOENT;
	*out = p->spec;
	out->epoch = p->cur.epoch;
	return 0;
}

uint64_t plan_epoch(const struct plan *p)
{
	return p->cur.epoch;
}

const uint32_t *plan_order(const struct plan *p, uint64_t *len)
{
	*len = p->cur.valid ? p->cur.len : 0;
	return p->cur.ord;
}

uint64_t plan_position(const struct plan *p)
{
	return p->frontier;
}

uint64_t plan_opened(const struct plan *p)
{
	return p->nopened;
}

uint64_t plan_now(const struct plan *p)
{
	return p->cur.epoch * STRIDE + p->frontier;
}

uint64_t plan_use_epoch(uint64_t u)
{
	return u == PLAN_NEVER ? UINT64_MAX : u / STRIDE;
}

/* Mark position q of the current epoch opened and move the low-water mark. */
static void mark(struct plan *p, uint64_t q)
{
	if (p->opened[q])
		return;
	p->opened[q] = 1;
	p->nopened++;
	while (p->frontier < p->cur.len && p->opened[p->frontier])
		p->frontier++;
}

/* Sample i's first position in the current epoch not opened yet (a sample
 * planned twice, as padding makes it, counts at each place), PLAN_NONE. */
static uint32_t first_unopened(const struct plan *p, uint32_t i)
{
	uint32_t q = p->cur.pos[i];

	while (q != PLAN_NONE && q < p->cur.len && p->opened[q])
		q = p->cur.again ? p->cur.again[q] : PLAN_NONE;
	return q;
}

int plan_on_open(struct plan *p, uint32_t i)
{
	uint32_t q;

	if (p->mode == PLAN_OFF || !p->cur.valid || i >= p->n)
		return 0;
	q = first_unopened(p, i);
	if (q != PLAN_NONE) {
		mark(p, q);
		if (p->nopened < p->cur.len)
			return 0;
		plan_set_epoch(p, p->cur.epoch + 1);
		return 1;
	}
	/* Opened again, or not planned this epoch: maybe the next has begun. */
	if (p->cur.pos[i] != PLAN_NONE && p->nopened * 10 >= p->cur.len * 9 &&
	    plan_set_epoch(p, p->cur.epoch + 1) == 0) {
		if (p->cur.valid && p->cur.pos[i] != PLAN_NONE)
			mark(p, p->cur.pos[i]);
		return 1;
	}
	return 0;
}

uint64_t plan_next_use(const struct plan *p, uint32_t i)
{
	uint32_t q;

	if (p->mode == PLAN_OFF || i >= p->n)
		return PLAN_NEVER;
	if (p->cur.valid) {
		q = first_unopened(p, i);
		if (q != PLAN_NONE)
			return p->cur.epoch * STRIDE + q;
	}
	if (p->next.valid && p->next.pos[i] != PLAN_NONE)
		return p->next.epoch * STRIDE + p->next.pos[i];
	return PLAN_NEVER;
}

uint64_t plan_normalize(const struct plan *p, uint64_t u)
{
	if (p->cur.valid && u / STRIDE == p->cur.epoch && u % STRIDE >= p->cur.len)
		return (p->cur.epoch + 1) * STRIDE;
	return u;
}

uint32_t plan_sample_at(const struct plan *p, uint64_t u)
{
	uint64_t e = u / STRIDE, q = u % STRIDE;

	if (p->cur.valid && e == p->cur.epoch && q < p->cur.len)
		return p->cur.ord[q];
	if (p->next.valid && e == p->next.epoch && q < p->next.len)
		return p->next.ord[q];
	return PLAN_NONE;
}

int plan_pending(const struct plan *p, uint32_t i)
{
	uint64_t u = plan_next_use(p, i);

	return u != PLAN_NEVER && u / STRIDE == p->cur.epoch;
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

int plan_use_current(const struct plan *p, uint64_t u)
{
	return p->cur.valid && u != PLAN_NEVER && u / STRIDE == p->cur.epoch;
}
