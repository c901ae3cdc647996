/* SPDX-License-Identifier: MIT */
/* epochfs-stat: show a mount's counters for a person, as raw JSON, or
 * refreshed in place with rates per second.  Reads <mount>/.epochfs/stats. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache/util.h"

static int read_stats(const char *mnt, char *buf, size_t len)
{
	char path[4096];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/.epochfs/stats", mnt);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n <= 0)
		return -EIO;
	buf[n] = 0;
	return strncmp(buf, "{\"version\"", 10) ? -EINVAL : 0;
}

/* The number after "key": in a flat JSON object (0 when absent). */
static double num(const char *json, const char *key)
{
	char pat[128];
	const char *p;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	p = strstr(json, pat);
	return p ? strtod(p + strlen(pat), NULL) : 0;
}

static double ratio(double a, double b)
{
	return b > 0 ? a / b : 0;
}

static void show(const char *mnt, const char *j, const char *prev, double dt)
{
	char b1[32], b2[32], b3[32];
	double opens = num(j, "opens"), hits = num(j, "open_hits");
	double rb = num(j, "read_bytes"), rbc = num(j, "read_bytes_from_cache");

	printf("epochfs %s\n", mnt);
	printf("  hit rate      %6.2f%% of opens (%.0f of %.0f), %6.2f%% of bytes\n",
	       100 * ratio(hits, opens), hits, opens, 100 * ratio(rbc, rb));
	format_bytes((uint64_t)rb, b1, sizeof(b1));
	format_bytes((uint64_t)rbc, b2, sizeof(b2));
	printf("  reads         %.0f requests, %s served, %s from cache\n", num(j, "reads"), b1, b2);
	printf("  stalls        %.3f s waiting on the backend\n", num(j, "stall_ns") / 1e9);
	format_bytes((uint64_t)num(j, "backend_bytes"), b1, sizeof(b1));
	printf("  backend       %.0f requests, %s, %.0f retries, %.0f errors\n",
	       num(j, "backend_requests"), b1, num(j, "backend_retries"), num(j, "backend_errors"));
	format_bytes((uint64_t)num(j, "cache_bytes"), b1, sizeof(b1));
	format_bytes((uint64_t)num(j, "cache_capacity"), b2, sizeof(b2));
	format_bytes((uint64_t)num(j, "cache_meta_bytes"), b3, sizeof(b3));
	printf("  cache         %s of %s (%.1f%%, index %s), %.0f objects, %.0f evictions%s\n", b1,
	       b2, 100 * ratio(num(j, "cache_bytes"), num(j, "cache_capacity")), b3,
	       num(j, "cache_objects"), num(j, "evictions"),
	       num(j, "cache_degraded") ? ", DEGRADED (disk full)" : "");
	if (prev && dt > 0) {
		format_bytes((uint64_t)((rb - num(prev, "read_bytes")) / dt), b1, sizeof(b1));
		format_bytes((uint64_t)((num(j, "backend_bytes") - num(prev, "backend_bytes")) / dt),
			     b2, sizeof(b2));
		printf("  rates         %.1f opens/s, %s/s read, %s/s from backend\n",
		       (opens - num(prev, "opens")) / dt, b1, b2);
	}
}

int main(int argc, char **argv)
{
	const char *mnt = NULL;
	int json = 0, rc;
	double watch = 0;
	static char cur[65536], prev[65536];

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			json = 1;
		else if (!strcmp(argv[i], "--watch") && i + 1 < argc)
			watch = strtod(argv[++i], NULL);
		else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			printf("usage: epochfs-stat [--json] [--watch SECONDS] MOUNTPOINT\n");
			return 0;
		} else if (argv[i][0] == '-' || mnt) {
			fprintf(stderr, "usage: epochfs-stat [--json] [--watch SECONDS] MOUNTPOINT\n");
			return 2;
		} else
			mnt = argv[i];
	}
	if (!mnt) {
		fprintf(stderr, "usage: epochfs-stat [--json] [--watch SECONDS] MOUNTPOINT\n");
		return 2;
	}
	rc = read_stats(mnt, cur, sizeof(cur));
	if (rc) {
		fprintf(stderr, "epochfs-stat: %s is not an epochfs mount (%s)\n", mnt,
			rc == -EINVAL ? "unexpected stats format" : strerror(-rc));
		return 1;
	}
	if (json) {
		fputs(cur, stdout);
		return 0;
	}
	if (watch <= 0) {
		show(mnt, cur, NULL, 0);
		return 0;
	}
	for (uint64_t t0 = now_ns();;) {
		uint64_t t1;

		memcpy(prev, cur, sizeof(cur));
		usleep((useconds_t)(watch * 1e6));
		if (read_stats(mnt, cur, sizeof(cur))) {
			fprintf(stderr, "epochfs-stat: %s is no longer mounted\n", mnt);
			return 1;
		}
		t1 = now_ns();
		printf("\033[H\033[J");
		show(mnt, cur, prev, (double)(t1 - t0) / 1e9);
		fflush(stdout);
		t0 = t1;
	}
}
