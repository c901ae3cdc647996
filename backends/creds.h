/* SPDX-License-Identifier: MIT */
/* AWS credentials found the way the AWS tools find them, first found wins:
 *
 *   1. environment: AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY
 *      (+ AWS_SESSION_TOKEN)
 *   2. the profile AWS_PROFILE (else "default"): keys in the shared
 *      credentials file (AWS_SHARED_CREDENTIALS_FILE, else
 *      ~/.aws/credentials), then in the config file (AWS_CONFIG_FILE, else
 *      ~/.aws/config, section "[profile NAME]"), then the profile's
 *      role_arn + web_identity_token_file
 *   3. web identity (EKS IRSA): AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN
 *      (+ AWS_ROLE_SESSION_NAME) through STS AssumeRoleWithWebIdentity
 *      (unsigned; AWS_ENDPOINT_URL_STS, AWS_ENDPOINT_URL, else
 *      https://sts.REGION.amazonaws.com)
 *   4. ECS container credentials: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI
 *      (http://169.254.170.2 + it) or AWS_CONTAINER_CREDENTIALS_FULL_URI,
 *      with AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE or
 *      AWS_CONTAINER_AUTHORIZATION_TOKEN as the Authorization header
 *   5. EC2 instance metadata, IMDSv2 (AWS_EC2_METADATA_SERVICE_ENDPOINT,
 *      else http://169.254.169.254; AWS_EC2_METADATA_DISABLED=true skips it)
 *
 * A source that is configured (its variables or profile keys are set) and
 * fails ends the search with its error, as the AWS SDKs do, rather than
 * falling through to another identity (the instance's role).
 *
 * Temporary credentials (a session token and an expiration) are refreshed
 * from the same source by a thread of the provider, `margin_s` before they
 * expire; readers copy the current ones under a mutex that is never held
 * across a network call.  Secrets never reach a log line: lines name the
 * source, the file or URL, the last 4 characters of the key id and the
 * expiration. */
#ifndef EPOCHFS_CREDS_H
#define EPOCHFS_CREDS_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct curl_slist;

#define CREDS_KEY_MAX 128
#define CREDS_SECRET_MAX 256
#define CREDS_TOKEN_MAX 8192       /* STS session tokens vary in size */
#define CREDS_MARGIN_S 300         /* refresh 5 minutes before expiry */
#define CREDS_MIN_RETRY_S 30       /* least time between two refreshes */
#define CREDS_IMDS_CONNECT_S 1
#define CREDS_IMDS_TIMEOUT_S 2
#define CREDS_ECS_TIMEOUT_S 5
#define CREDS_STS_TIMEOUT_S 10
#define CREDS_IMDS_DEFAULT "http://169.254.169.254"
#define CREDS_ECS_DEFAULT "http://169.254.170.2"

struct aws_creds {
	char key[CREDS_KEY_MAX];
	char secret[CREDS_SECRET_MAX];
	char token[CREDS_TOKEN_MAX];   /* "" when none */
	time_t expiration;             /* 0: does not expire */
};

enum creds_source {
	CREDS_NONE = 0,
	CREDS_ENV,
	CREDS_PROFILE,         /* static keys of a profile */
	CREDS_WEB_IDENTITY,    /* from the environment or a profile */
	CREDS_ECS,
	CREDS_IMDS,
};

/* "environment", "profile", "web identity", "ECS container", "instance
 * metadata (IMDSv2)". */
const char *creds_source_name(enum creds_source s);

/* The parsers of the three answers, pure and unit-tested.  Each fills c (all
 * of it: key, secret, token, expiration) or leaves it zeroed. */

/* An STS AssumeRoleWithWebIdentityResponse.  0; -EACCES for an
 * ErrorResponse (its <Code> in code, its <Message> in msg, either may be
 * NULL); -EIO when the XML is neither or lacks a field. */
int creds_parse_sts(const char *xml, struct aws_creds *c, char *code, size_t codelen,
		    char *msg, size_t msglen);

/* The JSON of the ECS endpoint and of IMDS's .../security-credentials/ROLE
 * ({"AccessKeyId","SecretAccessKey","Token","Expiration"}, IMDS adds
 * "Code":"Success").  0; -EACCES when "Code" is present and not "Success"
 * (copied to code); -EIO when malformed or a field is missing. */
int creds_parse_json(const char *json, struct aws_creds *c, char *code, size_t codelen);

/* ISO 8601 UTC or with an offset: 2026-12-07T19:36:05Z,
 * 2026-12-07T19:36:05.123Z, 2026-12-07T21:36:05+02:00.  0 or -EINVAL. */
int creds_parse_time(const char *s, time_t *out);

/* The value of key in [section] of an INI text (the AWS credentials and
 * config files: '#' and ';' comments, blanks around names and values
 * ignored, CRLF accepted).  0, -ENOENT or -ENAMETOOLONG. */
int creds_ini_get(const char *text, const char *section, const char *key, char *out,
		  size_t outlen);

/* 1 when text has a "[section]" header line. */
int creds_ini_has_section(const char *text, const char *section);

/* Where the ECS endpoint may be: https anywhere; http only on a loopback
 * address, 169.254.170.2, 169.254.170.23 or [fd00:ec2::23] (as the SDKs
 * allow).  1 allowed, 0 refused. */
int creds_ecs_url_allowed(const char *url);

struct creds_options {
	const char *region;      /* for the default STS endpoint (NULL: us-east-1) */
	unsigned margin_s;       /* 0: CREDS_MARGIN_S */
	unsigned min_retry_s;    /* 0: EPOCHFS_CREDS_MIN_RETRY_S (tests), else
				  * CREDS_MIN_RETRY_S */
};

struct creds_provider;

/* Walk the chain once (the network sources are asked synchronously, with
 * short timeouts), log the source used, start the refresh thread when the
 * credentials expire.  0; -EACCES when nothing was found or a configured
 * source was refused (err says where it looked and why each failed);
 * -EIO when a configured source did not answer; -ENOMEM. */
int creds_resolve(const struct creds_options *o, struct creds_provider **out,
		  char *err, size_t errlen);

enum creds_source creds_source(const struct creds_provider *p);

/* Copy the current credentials into c (thread-safe, never waits for the
 * network).  Returns the generation: 1 for the first set, +1 per refresh. */
uint64_t creds_get(struct creds_provider *p, struct aws_creds *c);

/* For a SigV4 request through libcurl: set CURLOPT_USERPWD on the easy
 * handle (a CURL *) to the current "key:secret" and append
 * "x-amz-security-token: TOKEN" to *hdrs when there is a token.  Usable as
 * the fetch engine's per-request hook (arg is the provider).  0 or
 * -ENOMEM. */
int creds_apply(void *provider, void *easy, struct curl_slist **hdrs);

/* Stop the refresh thread, wipe the secrets, free. */
void creds_destroy(struct creds_provider *p);

#endif
