/* SPDX-License-Identifier: MIT */
/* Named blobs in the index's meta database (the saved plan): written in one
 * transaction per change, so a crash keeps either the old set or the new. */
#define _GNU_SOURCE
#include <errno.h>
#include <lmdb.h>
#include <stdlib.h>
#include <string.h>

#include "index_int.h"
#include "backends/base/util.h"

int index_blob_put(struct index *ix, const struct index_blob *b, size_t n)
{
	MDB_txn *txn = NULL;
	int rc = mdb_err(mdb_txn_begin(ix->env, NULL, 0, &txn));

	for (size_t i = 0; !rc && i < n; i++) {
		MDB_val k = { strlen(b[i].key), (void *)b[i].key }, v = { b[i].len, (void *)b[i].val };

		if (b[i].val)
			rc = mdb_err(mdb_put(txn, ix->meta, &k, &v, 0));
		else if ((rc = mdb_err(mdb_del(txn, ix->meta, &k, NULL))) == -ENOENT)
			rc = 0;
	}
	if (rc) {
		if (txn)
			mdb_txn_abort(txn);
		return rc;
	}
	return mdb_err(mdb_txn_commit(txn));
}

int index_blob_get(struct index *ix, const char *key, void **val, size_t *len)
{
	MDB_txn *txn;
	MDB_val k = { strlen(key), (void *)key }, v;
	int rc = mdb_err(index_ro_begin(ix, &txn));

	*val = NULL;
	*len = 0;
	if (rc)
		return rc;
	rc = mdb_err(mdb_get(txn, ix->meta, &k, &v));
	if (!rc) {
		*val = ec_malloc(v.mv_size + 1);
		if (*val) {
			memcpy(*val, v.mv_data, v.mv_size);
			*len = v.mv_size;
		} else {
			rc = -ENOMEM;
		}
	}
	mdb_txn_abort(txn);
	return rc;
}
