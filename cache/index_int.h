/* SPDX-License-Identifier: MIT */
/* Internals of the LMDB index shared by its files (index.c: the
 * environment; index_ns.c: the namespace; index_obj.c: object records).
 * Nothing outside them includes this. */
#ifndef EPOCHFS_INDEX_INT_H
#define EPOCHFS_INDEX_INT_H

#include <errno.h>
#include <lmdb.h>
#include <stdatomic.h>

#include "index.h"

struct index {
	MDB_env *env;
	MDB_dbi meta, dirent, inode, object;
	char *dir;
	atomic_uint reads;  /* record reads, for trimming the map */
	uint64_t trim_floor; /* used maps smaller than this are not trimmed by reads */
	void *map;          /* LMDB's map of the data file, once found */
	size_t map_len;
};

struct inode_val {
	uint8_t is_dir;
	uint8_t etag_len;
	uint16_t name_len;
	uint32_t pad;
	uint64_t size;
	int64_t mtime_ns;
	uint64_t parent;
	/* etag, then name, not NUL-terminated */
};

struct obj_val {
	uint32_t version;
	uint32_t chunk_size;
	uint32_t nchunks;
	uint32_t flags;
	uint64_t size;
	uint64_t access_count;
	int64_t last_access_ns;
	double importance;
	uint64_t next_use;
};

#define OBJ_VERSION 1
#define NS_BATCH 20000
/* Record reads between two trims of the map (below). */
#define TRIM_EVERY 64
/* ... when the used part of the map is larger than this (index.c). */
#define TRIM_FLOOR (16ull << 20)

static inline int mdb_err(int rc)
{
	switch (rc) {
	case MDB_SUCCESS:
		return 0;
	case MDB_NOTFOUND:
		return -ENOENT;
	case MDB_KEYEXIST:
		return -EEXIST;
	case MDB_MAP_FULL:
	case MDB_TXN_FULL:
		return -ENOSPC;
	case MDB_READERS_FULL:
		return -EAGAIN;
	case MDB_CORRUPTED:
	case MDB_PAGE_NOTFOUND:
	case MDB_INVALID:
	case MDB_VERSION_MISMATCH:
		return -EUCLEAN;
	default:
		return rc > 0 ? -rc : -EIO;
	}
}

static inline void put_be32(uint8_t *p, uint32_t v)
{
	for (int i = 3; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static inline void put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

/* Count n record reads; the map is trimmed every TRIM_EVERY. */
void index_touched(struct index *ix, unsigned n);
/* A read-only transaction (counted as a read). */
int index_ro_begin(struct index *ix, MDB_txn **txn);

#endif
