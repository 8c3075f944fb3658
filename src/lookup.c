/* SPDX-License-Identifier: MIT */
/*
 * lookup.c - address to chunk without a scan (the kernel's
 * pcpu_chunk_addr_search).
 *
 * Every chunk's reservation is aligned to 1 << chunk_shift and no larger,
 * so addr >> chunk_shift names at most one chunk.  A two-level radix table
 * indexed by that number maps it to the chunk.  Readers (pcpu_free, the
 * introspection calls) take no lock: entries are atomic pointers, and a
 * chunk is only removed when it holds no allocation, so a reader holding a
 * live cookie never sees its chunk go away.  Second-level tables are never
 * freed before pcpu_lookup_exit(), so a racing reader never touches freed
 * memory.
 */
#include "lookup.h"

#include <errno.h>
#include <stdlib.h>

#include "os.h"
#include "topology.h"

#define ADDR_BITS 48u
#define L2_BITS PCPU_LOOKUP_L2_BITS

typedef pcpu__lookup_slot slot_t;

/* l1[key >> L2_BITS] -> l2 table; read inline by pcpu__lookup(). */
pcpu__lookup_slot *_Atomic *pcpu__l1;
size_t pcpu__l1_len;
size_t pcpu__l1_shift;            /* chunk_shift the table was built for */
#define l1 pcpu__l1
#define l1_len pcpu__l1_len
#define l1_shift pcpu__l1_shift

static int ensure_l1(void)
{
    if (l1)
        return 0;
    size_t key_bits = ADDR_BITS - pcpu__layout.chunk_shift;
    size_t l1_bits = key_bits > L2_BITS ? key_bits - L2_BITS : 0;
    void *t = pcpu__meta_calloc((size_t)1 << l1_bits, sizeof(*l1));
    if (!t)
        return -1;
    l1_len = (size_t)1 << l1_bits;
    l1_shift = pcpu__layout.chunk_shift;
    l1 = t;
    return 0;
}

int pcpu__lookup_insert(struct pcpu_chunk *c)
{
    if (ensure_l1() != 0)
        return -1;
    uintptr_t key = (uintptr_t)c->map_addr >> l1_shift;
    if ((key >> L2_BITS) >= l1_len) {
        errno = ENOMEM;
        return -1;
    }
    slot_t *l2 = atomic_load(&l1[key >> L2_BITS]);
    if (!l2) {
        l2 = pcpu__meta_calloc((size_t)1 << L2_BITS, sizeof(*l2));
        if (!l2)
            return -1;
        atomic_store_explicit(&l1[key >> L2_BITS], l2, memory_order_release);
    }
    pcpu_assert(atomic_load(&l2[key & ((1u << L2_BITS) - 1)]) == NULL);
    atomic_store_explicit(&l2[key & ((1u << L2_BITS) - 1)], c, memory_order_release);
    return 0;
}

void pcpu__lookup_remove(struct pcpu_chunk *c)
{
    uintptr_t key = (uintptr_t)c->map_addr >> l1_shift;
    slot_t *l2 = atomic_load(&l1[key >> L2_BITS]);
    pcpu_assert(l2 && atomic_load(&l2[key & ((1u << L2_BITS) - 1)]) == c);
    atomic_store_explicit(&l2[key & ((1u << L2_BITS) - 1)], NULL, memory_order_release);
}

void pcpu__lookup_exit(void)
{
    if (!l1)
        return;
    for (size_t i = 0; i < l1_len; i++) {
        slot_t *l2 = atomic_load(&l1[i]);
        if (l2)
            pcpu__meta_free(l2, ((size_t)1 << L2_BITS) * sizeof(*l2));
    }
    pcpu__meta_free(l1, l1_len * sizeof(*l1));
    l1 = NULL;
    l1_len = 0;
}
