/* SPDX-License-Identifier: MIT */
/* Command-line and -o mount option parsing for the daemon, kept apart from
 * FUSE so that it can be unit-tested.  Unknown -o options go to FUSE. */
#ifndef EPOCHFS_OPTIONS_H
#define EPOCHFS_OPTIONS_H

#include <stdint.h>
#include <stdio.h>

#include "../backends/backend.h"
#include "../backends/base/log.h"
#include "../cache/cache.h"

struct epochfs_opts {
	const char *source;
	const char *mountpoint;
	char *cache_dir;          /* owned */
	struct cache_config cache;
	struct backend_options be;
	int foreground;
	int no_open;              /* --no-open: the kernel's no-open mode */
	int no_passthrough;       /* --no-passthrough (fs/passthrough.h) */
	int debug;
	int nonempty;             /* -o nonempty: a non-empty mount point is meant */
	int help, version;
	double entry_timeout;
	char *log_file;           /* --log-file (owned), NULL: stderr or syslog */
	enum log_level log_level; /* --log-level, -d: debug (default info) */
	char *fuse_opts;          /* comma-joined -o options for FUSE (owned) */
	char *manifest_owned, *endpoint_owned; /* copies of -o values */
};

/* Parse argv.  Every option is checked here, before anything is touched.
 * 0, or -EINVAL with a one-line reason in err. */
int opts_parse(int argc, char **argv, struct epochfs_opts *o, char *err, size_t errlen);
void opts_free(struct epochfs_opts *o);
void opts_usage(FILE *out, const char *prog);

/* A size as `df -h` and `numfmt` write them: K, M, G, T, P, E (or KiB...)
 * are powers of 1024, KB, MB, GB, TB, PB, EB powers of 1000; "N%" gives
 * *pct instead.  0 or -EINVAL. */
int opts_parse_size(const char *s, uint64_t *bytes, double *pct);

#endif
