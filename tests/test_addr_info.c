/* SPDX-License-Identifier: MIT */
/* test_addr_info.c - pcpu_is_percpu_address and pcpu_addr_info: unit addresses, cookies, foreign memory. */
#include "testutil.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int setup(void **state)
{
    (void)state;
    tu_reinit(NULL);
    return 0;
}

static void test_is_percpu_address(void **state)
{
    (void)state;
    static const size_t sizes[] = {4, 64, 1000, 8192, 100000};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        char *c = pcpu_alloc(sizes[i], 0);
        assert_non_null(c);
        pcpu_for_each_cpu(cpu)
        {
            char *p = pcpu_ptr(c, cpu);
            assert_true(pcpu_is_percpu_address(p));
            assert_true(pcpu_is_percpu_address(p + sizes[i] - 1));
            assert_true(pcpu_is_percpu_address(p + sizes[i] / 2));
        }
        /* Cookies point into the guard: not a unit address. */
        assert_false(pcpu_is_percpu_address(c));
        assert_false(pcpu_is_percpu_address(c + sizes[i] - 1));
        pcpu_free(c);
    }
    void *r = pcpu_alloc_reserved(32, 0);
    assert_non_null(r);
    assert_true(pcpu_is_percpu_address(pcpu_ptr(r, 0)));
    assert_false(pcpu_is_percpu_address(r));
    pcpu_free(r);

    int local = 0;
    void *m = malloc(64);
    assert_false(pcpu_is_percpu_address(m));
    assert_false(pcpu_is_percpu_address(&local));
    assert_false(pcpu_is_percpu_address(NULL));
    assert_false(pcpu_is_percpu_address((void *)(uintptr_t)-1));
    assert_false(pcpu_is_percpu_address((void *)test_is_percpu_address));
    free(m);
}

static void test_addr_info(void **state)
{
    (void)state;
    struct pcpu_addr_info ai;
    static const size_t sizes[] = {1, 8, 13, 256, 5000, 70000};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        char *c = pcpu_alloc(sizes[i], 0);
        assert_non_null(c);
        size_t rounded = (sizes[i] + 3) & ~(size_t)3;
        size_t base_off = 0;
        pcpu_for_each_cpu(cpu)
        {
            char *p = pcpu_ptr(c, cpu);
            size_t probes[] = {0, sizes[i] / 2, sizes[i] - 1};
            for (int k = 0; k < 3; k++) {
                memset(&ai, 0xff, sizeof(ai));
                assert_int_equal(pcpu_addr_info(p + probes[k], &ai), 0);
                assert_int_equal(ai.cpu, cpu);
                assert_ptr_equal(ai.cookie, c);
                assert_int_equal(ai.size, rounded);
                if (k == 0 && cpu == 0)
                    base_off = ai.unit_offset;
                assert_int_equal(ai.unit_offset, base_off + probes[k]);
            }
        }
        pcpu_free(c);
        /* Freed: the address is still in a unit, but no allocation holds it. */
        if (sizes[i] > 256) {
            char *p = pcpu_ptr(c, 0);
            if (pcpu_is_percpu_address(p)) {
                assert_int_equal(pcpu_addr_info(p, &ai), 0);
                assert_null(ai.cookie);
                assert_int_equal(ai.size, 0);
            }
        }
    }
    /* A cached (freed) small object reports no cookie either. */
    char *s = pcpu_alloc(8, 0);
    assert_non_null(s);
    pcpu_free(s);
    assert_int_equal(pcpu_addr_info(pcpu_ptr(s, 0), &ai), 0);
    assert_null(ai.cookie);

    /* Foreign addresses. */
    int local;
    void *m = malloc(16);
    void *foreign[] = {m, &local, NULL, (void *)test_addr_info};
    for (size_t i = 0; i < sizeof(foreign) / sizeof(foreign[0]); i++) {
        errno = 0;
        assert_int_equal(pcpu_addr_info(foreign[i], &ai), -1);
        assert_int_equal(errno, ENOENT);
    }
    free(m);
    /* A cookie is not in a unit. */
    char *c = pcpu_alloc(16, 0);
    errno = 0;
    assert_int_equal(pcpu_addr_info(c, &ai), -1);
    assert_int_equal(errno, ENOENT);
    /* NULL info. */
    errno = 0;
    assert_int_equal(pcpu_addr_info(pcpu_ptr(c, 0), NULL), -1);
    assert_int_equal(errno, EINVAL);
    pcpu_free(c);
}

static void test_many_units(void **state)
{
    (void)state;
    struct pcpu_config cfg = {.nr_cpus = 300};
    tu_reinit(&cfg);
    struct pcpu_addr_info ai;
    char *c = pcpu_alloc(40, 8);
    assert_non_null(c);
    pcpu_for_each_cpu(cpu)
    {
        assert_true(pcpu_is_percpu_address(pcpu_ptr(c, cpu)));
        assert_int_equal(pcpu_addr_info(pcpu_ptr(c, cpu) + 39, &ai), 0);
        assert_int_equal(ai.cpu, cpu);
        assert_ptr_equal(ai.cookie, c);
        assert_int_equal(ai.size, 40);
    }
    /* Just past the last unit is outside the chunk. */
    char *end = (char *)pcpu_ptr(c, pcpu_nr_cpus() - 1) + tu_stats().unit_size;
    assert_false(pcpu_is_percpu_address(end));
    pcpu_free(c);
}

static void test_after_exit(void **state)
{
    (void)state;
    char *c = pcpu_alloc(8, 0);
    assert_non_null(c);
    char *p = pcpu_ptr(c, 0);
    pcpu_exit();
    struct pcpu_addr_info ai;
    assert_false(pcpu_is_percpu_address(p));
    errno = 0;
    assert_int_equal(pcpu_addr_info(p, &ai), -1);
    assert_int_equal(errno, ENOENT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_is_percpu_address, setup),
        cmocka_unit_test_setup(test_addr_info, setup),
        cmocka_unit_test_setup(test_many_units, setup),
        cmocka_unit_test_setup(test_after_exit, setup),
    };
    return TU_RUN_THEN_EXIT(tests);
}
