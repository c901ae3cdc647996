/* SPDX-License-Identifier: MIT */
/* Helpers shared by the control files' two halves (control.c: manifest,
 * epoch, importance, evict; control_plan.c: seed and order).  Nothing else
 * includes this. */
#ifndef EPOCHFS_CONTROL_INT_H
#define EPOCHFS_CONTROL_INT_H

#include <stddef.h>
#include <stdint.h>

struct cache;

/* Paths of a list of inodes, one per line; takes and frees inos (NULL:
 * -ENOMEM).  Lock not held. */
int control_render_inos(struct cache *c, uint64_t *inos, size_t n, char **out, size_t *len);
/* Split data into lines (in place in a copy, *copy, which the caller
 * frees with the array); blank lines kept as "".  NULL on ENOMEM. */
char **control_split_lines(const char *data, size_t len, size_t *nlines, char **copy);
/* A path of the mount (relative, or absolute under the mount point) that
 * must be a regular file.  0 or -EINVAL with the reason in err. */
int control_resolve_file(struct cache *c, const char *path, uint64_t *ino, char *err,
			 size_t errlen);
/* Prefix err with "line N: ". */
void control_at_line(size_t lineno, char *err, size_t errlen);
/* The default manifest (ImageFolder's order) if none is set yet. */
int control_ensure_manifest(struct cache *c);
/* One non-empty line (a trailing newline allowed) into buf; -EINVAL. */
int control_one_line(const char *data, size_t len, char *buf, size_t buflen, char *err,
		     size_t errlen);
/* Save the plan to the index after a change (lock not held); logged on
 * failure, which does not undo the change. */
void control_plan_saved(struct cache *c);

#endif
