/* SPDX-License-Identifier: MIT */
/* epochfs-gendata: write a synthetic ImageNet-like dataset (class folders of
 * files of about --size bytes, deterministic content) for the demo, the tests
 * and the benchmarks. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backends/base/util.h"

static uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* To stdout with status 0 when asked for (--help), else a usage error. */
static void usage(int asked)
{
	fprintf(asked ? stdout : stderr,
		"usage: epochfs-gendata [--classes N] [--per-class N] [--size BYTES] "
		"[--seed N] DIR\n");
	exit(asked ? 0 : 2);
}

int main(int argc, char **argv)
{
	unsigned long classes = 10, per = 100, seed = 1;
	uint64_t size = 110 * 1024, total = 0;
	const char *dir = NULL;
	char path[4096];
	uint64_t *buf;
	double pct;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
			usage(1);
		else if (!strcmp(argv[i], "--classes") && i + 1 < argc)
			classes = strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--per-class") && i + 1 < argc)
			per = strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--size") && i + 1 < argc) {
			if (parse_size(argv[++i], &size, &pct) || !size)
				usage(0);
		} else if (!strcmp(argv[i], "--seed") && i + 1 < argc)
			seed = strtoul(argv[++i], NULL, 10);
		else if (argv[i][0] == '-' || dir)
			usage(0);
		else
			dir = argv[i];
	}
	if (!dir)
		usage(0);
	buf = malloc(size * 2 + 8);
	if (!buf || (mkdir(dir, 0755) < 0 && errno != EEXIST)) {
		perror(dir);
		return 1;
	}
	for (unsigned long c = 0; c < classes; c++) {
		snprintf(path, sizeof(path), "%s/n%08lu", dir, c);
		if (mkdir(path, 0755) < 0 && errno != EEXIST) {
			perror(path);
			return 1;
		}
		for (unsigned long f = 0; f < per; f++) {
			uint64_t s = seed * 1000003ull + c * 7919ull + f, len;
			int fd;

			len = size / 2 + splitmix(&s) % (size + 1);
			for (uint64_t w = 0; w < len / 8 + 1; w++)
				buf[w] = splitmix(&s);
			snprintf(path, sizeof(path), "%s/n%08lu/img_%06lu.JPEG", dir, c, f);
			fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
			if (fd < 0 || write(fd, buf, len) != (ssize_t)len || close(fd) < 0) {
				perror(path);
				return 1;
			}
			total += len;
		}
	}
	printf("wrote %lu files, %llu bytes in %s\n", classes * per, (unsigned long long)total, dir);
	free(buf);
	return 0;
}
