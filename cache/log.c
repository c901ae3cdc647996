/* SPDX-License-Identifier: MIT */
/* Logging: one line per message, to stderr or syslog. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "log.h"

static const char *log_ident = "epochfs";
static enum log_level log_cur = LOG_LVL_INFO;
static int log_syslog;

void log_init(const char *ident, enum log_level level, int use_syslog)
{
	log_ident = ident;
	log_cur = level;
	if (use_syslog && !log_syslog)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
	log_syslog = use_syslog;
}

enum log_level log_level_get(void)
{
	return log_cur;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	static const char *names[] = { "error", "warning", "info", "debug" };
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	char line[1024];
	va_list ap;

	if (level > log_cur)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (log_syslog) {
		syslog(prio[level], "%s", line);
		return;
	}
	fprintf(stderr, "%s: %s: %s\n", log_ident, names[level], line);
}
