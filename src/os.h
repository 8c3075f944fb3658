/* SPDX-License-Identifier: MIT */
/*
 * os.h - the OS layer (os.c): the only code that makes memory system
 * calls, the fault-injection point, and the metadata allocator.
 */
#ifndef PCPU_OS_H
#define PCPU_OS_H

#include "internal.h"

enum pcpu_os_call { PCPU_OS_MAP, PCPU_OS_PROTECT, PCPU_OS_ADVISE, PCPU_OS_META };

PCPU_HIDDEN extern size_t pcpu__page_size;
PCPU_HIDDEN void pcpu__os_init(void);                      /* reads the page size */
PCPU_HIDDEN bool pcpu__os_fault(enum pcpu_os_call what);   /* injection point */
PCPU_HIDDEN void *pcpu__os_reserve(size_t size, size_t align); /* PROT_NONE */
PCPU_HIDDEN void *pcpu__os_map_rw(size_t size, size_t align);  /* usable    */
PCPU_HIDDEN void pcpu__os_release(void *p, size_t size);
/* Give the memory back but keep the range reserved (PROT_NONE); false if
 * it could only be unmapped. */
PCPU_HIDDEN bool pcpu__os_release_keep_range(void *p, size_t size);
PCPU_HIDDEN int pcpu__os_commit(void *p, size_t size);     /* make usable   */
PCPU_HIDDEN int pcpu__os_decommit(void *p, size_t size);   /* give back, PROT_NONE */
PCPU_HIDDEN int pcpu__os_discard(void *p, size_t size);    /* give back, stay usable */
PCPU_HIDDEN int pcpu__os_protect_none(void *p, size_t size);
/* Prefer NUMA node for [p, p+size) (the caller checked the node exists). */
PCPU_HIDDEN void pcpu__os_bind(void *p, size_t size, int node);
PCPU_HIDDEN void pcpu__os_nohuge(void *p, size_t size);
/* The pages of [start, end) that may hold data -- present and not the
 * shared zero page, or swapped out -- as ranges passed to fn, in address
 * order; 0, or -1 when the kernel cannot tell (no PAGEMAP_SCAN before
 * Linux 6.7): the caller must then assume every page may. */
PCPU_HIDDEN int pcpu__os_dirty_ranges(char *start, char *end,
                                      void (*fn)(char *lo, char *hi, void *arg), void *arg);
/* fork() child: per-process handles must be opened again. */
PCPU_HIDDEN void pcpu__os_fork_child(void);
/* Metadata allocations (zeroed); failure injectable. */
PCPU_HIDDEN void *pcpu__meta_calloc(size_t n, size_t size);
PCPU_HIDDEN void pcpu__meta_free(void *p, size_t bytes);
/* Zeroed metadata in a mapping of its own, whose pages cost memory only
 * once written (a thread cache: sized for many units, mostly untouched
 * with few); NULL with errno ENOMEM. */
PCPU_HIDDEN void *pcpu__meta_map(size_t bytes);
PCPU_HIDDEN void pcpu__meta_unmap(void *p, size_t bytes);
PCPU_HIDDEN extern atomic_size_t pcpu__meta_bytes;

#endif
