/* SPDX-License-Identifier: MIT */
/* epochfs-peersim: what node caches that serve each other (issue 13) would
 * do at 8 to 1,024 nodes, computed with the daemon's own ownership function
 * (backends/owner.h) and its own order code (cache/order.h), not a model of
 * them.  For each node count and per-node cache size it reports the origin
 * bytes per epoch, the bytes each node serves its peers (mean and the hot
 * spot) and how many peers each node talks to.  docs/peersim.md has the
 * model, the table and what it says about scaling.
 *
 * Memory: the owner of each object is computed once per node count (2 bytes
 * a sample), the epochs' orders are 4 bytes a slot each, and per-node state
 * is one bitset over the samples at a time; 1.28 M samples at 1,024 nodes
 * and 3 epochs stay under 60 MB. */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backends/owner.h"
#include "cache/order.h"

#define MAX_NODES 65535u /* owners are stored as uint16_t */

struct opts {
	unsigned *nodes, nnodes;
	double *fracs;
	unsigned nfracs;
	uint32_t samples;
	unsigned epochs, ranks_per_node, batch;
	uint64_t seed, size_seed;
	double mean_size, sigma;
	int markdown, tsv, local_copies;
};

/* ---- small helpers ---- */

static void usage(int asked)
{
	fprintf(asked ? stdout : stderr,
		"usage: epochfs-peersim [--nodes LIST] [--cache-frac LIST] [--samples N] [--epochs E]\n"
		"                       [--seed S] [--ranks-per-node R] [--mean-size BYTES]\n"
		"                       [--sigma X] [--size-seed S] [--batch B] [--local-copies]\n"
		"                       [--markdown | --tsv]\n"
		"       epochfs-peersim --dump-owner [--nodes N] KEY...\n"
		"       epochfs-peersim --dump-order EPOCH RANK COUNT [--nodes N] [--samples N] [--seed S]\n"
		"       epochfs-peersim --dump-keys FIRST COUNT [--samples N]   (key and size)\n"
		"defaults: --nodes 8,16,64,256,1024 --cache-frac 5%%,10%%,25%%,50%%,100%%\n"
		"          --samples 1280000 --epochs 3 --seed 0 --ranks-per-node 8\n"
		"          --mean-size 112640 --sigma 0.5 --size-seed 1 --batch 32 (per rank)\n"
		"Node k is \"10.0.X.Y:7070\" with X.Y = k+1 in base 256; its ranks are\n"
		"k*R .. k*R+R-1 of a DistributedSampler (shuffle=True, seed S) of world\n"
		"R*nodes; object i is \"n%%08u/img_%%06u.JPEG\" (1,000 classes, as epochfs-gendata).\n");
	exit(asked ? 0 : 2);
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p) {
		fprintf(stderr, "epochfs-peersim: out of memory (%zu bytes)\n", n);
		exit(1);
	}
	return p;
}

static void *xcalloc(size_t n, size_t sz)
{
	void *p = calloc(n ? n : 1, sz ? sz : 1);

	if (!p) {
		fprintf(stderr, "epochfs-peersim: out of memory (%zu x %zu bytes)\n", n, sz);
		exit(1);
	}
	return p;
}

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;

	if (!s || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	*out = strtoull(s, &end, 10);
	return errno || *end ? -1 : 0;
}

static unsigned parse_list_u(const char *s, unsigned **out)
{
	unsigned n = 0, cap = 8;
	char *dup = strdup(s), *save = NULL, *tok;

	*out = xmalloc(cap * sizeof(**out));
	for (tok = strtok_r(dup, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		uint64_t v;

		if (parse_u64(tok, &v) || v == 0 || v > MAX_NODES) {
			fprintf(stderr, "epochfs-peersim: bad node count '%s' (1..%u)\n", tok,
				MAX_NODES);
			exit(2);
		}
		if (n == cap)
			*out = realloc(*out, (cap *= 2) * sizeof(**out));
		(*out)[n++] = (unsigned)v;
	}
	free(dup);
	if (!n)
		usage(0);
	return n;
}

/* "5%", "0.05" */
static unsigned parse_list_frac(const char *s, double **out)
{
	unsigned n = 0, cap = 8;
	char *dup = strdup(s), *save = NULL, *tok;

	*out = xmalloc(cap * sizeof(**out));
	for (tok = strtok_r(dup, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *end;
		double v = strtod(tok, &end);

		if (end != tok && *end == '%' && end[1] == 0)
			v /= 100;
		else if (end == tok || *end)
			v = -1;
		if (!(v > 0 && v <= 1)) {
			fprintf(stderr, "epochfs-peersim: bad cache fraction '%s' (0-100%% or 0-1)\n",
				tok);
			exit(2);
		}
		if (n == cap)
			*out = realloc(*out, (cap *= 2) * sizeof(**out));
		(*out)[n++] = v;
	}
	free(dup);
	if (!n)
		usage(0);
	return n;
}

static uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

#define BIT_TEST(b, i) ((b)[(i) >> 6] >> ((i) & 63) & 1)
#define BIT_SET(b, i) ((b)[(i) >> 6] |= 1ull << ((i) & 63))
#define BITWORDS(n) (((size_t)(n) + 63) / 64)

/* ---- the job: node identities, object keys and sizes ---- */

static int node_id(unsigned k, char *buf, size_t len)
{
	unsigned h = k + 1;

	return snprintf(buf, len, "10.0.%u.%u:7070", h / 256, h % 256);
}

static void node_hashes(unsigned nn, uint64_t *h)
{
	char id[64];

	for (unsigned k = 0; k < nn; k++) {
		int len = node_id(k, id, sizeof(id));

		h[k] = owner_node_hash(id, (size_t)len);
	}
}

/* ImageFolder's sorted listing: sample i is the (i % per)-th file of class
 * i / per; zero-padded names sort as their numbers do. */
static int object_key(uint32_t i, uint32_t samples, char *buf, size_t len)
{
	uint32_t per = (samples + 999) / 1000;

	return snprintf(buf, len, "n%08u/img_%06u.JPEG", i / per, i % per);
}

/* Lognormal sizes with the given mean: exp(mu + sigma z), mu = ln(mean) - sigma^2/2. */
static uint64_t make_sizes(const struct opts *o, uint32_t *size)
{
	uint64_t s = o->size_seed, total = 0;
	double mu = log(o->mean_size) - o->sigma * o->sigma / 2;

	for (uint32_t i = 0; i < o->samples; i++) {
		double u1 = ((double)(splitmix(&s) >> 11) + 1) / 9007199254740993.0;
		double u2 = (double)(splitmix(&s) >> 11) / 9007199254740992.0;
		double z = sqrt(-2 * log(u1)) * cos(2 * M_PI * u2);
		double v = exp(mu + o->sigma * z);

		size[i] = v < 1 ? 1 : v > 4e9 ? 4000000000u : (uint32_t)llround(v);
		total += size[i];
	}
	return total;
}

/* ---- the simulation ---- */

struct result {
	unsigned nodes;
	double frac;
	uint64_t cap;               /* per-node cache, bytes */
	uint64_t owned_max;         /* the most bytes one node owns */
	uint64_t *origin;           /* [epoch] with peers */
	uint64_t *origin_np;        /* [epoch] each node alone */
	uint64_t *served_max;       /* [epoch] the hot spot */
	uint64_t *served_total;     /* [epoch] */
	uint64_t *origin_node_max;  /* [epoch] the most one owner fetches */
	double *conn_mean;          /* [epoch] distinct peers a node asks */
	unsigned *conn_max, *conn_min;
};

struct job {
	const struct opts *o;
	unsigned nn, world;
	uint64_t total;             /* slots per epoch: num_samples * world */
	uint64_t per_rank;          /* num_samples */
	uint32_t **order;           /* [epoch][q * world + g]: padded order */
	uint16_t *owner;            /* [sample] */
	const uint32_t *size;
	uint64_t dataset;
	double step_ratio_mean, step_ratio_max; /* a step's hot spot / mean */
};

/* Every rank's order of one epoch at once, through the daemon's merged-ranks
 * call: out[q * world + g] is what global rank g reads at its step q. */
static uint32_t *epoch_order(const struct opts *o, unsigned world, uint64_t epoch, uint64_t *slots,
			     uint64_t *per_rank)
{
	struct order_spec spec = { .sampler = ORDER_DISTRIBUTED, .seed = o->seed, .epoch = epoch,
				   .world = world, .rank = 0, .drop_last = 0 };
	uint32_t *ranks = xmalloc(world * sizeof(*ranks)), *out;
	uint64_t len;
	int rc = order_len(&spec, o->samples, &len);

	if (rc) {
		fprintf(stderr, "epochfs-peersim: order_len: %s\n", strerror(-rc));
		exit(1);
	}
	for (unsigned g = 0; g < world; g++)
		ranks[g] = g;
	out = xmalloc(len * world * sizeof(*out));
	rc = order_generate_ranks(&spec, ranks, world, o->samples, out, len * world);
	if (rc) {
		fprintf(stderr, "epochfs-peersim: order_generate_ranks: %s\n", strerror(-rc));
		exit(1);
	}
	free(ranks);
	*slots = len * world;
	*per_rank = len;
	return out;
}

/* The hot spot of one training step: in a step every rank reads --batch
 * samples, and the owner asked for the most bytes in it paces the step if
 * loading is on the critical path.  Per step, the most bytes one owner
 * serves over the mean per owner, averaged over the full steps of the warm
 * epochs (and the worst step).  Every read by a non-owner is counted: the
 * model without --local-copies, where this does not depend on cache size. */
static void step_imbalance(struct job *j)
{
	const struct opts *o = j->o;
	unsigned nn = j->nn, R = o->ranks_per_node;
	uint64_t b = o->batch < j->per_rank ? o->batch : j->per_rank, steps = j->per_rank / b, cnt = 0;
	uint64_t *acc = xcalloc(nn, sizeof(*acc));

	j->step_ratio_mean = j->step_ratio_max = 0;
	for (unsigned e = 1; e < o->epochs; e++) {
		for (uint64_t st = 0; st < steps; st++) {
			uint64_t sum = 0, max = 0;

			memset(acc, 0, nn * sizeof(*acc));
			for (uint64_t q = st * b; q < (st + 1) * b; q++)
				for (unsigned g = 0; g < j->world; g++) {
					uint32_t x = j->order[e][q * j->world + g];
					unsigned w = j->owner[x];

					if (w != g / R)
						acc[w] += j->size[x];
				}
			for (unsigned k = 0; k < nn; k++) {
				sum += acc[k];
				if (acc[k] > max)
					max = acc[k];
			}
			if (sum) {
				double ratio = (double)max * nn / (double)sum;

				j->step_ratio_mean += ratio;
				cnt++;
				if (ratio > j->step_ratio_max)
					j->step_ratio_max = ratio;
			}
		}
	}
	if (cnt)
		j->step_ratio_mean /= (double)cnt;
	free(acc);
}

static void simulate(const struct job *j, double frac, struct result *res)
{
	const struct opts *o = j->o;
	unsigned nn = j->nn, E = o->epochs, R = o->ranks_per_node;
	uint64_t cap = (uint64_t)(frac * (double)j->dataset);
	uint64_t *used = xcalloc(nn, sizeof(*used)), *owned = xcalloc(nn, sizeof(*owned));
	uint64_t *held = xcalloc(BITWORDS(o->samples), 8), *seen = xcalloc(BITWORDS(o->samples), 8);
	uint64_t *fetched = xcalloc(BITWORDS(o->samples) * E, 8);
	uint64_t *local = xcalloc(BITWORDS(o->samples), 8), *alone = xcalloc(BITWORDS(o->samples), 8);
	uint64_t *peers = xcalloc(BITWORDS(nn), 8);
	uint64_t *served = xcalloc((size_t)nn * E, sizeof(*served));
	uint64_t *ofetch = xcalloc((size_t)nn * E, sizeof(*ofetch));

	res->nodes = nn;
	res->frac = frac;
	res->cap = cap;
	res->origin = xcalloc(E, 8);
	res->origin_np = xcalloc(E, 8);
	res->served_max = xcalloc(E, 8);
	res->served_total = xcalloc(E, 8);
	res->origin_node_max = xcalloc(E, 8);
	res->conn_mean = xcalloc(E, sizeof(double));
	res->conn_max = xcalloc(E, sizeof(unsigned));
	res->conn_min = xcalloc(E, sizeof(unsigned));
	for (uint32_t i = 0; i < o->samples; i++)
		owned[j->owner[i]] += j->size[i];
	res->owned_max = 0;
	for (unsigned k = 0; k < nn; k++)
		if (owned[k] > res->owned_max)
			res->owned_max = owned[k];

	/* What each owner keeps: its owned objects in the order of their first
	 * use by any rank in epoch 0 (the order its prefetcher fetches them in),
	 * admitted while they fit in its cache. */
	for (uint64_t p = 0; p < j->total; p++) {
		uint32_t x = j->order[0][p];
		unsigned w = j->owner[x];

		if (BIT_TEST(seen, x))
			continue;
		BIT_SET(seen, x);
		if (used[w] + j->size[x] <= cap) {
			used[w] += j->size[x];
			BIT_SET(held, x);
		}
	}

	for (unsigned k = 0; k < nn; k++) {
		/* --local-copies: a node that holds all it owns keeps, in the room
		 * left, what its ranks fetch from peers (admitted until full). */
		uint64_t spare = o->local_copies && owned[k] <= cap ? cap - owned[k] : 0;
		uint64_t alone_used = 0;

		memset(local, 0, BITWORDS(o->samples) * 8);
		memset(alone, 0, BITWORDS(o->samples) * 8);
		for (unsigned e = 0; e < E; e++) {
			const uint32_t *ord = j->order[e];
			uint64_t *fe = fetched + BITWORDS(o->samples) * e;
			unsigned npeers = 0;

			memset(peers, 0, BITWORDS(nn) * 8);
			for (uint64_t q = 0; q < j->per_rank; q++) {
				for (unsigned r = 0; r < R; r++) {
					uint32_t x = ord[q * j->world + (uint64_t)k * R + r];
					unsigned w = j->owner[x];
					uint32_t s = j->size[x];
					int cold = e == 0; /* nothing cached yet */

					/* the same node alone: its cache of cap, admit until full */
					if (!BIT_TEST(alone, x)) {
						res->origin_np[e] += s;
						if (alone_used + s <= cap) {
							alone_used += s;
							BIT_SET(alone, x);
						}
					}
					/* with peers */
					if (w != k && BIT_TEST(local, x))
						continue;
					if (w != k) {
						served[(size_t)w * E + e] += s;
						if (!BIT_TEST(peers, w)) {
							BIT_SET(peers, w);
							npeers++;
						}
						if (spare >= s) {
							spare -= s;
							BIT_SET(local, x);
						}
					}
					/* the owner has it unless it does not keep it or this
					 * is the cold epoch; then it fetches it once */
					if ((cold || !BIT_TEST(held, x)) && !BIT_TEST(fe, x)) {
						BIT_SET(fe, x);
						res->origin[e] += s;
						ofetch[(size_t)w * E + e] += s;
					}
				}
			}
			res->conn_mean[e] += npeers;
			if (npeers > res->conn_max[e])
				res->conn_max[e] = npeers;
			if (k == 0 || npeers < res->conn_min[e])
				res->conn_min[e] = npeers;
		}
	}
	for (unsigned e = 0; e < E; e++) {
		res->conn_mean[e] /= nn;
		for (unsigned k = 0; k < nn; k++) {
			uint64_t v = served[(size_t)k * E + e], f = ofetch[(size_t)k * E + e];

			res->served_total[e] += v;
			if (v > res->served_max[e])
				res->served_max[e] = v;
			if (f > res->origin_node_max[e])
				res->origin_node_max[e] = f;
		}
	}
	free(used);
	free(owned);
	free(held);
	free(seen);
	free(fetched);
	free(local);
	free(alone);
	free(peers);
	free(served);
	free(ofetch);
}

static void free_result(struct result *r)
{
	free(r->origin);
	free(r->origin_np);
	free(r->served_max);
	free(r->served_total);
	free(r->origin_node_max);
	free(r->conn_mean);
	free(r->conn_max);
	free(r->conn_min);
}

/* ---- output ---- */

static double gb(double b)
{
	return b / 1e9;
}

/* Figures of the warm epochs (1 .. E-1): means of the per-epoch values,
 * the maxima over epochs for the hot spot and the connections. */
struct warm {
	double origin, origin_np, served_mean, served_max, origin_node_max, conn_mean;
	unsigned conn_max, conn_min;
};

static void warm_of(const struct result *r, unsigned E, struct warm *w)
{
	unsigned n = E - 1;

	memset(w, 0, sizeof(*w));
	w->conn_min = ~0u;
	for (unsigned e = 1; e < E; e++) {
		w->origin += (double)r->origin[e] / n;
		w->origin_np += (double)r->origin_np[e] / n;
		w->served_mean += (double)r->served_total[e] / r->nodes / n;
		if (r->served_max[e] > w->served_max)
			w->served_max = (double)r->served_max[e];
		if (r->origin_node_max[e] > w->origin_node_max)
			w->origin_node_max = (double)r->origin_node_max[e];
		w->conn_mean += r->conn_mean[e] / n;
		if (r->conn_max[e] > w->conn_max)
			w->conn_max = r->conn_max[e];
		if (r->conn_min[e] < w->conn_min)
			w->conn_min = r->conn_min[e];
	}
}

static void print_header(const struct opts *o, uint64_t dataset)
{
	if (o->tsv) {
		printf("# nodes\tworld\tfrac\tcap\tdataset\tepoch\torigin\torigin_alone\tserved_max"
		       "\tserved_mean\torigin_node_max\tpeers_mean\tpeers_max\tpeers_min\towned_max\tstep_ratio_mean\tstep_ratio_max\n");
		return;
	}
	printf("dataset: %u samples, %.1f GB (lognormal sizes, mean %.0f B, sigma %.2f, size seed "
	       "%" PRIu64 "); %u ranks per node; DistributedSampler seed %" PRIu64
	       ", epochs 0-%u, figures per warm epoch (1-%u)%s\n",
	       o->samples, gb((double)dataset), (double)dataset / o->samples, o->sigma, o->size_seed,
	       o->ranks_per_node, o->seed, o->epochs - 1, o->epochs - 1,
	       o->local_copies ? "; nodes keep copies of peers' objects in spare room" : "");
	if (o->markdown) {
		printf("\n| nodes | world | cache/node | cluster cache / dataset | origin/epoch GB "
		       "(/dataset) | origin without peers (/dataset) | served/node mean GB | "
		       "hot spot GB (/mean) | step hot spot /mean (worst) | origin at one owner, max GB "
		       "| peers asked/node mean (min-max of N-1) |\n");
		printf("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
	} else {
		printf("%6s %6s %11s %8s %15s %8s %8s %14s %13s %8s %22s\n", "nodes", "world",
		       "cache/node", "cluster", "origin/ep GB", "no-peers", "srv mean", "hot spot GB",
		       "step hot spot", "orig/own", "peers/node (min-max)");
	}
}

static void print_row(const struct opts *o, const struct job *j, const struct result *r,
		      uint64_t dataset)
{
	struct warm w;
	char cache[32], peers[48];

	if (o->tsv) {
		for (unsigned e = 0; e < o->epochs; e++)
			printf("%u\t%u\t%.6f\t%" PRIu64 "\t%" PRIu64 "\t%u\t%" PRIu64 "\t%" PRIu64
			       "\t%" PRIu64 "\t%.0f\t%" PRIu64 "\t%.2f\t%u\t%u\t%" PRIu64 "\t%.4f\t%.4f\n",
			       r->nodes, r->nodes * o->ranks_per_node, r->frac, r->cap, dataset, e,
			       r->origin[e], r->origin_np[e], r->served_max[e],
			       (double)r->served_total[e] / r->nodes, r->origin_node_max[e],
			       r->conn_mean[e], r->conn_max[e], r->conn_min[e], r->owned_max,
			       j->step_ratio_mean, j->step_ratio_max);
		return;
	}
	warm_of(r, o->epochs, &w);
	snprintf(cache, sizeof(cache), "%g%% %.1fG", r->frac * 100, gb((double)r->cap));
	snprintf(peers, sizeof(peers), "%.0f (%u-%u of %u)", w.conn_mean, w.conn_min, w.conn_max,
		 r->nodes - 1);
	if (o->markdown)
		printf("| %u | %u | %s | %.2f | %.1f (%.3f) | %.3f | %.2f | %.2f (%.3f) | %.2f (%.2f) "
		       "| %.2f | %s |\n",
		       r->nodes, r->nodes * o->ranks_per_node, cache,
		       r->frac * r->nodes, gb(w.origin), w.origin / dataset, w.origin_np / dataset,
		       gb(w.served_mean), gb(w.served_max),
		       w.served_mean > 0 ? w.served_max / w.served_mean : 0, j->step_ratio_mean,
		       j->step_ratio_max, gb(w.origin_node_max), peers);
	else
		printf("%6u %6u %11s %8.2f %7.1f (%.3f) %8.3f %8.2f %6.2f (%.3f) %5.2f (%5.2f) %8.2f "
		       "%22s\n",
		       r->nodes, r->nodes * o->ranks_per_node, cache, r->frac * r->nodes,
		       gb(w.origin), w.origin / dataset, w.origin_np / dataset, gb(w.served_mean),
		       gb(w.served_max), w.served_mean > 0 ? w.served_max / w.served_mean : 0,
		       j->step_ratio_mean, j->step_ratio_max, gb(w.origin_node_max), peers);
}

/* ---- the dump modes the test compares against the library ---- */

static void dump_owner(unsigned nn, int argc, char **argv, int first)
{
	uint64_t *h = xmalloc(nn * sizeof(*h));
	char id[64];

	node_hashes(nn, h);
	for (unsigned k = 0; k < nn; k++) {
		node_id(k, id, sizeof(id));
		printf("node %u %s %016" PRIx64 "\n", k, id, h[k]);
	}
	for (int i = first; i < argc; i++) {
		uint64_t oh = owner_object_hash(argv[i], strlen(argv[i]));

		printf("owner %s %016" PRIx64 " %d\n", argv[i], oh, owner_pick(h, NULL, nn, oh));
	}
	free(h);
}

/* What global rank g reads in epoch e, taken from the simulation's own
 * merged array (not from a per-rank call, which the test makes). */
static void dump_order(const struct opts *o, unsigned nn, uint64_t e, uint64_t g, uint64_t count)
{
	unsigned world = nn * o->ranks_per_node;
	uint64_t slots, per_rank;
	uint32_t *ord;

	if (g >= world) {
		fprintf(stderr, "epochfs-peersim: rank %" PRIu64 " >= world %u\n", g, world);
		exit(2);
	}
	ord = epoch_order(o, world, e, &slots, &per_rank);
	printf("order seed=%" PRIu64 " epoch=%" PRIu64 " world=%u rank=%" PRIu64 " n=%u len=%" PRIu64
	       ":",
	       o->seed, e, world, g, o->samples, per_rank);
	for (uint64_t q = 0; q < per_rank && q < count; q++)
		printf(" %u", ord[q * world + g]);
	printf("\n");
	free(ord);
}

/* The --dump-* modes: the values the test compares with the daemon's own
 * functions (1 owners of keys, 2 a rank's order, 3 keys and sizes). */
static void run_dump(const struct opts *o, int mode, int first_key, const uint64_t *d, int argc,
		     char **argv)
{
	char key[64];
	uint32_t *size;

	if (mode == 1) {
		if (!first_key)
			usage(0);
		dump_owner(o->nodes[0], argc, argv, first_key);
		return;
	}
	if (mode == 2) {
		dump_order(o, o->nodes[0], d[0], d[1], d[2]);
		return;
	}
	size = xmalloc(o->samples * sizeof(*size));
	make_sizes(o, size);
	for (uint64_t i = d[0]; i < d[0] + d[1] && i < o->samples; i++) {
		object_key((uint32_t)i, o->samples, key, sizeof(key));
		printf("%s %u\n", key, size[i]);
	}
	free(size);
}

int main(int argc, char **argv)
{
	static unsigned def_nodes[] = { 8, 16, 64, 256, 1024 };
	static double def_fracs[] = { 0.05, 0.10, 0.25, 0.50, 1.00 };
	struct opts o = { .nodes = def_nodes, .nnodes = 5, .fracs = def_fracs, .nfracs = 5,
			  .samples = 1280000, .epochs = 3, .ranks_per_node = 8, .batch = 32, .seed = 0,
			  .size_seed = 1, .mean_size = 112640, .sigma = 0.5 };
	int mode = 0, first_key = 0; /* 1 dump-owner, 2 dump-order, 3 dump-keys */
	uint64_t d[3] = { 0, 0, 0 }, v;
	uint32_t *size;
	uint64_t dataset;
	double t0;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *next = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "-h") || !strcmp(a, "--help"))
			usage(1);
		else if (!strcmp(a, "--nodes") && next)
			o.nnodes = parse_list_u(argv[++i], &o.nodes);
		else if (!strcmp(a, "--cache-frac") && next)
			o.nfracs = parse_list_frac(argv[++i], &o.fracs);
		else if (!strcmp(a, "--samples") && next && !parse_u64(next, &v) && v > 0 &&
			 v <= ORDER_TORCH_MAX_N && ++i)
			o.samples = (uint32_t)v;
		else if (!strcmp(a, "--epochs") && next && !parse_u64(next, &v) && v >= 2 &&
			 v <= 100 && ++i)
			o.epochs = (unsigned)v;
		else if (!strcmp(a, "--seed") && next && !parse_u64(next, &v) && ++i)
			o.seed = v;
		else if (!strcmp(a, "--size-seed") && next && !parse_u64(next, &v) && ++i)
			o.size_seed = v;
		else if (!strcmp(a, "--ranks-per-node") && next && !parse_u64(next, &v) && v > 0 &&
			 v <= 1024 && ++i)
			o.ranks_per_node = (unsigned)v;
		else if (!strcmp(a, "--batch") && next && !parse_u64(next, &v) && v > 0 &&
			 v <= 1000000 && ++i)
			o.batch = (unsigned)v;
		else if (!strcmp(a, "--mean-size") && next && !parse_u64(next, &v) && v > 0 && ++i)
			o.mean_size = (double)v;
		else if (!strcmp(a, "--sigma") && next && ++i)
			o.sigma = strtod(next, NULL);
		else if (!strcmp(a, "--markdown"))
			o.markdown = 1;
		else if (!strcmp(a, "--tsv"))
			o.tsv = 1;
		else if (!strcmp(a, "--local-copies"))
			o.local_copies = 1;
		else if (!strcmp(a, "--dump-owner")) {
			mode = 1;
		} else if ((!strcmp(a, "--dump-order") || !strcmp(a, "--dump-keys")) &&
			   i + 2 + (a[7] == 'o') < argc) {
			int nargs = a[7] == 'o' ? 3 : 2;

			mode = a[7] == 'o' ? 2 : 3;
			for (int k = 0; k < nargs; k++)
				if (parse_u64(argv[++i], &d[k]))
					usage(0);
		} else if (mode == 1 && a[0] != '-') {
			first_key = i;
			break; /* the rest are keys */
		} else
			usage(0);
	}
	if (!(o.sigma >= 0 && o.sigma <= 3))
		usage(0);
	if (mode) {
		run_dump(&o, mode, first_key, d, argc, argv);
		if (o.nodes != def_nodes)
			free(o.nodes);
		if (o.fracs != def_fracs)
			free(o.fracs);
		return 0;
	}
	t0 = now_s();
	size = xmalloc(o.samples * sizeof(*size));
	dataset = make_sizes(&o, size);
	print_header(&o, dataset);

	/* Objects' hashes once for every node count. */
	uint64_t *oh = xmalloc(o.samples * sizeof(*oh));
	char key[64];
	double worst_ratio = 0, zero_from = 0, nonzero_to = 0;
	unsigned worst_nodes = 0, max_peers = 0, max_peers_nodes = 0, rows = 0;

	for (uint32_t i = 0; i < o.samples; i++) {
		int len = object_key(i, o.samples, key, sizeof(key));

		oh[i] = owner_object_hash(key, (size_t)len);
	}
	for (unsigned a = 0; a < o.nnodes; a++) {
		struct job j = { .o = &o, .nn = o.nodes[a], .size = size, .dataset = dataset };
		uint64_t *nh = xmalloc(j.nn * sizeof(*nh));

		j.world = j.nn * o.ranks_per_node;
		node_hashes(j.nn, nh);
		j.owner = xmalloc(o.samples * sizeof(*j.owner));
		for (uint32_t i = 0; i < o.samples; i++)
			j.owner[i] = (uint16_t)owner_pick(nh, NULL, j.nn, oh[i]);
		j.order = xmalloc(o.epochs * sizeof(*j.order));
		for (unsigned e = 0; e < o.epochs; e++)
			j.order[e] = epoch_order(&o, j.world, e, &j.total, &j.per_rank);
		step_imbalance(&j);
		for (unsigned f = 0; f < o.nfracs; f++) {
			struct result r;
			struct warm w;

			simulate(&j, o.fracs[f], &r);
			print_row(&o, &j, &r, dataset);
			fflush(stdout);
			warm_of(&r, o.epochs, &w);
			rows++;
			if (w.served_mean > 0 && w.served_max / w.served_mean > worst_ratio) {
				worst_ratio = w.served_max / w.served_mean;
				worst_nodes = j.nn;
			}
			if (w.conn_max > max_peers || (w.conn_max == max_peers && j.nn > max_peers_nodes)) {
				max_peers = w.conn_max;
				max_peers_nodes = j.nn;
			}
			if (w.origin == 0 && (zero_from == 0 || r.frac * j.nn < zero_from))
				zero_from = r.frac * j.nn;
			if (w.origin > 0 && r.frac * j.nn > nonzero_to)
				nonzero_to = r.frac * j.nn;
			free_result(&r);
		}
		for (unsigned e = 0; e < o.epochs; e++)
			free(j.order[e]);
		free(j.order);
		free(j.owner);
		free(nh);
	}
	if (!o.tsv) {
		char zero[96], hot[64];

		if (zero_from > 0)
			snprintf(zero, sizeof(zero), "0 from a cluster cache of %.2fx the dataset "
				 "(smallest such)", zero_from);
		else
			snprintf(zero, sizeof(zero), "never 0");
		if (worst_nodes)
			snprintf(hot, sizeof(hot), "up to %.3fx the mean (at %u nodes)", worst_ratio,
				 worst_nodes);
		else
			snprintf(hot, sizeof(hot), "none (nothing served)");
		printf("%ssummary: %u configurations in %.1f s; origin per warm epoch is %s, "
		       "non-zero up to %.2fx; hot spot %s; a node asks up to %u peers "
		       "(at %u nodes)\n",
		       o.markdown ? "\n" : "", rows, now_s() - t0, zero, nonzero_to, hot, max_peers,
		       max_peers_nodes);
	}
	free(oh);
	free(size);
	if (o.nodes != def_nodes)
		free(o.nodes);
	if (o.fracs != def_fracs)
		free(o.fracs);
	return 0;
}
