/* SPDX-License-Identifier: MIT */
/* The fetch engine: one thread per engine runs a libcurl multi handle.
 * Submitters append jobs to a locked FIFO and wake the thread; the thread
 * starts at most `concurrency` transfers, reuses easy handles (and through
 * the multi handle, connections), retries transient faults after a capped,
 * jittered exponential backoff, and calls each job's done() exactly once.
 * One attempt's transfer (its options, headers, body and watchdog) is in
 * fetch_xfer.c, the pure helpers in fetch_parse.c. */
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "fetch_int.h"
#include "backends/base/log.h"
#include "backends/base/util.h"

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init_once(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int fetch_curl_init(void)
{
	pthread_once(&curl_once, curl_init_once);
	return curl_init_rc == CURLE_OK ? 0 : -ENOMEM;
}

/* xorshift64*: jitter only, no need for quality beyond spreading retries. */
static double jitter(struct fetch_engine *e)
{
	e->rng ^= e->rng >> 12;
	e->rng ^= e->rng << 25;
	e->rng ^= e->rng >> 27;
	return (double)((e->rng * 2685821657736338717ULL) >> 11) / (double)(1ULL << 53);
}

static void finish(struct fetch_engine *e, struct fetch_job *j, ssize_t result)
{
	j->result = result;
	if (result < 0)
		atomic_fetch_add(&e->c->errors, 1);
	j->done(j);
}

/* Start one attempt of j, or finish it with -ENOMEM. */
static void start(struct fetch_engine *e, struct fetch_job *j)
{
	CURL *h = e->npool ? e->pool[--e->npool] : curl_easy_init();

	if (!h) {
		finish(e, j, -ENOMEM);
		return;
	}
	curl_easy_reset(h);
	j->complete = j->stale = j->toobig = j->badrange = 0;
	j->hung = FETCH_HUNG_NO;
	j->byte_ms = 0;
	j->attempt_ms = now_ms();
	j->curlerr[0] = 0;
	j->skip = 0;
	j->total = UINT64_MAX;
	j->errbody_len = 0;
	j->errbody[0] = 0;
	j->errcode[0] = 0;
	j->http = 0;
	if (j->mode == FETCH_BODY)
		j->body_len = 0;
	if (fetch_setup_attempt(e, j, h) || curl_multi_add_handle(e->multi, h) != CURLM_OK) {
		curl_slist_free_all(j->hdrs);
		j->hdrs = NULL;
		curl_easy_cleanup(h);
		finish(e, j, -ENOMEM);
		return;
	}
	j->attempts++;
	e->active++;
	j->prev = NULL;
	j->next = e->running;
	if (e->running)
		e->running->prev = j;
	e->running = j;
	atomic_fetch_add(&e->c->requests, 1);
}

/* Detach the easy handle of a finished attempt and keep it for reuse. */
static void release(struct fetch_engine *e, struct fetch_job *j)
{
	curl_multi_remove_handle(e->multi, j->easy);
	if (j->prev)
		j->prev->next = j->next;
	else
		e->running = j->next;
	if (j->next)
		j->next->prev = j->prev;
	j->next = j->prev = NULL;
	if (e->npool < e->concurrency)
		e->pool[e->npool++] = j->easy;
	else
		curl_easy_cleanup(j->easy);
	j->easy = NULL;
	curl_slist_free_all(j->hdrs);
	j->hdrs = NULL;
	e->active--;
}

static void s3_code(struct fetch_job *j)
{
	const char *a = strstr(j->errbody, "<Code>"), *b;
	size_t n;

	if (!a || !(b = strstr(a + 6, "</Code>")))
		return;
	n = (size_t)(b - a - 6);
	if (n >= sizeof(j->errcode))
		n = sizeof(j->errcode) - 1;
	memcpy(j->errcode, a + 6, n);
	j->errcode[n] = 0;
}

static void push_ready(struct fetch_engine *e, struct fetch_job *j)
{
	j->next = NULL;
	if (e->ready_tail)
		e->ready_tail->next = j;
	else
		e->ready = j;
	e->ready_tail = j;
}

/* A finished attempt that the server answered with 2xx or 416: sets *res
 * and returns 0, or returns 1 when the body was short and the rest must be
 * fetched again. */
static int success_result(struct fetch_job *j, ssize_t *res)
{
	uint64_t want;

	*res = 0;
	if (j->http == 416) {
		if ((j->checks & FETCH_CHECK_SIZE) && j->total != UINT64_MAX &&
		    j->total != j->expect.size) {
			j->current.size = j->total;
			*res = -ESTALE;
		} else {
			*res = (ssize_t)j->got;
		}
		return 0;
	}
	if (j->mode == FETCH_BODY)
		*res = (ssize_t)j->body_len;
	if (j->mode != FETCH_RANGE)
		return 0;
	want = j->len;
	if (j->total != UINT64_MAX)
		want = j->off >= j->total ? 0 : (j->total - j->off < want ? j->total - j->off : want);
	if (j->got < want)
		return 1;
	*res = (ssize_t)j->got;
	return 0;
}

/* The last failure of j in words: where a timeout struck, else curl's own
 * message, else the HTTP status and the S3 error code. */
static const char *reason(const struct fetch_engine *e, const struct fetch_job *j,
			  CURLcode rc, char *buf, size_t n)
{
	if (j->hung == FETCH_HUNG_ANSWER)
		snprintf(buf, n, "connected, but no answer within %u s", e->timeout_s);
	else if (j->hung == FETCH_HUNG_STALL)
		snprintf(buf, n, "the transfer stalled for %u s", e->timeout_s);
	else if (rc == CURLE_OPERATION_TIMEDOUT)
		snprintf(buf, n, "no connection within %u s", e->timeout_s);
	else if (rc != CURLE_OK)
		snprintf(buf, n, "%s", j->curlerr[0] ? j->curlerr : curl_easy_strerror(rc));
	else
		snprintf(buf, n, "HTTP %ld%s%s%s", j->http, j->errcode[0] ? " (" : "", j->errcode,
			 j->errcode[0] ? ")" : "");
	return buf;
}

/* Say that an attempt failed and will be tried again, so that a slow or
 * hung source is never silent.  An outage fails many requests at once:
 * past FETCH_RETRY_LOG_PER_S lines a second the rest are counted, and the
 * next line says how many were not shown. */
static void log_retry(struct fetch_engine *e, const struct fetch_job *j, unsigned budget,
		      unsigned backoff_ms, const char *why)
{
	uint64_t sec = now_ms() / 1000;
	char more[64] = "";

	if (sec != e->retry_log_s) {
		e->retry_log_s = sec;
		e->retry_logged = 0;
	}
	if (e->retry_logged >= FETCH_RETRY_LOG_PER_S) {
		e->retry_unlogged++;
		return;
	}
	e->retry_logged++;
	if (e->retry_unlogged)
		snprintf(more, sizeof(more), " (%u more retries not shown)", e->retry_unlogged);
	e->retry_unlogged = 0;
	log_info("%s: attempt %d of %u failed: %s; retrying in %.1f s (%s)%s", j->name,
		 j->attempts, budget + 1, why, backoff_ms / 1000.0, j->url, more);
}

/* Decide what follows a finished attempt: done, retry later, or give up. */
static void completed(struct fetch_engine *e, struct fetch_job *j, CURLcode rc)
{
	enum fetch_verdict v;
	char why[300];
	unsigned budget, backoff;
	ssize_t r;
	int err;

	curl_easy_getinfo(j->easy, CURLINFO_RESPONSE_CODE, &j->http);
	release(e, j);
	j->curlrc = rc;
	if (j->stale) {
		finish(e, j, -ESTALE);
		return;
	}
	if (j->toobig) {
		finish(e, j, -EFBIG);
		return;
	}
	if (rc == CURLE_WRITE_ERROR && j->complete)
		rc = CURLE_OK;
	if (j->badrange) {
		rc = CURLE_RECV_ERROR; /* a server answering the wrong range: retry */
		j->curlerr[0] = 0;     /* curl's words were about our abort */
	}
	if (j->hung)
		rc = CURLE_OPERATION_TIMEDOUT; /* the watchdog's abort is a timeout */
	if (j->http >= 300)
		s3_code(j);
	v = fetch_classify(rc, j->http, j->errcode, &err);
	if (j->probing) {
		if (v == FETCH_OK) {
			finish(e, j, -ESTALE);
			return;
		}
		if (v == FETCH_FAIL) {
			finish(e, j, err == -ESTALE ? -EIO : err);
			return;
		}
	} else if (v == FETCH_OK) {
		e->down_until = 0;
		if (!success_result(j, &r)) {
			finish(e, j, r);
			return;
		}
		v = FETCH_RETRY;
	} else if (v == FETCH_FAIL && err == -ESTALE) {
		/* If-Match failed: learn the new identity with a HEAD */
		j->probing = 1;
		push_ready(e, j);
		return;
	}
	if (v == FETCH_FAIL) {
		if (err != -ENOENT)
			log_warn("%s: %s", j->name, reason(e, j, rc, why, sizeof(why)));
		finish(e, j, err);
		return;
	}
	budget = j->noretry ? 0 : now_ms() < e->down_until ? 1 : e->retries;
	if ((unsigned)j->attempts > budget) {
		e->down_until = now_ms() + FETCH_DOWN_MS;
		log_err("giving up on %s after %d attempt%s: %s (%s)", j->name, j->attempts,
			j->attempts == 1 ? "" : "s", reason(e, j, rc, why, sizeof(why)), j->url);
		finish(e, j, -EIO);
		return;
	}
	atomic_fetch_add(&e->c->retries, 1);
	backoff = fetch_backoff_ms((unsigned)j->attempts, jitter(e));
	log_retry(e, j, budget, backoff, reason(e, j, rc, why, sizeof(why)));
	j->due_ms = now_ms() + backoff;
	j->next = e->waiting;
	e->waiting = j;
}

/* Finish every job the engine still holds with -ECANCELED. */
static void cancel_all(struct fetch_engine *e, struct fetch_job *queued)
{
	struct fetch_job *j, *n;

	while ((j = e->running)) {
		release(e, j);
		push_ready(e, j);
	}
	for (j = queued; j; j = n) {
		n = j->next;
		push_ready(e, j);
	}
	for (j = e->waiting; j; j = n) {
		n = j->next;
		push_ready(e, j);
	}
	e->waiting = NULL;
	for (j = e->ready; j; j = n) {
		n = j->next;
		finish(e, j, -ECANCELED);
	}
	e->ready = e->ready_tail = NULL;
}

static void *engine_main(void *arg)
{
	struct fetch_engine *e = arg;

	for (;;) {
		struct fetch_job *q, *j, **pp;
		uint64_t now, next_due = UINT64_MAX;
		int running, left, timeout, progressed = 0;
		CURLMsg *m;

		pthread_mutex_lock(&e->lock);
		q = e->qhead;
		e->qhead = e->qtail = NULL;
		if (e->stopping) {
			pthread_mutex_unlock(&e->lock);
			cancel_all(e, q);
			break;
		}
		pthread_mutex_unlock(&e->lock);
		while (q) {
			j = q;
			q = q->next;
			push_ready(e, j);
		}
		now = now_ms();
		for (pp = &e->waiting; (j = *pp);) {
			if (j->due_ms <= now) {
				*pp = j->next;
				push_ready(e, j);
			} else {
				if (j->due_ms < next_due)
					next_due = j->due_ms;
				pp = &j->next;
			}
		}
		while (e->ready && e->active < e->concurrency) {
			j = e->ready;
			e->ready = j->next;
			if (!e->ready)
				e->ready_tail = NULL;
			start(e, j);
		}
		curl_multi_perform(e->multi, &running);
		while ((m = curl_multi_info_read(e->multi, &left))) {
			CURLcode rc = m->data.result;

			if (m->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&j);
			completed(e, j, rc);
			progressed = 1;
		}
		if (progressed && e->ready && e->active < e->concurrency)
			continue;
		/* a failed attempt just went to wait for its backoff: wake for it
		 * (without this a retry started up to a second late) */
		now = now_ms();
		for (j = e->waiting; progressed && j; j = j->next)
			if (j->due_ms < next_due)
				next_due = j->due_ms;
		/* With transfers out, wake at least 4 times a second so that the
		 * watchdog (on_progress) holds the timeout to a quarter second. */
		timeout = e->active ? 250 : 1000;
		if (next_due != UINT64_MAX)
			timeout = next_due <= now ? 0 : (int)MIN(next_due - now, (uint64_t)timeout);
		curl_multi_poll(e->multi, NULL, 0, timeout, NULL);
	}
	return NULL;
}

static void free_config(struct fetch_engine *e)
{
	for (char **p = e->headers; p && *p; p++) {
		explicit_bzero(*p, strlen(*p));   /* may hold a session token */
		free(*p);
	}
	free(e->headers);
	if (e->userpwd)
		explicit_bzero(e->userpwd, strlen(e->userpwd));
	free(e->userpwd);
	free(e->sigv4);
}

int fetch_engine_create(const struct fetch_config *cfg, struct fetch_engine **out)
{
	struct fetch_engine *e;
	size_t nh = 0;
	int rc = -ENOMEM;

	pthread_once(&curl_once, curl_init_once);
	if (curl_init_rc != CURLE_OK)
		return -EIO;
	if (!(e = calloc(1, sizeof(*e))))
		return -ENOMEM;
	e->concurrency = cfg->concurrency ? cfg->concurrency : 64;
	e->retries = cfg->retries;
	e->timeout_s = cfg->timeout_s ? cfg->timeout_s : FETCH_DEFAULT_TIMEOUT_S;
	e->insecure = cfg->insecure;
	e->auth = cfg->auth;
	e->auth_arg = cfg->auth_arg;
	e->c = cfg->counters;
	e->rng = (uint64_t)now_ms() * 0x9E3779B97F4A7C15ULL ^ (uint64_t)getpid() ^ (uintptr_t)e;
	if (!e->rng)
		e->rng = 1;
	while (cfg->headers && cfg->headers[nh])
		nh++;
	if (!(e->headers = calloc(nh + 1, sizeof(char *))))
		goto out;
	for (size_t i = 0; i < nh; i++)
		if (!(e->headers[i] = strdup(cfg->headers[i])))
			goto out;
	if (cfg->sigv4 && (!(e->sigv4 = strdup(cfg->sigv4)) ||
			   !(e->userpwd = strdup(cfg->userpwd ? cfg->userpwd : ":"))))
		goto out;
	if (!(e->pool = calloc(e->concurrency, sizeof(CURL *))))
		goto out;
	if (!(e->multi = curl_multi_init()))
		goto out;
	curl_multi_setopt(e->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)e->concurrency);
	curl_multi_setopt(e->multi, CURLMOPT_MAXCONNECTS, (long)e->concurrency);
	pthread_mutex_init(&e->lock, NULL);
	if (pthread_create(&e->thread, NULL, engine_main, e)) {
		pthread_mutex_destroy(&e->lock);
		rc = -EAGAIN;
		goto out;
	}
	*out = e;
	return 0;
out:
	if (e->multi)
		curl_multi_cleanup(e->multi);
	free(e->pool);
	free_config(e);
	free(e);
	return rc;
}

void fetch_engine_destroy(struct fetch_engine *e)
{
	if (!e)
		return;
	pthread_mutex_lock(&e->lock);
	e->stopping = 1;
	pthread_mutex_unlock(&e->lock);
	curl_multi_wakeup(e->multi);
	pthread_join(e->thread, NULL);
	while (e->npool)
		curl_easy_cleanup(e->pool[--e->npool]);
	curl_multi_cleanup(e->multi);
	pthread_mutex_destroy(&e->lock);
	free(e->pool);
	free_config(e);
	free(e);
}

int fetch_submit(struct fetch_engine *e, struct fetch_job *job)
{
	job->next = job->prev = NULL;
	job->engine = e;
	job->attempts = 0;
	job->got = 0;
	job->probing = 0;
	job->result = 0;
	job->body = NULL;
	job->body_len = job->body_cap = 0;
	memset(&job->current, 0, sizeof(job->current));
	pthread_mutex_lock(&e->lock);
	if (e->stopping) {
		pthread_mutex_unlock(&e->lock);
		return -ESHUTDOWN;
	}
	if (e->qtail)
		e->qtail->next = job;
	else
		e->qhead = job;
	e->qtail = job;
	pthread_mutex_unlock(&e->lock);
	curl_multi_wakeup(e->multi);
	return 0;
}

struct waiter {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int done;
};

static void wake_waiter(struct fetch_job *job)
{
	struct waiter *w = job->arg;

	pthread_mutex_lock(&w->lock);
	w->done = 1;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

ssize_t fetch_run(struct fetch_engine *e, struct fetch_job *job)
{
	struct waiter w = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0 };
	int rc;

	job->done = wake_waiter;
	job->arg = &w;
	if ((rc = fetch_submit(e, job)))
		return rc;
	pthread_mutex_lock(&w.lock);
	while (!w.done)
		pthread_cond_wait(&w.cond, &w.lock);
	pthread_mutex_unlock(&w.lock);
	return job->result;
}

struct req_job {
	struct fetch_job job;
	struct backend_req *req;
	char *url;
};

static void req_done(struct fetch_job *job)
{
	struct req_job *rj = (struct req_job *)job;
	struct backend_req *req = rj->req;

	req->result = job->result;
	req->current = job->current;
	free(rj->url);
	free(rj);
	req->done(req);
}

int fetch_submit_req(struct fetch_engine *e, char *url, struct backend_req *req,
		     unsigned checks)
{
	struct req_job *rj = calloc(1, sizeof(*rj));
	const struct backend_stat *x = &req->expect;
	int rc;

	if (!rj) {
		free(url);
		return -ENOMEM;
	}
	rj->req = req;
	rj->url = url;
	rj->job.url = url;
	rj->job.name = req->key;
	rj->job.mode = FETCH_RANGE;
	rj->job.off = req->off;
	rj->job.len = req->len;
	rj->job.buf = req->buf;
	rj->job.expect = *x;
	if (x->size || x->mtime_ns || x->etag[0])
		rj->job.checks = checks;
	/* nothing to read: only check the identity (and dodge the servers that
	 * answer a range over an empty object strangely) */
	if (!req->len || (rj->job.checks && req->off >= x->size))
		rj->job.mode = FETCH_HEAD;
	rj->job.done = req_done;
	if ((rc = fetch_submit(e, &rj->job))) {
		free(url);
		free(rj);
	}
	return rc;
}

int fetch_head(struct fetch_engine *e, const char *url, const char *name,
	       struct backend_stat *st)
{
	struct fetch_job job;
	ssize_t rc;

	memset(&job, 0, sizeof(job));
	job.url = url;
	job.name = name;
	job.mode = FETCH_HEAD;
	rc = fetch_run(e, &job);
	if (rc < 0)
		return (int)rc;
	*st = job.current;
	return 0;
}
