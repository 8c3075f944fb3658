/* SPDX-License-Identifier: MIT */
/*
 * usage.c - counts, sizes and the peak of live objects (see usage.h for
 * why the peak is sampled and what it promises).
 *
 * The sample period (pcpu__usage_epoch) advances at every sample; a
 * thread's peak_net belongs to the period in its epoch field, and a peak
 * from an earlier period was already added by the sample that ended that
 * period, so only the current period's peaks count.  Samples are taken
 * before the global counts change (a locked allocation or free) and
 * before a thread's counts are folded away (cache flush, thread exit), so
 * that with one thread every peak is measured against the global count it
 * was reached under.
 */
#include "usage.h"

#include <string.h>

_Atomic unsigned int pcpu__usage_epoch;

/* Under the allocator lock. */
static struct {
    uint64_t nr_alloc, nr_dealloc, nr_max_alloc;
    size_t min_size, max_size;   /* min 0: none yet */
    struct pcpu_usage *threads;
} g;

static void note_size(size_t mn, size_t mx)
{
    if (mn && (g.min_size == 0 || mn < g.min_size))
        g.min_size = mn;
    if (mx > g.max_size)
        g.max_size = mx;
}

void pcpu__usage_attach_locked(struct pcpu_usage *u)
{
    pcpu_assert_locked();
    atomic_store(&u->epoch, atomic_load(&pcpu__usage_epoch));
    u->prev = NULL;
    u->next = g.threads;
    if (g.threads)
        g.threads->prev = u;
    g.threads = u;
}

void pcpu__usage_detach_locked(struct pcpu_usage *u)
{
    pcpu_assert_locked();
    pcpu__usage_fold_locked(u);
    if (u->prev)
        u->prev->next = u->next;
    else
        g.threads = u->next;
    if (u->next)
        u->next->prev = u->prev;
    u->prev = u->next = NULL;
}

static void clear_thread(struct pcpu_usage *u)
{
    atomic_store(&u->nr_alloc, 0);
    atomic_store(&u->nr_dealloc, 0);
    atomic_store(&u->peak_net, 0);
    atomic_store(&u->min_size, 0);
    atomic_store(&u->max_size, 0);
    atomic_store(&u->size_span, 0);
}

void pcpu__usage_fold_locked(struct pcpu_usage *u)
{
    pcpu_assert_locked();
    pcpu__usage_sample_locked();
    g.nr_alloc += atomic_load(&u->nr_alloc);
    g.nr_dealloc += atomic_load(&u->nr_dealloc);
    note_size(atomic_load(&u->min_size), atomic_load(&u->max_size));
    clear_thread(u);
}

/* Sum of every thread's counts, and of the peaks of this period above
 * their current values. */
static void sum_threads(uint64_t *a, uint64_t *d, uint64_t *excursion)
{
    uint64_t sa = 0, sd = 0, x = 0;
    unsigned int now = atomic_load(&pcpu__usage_epoch);
    for (struct pcpu_usage *u = g.threads; u; u = u->next) {
        uint64_t ta = atomic_load_explicit(&u->nr_alloc, memory_order_relaxed);
        uint64_t td = atomic_load_explicit(&u->nr_dealloc, memory_order_relaxed);
        int64_t peak = atomic_load_explicit(&u->peak_net, memory_order_relaxed);
        int64_t net = (int64_t)(ta - td);
        sa += ta;
        sd += td;
        if (atomic_load_explicit(&u->epoch, memory_order_relaxed) == now && peak > net)
            x += (uint64_t)(peak - net);
    }
    *a = sa;
    *d = sd;
    *excursion = x;
}

void pcpu__usage_sample_locked(void)
{
    pcpu_assert_locked();
    uint64_t a, d, x;
    sum_threads(&a, &d, &x);
    uint64_t cur = (g.nr_alloc + a) - (g.nr_dealloc + d);
    if (cur + x > g.nr_max_alloc)
        g.nr_max_alloc = cur + x;
    /* Peaks before this point are now accounted for. */
    atomic_fetch_add(&pcpu__usage_epoch, 1);
}

void pcpu__usage_alloc_locked(size_t size)
{
    pcpu_assert_locked();
    pcpu__usage_sample_locked();
    g.nr_alloc++;
    note_size(size, size);
    pcpu__usage_sample_locked();
}

void pcpu__usage_free_locked(void)
{
    pcpu_assert_locked();
    pcpu__usage_sample_locked();
    g.nr_dealloc++;
}

void pcpu__usage_totals_locked(struct pcpu_usage_totals *out)
{
    pcpu_assert_locked();
    pcpu__usage_sample_locked();
    uint64_t a, d, x;
    sum_threads(&a, &d, &x);
    memset(out, 0, sizeof(*out));
    out->nr_alloc = g.nr_alloc + a;
    out->nr_dealloc = g.nr_dealloc + d;
    out->nr_max_alloc = g.nr_max_alloc;
    out->min_size = g.min_size;
    out->max_size = g.max_size;
    for (struct pcpu_usage *u = g.threads; u; u = u->next) {
        size_t mn = atomic_load_explicit(&u->min_size, memory_order_relaxed);
        size_t mx = atomic_load_explicit(&u->max_size, memory_order_relaxed);
        if (mn && (out->min_size == 0 || mn < out->min_size))
            out->min_size = mn;
        if (mx > out->max_size)
            out->max_size = mx;
    }
}

void pcpu__usage_reset_locked(void)
{
    pcpu_assert_locked();
    for (struct pcpu_usage *u = g.threads; u; u = u->next)
        clear_thread(u);
    g.nr_alloc = g.nr_dealloc = g.nr_max_alloc = 0;
    g.min_size = g.max_size = 0;
    atomic_store(&pcpu__usage_epoch, 0);
}
