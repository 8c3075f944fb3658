/* SPDX-License-Identifier: MIT */
/*
 * usage.h - what users allocated: counts, sizes and the peak of live
 * objects (usage.c), the kernel's nr_alloc / nr_dealloc / nr_max_alloc /
 * min_alloc_size / max_alloc_size.
 *
 * The kernel counts under its lock; here most allocations never take the
 * lock (thread caches), so each thread counts its own (a struct
 * pcpu_usage, written by that thread only with relaxed stores and read by
 * whoever takes a snapshot) and the locked paths count into a global
 * total.  The peak of live objects is sampled: each thread remembers its
 * own peak since the last sample, and a sample (under the lock, before
 * the global counts change and before a thread's counts are folded away)
 * adds those peaks to the current value.  Exact for one thread; with
 * several it is an upper bound, as if their peaks had come at once.
 */
#ifndef PCPU_USAGE_H
#define PCPU_USAGE_H

#include "internal.h"

struct pcpu_usage {
    struct pcpu_usage *prev, *next; /* every thread's, under the lock     */
    _Atomic uint64_t nr_alloc;
    _Atomic uint64_t nr_dealloc;
    _Atomic int64_t peak_net;        /* max of alloc - dealloc this period */
    _Atomic size_t min_size, max_size; /* min 0: none yet                 */
    _Atomic size_t size_span;        /* max_size - min_size: one test     */
    _Atomic unsigned int epoch;      /* the sample period peak_net is of  */
};

struct pcpu_usage_totals {
    uint64_t nr_alloc, nr_dealloc, nr_max_alloc;
    size_t min_size, max_size;       /* 0 when nothing was allocated yet   */
};

PCPU_HIDDEN extern _Atomic unsigned int pcpu__usage_epoch;

/* Counters written only by their owner: a plain add, kept atomic so that a
 * snapshot from another thread reads a whole value. */
static inline void pcpu__usage_bump(_Atomic uint64_t *v)
{
    atomic_store_explicit(v, atomic_load_explicit(v, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

/* A size outside the thread's range so far (pcpu__usage_count_alloc);
 * inline: a call would make the fast allocation save registers. */
static inline void pcpu__usage_note_size(struct pcpu_usage *u, size_t size)
{
    size_t mn = atomic_load_explicit(&u->min_size, memory_order_relaxed);
    size_t mx = atomic_load_explicit(&u->max_size, memory_order_relaxed);
    if (mn == 0 || size < mn)
        mn = size;
    if (size > mx)
        mx = size;
    /* A reader from another thread reads min_size and max_size, never the
     * span, so each of those is always one the thread had. */
    atomic_store_explicit(&u->min_size, mn, memory_order_relaxed);
    atomic_store_explicit(&u->max_size, mx, memory_order_relaxed);
    atomic_store_explicit(&u->size_span, mx - mn, memory_order_relaxed);
}

/* A thread's own allocation of size bytes (no lock). */
static inline __attribute__((always_inline)) void pcpu__usage_count_alloc(struct pcpu_usage *u,
                                                                         size_t size)
{
    uint64_t na = atomic_load_explicit(&u->nr_alloc, memory_order_relaxed) + 1;
    atomic_store_explicit(&u->nr_alloc, na, memory_order_relaxed);
    int64_t net = (int64_t)(na - atomic_load_explicit(&u->nr_dealloc, memory_order_relaxed));
    unsigned int epoch = atomic_load_explicit(&pcpu__usage_epoch, memory_order_relaxed);
    if (unlikely(atomic_load_explicit(&u->epoch, memory_order_relaxed) != epoch)) {
        atomic_store_explicit(&u->epoch, epoch, memory_order_relaxed);
        atomic_store_explicit(&u->peak_net, net, memory_order_relaxed);
    } else if (net > atomic_load_explicit(&u->peak_net, memory_order_relaxed)) {
        atomic_store_explicit(&u->peak_net, net, memory_order_relaxed);
    }
    /* Inside [min_size, max_size] in one unsigned test (below the minimum
     * wraps round; with none yet, min_size 0 and span 0, every size is
     * outside). */
    if (unlikely(size - atomic_load_explicit(&u->min_size, memory_order_relaxed) >
                 atomic_load_explicit(&u->size_span, memory_order_relaxed)))
        pcpu__usage_note_size(u, size);
}

/* A thread's own free (no lock). */
static inline void pcpu__usage_count_free(struct pcpu_usage *u)
{
    pcpu__usage_bump(&u->nr_dealloc);
}

/* The rest with the allocator lock held. */
PCPU_HIDDEN void pcpu__usage_attach_locked(struct pcpu_usage *u);
/* Sample, fold u into the totals and empty it (detach: and forget it). */
PCPU_HIDDEN void pcpu__usage_fold_locked(struct pcpu_usage *u);
PCPU_HIDDEN void pcpu__usage_detach_locked(struct pcpu_usage *u);
/* An allocation / free counted globally (the locked paths). */
PCPU_HIDDEN void pcpu__usage_alloc_locked(size_t size);
PCPU_HIDDEN void pcpu__usage_free_locked(void);
/* Take a sample of the peak now. */
PCPU_HIDDEN void pcpu__usage_sample_locked(void);
PCPU_HIDDEN void pcpu__usage_totals_locked(struct pcpu_usage_totals *out);
/* pcpu_exit: everything back to zero, every thread's counts included. */
PCPU_HIDDEN void pcpu__usage_reset_locked(void);

#endif
