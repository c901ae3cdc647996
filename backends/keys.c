/* SPDX-License-Identifier: MIT */
/* From object-store keys to safe paths.  Every listed name goes through
 * key_classify (which rules are applied and why is in docs/backends.md),
 * then through a streaming filter that, given keys in byte order as S3
 * lists them, skips an object that is also a prefix ("a" beside "a/b").
 * Also the percent coding used to put keys into URLs, and backend_key_check,
 * the last check before a key reaches the namespace. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "keys.h"
#include "backends/base/log.h"
#include "backends/base/util.h"

#define KEY_WARN_MAX 100   /* skip warnings per listing; then only a total */
#define KEY_HELD_MAX 4096  /* held keys form a prefix chain: <= PATH_MAX deep */

int backend_key_check(const char *key)
{
	const char *p = key, *seg;
	size_t n;

	if (!key || !*key || *key == '/')
		return -EINVAL;
	while (*p) {
		seg = p;
		while (*p && *p != '/')
			p++;
		n = (size_t)(p - seg);
		if (n == 0 || n > NAME_MAX)
			return -EINVAL;
		if ((n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.'))
			return -EINVAL;
		if (*p == '/') {
			p++;
			if (!*p)
				return -EINVAL; /* trailing slash */
		}
	}
	return 0;
}

enum key_verdict key_classify(const char *key, const char **why)
{
	const unsigned char *p = (const unsigned char *)key, *seg = p;
	size_t len = strlen(key);

	*why = NULL;
	if (len == 0) {
		*why = "empty key";
		return KEY_BAD;
	}
	if (key[len - 1] == '/')
		return KEY_DIRMARK;
	if (len >= PATH_MAX) {
		*why = "longer than PATH_MAX";
		return KEY_BAD;
	}
	for (;; p++) {
		if (*p == '/' || *p == 0) {
			size_t n = (size_t)(p - seg);

			if (n == 0)
				*why = "empty path segment (leading '/' or '//')";
			else if ((n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.'))
				*why = "'.' or '..' segment";
			else if (n > NAME_MAX)
				*why = "segment longer than NAME_MAX";
			else if (seg == (const unsigned char *)key && n == 8 && !memcmp(seg, ".epochfs", 8))
				*why = "reserved name .epochfs";
			if (*why)
				return KEY_BAD;
			if (*p == 0)
				break;
			seg = p + 1;
		} else if (*p < 0x20 || *p == 0x7f) {
			*why = "control character";
			return KEY_BAD;
		}
	}
	if (backend_key_check(key)) {
		*why = "rejected by backend_key_check";
		return KEY_BAD;
	}
	return KEY_OK;
}

struct held {
	char *key;
	size_t len;
	struct backend_stat st;
};

struct key_filter {
	backend_list_fn fn;
	void *arg;
	struct backend_counters *c;
	const char *what;
	struct held stack[KEY_HELD_MAX];
	unsigned depth;
	char *last;
	uint64_t unsorted, warned, skipped;
};

/* Escape bytes that would garble a log line. */
static const char *printable(const char *key, char *buf, size_t n)
{
	size_t o = 0;

	for (const unsigned char *p = (const unsigned char *)key; *p && o + 5 < n; p++) {
		if (*p < 0x20 || *p == 0x7f || *p == '\\')
			o += (size_t)snprintf(buf + o, n - o, "\\x%02x", *p);
		else
			buf[o++] = (char)*p;
	}
	buf[o] = 0;
	return buf;
}

static void skip(struct key_filter *kf, const char *key, const char *why)
{
	char buf[512];

	atomic_fetch_add(&kf->c->skipped_keys, 1);
	kf->skipped++;
	if (kf->warned++ < KEY_WARN_MAX)
		log_warn("%s: skipping key '%s': %s", kf->what,
			  printable(key, buf, sizeof(buf)), why);
}

int key_filter_create(backend_list_fn fn, void *arg, struct backend_counters *c,
		      const char *what, struct key_filter **out)
{
	struct key_filter *kf = calloc(1, sizeof(*kf));

	if (!kf)
		return -ENOMEM;
	kf->fn = fn;
	kf->arg = arg;
	kf->c = c;
	kf->what = what;
	*out = kf;
	return 0;
}

/* Pop the top held key, passing it on unless it was found to be a prefix. */
static int pop(struct key_filter *kf, int conflict)
{
	struct held *h = &kf->stack[--kf->depth];
	int rc = 0;

	if (conflict)
		skip(kf, h->key, "it is also a directory prefix of other keys");
	else
		rc = kf->fn(kf->arg, h->key, &h->st);
	free(h->key);
	h->key = NULL;
	return rc;
}

int key_filter_push(struct key_filter *kf, const char *key, const struct backend_stat *st)
{
	const char *why;
	size_t len = strlen(key);
	int rc = 0, cmp;
	char *copy;

	switch (key_classify(key, &why)) {
	case KEY_DIRMARK:
		return 0;
	case KEY_BAD:
		skip(kf, key, why);
		return 0;
	case KEY_OK:
		break;
	}
	cmp = kf->last ? strcmp(key, kf->last) : 1;
	if (cmp == 0) {
		skip(kf, key, "duplicate");
		return 0;
	}
	if (cmp < 0) {
		/* out of order: conflicts can no longer be seen; pass what is held */
		if (kf->unsorted++ == 0)
			log_warn("%s: listing is not in byte order; a name that is"
				  " both a file and a directory is not detected", kf->what);
		while (kf->depth && !rc)
			rc = pop(kf, 0);
	}
	while (kf->depth && !rc) {
		struct held *h = &kf->stack[kf->depth - 1];

		if (cmp > 0 && len > h->len && !strncmp(key, h->key, h->len)) {
			if (key[h->len] == '/')
				rc = pop(kf, 1);
			else if ((unsigned char)key[h->len] < '/')
				break;      /* "a!" after "a": "a/..." may still come */
			else
				rc = pop(kf, 0);
		} else {
			rc = pop(kf, 0);
		}
	}
	if (rc)
		return rc;
	if (!(copy = strdup(key)))
		return -ENOMEM;
	free(kf->last);
	if (!(kf->last = strdup(key))) {
		free(copy);
		return -ENOMEM;
	}
	if (kf->depth == KEY_HELD_MAX && (rc = pop(kf, 0))) {
		free(copy);
		return rc;
	}
	kf->stack[kf->depth].key = copy;
	kf->stack[kf->depth].len = len;
	kf->stack[kf->depth].st = *st;
	kf->depth++;
	return 0;
}

int key_filter_flush(struct key_filter *kf)
{
	int rc = 0;

	while (kf->depth && !rc)
		rc = pop(kf, 0);
	if (kf->warned > KEY_WARN_MAX)
		log_warn("%s: %llu keys skipped in all", kf->what,
			  (unsigned long long)kf->skipped);
	return rc;
}

uint64_t key_filter_unsorted(const struct key_filter *kf)
{
	return kf->unsorted;
}

void key_filter_destroy(struct key_filter *kf)
{
	if (!kf)
		return;
	while (kf->depth)
		free(kf->stack[--kf->depth].key);
	free(kf->last);
	free(kf);
}

int key_urlencode(const char *src, int keep_slash, char *dst, size_t dstlen)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	for (const unsigned char *p = (const unsigned char *)src; *p; p++) {
		int keep = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
			   (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_' ||
			   *p == '~' || (keep_slash && *p == '/');

		if (o + (keep ? 1 : 3) >= dstlen)
			return -ENAMETOOLONG;
		if (keep) {
			dst[o++] = (char)*p;
		} else {
			dst[o++] = '%';
			dst[o++] = hex[*p >> 4];
			dst[o++] = hex[*p & 15];
		}
	}
	if (o >= dstlen)
		return -ENAMETOOLONG;
	dst[o] = 0;
	return 0;
}

int key_urldecode(const char *src, size_t n, char *dst, size_t dstlen)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		char c = src[i];

		if (c == '%') {
			int h, l;

			if (i + 2 >= n || (h = hex_val(src[i + 1])) < 0 || (l = hex_val(src[i + 2])) < 0)
				return -EINVAL;
			c = (char)(h << 4 | l);
			i += 2;
		}
		if (c == 0)
			return -EINVAL;
		if (o + 1 >= dstlen)
			return -ENAMETOOLONG;
		dst[o++] = c;
	}
	if (o >= dstlen)
		return -ENAMETOOLONG;
	dst[o] = 0;
	return 0;
}
