/* SPDX-License-Identifier: MIT */
/*
 * backend_vm.c - the default chunk backend: one mapping per chunk, memory
 * placed per NUMA node, pages given back unit by unit.
 *
 * A chunk is one readable and writable mapping of its units, reserved
 * without swap accounting (MAP_NORESERVE), plus the cookie guard in front
 * of it, which is never accessible.  Populating is bookkeeping (what
 * max_memory counts and what reclaim gives back): the kernel hands out a
 * page only when it is first written, so units nobody writes stay
 * unbacked whatever is populated.  On machines with several NUMA nodes,
 * each group of units (units are ordered by node) prefers its node with
 * one mbind() at creation.  A chunk therefore costs 2 mappings (guard and
 * units), or 1 + the number of nodes, whatever the number of units and
 * however it is populated: vm.max_map_count never limits how much
 * per-CPU memory a process gets.
 *
 * Depopulating gives the pages back only in the units where they hold
 * data (units.c asks the kernel which), so its cost follows the units
 * touched, not the units configured.
 *
 * Given up against mapping PROT_NONE until populated: a stray access to a
 * depopulated page no longer faults; a read sees zeroes and a write gets a
 * page.  Such a page holds no allocation, so nothing of the allocator's is
 * corrupted by it, and robust mode still catches writes into freed
 * objects through its poison checks.
 */
#include "backend.h"

#include <errno.h>

#include "os.h"
#include "units.h"

static int vm_create_chunk(struct pcpu_chunk *c)
{
    const struct pcpu_layout *l = &pcpu__layout;
    size_t span = l->chunk_span;
    char *p = pcpu__os_map_rw(span, (size_t)1 << l->chunk_shift);
    if (!p)
        return -1;
    pcpu__os_nohuge(p, span);
    if (pcpu__os_protect_none(p, l->unit_size) != 0) {
        pcpu__os_release(p, span);
        return -1;
    }
    const struct pcpu_alloc_info *ai = l->ai;
    if (ai->nr_groups > 1) {
        for (unsigned int g = 0; g < ai->nr_groups; g++) {
            const struct pcpu_group *grp = &ai->groups[g];
            if (pcpu__node_online(grp->node))
                pcpu__os_bind(p + (size_t)(grp->first_unit + 1) * l->unit_size,
                              (size_t)grp->nr_units * l->unit_size, grp->node);
        }
    }
    c->map_addr = p;
    c->map_size = span;
    c->base = p;
    return 0;
}

static void vm_destroy_chunk(struct pcpu_chunk *c)
{
    pcpu__os_release(c->map_addr, c->map_size);
}

static int vm_populate(struct pcpu_chunk *c, size_t page, size_t n)
{
    (void)c;
    (void)page;
    (void)n;
    return 0;
}

static void vm_depopulate(struct pcpu_chunk *c, size_t page, size_t n)
{
    pcpu__units_discard(c->base, page * pcpu__page_size, n * pcpu__page_size);
}

static int vm_verify(const struct pcpu_alloc_info *ai)
{
    (void)ai;
    return 0;
}

const struct pcpu_backend_ops pcpu__backend_vm = {
    .name = "vm",
    .create_chunk = vm_create_chunk,
    .destroy_chunk = vm_destroy_chunk,
    .populate = vm_populate,
    .depopulate = vm_depopulate,
    .verify_alloc_info = vm_verify,
};
