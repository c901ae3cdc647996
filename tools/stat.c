/* SPDX-License-Identifier: MIT */
/* epochfs-stat: a mount's counters for a person (one screen, or refreshed in
 * place with rates and sparklines), as raw JSON, or in the Prometheus text
 * format.  With no mountpoint it lists every epochfs in /proc/self/mountinfo.
 * Keys the daemon does not report are left out, never guessed. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "backends/base/exitcode.h"
#include "backends/base/mountinfo.h"
#include "backends/base/util.h"

/* A tiny JSON reader in the manner of jsmn: the text is cut into a flat array
 * of tokens, each knowing how many tokens its subtree holds, so children are
 * walked by skipping.  Strings stay undecoded slices of the text. */
#define JMAX 8192
#define JDEPTH 32

enum jtype { J_OBJ = 1, J_ARR, J_STR, J_NUM, J_LIT };

struct jtok {
	enum jtype type;
	int size;		/* tokens in the subtree below this one */
	const char *s, *key;	/* value slice (strings), member key slice */
	int len, keylen;
	double num;
};

struct json {
	struct jtok t[JMAX];
	int n;
};

static const char *ws(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	return p;
}

/* p at '"': the slice between the quotes; 0 or -EINVAL. */
static int jstring(const char **pp, const char **s, int *len)
{
	const char *p = *pp + 1;

	*s = p;
	while (*p && *p != '"') {
		if (*p == '\\' && !*++p)
			return -EINVAL;
		p++;
	}
	if (!*p)
		return -EINVAL;
	*len = (int)(p - *s);
	*pp = p + 1;
	return 0;
}

/* Parse one value at *pp into j; 0 or -EINVAL (malformed, too deep, too big). */
static int jvalue(struct json *j, const char **pp, int depth)
{
	const char *p = ws(*pp);
	struct jtok *t;
	char *end;
	int i, rc;

	if (j->n >= JMAX || depth > JDEPTH)
		return -EINVAL;
	i = j->n++;
	t = &j->t[i];
	memset(t, 0, sizeof(*t));
	if (*p == '{' || *p == '[') {
		char close = *p == '{' ? '}' : ']';

		t->type = *p == '{' ? J_OBJ : J_ARR;
		p = ws(p + 1);
		if (*p == close)
			p++;
		else
			for (;;) {
				const char *k = NULL;
				int kl = 0, child = j->n;

				if (t->type == J_OBJ) {
					if (*(p = ws(p)) != '"' || jstring(&p, &k, &kl))
						return -EINVAL;
					if (*(p = ws(p)) != ':')
						return -EINVAL;
					p++;
				}
				rc = jvalue(j, &p, depth + 1);
				if (rc)
					return rc;
				j->t[child].key = k;
				j->t[child].keylen = kl;
				p = ws(p);
				if (*p == ',') {
					p++;
					continue;
				}
				if (*p++ != close)
					return -EINVAL;
				break;
			}
	} else if (*p == '"') {
		t->type = J_STR;
		if (jstring(&p, &t->s, &t->len))
			return -EINVAL;
	} else if (!strncmp(p, "true", 4) || !strncmp(p, "null", 4) || !strncmp(p, "false", 5)) {
		t->type = J_LIT;
		t->num = *p == 't';
		p += *p == 'f' ? 5 : 4;
	} else if (*p == '-' || (*p >= '0' && *p <= '9')) {
		t->type = J_NUM;
		t->num = strtod(p, &end);
		p = end;
	} else {
		return -EINVAL;
	}
	t->size = j->n - i - 1;
	*pp = p;
	return 0;
}

static int json_parse(struct json *j, const char *text)
{
	const char *p = text;

	j->n = 0;
	if (jvalue(j, &p, 0) || *ws(p) || j->t[0].type != J_OBJ)
		return -EINVAL;
	return 0;
}

/* The member of object token obj named key, or -1. */
static int jget(const struct json *j, int obj, const char *key)
{
	int kl = (int)strlen(key);

	if (obj < 0 || j->t[obj].type != J_OBJ)
		return -1;
	for (int c = obj + 1; c <= obj + j->t[obj].size; c += 1 + j->t[c].size)
		if (j->t[c].keylen == kl && !memcmp(j->t[c].key, key, (size_t)kl))
			return c;
	return -1;
}

static int jhas(const struct json *j, int obj, const char *key)
{
	int c = jget(j, obj, key);

	return c >= 0 && j->t[c].type == J_NUM;
}

/* A number member (0 when absent or not a number). */
static double jnum(const struct json *j, int obj, const char *key)
{
	int c = jget(j, obj, key);

	return c >= 0 && j->t[c].type == J_NUM ? j->t[c].num : 0;
}

/* Copy a string slice, undoing the simple escapes; \uXXXX becomes '?'. */
static void junescape(const char *s, int len, char *out, size_t outlen)
{
	size_t o = 0;

	for (int i = 0; i < len && o + 1 < outlen; i++) {
		char ch = s[i];

		if (ch == '\\' && i + 1 < len) {
			ch = s[++i];
			if (ch == 'n')
				ch = '\n';
			else if (ch == 't')
				ch = '\t';
			else if (ch == 'u') {
				ch = '?';
				i += 4 < len - i ? 4 : len - i - 1;
			}
		}
		out[o++] = ch;
	}
	out[o] = 0;
}

static void jstr(const struct json *j, int obj, const char *key, char *out, size_t outlen)
{
	int c = jget(j, obj, key);

	*out = 0;
	if (c >= 0 && j->t[c].type == J_STR)
		junescape(j->t[c].s, j->t[c].len, out, outlen);
}

/* One reading of a mount's stats file. */
struct snap {
	char text[1 << 18];
	struct json j;
	uint64_t at_ns;
};

/* Read and parse <mnt>/.epochfs/stats.  0, -EINVAL when it is not epochfs's
 * stats object, or the -errno of opening or reading it. */
static int read_stats(const char *mnt, struct snap *s)
{
	char path[4096];
	size_t len = 0;
	ssize_t n;
	int fd, rc = 0;

	snprintf(path, sizeof(path), "%s/.epochfs/stats", mnt);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -errno;
	while ((n = read(fd, s->text + len, sizeof(s->text) - 1 - len)) > 0)
		len += (size_t)n;
	if (n < 0)
		rc = -errno;
	close(fd);
	s->text[len] = 0;
	s->at_ns = now_ns();
	if (!rc && (json_parse(&s->j, s->text) || !jhas(&s->j, 0, "version")))
		rc = -EINVAL;
	return rc;
}

static int open_stats(const char *mnt, struct snap *s)
{
	int rc = read_stats(mnt, s);

	if (rc == -EINVAL)
		fprintf(stderr, "epochfs-stat: %s: .epochfs/stats is not epochfs's stats object\n", mnt);
	else if (rc == -ENOENT || rc == -ENOTDIR)
		fprintf(stderr, "epochfs-stat: %s is not an epochfs mount (no .epochfs/stats)\n", mnt);
	else if (rc)
		fprintf(stderr, "epochfs-stat: %s is not a usable epochfs mount: %s\n", mnt,
			strerror(-rc));
	return rc;
}

static double ratio(double a, double b)
{
	return b > 0 ? a / b : 0;
}

static const char *bytes(double v, char *buf)
{
	format_bytes(v > 0 ? (uint64_t)v : 0, buf, 32);
	return buf;
}

/* ---- the human views: every line within the terminal's width (80 when it
 * cannot be told), which the tests check ---- */

static int cols = 80;

/* The width of the terminal on fd (TIOCGWINSZ), else $COLUMNS, else 80;
 * never under 40. */
static int term_cols(int fd)
{
	struct winsize ws;
	const char *c = getenv("COLUMNS");
	char *end;
	long v = 0;

	if (ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
		v = ws.ws_col;
	else if (c && *c && ((v = strtol(c, &end, 10)), *end))
		v = 0;
	if (v <= 0)
		v = 80;
	return v < 40 ? 40 : v > 1000 ? 1000 : (int)v;
}

/* A line of comma-separated fields after a label, wrapped at the width with
 * the continuation indented under the first field; a field too long for a
 * line of its own keeps its tail. */
struct line {
	char buf[2048];
	int len, indent, n;
};

static void ln_start(struct line *l, const char *label)
{
	l->len = snprintf(l->buf, sizeof(l->buf), "  %-9s ", label);
	if (l->len > cols - 20)
		l->len = cols - 20;
	l->buf[l->len] = 0;
	l->indent = l->len;
	l->n = 0;
}

static void ln_end(struct line *l)
{
	if (l->n || l->len > l->indent)
		printf("%s\n", l->buf);
	l->len = 0;
}

static void ln_add(struct line *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ln_add(struct line *l, const char *fmt, ...)
{
	char f[1024];
	const char *p = f;
	int fl, room;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(f, sizeof(f), fmt, ap);
	va_end(ap);
	fl = (int)strlen(f);
	/* at most cols - 1 columns, the comma included (which stays on the line
	 * it ends) */
	if (l->n && l->len + 2 + fl + 2 > cols) {
		printf("%s,\n", l->buf);
		l->len = snprintf(l->buf, sizeof(l->buf), "%*s", l->indent, "");
		l->n = 0;
	}
	room = cols - 2 - l->len - (l->n ? 2 : 0);
	if (fl > room && room > 3) {
		p = f + fl - (room - 3);
		l->len += snprintf(l->buf + l->len, sizeof(l->buf) - (size_t)l->len, "%s...%s",
				   l->n ? ", " : "", p);
	} else {
		l->len += snprintf(l->buf + l->len, sizeof(l->buf) - (size_t)l->len, "%s%s",
				   l->n ? ", " : "", p);
	}
	if (l->len >= (int)sizeof(l->buf))
		l->len = (int)sizeof(l->buf) - 1;
	l->n++;
}

/* A path or URL cut to fit n columns ("...tail"). */
static const char *fit(const char *s, int n, char *buf, size_t len)
{
	int sl = (int)strlen(s);

	if (sl <= n || n < 8)
		return s;
	snprintf(buf, len, "...%s", s + sl - (n - 3));
	return buf;
}

/* "1:02:03" or "2:03" for a number of seconds. */
static const char *dur(double s, char *buf)
{
	long t = s < 0 ? 0 : (long)(s + 0.5);

	if (t >= 86400)
		snprintf(buf, 32, "%ldd %ld:%02ld:%02ld", t / 86400, t / 3600 % 24, t / 60 % 60, t % 60);
	else if (t >= 3600)
		snprintf(buf, 32, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
	else
		snprintf(buf, 32, "%ld:%02ld", t / 60, t % 60);
	return buf;
}

/* The epochs array's objects: the one of the current epoch (or the last
 * one), and the one before it; -1 when absent. */
static void find_epochs(const struct json *j, int *cur, int *prev)
{
	int arr = jget(j, 0, "epochs"), last = -1;

	*cur = *prev = -1;
	if (arr < 0 || j->t[arr].type != J_ARR)
		return;
	for (int c = arr + 1; c <= arr + j->t[arr].size; c += 1 + j->t[c].size) {
		if (j->t[c].type != J_OBJ)
			continue;
		if (*cur < 0) {
			*prev = last;
			if (jhas(j, 0, "epoch") && jnum(j, c, "epoch") == jnum(j, 0, "epoch"))
				*cur = c;
		}
		last = c;
	}
	if (*cur < 0) { /* no record of the current epoch: the last one is "this" */
		*cur = last;
		*prev = -1;
		for (int c = arr + 1; c <= arr + j->t[arr].size; c += 1 + j->t[c].size)
			if (j->t[c].type == J_OBJ && c != last)
				*prev = c;
	}
}

/* A count for a table column: in full below a billion, else "12.35G" (at
 * most 9 characters either way). */
static const char *cnt(double v, char *buf)
{
	if (v < 1e9)
		snprintf(buf, 32, "%.0f", v);
	else if (v < 1e12)
		snprintf(buf, 32, "%.2fG", v / 1e9);
	else
		snprintf(buf, 32, "%.2fT", v / 1e12 < 99999 ? v / 1e12 : 99999);
	return buf;
}

/* A percentage of a over b in a field of width w, or "-" when b is 0. */
static const char *pct(double a, double b, int w, char *buf)
{
	if (b > 0)
		snprintf(buf, 32, "%*.2f%%", w - 1, 100 * a / b);
	else
		snprintf(buf, 32, "%*s", w, "-");
	return buf;
}

/* One row of the per-epoch table: epoch, opens, hit rate by opens and by
 * bytes, prefetched files opened in time (of those opened at all: in time
 * or late), stall seconds.  bytes_key: the object's bytes served from the
 * cache ("hit_bytes" in an epoch record, "read_bytes_from_cache" at the top). */
static void epoch_row(const struct json *j, int obj, const char *label, const char *bytes_key)
{
	char ep[32], h1[32], h2[32], h3[32], st[32], op[32];
	double used = jnum(j, obj, "prefetch_used"), late = jnum(j, obj, "prefetch_late");

	if (obj > 0)
		snprintf(ep, sizeof(ep), "%.0f", MIN(jnum(j, obj, "epoch"), 99999.0));
	else
		snprintf(ep, sizeof(ep), "-");
	if (jhas(j, obj, "stall_ns"))
		snprintf(st, sizeof(st), "%.2f s", MIN(jnum(j, obj, "stall_ns") / 1e9, 9999999.0));
	else
		snprintf(st, sizeof(st), "-");
	/* 2 + 10 + 6 + 11 + 10 + 10 + 10 + 11 = 70 columns */
	printf("  %-10s%6s%11s%10s%10s%10s%11s\n", label, ep, cnt(jnum(j, obj, "opens"), op),
	       pct(jnum(j, obj, "open_hits"), jnum(j, obj, "opens"), 9, h1),
	       jhas(j, obj, "read_bytes") && jhas(j, obj, bytes_key)
		       ? pct(jnum(j, obj, bytes_key), jnum(j, obj, "read_bytes"), 9, h2)
		       : "        -",
	       jhas(j, obj, "prefetch_used") ? pct(used, used + late, 9, h3) : "        -", st);
}

static void epoch_table(const struct json *j)
{
	int cur, prev;

	find_epochs(j, &cur, &prev);
	printf("  %-10s%6s%11s%10s%10s%10s\n", "", "", "", "hits by", "hits by", "prefetch");
	printf("  %-10s%6s%11s%10s%10s%10s%11s\n", "", "epoch", "opens", "opens", "bytes", "in time",
	       "stall");
	if (cur >= 0)
		epoch_row(j, cur, "this epoch", "hit_bytes");
	if (prev >= 0)
		epoch_row(j, prev, "last epoch", "hit_bytes");
	epoch_row(j, 0, "all time", "read_bytes_from_cache");
}

/* The ranks the plan follows (issue 12), one row each. */
static void rank_table(const struct json *j)
{
	int arr = jget(j, 0, "ranks");
	char pos[48], rk[32], a[32], b[32], c1[32], c2[32];

	if (arr < 0 || j->t[arr].type != J_ARR || !j->t[arr].size)
		return;
	/* 2 + 10 + 6 + 20 + 10 + 10 + 9 + 9 = 76 columns */
	printf("  %-10s%6s%20s%10s%10s%9s%9s\n", "", "epoch", "position", "opens", "in time",
	       "late", "plain");
	for (int c = arr + 1; c <= arr + j->t[arr].size; c += 1 + j->t[c].size) {
		if (j->t[c].type != J_OBJ)
			continue;
		if (jnum(j, c, "epoch_length") > 0)
			snprintf(pos, sizeof(pos), "%s/%s", cnt(jnum(j, c, "position"), a),
				 cnt(jnum(j, c, "epoch_length"), b));
		else
			snprintf(pos, sizeof(pos), "%s", cnt(jnum(j, c, "position"), a));
		snprintf(rk, sizeof(rk), "rank %.0f", MIN(jnum(j, c, "rank"), 99999.0));
		printf("  %-10s%6.0f%20s%10s%10s%9s%9s\n", rk, MIN(jnum(j, c, "epoch"), 99999.0), pos,
		       cnt(jnum(j, c, "opens"), a), cnt(jnum(j, c, "prefetch_used"), b),
		       cnt(jnum(j, c, "prefetch_late"), c1), cnt(jnum(j, c, "plain_reads"), c2));
	}
}

/* The peers of the job (issue 13), one row each: address, state, requests,
 * errors, bytes read from it. */
static void peer_table(const struct json *j)
{
	int arr = jget(j, 0, "peers");
	char addr[512], st[16], a[32], b[32], c1[32], fb[64];

	if (arr < 0 || j->t[arr].type != J_ARR || !j->t[arr].size)
		return;
	/* 2 + 38 + 6 + 11 + 9 + 12 = 78 columns at most */
	printf("  %-38s%6s%11s%9s%12s\n", "peer", "state", "requests", "errors", "bytes in");
	for (int c = arr + 1; c <= arr + j->t[arr].size; c += 1 + j->t[c].size) {
		if (j->t[c].type != J_OBJ)
			continue;
		jstr(j, c, "addr", addr, sizeof(addr));
		jstr(j, c, "state", st, sizeof(st));
		printf("  %-38s%6s%11s%9s%12s\n", fit(addr, 37, fb, sizeof(fb)), st,
		       cnt(jnum(j, c, "requests"), a), cnt(jnum(j, c, "errors"), b),
		       bytes(jnum(j, c, "bytes"), c1));
	}
}

/* The one-screen view.  prev (or NULL) gives the rates over the last interval. */
static void show(const char *mnt, const struct snap *s, const struct snap *prev)
{
	const struct json *j = &s->j;
	double up = jnum(j, 0, "uptime_ns") / 1e9, stall = jnum(j, 0, "stall_ns") / 1e9;
	double dt = prev ? (double)(s->at_ns - prev->at_ns) / 1e9 : 0;
	char src[512], be[64], pol[64], mode[32], b1[32], b2[32], b3[32], fb[1024];
	struct line l;

	jstr(j, 0, "source", src, sizeof(src));
	jstr(j, 0, "backend", be, sizeof(be));
	jstr(j, 0, "policy", pol, sizeof(pol));
	jstr(j, 0, "open_mode", mode, sizeof(mode));
	printf("epochfs %s\n", fit(mnt, cols - 9, fb, sizeof(fb)));
	ln_start(&l, "source");
	ln_add(&l, "%s%s%s", src, *be ? " via " : "", be);
	ln_add(&l, "policy %s", *pol ? pol : "?");
	if (*mode && strcmp(mode, "open"))
		ln_add(&l, "%s", mode);
	ln_add(&l, "up %s", dur(up, b1));
	ln_end(&l);
	if (jhas(j, 0, "epoch") || jhas(j, 0, "position")) {
		ln_start(&l, "epoch");
		ln_add(&l, "%.0f", jnum(j, 0, "epoch"));
		if (jnum(j, 0, "epoch_length") > 0)
			ln_add(&l, "position %.0f of %.0f (%.1f%%)", jnum(j, 0, "position"),
			       jnum(j, 0, "epoch_length"),
			       100 * ratio(jnum(j, 0, "position"), jnum(j, 0, "epoch_length")));
		else if (jhas(j, 0, "position"))
			ln_add(&l, "position %.0f", jnum(j, 0, "position"));
		ln_end(&l);
	}
	printf("\n");
	epoch_table(j);
	printf("\n");
	ln_start(&l, "reads");
	ln_add(&l, "%.0f requests", jnum(j, 0, "reads"));
	ln_add(&l, "%s served", bytes(jnum(j, 0, "read_bytes"), b1));
	ln_add(&l, "%s from cache", bytes(jnum(j, 0, "read_bytes_from_cache"), b2));
	if (jnum(j, 0, "passthrough_opens") > 0)
		/* the kernel read those from the store: counted whole at the open */
		ln_add(&l, "%.0f passthrough opens (counted whole)",
		       jnum(j, 0, "passthrough_opens"));
	ln_end(&l);
	if (jhas(j, 0, "prefetch_issued")) {
		double is = jnum(j, 0, "prefetch_issued");

		ln_start(&l, "prefetch");
		ln_add(&l, "%.0f issued", is);
		ln_add(&l, "%.0f used in time (%.1f%%)", jnum(j, 0, "prefetch_used"),
		       100 * ratio(jnum(j, 0, "prefetch_used"), is));
		ln_add(&l, "%.0f late (%.1f%%)", jnum(j, 0, "prefetch_late"),
		       100 * ratio(jnum(j, 0, "prefetch_late"), is));
		ln_add(&l, "%.0f wasted (%.1f%%)", jnum(j, 0, "prefetch_wasted"),
		       100 * ratio(jnum(j, 0, "prefetch_wasted"), is));
		if (jhas(j, 0, "plain_reads"))
			ln_add(&l, "%.0f opens planned for no rank", jnum(j, 0, "plain_reads"));
		ln_end(&l);
	}
	/* Summed over concurrent reads, so it can exceed wall time: shown per
	 * second of wall time rather than as a percentage past 100. */
	ln_start(&l, "stalls");
	ln_add(&l, "%.3f s summed over reads", stall);
	ln_add(&l, "%.3f s per second of uptime", ratio(stall, up));
	if (prev && dt > 0) {
		double d = stall - jnum(&prev->j, 0, "stall_ns") / 1e9;

		ln_add(&l, "last %.1f s: %.3f s (%.3f s/s)", dt, d, d / dt);
	}
	ln_end(&l);
	ln_start(&l, "backend");
	ln_add(&l, "%.0f requests", jnum(j, 0, "backend_requests"));
	ln_add(&l, "%s (%s/s average)", bytes(jnum(j, 0, "backend_bytes"), b1),
	       bytes(ratio(jnum(j, 0, "backend_bytes"), up), b2));
	ln_add(&l, "%.0f retries", jnum(j, 0, "backend_retries"));
	ln_add(&l, "%.0f errors", jnum(j, 0, "backend_errors"));
	ln_end(&l);
	ln_start(&l, "cache");
	ln_add(&l, "%s of %s (%.1f%%)", bytes(jnum(j, 0, "cache_bytes"), b1),
	       bytes(jnum(j, 0, "cache_capacity"), b2),
	       100 * ratio(jnum(j, 0, "cache_bytes"), jnum(j, 0, "cache_capacity")));
	ln_add(&l, "index %s", bytes(jnum(j, 0, "cache_meta_bytes"), b3));
	ln_add(&l, "%.0f objects", jnum(j, 0, "cache_objects"));
	ln_add(&l, "%.0f evictions", jnum(j, 0, "evictions"));
	ln_add(&l, "%.0f not admitted", jnum(j, 0, "not_admitted"));
	if (jnum(j, 0, "cache_degraded"))
		ln_add(&l, "DEGRADED (disk full)");
	ln_end(&l);
	if (jhas(j, 0, "substitutions")) {
		ln_start(&l, "subst");
		ln_add(&l, "%.0f served in place of a miss", jnum(j, 0, "substitutions"));
		ln_add(&l, "%.0f owed", jnum(j, 0, "substitution_debt"));
		ln_end(&l);
	}
	if (jnum(j, 0, "verify_failures") || jnum(j, 0, "stale") || jnum(j, 0, "store_errors")) {
		ln_start(&l, "integrity");
		ln_add(&l, "%.0f checksum failures", jnum(j, 0, "verify_failures"));
		ln_add(&l, "%.0f stale objects", jnum(j, 0, "stale"));
		ln_add(&l, "%.0f store errors", jnum(j, 0, "store_errors"));
		ln_end(&l);
	}
	if (prev && dt > 0) {
		const struct json *p = &prev->j;

		ln_start(&l, "rates");
		ln_add(&l, "%.1f opens/s", (jnum(j, 0, "opens") - jnum(p, 0, "opens")) / dt);
		ln_add(&l, "%s/s read",
		       bytes((jnum(j, 0, "read_bytes") - jnum(p, 0, "read_bytes")) / dt, b1));
		ln_add(&l, "%s/s from backend",
		       bytes((jnum(j, 0, "backend_bytes") - jnum(p, 0, "backend_bytes")) / dt, b2));
		ln_add(&l, "%.1f requests/s",
		       (jnum(j, 0, "backend_requests") - jnum(p, 0, "backend_requests")) / dt);
		ln_end(&l);
	}
	if (jhas(j, 0, "peer_requests")) {
		ln_start(&l, "peers");
		ln_add(&l, "origin %s", bytes(jnum(j, 0, "origin_bytes"), b1));
		ln_add(&l, "from peers %s", bytes(jnum(j, 0, "peer_bytes_in"), b2));
		ln_add(&l, "to peers %s", bytes(jnum(j, 0, "peer_bytes_out"), b3));
		ln_add(&l, "%.0f requests", jnum(j, 0, "peer_requests"));
		ln_add(&l, "%.0f errors", jnum(j, 0, "peer_errors"));
		ln_add(&l, "%.0f misses", jnum(j, 0, "peer_misses"));
		ln_add(&l, "%.0f served", jnum(j, 0, "peer_served"));
		ln_add(&l, "%.0f refused", jnum(j, 0, "peer_refused"));
		ln_end(&l);
		peer_table(j);
	}
	if (jget(j, 0, "ranks") >= 0 && j->t[jget(j, 0, "ranks")].size > 0) {
		printf("\n");
		rank_table(j);
	}
}

/* One line (wrapped if need be) for the list of mounts. */
static void show_line(const char *mnt, const struct snap *s)
{
	const struct json *j = &s->j;
	char b1[32], b2[32], b3[32];
	struct line l;

	if ((int)strlen(mnt) + 1 > cols - 30) { /* a long path: the figures below it */
		printf("%s\n", mnt);
		l.len = snprintf(l.buf, sizeof(l.buf), "    ");
	} else {
		l.len = snprintf(l.buf, sizeof(l.buf), "%s ", mnt);
	}
	l.indent = 4;
	l.n = 0;
	ln_add(&l, "hits %.1f%% opens %.1f%% bytes",
	       100 * ratio(jnum(j, 0, "open_hits"), jnum(j, 0, "opens")),
	       100 * ratio(jnum(j, 0, "read_bytes_from_cache"), jnum(j, 0, "read_bytes")));
	ln_add(&l, "backend %s", bytes(jnum(j, 0, "backend_bytes"), b1));
	ln_add(&l, "cache %s/%s", bytes(jnum(j, 0, "cache_bytes"), b2),
	       bytes(jnum(j, 0, "cache_capacity"), b3));
	if (jhas(j, 0, "epoch"))
		ln_add(&l, "epoch %.0f", jnum(j, 0, "epoch"));
	ln_end(&l);
}

/* Prometheus exposition.  Known keys get their proper name, type and help;
 * any other number is exported as a gauge named after its key. */
struct metric {
	const char *key, *name, *help;
	char counter;
	double scale;
};

static const struct metric metrics[] = {
	{ "uptime_ns", "uptime_seconds", "Seconds since the daemon started", 0, 1e-9 },
	{ "files", "files", "Files in the dataset snapshot", 0, 1 },
	{ "opens", "opens", "Opens of dataset files", 1, 1 },
	{ "open_hits", "open_hits", "Opens of files fully cached at open", 1, 1 },
	{ "reads", "reads", "Read requests served", 1, 1 },
	{ "read_bytes", "read_bytes", "Bytes served to readers", 1, 1 },
	{ "read_bytes_from_cache", "read_bytes_from_cache", "Bytes served from the cache", 1, 1 },
	{ "prefetch_staged", "prefetch_staged", "Cached files read ahead into RAM for the readers", 1, 1 },
	{ "passthrough_opens", "passthrough_opens", "Opens read by the kernel from the cache (FUSE passthrough)", 1, 1 },
	{ "stall_ns", "stall_seconds", "Seconds readers waited on the backend, summed over readers", 1, 1e-9 },
	{ "backend_requests", "backend_requests", "Requests sent to the source", 1, 1 },
	{ "backend_bytes", "backend_bytes", "Bytes read from the source", 1, 1 },
	{ "backend_errors", "backend_errors", "Source requests that failed after retries", 1, 1 },
	{ "backend_retries", "backend_retries", "Source requests retried", 1, 1 },
	{ "skipped_keys", "backend_skipped_keys", "Source names skipped when listing", 1, 1 },
	{ "fetches", "fetches", "Chunk fetches started", 1, 1 },
	{ "fetch_bytes", "fetch_bytes", "Bytes fetched into the cache", 1, 1 },
	{ "cache_bytes", "cache_bytes", "Cache bytes in use, index included", 0, 1 },
	{ "cache_data_bytes", "cache_data_bytes", "Cache bytes holding data", 0, 1 },
	{ "cache_meta_bytes", "cache_meta_bytes", "Cache bytes holding the index", 0, 1 },
	{ "cache_capacity", "cache_capacity_bytes", "Cache size bound", 0, 1 },
	{ "cache_objects", "cache_objects", "Files with cached data", 0, 1 },
	{ "evictions", "evictions", "Objects evicted", 1, 1 },
	{ "not_admitted", "not_admitted", "Chunks the policy did not admit", 1, 1 },
	{ "verify_failures", "verify_failures", "Cached chunks failing their checksum", 1, 1 },
	{ "stale", "stale", "Cached objects found changed at the source", 1, 1 },
	{ "store_errors", "store_errors", "Errors writing the cache store", 1, 1 },
	{ "cache_degraded", "cache_degraded", "1 while storing is off after a full disk", 0, 1 },
	{ "epoch", "epoch", "Epoch the readers are in", 0, 1 },
	{ "position", "position", "Readers' position in the epoch's order", 0, 1 },
	{ "prefetch_issued", "prefetch_issued", "Prefetches started", 1, 1 },
	{ "prefetch_used", "prefetch_used", "Prefetched files opened (or served to a peer) after arriving", 1, 1 },
	{ "prefetch_late", "prefetch_late", "Prefetched files opened while in flight", 1, 1 },
	{ "prefetch_wasted", "prefetch_wasted", "Prefetched files evicted unused", 1, 1 },
	{ "substitutions", "substitutions", "Opens served a substitute sample", 1, 1 },
	{ "substitution_debt", "substitution_debt", "Missed samples still owed a serving", 0, 1 },
	{ "plain_reads", "plain_reads", "Opens of samples no rank's plan holds", 1, 1 },
	{ "epoch_length", "epoch_length", "Samples in the epoch's order", 0, 1 },
	{ "hit_bytes", "hit_bytes", "Bytes served from the cache", 1, 1 },
	{ "planned", "planned", "1 while a plan (seed or order) is in force", 0, 1 },
	{ "origin_bytes", "origin_bytes", "Bytes read from the origin (peers excluded)", 1, 1 },
	{ "peer_bytes_in", "peer_bytes_in", "Bytes read from peers' caches", 1, 1 },
	{ "peer_bytes_out", "peer_bytes_out", "Bytes served to peers", 1, 1 },
	{ "peer_requests", "peer_requests", "Requests sent to peers", 1, 1 },
	{ "peer_errors", "peer_errors", "Peer requests that failed (the read went to the origin)", 1, 1 },
	{ "peer_misses", "peer_misses", "Peer requests the peer could not serve (404, 409)", 1, 1 },
	{ "peer_served", "peer_served", "Requests of peers served", 1, 1 },
	{ "peer_refused", "peer_refused", "Requests of peers refused (4xx)", 1, 1 },
};

/* Arrays of objects exported as families of their own, one sample per
 * element, labelled by the element's key member. */
static const struct {
	const char *array, *prefix, *label, *help;
} arrays[] = {
	{ "epochs", "epoch_", "epoch", "Per epoch: " },
	{ "ranks", "rank_", "rank", "Per rank: " },
	{ "peers", "peer_", "addr", "Per peer: " },
};

static void prom_name(const char *prefix, const char *key, int keylen, char *out, size_t outlen)
{
	const struct metric *m = NULL;
	size_t o;

	for (size_t i = 0; i < ARRAY_SIZE(metrics); i++)
		if ((int)strlen(metrics[i].key) == keylen && !memcmp(metrics[i].key, key, (size_t)keylen))
			m = &metrics[i];
	o = (size_t)snprintf(out, outlen, "epochfs_%s", prefix);
	if (m) {
		snprintf(out + o, outlen - o, "%s%s", m->name, m->counter ? "_total" : "");
		return;
	}
	for (int i = 0; i < keylen && o + 1 < outlen; i++)
		out[o++] = (key[i] >= 'a' && key[i] <= 'z') || (key[i] >= 'A' && key[i] <= 'Z') ||
				   (key[i] >= '0' && key[i] <= '9') ? key[i] : '_';
	out[o] = 0;
}

static const struct metric *prom_meta(const char *key, int keylen)
{
	static const struct metric other = { "", "", "epochfs stats field", 0, 1 };

	for (size_t i = 0; i < ARRAY_SIZE(metrics); i++)
		if ((int)strlen(metrics[i].key) == keylen && !memcmp(metrics[i].key, key, (size_t)keylen))
			return &metrics[i];
	return &other;
}

/* A label value with \, " and newline escaped. */
static void prom_label(const char *v, char *out, size_t outlen)
{
	size_t o = 0;

	for (; *v && o + 3 < outlen; v++) {
		if (*v == '\\' || *v == '"' || *v == '\n')
			out[o++] = '\\';
		out[o++] = *v == '\n' ? 'n' : *v;
	}
	out[o] = 0;
}

/* Every sample of one family (name) over all mounts, after its HELP and TYPE
 * lines; a family of an array (arr >= 0 in arrays[]) takes one sample per
 * element. */
static void prom_family(const char *name, const struct metric *m, int ai, char **mnts,
			struct snap **snaps, int n)
{
	const char *prefix = ai >= 0 ? arrays[ai].prefix : "";
	char nm[160], lbl[1024], raw[512];

	printf("# HELP %s %s%s\n# TYPE %s %s\n", name, ai >= 0 ? arrays[ai].help : "", m->help, name,
	       m->counter ? "counter" : "gauge");
	for (int i = 0; i < n; i++) {
		const struct json *j = &snaps[i]->j;
		int arr = ai >= 0 ? jget(j, 0, arrays[ai].array) : -1;

		prom_label(mnts[i], lbl, sizeof(lbl));
		if (ai < 0) {
			for (int c = 1; c <= j->t[0].size; c += 1 + j->t[c].size) {
				prom_name("", j->t[c].key, j->t[c].keylen, nm, sizeof(nm));
				if (j->t[c].type == J_NUM && !strcmp(nm, name))
					printf("%s{mountpoint=\"%s\"} %.17g\n", name, lbl,
					       j->t[c].num * m->scale);
			}
			continue;
		}
		if (arr < 0 || j->t[arr].type != J_ARR)
			continue;
		for (int e = arr + 1; e <= arr + j->t[arr].size; e += 1 + j->t[e].size)
			for (int c = e + 1; j->t[e].type == J_OBJ && c <= e + j->t[e].size;
			     c += 1 + j->t[c].size) {
				prom_name(prefix, j->t[c].key, j->t[c].keylen, nm, sizeof(nm));
				if (j->t[c].type != J_NUM || strcmp(nm, name))
					continue;
				{
					int li = jget(j, e, arrays[ai].label);
					char esc[600];

					if (li >= 0 && j->t[li].type == J_STR)
						jstr(j, e, arrays[ai].label, raw, sizeof(raw));
					else
						snprintf(raw, sizeof(raw), "%.0f",
							 jnum(j, e, arrays[ai].label));
					prom_label(raw, esc, sizeof(esc));
					printf("%s{mountpoint=\"%s\",%s=\"%s\"} %.17g\n", name, lbl,
					       arrays[ai].label, esc, j->t[c].num * m->scale);
				}
			}
	}
}

/* Print the family of one numeric member unless it was printed already. */
static void prom_once(const struct jtok *t, int ai, char **mnts, struct snap **snaps, int n)
{
	static char seen[512][160];
	static int nseen;
	char nm[160];
	int k;

	prom_name(ai >= 0 ? arrays[ai].prefix : "", t->key, t->keylen, nm, sizeof(nm));
	for (k = 0; k < nseen && strcmp(seen[k], nm); k++)
		;
	if (k < nseen || nseen == (int)ARRAY_SIZE(seen))
		return;
	strcpy(seen[nseen++], nm);
	prom_family(nm, prom_meta(t->key, t->keylen), ai, mnts, snaps, n);
}

static int is_key(const struct jtok *t, const char *key)
{
	return t->key && t->keylen == (int)strlen(key) && !memcmp(t->key, key, (size_t)t->keylen);
}

/* Families in order of first appearance over all mounts. */
static void prometheus(char **mnts, struct snap **snaps, int n)
{
	char lbl[1024], src[512], be[64], pol[64], l2[600];

	printf("# HELP epochfs_info The mount's source, backend and policy\n"
	       "# TYPE epochfs_info gauge\n");
	for (int i = 0; i < n; i++) {
		jstr(&snaps[i]->j, 0, "source", src, sizeof(src));
		jstr(&snaps[i]->j, 0, "backend", be, sizeof(be));
		jstr(&snaps[i]->j, 0, "policy", pol, sizeof(pol));
		prom_label(mnts[i], lbl, sizeof(lbl));
		prom_label(src, l2, sizeof(l2));
		printf("epochfs_info{mountpoint=\"%s\",source=\"%s\",", lbl, l2);
		prom_label(be, lbl, sizeof(lbl));
		prom_label(pol, l2, sizeof(l2));
		printf("backend=\"%s\",policy=\"%s\"} 1\n", lbl, l2);
	}
	for (int i = 0; i < n; i++) {
		const struct json *j = &snaps[i]->j;

		for (int c = 1; c <= j->t[0].size; c += 1 + j->t[c].size) {
			const struct jtok *t = &j->t[c];

			if (t->type == J_NUM && !is_key(t, "version"))
				prom_once(t, -1, mnts, snaps, n);
			for (int ai = 0; ai < (int)ARRAY_SIZE(arrays); ai++) {
				if (t->type != J_ARR || !is_key(t, arrays[ai].array))
					continue;
				for (int e = c + 1; e <= c + t->size; e += 1 + j->t[e].size)
					for (int m = e + 1; j->t[e].type == J_OBJ && m <= e + j->t[e].size;
					     m += 1 + j->t[m].size)
						if (j->t[m].type == J_NUM &&
						    !is_key(&j->t[m], arrays[ai].label))
							prom_once(&j->t[m], ai, mnts, snaps, n);
			}
		}
	}
}

struct found_mounts {
	char **out;
	int max, n;
};

static int found_cb(void *arg, const struct mountinfo_ent *e)
{
	struct found_mounts *fm = arg;

	if (fm->n >= fm->max)
		return 1;
	if (!strcmp(e->fstype, "fuse.epochfs") && (fm->out[fm->n] = strdup(e->mountpoint)))
		fm->n++;
	return 0;
}

/* Mountpoints of type fuse.epochfs, from /proc/self/mountinfo; the count or
 * -errno.  The strings are the caller's to free. */
static int find_mounts(char **out, int max)
{
	struct found_mounts fm = { out, max, 0 };
	int rc = mountinfo_each(NULL, found_cb, &fm);

	return rc < 0 ? rc : fm.n;
}

/* Mount paths found in mountinfo, freed at exit. */
static char *found[64];
static int nfound;

static void free_found(void)
{
	for (int i = 0; i < nfound; i++)
		free(found[i]);
}

/* --watch: the last HIST intervals' hit rate and backend throughput. */
#define HIST 90

struct hist {
	double hit[HIST], bw[HIST];
	int n;
};

static void spark(const double *v, int n, double max, char *out)
{
	static const char *const bars[] = { "▁", "▂", "▃", "▄", "▅", "▆", "▇", "█" };

	*out = 0;
	for (int i = 0; i < n; i++) {
		if (isnan(v[i])) {
			strcat(out, " ");
			continue;
		}
		int lv = max > 0 ? (int)lround(7 * v[i] / max) : 0;

		strcat(out, bars[lv < 0 ? 0 : lv > 7 ? 7 : lv]);
	}
}

static void hist_show(struct hist *h, const struct snap *s, const struct snap *prev, double every)
{
	double dt = (double)(s->at_ns - prev->at_ns) / 1e9, max = 0;
	double o = jnum(&s->j, 0, "opens") - jnum(&prev->j, 0, "opens");
	double hits = jnum(&s->j, 0, "open_hits") - jnum(&prev->j, 0, "open_hits");
	char line[HIST * 4 + 1], b1[32];
	int k, from;

	if (h->n == HIST) {
		memmove(h->hit, h->hit + 1, sizeof(h->hit) - sizeof(h->hit[0]));
		memmove(h->bw, h->bw + 1, sizeof(h->bw) - sizeof(h->bw[0]));
		h->n--;
	}
	h->hit[h->n] = o > 0 ? hits / o : NAN;
	h->bw[h->n] = dt > 0 ? (jnum(&s->j, 0, "backend_bytes") - jnum(&prev->j, 0, "backend_bytes")) / dt : 0;
	h->n++;
	/* as many marks as fit after the 16-column label */
	k = MIN(h->n, cols - 17);
	from = h->n - k;
	for (int i = from; i < h->n; i++)
		max = h->bw[i] > max ? h->bw[i] : max;
	printf("\n  last %.0f s, one mark per %g s (backend peak %s/s):\n", k * every, every,
	       bytes(max, b1));
	spark(h->hit + from, k, 1, line);
	printf("  hit rate      %s\n", line);
	spark(h->bw + from, k, max, line);
	printf("  backend       %s\n", line);
}

static int watch(const char *mnt, double every)
{
	static struct snap a, b;
	static struct hist h;
	struct snap *cur = &a, *prev = &b, *t;
	int tty = isatty(1);

	if (open_stats(mnt, cur))
		return EXIT_NOTMOUNT;
	for (;;) {
		t = prev, prev = cur, cur = t;
		usleep((useconds_t)(every * 1e6));
		if (read_stats(mnt, cur)) {
			fprintf(stderr, "epochfs-stat: %s is no longer mounted\n", mnt);
			return EXIT_FAILED;
		}
		cols = term_cols(1);
		printf(tty ? "\033[H\033[J" : "\n");
		show(mnt, cur, prev);
		hist_show(&h, cur, prev, every);
		fflush(stdout);
	}
}

static void json_key(const char *s)
{
	putchar('"');
	for (; *s; s++)
		if (*s == '"' || *s == '\\')
			printf("\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			printf("\\u%04x", *s);
		else
			putchar(*s);
	putchar('"');
}

static int usage(FILE *out, int rc)
{
	fprintf(out,
		"usage: epochfs-stat [MOUNTPOINT...]             one screen each (no argument:\n"
		"                                                a line for every epochfs mount)\n"
		"       epochfs-stat --watch SECONDS MOUNTPOINT  refresh in place, with rates\n"
		"       epochfs-stat --json [MOUNTPOINT...]      the raw stats object\n"
		"       epochfs-stat --prometheus [MOUNTPOINT...]  Prometheus text format\n"
		"       epochfs-stat --help\n"
		"\n"
		"The screen gives the hit rate by opens and by bytes, the prefetches opened\n"
		"in time and the stall time for this epoch, the last epoch and all time,\n"
		"then the totals and one line per reader rank; it fits the terminal's\n"
		"width (else $COLUMNS, else 80 columns).\n"
		"Exit status: 0 success; 1 failed (no epochfs mounted, a watched mount\n"
		"went away); 2 usage; 5 a MOUNTPOINT is not an epochfs mount.\n");
	return rc;
}

#define MAXMNT 256

int main(int argc, char **argv)
{
	static struct snap snaps[16];
	struct snap *sp[MAXMNT];
	char *mnts[MAXMNT], *end;
	int json = 0, prom = 0, n = 0, k = 0, listing = 0, rc = 0;
	double every = 0;

	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
			return usage(stdout, EXIT_OK_);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "--json"))
			json = 1;
		else if (!strcmp(a, "--prometheus"))
			prom = 1;
		else if (!strcmp(a, "--watch") || !strncmp(a, "--watch=", 8)) {
			const char *v = a[7] ? a + 8 : i + 1 < argc ? argv[++i] : "";

			every = strtod(v, &end);
			if (!*v || *end || !(every > 0 && every < 86400)) {
				fprintf(stderr, "epochfs-stat: --watch needs a number of seconds\n");
				return usage(stderr, EXIT_USAGE);
			}
		} else if (!strcmp(a, "-h") || !strcmp(a, "--help"))
			return usage(stdout, EXIT_OK_);
		else if (a[0] == '-' && a[1]) {
			fprintf(stderr, "epochfs-stat: unknown option %s\n", a);
			return usage(stderr, EXIT_USAGE);
		} else if (n < MAXMNT)
			mnts[n++] = argv[i];
	}
	if (json + prom > 1 || (every > 0 && (json || prom || n != 1))) {
		fprintf(stderr, "epochfs-stat: --watch takes one mountpoint and no --json or --prometheus\n");
		return usage(stderr, EXIT_USAGE);
	}
	cols = term_cols(1);
	if (every > 0)
		return watch(mnts[0], every);
	if (!n) {
		n = find_mounts(mnts, MAXMNT);
		for (int i = 0; i < n && nfound < (int)ARRAY_SIZE(found); i++)
			found[nfound++] = mnts[i];
		atexit(free_found);
		if (n < 0) {
			fprintf(stderr, "epochfs-stat: /proc/self/mountinfo: %s\n", strerror(-n));
			return EXIT_FAILED;
		}
		if (!n) {
			fprintf(stderr, "epochfs-stat: no epochfs is mounted\n");
			return EXIT_FAILED;
		}
		listing = 1;
	}
	if (n > (int)ARRAY_SIZE(snaps))
		n = (int)ARRAY_SIZE(snaps);
	for (int i = 0; i < n; i++) {
		int err = listing ? read_stats(mnts[i], &snaps[k]) : open_stats(mnts[i], &snaps[k]);

		if (err && listing && !json && !prom)
			printf("%-30s stats unreadable: %s\n", mnts[i], strerror(-err));
		if (err) {
			rc = listing ? rc : EXIT_NOTMOUNT;
			continue;
		}
		mnts[k] = mnts[i];
		sp[k] = &snaps[k];
		k++;
	}
	if (prom)
		prometheus(mnts, sp, k);
	for (int i = 0; i < k && !prom; i++) {
		if (json && (listing || n > 1)) {
			printf(i ? "," : "{");
			json_key(mnts[i]);
			printf(":");
			fputs(snaps[i].text, stdout);
		} else if (json)
			fputs(snaps[i].text, stdout);
		else if (listing)
			show_line(mnts[i], sp[i]);
		else
			show(mnts[i], sp[i], NULL), printf(i + 1 < k ? "\n" : "");
	}
	if (json && (listing || n > 1))
		printf(k ? "}\n" : "{}\n");
	return rc;
}
