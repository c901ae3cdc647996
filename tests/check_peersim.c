/* SPDX-License-Identifier: MIT */
/* epochfs-peersim agrees with the daemon's own functions: the owners it
 * prints are owner_pick() over owner_node_hash()/owner_object_hash() of the
 * ids and keys it prints; the orders it simulates (one merged call for every
 * rank of the job) are order_generate()'s per rank, and torch's; an epoch's
 * bytes served per owner recounted here from those agree with its --tsv; and
 * a small run (8 nodes, 10,000 samples) keeps the model's invariants. */
#define _GNU_SOURCE
#include <check.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backends/owner.h"
#include "cache/order.h"

static char tool[PATH_MAX];

/* $TOOLS/epochfs-peersim (tests/run.sh), else next to tests/ in this build. */
static void find_tool(void)
{
	const char *t = getenv("TOOLS");
	char exe[PATH_MAX];
	ssize_t n;

	if (t && *t) {
		snprintf(tool, sizeof(tool), "%s/epochfs-peersim", t);
		return;
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	ck_assert(n > 0);
	exe[n] = 0;
	snprintf(tool, sizeof(tool), "%s/../epochfs-peersim", dirname(exe));
}

/* The tool's stdout for these arguments; it must exit 0. */
static char *run(const char *args)
{
	char *cmd = NULL, *out = NULL;
	size_t len = 0;
	FILE *p, *m = open_memstream(&out, &len);
	char buf[65536];
	size_t got;

	ck_assert(m);
	if (!tool[0])
		find_tool();
	ck_assert_msg(access(tool, X_OK) == 0, "%s is not built", tool);
	ck_assert(asprintf(&cmd, "'%s' %s", tool, args) > 0);
	p = popen(cmd, "r");
	ck_assert(p);
	while ((got = fread(buf, 1, sizeof(buf), p)) > 0)
		fwrite(buf, 1, got, m);
	ck_assert_msg(pclose(p) == 0, "%s failed", cmd);
	fclose(m);
	free(cmd);
	return out;
}

/* ---- ownership ---- */

static void check_owners(unsigned nodes, const char *keys_args)
{
	char *keys = run(keys_args), *args = NULL, *out, *save = NULL, *line;
	size_t klen = strlen(keys);
	uint64_t *h = calloc(nodes, sizeof(*h));
	unsigned seen_nodes = 0, seen_keys = 0, *count = calloc(nodes, sizeof(unsigned)), distinct = 0;

	/* the keys are the first words of --dump-keys' lines */
	for (size_t i = 0; i < klen; i++)
		if (keys[i] == '\n')
			keys[i] = ' ';
	{ /* drop the sizes: "key size key size ..." */
		char *w, *sv = NULL, *only = calloc(1, klen + 1);
		int k = 0;

		for (w = strtok_r(keys, " ", &sv); w; w = strtok_r(NULL, " ", &sv), k++)
			if (k % 2 == 0) {
				strcat(only, w);
				strcat(only, " ");
			}
		ck_assert(asprintf(&args, "--dump-owner --nodes %u %s", nodes, only) > 0);
		free(only);
	}
	out = run(args);
	for (line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char id[128], key[256], want_id[64];
		unsigned k;
		uint64_t hash;
		int idx;

		if (sscanf(line, "node %u %127s %" SCNx64, &k, id, &hash) == 3) {
			ck_assert_uint_eq(k, seen_nodes);
			ck_assert_uint_lt(k, nodes);
			/* the identity the docs give: "10.0.X.Y:7070", X.Y = k+1 */
			snprintf(want_id, sizeof(want_id), "10.0.%u.%u:7070", (k + 1) / 256, (k + 1) % 256);
			ck_assert_str_eq(id, want_id);
			h[k] = owner_node_hash(id, strlen(id));
			ck_assert_msg(h[k] == hash, "node %s: %016" PRIx64 " != %016" PRIx64, id, hash,
				      h[k]);
			seen_nodes++;
		} else if (sscanf(line, "owner %255s %" SCNx64 " %d", key, &hash, &idx) == 3) {
			ck_assert_uint_eq(seen_nodes, nodes);
			ck_assert(owner_object_hash(key, strlen(key)) == hash);
			ck_assert_int_eq(owner_pick(h, NULL, nodes, hash), idx);
			if (!count[idx]++)
				distinct++;
			seen_keys++;
		} else {
			ck_abort_msg("unexpected line: %s", line);
		}
	}
	ck_assert_uint_eq(seen_nodes, nodes);
	ck_assert_uint_ge(seen_keys, 40);
	ck_assert_uint_ge(distinct, nodes < 20 ? nodes / 2 : 20);
	free(h);
	free(count);
	free(keys);
	free(args);
	free(out);
}

START_TEST(test_owner_agrees)
{
	check_owners(3, "--samples 1280000 --dump-keys 0 60");
	check_owners(16, "--samples 1280000 --dump-keys 640000 200");
	check_owners(1024, "--samples 1280000 --dump-keys 1279800 200");
}
END_TEST

START_TEST(test_keys)
{
	char *out = run("--samples 1280000 --dump-keys 1279 2");
	char k1[64], k2[64];
	unsigned s1, s2;

	/* ImageFolder's order over epochfs-gendata's names: 1,280 per class */
	ck_assert_int_eq(sscanf(out, "%63s %u %63s %u", k1, &s1, k2, &s2), 4);
	ck_assert_str_eq(k1, "n00000000/img_001279.JPEG");
	ck_assert_str_eq(k2, "n00000001/img_000000.JPEG");
	ck_assert(s1 > 0 && s2 > 0 && s1 != s2);
	free(out);
}
END_TEST

/* ---- orders ---- */

static void check_order(unsigned nodes, uint32_t n, uint64_t epoch, uint32_t rank,
			const uint32_t *torch, unsigned ntorch)
{
	struct order_spec spec = { .sampler = ORDER_DISTRIBUTED, .seed = 0, .epoch = epoch,
				   .world = nodes * 8, .rank = rank };
	char *args = NULL, *out, *p;
	uint64_t len;
	uint32_t *want;
	unsigned got = 0;

	ck_assert_int_eq(order_len(&spec, n, &len), 0);
	want = malloc(len * sizeof(*want));
	ck_assert_int_eq(order_generate(&spec, n, want, len), 0);
	ck_assert(asprintf(&args, "--nodes %u --samples %u --dump-order %" PRIu64 " %u 100000", nodes,
			   n, epoch, rank) > 0);
	out = run(args);
	p = strchr(out, ':');
	ck_assert(p);
	ck_assert_msg(strstr(out, "world=") && atoi(strstr(out, "world=") + 6) == (int)nodes * 8,
		      "%s", out);
	for (char *tok = strtok(p + 1, " \n"); tok; tok = strtok(NULL, " \n"), got++) {
		ck_assert_uint_lt(got, len);
		ck_assert_msg(strtoul(tok, NULL, 10) == want[got], "rank %u pos %u: %s != %u", rank,
			      got, tok, want[got]);
		if (got < ntorch)
			ck_assert_uint_eq(want[got], torch[got]);
	}
	ck_assert_uint_eq(got, len);
	free(want);
	free(args);
	free(out);
}

START_TEST(test_order_agrees)
{
	/* torch 1.13 DistributedSampler(range(n), num_replicas, rank, shuffle=True,
	 * seed=0) after set_epoch(e) */
	static const uint32_t t1[] = { 7851, 180, 3853, 1434, 1273, 7916 };
	static const uint32_t t2[] = { 5667, 335, 7408, 4703, 5466, 5122 };
	static const uint32_t t3[] = { 439861, 563703, 55053, 351550, 72615, 685595 };

	check_order(8, 10000, 1, 9, t1, 6);
	check_order(8, 10000, 0, 63, t2, 6);
	check_order(1024, 1280000, 2, 8191, t3, 6);
	check_order(64, 10000, 1, 511, NULL, 0); /* padded: world 512 x 20 > n */
	check_order(16, 10000, 2, 77, NULL, 0);
}
END_TEST

/* ---- a small run ---- */

struct row {
	unsigned nodes, world, epoch, peers_max, peers_min;
	double frac, served_mean, peers_mean, step_mean, step_max;
	uint64_t cap, dataset, origin, origin_alone, served_max, origin_node_max, owned_max;
};

static unsigned parse_tsv(char *out, struct row *rows, unsigned max)
{
	unsigned n = 0;
	char *save = NULL;

	for (char *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		struct row *r = &rows[n];

		if (line[0] == '#')
			continue;
		ck_assert_uint_lt(n, max);
		ck_assert_int_eq(sscanf(line,
					"%u %u %lf %" SCNu64 " %" SCNu64 " %u %" SCNu64 " %" SCNu64
					" %" SCNu64 " %lf %" SCNu64 " %lf %u %u %" SCNu64 " %lf %lf",
					&r->nodes, &r->world, &r->frac, &r->cap, &r->dataset, &r->epoch,
					&r->origin, &r->origin_alone, &r->served_max, &r->served_mean,
					&r->origin_node_max, &r->peers_mean, &r->peers_max,
					&r->peers_min, &r->owned_max, &r->step_mean, &r->step_max),
				 17);
		n++;
	}
	return n;
}

#define FRACS "5%,10%,12.5%,14.4%,25%,50%,100%"
#define NFRACS 7

START_TEST(test_small_run)
{
	char *out = run("--tsv --nodes 8 --samples 10000 --epochs 3 --cache-frac " FRACS);
	char *loc = run("--tsv --nodes 8 --samples 10000 --epochs 3 --local-copies --cache-frac "
			FRACS);
	struct row rows[64], lrows[64];
	unsigned n = parse_tsv(out, rows, 64), ln = parse_tsv(loc, lrows, 64);

	ck_assert_uint_eq(n, NFRACS * 3);
	ck_assert_uint_eq(ln, n);
	for (unsigned i = 0; i < n; i++) {
		struct row *r = &rows[i], *l = &lrows[i];

		ck_assert_uint_eq(r->nodes, 8);
		ck_assert_uint_eq(r->world, 64);
		ck_assert_uint_eq(r->epoch, i % 3);
		ck_assert_uint_le(r->origin, r->dataset);
		ck_assert(r->served_max >= r->served_mean && r->served_mean > 0);
		ck_assert_uint_le(r->peers_max, 7);
		ck_assert_uint_ge(r->peers_min, 1);
		ck_assert(r->step_mean >= 1 && r->step_max >= r->step_mean);
		ck_assert_uint_le(r->origin_node_max, r->origin);
		/* the cold epoch fetches every object once */
		if (r->epoch == 0)
			ck_assert_uint_eq(r->origin, r->dataset);
		else if (r->frac >= 1.0 / 8 * 1.15) /* the cluster holds all with 15% slack */
			ck_assert_uint_eq(r->origin, 0);
		if (r->epoch > 0) {
			/* exactly: nothing from the origin iff every owner holds all it owns */
			ck_assert_int_eq(r->origin == 0, r->owned_max <= r->cap);
			/* the cluster's caches cannot hold more than they are */
			if (8 * r->cap < r->dataset)
				ck_assert_uint_ge(r->origin, r->dataset - 8 * r->cap);
			/* a larger cache never fetches more */
			if (i >= 3)
				ck_assert_uint_le(r->origin, rows[i - 3].origin);
		}
		/* copies of peers' objects kept in spare room only save traffic */
		ck_assert_uint_le(l->origin, r->origin);
		ck_assert(l->served_mean <= r->served_mean);
	}
	/* with room for everything, nodes keep what they fetched: less from peers later */
	ck_assert(lrows[n - 1].served_mean < 0.95 * rows[n - 1].served_mean);
	free(out);
	free(loc);
}
END_TEST

/* Epoch 1's bytes served per owner and peers asked per node, recounted from
 * order_generate() per rank, owner_pick() and the keys and sizes printed. */
START_TEST(test_recount)
{
	enum { NODES = 8, N = 10000 };
	char *keys = run("--samples 10000 --dump-keys 0 10000"), *out, *save = NULL, *line;
	uint32_t *size = calloc(N, sizeof(*size));
	uint16_t *owner = calloc(N, sizeof(*owner));
	uint64_t h[NODES], served[NODES] = { 0 }, total = 0, max = 0;
	unsigned i = 0, peers_max = 0, peers_min = ~0u;
	struct row rows[8];

	for (unsigned k = 0; k < NODES; k++) {
		char id[64];
		int len = snprintf(id, sizeof(id), "10.0.%u.%u:7070", (k + 1) / 256, (k + 1) % 256);

		h[k] = owner_node_hash(id, (size_t)len);
	}
	for (line = strtok_r(keys, "\n", &save); line; line = strtok_r(NULL, "\n", &save), i++) {
		char *sp = strchr(line, ' ');

		ck_assert(sp && i < N);
		*sp = 0;
		size[i] = (uint32_t)strtoul(sp + 1, NULL, 10);
		owner[i] = (uint16_t)owner_pick(h, NULL, NODES, owner_object_hash(line, strlen(line)));
	}
	ck_assert_uint_eq(i, N);
	for (unsigned k = 0; k < NODES; k++) {
		unsigned asked[NODES] = { 0 }, npeers = 0;

		for (unsigned r = 0; r < 8; r++) {
			struct order_spec spec = { .sampler = ORDER_DISTRIBUTED, .seed = 0, .epoch = 1,
						   .world = NODES * 8, .rank = k * 8 + r };
			uint64_t len;
			uint32_t *ord;

			ck_assert_int_eq(order_len(&spec, N, &len), 0);
			ord = malloc(len * sizeof(*ord));
			ck_assert_int_eq(order_generate(&spec, N, ord, len), 0);
			for (uint64_t q = 0; q < len; q++) {
				unsigned w = owner[ord[q]];

				if (w == k)
					continue;
				served[w] += size[ord[q]];
				if (!asked[w]++)
					npeers++;
			}
			free(ord);
		}
		if (npeers > peers_max)
			peers_max = npeers;
		if (npeers < peers_min)
			peers_min = npeers;
	}
	for (unsigned k = 0; k < NODES; k++) {
		total += served[k];
		if (served[k] > max)
			max = served[k];
	}
	out = run("--tsv --nodes 8 --samples 10000 --epochs 2 --cache-frac 50%");
	ck_assert_uint_eq(parse_tsv(out, rows, 8), 2);
	ck_assert_uint_eq(rows[1].epoch, 1);
	ck_assert_uint_eq(rows[1].served_max, max);
	ck_assert(rows[1].served_mean * NODES > (double)total - NODES &&
		  rows[1].served_mean * NODES < (double)total + NODES);
	ck_assert_uint_eq(rows[1].peers_max, peers_max);
	ck_assert_uint_eq(rows[1].peers_min, peers_min);
	free(keys);
	free(size);
	free(owner);
	free(out);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("peersim");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_owner_agrees);
	tcase_add_test(tc, test_keys);
	tcase_add_test(tc, test_order_agrees);
	tcase_add_test(tc, test_small_run);
	tcase_add_test(tc, test_recount);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
