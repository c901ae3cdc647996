/* SPDX-License-Identifier: MIT */
/* The namespace: the snapshot of the source's listing that the mount shows,
 * kept in the index, and what a file is: its attributes, its key at the
 * source and the content id of its current version.  What an open needs of
 * a file (content id and size) is also kept in memory, in the identity
 * table (ns.c), filled at the first open of each file. */
#ifndef EPOCHFS_NS_H
#define EPOCHFS_NS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "index.h"

struct ns_idtab;

struct ns {
	struct index *ix;
	struct backend *be;
	struct ns_source src;   /* the snapshot in use */
	/* The identity table of src (NULL: none, every open reads the
	 * index); a table replaced by a relisting is kept until
	 * ns_table_close, for the readers still looking into it. */
	_Atomic(struct ns_idtab *) tab;
	struct ns_idtab *retired;
};

/* What opening a file needs of its current version.  The key at the
 * source, the mtime and the ETag are needed only to fetch (ns_identity). */
struct ns_fid {
	uint8_t cid[CID_LEN];
	uint64_t size;
};

/* List the source into a new snapshot, which becomes current only when
 * whole (a crash mid-listing keeps the old one).  Progress is logged every
 * few seconds.  0 or -errno with a reason in err. */
int ns_build(struct ns *ns, char *err, size_t errlen) __attribute__((warn_unused_result));

/* The attributes, key and content id of a file's current version, from
 * the index (and noted in the identity table).  -EISDIR, -ENOENT,
 * -ENAMETOOLONG. */
int ns_identity(const struct ns *ns, uint64_t ino, struct ns_attr *a, char *key, size_t keylen,
		uint8_t cid[CID_LEN]);

/* Content id and size of a file's current version: from the identity
 * table, else as ns_identity (which fills the table).  Thread-safe, and
 * lock-free and allocation-free on a hit.  Errors as ns_identity. */
int ns_file_id(const struct ns *ns, uint64_t ino, struct ns_fid *out);
/* The same, and when the table could not answer (returns 1, not 0) the
 * index's attributes and key too, as ns_identity (a miss is a file's first
 * open: its first read will fetch and need them). */
int ns_file_id_ex(const struct ns *ns, uint64_t ino, struct ns_fid *out, struct ns_attr *a,
		  char *key, size_t keylen);

/* Record a new identity of a file whose source changed (the index first,
 * then the table's entry is dropped: never the other way round). */
int ns_set_identity(struct ns *ns, uint64_t ino, const struct backend_stat *st);

/* Make the identity table of the snapshot in use (empty: filled by the
 * opens), replacing any table of an earlier snapshot.  ns_build calls it
 * itself once a table exists.  0 or -ENOMEM (the mount then reads the
 * index at every open). */
int ns_table_open(struct ns *ns);
void ns_table_close(struct ns *ns);

/* Counters of the table in use (the tests read them; the stats file does
 * not show them yet): its entries, the lookups
 * it could not answer (they read the index) and the entries filled.  Hits
 * are not counted: a counter shared by every open is what the table is
 * there to avoid. */
struct ns_table_stats {
	uint64_t entries, misses, fills;
};
void ns_table_stats(const struct ns *ns, struct ns_table_stats *out);

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
