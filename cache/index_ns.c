/* SPDX-License-Identifier: MIT */
/* The index's namespace snapshots: building one from a listing, and
 * lookups, paths and directory scans in the current one (index.c has the
 * layout). */
#define _GNU_SOURCE
#include <errno.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "index_int.h"
#include "backends/base/log.h"
#include "backends/base/util.h"

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

	rc = mdb_err(index_ro_begin(ix, &txn));
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
	b->url = ec_strdup(url);
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
	rc = mdb_err(index_ro_begin(ix, &txn));
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

	rc = mdb_err(index_ro_begin(ix, &txn));
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

	rc = mdb_err(index_ro_begin(ix, &txn));
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
	rc = mdb_err(index_ro_begin(ix, &txn));
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
	rc = mdb_err(index_ro_begin(ix, &txn));
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
		index_touched(ix, 1); /* a scan of a large directory, or of all of them */
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
