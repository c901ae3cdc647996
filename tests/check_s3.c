/* SPDX-License-Identifier: MIT */
/* Unit tests of the S3 backend's parsers: s3:// URLs, the AWS credentials
 * and config files, XML text decoding, ListObjectsV2 pages (well-formed,
 * paged, url-encoded and hostile), and hostile keys from a page through the
 * key filter to what the namespace would get. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "backends/creds.h"
#include "backends/fetch.h"

START_TEST(urls)
{
	char b[64], p[256];

	ck_assert_int_eq(s3_parse_url("s3://bucket/some/prefix", b, sizeof(b), p, sizeof(p)), 0);
	ck_assert_str_eq(b, "bucket");
	ck_assert_str_eq(p, "some/prefix/");
	ck_assert_int_eq(s3_parse_url("s3://bucket", b, sizeof(b), p, sizeof(p)), 0);
	ck_assert_str_eq(p, "");
	ck_assert_int_eq(s3_parse_url("s3://bucket/", b, sizeof(b), p, sizeof(p)), 0);
	ck_assert_str_eq(p, "");
	ck_assert_int_eq(s3_parse_url("s3://my.bucket-1/d/", b, sizeof(b), p, sizeof(p)), 0);
	ck_assert_str_eq(p, "d/");
	ck_assert_int_eq(s3_parse_url("s3:///x", b, sizeof(b), p, sizeof(p)), -EINVAL);
	ck_assert_int_eq(s3_parse_url("http://b/x", b, sizeof(b), p, sizeof(p)), -EINVAL);
	ck_assert_int_eq(s3_parse_url("s3://bad bucket/x", b, sizeof(b), p, sizeof(p)), -EINVAL);
	ck_assert_int_eq(s3_parse_url("s3://a@b/x", b, sizeof(b), p, sizeof(p)), -EINVAL);
	ck_assert_int_eq(s3_parse_url("s3://b/0123456789", b, sizeof(b), p, 8), -EINVAL);
}
END_TEST

static const char creds[] =
	"# comment\n"
	"[default]\n"
	"aws_access_key_id = AKIDDEFAULT\n"
	"aws_secret_access_key=secretdefault\n"
	"\n"
	"[ work ]\r\n"
	"  aws_access_key_id   =  AKIDWORK  \r\n"
	"; another comment\n"
	"aws_secret_access_key = se=cret/with+stuff\n"
	"aws_session_token = TOKEN123\n"
	"[halfway]\n"
	"aws_access_key_id = ONLYKEY\n"
	"[broken\n"
	"aws_access_key_id = NOPE\n";

/* The credentials file as creds.c reads it (the chain itself: check_creds). */
START_TEST(credentials)
{
	char v[256];

	ck_assert_int_eq(creds_ini_get(creds, "default", "aws_access_key_id", v, sizeof(v)), 0);
	ck_assert_str_eq(v, "AKIDDEFAULT");
	ck_assert_int_eq(creds_ini_get(creds, "default", "aws_secret_access_key", v, sizeof(v)), 0);
	ck_assert_str_eq(v, "secretdefault");
	ck_assert_int_eq(creds_ini_get(creds, "default", "aws_session_token", v, sizeof(v)), -ENOENT);
	ck_assert_int_eq(creds_ini_get(creds, "work", "aws_secret_access_key", v, sizeof(v)), 0);
	ck_assert_str_eq(v, "se=cret/with+stuff");
	ck_assert_int_eq(creds_ini_get(creds, "work", "aws_session_token", v, sizeof(v)), 0);
	ck_assert_str_eq(v, "TOKEN123");
	ck_assert_int_eq(creds_ini_get(creds, "halfway", "aws_secret_access_key", v, sizeof(v)),
			 -ENOENT);
	ck_assert_int_eq(creds_ini_get(creds, "broken", "aws_access_key_id", v, sizeof(v)), -ENOENT);
	ck_assert_int_eq(creds_ini_get(creds, "missing", "aws_access_key_id", v, sizeof(v)), -ENOENT);
	ck_assert_int_eq(creds_ini_get("", "default", "aws_access_key_id", v, sizeof(v)), -ENOENT);
	ck_assert_int_eq(creds_ini_get("aws_access_key_id=x\n", "default", "aws_access_key_id", v,
				       sizeof(v)), -ENOENT);
}
END_TEST

START_TEST(config)
{
	static const char cfg[] = "[default]\nregion = eu-west-1\n[profile work]\nregion=us-west-2\n"
				  "[work]\nregion=wrong\n";
	char r[32];

	ck_assert_int_eq(s3_parse_config(cfg, "default", "region", r, sizeof(r)), 0);
	ck_assert_str_eq(r, "eu-west-1");
	ck_assert_int_eq(s3_parse_config(cfg, "work", "region", r, sizeof(r)), 0);
	ck_assert_str_eq(r, "us-west-2");
	ck_assert_int_eq(s3_parse_config(cfg, "none", "region", r, sizeof(r)), -ENOENT);
}
END_TEST

static int decode(const char *s, char *out, size_t n)
{
	return s3_xml_decode(s, strlen(s), out, n);
}

START_TEST(xml_text)
{
	char b[64];

	ck_assert_int_eq(decode("a&amp;b&lt;c&gt;d&quot;e&apos;f", b, sizeof(b)), 0);
	ck_assert_str_eq(b, "a&b<c>d\"e'f");
	ck_assert_int_eq(decode("&#65;&#x42;&#X43;&#233;&#x1F600;", b, sizeof(b)), 0);
	ck_assert_str_eq(b, "ABC\xc3\xa9\xf0\x9f\x98\x80");
	ck_assert_int_eq(decode("caf\xc3\xa9 \xff", b, sizeof(b)), 0);   /* raw bytes kept */
	ck_assert_str_eq(b, "caf\xc3\xa9 \xff");
	ck_assert_int_eq(decode("&#0;", b, sizeof(b)), -EINVAL);
	ck_assert_int_eq(decode("&#x0;", b, sizeof(b)), -EINVAL);
	ck_assert_int_eq(decode("&#xD800;", b, sizeof(b)), -EINVAL);
	ck_assert_int_eq(decode("&#x110000;", b, sizeof(b)), -EINVAL);
	ck_assert_int_eq(decode("&#99999999999999;", b, sizeof(b)), -EINVAL);
	ck_assert_int_eq(decode("&nbsp;", b, sizeof(b)), -EINVAL);
	ck_assert_int_eq(decode("&amp", b, sizeof(b)), -EINVAL);
	ck_assert_int_eq(decode("&", b, sizeof(b)), -EINVAL);
	ck_assert_int_eq(decode("&#;", b, sizeof(b)), -EINVAL);
	ck_assert_int_eq(decode("&#x41", b, sizeof(b)), -EINVAL);
	ck_assert_int_eq(decode("abcdef", b, 6), -ENAMETOOLONG);
	ck_assert_int_eq(decode("&#x1F600;", b, 4), -ENAMETOOLONG);
}
END_TEST

struct page {
	int n, bad;
	char keys[16][300];
	struct backend_stat st[16];
};

static int on_key(void *arg, const char *key, int bad, const struct backend_stat *st)
{
	struct page *p = arg;

	ck_assert_int_lt(p->n, 16);
	p->bad += bad;
	snprintf(p->keys[p->n], sizeof(p->keys[0]), "%s", key);
	p->st[p->n++] = *st;
	return 0;
}

#define HEAD "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListBucketResult " \
	"xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>b</Name><Prefix>p/</Prefix>"

START_TEST(list_page)
{
	static const char xml[] = HEAD
		"<KeyCount>2</KeyCount><MaxKeys>2</MaxKeys><IsTruncated>true</IsTruncated>"
		"<NextContinuationToken>1a+/b=&amp;c</NextContinuationToken>"
		"<Contents><Key>p/a&amp;b.jpg</Key><LastModified>2009-10-12T17:50:30.000Z</LastModified>"
		"<ETag>&quot;fba9dede5f27731c9771645a39863328&quot;</ETag><Size>434234</Size>"
		"<StorageClass>STANDARD</StorageClass></Contents>"
		"<Contents><Key>p/d/&#x3c;x&#62;</Key><ETag>\"e2\"</ETag><Size>0</Size></Contents>"
		"</ListBucketResult>";
	struct page p = { 0 };
	char tok[64];
	int trunc;

	ck_assert_int_eq(s3_parse_list(xml, on_key, &p, tok, sizeof(tok), &trunc), 0);
	ck_assert_int_eq(trunc, 1);
	ck_assert_str_eq(tok, "1a+/b=&c");
	ck_assert_int_eq(p.n, 2);
	ck_assert_int_eq(p.bad, 0);
	ck_assert_str_eq(p.keys[0], "p/a&b.jpg");
	ck_assert_uint_eq(p.st[0].size, 434234);
	ck_assert_str_eq(p.st[0].etag, "\"fba9dede5f27731c9771645a39863328\"");
	ck_assert_int_eq(p.st[0].mtime_ns, 1255369830LL * 1000000000LL);
	ck_assert_str_eq(p.keys[1], "p/d/<x>");
	ck_assert_uint_eq(p.st[1].size, 0);
}
END_TEST

START_TEST(list_last_and_urlencoded)
{
	static const char xml[] = HEAD "<EncodingType>url</EncodingType>"
		"<IsTruncated>false</IsTruncated>"
		"<Contents><Key>p/sp%20ace/%C3%A9%2Bx</Key><Size>5</Size></Contents>"
		"<Contents><Key>p/nul%00</Key><Size>5</Size></Contents>"
		"</ListBucketResult>";
	struct page p = { 0 };
	char tok[64];
	int trunc;

	ck_assert_int_eq(s3_parse_list(xml, on_key, &p, tok, sizeof(tok), &trunc), 0);
	ck_assert_int_eq(trunc, 0);
	ck_assert_str_eq(tok, "");
	ck_assert_int_eq(p.n, 2);
	ck_assert_str_eq(p.keys[0], "p/sp ace/\xc3\xa9+x");
	ck_assert_int_eq(p.bad, 1);        /* %00 cannot be a path */
}
END_TEST

START_TEST(list_hostile)
{
	struct page p = { 0 };
	char tok[16], big[5000];
	int trunc;

	ck_assert_int_eq(s3_parse_list("", on_key, &p, tok, sizeof(tok), &trunc), -EIO);
	ck_assert_int_eq(s3_parse_list("<Error><Code>AccessDenied</Code></Error>", on_key, &p, tok,
				       sizeof(tok), &trunc), -EIO);
	ck_assert_int_eq(s3_parse_list(HEAD "<Contents><Key>x</Key>", on_key, &p, tok, sizeof(tok),
				       &trunc), -EIO);
	ck_assert_int_eq(s3_parse_list(HEAD "<Contents><Key>x</Contents>", on_key, &p, tok,
				       sizeof(tok), &trunc), -EIO);
	ck_assert_int_eq(s3_parse_list(HEAD "<Contents><Size>1</Size></Contents>", on_key, &p, tok,
				       sizeof(tok), &trunc), -EIO);
	/* a token that does not fit is an error, never a truncated token */
	ck_assert_int_eq(s3_parse_list(HEAD "<NextContinuationToken>0123456789abcdefXYZ"
				       "</NextContinuationToken>", on_key, &p, tok, sizeof(tok), &trunc),
			 -EIO);
	ck_assert_int_eq(p.n, 0);
	/* a key longer than PATH_MAX is reported bad, not cut */
	strcpy(big, HEAD "<Contents><Key>");
	memset(big + strlen(big), 'k', 4200);
	strcpy(big + strlen(HEAD "<Contents><Key>") + 4200, "</Key><Size>1</Size></Contents>"
	       "</ListBucketResult>");
	ck_assert_int_eq(s3_parse_list(big, on_key, &p, tok, sizeof(tok), &trunc), 0);
	ck_assert_int_eq(p.n, 1);
	ck_assert_int_eq(p.bad, 1);
	/* garbage sizes do not crash and do not overflow */
	memset(&p, 0, sizeof(p));
	ck_assert_int_eq(s3_parse_list(HEAD "<Contents><Key>z</Key><Size>99999999999999999999999999"
				       "9999999</Size><ETag>" "&bogus;" "</ETag></Contents>", on_key, &p,
				       tok, sizeof(tok), &trunc), 0);
	ck_assert_str_eq(p.st[0].etag, "");
}
END_TEST

struct names {
	int n;
	char keys[32][300];
};

static int collect(void *arg, const char *key, const struct backend_stat *st)
{
	struct names *n = arg;

	(void)st;
	ck_assert_int_lt(n->n, 32);
	snprintf(n->keys[n->n++], sizeof(n->keys[0]), "%s", key);
	return 0;
}

static int has(const struct names *n, const char *k)
{
	for (int i = 0; i < n->n; i++)
		if (!strcmp(n->keys[i], k))
			return 1;
	return 0;
}

struct pipe_ctx {
	struct key_filter *kf;
};

static int to_filter(void *arg, const char *key, int bad, const struct backend_stat *st)
{
	struct pipe_ctx *c = arg;

	if (bad)
		return 0;
	return key_filter_push(c->kf, key, st);
}

/* The hostile key set of the issue, in S3's byte order, as one page. */
START_TEST(hostile_keys)
{
	char xml[8192], seg[300];
	static const char *keys[] = {
		"%2Fabs", "..%2Fescape", ".epochfs%2Fstats", "a", "a%2Fb", "ctl%01x", "dir%2F",
		"dir%2Ffile", "dot%2F.%2Fx", "dup", "dup", "latin%FFbyte", "s%2F%2Fdouble",
		"sp%20ace", "up%2F..%2F..%2Fetc", "z%C3%A9" };
	struct backend_counters cnt = { 0 };
	struct names out = { 0 };
	struct pipe_ctx c;
	size_t o;
	char tok[16];
	int trunc;

	o = (size_t)snprintf(xml, sizeof(xml), HEAD "<EncodingType>url</EncodingType>");
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		o += (size_t)snprintf(xml + o, sizeof(xml) - o,
				      "<Contents><Key>%s</Key><Size>1</Size></Contents>", keys[i]);
	memset(seg, 'L', 299);
	seg[299] = 0;
	o += (size_t)snprintf(xml + o, sizeof(xml) - o,
			      "<Contents><Key>zz%%2F%s</Key><Size>1</Size></Contents>", seg);
	snprintf(xml + o, sizeof(xml) - o, "</ListBucketResult>");
	ck_assert_int_eq(key_filter_create(collect, &out, &cnt, "test", &c.kf), 0);
	ck_assert_int_eq(s3_parse_list(xml, to_filter, &c, tok, sizeof(tok), &trunc), 0);
	ck_assert_int_eq(key_filter_flush(c.kf), 0);
	ck_assert_int_eq(key_filter_unsorted(c.kf), 0);
	key_filter_destroy(c.kf);
	/* shown as they are */
	ck_assert(has(&out, "a/b"));
	ck_assert(has(&out, "dir/file"));
	ck_assert(has(&out, "dup"));
	ck_assert(has(&out, "latin\xff" "byte"));
	ck_assert(has(&out, "sp ace"));
	ck_assert(has(&out, "z\xc3\xa9"));
	ck_assert_int_eq(out.n, 6);
	/* skipped and counted: /abs, ../escape, .epochfs/stats, a (also a prefix),
	 * ctl\x01x, dot/./x, the second dup, s//double, up/../../etc, zz/LLL...;
	 * dir/ is a directory marker and not counted */
	ck_assert_uint_eq(atomic_load(&cnt.skipped_keys), 10);
	for (int i = 0; i < out.n; i++)
		ck_assert_int_eq(backend_key_check(out.keys[i]), 0);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("s3");
	TCase *t = tcase_create("parse");

	tcase_add_test(t, urls);
	tcase_add_test(t, credentials);
	tcase_add_test(t, config);
	tcase_add_test(t, xml_text);
	tcase_add_test(t, list_page);
	tcase_add_test(t, list_last_and_urlencoded);
	tcase_add_test(t, list_hostile);
	tcase_add_test(t, hostile_keys);
	suite_add_tcase(s, t);
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
