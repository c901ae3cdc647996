/* SPDX-License-Identifier: MIT */
/* What the files of the HTTP backend share: http.c (the backend, its
 * manifest listing), http_list.c (the walk of directory listings) and
 * http_index.c (the listing parsers).  Not for use outside backends/. */
#ifndef EPOCHFS_HTTP_INT_H
#define EPOCHFS_HTTP_INT_H

#include "fetch.h"

struct http_backend {
	struct backend be;
	struct fetch_engine *eng;
	char *manifest;
	unsigned list_par;
	int autoindex;     /* identity carries mtime (autoindex listings) */
};

/* base URL + percent-encoded key; NULL when out of memory. */
char *http_object_url(struct http_backend *h, const char *key);

/* The identity of an object from a HEAD response, the fields a listing
 * gives (no ETag: listings have none). */
void http_head_identity(const struct backend_stat *seen, struct backend_stat *st);

/* Walk the directory listings from the base URL (nginx JSON or HTML
 * autoindex, Apache mod_autoindex, python's http.server).  0, -errno or
 * fn's value. */
int http_list_walk(struct http_backend *h, backend_list_fn fn, void *arg);

#endif
