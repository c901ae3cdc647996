/* SPDX-License-Identifier: MIT */
/* The cache engine's handle: configuration, opening (lock the directory,
 * open the index and the store, reuse or build the namespace snapshot, load
 * the object records, start the threads) and closing, and the small public
 * accessors.  engine.h says what a `struct cache` is made of; the work is
 * done by the layers: objtab.c, fill.c, read.c, records.c, prefetch.c,
 * subst.c, ns.c, stats.c, control.c. */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "dirlock.h"
#include "engine.h"
#include "planstore.h"
#include "backends/base/log.h"
#include "backends/base/util.h"

void cache_config_init(struct cache_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->cache_dir = "/var/cache/epochfs";
	cfg->capacity_pct = 50;
	cfg->chunk_size = CACHE_DEFAULT_CHUNK;
	cfg->policy = POLICY_SHADE;
	cfg->list_ttl_s = -1;
	cfg->flush_ms = 1000;
	cfg->substitute_deadline_ms = 20;
	cfg->stage_ahead = -1;
}

static int resolve_capacity(struct cache *c, char *err, size_t errlen)
{
	struct statvfs sv;

	c->ot.capacity = c->cfg.capacity;
	if (!c->ot.capacity) {
		if (statvfs(c->dir, &sv) < 0) {
			snprintf(err, errlen, "cache dir %s: %s", c->dir, strerror(errno));
			return -errno;
		}
		c->ot.capacity =
			(uint64_t)((double)sv.f_blocks * sv.f_frsize * c->cfg.capacity_pct / 100.0);
	}
	return 0;
}

/* The index, damaged ones replaced by an empty one. */
static int open_index(struct cache *c, char *err, size_t errlen)
{
	char path[PATH_MAX];
	int rc;

	snprintf(path, sizeof(path), "%s/index", c->dir);
	rc = index_open(path, 1ull << 36, &c->ix);
	if (rc == -EUCLEAN) {
		log_warn("cache index %s is damaged; starting an empty cache", path);
		snprintf(path, sizeof(path), "%s/index/data.mdb", c->dir);
		unlink(path);
		snprintf(path, sizeof(path), "%s/index", c->dir);
		rc = index_open(path, 1ull << 36, &c->ix);
	}
	if (rc)
		snprintf(err, errlen, "cache index %s: %s", path, strerror(-rc));
	return rc;
}

/* The snapshot of the source: the index's, or a new listing. */
static int load_namespace(struct cache *c, char *err, size_t errlen)
{
	const struct cache_config *cfg = &c->cfg;
	int rc = index_source_get(c->ix, c->be->url, &c->ns.src);

	if (rc != 0 || cfg->refresh ||
	    (cfg->list_ttl_s >= 0 && wall_ns() - c->ns.src.listed_ns > cfg->list_ttl_s * 1000000000ll))
		return ns_build(&c->ns, err, errlen);
	log_info("using the snapshot of %s from the index (%llu files)", c->be->url,
		 (unsigned long long)c->ns.src.files);
	return 0;
}

/* Wire the layers to each other (engine.h). */
static void wire(struct cache *c)
{
	const struct cache_config *cfg = &c->cfg;

	c->ns.ix = c->ix;
	c->ns.be = c->be;
	c->ot.on_evict = prefetch_on_evict;
	c->ot.on_evict_arg = &c->pf;
	c->fill = (struct fill){ .ot = &c->ot, .ns = &c->ns, .be = c->be, .st = c->st,
				 .ctr = &c->ctr, .ep = &c->ep, .plan = c->plan, .dir = c->dir,
				 .wake_all = cfg->substitute != SUBST_OFF,
				 .on_prefetch_settled = prefetch_on_settled, .hook_arg = &c->pf };
	c->sb.ot = &c->ot;
	c->sb.ns = &c->ns;
	c->sb.fl = &c->fill;
	c->sb.plan = c->plan;
	c->sb.ep = &c->ep;
	c->sb.mode = cfg->substitute;
	c->sb.deadline_ms = cfg->substitute_deadline_ms;
	c->pf.ot = &c->ot;
	c->pf.ns = &c->ns;
	c->pf.fl = &c->fill;
	c->pf.plan = c->plan;
	c->pf.sb = &c->sb;
	c->pf.ep = &c->ep;
	c->pf.be = c->be;
	c->pf.policy = cfg->policy;
	c->pf.max = cfg->prefetch_concurrency ? cfg->prefetch_concurrency : c->be->concurrency;
	c->pf.max_bytes = cfg->prefetch_bytes ? cfg->prefetch_bytes : 256ull << 20;
	c->pf.stage = cfg->stage_ahead < 0 ? PREFETCH_STAGE_DEFAULT : (unsigned)cfg->stage_ahead;
	c->pf.stage_bytes = PREFETCH_STAGE_BYTES;
}

int cache_open(const struct cache_config *cfg, struct backend *be, struct cache **out,
	       char *err, size_t errlen)
{
	struct cache *c;
	int rc;

	*out = NULL;
	*err = 0;
	if (!obj_chunk_size_ok(cfg->chunk_size)) {
		snprintf(err, errlen, "chunk size %u: not a power of two from 4K to 1G",
			 cfg->chunk_size);
		return -EINVAL;
	}
	c = ec_calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->cfg = *cfg;
	c->be = be;
	c->lockfd = -1;
	c->started_ns = now_ns();
	c->dir = realpath(cfg->cache_dir, NULL);
	if (!c->dir) {
		rc = -errno;
		snprintf(err, errlen, "cache dir %s: %s", cfg->cache_dir, strerror(errno));
		goto fail;
	}
	rc = dirlock_take(c->dir, &c->lockfd, err, errlen);
	if (!rc)
		rc = open_index(c, err, errlen);
	if (rc)
		goto fail;
	rc = store_open(c->dir, &c->st);
	if (rc) {
		snprintf(err, errlen, "cache store in %s: %s", c->dir, strerror(-rc));
		goto fail;
	}
	rc = policy_create(cfg->policy, &c->pol);
	if (!rc)
		rc = plan_create(&c->plan);
	if (!rc)
		rc = objtab_init(&c->ot, c->ix, c->st, c->pol, &c->ctr, cfg->chunk_size);
	if (rc)
		goto fail;
	wire(c);
	c->fill.owns = cfg->owns;
	c->fill.owns_arg = cfg->owns_arg;
	plan_set_cluster(c->plan, cfg->owns != NULL);
	rc = resolve_capacity(c, err, errlen);
	if (!rc)
		rc = load_namespace(c, err, errlen);
	if (!rc && ns_table_open(&c->ns))
		log_warn("no memory for the identity table: every open reads the index");
	if (!rc)
		rc = records_load(c, err, errlen);
	if (rc)
		goto fail;
	log_info("cache %s: %llu objects, %llu of %llu bytes used", c->dir,
		 (unsigned long long)c->ot.cached_objs,
		 (unsigned long long)objtab_used_locked(&c->ot),
		 (unsigned long long)c->ot.capacity);
	if (c->ot.meta_bytes + META_HEADROOM(c->ot.capacity) > c->ot.capacity)
		log_warn("cache size %llu is smaller than the index (%llu bytes): nothing will be cached",
			 (unsigned long long)c->ot.capacity, (unsigned long long)c->ot.meta_bytes);
	rc = records_start_flusher(c);
	if (!rc)
		rc = fill_start(&c->fill);
	if (!rc)
		rc = prefetch_start(&c->pf);
	if (!rc)
		rc = planstore_restore(c, cfg->forget_plan);
	if (rc)
		goto fail;
	*out = c;
	return 0;
fail:
	if (!*err)
		snprintf(err, errlen, "cannot open the cache: %s", strerror(-rc));
	cache_close(c);
	return rc;
}

void cache_close(struct cache *c)
{
	if (!c)
		return;
	dirlock_note(c->lockfd, c->dir, "closing"); /* a daemon waiting for the dir waits on */
	prefetch_stop(&c->pf);
	if (c->ix && c->plan)
		planstore_tick(c); /* the ranks' last positions */
	fill_stop(&c->fill);
	records_stop_flusher(c);
	if (c->ix && c->ot.table)
		records_flush(c);
	subst_destroy(&c->sb);
	plan_destroy(c->plan);
	objtab_destroy(&c->ot);
	ns_table_close(&c->ns);
	policy_destroy(c->pol);
	store_close(c->st);
	index_close(c->ix);
	if (c->lockfd >= 0)
		close(c->lockfd);
	free(c->dir);
	free(c->mountpoint);
	free(c->saved_pos);
	free(c);
}

void cache_note_owner(struct cache *c, const char *state)
{
	dirlock_note(c->lockfd, c->dir, state);
}

void cache_note_mounted(struct cache *c, const char *mountpoint)
{
	char *mp = ec_strdup(mountpoint);

	dirlock_note_mounted(c->lockfd, c->dir, mountpoint);
	/* Set once, before any control write can arrive; kept on ENOMEM-less
	 * paths only (an absolute path is then refused with a clear reason). */
	if (mp && !c->mountpoint)
		c->mountpoint = mp;
	else
		free(mp);
}

void cache_set_inval_hook(struct cache *c, void (*fn)(void *arg, uint64_t ino), void *arg)
{
	c->fill.inval = fn;
	c->fill.inval_arg = arg;
}

/* ---- the namespace, for fs/ ---- */

int cache_lookup(struct cache *c, uint64_t parent, const char *name, struct ns_attr *out)
{
	return index_lookup(c->ix, c->ns.src.srcid, parent, name, out);
}

int cache_getattr(struct cache *c, uint64_t ino, struct ns_attr *out)
{
	int rc = ns_getattr(&c->ns, ino, out);

	/* While a substituted handle is open, its path shows the served size. */
	if (!rc && c->cfg.substitute && !out->is_dir)
		subst_served_size(&c->sb, ino, &out->size);
	return rc;
}

int cache_readdir(struct cache *c, uint64_t ino, index_dir_fn fn, void *arg)
{
	return ns_readdir(&c->ns, ino, fn, arg);
}

int cache_resolve(struct cache *c, const char *path, struct ns_attr *out)
{
	return index_resolve(c->ix, c->ns.src.srcid, path, out);
}

uint64_t cache_nfiles(const struct cache *c)
{
	return c->ns.src.files;
}

/* ---- accessors ---- */

const struct cache_counters *cache_counters(const struct cache *c)
{
	return &c->ctr;
}

uint64_t cache_used_bytes(struct cache *c)
{
	uint64_t v;

	pthread_mutex_lock(&c->ot.lock);
	v = c->ot.data_bytes + c->ot.reserved + c->ot.meta_bytes;
	pthread_mutex_unlock(&c->ot.lock);
	return v;
}

uint64_t cache_capacity(const struct cache *c)
{
	return c->ot.capacity;
}
