/* SPDX-License-Identifier: MIT */
/* FUSE passthrough (issue 14): an open of a file the cache holds whole and
 * has checked hands the kernel the store file, and the kernel reads it
 * itself; the daemon still answers every OPEN and RELEASE (statistics, the
 * plan, substitution).  Reads of such an open do not reach the daemon, but
 * a READ may still come on its handle (the kernel's readahead of the FUSE
 * file after a posix_fadvise on it, for one) and is served as any other:
 * the handle keeps its cache file open.
 *
 * The kernel has the interface since 6.9 (CONFIG_FUSE_PASSTHROUGH); libfuse
 * has a wrapper for it only from 3.17.  With an older libfuse (Debian 12's
 * is 3.14) it is reached through libfuse's custom I/O hooks (3.14 has
 * them): the INIT reply is given the passthrough flag, and an OPEN reply
 * the backing file's id, on their way to /dev/fuse.  docs/decisions.md says
 * why, and what the kernel requires. */
#ifndef EPOCHFS_PASSTHROUGH_H
#define EPOCHFS_PASSTHROUGH_H

#include <stdint.h>
#ifndef FUSE_USE_VERSION
#define FUSE_USE_VERSION 312
#endif
#include <fuse_lowlevel.h>

/* Route se's device I/O through the hooks (after fuse_session_mount).
 * want: 0 for --no-passthrough or --no-open (no hooks are installed, and
 * pt_open answers PT_NONE).  0 or -errno (the session is left as it was). */
int pt_install(struct fuse_session *se, int want);
/* Whether the kernel accepted passthrough at INIT, and nothing has turned
 * it off since (a refused backing file: logged once). */
int pt_enabled(void);

/* How an open of a dataset file is served: through the daemon with the
 * mount's page cache (PT_CACHED), by the kernel from the store file
 * (PT_PASSTHROUGH), or untracked (PT_NONE: passthrough is not in use, or a
 * direct-I/O open while no passthrough open of the inode is live; the
 * kernel lets direct I/O coexist with cached opens, but no other open with
 * a passthrough one). */
enum { PT_NONE, PT_CACHED, PT_PASSTHROUGH };

/* Decide the mode of an open of inode ino served by f.  Opens of one inode
 * may pass through only to one file (f's version), and only where the
 * cache lets the kernel read it (cache_file_passable).  The kernel refuses
 * (EIO to the opener) a passthrough open while a cached open of the inode
 * is live, and any other open while a passthrough one is, so the modes of
 * live opens are counted per inode.  direct: the open would be served with
 * direct I/O (another file's bytes, substitution): PT_NONE, or, beside live
 * passthrough opens, the inode's own bytes through theirs.  Returns the
 * mode, or -ENOMEM (the open must fail: an uncounted open could mix
 * modes); with PT_PASSTHROUGH *backing is the id for pt_reply_open.  Each
 * call that returns a mode is matched by one pt_close. */
struct cache_file;
int pt_open(uint64_t ino, struct cache_file *f, int direct, int *backing);
void pt_close(uint64_t ino, int mode);
/* fuse_reply_open with the backing id put into the reply (0 or the reply's
 * -errno). */
int pt_reply_open(fuse_req_t req, const struct fuse_file_info *fi, int backing);

#endif
