/* SPDX-License-Identifier: MIT */
/* The control files that say what the readers will read: .epochfs/seed
 * (one sampler spec per reader rank) and .epochfs/order (explicit orders,
 * one rank's or the whole node's), docs/control.md.
 *
 * A seed write names a job (sampler, seed, world, drop_last) and one or
 * more ranks (rank=3, rank=0-7, rank=0,2,4), each at epoch=E with start=K
 * positions already consumed.  The ranks join the plan when it is the same
 * job; another job replaces the plan.  "clear" forgets every spec.  An
 * order write whose first line is a header "# rank=R [epoch=E] [start=K]"
 * sets rank R's orders (blank lines between epochs) and keeps the other
 * ranks of an explicit plan; without a header, the order is the whole
 * node's, as one reader.  Every write is checked whole first and changes
 * nothing when it fails. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control.h"
#include "control_int.h"
#include "engine.h"
#include "planstore.h"
#include "backends/base/log.h"
#include "backends/base/sbuf.h"
#include "backends/base/util.h"

void control_plan_saved(struct cache *c)
{
	(void)planstore_save(c); /* logged; the plan stays in force */
}

/* ---- seed ---- */

int control_seed_render(struct cache *c, char **out, size_t *len)
{
	struct sbuf b = { 0 };
	struct order_spec s;
	struct plan_rank_info ri;
	char line[256];

	pthread_mutex_lock(&c->ot.lock);
	if (plan_spec(c->plan, &s) == 0)
		for (unsigned k = 0; plan_rank_get(c->plan, k, &ri) == 0; k++) {
			s.rank = ri.rank;
			s.epoch = ri.epoch;
			if (order_spec_format(&s, line, sizeof(line)) == 0)
				sbuf_printf(&b, "%s\n", line);
		}
	pthread_mutex_unlock(&c->ot.lock);
	return sbuf_done(&b, out, len);
}

/* Unsigned decimal of at most max; 0 or -1. */
static int num(const char *s, uint64_t max, uint64_t *out)
{
	char *end;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	*out = strtoull(s, &end, 10);
	return errno || *end || *out > max ? -1 : 0;
}

/* "3", "0-7", "0,2,4-6": distinct ranks into ids (at most PLAN_MAX_RANKS). */
static int parse_ranks(const char *v, uint32_t *ids, unsigned *n, char *err, size_t errlen)
{
	char buf[512], *save, *tok;
	uint64_t a, b;

	*n = 0;
	/* strtok_r would pass over an empty element: "0,,1" is a typo. */
	if (snprintf(buf, sizeof(buf), "%s", v) >= (int)sizeof(buf) || *v == ',' ||
	    strstr(v, ",,") || (*v && v[strlen(v) - 1] == ','))
		goto bad;
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *dash = strchr(tok, '-');

		if (dash)
			*dash = 0;
		if (num(tok, UINT32_MAX - 1, &a) || (dash ? num(dash + 1, UINT32_MAX - 1, &b) : (b = a, 0)) ||
		    b < a)
			goto bad;
		for (uint64_t r = a; r <= b; r++) {
			for (unsigned i = 0; i < *n; i++)
				if (ids[i] == r)
					goto dup;
			if (*n == PLAN_MAX_RANKS) {
				snprintf(err, errlen, "more than %d ranks in 'rank=%.100s'", PLAN_MAX_RANKS, v);
				return -EINVAL;
			}
			ids[(*n)++] = (uint32_t)r;
dup:;
		}
	}
	if (*n)
		return 0;
bad:
	snprintf(err, errlen, "bad rank list 'rank=%.100s' (a rank, a range 0-7, or a list 0,2,4)", v);
	return -EINVAL;
}

/* A seed line: the spec (validated by order_spec_parse with the highest
 * rank), the ranks and the start. */
static int parse_seed(const char *line, struct order_spec *spec, uint32_t *ids, unsigned *n,
		      uint64_t *start, char *err, size_t errlen)
{
	char buf[1024], rest[1100] = "", *save, *tok;
	const char *rk = NULL;
	uint32_t top = 0;
	int rc;

	*start = 0;
	*n = 0;
	snprintf(buf, sizeof(buf), "%s", line);
	for (tok = strtok_r(buf, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
		if (!strncmp(tok, "rank=", 5)) {
			if (rk) {
				snprintf(err, errlen, "rank given twice");
				return -EINVAL;
			}
			rk = line + (tok - buf) + 5;
			tok[strcspn(tok, " \t")] = 0;
			rc = parse_ranks(tok + 5, ids, n, err, errlen);
			if (rc)
				return rc;
		} else if (!strncmp(tok, "start=", 6)) {
			if (num(tok + 6, UINT32_MAX, start)) {
				snprintf(err, errlen, "bad start '%.40s' (positions already read)", tok + 6);
				return -EINVAL;
			}
		} else {
			strcat(rest, tok);
			strcat(rest, " ");
		}
	}
	for (unsigned i = 0; i < *n; i++)
		top = MAX(top, ids[i]);
	if (rk)
		snprintf(rest + strlen(rest), sizeof(rest) - strlen(rest), "rank=%u", top);
	if (order_spec_parse(rest, spec, err, errlen))
		return -EINVAL;
	if (!rk) {
		ids[0] = spec->rank;
		*n = 1;
	}
	return 0;
}

/* The keys of a seed line and what their values are made of. */
static const struct {
	const char *key, *chars;
} seed_keys[] = {
	{ "seed", "0123456789" },    { "sampler", "abcdefghijklmnopqrstuvwxyz" },
	{ "world", "0123456789" },   { "rank", "0123456789,-" },
	{ "drop_last", "01" },       { "epoch", "0123456789" },
	{ "start", "0123456789" },
};
static const char *const seed_samplers[] = { "distributed", "randperm", "numpy" };

/* One key=value token of a seed line: -1 when it cannot begin a good one,
 * 0 when it is whole as far as its letters go, 1 when it needs more (a key
 * cut short, "world=", "sampler=dis", "rank=0-"). */
static int seed_token(const char *tok, size_t len)
{
	const char *eq = memchr(tok, '=', len);
	size_t kl = eq ? (size_t)(eq - tok) : len, vl = eq ? len - kl - 1 : 0;
	const char *v = eq ? eq + 1 : NULL;

	for (size_t k = 0; k < ARRAY_SIZE(seed_keys); k++) {
		if (!eq) {
			if (kl <= strlen(seed_keys[k].key) && !strncmp(seed_keys[k].key, tok, kl))
				return 1;
			continue;
		}
		if (strlen(seed_keys[k].key) != kl || strncmp(seed_keys[k].key, tok, kl))
			continue;
		if (!vl)
			return 1;
		for (size_t i = 0; i < vl; i++)
			if (!strchr(seed_keys[k].chars, v[i]))
				return -1;
		if (k == 1) {
			for (size_t i = 0; i < ARRAY_SIZE(seed_samplers); i++)
				if (!strncmp(seed_samplers[i], v, vl))
					return strlen(seed_samplers[i]) == vl ? 0 : 1;
			return -1;
		}
		return k == 3 && (v[vl - 1] == ',' || v[vl - 1] == '-');
	}
	return -1;
}

/* The end of a write to .epochfs/seed that ended mid-line.  0 when it is a
 * good line already (applied at the newline or the close) or when its last
 * token still needs more to be whole; -EINVAL with the reason when no line
 * that begins so can be good, so that the write() fails (printf "seed=1
 * world=2 rank=2" > seed reports it; a close could not). */
int control_check_seed_prefix(struct cache *c, const char *p, char *err, size_t errlen)
{
	struct order_spec spec;
	uint32_t ids[PLAN_MAX_RANKS];
	uint64_t start;
	unsigned n;
	const char *q = p, *tok;
	int more = 0, t;

	(void)c;
	while (*q == ' ' || *q == '\t')
		q++;
	if (!strncmp("clear", q, strlen(q)))
		return 0;
	if (!parse_seed(p, &spec, ids, &n, &start, err, errlen))
		return 0;
	while (*q) {
		tok = q;
		q += strcspn(q, " \t");
		t = seed_token(tok, (size_t)(q - tok));
		if (t < 0 || (t > 0 && *q)) {
			snprintf(err, errlen, "'%.*s' cannot begin a key=value of a seed line (keys: "
				 "seed sampler world rank drop_last epoch start)", (int)(q - tok), tok);
			return -EINVAL;
		}
		more = t;
		q += strspn(q, " \t");
	}
	return more ? 0 : -EINVAL; /* err holds parse_seed's reason */
}

int control_seed_apply(struct cache *c, const char *data, size_t len, char *err, size_t errlen)
{
	struct order_spec spec;
	uint32_t ids[PLAN_MAX_RANKS];
	uint64_t start;
	unsigned n;
	char line[1024];
	int rc;

	rc = control_one_line(data, len, line, sizeof(line), err, errlen);
	if (rc)
		return -EINVAL;
	if (!strcmp(line, "clear")) {
		pthread_mutex_lock(&c->ot.lock);
		if (plan_mode(c->plan) != PLAN_OFF) {
			plan_off(c->plan);
			prefetch_plan_changed_locked(&c->pf);
		}
		pthread_mutex_unlock(&c->ot.lock);
		log_info("plan: cleared");
		control_plan_saved(c);
		return 0;
	}
	if (parse_seed(line, &spec, ids, &n, &start, err, errlen))
		return -EINVAL;
	rc = control_ensure_manifest(c);
	if (rc) {
		snprintf(err, errlen, "cannot build the manifest: %s", strerror(-rc));
		return rc;
	}
	pthread_mutex_lock(&c->ot.lock);
	rc = plan_seed_ranks(c->plan, &spec, ids, n, start, 1);
	if (!rc)
		prefetch_plan_changed_locked(&c->pf);
	pthread_mutex_unlock(&c->ot.lock);
	if (rc == -EINVAL)
		snprintf(err, errlen, "the spec does not fit the manifest of %u samples (or start is "
			 "past the end of an order, or more than %d ranks)",
			 plan_manifest_len(c->plan), PLAN_MAX_RANKS);
	if (rc)
		return rc;
	log_info("plan: %s", line);
	control_plan_saved(c);
	return 0;
}

/* ---- order ---- */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

int control_order_render(struct cache *c, char **out, size_t *len)
{
	const uint32_t *ord;
	uint64_t n, m = 0, *inos;

	pthread_mutex_lock(&c->ot.lock);
	ord = plan_order(c->plan, &n);
	inos = ec_malloc((n + 1) * sizeof(*inos));
	for (uint64_t i = 0; inos && i < n; i++)
		if (ord[i] != PLAN_HOLE)
			inos[m++] = plan_manifest_ino(c->plan, ord[i]);
	pthread_mutex_unlock(&c->ot.lock);
	return control_render_inos(c, inos, m, out, len);
}

struct order_header {
	uint64_t rank, epoch, start;
	int has_epoch;
};

/* "# rank=R [epoch=E] [start=K]". */
static int parse_header(const char *line, struct order_header *h, char *err, size_t errlen)
{
	char buf[256], *save, *tok;
	int has_rank = 0;

	memset(h, 0, sizeof(*h));
	snprintf(buf, sizeof(buf), "%s", line + 2);
	for (tok = strtok_r(buf, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
		if (!strncmp(tok, "rank=", 5) && !num(tok + 5, UINT32_MAX - 1, &h->rank))
			has_rank = 1;
		else if (!strncmp(tok, "epoch=", 6) && !num(tok + 6, UINT64_MAX / 2, &h->epoch))
			h->has_epoch = 1;
		else if (strncmp(tok, "start=", 6) || num(tok + 6, UINT32_MAX, &h->start))
			goto bad;
	}
	if (has_rank)
		return 0;
bad:
	snprintf(err, errlen, "line 1: bad header '%.100s' (# rank=R [epoch=E] [start=K])", line);
	return -EINVAL;
}

/* One rank's orders: lists per epoch of sample indices, every path a file
 * of the manifest. */
static int order_apply_rank(struct cache *c, char **lines, size_t n, char *err, size_t errlen)
{
	struct order_header h;
	struct plan_rank_info ri;
	uint32_t **lists = ec_calloc(n + 1, sizeof(*lists));
	uint64_t *lens = ec_calloc(n + 1, sizeof(*lens)), ino, e0 = 0;
	size_t nl = 0;
	int rc = 0;

	if (!lists || !lens)
		rc = -ENOMEM;
	if (!rc)
		rc = parse_header(lines[0], &h, err, errlen);
	for (size_t i = 1; !rc && i < n; i++) {
		if (!*lines[i]) {
			nl += lens[nl] > 0;
			continue;
		}
		if (!lists[nl] && !(lists[nl] = ec_malloc((n + 1) * sizeof(**lists)))) {
			rc = -ENOMEM;
			break;
		}
		rc = control_resolve_file(c, lines[i], &ino, err, errlen);
		if (!rc) {
			pthread_mutex_lock(&c->ot.lock);
			lists[nl][lens[nl]] = plan_sample_of(c->plan, ino);
			pthread_mutex_unlock(&c->ot.lock);
			if (lists[nl][lens[nl]] == PLAN_NONE) {
				snprintf(err, errlen, "'%.200s' is not in the manifest (an order with a "
					 "rank header names files of the manifest)", lines[i]);
				rc = -EINVAL;
			}
		}
		if (rc)
			control_at_line(i + 1, err, errlen);
		lens[nl]++;
	}
	nl += !rc && lens[nl] > 0;
	if (!rc && !nl) {
		snprintf(err, errlen, "an empty order");
		rc = -EINVAL;
	}
	if (rc)
		goto out;
	pthread_mutex_lock(&c->ot.lock);
	/* The first block is the epoch the header names, or the one this rank
	 * (else the node) reads. */
	e0 = plan_mode(c->plan) == PLAN_OFF ? 0 : plan_epoch(c->plan);
	for (unsigned k = 0; plan_mode(c->plan) == PLAN_EXPLICIT && plan_rank_get(c->plan, k, &ri) == 0; k++)
		if (ri.rank == h.rank)
			e0 = ri.epoch;
	if (h.has_epoch)
		e0 = h.epoch;
	rc = plan_explicit_rank(c->plan, (uint32_t)h.rank, lists, lens, nl, e0, h.start, 1);
	if (!rc)
		prefetch_plan_changed_locked(&c->pf);
	pthread_mutex_unlock(&c->ot.lock);
	if (rc == -EINVAL)
		snprintf(err, errlen, "start=%llu is past the end of the first order, or more than %d "
			 "ranks", (unsigned long long)h.start, PLAN_MAX_RANKS);
	if (!rc)
		return 0;
out:
	for (size_t e = 0; lists && e <= n; e++)
		free(lists[e]);
	free(lists);
	free(lens);
	return rc;
}

/* An order without a header: the whole plan becomes this one reader's
 * explicit order (files not in the manifest join it). */
static int order_apply_whole(struct cache *c, char **lines, size_t n, char *err, size_t errlen)
{
	size_t nl = 0, total = 0;
	uint64_t *inos = NULL, *lens = NULL, *man;
	uint32_t **lists = NULL, mn, extra = 0, extra_u = 0;
	uint64_t e0;
	int rc = 0;

	inos = ec_malloc((n + 1) * sizeof(*inos));
	lens = ec_calloc(n + 2, sizeof(*lens));
	lists = ec_calloc(n + 2, sizeof(*lists));
	if (!inos || !lens || !lists)
		rc = -ENOMEM;
	/* Resolve every path first; blank lines separate epochs. */
	for (size_t i = 0; !rc && i < n; i++) {
		if (!*lines[i]) {
			if (lens[nl])
				nl++;
			continue;
		}
		rc = control_resolve_file(c, lines[i], &inos[total++], err, errlen);
		if (rc)
			control_at_line(i + 1, err, errlen);
		lens[nl]++;
	}
	if (!rc && lens[nl])
		nl++;
	if (!rc && nl == 0) {
		snprintf(err, errlen, "an empty order");
		rc = -EINVAL;
	}
	if (rc)
		goto out;

	pthread_mutex_lock(&c->ot.lock);
	/* The first block is the epoch the readers are in (or 0 without a plan). */
	e0 = plan_mode(c->plan) == PLAN_OFF ? 0 : plan_epoch(c->plan);
	/* Files not in the manifest join it (the order may name any file):
	 * they take the indices mn.. in inode order, and the manifest and the
	 * order are put in force together or not at all. */
	mn = plan_manifest_len(c->plan);
	man = NULL;
	for (size_t i = 0; i < total; i++)
		if (plan_sample_of(c->plan, inos[i]) == PLAN_NONE)
			extra++;
	if (extra) {
		size_t k = 0;

		man = ec_malloc(((size_t)mn + extra + 1) * sizeof(*man));
		if (!man) {
			pthread_mutex_unlock(&c->ot.lock);
			rc = -ENOMEM;
			goto out;
		}
		for (size_t i = 0; i < total; i++)
			if (plan_sample_of(c->plan, inos[i]) == PLAN_NONE)
				man[mn + k++] = inos[i];
		qsort(man + mn, k, sizeof(*man), cmp_u64);
		for (size_t i = 0; i < k; i++)
			if (!extra_u || man[mn + extra_u - 1] != man[mn + i])
				man[mn + extra_u++] = man[mn + i];
		for (uint32_t i = 0; i < mn; i++)
			man[i] = plan_manifest_ino(c->plan, i);
	}
	for (size_t e = 0, at = 0; !rc && e < nl; e++) {
		lists[e] = ec_malloc((size_t)(lens[e] + 1) * sizeof(**lists));
		if (!lists[e]) {
			rc = -ENOMEM;
			break;
		}
		for (uint64_t i = 0; i < lens[e]; i++, at++) {
			uint32_t si = plan_sample_of(c->plan, inos[at]);

			if (si == PLAN_NONE) { /* a joining file: its index by search */
				uint64_t *f = bsearch(&inos[at], man + mn, extra_u, sizeof(*man),
						      cmp_u64);
				si = mn + (uint32_t)(f - (man + mn));
			}
			lists[e][i] = si;
		}
	}
	if (rc) {
		free(man);
	} else if (man) {
		rc = plan_set_explicit_manifest(c->plan, man, mn + extra_u, lists, lens, nl, e0);
		lists = NULL;
		lens = NULL;
	} else {
		rc = plan_set_explicit(c->plan, lists, lens, nl, e0);
		lists = NULL;
		lens = NULL;
	}
	if (!rc)
		prefetch_plan_changed_locked(&c->pf);
	pthread_mutex_unlock(&c->ot.lock);
out:
	if (lists)
		for (size_t e = 0; e < n + 2; e++)
			free(lists[e]);
	free(lists);
	free(lens);
	free(inos);
	return rc;
}


int control_order_apply(struct cache *c, const char *data, size_t len, char *err, size_t errlen)
{
	size_t n = 0, first = 0;
	char **lines, *copy;
	int rc;

	rc = control_ensure_manifest(c);
	if (rc)
		return rc;
	lines = control_split_lines(data, len, &n, &copy);
	if (!lines)
		return -ENOMEM;
	while (first < n && !*lines[first])
		first++;
	if (first < n && !strncmp(lines[first], "# ", 2))
		rc = order_apply_rank(c, lines + first, n - first, err, errlen);
	else
		rc = order_apply_whole(c, lines, n, err, errlen);
	free(lines);
	free(copy);
	if (!rc)
		control_plan_saved(c);
	return rc;
}
