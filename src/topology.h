/* SPDX-License-Identifier: MIT */
/*
 * topology.h - CPUs, NUMA groups and the layout every layer reads
 * (topology.c).
 *
 * The allocation info is the kernel's pcpu_alloc_info: which CPU index
 * lives in which unit position, grouped by node.  The layout adds the
 * geometry derived from it (unit size, chunk span and alignment, the
 * first chunk's areas).  Both are set once by initialisation and read,
 * without a lock, by everything below the API until the next pcpu_exit().
 */
#ifndef PCPU_TOPOLOGY_H
#define PCPU_TOPOLOGY_H

#include "internal.h"

struct pcpu_group {
    int node;                 /* NUMA node of every unit in the group     */
    unsigned int first_unit;  /* unit position of the first unit          */
    unsigned int nr_units;
};

struct pcpu_alloc_info {
    size_t static_size;
    size_t reserved_size;
    size_t dyn_size;
    size_t unit_size;
    size_t atom_size;
    unsigned int nr_units;      /* CPU indexes 0..nr_units-1              */
    unsigned int nr_possible;   /* possible CPUs of the machine           */
    unsigned int nr_os_ids;     /* highest possible OS CPU id + 1         */
    bool units_shared;          /* fewer units than possible CPUs         */
    unsigned int nr_groups;
    struct pcpu_group *groups;
    unsigned int *unit_pos;     /* CPU index -> unit position             */
    int *node;                  /* CPU index -> NUMA node                 */
    int *os_id;                 /* CPU index -> OS CPU id, -1 if simulated*/
    unsigned int *index_of_os;  /* OS CPU id -> CPU index (nr_os_ids)     */
};

/*
 *   reservation of one chunk (aligned to 1 << chunk_shift >= its size):
 *
 *     base                base+U        base+2U             base+(N+1)U
 *      | guard (never RW) | unit pos 0  | unit pos 1 | ... | unit pos N-1 |
 *
 *   A cookie is base + off: it lies in the guard, so it faults when
 *   dereferenced.  CPU index i's copy is at cookie + pcpu__cpu_offsets[i],
 *   where pcpu__cpu_offsets[i] = (1 + unit_pos(i)) * U for every chunk.
 *
 *   First chunk, per unit:  | static | reserved | dynamic ... |
 */
struct pcpu_layout {
    const struct pcpu_alloc_info *ai; /* NULL while not initialised        */
    unsigned int nr_units;
    size_t unit_size;        /* bytes per unit (U)                          */
    size_t unit_bits;        /* granules per unit                           */
    size_t chunk_span;       /* (nr_units + 1) * unit_size                  */
    size_t chunk_shift;      /* log2 of the reservation alignment           */
    size_t static_size;      /* first chunk: the static area [0, this)      */
    size_t reserved_off;     /* ... the reserved area [this, dyn_off)       */
    size_t dyn_off;          /* ... the dynamic area [this, unit_size)      */
};
PCPU_HIDDEN extern struct pcpu_layout pcpu__layout;

/* Build the allocation info for cfg with static_size bytes of statics;
 * 0, or -1 with errno (EINVAL with a message saying what is wrong). */
PCPU_HIDDEN int pcpu__build_alloc_info(const struct pcpu_config *cfg, size_t static_size,
                                       struct pcpu_alloc_info **out);
PCPU_HIDDEN void pcpu__free_alloc_info(struct pcpu_alloc_info *ai);
/* Publish ai as the layout (and the per-CPU offsets); the layout owns it. */
PCPU_HIDDEN void pcpu__layout_set(struct pcpu_alloc_info *ai);
PCPU_HIDDEN void pcpu__layout_clear(void);
PCPU_HIDDEN int pcpu__parse_cpulist(const char *s, unsigned char *set, unsigned int max);
PCPU_HIDDEN bool pcpu__node_online(int node);

#endif
