/* SPDX-License-Identifier: MIT */
/* The plan: which sample the readers will open at every future position.
 * It holds the manifest (sample index -> inode), the way orders are made (a
 * sampler spec, or explicit per-epoch lists), the orders of the current and
 * the next epoch, and the readers' progress through the current one.
 * Pure bookkeeping on indices: no I/O, no locking (the cache locks it). */
#ifndef EPOCHFS_PLAN_H
#define EPOCHFS_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "order.h"

#define PLAN_NONE UINT32_MAX
#define PLAN_NEVER UINT64_MAX

enum plan_mode { PLAN_OFF = 0, PLAN_SEED, PLAN_EXPLICIT };

struct plan;

int plan_create(struct plan **out);
void plan_destroy(struct plan *p);

/* Replace the manifest (takes ownership of inos, n entries: on success the
 * plan may narrow it to 32 bits and shrink it in place, so the caller must
 * not touch it again; on failure it is the caller's, unchanged).  Turns the
 * plan off: orders index into the manifest. */
int plan_set_manifest(struct plan *p, uint64_t *inos, uint32_t n);
uint32_t plan_manifest_len(const struct plan *p);
/* Changes of the plan, for those who act on it: plan_gen moves at every
 * change (a new manifest, spec, order or epoch; an epoch the readers moved
 * into), plan_manifest_gen when the manifest is replaced. */
uint64_t plan_gen(const struct plan *p);
uint64_t plan_manifest_gen(const struct plan *p);
/* A manifest was set (the default one, possibly empty, included). */
int plan_has_manifest(const struct plan *p);
uint64_t plan_manifest_ino(const struct plan *p, uint32_t i);
/* Sample index of an inode, or PLAN_NONE. */
uint32_t plan_sample_of(const struct plan *p, uint64_t ino);

/* Plan by a sampler spec; the readers are at the start of spec->epoch.
 * -EINVAL when the spec does not fit the manifest (n too large for torch). */
int plan_set_seed(struct plan *p, const struct order_spec *spec);
/* Plan by explicit lists of sample indices, one per epoch from first_epoch
 * on (takes ownership of each list and of the arrays). */
int plan_set_explicit(struct plan *p, uint32_t **lists, uint64_t *lens, size_t nlists,
		      uint64_t first_epoch);
void plan_off(struct plan *p);
enum plan_mode plan_mode(const struct plan *p);
int plan_spec(const struct plan *p, struct order_spec *out);

uint64_t plan_epoch(const struct plan *p);
/* Start epoch e at position 0 (its order is made as the mode allows). */
int plan_set_epoch(struct plan *p, uint64_t e);
/* The current epoch's order (owned by the plan, valid until it changes). */
const uint32_t *plan_order(const struct plan *p, uint64_t *len);
/* First position of the current epoch whose sample has not been opened. */
uint64_t plan_position(const struct plan *p);
uint64_t plan_opened(const struct plan *p);

/* A reader opened sample i.  Returns 1 when this moved the plan to the next
 * epoch, 0 otherwise. */
int plan_on_open(struct plan *p, uint32_t i);

/* Absolute use number of sample i's next use (epoch * stride + position),
 * PLAN_NEVER when it is not planned in the current or next epoch. */
uint64_t plan_next_use(const struct plan *p, uint32_t i);
/* plan_next_use, except that a use in a later epoch is replaced by a stable
 * pseudo-random place in that epoch (for substitution: keep a spread stock). */
uint64_t plan_spread_key(const struct plan *p, uint32_t i);
/* The spread key of sample i's use in the next epoch, as if its uses in the
 * current one were done (a content already served this epoch), PLAN_NEVER. */
uint64_t plan_spread_key_after(const struct plan *p, uint32_t i);
/* Use number u falls in the current epoch. */
int plan_use_current(const struct plan *p, uint64_t u);
/* The sample at absolute use number u (current or next epoch), PLAN_NONE. */
uint32_t plan_sample_at(const struct plan *p, uint64_t u);
/* u, or the first use of the next epoch when u is past the current one. */
uint64_t plan_normalize(const struct plan *p, uint64_t u);
/* Sample i is planned later in the current epoch and not opened yet. */
int plan_pending(const struct plan *p, uint32_t i);
/* Absolute use number of the current position. */
uint64_t plan_now(const struct plan *p);
/* The epoch of use number u; UINT64_MAX for PLAN_NEVER. */
uint64_t plan_use_epoch(uint64_t u);

#endif
