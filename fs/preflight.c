/* SPDX-License-Identifier: MIT */
/* Checks of the daemon's local paths and of the cache size (preflight.h). */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "preflight.h"
#include "backends/base/mountinfo.h"
#include "backends/base/util.h"

int pf_abspath(const char *path, char *out, size_t outlen)
{
	char buf[PATH_MAX], tail[PATH_MAX] = "", tmp[PATH_MAX], *slash, *real;
	size_t n;

	if (!*path)
		return -EINVAL;
	if (path[0] == '/') {
		n = (size_t)snprintf(buf, sizeof(buf), "%s", path);
	} else {
		if (!getcwd(tmp, sizeof(tmp)))
			return -errno;
		n = (size_t)snprintf(buf, sizeof(buf), "%s/%s", tmp, path);
	}
	if (n >= sizeof(buf))
		return -ENAMETOOLONG;
	/* Strip missing components until what is left exists. */
	while (!(real = realpath(buf, NULL))) {
		if (errno != ENOENT)
			return -errno;
		slash = strrchr(buf, '/');
		if (!slash)
			return -ENOENT;
		if (slash[1]) {
			if (!strcmp(slash + 1, "..") )
				return -EINVAL; /* what it would climb out of is unknown */
			if (strcmp(slash + 1, ".")) {
				if ((size_t)snprintf(tmp, sizeof(tmp), "/%s%s", slash + 1, tail) >= sizeof(tmp))
					return -ENAMETOOLONG;
				memcpy(tail, tmp, strlen(tmp) + 1);
			}
		}
		if (slash == buf) {
			buf[1] = 0; /* "/" exists */
		} else {
			*slash = 0;
		}
	}
	n = (size_t)snprintf(out, outlen, "%s%s", strcmp(real, "/") ? real : "",
			     *tail || strcmp(real, "/") ? tail : "/");
	free(real);
	return n >= outlen ? -ENAMETOOLONG : 0;
}

int pf_is_under(const char *path, const char *root)
{
	size_t n = strlen(root);

	if (!strcmp(root, "/"))
		return 1;
	return !strncmp(path, root, n) && (path[n] == 0 || path[n] == '/');
}

int pf_mkdirs(const char *path, char *created, size_t createdlen)
{
	char buf[PATH_MAX];
	size_t n = strlen(path);
	char *p;

	*created = 0;
	if (n == 0 || n >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, n + 1);
	for (p = buf + 1;; p++) {
		if (*p && *p != '/')
			continue;
		if (p[-1] != '/') {
			char c = *p;

			*p = 0;
			if (mkdir(buf, c ? 0755 : 0700) == 0) {
				if (!*created)
					snprintf(created, createdlen, "%s", buf);
			} else if (errno != EEXIST) {
				return -errno;
			}
			*p = c;
		}
		if (!*p)
			break;
	}
	return 0;
}

int pf_dir_nonempty(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int found = 0;

	if (!d)
		return -errno;
	while (!found && (e = readdir(d)))
		found = strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
	closedir(d);
	return found;
}

static int mounted_cb(void *arg, const struct mountinfo_ent *e)
{
	return !strcmp(e->mountpoint, arg) && !strcmp(e->fstype, "fuse.epochfs") ? -EBUSY : 0;
}

int pf_epochfs_mounted(const char *mountinfo, const char *mnt)
{
	return mountinfo_each(mountinfo, mounted_cb, (void *)mnt);
}

/* nftw takes no argument: the sum is a file-scope variable, which is fine
 * for a walk done once, before the daemon starts any thread. */
static uint64_t du_sum;

static int du_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)path, (void)flag, (void)ftw;
	du_sum += (uint64_t)st->st_blocks * 512;
	return 0;
}

int pf_space_get(const char *dir, int count_used, struct pf_space *sp)
{
	char up[PATH_MAX], *slash;
	struct statvfs sv;

	/* A cache dir not made yet is measured on the directory that will
	 * hold it, so that a size refused leaves nothing created. */
	if ((size_t)snprintf(up, sizeof(up), "%s", dir) >= sizeof(up))
		return -ENAMETOOLONG;
	while (statvfs(up, &sv) < 0) {
		if (errno != ENOENT || !(slash = strrchr(up, '/')))
			return -errno;
		slash[slash == up] = 0; /* "/x" -> "/" */
	}
	sp->fs_size = (uint64_t)sv.f_blocks * sv.f_frsize;
	sp->fs_avail = (uint64_t)sv.f_bavail * sv.f_frsize;
	du_sum = 0;
	if (count_used && !strcmp(up, dir) && nftw(dir, du_cb, 16, FTW_PHYS | FTW_MOUNT) < 0)
		return -errno;
	sp->cache_used = du_sum;
	return 0;
}

int pf_capacity(const struct pf_space *sp, uint64_t bytes, double pct, uint64_t *out,
		char *err, size_t errlen)
{
	uint64_t room = sp->fs_avail + sp->cache_used;
	char a[32], b[32], c[32], d[32];

	*out = bytes ? bytes : (uint64_t)((double)room * pct / 100.0);
	if (*out <= room)
		return 0;
	format_bytes(bytes, a, sizeof(a));
	format_bytes(sp->fs_avail, b, sizeof(b));
	format_bytes(sp->cache_used, c, sizeof(c));
	format_bytes(sp->fs_size, d, sizeof(d));
	snprintf(err, errlen,
		 "cache size %s (%llu bytes) is more than the cache filesystem can hold: "
		 "%s free + %s already in the cache (filesystem size %s)",
		 a, (unsigned long long)bytes, b, c, d);
	return -ENOSPC;
}
