/* SPDX-License-Identifier: MIT */
/* The peer client (peer.h): a backend wrapping the origin.  One thread
 * drives a libcurl multi handle for the ranged GETs to peers, with at most
 * the origin's concurrency in flight; a request a peer cannot answer right
 * (no connection, a timeout, an error status, a size or checksum that does
 * not match) marks that peer down with backoff and goes to the origin, so a
 * peer can make a read slower, never wrong or failed.  A second thread
 * re-reads the membership on SIGHUP (and re-resolves names every 30 s). */
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

#include "peer.h"
#include "fetch.h"
#include "keys.h"
#include "owner.h"
#include "base/log.h"
#include "base/util.h"

#define PEER_TOTAL_MS 5000        /* default bound on one peer request, whole */
#define PEER_BACKOFF_MIN_MS 1000
#define PEER_BACKOFF_MAX_MS 60000
#define PEER_RESOLVE_S 30         /* names are resolved again this often */
#define PEER_ID_MAX 280

struct peer_options peer_opts = { .timeout_ms = PEER_DEFAULT_TIMEOUT_MS };

void peer_options_reset(struct peer_options *o)
{
	free(o->listen);
	free(o->peers);
	free(o->secret_file);
	memset(o, 0, sizeof(*o));
	o->timeout_ms = PEER_DEFAULT_TIMEOUT_MS;
}

int peer_split_hostport(const char *s, char *host, size_t hostlen, unsigned *port)
{
	const char *colon, *h = s;
	size_t hl;
	char *end;
	unsigned long v;

	if (*s == '[') {
		const char *rb = strchr(s, ']');

		if (!rb || rb[1] != ':')
			return -EINVAL;
		h = s + 1;
		hl = (size_t)(rb - h);
		colon = rb + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon || memchr(s, ':', (size_t)(colon - s)))
			return -EINVAL;
		hl = (size_t)(colon - s);
	}
	if (!hl || hl >= hostlen || !isdigit((unsigned char)colon[1]))
		return -EINVAL;
	errno = 0;
	v = strtoul(colon + 1, &end, 10);
	if (errno || *end || !v || v > 65535)
		return -EINVAL;
	memcpy(host, h, hl);
	host[hl] = 0;
	*port = (unsigned)v;
	return 0;
}

int peer_read_secret(const char *path, char *buf, size_t len, char *err, size_t errlen)
{
	FILE *f = fopen(path, "re");
	size_t n;

	struct stat st;

	if (!f) {
		snprintf(err, errlen, "peer secret file %s: %s", path, strerror(errno));
		return -errno;
	}
	if (!fstat(fileno(f), &st) && (st.st_mode & 077))
		log_warn("peer secret file %s can be read by others (mode %03o): chmod 600 it", path,
			 (unsigned)(st.st_mode & 0777));
	if (!fgets(buf, (int)len, f))
		buf[0] = 0;
	fclose(f);
	n = strcspn(buf, "\r\n");
	while (n && isspace((unsigned char)buf[n - 1]))
		n--;
	buf[n] = 0;
	if (!n || n > PEER_SECRET_MAX) {
		snprintf(err, errlen, "peer secret file %s: the first line must hold 1 to %d bytes",
			 path, PEER_SECRET_MAX);
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)buf[i] < 0x21 || buf[i] == 0x7f) {
			snprintf(err, errlen, "peer secret file %s: the secret must be printable, no blanks", path);
			return -EINVAL;
		}
	return 0;
}

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

static struct peer *as_peer(const struct backend *be)
{
	return backend_is_peer(be) ? (struct peer *)be : NULL;
}

/* ---- membership ---- */

/* Addresses of this machine's interfaces, for recognising itself. */
static int is_local_addr(const struct sockaddr *sa)
{
	struct ifaddrs *ifs, *i;
	int found = 0;

	if (getifaddrs(&ifs) < 0)
		return 0;
	for (i = ifs; i && !found; i = i->ifa_next) {
		if (!i->ifa_addr || i->ifa_addr->sa_family != sa->sa_family)
			continue;
		if (sa->sa_family == AF_INET)
			found = ((const struct sockaddr_in *)sa)->sin_addr.s_addr ==
				((struct sockaddr_in *)i->ifa_addr)->sin_addr.s_addr;
		else if (sa->sa_family == AF_INET6)
			found = !memcmp(&((const struct sockaddr_in6 *)sa)->sin6_addr,
					&((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr, 16);
	}
	freeifaddrs(ifs);
	return found;
}

static void addr_id(const struct sockaddr *sa, unsigned port, char *id, size_t len)
{
	char a[INET6_ADDRSTRLEN] = "";

	if (sa->sa_family == AF_INET6) {
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, a, sizeof(a));
		snprintf(id, len, "[%s]:%u", a, port);
	} else {
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, a, sizeof(a));
		snprintf(id, len, "%s:%u", a, port);
	}
}

/* The node of id (made on first sight); NULL when too many. */
static struct pnode *node_get(struct peer *p, const char *id, int self)
{
	struct pnode *n, **reg;

	pthread_mutex_lock(&p->lock);
	for (unsigned i = 0; i < p->nreg; i++)
		if (!strcmp(p->reg[i]->id, id)) {
			p->reg[i]->self = self;
			pthread_mutex_unlock(&p->lock);
			return p->reg[i];
		}
	n = NULL;
	if (p->nreg < PEER_MAX_NODES && (reg = ec_realloc(p->reg, (p->nreg + 1) * sizeof(*reg)))) {
		p->reg = reg;
		n = ec_calloc(1, sizeof(*n));
		if (n) {
			snprintf(n->id, sizeof(n->id), "%s", id);
			n->hash = owner_node_hash(id, strlen(id));
			n->self = self;
			p->reg[p->nreg++] = n;
		}
	}
	pthread_mutex_unlock(&p->lock);
	return n;
}

static int tab_add(struct peer *p, struct ptable *t, const char *id, int self)
{
	struct pnode *n;

	for (unsigned i = 0; i < t->n; i++)
		if (!strcmp(t->v[i]->id, id))
			return 0;
	if (t->n >= PEER_MAX_NODES || !(n = node_get(p, id, self)))
		return -ENOMEM;
	t->v[t->n] = n;
	t->hash[t->n++] = n->hash;
	t->nremote += !self;
	return 0;
}

/* One entry of the list: "host:port"; a name with several addresses gives
 * a node per address. */
static int add_entry(struct peer *p, struct ptable *t, const char *e, char *err, size_t errlen)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL, *ai;
	char host[256], id[PEER_ID_MAX];
	unsigned port, naddr = 0;
	int rc, self = 0, numeric;
	struct in6_addr tmp;

	if (peer_split_hostport(e, host, sizeof(host), &port)) {
		snprintf(err, errlen, "peer '%.200s' is not HOST:PORT", e);
		return -EINVAL;
	}
	numeric = inet_pton(AF_INET, host, &tmp) == 1 || inet_pton(AF_INET6, host, &tmp) == 1;
	if (!numeric)
		p->dynamic = 1;
	rc = getaddrinfo(host, NULL, &hints, &res);
	if (rc) {
		log_warn("peer %s: cannot resolve %s (%s); kept as named", e, host, gai_strerror(rc));
		return tab_add(p, t, e, p->listen && !strcmp(e, p->listen));
	}
	for (ai = res; ai; ai = ai->ai_next)
		naddr += ai->ai_family == res->ai_family;
	if (numeric || naddr == 1) {
		self = p->listen && (!strcmp(e, p->listen) || (port == p->port && is_local_addr(res->ai_addr)));
		rc = tab_add(p, t, e, self);
	} else {
		/* One family (the first answer's): "localhost" is 127.0.0.1 and
		 * ::1, one node; a headless Service answers A records. */
		for (ai = res, rc = 0; ai && !rc; ai = ai->ai_next) {
			if (ai->ai_family != res->ai_family)
				continue;
			addr_id(ai->ai_addr, port, id, sizeof(id));
			self = p->listen && port == p->port && is_local_addr(ai->ai_addr);
			rc = tab_add(p, t, id, self);
		}
	}
	freeaddrinfo(res);
	return rc;
}

/* The list's text: the option itself, or the file it names. */
static char *list_text(struct peer *p, char *err, size_t errlen)
{
	FILE *f;
	char *s = NULL;
	size_t cap = 0, n;

	if (p->list[0] != '@')
		return ec_strdup(p->list);
	f = fopen(p->list + 1, "re");
	if (!f) {
		snprintf(err, errlen, "peers file %s: %s", p->list + 1, strerror(errno));
		return NULL;
	}
	s = ec_malloc(1 << 20);
	if (s) {
		cap = (1 << 20) - 1;
		n = fread(s, 1, cap, f);
		s[n] = 0;
	}
	fclose(f);
	if (!s)
		snprintf(err, errlen, "out of memory");
	return s;
}

static void tab_free(struct ptable *t)
{
	if (t) {
		free(t->v);
		free(t->hash);
		free(t->live);
		free(t);
	}
}

/* Build the table from --peers (and --listen: this node always belongs). */
static int build_table(struct peer *p, struct ptable **out, char *err, size_t errlen)
{
	struct ptable *t = ec_calloc(1, sizeof(*t));
	char *text = NULL, *save = NULL, *tok;
	int rc = -ENOMEM, self = 0;

	*out = NULL;
	if (!t || !(t->v = ec_calloc(PEER_MAX_NODES, sizeof(*t->v))) ||
	    !(t->hash = ec_calloc(PEER_MAX_NODES, sizeof(*t->hash))) ||
	    !(t->live = ec_calloc(PEER_MAX_NODES, 1)))
		goto out;
	p->dynamic = 0;
	if (p->list) {
		text = list_text(p, err, errlen);
		if (!text) {
			rc = -EINVAL;
			goto out;
		}
		for (tok = strtok_r(text, ",\n", &save); tok; tok = strtok_r(NULL, ",\n", &save)) {
			char *h = strchr(tok, '#');

			if (h)
				*h = 0;
			while (isspace((unsigned char)*tok))
				tok++;
			for (h = tok + strlen(tok); h > tok && isspace((unsigned char)h[-1]);)
				*--h = 0;
			if (!*tok)
				continue;
			rc = add_entry(p, t, tok, err, errlen);
			if (rc)
				goto out;
		}
	}
	for (unsigned i = 0; i < t->n; i++)
		self |= t->v[i]->self;
	if (p->listen && !self && (rc = tab_add(p, t, p->listen, 1)))
		goto out;
	*out = t;
	t = NULL;
	rc = 0;
out:
	if (rc == -ENOMEM && !*err)
		snprintf(err, errlen, "out of memory (or more than %d peers)", PEER_MAX_NODES);
	free(text);
	tab_free(t);
	return rc;
}

static void install_table(struct peer *p, struct ptable *t)
{
	struct ptable *old;

	pthread_mutex_lock(&p->lock);
	old = p->tab;
	p->tab = t;
	pthread_mutex_unlock(&p->lock);
	if (!old || old->n != t->n || old->nremote != t->nremote ||
	    memcmp(old->hash, t->hash, t->n * sizeof(*t->hash)))
		log_info("peers: %u other node%s%s", t->nremote, t->nremote == 1 ? "" : "s",
			 p->listen ? "" : " (this node serves none: no --listen)");
	tab_free(old);
}

static void *member_main(void *arg)
{
	struct peer *p = arg;
	struct pollfd pfd = { .fd = p->hup[0], .events = POLLIN };
	struct ptable *t;
	char buf[64], err[512];

	for (;;) {
		int n = poll(&pfd, 1, p->dynamic ? PEER_RESOLVE_S * 1000 : -1);

		if (n > 0 && read(p->hup[0], buf, sizeof(buf)) < 0)
			continue;
		pthread_mutex_lock(&p->lock);
		n = p->stop;
		pthread_mutex_unlock(&p->lock);
		if (n)
			break;
		*err = 0;
		if (build_table(p, &t, err, sizeof(err)))
			log_warn("peers: %s; keeping the previous list", err);
		else
			install_table(p, t);
	}
	return NULL;
}

void peer_reload(struct backend *be)
{
	struct peer *p = as_peer(be);

	if (p && p->hup[1] >= 0) {
		ssize_t rc = write(p->hup[1], "h", 1);

		(void)rc;
	}
}

/* The owner of key among the live nodes: NULL for this node (or none). */
static struct pnode *owner_of(struct peer *p, const char *key)
{
	uint64_t now = now_ms(), h = owner_object_hash(key, strlen(key));
	struct pnode *n = NULL;
	struct ptable *t;
	int i;

	pthread_mutex_lock(&p->lock);
	t = p->tab;
	if (t && t->nremote) {
		for (unsigned k = 0; k < t->n; k++)
			t->live[k] = t->v[k]->self || t->v[k]->down_until_ms <= now;
		i = owner_pick(t->hash, t->live, t->n, h);
		if (i >= 0 && !t->v[i]->self)
			n = t->v[i];
	}
	pthread_mutex_unlock(&p->lock);
	return n;
}

int peer_owns(struct backend *be, const char *key)
{
	struct peer *p = as_peer(be);

	return !p || !owner_of(p, key);
}

int peer_owns_planned(struct backend *be, const char *key)
{
	struct peer *p = as_peer(be);
	uint64_t h;
	int i, own = 1;

	if (!p)
		return 1;
	h = owner_object_hash(key, strlen(key));
	pthread_mutex_lock(&p->lock);
	if (p->tab && p->tab->nremote) {
		i = owner_pick(p->tab->hash, NULL, p->tab->n, h);
		own = i < 0 || p->tab->v[i]->self;
	}
	pthread_mutex_unlock(&p->lock);
	return own;
}

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
