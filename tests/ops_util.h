/* SPDX-License-Identifier: MIT */
/*
 * ops_util.h - helpers shared by the tests of the this-CPU operations and
 * per-CPU lists (test_ops_*.c, test_list*.c): the mode a test runs in,
 * pinning, and a watchdog.
 *
 * PCPU_TEST_ATOMIC=1 in the environment (tests/ops.cmake) makes
 * ops_setup_mode() configure fewer units than there are CPUs, which puts
 * the this-CPU operations and the lists in their atomic fallback; without
 * it the configuration comes from the environment as for any program
 * (rseq where the kernel has it, PERCPU_INDEX=cid, glibc's rseq off with
 * GLIBC_TUNABLES).
 */
#ifndef PCPU_OPS_UTIL_H
#define PCPU_OPS_UTIL_H

/* Self-contained on purpose (cmocka, child_watch.h and the public header
 * only), so that these tests do not depend on the names of the shared
 * test helpers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "child_watch.h"
#include "testutil.h"
#include "percpu.h"

/* Seconds on a monotonic clock. */
static inline double ops_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Deterministic pseudo-random numbers (xorshift64*). */
static inline uint64_t ops_rand(uint64_t *s)
{
    uint64_t x = *s ? *s : 0x9e3779b97f4a7c15ull;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545f4914f6cdd1dull;
}

/* Possible CPUs of the machine: the last id in sysfs plus one. */
static inline unsigned int ops_possible_cpus(void)
{
    unsigned int n = 0;
    FILE *f = fopen("/sys/devices/system/cpu/possible", "r");
    if (f) {
        char buf[256];
        if (fgets(buf, sizeof(buf), f)) {
            for (char *p = buf; *p;) {
                char *end;
                unsigned long a = strtoul(p, &end, 10), b = a;
                if (end == p)
                    break;
                if (*end == '-')
                    b = strtoul(end + 1, &end, 10);
                if (b + 1 > n)
                    n = (unsigned int)(b + 1);
                p = *end == ',' ? end + 1 : end;
                if (*p == '\n')
                    break;
            }
        }
        fclose(f);
    }
    if (!n) {
        long c = sysconf(_SC_NPROCESSORS_CONF);
        n = c > 0 ? (unsigned int)c : 1;
    }
    return n;
}

/* pcpu_exit() and pcpu_init() with @cfg, the backend and index mode taken
 * from the environment (PERCPU_BACKEND, PERCPU_INDEX) as a program that
 * does not call pcpu_init() gets them.  Returns pcpu_init()'s result. */
static inline int ops_init(struct pcpu_config *cfg)
{
    const char *b = getenv("PERCPU_BACKEND");
    const char *x = getenv("PERCPU_INDEX");
    cfg->backend = b && !strcmp(b, "km") ? PCPU_BACKEND_KM : PCPU_BACKEND_VM;
    cfg->index = x && !strcmp(x, "cid") ? PCPU_INDEX_CID : PCPU_INDEX_CPU;
    pcpu_exit();
    return pcpu_init(cfg);
}

static inline void ops_reinit(struct pcpu_config *cfg)
{
    int r = ops_init(cfg);
    if (r != 0)
        fail_msg("pcpu_init: %s", strerror(errno));
}

static inline struct pcpu_stats ops_stats(void)
{
    struct pcpu_stats st;
    assert_int_equal(pcpu_stats_get(&st), 0);
    return st;
}

/* Run fn(arg) in a forked child: true if it stopped with SIGABRT and its
 * stderr holds every string of @need (NULL-terminated). */
static inline bool ops_dies_with(void (*fn)(void *), void *arg, const char *const *need)
{
    struct child_result r;
    run_watched(fn, arg, 60, &r);
    if (!child_aborted(&r)) {
        char how[128];
        print_message("the child %s; stderr: %.500s\n", child_verdict(&r, how, sizeof(how)),
                      r.out);
        return false;
    }
    for (; *need; need++)
        if (!strstr(r.out, *need)) {
            print_message("stderr lacks \"%s\": %.500s\n", *need, r.out);
            return false;
        }
    return true;
}

static inline bool ops_want_atomic(void)
{
    const char *a = getenv("PCPU_TEST_ATOMIC");
    return a && a[0] == '1';
}

/* Re-initialise the allocator for the mode under test: atomic (fewer
 * units than CPUs) when @atomic, else the environment's.  Returns false
 * (the caller skips) when the machine cannot give that mode. */
static inline bool ops_setup(bool atomic)
{
    struct pcpu_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    if (atomic) {
        unsigned int n = ops_possible_cpus();
        if (n < 2)
            return false;
        cfg.nr_cpus = n - 1;
    }
    ops_reinit(&cfg);
    struct pcpu_stats st = ops_stats();
    if (atomic)
        assert_false(st.rseq);
    return true;
}

/* The atomic variant needs two CPUs (one unit fewer than CPUs); say so
 * and let the program pass without running anything on a smaller box. */
static inline bool ops_cannot_run(void)
{
    if (ops_want_atomic() && ops_possible_cpus() < 2) {
        printf("skipped: PCPU_TEST_ATOMIC needs at least two CPUs\n");
        return true;
    }
    return false;
}

static inline bool ops_setup_mode(void)
{
    return ops_setup(ops_want_atomic());
}

/* In CID mode the unit of a pinned thread can still change (and change
 * back) when other threads of the process run: a single-unit check that
 * fails there is run again rather than failed at once. */
static inline bool ops_unit_may_move(void)
{
    return ops_stats().index == PCPU_INDEX_CID;
}

static inline const char *ops_mode_name(void)
{
    struct pcpu_stats st = ops_stats();
    return st.rseq ? (st.index == PCPU_INDEX_CID ? "rseq, cid" : "rseq, cpu")
                   : (st.index == PCPU_INDEX_CID ? "atomic, cid" : "atomic, cpu");
}

/* The first two CPUs this process may run on; false if there are fewer. */
static inline bool ops_two_cpus(int *a, int *b)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) != 0)
        return false;
    int found = 0;
    for (int i = 0; i < CPU_SETSIZE && found < 2; i++) {
        if (CPU_ISSET(i, &set)) {
            if (found++ == 0)
                *a = i;
            else
                *b = i;
        }
    }
    return found == 2;
}

static inline void ops_pin_self(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    assert_int_equal(pthread_setaffinity_np(pthread_self(), sizeof(set), &set), 0);
}

/* Pin to the CPU the thread is on now; false if that fails. */
static inline bool ops_pin_here(void)
{
    int cpu = sched_getcpu();
    cpu_set_t set;
    if (cpu < 0)
        return false;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(0, sizeof(set), &set) == 0;
}

/* Move thread tid to a random single one of ncpu CPUs, or let it run on
 * all of them (one pick in ncpu + 1): the migrations the stress tests
 * force on their workers.  true if the kernel took it. */
static inline bool ops_move_randomly(pid_t tid, unsigned int *seed, long ncpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    int pick = rand_r(seed) % (int)(ncpu + 1);
    if (pick == ncpu)
        for (int k = 0; k < ncpu; k++)
            CPU_SET(k, &set);
    else
        CPU_SET(pick, &set);
    return sched_setaffinity(tid, sizeof(set), &set) == 0;
}

static inline void ops_unpin(void)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int i = 0; i < CPU_SETSIZE; i++)
        CPU_SET(i, &set);
    (void)sched_setaffinity(0, sizeof(set), &set);
}

/* Sanitizer builds run 3-10x slower: loops scale their counts by this
 * (TU_SLOW_BUILD and TU_STEPS: testutil.h). */
#define OPS_SCALE(n) TU_STEPS(n, 8)

#endif
