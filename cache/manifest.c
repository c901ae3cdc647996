/* SPDX-License-Identifier: MIT */
/* The default manifest, beside the plan that indexes into it: the sample
 * order torchvision's ImageFolder uses (docs/samplers.md).  Classes are the
 * root's directories in name order; within a class, the directories of
 * sorted(os.walk(class_dir)) and, in each, the image files in name order
 * (the extensions of torchvision's IMG_EXTENSIONS, any case). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "manifest.h"
#include "backends/base/util.h"

static const char *const img_ext[] = { ".jpg", ".jpeg", ".png", ".ppm", ".bmp",
				       ".pgm", ".tif", ".tiff", ".webp" };

static int is_image(const char *name)
{
	size_t n = strlen(name);

	for (size_t i = 0; i < ARRAY_SIZE(img_ext); i++) {
		size_t e = strlen(img_ext[i]);

		if (n >= e && !strcasecmp(name + n - e, img_ext[i]))
			return 1;
	}
	return 0;
}

struct names {
	char **name;
	uint64_t *ino;
	int *is_dir;
	size_t n, cap;
	int err;     /* -ENOMEM: the listing stopped short */
};

static int names_cb(void *arg, const char *name, const struct ns_attr *a)
{
	struct names *v = arg;

	if (v->n == v->cap) {
		size_t cap = v->cap ? v->cap * 2 : 64;
		char **nn = ec_realloc(v->name, cap * sizeof(*nn));
		uint64_t *ni = nn ? ec_realloc(v->ino, cap * sizeof(*ni)) : NULL;
		int *nd = ni ? ec_realloc(v->is_dir, cap * sizeof(*nd)) : NULL;

		if (nn)
			v->name = nn;
		if (ni)
			v->ino = ni;
		if (!nd) {
			v->err = -ENOMEM;
			return 1;
		}
		v->is_dir = nd;
		v->cap = cap;
	}
	v->name[v->n] = ec_strdup(name);
	if (!v->name[v->n]) {
		v->err = -ENOMEM;
		return 1;
	}
	v->ino[v->n] = a->ino;
	v->is_dir[v->n] = a->is_dir;
	v->n++;
	return 0;
}

static void names_free(struct names *v)
{
	for (size_t i = 0; i < v->n; i++)
		free(v->name[i]);
	free(v->name);
	free(v->ino);
	free(v->is_dir);
	memset(v, 0, sizeof(*v));
}

struct ulist {
	uint64_t *v;
	size_t n, cap;
};

static int ulist_add(struct ulist *l, uint64_t x)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 1024;
		uint64_t *nv = ec_realloc(l->v, cap * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		l->v = nv;
		l->cap = cap;
	}
	l->v[l->n++] = x;
	return 0;
}

struct dirpath {
	char *path;
	uint64_t ino;
};

static int dirpath_cmp(const void *a, const void *b)
{
	return strcmp(((const struct dirpath *)a)->path, ((const struct dirpath *)b)->path);
}

/* One class: sorted(os.walk(class_dir)) then sorted file names per dir. */
static int add_class(const struct ns *ns, const char *cls, uint64_t ino, struct ulist *out)
{
	struct dirpath *dirs = NULL;
	size_t nd = 0, cap = 0, next = 0;
	int rc = 0;

	/* Collect every directory under the class (breadth first), then sort by path. */
	dirs = ec_malloc(sizeof(*dirs) * (cap = 16));
	if (!dirs)
		return -ENOMEM;
	dirs[nd].path = ec_strdup(cls);
	if (!dirs[nd].path) {
		free(dirs);
		return -ENOMEM;
	}
	dirs[nd++].ino = ino;
	while (next < nd && !rc) {
		struct names v = { 0 };
		uint64_t dino = dirs[next].ino;
		char *dpath = dirs[next].path;

		next++;
		rc = ns_readdir(ns, dino, names_cb, &v);
		if (!rc)
			rc = v.err;
		for (size_t i = 0; !rc && i < v.n; i++) {
			if (!v.is_dir[i])
				continue;
			if (nd == cap) {
				struct dirpath *nn = ec_realloc(dirs, sizeof(*dirs) * (cap *= 2));

				if (!nn) {
					rc = -ENOMEM;
					break;
				}
				dirs = nn;
			}
			dirs[nd].path = ec_malloc(strlen(dpath) + strlen(v.name[i]) + 2);
			if (!dirs[nd].path) {
				rc = -ENOMEM;
				break;
			}
			sprintf(dirs[nd].path, "%s/%s", dpath, v.name[i]);
			dirs[nd++].ino = v.ino[i];
		}
		names_free(&v);
	}
	if (!rc)
		qsort(dirs, nd, sizeof(*dirs), dirpath_cmp);
	for (size_t d = 0; d < nd && !rc; d++) {
		struct names v = { 0 };

		rc = ns_readdir(ns, dirs[d].ino, names_cb, &v);
		if (!rc)
			rc = v.err;
		for (size_t i = 0; !rc && i < v.n; i++)
			if (!v.is_dir[i] && is_image(v.name[i]))
				rc = ulist_add(out, v.ino[i]);
		names_free(&v);
	}
	for (size_t d = 0; d < nd; d++)
		free(dirs[d].path);
	free(dirs);
	return rc;
}

int manifest_imagefolder(const struct ns *ns, uint64_t **inos, uint32_t *n)
{
	struct names root = { 0 };
	struct ulist out = { 0 };
	int rc;

	rc = ns_readdir(ns, INDEX_ROOT_INO, names_cb, &root);
	if (!rc)
		rc = root.err;
	for (size_t i = 0; !rc && i < root.n; i++)
		if (root.is_dir[i])
			rc = add_class(ns, root.name[i], root.ino[i], &out);
	names_free(&root);
	if (!rc && out.n > UINT32_MAX)
		rc = -EFBIG;
	if (rc) {
		free(out.v);
		return rc;
	}
	*inos = out.v ? out.v : ec_calloc(1, sizeof(uint64_t));
	*n = (uint32_t)out.n;
	return *inos ? 0 : -ENOMEM;
}
