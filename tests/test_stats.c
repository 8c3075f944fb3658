/* SPDX-License-Identifier: MIT */
/* test_stats: pcpu_stats_get counters, pcpu_chunk_info, and the printed tables. */
#include "testutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct pcpu_stats stats(void)
{
    struct pcpu_stats st;
    assert_int_equal(pcpu_stats_get(&st), 0);
    return st;
}

static void test_errors(void **state)
{
    (void)state;
    tu_reinit(NULL);
    errno = 0;
    assert_int_equal(pcpu_stats_get(NULL), -1);
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_int_equal(pcpu_chunk_info(0, NULL), -1);
    assert_int_equal(errno, EINVAL);
    struct pcpu_chunk_info ci;
    errno = 0;
    assert_int_equal(pcpu_chunk_info(100000, &ci), -1);
    assert_int_equal(errno, ENOENT);
}

static void test_counters(void **state)
{
    (void)state;
    struct pcpu_config cfg = {.nr_cpus = 4};
    tu_reinit(&cfg);
    struct pcpu_stats st = stats();
    assert_int_equal(st.size, sizeof(st));
    assert_int_equal(st.version, PCPU_STATS_VERSION);
    assert_int_equal(st.nr_units, 4);
    assert_int_equal(st.nr_cur_alloc, 0);
    assert_true(st.nr_chunks >= 1);
    assert_int_equal(st.backend, tu_backend());

    enum { N = 100 };
    void *v[N];
    for (int i = 0; i < N; i++) {
        v[i] = pcpu_alloc(i % 2 ? 8 : 1000, 0);
        assert_non_null(v[i]);
    }
    st = stats();
    assert_int_equal(st.nr_alloc, N);
    assert_int_equal(st.nr_dealloc, 0);
    assert_int_equal(st.nr_cur_alloc, N);
    assert_true(st.nr_max_alloc >= N);
    assert_int_equal(st.min_alloc_size, 8);
    assert_int_equal(st.max_alloc_size, 1000);
    assert_true(st.allocated_bytes >= (N / 2) * (8 + 1000));
    for (int i = 0; i < N; i++)
        pcpu_free(v[i]);
    st = stats();
    assert_int_equal(st.nr_alloc, N);
    assert_int_equal(st.nr_dealloc, N);
    assert_int_equal(st.nr_cur_alloc, 0);
    /* One thread: the peak is exact. */
    assert_int_equal(st.nr_max_alloc, N);
    assert_true(st.populated_pages >= 1);
    assert_true(st.metadata_bytes > 0);
    assert_valid();
}

static void test_chunk_info(void **state)
{
    (void)state;
    tu_reinit(NULL);
    void *big = pcpu_alloc(pcpu_max_alloc_size(), 0); /* a chunk of its own */
    assert_non_null(big);
    struct pcpu_chunk_info ci;
    assert_int_equal(pcpu_chunk_info(0, &ci), 0);
    assert_true(ci.first);
    assert_false(ci.reserved);
    assert_true(ci.start_offset > 0); /* static and reserved areas come first */
    assert_non_null(ci.page_state);
    free(ci.page_state);
    assert_int_equal(pcpu_chunk_info(1, &ci), 0);
    assert_true(ci.reserved);
    free(ci.page_state);
    bool found_full = false;
    for (unsigned int i = 2; pcpu_chunk_info(i, &ci) == 0; i++) {
        if (ci.base == big) {
            found_full = true;
            assert_int_equal(ci.free_bytes, 0);
            assert_int_equal(ci.nr_alloc, 1);
            for (size_t p = 0; p < ci.nr_pages; p++)
                assert_int_equal(ci.page_state[p], 3); /* full */
        }
        for (size_t p = 0; p < ci.nr_pages; p++)
            assert_true(ci.page_state[p] <= 3);
        free(ci.page_state);
    }
    assert_true(found_full);
    pcpu_free(big);
}

static void test_print(void **state)
{
    (void)state;
    tu_reinit(NULL);
    void *p = pcpu_alloc(64, 0);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    pcpu_stats_print(f);
    pcpu_chunk_map_print(f, 32);
    fclose(f);
    const char *need[] = {"unit_size", "static_size", "reserved_size", "dyn_size", "atom_size",
                          "nr_alloc", "nr_dealloc", "nr_cur_alloc", "nr_max_alloc", "nr_chunks",
                          "nr_max_chunks", "min_alloc_size", "max_alloc_size",
                          "empty_pop_pages", "resident_bytes", "First Chunk", "legend"};
    for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++)
        if (!strstr(buf, need[i]))
            fail_msg("printed tables lack \"%s\"", need[i]);
    free(buf);
    pcpu_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_counters),
        cmocka_unit_test(test_chunk_info),
        cmocka_unit_test(test_print),
    };
    return TU_RUN_THEN_EXIT(tests);
}
