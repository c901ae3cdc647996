/* SPDX-License-Identifier: MIT */
/* AWS credentials the way the AWS tools find them (the chain and its rules
 * are in creds.h): environment, profile, web identity through STS, ECS
 * container credentials, EC2 instance metadata (IMDSv2); temporary ones are
 * refreshed by a thread before they expire.  The small HTTP calls go through
 * a libcurl easy handle each, with short timeouts and no proxy for the
 * link-local services. */
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
#include "creds.h"
#include "backends/base/log.h"

#define CREDS_FILE_MAX (1u << 20)   /* cap of a credentials, config or token file */
#define CREDS_BODY_MAX (64u << 10)  /* cap of an answer */

/* snprintf for messages: a long path or URL is cut, never an overflow. */
static void errf(char *buf, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void errf(char *buf, size_t n, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, n, fmt, ap);
	va_end(ap);
}

const char *creds_source_name(enum creds_source s)
{
	switch (s) {
	case CREDS_ENV: return "environment";
	case CREDS_PROFILE: return "profile";
	case CREDS_WEB_IDENTITY: return "web identity";
	case CREDS_ECS: return "ECS container";
	case CREDS_IMDS: return "instance metadata (IMDSv2)";
	default: return "none";
	}
}

static const char *env(const char *name)
{
	const char *v = getenv(name);

	return v && *v ? v : NULL;
}

static int copy_str(char *dst, size_t n, const char *src, size_t len)
{
	if (len >= n)
		return -ENAMETOOLONG;
	memcpy(dst, src, len);
	dst[len] = 0;
	return 0;
}

static void wipe_free(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

/* Read a whole small file; NULL (errno set) if missing or too big.  Trailing
 * blanks (a token file's newline) are cut. */
static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t n;

	if (!f)
		return NULL;
	if (!(buf = malloc(CREDS_FILE_MAX + 1)))
		goto out;
	n = fread(buf, 1, CREDS_FILE_MAX + 1, f);
	if (n > CREDS_FILE_MAX) {
		free(buf);
		buf = NULL;
		errno = EFBIG;
		goto out;
	}
	while (n && isspace((unsigned char)buf[n - 1]))
		n--;
	buf[n] = 0;
out:
	fclose(f);
	return buf;
}

/* ----- parsers ----------------------------------------------------------- */

/* Percent-encode everything but RFC 3986's unreserved characters. */
static char *form_encode(const char *src)
{
	static const char hex[] = "0123456789ABCDEF";
	char *out = malloc(3 * strlen(src) + 1), *o = out;

	if (!out)
		return NULL;
	for (const unsigned char *p = (const unsigned char *)src; *p; p++) {
		if (isalnum(*p) || *p == '-' || *p == '.' || *p == '_' || *p == '~') {
			*o++ = (char)*p;
		} else {
			*o++ = '%';
			*o++ = hex[*p >> 4];
			*o++ = hex[*p & 15];
		}
	}
	*o = 0;
	return out;
}

/* Decode XML text (the five entities, decimal and hex references) into
 * dst; 0, -EINVAL or -ENAMETOOLONG. */
static int xml_decode(const char *src, size_t n, char *dst, size_t dstlen)
{
	static const struct { const char *name; char c; } ents[] = {
		{ "amp;", '&' }, { "lt;", '<' }, { "gt;", '>' }, { "quot;", '"' }, { "apos;", '\'' },
	};
	size_t o = 0, i = 0;

	while (i < n) {
		unsigned long cp = 0;
		char b[4];
		size_t k, bl;

		if (src[i] != '&') {
			b[0] = src[i++];
			bl = 1;
			goto put;
		}
		for (k = 0; k < 5; k++) {
			size_t l = strlen(ents[k].name);

			if (n - i - 1 >= l && !memcmp(src + i + 1, ents[k].name, l)) {
				b[0] = ents[k].c;
				bl = 1;
				i += 1 + l;
				goto put;
			}
		}
		if (n - i < 4 || src[i + 1] != '#')
			return -EINVAL;
		{
			int hx = src[i + 2] == 'x' || src[i + 2] == 'X';
			size_t j = i + 2 + (size_t)hx, start = j;

			while (j < n && j - start < 8 && (hx ? isxdigit((unsigned char)src[j])
						      : isdigit((unsigned char)src[j]))) {
				cp = cp * (hx ? 16 : 10) + (unsigned long)(isdigit((unsigned char)src[j])
					? src[j] - '0' : tolower((unsigned char)src[j]) - 'a' + 10);
				j++;
			}
			if (j == start || j >= n || src[j] != ';' || cp == 0 || cp > 0x10ffff ||
			    (cp >= 0xd800 && cp < 0xe000))
				return -EINVAL;
			i = j + 1;
		}
		if (cp < 0x80) {
			b[0] = (char)cp;
			bl = 1;
		} else if (cp < 0x800) {
			b[0] = (char)(0xc0 | cp >> 6);
			b[1] = (char)(0x80 | (cp & 0x3f));
			bl = 2;
		} else if (cp < 0x10000) {
			b[0] = (char)(0xe0 | cp >> 12);
			b[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
			b[2] = (char)(0x80 | (cp & 0x3f));
			bl = 3;
		} else {
			b[0] = (char)(0xf0 | cp >> 18);
			b[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
			b[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
			b[3] = (char)(0x80 | (cp & 0x3f));
			bl = 4;
		}
put:
		if (o + bl >= dstlen)
			return -ENAMETOOLONG;
		memcpy(dst + o, b, bl);
		o += bl;
	}
	if (o >= dstlen)
		return -ENAMETOOLONG;
	dst[o] = 0;
	return 0;
}

int creds_ini_get(const char *text, const char *section, const char *key, char *out,
		  size_t outlen)
{
	char line[4096], *k, *v, *e;
	int in = 0;

	while (*text) {
		size_t n = strcspn(text, "\n");

		if (n >= sizeof(line))
			n = sizeof(line) - 1;
		memcpy(line, text, n);
		line[n] = 0;
		text += strcspn(text, "\n");
		if (*text)
			text++;
		k = line;
		while (isspace((unsigned char)*k))
			k++;
		e = k + strlen(k);
		while (e > k && isspace((unsigned char)e[-1]))
			*--e = 0;
		if (*k == '#' || *k == ';' || !*k)
			continue;
		if (*k == '[') {
			if (e[-1] != ']')
				continue;
			e[-1] = 0;
			k++;
			while (isspace((unsigned char)*k))
				k++;
			e = k + strlen(k);
			while (e > k && isspace((unsigned char)e[-1]))
				*--e = 0;
			in = !strcmp(k, section);
			continue;
		}
		if (!in || !(v = strchr(k, '=')))
			continue;
		e = v;
		*v++ = 0;
		while (e > k && isspace((unsigned char)e[-1]))
			*--e = 0;
		while (isspace((unsigned char)*v))
			v++;
		if (strcmp(k, key))
			continue;
		n = strlen(v);
		if (!n)
			continue;     /* "key =" sets nothing */
		if (n >= outlen) {
			explicit_bzero(line, sizeof(line));
			return -ENAMETOOLONG;
		}
		memcpy(out, v, n + 1);
		explicit_bzero(line, sizeof(line));
		return 0;
	}
	explicit_bzero(line, sizeof(line));
	return -ENOENT;
}

int creds_ini_has_section(const char *text, const char *section)
{
	/* a section is there when any line of it is: look for its header */
	for (const char *p = text; (p = strchr(p, '[')); p++) {
		const char *q = p + 1, *e;

		if (p != text && p[-1] != '\n' && !isspace((unsigned char)p[-1]))
			continue;
		while (*q == ' ' || *q == '\t')
			q++;
		e = q + strcspn(q, "]\n");
		if (*e != ']')
			continue;
		while (e > q && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if ((size_t)(e - q) == strlen(section) && !memcmp(q, section, (size_t)(e - q)))
			return 1;
	}
	return 0;
}


int creds_parse_time(const char *s, time_t *out)
{
	struct tm tm = { 0 };
	int n = 0, oh, om;
	long off = 0;
	const char *p;

	if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
		   &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &n) != 6 || n != 19)
		return -EINVAL;
	if (tm.tm_year < 1970 || tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 ||
	    tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60)
		return -EINVAL;
	p = s + n;
	if (*p == '.') {
		p++;
		if (!isdigit((unsigned char)*p))
			return -EINVAL;
		while (isdigit((unsigned char)*p))
			p++;
	}
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		if (!isdigit((unsigned char)p[1]) || !isdigit((unsigned char)p[2]) || p[3] != ':' ||
		    !isdigit((unsigned char)p[4]) || !isdigit((unsigned char)p[5]))
			return -EINVAL;
		oh = (p[1] - '0') * 10 + p[2] - '0';
		om = (p[4] - '0') * 10 + p[5] - '0';
		if (oh > 23 || om > 59)
			return -EINVAL;
		off = (oh * 60L + om) * 60L * (*p == '-' ? -1 : 1);
		p += 6;
	} else {
		return -EINVAL;
	}
	if (*p)
		return -EINVAL;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	*out = timegm(&tm) - off;
	return 0;
}

/* Text of the first <tag> element in [p, end); 0 or -ENOENT. */
static int xml_elem(const char *p, const char *end, const char *tag, const char **s, size_t *n)
{
	char open[64], close[64];
	const char *a, *b;

	snprintf(open, sizeof(open), "<%s>", tag);
	snprintf(close, sizeof(close), "</%s>", tag);
	if (!(a = memmem(p, (size_t)(end - p), open, strlen(open))))
		return -ENOENT;
	a += strlen(open);
	if (!(b = memmem(a, (size_t)(end - a), close, strlen(close))))
		return -ENOENT;
	*s = a;
	*n = (size_t)(b - a);
	return 0;
}

static int xml_text(const char *p, const char *end, const char *tag, char *dst, size_t dstlen)
{
	const char *s;
	size_t n;

	if (xml_elem(p, end, tag, &s, &n))
		return -ENOENT;
	while (n && isspace((unsigned char)*s)) {
		s++;
		n--;
	}
	while (n && isspace((unsigned char)s[n - 1]))
		n--;
	return xml_decode(s, n, dst, dstlen) ? -EINVAL : 0;
}

int creds_parse_sts(const char *xml, struct aws_creds *c, char *code, size_t codelen,
		    char *msg, size_t msglen)
{
	const char *end = xml + strlen(xml), *cs, *ce;
	char when[64];
	size_t n;

	memset(c, 0, sizeof(*c));
	if (code && codelen)
		code[0] = 0;
	if (msg && msglen)
		msg[0] = 0;
	if (strstr(xml, "<ErrorResponse")) {
		if (code && codelen)
			xml_text(xml, end, "Code", code, codelen);
		if (msg && msglen)
			xml_text(xml, end, "Message", msg, msglen);
		return -EACCES;
	}
	if (!strstr(xml, "<AssumeRoleWithWebIdentityResponse") ||
	    xml_elem(xml, end, "Credentials", &cs, &n))
		return -EIO;
	ce = cs + n;
	if (xml_text(cs, ce, "AccessKeyId", c->key, sizeof(c->key)) ||
	    xml_text(cs, ce, "SecretAccessKey", c->secret, sizeof(c->secret)) ||
	    xml_text(cs, ce, "SessionToken", c->token, sizeof(c->token)) ||
	    xml_text(cs, ce, "Expiration", when, sizeof(when)) ||
	    creds_parse_time(when, &c->expiration) || !c->key[0] || !c->secret[0]) {
		explicit_bzero(c, sizeof(*c));
		return -EIO;
	}
	return 0;
}

/* A minimal JSON reader for one flat object of strings (other values are
 * skipped, nested ones included). */
static const char *json_ws(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	return p;
}

/* Parse the string at p (at its '"') into dst (NULL: skip); returns the
 * position after it, or NULL when malformed or too long. */
static const char *json_string(const char *p, char *dst, size_t dstlen)
{
	size_t o = 0;

	if (*p++ != '"')
		return NULL;
	for (;;) {
		unsigned long cp;
		char b[4];
		size_t k;

		if (!*p || (unsigned char)*p < 0x20)
			return NULL;
		if (*p == '"')
			break;
		if (*p != '\\') {
			b[0] = *p++;
			k = 1;
		} else {
			p++;
			switch (*p) {
			case '"': case '\\': case '/': b[0] = *p; break;
			case 'b': b[0] = '\b'; break;
			case 'f': b[0] = '\f'; break;
			case 'n': b[0] = '\n'; break;
			case 'r': b[0] = '\r'; break;
			case 't': b[0] = '\t'; break;
			case 'u':
				cp = 0;
				for (int i = 1; i <= 4; i++) {
					if (!isxdigit((unsigned char)p[i]))
						return NULL;
					cp = cp * 16 + (unsigned long)(isdigit((unsigned char)p[i]) ? p[i] - '0'
						: tolower((unsigned char)p[i]) - 'a' + 10);
				}
				p += 4;
				if (cp == 0 || (cp >= 0xd800 && cp < 0xe000))
					return NULL;   /* none of our fields needs these */
				if (cp < 0x80) {
					b[0] = (char)cp;
					k = 1;
				} else if (cp < 0x800) {
					b[0] = (char)(0xc0 | cp >> 6);
					b[1] = (char)(0x80 | (cp & 0x3f));
					k = 2;
				} else {
					b[0] = (char)(0xe0 | cp >> 12);
					b[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
					b[2] = (char)(0x80 | (cp & 0x3f));
					k = 3;
				}
				p++;
				goto put;
			default:
				return NULL;
			}
			p++;
			k = 1;
		}
put:
		if (dst) {
			if (o + k >= dstlen)
				return NULL;
			memcpy(dst + o, b, k);
		}
		o += k;
	}
	if (dst)
		dst[o] = 0;
	return p + 1;
}

/* Skip one value (any kind) at p; NULL when malformed or nested too deep. */
static const char *json_skip(const char *p, int depth)
{
	p = json_ws(p);
	if (depth > 32)
		return NULL;
	if (*p == '"')
		return json_string(p, NULL, 0);
	if (*p == '{' || *p == '[') {
		char close = *p == '{' ? '}' : ']';

		p = json_ws(p + 1);
		if (*p == close)
			return p + 1;
		for (;;) {
			if (close == '}') {
				if (!(p = json_string(json_ws(p), NULL, 0)))
					return NULL;
				p = json_ws(p);
				if (*p++ != ':')
					return NULL;
			}
			if (!(p = json_skip(p, depth + 1)))
				return NULL;
			p = json_ws(p);
			if (*p == close)
				return p + 1;
			if (*p++ != ',')
				return NULL;
		}
	}
	if (!strncmp(p, "true", 4))
		return p + 4;
	if (!strncmp(p, "false", 5))
		return p + 5;
	if (!strncmp(p, "null", 4))
		return p + 4;
	if (*p == '-' || isdigit((unsigned char)*p)) {
		p++;
		while (isdigit((unsigned char)*p) || *p == '.' || *p == 'e' || *p == 'E' ||
		       *p == '+' || *p == '-')
			p++;
		return p;
	}
	return NULL;
}

int creds_parse_json(const char *json, struct aws_creds *c, char *code, size_t codelen)
{
	const char *p = json_ws(json);
	char name[64], when[64] = "", status[64] = "";
	int have_code = 0, rc = -EIO;

	memset(c, 0, sizeof(*c));
	if (code && codelen)
		code[0] = 0;
	if (*p++ != '{')
		return -EIO;
	p = json_ws(p);
	if (*p == '}')
		goto check;
	for (;;) {
		char *dst = NULL;
		size_t dstlen = 0;

		if (!(p = json_string(json_ws(p), name, sizeof(name))))
			goto bad;
		p = json_ws(p);
		if (*p++ != ':')
			goto bad;
		p = json_ws(p);
		if (!strcmp(name, "AccessKeyId"))
			dst = c->key, dstlen = sizeof(c->key);
		else if (!strcmp(name, "SecretAccessKey"))
			dst = c->secret, dstlen = sizeof(c->secret);
		else if (!strcmp(name, "Token"))
			dst = c->token, dstlen = sizeof(c->token);
		else if (!strcmp(name, "Expiration"))
			dst = when, dstlen = sizeof(when);
		else if (!strcmp(name, "Code"))
			dst = status, dstlen = sizeof(status), have_code = 1;
		if (dst && *p == '"')
			p = json_string(p, dst, dstlen);
		else if (dst && !strncmp(p, "null", 4))
			p += 4;
		else if (dst)
			goto bad;
		else
			p = json_skip(p, 0);
		if (!p)
			goto bad;
		p = json_ws(p);
		if (*p == '}')
			break;
		if (*p++ != ',')
			goto bad;
	}
	if (*json_ws(p + 1))
		goto bad;
check:
	if (have_code && strcmp(status, "Success")) {
		if (code && codelen)
			snprintf(code, codelen, "%s", status);
		rc = -EACCES;
		goto bad;
	}
	if (!c->key[0] || !c->secret[0])
		goto bad;
	if (when[0] && creds_parse_time(when, &c->expiration))
		goto bad;
	return 0;
bad:
	explicit_bzero(c, sizeof(*c));
	return rc;
}

/* Host of an http(s) URL into host (brackets kept for IPv6). */
static int url_host(const char *url, char *host, size_t hlen, int *https)
{
	const char *h;
	size_t n;

	if (!strncmp(url, "https://", 8))
		*https = 1, h = url + 8;
	else if (!strncmp(url, "http://", 7))
		*https = 0, h = url + 7;
	else
		return -EINVAL;
	if (*h == '[')
		n = strcspn(h, "]") + 1;
	else
		n = strcspn(h, ":/?#");
	if (!n || n >= hlen || (strchr(h, '@') && strchr(h, '@') < h + strcspn(h, "/")))
		return -EINVAL;
	memcpy(host, h, n);
	host[n] = 0;
	return 0;
}

static int host_loopback(const char *host)
{
	return !strcmp(host, "localhost") || !strncmp(host, "127.", 4) || !strcmp(host, "[::1]");
}

int creds_ecs_url_allowed(const char *url)
{
	char host[256];
	int https;

	if (url_host(url, host, sizeof(host), &https))
		return 0;
	if (https)
		return 1;
	return host_loopback(host) || !strcmp(host, "169.254.170.2") ||
	       !strcmp(host, "169.254.170.23") || !strcasecmp(host, "[fd00:ec2::23]");
}

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

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init_once(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
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
	pthread_once(&curl_once, curl_init_once);
	if (curl_init_rc != CURLE_OK || !(h = curl_easy_init())) {
		errf(err, errlen, "cannot start libcurl");
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
			errf(err, errlen, "the answer of %s is over %u KiB", url,
				 CREDS_BODY_MAX >> 10);
		else
			errf(err, errlen, "no answer from %s: %s", url,
				 ebuf[0] ? ebuf : curl_easy_strerror(rc));
		return rc == CURLE_OUT_OF_MEMORY ? -ENOMEM : -EIO;
	}
	if (!b.buf && !(b.buf = calloc(1, 1)))
		return -ENOMEM;
	*resp = b.buf;
	return 0;
}

/* ----- sources ----------------------------------------------------------- */

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

static void source_clear(struct source *s)
{
	wipe_free(s->auth);
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
	char *tok = slurp(s->token_file), *form = NULL, *resp = NULL, *t = NULL;
	char *arn = NULL, *sess = NULL, code[128], msg[256];
	struct curl_slist *h = NULL;
	long status;
	size_t n;
	int rc;

	if (!tok) {
		errf(err, errlen, "cannot read the web identity token file %s: %s",
			 s->token_file, strerror(errno));
		return -EACCES;
	}
	if (!tok[0]) {
		free(tok);
		errf(err, errlen, "the web identity token file %s is empty", s->token_file);
		return -EACCES;
	}
	rc = -ENOMEM;
	if (!(t = form_encode(tok)) || !(arn = form_encode(s->role_arn)) ||
	    !(sess = form_encode(s->session)))
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
		errf(err, errlen, "STS %s refused AssumeRoleWithWebIdentity for %s: HTTP %ld %s%s%s",
			 s->sts_url, s->role_arn, status, code[0] ? code : "", msg[0] ? ": " : "", msg);
		rc = status >= 500 ? -EIO : -EACCES;
	} else {
		char sn[128];

		snippet(resp, sn, sizeof(sn));
		errf(err, errlen, "STS %s: HTTP %ld, not an AssumeRoleWithWebIdentityResponse (%s)",
			 s->sts_url, status, sn);
		rc = -EIO;
	}
	explicit_bzero(c, sizeof(*c));
out:
	curl_slist_free_all(h);
	wipe_free(tok);
	wipe_free(t);
	wipe_free(form);
	free(arn);
	free(sess);
	wipe_free(resp);
	if (rc == -ENOMEM)
		errf(err, errlen, "out of memory");
	return rc;
}

static int ecs_fetch(struct source *s, struct aws_creds *c, char *err, size_t errlen)
{
	struct curl_slist *h = NULL;
	char *resp = NULL, *auth = NULL, *hdr = NULL, code[64];
	long status;
	int rc;

	if (s->auth_file[0]) {
		if (!(auth = slurp(s->auth_file))) {
			errf(err, errlen, "cannot read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE %s: %s",
				 s->auth_file, strerror(errno));
			return -EACCES;
		}
	} else if (s->auth && !(auth = strdup(s->auth))) {
		return -ENOMEM;
	}
	if (auth) {
		size_t n = strlen(auth) + 32;

		if (strpbrk(auth, "\r\n")) {
			wipe_free(auth);
			errf(err, errlen, "the ECS authorization token holds a line break");
			return -EACCES;
		}
		if (!(hdr = malloc(n))) {
			wipe_free(auth);
			return -ENOMEM;
		}
		snprintf(hdr, n, "Authorization: %s", auth);
		wipe_free(auth);
		if (!(h = curl_slist_append(NULL, hdr))) {
			wipe_free(hdr);
			return -ENOMEM;
		}
		wipe_free(hdr);
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
		errf(err, errlen, "ECS credentials endpoint %s: HTTP %ld %s", s->url, status, sn);
		rc = status >= 500 ? -EIO : -EACCES;
	} else if ((rc = creds_parse_json(resp, c, code, sizeof(code)))) {
		errf(err, errlen, "ECS credentials endpoint %s: %s%s", s->url,
			 rc == -EACCES ? "Code " : "the answer is not credentials JSON",
			 rc == -EACCES ? code : "");
	}
	wipe_free(resp);
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
		errf(err, errlen, "instance metadata %s: HTTP %ld for an IMDSv2 token", url,
			 status);
		wipe_free(resp);
		return status == 403 ? -EACCES : -EIO;
	}
	snprintf(hdr, sizeof(hdr), "X-aws-ec2-metadata-token: %s", resp);
	wipe_free(resp);
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
		errf(err, errlen, "instance metadata %s: no IAM role is attached to this instance",
			 s->imds);
		rc = -EACCES;
		goto out;
	}
	snprintf(role, sizeof(role), "%.*s", (int)strcspn(resp, "\r\n"), resp);
	if (status != 200 || !role[0] || strpbrk(role, "/?# ") || role[0] == '.') {
		errf(err, errlen, "instance metadata %s: HTTP %ld, no role name", url, status);
		rc = status == 401 || status == 403 ? -EACCES : -EIO;
		goto out;
	}
	wipe_free(resp);
	resp = NULL;
	/* 3. its credentials */
	snprintf(url, sizeof(url), "%s/latest/meta-data/iam/security-credentials/%s", s->imds,
		 role);
	if ((rc = http_call("GET", url, h, NULL, CREDS_IMDS_CONNECT_S, CREDS_IMDS_TIMEOUT_S, 1,
			    &status, &resp, err, errlen)))
		goto out;
	if (status != 200) {
		errf(err, errlen, "instance metadata %s: HTTP %ld", url, status);
		rc = status == 401 || status == 403 || status == 404 ? -EACCES : -EIO;
	} else if ((rc = creds_parse_json(resp, c, code, sizeof(code)))) {
		errf(err, errlen, "instance metadata %s: %s%s", url,
			 rc == -EACCES ? "Code " : "the answer is not credentials JSON",
			 rc == -EACCES ? code : "");
	} else {
		errf(s->what, sizeof(s->what), "%s, role %s", s->imds, role);
	}
out:
	explicit_bzero(hdr, sizeof(hdr));
	if (h) {
		explicit_bzero(h->data, strlen(h->data));
		curl_slist_free_all(h);
	}
	wipe_free(resp);
	if (rc == -ENOMEM)
		errf(err, errlen, "out of memory");
	return rc;
}

static int source_fetch(struct source *s, struct aws_creds *c, char *err, size_t errlen)
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
		errf(err, errlen, "%s credentials cannot be fetched again",
			 creds_source_name(s->kind));
		return -EINVAL;
	}
	if (!rc && (!c->key[0] || !c->secret[0])) {
		errf(err, errlen, "%s: no key pair in the answer", s->what);
		rc = -EIO;
	}
	return rc;
}

/* ----- the chain --------------------------------------------------------- */

/* Append a "; "-separated reason to the list of places looked at. */
static void note(char *buf, size_t n, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void note(char *buf, size_t n, const char *fmt, ...)
{
	size_t l = strlen(buf);
	va_list ap;

	if (l + 3 >= n)
		return;
	if (l) {
		strcpy(buf + l, "; ");
		l += 2;
	}
	va_start(ap, fmt);
	vsnprintf(buf + l, n - l, fmt, ap);
	va_end(ap);
}

static int env_true(const char *name)
{
	const char *v = env(name);

	return v && (!strcasecmp(v, "true") || !strcmp(v, "1"));
}

static void sts_endpoint(const char *region, char *out, size_t n)
{
	const char *u = env("AWS_ENDPOINT_URL_STS") ? env("AWS_ENDPOINT_URL_STS")
		      : env("AWS_ENDPOINT_URL");
	size_t l;

	if (!region || !*region)
		region = "us-east-1";
	if (u)
		snprintf(out, n, "%s", u);
	else
		snprintf(out, n, "https://sts.%s.amazonaws.com%s", region,
			 strncmp(region, "cn-", 3) ? "" : ".cn");
	l = strlen(out);
	while (l > 8 && out[l - 1] == '/')
		out[--l] = 0;
	if (l + 1 < n)
		strcat(out, "/");
}

static void web_identity_source(struct source *s, const char *token_file, const char *arn,
				const char *session, const char *region)
{
	s->kind = CREDS_WEB_IDENTITY;
	snprintf(s->token_file, sizeof(s->token_file), "%s", token_file);
	snprintf(s->role_arn, sizeof(s->role_arn), "%s", arn);
	if (session && *session)
		snprintf(s->session, sizeof(s->session), "%s", session);
	else
		snprintf(s->session, sizeof(s->session), "epochfs-%lld", (long long)time(NULL));
	sts_endpoint(region, s->sts_url, sizeof(s->sts_url));
	errf(s->what, sizeof(s->what), "role %s, token file %s, STS %s", s->role_arn,
		 s->token_file, s->sts_url);
}

/* Config-file keys of the profile that this code cannot use. */
static const char *const unsupported[] = {
	"credential_process", "source_profile", "credential_source", "sso_session",
	"sso_start_url",
};

/* Step 2: the profile.  1 with c filled (static keys) or s set (a web
 * identity to ask); 0 when the profile gives nothing; -errno to stop. */
static int from_profile(struct aws_creds *c, struct source *s, const char *region,
			char *looked, size_t looklen, char *err, size_t errlen)
{
	const char *profile = env("AWS_PROFILE") ? env("AWS_PROFILE") : "default";
	const char *home = env("HOME") ? env("HOME") : "/";
	char cpath[PATH_MAX], fpath[PATH_MAX], sec[300], v[PATH_MAX], arn[512], sess[128];
	char *text = NULL;
	int found = 0, rc = 0;

	if (env("AWS_SHARED_CREDENTIALS_FILE"))
		snprintf(cpath, sizeof(cpath), "%s", env("AWS_SHARED_CREDENTIALS_FILE"));
	else
		snprintf(cpath, sizeof(cpath), "%s/.aws/credentials", home);
	if (env("AWS_CONFIG_FILE"))
		snprintf(fpath, sizeof(fpath), "%s", env("AWS_CONFIG_FILE"));
	else
		snprintf(fpath, sizeof(fpath), "%s/.aws/config", home);

	/* the credentials file: [NAME] */
	if ((text = slurp(cpath))) {
		found = creds_ini_has_section(text, profile);
		if (!creds_ini_get(text, profile, "aws_access_key_id", c->key, sizeof(c->key)) &&
		    !creds_ini_get(text, profile, "aws_secret_access_key", c->secret,
				   sizeof(c->secret))) {
			if (creds_ini_get(text, profile, "aws_session_token", c->token,
					  sizeof(c->token)))
				c->token[0] = 0;
			errf(s->what, sizeof(s->what), "profile '%s' in %s", profile, cpath);
			rc = 1;
		} else {
			explicit_bzero(c, sizeof(*c));
		}
		wipe_free(text);
		if (rc)
			return rc;
	}
	/* the config file: [profile NAME], [default] */
	if (strcmp(profile, "default"))
		snprintf(sec, sizeof(sec), "profile %s", profile);
	else
		snprintf(sec, sizeof(sec), "default");
	if ((text = slurp(fpath))) {
		found |= creds_ini_has_section(text, sec);
		if (!creds_ini_get(text, sec, "aws_access_key_id", c->key, sizeof(c->key)) &&
		    !creds_ini_get(text, sec, "aws_secret_access_key", c->secret,
				   sizeof(c->secret))) {
			if (creds_ini_get(text, sec, "aws_session_token", c->token, sizeof(c->token)))
				c->token[0] = 0;
			errf(s->what, sizeof(s->what), "profile '%s' in %s", profile, fpath);
			rc = 1;
		} else if (explicit_bzero(c, sizeof(*c)),
			   !creds_ini_get(text, sec, "web_identity_token_file", v, sizeof(v))) {
			if (creds_ini_get(text, sec, "role_arn", arn, sizeof(arn))) {
				errf(err, errlen, "profile '%s' in %s has web_identity_token_file"
					 " but no role_arn", profile, fpath);
				rc = -EACCES;
			} else {
				if (creds_ini_get(text, sec, "role_session_name", sess, sizeof(sess)))
					sess[0] = 0;
				web_identity_source(s, v, arn, sess, region);
				snprintf(s->what + strlen(s->what), sizeof(s->what) - strlen(s->what),
					 " (profile '%s' in %s)", profile, fpath);
				rc = 1;
			}
		} else {
			for (size_t i = 0; i < sizeof(unsupported) / sizeof(*unsupported); i++)
				if (!creds_ini_get(text, sec, unsupported[i], v, sizeof(v))) {
					log_warn("AWS profile '%s' in %s uses %s, which epochfs does"
						 " not support; looking further", profile, fpath,
						 unsupported[i]);
					break;
				}
		}
		wipe_free(text);
		if (rc)
			return rc;
	}
	if (env("AWS_PROFILE") && !found) {
		errf(err, errlen, "AWS_PROFILE '%s' is neither in %s nor in %s", profile, cpath,
			 fpath);
		return -EACCES;
	}
	note(looked, looklen, "no key pair for profile '%s' in %s or %s", profile, cpath, fpath);
	return 0;
}

/* Step 4: set s when an ECS variable is set.  0 (not configured), 1, or
 * -EACCES (a FULL_URI that is not allowed). */
static int ecs_source(struct source *s, char *err, size_t errlen)
{
	const char *rel = env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
	const char *full = env("AWS_CONTAINER_CREDENTIALS_FULL_URI");

	if (rel) {
		snprintf(s->url, sizeof(s->url), "%s%s%s", CREDS_ECS_DEFAULT,
			 rel[0] == '/' ? "" : "/", rel);
	} else if (full) {
		if (!creds_ecs_url_allowed(full)) {
			errf(err, errlen, "AWS_CONTAINER_CREDENTIALS_FULL_URI %s: plain http is"
				 " allowed only to a loopback address, 169.254.170.2 or"
				 " 169.254.170.23", full);
			return -EACCES;
		}
		snprintf(s->url, sizeof(s->url), "%s", full);
	} else {
		return 0;
	}
	s->kind = CREDS_ECS;
	if (env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"))
		snprintf(s->auth_file, sizeof(s->auth_file), "%s",
			 env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"));
	else if (env("AWS_CONTAINER_AUTHORIZATION_TOKEN") &&
		 !(s->auth = strdup(env("AWS_CONTAINER_AUTHORIZATION_TOKEN"))))
		return -ENOMEM;
	errf(s->what, sizeof(s->what), "%s", s->url);
	return 1;
}

/* Walk the chain: 0 with c filled and s describing the source; -errno with
 * err. */
static int chain(const struct creds_options *o, struct aws_creds *c, struct source *s,
		 char *err, size_t errlen)
{
	char looked[2048] = "";
	const char *wif = env("AWS_WEB_IDENTITY_TOKEN_FILE"), *arn = env("AWS_ROLE_ARN");
	int rc;

	memset(c, 0, sizeof(*c));
	err[0] = 0;
	/* 1. environment */
	if (env("AWS_ACCESS_KEY_ID") && env("AWS_SECRET_ACCESS_KEY")) {
		s->kind = CREDS_ENV;
		if (copy_str(c->key, sizeof(c->key), env("AWS_ACCESS_KEY_ID"),
			     strlen(env("AWS_ACCESS_KEY_ID"))) ||
		    copy_str(c->secret, sizeof(c->secret), env("AWS_SECRET_ACCESS_KEY"),
			     strlen(env("AWS_SECRET_ACCESS_KEY"))) ||
		    (env("AWS_SESSION_TOKEN") &&
		     copy_str(c->token, sizeof(c->token), env("AWS_SESSION_TOKEN"),
			      strlen(env("AWS_SESSION_TOKEN"))))) {
			errf(err, errlen, "an AWS_* credential variable is too long");
			explicit_bzero(c, sizeof(*c));
			return -EACCES;
		}
		errf(s->what, sizeof(s->what), "AWS_ACCESS_KEY_ID%s",
			 c->token[0] ? ", AWS_SESSION_TOKEN" : "");
		return 0;
	}
	if (env("AWS_ACCESS_KEY_ID") || env("AWS_SECRET_ACCESS_KEY"))
		log_warn("only one of AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY is set;"
			 " looking further");
	note(looked, sizeof(looked), "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY not set");

	/* 2. the profile */
	if ((rc = from_profile(c, s, o->region, looked, sizeof(looked), err, errlen)) < 0)
		return rc;
	if (rc == 1 && s->kind != CREDS_WEB_IDENTITY) {
		s->kind = CREDS_PROFILE;
		return 0;
	}
	/* 3. web identity from the environment */
	if (rc == 0 && wif && arn) {
		web_identity_source(s, wif, arn, env("AWS_ROLE_SESSION_NAME"), o->region);
	} else if (rc == 0) {
		if (wif || arn)
			log_warn("%s is set but not %s: no web identity", wif ?
				 "AWS_WEB_IDENTITY_TOKEN_FILE" : "AWS_ROLE_ARN",
				 wif ? "AWS_ROLE_ARN" : "AWS_WEB_IDENTITY_TOKEN_FILE");
		note(looked, sizeof(looked), "AWS_WEB_IDENTITY_TOKEN_FILE/AWS_ROLE_ARN not set");
	}
	/* 4. ECS */
	if (s->kind == CREDS_NONE) {
		if ((rc = ecs_source(s, err, errlen)) < 0)
			return rc;
		if (!rc)
			note(looked, sizeof(looked), "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI/"
			     "AWS_CONTAINER_CREDENTIALS_FULL_URI not set");
	}
	if (s->kind != CREDS_NONE) {
		/* a configured source: its failure ends the search */
		char why[1024];

		if ((rc = source_fetch(s, c, why, sizeof(why)))) {
			errf(err, errlen, "AWS credentials from %s (%s) failed: %s",
				 creds_source_name(s->kind), s->what, why);
			return rc;
		}
		return 0;
	}
	/* 5. IMDS */
	if (env_true("AWS_EC2_METADATA_DISABLED")) {
		note(looked, sizeof(looked), "instance metadata disabled by AWS_EC2_METADATA_DISABLED");
	} else {
		char why[1024];
		const char *ep = env("AWS_EC2_METADATA_SERVICE_ENDPOINT");
		const char *mode = env("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE");
		size_t l;

		if (!ep)
			ep = mode && !strcasecmp(mode, "IPv6") ? "http://[fd00:ec2::254]"
							      : CREDS_IMDS_DEFAULT;
		s->kind = CREDS_IMDS;
		snprintf(s->imds, sizeof(s->imds), "%s", ep);
		l = strlen(s->imds);
		while (l && s->imds[l - 1] == '/')
			s->imds[--l] = 0;
		errf(s->what, sizeof(s->what), "%s", s->imds);
		if (!(rc = source_fetch(s, c, why, sizeof(why))))
			return 0;
		if (rc == -ENOMEM)
			return rc;
		note(looked, sizeof(looked), "%s", why);
		s->kind = CREDS_NONE;
	}
	errf(err, errlen, "no AWS credentials (%s); or use --no-sign for a public bucket",
		 looked);
	return -EACCES;
}

/* ----- the provider ------------------------------------------------------ */

struct creds_provider {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t thread;
	int have_thread, stopping;      /* stopping: guarded by lock */
	struct aws_creds cur;           /* guarded by lock */
	char *userpwd, *tokhdr;         /* from cur, guarded by lock */
	uint64_t generation;            /* guarded by lock */
	struct source src;              /* the refresh thread's */
	unsigned margin_s, min_retry_s;
};

static void fmt_time(time_t t, char *buf, size_t n)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static const char *key_tail(const struct aws_creds *c)
{
	size_t l = strlen(c->key);

	return l > 4 ? c->key + l - 4 : "";
}

/* Build the strings for c; swap them in under the lock. */
static int install(struct creds_provider *p, struct aws_creds *c)
{
	size_t n = strlen(c->key) + strlen(c->secret) + 2;
	char *up = malloc(n), *th = NULL, *oup, *oth;

	if (!up)
		return -ENOMEM;
	snprintf(up, n, "%s:%s", c->key, c->secret);
	if (c->token[0]) {
		n = strlen(c->token) + 32;
		if (!(th = malloc(n))) {
			wipe_free(up);
			return -ENOMEM;
		}
		snprintf(th, n, "x-amz-security-token: %s", c->token);
	}
	pthread_mutex_lock(&p->lock);
	oup = p->userpwd;
	oth = p->tokhdr;
	p->userpwd = up;
	p->tokhdr = th;
	p->cur = *c;
	p->generation++;
	pthread_mutex_unlock(&p->lock);
	wipe_free(oup);
	wipe_free(oth);
	explicit_bzero(c, sizeof(*c));
	return 0;
}

static void *refresher(void *arg)
{
	struct creds_provider *p = arg;
	unsigned failures = 0;
	time_t last = time(NULL);

	pthread_mutex_lock(&p->lock);
	while (!p->stopping) {
		time_t exp = p->cur.expiration, now = time(NULL), due;
		struct timespec ts = { 0 };
		struct aws_creds c;
		char err[1024], when[32];
		int rc;

		if (failures) {
			unsigned back = p->min_retry_s << (failures < 4 ? failures - 1 : 3);

			due = last + (time_t)back;
			/* never wait past the expiry while the old ones still work */
			if (exp > now && due > exp - 1 && exp - 1 > now)
				due = exp - 1;
		} else {
			due = exp - (time_t)p->margin_s;
			if (due < last + (time_t)p->min_retry_s)
				due = last + (time_t)p->min_retry_s;
		}
		if (now < due) {
			ts.tv_sec = due;
			pthread_cond_timedwait(&p->cond, &p->lock, &ts);
			continue;
		}
		pthread_mutex_unlock(&p->lock);
		last = time(NULL);
		rc = source_fetch(&p->src, &c, err, sizeof(err));
		if (!rc) {
			fmt_time(c.expiration, when, sizeof(when));
			log_info("AWS credentials from %s (%s) refreshed: key ...%s, expire %s",
				 creds_source_name(p->src.kind), p->src.what, key_tail(&c),
				 c.expiration ? when : "never");
			if (install(p, &c))
				rc = -ENOMEM;
			else
				failures = 0;
		}
		if (rc) {
			explicit_bzero(&c, sizeof(c));
			failures++;
			fmt_time(exp, when, sizeof(when));
			if (rc == -ENOMEM)
				snprintf(err, sizeof(err), "out of memory");
			if (exp > time(NULL))
				log_warn("refreshing AWS credentials from %s failed (%s); the current"
					 " ones expire %s, trying again", creds_source_name(p->src.kind),
					 err, when);
			else
				log_err("refreshing AWS credentials from %s failed (%s); the current"
					" ones expired %s, requests will be refused until a refresh"
					" works", creds_source_name(p->src.kind), err, when);
		}
		pthread_mutex_lock(&p->lock);
		if (!p->cur.expiration)
			break;    /* the source now gives lasting credentials */
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

int creds_resolve(const struct creds_options *o, struct creds_provider **out,
		  char *err, size_t errlen)
{
	static const struct creds_options none = { 0 };
	struct creds_provider *p;
	struct aws_creds c;
	char when[32];
	int rc;

	*out = NULL;
	if (!o)
		o = &none;
	if (!(p = calloc(1, sizeof(*p)))) {
		errf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	p->margin_s = o->margin_s ? o->margin_s : CREDS_MARGIN_S;
	p->min_retry_s = o->min_retry_s ? o->min_retry_s : CREDS_MIN_RETRY_S;
	if (!o->min_retry_s && env("EPOCHFS_CREDS_MIN_RETRY_S") &&
	    atoi(env("EPOCHFS_CREDS_MIN_RETRY_S")) > 0 && atoi(env("EPOCHFS_CREDS_MIN_RETRY_S")) <= 3600)
		p->min_retry_s = (unsigned)atoi(env("EPOCHFS_CREDS_MIN_RETRY_S"));   /* the tests */
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	if ((rc = chain(o, &c, &p->src, err, errlen))) {
		log_err("%s", err);
		explicit_bzero(&c, sizeof(c));
		creds_destroy(p);
		return rc;
	}
	fmt_time(c.expiration, when, sizeof(when));
	log_info("AWS credentials from %s (%s): key ...%s%s%s%s", creds_source_name(p->src.kind),
		 p->src.what, key_tail(&c), c.token[0] ? ", with a session token" : "",
		 c.expiration ? ", expire " : "", c.expiration ? when : "");
	if ((rc = install(p, &c))) {
		errf(err, errlen, "out of memory");
		creds_destroy(p);
		return rc;
	}
	if (p->cur.expiration) {
		if (pthread_create(&p->thread, NULL, refresher, p)) {
			log_warn("cannot start the AWS credential refresh thread: the credentials"
				 " from %s will not be renewed", creds_source_name(p->src.kind));
		} else {
			p->have_thread = 1;
		}
	}
	*out = p;
	return 0;
}

enum creds_source creds_source(const struct creds_provider *p)
{
	return p ? p->src.kind : CREDS_NONE;
}

uint64_t creds_get(struct creds_provider *p, struct aws_creds *c)
{
	uint64_t g;

	pthread_mutex_lock(&p->lock);
	*c = p->cur;
	g = p->generation;
	pthread_mutex_unlock(&p->lock);
	return g;
}

int creds_apply(void *provider, void *easy, struct curl_slist **hdrs)
{
	struct creds_provider *p = provider;
	struct curl_slist *t = NULL;
	int rc = 0;

	pthread_mutex_lock(&p->lock);
	/* libcurl copies string options: nothing here outlives the lock */
	if (curl_easy_setopt(easy, CURLOPT_USERPWD, p->userpwd) != CURLE_OK)
		rc = -ENOMEM;
	else if (p->tokhdr && !(t = curl_slist_append(*hdrs, p->tokhdr)))
		rc = -ENOMEM;
	pthread_mutex_unlock(&p->lock);
	if (t)
		*hdrs = t;
	return rc;
}

void creds_destroy(struct creds_provider *p)
{
	if (!p)
		return;
	if (p->have_thread) {
		pthread_mutex_lock(&p->lock);
		p->stopping = 1;
		pthread_cond_signal(&p->cond);
		pthread_mutex_unlock(&p->lock);
		pthread_join(p->thread, NULL);
	}
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
	wipe_free(p->userpwd);
	wipe_free(p->tokhdr);
	source_clear(&p->src);
	explicit_bzero(&p->cur, sizeof(p->cur));
	free(p);
}
