/* SPDX-License-Identifier: MIT */
/* epochfs-ctl: act on a mount.  `warm` fills the cache by reading files
 * through the mount (so through the daemon's fetch engine) with several
 * threads, in manifest order, skipping what is cached and stopping when the
 * cache is full; `evict` drops objects; `status` shows what is cached. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "backends/base/util.h"

#define XATTR "user.epochfs.cached"
#define READ_BUF (1 << 20)

struct list {
	char **v;
	size_t n, cap;
};

static int list_add(struct list *l, const char *s, size_t len)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 1024;
		char **v = realloc(l->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n] = strndup(s, len);
	return l->v[l->n] ? (l->n++, 0) : -ENOMEM;
}

static void list_free(struct list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

/* A top-level number of the mount's stats object; 0 or -errno (-ENOENT when
 * the key is absent).  Nested objects are skipped by tracking the depth. */
static int stat_num(const char *mnt, const char *key, double *out)
{
	char path[PATH_MAX], buf[1 << 18];
	size_t klen = strlen(key), len = 0;
	int fd, depth = 0, instr = 0;
	ssize_t n;

	snprintf(path, sizeof(path), "%s/.epochfs/stats", mnt);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -errno;
	while ((n = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0)
		len += (size_t)n;
	close(fd);
	buf[len] = 0;
	for (char *p = buf; *p; p++) {
		if (instr) {
			if (*p == '\\' && p[1])
				p++;
			else if (*p == '"')
				instr = 0;
		} else if (*p == '{' || *p == '[') {
			depth++;
		} else if (*p == '}' || *p == ']') {
			depth--;
		} else if (*p == '"') {
			if (depth == 1 && !strncmp(p + 1, key, klen) && !strncmp(p + 1 + klen, "\":", 2)) {
				*out = strtod(p + klen + 3, NULL);
				return 0;
			}
			instr = 1;
		}
	}
	return -ENOENT;
}

/* The xattr "CACHED/SIZE" of a file under the mount; 0 or -errno. */
static int cached(const char *mnt, const char *rel, uint64_t *c, uint64_t *size)
{
	char path[PATH_MAX], v[64];
	unsigned long long a, b;
	ssize_t n;

	snprintf(path, sizeof(path), "%s/%s", mnt, rel);
	n = getxattr(path, XATTR, v, sizeof(v) - 1);
	if (n < 0)
		return errno == ENODATA || errno == ENOTSUP ? -ENODATA : -errno;
	v[n] = 0;
	if (sscanf(v, "%llu/%llu", &a, &b) != 2)
		return -EINVAL;
	*c = a;
	*size = b;
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Files under rel ("" for the root), sorted as ImageFolder orders them:
 * a directory's files by name, then its subdirectories by name, each
 * recursively.  0 or -errno. */
static int walk(const char *mnt, const char *rel, struct list *out)
{
	struct list files = { 0 }, dirs = { 0 };
	char path[PATH_MAX], sub[PATH_MAX];
	struct dirent *de;
	DIR *d;
	int rc = 0;

	snprintf(path, sizeof(path), "%s/%s", mnt, rel);
	d = opendir(path);
	if (!d)
		return -errno;
	while (!rc && (de = readdir(d))) {
		if (de->d_name[0] == '.' && (!de->d_name[1] || !strcmp(de->d_name, "..") ||
					     !strcmp(de->d_name, ".epochfs")))
			continue;
		snprintf(sub, sizeof(sub), "%s%s%s", rel, *rel ? "/" : "", de->d_name);
		rc = list_add(de->d_type == DT_DIR ? &dirs : &files, sub, strlen(sub));
	}
	closedir(d);
	if (files.n)
		qsort(files.v, files.n, sizeof(char *), cmp_str);
	if (dirs.n)
		qsort(dirs.v, dirs.n, sizeof(char *), cmp_str);
	for (size_t i = 0; !rc && i < files.n; i++)
		rc = list_add(out, files.v[i], strlen(files.v[i]));
	for (size_t i = 0; !rc && i < dirs.n; i++)
		rc = walk(mnt, dirs.v[i], out);
	list_free(&files);
	list_free(&dirs);
	return rc;
}

/* The lines of a control file (manifest or order) as paths; 0 or -errno. */
static int read_lines(const char *mnt, const char *name, struct list *out)
{
	char path[PATH_MAX], *line = NULL;
	size_t cap = 0;
	ssize_t n;
	FILE *f;
	int rc = 0;

	snprintf(path, sizeof(path), "%s/.epochfs/%s", mnt, name);
	f = fopen(path, "r");
	if (!f)
		return -errno;
	while (!rc && (n = getline(&line, &cap, f)) >= 0) {
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			n--;
		if (n > 0)
			rc = list_add(out, line, (size_t)n);
	}
	if (!rc && ferror(f))
		rc = -EIO;
	free(line);
	fclose(f);
	return rc;
}

/* Append the files of the whole mount (in walk order) that the list, read
 * from the manifest or the plan, does not name: the manifest holds only
 * what ImageFolder would load.  0 or -errno. */
static int add_the_rest(const char *mnt, struct list *l)
{
	struct list all = { 0 };
	char **named = NULL;
	size_t n = l->n;
	int rc = walk(mnt, "", &all);

	if (!rc && n) {
		named = malloc(n * sizeof(*named));
		if (!named)
			rc = -ENOMEM;
		else
			memcpy(named, l->v, n * sizeof(*named));
	}
	if (named)
		qsort(named, n, sizeof(*named), cmp_str);
	for (size_t i = 0; !rc && i < all.n; i++)
		if (!n || !bsearch(&all.v[i], named, n, sizeof(*named), cmp_str))
			rc = list_add(l, all.v[i], strlen(all.v[i]));
	free(named);
	list_free(&all);
	return rc;
}

/* A command-line PATH as a path relative to the mount root: "a/b" stays,
 * "/MNT/a/b" (or any absolute path inside the mount) loses the mount's
 * prefix.  NULL (with a message) for an absolute path outside the mount. */
static const char *relpath(const char *mnt_real, const char *arg, char *buf, size_t len)
{
	size_t ml = strlen(mnt_real);

	if (arg[0] != '/') {
		while (arg[0] == '.' && arg[1] == '/')
			arg += 2;
		return arg;
	}
	if (!realpath(arg, buf) || strncmp(buf, mnt_real, ml) || (buf[ml] && buf[ml] != '/')) {
		fprintf(stderr, "epochfs-ctl: %s is not inside the mount %s\n", arg, mnt_real);
		return NULL;
	}
	memmove(buf, buf + ml + (buf[ml] == '/'), strlen(buf + ml) + 1);
	(void)len;
	return buf;
}

/* warm: shared state of the reader threads and the progress loop. */
struct warm {
	const char *mnt;
	struct list *files;
	atomic_size_t next, done, skipped, partial, errors;
	atomic_uint_fast64_t bytes, skipped_bytes;
	atomic_int full;
	double rate;		/* bytes/s cap, 0 for none */
	uint64_t t0;
	double na0, ev0, cap;
};

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
	(void)sig;
	interrupted = 1;
}

/* After a file did not end fully cached: is the cache full?  It is when the
 * policy refuses chunks with less room left than this file needed, or when
 * it started evicting (warming on would push out what was just warmed). */
static void check_full(struct warm *w, uint64_t size)
{
	double na, ev, used;

	if (stat_num(w->mnt, "not_admitted", &na) || stat_num(w->mnt, "evictions", &ev) ||
	    stat_num(w->mnt, "cache_bytes", &used))
		return;
	if (ev > w->ev0 || (na > w->na0 && w->cap - used < MAX(w->cap / 100, 2.0 * size + 65536)))
		atomic_store(&w->full, 1);
}

/* Whether need more bytes of data (with a block of overhead) fit in the
 * cache's free room; a file that does not is not read at all, sparing the
 * backend, and when the room left is under 1% the cache counts as full. */
static int fits(struct warm *w, uint64_t need)
{
	double used;

	if (stat_num(w->mnt, "cache_bytes", &used))
		return 1;
	if (w->cap - used < w->cap / 100)
		atomic_store(&w->full, 1);
	return (double)((need + 4095) / 4096 * 4096 + 4096) <= w->cap - used;
}

/* Sleep so that the bytes read so far keep to the --rate cap. */
static void pace(struct warm *w)
{
	double due, el;

	if (w->rate <= 0)
		return;
	due = (double)atomic_load(&w->bytes) / w->rate;
	el = (double)(now_ns() - w->t0) / 1e9;
	if (due > el)
		usleep((useconds_t)((due - el) * 1e6));
}

/* Read one file whole through the mount; the bytes go nowhere. 0 or -errno. */
static int read_file(struct warm *w, const char *rel, char *buf)
{
	char path[PATH_MAX];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", w->mnt, rel);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -errno;
	while (!interrupted && (n = read(fd, buf, READ_BUF)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			n = -errno;
			close(fd);
			return (int)n;
		}
		atomic_fetch_add(&w->bytes, (uint64_t)n);
		pace(w);
	}
	/* the page cache need not keep what the SSD cache now holds */
	posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	close(fd);
	return 0;
}

static void *warm_main(void *arg)
{
	struct warm *w = arg;
	char *buf = malloc(READ_BUF);
	uint64_t c, size;
	size_t i;
	int rc;

	while (buf && !interrupted && !atomic_load(&w->full) &&
	       (i = atomic_fetch_add(&w->next, 1)) < w->files->n) {
		const char *rel = w->files->v[i];

		rc = cached(w->mnt, rel, &c, &size);
		if (!rc && c == size) {
			atomic_fetch_add(&w->skipped, 1);
			atomic_fetch_add(&w->skipped_bytes, size);
			atomic_fetch_add(&w->done, 1);
			continue;
		}
		if (!rc && !fits(w, size - c)) {
			atomic_fetch_add(&w->partial, 1);
			atomic_fetch_add(&w->done, 1);
			continue;
		}
		if (!rc)
			rc = read_file(w, rel, buf);
		if (!rc && !interrupted)
			rc = cached(w->mnt, rel, &c, &size);
		if (rc) {
			if (atomic_fetch_add(&w->errors, 1) < 10)
				fprintf(stderr, "\nepochfs-ctl: %s: %s\n", rel, strerror(-rc));
		} else if (c < size && !interrupted) {
			atomic_fetch_add(&w->partial, 1);
			check_full(w, size);
		}
		atomic_fetch_add(&w->done, 1);
	}
	free(buf);
	return NULL;
}

static void progress(struct warm *w, int tty, int final)
{
	double el = (double)(now_ns() - w->t0) / 1e9, used = 0, frac, fill;
	size_t done = atomic_load(&w->done), n = w->files->n;
	uint64_t b = atomic_load(&w->bytes);
	char b1[32], b2[32], b3[32], bar[41];
	int eta;

	stat_num(w->mnt, "cache_bytes", &used);
	frac = n ? (double)done / (double)n : 1;
	/* a cache smaller than the data is done when full: count that too */
	fill = w->cap > 0 ? used / w->cap : 0;
	frac = MAX(frac, fill);
	eta = frac > 0 && el > 0 ? (int)(el * (1 - frac) / frac) : -1;
	format_bytes(b, b1, sizeof(b1));
	format_bytes((uint64_t)used, b2, sizeof(b2));
	format_bytes((uint64_t)w->cap, b3, sizeof(b3));
	if (tty) {
		int k = (int)(frac * 40);

		memset(bar, '#', (size_t)k);
		memset(bar + k, '.', (size_t)(40 - k));
		bar[40] = 0;
		fprintf(stderr, "\r[%s] %zu/%zu files  %s read  %.1f MB/s  cache %s/%s  ", bar, done,
			n, b1, el > 0 ? b / el / 1e6 : 0, b2, b3);
		if (eta >= 0 && !final)
			fprintf(stderr, "ETA %d:%02d:%02d", eta / 3600, eta / 60 % 60, eta % 60);
		fprintf(stderr, "\033[K%s", final ? "\n" : "");
	} else if (!final) {
		fprintf(stderr, "epochfs-ctl: warm: %zu/%zu files, %s read, %.1f MB/s, cache %s of %s, ETA %ds\n",
			done, n, b1, el > 0 ? b / el / 1e6 : 0, b2, b3, eta);
	}
}

/* Fill the cache; 0 when done or full, 1 on errors, 130 when interrupted. */
static int warm(const char *mnt, int nthreads, double rate, double every, struct list *files)
{
	struct warm w = { .mnt = mnt, .files = files, .rate = rate };
	struct sigaction sa = { .sa_handler = on_sigint };
	pthread_t th[256];
	int started = 0, tty = isatty(2), rc;
	uint64_t last;
	char b1[32], b2[32];
	double used = 0;

	if (stat_num(mnt, "not_admitted", &w.na0) || stat_num(mnt, "evictions", &w.ev0) ||
	    stat_num(mnt, "cache_capacity", &w.cap)) {
		fprintf(stderr, "epochfs-ctl: %s: cannot read .epochfs/stats\n", mnt);
		return 1;
	}
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	w.t0 = last = now_ns();
	for (; started < nthreads; started++)
		if (pthread_create(&th[started], NULL, warm_main, &w))
			break;
	if (!started) {
		fprintf(stderr, "epochfs-ctl: cannot start threads\n");
		return 1;
	}
	while (atomic_load(&w.done) < files->n && !interrupted && !atomic_load(&w.full)) {
		usleep(100000);
		if ((double)(now_ns() - last) / 1e9 >= (tty ? 0.25 : every)) {
			progress(&w, tty, 0);
			last = now_ns();
		}
	}
	for (int i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	progress(&w, tty, 1);
	stat_num(mnt, "cache_bytes", &used);
	format_bytes(atomic_load(&w.bytes), b1, sizeof(b1));
	format_bytes(atomic_load(&w.skipped_bytes), b2, sizeof(b2));
	printf("warm %s: %s after %.1f s: %zu of %zu files done, %s read, %zu already cached (%s), "
	       "%zu not fully cached, %zu errors; cache %.1f%% full\n",
	       mnt, interrupted ? "interrupted" : atomic_load(&w.full) ? "cache full" : "complete",
	       (double)(now_ns() - w.t0) / 1e9, atomic_load(&w.done), files->n, b1,
	       atomic_load(&w.skipped), b2, atomic_load(&w.partial), atomic_load(&w.errors),
	       w.cap > 0 ? 100 * used / w.cap : 0);
	rc = interrupted ? 130 : atomic_load(&w.errors) ? 1 : 0;
	return rc;
}

/* evict: one write of all paths, so the daemon applies all or none. */
static int evict(const char *mnt, struct list *paths)
{
	char path[PATH_MAX];
	size_t len = 0, off = 0;
	char *buf;
	int fd, rc = 0;

	for (size_t i = 0; i < paths->n; i++)
		len += strlen(paths->v[i]) + 1;
	buf = malloc(len + 1);
	if (!buf)
		return 1;
	for (size_t i = 0; i < paths->n; i++)
		off += (size_t)sprintf(buf + off, "%s\n", paths->v[i]);
	snprintf(path, sizeof(path), "%s/.epochfs/evict", mnt);
	fd = open(path, O_WRONLY | O_TRUNC);
	if (fd < 0) {
		if (errno == ENOENT)
			fprintf(stderr, "epochfs-ctl: %s has no .epochfs/evict: this epochfs daemon "
					"cannot evict (upgrade it)\n", mnt);
		else
			fprintf(stderr, "epochfs-ctl: %s: %s\n", path, strerror(errno));
		free(buf);
		return 1;
	}
	for (off = 0; off < len && !rc;) {
		ssize_t n = write(fd, buf + off, len - off);

		if (n < 0 && errno != EINTR)
			rc = -errno;
		else if (n > 0)
			off += (size_t)n;
	}
	if (close(fd) < 0 && !rc)
		rc = -errno;
	free(buf);
	if (rc) {
		fprintf(stderr, "epochfs-ctl: evict refused (%s)%s; nothing was evicted\n",
			strerror(-rc), rc == -EINVAL ? ": an unknown path? the daemon's log says which" : "");
		return 1;
	}
	printf("evicted %zu path%s from %s\n", paths->n, paths->n == 1 ? "" : "s", mnt);
	return 0;
}

/* status: cached bytes of a file, or the sum over a directory's files. */
static int status(const char *mnt, struct list *paths)
{
	char b1[32], b2[32];
	int rc = 0;

	for (size_t i = 0; i < paths->n; i++) {
		const char *p = paths->v[i];
		struct list files = { 0 };
		uint64_t c, s, tc = 0, ts = 0;
		size_t full = 0;
		int err = cached(mnt, p, &c, &s);

		if (err == -ENODATA) {
			err = walk(mnt, p, &files);
			for (size_t k = 0; !err && k < files.n; k++) {
				err = cached(mnt, files.v[k], &c, &s);
				tc += c;
				ts += s;
				full += c == s;
			}
		}
		if (err) {
			fprintf(stderr, "epochfs-ctl: %s: %s\n", *p ? p : ".", strerror(-err));
			rc = 1;
		} else if (files.v || !*p) {
			printf("%s/  %zu of %zu files cached, %s of %s (%.1f%%)\n", *p ? p : ".", full,
			       files.n, (format_bytes(tc, b1, 32), b1), (format_bytes(ts, b2, 32), b2),
			       ts ? 100.0 * (double)tc / (double)ts : 100.0);
		} else {
			printf("%s  %llu/%llu bytes cached (%.1f%%)%s\n", p, (unsigned long long)c,
			       (unsigned long long)s, s ? 100.0 * (double)c / (double)s : 100.0,
			       c == s ? "" : c ? ", partly" : ", not cached");
		}
		list_free(&files);
	}
	return rc;
}

static int usage(FILE *out, int rc)
{
	fprintf(out,
		"usage: epochfs-ctl MOUNTPOINT warm [--threads N] [--rate MB/s] [--every SECONDS]\n"
		"                              [--plan] [PATH...]\n"
		"       epochfs-ctl MOUNTPOINT evict PATH...\n"
		"       epochfs-ctl MOUNTPOINT status [PATH...]\n"
		"PATHs are relative to the mount root (or absolute paths inside the mount).\n");
	return rc;
}

int main(int argc, char **argv)
{
	struct list paths = { 0 }, files = { 0 };
	char real[PATH_MAX], buf[PATH_MAX], *end;
	const char *mnt, *cmd, *rel;
	int nthreads = 8, plan = 0, rc = 2;
	double rate = 0, every = 5, v;

	if (argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")))
		return usage(stdout, 0);
	if (argc < 3)
		return usage(stderr, 2);
	mnt = argv[1];
	cmd = argv[2];
	if (strcmp(cmd, "warm") && strcmp(cmd, "evict") && strcmp(cmd, "status")) {
		fprintf(stderr, "epochfs-ctl: unknown command '%s'\n", cmd);
		return usage(stderr, 2);
	}
	if (stat_num(mnt, "version", &v) || !realpath(mnt, real)) {
		fprintf(stderr, "epochfs-ctl: %s is not an epochfs mount (no readable .epochfs/stats)\n", mnt);
		return 1;
	}
	for (int i = 3; i < argc; i++) {
		const char *a = argv[i];
		int opt = !strcmp(cmd, "warm") && a[0] == '-';

		if (opt && !strcmp(a, "--plan")) {
			plan = 1;
		} else if (opt && i + 1 < argc &&
			   (!strcmp(a, "--threads") || !strcmp(a, "-j") || !strcmp(a, "--rate") ||
			    !strcmp(a, "--every"))) {
			v = strtod(argv[++i], &end);
			if (*end || !(v > 0) || (a[2] == 't' || a[1] == 'j' ? v > 256 : v > 1e9)) {
				fprintf(stderr, "epochfs-ctl: bad value '%s' for %s\n", argv[i], a);
				goto out;
			}
			if (a[2] == 't' || a[1] == 'j')
				nthreads = (int)v;
			else if (a[2] == 'r')
				rate = v * 1e6;
			else
				every = v;
		} else if (opt) {
			fprintf(stderr, "epochfs-ctl: unknown option %s\n", a);
			usage(stderr, 2);
			goto out;
		} else {
			rel = relpath(real, a, buf, sizeof(buf));
			if (!rel || list_add(&paths, rel, strlen(rel))) {
				rc = 1;
				goto out;
			}
		}
	}
	if (!strcmp(cmd, "evict")) {
		rc = paths.n ? evict(mnt, &paths) : usage(stderr, 2);
		goto out;
	}
	if (!strcmp(cmd, "status")) {
		if (!paths.n && list_add(&paths, "", 0))
			goto out;
		rc = status(mnt, &paths);
		goto out;
	}
	rc = 0;
	for (size_t i = 0; !rc && i < paths.n; i++) {
		uint64_t c, s;

		if (cached(mnt, paths.v[i], &c, &s) == -ENODATA)
			rc = walk(mnt, paths.v[i], &files);
		else
			rc = list_add(&files, paths.v[i], strlen(paths.v[i]));
	}
	if (!paths.n) {
		rc = read_lines(mnt, plan ? "order" : "manifest", &files);
		if (rc && plan) {
			fprintf(stderr, "epochfs-ctl: %s: no plan to follow (.epochfs/order: %s)\n", mnt,
				strerror(-rc));
			rc = 1;
			goto out;
		}
		if (rc)
			list_free(&files);
		rc = add_the_rest(mnt, &files);
	}
	if (rc) {
		fprintf(stderr, "epochfs-ctl: cannot list what to warm: %s\n", strerror(-rc));
		rc = 1;
		goto out;
	}
	rc = warm(mnt, nthreads, rate, every, &files);
out:
	list_free(&paths);
	list_free(&files);
	return rc;
}
