/* SPDX-License-Identifier: MIT */
/* Control files: a snapshot on open for readers; for writers, bytes are
 * gathered and applied whole when the file is flushed, so nothing is ever
 * half-applied, and a bad write fails with EINVAL and a logged reason. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

#include "ctl.h"
#include "../cache/control.h"
#include "backends/base/log.h"
#include "backends/base/util.h"

static const struct ctl_file files[] = {
	{ .name = "stats", .mode = 0444, .render = cache_stats_json },
	{ .name = "seed", .mode = 0644, .render = control_seed_render, .apply = control_seed_apply,
	  .check_partial = control_check_seed_prefix, .single_line = 1 },
	{ .name = "manifest", .mode = 0644, .render = control_manifest_render,
	  .apply = control_manifest_apply, .check_line = control_check_path_line,
	  .check_partial = control_check_path_prefix },
	{ .name = "order", .mode = 0644, .render = control_order_render, .apply = control_order_apply,
	  .check_line = control_check_path_line, .check_partial = control_check_path_prefix,
	  .header_ok = 1 },
	{ .name = "epoch", .mode = 0644, .render = control_epoch_render, .apply = control_epoch_apply,
	  .check_partial = control_check_epoch_prefix, .single_line = 1 },
	{ .name = "importance", .mode = 0200, .apply = control_importance_apply,
	  .check_line = control_check_importance_line,
	  .check_partial = control_check_importance_prefix },
	{ .name = "evict", .mode = 0200, .apply = control_evict_apply,
	  .check_line = control_check_path_line, .check_partial = control_check_path_prefix },
};

const struct ctl_file *ctl_by_ino(uint64_t ino)
{
	if (ino <= CTL_DIR_INO || ino - CTL_DIR_INO > ARRAY_SIZE(files))
		return NULL;
	return &files[ino - CTL_DIR_INO - 1];
}

const struct ctl_file *ctl_by_name(const char *name, uint64_t *ino)
{
	for (size_t i = 0; i < ARRAY_SIZE(files); i++)
		if (!strcmp(files[i].name, name)) {
			*ino = CTL_DIR_INO + 1 + i;
			return &files[i];
		}
	return NULL;
}

int ctl_open(struct cache *c, uint64_t ino, int writing, int trunc, struct ctl_handle **out)
{
	const struct ctl_file *f = ctl_by_ino(ino);
	struct ctl_handle *h;
	int rc;

	if (!f)
		return -ENOENT;
	if (writing && !f->apply)
		return -EACCES;
	h = ec_calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	/* The shell's '>' opens with O_TRUNC and flushes a copy of the
	 * descriptor before it writes: were the truncation a write of "", that
	 * flush would apply it before the real write is seen (and checked). */
	(void)trunc;
	h->file = f;
	if (!writing && f->render) {
		rc = f->render(c, &h->buf, &h->len);
		if (rc) {
			free(h);
			return rc;
		}
	}
	*out = h;
	return 0;
}

/* A rejected write: say why, naming the line, and drop everything
 * written on this open. */
static int reject(struct ctl_handle *h, size_t lineno, const char *err, int rc)
{
	log_warn("write to .epochfs/%s rejected: line %zu: %s", h->file->name, lineno,
		 *err ? err : strerror(-rc));
	h->failed = 1;
	h->wrote = 0;
	h->len = h->checked = 0;
	return -EINVAL;
}

/* The unfinished last line of what was written: could a good line begin
 * so?  A bad one fails this write and drops everything written on this
 * open. */
static int check_partial(struct cache *c, struct ctl_handle *h)
{
	char err[256] = "", line[4200];
	size_t n = h->len - h->checked;
	int rc;

	if (!n || !h->file->check_partial)
		return 0;
	if (n >= sizeof(line) || memchr(h->buf + h->checked, '\0', n)) {
		snprintf(err, sizeof(err), "a line too long or with a NUL byte");
		return reject(h, h->lines + 1, err, -EINVAL);
	}
	memcpy(line, h->buf + h->checked, n);
	line[n] = 0;
	rc = h->file->check_partial(c, line, err, sizeof(err));
	return rc ? reject(h, h->lines + 1, err, rc) : 0;
}

/* Check the complete lines written since the last check, then the
 * unfinished last one as far as it goes: a bad line fails this write and
 * drops everything written on this open. */
static int check_lines(struct cache *c, struct ctl_handle *h)
{
	char err[256] = "", *nl, line[4200];
	size_t n;
	int rc;

	if (!h->file->check_line)
		return 0;
	while ((nl = memchr(h->buf + h->checked, '\n', h->len - h->checked))) {
		n = (size_t)(nl - (h->buf + h->checked));
		if (n >= sizeof(line) || memchr(h->buf + h->checked, '\0', n)) {
			snprintf(err, sizeof(err), "a line too long or with a NUL byte");
			rc = -EINVAL;
		} else {
			memcpy(line, h->buf + h->checked, n);
			line[n] = 0;
			if (h->file->header_ok && h->checked == 0 && !strncmp(line, "# ", 2))
				rc = 0; /* the header is checked whole when applied */
			else
				rc = h->file->check_line(c, line, err, sizeof(err));
		}
		if (rc)
			return reject(h, h->lines + 1, err, rc);
		h->lines++;
		h->checked += n + 1;
	}
	return check_partial(c, h);
}

int ctl_write(struct cache *c, struct ctl_handle *h, uint64_t off, const char *data, size_t len)
{
	char *n;
	size_t cap;

	if (h->failed)
		return -EINVAL;
	/* Control files take one sequential stream; a one-line file is
	 * applied line by line, so its offsets run past what is kept. */
	if (!h->file->single_line && off != h->len)
		return -EINVAL;
	if (h->len + len > CTL_WRITE_MAX)
		return -EFBIG;
	if (h->len + len > h->cap) {
		cap = MAX(h->cap * 2, h->len + len + 1);
		n = ec_realloc(h->buf, cap);
		if (!n)
			return -ENOMEM;
		h->buf = n;
		h->cap = cap;
	}
	memcpy(h->buf + h->len, data, len);
	h->len += len;
	h->wrote = 1;
	/* A one-line file is applied at its newline, so that the write()
	 * itself fails when the line is bad; a write that ends mid-line is
	 * checked as far as it goes (printf "seed=3" writes no newline, and a
	 * close could not report the error to the shell). */
	if (h->file->single_line) {
		int rc = 0;

		if (memchr(data, '\n', len)) {
			rc = ctl_commit(c, h);
			h->failed = 0; /* the next line starts afresh */
		} else if (h->file->check_partial) {
			rc = check_partial(c, h);
		}
		return rc;
	}
	return check_lines(c, h);
}

int ctl_commit(struct cache *c, struct ctl_handle *h)
{
	char err[256] = "";
	int rc;

	if (!h->wrote || !h->file->apply)
		return 0;
	h->wrote = 0;
	rc = h->file->apply(c, h->buf ? h->buf : "", h->len, err, sizeof(err));
	if (rc) {
		log_warn("write to .epochfs/%s rejected: %s", h->file->name, *err ? err : strerror(-rc));
		h->failed = 1;
	}
	h->len = h->checked = 0;
	return rc;
}

void ctl_close(struct ctl_handle *h)
{
	if (!h)
		return;
	free(h->buf);
	free(h);
}

/* ---- the kernel's no-open mode (--no-open) ----
 *
 * With no OPEN, FLUSH or RELEASE there are no handles: every request on a
 * control file comes with fh 0.  Each file then has one implicit state: the
 * last rendering (what GETATTR sizes and READ serves; its mtime changes when
 * the content does, which makes the kernel drop its cached pages), and the
 * write stream in progress.  A stream starts with a write at offset 0 (or a
 * truncation) and is applied when it has been idle for CTL_IDLE_MS, when a
 * new stream starts, or before any control file is looked at again. */

#define CTL_IDLE_MS 1000
#define CTL_RERENDER_MS 100
#define CTL_SMALL (64u << 10)

struct ctl_slot {
	struct ctl_handle *w;       /* the write stream in progress, or NULL */
	uint64_t last_write_ns;
	atomic_int writing;         /* WRITEs of this file being handled */
	pid_t pid;                  /* the stream's writer */
	char *snap;                 /* the last rendering */
	size_t snap_len;
	uint64_t snap_ns;           /* when it was made (0: never, or stale) */
	pid_t snap_pid;             /* for whom */
	uint64_t gen;               /* bumped when the rendering changes */
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t thread;
	int running, stop;
	struct cache *c;
	struct ctl_slot s[ARRAY_SIZE(files)];
} np = { .lock = PTHREAD_MUTEX_INITIALIZER };

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static struct ctl_slot *slot(uint64_t ino)
{
	const struct ctl_file *f = ctl_by_ino(ino);

	return f ? &np.s[f - files] : NULL;
}

/* Wait on np.cond for at most ns (np.lock held). */
static void np_wait(uint64_t ns)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts); /* np.cond runs on this clock */
	ts.tv_sec += (time_t)(ns / 1000000000ull);
	ts.tv_nsec += (long)(ns % 1000000000ull);
	ts.tv_sec += ts.tv_nsec / 1000000000l;
	ts.tv_nsec %= 1000000000l;
	pthread_cond_timedwait(&np.cond, &np.lock, &ts);
}

/* Apply a slot's stream (np.lock held). */
static void np_commit(struct ctl_slot *s)
{
	if (!s->w)
		return;
	if (!s->w->failed)
		ctl_commit(np.c, s->w);
	ctl_close(s->w);
	s->w = NULL;
	s->snap_ns = 0; /* render again: the write may have changed it */
	s->gen++;       /* and drop the written bytes from the page cache */
}

/* Nothing of the stream is left to apply (a one-line file applies at the
 * newline): it needs no waiting for. */
static int np_empty(const struct ctl_slot *s)
{
	return !s->w || (!s->w->wrote && !s->w->len);
}

/* The stream has seen no WRITE for CTL_IDLE_MS and none is being handled. */
static int np_idle(struct ctl_slot *s)
{
	return !atomic_load(&s->writing) &&
	       mono_ns() >= s->last_write_ns + CTL_IDLE_MS * 1000000ull;
}

/* Before a control file is looked at, apply the streams that are done:
 * those with nothing left to apply at once; the requester's own stream of
 * the file it looks up (a new open or stat by path ends it; its fstat does
 * not, so as not to cut its stream in two); every other stream once it has
 * been idle (waited for: a reader after a writer sees what was written).
 * only: the looked-up file, or NULL for a GETATTR (all files). */
static void np_settle(pid_t pid, const struct ctl_slot *only)
{
	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		struct ctl_slot *s = &np.s[i];

		if (!s->w)
			continue;
		if (np_empty(s)) {
			np_commit(s);
			continue;
		}
		if (s->pid == pid) {
			if (s == only)
				np_commit(s);
			continue;
		}
		while (s->w && !np.stop && !np_idle(s))
			np_wait(CTL_IDLE_MS * 1000000ull / 10);
		np_commit(s);
	}
}

static void *np_thread(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&np.lock);
	while (!np.stop) {
		uint64_t now = mono_ns(), next = 0;

		for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
			struct ctl_slot *s = &np.s[i];
			uint64_t due = s->last_write_ns + CTL_IDLE_MS * 1000000ull;

			if (!s->w)
				continue;
			if (np_empty(s) || np_idle(s))
				np_commit(s);
			else if (!next || due < next)
				next = due > now ? due : now + CTL_IDLE_MS * 1000000ull / 10;
		}
		if (!next) {
			pthread_cond_wait(&np.cond, &np.lock);
			continue;
		}
		np_wait(next - now);
	}
	pthread_mutex_unlock(&np.lock);
	return NULL;
}

int ctl_nopen_start(struct cache *c)
{
	int rc;

	pthread_condattr_t ca;

	np.c = c;
	np.stop = 0;
	if (pthread_condattr_init(&ca) || pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) ||
	    pthread_cond_init(&np.cond, &ca))
		return -ENOMEM;
	pthread_condattr_destroy(&ca);
	rc = pthread_create(&np.thread, NULL, np_thread, NULL);
	if (rc)
		return -rc;
	np.running = 1;
	return 0;
}

void ctl_nopen_stop(void)
{
	if (!np.running)
		return;
	pthread_mutex_lock(&np.lock);
	np.stop = 1;
	pthread_cond_broadcast(&np.cond);
	pthread_mutex_unlock(&np.lock);
	pthread_join(np.thread, NULL);
	np.running = 0;
	pthread_mutex_lock(&np.lock);
	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		np_commit(&np.s[i]);
		free(np.s[i].snap);
		np.s[i].snap = NULL;
	}
	pthread_mutex_unlock(&np.lock);
}

int ctl_nopen_attr(struct cache *c, uint64_t ino, pid_t pid, int lookup, uint64_t *size,
		   uint64_t *gen)
{
	const struct ctl_file *f = ctl_by_ino(ino);
	struct ctl_slot *s = slot(ino);
	uint64_t now;
	char *buf;
	size_t len;
	int rc = 0;

	*size = *gen = 0;
	if (!f)
		return -ENOENT;
	pthread_mutex_lock(&np.lock);
	np_settle(pid, lookup ? s : NULL);
	now = mono_ns();
	/* Render afresh for every look, except that one reader going through a
	 * large file (a manifest of a million lines) in many read() calls gets
	 * one rendering per CTL_RERENDER_MS: each read() brings a GETATTR. */
	if (f->render && (!s->snap_ns || s->snap_len < CTL_SMALL || pid != s->snap_pid ||
			  now - s->snap_ns >= CTL_RERENDER_MS * 1000000ull)) {
		rc = f->render(c, &buf, &len);
		if (!rc) {
			if (len != s->snap_len || (len && memcmp(buf, s->snap, len)))
				s->gen++;
			free(s->snap);
			s->snap = buf;
			s->snap_len = len;
			s->snap_ns = now;
			s->snap_pid = pid;
		}
	}
	*size = s->snap_len;
	*gen = s->gen;
	pthread_mutex_unlock(&np.lock);
	return rc;
}

size_t ctl_nopen_read(uint64_t ino, uint64_t off, size_t len, char *out)
{
	struct ctl_slot *s = slot(ino);
	size_t n = 0;

	if (!s)
		return 0;
	pthread_mutex_lock(&np.lock);
	if (off < s->snap_len) {
		n = MIN(len, s->snap_len - (size_t)off);
		memcpy(out, s->snap + off, n);
	}
	pthread_mutex_unlock(&np.lock);
	return n;
}

/* A truncation (": > file", or the O_TRUNC of an open for writing) starts a
 * new stream; by itself it applies nothing. */
int ctl_nopen_truncate(struct cache *c, uint64_t ino, pid_t pid)
{
	struct ctl_slot *s = slot(ino);
	int rc;

	if (!s)
		return -ENOENT;
	pthread_mutex_lock(&np.lock);
	np_commit(s);
	rc = ctl_open(c, ino, 1, 1, &s->w);
	s->gen++;
	s->last_write_ns = mono_ns();
	s->pid = pid;
	pthread_cond_broadcast(&np.cond);
	pthread_mutex_unlock(&np.lock);
	return rc;
}

int ctl_nopen_write(struct cache *c, uint64_t ino, pid_t pid, uint64_t off, const char *data,
		    size_t len)
{
	const struct ctl_file *f = ctl_by_ino(ino);
	struct ctl_slot *s = slot(ino);
	int rc = 0;

	if (!f)
		return -ENOENT;
	if (!f->apply)
		return -EACCES;
	atomic_fetch_add(&s->writing, 1); /* before the lock: not idle meanwhile */
	pthread_mutex_lock(&np.lock);
	/* A write at offset 0 begins a new stream: the last one is complete. */
	if (s->w && off == 0 && (s->w->len || s->w->failed))
		np_commit(s);
	if (!s->w)
		rc = ctl_open(c, ino, 1, 0, &s->w);
	if (!rc)
		rc = ctl_write(c, s->w, off, data, len);
	s->last_write_ns = mono_ns();
	s->pid = pid;
	s->snap_ns = 0;
	atomic_fetch_sub(&s->writing, 1);
	pthread_cond_broadcast(&np.cond);
	pthread_mutex_unlock(&np.lock);
	return rc;
}
