/* SPDX-License-Identifier: MIT */
/*
 * backend_shm.h - the third chunk backend: a chunk whose units are a
 * shared file (backend_shm.c).  Regions (region.c) are its only user.
 *
 * The pool never sees these chunks: a region's allocation map lives in
 * the file, where every process that maps it can change it.  What the
 * backend gives is the mapping: the file's unit i placed at this
 * process's own unit offset of CPU index i, so that every cookie into the
 * chunk works with pcpu_ptr(), pcpu_sum() and the this-CPU operations.
 */
#ifndef PCPU_BACKEND_SHM_H
#define PCPU_BACKEND_SHM_H

#include "backend.h"

#include <sys/types.h>

/* What create_chunk() maps; c->backend_data points at it (the caller's). */
struct pcpu_shm_map {
    int fd;                 /* the file (read-write, or read-only)        */
    bool writable;          /* map units PROT_READ | PROT_WRITE           */
    unsigned int nr_units;  /* units in the file: this process's count    */
    size_t unit_size;       /* bytes per unit in the file (pages)         */
    off_t data_off;         /* file offset of unit 0 (page aligned)       */
    /* Unit indexes that belong to no CPU of this machine (a configured
     * nr_cpus beyond it): nobody ever runs there, so they are mapped as
     * read-only zero pages instead of the file (see backend_shm.c). */
    const int *os_id;       /* CPU index -> OS CPU id, -1 for those       */
};

PCPU_HIDDEN extern const struct pcpu_backend_ops pcpu__backend_shm;

/* Whether this process can map a file of @unit_size-byte units: 0, or -1
 * with EINVAL when they are larger than its unit spacing. */
PCPU_HIDDEN int pcpu__shm_fits(size_t unit_size);

/* Zero [@off, @off + @len) of every unit where the file holds data
 * there; units that are holes read zero already and stay holes.  The
 * chunk must be mapped writable.  O(data extents of the file). */
PCPU_HIDDEN void pcpu__shm_zero(struct pcpu_chunk *c, size_t off, size_t len);

/* Bytes of memory the file holds (its blocks), or 0. */
PCPU_HIDDEN size_t pcpu__shm_resident(int fd);

#endif
