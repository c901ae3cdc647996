/* SPDX-License-Identifier: MIT */
/* epochfs-read: read every file under ROOT in a shuffled order with several
 * threads, like a dataloader's epoch; optionally compare each file with the
 * same path under --verify DIR.  Prints one summary line per epoch; exit 1 if
 * any byte differs or any read fails. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backends/base/util.h"

struct job {
	char **paths;
	size_t n;
	const char *root, *verify;
	atomic_size_t next;
	atomic_uint_fast64_t bytes, bad, errors;
	int quiet;
};

static char **paths;
static size_t npaths, cap;

static void walk(const char *root, const char *rel)
{
	char full[8192], sub[4096];
	struct dirent *de;
	DIR *d;

	snprintf(full, sizeof(full), "%s/%s", root, rel);
	d = opendir(full);
	if (!d) {
		fprintf(stderr, "epochfs-read: %s: %s\n", full, strerror(errno));
		exit(1);
	}
	while ((de = readdir(d))) {
		struct stat st;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(sub, sizeof(sub), "%s%s%s", rel, *rel ? "/" : "", de->d_name);
		snprintf(full, sizeof(full), "%s/%s", root, sub);
		if (stat(full, &st) < 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			walk(root, sub);
		} else if (S_ISREG(st.st_mode)) {
			if (npaths == cap) {
				cap = cap ? cap * 2 : 1024;
				paths = realloc(paths, cap * sizeof(*paths));
			}
			paths[npaths++] = strdup(sub);
		}
	}
	closedir(d);
}

static int read_all(const char *path, char **out, size_t *len)
{
	size_t cap2 = 1 << 20, n = 0;
	char *b = malloc(cap2);
	ssize_t r;
	int fd = open(path, O_RDONLY);

	if (fd < 0 || !b) {
		free(b);
		if (fd >= 0)
			close(fd);
		return -errno;
	}
	for (;;) {
		if (n == cap2)
			b = realloc(b, cap2 *= 2);
		r = read(fd, b + n, cap2 - n);
		if (r < 0) {
			int e = -errno;

			close(fd);
			free(b);
			return e;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	*out = b;
	*len = n;
	return 0;
}

static void *worker(void *arg)
{
	struct job *j = arg;
	char p1[4096], p2[4096];
	size_t i;

	while ((i = atomic_fetch_add(&j->next, 1)) < j->n) {
		char *a = NULL, *b = NULL;
		size_t la = 0, lb = 0;
		int rc;

		snprintf(p1, sizeof(p1), "%s/%s", j->root, j->paths[i]);
		rc = read_all(p1, &a, &la);
		if (rc) {
			fprintf(stderr, "epochfs-read: %s: %s\n", p1, strerror(-rc));
			atomic_fetch_add(&j->errors, 1);
			continue;
		}
		atomic_fetch_add(&j->bytes, la);
		if (j->verify) {
			snprintf(p2, sizeof(p2), "%s/%s", j->verify, j->paths[i]);
			if (read_all(p2, &b, &lb) || la != lb || memcmp(a, b, la)) {
				fprintf(stderr, "epochfs-read: MISMATCH %s (%zu vs %zu bytes)\n",
					j->paths[i], la, lb);
				atomic_fetch_add(&j->bad, 1);
			}
		}
		free(a);
		free(b);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	unsigned threads = 8, epochs = 1;
	unsigned long seed = 1;
	const char *root = NULL, *verify = NULL;
	pthread_t th[256];
	int status = 0, drop = 0;
	const char *order = NULL;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--threads") && i + 1 < argc)
			threads = (unsigned)strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--seed") && i + 1 < argc)
			seed = strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--epochs") && i + 1 < argc)
			epochs = (unsigned)strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--order") && i + 1 < argc)
			order = argv[++i];
		else if (!strcmp(argv[i], "--drop-caches"))
			drop = 1;
		else if (!strcmp(argv[i], "--verify") && i + 1 < argc)
			verify = argv[++i];
		else if (argv[i][0] == '-' || root) {
			int asked = !strcmp(argv[i], "-h") || !strcmp(argv[i], "--help");

			fprintf(asked ? stdout : stderr,
				"usage: epochfs-read [--threads N] [--seed N] [--epochs N] "
				"[--drop-caches] [--order FILE] [--verify DIR] ROOT\n");
			return asked ? 0 : 2;
		} else
			root = argv[i];
	}
	if (!root || threads == 0 || threads > 256)
		return 2;
	if (!order)
		walk(root, "");
	for (unsigned e = 0; e < epochs; e++) {
		struct job j = { .root = root, .verify = verify };
		uint64_t s = seed * 1000 + e, t0;
		double secs;

		if (order) {
			/* The planned order of this epoch, read from the mount. */
			char line[4096];
			FILE *f = fopen(order, "r");

			if (!f) {
				perror(order);
				return 1;
			}
			for (size_t i = 0; i < npaths; i++)
				free(paths[i]);
			npaths = 0;
			while (fgets(line, sizeof(line), f)) {
				line[strcspn(line, "\n")] = 0;
				if (!*line)
					continue;
				if (npaths == cap) {
					cap = cap ? cap * 2 : 1024;
					paths = realloc(paths, cap * sizeof(*paths));
				}
				paths[npaths++] = strdup(line);
			}
			fclose(f);
		}
		for (size_t i = npaths; !order && i > 1; i--) {
			size_t k;
			char *t;

			s = s * 6364136223846793005ull + 1442695040888963407ull;
			k = (size_t)((s >> 33) % i);
			t = paths[i - 1];
			paths[i - 1] = paths[k];
			paths[k] = t;
		}
		j.paths = paths;
		j.n = npaths;
		if (drop && e > 0) {
			/* Make the next epoch come from the mount, not the page cache. */
			int fd = open("/proc/sys/vm/drop_caches", O_WRONLY);

			sync();
			if (fd < 0 || write(fd, "3", 1) != 1)
				fprintf(stderr, "epochfs-read: cannot drop caches (not root?)\n");
			if (fd >= 0)
				close(fd);
		}
		t0 = now_ns();
		for (unsigned t = 0; t < threads; t++)
			pthread_create(&th[t], NULL, worker, &j);
		for (unsigned t = 0; t < threads; t++)
			pthread_join(th[t], NULL);
		secs = (double)(now_ns() - t0) / 1e9;
		printf("epoch %u: %zu files, %llu bytes, %.3f s, %.0f files/s, %.1f MB/s, "
		       "%llu mismatches, %llu errors\n",
		       e, npaths, (unsigned long long)j.bytes, secs, (double)npaths / secs,
		       (double)j.bytes / secs / 1e6, (unsigned long long)j.bad,
		       (unsigned long long)j.errors);
		fflush(stdout);
		if (j.bad || j.errors)
			status = 1;
	}
	return status;
}
