/* SPDX-License-Identifier: MIT */
/* The namespace snapshot: listing the source into the index, and the
 * identity (key, attributes, content id) of a file's current version. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
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

int ns_identity(const struct ns *ns, uint64_t ino, struct ns_attr *a, char *key, size_t keylen,
		uint8_t cid[CID_LEN])
{
	int rc = ns_getattr(ns, ino, a);

	if (!rc && a->is_dir)
		rc = -EISDIR;
	if (!rc)
		rc = ns_path(ns, ino, key, keylen);
	if (!rc)
		content_id(ns, key, a, cid);
	return rc;
}
