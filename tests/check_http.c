/* SPDX-License-Identifier: MIT */
/* Unit tests of the HTML directory listings the HTTP backend reads
 * (backends/http_index.c), on pages captured from the real servers
 * (tests/data/: nginx 1.22's autoindex with exact and with approximate
 * sizes, python 3.11's http.server) and on Apache 2.4 mod_autoindex pages
 * written from its documented markup (table, pre and plain list), all
 * listing the same directory of awkward names; then hostile pages; then
 * the walk itself against a scripted server: pages, HEADs for the sizes a
 * page lacks, a file gone by its HEAD. */
#define _GNU_SOURCE    /* strcasestr */
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "backends/fetch.h"
#include "backends/base/log.h"

/* The directory every page lists: files with their sizes, and two dirs. */
static const struct { const char *name; uint64_t size; } want_files[] = {
	{ "a-very-long-file-name-that-nginx-truncates-in-its-listing-0123456789.bin", 33 },
	{ "amp&x.bin", 5 },
	{ "big.bin", 1048577 },
	{ "colon:x.bin", 7 },
	{ "empty", 0 },
	{ "pct%20x.bin", 100 },
	{ "quote\"x<y>.bin", 9 },
	{ "space name.bin", 12345 },
	{ "unicod\xc3\xa9.bin", 20000 },
};
#define NFILES (sizeof(want_files) / sizeof(want_files[0]))

struct got {
	int n, dirs, files, exact, bad, stop_at;
	char names[32][128];
	int is_dir[32], size_exact[32];
	uint64_t size[32];
};

static int collect(void *arg, const struct http_index_entry *e)
{
	struct got *g = arg;

	if (g->stop_at && g->n + 1 == g->stop_at)
		return 42;
	ck_assert_int_lt(g->n, 32);
	if (!e->name) {
		g->bad++;
		return 0;
	}
	snprintf(g->names[g->n], sizeof(g->names[0]), "%s", e->name);
	g->is_dir[g->n] = e->is_dir;
	g->size_exact[g->n] = e->size_exact;
	g->size[g->n] = e->size;
	g->dirs += e->is_dir;
	g->files += !e->is_dir;
	g->exact += e->size_exact;
	g->n++;
	return 0;
}

static char *slurp(const char *name)
{
	const char *src = getenv("SRCDIR");
	char path[4096];
	FILE *f;
	char *buf;
	long n;

	snprintf(path, sizeof(path), "%s/tests/data/%s", src && *src ? src : ".", name);
	f = fopen(path, "rb");
	ck_assert_msg(f != NULL, "cannot open %s (set SRCDIR)", path);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = malloc((size_t)n + 1);
	ck_assert_ptr_nonnull(buf);
	ck_assert_int_eq(fread(buf, 1, (size_t)n, f), n);
	buf[n] = 0;
	fclose(f);
	return buf;
}

static int find(const struct got *g, const char *name)
{
	for (int i = 0; i < g->n; i++)
		if (!strcmp(g->names[i], name))
			return i;
	return -1;
}

/* Parse a captured page; check every name, the two directories, and
 * the sizes given exactly (those up to `exact_max` bytes when the page
 * shows only some, all when exact_max is UINT64_MAX, none when 0). */
static void check_page(const char *file, uint64_t exact_max, int none_exact)
{
	char *page = slurp(file);
	struct got g = { 0 };

	ck_assert_int_eq(http_parse_html_index(page, collect, &g), 0);
	ck_assert_msg(g.n == (int)NFILES + 2, "%s: %d entries", file, g.n);
	ck_assert_int_eq(g.bad, 0);
	ck_assert_int_eq(g.dirs, 2);
	ck_assert_int_eq(g.is_dir[find(&g, "plain")], 1);
	ck_assert_int_eq(g.is_dir[find(&g, "sub dir")], 1);
	for (size_t i = 0; i < NFILES; i++) {
		int k = find(&g, want_files[i].name);

		ck_assert_msg(k >= 0, "%s: %s missing", file, want_files[i].name);
		ck_assert_int_eq(g.is_dir[k], 0);
		if (!none_exact && want_files[i].size <= exact_max) {
			ck_assert_msg(g.size_exact[k], "%s: %s has no exact size", file, g.names[k]);
			ck_assert_uint_eq(g.size[k], want_files[i].size);
		} else {
			ck_assert_msg(!g.size_exact[k], "%s: %s taken as exact (%llu)", file,
				      g.names[k], (unsigned long long)g.size[k]);
		}
	}
	free(page);
}

START_TEST(nginx_exact)
{
	check_page("nginx-autoindex.html", UINT64_MAX, 0);
}
END_TEST

START_TEST(nginx_approx)
{
	/* autoindex_exact_size off: "12K", "1M"; up to 9999 bytes exact */
	check_page("nginx-autoindex-approx.html", 9999, 0);
}
END_TEST

START_TEST(python_server)
{
	check_page("python-http-server.html", 0, 1);
}
END_TEST

START_TEST(apache_table)
{
	/* apr_strfsize: bytes up to 972, then "12K", "1.0M" */
	check_page("apache-autoindex-table.html", 972, 0);
}
END_TEST

START_TEST(apache_pre)
{
	check_page("apache-autoindex-pre.html", 972, 0);
}
END_TEST

START_TEST(apache_plain)
{
	check_page("apache-autoindex-plain.html", 0, 1);
}
END_TEST

#define NGINX_HEAD "<html>\r\n<head><title>Index of /x/</title></head>\r\n<body>\r\n" \
	"<h1>Index of /x/</h1><hr><pre><a href=\"../\">../</a>\r\n"

START_TEST(hostile)
{
	struct got g = { 0 };

	/* not a listing: an ordinary page, JSON, nothing */
	ck_assert_int_eq(http_parse_html_index("<html><title>Welcome to nginx!</title>"
					       "<a href=\"x\">x</a></html>", collect, &g), -EIO);
	ck_assert_int_eq(http_parse_html_index("[]", collect, &g), -EIO);
	ck_assert_int_eq(http_parse_html_index("", collect, &g), -EIO);
	/* a title without the heading that goes with it */
	ck_assert_int_eq(http_parse_html_index("<title>Index of /</title><a href=\"x\">x</a>",
					       collect, &g), -EIO);
	/* cut short: in a tag, in an href, before </a> */
	ck_assert_int_eq(http_parse_html_index(NGINX_HEAD "<a href=\"abc", collect, &g), -EIO);
	ck_assert_int_eq(http_parse_html_index(NGINX_HEAD "<a href=\"abc\">abc", collect, &g), -EIO);
	ck_assert_int_eq(http_parse_html_index(NGINX_HEAD "<a href=abc>abc</a>", collect, &g), -EIO);
	ck_assert_int_eq(g.n + g.bad, 0);

	/* links that are not entries of this directory are not entries */
	ck_assert_int_eq(http_parse_html_index(NGINX_HEAD
		"<a href=\"/etc/passwd\">p</a>\r\n<a href=\"http://evil/x\">e</a>\r\n"
		"<a href=\"?C=N;O=D\">Name</a>\r\n<a href=\"#top\">t</a>\r\n"
		"<a href=\"./\">.</a>\r\n<a href=\"..\">..</a>\r\n<a href=\"mailto:x@y\">m</a>\r\n"
		"<abbr>x</abbr><address>nginx</address>\r\n</pre>", collect, &g), 0);
	ck_assert_int_eq(g.n + g.bad, 0);

	/* names that cannot be represented are passed as NULL (counted) */
	ck_assert_int_eq(http_parse_html_index(NGINX_HEAD
		"<a href=\"a%00b\">x</a>\r\n<a href=\"a%zz\">x</a>\r\n<a href=\"a&bogus;b\">x</a>\r\n"
		"<a href=\"a&#0;b\">x</a>\r\n<a href=\"a%2Fb\">x</a>\r\n<a href=\"a/b\">x</a>\r\n"
		"<a href=\"a&#x110000;\">x</a>\r\n<a href=\"a&#xD800;\">x</a>\r\n<a href=\"a&#65\">x</a>\r\n"
		"<a name=\"anchor\">no href</a>\r\n"
		"<a href=\"ok&#x41;&#66;\">ok</a>  01-Jan-2024 00:00   12\r\n</pre>", collect, &g), 0);
	ck_assert_int_eq(g.bad, 9);
	ck_assert_int_eq(g.n, 1);
	ck_assert_str_eq(g.names[0], "okAB");
	ck_assert_int_eq(g.size_exact[0], 1);
	ck_assert_uint_eq(g.size[0], 12);

	/* a size is exact only after a date and a time, and only digits */
	memset(&g, 0, sizeof(g));
	ck_assert_int_eq(http_parse_html_index(NGINX_HEAD
		"<a href=\"a\">a</a>   12\r\n"
		"<a href=\"b\">b</a>  01-Jan-2024 00:00  12.5\r\n"
		"<a href=\"c\">c</a>  01-Jan-2024 00:00  99999999999999999999999\r\n"
		"<a href=\"d\">d</a>  2024-01-01 00:00  7 some description 9\r\n</pre>",
		collect, &g), 0);
	ck_assert_int_eq(g.n, 4);
	ck_assert_int_eq(g.size_exact[0] + g.size_exact[1] + g.size_exact[2], 0);
	ck_assert_int_eq(g.size_exact[3], 1);
	ck_assert_uint_eq(g.size[3], 7);

	/* the callback's non-zero value stops the parse */
	memset(&g, 0, sizeof(g));
	g.stop_at = 2;
	ck_assert_int_eq(http_parse_html_index(NGINX_HEAD "<a href=\"a\">a</a>\r\n<a href=\"b\">b</a>\r\n"
					       "<a href=\"c\">c</a>\r\n</pre>", collect, &g), 42);
	ck_assert_int_eq(g.n, 1);
}
END_TEST

/* A scripted HTTP server: the n-th connection gets resp[n] (one request
 * per connection); the request lines are kept. */
struct script {
	const char *resp[8];
	char req[8][128];
	int n, listen_fd, port;
	pthread_t thread;
};

static void *serve(void *arg)
{
	struct script *s = arg;

	while (s->n < 8 && s->resp[s->n]) {
		int fd = accept(s->listen_fd, NULL, NULL);
		char req[4096];
		ssize_t got;

		if (fd < 0)
			break;
		got = read(fd, req, sizeof(req) - 1);
		req[got > 0 ? got : 0] = 0;
		snprintf(s->req[s->n], sizeof(s->req[0]), "%.*s", (int)strcspn(req, "\r\n"), req);
		if (write(fd, s->resp[s->n], strlen(s->resp[s->n])) < 0)
			break;
		s->n++;
		shutdown(fd, SHUT_WR);
		while (read(fd, req, sizeof(req)) > 0)
			;
		close(fd);
	}
	return NULL;
}

struct listed {
	int n;
	char key[8][64];
	struct backend_stat st[8];
};

static int on_key(void *arg, const char *key, const struct backend_stat *st)
{
	struct listed *l = arg;

	ck_assert_int_lt(l->n, 8);
	snprintf(l->key[l->n], sizeof(l->key[0]), "%s", key);
	l->st[l->n++] = *st;
	return 0;
}

#define PY_PAGE(items) "<!DOCTYPE HTML>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n" \
	"<title>Directory listing for /</title>\n</head>\n<body>\n<h1>Directory listing for /</h1>\n" \
	"<hr>\n<ul>\n" items "</ul>\n<hr>\n</body>\n</html>\n"

START_TEST(walk_with_heads)
{
	static const char page1[] = PY_PAGE("<li><a href=\"a.bin\">a.bin</a></li>\n"
					    "<li><a href=\"gone.bin\">gone.bin</a></li>\n"
					    "<li><a href=\"d/\">d/</a></li>\n");
	static const char page2[] = "<html>\r\n<head><title>Index of /d/</title></head>\r\n<body>\r\n"
		"<h1>Index of /d/</h1><hr><pre><a href=\"../\">../</a>\r\n"
		"<a href=\"c%20x.bin\">c x.bin</a>   01-Mar-2024 10:20   7\r\n</pre><hr></body>\r\n</html>\r\n";
	char r1[1024], r4[1024];
	struct script s = { .resp = {
		r1,
		"HTTP/1.0 200 OK\r\nContent-Length: 5\r\nLast-Modified: Fri, 01 Mar 2024 10:20:30 GMT\r\n\r\n",
		"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n",
		r4,
	} };
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	struct backend_options o;
	struct backend *be;
	struct listed l = { 0 };
	char url[64], err[256];

	log_init("check_http", LOG_LVL_ERR, 0);
	snprintf(r1, sizeof(r1), "HTTP/1.0 200 OK\r\nContent-Length: %zu\r\n\r\n%s", strlen(page1), page1);
	snprintf(r4, sizeof(r4), "HTTP/1.0 200 OK\r\nContent-Length: %zu\r\n\r\n%s", strlen(page2), page2);
	s.listen_fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_eq(bind(s.listen_fd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(listen(s.listen_fd, 8), 0);
	getsockname(s.listen_fd, (struct sockaddr *)&a, &al);
	pthread_create(&s.thread, NULL, serve, &s);
	backend_options_init(&o);
	o.list_threads = 1;     /* one request at a time: the script's order */
	o.retries = 0;
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", ntohs(a.sin_port));
	ck_assert_int_eq(backend_create(url, &o, &be, err, sizeof(err)), 0);
	ck_assert_int_eq(backend_list(be, on_key, &l), 0);
	ck_assert_uint_eq(atomic_load(&be->counters.skipped_keys), 1);
	backend_destroy(be);
	shutdown(s.listen_fd, SHUT_RDWR);
	close(s.listen_fd);
	pthread_join(s.thread, NULL);

	ck_assert_str_eq(s.req[0], "GET / HTTP/1.1");
	ck_assert_str_eq(s.req[1], "HEAD /a.bin HTTP/1.1");
	ck_assert_str_eq(s.req[2], "HEAD /gone.bin HTTP/1.1");
	ck_assert_str_eq(s.req[3], "GET /d/ HTTP/1.1");
	ck_assert_int_eq(l.n, 2);
	/* a.bin: size and Last-Modified from its HEAD */
	ck_assert_str_eq(l.key[0], "a.bin");
	ck_assert_uint_eq(l.st[0].size, 5);
	ck_assert_int_eq(l.st[0].mtime_ns, 1709288430LL * 1000000000LL);
	ck_assert_str_eq(l.st[0].etag, "");
	/* d/c x.bin: the exact size nginx printed, no HEAD, no mtime */
	ck_assert_str_eq(l.key[1], "d/c x.bin");
	ck_assert_uint_eq(l.st[1].size, 7);
	ck_assert_int_eq(l.st[1].mtime_ns, 0);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("http");
	TCase *t = tcase_create("html"), *w;

	tcase_add_test(t, nginx_exact);
	tcase_add_test(t, nginx_approx);
	tcase_add_test(t, python_server);
	tcase_add_test(t, apache_table);
	tcase_add_test(t, apache_pre);
	tcase_add_test(t, apache_plain);
	tcase_add_test(t, hostile);
	suite_add_tcase(s, t);
	w = tcase_create("walk");
	tcase_set_timeout(w, 30);
	tcase_add_test(w, walk_with_heads);
	suite_add_tcase(s, w);
	return s;
}

int main(void)
{
	SRunner *r = srunner_create(suite());
	int failed;

	srunner_run_all(r, CK_NORMAL);
	failed = srunner_ntests_failed(r);
	srunner_free(r);
	return failed ? 1 : 0;
}
