/* SPDX-License-Identifier: MIT */
/* Control files: a snapshot on open for readers; for writers, bytes are
 * gathered and applied whole when the file is flushed, so nothing is ever
 * half-applied, and a bad write fails with EINVAL and a logged reason. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "../cache/control.h"
#include "../cache/log.h"
#include "../cache/util.h"

static const struct ctl_file files[] = {
	{ .name = "stats", .mode = 0444, .render = cache_stats_json },
	{ .name = "seed", .mode = 0644, .render = ctl_seed_render, .apply = ctl_seed_apply,
	  .single_line = 1 },
	{ .name = "manifest", .mode = 0644, .render = ctl_manifest_render,
	  .apply = ctl_manifest_apply, .check_line = ctl_check_path_line, .empty_ok = 1 },
	{ .name = "order", .mode = 0644, .render = ctl_order_render, .apply = ctl_order_apply,
	  .check_line = ctl_check_path_line },
	{ .name = "epoch", .mode = 0644, .render = ctl_epoch_render, .apply = ctl_epoch_apply,
	  .single_line = 1 },
	{ .name = "importance", .mode = 0200, .apply = ctl_importance_apply,
	  .check_line = ctl_check_importance_line },
	{ .name = "evict", .mode = 0200, .apply = ctl_evict_apply,
	  .check_line = ctl_check_path_line },
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
	h->file = f;
	h->wrote = writing && trunc && f->empty_ok; /* ": > manifest" restores the default */
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

/* Check the complete lines written since the last check; a bad one fails
 * this write and drops everything written on this open. */
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
			rc = h->file->check_line(c, line, err, sizeof(err));
		}
		if (rc) {
			log_warn("write to .epochfs/%s rejected: %s", h->file->name,
				 *err ? err : strerror(-rc));
			h->failed = 1;
			h->wrote = 0;
			h->len = h->checked = 0;
			return -EINVAL;
		}
		h->checked += n + 1;
	}
	return 0;
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
	/* Applied at the newline, so that the write() itself fails when the
	 * line is bad (the shell's echo reports that). */
	if (h->file->single_line && memchr(data, '\n', len)) {
		int rc = ctl_commit(c, h);

		h->failed = 0; /* the next line starts afresh */
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
