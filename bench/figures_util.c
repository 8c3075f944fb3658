/* SPDX-License-Identifier: MIT */
/*
 * figures_util.c - what the figures_*.c families share: the failure exit,
 * the usual ways of measuring a family (T=1 and T=all, one loop or several
 * together) and the per-thread state of the allocation loops (alloc.* and
 * scale.*).
 */
#define _GNU_SOURCE
#include "bench.h"

#include <stdlib.h>

#include "percpu.h"

/* Measure @l at T=1 and at T = every online CPU. */
void measure_1_n(struct loop *l)
{
    if (!name_selected(l->name))
        return;
    measure(l, 1);
    if (nthreads_all() > 1)
        measure(l, nthreads_all());
}

/* The same for @n loops measured together, repetitions interleaved, and
 * the T=1 and T=all runs alternating, so that the ratios between them and
 * between the thread counts are taken at the same time. */
void measure_1_n_together(struct loop *loops, size_t n)
{
    struct loop *sel[12];
    unsigned int k = 0;
    for (size_t i = 0; i < n && k < 12; i++)
        if (name_selected(loops[i].name))
            sel[k++] = &loops[i];
    if (nthreads_all() > 1)
        measure_group_1_n_alternating(sel, k, nthreads_all());
    else
        measure_group(sel, k, 1);
}

void *alloc_setup(const struct loop *l, unsigned int tid)
{
    struct alloc_state *s = calloc(1, sizeof(*s));
    if (!s)
        die("calloc");
    s->seed = 0x9e3779b97f4a7c15ull * (tid + 1);
    s->size = l->arg;
    return s;
}

void alloc_teardown(void *p)
{
    struct alloc_state *s = p;
    if (s->live) {
        for (size_t i = 0; i < s->nr; i++)
            pcpu_free(s->live[i]);
        free(s->live);
    }
    free(s);
}
