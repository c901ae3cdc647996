/* SPDX-License-Identifier: MIT */
/* The peer client's options, its secret, and its membership: the --peers
 * list (host:port,..., @FILE re-read on SIGHUP, or names re-resolved every
 * 30 s), which entry is this node, and which node owns an object
 * (rendezvous hashing, backends/owner.h) among the live ones or the whole
 * list.  The requests are in backends/peer.c. */
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

#include "fetch.h"
#include "keys.h"
#include "owner.h"
#include "base/log.h"
#include "base/util.h"

#include "peer_int.h"

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

void tab_free(struct ptable *t)
{
	if (t) {
		free(t->v);
		free(t->hash);
		free(t->live);
		free(t);
	}
}

/* Build the table from --peers (and --listen: this node always belongs). */
int build_table(struct peer *p, struct ptable **out, char *err, size_t errlen)
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

void install_table(struct peer *p, struct ptable *t)
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

void *member_main(void *arg)
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
struct pnode *owner_of(struct peer *p, const char *key)
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
