/* SPDX-License-Identifier: MIT */
/* The plan kept across remounts and restarts: the manifest, the job (specs
 * or explicit orders) and every rank's epoch and position are saved in the
 * index, beside the cache they plan for.  Three blobs per source:
 *   plan:<url>:man  srcid, manifest length, inode numbers
 *   plan:<url>:job  srcid, plan_export()'s bytes (empty: no plan)
 *   plan:<url>:pos  srcid, plan_export_positions()'s bytes
 * The manifest and the job are written together when a control write
 * changes them; positions are written by the flusher when they moved (so a
 * crash loses at most a second of progress: a restarted plan prefetches a
 * few files the readers already have).  A plan saved over another snapshot
 * of the source (relisted since) is dropped with a logged reason: its
 * sample indices mean other files. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "planstore.h"
#include "backends/base/log.h"
#include "backends/base/sbuf.h"
#include "backends/base/util.h"

#define KEYLEN 1200

static void key(const struct cache *c, const char *what, char *buf)
{
	snprintf(buf, KEYLEN, "plan:%.1100s:%s", c->be->url, what);
}

/* A blob of srcid followed by bytes. */
static int with_srcid(const struct cache *c, const void *b, size_t n, char **out, size_t *len)
{
	struct sbuf s = { 0 };

	sbuf_add(&s, (const char *)&c->ns.src.srcid, 4);
	sbuf_add(&s, b, n);
	return sbuf_done(&s, out, len);
}

/* Positions: saved when they differ from the last saved. */
static int save_positions_locked(struct cache *c, char **blob, size_t *len)
{
	void *pos;
	size_t plen;
	int rc = plan_export_positions(c->plan, &pos, &plen);

	if (!rc) {
		rc = with_srcid(c, pos, plen, blob, len);
		free(pos);
	}
	return rc;
}

int planstore_save(struct cache *c)
{
	char kman[KEYLEN], kjob[KEYLEN], kpos[KEYLEN];
	char *man = NULL, *job = NULL, *pos = NULL;
	size_t mlen = 0, jlen = 0, plen = 0;
	struct index_blob b[3];
	struct sbuf m = { 0 };
	void *exp = NULL;
	size_t elen = 0;
	uint64_t mgen;
	uint32_t n;
	int rc, nb = 0;

	key(c, "man", kman);
	key(c, "job", kjob);
	key(c, "pos", kpos);
	pthread_mutex_lock(&c->ot.lock);
	mgen = plan_manifest_gen(c->plan);
	n = plan_manifest_len(c->plan);
	if (mgen != c->saved_mgen && plan_has_manifest(c->plan)) {
		sbuf_add(&m, (const char *)&c->ns.src.srcid, 4);
		sbuf_add(&m, (const char *)&n, 4);
		for (uint32_t i = 0; i < n && !m.oom; i++) {
			uint64_t ino = plan_manifest_ino(c->plan, i);

			sbuf_add(&m, (const char *)&ino, 8);
		}
	}
	rc = plan_mode(c->plan) == PLAN_OFF ? 0 : plan_export(c->plan, &exp, &elen);
	if (!rc)
		rc = save_positions_locked(c, &pos, &plen);
	pthread_mutex_unlock(&c->ot.lock);
	if (!rc && m.n)
		rc = sbuf_done(&m, &man, &mlen);
	else
		sbuf_free(&m);
	if (!rc)
		rc = with_srcid(c, exp, elen, &job, &jlen);
	if (rc)
		goto out;
	if (man)
		b[nb++] = (struct index_blob){ kman, man, mlen };
	b[nb++] = (struct index_blob){ kjob, job, jlen };
	b[nb++] = (struct index_blob){ kpos, pos, plen };
	rc = index_blob_put(c->ix, b, (size_t)nb);
	if (!rc) {
		pthread_mutex_lock(&c->ot.lock);
		if (man)
			c->saved_mgen = mgen;
		free(c->saved_pos);
		c->saved_pos = pos;
		c->saved_pos_len = plen;
		pos = NULL;
		pthread_mutex_unlock(&c->ot.lock);
	}
out:
	if (rc)
		log_warn("cannot save the plan in the index: %s (it is kept in memory)", strerror(-rc));
	free(exp);
	free(man);
	free(job);
	free(pos);
	return rc;
}

void planstore_tick(struct cache *c)
{
	char kpos[KEYLEN], *pos = NULL;
	size_t plen = 0;
	int rc, same;

	pthread_mutex_lock(&c->ot.lock);
	if (plan_mode(c->plan) == PLAN_OFF || !c->saved_pos) {
		pthread_mutex_unlock(&c->ot.lock);
		return;
	}
	rc = save_positions_locked(c, &pos, &plen);
	same = !rc && plen == c->saved_pos_len && !memcmp(pos, c->saved_pos, plen);
	pthread_mutex_unlock(&c->ot.lock);
	if (rc || same) {
		free(pos);
		return;
	}
	key(c, "pos", kpos);
	rc = index_blob_put(c->ix, &(struct index_blob){ kpos, pos, plen }, 1);
	pthread_mutex_lock(&c->ot.lock);
	if (!rc) {
		free(c->saved_pos);
		c->saved_pos = pos;
		c->saved_pos_len = plen;
		pos = NULL;
	}
	pthread_mutex_unlock(&c->ot.lock);
	free(pos);
}

/* Forget the saved plan of this source. */
static void drop(struct cache *c, const char *why)
{
	char kman[KEYLEN], kjob[KEYLEN], kpos[KEYLEN];
	struct index_blob b[3] = { { kman, NULL, 0 }, { kjob, NULL, 0 }, { kpos, NULL, 0 } };

	key(c, "man", kman);
	key(c, "job", kjob);
	key(c, "pos", kpos);
	if (why)
		log_warn("the saved plan is dropped: %s", why);
	if (index_blob_put(c->ix, b, 3))
		log_warn("cannot remove the saved plan from the index");
}

/* A blob's bytes after its srcid, when it is of the current snapshot. */
static const uint8_t *of_snapshot(const struct cache *c, const void *b, size_t len, size_t *rest)
{
	uint32_t id;

	if (!b || len < 4)
		return NULL;
	memcpy(&id, b, 4);
	*rest = len - 4;
	return id == c->ns.src.srcid ? (const uint8_t *)b + 4 : NULL;
}

int planstore_restore(struct cache *c, int forget)
{
	char kman[KEYLEN], kjob[KEYLEN], kpos[KEYLEN];
	void *man = NULL, *job = NULL, *pos = NULL;
	size_t mlen, jlen, plen, mr = 0, jr = 0, pr = 0;
	const uint8_t *mb, *jb, *pb;
	uint64_t *inos = NULL;
	uint32_t n;
	int rc;

	key(c, "man", kman);
	key(c, "job", kjob);
	key(c, "pos", kpos);
	if (forget) {
		drop(c, NULL);
		log_info("--forget-plan: the saved plan is discarded");
		return 0;
	}
	rc = index_blob_get(c->ix, kman, &man, &mlen);
	if (rc == -ENOENT)
		return 0; /* nothing saved */
	if (!rc)
		rc = index_blob_get(c->ix, kjob, &job, &jlen);
	if (!rc && index_blob_get(c->ix, kpos, &pos, &plen))
		pos = NULL;
	if (rc) {
		drop(c, "it cannot be read from the index");
		goto out;
	}
	mb = of_snapshot(c, man, mlen, &mr);
	jb = of_snapshot(c, job, jlen, &jr);
	pb = of_snapshot(c, pos, pos ? plen : 0, &pr);
	if (!mb || !jb) {
		drop(c, "the source was listed again since it was saved (its sample indices would "
			"name other files); write the seed or order again");
		goto out;
	}
	memcpy(&n, mb, mr >= 4 ? 4 : 0);
	if (mr < 4 || (mr - 4) / 8 != n || (mr - 4) % 8) {
		drop(c, "its manifest record is damaged");
		goto out;
	}
	inos = ec_malloc(((size_t)n + 1) * sizeof(*inos));
	if (!inos) {
		rc = -ENOMEM;
		goto out;
	}
	memcpy(inos, mb + 4, (size_t)n * 8);
	pthread_mutex_lock(&c->ot.lock);
	rc = plan_set_manifest(c->plan, inos, n);
	if (!rc) {
		inos = NULL;
		c->saved_mgen = plan_manifest_gen(c->plan);
		if (jr)
			rc = plan_import(c->plan, jb, jr, pb, pr);
	}
	pthread_mutex_unlock(&c->ot.lock);
	if (rc) {
		drop(c, rc == -ENOMEM ? "out of memory" : "it does not fit its manifest");
		pthread_mutex_lock(&c->ot.lock);
		plan_off(c->plan);
		pthread_mutex_unlock(&c->ot.lock);
		goto out;
	}
	pthread_mutex_lock(&c->ot.lock);
	if (plan_mode(c->plan) != PLAN_OFF) {
		prefetch_plan_changed_locked(&c->pf);
		log_info("restored the plan: %u ranks, epoch %llu, %llu of %llu positions read",
			 plan_nranks(c->plan), (unsigned long long)plan_epoch(c->plan),
			 (unsigned long long)plan_position(c->plan),
			 (unsigned long long)plan_epoch_length(c->plan));
	}
	pthread_mutex_unlock(&c->ot.lock);
	rc = 0;
out:
	free(inos);
	free(man);
	free(job);
	free(pos);
	return rc;
}
