/* SPDX-License-Identifier: MIT */
/*
 * test_thiscpu_stress.c - this-CPU updates under forced migration.
 *
 * Worker threads update shared per-CPU counters as fast as they can (inc,
 * add, add_return and a cmpxchg loop) while another thread keeps moving
 * them between CPUs with sched_setaffinity.  Every migration in the middle
 * of an update must end in exactly one applied update, so the sums must
 * equal what the workers counted locally.  Run with the default units, with
 * 256 configured units, with a single shared unit (the atomic path), and,
 * when the library registers rseq itself, with one thread whose rseq
 * registration is taken by someone else (the switch to atomics).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "percpu.h"

#define NR_WORKERS 4

struct counters {
    long inc;
    unsigned int add;         /* += 3, wraps: compared modulo 2^32 */
    uint64_t add_return;      /* += 5 with add_return               */
    int cmpxchg;              /* += 1 with a cmpxchg loop           */
    long long mixed;          /* += 1, -= 1, += 2 per round         */
};

struct worker {
    pthread_t thread;
    _Atomic pid_t tid;
    struct counters *c;
    unsigned long rounds;     /* counted locally */
    unsigned long bad_return; /* add_return values that cannot be */
};

static _Atomic int stop;

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    w->tid = (pid_t)syscall(SYS_gettid);
    while (!stop) {
        for (int i = 0; i < 256; i++) {
            pcpu_this_inc(&w->c->inc);
            pcpu_this_add(&w->c->add, 3u);
            /* this unit's new value is a multiple of 5 */
            if (pcpu_this_add_return(&w->c->add_return, 5) % 5 != 0)
                w->bad_return++;
            int old = pcpu_this_read(&w->c->cmpxchg);
            for (;;) {
                int seen = pcpu_this_cmpxchg(&w->c->cmpxchg, old, old + 1);
                if (seen == old)
                    break;
                old = seen;
            }
            pcpu_this_add(&w->c->mixed, 1);
            pcpu_this_sub(&w->c->mixed, 1);
            pcpu_this_add(&w->c->mixed, 2);
        }
        w->rounds += 256;
    }
    return NULL;
}

/* Moves the workers around: each gets a random single CPU or all CPUs. */
static void *mover_main(void *arg)
{
    struct worker *ws = arg;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned int seed = 12345;
    unsigned long moves = 0;
    if (ncpu < 1)
        ncpu = 1;
    while (!stop) {
        for (int i = 0; i < NR_WORKERS; i++) {
            pid_t tid = ws[i].tid;
            if (!tid)
                continue;
            cpu_set_t set;
            CPU_ZERO(&set);
            int pick = rand_r(&seed) % (int)(ncpu + 1);
            if (pick == ncpu)
                for (int k = 0; k < ncpu; k++)
                    CPU_SET(k, &set);
            else
                CPU_SET(pick, &set);
            if (sched_setaffinity(tid, sizeof(set), &set) == 0)
                moves++;
        }
        struct timespec ts = {0, 20000}; /* 20 us */
        nanosleep(&ts, NULL);
    }
    return (void *)moves;
}

static void stress(double seconds)
{
    struct counters *c = PCPU_NEW(struct counters);
    struct worker ws[NR_WORKERS];
    pthread_t mover;
    assert_non_null(c);
    memset(ws, 0, sizeof(ws));
    stop = 0;
    for (int i = 0; i < NR_WORKERS; i++) {
        ws[i].c = c;
        assert_int_equal(pthread_create(&ws[i].thread, NULL, worker_main, &ws[i]), 0);
    }
    assert_int_equal(pthread_create(&mover, NULL, mover_main, ws), 0);
    struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
    nanosleep(&ts, NULL);
    stop = 1;
    unsigned long rounds = 0, bad = 0;
    for (int i = 0; i < NR_WORKERS; i++) {
        assert_int_equal(pthread_join(ws[i].thread, NULL), 0);
        rounds += ws[i].rounds;
        bad += ws[i].bad_return;
    }
    void *moves;
    assert_int_equal(pthread_join(mover, &moves), 0);
    print_message("%lu updates of each kind, %lu affinity changes\n", rounds,
                  (unsigned long)moves);
    assert_true(rounds > 0);
    assert_int_equal(bad, 0);
    assert_true(pcpu_sum(&c->inc) == (long)rounds);
    assert_true(pcpu_sum(&c->add) == (unsigned int)(rounds * 3u));
    assert_true(pcpu_sum(&c->add_return) == (uint64_t)rounds * 5u);
    assert_true(pcpu_sum(&c->cmpxchg) == (int)rounds);
    assert_true(pcpu_sum(&c->mixed) == (long long)rounds * 2);
    pcpu_free(c);
}

static void test_stress_default(void **state)
{
    (void)state;
    stress(1.0);
}

/* The configuration the environment asks for, as pcpu_init() would take
 * it (pcpu_init with an explicit config ignores the environment). */
static struct pcpu_config env_config(unsigned int nr_cpus)
{
    struct pcpu_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    const char *b = getenv("PERCPU_BACKEND");
    const char *x = getenv("PERCPU_INDEX");
    cfg.backend = b && !strcmp(b, "km") ? PCPU_BACKEND_KM : PCPU_BACKEND_VM;
    cfg.index = x && !strcmp(x, "cid") ? PCPU_INDEX_CID : PCPU_INDEX_CPU;
    cfg.nr_cpus = nr_cpus;
    return cfg;
}

static void reinit(unsigned int nr_cpus)
{
    struct pcpu_config cfg = env_config(nr_cpus);
    pcpu_exit();
    if (pcpu_init(&cfg) != 0)
        fail_msg("pcpu_init(nr_cpus=%u): %s", nr_cpus, strerror(errno));
    assert_int_equal(pcpu_nr_cpus(), nr_cpus);
}

static void test_stress_256_units(void **state)
{
    (void)state;
    reinit(256);
    int cpu = pcpu_this_cpu();
    assert_true(cpu >= 0 && cpu < 256);
    stress(0.5);
    pcpu_exit();
}

/* One unit for every CPU: CPUs share it, so everything is atomic. */
static void test_stress_shared_unit(void **state)
{
    (void)state;
    long ncpu = sysconf(_SC_NPROCESSORS_CONF);
    if (ncpu < 2)
        skip();
    reinit(1);
    assert_int_equal(pcpu_this_cpu(), 0);
    stress(0.5);
    pcpu_exit();
}

/*
 * A thread that already has an rseq area of its own (as if another library
 * had registered it) cannot use the library's.  When the library registers
 * rseq itself, that must switch the process to atomics without losing any
 * update of the threads that are using rseq at that moment.
 */
struct foreign_rseq {
    uint32_t cpu_id_start, cpu_id;
    uint64_t rseq_cs;
    uint32_t flags, node_id, mm_cid, pad;
} __attribute__((aligned(32)));

extern const unsigned int __rseq_size __attribute__((weak));

static void *foreign_main(void *arg)
{
    long *counter = arg;
    static __thread struct foreign_rseq area;
    area.cpu_id = UINT32_MAX;
    if (syscall(SYS_rseq, &area, 32, 0, 0x53053053) != 0)
        return (void *)1;
    for (int i = 0; i < 100000; i++)
        pcpu_this_inc(counter);
    /* A thread must not exit with a registration in its TLS. */
    syscall(SYS_rseq, &area, 32, 1, 0x53053053);
    return NULL;
}

static void test_switch_to_atomics(void **state)
{
    (void)state;
    if (&__rseq_size != NULL && __rseq_size != 0)
        skip(); /* glibc registered every thread: nothing can take it */
    pcpu_exit();
    long *counter = PCPU_NEW(long);
    struct worker ws[NR_WORKERS];
    pthread_t foreign;
    void *ret;
    assert_non_null(counter);
    memset(ws, 0, sizeof(ws));
    struct counters *c = PCPU_NEW(struct counters);
    assert_non_null(c);
    stop = 0;
    for (int i = 0; i < NR_WORKERS; i++) {
        ws[i].c = c;
        assert_int_equal(pthread_create(&ws[i].thread, NULL, worker_main, &ws[i]), 0);
    }
    struct timespec ts = {0, 100000000};
    nanosleep(&ts, NULL);
    assert_int_equal(pthread_create(&foreign, NULL, foreign_main, counter), 0);
    assert_int_equal(pthread_join(foreign, &ret), 0);
    nanosleep(&ts, NULL);
    stop = 1;
    unsigned long rounds = 0;
    for (int i = 0; i < NR_WORKERS; i++) {
        assert_int_equal(pthread_join(ws[i].thread, NULL), 0);
        rounds += ws[i].rounds;
    }
    if (ret != NULL) {
        pcpu_exit();
        skip(); /* no rseq at all here */
    }
    assert_int_equal(pcpu_sum(counter), 100000);
    /* (peeking at the library's state: the switch did happen) */
    assert_int_equal(pcpu__thiscpu.mode, PCPU__MODE_ATOMIC);
    assert_true(pcpu_sum(&c->inc) == (long)rounds);
    assert_true(pcpu_sum(&c->cmpxchg) == (int)rounds);
    assert_true(pcpu_sum(&c->add_return) == (uint64_t)rounds * 5u);
    pcpu_exit();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stress_default),
        cmocka_unit_test(test_stress_256_units),
        cmocka_unit_test(test_stress_shared_unit),
        cmocka_unit_test(test_switch_to_atomics),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
