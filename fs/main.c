/* SPDX-License-Identifier: MIT */
/* The epochfs daemon: parse options, open the source and the cache, mount,
 * serve.  Daemonizing happens before any thread starts: the child does the
 * work and tells the waiting parent, through a pipe, whether the mount came
 * up, so `mount` and scripts see a real exit status. */
#define _GNU_SOURCE
#define FUSE_USE_VERSION 312
#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl.h"
#include "ll.h"
#include "passthrough.h"
#include "options.h"
#include "peerd.h"
#include "preflight.h"
#include "backends/peer.h"
#include "backends/base/exitcode.h"
#include "backends/base/log.h"
#include "backends/base/mountinfo.h"
#include "backends/base/util.h"

#ifndef EPOCHFS_VERSION
#define EPOCHFS_VERSION "0.1.0"
#endif

static struct fuse_session *g_se;
static struct backend *g_peer_be; /* the peer client, for SIGHUP */

static int owns_key(void *arg, const char *key)
{
	return peer_owns_planned(arg, key);
}

/* SIGHUP reads the --peers list again (FUSE's handler would unmount). */
static void on_sighup(int sig)
{
	(void)sig;
	peer_reload(g_peer_be);
}

/* Kernel cache invalidations are sent from their own thread: sent from the
 * read handler that discovered the change, the kernel would wait for that
 * very read to finish (its page locks) and both would hang. */
#define INVAL_QUEUE 1024
static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	uint64_t q[INVAL_QUEUE];
	unsigned head, n;
	int stop;
	pthread_t thread;
} inval = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER };

static void *inval_main(void *arg)
{
	uint64_t ino;

	(void)arg;
	pthread_mutex_lock(&inval.lock);
	for (;;) {
		while (!inval.n && !inval.stop)
			pthread_cond_wait(&inval.cond, &inval.lock);
		if (inval.stop)
			break;
		ino = inval.q[inval.head];
		inval.head = (inval.head + 1) % INVAL_QUEUE;
		inval.n--;
		pthread_mutex_unlock(&inval.lock);
		if (g_se)
			fuse_lowlevel_notify_inval_inode(g_se, ino, 0, 0);
		pthread_mutex_lock(&inval.lock);
	}
	pthread_mutex_unlock(&inval.lock);
	return NULL;
}

static void inval_hook(void *arg, uint64_t ino)
{
	(void)arg;
	ll_changed(ino);
	pthread_mutex_lock(&inval.lock);
	if (inval.n < INVAL_QUEUE) {
		inval.q[(inval.head + inval.n++) % INVAL_QUEUE] = ino;
		pthread_cond_signal(&inval.cond);
	} else {
		log_warn("invalidation queue full; inode %llu keeps its kernel cache until it expires",
			 (unsigned long long)ino);
	}
	pthread_mutex_unlock(&inval.lock);
}

static void inval_stop(void)
{
	pthread_mutex_lock(&inval.lock);
	inval.stop = 1;
	pthread_cond_signal(&inval.cond);
	pthread_mutex_unlock(&inval.lock);
	pthread_join(inval.thread, NULL);
}

static void report(int fd, int status)
{
	if (fd >= 0) {
		ssize_t rc = write(fd, &status, sizeof(status));

		(void)rc;
		close(fd);
	}
}

/* Fork; the parent waits for the child's status and exits with it. */
static int daemonize(int *status_fd)
{
	int p[2], status = 1;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid > 0) {
		close(p[1]);
		if (read(p[0], &status, sizeof(status)) != sizeof(status))
			status = 1;
		_exit(status);
	}
	close(p[0]);
	*status_fd = p[1];
	setsid();
	return 0;
}

static void detach_stdio(void)
{
	int fd = open("/dev/null", O_RDWR);

	if (fd < 0)
		return;
	dup2(fd, 0);
	dup2(fd, 1);
	dup2(fd, 2);
	if (fd > 2)
		close(fd);
}

/* The FUSE options (-o keys that are not ours), checked by FUSE itself
 * while the session is made: done before the source is touched, so that a
 * typo costs no listing.  The session's user data (x) is filled later,
 * before the mount: nothing calls into it until then. */
static int make_session(const struct epochfs_opts *o, struct fuse_args *args, char **fuse_o,
			struct ll_ctx *x)
{
	/* The source names the mount in mount, df and /proc/mounts. */
	char fsname[1024];
	size_t k = 0;

	for (const char *s = o->source; *s && k + 3 < sizeof(fsname); s++) {
		if (*s == ',' || *s == '\\')
			fsname[k++] = '\\';
		fsname[k++] = *s;
	}
	fsname[k] = 0;
	if (asprintf(fuse_o, "fsname=%s,subtype=epochfs,max_read=%u,default_permissions%s%s",
		     fsname, CACHE_MAX_READ, o->fuse_opts ? "," : "",
		     o->fuse_opts ? o->fuse_opts : "") < 0) {
		*fuse_o = NULL;
		return -ENOMEM;
	}
	if (fuse_opt_add_arg(args, "epochfs") || fuse_opt_add_arg(args, "-o") ||
	    fuse_opt_add_arg(args, *fuse_o) || (o->debug && fuse_opt_add_arg(args, "-d")))
		return -ENOMEM;
	g_se = fuse_session_new(args, &ll_ops, sizeof(ll_ops), x);
	return g_se ? 0 : -EINVAL;
}

/* A local source must be a directory. */
static int check_source(const struct epochfs_opts *o)
{
	const char *dir = strncmp(o->source, "file://", 7) ? o->source : o->source + 7;
	struct stat st;

	if (strstr(o->source, "://") && strncmp(o->source, "file://", 7))
		return 0; /* remote: the backend says */
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		log_err("source %s: %s", o->source, stat(dir, &st) < 0 ? strerror(errno) : "not a directory");
		return -ENOTDIR;
	}
	return 0;
}

/* The mount point: a directory, not already an epochfs mount (a second
 * daemon there would hide the first, which keeps running unreachable). */
static int check_mountpoint(const struct epochfs_opts *o, char **abs_mnt)
{
	struct stat st;
	int rc;

	if (stat(o->mountpoint, &st) < 0 || !S_ISDIR(st.st_mode)) {
		log_err("mount point %s: %s", o->mountpoint,
			stat(o->mountpoint, &st) < 0 ? strerror(errno) : "not a directory");
		return -ENOTDIR;
	}
	/* Resolved before mounting: afterwards a lookup under the mount point
	 * would wait on this daemon's own loop. */
	*abs_mnt = realpath(o->mountpoint, NULL);
	if (!*abs_mnt) {
		log_err("mount point %s: %s", o->mountpoint, strerror(errno));
		return -errno;
	}
	rc = pf_epochfs_mounted(NULL, *abs_mnt);
	if (rc == -EBUSY) {
		log_err("mount point %s already has an epochfs mount (unmount it first: fusermount3 -u %s)",
			*abs_mnt, *abs_mnt);
		return rc;
	}
	if (pf_dir_nonempty(*abs_mnt) > 0 && !o->nonempty)
		log_warn("mount point %s is not empty: its files are hidden while mounted "
			 "(-o nonempty says it is meant)", *abs_mnt);
	return 0;
}

/* The cache directory: not inside the mount point (it would vanish under
 * the mount), a cache size that fits its filesystem (the result is the size
 * the cache gets), then created with its parents (said, so a typo is
 * seen). */
static int check_cache_dir(struct epochfs_opts *o, const char *abs_mnt, char *abs_cache,
			   size_t len)
{
	char created[PATH_MAX], err[512], size[32], fs[32];
	struct pf_space sp;
	int rc = pf_abspath(o->cache_dir, abs_cache, len);

	if (rc) {
		log_err("cache dir %s: %s", o->cache_dir, strerror(-rc));
		return rc;
	}
	if (pf_is_under(abs_cache, abs_mnt)) {
		log_err("cache dir %s is inside the mount point %s: it would be hidden by the mount; "
			"choose a cache dir elsewhere", abs_cache, abs_mnt);
		return -EINVAL;
	}
	/* What the cache holds counts for N% and for a size beyond the free
	 * space; walking a cache of a million files costs a second or two. */
	rc = pf_space_get(abs_cache, 0, &sp);
	if (!rc && (!o->cache.capacity || o->cache.capacity > sp.fs_avail))
		rc = pf_space_get(abs_cache, 1, &sp);
	if (rc) {
		log_err("cache dir %s: %s", abs_cache, strerror(-rc));
		return rc;
	}
	rc = pf_capacity(&sp, o->cache.capacity, o->cache.capacity_pct, &o->cache.capacity, err,
			 sizeof(err));
	if (rc) {
		log_err("%s; choose a smaller --cache-size or another --cache-dir", err);
		return rc;
	}
	rc = pf_mkdirs(abs_cache, created, sizeof(created));
	if (rc) {
		log_err("cannot create cache dir %s: %s", abs_cache, strerror(-rc));
		return rc;
	}
	if (*created && strcmp(created, abs_cache))
		log_info("created cache dir %s and its missing parents from %s", abs_cache, created);
	else if (*created)
		log_info("created cache dir %s", abs_cache);
	format_bytes(o->cache.capacity, size, sizeof(size));
	format_bytes(sp.fs_avail + sp.cache_used, fs, sizeof(fs));
	if (o->cache.capacity_pct)
		log_info("cache size %s: %g%% of %s (free space plus the cache's own)", size,
			 o->cache.capacity_pct, fs);
	else
		log_info("cache size %s (%s free on the cache filesystem)", size, fs);
	return 0;
}

/* --- issue 14: the mount's readahead window ----------------------------
 * The kernel gives a FUSE mount's bdi the default readahead window (128
 * KiB) whatever max_readahead the init reply says, so a file over 128 KiB
 * cost its reader two READ round trips (1.5 a file of ImageNet's sizes,
 * docs/benchmarks.md).  Raised to max_read where the daemon may write it
 * (root); else left as it is, and logged. */
struct ra_find {
	const char *mnt;
	char dev[32];
};

static int ra_find_fn(void *arg, const struct mountinfo_ent *e)
{
	struct ra_find *f = arg;

	if (!strcmp(e->mountpoint, f->mnt) && !strncmp(e->fstype, "fuse", 4))
		snprintf(f->dev, sizeof(f->dev), "%s", e->dev); /* the last one: ours */
	return 0;
}

static void mount_readahead(const char *mnt, unsigned kib)
{
	struct ra_find f = { .mnt = mnt };
	char path[96], val[16];
	int fd, n;

	if (mountinfo_each(NULL, ra_find_fn, &f) || !f.dev[0])
		return;
	snprintf(path, sizeof(path), "/sys/class/bdi/%s/read_ahead_kb", f.dev);
	n = snprintf(val, sizeof(val), "%u", kib);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, val, (size_t)n) != n)
		log_info("readahead of the mount left at the kernel's default (%s: %s)", path,
			 strerror(errno));
	else
		log_debug("readahead of the mount: %u KiB (%s)", kib, path);
	if (fd >= 0)
		close(fd);
}
/* --- end issue 14 --- */

/* Where the log goes: --log-file, else stderr in the foreground, else
 * syslog, else (no /dev/log: syslog would drop every line) a file in the
 * cache dir, said on stderr while someone still sees it.  Until the mount
 * is up every line goes to stderr too. */
static int open_log(const struct epochfs_opts *o, const char *abs_cache)
{
	char path[PATH_MAX];
	int rc;

	if (o->log_file) {
		rc = log_to_file(o->log_file);
		if (rc) {
			log_err("log file %s: %s", o->log_file, strerror(-rc));
			return rc;
		}
	} else if (o->foreground) {
		return 0;
	} else if (log_syslog_available()) {
		log_init("epochfs", o->log_level, 1);
	} else {
		rc = (size_t)snprintf(path, sizeof(path), "%s/epochfs.log", abs_cache) >= sizeof(path)
			     ? -ENAMETOOLONG : log_to_file(path);
		if (rc) {
			log_err("no syslog here (no /dev/log) and log file %s: %s", path, strerror(-rc));
			return rc;
		}
		log_tee_stderr(1);
		log_info("no syslog here (no /dev/log): logging to %s", path);
		return 0;
	}
	log_tee_stderr(1);
	return 0;
}

/* What a failed cache_open means for the exit status: its reason names the
 * part that failed ("cache dir ...", "cache index ...", "listing ..."). */
static int cache_exit_code(int rc, const char *err)
{
	if (rc == -EBUSY || !strncmp(err, "cache ", 6) || !strncmp(err, "index", 5))
		return EXIT_LOCAL;
	if (!strncmp(err, "listing ", 8))
		return EXIT_SOURCE;
	return EXIT_FAILED;
}

int main(int argc, char **argv)
{
	struct epochfs_opts o;
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct fuse_loop_config *lc = NULL;
	struct backend *be = NULL;
	struct cache *cache = NULL;
	struct peerd *peerd = NULL;
	struct ll_ctx x;
	char err[512], abs_cache[PATH_MAX], *fuse_o = NULL, *abs_mnt = NULL;
	int rc, status_fd = -1, exit_code = EXIT_FAILED;

	/* glibc gives each thread that allocates its own arena, up to 8 per
	 * CPU; the FUSE workers, fetch and store threads each kept a few MiB
	 * freed in theirs (29 of 48 MiB of heap after two epochs of 200,000
	 * files).  Two arenas are enough for the daemon's allocation rate;
	 * MALLOC_ARENA_MAX in the environment still overrides. */
	if (!getenv("MALLOC_ARENA_MAX"))
		mallopt(M_ARENA_MAX, 2);
	rc = opts_parse(argc, argv, &o, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "epochfs: %s\n", err);
		opts_free(&o);
		return EXIT_USAGE;
	}
	if (o.help) {
		opts_usage(stdout, "epochfs");
		opts_free(&o);
		return 0;
	}
	if (o.version) {
		/* issue 14: passthrough through the kernel's interface (6.9+),
		 * reached with libfuse's custom I/O (fs/passthrough.h) */
		printf("epochfs %s (FUSE %s; passthrough: built, through the kernel's interface; "
		       "used where the kernel offers it, Linux 6.9+)\n",
		       EPOCHFS_VERSION, fuse_pkgversion());
		opts_free(&o);
		return 0;
	}
	log_init("epochfs", o.log_level, 0);
	memset(&x, 0, sizeof(x));
	rc = make_session(&o, &args, &fuse_o, &x);
	if (rc) {
		log_err("%s", rc == -EINVAL ? "bad -o option for FUSE (see above)" : strerror(-rc));
		exit_code = rc == -EINVAL ? EXIT_USAGE : EXIT_FAILED;
		goto out_args;
	}
	exit_code = EXIT_SOURCE;
	if (check_source(&o))
		goto out_session;
	exit_code = EXIT_LOCAL;
	if (check_mountpoint(&o, &abs_mnt) || check_cache_dir(&o, abs_mnt, abs_cache, sizeof(abs_cache)) ||
	    open_log(&o, abs_cache))
		goto out_session;
	log_debug("settings: chunk size %u, backend concurrency %u, timeout %u s, retries %u, "
		  "FUSE options %s", o.cache.chunk_size, o.be.concurrency, o.be.timeout_s,
		  o.be.retries, fuse_o);
	if (!o.foreground) {
		rc = daemonize(&status_fd);
		if (rc) {
			log_err("cannot daemonize: %s", strerror(-rc));
			exit_code = EXIT_FAILED;
			goto out_session;
		}
	}

	rc = backend_create(o.source, &o.be, &be, err, sizeof(err));
	if (rc) {
		log_err("%s", *err ? err : strerror(-rc));
		exit_code = rc == -ENOMEM ? EXIT_FAILED : EXIT_SOURCE;
		goto out_session;
	}
	if (peer_opts.listen || peer_opts.peers) { /* peers (issue 13): the client wraps the source */
		struct backend *pb;

		if (!peer_opts.total_ms && o.be.timeout_s < 5)
			peer_opts.total_ms = o.be.timeout_s * 1000; /* within the origin's bound */
		rc = backend_peer_create(be, &peer_opts, &pb, err, sizeof(err));
		if (rc) {
			log_err("%s", err);
			exit_code = rc == -ENOMEM ? EXIT_FAILED : EXIT_USAGE;
			goto out_be;
		}
		be = g_peer_be = pb;
		o.cache.owns = owns_key; /* owned objects first in the cache */
		o.cache.owns_arg = pb;
	}
	rc = cache_open(&o.cache, be, &cache, err, sizeof(err));
	if (rc) {
		log_err("%s", err);
		exit_code = cache_exit_code(rc, err);
		goto out_be;
	}
	exit_code = EXIT_FAILED;
	if (peer_opts.listen && peerd_start(cache, be, peer_opts.listen, &peerd, err, sizeof(err))) {
		log_err("%s", err);
		exit_code = EXIT_LOCAL;
		goto out_cache;
	}
	x.cache = cache;
	x.uid = getuid();
	x.gid = getgid();
	x.timeout = o.entry_timeout;
	x.start_time = time(NULL);
	x.no_open = o.no_open;
	if (x.no_open && ctl_nopen_start(cache)) {
		log_err("cannot start the control-file thread");
		goto out_cache;
	}
	if (pthread_create(&inval.thread, NULL, inval_main, NULL))
		goto out_cache;
	cache_set_inval_hook(cache, inval_hook, NULL);
	if (fuse_set_signal_handlers(g_se))
		goto out_inval;
	if (g_peer_be) {
		struct sigaction sa = { .sa_handler = on_sighup, .sa_flags = SA_RESTART };

		sigemptyset(&sa.sa_mask);
		sigaction(SIGHUP, &sa, NULL);
	}
	if (fuse_session_mount(g_se, o.mountpoint)) {
		log_err("cannot mount on %s", o.mountpoint);
		goto out_signals;
	}
	/* No-open mode has no OPEN to hand a backing file with. */
	rc = pt_install(g_se, !o.no_passthrough && !o.no_open);
	if (o.no_passthrough || o.no_open)
		log_info("passthrough: off (%s)", o.no_open ? "--no-open: there is no open to "
			 "hand the kernel a file with" : "--no-passthrough");
	else if (rc)
		log_warn("passthrough: off (libfuse's custom I/O: %s)", strerror(-rc));
	log_info("mounted %s on %s (cache %s, %llu bytes)", be->url, o.mountpoint, abs_cache,
		 (unsigned long long)cache_capacity(cache));
	cache_note_mounted(cache, abs_mnt);
	mount_readahead(abs_mnt, CACHE_MAX_READ / 1024); /* issue 14 */
	log_tee_stderr(0); /* from here on the log alone */
	if (!o.foreground) {
		if (chdir("/") < 0)
			log_warn("chdir /: %s", strerror(errno));
		detach_stdio();
		report(status_fd, 0);
		status_fd = -1;
	}
	lc = fuse_loop_cfg_create();
	if (!lc) {
		log_err("out of memory");
		goto out_unmount;
	}
	fuse_loop_cfg_set_clone_fd(lc, 0);
	fuse_loop_cfg_set_max_threads(lc, 32);
	fuse_loop_cfg_set_idle_threads(lc, 8);
	rc = fuse_session_loop_mt(g_se, lc);
	if (rc < 0)
		log_err("FUSE session ended with an error: %s", strerror(-rc));
	exit_code = rc < 0 ? EXIT_FAILED : 0;
	fuse_loop_cfg_destroy(lc);
	log_info("unmounting %s", o.mountpoint);
out_unmount:
	fuse_session_unmount(g_se);
out_signals:
	fuse_remove_signal_handlers(g_se);
out_inval:
	cache_set_inval_hook(cache, NULL, NULL);
	inval_stop();
out_cache:
	fuse_session_destroy(g_se);
	g_se = NULL;
	ctl_nopen_stop(); /* applies a write stream still pending */
	peerd_stop(peerd); /* before the cache it reads */
	cache_close(cache);
out_be:
	if (g_peer_be)
		signal(SIGHUP, SIG_IGN);
	g_peer_be = NULL;
	backend_destroy(be);
out_session:
	if (g_se)
		fuse_session_destroy(g_se);
	g_se = NULL;
out_args:
	fuse_opt_free_args(&args);
	free(fuse_o);
	free(abs_mnt);
	report(status_fd, exit_code);
	opts_free(&o);
	return exit_code;
}
