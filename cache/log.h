/* SPDX-License-Identifier: MIT */
/* Logging for the daemon, the tools and the tests: levels, stderr in the
 * foreground, syslog once daemonized.  log_once() says a thing once per run. */
#ifndef EPOCHFS_LOG_H
#define EPOCHFS_LOG_H

#include <stdatomic.h>

enum log_level { LOG_LVL_ERR = 0, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

void log_init(const char *ident, enum log_level level, int use_syslog);
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
