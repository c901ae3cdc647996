/* SPDX-License-Identifier: MIT */
/* The policy seam: which cached object to give up, and whether an incoming
 * one deserves the room.  The policy holds only objects that are cached and
 * not in use (pinned objects are removed while pinned), so any victim it
 * names can be evicted at once.  It knows nothing of files or LMDB. */
#ifndef EPOCHFS_POLICY_H
#define EPOCHFS_POLICY_H

#include <stddef.h>
#include <stdint.h>

enum policy_kind {
	POLICY_SHADE = 0, /* (importance, frequency): never evicts for equals */
	POLICY_LRU,       /* least recently used, for comparison */
	POLICY_BELADY,    /* furthest next use first (an order is known) */
};

/* Embedded in each object the cache tracks: 32 bytes, since a cache of
 * millions of objects keeps one per object in memory. */
struct pol_entry {
	uint64_t last;       /* last access, any monotonic stamp */
	uint64_t next_use;   /* Belady: absolute use number, UINT64_MAX never */
	float importance;
	uint32_t freq;       /* access count */
	uint32_t idx;        /* heap slot + 1, 0 = not in the policy */
	uint8_t foreign;     /* another node of the job owns it (peers): it
			      * goes before every object this node owns */
};

struct policy;

int policy_create(enum policy_kind kind, struct policy **out);
void policy_destroy(struct policy *p);
enum policy_kind policy_kind(const struct policy *p);
const char *policy_name(enum policy_kind kind);
int policy_parse(const char *s, enum policy_kind *out);

/* e joins the policy (it is cached and unpinned). -ENOMEM. */
int policy_insert(struct policy *p, struct pol_entry *e);
/* e leaves the policy (pinned, evicted, or dropped); harmless if absent. */
void policy_remove(struct policy *p, struct pol_entry *e);
/* e's fields changed while in the policy. */
void policy_update(struct policy *p, struct pol_entry *e);
size_t policy_count(const struct policy *p);
/* Switch the rule (keys may have changed too): every entry is re-sorted.
 * -ENOMEM leaves the policy as it was. */
int policy_rekey(struct policy *p, enum policy_kind kind);

/* The cached entry to evict so that `incoming` can be admitted, or NULL
 * when nothing in the policy is worth less than incoming (then incoming is
 * not admitted).  Under every rule, objects another node owns (foreign) go
 * first and never displace one this node owns; an owned incoming displaces
 * any foreign one.  incoming may be NULL: "the worst entry, unconditionally"
 * (used to shrink the cache). */
struct pol_entry *policy_victim(struct policy *p, const struct pol_entry *incoming);

/* The SHADE comparison, exposed for tests: non-zero when a outranks b by
 * enough to justify evicting b for a. */
int policy_outranks(const struct pol_entry *a, const struct pol_entry *b);

#endif
