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
#include <xxhash.h>

#include "index.h"
#include "backends/base/log.h"
#include "backends/base/util.h"

struct index {
	MDB_env *env;
	MDB_dbi meta, dirent, inode, object;
	char *dir;
	atomic_uint reads;  /* record reads, for trimming the map */
	void *map;          /* LMDB's map of the data file, once found */
	size_t map_len;
};

struct inode_val {
	uint8_t is_dir;
	uint8_t etag_len;
	uint16_t name_len;
	uint32_t pad;
	uint64_t size;
	int64_t mtime_ns;
	uint64_t parent;
	/* etag, then name, not NUL-terminated */
};

struct obj_val {
	uint32_t version;
	uint32_t chunk_size;
	uint32_t nchunks;
	uint32_t flags;
	uint64_t size;
	uint64_t access_count;
	int64_t last_access_ns;
	double importance;
	uint64_t next_use;
};

#define OBJ_VERSION 1
#define NS_BATCH 20000
/* Record reads between two trims of the map (below). */
#define TRIM_EVERY 64

static int mdb_err(int rc)
{
	switch (rc) {
	case MDB_SUCCESS:
		return 0;
	case MDB_NOTFOUND:
		return -ENOENT;
	case MDB_KEYEXIST:
		return -EEXIST;
	case MDB_MAP_FULL:
	case MDB_TXN_FULL:
		return -ENOSPC;
	case MDB_READERS_FULL:
		return -EAGAIN;
	case MDB_CORRUPTED:
	case MDB_PAGE_NOTFOUND:
	case MDB_INVALID:
	case MDB_VERSION_MISMATCH:
		return -EUCLEAN;
	default:
		return rc > 0 ? -rc : -EIO;
	}
}

static void put_be32(uint8_t *p, uint32_t v)
{
	for (int i = 3; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static void put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

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
 * its size is set once, before the environment is opened. */
void index_trim(struct index *ix)
{
	MDB_envinfo info;
	long pg = sysconf(_SC_PAGESIZE);
	size_t len;

	if (!ix->map || pg <= 0 || mdb_env_info(ix->env, &info) != MDB_SUCCESS)
		return;
	len = MIN((size_t)(info.me_last_pgno + 1) * (size_t)pg, ix->map_len);
	madvise(ix->map, len, MADV_DONTNEED);
}

/* Count n record reads; trim every TRIM_EVERY. */
static void touched(struct index *ix, unsigned n)
{
	unsigned old = atomic_fetch_add_explicit(&ix->reads, n, memory_order_relaxed);

	if (old / TRIM_EVERY != (old + n) / TRIM_EVERY)
		index_trim(ix);
}

static int ro_begin(struct index *ix, MDB_txn **txn)
{
	touched(ix, 1);
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
	ix->dir = strdup(dir);
	if (!ix->dir) {
		free(ix);
		return -ENOMEM;
	}
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

/* ---- namespace ---- */

/* The meta key of a source: its URL, or a hash of it when the URL is longer
 * than an LMDB key may be. */
static size_t source_key(const char *url, char *key, size_t len)
{
	size_t n = strlen(url);

	if (n + 4 <= 400)
		return (size_t)snprintf(key, len, "src:%s", url);
	return (size_t)snprintf(key, len, "src#%016llx%016llx",
				(unsigned long long)XXH3_64bits(url, n),
				(unsigned long long)XXH3_64bits_withSeed(url, n, 1));
}

static int meta_get_source(struct index *ix, MDB_txn *txn, const char *url, struct ns_source *out)
{
	char key[512];
	MDB_val k, v;
	int rc;

	k.mv_size = source_key(url, key, sizeof(key));
	k.mv_data = key;
	rc = mdb_err(mdb_get(txn, ix->meta, &k, &v));
	if (rc)
		return rc;
	if (v.mv_size != sizeof(*out))
		return -EUCLEAN;
	memcpy(out, v.mv_data, sizeof(*out));
	return 0;
}

int index_source_get(struct index *ix, const char *url, struct ns_source *out)
{
	MDB_txn *txn;
	int rc;

	rc = mdb_err(ro_begin(ix, &txn));
	if (rc)
		return rc;
	rc = meta_get_source(ix, txn, url, out);
	mdb_txn_abort(txn);
	return rc;
}

struct ns_builder {
	struct index *ix;
	MDB_txn *txn;
	char *url;
	uint32_t srcid;
	uint64_t next_ino;
	uint64_t files, dirs;
	unsigned pending;
	/* The directory of the previous key, to skip lookups for siblings. */
	char lastdir[4096];
	uint64_t lastdir_ino;
};

static size_t dirent_key(uint8_t *buf, uint32_t srcid, uint64_t parent, const char *name, size_t nlen)
{
	put_be32(buf, srcid);
	put_be64(buf + 4, parent);
	memcpy(buf + 12, name, nlen);
	return 12 + nlen;
}

static int put_inode(struct index *ix, MDB_txn *txn, uint32_t srcid, uint64_t ino,
		     uint64_t parent, const char *name, size_t nlen, int is_dir,
		     const struct backend_stat *st)
{
	uint8_t kb[12], vb[sizeof(struct inode_val) + BACKEND_ETAG_MAX + 256];
	struct inode_val iv = { 0 };
	size_t elen = st ? strnlen(st->etag, BACKEND_ETAG_MAX - 1) : 0;
	MDB_val k = { sizeof(kb), kb }, v;

	if (nlen > 255)
		return -ENAMETOOLONG;
	put_be32(kb, srcid);
	put_be64(kb + 4, ino);
	iv.is_dir = (uint8_t)is_dir;
	iv.etag_len = (uint8_t)elen;
	iv.name_len = (uint16_t)nlen;
	iv.size = st ? st->size : 0;
	iv.mtime_ns = st ? st->mtime_ns : 0;
	iv.parent = parent;
	memcpy(vb, &iv, sizeof(iv));
	if (elen)
		memcpy(vb + sizeof(iv), st->etag, elen);
	memcpy(vb + sizeof(iv) + elen, name, nlen);
	v.mv_size = sizeof(iv) + elen + nlen;
	v.mv_data = vb;
	return mdb_err(mdb_put(txn, ix->inode, &k, &v, 0));
}

static int decode_inode(const MDB_val *v, uint64_t ino, struct ns_attr *a, char *name, size_t namelen)
{
	struct inode_val iv;

	if (v->mv_size < sizeof(iv))
		return -EUCLEAN;
	memcpy(&iv, v->mv_data, sizeof(iv));
	if (v->mv_size != sizeof(iv) + iv.etag_len + iv.name_len)
		return -EUCLEAN;
	if (a) {
		memset(a, 0, sizeof(*a));
		a->ino = ino;
		a->parent = iv.parent;
		a->size = iv.size;
		a->mtime_ns = iv.mtime_ns;
		a->is_dir = iv.is_dir;
		memcpy(a->etag, (const char *)v->mv_data + sizeof(iv), iv.etag_len);
	}
	if (name) {
		if ((size_t)iv.name_len + 1 > namelen)
			return -ENAMETOOLONG;
		memcpy(name, (const char *)v->mv_data + sizeof(iv) + iv.etag_len, iv.name_len);
		name[iv.name_len] = 0;
	}
	return 0;
}

static int builder_txn(struct ns_builder *b)
{
	int rc;

	if (b->txn && b->pending < NS_BATCH)
		return 0;
	if (b->txn) {
		rc = mdb_err(mdb_txn_commit(b->txn));
		b->txn = NULL;
		if (rc)
			return rc;
	}
	b->pending = 0;
	return mdb_err(mdb_txn_begin(b->ix->env, NULL, 0, &b->txn));
}

int index_ns_begin(struct index *ix, const char *url, struct ns_builder **out)
{
	struct ns_builder *b;
	MDB_val k = { 10, "next_srcid" }, v;
	uint32_t id = 1;
	int rc;

	*out = NULL;
	b = ec_calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->ix = ix;
	b->url = strdup(url);
	if (!b->url) {
		free(b);
		return -ENOMEM;
	}
	rc = builder_txn(b);
	if (rc)
		goto fail;
	if (mdb_get(b->txn, ix->meta, &k, &v) == 0 && v.mv_size == sizeof(id))
		memcpy(&id, v.mv_data, sizeof(id));
	b->srcid = id++;
	v.mv_size = sizeof(id);
	v.mv_data = &id;
	rc = mdb_err(mdb_put(b->txn, ix->meta, &k, &v, 0));
	if (rc)
		goto fail;
	rc = put_inode(ix, b->txn, b->srcid, INDEX_ROOT_INO, INDEX_ROOT_INO, "", 0, 1, NULL);
	if (rc)
		goto fail;
	b->next_ino = INDEX_ROOT_INO + 1;
	b->lastdir_ino = INDEX_ROOT_INO;
	b->dirs = 1;
	*out = b;
	return 0;
fail:
	index_ns_abort(b);
	return rc;
}

/* Find or create directory `name` under parent; returns its ino in *ino. */
static int ensure_dir(struct ns_builder *b, uint64_t parent, const char *name, size_t nlen, uint64_t *ino)
{
	uint8_t kb[12 + 256];
	MDB_val k = { dirent_key(kb, b->srcid, parent, name, nlen), kb }, v;
	uint8_t ik[12];
	MDB_val ikv = { sizeof(ik), ik }, iv;
	uint64_t id;
	int rc;

	if (nlen > 255)
		return -ENAMETOOLONG;
	rc = mdb_get(b->txn, b->ix->dirent, &k, &v);
	if (rc == 0) {
		memcpy(&id, v.mv_data, sizeof(id));
		put_be32(ik, b->srcid);
		put_be64(ik + 4, id);
		/* LMDB values are not aligned: read the flag byte, not the struct. */
		if (mdb_get(b->txn, b->ix->inode, &ikv, &iv) || iv.mv_size < 1 ||
		    !*(const uint8_t *)iv.mv_data)
			return -EEXIST; /* a file of that name */
		*ino = id;
		return 0;
	}
	if (rc != MDB_NOTFOUND)
		return mdb_err(rc);
	id = b->next_ino++;
	v.mv_size = sizeof(id);
	v.mv_data = &id;
	rc = mdb_err(mdb_put(b->txn, b->ix->dirent, &k, &v, 0));
	if (rc)
		return rc;
	b->pending++;
	b->dirs++;
	*ino = id;
	return put_inode(b->ix, b->txn, b->srcid, id, parent, name, nlen, 1, NULL);
}

int index_ns_add(struct ns_builder *b, const char *key, const struct backend_stat *st)
{
	const char *slash = strrchr(key, '/'), *p, *seg;
	size_t dlen = slash ? (size_t)(slash - key) : 0;
	const char *name = slash ? slash + 1 : key;
	uint64_t parent = INDEX_ROOT_INO, id;
	uint8_t kb[12 + 256];
	MDB_val k, v;
	int rc;

	if (strlen(name) > 255 || dlen >= sizeof(b->lastdir))
		return -ENAMETOOLONG;
	rc = builder_txn(b);
	if (rc)
		return rc;
	if (dlen && (dlen != strlen(b->lastdir) || memcmp(b->lastdir, key, dlen))) {
		for (p = key; p < key + dlen;) {
			seg = p;
			while (p < key + dlen && *p != '/')
				p++;
			if ((size_t)(p - seg) > 255 || p == seg)
				return -ENAMETOOLONG;
			rc = ensure_dir(b, parent, seg, (size_t)(p - seg), &parent);
			if (rc)
				return rc;
			if (*p == '/')
				p++;
		}
		memcpy(b->lastdir, key, dlen);
		b->lastdir[dlen] = 0;
		b->lastdir_ino = parent;
	} else if (dlen) {
		parent = b->lastdir_ino;
	}
	k.mv_size = dirent_key(kb, b->srcid, parent, name, strlen(name));
	k.mv_data = kb;
	id = b->next_ino;
	v.mv_size = sizeof(id);
	v.mv_data = &id;
	rc = mdb_err(mdb_put(b->txn, b->ix->dirent, &k, &v, MDB_NOOVERWRITE));
	if (rc)
		return rc;
	b->next_ino++;
	b->pending++;
	b->files++;
	return put_inode(b->ix, b->txn, b->srcid, id, parent, name, strlen(name), 0, st);
}

/* Delete every entry of srcid from db, in batches. */
static int drop_srcid(struct index *ix, MDB_dbi dbi, uint32_t srcid)
{
	uint8_t pfx[4];
	MDB_cursor *cur;
	MDB_txn *txn;
	MDB_val k, v;
	unsigned n;
	int rc, more = 1;

	put_be32(pfx, srcid);
	while (more) {
		rc = mdb_err(mdb_txn_begin(ix->env, NULL, 0, &txn));
		if (rc)
			return rc;
		rc = mdb_err(mdb_cursor_open(txn, dbi, &cur));
		if (rc) {
			mdb_txn_abort(txn);
			return rc;
		}
		k.mv_size = 4;
		k.mv_data = pfx;
		more = 0;
		rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
		for (n = 0; rc == 0 && k.mv_size >= 4 && !memcmp(k.mv_data, pfx, 4); n++) {
			if (n == NS_BATCH) {
				more = 1;
				break;
			}
			mdb_cursor_del(cur, 0);
			rc = mdb_cursor_get(cur, &k, &v, MDB_GET_CURRENT);
			if (rc)
				rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
		}
		mdb_cursor_close(cur);
		rc = mdb_err(mdb_txn_commit(txn));
		if (rc)
			return rc;
	}
	return 0;
}

int index_ns_commit(struct ns_builder *b, struct ns_source *out)
{
	struct ns_source old, cur = { 0 };
	char key[4200];
	MDB_val k, v;
	int rc, had_old;

	b->pending = NS_BATCH; /* force a fresh transaction */
	rc = builder_txn(b);
	if (rc)
		goto out;
	had_old = meta_get_source(b->ix, b->txn, b->url, &old) == 0;
	cur.srcid = b->srcid;
	cur.listed_ns = wall_ns();
	cur.files = b->files;
	cur.dirs = b->dirs;
	cur.next_ino = b->next_ino;
	k.mv_size = source_key(b->url, key, sizeof(key));
	k.mv_data = key;
	v.mv_size = sizeof(cur);
	v.mv_data = &cur;
	rc = mdb_err(mdb_put(b->txn, b->ix->meta, &k, &v, 0));
	if (!rc)
		rc = mdb_err(mdb_txn_commit(b->txn));
	else
		mdb_txn_abort(b->txn);
	b->txn = NULL;
	if (rc)
		goto out;
	if (had_old && old.srcid != cur.srcid) {
		drop_srcid(b->ix, b->ix->dirent, old.srcid);
		drop_srcid(b->ix, b->ix->inode, old.srcid);
	}
	if (out)
		*out = cur;
out:
	index_ns_abort(b);
	return rc;
}

void index_ns_abort(struct ns_builder *b)
{
	if (!b)
		return;
	if (b->txn)
		mdb_txn_abort(b->txn);
	free(b->url);
	free(b);
}

int index_getattr(struct index *ix, uint32_t srcid, uint64_t ino, struct ns_attr *out)
{
	uint8_t kb[12];
	MDB_val k = { sizeof(kb), kb }, v;
	MDB_txn *txn;
	int rc;

	put_be32(kb, srcid);
	put_be64(kb + 4, ino);
	rc = mdb_err(ro_begin(ix, &txn));
	if (rc)
		return rc;
	rc = mdb_err(mdb_get(txn, ix->inode, &k, &v));
	if (!rc)
		rc = decode_inode(&v, ino, out, NULL, 0);
	mdb_txn_abort(txn);
	return rc;
}

static int lookup_txn(struct index *ix, MDB_txn *txn, uint32_t srcid, uint64_t parent,
		      const char *name, size_t nlen, struct ns_attr *out)
{
	uint8_t kb[12 + 256], ik[12];
	MDB_val k, v, ikv = { sizeof(ik), ik };
	uint64_t ino;
	int rc;

	if (nlen > 255)
		return -ENAMETOOLONG;
	k.mv_size = dirent_key(kb, srcid, parent, name, nlen);
	k.mv_data = kb;
	rc = mdb_err(mdb_get(txn, ix->dirent, &k, &v));
	if (rc)
		return rc;
	memcpy(&ino, v.mv_data, sizeof(ino));
	put_be32(ik, srcid);
	put_be64(ik + 4, ino);
	rc = mdb_err(mdb_get(txn, ix->inode, &ikv, &v));
	if (rc)
		return rc == -ENOENT ? -EUCLEAN : rc;
	return decode_inode(&v, ino, out, NULL, 0);
}

int index_lookup(struct index *ix, uint32_t srcid, uint64_t parent, const char *name,
		 struct ns_attr *out)
{
	MDB_txn *txn;
	int rc;

	rc = mdb_err(ro_begin(ix, &txn));
	if (rc)
		return rc;
	rc = lookup_txn(ix, txn, srcid, parent, name, strlen(name), out);
	mdb_txn_abort(txn);
	return rc;
}

int index_resolve(struct index *ix, uint32_t srcid, const char *path, struct ns_attr *out)
{
	const char *p = path, *seg;
	struct ns_attr a = { .ino = INDEX_ROOT_INO, .parent = INDEX_ROOT_INO, .is_dir = 1 };
	MDB_txn *txn;
	int rc = 0;

	rc = mdb_err(ro_begin(ix, &txn));
	if (rc)
		return rc;
	while (*p && !rc) {
		seg = p;
		while (*p && *p != '/')
			p++;
		if (p == seg) {
			rc = -EINVAL;
			break;
		}
		if (!a.is_dir) {
			rc = -ENOTDIR;
			break;
		}
		rc = lookup_txn(ix, txn, srcid, a.ino, seg, (size_t)(p - seg), &a);
		if (*p == '/')
			p++;
	}
	mdb_txn_abort(txn);
	if (!rc)
		*out = a;
	return rc;
}

int index_path(struct index *ix, uint32_t srcid, uint64_t ino, char *buf, size_t len)
{
	char name[256];
	uint8_t kb[12];
	MDB_val k = { sizeof(kb), kb }, v;
	struct ns_attr a;
	MDB_txn *txn;
	size_t pos = len, n;
	int rc, depth = 0;

	if (len == 0)
		return -ENAMETOOLONG;
	buf[--pos] = 0;
	rc = mdb_err(ro_begin(ix, &txn));
	if (rc)
		return rc;
	while (ino != INDEX_ROOT_INO) {
		put_be32(kb, srcid);
		put_be64(kb + 4, ino);
		rc = mdb_err(mdb_get(txn, ix->inode, &k, &v));
		if (!rc)
			rc = decode_inode(&v, ino, &a, name, sizeof(name));
		if (rc)
			break;
		n = strlen(name);
		if (n + (pos < len - 1 ? 1 : 0) > pos || ++depth > 4096) {
			rc = -ENAMETOOLONG;
			break;
		}
		if (pos < len - 1)
			buf[--pos] = '/';
		pos -= n;
		memcpy(buf + pos, name, n);
		ino = a.parent;
	}
	mdb_txn_abort(txn);
	if (!rc)
		memmove(buf, buf + pos, len - pos);
	return rc;
}

int index_readdir(struct index *ix, uint32_t srcid, uint64_t dir, index_dir_fn fn, void *arg)
{
	uint8_t pfx[12], ik[12];
	char name[256];
	MDB_val k = { sizeof(pfx), pfx }, v, ikv = { sizeof(ik), ik }, iv;
	struct ns_attr a;
	MDB_cursor *cur;
	MDB_txn *txn;
	uint64_t ino;
	size_t nlen;
	int rc;

	put_be32(pfx, srcid);
	put_be64(pfx + 4, dir);
	rc = mdb_err(ro_begin(ix, &txn));
	if (rc)
		return rc;
	rc = mdb_err(mdb_cursor_open(txn, ix->dirent, &cur));
	if (rc) {
		mdb_txn_abort(txn);
		return rc;
	}
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size < 12 || memcmp(k.mv_data, pfx, 12))
			break;
		nlen = k.mv_size - 12;
		memcpy(name, (char *)k.mv_data + 12, nlen);
		name[nlen] = 0;
		memcpy(&ino, v.mv_data, sizeof(ino));
		put_be32(ik, srcid);
		put_be64(ik + 4, ino);
		touched(ix, 1); /* a scan of a large directory, or of all of them */
		if (mdb_get(txn, ix->inode, &ikv, &iv) || decode_inode(&iv, ino, &a, NULL, 0))
			continue;
		if (fn(arg, name, &a)) {
			rc = 1;
			break;
		}
	}
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	return rc == MDB_NOTFOUND || rc == 1 ? 0 : mdb_err(rc);
}

int index_set_identity(struct index *ix, uint32_t srcid, uint64_t ino, const struct backend_stat *st)
{
	uint8_t kb[12];
	MDB_val k = { sizeof(kb), kb }, v;
	struct ns_attr a;
	char name[256];
	MDB_txn *txn;
	int rc;

	put_be32(kb, srcid);
	put_be64(kb + 4, ino);
	rc = mdb_err(mdb_txn_begin(ix->env, NULL, 0, &txn));
	if (rc)
		return rc;
	rc = mdb_err(mdb_get(txn, ix->inode, &k, &v));
	if (!rc)
		rc = decode_inode(&v, ino, &a, name, sizeof(name));
	if (!rc)
		rc = put_inode(ix, txn, srcid, ino, a.parent, name, strlen(name), a.is_dir, st);
	if (rc) {
		mdb_txn_abort(txn);
		return rc;
	}
	return mdb_err(mdb_txn_commit(txn));
}

/* ---- objects ---- */

static size_t bits_bytes(uint32_t n)
{
	return ((size_t)n + 63) / 64 * 8;
}

struct obj_rec *index_obj_alloc(uint32_t nchunks)
{
	size_t bb = bits_bytes(nchunks);
	struct obj_rec *r = ec_calloc(1, sizeof(*r) + bb + (size_t)nchunks * 8);

	if (!r)
		return NULL;
	r->nchunks = nchunks;
	r->present = (uint8_t *)(r + 1);
	r->sums = (uint64_t *)(r->present + bb);
	return r;
}

void index_obj_free(struct obj_rec *r)
{
	free(r);
}

static int obj_decode(const uint8_t *cid, const MDB_val *v, struct obj_rec **out)
{
	struct obj_val ov;
	struct obj_rec *r;
	size_t bb;

	if (v->mv_size < sizeof(ov))
		return -EUCLEAN;
	memcpy(&ov, v->mv_data, sizeof(ov));
	bb = bits_bytes(ov.nchunks);
	if (ov.version != OBJ_VERSION || v->mv_size != sizeof(ov) + bb + (size_t)ov.nchunks * 8)
		return -EUCLEAN;
	r = index_obj_alloc(ov.nchunks);
	if (!r)
		return -ENOMEM;
	memcpy(r->cid, cid, CID_LEN);
	r->size = ov.size;
	r->chunk_size = ov.chunk_size;
	r->access_count = ov.access_count;
	r->last_access_ns = ov.last_access_ns;
	r->importance = ov.importance;
	r->next_use = ov.next_use;
	r->flags = ov.flags;
	memcpy(r->present, (const uint8_t *)v->mv_data + sizeof(ov), bb + (size_t)ov.nchunks * 8);
	*out = r;
	return 0;
}

int index_obj_get(struct index *ix, const uint8_t cid[CID_LEN], struct obj_rec **out)
{
	MDB_val k = { CID_LEN, (void *)cid }, v;
	MDB_txn *txn;
	int rc;

	*out = NULL;
	rc = mdb_err(ro_begin(ix, &txn));
	if (rc)
		return rc;
	rc = mdb_err(mdb_get(txn, ix->object, &k, &v));
	if (!rc)
		rc = obj_decode(cid, &v, out);
	mdb_txn_abort(txn);
	return rc;
}

static int obj_put_txn(struct index *ix, MDB_txn *txn, const struct obj_rec *r)
{
	size_t bb = bits_bytes(r->nchunks), n = sizeof(struct obj_val) + bb + (size_t)r->nchunks * 8;
	MDB_val k = { CID_LEN, (void *)r->cid }, v = { n, NULL };
	struct obj_val ov = {
		.version = OBJ_VERSION, .chunk_size = r->chunk_size, .nchunks = r->nchunks,
		.flags = r->flags, .size = r->size, .access_count = r->access_count,
		.last_access_ns = r->last_access_ns, .importance = r->importance,
		.next_use = r->next_use,
	};
	int rc;

	rc = mdb_err(mdb_put(txn, ix->object, &k, &v, MDB_RESERVE));
	if (rc)
		return rc;
	memcpy(v.mv_data, &ov, sizeof(ov));
	memcpy((uint8_t *)v.mv_data + sizeof(ov), r->present, bb + (size_t)r->nchunks * 8);
	return 0;
}

int index_obj_put_many(struct index *ix, struct obj_rec *const *r, size_t n)
{
	MDB_txn *txn;
	int rc;

	rc = mdb_err(mdb_txn_begin(ix->env, NULL, 0, &txn));
	if (rc)
		return rc;
	for (size_t i = 0; i < n && !rc; i++) {
		rc = obj_put_txn(ix, txn, r[i]);
		touched(ix, 1);
	}
	if (rc)
		mdb_txn_abort(txn);
	else
		rc = mdb_err(mdb_txn_commit(txn));
	index_trim(ix); /* a batch walks as many pages as its records */
	return rc;
}

int index_obj_put(struct index *ix, const struct obj_rec *r)
{
	struct obj_rec *one = (struct obj_rec *)r;

	return index_obj_put_many(ix, &one, 1);
}

int index_obj_del(struct index *ix, const uint8_t cid[CID_LEN])
{
	MDB_val k = { CID_LEN, (void *)cid };
	MDB_txn *txn;
	int rc;

	rc = mdb_err(mdb_txn_begin(ix->env, NULL, 0, &txn));
	if (rc)
		return rc;
	rc = mdb_err(mdb_del(txn, ix->object, &k, NULL));
	if (rc && rc != -ENOENT) {
		mdb_txn_abort(txn);
		return rc;
	}
	return mdb_err(mdb_txn_commit(txn));
}

int index_obj_foreach(struct index *ix, index_obj_fn fn, void *arg)
{
	struct obj_rec *r;
	MDB_cursor *cur;
	MDB_txn *txn;
	MDB_val k, v;
	int rc, stop = 0;

	rc = mdb_err(ro_begin(ix, &txn));
	if (rc)
		return rc;
	rc = mdb_err(mdb_cursor_open(txn, ix->object, &cur));
	if (rc) {
		mdb_txn_abort(txn);
		return rc;
	}
	while (!stop && (rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
		touched(ix, 1);
		if (k.mv_size != CID_LEN || obj_decode(k.mv_data, &v, &r))
			continue; /* an unreadable record is skipped: its data is not served */
		stop = fn(arg, r);
		index_obj_free(r);
	}
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	return rc == MDB_NOTFOUND || stop ? 0 : mdb_err(rc);
}
