/* SPDX-License-Identifier: MIT */
/*
 * figures_scale.c - the cost of a pair with many live objects, T=1,
 * alloc+free of 8 bytes with 1k/100k/1M live 8-byte objects:
 *
 *   scale.percpu.live_N         the N objects stay put while a FIFO window
 *                               of 4096 more cycles 64 at a time (64 frees,
 *                               then 64 allocations: more than a thread
 *                               cache holds), so the map, its hints and
 *                               slots work around N live objects: the
 *                               allocator's own scaling (the target; the
 *                               live_N repetitions alternate, each on a
 *                               fresh set of N)
 *   scale.percpu.random_live_N  each op frees a random one of the N and
 *                               allocates its replacement; at 1M that
 *                               mostly measures cache misses (the
 *                               benchmark's own pointer array included),
 *                               reported for information
 */
#define _GNU_SOURCE
#include "bench.h"

#include <stdlib.h>
#include <string.h>

#include "percpu.h"

#define SCALE_WINDOW 4096

static void *scale_setup(const struct loop *l, unsigned int tid)
{
    struct alloc_state *s = alloc_setup(l, tid);
    s->nr = l->arg;
    s->live = malloc((s->nr + SCALE_WINDOW) * sizeof(void *));
    if (!s->live)
        die("malloc");
    for (size_t i = 0; i < s->nr + SCALE_WINDOW; i++) {
        s->live[i] = pcpu_alloc(8, 0);
        if (!s->live[i])
            die("pcpu_alloc");
    }
    return s;
}

/* The FIFO window: live[nr .. nr + SCALE_WINDOW) cycles, oldest first, 64
 * at a time: 64 frees then 64 allocations, twice what a thread cache
 * holds, so every group goes through the allocation map. */
#define SCALE_GROUP 64
static void scale_run(void *p, uint64_t n)
{
    struct alloc_state *s = p;
    void **win = s->live + s->nr;
    for (uint64_t done = 0; done < n; done += SCALE_GROUP) {
        size_t base = (size_t)(s->seed++ % (SCALE_WINDOW / SCALE_GROUP)) * SCALE_GROUP;
        for (size_t k = base; k < base + SCALE_GROUP; k++)
            pcpu_free(win[k]);
        for (size_t k = base; k < base + SCALE_GROUP; k++) {
            win[k] = pcpu_alloc(8, 0);
            if (__builtin_expect(!win[k], 0))
                die("pcpu_alloc");
        }
    }
}

static void scale_random_run(void *p, uint64_t n)
{
    struct alloc_state *s = p;
    for (uint64_t i = 0; i < n; i++) {
        size_t k = rnd(&s->seed) % s->nr;
        pcpu_free(s->live[k]);
        s->live[k] = pcpu_alloc(8, 0);
        if (__builtin_expect(!s->live[k], 0))
            die("pcpu_alloc");
    }
}

static void scale_teardown(void *p)
{
    struct alloc_state *s = p;
    for (size_t i = s->nr; i < s->nr + SCALE_WINDOW; i++)
        pcpu_free(s->live[i]);
    alloc_teardown(p);
    pcpu_reclaim(true);
}

void figures_scale(void)
{
    struct loop loops[] = {
        {.name = "scale.percpu.live_1000", .arg = 1000},
        {.name = "scale.percpu.live_100000", .arg = 100000},
        {.name = "scale.percpu.live_1000000", .arg = 1000000},
        {.name = "scale.percpu.random_live_1000", .arg = 1000},
        {.name = "scale.percpu.random_live_1000000", .arg = 1000000},
    };
    for (size_t i = 0; i < sizeof(loops) / sizeof(loops[0]); i++) {
        loops[i].setup = scale_setup;
        loops[i].run = strstr(loops[i].name, "random") ? scale_random_run : scale_run;
        loops[i].teardown = scale_teardown;
    }
    /* The target compares live_1000000 with live_1000: the live_N
     * repetitions alternate, each on its own fresh set of live objects
     * (with the sets live at once, the 1k figure would work around 1M
     * objects too). */
    struct loop *live[3];
    unsigned int nl = 0;
    for (size_t i = 0; i < 3; i++)
        if (name_selected(loops[i].name))
            live[nl++] = &loops[i];
    measure_alternating(live, nl, 1);
    for (size_t i = 3; i < sizeof(loops) / sizeof(loops[0]); i++)
        if (name_selected(loops[i].name))
            measure(&loops[i], 1);
}
