/* SPDX-License-Identifier: MIT */
/* A growing string, for renderings (the stats JSON, control files' content).
 * An allocation failure is remembered, later appends do nothing, and
 * sbuf_done() reports it: callers check once, at the end.  The bytes are
 * always NUL-terminated.  cap bounds the length (0: no bound beyond memory);
 * going past it counts as -ENOMEM too. */
#ifndef EPOCHFS_SBUF_H
#define EPOCHFS_SBUF_H

#include <stddef.h>

struct sbuf {
	char *s;
	size_t n, cap, max;
	int oom;
};

void sbuf_add(struct sbuf *b, const char *s, size_t n);
void sbuf_str(struct sbuf *b, const char *s);
void sbuf_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* s as a JSON string's content (quotes not added). */
void sbuf_json_str(struct sbuf *b, const char *s);
/* Hand over the string (the caller frees it): 0, or -ENOMEM (b's memory
 * freed). */
int sbuf_done(struct sbuf *b, char **out, size_t *len) __attribute__((warn_unused_result));
void sbuf_free(struct sbuf *b);

#endif
