/* SPDX-License-Identifier: MIT */
/* What the control files under .epochfs/ mean: rendering their content and
 * applying a complete write.  Each apply checks everything first and changes
 * nothing unless all of it is good (docs/control.md). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control.h"
#include "control_int.h"
#include "engine.h"
#include "manifest.h"
#include "backends/base/log.h"
#include "backends/base/sbuf.h"
#include "backends/base/util.h"

/* Paths of a list of inodes, one per line; takes and frees inos (NULL:
 * -ENOMEM).  Lock not held. */
int control_render_inos(struct cache *c, uint64_t *inos, size_t n, char **out, size_t *len)
{
	struct sbuf b = { 0 };
	char path[KEY_MAX];

	if (!inos)
		return -ENOMEM;
	for (size_t i = 0; i < n && !b.oom; i++) {
		if (ns_path(&c->ns, inos[i], path, sizeof(path)))
			continue;
		sbuf_add(&b, path, strlen(path));
		sbuf_add(&b, "\n", 1);
	}
	free(inos);
	return sbuf_done(&b, out, len);
}

/* Split data into lines (in place in a copy); blank lines kept as "". */
char **control_split_lines(const char *data, size_t len, size_t *nlines, char **copy)
{
	char *s = ec_malloc(len + 1), **v = NULL;
	size_t n = 0, cap = 0;

	if (!s)
		return NULL;
	memcpy(s, data, len);
	s[len] = 0;
	for (char *p = s; p < s + len;) {
		char *e = memchr(p, '\n', (size_t)(s + len - p));

		if (e)
			*e = 0;
		if (n == cap) {
			char **nv = ec_realloc(v, (cap = cap ? cap * 2 : 1024) * sizeof(*v));

			if (!nv) {
				free(v);
				free(s);
				return NULL;
			}
			v = nv;
		}
		v[n++] = p;
		p = e ? e + 1 : s + len;
	}
	*nlines = n;
	*copy = s;
	if (!v && !(v = ec_calloc(1, sizeof(*v))))
		free(s);
	return v;
}

/* A path of the mount that must be a regular file: relative to the mount,
 * or absolute under the mount point. */
int control_resolve_file(struct cache *c, const char *path, uint64_t *ino, char *err, size_t errlen)
{
	const char *mp = c->mountpoint;
	size_t ml = mp ? strlen(mp) : 0;
	struct ns_attr a;
	int rc;

	if (*path == '/') {
		if (mp && !strcmp(mp, "/")) {
			path++;
		} else if (mp && !strncmp(path, mp, ml) && path[ml] == '/') {
			path += ml + 1;
		} else {
			snprintf(err, errlen, "'%.200s' is not under the mount point %s", path,
				 mp ? mp : "(not known yet)");
			return -EINVAL;
		}
	}
	while (*path == '.' && path[1] == '/')
		path += 2;
	/* "dir/file/" names a directory or nothing, never the file */
	rc = *path && path[strlen(path) - 1] != '/' ? cache_resolve(c, path, &a) : -EINVAL;
	if (rc || a.is_dir) {
		snprintf(err, errlen, "'%.200s' is not a file of the mount", path);
		return -EINVAL;
	}
	*ino = a.ino;
	return 0;
}

/* Say which line of a multi-line write err is about (1-based). */
void control_at_line(size_t lineno, char *err, size_t errlen)
{
	char tmp[512];

	snprintf(tmp, sizeof(tmp), "%s", err);
	snprintf(err, errlen, "line %zu: %s", lineno, tmp);
}

/* The default manifest (ImageFolder's order) if none is set yet; it is
 * built unlocked, from the namespace.  0 or -errno. */
int control_ensure_manifest(struct cache *c)
{
	uint64_t *inos;
	uint32_t n;
	int rc;

	pthread_mutex_lock(&c->ot.lock);
	rc = plan_has_manifest(c->plan);
	pthread_mutex_unlock(&c->ot.lock);
	if (rc)
		return 0;
	rc = manifest_imagefolder(&c->ns, &inos, &n);
	if (rc)
		return rc;
	pthread_mutex_lock(&c->ot.lock);
	if (!plan_has_manifest(c->plan)) {
		rc = plan_set_manifest(c->plan, inos, n);
		if (!rc)
			inos = NULL;
	}
	pthread_mutex_unlock(&c->ot.lock);
	free(inos);
	return rc;
}

/* One non-empty line (a trailing newline allowed) into buf. */
int control_one_line(const char *data, size_t len, char *buf, size_t buflen, char *err, size_t errlen)
{
	while (len && (data[len - 1] == '\n' || data[len - 1] == '\r'))
		len--;
	if (!len || memchr(data, '\n', len) || memchr(data, '\0', len) || len >= buflen) {
		snprintf(err, errlen, "expected one line");
		return -EINVAL;
	}
	memcpy(buf, data, len);
	buf[len] = 0;
	return 0;
}

/* ---- manifest ---- */

int control_manifest_render(struct cache *c, char **out, size_t *len)
{
	uint64_t *inos;
	uint32_t n;
	int rc;

	rc = control_ensure_manifest(c);
	if (rc)
		return rc;
	pthread_mutex_lock(&c->ot.lock);
	n = plan_manifest_len(c->plan);
	inos = ec_malloc(((size_t)n + 1) * sizeof(*inos));
	for (uint32_t i = 0; inos && i < n; i++)
		inos[i] = plan_manifest_ino(c->plan, i);
	pthread_mutex_unlock(&c->ot.lock);
	return control_render_inos(c, inos, n, out, len);
}

int control_manifest_apply(struct cache *c, const char *data, size_t len, char *err, size_t errlen)
{
	size_t n = 0, m = 0;
	uint32_t mm;
	char **lines, *copy;
	uint64_t *inos;
	int rc = 0;

	lines = control_split_lines(data, len, &n, &copy);
	if (!lines)
		return -ENOMEM;
	inos = ec_malloc((n + 1) * sizeof(*inos));
	for (size_t i = 0; inos && i < n && !rc; i++) {
		if (!*lines[i])
			continue;
		rc = control_resolve_file(c, lines[i], &inos[m], err, errlen);
		if (rc)
			control_at_line(i + 1, err, errlen);
		m++;
	}
	free(lines);
	free(copy);
	if (!inos)
		return -ENOMEM;
	if (!rc && m > UINT32_MAX)
		rc = -EFBIG;
	if (rc) {
		free(inos);
		return rc;
	}
	if (m == 0) { /* an empty write restores the default */
		free(inos);
		rc = manifest_imagefolder(&c->ns, &inos, &mm);
		m = mm;
		if (rc)
			return rc;
	}
	pthread_mutex_lock(&c->ot.lock);
	rc = plan_set_manifest(c->plan, inos, (uint32_t)m);
	if (!rc)
		prefetch_wake_locked(&c->pf);
	pthread_mutex_unlock(&c->ot.lock);
	if (rc)
		free(inos);
	if (!rc)
		control_plan_saved(c);
	return rc;
}

/* ---- epoch ---- */

int control_epoch_render(struct cache *c, char **out, size_t *len)
{
	unsigned long long e;
	struct sbuf b = { 0 };

	pthread_mutex_lock(&c->ot.lock);
	e = plan_mode(c->plan) == PLAN_OFF ? 0 : plan_epoch(c->plan);
	pthread_mutex_unlock(&c->ot.lock);
	sbuf_printf(&b, "%llu\n", e);
	return sbuf_done(&b, out, len);
}

/* The end of a write to .epochfs/epoch that ended mid-line: digits, and a
 * plan for them to name an epoch of. */
int control_check_epoch_prefix(struct cache *c, const char *p, char *err, size_t errlen)
{
	char *end;
	int off;

	errno = 0;
	end = (char *)p;
	if (*p >= '0' && *p <= '9')
		(void)strtoull(p, &end, 10);
	if (end == p || errno || *end) {
		snprintf(err, errlen, "'%.40s' is not an epoch number", p);
		return -EINVAL;
	}
	pthread_mutex_lock(&c->ot.lock);
	off = plan_mode(c->plan) == PLAN_OFF;
	pthread_mutex_unlock(&c->ot.lock);
	if (off) {
		snprintf(err, errlen, "no plan: write .epochfs/seed or .epochfs/order first");
		return -EINVAL;
	}
	return 0;
}

int control_epoch_apply(struct cache *c, const char *data, size_t len, char *err, size_t errlen)
{
	char line[64], *end;
	unsigned long long e;
	int rc;

	rc = control_one_line(data, len, line, sizeof(line), err, errlen);
	if (rc)
		return rc;
	errno = 0;
	e = strtoull(line, &end, 10);
	if (errno || *end || line[0] == '-' || line[0] == '+' || line[0] == ' ') {
		snprintf(err, errlen, "'%s' is not an epoch number", line);
		return -EINVAL;
	}
	pthread_mutex_lock(&c->ot.lock);
	if (plan_mode(c->plan) == PLAN_OFF) {
		snprintf(err, errlen, "no plan: write .epochfs/seed or .epochfs/order first");
		rc = -EINVAL;
	} else {
		rc = plan_set_epoch(c->plan, e);
		if (rc == -ENOMEM)
			snprintf(err, errlen, "out of memory making epoch %llu's orders", e);
		else if (rc)
			snprintf(err, errlen, "epoch %llu is not in the plan", e);
		else
			prefetch_plan_changed_locked(&c->pf);
	}
	pthread_mutex_unlock(&c->ot.lock);
	if (!rc)
		control_plan_saved(c);
	return rc == -ENOMEM ? rc : rc ? -EINVAL : 0;
}

/* ---- evict ---- */

int control_evict_apply(struct cache *c, const char *data, size_t len, char *err, size_t errlen)
{
	size_t n = 0, m = 0;
	char **lines, *copy, key[KEY_MAX];
	uint64_t *inos;
	struct ns_attr a;
	uint8_t cid[CID_LEN];
	int rc = 0;

	lines = control_split_lines(data, len, &n, &copy);
	if (!lines)
		return -ENOMEM;
	inos = ec_malloc((n + 1) * sizeof(*inos));
	for (size_t i = 0; inos && i < n && !rc; i++)
		if (*lines[i] && (rc = control_resolve_file(c, lines[i], &inos[m++], err, errlen)))
			control_at_line(i + 1, err, errlen);
	free(lines);
	free(copy);
	if (!inos)
		return -ENOMEM;
	for (size_t i = 0; !rc && i < m; i++) {
		struct obj *o;

		if (ns_identity(&c->ns, inos[i], &a, key, sizeof(key), cid))
			continue;
		pthread_mutex_lock(&c->ot.lock);
		o = objtab_get_locked(&c->ot, cid);
		if (o && o->npresent && !o->refs)
			objtab_evict_locked(&c->ot, o);
		else if (o && o->refs)
			log_info("evict: %s is open or being fetched; kept", key);
		pthread_mutex_unlock(&c->ot.lock);
	}
	free(inos);
	return rc;
}

/* ---- importance ---- */

/* "PATH SCORE" or "INDEX SCORE": the score is after the last blank; the rest
 * is an index into the manifest when it is all digits, else a path. */
static int parse_importance(struct cache *c, char *line, uint64_t *ino, double *score,
			    char *err, size_t errlen)
{
	char *sp = strrchr(line, ' '), *tab = strrchr(line, '\t'), *end;
	size_t i;

	if (tab > sp)
		sp = tab;
	if (!sp || sp == line) {
		snprintf(err, errlen, "'%.200s': expected PATH SCORE or INDEX SCORE", line);
		return -EINVAL;
	}
	*sp = 0;
	errno = 0;
	*score = strtod(sp + 1, &end);
	if (errno || end == sp + 1 || *end || *score != *score || *score > 1e300 || *score < -1e300) {
		snprintf(err, errlen, "'%.100s': bad score '%.40s'", line, sp + 1);
		return -EINVAL;
	}
	for (i = 0; line[i] >= '0' && line[i] <= '9'; i++)
		;
	if (!line[i]) {
		unsigned long long idx = strtoull(line, NULL, 10);

		pthread_mutex_lock(&c->ot.lock);
		*ino = idx < plan_manifest_len(c->plan) ? plan_manifest_ino(c->plan, (uint32_t)idx) : 0;
		pthread_mutex_unlock(&c->ot.lock);
		if (!*ino) {
			snprintf(err, errlen, "index %s is not in the manifest", line);
			return -EINVAL;
		}
		return 0;
	}
	return control_resolve_file(c, line, ino, err, errlen);
}

int control_importance_apply(struct cache *c, const char *data, size_t len, char *err, size_t errlen)
{
	size_t n = 0, m = 0;
	char **lines, *copy, key[KEY_MAX];
	uint64_t *inos;
	double *scores;
	struct obj **objs;
	int rc = 0;

	rc = control_ensure_manifest(c);
	if (rc)
		return rc;
	lines = control_split_lines(data, len, &n, &copy);
	if (!lines)
		return -ENOMEM;
	inos = ec_malloc((n + 1) * sizeof(*inos));
	scores = ec_malloc((n + 1) * sizeof(*scores));
	for (size_t i = 0; inos && scores && i < n && !rc; i++) {
		if (!*lines[i])
			continue;
		rc = parse_importance(c, lines[i], &inos[m], &scores[m], err, errlen);
		if (rc)
			control_at_line(i + 1, err, errlen);
		m++;
	}
	free(lines);
	free(copy);
	if (!inos || !scores)
		rc = -ENOMEM;
	/* All lines are good: pin every object they name (what can fail),
	 * then set the scores, so that a failure applies none of them. */
	objs = rc ? NULL : ec_calloc(m + 1, sizeof(*objs));
	if (!rc && !objs)
		rc = -ENOMEM;
	for (size_t i = 0; !rc && i < m; i++) {
		struct ns_attr a;
		uint8_t cid[CID_LEN];

		if (ns_identity(&c->ns, inos[i], &a, key, sizeof(key), cid))
			continue; /* gone since the check: nothing to score */
		rc = objtab_pin(&c->ot, cid, a.size, &objs[i]);
		if (rc)
			snprintf(err, errlen, "cannot score %.200s: %s", key, strerror(-rc));
	}
	for (size_t i = 0; objs && i < m; i++) {
		if (!objs[i])
			continue;
		if (!rc) {
			pthread_mutex_lock(&c->ot.lock);
			objs[i]->pe.importance = scores[i];
			obj_mark_dirty(objs[i]);
			pthread_mutex_unlock(&c->ot.lock);
		}
		fill_unpin(&c->fill, objs[i]); /* re-enters the policy with its new key */
	}
	if (!rc)
		log_info("importance: %zu scores applied", m);
	free(objs);
	free(inos);
	free(scores);
	return rc;
}

/* ---- checks of one line as it is written (fs/ calls these) ---- */

int control_check_path_line(struct cache *c, const char *line, char *err, size_t errlen)
{
	uint64_t ino;

	if (!*line)
		return 0; /* blank lines separate epochs or are ignored */
	return control_resolve_file(c, line, &ino, err, errlen);
}

/* A line still being written: is there a file of the mount whose path
 * begins with p?  Checks that every complete component of p names a
 * directory and that the last, partial one begins some entry's name there.
 * 0 when a complete line could still be good, -EINVAL with a reason when
 * none can (the write that ended mid-line then fails at once, where the
 * close that would have applied it could not report an error). */
struct prefix_arg {
	const char *base;
	size_t len;
	int found;
};

static int prefix_match(void *arg, const char *name, const struct ns_attr *a)
{
	struct prefix_arg *pa = arg;

	(void)a;
	pa->found = !strncmp(name, pa->base, pa->len);
	return pa->found;
}

int control_check_path_prefix(struct cache *c, const char *p, char *err, size_t errlen)
{
	const char *mp = c->mountpoint, *slash;
	size_t ml = mp ? strlen(mp) : 0, pl = strlen(p);
	struct prefix_arg pa;
	struct ns_attr a;
	char dir[KEY_MAX];
	uint64_t ino = INDEX_ROOT_INO;
	int rc;

	if (*p == '#' || !*p)
		return 0; /* an order's header is checked whole when applied */
	if (*p == '/') {
		if (!mp || pl <= ml)
			return mp && !strncmp(mp, p, pl) ? 0 : control_resolve_file(c, p, &ino, err, errlen);
		if (strcmp(mp, "/") && (strncmp(p, mp, ml) || p[ml] != '/'))
			return control_resolve_file(c, p, &ino, err, errlen); /* gives the reason */
		p += strcmp(mp, "/") ? ml + 1 : 1;
	}
	while (*p == '.' && p[1] == '/')
		p += 2;
	if (!strcmp(p, "."))
		return 0;
	slash = strrchr(p, '/');
	if (slash) {
		if ((size_t)(slash - p) >= sizeof(dir)) {
			snprintf(err, errlen, "path too long");
			return -EINVAL;
		}
		memcpy(dir, p, (size_t)(slash - p));
		dir[slash - p] = 0;
		if (cache_resolve(c, dir, &a) || !a.is_dir) {
			snprintf(err, errlen, "'%.200s' is not a directory of the mount", dir);
			return -EINVAL;
		}
		ino = a.ino;
		p = slash + 1;
	}
	pa.base = p;
	pa.len = strlen(p);
	pa.found = 0;
	rc = cache_readdir(c, ino, prefix_match, &pa);
	if (rc)
		return rc;
	if (pa.found || !pa.len)
		return 0;
	snprintf(err, errlen, "no file of the mount begins with '%.200s%s%.200s'",
		 slash ? dir : "", slash ? "/" : "", p);
	return -EINVAL;
}

/* An importance line still being written: PATH (or INDEX) and a score. */
int control_check_importance_prefix(struct cache *c, const char *p, char *err, size_t errlen)
{
	const char *sp = strrchr(p, ' '), *tab = strrchr(p, '\t');
	char head[KEY_MAX + 64];
	uint64_t ino;
	size_t i;

	if (tab > sp)
		sp = tab;
	if (sp && sp != p && (size_t)(sp - p) < sizeof(head)) {
		memcpy(head, p, (size_t)(sp - p));
		head[sp - p] = 0;
		for (i = 0; head[i] >= '0' && head[i] <= '9'; i++)
			;
		if ((!head[i] || !control_resolve_file(c, head, &ino, err, errlen)) &&
		    strspn(sp + 1, "0123456789.eE+-") == strlen(sp + 1))
			return 0;
	}
	for (i = 0; p[i] >= '0' && p[i] <= '9'; i++)
		;
	if (!p[i])
		return 0; /* an index */
	return control_check_path_prefix(c, p, err, errlen);
}

int control_check_importance_line(struct cache *c, const char *line, char *err, size_t errlen)
{
	char buf[KEY_MAX + 64];
	uint64_t ino;
	double score;

	if (!*line)
		return 0;
	if (strlen(line) >= sizeof(buf)) {
		snprintf(err, errlen, "line too long");
		return -EINVAL;
	}
	strcpy(buf, line);
	return parse_importance(c, buf, &ino, &score, err, errlen);
}
