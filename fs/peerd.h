/* SPDX-License-Identifier: MIT */
/* The peer server: a second front end of the cache beside the FUSE glue.
 * It answers other nodes' ranged GETs of this mount's objects over HTTP/1.1
 * (libmicrohttpd), from the cache, or through it from the origin for the
 * objects this node owns.  docs/peers.md has the wire format. */
#ifndef EPOCHFS_PEERD_H
#define EPOCHFS_PEERD_H

#include <stddef.h>

#include "../backends/backend.h"
#include "../cache/cache.h"

struct peerd;

/* Serve c on listen ("ADDR:PORT"); be is the peer client (peer.h), which
 * knows the secret, the ownership and holds the counters.  Without a
 * secret only a loopback address is bound (0.0.0.0 and :: become the
 * loopback; another address is refused).  0, -EINVAL (bad address),
 * -EADDRINUSE and the like; err says why. */
int peerd_start(struct cache *c, struct backend *be, const char *listen, struct peerd **out,
		char *err, size_t errlen);
/* Stop serving (waits for the requests being answered); NULL is fine. */
void peerd_stop(struct peerd *d);

#endif
