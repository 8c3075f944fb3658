/* SPDX-License-Identifier: MIT */
/* test_misuse.c - death tests: double, interior, foreign and unit-address frees abort with a one-line message naming the pointer. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

PCPU_DEFINE(long, m_static) = 5;

static int setup(void **state)
{
    (void)state;
    tu_reinit(NULL);
    return 0;
}

/* Run fn(arg) in a child: it must die with SIGABRT and write exactly one
 * line that contains every string in need and the pointer bad (%p). */
static void expect_death(void (*fn)(void *), void *arg, const void *bad, const char *need1)
{
    char ptr[64], out[4096];
    snprintf(ptr, sizeof(ptr), "%p", bad);
    const char *need[] = {"percpu", ptr, need1, NULL};
    int died = tu_dies_with(fn, arg, need, out, sizeof(out));
    if (!died)
        fail_msg("expected an abort naming %s (%s), child wrote: \"%s\"", ptr,
                 need1 ? need1 : "", out);
    char *nl = strchr(out, '\n');
    if (!nl || nl[1] != 0)
        fail_msg("message is not one line: \"%s\"", out);
}

static void do_free(void *p)
{
    pcpu_free(p);
}

static void do_double_free(void *p)
{
    pcpu_free(p);
    pcpu_free(p);
}

static void test_double_free(void **state)
{
    (void)state;
    static const size_t sizes[] = {4, 8, 100, 256, 1000, 40000};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        void *c = pcpu_alloc(sizes[i], 0);
        assert_non_null(c);
        expect_death(do_double_free, c, c, "double free");
        /* Already freed in this process too: the second free dies. */
        pcpu_free(c);
        expect_death(do_free, c, c, "double free");
    }
    void *r = pcpu_alloc_reserved(64, 0);
    assert_non_null(r);
    expect_death(do_double_free, r, r, "double free");
    pcpu_free(r);
    /* No cache. */
    struct pcpu_config cfg = {.flags = PCPU_F_NO_CACHE};
    tu_reinit(&cfg);
    void *c = pcpu_alloc(8, 0);
    assert_non_null(c);
    expect_death(do_double_free, c, c, "double free");
    pcpu_free(c);
    assert_valid();
}

static void test_interior(void **state)
{
    (void)state;
    static const size_t sizes[] = {8, 64, 1000, 40000};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        char *c = pcpu_alloc(sizes[i], 0);
        assert_non_null(c);
        expect_death(do_free, c + 4, c + 4, NULL);
        expect_death(do_free, c + 1, c + 1, NULL);
        expect_death(do_free, c + sizes[i] - 4, c + sizes[i] - 4, NULL);
        pcpu_free(c);
    }
    /* Inside a reserved allocation. */
    char *r = pcpu_alloc_reserved(64, 0);
    expect_death(do_free, r + 8, r + 8, NULL);
    pcpu_free(r);
    /* Never allocated space in a chunk. */
    char *c = pcpu_alloc(8, 0);
    expect_death(do_free, c + 40000, c + 40000, NULL);
    pcpu_free(c);
    assert_valid();
}

static void test_foreign(void **state)
{
    (void)state;
    char *m = calloc(1, 32);
    expect_death(do_free, m, m, NULL);
    free(m);
    int local;
    expect_death(do_free, &local, &local, NULL);
    static long global;
    expect_death(do_free, &global, &global, NULL);
    expect_death(do_free, (void *)1, (void *)1, NULL);
    expect_death(do_free, (void *)(uintptr_t)-16, (void *)(uintptr_t)-16, NULL);
}

static void test_unit_address(void **state)
{
    (void)state;
    static const size_t sizes[] = {8, 1000};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        void *c = pcpu_alloc(sizes[i], 0);
        assert_non_null(c);
        pcpu_for_each_cpu(cpu)
        {
            void *p = pcpu_ptr(c, cpu);
            expect_death(do_free, p, p, NULL);
        }
        pcpu_free(c);
    }
    void *r = pcpu_alloc_reserved(8, 0);
    expect_death(do_free, pcpu_ptr(r, 0), pcpu_ptr(r, 0), NULL);
    pcpu_free(r);
    assert_valid();
}

static void test_static_variable(void **state)
{
    (void)state;
    long *c = PCPU_VAR(m_static);
    assert_int_equal(*PCPU_PTR(c, 0), 5);
    expect_death(do_free, c, c, NULL);
    expect_death(do_free, PCPU_PTR(c, 0), PCPU_PTR(c, 0), NULL);
    assert_int_equal(*PCPU_PTR(c, pcpu_nr_cpus() - 1), 5);
    assert_valid();
}

static void test_free_null(void **state)
{
    (void)state;
    struct pcpu_stats st0 = tu_stats();
    pcpu_free(NULL);
    pcpu_free(NULL);
    struct pcpu_stats st1 = tu_stats();
    assert_int_equal(st0.nr_dealloc, st1.nr_dealloc);
    /* Also before the allocator is initialised. */
    pcpu_exit();
    pcpu_free(NULL);
    assert_valid();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_double_free, setup),
        cmocka_unit_test_setup(test_interior, setup),
        cmocka_unit_test_setup(test_foreign, setup),
        cmocka_unit_test_setup(test_unit_address, setup),
        cmocka_unit_test_setup(test_static_variable, setup),
        cmocka_unit_test_setup(test_free_null, setup),
    };
    return TU_RUN_THEN_EXIT(tests);
}
