/* SPDX-License-Identifier: MIT */
/* What the files of the HTTP backend share: http.c (the backend, its
 * manifest listing), http_list.c (the walk of directory listings) and
 * http_index.c (the listing parsers).  Not for use outside backends/. */
#ifndef EPOCHFS_HTTP_INT_H
#define EPOCHFS_HTTP_INT_H

#include <stdlib.h>
#include <string.h>
#include "fetch.h"

struct http_backend {
	struct backend be;
	struct fetch_engine *eng;
	char *manifest;
	unsigned list_par;
	int autoindex;     /* identity carries mtime (autoindex listings) */
};

/* The two helpers are inline so that http.c (which calls the walk) and
 * http_list.c (which uses them) form no circle. */

/* base URL + percent-encoded key; NULL when out of memory. */
static inline char *http_object_url(struct http_backend *h, const char *key)
{
	size_t bl = strlen(h->be.url), n = bl + 3 * strlen(key) + 1;
	char *u = malloc(n);

	if (!u)
		return NULL;
	memcpy(u, h->be.url, bl);
	if (key_urlencode(key, 1, u + bl, n - bl)) {
		free(u);
		return NULL;
	}
	return u;
}

/* The identity of an object from a HEAD response: the fields a listing
 * gives (size, mtime; no ETag: listings have none). */
static inline void http_head_identity(const struct backend_stat *seen, struct backend_stat *st)
{
	*st = *seen;
	st->etag[0] = 0;
}

/* Walk the directory listings from the base URL (nginx JSON or HTML
 * autoindex, Apache mod_autoindex, python's http.server).  0, -errno or
 * fn's value. */
int http_list_walk(struct http_backend *h, backend_list_fn fn, void *arg);

#endif
