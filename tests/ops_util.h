/* SPDX-License-Identifier: MIT */
/*
 * ops_util.h - helpers shared by the tests of the this-CPU operations and
 * per-CPU lists (test_ops_*.c, test_list*.c): the mode a test runs in,
 * pinning, and a watchdog.
 *
 * PCPU_TEST_ATOMIC=1 in the environment (the "atomic" variant of
 * tests/CMakeLists.txt) makes
 * ops_setup_mode() configure fewer units than there are CPUs, which puts
 * the this-CPU operations and the lists in their atomic fallback; without
 * it the configuration comes from the environment as for any program
 * (rseq where the kernel has it, PERCPU_INDEX=cid, glibc's rseq off with
 * GLIBC_TUNABLES).
 */
#ifndef PCPU_OPS_UTIL_H
#define PCPU_OPS_UTIL_H

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

#include "child.h"
#include "testutil.h"
#include "percpu.h"

/* Possible CPUs of the machine: the last id in sysfs plus one (not
 * tu_possible_cpus(), which counts them: with holes in the ids, one unit
 * fewer than this is still fewer units than CPU ids). */
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
    tu_env_mode(cfg);
    pcpu_exit();
    return pcpu_init(cfg);
}

static inline void ops_reinit(struct pcpu_config *cfg)
{
    int r = ops_init(cfg);
    if (r != 0)
        fail_msg("pcpu_init: %s", strerror(errno));
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
    struct pcpu_stats st = tu_stats();
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
    return tu_stats().index == PCPU_INDEX_CID;
}

static inline const char *ops_mode_name(void)
{
    struct pcpu_stats st = tu_stats();
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

/* The cmocka group setup of these tests: the mode under test (said in
 * the output), and the teardown that leaves the allocator. */
static inline int ops_group_setup(void **state)
{
    (void)state;
    ops_setup_mode();
    print_message("mode: %s\n", ops_mode_name());
    return 0;
}

static inline int ops_group_teardown(void **state)
{
    (void)state;
    pcpu_exit();
    return 0;
}

/* Sanitizer builds run 3-10x slower: loops scale their counts by this
 * (TU_SLOW_BUILD and TU_STEPS: testutil.h). */
#define OPS_SCALE(n) TU_STEPS(n, 8)

#endif
