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
#include "creds_int.h"
#include "backends/base/log.h"


/* snprintf for messages: a long path or URL is cut, never an overflow. */
void creds_errf(char *buf, size_t n, const char *fmt, ...)
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

void creds_wipe_free(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

/* Read a whole small file; NULL (errno set) if missing or too big.  Trailing
 * blanks (a token file's newline) are cut. */
char *creds_slurp(const char *path)
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
	creds_errf(s->what, sizeof(s->what), "role %s, token file %s, STS %s", s->role_arn,
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
	if ((text = creds_slurp(cpath))) {
		found = creds_ini_has_section(text, profile);
		if (!creds_ini_get(text, profile, "aws_access_key_id", c->key, sizeof(c->key)) &&
		    !creds_ini_get(text, profile, "aws_secret_access_key", c->secret,
				   sizeof(c->secret))) {
			if (creds_ini_get(text, profile, "aws_session_token", c->token,
					  sizeof(c->token)))
				c->token[0] = 0;
			creds_errf(s->what, sizeof(s->what), "profile '%s' in %s", profile, cpath);
			rc = 1;
		} else {
			explicit_bzero(c, sizeof(*c));
		}
		creds_wipe_free(text);
		if (rc)
			return rc;
	}
	/* the config file: [profile NAME], [default] */
	if (strcmp(profile, "default"))
		snprintf(sec, sizeof(sec), "profile %s", profile);
	else
		snprintf(sec, sizeof(sec), "default");
	if ((text = creds_slurp(fpath))) {
		found |= creds_ini_has_section(text, sec);
		if (!creds_ini_get(text, sec, "aws_access_key_id", c->key, sizeof(c->key)) &&
		    !creds_ini_get(text, sec, "aws_secret_access_key", c->secret,
				   sizeof(c->secret))) {
			if (creds_ini_get(text, sec, "aws_session_token", c->token, sizeof(c->token)))
				c->token[0] = 0;
			creds_errf(s->what, sizeof(s->what), "profile '%s' in %s", profile, fpath);
			rc = 1;
		} else if (explicit_bzero(c, sizeof(*c)),
			   !creds_ini_get(text, sec, "web_identity_token_file", v, sizeof(v))) {
			if (creds_ini_get(text, sec, "role_arn", arn, sizeof(arn))) {
				creds_errf(err, errlen, "profile '%s' in %s has web_identity_token_file"
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
		creds_wipe_free(text);
		if (rc)
			return rc;
	}
	if (env("AWS_PROFILE") && !found) {
		creds_errf(err, errlen, "AWS_PROFILE '%s' is neither in %s nor in %s", profile, cpath,
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
			creds_errf(err, errlen, "AWS_CONTAINER_CREDENTIALS_FULL_URI %s: plain http is"
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
	creds_errf(s->what, sizeof(s->what), "%s", s->url);
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
			creds_errf(err, errlen, "an AWS_* credential variable is too long");
			explicit_bzero(c, sizeof(*c));
			return -EACCES;
		}
		creds_errf(s->what, sizeof(s->what), "AWS_ACCESS_KEY_ID%s",
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

		if ((rc = creds_source_fetch(s, c, why, sizeof(why)))) {
			creds_errf(err, errlen, "AWS credentials from %s (%s) failed: %s",
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
		creds_errf(s->what, sizeof(s->what), "%s", s->imds);
		if (!(rc = creds_source_fetch(s, c, why, sizeof(why))))
			return 0;
		if (rc == -ENOMEM)
			return rc;
		note(looked, sizeof(looked), "%s", why);
		s->kind = CREDS_NONE;
	}
	creds_errf(err, errlen, "no AWS credentials (%s); or use --no-sign for a public bucket",
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
			creds_wipe_free(up);
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
	creds_wipe_free(oup);
	creds_wipe_free(oth);
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
		rc = creds_source_fetch(&p->src, &c, err, sizeof(err));
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
		creds_errf(err, errlen, "out of memory");
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
		creds_errf(err, errlen, "out of memory");
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
	creds_wipe_free(p->userpwd);
	creds_wipe_free(p->tokhdr);
	creds_source_clear(&p->src);
	explicit_bzero(&p->cur, sizeof(p->cur));
	free(p);
}
