/* SPDX-License-Identifier: MIT */
/* The LMDB index: the namespace snapshot of each source and one record per
 * cached (or tracked) object.  Foreign codes are converted here: every
 * function returns 0 or a negative errno (MDB_NOTFOUND is -ENOENT). */
#ifndef EPOCHFS_INDEX_H
#define EPOCHFS_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "../backends/backend.h"

#define INDEX_ROOT_INO 1ull
#define CID_LEN 16

struct index;

/* One namespace entry (a file or a directory) as the snapshot holds it. */
struct ns_attr {
	uint64_t ino;
	uint64_t parent;
	uint64_t size;
	int64_t mtime_ns;
	int is_dir;
	char etag[BACKEND_ETAG_MAX];
};

/* What is known of a source's snapshot. */
struct ns_source {
	uint32_t srcid;
	int64_t listed_ns;    /* wall clock of the listing */
	uint64_t files, dirs;
	uint64_t next_ino;
};

/* The persistent part of an object: its identity, which chunks are stored
 * and their checksums, and what the policies use.  Allocated with
 * index_obj_alloc; sums[] and present bits follow the header. */
struct obj_rec {
	uint8_t cid[CID_LEN];
	uint64_t size;
	uint32_t chunk_size;
	uint32_t nchunks;
	uint64_t access_count;
	int64_t last_access_ns;
	double importance;
	uint64_t next_use;
	uint32_t flags;
	uint8_t *present;     /* nchunks bits */
	uint64_t *sums;       /* xxh3-64 of each present chunk */
};

int index_open(const char *dir, uint64_t mapsize, struct index **out)
	__attribute__((warn_unused_result));
void index_close(struct index *ix);
/* Bytes the index occupies on disk (allocated blocks of its files). */
uint64_t index_disk_bytes(struct index *ix);
/* Flush to disk (the environment runs without per-commit sync). */
void index_sync(struct index *ix);
/* Unmap the index pages this process has touched (they stay in the page
 * cache); index reads also do it now and then by themselves. */
void index_trim(struct index *ix);
/* Trims do nothing while the used part of the map is under this size
 * (default 16 MiB; tests set 0 to trim at any size). */
void index_set_trim_floor(struct index *ix, uint64_t bytes);

/* ---- namespace ---- */
int index_source_get(struct index *ix, const char *url, struct ns_source *out);

struct ns_builder;
/* Start a new snapshot of url; it replaces the old one only on commit. */
int index_ns_begin(struct index *ix, const char *url, struct ns_builder **out);
/* Add one regular file (its parent directories are created as needed).
 * -EEXIST when key collides with an existing file or directory. */
int index_ns_add(struct ns_builder *b, const char *key, const struct backend_stat *st);
int index_ns_commit(struct ns_builder *b, struct ns_source *out);
void index_ns_abort(struct ns_builder *b);

int index_lookup(struct index *ix, uint32_t srcid, uint64_t parent,
		 const char *name, struct ns_attr *out);
int index_getattr(struct index *ix, uint32_t srcid, uint64_t ino, struct ns_attr *out);
/* The key (relative path) of ino into buf. -ENAMETOOLONG if it does not fit. */
int index_path(struct index *ix, uint32_t srcid, uint64_t ino, char *buf, size_t len);
/* Resolve a relative path to an attr. */
int index_resolve(struct index *ix, uint32_t srcid, const char *path, struct ns_attr *out);
/* Entries of a directory in name order; fn returns non-zero to stop. */
typedef int (*index_dir_fn)(void *arg, const char *name, const struct ns_attr *a);
int index_readdir(struct index *ix, uint32_t srcid, uint64_t dir, index_dir_fn fn, void *arg);
/* Record a new identity for a file whose source changed. */
int index_set_identity(struct index *ix, uint32_t srcid, uint64_t ino, const struct backend_stat *st);

/* ---- objects ---- */
struct obj_rec *index_obj_alloc(uint32_t nchunks);
void index_obj_free(struct obj_rec *r);
int index_obj_get(struct index *ix, const uint8_t cid[CID_LEN], struct obj_rec **out);
int index_obj_put(struct index *ix, const struct obj_rec *r);
int index_obj_del(struct index *ix, const uint8_t cid[CID_LEN]);
/* Write many records in one transaction. */
int index_obj_put_many(struct index *ix, struct obj_rec *const *r, size_t n);
/* Every object record; fn takes ownership of nothing and returns non-zero to stop. */
typedef int (*index_obj_fn)(void *arg, const struct obj_rec *r);
int index_obj_foreach(struct index *ix, index_obj_fn fn, void *arg);

/* ---- named blobs (the saved plan) ---- */
struct index_blob {
	const char *key;
	const void *val;   /* NULL: delete the key */
	size_t len;
};
/* Write (or delete) every blob in one transaction.  0 or -errno. */
int index_blob_put(struct index *ix, const struct index_blob *b, size_t n);
/* A copy of a blob (malloc'd, the caller frees).  -ENOENT, -ENOMEM. */
int index_blob_get(struct index *ix, const char *key, void **val, size_t *len);

static inline int obj_chunk_present(const struct obj_rec *r, uint32_t c)
{
	return (r->present[c >> 3] >> (c & 7)) & 1;
}

#endif
