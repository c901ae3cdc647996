/* SPDX-License-Identifier: MIT */
/* The directory listings the HTTP backend reads: nginx's JSON autoindex,
 * and the HTML pages of nginx's default autoindex, Apache's mod_autoindex
 * and python3 -m http.server.  Small strict parsers, not an HTML library:
 * each page format is recognized by its title and heading, entries are the
 * anchors after the heading whose href is a relative name (navigation,
 * column sorting and the parent link are not), and a size is taken only
 * where the page prints a date, a time and then the size, as nginx and
 * Apache do.  The captured pages they are tested on are in tests/data/. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "http_int.h"
#include "backends/base/util.h"

/* JSON string at *pp (after the opening quote) into out; *pp moves past the
 * closing quote.  0, 1 when it does not fit or holds \u0000 (still consumed),
 * -EIO when malformed. */
static int json_string(const char **pp, char *out, size_t outlen)
{
	const char *p = *pp;
	size_t o = 0;
	int lost = 0;

	for (;;) {
		unsigned c = (unsigned char)*p++;
		char enc[4];
		size_t n = 1;

		if (c == 0 || c < 0x20)
			return -EIO;
		if (c == '"')
			break;
		enc[0] = (char)c;
		if (c == '\\') {
			c = (unsigned char)*p++;
			switch (c) {
			case '"': case '\\': case '/': enc[0] = (char)c; break;
			case 'b': enc[0] = '\b'; break;
			case 'f': enc[0] = '\f'; break;
			case 'n': enc[0] = '\n'; break;
			case 'r': enc[0] = '\r'; break;
			case 't': enc[0] = '\t'; break;
			case 'u': {
				unsigned cp, lo;

				if (sscanf(p, "%4x", &cp) != 1 || strspn(p, "0123456789abcdefABCDEF") < 4)
					return -EIO;
				p += 4;
				if (cp >= 0xd800 && cp < 0xdc00 && p[0] == '\\' && p[1] == 'u' &&
				    strspn(p + 2, "0123456789abcdefABCDEF") >= 4 &&
				    sscanf(p + 2, "%4x", &lo) == 1 && lo >= 0xdc00 && lo < 0xe000) {
					cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
					p += 6;
				}
				if (cp == 0 || (cp >= 0xd800 && cp < 0xe000))
					lost = 1;
				n = utf8_put(cp, enc);
				break;
			}
			default:
				return -EIO;
			}
		}
		if (o + n >= outlen)
			lost = 1;
		else
			memcpy(out + o, enc, n), o += n;
	}
	out[o] = 0;
	*pp = p;
	return lost;
}

static void copy_trunc(char *dst, size_t n, const char *src)
{
	size_t l = strnlen(src, n - 1);

	memcpy(dst, src, l);
	dst[l] = 0;
}

static const char *ws(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
		p++;
	return p;
}

int http_parse_autoindex(const char *json, autoindex_fn fn, void *arg)
{
	const char *p = ws(json);
	char name[NAME_MAX * 4 + 1], type[32], mtime[64], k[16], v[NAME_MAX * 4 + 1];

	if (*p++ != '[')
		return -EIO;
	p = ws(p);
	if (*p == ']')
		return 0;
	for (;;) {
		unsigned long long size = 0;
		int name_lost = 0, rc;

		name[0] = type[0] = mtime[0] = 0;
		if (*p++ != '{')
			return -EIO;
		p = ws(p);
		while (*p != '}') {
			if (*p++ != '"' || json_string(&p, k, sizeof(k)) < 0)
				return -EIO;
			p = ws(p);
			if (*p++ != ':')
				return -EIO;
			p = ws(p);
			if (*p == '"') {
				p++;
				if ((rc = json_string(&p, v, sizeof(v))) < 0)
					return -EIO;
				if (!strcmp(k, "name")) {
					name_lost = rc;
					memcpy(name, v, sizeof(name));
				} else if (!strcmp(k, "type")) {
					copy_trunc(type, sizeof(type), v);
				} else if (!strcmp(k, "mtime")) {
					copy_trunc(mtime, sizeof(mtime), v);
				}
			} else if ((*p >= '0' && *p <= '9') || *p == '-') {
				char *end;

				errno = 0;
				if (*p == '-')
					return -EIO;
				size = strtoull(p, &end, 10);
				if (errno || end == p)
					return -EIO;
				if (strcmp(k, "size"))
					size = 0;
				p = end;
				while ((*p >= '0' && *p <= '9') || *p == '.' || *p == 'e' ||
				       *p == 'E' || *p == '+' || *p == '-')
					p++;
			} else if (!strncmp(p, "true", 4) || !strncmp(p, "null", 4)) {
				p += 4;
			} else if (!strncmp(p, "false", 5)) {
				p += 5;
			} else {
				return -EIO;
			}
			p = ws(p);
			if (*p == ',')
				p = ws(p + 1);
			else if (*p != '}')
				return -EIO;
		}
		if ((rc = fn(arg, name_lost ? NULL : name, type, size, mtime)))
			return rc;
		p = ws(p + 1);
		if (*p == ']')
			return 0;
		if (*p++ != ',')
			return -EIO;
		p = ws(p);
	}
}


/* Case-insensitive search for needle in s[0..n). */
static const char *find_ci(const char *s, const char *end, const char *needle)
{
	size_t l = strlen(needle);

	for (; s + l <= end; s++)
		if (!strncasecmp(s, needle, l))
			return s;
	return NULL;
}

/* Decode the HTML character references of an attribute value: the five
 * XML entities and numeric references, which is what the three servers
 * write.  0, -EINVAL (unknown entity, bad or NUL reference), -ENAMETOOLONG. */
static int html_unescape(const char *src, size_t n, char *dst, size_t dstlen)
{
	static const struct { const char *name; char c; } ents[] = {
		{ "amp;", '&' }, { "lt;", '<' }, { "gt;", '>' }, { "quot;", '"' }, { "apos;", '\'' },
	};
	size_t o = 0, i = 0;

	while (i < n) {
		unsigned long cp = 0;
		size_t k;

		if (src[i] != '&') {
			if (o + 1 >= dstlen)
				return -ENAMETOOLONG;
			dst[o++] = src[i++];
			continue;
		}
		for (k = 0; k < 5; k++) {
			size_t l = strlen(ents[k].name);

			if (n - i - 1 >= l && !memcmp(src + i + 1, ents[k].name, l)) {
				cp = (unsigned char)ents[k].c;
				i += 1 + l;
				break;
			}
		}
		if (k == 5) {
			int hex = i + 2 < n && src[i + 1] == '#' && (src[i + 2] == 'x' || src[i + 2] == 'X');
			size_t j = i + 2 + (size_t)hex, start = j;

			if (i + 1 >= n || src[i + 1] != '#')
				return -EINVAL;
			for (; j < n && cp <= 0x10ffff; j++) {
				int v = hex ? hex_val(src[j]) : isdigit((unsigned char)src[j]) ? src[j] - '0' : -1;

				if (v < 0)
					break;
				cp = cp * (hex ? 16 : 10) + (unsigned long)v;
			}
			if (j == start || j >= n || src[j] != ';' || cp == 0 || cp > 0x10ffff ||
			    (cp >= 0xd800 && cp < 0xe000))
				return -EINVAL;
			i = j + 1;
		}
		/* as UTF-8 (the pages are UTF-8; an href holds ASCII anyway) */
		if (o + 4 >= dstlen)
			return -ENAMETOOLONG;
		o += utf8_put(cp, dst + o);
	}
	if (o >= dstlen)
		return -ENAMETOOLONG;
	dst[o] = 0;
	return 0;
}

/* "01-Mar-2024" (nginx, old Apache) or "2024-03-01" (Apache 2.4). */
static int is_date(const char *t)
{
	int d, y, n = 0;
	char mon[4];

	if (sscanf(t, "%2d-%3[A-Za-z]-%4d%n", &d, mon, &y, &n) == 3 && !t[n])
		return 1;
	n = 0;
	return sscanf(t, "%4d-%2d-%2d%n", &y, &d, &d, &n) == 3 && !t[n];
}

static int is_time(const char *t)
{
	int h, m, n = 0;

	return sscanf(t, "%2d:%2d%n", &h, &m, &n) == 2 && !t[n];
}

/* The size an index line prints after an entry's anchor (text from `s` to
 * `end`, markup included): "DATE TIME SIZE ...", where SIZE is exact when
 * it is all digits ("12345"; "12K", "1.0M" and "-" are not).  1 when an
 * exact size was found. */
static int line_size(const char *s, const char *end, uint64_t *size)
{
	char text[512], *tok[3], *save = NULL;
	size_t o = 0;
	int nt = 0;

	while (s < end && o + 1 < sizeof(text)) {
		if (*s == '<') {            /* markup separates, like a blank */
			const char *gt = memchr(s, '>', (size_t)(end - s));

			if (!gt)
				break;
			s = gt + 1;
			text[o++] = ' ';
		} else if (!strncmp(s, "&nbsp;", 6) && s + 6 <= end) {
			s += 6;
			text[o++] = ' ';
		} else {
			text[o++] = *s++;
		}
	}
	text[o] = 0;
	for (char *t = strtok_r(text, " \t\r", &save); t && nt < 3; t = strtok_r(NULL, " \t\r", &save))
		tok[nt++] = t;
	if (nt < 3 || !is_date(tok[0]) || !is_time(tok[1]) || !*tok[2] ||
	    strspn(tok[2], "0123456789") != strlen(tok[2]) || strlen(tok[2]) > 19)
		return 0;
	*size = strtoull(tok[2], NULL, 10);
	return 1;
}

/* One anchor's href: pass it to fn as an entry, or skip it when it is not
 * a name in this directory (the parent, column sorting, absolute links). */
static int html_anchor(const char *href, size_t n, const char *rest, const char *eol,
		       html_entry_fn fn, void *arg)
{
	char raw[NAME_MAX * 12 + 8], name[NAME_MAX * 4 + 8];
	struct http_index_entry e = { .name = name };
	const char *p = raw;
	size_t l;

	if (html_unescape(href, n, raw, sizeof(raw))) {
		e.name = NULL;
		return fn(arg, &e);
	}
	/* absolute, a query (Apache's column sorting), a fragment */
	if (!*p || *p == '/' || strpbrk(p, "?#"))
		return 0;
	if (!strncmp(p, "./", 2))   /* Apache: a name with a colon */
		p += 2;
	else if (strchr(p, ':'))    /* a scheme: a link elsewhere */
		return 0;
	if (!*p || !strcmp(p, "../") || !strcmp(p, "..") || !strcmp(p, "./") || !strcmp(p, "."))
		return 0;
	if (key_urldecode(p, strlen(p), name, sizeof(name))) {
		e.name = NULL;
		return fn(arg, &e);
	}
	l = strlen(name);
	if (l && name[l - 1] == '/') {
		e.is_dir = 1;
		name[--l] = 0;
	}
	if (!l || strchr(name, '/'))
		e.name = NULL;
	else if (!e.is_dir)
		e.size_exact = line_size(rest, eol, &e.size);
	return fn(arg, &e);
}

int http_parse_html_index(const char *html, html_entry_fn fn, void *arg)
{
	const char *end = html + strlen(html), *t, *p, *h1;
	int rc;

	/* the page must say what it is: nginx and Apache title it "Index of
	 * /path", python's http.server "Directory listing for /path" */
	if (!(t = find_ci(html, end, "<title>")))
		return -EIO;
	t += 7;
	while (*t == ' ' || *t == '\n' || *t == '\r' || *t == '\t')
		t++;
	if (!strncmp(t, "Index of ", 9))
		h1 = find_ci(t, end, "<h1>Index of ");
	else if (!strncmp(t, "Directory listing for ", 22))
		h1 = find_ci(t, end, "<h1>Directory listing for ");
	else
		return -EIO;
	if (!h1 || !(p = find_ci(h1, end, "</h1>")))
		return -EIO;
	for (;;) {
		const char *a = find_ci(p, end, "<a"), *gt, *close, *q, *eol;
		char quote;

		if (!a)
			return 0;
		if (!isspace((unsigned char)a[2])) {    /* <abbr>, <address>... */
			p = a + 2;
			continue;
		}
		if (!(gt = memchr(a, '>', (size_t)(end - a))))
			return -EIO;
		q = find_ci(a, gt, " href=");
		p = gt + 1;
		if (!q)
			continue;
		q++;
		q += 5;
		quote = *q++;
		if (quote != '"' && quote != '\'')
			return -EIO;          /* the three servers always quote */
		{
			const char *qe = memchr(q, quote, (size_t)(gt - q));

			if (!qe)
				return -EIO;
			if (!(close = find_ci(p, end, "</a>")))
				return -EIO;
			eol = memchr(close, '\n', (size_t)(end - close));
			if (!eol)
				eol = end;
			if ((rc = html_anchor(q, (size_t)(qe - q), close + 4, eol, fn, arg)))
				return rc;
			p = close + 4;
		}
	}
}
