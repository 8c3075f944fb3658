/* SPDX-License-Identifier: MIT */
/*
 * backend.h - the chunk backend contract (the seed's percpu-vm/percpu-km
 * split), as an ops table chosen at run time.  Both backends are built in.
 *
 * Every operation is called by the pool with the allocator lock held, and
 * reads the geometry from pcpu__layout.  Pages are numbered per unit
 * (page p covers the same bytes of every unit).  The address-to-chunk
 * operation of the seed is not here: the lookup (lookup.c) works the same
 * for every backend, because every backend reserves whole aligned spans.
 */
#ifndef PCPU_BACKEND_H
#define PCPU_BACKEND_H

#include "chunk.h"
#include "topology.h"

struct pcpu_backend_ops {
    /* The backend's name, as pcpu_stats_print() shows it. */
    const char *name;
    /**
     * create_chunk - map the memory of a new chunk.
     * Pre: @c's map metadata exists, its mapping fields are empty.
     * Post: 0 and c->base, map_addr, map_size set: a span of
     * pcpu__layout.chunk_span bytes aligned to 1 << chunk_shift, whose
     * first unit (the cookie guard) faults on any access; nothing is
     * populated yet.  -1 (errno ENOMEM) and nothing mapped on failure.
     */
    int (*create_chunk)(struct pcpu_chunk *c);
    /**
     * destroy_chunk - unmap everything create_chunk() mapped.
     * Pre: no allocation is left in @c.
     */
    void (*destroy_chunk)(struct pcpu_chunk *c);
    /**
     * populate - make pages [@page, @page + @n) usable in every unit.
     * Pre: the pages are not populated.  Post: 0, and they read zero in
     * every unit (memory is only really backed when written); or -1 with
     * errno ENOMEM and nothing changed.
     */
    int (*populate)(struct pcpu_chunk *c, size_t page, size_t n);
    /**
     * depopulate - give pages [@page, @page + @n) back in every unit.
     * Pre: they are populated and hold no allocation.  Post: their memory
     * is back with the OS; a later populate() makes them read zero again.
     */
    void (*depopulate)(struct pcpu_chunk *c, size_t page, size_t n);
    /**
     * verify_alloc_info - whether this backend can serve @ai; -1 with
     * errno EINVAL and a message on stderr if not.
     */
    int (*verify_alloc_info)(const struct pcpu_alloc_info *ai);
};

PCPU_HIDDEN extern const struct pcpu_backend_ops pcpu__backend_vm;
PCPU_HIDDEN extern const struct pcpu_backend_ops pcpu__backend_km;

#endif
