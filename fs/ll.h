/* SPDX-License-Identifier: MIT */
/* The FUSE operations table and the state its handlers share. */
#ifndef EPOCHFS_LL_H
#define EPOCHFS_LL_H

#include <sys/types.h>
#include <time.h>

#include "../cache/cache.h"

struct ll_ctx {
	struct cache *cache;
	uid_t uid;          /* the mounting user owns every file */
	gid_t gid;
	double timeout;     /* entry and attribute cache time */
	time_t start_time;
	int no_open;        /* --no-open: the kernel sends no OPEN/FLUSH/RELEASE */
};

extern const struct fuse_lowlevel_ops ll_ops;

/* A file changed at the source: in no-open mode its READs fail with EIO
 * until the kernel has been given its new attributes (see ll.c). */
void ll_changed(uint64_t ino);

#endif
