/* SPDX-License-Identifier: MIT */
/* The formats AWS credentials come in, parsed without a library: the shared
 * config and credentials files (INI with profiles), STS's XML answer, the
 * JSON of ECS and IMDS, their ISO-8601 times; and which ECS URLs may be
 * asked over plain http. */
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
#include "backends/base/log.h"
#include "backends/base/util.h"

/* ----- parsers ----------------------------------------------------------- */

/* Percent-encode everything but RFC 3986's unreserved characters. */
char *creds_form_encode(const char *src)
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
		bl = utf8_put(cp, b);
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
				k = utf8_put(cp, b);
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

