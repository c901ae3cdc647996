/* SPDX-License-Identifier: MIT */
/* Logging: one line per message, to stderr, syslog or a file.  The level
 * and destination are set before the threads start and read without locks
 * after; a line is written with one write(2), so lines of several threads
 * never interleave.
 *
 * A log file is rotated by size: past log_rotate_bytes the thread whose
 * line crossed the mark renames it to PATH.1 (replacing the previous one)
 * and puts a new PATH behind the same descriptor number with dup2, which
 * is atomic for the threads writing meanwhile: at most twice the limit is
 * ever on disk, and no line is lost or split. */
#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

static const char *log_ident = "epochfs";
static enum log_level log_cur = LOG_LVL_INFO;
static enum log_dest log_where = LOG_TO_STDERR;
static int log_fd = -1;
static int log_tee;
static char log_path[PATH_MAX];
static uint64_t log_rotate_bytes = LOG_ROTATE_DEFAULT;
static atomic_uint_fast64_t log_bytes;
static atomic_int log_rotating;

void log_init(const char *ident, enum log_level level, int use_syslog)
{
	log_ident = ident;
	log_cur = level;
	if (use_syslog && log_where != LOG_TO_SYSLOG)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
	log_where = use_syslog ? LOG_TO_SYSLOG : LOG_TO_STDERR;
}

int log_to_file(const char *path)
{
	struct stat st;
	int fd;

	if (strlen(path) >= sizeof(log_path) - 2)
		return -ENAMETOOLONG;
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0)
		return -errno;
	if (log_fd >= 0)
		close(log_fd);
	log_fd = fd;
	log_where = LOG_TO_FILE;
	snprintf(log_path, sizeof(log_path), "%s", path);
	atomic_store(&log_bytes, fstat(fd, &st) ? 0 : (uint64_t)st.st_size);
	return 0;
}

void log_set_rotate_bytes(uint64_t bytes)
{
	log_rotate_bytes = bytes;
}

/* PATH -> PATH.1, a new PATH behind log_fd.  On failure the file just
 * grows (and the next line tries again). */
static void log_rotate(void)
{
	char old[sizeof(log_path) + 2];
	int fd;

	snprintf(old, sizeof(old), "%s.1", log_path);
	if (rename(log_path, old) == 0) {
		fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
		if (fd >= 0) {
			dup2(fd, log_fd);
			close(fd);
			atomic_store(&log_bytes, 0);
		}
	}
	atomic_store(&log_rotating, 0);
}

enum log_dest log_dest_get(void)
{
	return log_where;
}

void log_tee_stderr(int on)
{
	log_tee = on;
}

int log_syslog_available(void)
{
	struct stat st;

	return stat("/dev/log", &st) == 0 && S_ISSOCK(st.st_mode);
}

void log_set_level(enum log_level level)
{
	log_cur = level;
}

int log_level_parse(const char *s, enum log_level *out)
{
	static const struct {
		const char *name;
		enum log_level lvl;
	} names[] = { { "error", LOG_LVL_ERR }, { "warn", LOG_LVL_WARN },
		      { "warning", LOG_LVL_WARN }, { "info", LOG_LVL_INFO },
		      { "debug", LOG_LVL_DEBUG } };

	for (size_t i = 0; s && i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcasecmp(s, names[i].name)) {
			*out = names[i].lvl;
			return 0;
		}
	return -EINVAL;
}

enum log_level log_level_get(void)
{
	return log_cur;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	static const char *names[] = { "error", "warning", "info", "debug" };
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	char line[1024], out[1200], stamp[32];
	struct timespec ts;
	struct tm tm;
	va_list ap;
	int n;

	if (level > log_cur)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (log_tee && log_where != LOG_TO_STDERR) {
		n = snprintf(out, sizeof(out), "%s: %s: %s\n", log_ident, names[level], line);
		if (write(STDERR_FILENO, out, MIN((size_t)n, sizeof(out) - 1)) < 0) {
			/* the file or syslog still has it */
		}
	}
	switch (log_where) {
	case LOG_TO_SYSLOG:
		syslog(prio[level], "%s", line);
		return;
	case LOG_TO_FILE:
		clock_gettime(CLOCK_REALTIME, &ts);
		localtime_r(&ts.tv_sec, &tm);
		strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", &tm);
		n = snprintf(out, sizeof(out), "%s.%03ld %s[%ld]: %s: %s\n", stamp,
			     ts.tv_nsec / 1000000, log_ident, (long)getpid(), names[level], line);
		break;
	default:
		n = snprintf(out, sizeof(out), "%s: %s: %s\n", log_ident, names[level], line);
		break;
	}
	if (n > (int)sizeof(out) - 1)
		n = (int)sizeof(out) - 1;
	if (write(log_where == LOG_TO_FILE ? log_fd : STDERR_FILENO, out, (size_t)n) < 0) {
		/* nowhere left to say it */
	}
	if (log_where == LOG_TO_FILE && log_rotate_bytes &&
	    atomic_fetch_add(&log_bytes, (uint64_t)n) + (uint64_t)n > log_rotate_bytes &&
	    !atomic_exchange(&log_rotating, 1))
		log_rotate();
}
