/* SPDX-License-Identifier: MIT */
/* test_cmpxchg_remote.c - a pcpu_this_cmpxchg() that fails writes nothing, so atomic writes to the same unit from another CPU (pcpu_ptr) are never lost. */
#include "ops_util.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/*
 * Why: an x86 cmpxchg without the lock prefix is a read followed by a
 * write, and on failure it writes the value it read back.  If another CPU
 * updates the same unit with an atomic between that read and that write,
 * the update is overwritten.  Per-CPU data is routinely written remotely
 * (librseq's per-CPU locks are released from any CPU, per-CPU counters are
 * drained by a collector), so a failed compare must not store at all.
 */

/* The configuration the environment asks for (backend and index). */
static void reinit_env(void)
{
    tu_reinit(NULL);
}

/* ---- (a) failing compares next to remote atomic increments ------------ */

enum { NR_REMOTE_INC = 3000000 };

struct race {
    void *cookie;           /* int * or long *                          */
    int width;              /* 4 or 8                                   */
    int cpu_cmp, cpu_rmt;   /* where the two threads are pinned         */
    _Atomic unsigned int unit; /* the unit the cmpxchg thread last saw  */
    _Atomic int started;
    _Atomic int stop;
    unsigned long nr_cmpxchg;
    unsigned long nr_succeeded; /* compares that (wrongly) matched -1    */
};

static void *cmpxchg_main(void *arg)
{
    struct race *r = arg;
    ops_pin_self(r->cpu_cmp);
    unsigned long n = 0, ok = 0;
    while (!atomic_load_explicit(&r->stop, memory_order_relaxed)) {
        /* Publish where our updates land; in CID mode that may change,
         * which only makes the remote thread hit another unit for a while. */
        atomic_store_explicit(&r->unit, (unsigned int)pcpu_this_cpu(), memory_order_relaxed);
        atomic_store_explicit(&r->started, 1, memory_order_release);
        for (int i = 0; i < 256; i++) {
            /* Every unit's value stays >= 0: these compares always fail. */
            if (r->width == 4) {
                if (pcpu_this_cmpxchg((int *)r->cookie, -1, 5) == -1)
                    ok++;
            } else {
                if (pcpu_this_cmpxchg((long *)r->cookie, -1L, 5L) == -1L)
                    ok++;
            }
        }
        n += 256;
    }
    r->nr_cmpxchg = n;
    r->nr_succeeded = ok;
    return NULL;
}

static void *remote_main(void *arg)
{
    struct race *r = arg;
    ops_pin_self(r->cpu_rmt);
    while (!atomic_load_explicit(&r->started, memory_order_acquire))
        sched_yield();
    for (long i = 0; i < NR_REMOTE_INC; i++) {
        unsigned int u = atomic_load_explicit(&r->unit, memory_order_relaxed);
        void *p = pcpu_ptr(r->cookie, u);
        if (r->width == 4)
            __atomic_fetch_add((int *)p, 1, __ATOMIC_RELAXED);
        else
            __atomic_fetch_add((long *)p, 1L, __ATOMIC_RELAXED);
    }
    return NULL;
}

static void lost_updates(int width)
{
    int a = 0, b = 0;
    if (!ops_two_cpus(&a, &b))
        skip();
    reinit_env();
    struct race r;
    memset(&r, 0, sizeof(r));
    r.width = width;
    r.cpu_cmp = a;
    r.cpu_rmt = b;
    r.cookie = pcpu_alloc((size_t)width, 0);
    assert_non_null(r.cookie);
    pthread_t tc, tr;
    assert_int_equal(pthread_create(&tc, NULL, cmpxchg_main, &r), 0);
    assert_int_equal(pthread_create(&tr, NULL, remote_main, &r), 0);
    assert_int_equal(pthread_join(tr, NULL), 0);
    atomic_store(&r.stop, 1);
    assert_int_equal(pthread_join(tc, NULL), 0);
    long sum = width == 4 ? (long)pcpu_sum((int *)r.cookie) : pcpu_sum((long *)r.cookie);
    print_message("%d-byte object: %lu failed cmpxchg, %d remote increments, sum %ld "
                  "(%ld lost)\n",
                  width, r.nr_cmpxchg, NR_REMOTE_INC, sum, (long)NR_REMOTE_INC - sum);
    assert_int_equal(r.nr_succeeded, 0);
    assert_true(r.nr_cmpxchg > 0);
    assert_int_equal(sum, NR_REMOTE_INC);
    pcpu_free(r.cookie);
}

static void test_failed_cmpxchg_keeps_remote_increments_int(void **state)
{
    (void)state;
    lost_updates(4);
}

static void test_failed_cmpxchg_keeps_remote_increments_long(void **state)
{
    (void)state;
    lost_updates(8);
}

/* ---- (b) librseq's per-CPU spinlock ------------------------------------ */

/*
 * The locker takes the lock of its current unit with a this-CPU compare
 * 0 -> 1 and hands it to the releaser on the other CPU, which stores 0 in
 * that unit's copy with an atomic; the locker meanwhile already spins on
 * its next acquisition, so its failing compares run exactly while the
 * release lands.  A release overwritten by a failed compare leaves the lock
 * at 1 with nobody to release it: a deadlock, which the watchdog turns into
 * a failure.
 */
enum { NR_HANDOFFS = 200000, STUCK_SECONDS = 10 };

struct spin {
    int *lock;
    int cpu_lock, cpu_rel;
    _Atomic unsigned long published; /* handoffs published by the locker */
    _Atomic unsigned long released;  /* handoffs the releaser completed   */
    _Atomic unsigned int unit;       /* unit of the published handoff     */
    _Atomic int give_up;
    bool locker_gave_up;
    bool confused;                   /* not exactly one unit held         */
};

static void *locker_main(void *arg)
{
    struct spin *s = arg;
    unsigned int n = pcpu_nr_cpus();
    ops_pin_self(s->cpu_lock);
    for (unsigned long k = 1; k <= NR_HANDOFFS; k++) {
        while (pcpu_this_cmpxchg(s->lock, 0, 1) != 0) {
            if (atomic_load_explicit(&s->give_up, memory_order_relaxed)) {
                s->locker_gave_up = true;
                return NULL;
            }
        }
        /* Which unit did we lock?  Wait until the previous handoff is
         * released (in CPU mode it already is: we just took that same
         * lock); then ours is the only unit at 1.  This stays right in CID
         * mode, where the locker's unit may change. */
        while (atomic_load_explicit(&s->released, memory_order_acquire) != k - 1) {
            if (atomic_load_explicit(&s->give_up, memory_order_relaxed)) {
                s->locker_gave_up = true;
                return NULL;
            }
        }
        unsigned int held = n, nheld = 0;
        for (unsigned int u = 0; u < n; u++) {
            if (__atomic_load_n(PCPU_PTR(s->lock, u), __ATOMIC_RELAXED) == 1) {
                held = u;
                nheld++;
            }
        }
        if (nheld != 1) {
            s->confused = true;
            atomic_store(&s->give_up, 1);
            return NULL;
        }
        atomic_store_explicit(&s->unit, held, memory_order_relaxed);
        atomic_store_explicit(&s->published, k, memory_order_release);
    }
    return NULL;
}

static void *releaser_main(void *arg)
{
    struct spin *s = arg;
    ops_pin_self(s->cpu_rel);
    for (unsigned long k = 1; k <= NR_HANDOFFS; k++) {
        while (atomic_load_explicit(&s->published, memory_order_acquire) != k)
            if (atomic_load_explicit(&s->give_up, memory_order_relaxed))
                return NULL;
        unsigned int u = atomic_load_explicit(&s->unit, memory_order_relaxed);
        __atomic_store_n(PCPU_PTR(s->lock, u), 0, __ATOMIC_RELEASE);
        atomic_store_explicit(&s->released, k, memory_order_release);
    }
    return NULL;
}

static void test_spinlock_released_from_other_cpu(void **state)
{
    (void)state;
    int a = 0, b = 0;
    if (!ops_two_cpus(&a, &b))
        skip();
    reinit_env();
    struct spin s;
    memset(&s, 0, sizeof(s));
    s.cpu_lock = a;
    s.cpu_rel = b;
    s.lock = PCPU_NEW(int);
    assert_non_null(s.lock);
    pthread_t tl, tr;
    assert_int_equal(pthread_create(&tl, NULL, locker_main, &s), 0);
    assert_int_equal(pthread_create(&tr, NULL, releaser_main, &s), 0);
    /* Watchdog: a handoff that makes no progress for STUCK_SECONDS is a
     * lost release (no timing assertion otherwise). */
    unsigned long last = (unsigned long)-1;
    double since = tu_now();
    for (;;) {
        unsigned long done = atomic_load(&s.released);
        if (done == NR_HANDOFFS || atomic_load(&s.give_up))
            break;
        if (done != last) {
            last = done;
            since = tu_now();
        } else if (tu_now() - since > STUCK_SECONDS) {
            atomic_store(&s.give_up, 1);
            break;
        }
        usleep(10 * 1000);
    }
    assert_int_equal(pthread_join(tl, NULL), 0);
    assert_int_equal(pthread_join(tr, NULL), 0);
    unsigned long done = atomic_load(&s.released);
    long held = pcpu_sum(s.lock);
    print_message("%lu of %d handoffs done; units at 1: %ld\n", done, NR_HANDOFFS, held);
    if (s.confused)
        fail_msg("after %lu handoffs %ld units hold the lock: a release from the other "
                 "CPU was overwritten by a failed pcpu_this_cmpxchg", done, held);
    if (s.locker_gave_up)
        fail_msg("deadlock after %lu handoffs: a release from the other CPU was "
                 "overwritten by a failed pcpu_this_cmpxchg (lock sum %ld)",
                 done, held);
    assert_int_equal(done, NR_HANDOFFS);
    /* The last handoff was released too. */
    assert_int_equal(held, 0);
    pcpu_free(s.lock);
}

/* ---- (c) the compare itself -------------------------------------------- */

/*
 * Every unit starts at the same value, so wherever the thread runs the
 * results are known: a matching compare stores and returns the old value,
 * a failing one returns what it saw and changes nothing.
 */
#define CHECK_CMPXCHG(T, V0, V1, V2)                                            \
    do {                                                                        \
        T *c = PCPU_NEW(T);                                                     \
        assert_non_null(c);                                                     \
        unsigned int n = pcpu_nr_cpus();                                        \
        for (unsigned int u = 0; u < n; u++)                                    \
            *PCPU_PTR(c, u) = (V0);                                             \
        T seen = pcpu_this_cmpxchg(c, (V0), (V1));                              \
        assert_true(seen == (V0));                                              \
        /* exactly one unit now holds V1, the others V0 */                      \
        unsigned int n1 = 0, n0 = 0;                                            \
        for (unsigned int u = 0; u < n; u++) {                                  \
            n1 += *PCPU_PTR(c, u) == (V1);                                      \
            n0 += *PCPU_PTR(c, u) == (V0);                                      \
        }                                                                       \
        assert_int_equal(n1, 1);                                                \
        assert_int_equal(n0, n - 1);                                            \
        for (unsigned int u = 0; u < n; u++)                                    \
            *PCPU_PTR(c, u) = (V1);                                             \
        seen = pcpu_this_cmpxchg(c, (V2), (V0));                                \
        assert_true(seen == (V1));                                              \
        for (unsigned int u = 0; u < n; u++)                                    \
            assert_true(*PCPU_PTR(c, u) == (V1));                               \
        pcpu_free(c);                                                           \
    } while (0)

static void test_successful_cmpxchg_returns_old(void **state)
{
    (void)state;
    reinit_env();
    CHECK_CMPXCHG(int, 7, 9, 11);
    CHECK_CMPXCHG(int, -1, 5, 0);
    CHECK_CMPXCHG(int, 0x7fffffff, (int)0x80000000u, 1);
    CHECK_CMPXCHG(unsigned int, 0xfffffffeu, 3u, 0xffffffffu);
    CHECK_CMPXCHG(long, 7L, 9L, 11L);
    CHECK_CMPXCHG(long, -1L, 5L, 0L);
    CHECK_CMPXCHG(long, 1L << 40, (1L << 40) + 1, 1L << 41);
    CHECK_CMPXCHG(unsigned long long, ~0ull, 0ull, 1ull);
    /* A compare-and-store loop still counts exactly on one thread. */
    long *ctr = PCPU_NEW(long);
    assert_non_null(ctr);
    for (int i = 0; i < 100000; i++) {
        long old = pcpu_this_read(ctr);
        for (;;) {
            long seen = pcpu_this_cmpxchg(ctr, old, old + 3);
            if (seen == old)
                break;
            old = seen;
        }
    }
    assert_int_equal(pcpu_sum(ctr), 300000);
    pcpu_free(ctr);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_successful_cmpxchg_returns_old),
        cmocka_unit_test(test_failed_cmpxchg_keeps_remote_increments_int),
        cmocka_unit_test(test_failed_cmpxchg_keeps_remote_increments_long),
        cmocka_unit_test(test_spinlock_released_from_other_cpu),
    };
    int r = cmocka_run_group_tests(tests, NULL, NULL);
    pcpu_exit();
    return r;
}
