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
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "backends/base/exitcode.h"
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
	size_t ml = strlen(mnt_real), n;

	if (arg[0] != '/') {
		while (arg[0] == '.' && arg[1] == '/')
			arg += 2;
		snprintf(buf, len, "%s", arg);
	} else if (!realpath(arg, buf) || strncmp(buf, mnt_real, ml) || (buf[ml] && buf[ml] != '/')) {
		fprintf(stderr, "epochfs-ctl: %s is not inside the mount %s\n", arg, mnt_real);
		return NULL;
	} else {
		memmove(buf, buf + ml + (buf[ml] == '/'), strlen(buf + ml) + 1);
	}
	/* "dir/" is "dir", "." (or "./") is the root, "" */
	n = strlen(buf);
	while (n > 0 && buf[n - 1] == '/')
		buf[--n] = 0;
	if (!strcmp(buf, "."))
		buf[0] = 0;
	return buf;
}

/* The progress line's width: the terminal's (TIOCGWINSZ on fd), else
 * $COLUMNS, else 80. */
static int term_cols(int fd)
{
	struct winsize ws;
	const char *c = getenv("COLUMNS");
	char *end;
	long v;

	if (ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
		return ws.ws_col;
	if (c && *c) {
		v = strtol(c, &end, 10);
		if (!*end && v > 0 && v < 100000)
			return (int)v;
	}
	return 80;
}

/* The ETA and the speed shown come from the last RATE_WINDOW seconds of
 * progress, sampled every SAMPLE_S: the average since the start says little
 * after the first files (which may all have been cached already). */
#define RATE_WINDOW 5.0
#define SAMPLE_S 0.25
#define NSAMP 64

/* warm: shared state of the reader threads and the progress loop. */
struct warm {
	const char *mnt;
	struct list *files;
	atomic_size_t next, done, skipped, partial, errors, nread;
	atomic_uint_fast64_t bytes, skipped_bytes;
	atomic_int full;
	double rate;		/* bytes/s cap, 0 for none */
	uint64_t t0;
	double na0, ev0, cap;
	int tty;
	pthread_mutex_t err_lock;
	char first_err[PATH_MAX + 128];
	/* progress samples (seconds since t0, fraction done, bytes read) */
	double st[NSAMP], sf[NSAMP], sb[NSAMP];
	int ns;
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

static void warm_error(struct warm *w, const char *rel, int rc)
{
	size_t k = atomic_fetch_add(&w->errors, 1);

	pthread_mutex_lock(&w->err_lock);
	if (!w->first_err[0])
		snprintf(w->first_err, sizeof(w->first_err), "%s: %s", rel, strerror(-rc));
	if (k < 10)
		fprintf(stderr, "%sepochfs-ctl: %s: %s\n", w->tty ? "\r\033[K" : "", rel,
			strerror(-rc));
	else if (k == 10)
		fprintf(stderr, "%sepochfs-ctl: more errors; the summary counts them\n",
			w->tty ? "\r\033[K" : "");
	pthread_mutex_unlock(&w->err_lock);
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
			warm_error(w, rel, rc);
		} else if (!interrupted) {
			atomic_fetch_add(&w->nread, 1);
			if (c < size) {
				atomic_fetch_add(&w->partial, 1);
				check_full(w, size);
			}
		}
		atomic_fetch_add(&w->done, 1);
	}
	free(buf);
	return NULL;
}

/* The fraction done: files, or the cache's fill when that is further (a
 * cache smaller than the data is done when full). */
static double warm_frac(struct warm *w, double *used)
{
	size_t n = w->files->n;
	double frac = n ? (double)atomic_load(&w->done) / (double)n : 1;

	*used = 0;
	stat_num(w->mnt, "cache_bytes", used);
	if (w->cap > 0)
		frac = MAX(frac, *used / w->cap);
	return frac > 1 ? 1 : frac;
}

/* Take a progress sample (the ring keeps the last NSAMP). */
static void warm_sample(struct warm *w)
{
	double used, f = warm_frac(w, &used);
	int k = w->ns % NSAMP;

	w->st[k] = (double)(now_ns() - w->t0) / 1e9;
	w->sf[k] = f;
	w->sb[k] = (double)atomic_load(&w->bytes);
	w->ns++;
}

/* The moving rates over the last RATE_WINDOW seconds: fraction per second
 * and bytes per second; 0 when there are not yet two samples a second apart. */
static int warm_rates(const struct warm *w, double *fps, double *bps)
{
	int last, first, k;

	*fps = *bps = 0;
	if (w->ns < 2)
		return -1;
	last = (w->ns - 1) % NSAMP;
	first = last;
	for (k = 1; k < MIN(w->ns, NSAMP); k++) {
		int i = (w->ns - 1 - k) % NSAMP;

		if (w->st[last] - w->st[i] > RATE_WINDOW)
			break;
		first = i;
	}
	if (w->st[last] - w->st[first] < 1.0)
		return -1;
	*fps = (w->sf[last] - w->sf[first]) / (w->st[last] - w->st[first]);
	*bps = (w->sb[last] - w->sb[first]) / (w->st[last] - w->st[first]);
	return 0;
}

/* "h:mm:ss" or "m:ss" */
static void fmt_dur(double s, char *buf, size_t len)
{
	long t = s < 0 ? 0 : s > 359999 ? 359999 : (long)(s + 0.5);

	if (t >= 3600)
		snprintf(buf, len, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
	else
		snprintf(buf, len, "%ld:%02ld", t / 60, t % 60);
}

/* The progress line.  On a terminal it is redrawn in place and fits its
 * width: the bar shrinks first (40 down to 10 marks, then none), then the
 * least useful fields go (cache fill, bytes read, speed). */
static void progress(struct warm *w, int final)
{
	double used, frac = warm_frac(w, &used), fps, bps;
	size_t done = atomic_load(&w->done), n = w->files->n, errs = atomic_load(&w->errors);
	uint64_t b = atomic_load(&w->bytes);
	char b1[32], b2[32], b3[32], eta[32] = "?", f[6][96], line[640], bar[48];
	int have = warm_rates(w, &fps, &bps) == 0, nf = 0, cols, avail, len, k;

	if (final)
		snprintf(eta, sizeof(eta), "done");
	else if (have && fps > 0)
		fmt_dur((1 - frac) / fps, eta, sizeof(eta));
	format_bytes(b, b1, sizeof(b1));
	format_bytes((uint64_t)used, b2, sizeof(b2));
	format_bytes((uint64_t)w->cap, b3, sizeof(b3));
	if (!have) /* the first second: the average so far */
		bps = (double)b / MAX((double)(now_ns() - w->t0) / 1e9, 0.1);
	if (!w->tty) {
		if (!final)
			fprintf(stderr, "epochfs-ctl: warm: %zu/%zu files, %s read, %.1f MB/s, "
				"cache %s of %s, %zu errors, ETA %s\n",
				done, n, b1, bps / 1e6, b2, b3, errs, eta);
		return;
	}
	/* fields in the order shown; dropped from the end of this priority list */
	snprintf(f[nf++], sizeof(f[0]), "%*zu/%zu files", snprintf(NULL, 0, "%zu", n), done, n);
	if (errs)
		snprintf(f[nf++], sizeof(f[0]), "%zu error%s", errs, errs == 1 ? "" : "s");
	snprintf(f[nf++], sizeof(f[0]), "%.1f MB/s", bps / 1e6);
	snprintf(f[nf++], sizeof(f[0]), "%s read", b1);
	snprintf(f[nf++], sizeof(f[0]), "cache %s/%s", b2, b3);
	snprintf(f[nf++], sizeof(f[0]), "ETA %s", eta);
	cols = term_cols(2);
	avail = cols - 1; /* the last column would wrap on some terminals */
	for (;;) {
		len = 0;
		for (int i = 0; i < nf; i++)
			len += (int)strlen(f[i]) + (i ? 2 : 0);
		/* ETA (the last field) and the file count (the first) stay */
		if (len + 13 <= avail || nf <= (errs ? 3 : 2))
			break;
		memmove(f[nf - 2], f[nf - 1], sizeof(f[0]));
		nf--;
	}
	line[0] = 0;
	k = MIN(40, avail - len - 3);
	if (k >= 10) {
		int fill = (int)(frac * k);

		memset(bar, '#', (size_t)fill);
		memset(bar + fill, '.', (size_t)(k - fill));
		bar[k] = 0;
		snprintf(line, sizeof(line), "[%s] ", bar);
	}
	for (int i = 0; i < nf; i++)
		snprintf(line + strlen(line), sizeof(line) - strlen(line), "%s%s", i ? "  " : "", f[i]);
	if ((int)strlen(line) > avail && avail > 0)
		line[avail] = 0;
	fprintf(stderr, "\r%s\033[K%s", line, final ? "\n" : "");
}

/* Fill the cache.  The exit status: 0 when everything was cached or the
 * cache is full, EXIT_FAILED when any file could not be read, EXIT_INTR
 * when interrupted. */
static int warm(const char *mnt, int nthreads, double rate, double every, struct list *files)
{
	struct warm w = { .mnt = mnt, .files = files, .rate = rate };
	struct sigaction sa = { .sa_handler = on_sigint };
	pthread_t th[256];
	int started = 0, rc;
	uint64_t last, lastsamp;
	char b1[32], b2[32], b3[32], b4[32], took[32];
	size_t errs, done;
	double used = 0, el;

	w.tty = isatty(2);
	pthread_mutex_init(&w.err_lock, NULL);
	if (stat_num(mnt, "not_admitted", &w.na0) || stat_num(mnt, "evictions", &w.ev0) ||
	    stat_num(mnt, "cache_capacity", &w.cap)) {
		fprintf(stderr, "epochfs-ctl: %s: cannot read .epochfs/stats\n", mnt);
		return EXIT_FAILED;
	}
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	w.t0 = last = lastsamp = now_ns();
	warm_sample(&w);
	for (; started < nthreads; started++)
		if (pthread_create(&th[started], NULL, warm_main, &w))
			break;
	if (!started) {
		fprintf(stderr, "epochfs-ctl: cannot start threads\n");
		return EXIT_FAILED;
	}
	while (atomic_load(&w.done) < files->n && !interrupted && !atomic_load(&w.full)) {
		usleep(50000);
		if ((double)(now_ns() - lastsamp) / 1e9 >= SAMPLE_S) {
			warm_sample(&w);
			lastsamp = now_ns();
		}
		if ((double)(now_ns() - last) / 1e9 >= (w.tty ? 0.25 : every)) {
			progress(&w, 0);
			last = now_ns();
		}
	}
	for (int i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	warm_sample(&w);
	progress(&w, 1);
	stat_num(mnt, "cache_bytes", &used);
	el = (double)(now_ns() - w.t0) / 1e9;
	errs = atomic_load(&w.errors);
	done = atomic_load(&w.done);
	format_bytes(atomic_load(&w.bytes), b1, sizeof(b1));
	format_bytes(atomic_load(&w.skipped_bytes), b2, sizeof(b2));
	format_bytes((uint64_t)used, b3, sizeof(b3));
	format_bytes((uint64_t)w.cap, b4, sizeof(b4));
	fmt_dur(el, took, sizeof(took));
	fflush(stderr);
	if (interrupted)
		printf("warm %s: interrupted after %s (run it again to resume)\n", mnt, took);
	else if (errs)
		printf("warm %s: FAILED after %s: %zu file%s could not be read\n", mnt, took, errs,
		       errs == 1 ? "" : "s");
	else
		printf("warm %s: %s after %s\n", mnt, atomic_load(&w.full) ? "cache full" : "complete",
		       took);
	/* every line within 80 columns for any count below ten million */
	printf("  files   %zu of %zu done: %zu read, %zu already cached\n", done, files->n,
	       atomic_load(&w.nread), atomic_load(&w.skipped));
	printf("  left    %zu not fully cached (no room), %zu errors\n", atomic_load(&w.partial),
	       errs);
	printf("  bytes   %s read (%.1f MB/s), %s were cached already\n", b1,
	       el > 0 ? (double)atomic_load(&w.bytes) / el / 1e6 : 0, b2);
	printf("  cache   %s of %s (%.1f%% full)\n", b3, b4, w.cap > 0 ? 100 * used / w.cap : 0);
	if (errs)
		printf("  first error: %s\n", w.first_err);
	rc = interrupted ? EXIT_INTR : errs ? EXIT_FAILED : EXIT_OK_;
	pthread_mutex_destroy(&w.err_lock);
	return rc;
}

/* evict: one write of all paths, so the daemon applies all or none.  A
 * directory stands for every file of its subtree.  The count printed is
 * measured: the files that had cached bytes before, and what was dropped
 * (a file open or being fetched at that moment is kept by the daemon). */
static int evict(const char *mnt, struct list *args)
{
	struct list files = { 0 };
	size_t *from = NULL, len = 0, off = 0, had = 0, kept = 0, dirs = 0;
	uint64_t *before = NULL, dropped = 0;
	char path[PATH_MAX], b1[32], *buf = NULL;
	int fd, rc = 0;

	from = calloc(args->n + 1, sizeof(*from));
	if (!from)
		return EXIT_FAILED;
	for (size_t i = 0; !rc && i < args->n; i++) {
		struct stat st;

		snprintf(path, sizeof(path), "%s/%s", mnt, args->v[i]);
		from[i] = files.n;
		if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
			dirs++;
			rc = walk(mnt, args->v[i], &files);
		} else {
			rc = list_add(&files, args->v[i], strlen(args->v[i]));
		}
		if (rc)
			fprintf(stderr, "epochfs-ctl: %s: %s\n", *args->v[i] ? args->v[i] : ".",
				strerror(-rc));
	}
	from[args->n] = files.n;
	if (rc)
		goto out;
	before = calloc(files.n + 1, sizeof(*before));
	if (!before) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < files.n; i++) {
		uint64_t c = 0, s;

		if (cached(mnt, files.v[i], &c, &s))
			c = 0;
		before[i] = c;
		had += c > 0;
		len += strlen(files.v[i]) + 1;
	}
	if (!files.n) {
		printf("nothing to evict: no files under %s\n", args->n == 1 && *args->v[0] ? args->v[0] : ".");
		goto out;
	}
	buf = malloc(len + 1);
	if (!buf) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < files.n; i++)
		off += (size_t)sprintf(buf + off, "%s\n", files.v[i]);
	snprintf(path, sizeof(path), "%s/.epochfs/evict", mnt);
	fd = open(path, O_WRONLY | O_TRUNC);
	if (fd < 0) {
		if (errno == ENOENT)
			fprintf(stderr, "epochfs-ctl: %s has no .epochfs/evict: this epochfs daemon "
					"cannot evict (upgrade it)\n", mnt);
		else
			fprintf(stderr, "epochfs-ctl: %s: %s\n", path, strerror(errno));
		free(buf);
		list_free(&files);
		free(from);
		free(before);
		return EXIT_FAILED;
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
	if (rc) {
		fprintf(stderr, "epochfs-ctl: evict refused (%s)%s; nothing was evicted\n",
			strerror(-rc), rc == -EINVAL ? ": an unknown path? the daemon's log says which" : "");
		free(buf);
		list_free(&files);
		free(from);
		free(before);
		return EXIT_FAILED;
	}
	for (size_t a = 0; a < args->n; a++) {
		size_t n = from[a + 1] - from[a], h = 0, k = 0;
		uint64_t d = 0;

		for (size_t i = from[a]; i < from[a + 1]; i++) {
			uint64_t c = 0, s;

			if (cached(mnt, files.v[i], &c, &s))
				c = 0;
			h += before[i] > 0;
			k += c > 0;
			d += before[i] > c ? before[i] - c : 0;
		}
		kept += k;
		dropped += d;
		if (dirs)
			printf("%s%s  %zu file%s, %zu had cached bytes, %s dropped%s\n",
			       *args->v[a] ? args->v[a] : ".", n == 1 && from[a] < files.n &&
			       !strcmp(files.v[from[a]], args->v[a]) ? "" : "/", n, n == 1 ? "" : "s",
			       h, (format_bytes(d, b1, sizeof(b1)), b1), k ? " (some still cached)" : "");
	}
	format_bytes(dropped, b1, sizeof(b1));
	printf("evicted %zu file%s from %s: %zu had cached bytes, %s dropped", files.n,
	       files.n == 1 ? "" : "s", mnt, had, b1);
	if (kept)
		printf("; %zu still cached (open or being fetched: the daemon keeps those)", kept);
	printf("\n");
out:
	if (rc)
		fprintf(stderr, "epochfs-ctl: evict: %s; nothing was evicted\n", strerror(-rc));
	free(buf);
	list_free(&files);
	free(from);
	free(before);
	return rc ? EXIT_FAILED : EXIT_OK_;
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
		"       epochfs-ctl --help\n"
		"\n"
		"warm    read files through the mount so that the cache holds them: the\n"
		"        manifest's order (--plan: this epoch's planned order), or the PATHs\n"
		"        (a directory: its whole subtree); skips what is cached, stops when\n"
		"        the cache is full.  -j/--threads N readers (8), --rate MB/s cap,\n"
		"        --every SECONDS between progress lines when stderr is not a terminal.\n"
		"evict   drop the cached bytes of the PATHs (a directory: its subtree) and\n"
		"        say how many files had cached bytes and how much was dropped.\n"
		"status  cached bytes of each PATH (a directory: the sum; default the mount).\n"
		"\n"
		"PATHs are relative to the mount root (or absolute paths inside the mount).\n"
		"Exit status: 0 success; 1 failed (files not read, evict refused); 2 usage;\n"
		"5 MOUNTPOINT is not an epochfs mount; 130 interrupted.\n");
	return rc;
}

int main(int argc, char **argv)
{
	struct list paths = { 0 }, files = { 0 };
	char real[PATH_MAX], buf[PATH_MAX], *end;
	const char *mnt, *cmd, *rel;
	int nthreads = 8, plan = 0, rc = EXIT_USAGE;
	double rate = 0, every = 5, v;

	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
			return usage(stdout, EXIT_OK_);
	if (argc < 3)
		return usage(stderr, EXIT_USAGE);
	mnt = argv[1];
	cmd = argv[2];
	if (strcmp(cmd, "warm") && strcmp(cmd, "evict") && strcmp(cmd, "status")) {
		fprintf(stderr, "epochfs-ctl: unknown command '%s'\n", cmd);
		return usage(stderr, EXIT_USAGE);
	}
	/* the command line is checked whole before the mount is touched */
	for (int i = 3; i < argc; i++) {
		const char *a = argv[i];
		int opt = !strcmp(cmd, "warm") && a[0] == '-';

		if (opt && !strcmp(a, "--plan")) {
			plan = 1;
		} else if (opt && (!strcmp(a, "--threads") || !strcmp(a, "-j") || !strcmp(a, "--rate") ||
				   !strcmp(a, "--every"))) {
			if (i + 1 >= argc) {
				fprintf(stderr, "epochfs-ctl: %s needs a value\n", a);
				return usage(stderr, EXIT_USAGE);
			}
			v = strtod(argv[++i], &end);
			if (*end || !(v > 0) || (a[2] == 't' || a[1] == 'j' ? v > 256 : v > 1e9)) {
				fprintf(stderr, "epochfs-ctl: bad value '%s' for %s\n", argv[i], a);
				return EXIT_USAGE;
			}
			if (a[2] == 't' || a[1] == 'j')
				nthreads = (int)v;
			else if (a[2] == 'r')
				rate = v * 1e6;
			else
				every = v;
		} else if (opt) {
			fprintf(stderr, "epochfs-ctl: unknown option %s\n", a);
			return usage(stderr, EXIT_USAGE);
		}
	}
	if (!strcmp(cmd, "evict") && argc < 4) {
		fprintf(stderr, "epochfs-ctl: evict needs a PATH (a file or a directory)\n");
		return usage(stderr, EXIT_USAGE);
	}
	if (stat_num(mnt, "version", &v) || !realpath(mnt, real)) {
		fprintf(stderr, "epochfs-ctl: %s is not an epochfs mount (no readable .epochfs/stats)\n", mnt);
		return EXIT_NOTMOUNT;
	}
	for (int i = 3; i < argc; i++) {
		const char *a = argv[i];

		if (!strcmp(cmd, "warm") && a[0] == '-') {
			i += strcmp(a, "--plan") != 0;
			continue;
		}
		rel = relpath(real, a, buf, sizeof(buf));
		if (!rel || list_add(&paths, rel, strlen(rel))) {
			rc = EXIT_FAILED;
			goto out;
		}
	}
	if (!strcmp(cmd, "evict")) {
		rc = evict(mnt, &paths);
		goto out;
	}
	if (!strcmp(cmd, "status")) {
		if (!paths.n && list_add(&paths, "", 0))
			goto out;
		rc = status(mnt, &paths) ? EXIT_FAILED : EXIT_OK_;
		goto out;
	}
	rc = 0;
	for (size_t i = 0; !rc && i < paths.n; i++) {
		uint64_t c, s;

		if (!*paths.v[i] || cached(mnt, paths.v[i], &c, &s) == -ENODATA)
			rc = walk(mnt, paths.v[i], &files);
		else
			rc = list_add(&files, paths.v[i], strlen(paths.v[i]));
	}
	if (!paths.n) {
		rc = read_lines(mnt, plan ? "order" : "manifest", &files);
		if (rc && plan) {
			fprintf(stderr, "epochfs-ctl: %s: no plan to follow (.epochfs/order: %s)\n", mnt,
				strerror(-rc));
			rc = EXIT_FAILED;
			goto out;
		}
		if (rc)
			list_free(&files);
		rc = add_the_rest(mnt, &files);
	}
	if (rc) {
		fprintf(stderr, "epochfs-ctl: cannot list what to warm: %s\n", strerror(-rc));
		rc = EXIT_FAILED;
		goto out;
	}
	rc = warm(mnt, nthreads, rate, every, &files);
out:
	list_free(&paths);
	list_free(&files);
	return rc;
}
