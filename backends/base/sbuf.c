/* SPDX-License-Identifier: MIT */
/* The growing string of sbuf.h; allocations go through the test seam. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sbuf.h"
#include "util.h"

static int sbuf_room(struct sbuf *b, size_t n)
{
	size_t cap;
	char *ns;

	if (b->oom)
		return -1;
	if (b->max && b->n + n > b->max) {
		b->oom = 1;
		return -1;
	}
	if (b->n + n + 1 <= b->cap)
		return 0;
	cap = MAX(b->cap * 2, b->n + n + 1024);
	ns = ec_realloc(b->s, cap);
	if (!ns) {
		b->oom = 1;
		return -1;
	}
	b->s = ns;
	b->cap = cap;
	return 0;
}

void sbuf_add(struct sbuf *b, const char *s, size_t n)
{
	if (sbuf_room(b, n))
		return;
	if (n) /* s may be NULL with nothing to add (an empty blob) */
		memcpy(b->s + b->n, s, n);
	b->n += n;
	b->s[b->n] = 0;
}

void sbuf_str(struct sbuf *b, const char *s)
{
	sbuf_add(b, s, strlen(s));
}

void sbuf_printf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->oom = 1;
		return;
	}
	if (sbuf_room(b, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(b->s + b->n, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->n += (size_t)n;
}

void sbuf_json_str(struct sbuf *b, const char *s)
{
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\') {
			char esc[2] = { '\\', (char)ch };

			sbuf_add(b, esc, 2);
		} else if (ch < 0x20) {
			sbuf_printf(b, "\\u%04x", ch);
		} else {
			sbuf_add(b, s, 1);
		}
	}
}

int sbuf_done(struct sbuf *b, char **out, size_t *len)
{
	if (!b->s)
		sbuf_add(b, "", 0);
	if (b->oom) {
		sbuf_free(b);
		return -ENOMEM;
	}
	*out = b->s;
	*len = b->n;
	b->s = NULL;
	b->n = b->cap = 0;
	return 0;
}

void sbuf_free(struct sbuf *b)
{
	free(b->s);
	b->s = NULL;
	b->n = b->cap = 0;
}
