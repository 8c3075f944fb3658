/* SPDX-License-Identifier: MIT */
/* test_limits.c - max_memory and injected OS failures: ENOMEM, live data intact, the allocator stays usable. */
#include "testutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { MAX_OBJS = 4096 };

static size_t page_size(void)
{
    return (size_t)sysconf(_SC_PAGESIZE);
}

static void fill(void *c, size_t size, int i)
{
    memset(pcpu_ptr(c, 0), i & 0xff, size);
    memset(pcpu_ptr(c, pcpu_nr_cpus() - 1), ~i & 0xff, size);
}

static void check(void *c, size_t size, int i)
{
    const unsigned char *a = pcpu_ptr(c, 0), *b = pcpu_ptr(c, pcpu_nr_cpus() - 1);
    for (size_t k = 0; k < size; k += 61)
        if (a[k] != (i & 0xff) || b[k] != (~i & 0xff))
            fail_msg("object %d (%p) lost its contents at byte %zu", i, c, k);
}

/* Allocate page-sized objects until ENOMEM; returns how many. */
static int fill_to_limit(void **v, int from)
{
    size_t ps = page_size();
    int n = from;
    for (; n < MAX_OBJS; n++) {
        errno = 0;
        v[n] = pcpu_alloc(ps, ps);
        if (!v[n]) {
            assert_int_equal(errno, ENOMEM);
            break;
        }
        fill(v[n], ps, n);
    }
    assert_true(n < MAX_OBJS);
    return n;
}

static void test_max_memory(void **state)
{
    (void)state;
    size_t ps = page_size();
    size_t limit = (5u << 20) + 40 * 1024; /* not a whole number of chunks */
    struct pcpu_config cfg = {.nr_cpus = 2, .max_memory = limit, .flags = PCPU_F_NO_RECLAIM};
    tu_reinit(&cfg);
    static void *v[MAX_OBJS];
    int n = fill_to_limit(v, 0);
    struct pcpu_stats st = tu_stats();
    size_t per_page = ps * st.nr_units;
    size_t held = st.populated_pages * per_page;
    printf("# limit %zu KiB: %d pages allocated, %zu KiB populated, %u chunks\n", limit >> 10, n,
           held >> 10, st.nr_chunks);
    assert_true(held <= limit);
    /* The limit, not something before it, stopped the allocations: no
     * room is left for the next step (a page, or a whole km chunk). */
    size_t step = st.backend == PCPU_BACKEND_KM ? st.unit_size * st.nr_units : per_page;
    assert_true(held + step > limit);
    assert_true(n > 0);
    /* Smaller objects fail the same way once every page is used. */
    void *extra[64];
    int ne = 0;
    for (; ne < 64; ne++) {
        errno = 0;
        extra[ne] = pcpu_alloc(ps / 2, 0);
        if (!extra[ne]) {
            assert_int_equal(errno, ENOMEM);
            break;
        }
    }
    assert_true(ne < 64);
    assert_valid();
    for (int i = 0; i < n; i++)
        check(v[i], ps, i);
    /* Free every other one: the same number fits again. */
    for (int i = 0; i < n; i += 2)
        pcpu_free(v[i]);
    for (int i = 0; i < n; i += 2) {
        v[i] = pcpu_alloc(ps, ps);
        if (!v[i])
            fail_msg("re-allocation %d failed after frees: %s", i, strerror(errno));
        fill(v[i], ps, i);
    }
    errno = 0;
    void *over = pcpu_alloc(ps, ps);
    assert_null(over);
    assert_int_equal(errno, ENOMEM);
    for (int i = 0; i < n; i++)
        check(v[i], ps, i);
    assert_valid();
    for (int i = 0; i < ne; i++)
        pcpu_free(extra[i]);
    for (int i = 0; i < n; i++)
        pcpu_free(v[i]);
    assert_valid();
    /* Everything given back, the whole budget is usable again. */
    pcpu_reclaim(true);
    int n2 = fill_to_limit(v, 0);
    assert_true(n2 >= n - 1);
    for (int i = 0; i < n2; i++)
        pcpu_free(v[i]);
    assert_valid();
}

static void test_fault_new_chunk(void **state)
{
    (void)state;
    struct pcpu_config cfg = {.flags = PCPU_F_NO_RECLAIM};
    tu_reinit(&cfg);
    size_t max = pcpu_max_alloc_size();
    int failures = 0;
    for (long nth = 1; nth <= 16; nth++) {
        struct pcpu_stats st0 = tu_stats();
        pcpu_fault_inject(nth);
        errno = 0;
        void *p = pcpu_alloc(max, 0); /* always needs a chunk of its own */
        int err = errno;
        pcpu_fault_inject(0);
        if (nth == 1)
            assert_null(p);
        if (!p) {
            failures++;
            assert_int_equal(err, ENOMEM);
            struct pcpu_stats st1 = tu_stats();
            assert_int_equal(st1.nr_chunks, st0.nr_chunks);
            assert_int_equal(st1.nr_cur_alloc, st0.nr_cur_alloc);
            assert_int_equal(st1.metadata_bytes, st0.metadata_bytes);
        }
        assert_valid();
        /* The next one works. */
        void *q = pcpu_alloc(max, 0);
        assert_non_null(q);
        memset(pcpu_ptr(q, 0), 1, max);
        pcpu_free(q);
        if (p)
            pcpu_free(p);
        pcpu_reclaim(true);
        assert_valid();
    }
    printf("# %d of 16 fault positions made the chunk creation fail\n", failures);
    assert_true(failures >= 2);
}

static void test_fault_populate(void **state)
{
    (void)state;
    struct pcpu_config cfg = {.nr_cpus = 4, .flags = PCPU_F_NO_RECLAIM};
    tu_reinit(&cfg);
    size_t big = 64 * 1024; /* more pages than are populated ahead */
    void *first = pcpu_alloc(big, 0);
    assert_non_null(first);
    fill(first, big, 1);
    for (long nth = 1; nth <= 6; nth++) {
        struct pcpu_stats st0 = tu_stats();
        pcpu_fault_inject(nth);
        errno = 0;
        void *p = pcpu_alloc(big, 0);
        int err = errno;
        pcpu_fault_inject(0);
        if (!p) {
            assert_int_equal(err, ENOMEM);
            struct pcpu_stats st1 = tu_stats();
            assert_int_equal(st1.populated_pages, st0.populated_pages);
            assert_int_equal(st1.nr_cur_alloc, st0.nr_cur_alloc);
        }
        assert_valid();
        check(first, big, 1);
        void *q = pcpu_alloc(big, 0);
        assert_non_null(q);
        fill(q, big, 2);
        check(q, big, 2);
        pcpu_free(q);
        if (p)
            pcpu_free(p);
        pcpu_reclaim(true);
        assert_valid();
    }
    pcpu_free(first);
}

/* Faults at random points of random work: every failure is a clean
 * ENOMEM and the invariants hold throughout. */
static void test_fault_random(void **state)
{
    (void)state;
    struct pcpu_config cfg = {.nr_cpus = 8, .unit_size = 64 * 1024, .flags = PCPU_F_NO_RECLAIM};
    tu_reinit(&cfg);
    enum { LIVE = 200 };
    void *v[LIVE] = {0};
    size_t sz[LIVE] = {0};
    uint64_t rng = 2024;
    int failed = 0, done = 0;
    for (int step = 0; step < 3000; step++) {
        uint64_t r = tu_rand(&rng);
        int i = (int)(r % LIVE);
        if (v[i]) {
            check(v[i], sz[i], i);
            pcpu_free(v[i]);
            v[i] = NULL;
            if ((r >> 20) % 8 == 0)
                pcpu_reclaim((r >> 24) & 1);
        } else {
            size_t size = 1 + (r >> 8) % ((r >> 40) % 4 == 0 ? 20000 : 300);
            bool inject = (r >> 32) % 3 == 0;
            if (inject)
                pcpu_fault_inject(1 + (long)((r >> 36) % 4));
            errno = 0;
            v[i] = (r >> 44) % 16 == 0 ? pcpu_alloc_reserved(size, 0) : pcpu_alloc(size, 0);
            int err = errno;
            pcpu_fault_inject(0);
            if (!v[i]) {
                if (!inject || err != ENOMEM)
                    fail_msg("step %d: alloc(%zu) failed: errno %d", step, size, err);
                failed++;
            } else {
                sz[i] = size;
                fill(v[i], size, i);
                done++;
            }
        }
        int problems = pcpu_validate();
        if (problems)
            fail_msg("step %d: %d problems", step, problems);
    }
    printf("# %d allocations, %d failed by injection\n", done, failed);
    /* Populating makes no system call on either backend (memory is
     * mapped with the chunk), and an allocation that hits a fault is
     * retried once after this thread's cache is given back, so most
     * injected faults are absorbed: only chunk creation can fail here, and
     * every failure above was a clean ENOMEM. */
    for (int i = 0; i < LIVE; i++)
        if (v[i]) {
            check(v[i], sz[i], i);
            pcpu_free(v[i]);
        }
    pcpu_reclaim(true);
    assert_valid();
    assert_int_equal(tu_stats().nr_chunks, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_max_memory),
        cmocka_unit_test(test_fault_new_chunk),
        cmocka_unit_test(test_fault_populate),
        cmocka_unit_test(test_fault_random),
    };
    return TU_RUN_THEN_EXIT(tests);
}
