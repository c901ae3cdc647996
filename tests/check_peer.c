/* SPDX-License-Identifier: MIT */
/* Unit tests of backends/peer.c, the peer client: option parsing, the
 * secret file, finding itself in the list, ownership as owner_pick says,
 * and every way a peer can fail (nothing listening, a wrong checksum, a
 * short body, a wrong Content-Range, a 500, a 404) ending in the origin's
 * bytes, with the peer marked down or not as it should be. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <xxhash.h>

#include "backends/owner.h"
#include "backends/peer.h"

/* Connect timeouts are 2 s here: under valgrind a first connect takes
 * longer than the daemon's 100 ms, and a dead peer refuses at once. */

/* ---- a fake origin: byte i of any object is (i * 7 + 3) & 0xff ---- */

static int origin_reads;

static int fo_list(struct backend *be, backend_list_fn fn, void *arg)
{
	(void)be, (void)fn, (void)arg;
	return 0;
}

static int fo_stat(struct backend *be, const char *key, struct backend_stat *st)
{
	(void)be, (void)key;
	memset(st, 0, sizeof(*st));
	st->size = 100000;
	return 0;
}

static int fo_submit(struct backend *be, struct backend_req *req)
{
	uint64_t end = req->off + req->len;

	(void)be;
	__atomic_add_fetch(&origin_reads, 1, __ATOMIC_SEQ_CST);
	if (end > req->expect.size)
		end = req->expect.size;
	for (uint64_t i = req->off; i < end; i++)
		((unsigned char *)req->buf)[i - req->off] = (unsigned char)(i * 7 + 3);
	req->result = (ssize_t)(end - req->off);
	req->current = req->expect;
	atomic_fetch_add(&be->counters.bytes, end - req->off);
	req->done(req);
	return 0;
}

static void fo_destroy(struct backend *be)
{
	free(be);
}

static const struct backend_ops fo_ops = { "fake", fo_list, fo_stat, fo_submit, fo_destroy };

static struct backend *fake_origin(void)
{
	struct backend *be = calloc(1, sizeof(*be));

	be->ops = &fo_ops;
	be->url = "fake://origin";
	be->concurrency = 8;
	return be;
}

/* ---- a fake peer: answers every request the way mode says ---- */

enum mode { GOOD, BADSUM, SHORT, BADRANGE, E500, E404 };

struct fake_peer {
	int fd, port;
	enum mode mode;
	pthread_t thread;
	pthread_mutex_t lock; /* last_secret: the test reads it after the socket's
			       * answer, an order TSan cannot see */
	char last_secret[128];
};

static void *fp_main(void *arg)
{
	struct fake_peer *fp = arg;
	int c;

	while ((c = accept(fp->fd, NULL, NULL)) >= 0) {
		char head[8192], *r, *s;
		size_t n = 0;
		ssize_t k;
		uint64_t a = 0, b = 0;

		while (n < sizeof(head) - 1 && (k = read(c, head + n, sizeof(head) - 1 - n)) > 0) {
			n += (size_t)k;
			head[n] = 0;
			if (strstr(head, "\r\n\r\n"))
				break;
		}
		head[n] = 0;
		pthread_mutex_lock(&fp->lock);
		if ((s = strcasestr(head, PEER_SECRET_HEADER ": ")))
			sscanf(s + strlen(PEER_SECRET_HEADER) + 2, "%127[^\r]", fp->last_secret);
		pthread_mutex_unlock(&fp->lock);
		if ((r = strstr(head, "Range: bytes=")))
			sscanf(r + 13, "%" SCNu64 "-%" SCNu64, &a, &b);
		if (fp->mode == E500 || fp->mode == E404) {
			const char *ans = fp->mode == E500
				? "HTTP/1.1 500 Oops\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
				: "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
			if (send(c, ans, strlen(ans), MSG_NOSIGNAL) < 0)
				fprintf(stderr, "fake peer: send failed\n");
		} else {
			size_t len = (size_t)(b + 1 - a), sent = fp->mode == SHORT ? len / 2 : len;
			unsigned char *body = malloc(len);
			char h[512];
			int hl;

			for (uint64_t i = a; i <= b; i++)
				body[i - a] = (unsigned char)(i * 7 + 3);
			hl = snprintf(h, sizeof(h),
				      "HTTP/1.1 206 Partial Content\r\nContent-Length: %zu\r\n"
				      "Content-Range: bytes %" PRIu64 "-%" PRIu64 "/100000\r\n"
				      "%s: %016llx\r\nConnection: close\r\n\r\n",
				      sent, fp->mode == BADRANGE ? a + 1 : a, b, PEER_XXH3_HEADER,
				      (unsigned long long)XXH3_64bits(body, len) ^ (fp->mode == BADSUM));
			/* BADSUM: the bytes are right, the sum is not */
			/* the client may hang up first: no SIGPIPE */
			if (send(c, h, (size_t)hl, MSG_NOSIGNAL) == hl &&
			    send(c, body, sent, MSG_NOSIGNAL) < 0)
				fprintf(stderr, "fake peer: send failed\n");
			free(body);
		}
		close(c);
	}
	return NULL;
}

static void fp_start(struct fake_peer *fp, enum mode m)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);

	memset(fp, 0, sizeof(*fp));
	pthread_mutex_init(&fp->lock, NULL);
	fp->mode = m;
	fp->fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_eq(bind(fp->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(fp->fd, 16), 0);
	getsockname(fp->fd, (struct sockaddr *)&sa, &sl);
	fp->port = ntohs(sa.sin_port);
	pthread_create(&fp->thread, NULL, fp_main, fp);
}

static void fp_stop(struct fake_peer *fp)
{
	shutdown(fp->fd, SHUT_RDWR);
	close(fp->fd);
	pthread_join(fp->thread, NULL);
	pthread_mutex_destroy(&fp->lock);
}

/* A port nothing listens on (bound, then closed). */
static int dead_port(void)
{
	struct fake_peer fp;
	int port;

	fp_start(&fp, GOOD);
	port = fp.port;
	fp_stop(&fp);
	return port;
}

static char *json_of(struct backend *be)
{
	struct sbuf b = { 0 };
	char *s;
	size_t n;

	peer_stats_json(be, &b);
	ck_assert_int_eq(sbuf_done(&b, &s, &n), 0);
	return s;
}

/* Read [off, off+len) of key through be and check every byte. */
static void read_check(struct backend *be, const char *key, uint64_t off, size_t len)
{
	struct backend_stat ex = { .size = 100000 };
	unsigned char *buf = malloc(len);
	ssize_t n = backend_read(be, key, off, buf, len, &ex, NULL);

	ck_assert_int_eq(n, (ssize_t)len);
	for (size_t i = 0; i < len; i++)
		ck_assert_int_eq(buf[i], (unsigned char)((off + i) * 7 + 3));
	free(buf);
}

START_TEST(test_hostport)
{
	char h[64];
	unsigned p;

	ck_assert_int_eq(peer_split_hostport("10.0.0.1:7600", h, sizeof(h), &p), 0);
	ck_assert_str_eq(h, "10.0.0.1");
	ck_assert_uint_eq(p, 7600);
	ck_assert_int_eq(peer_split_hostport("[::1]:80", h, sizeof(h), &p), 0);
	ck_assert_str_eq(h, "::1");
	ck_assert_int_eq(peer_split_hostport("node-7.svc:1", h, sizeof(h), &p), 0);
	ck_assert_int_eq(peer_split_hostport("::1:80", h, sizeof(h), &p), -EINVAL);
	ck_assert_int_eq(peer_split_hostport("host", h, sizeof(h), &p), -EINVAL);
	ck_assert_int_eq(peer_split_hostport("host:", h, sizeof(h), &p), -EINVAL);
	ck_assert_int_eq(peer_split_hostport(":80", h, sizeof(h), &p), -EINVAL);
	ck_assert_int_eq(peer_split_hostport("host:0", h, sizeof(h), &p), -EINVAL);
	ck_assert_int_eq(peer_split_hostport("host:65536", h, sizeof(h), &p), -EINVAL);
	ck_assert_int_eq(peer_split_hostport("host:80x", h, sizeof(h), &p), -EINVAL);
	ck_assert_int_eq(peer_split_hostport("[::1]80", h, sizeof(h), &p), -EINVAL);
}
END_TEST

START_TEST(test_secret)
{
	char path[] = "/tmp/check_peer.XXXXXX", buf[PEER_SECRET_MAX + 2], err[256];
	int fd = mkstemp(path);
	FILE *f = fdopen(fd, "w");

	fputs("s3cr3t  \nsecond line\n", f);
	fclose(f);
	ck_assert_int_eq(peer_read_secret(path, buf, sizeof(buf), err, sizeof(err)), 0);
	ck_assert_str_eq(buf, "s3cr3t");
	f = fopen(path, "w");
	fputs("\n", f);
	fclose(f);
	ck_assert_int_eq(peer_read_secret(path, buf, sizeof(buf), err, sizeof(err)), -EINVAL);
	f = fopen(path, "w");
	fputs("two words\n", f);
	fclose(f);
	ck_assert_int_eq(peer_read_secret(path, buf, sizeof(buf), err, sizeof(err)), -EINVAL);
	unlink(path);
	ck_assert_int_lt(peer_read_secret(path, buf, sizeof(buf), err, sizeof(err)), 0);
}
END_TEST

/* The node finds itself in the list and owns what owner_pick gives it. */
START_TEST(test_ownership)
{
	struct peer_options po = { .listen = "127.0.0.1:7002",
				   .peers = "127.0.0.1:7001, 127.0.0.1:7002,127.0.0.1:7003",
				   .timeout_ms = 2000 };
	const char *ids[3] = { "127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003" };
	uint64_t h[3];
	struct backend *be, *origin = fake_origin();
	char err[256], key[64], *js;
	unsigned mine = 0;

	ck_assert_int_eq(backend_peer_create(origin, &po, &be, err, sizeof(err)), 0);
	ck_assert(backend_is_peer(be));
	ck_assert(!backend_is_peer(origin));
	ck_assert_str_eq(be->ops->name, "fake");
	for (int i = 0; i < 3; i++)
		h[i] = owner_node_hash(ids[i], strlen(ids[i]));
	for (unsigned k = 0; k < 3000; k++) {
		int len = snprintf(key, sizeof(key), "class%u/img%05u.jpg", k % 10, k);
		int own = owner_pick(h, NULL, 3, owner_object_hash(key, (size_t)len)) == 1;

		ck_assert_int_eq(peer_owns(be, key), own);
		mine += own;
	}
	ck_assert_uint_gt(mine, 850);
	ck_assert_uint_lt(mine, 1150);
	js = json_of(be);
	ck_assert_ptr_nonnull(strstr(js, "{\"addr\":\"127.0.0.1:7002\",\"state\":\"self\""));
	ck_assert_ptr_nonnull(strstr(js, "{\"addr\":\"127.0.0.1:7001\",\"state\":\"up\""));
	free(js);
	backend_destroy(be);
}
END_TEST

/* A bad list is refused, and the origin stays the caller's. */
START_TEST(test_bad_list)
{
	struct peer_options po = { .peers = "127.0.0.1:7001,nonsense", .timeout_ms = 2000 };
	struct backend *be, *origin = fake_origin();
	char err[256];

	ck_assert_int_eq(backend_peer_create(origin, &po, &be, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "nonsense"));
	po.peers = "@/nonexistent/peers";
	ck_assert_int_eq(backend_peer_create(origin, &po, &be, err, sizeof(err)), -EINVAL);
	backend_destroy(origin);
}
END_TEST

/* A client whose only peer (which owns everything) behaves as mode says:
 * every byte read is right; peer_bytes_in, the origin's reads and the
 * peer's state as expected. */
static void one_peer(enum mode m, int dead, int want_from_peer, const char *state)
{
	struct fake_peer fp;
	char list[64], err[256], *js, want[64];
	struct peer_options po = { .peers = list, .timeout_ms = 2000 };
	struct backend *be, *origin = fake_origin();

	if (dead) {
		snprintf(list, sizeof(list), "127.0.0.1:%d", dead_port());
	} else {
		fp_start(&fp, m);
		snprintf(list, sizeof(list), "127.0.0.1:%d", fp.port);
	}
	origin_reads = 0;
	ck_assert_int_eq(backend_peer_create(origin, &po, &be, err, sizeof(err)), 0);
	ck_assert_int_eq(peer_owns(be, "a/b.jpg"), 0);
	read_check(be, "a/b.jpg", 1000, 5000);
	read_check(be, "a/b.jpg", 99000, 1000);
	js = json_of(be);
	snprintf(want, sizeof(want), "\"state\":\"%s\"", state);
	ck_assert_msg(strstr(js, want), "%s: %s", want, js);
	if (want_from_peer) {
		ck_assert_int_eq(origin_reads, 0);
		ck_assert_ptr_nonnull(strstr(js, "\"peer_bytes_in\":6000,"));
	} else {
		ck_assert_int_eq(origin_reads, 2);
		ck_assert_ptr_nonnull(strstr(js, "\"peer_bytes_in\":0,"));
	}
	free(js);
	backend_destroy(be);
	if (!dead)
		fp_stop(&fp);
}

START_TEST(test_good_peer)
{
	one_peer(GOOD, 0, 1, "up");
}
END_TEST

START_TEST(test_dead_peer)
{
	one_peer(GOOD, 1, 0, "down");
}
END_TEST

START_TEST(test_bad_checksum)
{
	one_peer(BADSUM, 0, 0, "down");
}
END_TEST

START_TEST(test_short_body)
{
	one_peer(SHORT, 0, 0, "down");
}
END_TEST

START_TEST(test_bad_range)
{
	one_peer(BADRANGE, 0, 0, "down");
}
END_TEST

START_TEST(test_server_error)
{
	one_peer(E500, 0, 0, "down");
}
END_TEST

START_TEST(test_not_found)
{
	one_peer(E404, 0, 0, "up");
}
END_TEST

/* The secret travels in its header. */
START_TEST(test_secret_sent)
{
	char path[] = "/tmp/check_peer.XXXXXX", list[64], err[256];
	int fd = mkstemp(path);
	struct fake_peer fp;
	struct peer_options po = { .peers = list, .secret_file = path, .timeout_ms = 2000 };
	struct backend *be, *origin = fake_origin();

	ck_assert_int_eq(write(fd, "hush\n", 5), 5);
	close(fd);
	fp_start(&fp, GOOD);
	snprintf(list, sizeof(list), "127.0.0.1:%d", fp.port);
	ck_assert_int_eq(backend_peer_create(origin, &po, &be, err, sizeof(err)), 0);
	ck_assert_str_eq(peer_secret(be), "hush");
	read_check(be, "x", 0, 100);
	pthread_mutex_lock(&fp.lock);
	ck_assert_str_eq(fp.last_secret, "hush");
	pthread_mutex_unlock(&fp.lock);
	backend_destroy(be);
	fp_stop(&fp);
	unlink(path);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("peer");
	TCase *tc = tcase_create("peer");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_hostport);
	tcase_add_test(tc, test_secret);
	tcase_add_test(tc, test_ownership);
	tcase_add_test(tc, test_bad_list);
	tcase_add_test(tc, test_good_peer);
	tcase_add_test(tc, test_dead_peer);
	tcase_add_test(tc, test_bad_checksum);
	tcase_add_test(tc, test_short_body);
	tcase_add_test(tc, test_bad_range);
	tcase_add_test(tc, test_server_error);
	tcase_add_test(tc, test_not_found);
	tcase_add_test(tc, test_secret_sent);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
