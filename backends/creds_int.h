/* SPDX-License-Identifier: MIT */
/* Internals shared by creds.c (the chain and the provider), creds_parse.c
 * (the formats) and creds_fetch.c (the services).  Nothing else includes
 * this. */
#ifndef EPOCHFS_CREDS_INT_H
#define EPOCHFS_CREDS_INT_H

#include <limits.h>
#include <stddef.h>

#include "creds.h"

#define CREDS_FILE_MAX (1u << 20)   /* cap of a credentials, config or token file */

/* What it takes to ask the source again. */
struct source {
	enum creds_source kind;
	char what[PATH_MAX + 64];   /* for log lines: a file, a URL, a profile */
	/* web identity */
	char token_file[PATH_MAX], role_arn[512], session[128], sts_url[1024];
	/* ECS: url; auth token or a file to read it from */
	char url[1024], auth_file[PATH_MAX];
	char *auth;                 /* malloc'ed, wiped */
	/* IMDS */
	char imds[512];
};

/* snprintf for messages: a long path or URL is cut, never an overflow. */
void creds_errf(char *buf, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* A whole small file, trailing blanks cut; NULL (errno set) if missing or
 * over CREDS_FILE_MAX.  malloc'ed. */
char *creds_slurp(const char *path);
/* Wipe a secret string, then free it (NULL is fine). */
void creds_wipe_free(char *s);
/* application/x-www-form-urlencoded; malloc'ed, NULL on ENOMEM. */
char *creds_form_encode(const char *src);
/* Forget a source's secrets. */
void creds_source_clear(struct source *s);
/* Ask the source for credentials.  0, or -errno with err saying why. */
int creds_source_fetch(struct source *s, struct aws_creds *c, char *err, size_t errlen);

#endif
