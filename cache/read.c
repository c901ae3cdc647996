/* SPDX-License-Identifier: MIT */
/* The read path: opening a file (which content it serves, what the open
 * tells the prefetcher), and serving a read from the store, from memory, or
 * by waiting for the fetch of the chunk.
 *
 * A read is cut at chunk boundaries; each chunk is a segment of the reply:
 * a range of its store file (spliced by fs/) once the chunk's checksum has
 * been checked in this daemon's life, else a buffer (the chunk read back
 * and checked, or fetched).  A chunk whose check fails is dropped and
 * fetched again.  The read never returns a short count (the kernel takes it
 * for end of file): all requested bytes up to the end of file, or an error. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine.h"
#include "backends/base/log.h"
#include "backends/base/util.h"

/* Open the store file of a pinned object whose fd was found closed; kept
 * until the object is unpinned. */
static int obj_fd(struct cache *c, struct obj *o)
{
	int fd = store_obj_open(c->st, o->cid, 0);

	if (fd < 0)
		return fd;
	pthread_mutex_lock(&c->ot.lock);
	if (o->act->fd >= 0) {
		close(fd);
		fd = o->act->fd;
	} else {
		o->act->fd = fd;
	}
	pthread_mutex_unlock(&c->ot.lock);
	return fd;
}

/* The key and identity at the source of the version a handle serves, read
 * from the index when a read first needs a fetch: an open answered by the
 * identity table (ns.c) knows only the content id and the size. */
struct file_src {
	struct backend_stat ident;
	char key[];
};

/* f's file_src, loaded once.  The index's record must still be the
 * version f was opened at (its content id): if the source changed since
 * (ns_set_identity), -ESTALE, and cache_file_read goes to changed_under;
 * a fetch with the new identity would store the new bytes under the old
 * content id.  0 or -errno. */
static struct file_src *file_src_new(const struct ns_attr *a, const char *key)
{
	size_t n = strlen(key);
	struct file_src *s = ec_malloc(sizeof(*s) + n + 1);

	if (!s)
		return NULL;
	memset(&s->ident, 0, sizeof(s->ident));
	s->ident.size = a->size;
	s->ident.mtime_ns = a->mtime_ns;
	memcpy(s->ident.etag, a->etag, sizeof(s->ident.etag));
	memcpy(s->key, key, n + 1);
	return s;
}

static int file_src(struct cache_file *f, struct file_src **out)
{
	struct file_src *s = atomic_load_explicit(&f->src, memory_order_acquire), *none = NULL;
	char key[KEY_MAX];
	uint8_t cid[CID_LEN];
	struct ns_attr a;
	int rc;

	*out = s;
	if (s)
		return 0;
	rc = ns_identity(&f->c->ns, f->ino, &a, key, sizeof(key), cid);
	if (rc)
		return rc == -ENOENT ? -ESTALE : rc;
	if (memcmp(cid, f->o->cid, CID_LEN) || a.size != f->o->size)
		return -ESTALE;
	s = file_src_new(&a, key);
	if (!s)
		return -ENOMEM;
	if (!atomic_compare_exchange_strong_explicit(&f->src, &none, s, memory_order_acq_rel,
						     memory_order_acquire)) {
		free(s); /* another read of the handle loaded it first */
		s = none;
	}
	*out = s;
	return 0;
}

/* f's key for a message: the loaded one, else the index's path. */
static const char *file_key(struct cache_file *f, char *buf, size_t len)
{
	struct file_src *s = atomic_load_explicit(&f->src, memory_order_acquire);

	if (s)
		return s->key;
	if (ns_path(&f->c->ns, f->ino, buf, len))
		snprintf(buf, len, "inode %llu", (unsigned long long)f->ino);
	return buf;
}

/* With substitution on: which file's bytes this open of ino (whose object
 * is cid) serves; 0 or -errno. */
static int pick_content(struct cache *c, uint64_t ino, const struct ns_fid *id, uint64_t *content)
{
	struct ns_attr a;
	struct obj *xo;
	uint64_t rewind;
	int rc;

	*content = ino;
	if (!c->cfg.substitute)
		return 0;
	/* Substitution looks at the directory: the index's record. */
	rc = ns_getattr(&c->ns, ino, &a);
	if (rc)
		return rc;
	rc = objtab_pin(&c->ot, id->cid, id->size, &xo);
	if (rc)
		return rc;
	subst_target(&c->sb, ino, &a, xo, content, &rewind);
	fill_unpin(&c->fill, xo);
	if (rewind != PLAN_NEVER) {
		pthread_mutex_lock(&c->ot.lock);
		prefetch_rewind_locked(&c->pf, rewind);
		pthread_mutex_unlock(&c->ot.lock);
	}
	return 0;
}

int cache_file_open(struct cache *c, uint64_t ino, struct cache_file **out)
{
	return cache_file_open_ex(c, ino, 1, out);
}

int cache_file_open_ex(struct cache *c, uint64_t ino, int access, struct cache_file **out)
{
	return cache_file_open_pid(c, ino, access, 0, out);
}

static int file_open(struct cache *c, uint64_t ino, int access, int subst, uint32_t pid,
		     struct cache_file **out);

int cache_file_open_pid(struct cache *c, uint64_t ino, int access, uint32_t pid,
			struct cache_file **out)
{
	return file_open(c, ino, access, 1, pid, out);
}

int cache_file_open_exact(struct cache *c, uint64_t ino, struct cache_file **out)
{
	int rc = file_open(c, ino, 0, 0, 0, out);

	if (rc)
		return rc;
	/* A peer's read: what was prefetched for it (the owner's cluster
	 * prefetch) is used. */
	pthread_mutex_lock(&c->ot.lock);
	if ((*out)->o->flags & OBJ_PREFETCHED) {
		(*out)->o->flags &= ~OBJ_PREFETCHED;
		atomic_fetch_add_explicit(&c->pf.used, 1, memory_order_relaxed);
	}
	pthread_mutex_unlock(&c->ot.lock);
	return 0;
}

/* subst: the open may serve another file's bytes (substitution on). */
static int file_open(struct cache *c, uint64_t ino, int access, int subst, uint32_t pid,
		     struct cache_file **out)
{
	struct cache_file *f;
	struct ns_fid id;
	struct ns_attr a;
	char key[KEY_MAX];
	uint64_t content;
	int rc, hit, miss;

	*out = NULL;
	f = ec_calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	/* The identity table: no index transaction for a file opened before.
	 * A file's first open reads the index, and keeps what its first
	 * read's fetch will need. */
	rc = ns_file_id_ex(&c->ns, ino, &id, &a, key, sizeof(key));
	miss = rc == 1;
	content = ino;
	if (rc >= 0)
		rc = subst ? pick_content(c, ino, &id, &content) : 0;
	if (!rc && content != ino) {
		rc = ns_file_id_ex(&c->ns, content, &id, &a, key, sizeof(key));
		miss = rc == 1;
	}
	if (rc < 0)
		goto fail;
	if (miss)
		atomic_init(&f->src, file_src_new(&a, key)); /* NULL: read again at a fetch */
	f->c = c;
	f->ino = content;
	f->open_ino = ino;
	f->substituted = content != ino;
	rc = objtab_pin(&c->ot, id.cid, id.size, &f->o);
	if (rc)
		goto fail;
	if (!access) {
		*out = f;
		return 0;
	}
	pthread_mutex_lock(&c->ot.lock);
	if (f->o->pe.freq < UINT32_MAX)
		f->o->pe.freq++;
	f->o->pe.last = (uint64_t)wall_ns();
	hit = f->o->npresent == obj_nchunks(f->o);
	f->checked = hit;
	for (uint32_t k = 0; f->checked && k < obj_nchunks(f->o); k++)
		f->checked = obj_bit(f->o, OBJ_VERIFIED, k);
	obj_mark_dirty(f->o);
	if (epoch_cur(&c->ep)) {
		epoch_cur(&c->ep)->opens++;
		epoch_cur(&c->ep)->open_hits += hit;
	}
	prefetch_on_open_locked(&c->pf, f->o, ino, content, pid);
	pthread_mutex_unlock(&c->ot.lock);
	if (f->substituted)
		subst_handle_open(&c->sb, ino, id.size);
	atomic_fetch_add_explicit(&c->ctr.opens, 1, memory_order_relaxed);
	if (hit)
		atomic_fetch_add_explicit(&c->ctr.open_hits, 1, memory_order_relaxed);
	*out = f;
	return 0;
fail:
	free(atomic_load(&f->src));
	free(f);
	return rc;
}

int cache_file_substituted(const struct cache_file *f)
{
	return f->substituted;
}

int cache_file_passable(const struct cache_file *f)
{
	return f->checked && !f->substituted && !f->stale && f->o->size &&
	       !atomic_load(&((struct cache_file *)f)->repl);
}

int cache_file_store_fd(struct cache_file *f)
{
	return store_obj_open_read(f->c->st, f->o->cid);
}

_Static_assert(CACHE_CID_LEN == CID_LEN, "content id length");

const uint8_t *cache_file_version(const struct cache_file *f)
{
	return f->o->cid;
}

void cache_note_passthrough(struct cache_file *f)
{
	struct cache *c = f->c;

	atomic_fetch_add_explicit(&c->ctr.passthrough_opens, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&c->ctr.read_bytes, f->o->size, memory_order_relaxed);
	atomic_fetch_add_explicit(&c->ctr.read_bytes_from_cache, f->o->size, memory_order_relaxed);
}

void cache_set_no_open(struct cache *c, int no_open)
{
	c->cfg.no_open = no_open;
}

int cache_substitute_mode(const struct cache *c)
{
	return c->cfg.substitute;
}

void cache_file_close(struct cache_file *f)
{
	if (!f)
		return;
	cache_file_close(atomic_load(&f->repl));
	if (f->substituted)
		subst_handle_close(&f->c->sb, f->open_ino);
	fill_unpin(&f->c->fill, f->o);
	free(atomic_load(&f->src));
	free(f);
}

uint64_t cache_file_size(const struct cache_file *f)
{
	const struct cache_file *r = atomic_load(&((struct cache_file *)f)->repl);

	return r ? cache_file_size(r) : f->o->size;
}

/* Make chunk k of f's object readable: a segment of the store file, or of
 * memory held in *hold (a fetch when *is_fetch).  [want, want + wlen) is
 * the part of the chunk the read asks for: a verified chunk read with
 * O_DIRECT (store.c, store_read_direct) is read only there, and the
 * segment is that part alone (else the segment is the whole chunk).  The
 * first time a chunk is served in this daemon's life its bytes are read
 * back whole and their xxh3 checked, whatever the way of reading.
 * 0 or -errno. */
static int chunk_get(struct cache_file *f, uint32_t k, uint64_t want, size_t wlen,
		     struct cache_seg *seg, void **hold, int *is_fetch, int *from_cache)
{
	struct cache *c = f->c;
	struct obj *o = f->o;
	struct fetch *fe;
	struct file_src *src;
	char kbuf[KEY_MAX];
	size_t len = obj_chunk_len(o, k), skip = 0;
	uint64_t off = (uint64_t)k * obj_chunk_size(o);
	int fd, rc, present, verified;
	void *buf = NULL;

	*hold = NULL;
	*is_fetch = 0;
	*from_cache = 0;
	/* One look under the lock: on a warm read that is all the locking. */
	pthread_mutex_lock(&c->ot.lock);
	present = obj_bit(o, OBJ_PRESENT, k);
	verified = obj_bit(o, OBJ_VERIFIED, k);
	fd = o->act->fd;
	pthread_mutex_unlock(&c->ot.lock);
	if (present) {
		rc = verified ? store_read_direct(c->st, o->cid, want, wlen, &buf, &skip) : 1;
		if (rc == 0) {
			*seg = (struct cache_seg){ .fd = -1, .off = want, .len = wlen,
						   .buf = (char *)buf + skip };
			*hold = buf;
			*from_cache = 1;
			return 0;
		}
		if (rc == -ENOMEM)
			return rc;
		if (fd < 0)
			fd = obj_fd(c, o);
		if (rc < 0) {
			/* The file is shorter than the chunk, or unreadable: as a
			 * failed check below. */
		} else if (fd >= 0 && verified) {
			*seg = (struct cache_seg){ .fd = fd, .off = off, .len = len };
			*from_cache = 1;
			return 0;
		} else if (fd >= 0) {
			/* The check: the whole chunk, read with O_DIRECT where the
			 * store does, else through the page cache, its pages then
			 * dropped (store_served). */
			rc = store_read_direct(c->st, o->cid, off, len, &buf, &skip);
			if (rc == 1) {
				skip = 0;
				buf = ec_malloc(len ? len : 1);
				if (!buf)
					return -ENOMEM;
				rc = store_read(fd, off, buf, len);
				if (rc == 0)
					store_served(c->st, fd, off, len);
			}
			if (rc == -ENOMEM)
				return rc;
			if (rc == 0 && store_checksum((char *)buf + skip, len) == *obj_sum(o, k)) {
				pthread_mutex_lock(&c->ot.lock);
				obj_bit_set(o, OBJ_VERIFIED, k, 1);
				pthread_mutex_unlock(&c->ot.lock);
				*seg = (struct cache_seg){ .fd = -1, .off = off, .len = len,
							   .buf = (char *)buf + skip };
				*hold = buf;
				*from_cache = 1;
				return 0;
			}
			free(buf);
		}
		/* Missing file or wrong bytes: drop the chunk and fetch again. */
		atomic_fetch_add_explicit(&c->ctr.verify_failures, 1, memory_order_relaxed);
		log_warn("cached chunk %u of %s failed its check; fetching it again", k,
			 file_key(f, kbuf, sizeof(kbuf)));
		pthread_mutex_lock(&c->ot.lock);
		if (obj_bit(o, OBJ_PRESENT, k)) {
			uint64_t give = round_block(len);

			obj_bit_set(o, OBJ_PRESENT, k, 0);
			o->npresent--;
			c->ot.cached_bytes -= len;
			if (!o->npresent) {
				c->ot.cached_objs--;
				give = o->alloc;
			}
			give = MIN(give, o->alloc);
			o->alloc -= give;
			c->ot.data_bytes -= give;
			obj_mark_dirty(o);
		}
		pthread_mutex_unlock(&c->ot.lock);
		if (fd >= 0)
			store_punch(fd, off, len);
	}

	rc = file_src(f, &src);
	if (rc)
		return rc;
	rc = fill_get_chunk(&c->fill, o, k, f->ino, src->key, &src->ident, &fe);
	if (rc == 1) /* stored in the meantime */
		return chunk_get(f, k, want, wlen, seg, hold, is_fetch, from_cache);
	if (rc)
		return rc;
	*seg = (struct cache_seg){ .fd = -1, .off = off, .len = len, .buf = fe->buf };
	*hold = fe;
	*is_fetch = 1;
	return 0;
}

/* A read of f found its source changed (the index has the new identity by
 * now).  The kernel has this open's size and may hold pages of it, so the
 * new bytes can be served consistently only when this is the handle's first
 * read and no other has begun (nothing of the old version was served), the
 * content was not substituted, and the size is the same: a longer file
 * would be cut at the old size, and a shorter reply is taken for an end of
 * file only while no attribute change is in flight (the invalidation sent
 * for the change is one), else the kernel fills the rest with zeros.  Then
 * f's reads go to a handle on the new version, and this returns it; else
 * NULL, and the open fails with EIO from now on. */
static struct cache_file *changed_under(struct cache_file *f, int first)
{
	struct cache_file *nf = NULL, *none = NULL;
	char key[KEY_MAX];
	struct ns_fid a;

	if (ns_file_id(&f->c->ns, f->ino, &a))
		a.size = UINT64_MAX;
	if (first && !f->substituted && a.size == f->o->size &&
	    cache_file_open_ex(f->c, f->ino, 0, &nf) == 0) {
		if (!atomic_compare_exchange_strong(&f->repl, &none, nf)) {
			cache_file_close(nf); /* another read switched first */
			nf = none;
		} else {
			log_info("%s changed at the source before this open read it: it reads "
				 "the new version (%llu bytes)", file_key(f, key, sizeof(key)),
				 (unsigned long long)a.size);
		}
		return nf;
	}
	log_warn("%s changed at the source while open (size %llu -> %llu): this open "
		 "fails with EIO; open it again to read the new version",
		 file_key(f, key, sizeof(key)), (unsigned long long)f->o->size,
		 (unsigned long long)a.size);
	f->stale = 1;
	return NULL;
}

ssize_t cache_file_read(struct cache_file *f, uint64_t off, size_t len, struct cache_read *rd)
{
	struct cache_file *r = atomic_load(&f->repl);
	unsigned nth;

	struct cache *c = f->c;
	struct obj *o = f->o;
	uint64_t end, pos;
	uint32_t k;
	size_t total = 0, from_cache = 0;
	int rc = 0;

	if (r)
		return cache_file_read(r, off, len, rd);
	memset(rd, 0, sizeof(*rd));
	rd->c = c;
	if (f->stale)
		return -EIO;
	nth = atomic_fetch_add_explicit(&f->reads, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&c->ctr.reads, 1, memory_order_relaxed);
	if (off >= o->size || len == 0)
		return 0;
	end = MIN(o->size, off + len);
	for (pos = off; pos < end && rd->nseg < CACHE_MAX_SEGS;) {
		struct cache_seg seg;
		void *hold;
		int cached, is_fetch;
		uint64_t cstart, skip;
		size_t take;

		k = (uint32_t)(pos / obj_chunk_size(o));
		cstart = (uint64_t)k * obj_chunk_size(o);
		rc = chunk_get(f, k, pos, (size_t)(MIN(end, cstart + obj_chunk_len(o, k)) - pos), &seg,
			       &hold, &is_fetch, &cached);
		if (rc < 0)
			break;
		if (hold) {
			/* Tag fetch references so release knows how to drop them. */
			rd->hold[rd->nhold++] = (void *)((uintptr_t)hold | (is_fetch ? 1u : 0u));
		}
		cstart = seg.off; /* where the segment begins: the chunk, or pos */
		skip = pos - cstart;
		take = (size_t)MIN(end - pos, seg.len - skip);
		seg.off += skip;
		if (seg.buf)
			seg.buf = (const char *)seg.buf + skip;
		seg.len = take;
		rd->seg[rd->nseg++] = seg;
		total += take;
		if (cached)
			from_cache += take;
		pos += take;
		rc = 0;
	}
	if (rc == 0 && pos < end)
		rc = -EIO; /* more chunks than segments: chunk size below the minimum */
	if (rc < 0) {
		/* Never a short count: the kernel would take it for end of file.
		 * Nothing was served: no segment's pages are dropped. */
		rd->nseg = 0;
		cache_read_release(rd);
		if (rc == -ESTALE && (r = changed_under(f, nth == 0 && atomic_load(&f->reads) == 1)))
			return cache_file_read(r, off, len, rd);
		return rc == -ESTALE || rc == -ETIMEDOUT ? -EIO : rc;
	}
	atomic_fetch_add_explicit(&c->ctr.read_bytes, total, memory_order_relaxed);
	atomic_fetch_add_explicit(&c->ctr.read_bytes_from_cache, from_cache, memory_order_relaxed);
	return (ssize_t)total;
}

void cache_read_release(struct cache_read *rd)
{
	/* The reply has copied the spliced ranges into the mount's page
	 * cache: the store's copy of them goes (store.c, store_served). */
	for (int i = 0; i < rd->nseg; i++)
		if (rd->seg[i].fd >= 0)
			store_served(rd->c->st, rd->seg[i].fd, rd->seg[i].off, rd->seg[i].len);
	for (int i = 0; i < rd->nhold; i++) {
		uintptr_t h = (uintptr_t)rd->hold[i];

		if (h & 1)
			fetch_put(&rd->c->fill, (struct fetch *)(h & ~(uintptr_t)1));
		else
			free((void *)h);
	}
	rd->nhold = 0;
	rd->nseg = 0;
}

int cache_cached_bytes(struct cache *c, uint64_t ino, uint64_t *cached, uint64_t *size)
{
	struct ns_fid id;
	struct obj *o;
	int rc;

	rc = ns_file_id(&c->ns, ino, &id);
	if (rc)
		return rc;
	*size = id.size;
	*cached = 0;
	pthread_mutex_lock(&c->ot.lock);
	o = objtab_get_locked(&c->ot, id.cid);
	if (o)
		for (uint32_t k = 0; k < obj_nchunks(o); k++)
			if (obj_bit(o, OBJ_PRESENT, k))
				*cached += obj_chunk_len(o, k);
	pthread_mutex_unlock(&c->ot.lock);
	return 0;
}
