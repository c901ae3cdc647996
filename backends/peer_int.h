/* SPDX-License-Identifier: MIT */
/* Internals of the peer client shared by backends/peer.c (requests, the
 * backend) and backends/peer_members.c (options, the secret, membership,
 * ownership).  Nothing else includes this. */
#ifndef EPOCHFS_PEER_INT_H
#define EPOCHFS_PEER_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "peer.h"

#define PEER_TOTAL_MS 5000        /* default bound on one peer request, whole */
#define PEER_BACKOFF_MIN_MS 1000
#define PEER_BACKOFF_MAX_MS 60000
#define PEER_RESOLVE_S 30         /* names are resolved again this often */
#define PEER_ID_MAX 280

/* One node as the others name it; lives as long as the client (membership
 * changes swap tables of pointers to these). */
struct pnode {
	char id[PEER_ID_MAX];    /* "host:port" ("[v6]:port") */
	uint64_t hash;
	int self;
	unsigned fails;          /* consecutive failures; under peer.lock */
	uint64_t down_until_ms;  /* under peer.lock */
	uint64_t logged_ms;
	atomic_uint_fast64_t requests, errors, bytes;
};

struct ptable {
	unsigned n, nremote;
	struct pnode **v;
	uint64_t *hash;
	uint8_t *live;           /* scratch of the pick, under peer.lock */
};

struct preq;
struct curl_slist;

struct peer {
	struct backend be;       /* first: the backend the cache sees */
	struct backend_ops ops;  /* the origin's name, our functions */
	struct backend *origin;
	char *listen, *list;
	char host[256];
	unsigned port;
	char secret[PEER_SECRET_MAX + 1];
	struct curl_slist *hdrs; /* the secret's header, NULL without one */
	unsigned timeout_ms, total_ms;
	int dynamic;             /* the list has names to resolve again */
	pthread_mutex_t lock;    /* table, nodes' states, queue */
	struct ptable *tab;
	struct pnode **reg;      /* every node ever named */
	unsigned nreg;
	struct preq *qhead, *qtail;
	unsigned active;
	int stop;
	void *multi;
	pthread_t thread, mthread;
	int hup[2];
	/* counters */
	atomic_uint_fast64_t bytes_in, bytes_out, requests, errors, misses, refused, served;
};

static inline struct peer *as_peer(const struct backend *be)
{
	return backend_is_peer(be) ? (struct peer *)be : NULL;
}

/* peer_members.c */
void tab_free(struct ptable *t);
/* Read the list (the option, @FILE or names to resolve) into a table. */
int build_table(struct peer *p, struct ptable **out, char *err, size_t errlen);
/* Put t in force (the old one freed); logged when the membership changed. */
void install_table(struct peer *p, struct ptable *t);
/* The membership thread: SIGHUP re-reads the list, names are re-resolved. */
void *member_main(void *arg);
/* The owner of key among the live nodes: NULL for this node (or none). */
struct pnode *owner_of(struct peer *p, const char *key);

#endif
