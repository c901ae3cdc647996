/* SPDX-License-Identifier: MIT */
/* The exit codes of every epochfs program (the daemon and each tool), one
 * table, documented in each man page under EXIT STATUS. */
#ifndef EPOCHFS_EXITCODE_H
#define EPOCHFS_EXITCODE_H

enum {
	EXIT_OK_ = 0,       /* success */
	EXIT_FAILED = 1,    /* the operation failed while running (a mount or
			     * session that failed, files that could not be
			     * read, an evict that was refused) */
	EXIT_USAGE = 2,     /* bad command line: unknown option, bad value,
			     * missing or extra arguments */
	EXIT_SOURCE = 3,    /* the source cannot be used: not found, refused,
			     * unreachable after the retries, listing failed */
	EXIT_LOCAL = 4,     /* a local path cannot be used: the mount point
			     * (missing, already an epochfs mount), the cache
			     * directory (in use, inside the mount, too small
			     * for the size asked) */
	EXIT_NOTMOUNT = 5,  /* a path given to a tool is not an epochfs mount */
	EXIT_INTR = 130,    /* interrupted (SIGINT) */
};

#endif
