/* SPDX-License-Identifier: MIT */
/*
 * backend_km.c - contiguous chunks: one usable block per chunk.
 *
 * The whole chunk is mapped readable and writable at creation (only the
 * cookie guard is not), so populating only does the pool's bookkeeping
 * (what max_memory counts, what reclaim gives back).  Anonymous memory
 * is still only backed once written, so resident memory follows the units
 * touched here too.  Depopulating keeps the range usable but hands its
 * pages back to the OS, which is how empty pages are reclaimed.
 *
 * Memory cannot be placed per unit, so like the kernel's percpu-km this
 * backend refuses layouts with more than one NUMA group.
 */
#include "backend.h"

#include <errno.h>

#include "os.h"
#include "units.h"

static int km_create_chunk(struct pcpu_chunk *c)
{
    size_t span = pcpu__layout.chunk_span;
    char *p = pcpu__os_map_rw(span, (size_t)1 << pcpu__layout.chunk_shift);
    if (!p)
        return -1;
    pcpu__os_nohuge(p, span);
    if (pcpu__os_protect_none(p, pcpu__layout.unit_size) != 0) {
        pcpu__os_release(p, span);
        return -1;
    }
    c->map_addr = p;
    c->map_size = span;
    c->base = p;
    return 0;
}

static void km_destroy_chunk(struct pcpu_chunk *c)
{
    pcpu__os_release(c->map_addr, c->map_size);
}

static int km_populate(struct pcpu_chunk *c, size_t page, size_t n)
{
    (void)c;
    (void)page;
    (void)n;
    return 0;
}

static void km_depopulate(struct pcpu_chunk *c, size_t page, size_t n)
{
    pcpu__units_discard(c->base, page * pcpu__page_size, n * pcpu__page_size);
}

static int km_verify(const struct pcpu_alloc_info *ai)
{
    if (ai->nr_groups > 1) {
        pcpu__warn("the km backend needs one NUMA group, but the CPUs span %u nodes "
                   "(use the vm backend)",
                   ai->nr_groups);
        errno = EINVAL;
        return -1;
    }
    return 0;
}

const struct pcpu_backend_ops pcpu__backend_km = {
    .name = "km",
    .create_chunk = km_create_chunk,
    .destroy_chunk = km_destroy_chunk,
    .populate = km_populate,
    .depopulate = km_depopulate,
    .verify_alloc_info = km_verify,
};
