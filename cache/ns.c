/* SPDX-License-Identifier: MIT */
/* The namespace snapshot: listing the source into the index, the identity
 * (key, attributes, content id) of a file's current version, and the
 * in-memory identity table that answers opens without the index. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "ns.h"
#include "backends/base/log.h"
#include "backends/base/util.h"

/* Listing.  Backends call back from threads of their own, but an LMDB write
 * transaction belongs to the thread that began it: so the backend lists on a
 * thread of its own into a bounded queue, and this thread fills the index. */
#define LIST_QUEUE 4096

struct list_item {
	char *key;
	struct backend_stat st;
};

struct list_ctx {
	struct ns *ns;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct list_item q[LIST_QUEUE];
	unsigned head, n;
	int done, list_rc, stop_rc;
};

static int list_cb(void *arg, const char *key, const struct backend_stat *st)
{
	struct list_ctx *lc = arg;
	char *k = ec_strdup(key);
	int rc;

	if (!k)
		return -ENOMEM;
	pthread_mutex_lock(&lc->lock);
	while (lc->n == LIST_QUEUE && !lc->stop_rc)
		pthread_cond_wait(&lc->cond, &lc->lock);
	rc = lc->stop_rc;
	if (!rc) {
		struct list_item *it = &lc->q[(lc->head + lc->n++) % LIST_QUEUE];

		it->key = k;
		it->st = *st;
		k = NULL;
		pthread_cond_broadcast(&lc->cond);
	}
	pthread_mutex_unlock(&lc->lock);
	free(k);
	return rc;
}

static void *lister_main(void *arg)
{
	struct list_ctx *lc = arg;
	int rc = backend_list(lc->ns->be, list_cb, lc);

	pthread_mutex_lock(&lc->lock);
	lc->done = 1;
	lc->list_rc = rc;
	pthread_cond_broadcast(&lc->cond);
	pthread_mutex_unlock(&lc->lock);
	return NULL;
}

/* Progress is logged every PROGRESS_S seconds of a long listing. */
#define PROGRESS_S 2

struct list_progress {
	uint64_t t0, next, n, skipped;
	const char *url;
};

/* n with a comma between groups of three digits ("120,000"). */
static const char *group_digits(uint64_t n, char *buf, size_t len)
{
	char d[24];
	int nd = snprintf(d, sizeof(d), "%llu", (unsigned long long)n);
	size_t o = 0;

	for (int i = 0; i < nd && o + 2 < len; i++) {
		if (i && (nd - i) % 3 == 0)
			buf[o++] = ',';
		buf[o++] = d[i];
	}
	buf[o] = 0;
	return buf;
}

/* Add one listed key; skipped keys are logged and counted, not errors. */
static int list_add(struct ns_builder *b, const char *key, const struct backend_stat *st,
		    struct list_progress *p)
{
	uint64_t now;
	int rc;

	/* The control directory cannot be shadowed by the dataset. */
	if (!strcmp(key, ".epochfs") || !strncmp(key, ".epochfs/", 9)) {
		log_warn("listing: '%s' hidden by the control directory .epochfs", key);
		p->skipped++;
		return 0;
	}
	rc = index_ns_add(b, key, st);
	if (rc == -EEXIST || rc == -ENAMETOOLONG) {
		log_warn("listing: '%s' skipped (%s)", key,
			 rc == -EEXIST ? "a file and a directory of the same name" : "name too long");
		p->skipped++;
		return 0;
	}
	if (rc)
		return rc;
	/* The clock is read every 64 entries only (a slow source sends few). */
	if (++p->n % 64 == 0 && (now = now_ns()) >= p->next) {
		char num[32];

		log_info("listing %s: listed %s objects, %.1f s", p->url,
			 group_digits(p->n, num, sizeof(num)), (double)(now - p->t0) / 1e9);
		p->next = now + PROGRESS_S * 1000000000ull;
	}
	return 0;
}

int ns_build(struct ns *ns, char *err, size_t errlen)
{
	struct list_ctx *lc;
	struct ns_builder *b;
	struct list_progress prog = { .t0 = now_ns(), .url = ns->be->url };
	pthread_t th;
	int rc, rc2 = 0;

	prog.next = prog.t0 + PROGRESS_S * 1000000000ull;
	lc = ec_calloc(1, sizeof(*lc));
	if (!lc)
		return -ENOMEM;
	lc->ns = ns;
	pthread_mutex_init(&lc->lock, NULL);
	pthread_cond_init(&lc->cond, NULL);
	rc = index_ns_begin(ns->ix, ns->be->url, &b);
	if (rc) {
		snprintf(err, errlen, "index: cannot start a listing: %s", strerror(-rc));
		goto out;
	}
	rc = -pthread_create(&th, NULL, lister_main, lc);
	if (rc) {
		index_ns_abort(b);
		goto out;
	}
	pthread_mutex_lock(&lc->lock);
	for (;;) {
		struct list_item it;

		while (!lc->n && !lc->done)
			pthread_cond_wait(&lc->cond, &lc->lock);
		if (!lc->n)
			break;
		it = lc->q[lc->head];
		lc->head = (lc->head + 1) % LIST_QUEUE;
		lc->n--;
		pthread_cond_broadcast(&lc->cond);
		pthread_mutex_unlock(&lc->lock);
		if (!rc2)
			rc2 = list_add(b, it.key, &it.st, &prog);
		free(it.key);
		pthread_mutex_lock(&lc->lock);
		if (rc2 && !lc->stop_rc) {
			lc->stop_rc = rc2; /* the lister stops at its next entry */
			pthread_cond_broadcast(&lc->cond);
		}
	}
	pthread_mutex_unlock(&lc->lock);
	pthread_join(th, NULL);
	rc = rc2 ? rc2 : lc->list_rc;
	if (rc) {
		index_ns_abort(b);
		if (!*err)
			snprintf(err, errlen, "listing %s failed: %s", ns->be->url, strerror(-rc));
		goto out;
	}
	rc = index_ns_commit(b, &ns->src);
	if (rc) {
		snprintf(err, errlen, "index: cannot save the listing: %s", strerror(-rc));
		goto out;
	}
	/* The inodes of the new snapshot are numbered afresh: a table of the
	 * old one must not answer for them (and checks the srcid besides). */
	if (atomic_load_explicit(&ns->tab, memory_order_acquire) && ns_table_open(ns))
		log_warn("no memory for the identity table: every open reads the index");
	log_info("listed %s: %llu files, %llu directories, %llu skipped, in %.2f s",
		 ns->be->url, (unsigned long long)ns->src.files, (unsigned long long)ns->src.dirs,
		 (unsigned long long)prog.skipped, (double)(now_ns() - prog.t0) / 1e9);
out:
	pthread_mutex_destroy(&lc->lock);
	pthread_cond_destroy(&lc->cond);
	free(lc);
	return rc;
}

static void content_id(const struct ns *ns, const char *key, const struct ns_attr *a,
		       uint8_t cid[CID_LEN])
{
	XXH3_state_t st;
	XXH128_hash_t h;
	XXH128_canonical_t canon;

	XXH3_128bits_reset(&st);
	XXH3_128bits_update(&st, ns->be->url, strlen(ns->be->url) + 1);
	XXH3_128bits_update(&st, key, strlen(key) + 1);
	XXH3_128bits_update(&st, &a->size, sizeof(a->size));
	XXH3_128bits_update(&st, &a->mtime_ns, sizeof(a->mtime_ns));
	XXH3_128bits_update(&st, a->etag, strlen(a->etag));
	h = XXH3_128bits_digest(&st);
	XXH128_canonicalFromHash(&canon, h);
	memcpy(cid, canon.digest, CID_LEN);
}

/* ---- the identity table ----
 *
 * The inodes of a snapshot are dense: the root is 1, and index_ns_add and
 * ensure_dir (index_ns.c) give every file and directory the next number, up
 * to src.next_ino - 1.  So the table is an array indexed by inode, sized
 * once for the snapshot, of 32 bytes an entry (content id, size and a
 * sequence word); its pages are zero until written, so a file never opened
 * costs no memory (calloc of a large array is an anonymous map).  What a
 * fetch needs besides (key, mtime, ETag) is not held here (an ImageNet key
 * and an S3 ETag are 60-100 bytes a file, over the daemon's budget of 150
 * bytes a file): a handle keeps what its open's index read gave (a miss,
 * ns_file_id_ex) or reads it at its first fetch (read.c, file_src).
 *
 * Entries are filled by the first ns_identity of each file (an open, the
 * prefetcher, a control file) and read without a lock, as a seqlock: seq is
 * version << 2 | VALID | BUSY.  A reader takes the words between two loads
 * of seq and keeps them only if seq was VALID, not BUSY, and unchanged
 * (the words are atomics, stored with release and loaded with acquire).  A
 * writer owns an entry by a compare-and-swap of seq to BUSY.
 *
 * The table never gets ahead of the index or stays behind it:
 * - a filler reads seq (s0) before it reads the index, and publishes only
 *   by a CAS from s0: so what it read is published only if no
 *   ns_set_identity bumped the version in between;
 * - ns_set_identity writes the index first and then bumps the version
 *   (clearing VALID), whether or not the entry was filled: a filler that
 *   read the old record before the write either published it before the
 *   bump (and it is dropped) or fails its CAS.
 * A relisting (ns_build, a new srcid, inodes numbered afresh) replaces the
 * table; the old one is kept until ns_table_close (a reader may still be
 * looking into it; relistings happen at mount, so that is one table) and
 * every lookup checks that its table is the snapshot's (srcid).  Nothing of
 * the table is on disk: a crash loses it, the next daemon refills it from
 * the index.  And whatever the table said, the bytes served are those of
 * the content id, each chunk checked against its checksum. */
#define IDT_BUSY 1u
#define IDT_VALID 2u
#define IDT_VER 4u

struct idt_ent {
	_Atomic uint64_t seq;
	_Atomic uint64_t w[3];  /* content id (16 bytes), size */
};

struct ns_idtab {
	uint32_t srcid;
	uint64_t n;               /* inodes 0 .. n - 1 */
	struct idt_ent *e;
	atomic_uint_fast64_t misses, fills;
	struct ns_idtab *next;    /* retired tables */
};

int ns_table_open(struct ns *ns)
{
	struct ns_idtab *t, *old;
	uint64_t n = ns->src.next_ino;

	/* A snapshot without a count (never made so) or beyond reason: none. */
	if (n <= INDEX_ROOT_INO || n > (1ull << 32))
		return 0;
	t = ec_calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->e = ec_calloc((size_t)n, sizeof(*t->e));
	if (!t->e) {
		free(t);
		return -ENOMEM;
	}
	t->srcid = ns->src.srcid;
	t->n = n;
	old = atomic_exchange_explicit(&ns->tab, t, memory_order_acq_rel);
	if (old) {
		old->next = ns->retired;
		ns->retired = old;
	}
	return 0;
}

static void idtab_free(struct ns_idtab *t)
{
	if (t) {
		free(t->e);
		free(t);
	}
}

void ns_table_close(struct ns *ns)
{
	struct ns_idtab *t;

	idtab_free(atomic_exchange(&ns->tab, NULL));
	while ((t = ns->retired)) {
		ns->retired = t->next;
		idtab_free(t);
	}
}

void ns_table_stats(const struct ns *ns, struct ns_table_stats *out)
{
	struct ns_idtab *t = atomic_load_explicit(&((struct ns *)ns)->tab, memory_order_acquire);

	memset(out, 0, sizeof(*out));
	if (t) {
		out->entries = t->n;
		out->misses = atomic_load_explicit(&t->misses, memory_order_relaxed);
		out->fills = atomic_load_explicit(&t->fills, memory_order_relaxed);
	}
}

/* The table's entry for ino in the snapshot in use, or NULL. */
static struct idt_ent *idt_entry(const struct ns *ns, uint64_t ino, struct ns_idtab **tp)
{
	struct ns_idtab *t = atomic_load_explicit(&((struct ns *)ns)->tab, memory_order_acquire);

	*tp = t;
	if (!t || t->srcid != ns->src.srcid || ino >= t->n)
		return NULL;
	return &t->e[ino];
}

/* Publish id in e if seq is still s0 (read before the index was). */
static void idt_publish(struct ns_idtab *t, struct idt_ent *e, uint64_t s0, const struct ns_fid *id)
{
	uint64_t w[2];

	if (s0 & IDT_BUSY ||
	    !atomic_compare_exchange_strong_explicit(&e->seq, &s0, s0 | IDT_BUSY,
						     memory_order_acquire, memory_order_relaxed))
		return; /* changed since, or being written: the next open fills it */
	/* Release stores (not a fence, which ThreadSanitizer does not model;
	 * on x86 both are plain moves): a reader that loads one of these
	 * values then sees BUSY or later in seq. */
	memcpy(w, id->cid, sizeof(w));
	atomic_store_explicit(&e->w[0], w[0], memory_order_release);
	atomic_store_explicit(&e->w[1], w[1], memory_order_release);
	atomic_store_explicit(&e->w[2], id->size, memory_order_release);
	atomic_store_explicit(&e->seq, ((s0 & ~(uint64_t)3) + IDT_VER) | IDT_VALID,
			      memory_order_release);
	atomic_fetch_add_explicit(&t->fills, 1, memory_order_relaxed);
}

/* Drop e's identity: a new version, not VALID.  A writer holds BUSY for
 * three stores; wait for it. */
static void idt_invalidate(struct idt_ent *e)
{
	uint64_t s = atomic_load_explicit(&e->seq, memory_order_relaxed);

	for (;;) {
		if (s & IDT_BUSY) {
			sched_yield();
			s = atomic_load_explicit(&e->seq, memory_order_relaxed);
			continue;
		}
		if (atomic_compare_exchange_weak_explicit(&e->seq, &s, (s & ~(uint64_t)3) + IDT_VER,
							  memory_order_acq_rel, memory_order_relaxed))
			return;
	}
}

/* The index's identity of ino; publishes it in e when seq is still s0. */
static int identity_fill(const struct ns *ns, uint64_t ino, struct ns_attr *a, char *key,
			 size_t keylen, uint8_t cid[CID_LEN], struct ns_idtab *t,
			 struct idt_ent *e, uint64_t s0)
{
	int rc = ns_getattr(ns, ino, a);

	if (!rc && a->is_dir)
		rc = -EISDIR;
	if (!rc)
		rc = ns_path(ns, ino, key, keylen);
	if (rc)
		return rc;
	content_id(ns, key, a, cid);
	if (e) {
		struct ns_fid id = { .size = a->size };

		memcpy(id.cid, cid, CID_LEN);
		idt_publish(t, e, s0, &id);
	}
	return 0;
}

int ns_identity(const struct ns *ns, uint64_t ino, struct ns_attr *a, char *key, size_t keylen,
		uint8_t cid[CID_LEN])
{
	struct ns_idtab *t;
	struct idt_ent *e = idt_entry(ns, ino, &t);
	uint64_t s0 = e ? atomic_load_explicit(&e->seq, memory_order_acquire) : IDT_BUSY;

	/* A VALID entry is left as it is: it is the index's record already. */
	return identity_fill(ns, ino, a, key, keylen, cid, t, e, s0 & IDT_VALID ? IDT_BUSY : s0);
}

int ns_file_id_ex(const struct ns *ns, uint64_t ino, struct ns_fid *out, struct ns_attr *a,
		  char *key, size_t keylen)
{
	struct ns_idtab *t;
	struct idt_ent *e = idt_entry(ns, ino, &t);
	uint64_t s0 = IDT_BUSY;
	int rc;

	if (e) {
		s0 = atomic_load_explicit(&e->seq, memory_order_acquire);
		if ((s0 & (IDT_VALID | IDT_BUSY)) == IDT_VALID) {
			/* Acquire loads: the second load of seq comes after them. */
			uint64_t w0 = atomic_load_explicit(&e->w[0], memory_order_acquire);
			uint64_t w1 = atomic_load_explicit(&e->w[1], memory_order_acquire);
			uint64_t size = atomic_load_explicit(&e->w[2], memory_order_acquire);

			if (atomic_load_explicit(&e->seq, memory_order_relaxed) == s0) {
				memcpy(out->cid, &w0, sizeof(w0));
				memcpy(out->cid + sizeof(w0), &w1, sizeof(w1));
				out->size = size;
				return 0;
			}
			s0 = IDT_BUSY; /* written meanwhile: read the index, publish nothing */
		}
	}
	if (t)
		atomic_fetch_add_explicit(&t->misses, 1, memory_order_relaxed);
	rc = identity_fill(ns, ino, a, key, keylen, out->cid, t, e, s0);
	if (rc)
		return rc;
	out->size = a->size;
	return 1;
}

int ns_file_id(const struct ns *ns, uint64_t ino, struct ns_fid *out)
{
	struct ns_attr a;
	char key[4096];
	int rc = ns_file_id_ex(ns, ino, out, &a, key, sizeof(key));

	return rc < 0 ? rc : 0;
}

int ns_set_identity(struct ns *ns, uint64_t ino, const struct backend_stat *st)
{
	int rc = index_set_identity(ns->ix, ns->src.srcid, ino, st);
	struct ns_idtab *t;
	struct idt_ent *e = idt_entry(ns, ino, &t);

	/* Even if the write failed: the table then reads the index again. */
	if (e)
		idt_invalidate(e);
	return rc;
}
