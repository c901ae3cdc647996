/* SPDX-License-Identifier: MIT */
/* The LMDB index.
 *
 * Layout.  One environment under <cache-dir>/index with four databases:
 *   meta    "src:<url>" -> struct ns_source (the current snapshot of a source),
 *           "next_srcid" -> u32.
 *   dirent  srcid(4, BE) | parent ino(8, BE) | name -> ino(8)
 *   inode   srcid(4, BE) | ino(8, BE) -> struct inode_val, etag, name
 *   object  content id (16) -> struct obj_val, present bits, checksums
 * Big-endian keys keep a directory's entries together and sorted by name, so
 * readdir is one cursor scan.  A snapshot is built under a fresh srcid and
 * becomes current by one write of its meta record; the old srcid's entries
 * are deleted afterwards, so a crash mid-listing leaves the old snapshot in
 * force (and garbage that the next open removes).
 *
 * Objects are keyed by content identity, not by inode, so a relisting that
 * renumbers inodes keeps the cache, and two mounts of one dataset share it.
 * The environment runs with MDB_NOSYNC and is synced periodically: a power
 * loss may forget recent records (the data stays, unreferenced, and is
 * collected) but never makes a record point at unwritten bytes, because a
 * chunk's bytes are written before the record that claims them, and every
 * chunk is checked against its checksum before it is first served. */
#define _GNU_SOURCE
#include <errno.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "index_int.h"
#include "backends/base/log.h"
#include "backends/base/util.h"

/* Where LMDB mapped the data file: mdb_env_info gives the address only for
 * MDB_FIXEDMAP, so look the mapping up by the file's device and inode. */
static void find_map(struct index *ix)
{
	char line[512];
	struct stat st;
	mdb_filehandle_t fd;
	FILE *f;

	if (mdb_env_get_fd(ix->env, &fd) != MDB_SUCCESS || fstat(fd, &st) < 0)
		return;
	f = fopen("/proc/self/maps", "re");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi, ino;
		unsigned maj, mnr;

		if (sscanf(line, "%lx-%lx %*s %*x %x:%x %lu", &lo, &hi, &maj, &mnr, &ino) == 5 &&
		    ino == (unsigned long)st.st_ino && makedev(maj, mnr) == st.st_dev) {
			ix->map = (void *)lo;
			ix->map_len = hi - lo;
			break;
		}
	}
	fclose(f);
}

/* The map's pages stay mapped into the daemon once touched, so a warm epoch
 * over a million files would count the whole index (about 300 bytes per
 * file) in the daemon's RSS.  The map is MAP_SHARED over the index file, so
 * MADV_DONTNEED only unmaps: the pages stay in the page cache (shared and
 * reclaimable like any file data) and the next access maps them again with
 * the same bytes.  Safe while other threads read: they fault the page back
 * in.  Every TRIM_EVERY record reads (a transaction, or a step of a scan)
 * the used part of the map is unmapped.  MDB_NORDAHEAD (MADV_RANDOM) stops
 * readahead but not the kernel's fault-around, which maps up to 16 cached
 * neighbours of a faulting page, so what is mapped at a moment is bounded
 * by the interval (about 64 reads x 4 pages x 64 KiB = 16 MiB at worst),
 * whatever the index size.  A trim walks the page tables of the whole used
 * map: about 65 us at 290 MB (1M files), or about 4 us per open there; 20 us
 * at 300,000 files.  Every 256 reads instead cost a quarter of that and let
 * the peak RSS of two epochs over 300,000 files reach 84 MiB instead of 67:
 * the daemon's CPU per warm open (about 20 us) has more room under its
 * target (150 us) than its RSS has under its own.  The map never moves:
 * its size is set once, before the environment is opened.
 *
 * An index whose used map is under trim_floor (TRIM_FLOOR, 16 MiB: about
 * 50,000 files) is not trimmed: all of it mapped is no more than what the
 * trims let be mapped anyway, and trimming it only made the reads after
 * each trim fault its pages back in (docs/benchmarks.md, issue 14). */
static size_t used_len(struct index *ix)
{
	MDB_envinfo info;
	long pg = sysconf(_SC_PAGESIZE);

	if (!ix->map || pg <= 0 || mdb_env_info(ix->env, &info) != MDB_SUCCESS)
		return 0;
	return MIN((size_t)(info.me_last_pgno + 1) * (size_t)pg, ix->map_len);
}

void index_trim(struct index *ix)
{
	size_t len = used_len(ix);

	if (len && len >= ix->trim_floor)
		madvise(ix->map, len, MADV_DONTNEED);
}

/* Count n record reads; trim every TRIM_EVERY. */
void index_touched(struct index *ix, unsigned n)
{
	unsigned old = atomic_fetch_add_explicit(&ix->reads, n, memory_order_relaxed);

	if (old / TRIM_EVERY != (old + n) / TRIM_EVERY)
		index_trim(ix);
}

void index_set_trim_floor(struct index *ix, uint64_t bytes)
{
	ix->trim_floor = bytes;
}

int index_ro_begin(struct index *ix, MDB_txn **txn)
{
	index_touched(ix, 1);
	return mdb_txn_begin(ix->env, NULL, MDB_RDONLY, txn);
}

int index_open(const char *dir, uint64_t mapsize, struct index **out)
{
	struct index *ix;
	MDB_txn *txn;
	int rc;

	*out = NULL;
	ix = ec_calloc(1, sizeof(*ix));
	if (!ix)
		return -ENOMEM;
	ix->dir = ec_strdup(dir);
	if (!ix->dir) {
		free(ix);
		return -ENOMEM;
	}
	ix->trim_floor = TRIM_FLOOR;
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		rc = -errno;
		goto out_free;
	}
	rc = mdb_err(mdb_env_create(&ix->env));
	if (rc)
		goto out_free;
	mdb_env_set_maxdbs(ix->env, 8);
	mdb_env_set_maxreaders(ix->env, 512);
	mdb_env_set_mapsize(ix->env, mapsize);
	rc = mdb_err(mdb_env_open(ix->env, dir, MDB_NOSYNC | MDB_NOTLS | MDB_NORDAHEAD, 0600));
	if (rc)
		goto out_env;
	find_map(ix);
	rc = mdb_err(mdb_txn_begin(ix->env, NULL, 0, &txn));
	if (rc)
		goto out_env;
	rc = mdb_err(mdb_dbi_open(txn, "meta", MDB_CREATE, &ix->meta));
	if (!rc)
		rc = mdb_err(mdb_dbi_open(txn, "dirent", MDB_CREATE, &ix->dirent));
	if (!rc)
		rc = mdb_err(mdb_dbi_open(txn, "inode", MDB_CREATE, &ix->inode));
	if (!rc)
		rc = mdb_err(mdb_dbi_open(txn, "object", MDB_CREATE, &ix->object));
	if (rc) {
		mdb_txn_abort(txn);
		goto out_env;
	}
	rc = mdb_err(mdb_txn_commit(txn));
	if (rc)
		goto out_env;
	*out = ix;
	return 0;
out_env:
	mdb_env_close(ix->env);
out_free:
	free(ix->dir);
	free(ix);
	return rc;
}

void index_close(struct index *ix)
{
	if (!ix)
		return;
	mdb_env_sync(ix->env, 1);
	mdb_env_close(ix->env);
	free(ix->dir);
	free(ix);
}

void index_sync(struct index *ix)
{
	mdb_env_sync(ix->env, 1);
}

uint64_t index_disk_bytes(struct index *ix)
{
	static const char *files[] = { "data.mdb", "lock.mdb" };
	char path[4096];
	struct stat st;
	uint64_t total = 0;

	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		snprintf(path, sizeof(path), "%s/%s", ix->dir, files[i]);
		if (stat(path, &st) == 0)
			total += (uint64_t)st.st_blocks * 512;
	}
	return total;
}
