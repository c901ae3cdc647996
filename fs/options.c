/* SPDX-License-Identifier: MIT */
/* Option parsing: GNU-style long options, and the same settings as -o keys so
 * that /etc/fstab and mount -t fuse.epochfs can pass them. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "options.h"
#include "backends/base/util.h"

void opts_usage(FILE *out, const char *prog)
{
	fprintf(out,
		"usage: %s [options] SOURCE MOUNTPOINT\n"
		"\n"
		"SOURCE is a directory or file://PATH (a parallel filesystem), http(s)://HOST/PATH/\n"
		"or s3://BUCKET/PREFIX.  The dataset appears read-only at MOUNTPOINT, cached on\n"
		"local disk; MOUNTPOINT/.epochfs/ holds the control and stats files.\n"
		"\n"
		"options (each also accepted as -o key=value, e.g. -o cache_size=100G):\n"
		"  --cache-dir DIR         cache directory (default /var/cache/epochfs)\n"
		"  --cache-size SIZE       cache bound, bytes with K/M/G/T suffix or N%% of the\n"
		"                          cache filesystem (default 50%%); counts index and data\n"
		"  --chunk-size SIZE       cache chunk size, 256K..1G, power of two (default 4M)\n"
		"  --policy shade|lru      eviction policy (default shade: never evict equals)\n"
		"  --list-ttl SECONDS      relist the source when the snapshot is older (default: never)\n"
		"  --refresh               relist the source at this mount\n"
		"  --backend-concurrency N requests in flight to the source (default 64)\n"
		"  --prefetch-bytes SIZE   prefetch bytes in flight (default 256M)\n"
		"  --substitute off|dir|all  serve a cached file of the same directory (dir)\n"
		"                          or anywhere (all) for one not yet here, and the\n"
		"                          missed one later in its place (default off)\n"
		"  --substitute-deadline MS  wait this long for a prefetch first (default 20)\n"
		"  --manifest FILE|URL     http: listing as 'path size' lines\n"
		"  --s3-endpoint URL       s3: endpoint (default AWS_ENDPOINT_URL or AWS)\n"
		"  --s3-path-style         s3: path-style addressing\n"
		"  --no-sign               s3: anonymous requests\n"
		"  --insecure              https: do not verify certificates\n"
		"  --entry-timeout SECONDS kernel entry/attr cache time (default 86400)\n"
		"  --no-open               the kernel sends no open or close: warm reads never\n"
		"                          reach the daemon; opens are counted at the first\n"
		"                          read that does (see epochfs(1)); no --substitute\n"
		"  -f                      stay in the foreground\n"
		"  -d                      debug log (implies -f)\n"
		"  -o OPT[,OPT...]         the options above as keys, and FUSE options\n"
		"                          (allow_other, default_permissions, ...)\n"
		"  -h, --help              this help\n"
		"  -V, --version           version\n",
		prog);
}

static int set_err(char *err, size_t errlen, const char *fmt, const char *a, const char *b)
{
	snprintf(err, errlen, fmt, a, b);
	return -EINVAL;
}

static int parse_uint(const char *v, unsigned long long max, unsigned long long *out)
{
	char *end;

	if (!v || !*v || *v == '-')
		return -EINVAL;
	errno = 0;
	*out = strtoull(v, &end, 10);
	if (errno || *end || *out > max)
		return -EINVAL;
	return 0;
}

static int append_fuse_opt(struct epochfs_opts *o, const char *opt)
{
	char *n;

	if (asprintf(&n, "%s%s%s", o->fuse_opts ? o->fuse_opts : "", o->fuse_opts ? "," : "", opt) < 0)
		return -ENOMEM;
	free(o->fuse_opts);
	o->fuse_opts = n;
	return 0;
}

/* Apply one setting by its key (long option name with '-' or '_').
 * Returns 1 when the key is not ours. */
static int apply(struct epochfs_opts *o, const char *key, const char *val, char *err, size_t errlen)
{
	unsigned long long u;
	uint64_t bytes;
	double pct;
	char k[64];
	size_t i;

	for (i = 0; key[i] && i + 1 < sizeof(k); i++)
		k[i] = key[i] == '_' ? '-' : key[i];
	k[i] = 0;

#define NEEDS_VALUE()                                                                  \
	do {                                                                           \
		if (!val || !*val)                                                     \
			return set_err(err, errlen, "option '%s' needs a value%s", key, ""); \
	} while (0)

	if (!strcmp(k, "cache-dir")) {
		NEEDS_VALUE();
		free(o->cache_dir);
		o->cache_dir = strdup(val);
		o->cache.cache_dir = o->cache_dir;
	} else if (!strcmp(k, "cache-size")) {
		NEEDS_VALUE();
		if (parse_size(val, &bytes, &pct) || (!bytes && !pct))
			return set_err(err, errlen, "bad cache size '%s' (use e.g. 500G, 1T or 80%%)%s", val, "");
		o->cache.capacity = bytes;
		o->cache.capacity_pct = pct;
	} else if (!strcmp(k, "chunk-size")) {
		NEEDS_VALUE();
		if (parse_size(val, &bytes, &pct) || pct || bytes < CACHE_MIN_CHUNK ||
		    bytes > (1ull << 30) || (bytes & (bytes - 1)))
			return set_err(err, errlen, "bad chunk size '%s' (a power of two from 256K to 1G)%s", val, "");
		o->cache.chunk_size = (uint32_t)bytes;
	} else if (!strcmp(k, "policy")) {
		NEEDS_VALUE();
		if (policy_parse(val, &o->cache.policy))
			return set_err(err, errlen, "bad policy '%s' (shade or lru)%s", val, "");
	} else if (!strcmp(k, "list-ttl")) {
		NEEDS_VALUE();
		if (parse_uint(val, 1ull << 40, &u))
			return set_err(err, errlen, "bad list TTL '%s' (seconds)%s", val, "");
		o->cache.list_ttl_s = (int64_t)u;
	} else if (!strcmp(k, "refresh")) {
		o->cache.refresh = 1;
	} else if (!strcmp(k, "backend-concurrency")) {
		NEEDS_VALUE();
		if (parse_uint(val, 4096, &u) || !u)
			return set_err(err, errlen, "bad backend concurrency '%s' (1..4096)%s", val, "");
		o->be.concurrency = (unsigned)u;
	} else if (!strcmp(k, "entry-timeout")) {
		NEEDS_VALUE();
		if (parse_uint(val, 1ull << 31, &u))
			return set_err(err, errlen, "bad entry timeout '%s' (seconds)%s", val, "");
		o->entry_timeout = (double)u;
	} else if (!strcmp(k, "substitute")) {
		NEEDS_VALUE();
		if (!strcmp(val, "off"))
			o->cache.substitute = SUBST_OFF;
		else if (!strcmp(val, "dir"))
			o->cache.substitute = SUBST_DIR;
		else if (!strcmp(val, "all"))
			o->cache.substitute = SUBST_ALL;
		else
			return set_err(err, errlen, "bad substitute scope '%s' (off, dir or all)%s", val, "");
	} else if (!strcmp(k, "substitute-deadline")) {
		NEEDS_VALUE();
		if (parse_uint(val, 60000, &u))
			return set_err(err, errlen, "bad substitute deadline '%s' (milliseconds)%s", val, "");
		o->cache.substitute_deadline_ms = (unsigned)u;
	} else if (!strcmp(k, "prefetch-bytes")) {
		NEEDS_VALUE();
		if (parse_size(val, &bytes, &pct) || pct || bytes < (1u << 20))
			return set_err(err, errlen, "bad prefetch bytes '%s' (at least 1M)%s", val, "");
		o->cache.prefetch_bytes = bytes;
	} else if (!strcmp(k, "manifest")) {
		NEEDS_VALUE();
		o->be.manifest = val;
	} else if (!strcmp(k, "s3-endpoint")) {
		NEEDS_VALUE();
		o->be.s3_endpoint = val;
	} else if (!strcmp(k, "s3-path-style")) {
		o->be.s3_path_style = 1;
	} else if (!strcmp(k, "no-sign")) {
		o->be.no_sign = 1;
	} else if (!strcmp(k, "insecure")) {
		o->be.insecure = 1;
	} else if (!strcmp(k, "no-open")) {
		o->no_open = 1;
		o->cache.no_open = 1;
	} else if (!strcmp(k, "debug")) {
		o->debug = 1;
		o->foreground = 1;
	} else {
		return 1;
	}
	return 0;
#undef NEEDS_VALUE
}

/* Split a -o list and apply each; the rest is kept for FUSE. */
static int apply_o(struct epochfs_opts *o, const char *list, char *err, size_t errlen)
{
	char *copy = strdup(list), *save = NULL, *tok, *eq;
	int rc = 0;

	if (!copy)
		return -ENOMEM;
	for (tok = strtok_r(copy, ",", &save); tok && rc == 0; tok = strtok_r(NULL, ",", &save)) {
		/* Mount helpers pass these; the mount is read-only whatever they say. */
		if (!strcmp(tok, "rw") || !strcmp(tok, "ro") || !strcmp(tok, "dev") ||
		    !strcmp(tok, "suid") || !strcmp(tok, "nodev") || !strcmp(tok, "nosuid") ||
		    !strcmp(tok, "exec") || !strcmp(tok, "noexec") || !strcmp(tok, "auto") ||
		    !strcmp(tok, "noauto") || !strcmp(tok, "user") || !strcmp(tok, "nouser") ||
		    !strcmp(tok, "_netdev") || !strcmp(tok, "nofail") || !strncmp(tok, "x-", 2) ||
		    !strcmp(tok, "defaults"))
			continue;
		eq = strchr(tok, '=');
		if (eq)
			*eq = 0;
		rc = apply(o, tok, eq ? eq + 1 : NULL, err, errlen);
		if (rc == 1) {
			if (eq)
				*eq = '=';
			rc = append_fuse_opt(o, tok);
		} else if (rc == 0 && eq) {
			/* keep the value alive: options point into it */
			if (!strcmp(tok, "manifest") || !strcmp(tok, "s3_endpoint") ||
			    !strcmp(tok, "s3-endpoint")) {
				char *v = strdup(eq + 1);

				if (!v) {
					rc = -ENOMEM;
					break;
				}
				if (!strcmp(tok, "manifest")) {
					free(o->manifest_owned);
					o->be.manifest = o->manifest_owned = v;
				} else {
					free(o->endpoint_owned);
					o->be.s3_endpoint = o->endpoint_owned = v;
				}
			}
		}
	}
	free(copy);
	return rc;
}

int opts_parse(int argc, char **argv, struct epochfs_opts *o, char *err, size_t errlen)
{
	const char *pos[2];
	int npos = 0, i, rc;

	memset(o, 0, sizeof(*o));
	cache_config_init(&o->cache);
	backend_options_init(&o->be);
	o->entry_timeout = 86400;
	*err = 0;
	for (i = 1; i < argc; i++) {
		char *a = argv[i];

		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			o->help = 1;
			return 0;
		}
		if (!strcmp(a, "-V") || !strcmp(a, "--version")) {
			o->version = 1;
			return 0;
		}
		if (!strcmp(a, "-f")) {
			o->foreground = 1;
		} else if (!strcmp(a, "-d")) {
			o->debug = 1;
			o->foreground = 1;
		} else if (!strcmp(a, "-s")) {
			/* single-threaded: accepted for compatibility, ignored */
		} else if (!strncmp(a, "-o", 2)) {
			const char *list = a[2] ? a + 2 : (i + 1 < argc ? argv[++i] : NULL);

			if (!list)
				return set_err(err, errlen, "option -o needs a value%s%s", "", "");
			rc = apply_o(o, list, err, errlen);
			if (rc)
				return rc < 0 && *err ? rc : set_err(err, errlen, "bad -o options '%s'%s", list, "");
		} else if (!strncmp(a, "--", 2) && a[2]) {
			char *eq = strchr(a, '=');
			char key[64];
			const char *val = NULL;
			size_t kl = eq ? (size_t)(eq - a - 2) : strlen(a + 2);

			if (kl >= sizeof(key))
				return set_err(err, errlen, "unknown option '%s'%s", a, "");
			memcpy(key, a + 2, kl);
			key[kl] = 0;
			if (eq) {
				val = eq + 1;
			} else if (strcmp(key, "refresh") && strcmp(key, "s3-path-style") &&
				   strcmp(key, "no-sign") && strcmp(key, "insecure") &&
				   strcmp(key, "debug") && strcmp(key, "no-open")) {
				if (i + 1 >= argc)
					return set_err(err, errlen, "option '%s' needs a value%s", a, "");
				val = argv[++i];
			}
			rc = apply(o, key, val, err, errlen);
			if (rc == 1)
				return set_err(err, errlen, "unknown option '%s'%s", a, "");
			if (rc)
				return rc;
		} else if (a[0] == '-' && a[1]) {
			return set_err(err, errlen, "unknown option '%s'%s", a, "");
		} else {
			if (npos == 2)
				return set_err(err, errlen, "unexpected argument '%s' (SOURCE and MOUNTPOINT given already)%s", a, "");
			pos[npos++] = a;
		}
	}
	if (npos < 1)
		return set_err(err, errlen, "missing SOURCE and MOUNTPOINT (see --help)%s%s", "", "");
	if (npos < 2)
		return set_err(err, errlen, "missing MOUNTPOINT (see --help)%s%s", "", "");
	o->source = pos[0];
	o->mountpoint = pos[1];
	if (o->no_open && o->cache.substitute != SUBST_OFF)
		return set_err(err, errlen, "--no-open and --substitute cannot be combined (substitution decides at open)%s%s", "", "");
	if (!o->cache_dir) {
		o->cache_dir = strdup("/var/cache/epochfs");
		o->cache.cache_dir = o->cache_dir;
	}
	return o->cache_dir ? 0 : -ENOMEM;
}

void opts_free(struct epochfs_opts *o)
{
	free(o->cache_dir);
	free(o->fuse_opts);
	free(o->manifest_owned);
	free(o->endpoint_owned);
	o->cache_dir = o->fuse_opts = o->manifest_owned = o->endpoint_owned = NULL;
}
