/* SPDX-License-Identifier: MIT */
/* test_counter.c - per-CPU counters: exact sums, the read bound, exact compare and limited_add under threads and migration; init_many; ENOMEM. */
/*
 * Every concurrent test runs with a mover thread that migrates the workers
 * between CPUs all the time, so the adds are interrupted and moved in the
 * middle of their sequences (rseq modes) or of their compare-and-swap
 * loops (atomic fallback).  The programs run in every mode: default,
 * cid, norseq, norseq_cid and atomic (tests/CMakeLists.txt).
 */
#include "clients_util.h"

#define NR_WORKERS 4

static unsigned int nr_units(void)
{
    return pcpu_nr_cpus();
}

/* The stated error bound of read() with default-batch adds only. */
static int64_t read_bound(void)
{
    return (int64_t)pcpu_counter_batch() * (int64_t)nr_units();
}

static int sign_of(int64_t a, int64_t b)
{
    return a > b ? 1 : a < b ? -1 : 0;
}

static void test_basics(void **state)
{
    (void)state;
    struct pcpu_counter c, zero;
    memset(&zero, 0, sizeof(zero));
    pcpu_counter_destroy(&zero); /* never initialised: nothing to do */

    int32_t b = pcpu_counter_batch();
    assert_true(b >= 32);
    assert_true(b >= 2 * (int32_t)nr_units());

    assert_int_equal(pcpu_counter_init(&c, -5), 0);
    assert_int_equal(pcpu_counter_sum(&c), -5);
    assert_int_equal(pcpu_counter_read(&c), -5);
    assert_int_equal(pcpu_counter_read_positive(&c), 0);
    assert_int_equal(pcpu_counter_sum_positive(&c), 0);
    pcpu_counter_inc(&c);
    pcpu_counter_dec(&c);
    pcpu_counter_dec(&c);
    assert_int_equal(pcpu_counter_sum(&c), -6);
    /* an amount beyond the batch goes straight to the shared count */
    pcpu_counter_add(&c, 1000000);
    assert_true(pcpu_counter_read(&c) >= 1000000 - 6 - read_bound());
    assert_int_equal(pcpu_counter_sum(&c), 999994);
    assert_int_equal(pcpu_counter_compare(&c, 999994), 0);
    assert_int_equal(pcpu_counter_compare(&c, 999993), 1);
    assert_int_equal(pcpu_counter_compare(&c, 999995), -1);
    assert_int_equal(pcpu_counter_compare(&c, INT64_MIN), 1);
    assert_int_equal(pcpu_counter_compare(&c, INT64_MAX), -1);
    /* set across the whole range (the difference does not fit int64_t:
     * UBSan in make sanitize stops on an overflow) */
    pcpu_counter_inc(&c);
    pcpu_counter_set(&c, INT64_MAX - 5);
    assert_true(pcpu_counter_sum(&c) == INT64_MAX - 5);
    pcpu_counter_set(&c, INT64_MIN + 5);
    assert_true(pcpu_counter_sum(&c) == INT64_MIN + 5);
    pcpu_counter_inc(&c);
    pcpu_counter_set(&c, INT64_MAX);
    assert_true(pcpu_counter_sum(&c) == INT64_MAX);
    pcpu_counter_set(&c, 42);
    assert_int_equal(pcpu_counter_sum(&c), 42);
    pcpu_counter_add_batch(&c, 3, 1);
    assert_int_equal(pcpu_counter_sum(&c), 45);
    /* batch 1 alone: every add folds, so read is exact */
    struct pcpu_counter one;
    assert_int_equal(pcpu_counter_init(&one, 0), 0);
    for (int i = 0; i < 10; i++) {
        pcpu_counter_add_batch(&one, i % 3 ? 1 : -2, 1);
        assert_int_equal(pcpu_counter_read(&one), pcpu_counter_sum(&one));
    }
    assert_int_equal(pcpu_counter_sum(&one), -2);
    pcpu_counter_destroy(&one);
    /* limited_add at the edges */
    assert_true(pcpu_counter_limited_add(&c, 50, 5));
    assert_false(pcpu_counter_limited_add(&c, 50, 1));
    assert_true(pcpu_counter_limited_add(&c, 50, 0));
    assert_true(pcpu_counter_limited_add(&c, 0, -50));
    assert_false(pcpu_counter_limited_add(&c, 0, -1));
    assert_int_equal(pcpu_counter_sum(&c), 0);
    assert_true(pcpu_counter_limited_add(&c, INT64_MAX, 7));
    assert_true(pcpu_counter_limited_add(&c, INT64_MIN, -9));
    assert_int_equal(pcpu_counter_sum(&c), -2);
    pcpu_counter_destroy(&c);
    pcpu_counter_destroy(&c); /* destroyed already: nothing */

    errno = 0;
    assert_int_equal(pcpu_counter_init_many(&c, 0, 0), -1);
    assert_int_equal(errno, EINVAL);
}

/* ---- concurrent adds with quiescent checks ----------------------------------- */

struct add_shared {
    struct pcpu_counter plain;  /* default-batch adds only: the read bound */
    struct pcpu_counter mixed;  /* adds with many batches and big amounts  */
    pthread_barrier_t start, done;
    struct cu_mover mover;
    unsigned int rounds, per_round;
    atomic_bool stop_reader;
    unsigned long reader_loops;
};

struct add_worker {
    struct add_shared *s;
    unsigned int id;
    int64_t plain_total, mixed_total;
};

static void *add_worker_main(void *arg)
{
    struct add_worker *w = arg;
    struct add_shared *s = w->s;
    uint64_t seed = 0x1234 + w->id * 977;
    static const int32_t batches[] = {1, 2, 7, 64, 1000, 1 << 20};
    cu_mover_enrol(&s->mover, w->id);
    for (unsigned int r = 0; r < s->rounds; r++) {
        pthread_barrier_wait(&s->start);
        for (unsigned int i = 0; i < s->per_round; i++) {
            uint64_t x = tu_rand(&seed);
            int64_t v = (int64_t)(x % 21) - 10; /* -10 .. 10 */
            if ((x >> 20) % 64 == 0)
                v *= 100000; /* now and then, far beyond the batch */
            pcpu_counter_add(&s->plain, v);
            w->plain_total += v;
            int32_t b = batches[(x >> 8) % 6];
            /* each worker favours its own batch, the others now and then */
            if ((x >> 12) % 4)
                b = batches[w->id % 6];
            pcpu_counter_add_batch(&s->mixed, v, b);
            w->mixed_total += v;
        }
        pthread_barrier_wait(&s->done);
    }
    cu_mover_leave(&s->mover, w->id);
    return NULL;
}

/* Reads, sums and compares while the workers add: nothing to check but
 * that the calls go through and keep the workers' adds intact. */
static void *add_reader_main(void *arg)
{
    struct add_shared *s = arg;
    int64_t sink = 0;
    while (!atomic_load(&s->stop_reader)) {
        sink += pcpu_counter_read(&s->plain) + pcpu_counter_read(&s->mixed);
        sink += pcpu_counter_sum(&s->plain) + pcpu_counter_sum(&s->mixed);
        sink += pcpu_counter_compare(&s->mixed, sink & 1023);
        s->reader_loops++;
    }
    return (void *)(intptr_t)(sink & 1);
}

static void test_adds_from_threads_sum_exactly(void **state)
{
    (void)state;
    struct add_shared s;
    memset(&s, 0, sizeof(s));
    s.rounds = 40;
    s.per_round = OPS_SCALE(20000);
    struct add_worker w[NR_WORKERS];
    pthread_t t[NR_WORKERS], reader;
    assert_int_equal(pcpu_counter_init(&s.plain, 100), 0);
    assert_int_equal(pcpu_counter_init(&s.mixed, -100), 0);
    pthread_barrier_init(&s.start, NULL, NR_WORKERS + 1);
    pthread_barrier_init(&s.done, NULL, NR_WORKERS + 1);
    cu_mover_start(&s.mover);
    for (unsigned int i = 0; i < NR_WORKERS; i++) {
        w[i] = (struct add_worker){.s = &s, .id = i};
        assert_int_equal(pthread_create(&t[i], NULL, add_worker_main, &w[i]), 0);
    }
    const int64_t bound = read_bound();
    for (unsigned int r = 0; r < s.rounds; r++) {
        /* every other round with a reader running alongside */
        bool with_reader = r % 2 == 1;
        if (with_reader) {
            atomic_store(&s.stop_reader, false);
            assert_int_equal(pthread_create(&reader, NULL, add_reader_main, &s), 0);
        }
        pthread_barrier_wait(&s.start);
        pthread_barrier_wait(&s.done);
        if (with_reader) {
            atomic_store(&s.stop_reader, true);
            pthread_join(reader, NULL);
        }
        /* a quiescent point: the values are known exactly */
        int64_t plain = 100, mixed = -100;
        for (unsigned int i = 0; i < NR_WORKERS; i++) {
            plain += w[i].plain_total;
            mixed += w[i].mixed_total;
        }
        assert_int_equal(pcpu_counter_sum(&s.plain), plain);
        assert_int_equal(pcpu_counter_sum(&s.mixed), mixed);
        int64_t rd = pcpu_counter_read(&s.plain);
        if (rd - plain > bound || plain - rd > bound)
            fail_msg("round %u: read %lld, sum %lld: more than batch * units = %lld apart", r,
                     (long long)rd, (long long)plain, (long long)bound);
        static const int64_t offs[] = {0, 1, -1, 2, -2, 31, -31, 1000, -1000};
        for (unsigned int k = 0; k < sizeof(offs) / sizeof(offs[0]); k++) {
            int64_t rhs = plain + offs[k];
            assert_int_equal(pcpu_counter_compare(&s.plain, rhs), sign_of(plain, rhs));
            rhs = plain + (offs[k] < 0 ? -bound : bound) + offs[k];
            assert_int_equal(pcpu_counter_compare(&s.plain, rhs), sign_of(plain, rhs));
            rhs = mixed + offs[k];
            assert_int_equal(pcpu_counter_compare(&s.mixed, rhs), sign_of(mixed, rhs));
        }
    }
    for (unsigned int i = 0; i < NR_WORKERS; i++)
        pthread_join(t[i], NULL);
    unsigned long moves = cu_mover_stop(&s.mover);
    print_message("%u rounds of %u adds x %d threads, %lu migrations\n", s.rounds, s.per_round,
                  NR_WORKERS, moves);
    pthread_barrier_destroy(&s.start);
    pthread_barrier_destroy(&s.done);
    pcpu_counter_destroy(&s.plain);
    pcpu_counter_destroy(&s.mixed);
}

/* ---- adds of at least the batch ------------------------------------------------ */

/* The kernel's add folds the unit's delta with the amount whenever their
 * sum reaches the batch, also when the amount alone does: so with a batch
 * of 1 every delta stays 0 and read() is exact after every add, and an
 * add of a whole batch takes the unit's delta along. */
struct batch1_shared {
    struct pcpu_counter c;
    struct cu_mover mover;
    pthread_barrier_t start;
};

static void *batch1_main(void *arg)
{
    struct batch1_shared *s = arg;
    static _Atomic unsigned int next;
    unsigned int id = atomic_fetch_add(&next, 1);
    cu_mover_enrol(&s->mover, id);
    pthread_barrier_wait(&s->start);
    int64_t total = 0;
    uint64_t seed = 99 + id;
    for (unsigned int i = 0; i < OPS_SCALE(20000); i++) {
        int64_t v = (int64_t)(tu_rand(&seed) % 7) - 3;
        pcpu_counter_add_batch(&s->c, v, 1);
        total += v;
    }
    cu_mover_leave(&s->mover, id);
    return (void *)(intptr_t)total;
}

static void test_adds_of_the_batch_fold_the_delta(void **state)
{
    (void)state;
    struct pcpu_counter c;
    int32_t b = pcpu_counter_batch();
    assert_int_equal(pcpu_counter_init(&c, 0), 0);
    /* One CPU, so that every add sees the same unit. */
    cpu_set_t old, one;
    assert_int_equal(sched_getaffinity(0, sizeof(old), &old), 0);
    CPU_ZERO(&one);
    CPU_SET(sched_getcpu(), &one);
    assert_int_equal(sched_setaffinity(0, sizeof(one), &one), 0);

    int64_t exact = 0;
    static const int64_t amounts[] = {5, -3, 100, -250};
    for (unsigned int k = 0; k < sizeof(amounts) / sizeof(amounts[0]); k++) {
        /* a delta below the batch stays in the unit ... */
        pcpu_counter_add(&c, amounts[k]);
        exact += amounts[k];
        assert_int_equal(pcpu_counter_sum(&c), exact);
        /* ... until an add of a whole batch (either sign) takes it along */
        int64_t big = (k % 2 ? -1 : 1) * ((int64_t)b + (int64_t)k);
        pcpu_counter_add(&c, big);
        exact += big;
        assert_int_equal(pcpu_counter_read(&c), exact);
        assert_int_equal(pcpu_counter_sum(&c), exact);
    }
    /* a batch of 1: every add folds, read() is exact after each */
    for (int64_t v = -3; v <= 3; v++) {
        pcpu_counter_add_batch(&c, v, 1);
        exact += v;
        assert_int_equal(pcpu_counter_read(&c), exact);
    }
    assert_int_equal(sched_setaffinity(0, sizeof(old), &old), 0);
    pcpu_counter_destroy(&c);

    /* Threads that migrate all the time, every add with a batch of 1: no
     * delta is left anywhere, read() is the exact total. */
    struct batch1_shared s;
    memset(&s, 0, sizeof(s));
    assert_int_equal(pcpu_counter_init(&s.c, 7), 0);
    pthread_barrier_init(&s.start, NULL, NR_WORKERS);
    cu_mover_start(&s.mover);
    pthread_t t[NR_WORKERS];
    for (unsigned int i = 0; i < NR_WORKERS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, batch1_main, &s), 0);
    int64_t total = 7;
    for (unsigned int i = 0; i < NR_WORKERS; i++) {
        void *r;
        pthread_join(t[i], &r);
        total += (int64_t)(intptr_t)r;
    }
    cu_mover_stop(&s.mover);
    assert_int_equal(pcpu_counter_read(&s.c), total);
    assert_int_equal(pcpu_counter_sum(&s.c), total);
    for (unsigned int cpu = 0; cpu < pcpu_nr_cpus(); cpu++)
        assert_int_equal(*PCPU_PTR(s.c.counters, cpu), 0);
    pthread_barrier_destroy(&s.start);
    pcpu_counter_destroy(&s.c);
}

/* ---- limited_add ------------------------------------------------------------------ */

struct lim_shared {
    struct pcpu_counter c;
    int64_t limit;
    struct cu_mover mover;
    atomic_bool stop;
    atomic_long over; /* sums seen above the limit */
    atomic_long checks;
    int64_t max_seen;
};

struct lim_worker {
    struct lim_shared *s;
    unsigned int id;
    int64_t quota;     /* phase 1: exactly this much, all must succeed */
    long failures;     /* phase 1: must stay 0 */
    int64_t net;       /* phase 2: what this worker's successful calls added */
    unsigned long iters;
};

/* The exact check: a concurrent sum must never see the value above the
 * limit (the sum counts each add wholly or not at all). */
static void *lim_checker_main(void *arg)
{
    struct lim_shared *s = arg;
    while (!atomic_load(&s->stop)) {
        int64_t v = pcpu_counter_sum(&s->c);
        if (v > s->limit)
            atomic_fetch_add(&s->over, 1);
        if (v > s->max_seen)
            s->max_seen = v;
        if (pcpu_counter_compare(&s->c, s->limit) > 0)
            atomic_fetch_add(&s->over, 1);
        atomic_fetch_add(&s->checks, 1);
    }
    return NULL;
}

/* Phase 1: the workers' quotas add up to the limit exactly, so at every
 * moment the value plus any pending amount is at most the limit: no call
 * may fail, and the last ones run right at the limit. */
static void *lim_quota_main(void *arg)
{
    struct lim_worker *w = arg;
    uint64_t seed = 77 + w->id;
    cu_mover_enrol(&w->s->mover, w->id);
    int64_t left = w->quota;
    while (left > 0) {
        uint64_t x = tu_rand(&seed);
        int64_t v = 1 + (int64_t)(x % 5);
        if ((x >> 16) % 500 == 0)
            v = 1000; /* beyond the batch */
        if (v > left)
            v = left;
        if (pcpu_counter_limited_add(&w->s->c, w->s->limit, v))
            left -= v;
        else
            w->failures++;
        w->iters++;
    }
    cu_mover_leave(&w->s->mover, w->id);
    return NULL;
}

/* Phase 2: more increases than room, and plain decreases alongside. */
static void *lim_contend_main(void *arg)
{
    struct lim_worker *w = arg;
    struct lim_shared *s = w->s;
    uint64_t seed = 991 + w->id;
    cu_mover_enrol(&s->mover, w->id);
    while (!atomic_load_explicit(&s->stop, memory_order_relaxed)) {
        uint64_t x = tu_rand(&seed);
        int64_t v = 1 + (int64_t)(x % 7);
        if (x % 3 == 0) {
            pcpu_counter_add(&s->c, -v);
            w->net -= v;
        } else if (pcpu_counter_limited_add(&s->c, s->limit, v)) {
            w->net += v;
        }
        w->iters++;
    }
    cu_mover_leave(&s->mover, w->id);
    return NULL;
}

static void test_limited_add_never_overshoots_and_never_fails_spuriously(void **state)
{
    (void)state;
    struct lim_shared s;
    memset(&s, 0, sizeof(s));
    /* far enough above the batch * units that the per-CPU path is used
     * first, and the gate closes near the end */
    s.limit = (int64_t)OPS_SCALE(400000);
    assert_int_equal(pcpu_counter_init(&s.c, 0), 0);
    struct lim_worker w[NR_WORKERS];
    pthread_t t[NR_WORKERS], checker;
    cu_mover_start(&s.mover);
    assert_int_equal(pthread_create(&checker, NULL, lim_checker_main, &s), 0);
    int64_t given = 0;
    for (unsigned int i = 0; i < NR_WORKERS; i++) {
        w[i] = (struct lim_worker){.s = &s, .id = i};
        w[i].quota = i + 1 < NR_WORKERS ? s.limit / NR_WORKERS : s.limit - given;
        given += w[i].quota;
        assert_int_equal(pthread_create(&t[i], NULL, lim_quota_main, &w[i]), 0);
    }
    for (unsigned int i = 0; i < NR_WORKERS; i++)
        pthread_join(t[i], NULL);
    for (unsigned int i = 0; i < NR_WORKERS; i++)
        if (w[i].failures)
            fail_msg("worker %u: %ld limited_add calls failed although the quotas add up to "
                     "the limit", i, w[i].failures);
    assert_int_equal(pcpu_counter_sum(&s.c), s.limit);
    /* at the limit: one more fails, a decrease and the same increase work */
    assert_false(pcpu_counter_limited_add(&s.c, s.limit, 1));
    pcpu_counter_add(&s.c, -3);
    assert_true(pcpu_counter_limited_add(&s.c, s.limit, 3));
    assert_false(pcpu_counter_limited_add(&s.c, s.limit, 1));

    /* phase 2: from half the limit, contended */
    pcpu_counter_set(&s.c, s.limit / 2);
    atomic_store(&s.stop, true);
    pthread_join(checker, NULL);
    atomic_store(&s.stop, false);
    assert_int_equal(pthread_create(&checker, NULL, lim_checker_main, &s), 0);
    for (unsigned int i = 0; i < NR_WORKERS; i++) {
        w[i] = (struct lim_worker){.s = &s, .id = i};
        assert_int_equal(pthread_create(&t[i], NULL, lim_contend_main, &w[i]), 0);
    }
    usleep(OPS_SCALE(1500) * 1000u);
    atomic_store(&s.stop, true);
    for (unsigned int i = 0; i < NR_WORKERS; i++)
        pthread_join(t[i], NULL);
    pthread_join(checker, NULL);
    int64_t expect = s.limit / 2;
    unsigned long iters = 0;
    for (unsigned int i = 0; i < NR_WORKERS; i++) {
        expect += w[i].net;
        iters += w[i].iters;
    }
    unsigned long moves = cu_mover_stop(&s.mover);
    print_message("limit %lld: %ld exact checks, none above (max seen %lld), %lu calls in the "
                  "contended phase, %lu migrations\n",
                  (long long)s.limit, (long)atomic_load(&s.checks), (long long)s.max_seen, iters,
                  moves);
    assert_int_equal(atomic_load(&s.over), 0);
    int64_t sum = pcpu_counter_sum(&s.c);
    assert_int_equal(sum, expect);
    assert_true(sum <= s.limit);
    /* quiescent: what fits is added, what does not is refused */
    if (sum < s.limit)
        assert_true(pcpu_counter_limited_add(&s.c, s.limit, s.limit - sum));
    assert_false(pcpu_counter_limited_add(&s.c, s.limit, 1));
    assert_int_equal(pcpu_counter_sum(&s.c), s.limit);

    /* the lower limit, the mirror image */
    pcpu_counter_set(&s.c, 10);
    int64_t got = 0;
    for (int i = 0; i < 100; i++)
        if (pcpu_counter_limited_add(&s.c, 0, -1))
            got++;
    assert_int_equal(got, 10);
    assert_int_equal(pcpu_counter_sum(&s.c), 0);
    pcpu_counter_destroy(&s.c);
}

/* ---- init_many ------------------------------------------------------------------------ */

static void test_init_many_1000_counters_in_one_allocation(void **state)
{
    (void)state;
    enum { N = 1000 };
    struct pcpu_counter *c = calloc(N, sizeof(*c));
    assert_non_null(c);
    uint64_t before = tu_stats().nr_cur_alloc;
    assert_int_equal(pcpu_counter_init_many(c, 7, N), 0);
    assert_int_equal(tu_stats().nr_cur_alloc, before + 1);
    for (unsigned int i = 0; i < N; i++)
        for (unsigned int k = 0; k < i % 50; k++)
            pcpu_counter_inc(&c[i]);
    pcpu_counter_add(&c[999], 1 << 20);
    for (unsigned int i = 0; i < N; i++) {
        int64_t want = 7 + i % 50 + (i == 999 ? 1 << 20 : 0);
        assert_int_equal(pcpu_counter_sum(&c[i]), want);
        assert_int_equal(pcpu_counter_compare(&c[i], want), 0);
    }
    pcpu_counter_destroy_many(c, N);
    assert_int_equal(tu_stats().nr_cur_alloc, before);
    free(c);
}

static void destroy_member(void *arg)
{
    (void)arg;
    struct pcpu_counter c[3];
    if (pcpu_counter_init_many(c, 0, 3) == 0)
        pcpu_counter_destroy(&c[1]);
}

static void test_destroying_one_of_an_array_stops(void **state)
{
    (void)state;
    static const char *const need[] = {"pcpu_counter_destroy", "pcpu_counter_destroy_many", NULL};
    assert_true(tu_dies_with(destroy_member, NULL, need, NULL, 0));
}

/* ---- ENOMEM ------------------------------------------------------------------------------ */

/* Each OS-layer call the set-up makes is made to fail in turn: a failure
 * is ENOMEM, leaves the counters as they were (zero-filled) and no
 * allocation behind; the next try works. */
static void test_enomem_leaves_nothing_behind(void **state)
{
    (void)state;
    enum { N = 1000 };
    /* As large as one allocation may be, so that the set-up needs a new
     * chunk from the OS (a 1000-counter array fits in what a fresh
     * allocator holds). */
    size_t big = pcpu_max_alloc_size() / sizeof(int32_t);
    struct pcpu_counter *c = calloc(big, sizeof(*c)), *zero = calloc(big, sizeof(*c));
    assert_non_null(c);
    assert_non_null(zero);
    long failures = 0, injected = 0;
    for (long n = 1; n < 10000; n++) {
        ops_setup_mode();
        uint64_t before = tu_stats().nr_cur_alloc;
        memset(c, 0, big * sizeof(*c));
        long start = pcpu_fault_inject(n);
        errno = 0;
        int r = pcpu_counter_init_many(c, 5, (unsigned int)big);
        long calls = pcpu_fault_inject(0) - start;
        injected++;
        if (r != 0) {
            assert_int_equal(errno, ENOMEM);
            assert_int_equal(tu_stats().nr_cur_alloc, before);
            assert_memory_equal(c, zero, big * sizeof(*c));
            assert_int_equal(pcpu_validate(), 0);
            failures++;
            continue;
        }
        assert_int_equal(pcpu_counter_sum(&c[big / 2]), 5);
        pcpu_counter_destroy_many(c, (unsigned int)big);
        assert_int_equal(tu_stats().nr_cur_alloc, before);
        if (calls < n)
            break; /* the whole set-up made fewer calls than n */
    }
    /* and through the memory limit, with the 1000 of the issue */
    struct pcpu_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    if (ops_want_atomic())
        cfg.nr_cpus = ops_possible_cpus() - 1;
    cfg.max_memory = 1;
    if (ops_init(&cfg) == 0) {
        memset(c, 0, N * sizeof(*c));
        errno = 0;
        int r = pcpu_counter_init_many(c, 5, N);
        if (r != 0) {
            assert_int_equal(errno, ENOMEM);
            assert_memory_equal(c, zero, N * sizeof(*c));
            failures++;
        } else {
            pcpu_counter_destroy_many(c, N);
        }
    }
    print_message("%ld of %ld set-ups failed with ENOMEM, cleanly\n", failures, injected + 1);
    assert_true(failures > 0);
    free(c);
    free(zero);
    ops_setup_mode();
}

int main(void)
{
    if (ops_cannot_run())
        return 0;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basics),
        cmocka_unit_test(test_adds_from_threads_sum_exactly),
        cmocka_unit_test(test_adds_of_the_batch_fold_the_delta),
        cmocka_unit_test(test_limited_add_never_overshoots_and_never_fails_spuriously),
        cmocka_unit_test(test_init_many_1000_counters_in_one_allocation),
        cmocka_unit_test(test_destroying_one_of_an_array_stops),
        cmocka_unit_test(test_enomem_leaves_nothing_behind),
    };
    return cmocka_run_group_tests(tests, ops_group_setup, ops_group_teardown);
}
