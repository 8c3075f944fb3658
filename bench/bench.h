/* SPDX-License-Identifier: MIT */
/*
 * bench.h - shared declarations of percpu-bench.
 *
 * The benchmark is split by concept:
 *   percpu-bench.c  options, the order of the run, table, targets, JSON
 *   harness.c       pinned worker threads, timing, repetitions, statistics,
 *                   machine description
 *   figures_*.c     the measured loops, one family a file, each percpu
 *                   figure set against what users would pick instead:
 *     figures_inc.c     increments: thread-locals, atomics, sched_getcpu
 *                       stripes, hand-written rseq sequences
 *     figures_ops.c     xchg and cmpxchg
 *     figures_list.c    per-CPU lists against locked and lock-free lists
 *     figures_alloc.c   allocation against malloc and padded per-CPU
 *                       arrays; the chunk map's demo state
 *     figures_bulk.c    a million allocations, then their frees
 *     figures_scale.c   allocation with up to a million live objects
 *     figures_mem.c     resident memory against the ideal and padding
 *     figures_clients.c counters, reference counts and the rw semaphore
 *                       against a shared atomic and pthread_rwlock
 *     figures_units.c   cost vs configured units, one child process per
 *                       count
 *     figures_region.c  regions shared between processes: increments in
 *                       P processes against a shared atomic, a region's
 *                       memory
 *     figures_util.c    what the families share (declared below)
 *   plots.c         gnuplot charts and the chunk-map picture
 *
 * Each timed loop checks its result after the measurement (a counter's
 * sum must equal the operations done, a list must hold every node), so a
 * broken fast path cannot look fast.
 *
 * A "figure" is one named measurement at one thread count; a "result" is
 * what the table and the JSON file report for it.
 */
#ifndef PERCPU_BENCH_H
#define PERCPU_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define BENCH_MAX_RESULTS 192
#define BENCH_MAX_REPS 64

/* Options of one run. */
struct bench_opts {
    bool full;              /* --full: longer repetitions, more of them  */
    unsigned int reps;      /* repetitions per figure (median of these)  */
    double rep_ms;          /* target duration of one repetition         */
    const char *json;       /* --json FILE or NULL                       */
    const char *plots;      /* --plots DIR or NULL                       */
    const char *only;       /* --only PREFIX: run matching figures only  */
    bool strict;            /* --strict: exit 1 when a target is missed  */
    bool quiet;             /* --quiet: no progress lines                */
    bool wall;              /* --wall: report wall-clock, not CPU time   */
};
extern struct bench_opts bench_opts;

/* One reported figure. */
struct result {
    char name[48];
    unsigned int threads;
    double value;           /* median over repetitions                   */
    const char *unit;       /* "ns/op" or "kB"                           */
    double min, max;        /* spread over repetitions                   */
    double rmad;            /* median absolute deviation / median        */
    unsigned int reps;
    uint64_t iters;         /* operations per thread per repetition      */
    double cpu, wall;       /* median ns/op by thread CPU time, by clock */
    double oncpu;           /* cpu / wall: share of the time on a CPU    */
    /* memory figures only */
    double ideal;           /* kB                                        */
    double ratio;           /* value / ideal                             */
    double rss_kb;          /* VmRSS delta, kB                           */
    double pcpu_resident_kb; /* pcpu_stats resident_bytes delta, kB      */
    double pcpu_metadata_kb; /* pcpu_stats metadata_bytes delta, kB      */
    unsigned int units;     /* units.* figures: nr_cpus configured; else 0 */
    const char *source;     /* how value was measured                    */
};
extern struct result results[BENCH_MAX_RESULTS];
extern unsigned int nr_results;

struct result *result_add(const char *name, unsigned int threads, const char *unit);
const struct result *result_find(const char *name, unsigned int threads);

/*
 * A timed loop.  setup() runs once per thread before the repetitions (its
 * state pointer is passed to run() and teardown()), run() performs @iters
 * operations, teardown() undoes setup().  Each may be NULL except run.
 */
struct loop {
    const char *name;
    void *(*setup)(const struct loop *l, unsigned int tid);
    void (*run)(void *state, uint64_t iters);
    void (*teardown)(void *state);
    void (*check)(const struct loop *l, uint64_t total_ops); /* after all */
    /* check(): total_ops counts every operation run since the last check */
    uintptr_t arg;          /* loop parameter (object size, live count)  */
    uint64_t iters;         /* 0: calibrate on the first measurement     */
    uint64_t extra_ops;     /* operations done while calibrating         */
};

/* harness.c */
unsigned int online_cpus(void);           /* CPUs this process may run on */
int online_cpu(unsigned int i);           /* i-th of them                 */
double now_ns(void);
double thread_cpu_ns(void);               /* the calling thread's CPU time */
void stats_of(double *v, unsigned int n, double *median, double *min,
              double *max, double *rmad);
/* Measure @l with @threads pinned threads; adds and returns the result. */
struct result *measure(struct loop *l, unsigned int threads);
/* Measure @nl loops (at most 12) together with @threads threads, their
 * repetitions interleaved (loop 0 rep 1, loop 1 rep 1, ..., loop 0 rep 2,
 * ...) so that ratios between them are same-time ratios; adds one result
 * per loop, in order. */
void measure_group(struct loop **ls, unsigned int nl, unsigned int threads);
/* Measure @l at 1 thread and at @threads, one repetition of each in turn
 * (each after a warm-up, in fresh threads), so that a target comparing the
 * two is a same-time ratio; adds the two results, 1 thread first. */
void measure_1_n_alternating(struct loop *l, unsigned int threads);
/* Measure @nl loops (at most 12) together at 1 thread and at @threads,
 * the two in turn: each repetition runs the group (interleaved, after a
 * warm-up of the group) in fresh threads at 1, then at @threads, so that
 * ratios between loops and between T=1 and T=n are all same-time ratios;
 * adds the results at 1 thread, then those at @threads, in loop order. */
void measure_group_1_n_alternating(struct loop **ls, unsigned int nl, unsigned int threads);
/* Measure @nl loops (at most 12) with @threads threads, one repetition of
 * each in turn, each in fresh threads on a fresh setup (a warm-up, then
 * the timed repetition): for loops whose states cannot coexist without
 * changing what the others measure; adds one result per loop, in order. */
void measure_alternating(struct loop **ls, unsigned int nl, unsigned int threads);
long vm_rss_kb(void);
void machine_json(FILE *f);
void machine_print(FILE *f);
bool name_selected(const char *name);
void progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* One family of figures each (figures_<family>.c), in the order of the run. */
void figures_mem(void);
void figures_inc(void);
void figures_ops(void);
void figures_list(void);
void figures_alloc(void);
void figures_bulk(void);
void figures_scale(void);
/* figures_clients.c: counters, reference counts, reader-writer semaphore */
void figures_clients(void);
/* figures_alloc.c: leave the allocator in a varied state worth drawing
 * (returns a handle to pass to chunkmap_demo_free). */
void *chunkmap_demo_state(void);
void chunkmap_demo_free(void *h);

/* figures_util.c: shared by the families */
/* Measure @l at T=1 and at T = every online CPU. */
void measure_1_n(struct loop *l);
/* Measure @n loops together at T=1 and T=all (the selected ones). */
void measure_1_n_together(struct loop *loops, size_t n);
/* The per-thread state of alloc.* and scale.* loops: alloc_setup() seeds
 * it from the thread and takes the size from l->arg; alloc_teardown()
 * frees the live objects and the state. */
struct alloc_state {
    uint64_t seed;
    size_t size;
    size_t nr;              /* live objects (mixed, scale)               */
    void **live;
};
void *alloc_setup(const struct loop *l, unsigned int tid);
void alloc_teardown(void *p);

/* perror(what), exit 2: a figure that cannot be set up or lost its
 * object.  Static in every file, as it was when the timed loops that call
 * it were measured: declared extern (noreturn, cold) it moves their blocks
 * around (objdump). */
static inline void die(const char *what)
{
    perror(what);
    exit(2);
}

static inline unsigned int nthreads_all(void)
{
    return online_cpus();
}

static inline uint64_t rnd(uint64_t *s)
{
    /* xorshift64*: a few cycles, good enough to pick slots and sizes */
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545f4914f6cdd1dull;
}

/* figures_units.c */
void figures_units(void);            /* runs the children, adds results */
int units_child(unsigned int nr_units); /* --units-child N: one child's run */
const struct result *result_find_units(const char *name, unsigned int units);
void units_table(void);
void units_plot_data(FILE *f);

/* figures_region.c: regions shared between processes (P processes busy;
 * a result's threads field holds P) */
void figures_region(void);

/* plots.c */
void plots_write(const char *dir);      /* gnuplot charts of the results */
void chunkmap_write(const char *dir);   /* chunkmap.txt and chunkmap.svg */

/* Keep @p alive in the compiler's eyes. */
static inline void escape(void *p)
{
    __asm__ __volatile__("" : : "g"(p) : "memory");
}

#endif /* PERCPU_BENCH_H */
