/* SPDX-License-Identifier: MIT */
/* Asking a credentials service: one small libcurl request each, with short
 * timeouts and no proxy for the link-local ones (STS AssumeRoleWithWebIdentity,
 * the ECS container endpoint, IMDSv2 with its session token). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE     /* memmem */
#endif
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>
#include "creds_int.h"
#include "fetch.h"
#include "backends/base/log.h"

#define CREDS_BODY_MAX (64u << 10)  /* cap of an answer */

/* ----- HTTP -------------------------------------------------------------- */

struct body {
	char *buf;
	size_t len;
	int toobig;
};

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
	struct body *b = arg;
	size_t n = size * nmemb;
	char *nb;

	if (b->len + n > CREDS_BODY_MAX) {
		b->toobig = 1;
		return 0;
	}
	if (!(nb = realloc(b->buf, b->len + n + 1)))
		return 0;
	b->buf = nb;
	memcpy(b->buf + b->len, data, n);
	b->len += n;
	b->buf[b->len] = 0;
	return n;
}


/* One small request.  method "GET", "PUT" or "POST" (body: form, may be
 * NULL).  0 with *status and *resp (malloc'ed, NUL-terminated, may be
 * empty); -EIO with err saying why when no HTTP answer came; -ENOMEM. */
static int http_call(const char *method, const char *url, struct curl_slist *hdrs,
		     const char *form, long connect_s, long timeout_s, int noproxy,
		     long *status, char **resp, char *err, size_t errlen)
{
	struct body b = { NULL, 0, 0 };
	char ebuf[CURL_ERROR_SIZE] = "";
	CURLcode rc;
	CURL *h;

	*resp = NULL;
	*status = 0;
	if (fetch_curl_init() || !(h = curl_easy_init())) {
		creds_errf(err, errlen, "cannot start libcurl");
		return -ENOMEM;
	}
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, connect_s);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, timeout_s);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, ebuf);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	if (noproxy)
		curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
	if (hdrs)
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	if (!strcmp(method, "PUT")) {
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "PUT");
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, 0L);
	} else if (!strcmp(method, "POST")) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, form ? form : "");
	}
	rc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
	curl_easy_cleanup(h);
	if (rc != CURLE_OK) {
		if (b.buf)
			explicit_bzero(b.buf, b.len);
		free(b.buf);
		if (b.toobig)
			creds_errf(err, errlen, "the answer of %s is over %u KiB", url,
				 CREDS_BODY_MAX >> 10);
		else
			creds_errf(err, errlen, "no answer from %s: %s", url,
				 ebuf[0] ? ebuf : curl_easy_strerror(rc));
		return rc == CURLE_OUT_OF_MEMORY ? -ENOMEM : -EIO;
	}
	if (!b.buf && !(b.buf = calloc(1, 1)))
		return -ENOMEM;
	*resp = b.buf;
	return 0;
}

/* ----- sources ----------------------------------------------------------- */


void creds_source_clear(struct source *s)
{
	creds_wipe_free(s->auth);
	memset(s, 0, sizeof(*s));
}

/* A field of an answer, for a log line: the answer's first line, cut. */
static void snippet(const char *text, char *out, size_t n)
{
	size_t l = strcspn(text, "\r\n");

	if (l > 120)
		l = 120;
	snprintf(out, n, "%.*s", (int)l, text);
	for (char *p = out; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
}

static int sts_fetch(struct source *s, struct aws_creds *c, char *err, size_t errlen)
{
	char *tok = creds_slurp(s->token_file), *form = NULL, *resp = NULL, *t = NULL;
	char *arn = NULL, *sess = NULL, code[128], msg[256];
	struct curl_slist *h = NULL;
	long status;
	size_t n;
	int rc;

	if (!tok) {
		creds_errf(err, errlen, "cannot read the web identity token file %s: %s",
			 s->token_file, strerror(errno));
		return -EACCES;
	}
	if (!tok[0]) {
		free(tok);
		creds_errf(err, errlen, "the web identity token file %s is empty", s->token_file);
		return -EACCES;
	}
	rc = -ENOMEM;
	if (!(t = creds_form_encode(tok)) || !(arn = creds_form_encode(s->role_arn)) ||
	    !(sess = creds_form_encode(s->session)))
		goto out;
	n = strlen(t) + strlen(arn) + strlen(sess) + 128;
	if (!(form = malloc(n)))
		goto out;
	snprintf(form, n, "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=%s"
		 "&RoleSessionName=%s&WebIdentityToken=%s", arn, sess, t);
	if (!(h = curl_slist_append(NULL, "Content-Type: application/x-www-form-urlencoded")))
		goto out;
	if (!curl_slist_append(h, "Accept: application/xml"))
		goto out;
	if ((rc = http_call("POST", s->sts_url, h, form, 5, CREDS_STS_TIMEOUT_S, 0, &status,
			    &resp, err, errlen)))
		goto out;
	rc = creds_parse_sts(resp, c, code, sizeof(code), msg, sizeof(msg));
	if (status == 200 && !rc)
		goto out;
	if (rc == -EACCES || (status >= 400 && status < 500)) {
		creds_errf(err, errlen, "STS %s refused AssumeRoleWithWebIdentity for %s: HTTP %ld %s%s%s",
			 s->sts_url, s->role_arn, status, code[0] ? code : "", msg[0] ? ": " : "", msg);
		rc = status >= 500 ? -EIO : -EACCES;
	} else {
		char sn[128];

		snippet(resp, sn, sizeof(sn));
		creds_errf(err, errlen, "STS %s: HTTP %ld, not an AssumeRoleWithWebIdentityResponse (%s)",
			 s->sts_url, status, sn);
		rc = -EIO;
	}
	explicit_bzero(c, sizeof(*c));
out:
	curl_slist_free_all(h);
	creds_wipe_free(tok);
	creds_wipe_free(t);
	creds_wipe_free(form);
	free(arn);
	free(sess);
	creds_wipe_free(resp);
	if (rc == -ENOMEM)
		creds_errf(err, errlen, "out of memory");
	return rc;
}

static int ecs_fetch(struct source *s, struct aws_creds *c, char *err, size_t errlen)
{
	struct curl_slist *h = NULL;
	char *resp = NULL, *auth = NULL, *hdr = NULL, code[64];
	long status;
	int rc;

	if (s->auth_file[0]) {
		if (!(auth = creds_slurp(s->auth_file))) {
			creds_errf(err, errlen, "cannot read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE %s: %s",
				 s->auth_file, strerror(errno));
			return -EACCES;
		}
	} else if (s->auth && !(auth = strdup(s->auth))) {
		return -ENOMEM;
	}
	if (auth) {
		size_t n = strlen(auth) + 32;

		if (strpbrk(auth, "\r\n")) {
			creds_wipe_free(auth);
			creds_errf(err, errlen, "the ECS authorization token holds a line break");
			return -EACCES;
		}
		if (!(hdr = malloc(n))) {
			creds_wipe_free(auth);
			return -ENOMEM;
		}
		snprintf(hdr, n, "Authorization: %s", auth);
		creds_wipe_free(auth);
		if (!(h = curl_slist_append(NULL, hdr))) {
			creds_wipe_free(hdr);
			return -ENOMEM;
		}
		creds_wipe_free(hdr);
	}
	rc = http_call("GET", s->url, h, NULL, 2, CREDS_ECS_TIMEOUT_S, 1, &status, &resp, err,
		       errlen);
	if (h) {
		/* the slist's copy holds the token */
		explicit_bzero(h->data, strlen(h->data));
		curl_slist_free_all(h);
	}
	if (rc)
		return rc;
	if (status != 200) {
		char sn[128];

		snippet(resp, sn, sizeof(sn));
		creds_errf(err, errlen, "ECS credentials endpoint %s: HTTP %ld %s", s->url, status, sn);
		rc = status >= 500 ? -EIO : -EACCES;
	} else if ((rc = creds_parse_json(resp, c, code, sizeof(code)))) {
		creds_errf(err, errlen, "ECS credentials endpoint %s: %s%s", s->url,
			 rc == -EACCES ? "Code " : "the answer is not credentials JSON",
			 rc == -EACCES ? code : "");
	}
	creds_wipe_free(resp);
	return rc;
}

static int imds_fetch(struct source *s, struct aws_creds *c, char *err, size_t errlen)
{
	char url[1024], hdr[256], role[256], code[64], *resp = NULL;
	struct curl_slist *h = NULL;
	long status;
	int rc;

	/* 1. a session token */
	snprintf(url, sizeof(url), "%s/latest/api/token", s->imds);
	if (!(h = curl_slist_append(NULL, "X-aws-ec2-metadata-token-ttl-seconds: 21600")))
		return -ENOMEM;
	rc = http_call("PUT", url, h, NULL, CREDS_IMDS_CONNECT_S, CREDS_IMDS_TIMEOUT_S, 1,
		       &status, &resp, err, errlen);
	curl_slist_free_all(h);
	h = NULL;
	if (rc)
		return rc;
	if (status != 200 || !resp[0] || strlen(resp) > 200 || strpbrk(resp, "\r\n")) {
		creds_errf(err, errlen, "instance metadata %s: HTTP %ld for an IMDSv2 token", url,
			 status);
		creds_wipe_free(resp);
		return status == 403 ? -EACCES : -EIO;
	}
	snprintf(hdr, sizeof(hdr), "X-aws-ec2-metadata-token: %s", resp);
	creds_wipe_free(resp);
	resp = NULL;
	if (!(h = curl_slist_append(NULL, hdr))) {
		rc = -ENOMEM;
		goto out;
	}
	/* 2. the role attached to the instance */
	snprintf(url, sizeof(url), "%s/latest/meta-data/iam/security-credentials/", s->imds);
	if ((rc = http_call("GET", url, h, NULL, CREDS_IMDS_CONNECT_S, CREDS_IMDS_TIMEOUT_S, 1,
			    &status, &resp, err, errlen)))
		goto out;
	if (status == 404) {
		creds_errf(err, errlen, "instance metadata %s: no IAM role is attached to this instance",
			 s->imds);
		rc = -EACCES;
		goto out;
	}
	snprintf(role, sizeof(role), "%.*s", (int)strcspn(resp, "\r\n"), resp);
	if (status != 200 || !role[0] || strpbrk(role, "/?# ") || role[0] == '.') {
		creds_errf(err, errlen, "instance metadata %s: HTTP %ld, no role name", url, status);
		rc = status == 401 || status == 403 ? -EACCES : -EIO;
		goto out;
	}
	creds_wipe_free(resp);
	resp = NULL;
	/* 3. its credentials */
	snprintf(url, sizeof(url), "%s/latest/meta-data/iam/security-credentials/%s", s->imds,
		 role);
	if ((rc = http_call("GET", url, h, NULL, CREDS_IMDS_CONNECT_S, CREDS_IMDS_TIMEOUT_S, 1,
			    &status, &resp, err, errlen)))
		goto out;
	if (status != 200) {
		creds_errf(err, errlen, "instance metadata %s: HTTP %ld", url, status);
		rc = status == 401 || status == 403 || status == 404 ? -EACCES : -EIO;
	} else if ((rc = creds_parse_json(resp, c, code, sizeof(code)))) {
		creds_errf(err, errlen, "instance metadata %s: %s%s", url,
			 rc == -EACCES ? "Code " : "the answer is not credentials JSON",
			 rc == -EACCES ? code : "");
	} else {
		creds_errf(s->what, sizeof(s->what), "%s, role %s", s->imds, role);
	}
out:
	explicit_bzero(hdr, sizeof(hdr));
	if (h) {
		explicit_bzero(h->data, strlen(h->data));
		curl_slist_free_all(h);
	}
	creds_wipe_free(resp);
	if (rc == -ENOMEM)
		creds_errf(err, errlen, "out of memory");
	return rc;
}

int creds_source_fetch(struct source *s, struct aws_creds *c, char *err, size_t errlen)
{
	int rc;

	memset(c, 0, sizeof(*c));
	switch (s->kind) {
	case CREDS_WEB_IDENTITY:
		rc = sts_fetch(s, c, err, errlen);
		break;
	case CREDS_ECS:
		rc = ecs_fetch(s, c, err, errlen);
		break;
	case CREDS_IMDS:
		rc = imds_fetch(s, c, err, errlen);
		break;
	default:
		creds_errf(err, errlen, "%s credentials cannot be fetched again",
			 creds_source_name(s->kind));
		return -EINVAL;
	}
	if (!rc && (!c->key[0] || !c->secret[0])) {
		creds_errf(err, errlen, "%s: no key pair in the answer", s->what);
		rc = -EIO;
	}
	return rc;
}

