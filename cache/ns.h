/* SPDX-License-Identifier: MIT */
/* The namespace: the snapshot of the source's listing that the mount shows,
 * kept in the index (never in memory), and what a file is: its attributes,
 * its key at the source and the content id of its current version. */
#ifndef EPOCHFS_NS_H
#define EPOCHFS_NS_H

#include <stddef.h>
#include <stdint.h>

#include "index.h"

struct ns {
	struct index *ix;
	struct backend *be;
	struct ns_source src;   /* the snapshot in use */
};

/* List the source into a new snapshot, which becomes current only when
 * whole (a crash mid-listing keeps the old one).  Progress is logged every
 * few seconds.  0 or -errno with a reason in err. */
int ns_build(struct ns *ns, char *err, size_t errlen) __attribute__((warn_unused_result));

/* The attributes, key and content id of a file's current version.
 * -EISDIR, -ENOENT, -ENAMETOOLONG. */
int ns_identity(const struct ns *ns, uint64_t ino, struct ns_attr *a, char *key, size_t keylen,
		uint8_t cid[CID_LEN]);

static inline int ns_getattr(const struct ns *ns, uint64_t ino, struct ns_attr *out)
{
	return index_getattr(ns->ix, ns->src.srcid, ino, out);
}

static inline int ns_readdir(const struct ns *ns, uint64_t ino, index_dir_fn fn, void *arg)
{
	return index_readdir(ns->ix, ns->src.srcid, ino, fn, arg);
}

static inline int ns_path(const struct ns *ns, uint64_t ino, char *buf, size_t len)
{
	return index_path(ns->ix, ns->src.srcid, ino, buf, len);
}

#endif
