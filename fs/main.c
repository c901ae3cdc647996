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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl.h"
#include "ll.h"
#include "options.h"
#include "backends/base/log.h"
#include "backends/base/util.h"

#ifndef EPOCHFS_VERSION
#define EPOCHFS_VERSION "0.1.0"
#endif

static struct fuse_session *g_se;

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

/* mkdir -p; 0 or -errno. */
static int mkdirs(const char *path)
{
	char buf[PATH_MAX];
	size_t n = strlen(path);

	if (n == 0 || n >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, n + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, 0700) < 0 && errno != EEXIST)
		return -errno;
	return 0;
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

int main(int argc, char **argv)
{
	struct epochfs_opts o;
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct fuse_loop_config *lc = NULL;
	struct backend *be = NULL;
	struct cache *cache = NULL;
	struct ll_ctx x;
	char err[512], *fuse_o = NULL;
	char *abs_mnt = NULL;
	struct stat st;
	int rc, status_fd = -1, exit_code = 1;

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
		return 2;
	}
	if (o.help) {
		opts_usage(stdout, "epochfs");
		return 0;
	}
	if (o.version) {
		printf("epochfs %s (FUSE %s)\n", EPOCHFS_VERSION, fuse_pkgversion());
		return 0;
	}
	log_init("epochfs", o.debug ? LOG_LVL_DEBUG : LOG_LVL_INFO, 0);
	if (!strstr(o.source, "://") || !strncmp(o.source, "file://", 7)) {
		const char *dir = strncmp(o.source, "file://", 7) ? o.source : o.source + 7;

		if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
			fprintf(stderr, "epochfs: source %s: %s\n", o.source,
				stat(dir, &st) < 0 ? strerror(errno) : "not a directory");
			goto out_opts2;
		}
	}
	if (stat(o.mountpoint, &st) < 0 || !S_ISDIR(st.st_mode)) {
		fprintf(stderr, "epochfs: mountpoint %s: %s\n", o.mountpoint,
			stat(o.mountpoint, &st) < 0 ? strerror(errno) : "not a directory");
		goto out_opts2;
	}
	rc = mkdirs(o.cache_dir);
	if (rc) {
		fprintf(stderr, "epochfs: cannot create cache dir %s: %s\n", o.cache_dir, strerror(-rc));
		goto out_opts2;
	}
	if (!o.foreground) {
		rc = daemonize(&status_fd);
		if (rc) {
			fprintf(stderr, "epochfs: cannot daemonize: %s\n", strerror(-rc));
			goto out_opts;
		}
	}

	rc = backend_create(o.source, &o.be, &be, err, sizeof(err));
	if (rc) {
		log_err("%s", *err ? err : strerror(-rc));
		goto out_opts;
	}
	rc = cache_open(&o.cache, be, &cache, err, sizeof(err));
	if (rc) {
		log_err("%s", err);
		goto out_be;
	}

	memset(&x, 0, sizeof(x));
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
	{
		/* The source names the mount in mount, df and /proc/mounts. */
		char fsname[1024];
		size_t k = 0;

		for (const char *s = o.source; *s && k + 3 < sizeof(fsname); s++) {
			if (*s == ',' || *s == '\\')
				fsname[k++] = '\\';
			fsname[k++] = *s;
		}
		fsname[k] = 0;
		if (asprintf(&fuse_o, "fsname=%s,subtype=epochfs,max_read=%u,default_permissions%s%s",
			     fsname, CACHE_MAX_READ, o.fuse_opts ? "," : "",
			     o.fuse_opts ? o.fuse_opts : "") < 0)
			goto out_cache;
	}
	if (fuse_opt_add_arg(&args, "epochfs") || fuse_opt_add_arg(&args, "-o") ||
	    fuse_opt_add_arg(&args, fuse_o) || (o.debug && fuse_opt_add_arg(&args, "-d")))
		goto out_args;
	g_se = fuse_session_new(&args, &ll_ops, sizeof(ll_ops), &x);
	if (!g_se) {
		log_err("cannot create the FUSE session (bad -o option?)");
		goto out_args;
	}
	if (pthread_create(&inval.thread, NULL, inval_main, NULL))
		goto out_session;
	cache_set_inval_hook(cache, inval_hook, NULL);
	if (fuse_set_signal_handlers(g_se))
		goto out_inval;
	/* Resolved before mounting: afterwards a lookup under the mount point
	 * would wait on this daemon's own loop. */
	abs_mnt = realpath(o.mountpoint, NULL);
	if (fuse_session_mount(g_se, o.mountpoint)) {
		log_err("cannot mount on %s", o.mountpoint);
		goto out_signals;
	}
	log_info("mounted %s on %s (cache %s, %llu bytes)", be->url, o.mountpoint, o.cache_dir,
		 (unsigned long long)cache_capacity(cache));
	if (abs_mnt)
		cache_note_mounted(cache, abs_mnt);
	if (!o.foreground) {
		if (chdir("/") < 0)
			log_warn("chdir /: %s", strerror(errno));
		log_init("epochfs", o.debug ? LOG_LVL_DEBUG : LOG_LVL_INFO, 1);
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
	exit_code = rc < 0 ? 1 : 0;
	fuse_loop_cfg_destroy(lc);
	log_info("unmounting %s", o.mountpoint);
out_unmount:
	fuse_session_unmount(g_se);
out_signals:
	fuse_remove_signal_handlers(g_se);
out_inval:
	cache_set_inval_hook(cache, NULL, NULL);
	inval_stop();
out_session:
	fuse_session_destroy(g_se);
	g_se = NULL;
	ctl_nopen_stop(); /* applies a write stream still pending */
out_args:
	fuse_opt_free_args(&args);
	free(fuse_o);
out_cache:
	cache_close(cache);
	free(abs_mnt);
out_be:
	backend_destroy(be);
out_opts:
	report(status_fd, exit_code);
	opts_free(&o);
	return exit_code;
out_opts2:
	opts_free(&o);
	return 2;
}
