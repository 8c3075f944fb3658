/* SPDX-License-Identifier: MIT */
/*
 * region_file.h - the file format of a region and the trust boundary
 * around its header (region_file.c).
 *
 *   offset 0         header (struct pcpu_rfile_hdr)
 *   os_off           int32_t os_id[nr_units]: OS CPU id of each unit, -1
 *                    for a CPU index beyond the machine's CPUs
 *   dir_off          directory: dir_cap entries (struct pcpu_rfile_ent)
 *   data_off         unit 0, unit 1, ... unit nr_units-1, unit_size each
 *
 * Every offset follows from (page size, nr_units, unit_size, dir_cap), so
 * an opener recomputes them instead of trusting them.  The immutable part
 * of the header is written before the file gets its name and never again;
 * the mutable part (lock word, directory fill mark, generation) sits on a
 * cache line of its own.  Fields in the file are changed and read with
 * atomic builtins only: other processes change them at any time.
 */
#ifndef PCPU_REGION_FILE_H
#define PCPU_REGION_FILE_H

#include "internal.h"

#include <sys/types.h>

/* "PCPU-RGN" in the file's first 8 bytes, then the layout version. */
#define PCPU_RFILE_MAGIC 0x4e47522d55504350ull
#define PCPU_RFILE_LAYOUT 1u
/* Most directory entries of any region. */
#define PCPU_RFILE_DIR_MAX 65536u

struct pcpu_rfile_hdr {
    uint64_t magic;
    uint32_t layout;
    uint32_t hdr_size;       /* sizeof(struct pcpu_rfile_hdr)              */
    uint32_t page_size;      /* the creator's                               */
    uint32_t nr_units;
    uint64_t unit_size;
    uint32_t dir_cap;
    uint32_t pad0_;
    uint64_t os_off, dir_off, data_off, file_size;
    uint64_t pidns;          /* the creator's PID namespace (0: unknown)   */
    uint64_t created;        /* seconds since the epoch                    */
    /* mutable, other processes write these at any time */
    _Alignas(64) uint32_t lock; /* region_lock.c                           */
    uint32_t dir_used;       /* entries ever used: the rest were never read */
    uint64_t gen;            /* bumped by every change of the directory    */
};

/* Directory entry states (the low 2 bits of word; the rest counts
 * changes, so that a lock-free reader sees any change to an entry). */
#define PCPU_RENT_FREE 0u
#define PCPU_RENT_RESERVED 1u    /* being made by the lock's holder        */
#define PCPU_RENT_LIVE 2u
#define PCPU_RENT_STATE(w) ((w) & 3u)

struct pcpu_rfile_ent {
    uint32_t word;           /* state | changes << 2                       */
    uint32_t owner;          /* pid of the process that made it            */
    uint64_t off;            /* offset in every unit                       */
    uint64_t size;
    uint64_t pad_;
    uint64_t name[8];        /* NUL-terminated, 1..63 bytes                */
};

/* The validated geometry: a copy, never read from the file again. */
struct pcpu_rgeom {
    size_t page_size;
    unsigned int nr_units;
    size_t unit_size;
    unsigned int dir_cap;
    size_t os_off, dir_off, data_off, file_size;
    uint64_t pidns;
};

/* The geometry of a new region; 0, or -1 with EINVAL if it cannot be. */
PCPU_HIDDEN int pcpu__rfile_geometry(unsigned int nr_units, size_t unit_size,
                                     struct pcpu_rgeom *g);
/* An anonymous region (a sealed memfd) built for g; fd or -1 with errno. */
PCPU_HIDDEN int pcpu__rfile_create_anon(const struct pcpu_rgeom *g, const int *os_id);
/* A named region is built and mapped before anyone can see it, then
 * published under its name, so that neither a half-built file nor one
 * whose creator failed to map it is ever found under the name. */
struct pcpu_rfile_new {
    char tmp[64];            /* its temporary name, where it has one      */
};
/* A region built for g under no name (or a temporary one, recorded in
 * *nf); fd, or -1 with errno. */
PCPU_HIDDEN int pcpu__rfile_create_unnamed(mode_t mode, const struct pcpu_rgeom *g,
                                           const int *os_id, struct pcpu_rfile_new *nf);
/* Give the file of pcpu__rfile_create_unnamed() the name /dev/shm/<name>;
 * 0, or -1 with errno (EEXIST: the name exists; the caller may open it).
 * The file keeps no temporary name either way. */
PCPU_HIDDEN int pcpu__rfile_publish(int fd, const char *name, struct pcpu_rfile_new *nf);
/* Close an unpublished file (fd may be -1) and remove its temporary name. */
PCPU_HIDDEN void pcpu__rfile_discard(int fd, struct pcpu_rfile_new *nf);
/* Read and check the header of fd: 0 and *g, or -1 with errno EINVAL (not
 * a region, another layout, another page size) or EBADMSG. */
PCPU_HIDDEN int pcpu__rfile_read(int fd, struct pcpu_rgeom *g);
/* Read the unit -> OS CPU table of a checked region into os_id[nr_units]. */
PCPU_HIDDEN int pcpu__rfile_read_cpus(int fd, const struct pcpu_rgeom *g, int *os_id);
/* Whether name is a POSIX shared-memory name: "/" then 1..NAME_MAX bytes
 * without "/", not "." or "..". */
PCPU_HIDDEN bool pcpu__rfile_name_ok(const char *name);

#endif
