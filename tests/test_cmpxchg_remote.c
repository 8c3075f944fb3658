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

/* In test_ops_stress.c (failing_compares): every width, cmpxchg and
 * try_cmpxchg, next to another CPU's atomic adds to the same unit: no add
 * lost, no compare that matched, no foreign write seen. */

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
        cmocka_unit_test(test_spinlock_released_from_other_cpu),
    };
    return TU_RUN_THEN_EXIT(tests);
}
