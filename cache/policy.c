/* SPDX-License-Identifier: MIT */
/* Eviction and admission policies.
 *
 * SHADE (default): a min-heap on (importance, frequency).  An incoming object
 * displaces the least valuable cached one only if it outranks it: higher
 * importance, or equal importance and a frequency higher by at least 2.  The
 * margin of 2 matters: under per-epoch random permutations every sample's
 * count is the epoch number, give or take the one read of the current epoch,
 * so without it the cache would churn exactly like LRU; with it, equal
 * samples never displace each other (admit until full, then keep), which is
 * the policy whose hit rate equals the cached fraction.
 *
 * LRU: the same heap keyed by last access, oldest first.  Offered for
 * comparison.
 *
 * BELADY, while the read order is known: the same heap, keyed by next use,
 * furthest first; an incoming object displaces the furthest cached one only
 * if it is needed sooner.  Importance breaks ties (the less important goes).
 *
 * Ownership comes before every rule: with peers (docs/peers.md), an object
 * another node of the job owns is kept only in room no owned object wants,
 * since its owner serves it again without the origin, while an owned object
 * evicted here costs the whole cluster an origin fetch. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"
#include "backends/base/util.h"

struct policy {
	enum policy_kind kind;
	struct pol_entry **heap;
	size_t n, cap;
};

const char *policy_name(enum policy_kind kind)
{
	return kind == POLICY_LRU ? "lru" : kind == POLICY_BELADY ? "belady" : "shade";
}

int policy_parse(const char *s, enum policy_kind *out)
{
	if (!strcmp(s, "belady"))
		*out = POLICY_BELADY;
	else if (!strcmp(s, "shade") || !strcmp(s, "default"))
		*out = POLICY_SHADE;
	else if (!strcmp(s, "lru"))
		*out = POLICY_LRU;
	else
		return -EINVAL;
	return 0;
}

int policy_create(enum policy_kind kind, struct policy **out)
{
	struct policy *p = ec_calloc(1, sizeof(*p));

	if (!p)
		return -ENOMEM;
	p->kind = kind;
	*out = p;
	return 0;
}

void policy_destroy(struct policy *p)
{
	if (!p)
		return;
	free(p->heap);
	free(p);
}

enum policy_kind policy_kind(const struct policy *p)
{
	return p->kind;
}

size_t policy_count(const struct policy *p)
{
	return p->n;
}

/* Strict "less valuable than" for the heap order. */
static int less_shade(const struct pol_entry *a, const struct pol_entry *b)
{
	if (a->importance != b->importance)
		return a->importance < b->importance;
	if (a->freq != b->freq)
		return a->freq < b->freq;
	return a->last < b->last;
}

static int less_belady(const struct pol_entry *a, const struct pol_entry *b)
{
	if (a->next_use != b->next_use)
		return a->next_use > b->next_use;
	if (a->importance != b->importance)
		return a->importance < b->importance;
	return a->last < b->last;
}

static int less(const struct policy *p, const struct pol_entry *a, const struct pol_entry *b)
{
	if (a->foreign != b->foreign)
		return a->foreign;
	if (p->kind == POLICY_LRU)
		return a->last < b->last;
	return p->kind == POLICY_BELADY ? less_belady(a, b) : less_shade(a, b);
}

int policy_outranks(const struct pol_entry *a, const struct pol_entry *b)
{
	if (a->importance != b->importance)
		return a->importance > b->importance;
	return a->freq > b->freq && a->freq - b->freq >= 2;
}

static void heap_set(struct policy *p, size_t i, struct pol_entry *e)
{
	p->heap[i] = e;
	e->idx = (uint32_t)i + 1;
}

static void sift_up(struct policy *p, size_t i)
{
	struct pol_entry *e = p->heap[i];

	while (i > 0) {
		size_t parent = (i - 1) / 2;

		if (!less(p, e, p->heap[parent]))
			break;
		heap_set(p, i, p->heap[parent]);
		i = parent;
	}
	heap_set(p, i, e);
}

static void sift_down(struct policy *p, size_t i)
{
	struct pol_entry *e = p->heap[i];

	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		struct pol_entry *best = e;

		if (l < p->n && less(p, p->heap[l], best)) {
			m = l;
			best = p->heap[l];
		}
		if (r < p->n && less(p, p->heap[r], best))
			m = r;
		if (m == i)
			break;
		heap_set(p, i, p->heap[m]);
		i = m;
	}
	heap_set(p, i, e);
}

int policy_insert(struct policy *p, struct pol_entry *e)
{
	if (e->idx)
		return 0;
	if (p->n == p->cap) {
		size_t cap = p->cap ? p->cap + p->cap / 2 : 1024;
		struct pol_entry **h = ec_realloc(p->heap, cap * sizeof(*h));

		if (!h)
			return -ENOMEM;
		p->heap = h;
		p->cap = cap;
	}
	p->heap[p->n] = e;
	e->idx = (uint32_t)++p->n;
	sift_up(p, p->n - 1);
	return 0;
}

void policy_remove(struct policy *p, struct pol_entry *e)
{
	size_t i;

	if (!e->idx)
		return;
	i = e->idx - 1;
	e->idx = 0;
	if (i == --p->n)
		return;
	heap_set(p, i, p->heap[p->n]);
	sift_up(p, i);
	sift_down(p, p->heap[i]->idx - 1);
}

void policy_update(struct policy *p, struct pol_entry *e)
{
	if (!e->idx)
		return;
	sift_up(p, e->idx - 1);
	sift_down(p, e->idx - 1);
}

struct pol_entry *policy_victim(struct policy *p, const struct pol_entry *incoming)
{
	struct pol_entry *worst;

	if (!p->n)
		return NULL;
	worst = p->heap[0];
	if (!incoming)
		return worst;
	if (worst->foreign != incoming->foreign)
		return worst->foreign ? worst : NULL;
	if (p->kind == POLICY_LRU)
		return worst;
	if (p->kind == POLICY_BELADY)
		return incoming->next_use < worst->next_use ||
			       (incoming->next_use == worst->next_use &&
				incoming->importance > worst->importance)
			       ? worst
			       : NULL;
	return policy_outranks(incoming, worst) ? worst : NULL;
}

int policy_rekey(struct policy *p, enum policy_kind kind)
{
	size_t n = policy_count(p), i = 0;
	struct pol_entry **all;

	all = ec_malloc((n + 1) * sizeof(*all));
	if (!all)
		return -ENOMEM;
	for (i = 0; i < p->n; i++)
		all[i] = p->heap[i];
	if (p->cap < n) {
		/* Grow first, so that the re-inserts cannot fail half way. */
		struct pol_entry **h = ec_realloc(p->heap, n * sizeof(*h));

		if (!h) {
			free(all);
			return -ENOMEM;
		}
		p->heap = h;
		p->cap = n;
	}
	for (i = 0; i < n; i++)
		policy_remove(p, all[i]);
	p->kind = kind;
	for (i = 0; i < n; i++)
		if (policy_insert(p, all[i])) {
			free(all);
			return -ENOMEM; /* the entries left out are simply not evictable */
		}
	free(all);
	return 0;
}
