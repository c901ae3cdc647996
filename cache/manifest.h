/* SPDX-License-Identifier: MIT */
/* The default manifest (sample index -> file) a plan indexes into. */
#ifndef EPOCHFS_MANIFEST_H
#define EPOCHFS_MANIFEST_H

#include <stdint.h>

#include "ns.h"

/* ImageFolder's sample order over the namespace: *inos (the caller frees
 * it, never NULL on success) holds *n inode numbers.  0, -ENOMEM, -EFBIG
 * (more than 2^32 samples), or an index error. */
int manifest_imagefolder(const struct ns *ns, uint64_t **inos, uint32_t *n)
	__attribute__((warn_unused_result));

#endif
