/* SPDX-License-Identifier: MIT */
/*
 * lookup.h - address to chunk without a lock or a scan (lookup.c).
 *
 * Reservations are aligned to 1 << chunk_shift, so an address maps to its
 * chunk through a two-level radix table.  The lookup is inline: it is on
 * every free.
 */
#ifndef PCPU_LOOKUP_H
#define PCPU_LOOKUP_H

#include "chunk.h"

PCPU_HIDDEN int pcpu__lookup_insert(struct pcpu_chunk *c);
PCPU_HIDDEN void pcpu__lookup_remove(struct pcpu_chunk *c);
PCPU_HIDDEN void pcpu__lookup_exit(void);
#define PCPU_LOOKUP_L2_BITS 12u
typedef struct pcpu_chunk *_Atomic pcpu__lookup_slot;
PCPU_HIDDEN extern pcpu__lookup_slot *_Atomic *pcpu__l1;
PCPU_HIDDEN extern size_t pcpu__l1_len, pcpu__l1_shift;

/* The chunk whose aligned region (1 << chunk_shift bytes, starting at its
 * base: the backends' contract) holds addr, or NULL.  addr may still lie
 * past the reservation's end: callers that check the offset from
 * c->base against a range inside the first unit need nothing more. */
static inline struct pcpu_chunk *pcpu__lookup_region(const void *addr)
{
    pcpu__lookup_slot *_Atomic *t = pcpu__l1;
    if (!t)
        return NULL;
    uintptr_t key = (uintptr_t)addr >> pcpu__l1_shift;
    if ((key >> PCPU_LOOKUP_L2_BITS) >= pcpu__l1_len)
        return NULL;
    pcpu__lookup_slot *l2 =
        atomic_load_explicit(&t[key >> PCPU_LOOKUP_L2_BITS], memory_order_acquire);
    if (!l2)
        return NULL;
    return atomic_load_explicit(&l2[key & ((1u << PCPU_LOOKUP_L2_BITS) - 1)],
                                memory_order_acquire);
}

/* The chunk whose reservation holds addr, or NULL. */
static inline struct pcpu_chunk *pcpu__lookup(const void *addr)
{
    struct pcpu_chunk *c = pcpu__lookup_region(addr);
    if (!c || (uintptr_t)addr - (uintptr_t)c->map_addr >= c->map_size)
        return NULL;
    return c;
}

#endif
