/* SPDX-License-Identifier: MIT */
/* test_statics.c - PCPU_DEFINE/PCPU_DECLARE/PCPU_VAR in the program and in a dlopen()ed library (50 load/unload cycles). */
#include "testutil.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct point {
    int x, y;
};

PCPU_DEFINE(int, s_answer) = 42;
PCPU_DEFINE(long, s_zero);
PCPU_DEFINE(struct point, s_point) = {3, -4};
PCPU_DEFINE(uint32_t, s_array[1000]);
PCPU_DEFINE(unsigned long long, s_hits) = 0;
PCPU_DECLARE(int, s_answer); /* as another file would */

static void check_initial(void)
{
    pcpu_for_each_cpu(cpu)
    {
        assert_int_equal(*PCPU_PTR(PCPU_VAR(s_answer), cpu), 42);
        assert_int_equal(*PCPU_PTR(PCPU_VAR(s_zero), cpu), 0);
        struct point *p = PCPU_PTR(PCPU_VAR(s_point), cpu);
        assert_int_equal(p->x, 3);
        assert_int_equal(p->y, -4);
        uint32_t *a = *PCPU_PTR(PCPU_VAR(s_array), cpu);
        for (int i = 0; i < 1000; i++)
            assert_int_equal(a[i], 0);
        assert_int_equal(*PCPU_PTR(PCPU_VAR(s_hits), cpu), 0);
    }
}

static void check_program_statics(void)
{
    check_initial();
    /* Cookies behave like any other. */
    assert_false(pcpu_is_percpu_address(PCPU_VAR(s_answer)));
    assert_true(pcpu_is_percpu_address(PCPU_PTR(PCPU_VAR(s_answer), 0)));
    struct pcpu_stats st = tu_stats();
    assert_true(st.static_size >= sizeof(int) + sizeof(long) + sizeof(struct point) + 4000);
    /* Writes through pcpu_ptr are seen through PCPU_VAR and per unit. */
    pcpu_for_each_cpu(cpu) *PCPU_PTR(PCPU_VAR(s_answer), cpu) = (int)cpu * 10;
    pcpu_for_each_cpu(cpu)
    {
        assert_int_equal(*(int *)pcpu_ptr(PCPU_VAR(s_answer), cpu), (int)cpu * 10);
        (*PCPU_PTR(PCPU_VAR(s_array), cpu))[999] = cpu + 1;
    }
    pcpu_for_each_cpu(cpu) assert_int_equal((*PCPU_PTR(PCPU_VAR(s_array), cpu))[999], cpu + 1);
    assert_int_equal(PCPU_PTR(PCPU_VAR(s_point), 0)->x, 3);
    /* This-CPU operations on a static variable. */
    for (int i = 0; i < 1000; i++)
        pcpu_this_inc(PCPU_VAR(s_hits));
    assert_int_equal(pcpu_sum(PCPU_VAR(s_hits)), 1000);
    /* Static variables are not allocations: the allocator holds none. */
    assert_int_equal(st.nr_cur_alloc, 0);
    assert_valid();
}

static void test_program_default(void **state)
{
    (void)state;
    check_program_statics();
}

static void test_program_256(void **state)
{
    (void)state;
    struct pcpu_config cfg = {.nr_cpus = 256};
    tu_reinit(&cfg);
    /* A new layout starts from the initial values again. */
    check_program_statics();
    tu_reinit(NULL);
    check_program_statics();
}

/* A refused configuration leaves the statics usable with the defaults. */
static void test_failed_init(void **state)
{
    (void)state;
    struct pcpu_config bad = {.unit_size = 4096};
    pcpu_exit();
    tu_stderr_begin();
    int r = pcpu_init(&bad);
    tu_stderr_end(NULL, 0);
    assert_int_equal(r, -1);
    check_program_statics();
}

struct testlib {
    void *h;
    long *(*counter)(void);
    int (*check)(unsigned int);
    void (*scribble)(void);
    void *(*cookie)(void);
};

static void load(struct testlib *t)
{
    t->h = dlopen(PCPU_TESTLIB_PATH, RTLD_NOW | RTLD_LOCAL);
    if (!t->h)
        fail_msg("dlopen: %s", dlerror());
    t->counter = (long *(*)(void))dlsym(t->h, "pcpu_testlib_counter");
    t->check = (int (*)(unsigned int))dlsym(t->h, "pcpu_testlib_check");
    t->scribble = (void (*)(void))dlsym(t->h, "pcpu_testlib_scribble");
    t->cookie = (void *(*)(void))dlsym(t->h, "pcpu_testlib_cookie");
    assert_non_null(t->counter);
    assert_non_null(t->check);
    assert_non_null(t->scribble);
    assert_non_null(t->cookie);
}

static void dlopen_cycles(int rounds)
{
    struct pcpu_stats st0 = tu_stats();
    struct pcpu_chunk_info ci0;
    assert_int_equal(pcpu_chunk_info(1, &ci0), 0); /* the reserved area */
    assert_true(ci0.reserved);
    free(ci0.page_state);
    void *first_cookie = NULL;
    for (int round = 0; round < rounds; round++) {
        struct testlib t;
        load(&t);
        /* Initial values in every unit, right after dlopen. */
        pcpu_for_each_cpu(cpu)
        {
            int r = t.check(cpu);
            if (r)
                fail_msg("round %d: unit %u: variable %d is not at its initial value", round, cpu,
                         r);
        }
        /* The library's variables live in the reserved area. */
        struct pcpu_addr_info ai;
        assert_int_equal(pcpu_addr_info(pcpu_ptr(t.cookie(), 0), &ai), 0);
        assert_true(ai.unit_offset >= st0.static_size &&
                    ai.unit_offset < st0.static_size + st0.reserved_size);
        if (round == 0)
            first_cookie = t.cookie();
        /* The space is given back and taken again: the same place each time. */
        assert_ptr_equal(t.cookie(), first_cookie);
        struct pcpu_stats st1 = tu_stats();
        assert_true(st1.allocated_bytes > st0.allocated_bytes);
        /* Its variables work like the program's. */
        long *c = t.counter();
        pcpu_this_add(c, 8);
        assert_int_equal(pcpu_sum(c), 42 * (long)pcpu_nr_cpus() + 8);
        t.scribble();
        assert_int_equal(t.check(0), 1);
        assert_int_equal(dlclose(t.h), 0);
        /* The reserved space came back. */
        struct pcpu_stats st2 = tu_stats();
        assert_int_equal(st2.allocated_bytes, st0.allocated_bytes);
        struct pcpu_chunk_info ci;
        assert_int_equal(pcpu_chunk_info(1, &ci), 0);
        assert_int_equal(ci.free_bytes, ci0.free_bytes);
        assert_int_equal(ci.nr_alloc, ci0.nr_alloc);
        free(ci.page_state);
        assert_valid();
    }
    /* The program's own variables were not disturbed. */
    assert_int_equal(PCPU_PTR(PCPU_VAR(s_point), pcpu_nr_cpus() - 1)->x, 3);
}

static void test_dlopen(void **state)
{
    (void)state;
    tu_reinit(NULL);
    dlopen_cycles(50);
}

static void test_dlopen_256(void **state)
{
    (void)state;
    struct pcpu_config cfg = {.nr_cpus = 256};
    tu_reinit(&cfg);
    dlopen_cycles(50);
}

/* Loaded while the reserved area is full: the library falls back to
 * dynamic space and still starts with its initial values. */
static void test_dlopen_reserved_full(void **state)
{
    (void)state;
    struct pcpu_config cfg = {.nr_cpus = 4, .reserved_size = 4096};
    tu_reinit(&cfg);
    void *fill = pcpu_alloc_reserved(4096, 0);
    assert_non_null(fill);
    struct pcpu_stats st0 = tu_stats();
    for (int round = 0; round < 5; round++) {
        struct testlib t;
        load(&t);
        pcpu_for_each_cpu(cpu) assert_int_equal(t.check(cpu), 0);
        struct pcpu_addr_info ai;
        assert_int_equal(pcpu_addr_info(pcpu_ptr(t.cookie(), 0), &ai), 0);
        assert_true(ai.unit_offset >= st0.static_size + st0.reserved_size);
        t.scribble();
        assert_int_equal(dlclose(t.h), 0);
        assert_int_equal(tu_stats().allocated_bytes, st0.allocated_bytes);
        assert_valid();
    }
    pcpu_free(fill);
    assert_valid();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_program_default),
        cmocka_unit_test(test_program_256),
        cmocka_unit_test(test_failed_init),
        cmocka_unit_test(test_dlopen),
        cmocka_unit_test(test_dlopen_256),
        cmocka_unit_test(test_dlopen_reserved_full),
    };
    return TU_RUN_THEN_EXIT(tests);
}
