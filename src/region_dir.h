/* SPDX-License-Identifier: MIT */
/*
 * region_dir.h - a region's directory of named objects (region_dir.c):
 * lookups without a lock, changes under the region's lock, and the checks
 * that keep a corrupt directory from doing harm.
 */
#ifndef PCPU_REGION_DIR_H
#define PCPU_REGION_DIR_H

#include "internal.h"

#include "chunk.h"
#include "region_file.h"

/* This process's view of one directory (pointers into its mapping). */
struct pcpu_rdir {
    struct pcpu_rfile_hdr *hdr;
    struct pcpu_rfile_ent *ents;
    unsigned int cap;        /* from the checked header                   */
    size_t unit_size;        /* likewise                                  */
    const char *what;        /* the region's name, for messages           */
};

/* One entry as read: checked, private. */
struct pcpu_rent {
    size_t off, size;
    char name[64];
};

/* Find @name: 0 and *e, or -1 with errno ENOENT or EBADMSG (not found and
 * corrupt entries seen, or found twice).  No lock. */
PCPU_HIDDEN int pcpu__rdir_find(const struct pcpu_rdir *d, const char *name,
                                struct pcpu_rent *e);
/* Visit every live entry in order: fn's first non-zero return, 0, or -1
 * with errno EBADMSG at the first corrupt entry.  No lock. */
PCPU_HIDDEN int pcpu__rdir_walk(const struct pcpu_rdir *d,
                                int (*fn)(const struct pcpu_rent *e, void *arg), void *arg);
/* Objects, bytes they take, longest free run: 0, or -1 with EBADMSG /
 * ENOMEM.  No lock (a snapshot). */
PCPU_HIDDEN int pcpu__rdir_usage(const struct pcpu_rdir *d, size_t *objects, size_t *used,
                                 size_t *largest);
/* Every invariant (region.h, pcpu_region_check); one line on stderr for
 * the first one broken.  0, or -1 with EBADMSG / ENOMEM.  No lock. */
PCPU_HIDDEN int pcpu__rdir_check(const struct pcpu_rdir *d);
/* With the region's lock held: a new object of @size bytes at @align
 * (a power of two) called @name, zeroed in every unit of @c (the
 * region's chunk): 0 and *off, or -1 with errno EEXIST, ENOSPC, EBADMSG,
 * ENOMEM.  Entries half made by a dead holder of the lock are dropped. */
PCPU_HIDDEN int pcpu__rdir_alloc_held(const struct pcpu_rdir *d, const char *name, size_t size,
                                        size_t align, struct pcpu_chunk *c, size_t *off);
/* With the lock held: free the live object at @off, giving its whole pages
 * back in every unit of @c: 0, or -1 with errno EINVAL (no live object
 * starts there) or EBADMSG. */
PCPU_HIDDEN int pcpu__rdir_free_held(const struct pcpu_rdir *d, size_t off,
                                       struct pcpu_chunk *c);

#endif
