/* SPDX-License-Identifier: MIT */
/* The plan saved in the index (planstore.c explains the records). */
#ifndef EPOCHFS_PLANSTORE_H
#define EPOCHFS_PLANSTORE_H

struct cache;

/* Save the manifest (when it changed), the job and the positions, in one
 * transaction.  Lock not held.  0 or -errno (logged). */
int planstore_save(struct cache *c);
/* Save the positions if they moved since the last save (the flusher). */
void planstore_tick(struct cache *c);
/* At open: restore the saved plan of this source onto the current snapshot,
 * or drop it with a logged reason; forget discards it.  0, or -ENOMEM. */
int planstore_restore(struct cache *c, int forget);

#endif
