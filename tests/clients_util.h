/* SPDX-License-Identifier: MIT */
/*
 * clients_util.h - what the tests of the counters, reference counts and
 * the reader-writer semaphore share (test_counter.c, test_ref.c,
 * test_rwsem.c): a mover thread that keeps migrating the workers between
 * CPUs with sched_setaffinity (as test_ops_stress.c does), so that every
 * fast path is interrupted and moved in the middle, and a stop flag.
 */
#ifndef PCPU_CLIENTS_UTIL_H
#define PCPU_CLIENTS_UTIL_H

#include "ops_util.h"

#include <stdatomic.h>
#include <sys/syscall.h>

#define CU_MAX_THREADS 64

struct cu_mover {
    _Atomic pid_t tids[CU_MAX_THREADS];
    atomic_bool stop;
    unsigned long moves;
    pthread_t thread;
};

static inline pid_t cu_gettid(void)
{
    return (pid_t)syscall(SYS_gettid);
}

/* A worker says which slot it is, so the mover can move it. */
static inline void cu_mover_enrol(struct cu_mover *m, unsigned int slot)
{
    atomic_store(&m->tids[slot % CU_MAX_THREADS], cu_gettid());
}

/* And leaves before it ends (its tid may be reused). */
static inline void cu_mover_leave(struct cu_mover *m, unsigned int slot)
{
    atomic_store(&m->tids[slot % CU_MAX_THREADS], 0);
}

static inline void *cu_mover_main(void *arg)
{
    struct cu_mover *m = arg;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned int seed = 8765;
    if (ncpu < 1)
        ncpu = 1;
    while (!atomic_load_explicit(&m->stop, memory_order_relaxed)) {
        for (int i = 0; i < CU_MAX_THREADS; i++) {
            pid_t tid = atomic_load_explicit(&m->tids[i], memory_order_relaxed);
            if (!tid)
                continue;
            if (ops_move_randomly(tid, &seed, ncpu))
                m->moves++;
        }
        struct timespec ts = {0, 50000};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

static inline void cu_mover_start(struct cu_mover *m)
{
    memset(m, 0, sizeof(*m));
    assert_int_equal(pthread_create(&m->thread, NULL, cu_mover_main, m), 0);
}

static inline unsigned long cu_mover_stop(struct cu_mover *m)
{
    atomic_store(&m->stop, true);
    pthread_join(m->thread, NULL);
    return m->moves;
}

/*
 * Per-CPU memory used up: re-initialise with the smallest memory cap (in
 * the same index mode) and allocate until pcpu_alloc() fails, 256-byte
 * objects first, then 8-byte ones for the holes they leave.  The objects
 * are in e; cu_unexhaust() frees them and restores the test's mode.
 */
struct cu_exhausted {
    void **p;
    unsigned int n;
};

static inline struct cu_exhausted cu_exhaust(void)
{
    struct pcpu_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    if (ops_want_atomic())
        cfg.nr_cpus = ops_possible_cpus() - 1;
    cfg.max_memory = 1;
    ops_reinit(&cfg);
    enum { MAXP = 1 << 17 };
    struct cu_exhausted e = {calloc(MAXP, sizeof(void *)), 0};
    assert_non_null(e.p);
    static const size_t sizes[] = {256, sizeof(unsigned long)};
    for (unsigned int k = 0; k < 2; k++)
        while (e.n < MAXP && (e.p[e.n] = pcpu_alloc(sizes[k], 0)) != NULL)
            e.n++;
    assert_true(e.n < MAXP);
    return e;
}

static inline void cu_unexhaust(struct cu_exhausted *e)
{
    for (unsigned int i = 0; i < e->n; i++)
        pcpu_free(e->p[i]);
    free(e->p);
    ops_setup_mode();
}

#endif
