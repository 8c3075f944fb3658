/* SPDX-License-Identifier: MIT */
/* test_initexit.c - many pcpu_init/pcpu_exit cycles across backends and unit counts; allocations work and stats start from zero each time. */
#include "testutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void one_cycle(enum pcpu_backend backend, unsigned int units, unsigned int flags)
{
    struct pcpu_config cfg = {.backend = backend, .nr_cpus = units, .flags = flags};
    if (units > 256)
        cfg.unit_size = 64 * 1024;
    pcpu_exit();
    int r = pcpu_init(&cfg);
    if (r != 0)
        fail_msg("pcpu_init(%s, %u units): %s", backend == PCPU_BACKEND_KM ? "km" : "vm", units,
                 strerror(errno));
    struct pcpu_stats st = tu_stats();
    assert_int_equal(st.nr_units, units);
    assert_int_equal(st.backend, backend);
    assert_int_equal(st.nr_alloc, 0);
    assert_int_equal(st.nr_dealloc, 0);
    assert_int_equal(st.nr_cur_alloc, 0);
    assert_int_equal(st.nr_max_alloc, 0);
    assert_int_equal(st.nr_chunks, 1);
    assert_int_equal(st.nr_max_chunks, 1);
    assert_int_equal(st.min_alloc_size, 0);
    assert_int_equal(st.max_alloc_size, 0);
    assert_int_equal(st.allocated_bytes, 0);
    assert_int_equal(st.cached_objects, 0);
    assert_int_equal(pcpu_nr_cpus(), units);

    enum { N = 64 };
    void *v[N];
    for (int i = 0; i < N; i++) {
        size_t size = i % 8 == 7 ? 5000 : 8 + (size_t)i * 4;
        v[i] = pcpu_alloc(size, 0);
        assert_non_null(v[i]);
        /* Zero in the first, last and a middle unit; then write them. */
        unsigned int probe[3] = {0, units / 2, units - 1};
        for (int k = 0; k < 3; k++) {
            if (k > 0 && probe[k] == probe[k - 1])
                continue;
            uint32_t *p = pcpu_ptr(v[i], probe[k]);
            assert_int_equal(*p, 0);
            *p = (uint32_t)(i * 3 + k + 1);
        }
    }
    void *res = pcpu_alloc_reserved(100, 0);
    assert_non_null(res);
    memset(pcpu_ptr(res, units - 1), 0x3c, 100);
    for (int i = 0; i < N; i++) {
        unsigned int probe[3] = {0, units / 2, units - 1};
        for (int k = 0; k < 3; k++) {
            if (k > 0 && probe[k] == probe[k - 1])
                continue;
            assert_int_equal(*(uint32_t *)pcpu_ptr(v[i], probe[k]), (uint32_t)(i * 3 + k + 1));
        }
    }
    st = tu_stats();
    assert_int_equal(st.nr_alloc, N + 1);
    assert_int_equal(st.nr_cur_alloc, N + 1);
    assert_valid();
    /* Free half; the rest is dropped by pcpu_exit. */
    for (int i = 0; i < N; i += 2)
        pcpu_free(v[i]);
    assert_valid();
}

static void test_cycles(void **state)
{
    (void)state;
    static const unsigned int units[] = {2, 256, 4096};
    double t0 = tu_now();
    int cycles = 0;
    for (int round = 0; round < 4; round++)
        for (int b = 0; b < 2; b++)
            for (size_t u = 0; u < 3; u++) {
                one_cycle(b ? PCPU_BACKEND_KM : PCPU_BACKEND_VM, units[u],
                          round % 2 ? PCPU_F_NO_CACHE : 0);
                cycles++;
            }
    printf("# %d init/exit cycles in %.2f s\n", cycles, tu_now() - t0);
    pcpu_exit();
}

/* Cycles that start implicitly (first use) and from the environment. */
static void test_implicit_cycles(void **state)
{
    (void)state;
    for (int i = 0; i < 20; i++) {
        pcpu_exit();
        void *p = pcpu_alloc(16, 0);
        assert_non_null(p);
        struct pcpu_stats st = tu_stats();
        assert_int_equal(st.backend, tu_backend());
        assert_int_equal(st.nr_alloc, 1);
        assert_int_equal(st.nr_units, tu_possible_cpus());
        if (i % 2)
            pcpu_free(p);
    }
    /* Exit twice is harmless; so is validate and exit on an idle allocator. */
    pcpu_exit();
    pcpu_exit();
    assert_valid();
    assert_false(pcpu_is_percpu_address(&test_implicit_cycles));
}

/* Memory goes back to the OS on exit: the process does not grow. */
static void test_no_growth(void **state)
{
    (void)state;
#ifdef TU_SLOW_BUILD
    skip(); /* ASan's quarantine keeps freed metadata resident: RSS grows */
#endif
    one_cycle(PCPU_BACKEND_VM, 256, 0);
    pcpu_exit();
    size_t rss0 = tu_rss();
    for (int i = 0; i < 10; i++) {
        one_cycle(i % 2 ? PCPU_BACKEND_KM : PCPU_BACKEND_VM, 256, 0);
        void *big = pcpu_alloc(512 * 1024, 0);
        assert_non_null(big);
        pcpu_for_each_cpu(cpu) memset(pcpu_ptr(big, cpu), 1, 4096);
        pcpu_exit();
    }
    size_t rss1 = tu_rss();
    printf("# RSS before %zu KiB, after 10 cycles %zu KiB\n", rss0 >> 10, rss1 >> 10);
    assert_true(rss1 < rss0 + (2u << 20));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cycles),
        cmocka_unit_test(test_implicit_cycles),
        cmocka_unit_test(test_no_growth),
    };
    return TU_RUN_THEN_EXIT(tests);
}
