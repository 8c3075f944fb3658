/* SPDX-License-Identifier: MIT */
/*
 * figures_bulk.c - the kernel's bitmap-allocator pattern: a million
 * objects allocated, then freed in the same order, T=1, ns per operation:
 *
 *   alloc.percpu.bulk_N  the allocations of N bytes (N = 4, 1024)
 *   free.percpu.bulk_N   their frees: to be at least as cheap as the
 *                        allocations, in bulk as one by one
 *   alloc.percpu.bulk_4_align8, free.percpu.bulk_4_align8
 *                        the same with 4-byte objects aligned to 8 (the
 *                        kernel's 2017 pattern: an alignment above the
 *                        size must cost no more than twice the size at its
 *                        natural alignment)
 */
#define _GNU_SOURCE
#include "bench.h"

#include <stdlib.h>

#include "percpu.h"

#define BULK_OBJECTS 1000000

/*
 * One repetition allocates BULK_OBJECTS objects of @size, then frees them
 * in the order they were allocated, timing the two phases apart: free has
 * to be at least as cheap as allocation, in bulk as one by one.  The
 * repetitions reuse the populated pages of the ones before (as a program
 * that does this repeatedly would); the first is a warm-up.
 */
static void bulk_measure(size_t size, size_t align)
{
    char an[48], fn[48], suffix[16] = "";
    if (align)
        snprintf(suffix, sizeof(suffix), "_align%zu", align);
    snprintf(an, sizeof(an), "alloc.percpu.bulk_%zu%s", size, suffix);
    snprintf(fn, sizeof(fn), "free.percpu.bulk_%zu%s", size, suffix);
    if (!name_selected(an) && !name_selected(fn))
        return;
    progress("%s and %s, 1 thread", an, fn);
    void **v = malloc(BULK_OBJECTS * sizeof(void *));
    if (!v)
        die("malloc");
    unsigned int reps = bench_opts.reps;
    double at[BENCH_MAX_REPS + 1], ft[BENCH_MAX_REPS + 1];
    double awall[BENCH_MAX_REPS + 1], fwall[BENCH_MAX_REPS + 1];
    for (unsigned int rep = 0; rep <= reps; rep++) {
        double w0 = now_ns(), c0 = thread_cpu_ns();
        for (size_t i = 0; i < BULK_OBJECTS; i++) {
            v[i] = pcpu_alloc(size, align);
            if (__builtin_expect(!v[i], 0))
                die("pcpu_alloc");
        }
        double w1 = now_ns(), c1 = thread_cpu_ns();
        for (size_t i = 0; i < BULK_OBJECTS; i++)
            pcpu_free(v[i]);
        double w2 = now_ns(), c2 = thread_cpu_ns();
        at[rep] = (c1 - c0) / BULK_OBJECTS;
        ft[rep] = (c2 - c1) / BULK_OBJECTS;
        awall[rep] = (w1 - w0) / BULK_OBJECTS;
        fwall[rep] = (w2 - w1) / BULK_OBJECTS;
    }
    free(v);
    const char *names[2] = {an, fn};
    double *cpu[2] = {at, ft}, *wall[2] = {awall, fwall};
    for (int k = 0; k < 2; k++) {
        struct result *r = result_add(names[k], 1, "ns/op");
        double x, *val = bench_opts.wall ? wall[k] : cpu[k];
        double *other = bench_opts.wall ? cpu[k] : wall[k];
        stats_of(val + 1, reps, &r->value, &r->min, &r->max, &r->rmad);
        stats_of(other + 1, reps, bench_opts.wall ? &r->cpu : &r->wall, &x, &x, &x);
        if (bench_opts.wall)
            r->wall = r->value;
        else
            r->cpu = r->value;
        r->oncpu = r->wall > 0 ? r->cpu / r->wall : 1;
        r->reps = reps;
        r->iters = BULK_OBJECTS;
    }
    pcpu_reclaim(true);
}

void figures_bulk(void)
{
    bulk_measure(4, 0);
    bulk_measure(4, 8);
    bulk_measure(1024, 0);
}
