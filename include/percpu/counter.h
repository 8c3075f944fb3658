/* SPDX-License-Identifier: MIT */
/*
 * percpu/counter.h - per-CPU counters (the kernel's percpu_counter).
 * Part of <percpu.h>: include that.
 *
 * The kernel's percpu_counter: a 64-bit count that many threads change
 * without sharing a cache line.  Every unit keeps a local delta (an
 * int32_t); an add changes only the calling thread's unit, until the
 * delta would reach the batch: then it folds the delta and the amount into
 * the shared count, under the counter's lock.  pcpu_counter_read() is
 * that shared count (one load, approximate); pcpu_counter_sum() adds
 * every unit's delta to it (exact, walks every unit).
 *
 *      struct pcpu_counter requests;
 *      if (pcpu_counter_init(&requests, 0) != 0)
 *          return -1;                                 (errno ENOMEM)
 *      pcpu_counter_inc(&requests);                   (any thread)
 *      int64_t about = pcpu_counter_read(&requests);
 *      int64_t exact = pcpu_counter_sum(&requests);
 *      pcpu_counter_destroy(&requests);
 *
 * The error bound: every unit's delta stays strictly between -batch and
 * batch, for the largest batch any add used on the counter, whatever the
 * migrations.  So |read - sum| < batch * pcpu_nr_cpus(): with
 * pcpu_counter_add() alone, pcpu_counter_batch() * pcpu_nr_cpus().
 *
 * Limits (see pcpu_counter_limited_add()): a counter remembers the last
 * upper and lower limit that pcpu_counter_limited_add() used.  While the
 * count is far from a limit, increases through it stay per-CPU; near the
 * limit they take the lock and check the exact sum.
 *
 * Costs: an add is O(1), one restartable sequence (an atomic
 * compare-and-swap without rseq), plus, once per batch of adds on a unit,
 * a fold under the counter's lock.  Memory: 4 bytes per unit
 * (pcpu_counter_init_many() packs n counters into one allocation of
 * 4 * n bytes per unit), and 120 bytes for the struct.
 * How it works: docs/design.md, "Counters".
 */
#ifndef PERCPU_COUNTER_H
#define PERCPU_COUNTER_H
#ifndef PERCPU_H
#error "<percpu/counter.h> is not for direct inclusion: #include <percpu.h>"
#endif

#ifdef __cplusplus
extern "C" {
#endif

struct pcpu_counter {
    /* Read by every add; written only by init and destroy, by the limits
     * (limited adds, and folds that bring the count near a limit) and by
     * the first add with a larger batch. */
    int32_t *counters;   /* per-CPU deltas (a cookie), NULL: no counter */
    /* The fold threshold of pcpu_counter_add() (an int32_t value): 64
     * bits wide so that the compiler knows the sequences' 32-bit stores
     * cannot change it, and keeps it in a register across a loop of adds. */
    int64_t batch;
    int64_t limit_hi;    /* the limits the gates were opened for       */
    int64_t limit_lo;
    int32_t max_batch;   /* largest batch an add used: the error bound */
    uint32_t gate;       /* PCPU__CTR_GATE_*: limited fast paths closed */
    uint32_t flags;      /* PCPU__CTR_*                                */
    /* Written by every fold.  The gap keeps these 64 bytes or more from
     * the fields above, so that they never share a cache line, wherever
     * the counter lies: another CPU's fold then does not take the line
     * every add reads from under it. */
    unsigned char pcpu__gap[64];
    uint32_t lock;       /* futex word: folds, sum, set, limits        */
    int64_t count;       /* the folded value: pcpu_counter_read()      */
};

/* The largest batch a counter uses; larger ones are taken as this (the
 * local deltas then never overflow their 32 bits). */
#define PCPU_COUNTER_MAX_BATCH ((int32_t)1 << 30)

/**
 * pcpu_counter_init - set up a counter with the value @value.
 * @c:     the counter (embedded anywhere; zero-filled or not).
 * @value: its initial value.
 *
 * Allocates one int32_t per unit (pcpu_alloc()).  The batch of
 * pcpu_counter_add() is pcpu_counter_batch().
 * Returns 0, or -1 with errno:
 *   ENOMEM  the per-CPU allocation failed, or the allocator could not be
 *           set up for lack of memory (an address-space limit below the
 *           first chunk); @c is left as it was and nothing is allocated;
 *   EINVAL  the allocator's configuration from the environment is unusable
 *           (PERCPU_BACKEND, PERCPU_INDEX: see pcpu_init()).
 * Thread safety: not concurrently with other calls on @c.  Not
 * async-signal-safe.
 */
PCPU__PUBLIC int pcpu_counter_init(struct pcpu_counter *c, int64_t value);

/**
 * pcpu_counter_init_many - set up @n counters (an array) sharing one
 * per-CPU allocation.
 * @c:     an array of @n counters.
 * @value: the initial value of each.
 * @n:     how many; their deltas take 4 * @n bytes per unit, at most
 *         pcpu_max_alloc_size().
 *
 * One pcpu_alloc() for all: the deltas of neighbouring counters share
 * cache lines in each unit, which only the CPU of that unit writes.
 * Destroy them together with pcpu_counter_destroy_many() (one of them
 * alone with pcpu_counter_destroy() stops the process with a message).
 * Returns 0, or -1 with errno:
 *   EINVAL  @n is 0, or 4 * @n bytes is more than pcpu_alloc() accepts
 *           (or the configuration from the environment is unusable);
 *   ENOMEM  the per-CPU allocation failed, or the allocator could not be
 *           set up for lack of memory; nothing is allocated and the
 *           counters are left as they were.
 * Thread safety: not concurrently with other calls on these counters.
 * Not async-signal-safe.
 */
PCPU__PUBLIC int pcpu_counter_init_many(struct pcpu_counter *c, int64_t value, unsigned int n);

/**
 * pcpu_counter_destroy - free a counter's per-CPU part.
 * @c: a counter from pcpu_counter_init(), or a zero-filled one that was
 *     never initialised (then this does nothing), or one destroyed
 *     already (nothing either).
 *
 * A counter of pcpu_counter_init_many() (of more than one) stops the
 * process with a message: destroy those with pcpu_counter_destroy_many().
 * Thread safety: no other call on @c may run during or after it.  Not
 * async-signal-safe.
 */
PCPU__PUBLIC void pcpu_counter_destroy(struct pcpu_counter *c);

/**
 * pcpu_counter_destroy_many - free the per-CPU part of @n counters.
 * @c: the array given to pcpu_counter_init_many(); also an array of
 *     counters set up one by one, or zero-filled ones (each is destroyed
 *     as pcpu_counter_destroy() would).
 * @n: the number of counters in @c.
 *
 * Thread safety: no other call on these counters may run during or after
 * it.  Not async-signal-safe.
 */
PCPU__PUBLIC void pcpu_counter_destroy_many(struct pcpu_counter *c, unsigned int n);

/**
 * pcpu_counter_add_batch - add @v to @c, folding at @batch.
 * @c:     an initialised counter.
 * @v:     any amount; one outside (-@batch, @batch) folds the calling
 *         unit's delta and @v into the shared count at once (as the
 *         kernel's add does: with a batch of 1 every delta stays 0 and
 *         pcpu_counter_read() is exact).
 * @batch: the fold threshold for this add: 1 .. PCPU_COUNTER_MAX_BATCH
 *         (smaller values are taken as 1, larger as the maximum).  A
 *         batch larger than the counter's before widens its error bound
 *         (see the top of this section) from then on.
 *
 * No update is ever lost.  Writes no shared cache line unless the calling
 * unit's delta would reach @batch, when it folds the delta and @v into
 * the shared count under the counter's lock.
 * Thread safety: any thread, concurrently with every other call on @c
 * except init and destroy.  Async-signal-safe once the thread has made one
 * this-CPU operation: a handler whose thread it interrupted inside a
 * counter's lock does not wait for the lock (it adds @v to the shared
 * count directly).
 */
static PCPU__INLINE void pcpu_counter_add_batch(struct pcpu_counter *c, int64_t v, int32_t batch);

/**
 * pcpu_counter_add - add @v to @c with the counter's batch
 * (pcpu_counter_batch()).
 * @c: an initialised counter.
 * @v: any amount.
 *
 * As pcpu_counter_add_batch(): with rseq, one restartable sequence in the
 * common case (load the delta, add, store it when it stays inside the
 * batch); without, a compare-and-swap on the current unit.
 * Thread safety: any thread.  Async-signal-safe once the thread has made
 * one this-CPU operation.
 */
static PCPU__INLINE void pcpu_counter_add(struct pcpu_counter *c, int64_t v);

/**
 * pcpu_counter_inc - add 1 to @c (pcpu_counter_add()).
 * Thread safety: any thread.  Async-signal-safe once the thread has made
 * one this-CPU operation.
 */
static PCPU__INLINE void pcpu_counter_inc(struct pcpu_counter *c);

/**
 * pcpu_counter_dec - subtract 1 from @c (pcpu_counter_add()).
 * Thread safety: any thread.  Async-signal-safe once the thread has made
 * one this-CPU operation.
 */
static PCPU__INLINE void pcpu_counter_dec(struct pcpu_counter *c);

/**
 * pcpu_counter_read - the folded value of @c: one load, approximate.
 * @c: an initialised counter.
 *
 * Returns the shared count, which differs from pcpu_counter_sum() by less
 * than the batch times pcpu_nr_cpus() (see the top of this section).
 * Thread safety: any thread.  Async-signal-safe.
 */
static PCPU__INLINE int64_t pcpu_counter_read(const struct pcpu_counter *c);

/**
 * pcpu_counter_read_positive - pcpu_counter_read(), or 0 when that is
 * negative (a counter of things that exist may read below 0 for a while).
 * Thread safety: any thread.  Async-signal-safe.
 */
static PCPU__INLINE int64_t pcpu_counter_read_positive(const struct pcpu_counter *c);

/**
 * pcpu_counter_sum - the exact value of @c.
 * @c: an initialised counter.
 *
 * The shared count plus every unit's delta, read under the counter's lock
 * (which holds folds off), so it counts every add that completed before
 * the call started, and adds that run meanwhile either wholly or not at
 * all.  Folds nothing.  Costs a walk over pcpu_nr_cpus() units.
 * Thread safety: any thread.  Not async-signal-safe (it takes the lock;
 * called from a handler that interrupted its thread inside a counter's
 * lock it stops the process with a message instead of hanging).
 */
PCPU__PUBLIC int64_t pcpu_counter_sum(struct pcpu_counter *c);

/**
 * pcpu_counter_sum_positive - pcpu_counter_sum(), or 0 when that is
 * negative.  Thread safety and signals as pcpu_counter_sum().
 */
PCPU__PUBLIC int64_t pcpu_counter_sum_positive(struct pcpu_counter *c);

/**
 * pcpu_counter_set - make the exact value of @c equal to @value.
 * @c:     an initialised counter.
 * @value: the new value.
 *
 * Under the lock, the shared count takes the difference between @value
 * and the exact sum, so the units' deltas stay as they are (no unit is
 * written from another CPU) and the error bound still holds.  Adds that
 * run meanwhile count either before the set (and are overwritten) or
 * after it.  Thread safety: any thread.  Not async-signal-safe (as
 * pcpu_counter_sum()).
 */
PCPU__PUBLIC void pcpu_counter_set(struct pcpu_counter *c, int64_t value);

/**
 * pcpu_counter_compare - compare the exact value of @c with @rhs.
 * @c:   an initialised counter.
 * @rhs: the value to compare with.
 *
 * Returns -1, 0 or 1 as the value is below, equal to or above @rhs.
 * Exact, and cheap when it can be: it answers from pcpu_counter_read()
 * when that is farther from @rhs than the error bound (the counter's
 * largest batch times pcpu_nr_cpus()), else from pcpu_counter_sum().
 * Thread safety: any thread.  Not async-signal-safe (it may sum).
 */
PCPU__PUBLIC int pcpu_counter_compare(struct pcpu_counter *c, int64_t rhs);

/**
 * pcpu_counter_limited_add - add @v to @c unless that takes it past @limit.
 * @c:     an initialised counter.
 * @limit: for @v > 0 the most the value may be after the add; for @v < 0
 *         the least.
 * @v:     the amount (0: nothing to do, returns true).
 *
 * Returns true when it added @v, false when the exact value plus @v would
 * have been above @limit (@v > 0) or below it (@v < 0), and then it
 * changed nothing.  Exact: when every increase of @c goes through this
 * with the same @limit, the exact value is never above @limit (a
 * concurrent pcpu_counter_sum() never sees more); and a call fails only if
 * the exact value plus @v would have crossed @limit at some moment during
 * the call.  (Likewise below for decreases with the same lower limit.)
 * Plain adds that decrease the counter may run concurrently.
 *
 * How: while the shared count is farther from the limit than the batch
 * times pcpu_nr_cpus(), an increase is one restartable sequence on the
 * calling unit's delta (as pcpu_counter_add(), which also checks a gate
 * word of the counter inside the sequence); near the limit, the first call
 * closes that gate -- membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ),
 * some microseconds -- and from then on calls check the exact sum under
 * the lock, until the count is far from the limit again.  A new @limit
 * closes the gate the same way.  Without rseq every call takes the lock
 * and checks the exact sum.
 * Thread safety: any thread.  Not async-signal-safe (it may take the lock;
 * as pcpu_counter_sum()).
 */
PCPU__PUBLIC bool pcpu_counter_limited_add(struct pcpu_counter *c, int64_t limit, int64_t v);

/**
 * pcpu_counter_batch - the default batch: max(256, 2 * pcpu_nr_cpus()).
 *
 * The fold threshold of pcpu_counter_add(), as the kernel's
 * percpu_counter_batch, but at least 256 where the kernel has 32: a fold
 * takes a lock whose cache line busy CPUs pass back and forth, so fewer
 * folds keep adds cheap; the price is a looser pcpu_counter_read() (the
 * error bound above).  pcpu_counter_add_batch() takes any other batch.
 * Initialises the allocator if needed.
 * Thread safety: any thread.  Not async-signal-safe.
 */
PCPU__PUBLIC int32_t pcpu_counter_batch(void);

#ifdef __cplusplus
}
#endif

#include "bits/counter.h"

#endif /* PERCPU_COUNTER_H */
