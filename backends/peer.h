/* SPDX-License-Identifier: MIT */
/* The peer client: a backend in front of the origin backend.  Listing and
 * stat go to the origin; a read of an object that another live node of the
 * job owns (rendezvous hashing, owner.h) is asked of that node first, over
 * HTTP (docs/peers.md has the wire format), and goes to the origin whenever
 * the peer cannot answer it right.  It also holds the membership (--peers)
 * and the counters of the node's peer server (fs/peerd.c), so that the
 * stats file finds every peer figure in one place below the cache. */
#ifndef EPOCHFS_PEER_H
#define EPOCHFS_PEER_H

#include <stdint.h>
#include <stddef.h>

#include "backend.h"
#include "base/sbuf.h"

#define PEER_SECRET_HEADER "X-Epochfs-Secret"
#define PEER_XXH3_HEADER "X-Epochfs-Xxh3"
#define PEER_SECRET_MAX 256         /* bytes of a secret */
#define PEER_MAX_RANGE (64u << 20)  /* larger reads go to the origin */
#define PEER_MAX_NODES 4096         /* distinct node identities remembered */
#define PEER_DEFAULT_TIMEOUT_MS 100

/* --listen, --peers, --peer-secret-file, --peer-timeout.  Filled by the
 * option parser (fs/options.c) into peer_opts; strings are owned (freed by
 * peer_options_reset). */
struct peer_options {
	char *listen;          /* "ADDR:PORT" or NULL */
	char *peers;           /* "h:p,h:p", "@FILE" or "NAME:PORT", or NULL */
	char *secret_file;
	unsigned timeout_ms;   /* connect timeout to a peer */
	unsigned total_ms;     /* bound on one peer request (0: 5 s); the
				* daemon keeps it within the origin's --timeout */
};
extern struct peer_options peer_opts;

/* Free the strings and set the defaults. */
void peer_options_reset(struct peer_options *o);

/* Split "HOST:PORT" or "[V6]:PORT" into host and port; 0 or -EINVAL. */
int peer_split_hostport(const char *s, char *host, size_t hostlen, unsigned *port);

/* Read a secret file: its first line without trailing blanks, 1 to
 * PEER_SECRET_MAX bytes.  0 or -errno, err says why. */
int peer_read_secret(const char *path, char *buf, size_t len, char *err, size_t errlen);

/* Wrap origin in a peer client (which then owns origin).  po->listen names
 * this node (NULL: a client only), po->peers the others.  0, -EINVAL (bad
 * list or secret file), -ENOMEM; err says why.  On failure origin is left
 * to the caller. */
int backend_peer_create(struct backend *origin, const struct peer_options *po,
			struct backend **out, char *err, size_t errlen);

/* Whether be is a peer client (the functions below accept any backend and
 * do nothing for another). */
int backend_is_peer(const struct backend *be);

/* The secret requests carry, "" when none is configured. */
const char *peer_secret(const struct backend *be);

/* Whether this node owns key among the live nodes of its own view (1), or
 * not (0).  A node with no peers owns everything. */
int peer_owns(struct backend *be, const char *key);
/* The same over every node of the list, down or not: what the cache keeps
 * first and prefetches for the job (a peer's outage does not move it; its
 * objects are read from the origin meanwhile). */
int peer_owns_planned(struct backend *be, const char *key);

/* Ask for the --peers list to be read again (SIGHUP); async-signal-safe. */
void peer_reload(struct backend *be);

/* The peer server's counters. */
void peer_count_served(struct backend *be, uint64_t bytes);
void peer_count_refused(struct backend *be);

/* Append the peer figures to a stats object being written: the fields
 * origin_bytes ... peer_refused and "peers":[...], each followed by a
 * comma.  Nothing for a backend that is not a peer client. */
void peer_stats_json(struct backend *be, struct sbuf *b);

#endif
