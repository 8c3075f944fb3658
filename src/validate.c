/* SPDX-License-Identifier: MIT */
/*
 * validate.c - checking the allocator's invariants.
 *
 * pcpu_validate() checks everything: every chunk's map and hints against
 * an independent bit-by-bit reference, the slots and totals of the pool,
 * and the calling thread's cache.  Robust mode (PCPU_F_DEBUG) cannot
 * afford that after every call (it made programs quadratic), so after
 * each operation it checks what the operation touched -- the blocks
 * around the object, their groups, the allocation itself -- and the whole
 * allocator at pcpu_exit().  There, like librseq's robust pools, it also
 * reports live allocations (leaks) and bytes written into freed or cached
 * memory (which must read zero or poison, see units.c), naming each
 * cookie, and stops the process if anything is wrong.  Outside robust mode
 * pcpu_exit() only lists leaks when asked (PCPU_F_REPORT_LEAKS).
 */
#include "validate.h"

#include <stdio.h>

#include "bitmap.h"
#include "os.h"
#include "pool.h"
#include "tcache.h"
#include "units.h"

#define REPORT_LINES 32u

int pcpu_validate(void)
{
    pcpu__enter("pcpu_validate");
    pcpu__pool_lock();
    int problems = pcpu__pool_validate_locked() + pcpu__tcache_validate_locked();
    pcpu__pool_unlock();
    pcpu__leave();
    return problems;
}

void pcpu__validate_around(const void *cookie, size_t bits)
{
    pcpu__pool_lock();
    int problems = pcpu__pool_validate_around_locked(cookie, bits);
    pcpu__pool_unlock();
    if (problems)
        pcpu__die("percpu: robust mode: %d invariant violation%s after an operation on %p "
                  "(details above)",
                  problems, problems == 1 ? "" : "s", cookie);
}

/* ---- at pcpu_exit ---------------------------------------------------------- */

struct leak_ctx {
    unsigned long nr;
    size_t bytes;
};

static void leaks_in(struct pcpu_chunk *c, void *arg)
{
    struct leak_ctx *l = arg;
    for (size_t bit = c->start_bit; bit < c->end_bit; bit++) {
        if (!pcpu__live_test(c, bit))
            continue;
        size_t size = pcpu__chunk_alloc_bits(c, bit) * PCPU_GRANULE;
        if (l->nr < REPORT_LINES)
            fprintf(stderr, "percpu: leak: %p (%zu bytes) still allocated at pcpu_exit\n",
                    (void *)(c->base + bit * PCPU_GRANULE), size);
        l->nr++;
        l->bytes += size;
    }
}

struct dirt_ctx {
    unsigned long nr;
};

/* Check [bit, bit+n) of c, freed, in every unit; obj is the freed
 * object's cookie when the range is one (a cached object), else NULL. */
static void scan_freed(const struct pcpu_chunk *c, size_t bit, size_t n, const void *obj,
                       struct dirt_ctx *d)
{
    size_t ps = pcpu__page_size;
    size_t lo = bit * PCPU_GRANULE, hi = (bit + n) * PCPU_GRANULE;
    for (unsigned int u = 0; u < pcpu__nr_units; u++) {
        /* Page by page: unpopulated pages are not readable (vm) and hold
         * nothing anyway. */
        for (size_t off = lo; off < hi;) {
            size_t end = (off / ps + 1) * ps < hi ? (off / ps + 1) * ps : hi;
            if (c->is_reserved || pcpu__test_bit(c->populated, off / ps)) {
                size_t at = pcpu__units_first_dirty(c->base + off, end - off, u);
                if (at != SIZE_MAX) {
                    size_t g = off + at;
                    /* Named by the granule, in cookie space, as a cookie would be. */
                    if (d->nr < REPORT_LINES && obj)
                        fprintf(stderr, "percpu: robust mode: %p was written after free (cpu "
                                "%u, offset %zu of the freed object %p)\n",
                                (void *)(c->base + g), u,
                                g - (size_t)((const char *)obj - c->base), obj);
                    else if (d->nr < REPORT_LINES)
                        fprintf(stderr, "percpu: robust mode: %p was written after free (cpu "
                                "%u, free space)\n", (void *)(c->base + g), u);
                    d->nr++;
                    break; /* one report per unit and range */
                }
            }
            off = end;
        }
    }
}

static void dirt_in(struct pcpu_chunk *c, void *arg)
{
    size_t bit = c->start_bit;
    while (bit < c->end_bit) {
        size_t z = pcpu__next_zero(c->alloc_map, bit, c->end_bit);
        if (z >= c->end_bit)
            break;
        size_t e = pcpu__next_set(c->alloc_map, z, c->end_bit);
        scan_freed(c, z, e - z, NULL, arg);
        bit = e;
    }
}

static void dirt_in_cached(struct pcpu_chunk *c, void *cookie, size_t bits, void *arg)
{
    scan_freed(c, pcpu__chunk_bit(c, cookie), bits, cookie, arg);
}

void pcpu__validate_at_exit_locked(bool robust, bool report_leaks)
{
    pcpu_assert_locked();
    if (!robust && !report_leaks)
        return;
    struct leak_ctx l = {0};
    pcpu__pool_for_each_chunk_locked(leaks_in, &l);
    if (l.nr > REPORT_LINES)
        fprintf(stderr, "percpu: leak: ... and %lu more\n", l.nr - REPORT_LINES);
    if (l.nr)
        fprintf(stderr, "percpu: leak: %lu allocation%s, %zu bytes per unit\n", l.nr,
                l.nr == 1 ? "" : "s", l.bytes);
    if (!robust)
        return;
    struct dirt_ctx d = {0};
    pcpu__pool_for_each_chunk_locked(dirt_in, &d);
    pcpu__tcache_for_each_cached_locked(dirt_in_cached, &d);
    int problems = pcpu__pool_validate_locked() + pcpu__tcache_validate_locked();
    if (l.nr || d.nr || problems)
        pcpu__die("percpu: robust mode: at pcpu_exit: %lu leaked allocation%s, %lu write%s "
                  "after free, %d invariant violation%s",
                  l.nr, l.nr == 1 ? "" : "s", d.nr, d.nr == 1 ? "" : "s", problems,
                  problems == 1 ? "" : "s");
}
