/* SPDX-License-Identifier: MIT */
/* Option parsing: GNU-style long options, and the same settings as -o keys so
 * that /etc/fstab and mount -t fuse.epochfs can pass them.  One table says
 * which options exist and which take a value, so that an unknown option is
 * called unknown wherever it stands (not "needs a value" when it is last). */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "options.h"
#include "backends/base/util.h"
#include "backends/peer.h"

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
		"  --cache-size SIZE       cache bound (default 50%%), counting index and data:\n"
		"                          bytes with K/M/G/T (powers of 1024) or KB/MB/GB/TB\n"
		"                          (powers of 1000), or N%% of the cache filesystem's\n"
		"                          free space plus what the cache already holds\n"
		"  --chunk-size SIZE       cache chunk size, 256K..1G, power of two (default 4M)\n"
		"  --policy shade|lru      eviction policy (default shade: never evict equals)\n"
		"  --list-ttl SECONDS      relist the source when the snapshot is older (default: never)\n"
		"  --refresh               relist the source at this mount\n"
		"  --forget-plan           discard the plan (seeds, orders, positions) saved\n"
		"                          in the cache directory\n"
		"  --backend-concurrency N requests in flight to the source (default 64)\n"
		"  --timeout SECONDS       http/s3: bound for connecting, for the first byte and\n"
		"                          for a stalled transfer, each (default 10)\n"
		"  --retries N             http/s3: retries of a failed request (default 6)\n"
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
		"  --listen ADDR:PORT      serve this cache to the job's other nodes (peers)\n"
		"  --peers LIST            the other nodes: HOST:PORT,..., @FILE (one a line,\n"
		"                          read again on SIGHUP) or NAME:PORT of several\n"
		"                          addresses; this node's own entry is skipped\n"
		"  --peer-secret-file FILE the shared secret peers' requests carry (without it\n"
		"                          --listen binds the loopback only)\n"
		"  --peer-timeout MS       connect timeout to a peer (default 100)\n"
		"  --entry-timeout SECONDS kernel entry/attr cache time (default 86400)\n"
		"  --no-open               the kernel sends no open or close: warm reads never\n"
		"                          reach the daemon; opens are counted at the first\n"
		"                          read that does (see epochfs(1)); no --substitute\n"
		"  --stage-ahead FILES     with a plan, read the next FILES cached files ahead\n"
		"                          of the readers into RAM (default 128, at most\n"
		"                          64 MiB; 0: off)\n"
		"  --no-passthrough        every read through the daemon, also of files the\n"
		"                          cache holds whole (default: the kernel reads those\n"
		"                          from the store itself where it can, Linux 6.9+)\n"
		"  --log-file PATH         log to PATH (default: stderr with -f, else syslog, or\n"
		"                          CACHE_DIR/epochfs.log where there is no /dev/log)\n"
		"  --log-level LEVEL       error, warn, info or debug (default info)\n"
		"  --allow-other           let other users read the mount (FUSE allow_other)\n"
		"  --nonempty              the mount point is not empty on purpose (no warning)\n"
		"  --read-only             accepted: the mount is always read-only\n"
		"  -f, --foreground        stay in the foreground\n"
		"  -d, --debug             debug log (implies -f)\n"
		"  -o OPT[,OPT...]         the options above as keys, and FUSE options\n"
		"                          (default_permissions, ...)\n"
		"  -h, --help              this help\n"
		"  -V, --version           version\n"
		"\n"
		"exit status: 0 mounted (or unmounted cleanly with -f), 1 failed while running,\n"
		"2 bad command line, 3 the source cannot be used, 4 the mount point or the\n"
		"cache directory cannot be used (see epochfs(1))\n",
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

int opts_parse_size(const char *s, uint64_t *bytes, double *pct)
{
	*bytes = 0;
	*pct = 0;
	if (!s || !isdigit((unsigned char)*s))
		return -EINVAL; /* the base layer takes ".5G"; an option starts with a digit */
	return parse_size(s, bytes, pct);
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

/* Every option of ours, by its long name; as an -o key '_' may stand for
 * '-'.  val: it takes a value. */
static const struct opt_def {
	const char *name;
	int val;
} opt_defs[] = {
	{ "cache-dir", 1 },  { "cache-size", 1 },   { "chunk-size", 1 },
	{ "policy", 1 },     { "list-ttl", 1 },     { "refresh", 0 },
	{ "forget-plan", 0 },
	{ "backend-concurrency", 1 },               { "timeout", 1 },
	{ "retries", 1 },    { "prefetch-bytes", 1 }, { "substitute", 1 },
	{ "substitute-deadline", 1 },               { "manifest", 1 },
	{ "s3-endpoint", 1 }, { "s3-path-style", 0 }, { "no-sign", 0 },
	{ "insecure", 0 },   { "entry-timeout", 1 }, { "no-open", 0 },
	{ "no-passthrough", 0 }, { "stage-ahead", 1 },
	{ "log-file", 1 },   { "log-level", 1 },    { "allow-other", 0 },
	{ "nonempty", 0 },   { "read-only", 0 },    { "foreground", 0 },
	{ "debug", 0 },
	{ "listen", 1 },     { "peers", 1 },        { "peer-secret-file", 1 },
	{ "peer-timeout", 1 },
};

static const struct opt_def *opt_find(const char *key)
{
	char k[64];
	size_t i;

	for (i = 0; key[i] && i + 1 < sizeof(k); i++)
		k[i] = key[i] == '_' ? '-' : key[i];
	if (key[i])
		return NULL;
	k[i] = 0;
	for (i = 0; i < ARRAY_SIZE(opt_defs); i++)
		if (!strcmp(k, opt_defs[i].name))
			return &opt_defs[i];
	return NULL;
}

/* Replace *slot by a copy of val: values outlive argv and -o lists. */
static int keep(char **slot, const char *val)
{
	char *v = strdup(val);

	if (!v)
		return -ENOMEM;
	free(*slot);
	*slot = v;
	return 0;
}

/* Apply one known option; shown is how the user wrote its name. */
static int apply(struct epochfs_opts *o, const struct opt_def *d, const char *shown,
		 const char *val, char *err, size_t errlen)
{
	const char *k = d->name;
	unsigned long long u;
	enum log_level lvl;
	uint64_t bytes;
	double pct;

	if (d->val && (!val || !*val))
		return set_err(err, errlen, "option '%s' needs a value%s", shown, "");
	if (!d->val && val)
		return set_err(err, errlen, "option '%s' takes no value (given '%s')", shown, val);
	if (!strcmp(k, "cache-dir")) {
		if (keep(&o->cache_dir, val))
			return -ENOMEM;
		o->cache.cache_dir = o->cache_dir;
	} else if (!strcmp(k, "cache-size")) {
		if (opts_parse_size(val, &bytes, &pct) || (!bytes && !pct))
			return set_err(err, errlen, "bad cache size '%s' (use e.g. 500G, 1T, 500GB or 80%%)%s", val, "");
		o->cache.capacity = bytes;
		o->cache.capacity_pct = pct;
	} else if (!strcmp(k, "chunk-size")) {
		if (opts_parse_size(val, &bytes, &pct) || pct || bytes < CACHE_MIN_CHUNK ||
		    bytes > (1ull << 30) || (bytes & (bytes - 1)))
			return set_err(err, errlen, "bad chunk size '%s' (a power of two from 256K to 1G)%s", val, "");
		o->cache.chunk_size = (uint32_t)bytes;
	} else if (!strcmp(k, "policy")) {
		if (policy_parse(val, &o->cache.policy))
			return set_err(err, errlen, "bad policy '%s' (shade or lru)%s", val, "");
	} else if (!strcmp(k, "list-ttl")) {
		if (parse_uint(val, 1ull << 40, &u))
			return set_err(err, errlen, "bad list TTL '%s' (seconds)%s", val, "");
		o->cache.list_ttl_s = (int64_t)u;
	} else if (!strcmp(k, "refresh")) {
		o->cache.refresh = 1;
	} else if (!strcmp(k, "forget-plan")) {
		o->cache.forget_plan = 1;
	} else if (!strcmp(k, "backend-concurrency")) {
		if (parse_uint(val, 4096, &u) || !u)
			return set_err(err, errlen, "bad backend concurrency '%s' (1..4096)%s", val, "");
		o->be.concurrency = (unsigned)u;
	} else if (!strcmp(k, "timeout")) {
		if (parse_uint(val, 86400, &u) || !u)
			return set_err(err, errlen, "bad timeout '%s' (seconds, 1..86400)%s", val, "");
		o->be.timeout_s = (unsigned)u;
	} else if (!strcmp(k, "retries")) {
		if (parse_uint(val, 100, &u))
			return set_err(err, errlen, "bad retries '%s' (0..100)%s", val, "");
		o->be.retries = (unsigned)u;
	} else if (!strcmp(k, "entry-timeout")) {
		if (parse_uint(val, 1ull << 31, &u))
			return set_err(err, errlen, "bad entry timeout '%s' (seconds)%s", val, "");
		o->entry_timeout = (double)u;
	} else if (!strcmp(k, "substitute")) {
		if (!strcmp(val, "off"))
			o->cache.substitute = SUBST_OFF;
		else if (!strcmp(val, "dir"))
			o->cache.substitute = SUBST_DIR;
		else if (!strcmp(val, "all"))
			o->cache.substitute = SUBST_ALL;
		else
			return set_err(err, errlen, "bad substitute scope '%s' (off, dir or all)%s", val, "");
	} else if (!strcmp(k, "substitute-deadline")) {
		if (parse_uint(val, 60000, &u))
			return set_err(err, errlen, "bad substitute deadline '%s' (milliseconds)%s", val, "");
		o->cache.substitute_deadline_ms = (unsigned)u;
	} else if (!strcmp(k, "prefetch-bytes")) {
		if (opts_parse_size(val, &bytes, &pct) || pct || bytes < (1u << 20))
			return set_err(err, errlen, "bad prefetch bytes '%s' (at least 1M)%s", val, "");
		o->cache.prefetch_bytes = bytes;
	} else if (!strcmp(k, "stage-ahead")) {
		if (parse_uint(val, 1u << 20, &u))
			return set_err(err, errlen, "bad stage-ahead '%s' (a number of files, 0 for off)%s", val, "");
		o->cache.stage_ahead = (int)u;
	} else if (!strcmp(k, "manifest")) {
		if (keep(&o->manifest_owned, val))
			return -ENOMEM;
		o->be.manifest = o->manifest_owned;
	} else if (!strcmp(k, "s3-endpoint")) {
		if (keep(&o->endpoint_owned, val))
			return -ENOMEM;
		o->be.s3_endpoint = o->endpoint_owned;
	} else if (!strcmp(k, "s3-path-style")) {
		o->be.s3_path_style = 1;
	} else if (!strcmp(k, "no-sign")) {
		o->be.no_sign = 1;
	} else if (!strcmp(k, "insecure")) {
		o->be.insecure = 1;
	} else if (!strcmp(k, "no-passthrough")) {
		o->no_passthrough = 1;
	} else if (!strcmp(k, "no-open")) {
		o->no_open = 1;
		o->cache.no_open = 1;
	} else if (!strcmp(k, "log-file")) {
		if (keep(&o->log_file, val))
			return -ENOMEM;
	} else if (!strcmp(k, "log-level")) {
		if (log_level_parse(val, &lvl))
			return set_err(err, errlen, "bad log level '%s' (error, warn, info or debug)%s", val, "");
		/* -d wins: it asks for the debug log whatever the order */
		if (!o->debug)
			o->log_level = lvl;
	} else if (!strcmp(k, "allow-other")) {
		return append_fuse_opt(o, "allow_other");
	} else if (!strcmp(k, "nonempty")) {
		o->nonempty = 1; /* not passed on: fuse3 mounts on a non-empty dir anyway */
	} else if (!strcmp(k, "read-only")) {
		/* the mount is read-only whatever is asked */
	} else if (!strcmp(k, "foreground")) {
		o->foreground = 1;
	} else if (!strcmp(k, "debug")) {
		o->debug = 1;
		o->foreground = 1;
		o->log_level = LOG_LVL_DEBUG;
	} else if (!strcmp(k, "listen") || !strcmp(k, "peers") || !strcmp(k, "peer-secret-file") ||
		   !strcmp(k, "peer-timeout")) {
		/* peers (issue 13): kept in peer_opts (backends/peer.h) */
		char host[256];
		unsigned port;

		if (!strcmp(k, "listen") && peer_split_hostport(val, host, sizeof(host), &port))
			return set_err(err, errlen, "bad --listen '%s' (ADDR:PORT)%s", val, "");
		if (!strcmp(k, "peer-timeout")) {
			if (parse_uint(val, 60000, &u) || !u)
				return set_err(err, errlen, "bad peer timeout '%s' (milliseconds, 1..60000)%s", val, "");
			peer_opts.timeout_ms = (unsigned)u;
		} else if (keep(!strcmp(k, "listen") ? &peer_opts.listen :
				!strcmp(k, "peers") ? &peer_opts.peers : &peer_opts.secret_file, val)) {
			return -ENOMEM;
		}
	}
	return 0;
}

/* The generic options mount(8) and its helpers pass: the mount is
 * read-only and nodev/nosuid whatever they say. */
static int generic_mount_opt(const char *tok)
{
	static const char *const names[] = { "rw", "ro", "dev", "suid", "nodev", "nosuid", "exec",
					     "noexec", "auto", "noauto", "user", "nouser",
					     "_netdev", "nofail", "defaults" };

	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (!strcmp(tok, names[i]))
			return 1;
	return !strncmp(tok, "x-", 2);
}

/* Split a -o list and apply each; the rest is kept for FUSE (main checks
 * those with FUSE itself before touching the source). */
static int apply_o(struct epochfs_opts *o, const char *list, char *err, size_t errlen)
{
	char *copy = strdup(list), *save = NULL, *tok, *eq;
	const struct opt_def *d;
	int rc = 0;

	if (!copy)
		return -ENOMEM;
	for (tok = strtok_r(copy, ",", &save); tok && rc == 0; tok = strtok_r(NULL, ",", &save)) {
		if (generic_mount_opt(tok))
			continue;
		eq = strchr(tok, '=');
		if (eq)
			*eq = 0;
		d = opt_find(tok);
		if (d) {
			rc = apply(o, d, tok, eq ? eq + 1 : NULL, err, errlen);
		} else {
			if (eq)
				*eq = '=';
			rc = append_fuse_opt(o, tok);
		}
	}
	free(copy);
	return rc;
}

/* One --long[=value] argument at argv[*i] (value from the next argument
 * when the option takes one). */
static int long_opt(struct epochfs_opts *o, int argc, char **argv, int *i, char *err, size_t errlen)
{
	const char *a = argv[*i], *eq = strchr(a, '='), *val = NULL;
	const struct opt_def *d;
	char key[64];
	size_t kl = eq ? (size_t)(eq - a - 2) : strlen(a + 2);

	if (kl >= sizeof(key))
		return set_err(err, errlen, "unknown option '%.100s'%s", a, "");
	memcpy(key, a + 2, kl);
	key[kl] = 0;
	d = strchr(key, '_') ? NULL : opt_find(key); /* '_' only in -o keys */
	if (!d)
		return set_err(err, errlen, "unknown option '--%s'%s (see --help)", key, "");
	if (eq)
		val = eq + 1;
	else if (d->val && *i + 1 < argc)
		val = argv[++*i];
	snprintf(key, sizeof(key), "--%s", d->name);
	return apply(o, d, key, val, err, errlen);
}

int opts_parse(int argc, char **argv, struct epochfs_opts *o, char *err, size_t errlen)
{
	const char *pos[2];
	int npos = 0, i, rc;

	memset(o, 0, sizeof(*o));
	peer_options_reset(&peer_opts);
	cache_config_init(&o->cache);
	backend_options_init(&o->be);
	o->entry_timeout = 86400;
	o->log_level = LOG_LVL_INFO;
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
			o->log_level = LOG_LVL_DEBUG;
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
			rc = long_opt(o, argc, argv, &i, err, errlen);
			if (rc)
				return rc;
		} else if (a[0] == '-' && a[1]) {
			return set_err(err, errlen, "unknown option '%s'%s (see --help)", a, "");
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
	free(o->log_file);
	o->cache_dir = o->fuse_opts = o->manifest_owned = o->endpoint_owned = o->log_file = NULL;
	peer_options_reset(&peer_opts);
}
