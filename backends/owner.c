/* SPDX-License-Identifier: MIT */
/* Rendezvous hashing of objects over the nodes of a job (see owner.h). */
#include <xxhash.h>

#include "owner.h"

uint64_t owner_node_hash(const char *id, size_t len)
{
	return XXH3_64bits_withSeed(id, len, 0x6e6f6465ull); /* "node" */
}

uint64_t owner_object_hash(const char *key, size_t len)
{
	return XXH3_64bits(key, len);
}

int owner_pick(const uint64_t *nodes, const uint8_t *live, unsigned n, uint64_t object)
{
	uint64_t best = 0, w;
	int at = -1;

	for (unsigned i = 0; i < n; i++) {
		if (live && !live[i])
			continue;
		w = owner_weight(nodes[i], object);
		if (at < 0 || w > best || (w == best && nodes[i] < nodes[at])) {
			best = w;
			at = (int)i;
		}
	}
	return at;
}
