/* SPDX-License-Identifier: MIT */
/* The virtual control directory <mount>/.epochfs: its inode numbers, its
 * files, and what opening, reading and writing them does.  The content and
 * its rules live in cache/; this is the FUSE-free glue table. */
#ifndef EPOCHFS_CTL_H
#define EPOCHFS_CTL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../cache/cache.h"

#define CTL_NAME ".epochfs"
#define CTL_DIR_INO 0xffffffffffff0000ull
#define CTL_WRITE_MAX (256ull << 20) /* one write sequence (an order, a manifest) */

struct ctl_file {
	const char *name;
	unsigned mode;  /* 0444 or 0644 */
	/* Produce the content a reader sees (malloc'd). */
	int (*render)(struct cache *c, char **out, size_t *len);
	/* Check and apply a complete write; -EINVAL leaves everything as it was. */
	int (*apply)(struct cache *c, const char *data, size_t len, char *err, size_t errlen);
	int single_line; /* applied at the newline, failing the write() */
	/* Check one complete line as it arrives (multi-line files). */
	int (*check_line)(struct cache *c, const char *line, char *err, size_t errlen);
	/* Check the unfinished last line of a write: could a good line begin so? */
	int (*check_partial)(struct cache *c, const char *line, char *err, size_t errlen);
	int header_ok;   /* the first line may be a '# ...' header (order) */
};

/* The file with this inode, or NULL. */
const struct ctl_file *ctl_by_ino(uint64_t ino);
const struct ctl_file *ctl_by_name(const char *name, uint64_t *ino);
static inline int ctl_is_ino(uint64_t ino)
{
	return ino >= CTL_DIR_INO;
}

/* An open control file: the snapshot read from, or the bytes written. */
struct ctl_handle {
	const struct ctl_file *file;
	char *buf;
	size_t len, cap;
	size_t checked;  /* bytes of buf whose lines were checked */
	size_t lines;    /* lines checked so far, for the reasons */
	int wrote;       /* bytes not yet applied */
	int failed;      /* a rejected write: nothing more is taken */
};

/* trunc (O_TRUNC) changes nothing by itself: only written lines are
 * applied (a blank line is what restores a default). */
int ctl_open(struct cache *c, uint64_t ino, int writing, int trunc, struct ctl_handle **out);
/* Accept written bytes at off (appends only). 0 or -EINVAL/-EFBIG/-ENOMEM. */
int ctl_write(struct cache *c, struct ctl_handle *h, uint64_t off, const char *data, size_t len);
/* Apply what was written (on flush); 0 or -EINVAL (logged).  A flush with
 * nothing written applies nothing: the shell's redirection flushes a copy of
 * the descriptor before it writes. */
int ctl_commit(struct cache *c, struct ctl_handle *h);
void ctl_close(struct ctl_handle *h);

/* The kernel's no-open mode (--no-open): no handles, one implicit state per
 * control file (see ctl.c).  attr renders (at most every 100 ms) and gives the
 * size and a generation that changes with the content; read serves that
 * rendering; write and truncate feed the file's current write stream. */
int ctl_nopen_start(struct cache *c);
void ctl_nopen_stop(void);
int ctl_nopen_attr(struct cache *c, uint64_t ino, pid_t pid, int lookup, uint64_t *size,
		   uint64_t *gen);
size_t ctl_nopen_read(uint64_t ino, uint64_t off, size_t len, char *out);
int ctl_nopen_write(struct cache *c, uint64_t ino, pid_t pid, uint64_t off, const char *data,
		    size_t len);
int ctl_nopen_truncate(struct cache *c, uint64_t ino, pid_t pid);

#endif
