/* SPDX-License-Identifier: MIT */
/* test_stats_exact.c - pcpu_stats tells the truth: nr_max_alloc is exact for one thread (cached, uncached and reserved allocations, with and without the thread cache), and index is the index mode the process really uses. */
#include "testutil.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>

/* ---- nr_max_alloc ------------------------------------------------------ */

/*
 * Why: the header promises that nr_max_alloc is exact when one thread
 * allocates.  Objects served from the per-thread cache are counted per
 * thread and folded in later; a peak reached while part of the count sat in
 * the thread's cache was lost (99 reported for 100 live objects).  Stats
 * are only taken at the end of each sequence, as a program would.
 */

/* Fresh statistics with the configuration the environment asks for. */
static void fresh(unsigned int flags)
{
    struct pcpu_config cfg = {.flags = flags};
    tu_reinit(&cfg);
}

static void **alloc_n(int n, size_t size)
{
    void **v = malloc((size_t)n * sizeof(*v));
    assert_non_null(v);
    for (int i = 0; i < n; i++) {
        v[i] = pcpu_alloc(size, 0);
        if (!v[i])
            fail_msg("pcpu_alloc(%zu) #%d: %s", size, i, strerror(errno));
    }
    return v;
}

static void free_n(void **v, int n)
{
    for (int i = 0; i < n; i++)
        pcpu_free(v[i]);
    free(v);
}

/* Sequences whose nr_max_alloc was wrong; a test checks every sequence
 * before it fails, so the output shows all of them. */
static int mismatches;

static void expect_max(const char *what, uint64_t max, uint64_t cur)
{
    struct pcpu_stats st = tu_stats();
    print_message("%-52s nr_max_alloc %llu (expected %llu), nr_cur_alloc %llu\n", what,
                  (unsigned long long)st.nr_max_alloc, (unsigned long long)max,
                  (unsigned long long)st.nr_cur_alloc);
    assert_int_equal(st.nr_cur_alloc, cur);
    if (st.nr_max_alloc != max) {
        print_error("%s: nr_max_alloc %llu, expected exactly %llu\n", what,
                    (unsigned long long)st.nr_max_alloc, (unsigned long long)max);
        mismatches++;
    }
}

static void max_100_small(unsigned int flags)
{
    fresh(flags);
    void **v = alloc_n(100, 8);
    expect_max("100 x 8 B live", 100, 100);
    free_n(v, 100);
    expect_max("... all freed", 100, 0);
}

static void max_large_then_small(unsigned int flags)
{
    fresh(flags);
    void **big = alloc_n(1000, 5000);
    void **small = alloc_n(1000, 8);
    expect_max("1000 x 5000 B + 1000 x 8 B live", 2000, 2000);
    free_n(small, 1000);
    free_n(big, 1000);
    void **again = alloc_n(50, 8);
    expect_max("... all freed, 50 x 8 B live", 2000, 50);
    free_n(again, 50);
}

static void max_small_then_large(unsigned int flags)
{
    fresh(flags);
    void **small = alloc_n(1000, 8);
    void **big = alloc_n(1000, 5000);
    expect_max("1000 x 8 B + 1000 x 5000 B live", 2000, 2000);
    free_n(big, 1000);
    free_n(small, 1000);
}

/* The peak is in the middle: alloc 500, free 300, alloc 100. */
static void max_in_the_middle(unsigned int flags, size_t size)
{
    fresh(flags);
    void **a = alloc_n(500, size);
    for (int i = 0; i < 300; i++)
        pcpu_free(a[i]);
    void **b = alloc_n(100, size);
    char what[80];
    snprintf(what, sizeof(what), "%zu B: alloc 500, free 300, alloc 100", size);
    expect_max(what, 500, 300);
    for (int i = 300; i < 500; i++)
        pcpu_free(a[i]);
    free(a);
    free_n(b, 100);
}

/* A peak of cached objects, then allocations that bypass the cache: the
 * earlier peak must not be added on top of the later count. */
static void max_cached_peak_then_uncached(unsigned int flags)
{
    fresh(flags);
    void **v = alloc_n(100, 8);
    for (int i = 0; i < 50; i++)
        pcpu_free(v[i]);
    void **big = alloc_n(30, 5000);
    expect_max("100 x 8 B, free 50, 30 x 5000 B", 100, 80);
    for (int i = 50; i < 100; i++)
        pcpu_free(v[i]);
    free(v);
    free_n(big, 30);

    fresh(flags);
    big = alloc_n(1000, 5000);
    v = alloc_n(1000, 8);
    for (int i = 0; i < 500; i++)
        pcpu_free(v[i]);
    void **more = alloc_n(100, 5000);
    expect_max("1000 x 5000 B, 1000 x 8 B, free 500 small, 100 x 5000 B", 2000, 1600);
    for (int i = 500; i < 1000; i++)
        pcpu_free(v[i]);
    free(v);
    free_n(big, 1000);
    free_n(more, 100);

    fresh(flags);
    v = alloc_n(2000, 8);
    free_n(v, 2000);
    big = alloc_n(10, 5000);
    expect_max("2000 x 8 B, free all, 10 x 5000 B", 2000, 10);
    free_n(big, 10);
}

/* pcpu_reclaim(true) empties the thread caches: the peak reached before
 * stays counted. */
static void max_across_reclaim(unsigned int flags)
{
    fresh(flags);
    void **v = alloc_n(100, 8);
    for (int i = 0; i < 50; i++)
        pcpu_free(v[i]);
    pcpu_reclaim(true);
    expect_max("100 x 8 B, free 50, pcpu_reclaim(true)", 100, 50);
    for (int i = 50; i < 100; i++)
        pcpu_free(v[i]);
    free(v);
}

/* A random walk over cached, uncached and reserved sizes against a model
 * that counts live objects. */
static void max_random_mix(unsigned int flags)
{
    static const size_t sizes[] = {8, 64, 256, 4096, 5000, 300, 16, 1000};
    enum { SLOTS = 1500, STEPS = 40000 };
    fresh(flags);
    void **slot = calloc(SLOTS, sizeof(*slot));
    assert_non_null(slot);
    uint64_t rnd = 0x5eed1234 + flags;
    uint64_t cur = 0, max = 0;
    for (int step = 0; step < STEPS; step++) {
        unsigned int i = (unsigned int)(tu_rand(&rnd) % SLOTS);
        /* Phases that grow and shrink, so the peak is somewhere inside. */
        bool grow = (step / 5000) % 2 == 0;
        if (slot[i] && (tu_rand(&rnd) % 4 != 0) != grow) {
            pcpu_free(slot[i]);
            slot[i] = NULL;
            cur--;
        } else if (!slot[i]) {
            uint64_t r = tu_rand(&rnd);
            size_t size = sizes[r % (sizeof(sizes) / sizeof(sizes[0]))];
            slot[i] = (r >> 32) % 16 == 0 ? pcpu_alloc_reserved(size, 0) : pcpu_alloc(size, 0);
            assert_non_null(slot[i]);
            if (++cur > max)
                max = cur;
        }
    }
    expect_max("random mix of cached, uncached and reserved", max, cur);
    for (unsigned int i = 0; i < SLOTS; i++)
        pcpu_free(slot[i]);
    free(slot);
    expect_max("... all freed", max, 0);
}

/* Reserved allocations count like the others. */
static void max_with_reserved(unsigned int flags)
{
    fresh(flags);
    void **r = malloc(40 * sizeof(*r));
    assert_non_null(r);
    for (int i = 0; i < 40; i++) {
        r[i] = pcpu_alloc_reserved(i % 2 ? 8 : 64, 0);
        assert_non_null(r[i]);
    }
    void **s = alloc_n(60, 8);
    void **u = alloc_n(30, 300);
    expect_max("40 reserved + 60 x 8 B + 30 x 300 B live", 130, 130);
    free_n(s, 60);
    free_n(u, 30);
    free_n(r, 40);
    expect_max("... all freed", 130, 0);
}

static void all_max_sequences(unsigned int flags)
{
    max_100_small(flags);
    max_large_then_small(flags);
    max_small_then_large(flags);
    max_in_the_middle(flags, 8);
    max_in_the_middle(flags, 256);
    max_in_the_middle(flags, 4096);
    max_in_the_middle(flags, 5000);
    max_with_reserved(flags);
    max_cached_peak_then_uncached(flags);
    max_across_reclaim(flags);
    max_random_mix(flags);
}

static void test_max_alloc_exact_100_small(void **state)
{
    (void)state;
    mismatches = 0;
    max_100_small(0);
    assert_int_equal(mismatches, 0);
}

static void test_max_alloc_exact_large_then_small(void **state)
{
    (void)state;
    mismatches = 0;
    max_large_then_small(0);
    assert_int_equal(mismatches, 0);
}

static void test_max_alloc_exact_sequences(void **state)
{
    (void)state;
    mismatches = 0;
    all_max_sequences(0);
    assert_int_equal(mismatches, 0);
}

/* One thread at a time: a thread allocates, frees some and exits (its
 * cache is folded into the totals) while no other thread allocates. */
static void *alloc_100_free_50(void *arg)
{
    (void)arg;
    void *v[100];
    for (int i = 0; i < 100; i++)
        if (!(v[i] = pcpu_alloc(8, 0)))
            return (void *)1;
    for (int i = 0; i < 50; i++)
        pcpu_free(v[i]);
    for (int i = 50; i < 100; i++)
        pcpu_free(v[i]);
    return NULL;
}

static void test_max_alloc_exact_after_thread_exit(void **state)
{
    (void)state;
    mismatches = 0;
    fresh(0);
    pthread_t t;
    void *ret;
    assert_int_equal(pthread_create(&t, NULL, alloc_100_free_50, NULL), 0);
    assert_int_equal(pthread_join(t, &ret), 0);
    assert_null(ret);
    expect_max("a thread: 100 x 8 B, free all, exit", 100, 0);
    /* Again, with the main thread's own peak below the other's. */
    void **v = alloc_n(30, 8);
    assert_int_equal(pthread_create(&t, NULL, alloc_100_free_50, NULL), 0);
    assert_int_equal(pthread_join(t, &ret), 0);
    assert_null(ret);
    expect_max("30 live here, then a thread: 100, free all, exit", 130, 30);
    free_n(v, 30);
    assert_int_equal(mismatches, 0);
}

static void test_max_alloc_exact_no_cache(void **state)
{
    (void)state;
    mismatches = 0;
    all_max_sequences(PCPU_F_NO_CACHE);
    assert_int_equal(mismatches, 0);
}

/* ---- index ------------------------------------------------------------- */

/*
 * Why: PCPU_INDEX_CID is only a request.  The library can use mm_cid only
 * when the kernel provides it (rseq feature size >= 28) and glibc registered
 * the rseq area (in an area the library registers itself it cannot use
 * mm_cid); otherwise it falls back to CPU ids, and the statistics must say
 * so instead of echoing the request.
 */
#ifndef AT_RSEQ_FEATURE_SIZE
#define AT_RSEQ_FEATURE_SIZE 27
#endif
static bool cid_possible(void)
{
    unsigned long feature = getauxval(AT_RSEQ_FEATURE_SIZE);
    bool glibc_rseq = tu_glibc_rseq();
    return feature >= 28 && glibc_rseq;
}

static const char *index_name(enum pcpu_index x)
{
    return x == PCPU_INDEX_CID ? "cid" : x == PCPU_INDEX_CPU ? "cpu" : "?";
}

static void *this_cpu_in_range(void *arg)
{
    (void)arg;
    int cpu = pcpu_this_cpu();
    return (void *)(intptr_t)(cpu >= 0 && (unsigned int)cpu < pcpu_nr_cpus());
}

static void check_index(enum pcpu_index asked, unsigned int nr_cpus)
{
    pcpu_exit();
    struct pcpu_config cfg = {.backend = tu_backend(), .index = asked, .nr_cpus = nr_cpus};
    if (pcpu_init(&cfg) != 0)
        fail_msg("pcpu_init(index %s): %s", index_name(asked), strerror(errno));
    struct pcpu_stats st = tu_stats();
    enum pcpu_index expect =
        asked == PCPU_INDEX_CID && cid_possible() ? PCPU_INDEX_CID : PCPU_INDEX_CPU;
    print_message("asked %s (%u units): stats say %s, expected %s (rseq feature size %lu, "
                  "glibc rseq %s)\n",
                  index_name(asked), st.nr_units, index_name(st.index), index_name(expect),
                  getauxval(AT_RSEQ_FEATURE_SIZE),
                  tu_glibc_rseq() ? "registered" : "off");
    if (st.index != expect)
        fail_msg("asked for index %s: pcpu_stats.index is %s, but the process uses %s",
                 index_name(asked), index_name(st.index), index_name(expect));
    /* The index it uses is a valid unit, on this thread and on others. */
    int cpu = pcpu_this_cpu();
    assert_true(cpu >= 0);
    assert_true((unsigned int)cpu < pcpu_nr_cpus());
    long *c = PCPU_NEW(long);
    assert_non_null(c);
    pcpu_this_inc(c);
    assert_int_equal(pcpu_sum(c), 1);
    pcpu_free(c);
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, this_cpu_in_range, NULL), 0);
    for (int i = 0; i < 4; i++) {
        void *ok;
        assert_int_equal(pthread_join(t[i], &ok), 0);
        assert_true(ok != NULL);
    }
    pcpu_exit();
}

static void test_index_cid_is_reported_truly(void **state)
{
    (void)state;
    check_index(PCPU_INDEX_CID, 0);
    check_index(PCPU_INDEX_CID, 256);
}

static void test_index_cpu_is_cpu(void **state)
{
    (void)state;
    check_index(PCPU_INDEX_CPU, 0);
    check_index(PCPU_INDEX_CPU, 256);
}

/* Asked through the environment (PERCPU_INDEX, as in the cid runs). */
static void test_index_from_environment(void **state)
{
    (void)state;
    pcpu_exit();
    assert_int_equal(pcpu_init(NULL), 0);
    const char *x = getenv("PERCPU_INDEX");
    enum pcpu_index asked = x && !strcmp(x, "cid") ? PCPU_INDEX_CID : PCPU_INDEX_CPU;
    enum pcpu_index expect =
        asked == PCPU_INDEX_CID && cid_possible() ? PCPU_INDEX_CID : PCPU_INDEX_CPU;
    struct pcpu_stats st = tu_stats();
    print_message("PERCPU_INDEX=%s: stats say %s, expected %s\n", x ? x : "(unset)",
                  index_name(st.index), index_name(expect));
    assert_int_equal(st.index, expect);
    int cpu = pcpu_this_cpu();
    assert_true(cpu >= 0 && (unsigned int)cpu < pcpu_nr_cpus());
    pcpu_exit();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_max_alloc_exact_100_small),
        cmocka_unit_test(test_max_alloc_exact_large_then_small),
        cmocka_unit_test(test_max_alloc_exact_sequences),
        cmocka_unit_test(test_max_alloc_exact_no_cache),
        cmocka_unit_test(test_max_alloc_exact_after_thread_exit),
        cmocka_unit_test(test_index_cid_is_reported_truly),
        cmocka_unit_test(test_index_cpu_is_cpu),
        cmocka_unit_test(test_index_from_environment),
    };
    return TU_RUN_THEN_EXIT(tests);
}
