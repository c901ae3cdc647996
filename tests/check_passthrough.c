/* SPDX-License-Identifier: MIT */
/* Unit tests of the passthrough hooks (fs/passthrough.c, included here for
 * its static parts): what the read hook learns from an INIT request, how
 * the writev hook rewrites the INIT reply (offered, not offered, an old
 * protocol's INIT, a short reply, an error) and an OPEN reply with a
 * pending backing id, and what it leaves alone.  The hooks are fed through
 * pipes standing for /dev/fuse.  A fixture resets the module's state
 * before each test. */
#define _GNU_SOURCE
#include <check.h>
#include <stdlib.h>

#include "../fs/passthrough.c"

/* Push a request through the read hook: header (opcode, unique) + body. */
static void feed(uint32_t opcode, uint64_t unique, const void *body, size_t len)
{
	char buf[512];
	struct k_in_header h = { .len = (uint32_t)(sizeof(h) + len), .opcode = opcode,
				 .unique = unique };
	int p[2];

	ck_assert_int_eq(pipe(p), 0);
	memcpy(buf, &h, sizeof(h));
	memcpy(buf + sizeof(h), body, len);
	ck_assert_int_eq(write(p[1], buf, sizeof(h) + len), (ssize_t)(sizeof(h) + len));
	ck_assert_int_eq(hook_read(p[0], buf, sizeof(buf), NULL), (ssize_t)(sizeof(h) + len));
	close(p[0]);
	close(p[1]);
}

/* Send a reply (header + body) through the writev hook; what came out is
 * copied to out (its length returned). */
static size_t reply(uint64_t unique, int32_t error, const void *body, size_t len, void *out)
{
	struct k_out_header oh = { .len = (uint32_t)(sizeof(oh) + len), .error = error,
				   .unique = unique };
	char copy[256], got[512];
	struct iovec iov[2] = { { &oh, sizeof(oh) }, { copy, len } };
	ssize_t n;
	int p[2];

	memcpy(copy, body, len);
	ck_assert_int_eq(pipe(p), 0);
	n = hook_writev(p[1], iov, len ? 2 : 1, NULL);
	ck_assert_int_eq(n, (ssize_t)(sizeof(oh) + len));
	ck_assert_int_eq(read(p[0], got, sizeof(got)), n);
	close(p[0]);
	close(p[1]);
	/* the caller's buffers are not written */
	ck_assert_int_eq(memcmp(copy, body, len), 0);
	memcpy(out, got + sizeof(oh), len);
	return len;
}

static struct k_init_out init_reply(void)
{
	struct k_init_out o = { .major = 7, .minor = 38, .max_readahead = 1 << 20,
				.flags = 1u << 0 | 1u << 7, .max_write = 1 << 17 };

	return o;
}

START_TEST(test_init_offered)
{
	struct k_init_in in = { .major = 7, .minor = 44, .flags = K_INIT_EXT | 1u,
				.flags2 = K_PASSTHROUGH_FLAGS2 | 1u };
	struct k_init_out o = init_reply(), got;

	feed(K_FUSE_INIT, 2, &in, sizeof(in));
	ck_assert(g.offered);
	reply(2, 0, &o, sizeof(o), &got);
	ck_assert_uint_eq(got.flags, o.flags | K_INIT_EXT);
	ck_assert_uint_eq(got.flags2, K_PASSTHROUGH_FLAGS2);
	ck_assert_uint_eq(got.max_stack_depth, 1);
	ck_assert_uint_eq(got.max_write, o.max_write);
	ck_assert(pt_enabled());
	/* a later reply with the same unique is not touched again */
	reply(2, 0, &o, sizeof(o), &got);
	ck_assert_int_eq(memcmp(&got, &o, sizeof(o)), 0);
}
END_TEST

START_TEST(test_init_not_offered)
{
	struct k_init_in in = { .major = 7, .minor = 44, .flags = K_INIT_EXT, .flags2 = 1u };
	struct k_init_out o = init_reply(), got;

	feed(K_FUSE_INIT, 2, &in, sizeof(in));
	ck_assert(!g.offered);
	reply(2, 0, &o, sizeof(o), &got);
	ck_assert_int_eq(memcmp(&got, &o, sizeof(o)), 0);
	ck_assert(!pt_enabled());
}
END_TEST

START_TEST(test_init_old_protocol)
{
	/* 7.31: four words, no flags2, even with bit 30 set by chance */
	uint32_t in[4] = { 7, 31, 1 << 20, K_INIT_EXT };
	struct k_init_out o = init_reply(), got;

	feed(K_FUSE_INIT, 2, in, sizeof(in));
	ck_assert(atomic_load(&g.init_seen));
	ck_assert(!g.offered);
	reply(2, 0, &o, sizeof(o), &got);
	ck_assert_int_eq(memcmp(&got, &o, sizeof(o)), 0);
	ck_assert(!pt_enabled());
}
END_TEST

START_TEST(test_init_short_and_error)
{
	struct k_init_in in = { .major = 7, .minor = 44, .flags = K_INIT_EXT,
				.flags2 = K_PASSTHROUGH_FLAGS2 };
	struct k_init_out o = init_reply(), got;

	feed(K_FUSE_INIT, 2, &in, sizeof(in));
	/* a reply of an old protocol (24 bytes) has no flags2: left alone */
	reply(2, 0, &o, 24, &got);
	ck_assert_int_eq(memcmp(&got, &o, 24), 0);
	ck_assert(!g.offered);
	ck_assert(!pt_enabled());
}
END_TEST

START_TEST(test_init_error)
{
	struct k_init_in in = { .major = 7, .minor = 44, .flags = K_INIT_EXT,
				.flags2 = K_PASSTHROUGH_FLAGS2 };
	char none;

	feed(K_FUSE_INIT, 2, &in, sizeof(in));
	reply(2, -EPROTO, &none, 0, &none);
	ck_assert(!g.offered);
	ck_assert(!pt_enabled());
}
END_TEST

START_TEST(test_open_reply)
{
	struct k_open_out o = { .fh = 0x1234, .open_flags = (1u << 1) | K_FOPEN_NOFLUSH }, got;
	char entry[128] = { 1, 2, 3 }, eg[128];

	/* nothing pending: untouched */
	reply(9, 0, &o, sizeof(o), &got);
	ck_assert_int_eq(memcmp(&got, &o, sizeof(o)), 0);
	/* pending: FOPEN_PASSTHROUGH and the id; KEEP_CACHE dropped (the
	 * kernel refuses it with passthrough), NOFLUSH kept; consumed once */
	tl_backing = 7;
	reply(9, 0, &o, sizeof(o), &got);
	ck_assert_uint_eq(got.fh, o.fh);
	ck_assert_uint_eq(got.open_flags, K_FOPEN_PASSTHROUGH | K_FOPEN_NOFLUSH);
	ck_assert_int_eq(got.backing_id, 7);
	ck_assert_int_eq(tl_backing, 0);
	/* a reply of another size (an entry) is not an OPEN's */
	tl_backing = 7;
	reply(10, 0, entry, sizeof(entry), eg);
	ck_assert_int_eq(memcmp(eg, entry, sizeof(entry)), 0);
	tl_backing = 0;
}
END_TEST

START_TEST(test_not_wanted)
{
	int backing;

	/* --no-passthrough: the hooks are not installed, and pt_open tracks
	 * nothing */
	ck_assert_int_eq(pt_install(NULL, 0), 0);
	ck_assert_int_eq(pt_open(5, NULL, 0, &backing), PT_NONE);
	ck_assert_int_eq(backing, 0);
	pt_close(5, PT_NONE);
}
END_TEST

/* Each test starts from the module's initial state (also without a fork:
 * CK_FORK=no under valgrind). */
static void fresh(void)
{
	memset(&g, 0, sizeof(g));
	g.devfd = -1;
	tl_backing = 0;
}

static Suite *pt_suite(void)
{
	Suite *s = suite_create("passthrough");
	TCase *tc = tcase_create("hooks");

	tcase_set_timeout(tc, 30);
	tcase_add_checked_fixture(tc, fresh, NULL);
	tcase_add_test(tc, test_init_offered);
	tcase_add_test(tc, test_init_not_offered);
	tcase_add_test(tc, test_init_old_protocol);
	tcase_add_test(tc, test_init_short_and_error);
	tcase_add_test(tc, test_init_error);
	tcase_add_test(tc, test_open_reply);
	tcase_add_test(tc, test_not_wanted);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(pt_suite());
	int failed;

	log_init("check_passthrough", LOG_LVL_WARN, 0);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
