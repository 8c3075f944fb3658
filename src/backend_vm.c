/*
 * backend_vm.c - the default chunk backend: reserve, then populate.
 *
 * A chunk is one PROT_NONE reservation of (nr_units + 1) units (the first
 * unit-sized piece is the cookie guard).  Populating a page range makes it
 * readable and writable in every unit and, on machines with several NUMA
 * nodes, prefers each unit's node; the kernel only hands out memory when a
 * page is first written, so units nobody writes stay unbacked.
 * Depopulating gives the pages back and takes access away again, so a
 * stray access to freed per-CPU memory faults.
 */
#include "backend.h"

#include <errno.h>

#include "os.h"

static int vm_create_chunk(struct pcpu_chunk *c)
{
    size_t span = pcpu__layout.chunk_span;
    void *p = pcpu__os_reserve(span, (size_t)1 << pcpu__layout.chunk_shift);
    if (!p)
        return -1;
    pcpu__os_nohuge(p, span);
    c->map_addr = p;
    c->map_size = span;
    c->base = p;
    return 0;
}

static void vm_destroy_chunk(struct pcpu_chunk *c)
{
    pcpu__os_release(c->map_addr, c->map_size);
}

static char *unit_page(const struct pcpu_chunk *c, unsigned int pos, size_t page)
{
    return c->base + (size_t)(pos + 1) * pcpu__layout.unit_size + page * pcpu__page_size;
}

static int vm_populate(struct pcpu_chunk *c, size_t page, size_t n)
{
    const struct pcpu_alloc_info *ai = pcpu__layout.ai;
    size_t bytes = n * pcpu__page_size;
    for (unsigned int g = 0; g < ai->nr_groups; g++) {
        const struct pcpu_group *grp = &ai->groups[g];
        for (unsigned int u = grp->first_unit; u < grp->first_unit + grp->nr_units; u++) {
            char *p = unit_page(c, u, page);
            if (pcpu__os_commit(p, bytes) != 0) {
                /* Undo the units done so far: all or nothing. */
                for (unsigned int v = 0; v < u; v++)
                    (void)pcpu__os_protect_none(unit_page(c, v, page), bytes);
                errno = ENOMEM;
                return -1;
            }
            if (ai->nr_groups > 1 && pcpu__node_online(grp->node))
                pcpu__os_bind(p, bytes, grp->node);
        }
    }
    return 0;
}

static void vm_depopulate(struct pcpu_chunk *c, size_t page, size_t n)
{
    for (unsigned int u = 0; u < pcpu__layout.ai->nr_units; u++)
        (void)pcpu__os_decommit(unit_page(c, u, page), n * pcpu__page_size);
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
