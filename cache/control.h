/* SPDX-License-Identifier: MIT */
/* Content and rules of the control files (docs/control.md).  render: the
 * bytes a reader sees (malloc'd).  apply: a complete write, all or nothing;
 * -EINVAL with a reason in err. */
#ifndef EPOCHFS_CONTROL_H
#define EPOCHFS_CONTROL_H

#include <stddef.h>

struct cache;

int ctl_seed_render(struct cache *c, char **out, size_t *len);
int ctl_seed_apply(struct cache *c, const char *data, size_t len, char *err, size_t errlen);
int ctl_manifest_render(struct cache *c, char **out, size_t *len);
int ctl_manifest_apply(struct cache *c, const char *data, size_t len, char *err, size_t errlen);
int ctl_order_render(struct cache *c, char **out, size_t *len);
int ctl_order_apply(struct cache *c, const char *data, size_t len, char *err, size_t errlen);
int ctl_epoch_render(struct cache *c, char **out, size_t *len);
int ctl_epoch_apply(struct cache *c, const char *data, size_t len, char *err, size_t errlen);
int ctl_importance_apply(struct cache *c, const char *data, size_t len, char *err, size_t errlen);
int ctl_evict_apply(struct cache *c, const char *data, size_t len, char *err, size_t errlen);

/* One complete line of a multi-line file, checked as it is written. */
int ctl_check_path_line(struct cache *c, const char *line, char *err, size_t errlen);
int ctl_check_importance_line(struct cache *c, const char *line, char *err, size_t errlen);

#endif
