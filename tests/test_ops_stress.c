/* SPDX-License-Identifier: MIT */
/* test_ops_stress.c - every this-CPU operation (inc, add, sub, xchg, and/or, cmpxchg, try_cmpxchg, the *_return forms) loses no update and applies none twice under forced migration, at every width, with the default units, 256 units and one shared unit, and across the switch to atomics; failing compares (cmpxchg, try_cmpxchg) never overwrite remote atomic writes, at every width. */
#include "ops_util.h"

#include <stdatomic.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/*
 * Part 1: worker threads update shared per-CPU objects while a mover keeps
 * changing their affinity, so that migrations land in the middle of
 * sequences.  What each operation must conserve:
 *   - xchg: every value put in comes out exactly once: the values stored
 *     plus the initial ones equal the values returned plus the final ones
 *     (modulo 2^width).  A lost exchange drops a value, a doubled one
 *     returns a value twice.
 *   - and/or: identity masks (or 0, and ~0) still rewrite the object; mixed
 *     with adds on the same object, a rewrite of a stale value would lose
 *     adds, so the sum must equal the adds.  An "or" of the worker's own
 *     bit into a sticky word must reach some unit.
 *   - try_cmpxchg loops: the sum equals the increments.
 *   - inc_return/dec_return/sub_return: the sum equals what was added, and
 *     sub_return's new value of a unit that only ever moves by 7 is a
 *     multiple of 7 (add_return's, moving by 5, of 5).
 *   - inc, add (wrapping), add/sub mixed, a cmpxchg loop: the sums equal
 *     the updates the workers counted.
 * The same with the default units, with 256 configured units (most never
 * used) and with one unit for every CPU (the atomic path); and, when the
 * library registers rseq itself, with one thread whose rseq registration
 * is taken by someone else (the switch to atomics), without the mover.
 *
 * Part 2: one thread pinned to one CPU runs compares that always fail
 * while another, pinned to another CPU, adds to the same unit with
 * atomics through pcpu_ptr() and checks each atomic's return value: a
 * failing compare that wrote the value it had read back would show up as
 * an add that did not see its own previous result.
 */

#define NR_WORKERS 4

struct objs {
    /* xchg, per width */
    uint8_t x8;
    uint16_t x16;
    uint32_t x32;
    uint64_t x64;
    /* add mixed with identity and/or, per width */
    uint8_t m8;
    uint16_t m16;
    uint32_t m32;
    uint64_t m64;
    /* try_cmpxchg increments, per width */
    uint8_t t8;
    uint16_t t16;
    uint32_t t32;
    uint64_t t64;
    /* returning forms */
    int16_t r16;
    int64_t r64;
    int32_t s32;      /* sub_return(7) only */
    uint64_t sticky;  /* or of (1 << worker) */
    /* the plain forms */
    long inc;
    unsigned int add;         /* += 3, wraps: compared modulo 2^32 */
    uint64_t add_return;      /* += 5 with add_return               */
    int cmpxchg;              /* += 1 with a cmpxchg loop           */
    long long mixed;          /* += 1, -= 1, += 2 per round         */
};

struct worker {
    pthread_t thread;
    _Atomic pid_t tid;
    unsigned int id;
    struct objs *o;
    uint64_t rounds;
    uint64_t in[4], out[4]; /* xchg accounting per width */
    unsigned long bad_sub_return;
    unsigned long bad_add_return;
};

static _Atomic int stop;

#define XCHG(W, field, k)                                                        \
    do {                                                                         \
        uint##W##_t v = (uint##W##_t)tu_rand(&seed);                      \
        w->in[k] += v;                                                           \
        w->out[k] += pcpu_this_xchg(&w->o->field, v);                            \
    } while (0)

#define MIXED(field, ones)                                                       \
    do {                                                                         \
        pcpu_this_add(&w->o->field, 1);                                          \
        pcpu_this_or(&w->o->field, 0);                                           \
        pcpu_this_and(&w->o->field, ones);                                       \
    } while (0)

#define TRY_INC(T, field)                                                        \
    do {                                                                         \
        T old = pcpu_this_read(&w->o->field);                                    \
        while (!pcpu_this_try_cmpxchg(&w->o->field, &old, (T)(old + 1u)))        \
            ;                                                                    \
    } while (0)

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    uint64_t seed = 0x1234567ull * (w->id + 1);
    w->tid = (pid_t)syscall(SYS_gettid);
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        for (int i = 0; i < 64; i++) {
            XCHG(8, x8, 0);
            XCHG(16, x16, 1);
            XCHG(32, x32, 2);
            XCHG(64, x64, 3);
            MIXED(m8, (uint8_t)0xff);
            MIXED(m16, (uint16_t)0xffff);
            MIXED(m32, ~0u);
            MIXED(m64, ~(uint64_t)0);
            TRY_INC(uint8_t, t8);
            TRY_INC(uint16_t, t16);
            TRY_INC(uint32_t, t32);
            TRY_INC(uint64_t, t64);
            (void)pcpu_this_inc_return(&w->o->r16);
            (void)pcpu_this_inc_return(&w->o->r16);
            (void)pcpu_this_dec_return(&w->o->r16);
            (void)pcpu_this_inc_return(&w->o->r64);
            (void)pcpu_this_dec_return(&w->o->r64);
            (void)pcpu_this_sub_return(&w->o->r64, 3);
            if (pcpu_this_sub_return(&w->o->s32, 7) % 7 != 0)
                w->bad_sub_return++;
            pcpu_this_or(&w->o->sticky, (uint64_t)1 << w->id);
            pcpu_this_inc(&w->o->inc);
            pcpu_this_add(&w->o->add, 3u);
            /* this unit's new value is a multiple of 5 */
            if (pcpu_this_add_return(&w->o->add_return, 5) % 5 != 0)
                w->bad_add_return++;
            int old = pcpu_this_read(&w->o->cmpxchg);
            for (;;) {
                int seen = pcpu_this_cmpxchg(&w->o->cmpxchg, old, old + 1);
                if (seen == old)
                    break;
                old = seen;
            }
            pcpu_this_add(&w->o->mixed, 1);
            pcpu_this_sub(&w->o->mixed, 1);
            pcpu_this_add(&w->o->mixed, 2);
        }
        w->rounds += 64;
    }
    return NULL;
}

/* Moves the workers around: each gets a random single CPU or all CPUs. */
static void *mover_main(void *arg)
{
    struct worker *ws = arg;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned int seed = 4321;
    unsigned long moves = 0;
    if (ncpu < 1)
        ncpu = 1;
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        for (int i = 0; i < NR_WORKERS; i++) {
            pid_t tid = ws[i].tid;
            if (!tid)
                continue;
            if (ops_move_randomly(tid, &seed, ncpu))
                moves++;
        }
        struct timespec ts = {0, 20000};
        nanosleep(&ts, NULL);
    }
    return (void *)moves;
}

/* Sum over units of a field, modulo 2^W, as uint64_t. */
#define SUM_OF(W, field) ((uint64_t)(uint##W##_t)pcpu_sum(&o->field))

/* One run: the objects, the workers and (if moving) the mover. */
struct run {
    struct objs *o;
    uint64_t init[4];      /* the xchg objects' initial sums */
    struct worker ws[NR_WORKERS];
    pthread_t mover;
    bool moving;
    /* after stop_run() */
    uint64_t rounds, in[4], out[4];
    unsigned long bad, moves;
};

static void start_run(struct run *run, bool moving)
{
    memset(run, 0, sizeof(*run));
    struct objs *o = PCPU_NEW(struct objs);
    assert_non_null(o);
    run->o = o;
    /* Start every xchg object with known, non-zero values in every unit. */
    pcpu_for_each_cpu(cpu) {
        struct objs *p = PCPU_PTR(o, cpu);
        p->x8 = (uint8_t)(cpu * 7 + 1);
        p->x16 = (uint16_t)(cpu * 700 + 3);
        p->x32 = cpu * 70000u + 5;
        p->x64 = cpu * 7000000000ull + 9;
        run->init[0] += p->x8;
        run->init[1] += p->x16;
        run->init[2] += p->x32;
        run->init[3] += p->x64;
    }
    atomic_store(&stop, 0);
    for (unsigned int i = 0; i < NR_WORKERS; i++) {
        run->ws[i].o = o;
        run->ws[i].id = i;
        assert_int_equal(pthread_create(&run->ws[i].thread, NULL, worker_main, &run->ws[i]), 0);
    }
    run->moving = moving;
    if (moving)
        assert_int_equal(pthread_create(&run->mover, NULL, mover_main, run->ws), 0);
}

static void stop_run(struct run *run)
{
    atomic_store(&stop, 1);
    for (int i = 0; i < NR_WORKERS; i++) {
        struct worker *w = &run->ws[i];
        assert_int_equal(pthread_join(w->thread, NULL), 0);
        run->rounds += w->rounds;
        run->bad += w->bad_sub_return + w->bad_add_return;
        for (int k = 0; k < 4; k++) {
            run->in[k] += w->in[k];
            run->out[k] += w->out[k];
        }
    }
    if (run->moving) {
        void *moves;
        assert_int_equal(pthread_join(run->mover, &moves), 0);
        run->moves = (unsigned long)moves;
    }
    print_message("%llu rounds of every operation, %lu affinity changes\n",
                  (unsigned long long)run->rounds, run->moves);
}

/* Every operation's conservation law; frees the objects. */
static void check_run(struct run *run)
{
    struct objs *o = run->o;
    uint64_t rounds = run->rounds, *in = run->in, *out = run->out, *init = run->init;
    assert_true(rounds > 0);
    /* xchg: values in + initial == values out + final, per width */
    assert_int_equal((uint8_t)(in[0] + init[0]), (uint8_t)(out[0] + SUM_OF(8, x8)));
    assert_int_equal((uint16_t)(in[1] + init[1]), (uint16_t)(out[1] + SUM_OF(16, x16)));
    assert_int_equal((uint32_t)(in[2] + init[2]), (uint32_t)(out[2] + SUM_OF(32, x32)));
    assert_true(in[3] + init[3] == out[3] + SUM_OF(64, x64));
    /* and/or rewrite without losing adds */
    assert_int_equal(SUM_OF(8, m8), (uint8_t)rounds);
    assert_int_equal(SUM_OF(16, m16), (uint16_t)rounds);
    assert_int_equal(SUM_OF(32, m32), (uint32_t)rounds);
    assert_true(SUM_OF(64, m64) == rounds);
    /* try_cmpxchg loops */
    assert_int_equal(SUM_OF(8, t8), (uint8_t)rounds);
    assert_int_equal(SUM_OF(16, t16), (uint16_t)rounds);
    assert_int_equal(SUM_OF(32, t32), (uint32_t)rounds);
    assert_true(SUM_OF(64, t64) == rounds);
    /* returning forms */
    assert_int_equal(pcpu_sum(&o->r16), (int16_t)(uint16_t)rounds);
    assert_true(pcpu_sum(&o->r64) == -3 * (int64_t)rounds);
    assert_int_equal(pcpu_sum(&o->s32), (int32_t)(uint32_t)(0u - 7u * (uint32_t)rounds));
    assert_int_equal(run->bad, 0);
    uint64_t sticky = 0;
    pcpu_for_each_cpu(cpu) sticky |= PCPU_PTR(o, cpu)->sticky;
    assert_int_equal(sticky, (1u << NR_WORKERS) - 1);
    /* the plain forms */
    assert_true(pcpu_sum(&o->inc) == (long)rounds);
    assert_true(pcpu_sum(&o->add) == (unsigned int)(rounds * 3u));
    assert_true(pcpu_sum(&o->add_return) == (uint64_t)rounds * 5u);
    assert_true(pcpu_sum(&o->cmpxchg) == (int)rounds);
    assert_true(pcpu_sum(&o->mixed) == (long long)rounds * 2);
    pcpu_free(o);
}

static void sleep_for(double seconds)
{
    struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
    nanosleep(&ts, NULL);
}

static void migration_stress(double seconds)
{
    struct run run;
    start_run(&run, true);
    sleep_for(seconds);
    stop_run(&run);
    check_run(&run);
}

static void test_no_lost_update_under_migration(void **state)
{
    (void)state;
    migration_stress(1.0);
}

/* With 256 units (most never used) in CPU mode: the same. */
static void test_no_lost_update_under_migration_256_units(void **state)
{
    (void)state;
    if (ops_want_atomic())
        skip(); /* 256 units are not fewer than the CPUs */
    struct pcpu_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.nr_cpus = 256;
    ops_reinit(&cfg);
    assert_int_equal(pcpu_nr_cpus(), 256);
    int cpu = pcpu_this_cpu();
    assert_true(cpu >= 0 && cpu < 256);
    migration_stress(0.5);
    ops_setup_mode();
}

/* One unit for every CPU: CPUs share it, so everything is atomic. */
static void test_no_lost_update_under_migration_shared_unit(void **state)
{
    (void)state;
    long ncpu = sysconf(_SC_NPROCESSORS_CONF);
    if (ncpu < 2)
        skip();
    struct pcpu_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.nr_cpus = 1;
    ops_reinit(&cfg);
    assert_int_equal(pcpu_nr_cpus(), 1);
    assert_int_equal(pcpu_this_cpu(), 0);
    migration_stress(0.5);
    ops_setup_mode();
}

/*
 * A thread that already has an rseq area of its own (as if another library
 * had registered it) cannot use the library's.  When the library registers
 * rseq itself, that must switch the process to atomics without losing any
 * update of the threads that are using rseq at that moment.
 */
static void *foreign_main(void *arg)
{
    long *counter = arg;
    if (!tu_take_rseq())
        return (void *)1;
    for (int i = 0; i < 100000; i++)
        pcpu_this_inc(counter);
    tu_give_back_rseq();
    return NULL;
}

static void test_switch_to_atomics(void **state)
{
    (void)state;
    if (tu_glibc_rseq())
        skip(); /* glibc registered every thread: nothing can take it */
    /* the library as a program that never calls pcpu_init() gets it */
    pcpu_exit();
    long *counter = PCPU_NEW(long);
    pthread_t foreign;
    void *ret;
    assert_non_null(counter);
    struct run run;
    start_run(&run, false);
    sleep_for(0.1);
    assert_int_equal(pthread_create(&foreign, NULL, foreign_main, counter), 0);
    assert_int_equal(pthread_join(foreign, &ret), 0);
    sleep_for(0.1);
    stop_run(&run);
    if (ret != NULL) {
        ops_setup_mode();
        skip(); /* no rseq at all here */
    }
    assert_int_equal(pcpu_sum(counter), 100000);
    /* the switch did happen */
    assert_false(tu_stats().rseq);
    check_run(&run);
    pcpu_free(counter);
    ops_setup_mode();
}

/* ---- part 2: failing compares next to remote atomic adds ---------------- */

enum { NR_REMOTE = 1000000 };

struct race {
    void *cookie;
    int width;              /* 1, 2, 4, 8                               */
    bool try_form;          /* try_cmpxchg, else cmpxchg                */
    int cpu_cmp, cpu_rmt;
    _Atomic unsigned int unit; /* the unit the comparing thread is on   */
    _Atomic int started;
    _Atomic int stop;
    unsigned long nr_cmp, nr_matched;
    unsigned long nr_foreign;  /* remote adds that found a foreign write */
};

/*
 * The object only ever holds even values (the remote thread adds 2), and
 * every compare expects 1: it always fails, so it must never write.
 */
#define FAILING(T)                                                               \
    do {                                                                         \
        T *c = r->cookie;                                                        \
        if (r->try_form) {                                                       \
            T old = 1;                                                           \
            if (pcpu_this_try_cmpxchg(c, &old, (T)3))                            \
                ok++;                                                            \
            else if (old & 1)                                                    \
                ok++; /* saw an odd value: something wrote one */               \
        } else {                                                                 \
            if (pcpu_this_cmpxchg(c, (T)1, (T)3) & 1)                            \
                ok++;                                                            \
        }                                                                        \
    } while (0)

static void *comparer_main(void *arg)
{
    struct race *r = arg;
    ops_pin_self(r->cpu_cmp);
    unsigned long n = 0, ok = 0;
    while (!atomic_load_explicit(&r->stop, memory_order_relaxed)) {
        atomic_store_explicit(&r->unit, (unsigned int)pcpu_this_cpu(), memory_order_relaxed);
        atomic_store_explicit(&r->started, 1, memory_order_release);
        for (int i = 0; i < 256; i++) {
            switch (r->width) {
            case 1: FAILING(uint8_t); break;
            case 2: FAILING(uint16_t); break;
            case 4: FAILING(uint32_t); break;
            default: FAILING(uint64_t); break;
            }
        }
        n += 256;
    }
    r->nr_cmp = n;
    r->nr_matched = ok;
    return NULL;
}

/* One atomic add of 2; returns false if the value it found was not the
 * one its own previous add left (someone else wrote the unit). */
#define REMOTE_ADD(T)                                                            \
    do {                                                                         \
        T *p = pcpu_ptr(r->cookie, u);                                           \
        T before = __atomic_fetch_add(p, (T)2, __ATOMIC_RELAXED);                \
        if (u == last_unit && before != (T)last)                                 \
            foreign++;                                                           \
        last = (uint64_t)(T)(before + 2u);                                       \
    } while (0)

static void *remote_main(void *arg)
{
    struct race *r = arg;
    ops_pin_self(r->cpu_rmt);
    while (!atomic_load_explicit(&r->started, memory_order_acquire))
        sched_yield();
    unsigned long foreign = 0;
    unsigned int last_unit = ~0u;
    uint64_t last = 0;
    for (long i = 0; i < OPS_SCALE(NR_REMOTE); i++) {
        unsigned int u = atomic_load_explicit(&r->unit, memory_order_relaxed);
        switch (r->width) {
        case 1: REMOTE_ADD(uint8_t); break;
        case 2: REMOTE_ADD(uint16_t); break;
        case 4: REMOTE_ADD(uint32_t); break;
        default: REMOTE_ADD(uint64_t); break;
        }
        last_unit = u;
    }
    r->nr_foreign = foreign;
    return NULL;
}

static void failing_compares(int width, bool try_form)
{
    int a = 0, b = 0;
    if (!ops_two_cpus(&a, &b))
        skip();
    struct race r;
    memset(&r, 0, sizeof(r));
    r.width = width;
    r.try_form = try_form;
    r.cpu_cmp = a;
    r.cpu_rmt = b;
    r.cookie = pcpu_alloc((size_t)width, 0);
    assert_non_null(r.cookie);
    pthread_t tc, tr;
    assert_int_equal(pthread_create(&tc, NULL, comparer_main, &r), 0);
    assert_int_equal(pthread_create(&tr, NULL, remote_main, &r), 0);
    assert_int_equal(pthread_join(tr, NULL), 0);
    atomic_store(&r.stop, 1);
    assert_int_equal(pthread_join(tc, NULL), 0);
    uint64_t sum = width == 1 ? pcpu_sum((uint8_t *)r.cookie)
                 : width == 2 ? pcpu_sum((uint16_t *)r.cookie)
                 : width == 4 ? pcpu_sum((uint32_t *)r.cookie)
                              : pcpu_sum((uint64_t *)r.cookie);
    uint64_t want = 2ull * (uint64_t)OPS_SCALE(NR_REMOTE);
    if (width < 8)
        want &= (1ull << (width * 8)) - 1;
    print_message("%d-byte %s: %lu failing compares, %ld remote adds, %lu saw a foreign "
                  "write, sum %llu (want %llu)\n",
                  width, try_form ? "try_cmpxchg" : "cmpxchg", r.nr_cmp,
                  (long)OPS_SCALE(NR_REMOTE), r.nr_foreign, (unsigned long long)sum,
                  (unsigned long long)want);
    assert_true(r.nr_cmp > 0);
    assert_int_equal(r.nr_matched, 0);
    assert_int_equal(r.nr_foreign, 0);
    assert_true(sum == want);
    pcpu_free(r.cookie);
}

#define FAILING_TEST(W)                                                          \
    static void test_failed_try_cmpxchg_writes_nothing_##W(void **state)         \
    {                                                                            \
        (void)state;                                                             \
        failing_compares(W, true);                                               \
    }                                                                            \
    static void test_failed_cmpxchg_writes_nothing_##W(void **state)             \
    {                                                                            \
        (void)state;                                                             \
        failing_compares(W, false);                                              \
    }
FAILING_TEST(1)
FAILING_TEST(2)
FAILING_TEST(4)
FAILING_TEST(8)

int main(void)
{
    if (ops_cannot_run())
        return 0;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_lost_update_under_migration),
        cmocka_unit_test(test_no_lost_update_under_migration_256_units),
        cmocka_unit_test(test_no_lost_update_under_migration_shared_unit),
        cmocka_unit_test(test_failed_try_cmpxchg_writes_nothing_1),
        cmocka_unit_test(test_failed_try_cmpxchg_writes_nothing_2),
        cmocka_unit_test(test_failed_try_cmpxchg_writes_nothing_4),
        cmocka_unit_test(test_failed_try_cmpxchg_writes_nothing_8),
        cmocka_unit_test(test_failed_cmpxchg_writes_nothing_1),
        cmocka_unit_test(test_failed_cmpxchg_writes_nothing_2),
        cmocka_unit_test(test_failed_cmpxchg_writes_nothing_4),
        cmocka_unit_test(test_failed_cmpxchg_writes_nothing_8),
        cmocka_unit_test(test_switch_to_atomics),
    };
    return cmocka_run_group_tests(tests, ops_group_setup, ops_group_teardown);
}
