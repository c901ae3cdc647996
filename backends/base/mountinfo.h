/* SPDX-License-Identifier: MIT */
/* The kernel's mount table (/proc/self/mountinfo) for every layer that needs
 * it: the cache dir's lock (is the holder still mounted?), the daemon (is
 * there an epochfs mount here already?) and epochfs-stat (which mounts are
 * epochfs?).  Paths in the table have space, tab, newline and backslash
 * written as octal escapes (\040); these helpers convert both ways. */
#ifndef EPOCHFS_MOUNTINFO_H
#define EPOCHFS_MOUNTINFO_H

#include <stddef.h>

/* One mount, valid only during the callback. */
struct mountinfo_ent {
	const char *dev;         /* "major:minor" */
	const char *mountpoint;  /* unescaped */
	const char *mp_escaped;  /* as the table writes it */
	const char *fstype;      /* e.g. "fuse.epochfs" */
	const char *source;      /* the mount's source field, unescaped */
};

typedef int (*mountinfo_fn)(void *arg, const struct mountinfo_ent *e);

/* Call fn for each mount of the table at path (NULL: /proc/self/mountinfo)
 * in order; a non-zero return of fn stops the walk and is returned.
 * Malformed lines are skipped.  -errno when the table cannot be read,
 * -ENOMEM. */
int mountinfo_each(const char *path, mountinfo_fn fn, void *arg);

/* path as the table writes it; -ENAMETOOLONG when it does not fit. */
int mountinfo_escape(const char *path, char *out, size_t outlen);
/* Undo the table's octal escapes in place. */
void mountinfo_unescape(char *s);

#endif
