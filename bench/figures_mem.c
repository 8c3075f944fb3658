/* SPDX-License-Identifier: MIT */
/*
 * figures_mem.c - resident memory, T=1: kB of 1M 8-byte per-CPU objects
 * written on every unit (mem.percpu.1M_x8), against 1M padded malloc'd
 * objects of 64 bytes per unit (mem.padded.1M_x8), each next to the ideal
 * (8 bytes per unit per object).  Run first, while the allocator is fresh.
 */
#define _GNU_SOURCE
#include "bench.h"

#include <stdlib.h>
#include <string.h>

#include "percpu.h"

#define MEM_OBJECTS 1000000

/* One memory figure: measured once (memory use does not vary between
 * runs), so min, max and median are the same value. */
static struct result *mem_result(const char *name, long kb, double ideal, const char *source)
{
    struct result *r = result_add(name, 1, "kB");
    r->value = r->min = r->max = r->rss_kb = (double)kb;
    r->ideal = ideal;
    r->ratio = r->value / ideal;
    r->reps = 1;
    r->iters = MEM_OBJECTS;
    r->source = source;
    return r;
}

void figures_mem(void)
{
    unsigned int units = pcpu_nr_cpus();
    double ideal = (double)MEM_OBJECTS * 8 * units / 1024;
    void **v = malloc(MEM_OBJECTS * sizeof(void *));
    if (!v)
        die("malloc");
    /* resident before we start: not 0, or malloc+memset becomes calloc
     * and the array's pages would be counted in the deltas below */
    memset(v, 0xff, MEM_OBJECTS * sizeof(void *));

    if (name_selected("mem.percpu.1M_x8")) {
        progress("mem.percpu.1M_x8");
        pcpu_reclaim(true);
        struct pcpu_stats a, b;
        pcpu_stats_get(&a);
        long rss0 = vm_rss_kb();
        for (size_t i = 0; i < MEM_OBJECTS; i++) {
            long *c = pcpu_alloc(8, 0);
            if (!c)
                die("pcpu_alloc");
            for (unsigned int cpu = 0; cpu < units; cpu++)
                *PCPU_PTR(c, cpu) = (long)i;
            v[i] = c;
        }
        long rss1 = vm_rss_kb();
        pcpu_stats_get(&b);
        struct result *r = mem_result("mem.percpu.1M_x8", rss1 - rss0, ideal,
                                      "VmRSS delta (includes allocator metadata)");
        /* the allocator's own view, as extras in the JSON */
        r->pcpu_resident_kb = ((double)b.resident_bytes - (double)a.resident_bytes) / 1024;
        r->pcpu_metadata_kb = ((double)b.metadata_bytes - (double)a.metadata_bytes) / 1024;
        for (size_t i = 0; i < MEM_OBJECTS; i++)
            pcpu_free(v[i]);
        pcpu_reclaim(true);
    }

    if (name_selected("mem.padded.1M_x8")) {
        progress("mem.padded.1M_x8");
        size_t bytes = (size_t)units * 64;
        long rss0 = vm_rss_kb();
        for (size_t i = 0; i < MEM_OBJECTS; i++) {
            char *m = aligned_alloc(64, bytes);
            if (!m)
                die("aligned_alloc");
            for (unsigned int cpu = 0; cpu < units; cpu++)
                *(long *)(m + (size_t)cpu * 64) = (long)i;
            v[i] = m;
        }
        long rss1 = vm_rss_kb();
        mem_result("mem.padded.1M_x8", rss1 - rss0, ideal, "VmRSS delta");
        for (size_t i = 0; i < MEM_OBJECTS; i++)
            free(v[i]);
    }
    free(v);
}
