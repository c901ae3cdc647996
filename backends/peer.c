/* SPDX-License-Identifier: MIT */
/* The peer client (peer.h): a backend wrapping the origin.  One thread
 * drives a libcurl multi handle for the ranged GETs to peers, with at most
 * the origin's concurrency in flight; a request a peer cannot answer right
 * (no connection, a timeout, an error status, a size or checksum that does
 * not match) marks that peer down with backoff and goes to the origin, so a
 * peer can make a read slower, never wrong or failed.  A second thread
 * re-reads the membership on SIGHUP (and re-resolves names every 30 s):
 * backends/peer_members.c. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <ifaddrs.h>
#include <inttypes.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <fcntl.h>
#include <xxhash.h>

#include "peer_int.h"
#include "fetch.h"
#include "keys.h"
#include "owner.h"
#include "base/log.h"
#include "base/util.h"

struct preq {
	struct peer *p;
	struct backend_req *req;
	backend_done_fn done;
	void *arg;
	struct pnode *node;
	void *easy;
	char *url;
	uint64_t want;
	size_t got;
	int overflow, have_xxh, have_range;
	uint64_t xxh, r_start, r_total;
	struct preq *next;
};

/* ---- requests ---- */

static void mirror_one(atomic_uint_fast64_t *dst, atomic_uint_fast64_t *src)
{
	uint_fast64_t v = atomic_load(src), cur = atomic_load(dst);

	while (cur < v && !atomic_compare_exchange_weak(dst, &cur, v))
		;
}

/* The origin's counters are the backend's (backend_bytes is what came from
 * the source); peer figures are apart. */
static void mirror(struct peer *p)
{
	mirror_one(&p->be.counters.requests, &p->origin->counters.requests);
	mirror_one(&p->be.counters.bytes, &p->origin->counters.bytes);
	mirror_one(&p->be.counters.errors, &p->origin->counters.errors);
	mirror_one(&p->be.counters.retries, &p->origin->counters.retries);
	mirror_one(&p->be.counters.skipped_keys, &p->origin->counters.skipped_keys);
}

static void complete(struct preq *pr)
{
	struct backend_req *req = pr->req;

	req->done = pr->done;
	req->arg = pr->arg;
	free(pr);
	req->done(req);
}

static void origin_done(struct backend_req *req)
{
	struct preq *pr = req->arg;

	mirror(pr->p);
	complete(pr);
}

/* Hand the request to the origin; its done() completes ours.  0, or the
 * origin's refusal (the request is then untouched). */
static int to_origin(struct preq *pr)
{
	struct backend_req *req = pr->req;
	int rc;

	req->done = origin_done;
	req->arg = pr;
	rc = backend_submit(pr->p->origin, req);
	if (rc < 0) {
		req->done = pr->done;
		req->arg = pr->arg;
	}
	return rc;
}

/* From the peer thread: the origin, or a failed read if it refuses. */
static void fall_back(struct preq *pr)
{
	int rc = to_origin(pr);

	if (rc < 0) {
		pr->req->result = rc;
		complete(pr);
	}
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
	struct preq *pr = arg;
	size_t n = size * nmemb;

	if (pr->got + n > pr->want) {
		pr->overflow = 1;
		return 0;
	}
	memcpy((char *)pr->req->buf + pr->got, data, n);
	pr->got += n;
	return n;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *arg)
{
	struct preq *pr = arg;
	size_t n = size * nmemb, hl = strlen(PEER_XXH3_HEADER);
	char line[256];

	if (n >= sizeof(line))
		return n;
	memcpy(line, data, n);
	line[n] = 0;
	line[strcspn(line, "\r\n")] = 0;
	if (!strncasecmp(line, "HTTP/", 5)) {
		pr->have_xxh = pr->have_range = 0;
	} else if (!strncasecmp(line, PEER_XXH3_HEADER, hl) && line[hl] == ':') {
		char *v = line + hl + 1, *e;

		while (*v == ' ')
			v++;
		errno = 0;
		pr->xxh = strtoull(v, &e, 16);
		pr->have_xxh = !errno && e - v == 16 && !*e;
	} else if (!strncasecmp(line, "Content-Range:", 14)) {
		pr->have_range = !fetch_parse_content_range(line + 14, &pr->r_start, &pr->r_total);
	}
	return n;
}

/* A peer failed us: down for a while, doubling on each failure in a row. */
static void mark_down(struct peer *p, struct pnode *n, const char *why)
{
	uint64_t now = now_ms(), backoff;
	int log = 0;

	atomic_fetch_add(&n->errors, 1);
	atomic_fetch_add(&p->errors, 1);
	pthread_mutex_lock(&p->lock);
	if (n->down_until_ms <= now) {
		n->fails++;
		backoff = PEER_BACKOFF_MIN_MS << MIN(n->fails - 1, 6u);
		n->down_until_ms = now + MIN(backoff, (uint64_t)PEER_BACKOFF_MAX_MS);
		if (now - n->logged_ms >= 1000) {
			n->logged_ms = now;
			log = 1;
		}
		backoff = n->down_until_ms - now;
	}
	pthread_mutex_unlock(&p->lock);
	if (log)
		log_warn("peer %s: %s; down for %llu ms, its reads go to the origin", n->id, why,
			 (unsigned long long)backoff);
}

static void mark_up(struct peer *p, struct pnode *n)
{
	int was;

	pthread_mutex_lock(&p->lock);
	was = n->fails;
	n->fails = 0;
	n->down_until_ms = 0;
	pthread_mutex_unlock(&p->lock);
	if (was)
		log_info("peer %s answers again", n->id);
}

static void xfer_free(struct preq *pr)
{
	if (pr->easy)
		curl_easy_cleanup(pr->easy);
	free(pr->url);
	pr->easy = NULL;
	pr->url = NULL;
}

/* A transfer ended: check everything, then complete or fall back. */
static void finish(struct peer *p, struct preq *pr, CURLcode cc)
{
	struct backend_req *req = pr->req;
	char why[160];
	long http = 0;

	curl_easy_getinfo(pr->easy, CURLINFO_RESPONSE_CODE, &http);
	xfer_free(pr);
	*why = 0;
	if (pr->overflow)
		snprintf(why, sizeof(why), "answered more than the %llu bytes asked",
			 (unsigned long long)pr->want);
	else if (cc != CURLE_OK)
		snprintf(why, sizeof(why), "%s", curl_easy_strerror(cc));
	else if (http == 404 || http == 409) {
		atomic_fetch_add(&p->misses, 1);
		fall_back(pr);
		return;
	} else if (http != 206 && http != 200)
		snprintf(why, sizeof(why), "HTTP %ld", http);
	else if (pr->got != pr->want)
		snprintf(why, sizeof(why), "%zu bytes instead of %llu", pr->got,
			 (unsigned long long)pr->want);
	else if (http == 206 && (!pr->have_range || pr->r_start != req->off ||
				 pr->r_total != req->expect.size))
		snprintf(why, sizeof(why), "a Content-Range that does not match the request");
	else if (http == 200 && (req->off || pr->want != req->expect.size))
		snprintf(why, sizeof(why), "the whole object for a part");
	else if (!pr->have_xxh)
		snprintf(why, sizeof(why), "no %s header", PEER_XXH3_HEADER);
	else if (XXH3_64bits(req->buf, pr->got) != pr->xxh)
		snprintf(why, sizeof(why), "bytes whose xxh3 does not match");
	if (*why) {
		mark_down(p, pr->node, why);
		fall_back(pr);
		return;
	}
	mark_up(p, pr->node);
	atomic_fetch_add(&pr->node->bytes, pr->got);
	atomic_fetch_add(&p->bytes_in, pr->got);
	req->result = (ssize_t)pr->got;
	req->current = req->expect;
	complete(pr);
}

/* Make the transfer's easy handle; -ENOMEM. */
static int xfer_start(struct peer *p, struct preq *pr)
{
	struct backend_req *req = pr->req;
	char *k = NULL, et[BACKEND_ETAG_MAX * 3 + 1], range[64];
	size_t klen = strlen(req->key) * 3 + 1;
	CURL *e;

	k = ec_malloc(klen);
	if (!k || key_urlencode(req->key, 0, k, klen) || key_urlencode(req->expect.etag, 0, et, sizeof(et)) ||
	    asprintf(&pr->url, "http://%s/v1/object?key=%s&size=%llu&etag=%s&mtime=%lld", pr->node->id,
		     k, (unsigned long long)req->expect.size, et, (long long)req->expect.mtime_ns) < 0) {
		pr->url = NULL;
		free(k);
		return -ENOMEM;
	}
	free(k);
	snprintf(range, sizeof(range), "%llu-%llu", (unsigned long long)req->off,
		 (unsigned long long)(req->off + pr->want - 1));
	e = pr->easy = curl_easy_init();
	if (!e)
		return -ENOMEM;
	curl_easy_setopt(e, CURLOPT_URL, pr->url);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(e, CURLOPT_RANGE, range);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, p->hdrs);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)p->timeout_ms);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)p->total_ms);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, pr);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, pr);
	curl_easy_setopt(e, CURLOPT_PRIVATE, pr);
	curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
	/* The server closes connections idle for 60 s: reuse younger ones. */
	curl_easy_setopt(e, CURLOPT_MAXAGE_CONN, 30L);
	return 0;
}

static void *peer_main(void *arg)
{
	struct peer *p = arg;
	struct preq *pr;
	CURLMsg *m;
	int running, left, stop;

	for (;;) {
		pthread_mutex_lock(&p->lock);
		stop = p->stop;
		while (!stop && p->qhead && p->active < p->be.concurrency) {
			pr = p->qhead;
			p->qhead = pr->next;
			if (!p->qhead)
				p->qtail = NULL;
			p->active++;
			pthread_mutex_unlock(&p->lock);
			if (xfer_start(p, pr) || curl_multi_add_handle(p->multi, pr->easy)) {
				xfer_free(pr);
				pthread_mutex_lock(&p->lock);
				p->active--;
				pthread_mutex_unlock(&p->lock);
				fall_back(pr);
			}
			pthread_mutex_lock(&p->lock);
		}
		pthread_mutex_unlock(&p->lock);
		if (stop)
			break;
		curl_multi_perform(p->multi, &running);
		while ((m = curl_multi_info_read(p->multi, &left))) {
			CURL *e = m->easy_handle;
			CURLcode cc = m->data.result;

			if (m->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&pr);
			curl_multi_remove_handle(p->multi, e);
			pthread_mutex_lock(&p->lock);
			p->active--;
			pthread_mutex_unlock(&p->lock);
			finish(p, pr, cc);
		}
		curl_multi_poll(p->multi, NULL, 0, 1000, NULL);
	}
	return NULL;
}

/* ---- the backend ---- */

static int peer_list(struct backend *be, backend_list_fn fn, void *arg)
{
	struct peer *p = (struct peer *)be;
	int rc = backend_list(p->origin, fn, arg);

	mirror(p);
	return rc;
}

static int peer_stat(struct backend *be, const char *key, struct backend_stat *st)
{
	struct peer *p = (struct peer *)be;

	return p->origin->ops->stat(p->origin, key, st);
}

/* A read: to the owner when another live node owns the object, else (and
 * whenever the owner cannot answer right) to the origin. */
static int peer_submit(struct backend *be, struct backend_req *req)
{
	struct peer *p = (struct peer *)be;
	struct preq *pr = ec_calloc(1, sizeof(*pr));
	uint64_t size = req->expect.size;
	int rc;

	if (!pr)
		return -ENOMEM;
	pr->p = p;
	pr->req = req;
	pr->done = req->done;
	pr->arg = req->arg;
	if (size && req->off < size && req->len)
		pr->want = MIN((uint64_t)req->len, size - req->off);
	pr->node = owner_of(p, req->key);
	if (!pr->want || pr->want > PEER_MAX_RANGE || !pr->node) {
		rc = to_origin(pr);
		if (rc < 0)
			free(pr);
		return rc;
	}
	atomic_fetch_add(&p->requests, 1);
	atomic_fetch_add(&pr->node->requests, 1);
	pthread_mutex_lock(&p->lock);
	if (p->stop) {
		pthread_mutex_unlock(&p->lock);
		free(pr);
		return -ESHUTDOWN;
	}
	if (p->qtail)
		p->qtail->next = pr;
	else
		p->qhead = pr;
	p->qtail = pr;
	pthread_mutex_unlock(&p->lock);
	curl_multi_wakeup(p->multi);
	return 0;
}

/* Stop the threads (those started: p->multi set means the transfer thread
 * runs, p->hup[1] open the membership thread), cancel what is queued,
 * destroy the origin if p still holds it, free everything. */
static void peer_free(struct peer *p)
{
	struct preq *pr;

	pthread_mutex_lock(&p->lock);
	p->stop = 1;
	pthread_mutex_unlock(&p->lock);
	if (p->multi) {
		curl_multi_wakeup(p->multi);
		pthread_join(p->thread, NULL);
	}
	if (p->hup[1] >= 0) {
		peer_reload(&p->be);
		pthread_join(p->mthread, NULL);
	}
	/* The cache is closed: nothing should be left; what is, is cancelled. */
	while ((pr = p->qhead)) {
		p->qhead = pr->next;
		pr->req->result = -ECANCELED;
		complete(pr);
	}
	if (p->multi)
		curl_multi_cleanup(p->multi);
	backend_destroy(p->origin);
	tab_free(p->tab);
	for (unsigned i = 0; i < p->nreg; i++)
		free(p->reg[i]);
	free(p->reg);
	if (p->hup[0] >= 0)
		close(p->hup[0]);
	if (p->hup[1] >= 0)
		close(p->hup[1]);
	curl_slist_free_all(p->hdrs);
	free(p->listen);
	free(p->list);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

static void peer_destroy(struct backend *be)
{
	peer_free((struct peer *)be);
}

int backend_is_peer(const struct backend *be)
{
	return be && be->ops->destroy == peer_destroy;
}

int backend_peer_create(struct backend *origin, const struct peer_options *po,
			struct backend **out, char *err, size_t errlen)
{
	struct peer *p = ec_calloc(1, sizeof(*p));
	struct ptable *t;
	int rc = -ENOMEM;

	*out = NULL;
	*err = 0;
	if (!p) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	pthread_mutex_init(&p->lock, NULL);
	p->hup[0] = p->hup[1] = -1;
	p->origin = origin;
	p->ops = (struct backend_ops){ origin->ops->name, peer_list, peer_stat, peer_submit,
				       peer_destroy };
	p->be.ops = &p->ops;
	p->be.url = origin->url;
	p->be.concurrency = origin->concurrency;
	p->timeout_ms = po->timeout_ms ? po->timeout_ms : PEER_DEFAULT_TIMEOUT_MS;
	p->total_ms = po->total_ms ? po->total_ms : PEER_TOTAL_MS;
	if (p->total_ms < p->timeout_ms)
		p->total_ms = p->timeout_ms;
	if ((po->listen && !(p->listen = ec_strdup(po->listen))) ||
	    (po->peers && !(p->list = ec_strdup(po->peers))))
		goto fail;
	if (p->listen && peer_split_hostport(p->listen, p->host, sizeof(p->host), &p->port)) {
		snprintf(err, errlen, "--listen '%.200s' is not ADDR:PORT", p->listen);
		rc = -EINVAL;
		goto fail;
	}
	if (po->secret_file) {
		char hdr[PEER_SECRET_MAX + 32];

		rc = peer_read_secret(po->secret_file, p->secret, sizeof(p->secret), err, errlen);
		if (rc)
			goto fail;
		/* Every request carries it: one list for all (curl only reads it). */
		snprintf(hdr, sizeof(hdr), "%s: %s", PEER_SECRET_HEADER, p->secret);
		p->hdrs = curl_slist_append(NULL, hdr);
		explicit_bzero(hdr, sizeof(hdr));
		rc = -ENOMEM;
		if (!p->hdrs)
			goto fail;
	}
	rc = build_table(p, &t, err, errlen);
	if (rc)
		goto fail;
	install_table(p, t);
	rc = -ENOMEM;
	/* libcurl's global state first: a posix origin never started it */
	p->multi = fetch_curl_init() ? NULL : curl_multi_init();
	if (!p->multi)
		goto fail;
	if (pthread_create(&p->thread, NULL, peer_main, p)) {
		curl_multi_cleanup(p->multi);
		p->multi = NULL;
		goto fail;
	}
	if (pipe2(p->hup, O_CLOEXEC | O_NONBLOCK) < 0) {
		p->hup[0] = p->hup[1] = -1;
		rc = -errno;
		goto fail;
	}
	if (pthread_create(&p->mthread, NULL, member_main, p)) {
		close(p->hup[1]);
		p->hup[1] = -1;
		goto fail;
	}
	*out = &p->be;
	return 0;
fail:
	if (!*err)
		snprintf(err, errlen, "peer client: %s", strerror(-rc));
	p->origin = NULL; /* the origin stays the caller's */
	peer_free(p);
	return rc;
}

const char *peer_secret(const struct backend *be)
{
	const struct peer *p = as_peer(be);

	return p ? p->secret : "";
}

void peer_count_served(struct backend *be, uint64_t bytes)
{
	struct peer *p = as_peer(be);

	if (p) {
		atomic_fetch_add(&p->served, 1);
		atomic_fetch_add(&p->bytes_out, bytes);
	}
}

void peer_count_refused(struct backend *be)
{
	struct peer *p = as_peer(be);

	if (p)
		atomic_fetch_add(&p->refused, 1);
}

#define LD(x) ((unsigned long long)atomic_load(&(x)))

void peer_stats_json(struct backend *be, struct sbuf *b)
{
	struct peer *p = as_peer(be);
	uint64_t now = now_ms();
	struct ptable *t;

	if (!p)
		return;
	sbuf_printf(b,
		    "\"origin_bytes\":%llu,\"peer_bytes_in\":%llu,\"peer_bytes_out\":%llu,"
		    "\"peer_requests\":%llu,\"peer_errors\":%llu,\"peer_misses\":%llu,"
		    "\"peer_served\":%llu,\"peer_refused\":%llu,\"peers\":[",
		    LD(p->origin->counters.bytes), LD(p->bytes_in), LD(p->bytes_out),
		    LD(p->requests), LD(p->errors), LD(p->misses), LD(p->served), LD(p->refused));
	pthread_mutex_lock(&p->lock);
	t = p->tab;
	for (unsigned i = 0; t && i < t->n; i++) {
		struct pnode *n = t->v[i];

		sbuf_str(b, i ? ",{\"addr\":\"" : "{\"addr\":\"");
		sbuf_json_str(b, n->id);
		sbuf_printf(b, "\",\"state\":\"%s\",\"requests\":%llu,\"errors\":%llu,\"bytes\":%llu}",
			    n->self ? "self" : n->down_until_ms > now ? "down" : "up",
			    LD(n->requests), LD(n->errors), LD(n->bytes));
	}
	pthread_mutex_unlock(&p->lock);
	sbuf_str(b, "],");
}
