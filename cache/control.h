/* SPDX-License-Identifier: MIT */
/* Content and rules of the control files (docs/control.md).  render: the
 * bytes a reader sees (malloc'd).  apply: a complete write, all or nothing;
 * -EINVAL with a reason in err. */
#ifndef EPOCHFS_CONTROL_H
#define EPOCHFS_CONTROL_H

#include <stddef.h>

struct cache;

int control_seed_render(struct cache *c, char **out, size_t *len);
int control_seed_apply(struct cache *c, const char *data, size_t len, char *err, size_t errlen);
int control_manifest_render(struct cache *c, char **out, size_t *len);
int control_manifest_apply(struct cache *c, const char *data, size_t len, char *err, size_t errlen);
int control_order_render(struct cache *c, char **out, size_t *len);
int control_order_apply(struct cache *c, const char *data, size_t len, char *err, size_t errlen);
int control_epoch_render(struct cache *c, char **out, size_t *len);
int control_epoch_apply(struct cache *c, const char *data, size_t len, char *err, size_t errlen);
int control_importance_apply(struct cache *c, const char *data, size_t len, char *err, size_t errlen);
int control_evict_apply(struct cache *c, const char *data, size_t len, char *err, size_t errlen);

/* One complete line of a multi-line file, checked as it is written. */
int control_check_path_line(struct cache *c, const char *line, char *err, size_t errlen);
int control_check_importance_line(struct cache *c, const char *line, char *err, size_t errlen);
/* The last line of a write that ended mid-line: 0 when a line that begins
 * so could still be good, -EINVAL with the reason when none can. */
int control_check_path_prefix(struct cache *c, const char *partial, char *err, size_t errlen);
int control_check_importance_prefix(struct cache *c, const char *partial, char *err,
				    size_t errlen);
int control_check_seed_prefix(struct cache *c, const char *partial, char *err, size_t errlen);
int control_check_epoch_prefix(struct cache *c, const char *partial, char *err, size_t errlen);

#endif
