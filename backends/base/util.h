/* SPDX-License-Identifier: MIT */
/* The base layer's helpers, shared by every layer (backends, cache, fs,
 * tools, tests) and including nothing of theirs: size parsing, the clocks,
 * hex digits, the allocation seam the tests can make fail. */
#ifndef EPOCHFS_UTIL_H
#define EPOCHFS_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Parse "123", "4K", "1.5G", "500GiB" (powers of 1024) and "500GB", "2TB"
 * (powers of 1000), as df -h / df -H and numfmt write them.  A trailing '%'
 * gives *pct (0 < pct <= 100) and *bytes = 0.
 * 0 or -EINVAL. */
int parse_size(const char *s, uint64_t *bytes, double *pct);

/* Code point cp (at most 0x10ffff) as UTF-8 into out; returns its length,
 * 1 to 4.  The caller rules out surrogates and 0 where they are invalid. */
size_t utf8_put(unsigned long cp, char out[4]);

/* Format bytes for a person ("1.50 GiB"). */
void format_bytes(uint64_t v, char *buf, size_t len);

uint64_t now_ns(void);      /* CLOCK_MONOTONIC */
static inline uint64_t now_ms(void)
{
	return now_ns() / 1000000;
}
int64_t wall_ns(void);      /* CLOCK_REALTIME */

/* The value of one hex digit (either case), -1 if c is none. */
int hex_val(int c);

/* Allocation seam: tests set ec_fail_alloc_after to make the n-th call fail. */
void *ec_malloc(size_t n);
void *ec_calloc(size_t n, size_t m);
void *ec_realloc(void *p, size_t n);
char *ec_strdup(const char *s);
extern long ec_fail_alloc_after; /* < 0: never fail (default) */

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

#endif
