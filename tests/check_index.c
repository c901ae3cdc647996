/* SPDX-License-Identifier: MIT */
/* Unit tests of cache/index.c (Check): namespace snapshots and object records in
 * a real LMDB environment under a temporary directory. */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache/index.h"
#include "backends/base/log.h"

#define MAP (1ull << 30)
#define URL "file:///data/set"

static char tmpdir[64], ixdir[128];

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb; (void)flag; (void)ftw;
	return remove(p);
}

static void setup(void)
{
	strcpy(tmpdir, "/tmp/check_index.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	snprintf(ixdir, sizeof(ixdir), "%s/index", tmpdir);
}

static void teardown(void)
{
	nftw(tmpdir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static struct index *open_ix(void)
{
	struct index *ix;

	ck_assert_int_eq(index_open(ixdir, MAP, &ix), 0);
	ck_assert_ptr_nonnull(ix);
	return ix;
}

static struct backend_stat st_of(uint64_t size, int64_t mtime, const char *etag)
{
	struct backend_stat st = { .size = size, .mtime_ns = mtime };

	snprintf(st.etag, sizeof(st.etag), "%s", etag);
	return st;
}

static char name255[256];
static char key255[300];

#define UNI "caf\xc3\xa9 \xe2\x9c\x93 na\xc3\xafve.txt"

/* The standard tree: returns the source record after commit. */
static struct ns_source build_std(struct index *ix, int nmany)
{
	struct ns_builder *b;
	struct ns_source src;
	struct backend_stat st;
	char key[64];

	memset(name255, 'n', 255);
	name255[255] = 0;
	snprintf(key255, sizeof(key255), "long/%s", name255);
	ck_assert_int_eq(index_ns_begin(ix, URL, &b), 0);
	st = st_of(10, 111, "");
	ck_assert_int_eq(index_ns_add(b, "top.txt", &st), 0);
	st = st_of(20, 222, "\"etag-1\"");
	ck_assert_int_eq(index_ns_add(b, "a/b/c/deep.bin", &st), 0);
	st = st_of(30, 333, "");
	ck_assert_int_eq(index_ns_add(b, "a/b/x", &st), 0);
	ck_assert_int_eq(index_ns_add(b, "a/y", &st), 0);
	ck_assert_int_eq(index_ns_add(b, "a/b/c/another", &st), 0);
	ck_assert_int_eq(index_ns_add(b, "with space/" UNI, &st), 0);
	ck_assert_int_eq(index_ns_add(b, key255, &st), 0);
	/* collisions: under a file, a file over a directory, a duplicate */
	ck_assert_int_eq(index_ns_add(b, "a/y/z", &st), -EEXIST);
	ck_assert_int_eq(index_ns_add(b, "a/b", &st), -EEXIST);
	ck_assert_int_eq(index_ns_add(b, "top.txt", &st), -EEXIST);
	ck_assert_int_eq(index_ns_add(b, "top.txt/q", &st), -EEXIST);
	/* a 256-byte name */
	{
		char k[300];

		memset(k, 'm', 256);
		k[256] = 0;
		ck_assert_int_eq(index_ns_add(b, k, &st), -ENAMETOOLONG);
	}
	for (int i = nmany - 1; i >= 0; i--) {
		snprintf(key, sizeof(key), "many/f%05d", i);
		st = st_of((uint64_t)i, i, "");
		ck_assert_int_eq(index_ns_add(b, key, &st), 0);
	}
	memset(&src, 0xff, sizeof(src));
	ck_assert_int_eq(index_ns_commit(b, &src), 0);
	ck_assert_uint_eq(src.files, 7 + (uint64_t)nmany);
	/* root, a, a/b, a/b/c, with space, long, many */
	ck_assert_uint_eq(src.dirs, nmany ? 7 : 6);
	ck_assert_uint_gt(src.listed_ns, 0);
	return src;
}

struct dir_list {
	char names[64][260];
	int n, stop_after;
	uint64_t last_ino;
};

static int list_cb(void *arg, const char *name, const struct ns_attr *a)
{
	struct dir_list *dl = arg;

	if (dl->n < 64)
		snprintf(dl->names[dl->n], sizeof(dl->names[0]), "%s", name);
	dl->n++;
	dl->last_ino = a->ino;
	return dl->stop_after && dl->n >= dl->stop_after;
}

START_TEST(test_namespace)
{
	struct index *ix = open_ix();
	struct ns_source src = build_std(ix, 100);
	struct ns_attr a, d;
	struct dir_list dl = { .n = 0 };
	char path[4096];

	ck_assert_int_eq(index_lookup(ix, src.srcid, INDEX_ROOT_INO, "a", &d), 0);
	ck_assert(d.is_dir);
	ck_assert_uint_eq(d.parent, INDEX_ROOT_INO);
	ck_assert_int_eq(index_lookup(ix, src.srcid, d.ino, "y", &a), 0);
	ck_assert(!a.is_dir);
	ck_assert_uint_eq(a.size, 30);
	ck_assert_uint_eq(a.parent, d.ino);

	ck_assert_int_eq(index_resolve(ix, src.srcid, "a/b/c/deep.bin", &a), 0);
	ck_assert_uint_eq(a.size, 20);
	ck_assert_int_eq(a.mtime_ns, 222);
	ck_assert_str_eq(a.etag, "\"etag-1\"");
	ck_assert_int_eq(index_getattr(ix, src.srcid, a.ino, &d), 0);
	ck_assert_uint_eq(d.ino, a.ino);
	ck_assert_uint_eq(d.size, 20);
	ck_assert_int_eq(index_path(ix, src.srcid, a.ino, path, sizeof(path)), 0);
	ck_assert_str_eq(path, "a/b/c/deep.bin");
	ck_assert_int_eq(index_path(ix, src.srcid, a.ino, path, 10), -ENAMETOOLONG);
	ck_assert_int_eq(index_path(ix, src.srcid, a.ino, path, 15), 0);
	ck_assert_str_eq(path, "a/b/c/deep.bin");
	ck_assert_int_eq(index_path(ix, src.srcid, a.ino, path, 14), -ENAMETOOLONG);
	ck_assert_int_eq(index_path(ix, src.srcid, INDEX_ROOT_INO, path, sizeof(path)), 0);
	ck_assert_str_eq(path, "");

	ck_assert_int_eq(index_resolve(ix, src.srcid, "with space/" UNI, &a), 0);
	ck_assert_int_eq(index_path(ix, src.srcid, a.ino, path, sizeof(path)), 0);
	ck_assert_str_eq(path, "with space/" UNI);
	ck_assert_int_eq(index_resolve(ix, src.srcid, key255, &a), 0);
	ck_assert_int_eq(index_path(ix, src.srcid, a.ino, path, sizeof(path)), 0);
	ck_assert_str_eq(path, key255);
	ck_assert_int_eq(index_lookup(ix, src.srcid, a.parent, name255, &d), 0);
	ck_assert_uint_eq(d.ino, a.ino);

	ck_assert_int_eq(index_resolve(ix, src.srcid, "", &a), 0);
	ck_assert_uint_eq(a.ino, INDEX_ROOT_INO);
	ck_assert(a.is_dir);
	ck_assert_int_eq(index_resolve(ix, src.srcid, "a/nope", &a), -ENOENT);
	ck_assert_int_eq(index_resolve(ix, src.srcid, "top.txt/x", &a), -ENOTDIR);
	ck_assert_int_eq(index_resolve(ix, src.srcid, "a//b", &a), -EINVAL);
	ck_assert_int_eq(index_lookup(ix, src.srcid, INDEX_ROOT_INO, "missing", &a), -ENOENT);
	ck_assert_int_eq(index_getattr(ix, src.srcid, 1u << 30, &a), -ENOENT);
	ck_assert_int_eq(index_getattr(ix, src.srcid + 1, INDEX_ROOT_INO, &a), -ENOENT);

	/* readdir: name order */
	ck_assert_int_eq(index_readdir(ix, src.srcid, INDEX_ROOT_INO, list_cb, &dl), 0);
	ck_assert_int_eq(dl.n, 5);
	ck_assert_str_eq(dl.names[0], "a");
	ck_assert_str_eq(dl.names[1], "long");
	ck_assert_str_eq(dl.names[2], "many");
	ck_assert_str_eq(dl.names[3], "top.txt");
	ck_assert_str_eq(dl.names[4], "with space");
	ck_assert_int_eq(index_resolve(ix, src.srcid, "a/b", &a), 0);
	dl.n = 0;
	ck_assert_int_eq(index_readdir(ix, src.srcid, a.ino, list_cb, &dl), 0);
	ck_assert_int_eq(dl.n, 2);
	ck_assert_str_eq(dl.names[0], "c");
	ck_assert_str_eq(dl.names[1], "x");
	/* files added in reverse come back sorted; a stop ends early */
	ck_assert_int_eq(index_resolve(ix, src.srcid, "many", &a), 0);
	dl.n = 0;
	ck_assert_int_eq(index_readdir(ix, src.srcid, a.ino, list_cb, &dl), 0);
	ck_assert_int_eq(dl.n, 100);
	for (int i = 1; i < 64; i++)
		ck_assert_int_lt(strcmp(dl.names[i - 1], dl.names[i]), 0);
	ck_assert_str_eq(dl.names[0], "f00000");
	dl.n = 0;
	dl.stop_after = 3;
	ck_assert_int_eq(index_readdir(ix, src.srcid, a.ino, list_cb, &dl), 0);
	ck_assert_int_eq(dl.n, 3);
	/* a file has no entries; readdir of it lists nothing */
	ck_assert_int_eq(index_resolve(ix, src.srcid, "top.txt", &a), 0);
	dl.n = 0;
	dl.stop_after = 0;
	ck_assert_int_eq(index_readdir(ix, src.srcid, a.ino, list_cb, &dl), 0);
	ck_assert_int_eq(dl.n, 0);
	ck_assert_uint_gt(index_disk_bytes(ix), 0);
	index_close(ix);
}
END_TEST

START_TEST(test_persistence)
{
	struct index *ix = open_ix();
	struct ns_source src = build_std(ix, 10), again;
	struct ns_attr a;

	ck_assert_int_eq(index_source_get(ix, "file:///other", &again), -ENOENT);
	index_close(ix);
	ix = open_ix();
	ck_assert_int_eq(index_source_get(ix, URL, &again), 0);
	ck_assert_uint_eq(again.srcid, src.srcid);
	ck_assert_uint_eq(again.files, src.files);
	ck_assert_uint_eq(again.dirs, src.dirs);
	ck_assert_uint_eq(again.next_ino, src.next_ino);
	ck_assert_int_eq(again.listed_ns, src.listed_ns);
	ck_assert_int_eq(index_resolve(ix, again.srcid, "a/b/c/deep.bin", &a), 0);
	ck_assert_str_eq(a.etag, "\"etag-1\"");
	index_close(ix);
}
END_TEST

START_TEST(test_relisting)
{
	struct index *ix = open_ix();
	struct ns_source old = build_std(ix, 30), cur, got;
	struct ns_builder *b;
	struct backend_stat st = st_of(5, 5, "");
	struct ns_attr a, olddeep;
	struct dir_list dl = { .n = 0 };

	ck_assert_int_eq(index_resolve(ix, old.srcid, "a/b/c/deep.bin", &olddeep), 0);
	/* an aborted relisting changes nothing */
	ck_assert_int_eq(index_ns_begin(ix, URL, &b), 0);
	ck_assert_int_eq(index_ns_add(b, "zzz", &st), 0);
	index_ns_abort(b);
	ck_assert_int_eq(index_source_get(ix, URL, &got), 0);
	ck_assert_uint_eq(got.srcid, old.srcid);

	ck_assert_int_eq(index_ns_begin(ix, URL, &b), 0);
	ck_assert_int_eq(index_ns_add(b, "new/one", &st), 0);
	ck_assert_int_eq(index_ns_add(b, "top.txt", &st), 0);
	ck_assert_int_eq(index_ns_commit(b, &cur), 0);
	ck_assert_uint_ne(cur.srcid, old.srcid);
	ck_assert_uint_eq(cur.files, 2);
	ck_assert_uint_eq(cur.dirs, 2);
	ck_assert_int_eq(index_source_get(ix, URL, &got), 0);
	ck_assert_uint_eq(got.srcid, cur.srcid);
	ck_assert_int_eq(index_resolve(ix, cur.srcid, "new/one", &a), 0);
	ck_assert_int_eq(index_resolve(ix, cur.srcid, "top.txt", &a), 0);
	ck_assert_uint_eq(a.size, 5);
	ck_assert_int_eq(index_resolve(ix, cur.srcid, "a/b/c/deep.bin", &a), -ENOENT);
	/* the old snapshot's entries are gone */
	ck_assert_int_eq(index_resolve(ix, old.srcid, "a/b/c/deep.bin", &a), -ENOENT);
	ck_assert_int_eq(index_getattr(ix, old.srcid, olddeep.ino, &a), -ENOENT);
	ck_assert_int_eq(index_getattr(ix, old.srcid, INDEX_ROOT_INO, &a), -ENOENT);
	ck_assert_int_eq(index_readdir(ix, old.srcid, INDEX_ROOT_INO, list_cb, &dl), 0);
	ck_assert_int_eq(dl.n, 0);
	dl.n = 0;
	ck_assert_int_eq(index_readdir(ix, cur.srcid, INDEX_ROOT_INO, list_cb, &dl), 0);
	ck_assert_int_eq(dl.n, 2);
	ck_assert_str_eq(dl.names[0], "new");
	ck_assert_str_eq(dl.names[1], "top.txt");
	/* two sources keep separate snapshots */
	ck_assert_int_eq(index_ns_begin(ix, "s3://bucket/x", &b), 0);
	ck_assert_int_eq(index_ns_add(b, "top.txt", &st), 0);
	ck_assert_int_eq(index_ns_commit(b, &got), 0);
	ck_assert_uint_ne(got.srcid, cur.srcid);
	ck_assert_int_eq(index_resolve(ix, cur.srcid, "new/one", &a), 0);
	index_close(ix);
}
END_TEST

/* More entries than one builder batch, then a relisting that drops them all. */
START_TEST(test_big_relisting)
{
	struct index *ix = open_ix();
	struct ns_source old = build_std(ix, 25000), cur;
	struct ns_builder *b;
	struct backend_stat st = st_of(1, 1, "");
	struct ns_attr a;
	struct dir_list dl = { .n = 0 };

	ck_assert_int_eq(index_resolve(ix, old.srcid, "many/f24999", &a), 0);
	ck_assert_uint_eq(a.size, 24999);
	ck_assert_int_eq(index_resolve(ix, old.srcid, "many", &a), 0);
	ck_assert_int_eq(index_readdir(ix, old.srcid, a.ino, list_cb, &dl), 0);
	ck_assert_int_eq(dl.n, 25000);
	ck_assert_int_eq(index_ns_begin(ix, URL, &b), 0);
	ck_assert_int_eq(index_ns_add(b, "only", &st), 0);
	ck_assert_int_eq(index_ns_commit(b, &cur), 0);
	dl.n = 0;
	ck_assert_int_eq(index_readdir(ix, old.srcid, a.ino, list_cb, &dl), 0);
	ck_assert_int_eq(dl.n, 0);
	ck_assert_int_eq(index_getattr(ix, old.srcid, old.next_ino - 1, &a), -ENOENT);
	ck_assert_int_eq(index_getattr(ix, old.srcid, 2, &a), -ENOENT);
	index_close(ix);
}
END_TEST

/* A directory segment longer than NAME_MAX must be refused, not overflow
 * the key buffer (index.c ensure_dir builds a 12+256-byte key from it). */
START_TEST(test_long_dir_segment)
{
	struct index *ix = open_ix();
	struct ns_builder *b;
	struct backend_stat st = st_of(1, 1, "");
	char key[700];

	memset(key, 'd', 600);
	strcpy(key + 600, "/file");
	ck_assert_int_eq(index_ns_begin(ix, URL, &b), 0);
	ck_assert_int_eq(index_ns_add(b, key, &st), -ENAMETOOLONG);
	ck_assert_int_eq(index_ns_add(b, "fine", &st), 0);
	ck_assert_int_eq(index_ns_commit(b, NULL), 0);
	index_close(ix);
}
END_TEST

/* A refused 256-byte directory name leaves nothing behind in the snapshot. */
START_TEST(test_256_dir_segment)
{
	struct index *ix = open_ix();
	struct ns_builder *b;
	struct ns_source src;
	struct backend_stat st = st_of(1, 1, "");
	struct dir_list dl = { .n = 0 };
	struct ns_attr a;
	char key[300];

	memset(key, 'd', 256);
	strcpy(key + 256, "/file");
	ck_assert_int_eq(index_ns_begin(ix, URL, &b), 0);
	ck_assert_int_eq(index_ns_add(b, key, &st), -ENAMETOOLONG);
	ck_assert_int_eq(index_ns_add(b, "fine", &st), 0);
	ck_assert_int_eq(index_ns_commit(b, &src), 0);
	ck_assert_uint_eq(src.files, 1);
	ck_assert_uint_eq(src.dirs, 1);
	ck_assert_int_eq(index_readdir(ix, src.srcid, INDEX_ROOT_INO, list_cb, &dl), 0);
	ck_assert_int_eq(dl.n, 1);
	ck_assert_str_eq(dl.names[0], "fine");
	key[256] = 0;
	ck_assert_int_eq(index_lookup(ix, src.srcid, INDEX_ROOT_INO, key, &a), -ENAMETOOLONG);
	index_close(ix);
}
END_TEST

/* Source URLs are not bounded by LMDB's 511-byte key limit. */
START_TEST(test_long_url)
{
	struct index *ix = open_ix();
	struct ns_builder *b;
	struct ns_source src, got;
	struct backend_stat st = st_of(1, 1, "");
	char url[700];

	memset(url, 'u', sizeof(url) - 1);
	url[sizeof(url) - 1] = 0;
	memcpy(url, "file:///", 8);
	ck_assert_int_eq(index_ns_begin(ix, url, &b), 0);
	ck_assert_int_eq(index_ns_add(b, "f", &st), 0);
	ck_assert_int_eq(index_ns_commit(b, &src), 0);
	ck_assert_int_eq(index_source_get(ix, url, &got), 0);
	ck_assert_uint_eq(got.srcid, src.srcid);
	index_close(ix);
}
END_TEST

START_TEST(test_set_identity)
{
	struct index *ix = open_ix();
	struct ns_source src = build_std(ix, 0);
	struct backend_stat st = st_of(4242, 999, "\"new-etag\"");
	struct ns_attr a, b2;
	char path[256];

	ck_assert_int_eq(index_resolve(ix, src.srcid, "a/b/c/deep.bin", &a), 0);
	ck_assert_int_eq(index_set_identity(ix, src.srcid, a.ino, &st), 0);
	ck_assert_int_eq(index_getattr(ix, src.srcid, a.ino, &b2), 0);
	ck_assert_uint_eq(b2.size, 4242);
	ck_assert_int_eq(b2.mtime_ns, 999);
	ck_assert_str_eq(b2.etag, "\"new-etag\"");
	ck_assert_uint_eq(b2.parent, a.parent);
	ck_assert(!b2.is_dir);
	ck_assert_int_eq(index_path(ix, src.srcid, a.ino, path, sizeof(path)), 0);
	ck_assert_str_eq(path, "a/b/c/deep.bin");
	ck_assert_int_eq(index_resolve(ix, src.srcid, "a/b/c/deep.bin", &b2), 0);
	ck_assert_uint_eq(b2.size, 4242);
	/* a full-length etag is cut to fit, still NUL-terminated */
	memset(st.etag, 'e', sizeof(st.etag));
	ck_assert_int_eq(index_set_identity(ix, src.srcid, a.ino, &st), 0);
	ck_assert_int_eq(index_getattr(ix, src.srcid, a.ino, &b2), 0);
	ck_assert_uint_eq(strlen(b2.etag), BACKEND_ETAG_MAX - 1);
	ck_assert_int_eq(index_set_identity(ix, src.srcid, 1u << 30, &st), -ENOENT);
	index_close(ix);
}
END_TEST

/* ---- object records ---- */

static struct obj_rec *make_rec(uint8_t tag, uint32_t nchunks)
{
	struct obj_rec *r = index_obj_alloc(nchunks);

	ck_assert_ptr_nonnull(r);
	ck_assert_uint_eq(r->nchunks, nchunks);
	for (int i = 0; i < CID_LEN; i++)
		r->cid[i] = (uint8_t)(tag * 17 + i);
	r->chunk_size = 1u << 20;
	r->size = (uint64_t)nchunks << 20;
	r->access_count = 1000u + tag;
	r->last_access_ns = -5 - tag;
	r->importance = 0.25 * tag;
	r->next_use = 77u + tag;
	r->flags = tag;
	for (uint32_t c = 0; c < nchunks; c++)
		if ((c + tag) % 3) {
			r->present[c >> 3] |= (uint8_t)(1u << (c & 7));
			r->sums[c] = 0x0123456789abcdefull ^ ((uint64_t)c << 32) ^ tag;
		}
	return r;
}

static void same_rec(const struct obj_rec *a, const struct obj_rec *b)
{
	ck_assert_mem_eq(a->cid, b->cid, CID_LEN);
	ck_assert_uint_eq(a->size, b->size);
	ck_assert_uint_eq(a->chunk_size, b->chunk_size);
	ck_assert_uint_eq(a->nchunks, b->nchunks);
	ck_assert_uint_eq(a->access_count, b->access_count);
	ck_assert_int_eq(a->last_access_ns, b->last_access_ns);
	ck_assert_double_eq(a->importance, b->importance);
	ck_assert_uint_eq(a->next_use, b->next_use);
	ck_assert_uint_eq(a->flags, b->flags);
	for (uint32_t c = 0; c < a->nchunks; c++) {
		ck_assert_int_eq(obj_chunk_present(a, c), obj_chunk_present(b, c));
		if (obj_chunk_present(a, c))
			ck_assert_uint_eq(a->sums[c], b->sums[c]);
	}
}

struct seen {
	int n;
	uint8_t tags[16];
	int stop_after;
};

static int obj_cb(void *arg, const struct obj_rec *r)
{
	struct seen *s = arg;

	if (s->n < 16)
		s->tags[s->n] = (uint8_t)r->flags;
	s->n++;
	return s->stop_after && s->n >= s->stop_after;
}

START_TEST(test_objects)
{
	struct index *ix = open_ix();
	static const uint32_t sizes[] = { 1, 7, 8, 9, 64, 65, 1000 };
	struct obj_rec *recs[7], *got;
	struct seen seen = { 0 };

	for (int i = 0; i < 7; i++)
		recs[i] = make_rec((uint8_t)(i + 1), sizes[i]);
	ck_assert_int_eq(index_obj_put(ix, recs[0]), 0);
	ck_assert_int_eq(index_obj_put_many(ix, recs + 1, 6), 0);
	for (int i = 0; i < 7; i++) {
		ck_assert_int_eq(index_obj_get(ix, recs[i]->cid, &got), 0);
		same_rec(recs[i], got);
		index_obj_free(got);
	}
	/* overwrite one */
	recs[2]->access_count = 5;
	recs[2]->present[0] = 0xff;
	recs[2]->sums[0] = 42;
	ck_assert_int_eq(index_obj_put(ix, recs[2]), 0);
	index_close(ix);

	ix = open_ix();
	ck_assert_int_eq(index_obj_get(ix, recs[2]->cid, &got), 0);
	same_rec(recs[2], got);
	ck_assert_uint_eq(got->access_count, 5);
	index_obj_free(got);
	ck_assert_int_eq(index_obj_foreach(ix, obj_cb, &seen), 0);
	ck_assert_int_eq(seen.n, 7);
	seen.n = 0;
	seen.stop_after = 2;
	ck_assert_int_eq(index_obj_foreach(ix, obj_cb, &seen), 0);
	ck_assert_int_eq(seen.n, 2);

	ck_assert_int_eq(index_obj_del(ix, recs[3]->cid), 0);
	ck_assert_int_eq(index_obj_del(ix, recs[3]->cid), 0); /* absent: harmless */
	got = (struct obj_rec *)1;
	ck_assert_int_eq(index_obj_get(ix, recs[3]->cid, &got), -ENOENT);
	ck_assert_ptr_null(got);
	seen.n = 0;
	seen.stop_after = 0;
	ck_assert_int_eq(index_obj_foreach(ix, obj_cb, &seen), 0);
	ck_assert_int_eq(seen.n, 6);
	for (int i = 0; i < seen.n; i++)
		ck_assert_uint_ne(seen.tags[i], 4);
	ck_assert_uint_gt(index_disk_bytes(ix), 0);
	index_sync(ix);
	index_close(ix);
	for (int i = 0; i < 7; i++)
		index_obj_free(recs[i]);
}
END_TEST

START_TEST(test_obj_zero_chunks)
{
	struct index *ix = open_ix();
	struct obj_rec *r = make_rec(9, 0), *got;

	ck_assert_int_eq(index_obj_put(ix, r), 0);
	ck_assert_int_eq(index_obj_get(ix, r->cid, &got), 0);
	same_rec(r, got);
	index_obj_free(got);
	index_obj_free(r);
	index_close(ix);
}
END_TEST

static int under_valgrind(void)
{
	const char *p = getenv("LD_PRELOAD");

	return p && strstr(p, "vgpreload") != NULL;
}

/* KiB of the index's data file mapped into this process (smaps Rss). */
static long mapped_kib(void)
{
	char line[512], path[160];
	long kib = 0, v;
	int in = 0;
	FILE *f = fopen("/proc/self/smaps", "r");

	ck_assert_ptr_nonnull(f);
	snprintf(path, sizeof(path), "%s/data.mdb", ixdir);
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;

		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2) /* a mapping's first line */
			in = strstr(line, path) != NULL;
		else if (in && sscanf(line, "Rss: %ld kB", &v) == 1)
			kib += v;
	}
	fclose(f);
	return kib;
}

/* Index pages a read touches do not stay mapped (the map is trimmed as
 * reads go, and by index_trim), and reads after a trim see the same bytes. */
START_TEST(test_trim)
{
	enum { BATCH = 500, CHUNKS = 200 };
	/* Memcheck takes minutes over the full size: a quarter still tells. */
	const int N = under_valgrind() ? 1500 : 6000;
	struct index *ix = open_ix();
	struct obj_rec *recs[BATCH], *got;
	long db_kib, after_reads;

	index_set_trim_floor(ix, 0); /* the index here is smaller than the floor */
	for (int b = 0; b < N / BATCH; b++) {
		for (int i = 0; i < BATCH; i++) {
			uint32_t x = (uint32_t)(b * BATCH + i) * 2654435761u;

			recs[i] = make_rec((uint8_t)i, CHUNKS);
			memcpy(recs[i]->cid, &x, sizeof(x)); /* spread over the tree */
			memcpy(recs[i]->cid + 4, &b, sizeof(b));
		}
		ck_assert_int_eq(index_obj_put_many(ix, recs, BATCH), 0);
		for (int i = 0; i < BATCH; i++)
			index_obj_free(recs[i]);
	}
	db_kib = (long)(index_disk_bytes(ix) >> 10);
	ck_assert_int_gt(db_kib, (long)N * CHUNKS * 8 / 1024); /* big enough to tell */
	for (int b = 0; b < N / BATCH; b++)
		for (int i = 0; i < BATCH; i++) {
			uint32_t x = (uint32_t)(b * BATCH + i) * 2654435761u;
			uint8_t cid[CID_LEN];
			struct obj_rec *want = make_rec((uint8_t)i, CHUNKS);

			memcpy(want->cid, &x, sizeof(x));
			memcpy(want->cid + 4, &b, sizeof(b));
			memcpy(cid, want->cid, CID_LEN);
			ck_assert_int_eq(index_obj_get(ix, cid, &got), 0);
			same_rec(want, got);
			index_obj_free(got);
			index_obj_free(want);
			if (b == N / BATCH / 2 && i == 0)
				index_trim(ix); /* and the rest is read after a trim */
		}
	after_reads = mapped_kib();
	/* Without trimming every page read would still be mapped. */
	ck_assert_int_lt(after_reads, db_kib / 2);
	index_trim(ix);
	ck_assert_int_le(mapped_kib(), 16);
	index_close(ix);
}
END_TEST

START_TEST(test_open_errors)
{
	struct index *ix = (struct index *)1;
	char path[200];
	FILE *f;

	/* a regular file where the directory should be */
	snprintf(path, sizeof(path), "%s/file", tmpdir);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fclose(f);
	ck_assert_int_lt(index_open(path, MAP, &ix), 0);
	ck_assert_ptr_null(ix);
	snprintf(path, sizeof(path), "%s/no/such/dir", tmpdir);
	ck_assert_int_eq(index_open(path, MAP, &ix), -ENOENT);
}
END_TEST

static Suite *index_suite(void)
{
	Suite *s = suite_create("index");
	TCase *tc = tcase_create("namespace");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_namespace);
	tcase_add_test(tc, test_persistence);
	tcase_add_test(tc, test_relisting);
	tcase_add_test(tc, test_big_relisting);
	tcase_add_test(tc, test_256_dir_segment);
	tcase_add_test(tc, test_long_url);
	tcase_add_test(tc, test_set_identity);
	suite_add_tcase(s, tc);

	/* a stack overflow while the bug stands: its own case, so that
	 * CK_EXCLUDE_TAGS=overflow keeps a CK_FORK=no run alive */
	tc = tcase_create("overflow");
	tcase_set_tags(tc, "overflow");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_long_dir_segment);
	suite_add_tcase(s, tc);

	tc = tcase_create("objects");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_objects);
	tcase_add_test(tc, test_obj_zero_chunks);
	tcase_add_test(tc, test_open_errors);
	tcase_add_test(tc, test_trim);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(index_suite());
	int failed;

	log_init("check_index", LOG_LVL_ERR, 0);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
