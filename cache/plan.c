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
 * 90% of the epoch is done (a dataloader that skipped or lost a few).
 *
 * Memory.  The daemon's RSS must stay within a few tens of bytes per file, so
 * the per-sample state is kept small: the manifest as 32-bit inode numbers
 * when they fit, the inode -> sample map as a direct array when the inode
 * numbers are dense (the namespace numbers them densely from 1), 4 + 4 bytes
 * per sample for each of the two epoch orders, a bit per position for what
 * the readers opened.  About 24 bytes per sample with one reader rank. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "plan.h"
#include "backends/base/util.h"

#define STRIDE (1ull << 33)

struct epoch_order {
	uint32_t *ord;   /* sample indices in read order */
	int ord_owned;   /* 0: ord is an explicit list of the plan's */
	uint64_t len;
	uint32_t *pos;   /* sample -> first position, PLAN_NONE */
	uint32_t *again; /* position -> the sample's next position, PLAN_NONE;
			  * NULL when no sample is planned twice */
	uint64_t epoch;
	int valid;
};

struct plan {
	/* The manifest: sample index -> inode, 32 bits wide when every inode
	 * fits (ino32), else 64 (ino64); the other one is NULL. */
	uint32_t *ino32;
	uint64_t *ino64;
	uint32_t n;
	/* Inode -> sample index.  Dense inode numbers: a direct array,
	 * dmap[ino - dbase] for ino in [dbase, dbase + dlen), PLAN_NONE for
	 * none.  Otherwise (huge or sparse numbers) open addressing over
	 * sample indices (PLAN_NONE empty), the key being the sample's inode. */
	uint32_t *dmap;
	uint64_t dbase;
	size_t dlen;
	uint32_t *hslots;
	size_t hcap;

	enum plan_mode mode;
	struct order_spec spec;
	uint32_t **lists;     /* explicit */
	uint64_t *lens;
	size_t nlists;
	uint64_t first_epoch; /* epoch of lists[0] */

	struct epoch_order cur, next;
	uint64_t *opened;     /* bitmap over the positions of cur */
	uint64_t nopened, frontier;

	uint64_t gen;         /* bumped at every change but an open's */
	uint64_t mgen;        /* bumped when the manifest is replaced */
	int mset;             /* a manifest was set */
};

int plan_create(struct plan **out)
{
	*out = ec_calloc(1, sizeof(**out));
	return *out ? 0 : -ENOMEM;
}

static void eo_free(struct epoch_order *e)
{
	if (e->ord_owned)
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

int plan_set_manifest(struct plan *p, uint64_t *inos, uint32_t n)
{
	uint64_t lo = UINT64_MAX, hi = 0;
	uint32_t *dmap = NULL, *slots = NULL, *i32 = NULL;
	size_t dlen = 0, cap = 0;
	uint32_t nz = 0;

	for (uint32_t i = 0; i < n; i++)
		if (inos[i]) {
			lo = MIN(lo, inos[i]);
			hi = MAX(hi, inos[i]);
			nz++;
		}
	/* Everything that can fail first: on failure nothing has changed and
	 * inos is the caller's again, untouched. */
	if (nz && dense_enough(hi - lo + 1, n)) {
		dlen = (size_t)(hi - lo + 1);
		dmap = ec_malloc(dlen * sizeof(*dmap));
		if (!dmap)
			return -ENOMEM;
	} else if (nz) {
		cap = 16;
		while (cap < (size_t)n * 2)
			cap <<= 1;
		slots = ec_malloc(cap * sizeof(*slots));
		if (!slots)
			return -ENOMEM;
	}
	if (hi <= UINT32_MAX) {
		/* Narrow in place (entry i's 4 bytes lie below entry i + 1's
		 * 8), then give the upper half back. */
		i32 = (uint32_t *)inos;
		for (uint32_t i = 0; i < n; i++)
			i32[i] = (uint32_t)inos[i];
		i32 = ec_realloc(inos, ((size_t)n + 1) * sizeof(*i32));
		if (!i32) /* cannot fail when shrinking, but if it did: */
			i32 = (uint32_t *)inos;
		inos = NULL;
	} else {
		/* The caller's array may have room to spare (a growing list). */
		uint64_t *v = ec_realloc(inos, ((size_t)n + 1) * sizeof(*v));

		if (v)
			inos = v;
	}
	plan_off(p);
	free(p->ino32);
	free(p->ino64);
	free(p->dmap);
	free(p->hslots);
	p->ino32 = i32;
	p->ino64 = inos;
	p->n = n;
	p->dmap = dmap;
	p->dbase = lo;
	p->dlen = dlen;
	p->hslots = slots;
	p->hcap = cap;
	/* A duplicate inode keeps its first index. */
	if (dmap) {
		memset(dmap, 0xff, dlen * sizeof(*dmap));
		for (uint32_t i = 0; i < n; i++) {
			uint64_t ino = man_ino(p, i);

			if (ino && dmap[ino - lo] == PLAN_NONE)
				dmap[ino - lo] = i;
		}
	} else if (slots) {
		memset(slots, 0xff, cap * sizeof(*slots));
		for (uint32_t i = 0; i < n; i++) {
			uint64_t ino = man_ino(p, i);
			size_t s = hslot(ino, cap);

			if (!ino)
				continue;
			while (slots[s] != PLAN_NONE && man_ino(p, slots[s]) != ino)
				s = (s + 1) & (cap - 1);
			if (slots[s] == PLAN_NONE)
				slots[s] = i;
		}
	}
	p->mgen++;
	p->mset = 1;
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

/* Make the order of epoch e into eo.  -ENOENT when the mode cannot (an
 * explicit plan that does not reach that far). */
static int eo_make(struct plan *p, uint64_t e, struct epoch_order *eo)
{
	struct order_spec s;
	uint64_t len;
	uint32_t *ord = NULL, *pos, *again = NULL;
	int rc, dup = 0, owned = 0;

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
		if (len < p->n) { /* one rank's share: give the rest back */
			uint32_t *o = ec_realloc(ord, (size_t)len * sizeof(*ord) + 4);

			if (o)
				ord = o;
		}
		owned = 1;
	} else if (p->mode == PLAN_EXPLICIT) {
		if (e < p->first_epoch || e - p->first_epoch >= p->nlists)
			return -ENOENT;
		/* The plan keeps the lists: read the order from there. */
		len = p->lens[e - p->first_epoch];
		ord = p->lists[e - p->first_epoch];
	} else {
		return -ENOENT;
	}
	pos = ec_malloc((size_t)p->n * sizeof(*pos) + 4);
	if (!pos) {
		if (owned)
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
			if (owned)
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
	eo->ord_owned = owned;
	eo->len = len;
	eo->pos = pos;
	eo->epoch = e;
	eo->valid = 1;
	return 0;
}

/* eo_make's answer for epoch e short of running out of memory. */
static int eo_check(const struct plan *p, uint64_t e)
{
	struct order_spec s;
	uint64_t len;

	if (p->mode == PLAN_SEED) {
		s = p->spec;
		s.epoch = e;
		return order_len(&s, p->n, &len);
	}
	if (p->mode == PLAN_EXPLICIT)
		return e < p->first_epoch || e - p->first_epoch >= p->nlists ? -ENOENT : 0;
	return -ENOENT;
}

static size_t bitmap_words(uint64_t bits)
{
	return (size_t)(bits / 64) + 1;
}

int plan_set_epoch(struct plan *p, uint64_t e)
{
	struct epoch_order cur;
	uint64_t *opened;
	int rc, advance;

	if (p->mode == PLAN_OFF)
		return -ENOENT;
	/* At most two orders at a time: the next epoch's is made once the old
	 * ones are gone. */
	advance = p->cur.valid && p->cur.epoch + 1 == e && p->next.valid;
	if (advance) {
		cur = p->next;
	} else {
		/* A jump: the old next epoch is of no use; drop it before
		 * making the new order unless that would fail anyway (out
		 * of memory, the plan is left without a next epoch, as when
		 * only that one cannot be made). */
		rc = eo_check(p, e);
		if (rc)
			return rc;
		eo_free(&p->next);
		rc = eo_make(p, e, &cur);
		if (rc)
			return rc;
	}
	opened = ec_calloc(bitmap_words(cur.len), sizeof(*opened));
	if (!opened) {
		if (!advance)
			eo_free(&cur);
		return -ENOMEM;
	}
	if (advance)
		memset(&p->next, 0, sizeof(p->next));
	eo_free(&p->cur);
	eo_free(&p->next);
	free(p->opened);
	p->cur = cur;
	p->opened = opened;
	p->nopened = p->frontier = 0;
	if (eo_make(p, e + 1, &p->next))
		memset(&p->next, 0, sizeof(p->next));
	p->gen++;
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

static inline int is_opened(const struct plan *p, uint64_t q)
{
	return (int)(p->opened[q / 64] >> (q % 64) & 1);
}

/* Mark position q of the current epoch opened and move the low-water mark. */
static void mark(struct plan *p, uint64_t q)
{
	uint64_t w;

	if (is_opened(p, q))
		return;
	p->opened[q / 64] |= 1ull << (q % 64);
	p->nopened++;
	/* The first clear bit from the frontier on, a word at a time (the bits
	 * past the end of the order are clear). */
	while (p->frontier < p->cur.len) {
		w = ~p->opened[p->frontier / 64] >> (p->frontier % 64);
		if (w) {
			p->frontier += (uint64_t)__builtin_ctzll(w);
			break;
		}
		p->frontier = (p->frontier | 63) + 1;
	}
	p->frontier = MIN(p->frontier, p->cur.len);
}

/* Sample i's first position in the current epoch not opened yet (a sample
 * planned twice, as padding makes it, counts at each place), PLAN_NONE. */
static uint32_t first_unopened(const struct plan *p, uint32_t i)
{
	uint32_t q = p->cur.pos[i];

	while (q != PLAN_NONE && q < p->cur.len && is_opened(p, q))
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
		p->gen++;
		return 1;
	}
	/* Opened again, or not planned this epoch: maybe the next has begun. */
	if (p->cur.pos[i] != PLAN_NONE && p->nopened * 10 >= p->cur.len * 9 &&
	    plan_set_epoch(p, p->cur.epoch + 1) == 0) {
		if (p->cur.valid && p->cur.pos[i] != PLAN_NONE)
			mark(p, p->cur.pos[i]);
		p->gen++;
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
