/* SPDX-License-Identifier: MIT */
/* The one logger of the daemon, the tools and the tests: levels, and one
 * destination at a time (stderr in the foreground, syslog or a file once
 * daemonized), with stderr as a second one while the daemon starts.  Every
 * layer logs through it, so a message of a backend's thread follows the
 * daemon to wherever its log goes.  log_once() says a thing once per run. */
#ifndef EPOCHFS_LOG_H
#define EPOCHFS_LOG_H

#include <stdatomic.h>
#include <stdint.h>

enum log_level { LOG_LVL_ERR = 0, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

enum log_dest { LOG_TO_STDERR = 0, LOG_TO_SYSLOG, LOG_TO_FILE };

/* Log to stderr (use_syslog 0) or syslog (1) at level and below. */
void log_init(const char *ident, enum log_level level, int use_syslog);
/* Log to the file at path from now on (appended, one line per message
 * with a timestamp and the pid).  0 or -errno; on failure the destination
 * does not change. */
int log_to_file(const char *path) __attribute__((warn_unused_result));
/* A log file past this many bytes is renamed PATH.1 (the previous PATH.1
 * goes) and a new PATH begun; 0: never.  Default LOG_ROTATE_DEFAULT. */
#define LOG_ROTATE_DEFAULT (16ull << 20)
void log_set_rotate_bytes(uint64_t bytes);
enum log_dest log_dest_get(void);
/* While on, a message logged to syslog or a file is also written to stderr:
 * the daemon's start, until it detaches, is seen by whoever started it as
 * well as kept in its log. */
void log_tee_stderr(int on);
/* 1 when syslog can take messages (the /dev/log socket exists): without it
 * (many containers) syslog(3) drops every message silently. */
int log_syslog_available(void);
void log_set_level(enum log_level level);
/* "error", "warn" (or "warning"), "info", "debug": 0 or -EINVAL. */
int log_level_parse(const char *s, enum log_level *out);
void log_msg(enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
enum log_level log_level_get(void);

#define log_err(...) log_msg(LOG_LVL_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...)                                       \
	do {                                                 \
		if (log_level_get() >= LOG_LVL_DEBUG)        \
			log_msg(LOG_LVL_DEBUG, __VA_ARGS__); \
	} while (0)

/* Log at most once per flag (a static atomic_int in the caller). */
#define log_once(flag, level, ...)                                  \
	do {                                                        \
		if (!atomic_exchange(&(flag), 1))                   \
			log_msg(level, __VA_ARGS__);                \
	} while (0)

#endif
