/* SPDX-License-Identifier: MIT */
/* Command-line and -o mount option parsing for the daemon, kept apart from
 * FUSE so that it can be unit-tested.  Unknown -o options go to FUSE. */
#ifndef EPOCHFS_OPTIONS_H
#define EPOCHFS_OPTIONS_H

#include <stdint.h>

#include "../backends/backend.h"
#include "../cache/cache.h"

struct epochfs_opts {
	const char *source;
	const char *mountpoint;
	char *cache_dir;          /* owned */
	struct cache_config cache;
	struct backend_options be;
	int foreground;
	int no_open;              /* --no-open: the kernel's no-open mode */
	int debug;
	int help, version;
	double entry_timeout;
	char *fuse_opts;          /* comma-joined -o options for FUSE (owned) */
	char *manifest_owned, *endpoint_owned; /* copies of -o values */
};

/* Parse argv.  0, or -EINVAL with a one-line reason in err. */
int opts_parse(int argc, char **argv, struct epochfs_opts *o, char *err, size_t errlen);
void opts_free(struct epochfs_opts *o);
void opts_usage(FILE *out, const char *prog);

#endif
