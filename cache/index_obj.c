/* SPDX-License-Identifier: MIT */
/* The index's object records: one per cached or tracked object, keyed by
 * content id (index.c has the layout). */
#define _GNU_SOURCE
#include <errno.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index_int.h"
#include "backends/base/log.h"
#include "backends/base/util.h"

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
	rc = mdb_err(index_ro_begin(ix, &txn));
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
		index_touched(ix, 1);
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

	rc = mdb_err(index_ro_begin(ix, &txn));
	if (rc)
		return rc;
	rc = mdb_err(mdb_cursor_open(txn, ix->object, &cur));
	if (rc) {
		mdb_txn_abort(txn);
		return rc;
	}
	while (!stop && (rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
		index_touched(ix, 1);
		if (k.mv_size != CID_LEN || obj_decode(k.mv_data, &v, &r))
			continue; /* an unreadable record is skipped: its data is not served */
		stop = fn(arg, r);
		index_obj_free(r);
	}
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	return rc == MDB_NOTFOUND || stop ? 0 : mdb_err(rc);
}
