/* SPDX-License-Identifier: MIT */
/* Unit tests of the AWS credential chain (backends/creds.c): the parsers of
 * each answer (STS XML, ECS and IMDS JSON, times, INI files), then the chain
 * and the refresh against tests/fake_aws.py, a fake of STS, IMDSv2 and ECS
 * on 127.0.0.1 that this program starts and stops.  Every test clears the
 * AWS_* environment first and disables IMDS unless it points it at the fake:
 * nothing here ever talks to 169.254.x.x or any non-loopback address. */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <curl/curl.h>
#include "backends/creds.h"

/* ----- parsers ----------------------------------------------------------- */

START_TEST(times)
{
	time_t t;

	ck_assert_int_eq(creds_parse_time("2026-12-07T19:36:05Z", &t), 0);
	ck_assert_int_eq(t, 1796672165);
	ck_assert_int_eq(creds_parse_time("2026-12-07T19:36:05.123Z", &t), 0);
	ck_assert_int_eq(t, 1796672165);
	ck_assert_int_eq(creds_parse_time("2026-12-07T21:36:05+02:00", &t), 0);
	ck_assert_int_eq(t, 1796672165);
	ck_assert_int_eq(creds_parse_time("2026-12-07T14:36:05-05:00", &t), 0);
	ck_assert_int_eq(t, 1796672165);
	ck_assert_int_eq(creds_parse_time("2026-12-07T19:36:05", &t), -EINVAL);
	ck_assert_int_eq(creds_parse_time("2026-12-07 19:36:05Z", &t), -EINVAL);
	ck_assert_int_eq(creds_parse_time("2026-13-07T19:36:05Z", &t), -EINVAL);
	ck_assert_int_eq(creds_parse_time("2026-12-07T19:36:05Zjunk", &t), -EINVAL);
	ck_assert_int_eq(creds_parse_time("2026-12-07T19:36:05.Z", &t), -EINVAL);
	ck_assert_int_eq(creds_parse_time("", &t), -EINVAL);
}
END_TEST

/* The example of the STS API reference, as STS sends it. */
static const char sts_ok[] =
	"<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n"
	"  <AssumeRoleWithWebIdentityResult>\n"
	"    <SubjectFromWebIdentityToken>amzn1.account.AF6RHO7KZU5XRVQJGXK6HB56KR2A</SubjectFromWebIdentityToken>\n"
	"    <Audience>client.5498841531868486423.1548@apps.example.com</Audience>\n"
	"    <AssumedRoleUser>\n"
	"      <Arn>arn:aws:sts::123456789012:assumed-role/FederatedWebIdentityRole/app1</Arn>\n"
	"      <AssumedRoleId>AROACLKWSDQRAOEXAMPLE:app1</AssumedRoleId>\n"
	"    </AssumedRoleUser>\n"
	"    <Credentials>\n"
	"      <SessionToken>AQoDYXdzEE0a8ANXXXXXXXXNO1ewxE5TijQyp+IEXAMPLE&amp;x=1</SessionToken>\n"
	"      <SecretAccessKey>wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY</SecretAccessKey>\n"
	"      <Expiration>2014-10-24T23:00:23Z</Expiration>\n"
	"      <AccessKeyId>ASgeIAIOSFODNN7EXAMPLE</AccessKeyId>\n"
	"    </Credentials>\n"
	"    <SourceIdentity>SourceIdentityValue</SourceIdentity>\n"
	"    <Provider>www.amazon.com</Provider>\n"
	"  </AssumeRoleWithWebIdentityResult>\n"
	"  <ResponseMetadata>\n"
	"    <RequestId>ad4156e9-bce1-11e2-82e6-6b6efEXAMPLE</RequestId>\n"
	"  </ResponseMetadata>\n"
	"</AssumeRoleWithWebIdentityResponse>\n";

static const char sts_err[] =
	"<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n"
	"  <Error>\n"
	"    <Type>Sender</Type>\n"
	"    <Code>InvalidIdentityToken</Code>\n"
	"    <Message>Incorrect token audience &amp; more</Message>\n"
	"  </Error>\n"
	"  <RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId>\n"
	"</ErrorResponse>\n";

START_TEST(sts_xml)
{
	struct aws_creds c;
	char code[64], msg[128];

	ck_assert_int_eq(creds_parse_sts(sts_ok, &c, code, sizeof(code), msg, sizeof(msg)), 0);
	ck_assert_str_eq(c.key, "ASgeIAIOSFODNN7EXAMPLE");
	ck_assert_str_eq(c.secret, "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY");
	ck_assert_str_eq(c.token, "AQoDYXdzEE0a8ANXXXXXXXXNO1ewxE5TijQyp+IEXAMPLE&x=1");
	ck_assert_int_eq(c.expiration, 1414191623);

	ck_assert_int_eq(creds_parse_sts(sts_err, &c, code, sizeof(code), msg, sizeof(msg)),
			 -EACCES);
	ck_assert_str_eq(code, "InvalidIdentityToken");
	ck_assert_str_eq(msg, "Incorrect token audience & more");
	ck_assert_str_eq(c.key, "");
	ck_assert_int_eq(creds_parse_sts(sts_err, &c, NULL, 0, NULL, 0), -EACCES);

	/* not STS, a field missing, a bad time, a bad entity */
	ck_assert_int_eq(creds_parse_sts("<html>502 Bad Gateway</html>", &c, code, sizeof(code),
					 msg, sizeof(msg)), -EIO);
	ck_assert_int_eq(creds_parse_sts("", &c, NULL, 0, NULL, 0), -EIO);
	{
		char *x = strdup(sts_ok);
		char *p = strstr(x, "<Expiration>") + strlen("<Expiration>");

		memcpy(p, "2014-10-24 23", 13);
		ck_assert_int_eq(creds_parse_sts(x, &c, NULL, 0, NULL, 0), -EIO);
		strcpy(x, sts_ok);
		p = strstr(x, "<SecretAccessKey>");
		memcpy(p, "<SecretAccessKez>", 17);
		ck_assert_int_eq(creds_parse_sts(x, &c, NULL, 0, NULL, 0), -EIO);
		ck_assert_str_eq(c.key, "");
		strcpy(x, sts_ok);
		p = strstr(x, "&amp;");
		memcpy(p, "&bad;", 5);
		ck_assert_int_eq(creds_parse_sts(x, &c, NULL, 0, NULL, 0), -EIO);
		free(x);
	}
}
END_TEST

/* IMDS's answer for .../security-credentials/ROLE, as EC2 sends it. */
static const char imds_json[] =
	"{\n"
	"  \"Code\" : \"Success\",\n"
	"  \"LastUpdated\" : \"2026-12-07T19:00:01Z\",\n"
	"  \"Type\" : \"AWS-HMAC\",\n"
	"  \"AccessKeyId\" : \"ASIAIMDSEXAMPLE\",\n"
	"  \"SecretAccessKey\" : \"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\",\n"
	"  \"Token\" : \"IQoJb3JpZ2luX2VjEXAMPLE==\",\n"
	"  \"Expiration\" : \"2026-12-07T19:36:05Z\"\n"
	"}";

/* The ECS agent's (and EKS Pod Identity's) answer. */
static const char ecs_json[] =
	"{\"AccessKeyId\":\"ASIAECSEXAMPLE\",\"Expiration\":\"2026-12-07T19:36:05Z\","
	"\"RoleArn\":\"arn:aws:iam::123456789012:role/task\",\"SecretAccessKey\":"
	"\"se\\/cret\\u0041\\n\",\"Token\":\"tok\\\"en\",\"Extra\":{\"a\":[1,2.5e3,true,null,"
	"{\"b\":\"}\"}]},\"AccountId\":\"123456789012\"}\n";

START_TEST(json)
{
	struct aws_creds c;
	char code[64];

	ck_assert_int_eq(creds_parse_json(imds_json, &c, code, sizeof(code)), 0);
	ck_assert_str_eq(c.key, "ASIAIMDSEXAMPLE");
	ck_assert_str_eq(c.secret, "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
	ck_assert_str_eq(c.token, "IQoJb3JpZ2luX2VjEXAMPLE==");
	ck_assert_int_eq(c.expiration, 1796672165);

	ck_assert_int_eq(creds_parse_json(ecs_json, &c, code, sizeof(code)), 0);
	ck_assert_str_eq(c.key, "ASIAECSEXAMPLE");
	ck_assert_str_eq(c.secret, "se/cretA\n");
	ck_assert_str_eq(c.token, "tok\"en");
	ck_assert_int_eq(c.expiration, 1796672165);

	/* lasting keys: no token, no expiration */
	ck_assert_int_eq(creds_parse_json("{\"AccessKeyId\":\"K\",\"SecretAccessKey\":\"S\"}",
					  &c, code, sizeof(code)), 0);
	ck_assert_str_eq(c.token, "");
	ck_assert_int_eq(c.expiration, 0);

	/* IMDS saying no */
	ck_assert_int_eq(creds_parse_json("{\"Code\":\"AssumeRoleUnauthorizedAccess\","
					  "\"Message\":\"x\",\"LastUpdated\":\"2026-12-07T19:00:01Z\"}",
					  &c, code, sizeof(code)), -EACCES);
	ck_assert_str_eq(code, "AssumeRoleUnauthorizedAccess");

	/* malformed or incomplete */
	static const char *const bad[] = {
		"", "[]", "{", "{\"AccessKeyId\":\"K\"}", "{\"SecretAccessKey\":\"S\"}",
		"{\"AccessKeyId\":\"K\",\"SecretAccessKey\":\"S\"", 
		"{\"AccessKeyId\":\"K\",\"SecretAccessKey\":\"S\"} trailing",
		"{\"AccessKeyId\":\"K\",\"SecretAccessKey\":\"S\",\"Expiration\":\"soon\"}",
		"{\"AccessKeyId\":\"K\",\"SecretAccessKey\":\"S\\u0000\"}",
		"{\"AccessKeyId\":\"K\",\"SecretAccessKey\":\"S\\q\"}",
		"{\"AccessKeyId\":\"K\",\"SecretAccessKey\":\"S\nT\"}",
		"{\"AccessKeyId\":42,\"SecretAccessKey\":\"S\"}",
		"{\"AccessKeyId\":\"K\" \"SecretAccessKey\":\"S\"}",
		"{\"AccessKeyId\":\"K\",\"SecretAccessKey\":\"S\",\"x\":[1,}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		ck_assert_msg(creds_parse_json(bad[i], &c, code, sizeof(code)) == -EIO,
			      "accepted: %s", bad[i]);
		ck_assert_str_eq(c.key, "");
	}
	/* a key longer than the buffer */
	{
		char big[CREDS_SECRET_MAX + 64];

		snprintf(big, sizeof(big), "{\"AccessKeyId\":\"K\",\"SecretAccessKey\":\"%0*d\"}",
			 CREDS_SECRET_MAX, 0);
		ck_assert_int_eq(creds_parse_json(big, &c, NULL, 0), -EIO);
	}
}
END_TEST

START_TEST(ini)
{
	static const char text[] =
		"# comment\n"
		"[default]\n"
		"aws_access_key_id = AKIDDEFAULT\n"
		"region=eu-west-1\n"
		"\n"
		"[ profile work ]\r\n"
		"  aws_access_key_id   =  AKIDWORK  \r\n"
		"; another\n"
		"aws_secret_access_key = se=cret/with+stuff\n"
		"empty =\n"
		"[profile other]\n"
		"role_arn = arn:aws:iam::1:role/r\n";
	char v[64];

	ck_assert_int_eq(creds_ini_get(text, "default", "aws_access_key_id", v, sizeof(v)), 0);
	ck_assert_str_eq(v, "AKIDDEFAULT");
	ck_assert_int_eq(creds_ini_get(text, "profile work", "aws_access_key_id", v, sizeof(v)), 0);
	ck_assert_str_eq(v, "AKIDWORK");
	ck_assert_int_eq(creds_ini_get(text, "profile work", "aws_secret_access_key", v,
				       sizeof(v)), 0);
	ck_assert_str_eq(v, "se=cret/with+stuff");
	ck_assert_int_eq(creds_ini_get(text, "profile work", "empty", v, sizeof(v)), -ENOENT);
	ck_assert_int_eq(creds_ini_get(text, "profile work", "region", v, sizeof(v)), -ENOENT);
	ck_assert_int_eq(creds_ini_get(text, "work", "aws_access_key_id", v, sizeof(v)), -ENOENT);
	ck_assert_int_eq(creds_ini_get(text, "profile work", "aws_secret_access_key", v, 8),
			 -ENAMETOOLONG);
	ck_assert_int_eq(creds_ini_has_section(text, "profile work"), 1);
	ck_assert_int_eq(creds_ini_has_section(text, "profile other"), 1);
	ck_assert_int_eq(creds_ini_has_section(text, "default"), 1);
	ck_assert_int_eq(creds_ini_has_section(text, "other"), 0);
	ck_assert_int_eq(creds_ini_has_section(text, "profile"), 0);
}
END_TEST

START_TEST(ecs_urls)
{
	ck_assert_int_eq(creds_ecs_url_allowed("http://127.0.0.1:8080/creds"), 1);
	ck_assert_int_eq(creds_ecs_url_allowed("http://localhost/creds"), 1);
	ck_assert_int_eq(creds_ecs_url_allowed("http://[::1]:80/creds"), 1);
	ck_assert_int_eq(creds_ecs_url_allowed("http://169.254.170.2/v2/credentials/x"), 1);
	ck_assert_int_eq(creds_ecs_url_allowed("http://169.254.170.23/v1/credentials"), 1);
	ck_assert_int_eq(creds_ecs_url_allowed("http://[fd00:ec2::23]/v1/credentials"), 1);
	ck_assert_int_eq(creds_ecs_url_allowed("https://creds.example.com/x"), 1);
	ck_assert_int_eq(creds_ecs_url_allowed("http://creds.example.com/x"), 0);
	ck_assert_int_eq(creds_ecs_url_allowed("http://127.0.0.1@evil.example/x"), 0);
	ck_assert_int_eq(creds_ecs_url_allowed("http://10.0.0.1/x"), 0);
	ck_assert_int_eq(creds_ecs_url_allowed("ftp://127.0.0.1/x"), 0);
	ck_assert_int_eq(creds_ecs_url_allowed("127.0.0.1/x"), 0);
}
END_TEST

/* ----- the fake services ----------------------------------------------- */

static pid_t fake_pid;
static int fake_port;
static char base[64];          /* http://127.0.0.1:PORT */
static char tmpdir[64];

static void fake_path(char *out, size_t n)
{
	const char *src = getenv("SRCDIR");
	char exe[PATH_MAX];
	ssize_t l;

	if (src) {
		snprintf(out, n, "%s/tests/fake_aws.py", src);
		if (!access(out, R_OK))
			return;
	}
	snprintf(out, n, "tests/fake_aws.py");
	if (!access(out, R_OK))
		return;
	/* B/tests/check_creds -> B/../tests/fake_aws.py */
	if ((l = readlink("/proc/self/exe", exe, sizeof(exe) - 1)) > 0) {
		exe[l] = 0;
		for (int i = 0; i < 3; i++)
			*strrchr(exe, '/') = 0;
		snprintf(out, n, "%.4000s/tests/fake_aws.py", exe);
	}
}

static void fake_start(void)
{
	char path[PATH_MAX], line[64] = "";
	int fds[2];
	struct pollfd pfd;
	size_t got = 0;

	fake_path(path, sizeof(path));
	ck_assert_int_eq(pipe(fds), 0);
	fake_pid = fork();
	ck_assert_int_ge(fake_pid, 0);
	if (fake_pid == 0) {
		dup2(fds[1], 1);
		close(fds[0]);
		close(fds[1]);
		execlp("python3", "python3", path, "--rotate", "--ecs-auth", "ecs-auth-token",
		       "--web-token", "web-identity-jwt", (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	pfd.fd = fds[0];
	pfd.events = POLLIN;
	while (got < sizeof(line) - 1 && !strchr(line, '\n')) {
		ssize_t r;

		if (poll(&pfd, 1, 15000) <= 0)
			break;
		if ((r = read(fds[0], line + got, sizeof(line) - 1 - got)) <= 0)
			break;
		got += (size_t)r;
		line[got] = 0;
	}
	close(fds[0]);
	if (sscanf(line, "PORT %d", &fake_port) != 1) {
		fprintf(stderr, "fake_aws.py (%s) did not start: '%s'\n", path, line);
		kill(fake_pid, SIGTERM);
		waitpid(fake_pid, NULL, 0);
		fake_pid = 0;
		return;
	}
	snprintf(base, sizeof(base), "http://127.0.0.1:%d", fake_port);
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/check_creds.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void fake_stop(void)
{
	char cmd[128];

	if (fake_pid > 0) {
		kill(fake_pid, SIGTERM);
		waitpid(fake_pid, NULL, 0);
		fake_pid = 0;
	}
	if (tmpdir[0]) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
		if (system(cmd)) {
			/* leftovers in /tmp only */
		}
	}
}

struct buf {
	char *p;
	size_t n;
};

static size_t collect(char *d, size_t s, size_t m, void *arg)
{
	struct buf *b = arg;

	b->p = realloc(b->p, b->n + s * m + 1);
	memcpy(b->p + b->n, d, s * m);
	b->n += s * m;
	b->p[b->n] = 0;
	return s * m;
}

/* GET base+path with optional extra headers; the body (malloc'ed), status. */
static char *http_get(const char *path, struct curl_slist *hdrs, long *status)
{
	struct buf b = { calloc(1, 1), 0 };
	char url[256];
	CURL *h = curl_easy_init();

	snprintf(url, sizeof(url), "%s%s", base, path);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 10L);
	if (hdrs)
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	ck_assert_int_eq(curl_easy_perform(h), CURLE_OK);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
	curl_easy_cleanup(h);
	return b.p;
}

static void fake_set(const char *setting)
{
	char path[128];
	long st;

	snprintf(path, sizeof(path), "/_fake/set?%s", setting);
	free(http_get(path, NULL, &st));
	ck_assert_int_eq(st, 200);
}

/* Lines of the fake's request log that contain needle. */
static int fake_count(const char *needle)
{
	long st;
	char *log = http_get("/_fake/log", NULL, &st);
	int n = 0;

	for (char *p = log; (p = strstr(p, needle)); p++)
		n++;
	free(log);
	return n;
}

static void write_file(const char *name, const char *text, char *path, size_t n)
{
	FILE *f;

	snprintf(path, n, "%s/%s", tmpdir, name);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
}

/* No AWS_* variable, no ~/.aws, IMDS off: each test sets what it needs. */
static void clean_env(void)
{
	static const char *const vars[] = {
		"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
		"AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE", "AWS_WEB_IDENTITY_TOKEN_FILE",
		"AWS_ROLE_ARN", "AWS_ROLE_SESSION_NAME", "AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
		"AWS_CONTAINER_AUTHORIZATION_TOKEN", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
		"AWS_EC2_METADATA_SERVICE_ENDPOINT", "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE",
		"AWS_REGION", "AWS_DEFAULT_REGION",
	};

	ck_assert_msg(fake_pid > 0, "the fake AWS services did not start");
	for (size_t i = 0; i < sizeof(vars) / sizeof(*vars); i++)
		unsetenv(vars[i]);
	setenv("HOME", tmpdir, 1);     /* no ~/.aws there */
	setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
}

static void imds_on(void)
{
	setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", base, 1);
	unsetenv("AWS_EC2_METADATA_DISABLED");
}

/* Every source set at once, each giving different keys. */
static void all_sources(void)
{
	char p[PATH_MAX], url[128];

	setenv("AWS_ACCESS_KEY_ID", "AKIAENV", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "secret-env", 1);
	write_file("credentials", "[default]\naws_access_key_id = AKIAPROFILE\n"
		   "aws_secret_access_key = secret-profile\n", p, sizeof(p));
	setenv("AWS_SHARED_CREDENTIALS_FILE", p, 1);
	write_file("config", "[default]\nregion = eu-west-1\n", p, sizeof(p));
	setenv("AWS_CONFIG_FILE", p, 1);
	write_file("jwt", "web-identity-jwt\n", p, sizeof(p));
	setenv("AWS_WEB_IDENTITY_TOKEN_FILE", p, 1);
	setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/irsa", 1);
	setenv("AWS_ROLE_SESSION_NAME", "check-creds", 1);
	setenv("AWS_ENDPOINT_URL_STS", base, 1);
	snprintf(url, sizeof(url), "%s/ecs/creds", base);
	setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", url, 1);
	setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", "ecs-auth-token", 1);
	imds_on();
}

static enum creds_source resolve(struct aws_creds *c, int *rc, char *err, size_t errlen)
{
	struct creds_provider *p = NULL;
	enum creds_source s;

	*rc = creds_resolve(NULL, &p, err, errlen);
	memset(c, 0, sizeof(*c));
	if (*rc)
		return CREDS_NONE;
	ck_assert_uint_eq(creds_get(p, c), 1);
	s = creds_source(p);
	creds_destroy(p);
	return s;
}

START_TEST(imds_wire)
{
	struct curl_slist *h;
	char *body;
	long st;

	clean_env();
	/* IMDSv2: no token, no answer */
	body = http_get("/latest/meta-data/iam/security-credentials/", NULL, &st);
	ck_assert_int_eq(st, 401);
	free(body);
	h = curl_slist_append(NULL, "X-aws-ec2-metadata-token: made-up");
	free(http_get("/latest/meta-data/iam/security-credentials/", h, &st));
	curl_slist_free_all(h);
	ck_assert_int_eq(st, 401);
	/* the chain's IMDS step does PUT token, GET role, GET credentials */
	imds_on();
	{
		struct aws_creds c;
		char err[512];
		int rc, puts = fake_count("PUT /latest/api/token 200");

		ck_assert_int_eq(resolve(&c, &rc, err, sizeof(err)), CREDS_IMDS);
		ck_assert_int_eq(rc, 0);
		ck_assert_int_eq(strncmp(c.key, "ASIAIMDS", 8), 0);
		ck_assert_int_eq(strncmp(c.secret, "secret-imds", 11), 0);
		ck_assert_int_eq(strncmp(c.token, "token-imds", 10), 0);
		ck_assert_int_ge(c.expiration, time(NULL) + 3500);
		ck_assert_int_eq(fake_count("PUT /latest/api/token 200"), puts + 1);
	}
	ck_assert_int_ge(fake_count("GET /latest/meta-data/iam/security-credentials/ 200"), 1);
	ck_assert_int_ge(fake_count("GET /latest/meta-data/iam/security-credentials/fake-role 200"), 1);
}
END_TEST

/* The order: environment, profile, web identity, ECS, IMDS. */
START_TEST(chain_order)
{
	struct aws_creds c;
	char err[1024];
	int rc;

	clean_env();
	all_sources();
	ck_assert_int_eq(resolve(&c, &rc, err, sizeof(err)), CREDS_ENV);
	ck_assert_str_eq(c.key, "AKIAENV");
	ck_assert_str_eq(c.secret, "secret-env");
	ck_assert_int_eq(c.expiration, 0);
	setenv("AWS_SESSION_TOKEN", "env-token", 1);
	ck_assert_int_eq(resolve(&c, &rc, err, sizeof(err)), CREDS_ENV);
	ck_assert_str_eq(c.token, "env-token");

	unsetenv("AWS_ACCESS_KEY_ID");    /* half of a pair: not used */
	ck_assert_int_eq(resolve(&c, &rc, err, sizeof(err)), CREDS_PROFILE);
	ck_assert_str_eq(c.key, "AKIAPROFILE");
	ck_assert_str_eq(c.token, "");

	unsetenv("AWS_SHARED_CREDENTIALS_FILE");
	ck_assert_int_eq(resolve(&c, &rc, err, sizeof(err)), CREDS_WEB_IDENTITY);
	ck_assert_int_eq(strncmp(c.key, "ASIASTS", 7), 0);
	ck_assert_int_eq(strncmp(c.token, "token-sts", 9), 0);
	ck_assert_int_ge(c.expiration, time(NULL) + 3500);
	ck_assert_int_ge(fake_count("session check-creds"), 1);

	unsetenv("AWS_WEB_IDENTITY_TOKEN_FILE");
	ck_assert_int_eq(resolve(&c, &rc, err, sizeof(err)), CREDS_ECS);
	ck_assert_int_eq(strncmp(c.key, "ASIAECS", 7), 0);
	ck_assert_int_eq(strncmp(c.token, "token-ecs", 9), 0);

	unsetenv("AWS_CONTAINER_CREDENTIALS_FULL_URI");
	ck_assert_int_eq(resolve(&c, &rc, err, sizeof(err)), CREDS_IMDS);
	ck_assert_int_eq(strncmp(c.key, "ASIAIMDS", 8), 0);

	setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
	ck_assert_int_eq(resolve(&c, &rc, err, sizeof(err)), CREDS_NONE);
	ck_assert_int_eq(rc, -EACCES);
	/* the message says where it looked, and names no secret */
	ck_assert_ptr_nonnull(strstr(err, "AWS_ACCESS_KEY_ID"));
	ck_assert_ptr_nonnull(strstr(err, "profile 'default'"));
	ck_assert_ptr_nonnull(strstr(err, "AWS_WEB_IDENTITY_TOKEN_FILE"));
	ck_assert_ptr_nonnull(strstr(err, "AWS_CONTAINER_CREDENTIALS"));
	ck_assert_ptr_nonnull(strstr(err, "AWS_EC2_METADATA_DISABLED"));
	ck_assert_ptr_null(strstr(err, "secret"));
}
END_TEST

START_TEST(profiles)
{
	struct aws_creds c;
	char err[1024], p[PATH_MAX], cfg[2 * PATH_MAX + 1024];
	int rc;

	clean_env();
	write_file("credentials", "[default]\naws_access_key_id = AKIADEF\n"
		   "aws_secret_access_key = s-def\n[work]\naws_access_key_id = AKIAWORK\n"
		   "aws_secret_access_key = s-work\naws_session_token = t-work\n", p, sizeof(p));
	setenv("AWS_SHARED_CREDENTIALS_FILE", p, 1);
	write_file("jwt", "web-identity-jwt", p, sizeof(p));
	snprintf(cfg, sizeof(cfg), "[default]\nregion = eu-west-1\n"
		 "[profile cfgkeys]\naws_access_key_id = AKIACFG\naws_secret_access_key = s-cfg\n"
		 "[profile irsa]\nrole_arn = arn:aws:iam::1:role/from-profile\n"
		 "web_identity_token_file = %s\nrole_session_name = prof-session\n"
		 "[profile halfweb]\nweb_identity_token_file = %s\n"
		 "[profile proc]\ncredential_process = /bin/false\n", p, p);
	write_file("config", cfg, p, sizeof(p));
	setenv("AWS_CONFIG_FILE", p, 1);
	setenv("AWS_ENDPOINT_URL_STS", base, 1);

	ck_assert_int_eq(resolve(&c, &rc, err, sizeof(err)), CREDS_PROFILE);
	ck_assert_str_eq(c.key, "AKIADEF");
	setenv("AWS_PROFILE", "work", 1);
	ck_assert_int_eq(resolve(&c, &rc, err, sizeof(err)), CREDS_PROFILE);
	ck_assert_str_eq(c.key, "AKIAWORK");
	ck_assert_str_eq(c.token, "t-work");
	setenv("AWS_PROFILE", "cfgkeys", 1);
	ck_assert_int_eq(resolve(&c, &rc, err, sizeof(err)), CREDS_PROFILE);
	ck_assert_str_eq(c.key, "AKIACFG");
	setenv("AWS_PROFILE", "irsa", 1);
	ck_assert_int_eq(resolve(&c, &rc, err, sizeof(err)), CREDS_WEB_IDENTITY);
	ck_assert_int_eq(strncmp(c.key, "ASIASTS", 7), 0);
	ck_assert_int_ge(fake_count("session prof-session"), 1);
	/* a profile that is nowhere: an error, not another identity */
	setenv("AWS_PROFILE", "nosuch", 1);
	imds_on();
	ck_assert_int_eq(resolve(&c, &rc, err, sizeof(err)), CREDS_NONE);
	ck_assert_int_eq(rc, -EACCES);
	ck_assert_ptr_nonnull(strstr(err, "AWS_PROFILE 'nosuch'"));
	setenv("AWS_PROFILE", "halfweb", 1);
	ck_assert_int_eq(resolve(&c, &rc, err, sizeof(err)), CREDS_NONE);
	ck_assert_ptr_nonnull(strstr(err, "no role_arn"));
	/* credential_process is not supported: a warning, then the chain goes on */
	setenv("AWS_PROFILE", "proc", 1);
	ck_assert_int_eq(resolve(&c, &rc, err, sizeof(err)), CREDS_IMDS);
}
END_TEST

/* A configured source that fails ends the search with its reason. */
START_TEST(configured_failures)
{
	struct aws_creds c;
	char err[1024], p[PATH_MAX], url[128];
	int rc, imds;

	clean_env();
	imds_on();
	imds = fake_count("/latest/api/token");
	/* STS refuses the token */
	write_file("jwt-bad", "not-the-right-jwt", p, sizeof(p));
	setenv("AWS_WEB_IDENTITY_TOKEN_FILE", p, 1);
	setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/irsa", 1);
	setenv("AWS_ENDPOINT_URL_STS", base, 1);
	ck_assert_int_eq(resolve(&c, &rc, err, sizeof(err)), CREDS_NONE);
	ck_assert_int_eq(rc, -EACCES);
	ck_assert_ptr_nonnull(strstr(err, "InvalidIdentityToken"));
	ck_assert_ptr_nonnull(strstr(err, "web identity"));
	ck_assert_ptr_null(strstr(err, "not-the-right-jwt"));
	/* a missing token file */
	setenv("AWS_WEB_IDENTITY_TOKEN_FILE", "/nonexistent/token", 1);
	ck_assert_int_eq(resolve(&c, &rc, err, sizeof(err)), CREDS_NONE);
	ck_assert_ptr_nonnull(strstr(err, "/nonexistent/token"));
	/* STS unreachable (a closed port on loopback) */
	write_file("jwt", "web-identity-jwt", p, sizeof(p));
	setenv("AWS_WEB_IDENTITY_TOKEN_FILE", p, 1);
	setenv("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:1", 1);
	ck_assert_int_eq(resolve(&c, &rc, err, sizeof(err)), CREDS_NONE);
	ck_assert_int_eq(rc, -EIO);
	ck_assert_ptr_nonnull(strstr(err, "no answer from http://127.0.0.1:1/"));
	/* STS failing with 503 */
	setenv("AWS_ENDPOINT_URL_STS", base, 1);
	fake_set("fail_sts=503");
	ck_assert_int_eq(resolve(&c, &rc, err, sizeof(err)), CREDS_NONE);
	ck_assert_int_eq(rc, -EIO);
	ck_assert_ptr_nonnull(strstr(err, "ServiceUnavailable"));
	fake_set("fail_sts=0");
	unsetenv("AWS_WEB_IDENTITY_TOKEN_FILE");

	/* ECS: a wrong authorization token, the file winning over the variable */
	snprintf(url, sizeof(url), "%s/ecs/creds", base);
	setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", url, 1);
	setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", "wrong-auth", 1);
	ck_assert_int_eq(resolve(&c, &rc, err, sizeof(err)), CREDS_NONE);
	ck_assert_int_eq(rc, -EACCES);
	ck_assert_ptr_nonnull(strstr(err, "HTTP 401"));
	ck_assert_ptr_null(strstr(err, "wrong-auth"));
	write_file("ecs-token", "ecs-auth-token\n", p, sizeof(p));
	setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", p, 1);
	ck_assert_int_eq(resolve(&c, &rc, err, sizeof(err)), CREDS_ECS);
	/* no token at all */
	unsetenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
	unsetenv("AWS_CONTAINER_AUTHORIZATION_TOKEN");
	ck_assert_int_eq(resolve(&c, &rc, err, sizeof(err)), CREDS_NONE);
	/* a FULL_URI that may not be used, refused without a request */
	setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://192.0.2.1/creds", 1);
	ck_assert_int_eq(resolve(&c, &rc, err, sizeof(err)), CREDS_NONE);
	ck_assert_int_eq(rc, -EACCES);
	ck_assert_ptr_nonnull(strstr(err, "loopback"));
	unsetenv("AWS_CONTAINER_CREDENTIALS_FULL_URI");

	/* none of these fell through to IMDS */
	ck_assert_int_eq(fake_count("/latest/api/token"), imds);

	/* IMDS failing is the end of the chain: no credentials */
	fake_set("fail_imds=500");
	ck_assert_int_eq(resolve(&c, &rc, err, sizeof(err)), CREDS_NONE);
	ck_assert_int_eq(rc, -EACCES);
	ck_assert_ptr_nonnull(strstr(err, "HTTP 500 for an IMDSv2 token"));
	fake_set("fail_imds=0");
	/* nothing listening there */
	setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:1/", 1);
	ck_assert_int_eq(resolve(&c, &rc, err, sizeof(err)), CREDS_NONE);
	ck_assert_ptr_nonnull(strstr(err, "no answer from http://127.0.0.1:1/latest/api/token"));
}
END_TEST

struct hammer {
	struct creds_provider *p;
	int stop, bad;
	unsigned long n;
};

/* Readers during refreshes: every copy is a consistent set. */
static void *hammer(void *arg)
{
	struct hammer *h = arg;
	struct aws_creds c;

	while (!__atomic_load_n(&h->stop, __ATOMIC_ACQUIRE)) {
		creds_get(h->p, &c);
		/* ASIAIMDS0007 goes with secret-imds0007 and token-imds0007 */
		if (strcmp(c.key + 8, c.secret + 11) || strcmp(c.key + 8, c.token + 10))
			h->bad = 1;
		h->n++;
	}
	return NULL;
}

START_TEST(refresh)
{
	struct creds_options o = { .margin_s = 300, .min_retry_s = 1 };
	struct creds_provider *p;
	struct aws_creds c, first;
	struct hammer hm = { 0 };
	pthread_t th;
	char err[512], key[CREDS_KEY_MAX];
	uint64_t g;
	int i;

	clean_env();
	imds_on();
	/* credentials that expire 302 s from now: due for renewal in 2 s */
	fake_set("expire_in=302");
	ck_assert_int_eq(creds_resolve(&o, &p, err, sizeof(err)), 0);
	ck_assert_uint_eq(creds_get(p, &first), 1);
	hm.p = p;
	ck_assert_int_eq(pthread_create(&th, NULL, hammer, &hm), 0);
	for (i = 0; i < 100 && creds_get(p, &c) < 2; i++)
		usleep(100000);
	ck_assert_uint_ge(creds_get(p, &c), 2);
	ck_assert_str_ne(c.key, first.key);
	ck_assert_int_eq(strncmp(c.key, "ASIAIMDS", 8), 0);

	/* the source fails: the current credentials stay */
	fake_set("fail_imds=500");
	sleep(1);     /* a refresh already past the fake's check completes first */
	g = creds_get(p, &c);
	snprintf(key, sizeof(key), "%s", c.key);
	sleep(4);
	ck_assert_uint_eq(creds_get(p, &c), g);
	ck_assert_str_eq(c.key, key);
	/* and it recovers without anyone asking */
	fake_set("fail_imds=0");
	for (i = 0; i < 150 && creds_get(p, &c) == g; i++)
		usleep(100000);
	ck_assert_uint_gt(creds_get(p, &c), g);
	ck_assert_str_ne(c.key, key);

	__atomic_store_n(&hm.stop, 1, __ATOMIC_RELEASE);
	pthread_join(th, NULL);
	ck_assert_int_eq(hm.bad, 0);
	ck_assert_uint_gt(hm.n, 0);

	/* creds_apply gives a SigV4 request the current key and the token */
	{
		struct curl_slist *h = NULL;
		struct buf b = { calloc(1, 1), 0 };
		char url[128], want[CREDS_TOKEN_MAX + 64];
		CURL *e = curl_easy_init();

		creds_get(p, &c);
		snprintf(url, sizeof(url), "%s/_fake/echo", base);
		curl_easy_setopt(e, CURLOPT_URL, url);
		curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
		curl_easy_setopt(e, CURLOPT_AWS_SIGV4, "aws:amz:us-east-1:s3");
		ck_assert_int_eq(creds_apply(p, e, &h), 0);
		ck_assert_ptr_nonnull(h);
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
		curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, collect);
		curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
		ck_assert_int_eq(curl_easy_perform(e), CURLE_OK);
		curl_easy_cleanup(e);
		curl_slist_free_all(h);
		snprintf(want, sizeof(want), "Credential=%s/", c.key);
		ck_assert_msg(strstr(b.p, want), "no %s in %s", want, b.p);
		snprintf(want, sizeof(want), "x-amz-security-token: %s", c.token);
		ck_assert_msg(strcasestr(b.p, want), "no %s in %s", want, b.p);
		free(b.p);
	}
	creds_destroy(p);
	fake_set("expire_in=3600");
}
END_TEST

/* Lasting credentials start no refresh thread and creds_apply adds no
 * token header. */
START_TEST(lasting)
{
	struct creds_provider *p;
	struct curl_slist *h = NULL;
	char err[256];
	CURL *e;

	clean_env();
	setenv("AWS_ACCESS_KEY_ID", "AKIAENV", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "secret-env", 1);
	ck_assert_int_eq(creds_resolve(NULL, &p, err, sizeof(err)), 0);
	ck_assert_int_eq(creds_source(p), CREDS_ENV);
	e = curl_easy_init();
	ck_assert_int_eq(creds_apply(p, e, &h), 0);
	ck_assert_ptr_null(h);
	curl_easy_cleanup(e);
	creds_destroy(p);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("creds");
	TCase *t = tcase_create("parse");
	TCase *f = tcase_create("fake");

	tcase_add_test(t, times);
	tcase_add_test(t, sts_xml);
	tcase_add_test(t, json);
	tcase_add_test(t, ini);
	tcase_add_test(t, ecs_urls);
	suite_add_tcase(s, t);
	tcase_add_unchecked_fixture(f, fake_start, fake_stop);
	tcase_set_timeout(f, 60);
	tcase_add_test(f, imds_wire);
	tcase_add_test(f, chain_order);
	tcase_add_test(f, profiles);
	tcase_add_test(f, configured_failures);
	tcase_add_test(f, refresh);
	tcase_add_test(f, lasting);
	suite_add_tcase(s, f);
	return s;
}

int main(void)
{
	SRunner *r;
	int failed;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	r = srunner_create(suite());
	srunner_run_all(r, CK_NORMAL);
	failed = srunner_ntests_failed(r);
	srunner_free(r);
	curl_global_cleanup();
	return failed ? 1 : 0;
}
