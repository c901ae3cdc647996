/* SPDX-License-Identifier: MIT */
/* Which node of a job owns an object: rendezvous (highest-random-weight)
 * hashing.  Each node scores every object with a hash of (node, object) and
 * the highest score owns it; when a node joins or leaves, only the objects
 * it owns (or will own) move.  The daemon's peer client, its prefetcher and
 * tools/peersim all call these, so that they agree by construction. */
#ifndef EPOCHFS_OWNER_H
#define EPOCHFS_OWNER_H

#include <stddef.h>
#include <stdint.h>

/* A node's identity as the others name it ("host:port"), hashed once. */
uint64_t owner_node_hash(const char *id, size_t len);
/* An object's identity: its key (path relative to the source root), which
 * every node's listing of the same source gives alike. */
uint64_t owner_object_hash(const char *key, size_t len);
/* The score of node for object; the highest score owns it. */
static inline uint64_t owner_weight(uint64_t node, uint64_t object)
{
	/* splitmix64's finalizer over the pair: every bit of both moves the
	 * result, so scores of one object across nodes are independent. */
	uint64_t z = node ^ (object * 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}
/* The index into nodes[0..n) of the owner of object, among those whose
 * live[i] is non-zero (live NULL: all); -1 when none is.  Ties (a 2^-64
 * chance) go to the lower node hash, so every caller picks the same. */
int owner_pick(const uint64_t *nodes, const uint8_t *live, unsigned n, uint64_t object);

#endif
