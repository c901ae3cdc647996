/* SPDX-License-Identifier: MIT */
/* Keys: from the names a source lists to safe relative paths, and back into
 * URLs.  Every backend that lists names it does not control (http, s3) runs
 * them through key_classify and the key filter; backend_key_check is the
 * last word on what may reach the namespace.  Depends on backend.h only, so
 * that no backend file and backend.c form a circle through it. */
#ifndef EPOCHFS_KEYS_H
#define EPOCHFS_KEYS_H

#include <stddef.h>
#include <stdint.h>
#include "backend.h"

/* Returns 0 when key is a safe relative path (no empty, "." or ".."
 * segment, no leading '/', each segment <= NAME_MAX bytes, no NUL);
 * -EINVAL otherwise. */
int backend_key_check(const char *key);

enum key_verdict {
	KEY_OK,        /* use the key as it is */
	KEY_DIRMARK,   /* a directory marker ("a/b/"): skip silently */
	KEY_BAD,       /* unrepresentable: skip with a warning */
};

/* Decide what to do with a listed key (relative to the source root); on
 * KEY_BAD *why says which rule rejected it. */
enum key_verdict key_classify(const char *key, const char **why);

/* A streaming filter between a sorted listing and the list callback: it
 * resolves a key that is both an object and a prefix ("a" and "a/b": the
 * object "a" is skipped with a warning), drops duplicates and bad keys,
 * counting each skip.  Holds at most the chain of keys that are prefixes of
 * one another (bounded by the key length). */
struct key_filter;

int key_filter_create(backend_list_fn fn, void *arg,
		      struct backend_counters *c, const char *what,
		      struct key_filter **out);
/* Offer one key; returns 0 or the callback's non-zero value. */
int key_filter_push(struct key_filter *kf, const char *key, const struct backend_stat *st);
/* Emit what is held; returns 0 or the callback's non-zero value. */
int key_filter_flush(struct key_filter *kf);
/* Number of out-of-order keys seen (conflicts there go undetected). */
uint64_t key_filter_unsorted(const struct key_filter *kf);
void key_filter_destroy(struct key_filter *kf);

/* Percent-encode src (RFC 3986 unreserved kept, and '/' when keep_slash)
 * into dst; 0 or -ENAMETOOLONG. */
int key_urlencode(const char *src, int keep_slash, char *dst, size_t dstlen);

/* Decode %XX escapes of src into dst; 0, -EINVAL (bad escape or %00) or
 * -ENAMETOOLONG. */
int key_urldecode(const char *src, size_t n, char *dst, size_t dstlen);

#endif
