/* SPDX-License-Identifier: MIT */
/* FUSE passthrough through libfuse's custom I/O hooks (passthrough.h).
 *
 * The kernel's side (include/uapi/linux/fuse.h, protocol 7.40; stable ABI,
 * written out here so that the build does not depend on the build host's
 * kernel headers, which on Debian 12 predate it):
 *  - INIT: the kernel offers FUSE_PASSTHROUGH (bit 37, in flags2 when
 *    FUSE_INIT_EXT is set); the reply takes it by setting it back, with
 *    FUSE_INIT_EXT and a max_stack_depth of 1 (the store is a plain local
 *    filesystem; stacking a FUSE mount over overlayfs would need 2), and
 *    without FUSE_WRITEBACK_CACHE (never asked for here);
 *  - a backing file is registered with ioctl(FUSE_DEV_IOC_BACKING_OPEN) on
 *    the device (CAP_SYS_ADMIN), which returns its id; an OPEN reply with
 *    FOPEN_PASSTHROUGH and that id has the kernel read the file itself;
 *    the id is dropped with FUSE_DEV_IOC_BACKING_CLOSE (open files keep
 *    their own reference);
 *  - every live open of an inode must agree: all through one backing file,
 *    or none (a cached open beside a passthrough one fails with EIO), and
 *    a passthrough open takes no other flag than NOFLUSH and DIRECT_IO.
 *
 * The hooks: read() sees the INIT request (what the kernel offers, and its
 * unique); writev() rewrites the INIT reply, and an OPEN reply sent while
 * this thread has a backing id pending (pt_reply_open: libfuse sends the
 * reply synchronously from the calling thread). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#include "passthrough.h"
#include "cache/cache.h"
#include "backends/base/log.h"
#include "backends/base/util.h"

#define K_FUSE_INIT 26
#define K_INIT_EXT (1u << 30)
#define K_WRITEBACK_CACHE (1u << 16)
#define K_PASSTHROUGH_FLAGS2 (1u << (37 - 32))
#define K_FOPEN_DIRECT_IO (1u << 0)
#define K_FOPEN_NOFLUSH (1u << 5)
#define K_FOPEN_PASSTHROUGH (1u << 7)

struct k_in_header {
	uint32_t len, opcode;
	uint64_t unique, nodeid;
	uint32_t uid, gid, pid;
	uint16_t total_extlen, padding;
};

struct k_init_in {
	uint32_t major, minor, max_readahead, flags, flags2;
};

struct k_out_header {
	uint32_t len;
	int32_t error;
	uint64_t unique;
};

struct k_init_out {
	uint32_t major, minor, max_readahead, flags;
	uint16_t max_background, congestion_threshold;
	uint32_t max_write, time_gran;
	uint16_t max_pages, map_alignment;
	uint32_t flags2, max_stack_depth;
	uint32_t unused[6];
};

struct k_open_out {
	uint64_t fh;
	uint32_t open_flags;
	int32_t backing_id;
};

struct k_backing_map {
	int32_t fd;
	uint32_t flags;
	uint64_t padding;
};

#define K_DEV_IOC_BACKING_OPEN _IOW(229, 1, struct k_backing_map)
#define K_DEV_IOC_BACKING_CLOSE _IOW(229, 2, uint32_t)

_Static_assert(sizeof(struct k_in_header) == 40, "fuse_in_header");
_Static_assert(sizeof(struct k_init_out) == 64, "fuse_init_out");
_Static_assert(offsetof(struct k_init_out, max_stack_depth) == 36, "max_stack_depth");
_Static_assert(sizeof(struct k_open_out) == 16, "fuse_open_out");

static struct {
	int devfd;
	atomic_int init_seen;     /* INIT read: init_unique and offered are set */
	uint64_t init_unique;
	int offered;              /* the kernel offered passthrough */
	int init_replied;         /* (the INIT reply is sent once, before any other) */
	atomic_int enabled;       /* accepted, and no backing file refused */
} g = { .devfd = -1 };

/* The backing id of the OPEN reply this thread is about to send, or 0. */
static __thread int tl_backing;

/* ---- the hooks ---- */

static ssize_t hook_read(int fd, void *buf, size_t len, void *ud)
{
	ssize_t n = read(fd, buf, len);

	(void)ud;
	/* An INIT of protocol 7.36+ has flags2; an older one is 16 bytes. */
	if (n >= (ssize_t)(sizeof(struct k_in_header) + offsetof(struct k_init_in, flags2)) &&
	    !atomic_load_explicit(&g.init_seen, memory_order_acquire)) {
		struct k_in_header h;
		struct k_init_in in = { 0 };

		memcpy(&h, buf, sizeof(h));
		if (h.opcode == K_FUSE_INIT) {
			memcpy(&in, (char *)buf + sizeof(h),
			       MIN((size_t)n - sizeof(h), sizeof(in)));
			g.init_unique = h.unique;
			g.offered = (in.flags & K_INIT_EXT) && (in.flags2 & K_PASSTHROUGH_FLAGS2);
			atomic_store_explicit(&g.init_seen, 1, memory_order_release);
		}
	}
	return n;
}

static ssize_t hook_writev(int fd, struct iovec *iov, int count, void *ud)
{
	struct k_out_header oh;

	(void)ud;
	if (count < 1 || iov[0].iov_len != sizeof(oh))
		return writev(fd, iov, count);
	memcpy(&oh, iov[0].iov_base, sizeof(oh));
	if (count != 2) {
		if (atomic_load_explicit(&g.init_seen, memory_order_acquire) && !g.init_replied &&
		    oh.unique == g.init_unique) {
			g.init_replied = 1; /* an error: no session */
			g.offered = 0;
		}
		return writev(fd, iov, count);
	}
	if (tl_backing > 0 && oh.error == 0 && iov[1].iov_len == sizeof(struct k_open_out)) {
		struct k_open_out o;
		struct iovec v[2] = { iov[0], { &o, sizeof(o) } };

		memcpy(&o, iov[1].iov_base, sizeof(o));
		o.open_flags = (o.open_flags & (K_FOPEN_NOFLUSH | K_FOPEN_DIRECT_IO)) |
			       K_FOPEN_PASSTHROUGH;
		o.backing_id = tl_backing;
		tl_backing = 0;
		return writev(fd, v, 2);
	}
	if (atomic_load_explicit(&g.init_seen, memory_order_acquire) && !g.init_replied &&
	    oh.unique == g.init_unique) {
		struct k_init_out o = { 0 };
		struct iovec v[2] = { iov[0], { &o, iov[1].iov_len } };

		g.init_replied = 1;
		if (oh.error || iov[1].iov_len < offsetof(struct k_init_out, unused) ||
		    iov[1].iov_len > sizeof(o)) {
			log_info("passthrough: off (an INIT reply of %zu bytes, error %d, has "
				 "no room for it)", iov[1].iov_len, oh.error);
			g.offered = 0;
			return writev(fd, iov, count);
		}
		memcpy(&o, iov[1].iov_base, iov[1].iov_len);
		if (!g.offered || (o.flags & K_WRITEBACK_CACHE)) {
			log_info("passthrough: off (the kernel does not offer it: Linux 6.9+ with "
				 "CONFIG_FUSE_PASSTHROUGH); every read goes through the daemon");
			g.offered = 0;
			return writev(fd, iov, count);
		}
		o.flags |= K_INIT_EXT;
		o.flags2 |= K_PASSTHROUGH_FLAGS2;
		o.max_stack_depth = 1;
		atomic_store(&g.enabled, 1);
		log_info("passthrough: on (the kernel reads files the cache holds whole and has "
			 "checked straight from the store)");
		return writev(fd, v, 2);
	}
	return writev(fd, iov, count);
}

static ssize_t hook_splice(int fdin, off_t *offin, int fdout, off_t *offout, size_t len,
			   unsigned int flags, void *ud)
{
	(void)ud;
	return splice(fdin, offin, fdout, offout, len, flags);
}

int pt_install(struct fuse_session *se, int want)
{
	static const struct fuse_custom_io io = {
		.read = hook_read,
		.writev = hook_writev,
		.splice_send = hook_splice,
	};
	int fd, rc;

	if (!want)
		return 0; /* no hooks: INIT is never seen, nothing offered */
	fd = fuse_session_fd(se);
	if (fd < 0)
		return -EBADF;
	rc = fuse_session_custom_io(se, &io, fd);
	if (rc)
		return rc;
	g.devfd = fd;
	return 0;
}

int pt_enabled(void)
{
	return atomic_load_explicit(&g.enabled, memory_order_relaxed);
}

int pt_reply_open(fuse_req_t req, const struct fuse_file_info *fi, int backing)
{
	int rc;

	tl_backing = backing;
	rc = fuse_reply_open(req, fi);
	tl_backing = 0;
	return rc;
}

/* ---- the modes of live opens, by inode ---- */

struct pt_ino {
	struct pt_ino *next;
	uint64_t ino;
	uint8_t cid[CACHE_CID_LEN]; /* the version passed through */
	uint32_t ncached, npt;
	int backing;
};

/* Striped by inode: opens of different files rarely meet on a lock (one
 * lock was the daemon's most contended, beside the cache's). */
#define PT_STRIPES 64u
#define PT_BUCKETS 64u

static struct stripe {
	pthread_mutex_t lock;
	struct pt_ino *bucket[PT_BUCKETS];
	struct pt_ino *free;      /* entries kept for reuse: no malloc per open */
} t_stripe[PT_STRIPES] = { [0 ... PT_STRIPES - 1] = { .lock = PTHREAD_MUTEX_INITIALIZER } };

static struct stripe *stripe_of(uint64_t ino, struct pt_ino ***slot)
{
	uint64_t h = ino * 0x9e3779b97f4a7c15ull;
	struct stripe *s = &t_stripe[h >> 58];
	struct pt_ino **p = &s->bucket[(h >> 52) & (PT_BUCKETS - 1)];

	pthread_mutex_lock(&s->lock);
	while (*p && (*p)->ino != ino)
		p = &(*p)->next;
	*slot = p;
	return s;
}

/* Register f's store file with the kernel: its id, or 0 (logged; a refusal
 * that will not change turns passthrough off). */
static int backing_open(struct cache_file *f)
{
	struct k_backing_map m = { 0 };
	int id, err;

	m.fd = cache_file_store_fd(f);
	if (m.fd < 0)
		return 0;
	id = ioctl(g.devfd, K_DEV_IOC_BACKING_OPEN, &m);
	err = errno;
	close(m.fd);
	if (id > 0)
		return id;
	if (err == EPERM || err == EINVAL || err == ENOTTY || err == EOPNOTSUPP || err == ELOOP) {
		if (atomic_exchange(&g.enabled, 0))
			log_warn("passthrough: the kernel refused a backing file (%s%s); reads go "
				 "through the daemon from now on", strerror(err),
				 err == EPERM ? ": the daemon needs CAP_SYS_ADMIN, or the kernel did "
						"not take passthrough at INIT" :
				 err == ELOOP ? ": the cache is on a stacked filesystem" : "");
	} else {
		log_debug("passthrough: backing file refused: %s", strerror(err));
	}
	return 0;
}

int pt_open(uint64_t ino, struct cache_file *f, int direct, int *backing)
{
	const uint8_t *cid;
	struct pt_ino **p, *e;
	struct stripe *s;
	int mode = PT_CACHED;

	*backing = 0;
	if (!g.offered)
		return PT_NONE; /* never on: nothing to keep apart */
	cid = cache_file_version(f);
	s = stripe_of(ino, &p);
	e = *p;
	if (direct) {
		/* Any other open beside live passthrough ones would fail. */
		if (e && e->npt) {
			e->npt++;
			*backing = e->backing;
			mode = PT_PASSTHROUGH;
		} else {
			mode = PT_NONE;
		}
		pthread_mutex_unlock(&s->lock);
		return mode;
	}
	if (!e) {
		e = s->free;
		if (e)
			s->free = e->next;
		else if (!(e = ec_malloc(sizeof(*e)))) {
			pthread_mutex_unlock(&s->lock);
			return -ENOMEM; /* an uncounted open could mix modes */
		}
		memset(e, 0, sizeof(*e));
		e->ino = ino;
		*p = e;
	}
	if (e->npt && !memcmp(e->cid, cid, CACHE_CID_LEN)) {
		mode = PT_PASSTHROUGH;
	} else if (!e->npt && !e->ncached && cache_file_passable(f) && pt_enabled()) {
		/* Under the stripe's lock: a second open of this inode meanwhile
		 * waits for the id rather than registering its own. */
		e->backing = backing_open(f);
		if (e->backing) {
			memcpy(e->cid, cid, CACHE_CID_LEN);
			mode = PT_PASSTHROUGH;
		}
	}
	/* A cached open beside live passthrough ones of another version (the
	 * source changed under them) is refused by the kernel (EIO), as a
	 * read of a changed file is anyway. */
	if (mode == PT_PASSTHROUGH) {
		e->npt++;
		*backing = e->backing;
	} else {
		e->ncached++;
	}
	pthread_mutex_unlock(&s->lock);
	return mode;
}

void pt_close(uint64_t ino, int mode)
{
	struct pt_ino **p, *e;
	struct stripe *s;
	int closing = 0;

	if (mode == PT_NONE)
		return;
	s = stripe_of(ino, &p);
	e = *p;
	if (!e) {
		pthread_mutex_unlock(&s->lock);
		return;
	}
	if (mode == PT_PASSTHROUGH && e->npt && !--e->npt) {
		closing = e->backing;
		e->backing = 0;
	} else if (mode == PT_CACHED && e->ncached) {
		e->ncached--;
	}
	if (!e->npt && !e->ncached) {
		*p = e->next;
		e->next = s->free;
		s->free = e;
	}
	pthread_mutex_unlock(&s->lock);
	if (closing) {
		uint32_t id = (uint32_t)closing;

		if (ioctl(g.devfd, K_DEV_IOC_BACKING_CLOSE, &id) < 0)
			log_debug("passthrough: closing backing id %u: %s", id, strerror(errno));
	}
}
