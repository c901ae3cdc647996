/* SPDX-License-Identifier: MIT */
/* The SSD object store: one sparse file per object under <cache>/objects,
 * named by its content id, chunks at their natural offsets.  Only file
 * operations live here; what is present is the index's business. */
#ifndef EPOCHFS_STORE_H
#define EPOCHFS_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "index.h"

#define STORE_FILE_OVERHEAD 4096ull /* inode + directory entry, per object file */
#define STORE_BLOCK 4096ull

struct store;

int store_open(const char *cache_dir, struct store **out) __attribute__((warn_unused_result));
void store_close(struct store *s);
/* Allocated bytes of the store's directories (counted as metadata). */
uint64_t store_dir_bytes(struct store *s);

/* Open the object's file; create it (and its subdirectory) when create. */
int store_obj_open(struct store *s, const uint8_t cid[CID_LEN], int create);
/* The object file of cid, read only (reads that need no write): an fd or
 * -errno. */
int store_obj_open_read(struct store *s, const uint8_t cid[CID_LEN]);
/* Allocated bytes of the object's file, -ENOENT when absent. */
int64_t store_obj_blocks(struct store *s, const uint8_t cid[CID_LEN]);
int store_obj_unlink(struct store *s, const uint8_t cid[CID_LEN]);
/* Write a whole chunk at off: 0, -ENOSPC, -EIO. */
int store_write(int fd, uint64_t off, const void *buf, size_t len);
/* Read exactly len bytes at off: 0 or -EIO (short file). */
int store_read(int fd, uint64_t off, void *buf, size_t len);
/* Give a chunk's blocks back (a failed checksum). */
void store_punch(int fd, uint64_t off, size_t len);
/* How verified chunks are read to be served (store.c explains). */
enum { STORE_READS_DROP = 0, STORE_READS_DIRECT, STORE_READS_KEEP };
/* [off, off + len) of the object's file read with O_DIRECT into a buffer
 * of whole blocks (*buf, free() it; the bytes at *buf + *skip): 0, 1 when
 * the store does not read so (the caller reads through the page cache),
 * or -errno (-EIO: the file is shorter). */
int store_read_direct(struct store *s, const uint8_t cid[CID_LEN], uint64_t off, size_t len,
		      void **buf, size_t *skip);
/* [off, off + len) of fd was served (copied into the mount's page cache):
 * the store's pages of it are dropped, unless the store keeps its pages. */
void store_served(struct store *s, int fd, uint64_t off, size_t len);
/* [off, off + len) of fd was just written: start its writeback (same). */
void store_written(struct store *s, int fd, uint64_t off, size_t len);

/* Call fn for every object file; fn returns non-zero to unlink it. */
typedef int (*store_gc_fn)(void *arg, const uint8_t cid[CID_LEN]);
int store_scan(struct store *s, store_gc_fn fn, void *arg);

uint64_t store_checksum(const void *buf, size_t len);

#endif
