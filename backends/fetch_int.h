/* SPDX-License-Identifier: MIT */
/* What the engine's files share: fetch.c (the thread, queues, retries) and
 * fetch_xfer.c (one attempt's transfer).  Not for use outside them. */
#ifndef EPOCHFS_FETCH_INT_H
#define EPOCHFS_FETCH_INT_H

#include <curl/curl.h>
#include <pthread.h>
#include "fetch.h"

struct fetch_engine {
	CURLM *multi;
	pthread_t thread;
	pthread_mutex_t lock;
	struct fetch_job *qhead, *qtail;   /* submitted, guarded by lock */
	int stopping;                      /* guarded by lock */
	/* owned by the engine thread */
	struct fetch_job *ready, *ready_tail, *waiting, *running;
	unsigned active;
	CURL **pool;
	unsigned npool;
	uint64_t rng;
	uint64_t down_until;   /* store looks down: retry budget cut to 1 */
	uint64_t retry_log_s;  /* the second of the retry lines counted below */
	unsigned retry_logged, retry_unlogged;
	/* configuration */
	unsigned concurrency, retries, timeout_s;
	int insecure;
	char *userpwd, *sigv4;
	char **headers;
	struct backend_counters *c;
	int (*auth)(void *arg, void *easy, struct curl_slist **hdrs);
	void *auth_arg;
};

/* Configure the easy handle h for one attempt of j (options, headers,
 * callbacks, the range still missing).  0 or -ENOMEM. */
int fetch_setup_attempt(struct fetch_engine *e, struct fetch_job *j, CURL *h);

#endif
