/* SPDX-License-Identifier: MIT */
/* test_free_paths.c - the ways a free can go: the thread's remembered chunk
 * after that chunk was destroyed and a new one mapped in its place, frees in
 * allocation order that travel as one run, frees by a thread that did not
 * allocate, objects one thread gives back and another takes from the shared
 * store, and what each leaves behind (zeroed memory, exact counts, a valid
 * map). */
#include "testutil.h"

#include <pthread.h>
#include <semaphore.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int setup(void **state)
{
    (void)state;
    tu_reinit(NULL);
    return 0;
}

/* The chunk an object is in, as the address of its unit 0. */
static uintptr_t chunk_of(void *cookie)
{
    struct pcpu_addr_info ai;
    char *p = pcpu_ptr(cookie, 0);
    assert_int_equal(pcpu_addr_info(p, &ai), 0);
    return (uintptr_t)(p - ai.unit_offset);
}

/* Allocate size-byte objects until one lands in a chunk made for them;
 * returns how many, all in v (at most max).  The chunk count is asked
 * (pcpu_stats_get() reads /proc/self/smaps, slow under the sanitizers)
 * only when an object is in another chunk than the one before: a chunk
 * is made by the allocation that lands in it. */
static size_t fill_past_first_chunk(void **v, size_t max, size_t size)
{
    size_t chunks = tu_stats().nr_chunks, n = 0;
    uintptr_t last = 0;
    while (n < max) {
        v[n] = pcpu_alloc(size, 0);
        assert_non_null(v[n]);
        n++;
        uintptr_t c = chunk_of(v[n - 1]);
        if (c != last && tu_stats().nr_chunks > chunks)
            return n;
        last = c;
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

/* A thread that frees what it made, then stays alive (its own cache keeps
 * what fits; the rest goes to the shared store or the map) until told to
 * exit. */
enum { STORE_N = 400 }; /* more than a thread's batch of frees holds (64 KiB per unit) */
static void *store_v[STORE_N];
static sem_t store_freed, store_done;

static void *give_back_and_wait(void *arg)
{
    size_t size = *(const size_t *)arg;
    for (size_t i = 0; i < STORE_N; i++) {
        store_v[i] = pcpu_alloc(size, 0);
        if (!store_v[i])
            abort();
        tu_fill_units(store_v[i], size, 0x5a);
    }
    for (size_t i = 0; i < STORE_N; i++)
        pcpu_free(store_v[i]);
    sem_post(&store_freed);
    sem_wait(&store_done);
    return NULL;
}

/* Objects of the classes above 256 bytes that one thread gave back go to
 * the shared store, and another thread's refills take them from there:
 * zero in every unit although the first thread wrote them, counted as
 * cached, valid, and all back in the map after pcpu_reclaim(true). */
static void test_store_between_threads(void **state)
{
    (void)state;
    static const size_t sizes[] = {300, 1000, 4096};
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        size_t size = sizes[s];
        assert_int_equal(sem_init(&store_freed, 0, 0), 0);
        assert_int_equal(sem_init(&store_done, 0, 0), 0);
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, give_back_and_wait, &size), 0);
        sem_wait(&store_freed);
        struct pcpu_stats st = tu_stats();
        assert_int_equal(st.nr_cur_alloc, 0);
        assert_true(st.cached_objects > 0);
        assert_valid();
        /* (With sanitizers or valgrind, frees skip the batch and the
         * store: then the map hands the space out again.) */
        static void *mine[STORE_N];
        for (size_t i = 0; i < STORE_N; i++) {
            mine[i] = pcpu_alloc(size, 0);
            assert_non_null(mine[i]);
            tu_assert_zero_units(mine[i], size);
        }
        assert_valid();
        for (size_t i = 0; i < STORE_N; i++)
            pcpu_free(mine[i]);
        sem_post(&store_done);
        assert_int_equal(pthread_join(t, NULL), 0);
        (void)pcpu_reclaim(true);
        st = tu_stats();
        assert_int_equal(st.nr_cur_alloc, 0);
        assert_int_equal(st.cached_objects, 0);
        assert_int_equal(st.nr_chunks, 1);
        assert_valid();
        sem_destroy(&store_freed);
        sem_destroy(&store_done);
    }
}

/* The live mark says an object's size when a byte can (up to 127
 * granules, and multiples of 16 granules up to 2032), and a free trusts
 * it.  Sizes on every edge of that, each alignment's path (the classes,
 * the over-aligned classes, the lock), freed by the fast and the general
 * paths: the map stays valid, nothing is lost, every object comes back
 * zero, and a second free of each is caught. */
static const size_t edge_granules[] = {1,   2,   63,  64,  65,  80,   127,  128,  129,
                                       143, 144, 255, 256, 272, 1008, 1024, 1025, 1040,
                                       2031, 2032, 2033, 2048, 4096};
static const size_t edge_aligns[] = {0, 4, 64, 128, 256, 4096};

static void free_twice(void *arg)
{
    pcpu_free(arg);
    pcpu_free(arg);
}

static void test_sizes_on_mark_edges(void **state)
{
    (void)state;
    enum { PER = 40 };
    static void *v[PER];
    for (size_t g = 0; g < sizeof(edge_granules) / sizeof(edge_granules[0]); g++) {
        for (size_t a = 0; a < sizeof(edge_aligns) / sizeof(edge_aligns[0]); a++) {
            size_t size = edge_granules[g] * 4, align = edge_aligns[a];
            for (size_t i = 0; i < PER; i++) {
                v[i] = pcpu_alloc(size - (i % 3 == 2 && size > 4 ? 1 : 0), align);
                assert_non_null(v[i]);
                if (align)
                    assert_int_equal((uintptr_t)pcpu_ptr(v[i], 0) % align, 0);
                tu_assert_zero_units(v[i], size - (i % 3 == 2 && size > 4 ? 1 : 0));
                tu_fill_units(v[i], size - (i % 3 == 2 && size > 4 ? 1 : 0), 0x5a);
            }
            assert_valid();
            /* Every other one freed by the general path's order: the
             * last ones first. */
            for (size_t i = 0; i < PER; i += 2)
                pcpu_free(v[i]);
            for (size_t i = PER; i-- > 1;)
                if (i % 2)
                    pcpu_free(v[i]);
            assert_valid();
            assert_int_equal(tu_stats().nr_cur_alloc, 0);
        }
    }
    static const char *const need[] = {"percpu: double free of", NULL};
    for (size_t g = 0; g < sizeof(edge_granules) / sizeof(edge_granules[0]); g += 3) {
        void *p = pcpu_alloc(edge_granules[g] * 4, 0);
        assert_non_null(p);
        char out[512];
        if (!tu_dies_with(free_twice, p, need, out, sizeof(out)))
            fail_msg("double free of %zu bytes not caught: \"%s\"", edge_granules[g] * 4, out);
        pcpu_free(p);
    }
    (void)pcpu_reclaim(true);
    assert_valid();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_hint_after_chunk_reuse, setup),
        cmocka_unit_test_setup(test_in_order_runs, setup),
        cmocka_unit_test_setup(test_runs_freed_by_other_thread, setup),
        cmocka_unit_test_setup(test_store_between_threads, setup),
        cmocka_unit_test_setup(test_sizes_on_mark_edges, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
