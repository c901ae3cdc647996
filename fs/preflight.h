/* SPDX-License-Identifier: MIT */
/* The daemon's checks of its local paths and sizes, done before the source
 * is touched so that a mistake costs no listing: the mount point (already an
 * epochfs mount? not empty?), the cache directory (inside the mount point?
 * created, with which parents?), and the cache size against what the cache
 * filesystem can hold.  Kept out of main.c so the unit tests reach them. */
#ifndef EPOCHFS_PREFLIGHT_H
#define EPOCHFS_PREFLIGHT_H

#include <stddef.h>
#include <stdint.h>

/* path made absolute and canonical although its last components may not
 * exist yet (realpath of the longest existing prefix, the rest appended).
 * 0, -ENAMETOOLONG, -EINVAL (a missing part holds "." or ".."), -errno. */
int pf_abspath(const char *path, char *out, size_t outlen);

/* 1 when path is root or below it (both canonical), else 0. */
int pf_is_under(const char *path, const char *root);

/* mkdir -p with mode 0755 for parents, 0700 for the last.  *created gets
 * the first directory that had to be made ("" when none was), so that the
 * caller can say what appeared.  0 or -errno. */
int pf_mkdirs(const char *path, char *created, size_t createdlen);

/* 1 when the directory holds any entry, 0 when empty, -errno. */
int pf_dir_nonempty(const char *dir);

/* -EBUSY when the mount table at mountinfo (NULL: this process's) has a
 * fuse.epochfs mount at the canonical path mnt; 0 when not; -errno. */
int pf_epochfs_mounted(const char *mountinfo, const char *mnt);

/* What the cache filesystem has. */
struct pf_space {
	uint64_t fs_size;     /* its size */
	uint64_t fs_avail;    /* free for us (statvfs f_bavail) */
	uint64_t cache_used;  /* held by the cache directory already */
};

/* Measure dir's filesystem and, with count_used, what is under dir (its
 * disk blocks, not the files' sizes: a walk of every file, so only when it
 * matters); a dir not there yet holds nothing and is measured on its
 * nearest existing parent.  0 or -errno. */
int pf_space_get(const char *dir, int count_used, struct pf_space *sp);

/* The cache bound: bytes when given, else pct of what the cache can have
 * (free space plus what it already holds, so a remount does not shrink it).
 * -ENOSPC with the numbers in err when bytes is more than that. */
int pf_capacity(const struct pf_space *sp, uint64_t bytes, double pct, uint64_t *out,
		char *err, size_t errlen);

#endif
