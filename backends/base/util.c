/* SPDX-License-Identifier: MIT */
/* Size parsing, clocks, hex digits and the allocation seam. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "util.h"

long ec_fail_alloc_after = -1;

/* Counting restarts whenever a test changes the setting. */
static int alloc_should_fail(void)
{
	static atomic_long calls, armed = -1;
	long want = ec_fail_alloc_after;

	if (want < 0)
		return 0;
	if (atomic_exchange(&armed, want) != want)
		atomic_store(&calls, 0);
	return atomic_fetch_add(&calls, 1) >= want;
}

void *ec_malloc(size_t n)
{
	return alloc_should_fail() ? NULL : malloc(n);
}

void *ec_calloc(size_t n, size_t m)
{
	return alloc_should_fail() ? NULL : calloc(n, m);
}

void *ec_realloc(void *p, size_t n)
{
	return alloc_should_fail() ? NULL : realloc(p, n);
}

char *ec_strdup(const char *s)
{
	return alloc_should_fail() ? NULL : strdup(s);
}

int parse_size(const char *s, uint64_t *bytes, double *pct)
{
	static const char units[] = "BKMGTPE";
	char *end;
	double v;
	const char *u;
	int shift = 0;

	*bytes = 0;
	*pct = 0;
	if (!s || !*s || isspace((unsigned char)*s) || *s == '-' || *s == '+')
		return -EINVAL;
	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || !isfinite(v) || v < 0)
		return -EINVAL;
	if (!strcmp(end, "%")) {
		if (v <= 0 || v > 100)
			return -EINVAL;
		*pct = v;
		return 0;
	}
	if (*end) {
		u = strchr(units, toupper((unsigned char)*end));
		if (!u)
			return -EINVAL;
		shift = 10 * (int)(u - units);
		end++;
		if (*u != 'B' && !strcasecmp(end, "B")) {
			/* "KB" and friends are decimal, as df -H and numfmt
			 * --from=si mean them; K and KiB are binary */
			for (int k = 0; k < shift / 10; k++)
				v *= 1000;
			shift = 0;
			end++;
		} else if (*u != 'B' && !strcasecmp(end, "iB")) {
			end += 2;
		}
		if (*end)
			return -EINVAL;
	}
	v = ldexp(v, shift);
	if (v >= 18446744073709551615.0)
		return -EINVAL;
	*bytes = (uint64_t)v;
	return 0;
}

size_t utf8_put(unsigned long cp, char out[4])
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xc0 | cp >> 6);
		out[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xe0 | cp >> 12);
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | cp >> 18);
	out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	out[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

void format_bytes(uint64_t v, char *buf, size_t len)
{
	static const char *u[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
	double d = (double)v;
	size_t i = 0;

	while (d >= 1024 && i + 1 < ARRAY_SIZE(u)) {
		d /= 1024;
		i++;
	}
	if (i == 0)
		snprintf(buf, len, "%llu B", (unsigned long long)v);
	else
		snprintf(buf, len, "%.2f %s", d, u[i]);
}

uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int64_t wall_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

int hex_val(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}
