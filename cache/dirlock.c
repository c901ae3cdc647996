/* SPDX-License-Identifier: MIT */
/* The cache directory's lock: one daemon per cache dir, and a note of what
 * the holder is doing so that a daemon started right after an unmount
 * waits for the old one to close instead of failing. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "dirlock.h"
#include "backends/base/log.h"
#include "backends/base/mountinfo.h"

/* The lock file says what its holder is doing, one line: "<pid> starting",
 * "<pid> mounted <dev> <mountpoint>" or "<pid> closing", where dev and the
 * mount point are as /proc/self/mountinfo gives them (major:minor, octal
 * escapes).  A daemon that finds the directory locked waits for a holder
 * that has left its mount (closing, or its fuse.epochfs mount gone from
 * mountinfo: `umount` returns before the old daemon has written back its
 * index) and fails at once on one that is starting or still mounted. */
#define LOCK_WAIT_S 60

const char *cache_mountinfo = "/proc/self/mountinfo";

void dirlock_note(int fd, const char *dir, const char *state)
{
	char line[5 * PATH_MAX];
	int n = snprintf(line, sizeof(line), "%ld %s\n", (long)getpid(), state), err;

	if (fd < 0 || n < 0 || (size_t)n >= sizeof(line))
		return;
	/* Written before the old line is cut off, so that a reader never sees
	 * an empty file; readers stop at the first newline. */
	if (pwrite(fd, line, (size_t)n, 0) != n || ftruncate(fd, n) < 0) {
		err = errno;
		log_warn("cache dir %s: cannot note the daemon's state: %s", dir,
			 strerror(err));
	}
}

struct mi_match {
	const char *esc, *dev;
	char *devout;
	size_t devlen;
	int found;
};

static int mi_match_cb(void *arg, const struct mountinfo_ent *e)
{
	struct mi_match *m = arg;

	if (strcmp(e->fstype, "fuse.epochfs") || strcmp(e->mp_escaped, m->esc))
		return 0;
	if (strcmp(m->dev, "-") && strcmp(e->dev, m->dev))
		return 0;
	m->found = 1;
	if (m->devout)
		snprintf(m->devout, m->devlen, "%s", e->dev);
	return 0;
}

/* The last fuse.epochfs mount at esc (and of device dev, unless dev is "-")
 * in cache_mountinfo: 1 and its device in devout, 0 if none, -1 if the file
 * cannot be read. */
static int mi_find(const char *esc, const char *dev, char *devout, size_t devlen)
{
	struct mi_match m = { esc, dev, devout, devlen, 0 };

	if (mountinfo_each(cache_mountinfo, mi_match_cb, &m) < 0)
		return -1;
	return m.found;
}

void dirlock_note_mounted(int fd, const char *dir, const char *mountpoint)
{
	char esc[4 * PATH_MAX + 1], dev[32] = "-", state[sizeof(esc) + 48];

	/* Not noted (the holder stays "starting", which waiters do not wait
	 * for) when the path could not be matched against mountinfo anyway. */
	if (mountpoint[0] != '/' || mountinfo_escape(mountpoint, esc, sizeof(esc)) < 0)
		return;
	if (mi_find(esc, "-", dev, sizeof(dev)) != 1)
		snprintf(dev, sizeof(dev), "-");
	snprintf(state, sizeof(state), "mounted %s %s", dev, esc);
	dirlock_note(fd, dir, state);
}

/* What the holder noted: 1 when it has left its mount, 0 when it has not,
 * -1 when the note is empty or partial; who gets a description. */
static int holder_leaving(int fd, char *who, size_t wholen)
{
	char buf[5 * PATH_MAX], dev[32], *state, *nl;
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
	long pid;
	int off = 0;

	buf[n > 0 ? n : 0] = 0;
	snprintf(who, wholen, "another epochfs daemon");
	if (!(nl = strchr(buf, '\n')))
		return -1;
	*nl = 0;
	if (sscanf(buf, "%ld ", &pid) != 1 || !(state = strchr(buf, ' ')))
		return -1;
	state++;
	if (sscanf(state, "mounted %31s %n", dev, &off) == 1 && off > 0) {
		snprintf(who, wholen, "epochfs pid %ld, mounted on %s", pid, state + off);
		return mi_find(state + off, dev, NULL, 0) == 0;
	}
	snprintf(who, wholen, "epochfs pid %ld, %s", pid, state);
	return !strcmp(state, "closing");
}

/* The lock was not taken: the fd goes, so that nothing this daemon does
 * on its way out (cache_close notes "closing") touches the holder's note. */
static int unlocked(int *fd, int rc)
{
	close(*fd);
	*fd = -1;
	return rc;
}

int dirlock_take(const char *dir, int *fdp, char *err, size_t errlen)
{
	char path[PATH_MAX], who[5 * PATH_MAX + 64];
	int logged = 0, seen_leaving = 0, e, r;

	snprintf(path, sizeof(path), "%s/lock", dir);
	*fdp = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (*fdp < 0) {
		e = errno;
		snprintf(err, errlen, "cache dir %s: %s", dir, strerror(e));
		return -e;
	}
	for (int waited_ms = 0; flock(*fdp, LOCK_EX | LOCK_NB) < 0; waited_ms += 20) {
		if (errno != EWOULDBLOCK) {
			e = errno;
			snprintf(err, errlen, "cache dir %s: lock: %s", dir, strerror(e));
			return unlocked(fdp, -e);
		}
		r = holder_leaving(*fdp, who, sizeof(who));
		if (r == 1)
			seen_leaving = 1;
		else if (!(r == -1 && seen_leaving)) { /* a note being rewritten */
			snprintf(err, errlen, "cache dir %s is in use by another epochfs daemon (%s); "
				 "give each mount its own --cache-dir", dir, who);
			return unlocked(fdp, -EBUSY);
		}
		if (waited_ms >= LOCK_WAIT_S * 1000) {
			snprintf(err, errlen, "cache dir %s is still held after %d s by %s, which "
				 "has left its mount", dir, LOCK_WAIT_S, who);
			return unlocked(fdp, -EBUSY);
		}
		if (!logged++)
			log_info("cache dir %s is held by %s, which has left its mount: "
				 "waiting for it to close", dir, who);
		usleep(20 * 1000);
	}
	dirlock_note(*fdp, dir, "starting");
	return 0;
}
