/* SPDX-License-Identifier: MIT */
/* Object files on the SSD: objects/<1 hex>/<32 hex>, sparse, one per object.
 * The 16 subdirectories are made up front so that their blocks are counted
 * from the start rather than appearing between two measurements.
 *
 * On ext2/3/4, objects/ is marked a "top" directory (chattr +T) before they
 * are made, so that the inode allocator places them (and so the object
 * files, which go to their directory's group) in block groups of their own
 * rather than in the parent's: on an ext4 without a journal, creating a
 * file in a group where thousands of files were deleted in the last minutes
 * scans all of them (find_inode_bit, recently_deleted), and the parent is
 * often /tmp or /var, where others create and delete. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/fs.h>
#include <linux/magic.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>
#include <xxhash.h>

#include "store.h"
#include "backends/base/log.h"
#include "backends/base/util.h"

struct store {
	int dirfd;                    /* <cache>/objects */
	atomic_int mode;              /* STORE_READS_* */
};

static void cid_path(const uint8_t cid[CID_LEN], char *buf)
{
	static const char hex[] = "0123456789abcdef";
	char *p = buf;

	*p++ = hex[cid[0] >> 4];
	*p++ = '/';
	for (int i = 0; i < CID_LEN; i++) {
		*p++ = hex[cid[i] >> 4];
		*p++ = hex[cid[i] & 15];
	}
	*p = 0;
}

/* Best effort: where the flag is not supported nothing changes. */
static void mark_topdir(int dirfd)
{
	int flags;

	if (ioctl(dirfd, FS_IOC_GETFLAGS, &flags) == 0 && !(flags & FS_TOPDIR_FL)) {
		flags |= FS_TOPDIR_FL;
		(void)ioctl(dirfd, FS_IOC_SETFLAGS, &flags);
	}
}

/* How verified chunks are read to be served (issue 14; docs/decisions.md).
 * A page the daemon serves is copied into the mount's page cache; read
 * through the store file's page cache as well, every cached page would be
 * held twice, and under a memory limit smaller than the dataset half of
 * what fits would be duplicates (and reclaim would work twice as hard).
 *   drop    spliced from the store file (its readahead included), then
 *           the served range dropped (POSIX_FADV_DONTNEED): the default
 *   direct  read with O_DIRECT into an aligned buffer, only the range a
 *           READ asks for: the store's pages never enter the page cache,
 *           but each READ is a synchronous read of the device without
 *           readahead (measured slower from disk, docs/benchmarks.md)
 *   keep    spliced, pages kept (before issue 14)
 * On tmpfs or ramfs the page cache is the store itself: nothing can be
 * dropped (and asking costs a drain of every CPU's LRU batches) and a
 * direct read is a copy from those same pages, so such a store keeps its
 * pages, and the log says so.  A filesystem that refuses O_DIRECT
 * (EINVAL at open) turns direct into drop, logged once.  In direct and
 * drop, a chunk just written has its writeback started (its readers were
 * served from the fetch's buffer), so that reclaim meets clean pages.
 * EPOCHFS_STORE_READS=drop|direct|keep chooses (for comparisons). */
static void store_mode_init(struct store *s)
{
	const char *env = getenv("EPOCHFS_STORE_READS");
	struct statfs sf;

	s->mode = STORE_READS_DROP;
	if (env && !strcmp(env, "direct"))
		s->mode = STORE_READS_DIRECT;
	else if (env && !strcmp(env, "keep"))
		s->mode = STORE_READS_KEEP;
	if (fstatfs(s->dirfd, &sf) == 0 && (sf.f_type == TMPFS_MAGIC || sf.f_type == RAMFS_MAGIC) &&
	    s->mode != STORE_READS_KEEP) {
		s->mode = STORE_READS_KEEP;
		log_info("store: the cache is on %s, whose pages are the cache itself: served "
			 "chunks are read through the page cache (no O_DIRECT, nothing dropped)",
			 sf.f_type == TMPFS_MAGIC ? "tmpfs" : "ramfs");
	}
	log_info("store: chunks are served by %s", s->mode == STORE_READS_DIRECT ? "O_DIRECT reads" :
		 s->mode == STORE_READS_DROP ? "splice, their pages then dropped" :
		 "splice through the page cache");
}

static int store_reads(const struct store *s)
{
	return atomic_load_explicit(&s->mode, memory_order_relaxed);
}

/* The whole pages around [off, off + len): fadvise leaves out partial
 * ones, and the last page of a file is partial. */
static void page_range(uint64_t off, size_t len, off_t *start, off_t *plen)
{
	uint64_t a = off & ~(STORE_BLOCK - 1), b = (off + len + STORE_BLOCK - 1) & ~(STORE_BLOCK - 1);

	*start = (off_t)a;
	*plen = (off_t)(b - a);
}

void store_served(struct store *s, int fd, uint64_t off, size_t len)
{
	off_t a, n;

	if (store_reads(s) == STORE_READS_KEEP || fd < 0 || !len)
		return;
	page_range(off, len, &a, &n);
	(void)posix_fadvise(fd, a, n, POSIX_FADV_DONTNEED);
}

void store_written(struct store *s, int fd, uint64_t off, size_t len)
{
	off_t a, n;

	if (store_reads(s) == STORE_READS_KEEP || fd < 0 || !len)
		return;
	page_range(off, len, &a, &n);
	/* Under a memory limit, dirty pages that reclaim meets are waited
	 * for; clean ones are dropped at no cost. */
	(void)sync_file_range(fd, a, n, SYNC_FILE_RANGE_WRITE);
}

int store_read_direct(struct store *s, const uint8_t cid[CID_LEN], uint64_t off, size_t len,
		      void **buf, size_t *skip)
{
	static atomic_int refused_logged;
	uint64_t a = off & ~(STORE_BLOCK - 1);
	size_t n = (size_t)(((off + len + STORE_BLOCK - 1) & ~(STORE_BLOCK - 1)) - a), got = 0;
	char path[64];
	void *b;
	int fd, rc = 0;

	*buf = NULL;
	if (store_reads(s) != STORE_READS_DIRECT)
		return 1;
	cid_path(cid, path);
	fd = openat(s->dirfd, path, O_RDONLY | O_DIRECT | O_CLOEXEC);
	if (fd < 0) {
		if (errno == EINVAL) {
			atomic_store(&s->mode, STORE_READS_DROP);
			log_once(refused_logged, LOG_LVL_INFO, "store: O_DIRECT refused by the cache's "
				 "filesystem: served chunks are spliced and then dropped (fallback)");
		}
		return 1; /* the caller's descriptor still reads it */
	}
	if (posix_memalign(&b, STORE_BLOCK, n)) {
		close(fd);
		return -ENOMEM;
	}
	/* Whole blocks; the file may end inside the last one. */
	while (got < (size_t)(off + len - a)) {
		ssize_t r = pread(fd, (char *)b + got, n - got, (off_t)(a + got));

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EINVAL && !got) {
			rc = 1; /* an alignment this device will not take */
			break;
		}
		if (r <= 0) {
			rc = r < 0 ? -errno : -EIO;
			break;
		}
		got += (size_t)r;
	}
	close(fd);
	if (rc) {
		free(b);
		return rc;
	}
	*buf = b;
	*skip = (size_t)(off - a);
	return 0;
}

int store_open(const char *cache_dir, struct store **out)
{
	char path[PATH_MAX];
	struct store *s;

	if ((size_t)snprintf(path, sizeof(path), "%s/objects", cache_dir) >= sizeof(path))
		return -ENAMETOOLONG;
	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return -errno;
	s = ec_calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->dirfd < 0) {
		int rc = -errno;

		free(s);
		return rc;
	}
	mark_topdir(s->dirfd);
	store_mode_init(s);
	for (int i = 0; i < 16; i++) {
		char sub[2] = { "0123456789abcdef"[i], 0 };

		if (mkdirat(s->dirfd, sub, 0700) < 0 && errno != EEXIST) {
			int rc = -errno;

			store_close(s);
			return rc;
		}
	}
	*out = s;
	return 0;
}

void store_close(struct store *s)
{
	if (!s)
		return;
	close(s->dirfd);
	free(s);
}

uint64_t store_dir_bytes(struct store *s)
{
	uint64_t total = 0;
	struct dirent *de;
	struct stat st;
	int fd = dup(s->dirfd);
	DIR *d;

	if (fd < 0)
		return 0;
	if (fstat(fd, &st) == 0)
		total += (uint64_t)st.st_blocks * 512;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return total;
	}
	rewinddir(d);
	while ((de = readdir(d)))
		if (de->d_name[0] != '.' && fstatat(s->dirfd, de->d_name, &st, 0) == 0 &&
		    S_ISDIR(st.st_mode))
			total += (uint64_t)st.st_blocks * 512;
	closedir(d);
	return total;
}

int store_obj_open(struct store *s, const uint8_t cid[CID_LEN], int create)
{
	char path[64];
	int fd;

	cid_path(cid, path);
	fd = openat(s->dirfd, path, O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0), 0600);
	return fd < 0 ? -errno : fd;
}

int store_obj_open_read(struct store *s, const uint8_t cid[CID_LEN])
{
	char path[64];
	int fd;

	cid_path(cid, path);
	fd = openat(s->dirfd, path, O_RDONLY | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

int64_t store_obj_blocks(struct store *s, const uint8_t cid[CID_LEN])
{
	char path[64];
	struct stat st;

	cid_path(cid, path);
	if (fstatat(s->dirfd, path, &st, 0) < 0)
		return -errno;
	return (int64_t)st.st_blocks * 512;
}

int store_obj_unlink(struct store *s, const uint8_t cid[CID_LEN])
{
	char path[64];

	cid_path(cid, path);
	if (unlinkat(s->dirfd, path, 0) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

int store_write(int fd, uint64_t off, const void *buf, size_t len)
{
	size_t done = 0;
	ssize_t n;

	while (done < len) {
		n = pwrite(fd, (const char *)buf + done, len - done, (off_t)(off + done));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == ENOSPC || errno == EDQUOT ? -ENOSPC : -errno;
		}
		done += (size_t)n;
	}
	return 0;
}

int store_read(int fd, uint64_t off, void *buf, size_t len)
{
	size_t done = 0;
	ssize_t n;

	while (done < len) {
		n = pread(fd, (char *)buf + done, len - done, (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		done += (size_t)n;
	}
	return 0;
}

/* Give a dropped chunk's blocks back.  Where the C library or the kernel
 * headers have no hole punching (configure's feature test), or the store's
 * filesystem refuses it, the blocks stay allocated until the object is
 * deleted: the chunk's bit is already clear, so nothing reads them. */
void store_punch(int fd, uint64_t off, size_t len)
{
#if defined(HAVE_FALLOCATE) && HAVE_DECL_FALLOC_FL_PUNCH_HOLE
	(void)fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len);
#else
	(void)fd;
	(void)off;
	(void)len;
#endif
}

int store_scan(struct store *s, store_gc_fn fn, void *arg)
{
	uint8_t cid[CID_LEN];
	struct dirent *de, *fe;
	DIR *d, *sub;
	int fd, sfd, i;

	fd = dup(s->dirfd);
	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	rewinddir(d);
	while ((de = readdir(d))) {
		if (strlen(de->d_name) != 1 || de->d_name[0] == '.')
			continue;
		sfd = openat(s->dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (sfd < 0)
			continue;
		sub = fdopendir(sfd);
		if (!sub) {
			close(sfd);
			continue;
		}
		while ((fe = readdir(sub))) {
			if (strlen(fe->d_name) != 2 * CID_LEN)
				continue;
			for (i = 0; i < CID_LEN; i++) {
				int hi = hex_val(fe->d_name[2 * i]), lo = hex_val(fe->d_name[2 * i + 1]);

				if (hi < 0 || lo < 0)
					break;
				cid[i] = (uint8_t)(hi << 4 | lo);
			}
			if (i != CID_LEN)
				continue;
			if (fn(arg, cid))
				unlinkat(dirfd(sub), fe->d_name, 0);
		}
		closedir(sub);
	}
	closedir(d);
	return 0;
}

uint64_t store_checksum(const void *buf, size_t len)
{
	return XXH3_64bits(buf, len);
}
