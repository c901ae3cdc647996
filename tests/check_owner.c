/* SPDX-License-Identifier: MIT */
/* Unit tests of backends/owner.c: rendezvous hashing spreads objects evenly
 * over nodes, and a node leaving or joining moves only its own share. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/owner.h"

#define NOBJ 20000

static void nodes_of(uint64_t *h, unsigned n)
{
	char id[64];

	for (unsigned i = 0; i < n; i++) {
		int len = snprintf(id, sizeof(id), "10.0.%u.%u:7070", i / 256, i % 256);

		h[i] = owner_node_hash(id, (size_t)len);
	}
}

static uint64_t obj(unsigned k)
{
	char key[64];
	int len = snprintf(key, sizeof(key), "n%08u/img_%06u.JPEG", k % 1000, k);

	return owner_object_hash(key, (size_t)len);
}

START_TEST(test_even)
{
	uint64_t h[16];
	unsigned count[16] = { 0 };

	nodes_of(h, 16);
	for (unsigned k = 0; k < NOBJ; k++)
		count[owner_pick(h, NULL, 16, obj(k))]++;
	/* 1,250 each on average; a binomial's sd is about 34 */
	for (unsigned i = 0; i < 16; i++)
		ck_assert_msg(count[i] > 1050 && count[i] < 1450, "node %u owns %u of %u", i,
			      count[i], NOBJ);
}
END_TEST

START_TEST(test_minimal_moves)
{
	uint64_t h[9];
	uint8_t live[9];
	unsigned moved = 0, owned3 = 0, gained = 0;

	nodes_of(h, 9);
	memset(live, 1, sizeof(live));
	live[8] = 0; /* node 8 not yet in the job */
	for (unsigned k = 0; k < NOBJ; k++) {
		int before = owner_pick(h, live, 9, obj(k)), after, joined;

		owned3 += before == 3;
		live[3] = 0;
		after = owner_pick(h, live, 9, obj(k));
		live[3] = 1;
		/* node 3 leaves: only its objects move */
		ck_assert(before == 3 ? after != 3 : after == before);
		moved += after != before;
		live[8] = 1;
		joined = owner_pick(h, live, 9, obj(k));
		live[8] = 0;
		/* node 8 joins: objects move only to it */
		ck_assert(joined == before || joined == 8);
		gained += joined == 8;
	}
	ck_assert_uint_eq(moved, owned3);
	ck_assert_uint_gt(owned3, 0);
	/* the ninth node takes about a ninth of the objects (sd about 40) */
	ck_assert_msg(gained > NOBJ / 9 - 300 && gained < NOBJ / 9 + 300, "node 8 took %u", gained);
}
END_TEST

START_TEST(test_none_live)
{
	uint64_t h[3];
	uint8_t live[3] = { 0, 0, 0 };

	nodes_of(h, 3);
	ck_assert_int_eq(owner_pick(h, live, 3, obj(1)), -1);
	ck_assert_int_eq(owner_pick(h, NULL, 0, obj(1)), -1);
	live[1] = 1;
	ck_assert_int_eq(owner_pick(h, live, 3, obj(1)), 1);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("owner");
	TCase *tc = tcase_create("rendezvous");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_even);
	tcase_add_test(tc, test_minimal_moves);
	tcase_add_test(tc, test_none_live);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
