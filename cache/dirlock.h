/* SPDX-License-Identifier: MIT */
/* The cache directory's lock file (dirlock.c explains the notes). */
#ifndef EPOCHFS_DIRLOCK_H
#define EPOCHFS_DIRLOCK_H

#include <stddef.h>

/* The mount table the notes are checked against (/proc/self/mountinfo;
 * tests point it at a file of their own).  Declared in cache.h too. */
extern const char *cache_mountinfo;

/* Take dir's lock into *fd, waiting up to a minute for a holder that has
 * left its mount; -EBUSY (with the holder in err) for one that has not, or
 * -errno.  On failure *fd is -1. */
int dirlock_take(const char *dir, int *fd, char *err, size_t errlen)
	__attribute__((warn_unused_result));
/* Note the holder's state ("starting", "closing") in the lock file. */
void dirlock_note(int fd, const char *dir, const char *state);
/* Note "mounted DEV MOUNTPOINT" once the mount is up (mountpoint absolute). */
void dirlock_note_mounted(int fd, const char *dir, const char *mountpoint);

#endif
