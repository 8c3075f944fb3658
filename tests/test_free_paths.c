/* test_free_paths.c - the ways a free can go: the thread's remembered chunk
 * after that chunk was destroyed and a new one mapped in its place, frees in
 * allocation order that travel as one run, frees by a thread that did not
 * allocate, and what each leaves behind (zeroed memory, exact counts, a
 * valid map). */
#include "testutil.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static int setup(void **state)
{
    (void)state;
    tu_reinit(NULL);
    return 0;
}

/* Allocate size-byte objects until one lands in a chunk made for them;
 * returns how many, all in v (at most max). */
static size_t fill_past_first_chunk(void **v, size_t max, size_t size)
{
    size_t chunks = tu_stats().nr_chunks, n = 0;
    while (n < max) {
        v[n] = pcpu_alloc(size, 0);
        assert_non_null(v[n]);
        n++;
        if (tu_stats().nr_chunks > chunks)
            return n;
    }
    fail_msg("no new chunk after %zu objects of %zu bytes", max, size);
    return n;
}

/* A free remembers the chunk it went to; after that chunk is destroyed and
 * another is mapped (likely at the same address), frees must find the new
 * one, not the memory of the old. */
static void test_hint_after_chunk_reuse(void **state)
{
    (void)state;
    enum { MAX = 1 << 20 };
    static void *v[MAX];
    for (int round = 0; round < 3; round++) {
        size_t n = fill_past_first_chunk(v, MAX, 256);
        /* The last one is in the new chunk: free it first (the thread
         * remembers that chunk), then everything. */
        tu_fill_units(v[n - 1], 256, 0x5a);
        pcpu_free(v[n - 1]);
        for (size_t i = 0; i + 1 < n; i++)
            pcpu_free(v[i]);
        (void)pcpu_reclaim(true);
        assert_valid();
        struct pcpu_stats st = tu_stats();
        assert_int_equal(st.nr_cur_alloc, 0);
        assert_int_equal(st.nr_chunks, 1);
    }
    /* And once more with a chunk in place: its objects come back zeroed. */
    size_t n = fill_past_first_chunk(v, MAX, 256);
    for (size_t i = n - 16; i < n; i++)
        tu_fill_units(v[i], 256, 0xa5);
    for (size_t i = n - 16; i < n; i++)
        pcpu_free(v[i]);
    for (size_t i = n - 16; i < n; i++) {
        v[i] = pcpu_alloc(256, 0);
        assert_non_null(v[i]);
        tu_assert_zero_units(v[i], 256);
    }
    for (size_t i = 0; i < n; i++)
        pcpu_free(v[i]);
    assert_valid();
}

/* Frees in the order of allocation travel as runs; every object of a run
 * must be zero when handed out again, counted once, and given back whole. */
static void test_in_order_runs(void **state)
{
    (void)state;
    static const size_t sizes[] = {4, 8, 12, 16, 24, 64, 256};
    enum { N = 20000 };
    static void *v[N];
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        size_t size = sizes[s];
        struct pcpu_stats st0 = tu_stats();
        for (size_t i = 0; i < N; i++) {
            v[i] = pcpu_alloc(size, 0);
            assert_non_null(v[i]);
            tu_fill_units(v[i], size, (unsigned char)(i | 1));
        }
        for (size_t i = 0; i < N; i++)
            pcpu_free(v[i]);
        struct pcpu_stats st1 = tu_stats();
        assert_int_equal(st1.nr_cur_alloc, st0.nr_cur_alloc);
        assert_true(st1.cached_objects <= st0.cached_objects + N);
        assert_valid();
        /* Everything comes back zeroed, in whatever order. */
        for (size_t i = 0; i < N; i++) {
            v[i] = pcpu_alloc(size, 0);
            assert_non_null(v[i]);
            if (i % 97 == 0 || i + 1 == N)
                tu_assert_zero_units(v[i], size);
        }
        for (size_t i = N; i-- > 0;)
            pcpu_free(v[i]);
        assert_valid();
    }
    (void)pcpu_reclaim(true);
    struct pcpu_stats st = tu_stats();
    assert_int_equal(st.nr_cur_alloc, 0);
    assert_int_equal(st.cached_objects, 0);
    assert_valid();
}

struct batch {
    void **v;
    size_t n;
};

static void *free_all(void *arg)
{
    struct batch *b = arg;
    for (size_t i = 0; i < b->n; i++)
        pcpu_free(b->v[i]);
    return NULL;
}

/* Objects made by one thread and freed in order by another, which then
 * exits: its runs go back to the map at its exit. */
static void test_runs_freed_by_other_thread(void **state)
{
    (void)state;
    enum { N = 50000 };
    static void *v[N];
    for (size_t i = 0; i < N; i++) {
        v[i] = pcpu_alloc(8, 0);
        assert_non_null(v[i]);
        tu_fill_units(v[i], 8, 0xee);
    }
    struct batch b = {v, N};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, free_all, &b), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    struct pcpu_stats st = tu_stats();
    assert_int_equal(st.nr_cur_alloc, 0);
    assert_valid();
    for (size_t i = 0; i < N; i++) {
        v[i] = pcpu_alloc(8, 0);
        assert_non_null(v[i]);
        if (i % 101 == 0)
            tu_assert_zero_units(v[i], 8);
    }
    for (size_t i = 0; i < N; i++)
        pcpu_free(v[i]);
    assert_valid();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_hint_after_chunk_reuse, setup),
        cmocka_unit_test_setup(test_in_order_runs, setup),
        cmocka_unit_test_setup(test_runs_freed_by_other_thread, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
