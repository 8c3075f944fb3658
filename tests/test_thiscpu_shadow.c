/* SPDX-License-Identifier: MIT */
/*
 * test_thiscpu_shadow.c - every this-CPU operation against a shadow.
 *
 * In the spirit of the kernel's percpu self-test: each operation is applied
 * both to a per-CPU object and to a plain variable of the same type with
 * ordinary C arithmetic, and the two must agree after every step, for every
 * supported width and signedness, across wrap-around and with values that
 * must (or must not) be sign-extended.  The thread is pinned to one CPU so
 * that its unit does not change in the middle; where the unit can change
 * anyway (mm_cid compaction in CID mode) a sequence is simply run again.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "percpu.h"

static void zero_units(void *c, size_t size)
{
    pcpu_for_each_cpu(cpu) memset(pcpu_ptr(c, cpu), 0, size);
}

/* Pin the calling thread to the CPU it is on; returns false if it cannot
 * be pinned (the test then relies on re-running sequences). */
static bool pin_here(void)
{
    int cpu = sched_getcpu();
    cpu_set_t set;
    if (cpu < 0)
        return false;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(0, sizeof(set), &set) == 0;
}

static void unpin(void)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int i = 0; i < CPU_SETSIZE; i++)
        CPU_SET(i, &set);
    (void)sched_setaffinity(0, sizeof(set), &set);
}

#define FAIL_IF(cond)                                                              \
    do {                                                                           \
        if (cond) {                                                                \
            snprintf(why, why_len, "line %d: %s", __LINE__, #cond);                \
            return false;                                                          \
        }                                                                          \
    } while (0)

/* The current unit and the sum both equal the shadow: every update of the
 * sequence went to one unit and all other units are still zero. */
#define AGREE(c, s) FAIL_IF(pcpu_this_read(c) != (s) || pcpu_sum(c) != (s))

/*
 * One sequence for type T (U: its unsigned twin).  SHADOW_ADD applies
 * "s += v" the way C does for an object of type T, without signed
 * overflow: v is converted to T, then added modulo 2^width.
 */
#define DEFINE_SHADOW(name, T, U, TMIN, TMAX)                                      \
    static bool seq_##name(T *c, char *why, size_t why_len)                        \
    {                                                                              \
        T s = 0, r;                                                                \
        const int i_minus_one = -1;                                                \
        const unsigned int ui_minus_one = UINT_MAX;                                \
        const long l_minus_one = -1L;                                              \
        _Static_assert(sizeof(T) == 4 || sizeof(T) == 8, "width");                 \
        _Static_assert(sizeof(__typeof__(pcpu_this_read(c))) == sizeof(T), "ret"); \
        _Static_assert(sizeof(__typeof__(pcpu_sum(c))) == sizeof(T), "sum");       \
        zero_units(c, sizeof(T));                                                  \
        AGREE(c, s);                                                               \
        /* add, sign extension of int -1, no sign extension of UINT_MAX */        \
        pcpu_this_add(c, i_minus_one);                                             \
        SHADOW_ADD(T, U, s, i_minus_one);                                          \
        AGREE(c, s);                                                               \
        pcpu_this_add(c, ui_minus_one);                                            \
        SHADOW_ADD(T, U, s, ui_minus_one);                                         \
        AGREE(c, s);                                                               \
        pcpu_this_add(c, l_minus_one);                                             \
        SHADOW_ADD(T, U, s, l_minus_one);                                          \
        AGREE(c, s);                                                               \
        pcpu_this_add(c, 3);                                                       \
        SHADOW_ADD(T, U, s, 3);                                                    \
        AGREE(c, s);                                                               \
        /* sub of the same values */                                               \
        pcpu_this_sub(c, i_minus_one);                                             \
        SHADOW_ADD(T, U, s, (U)0 - (U)(T)i_minus_one);                             \
        AGREE(c, s);                                                               \
        pcpu_this_sub(c, ui_minus_one);                                            \
        SHADOW_ADD(T, U, s, (U)0 - (U)(T)ui_minus_one);                            \
        AGREE(c, s);                                                               \
        pcpu_this_sub(c, 5);                                                       \
        SHADOW_ADD(T, U, s, (U)0 - (U)5);                                          \
        AGREE(c, s);                                                               \
        /* inc and dec */                                                          \
        pcpu_this_inc(c);                                                          \
        SHADOW_ADD(T, U, s, 1);                                                    \
        AGREE(c, s);                                                               \
        pcpu_this_dec(c);                                                          \
        pcpu_this_dec(c);                                                          \
        SHADOW_ADD(T, U, s, (U)0 - (U)2);                                          \
        AGREE(c, s);                                                               \
        /* write, and wrap-around at both ends */                                  \
        pcpu_this_write(c, TMAX);                                                  \
        s = TMAX;                                                                  \
        AGREE(c, s);                                                               \
        pcpu_this_inc(c);                                                          \
        SHADOW_ADD(T, U, s, 1);                                                    \
        FAIL_IF(s != TMIN);                                                        \
        AGREE(c, s);                                                               \
        pcpu_this_dec(c);                                                          \
        SHADOW_ADD(T, U, s, (U)0 - (U)1);                                          \
        FAIL_IF(s != TMAX);                                                        \
        AGREE(c, s);                                                               \
        pcpu_this_add(c, TMAX);                                                    \
        SHADOW_ADD(T, U, s, TMAX);                                                 \
        AGREE(c, s);                                                               \
        pcpu_this_write(c, TMIN);                                                  \
        s = TMIN;                                                                  \
        pcpu_this_sub(c, 1);                                                       \
        SHADOW_ADD(T, U, s, (U)0 - (U)1);                                          \
        FAIL_IF(s != TMAX);                                                        \
        AGREE(c, s);                                                               \
        /* cmpxchg: returns what it saw, stores only on a match */                 \
        pcpu_this_write(c, 5);                                                     \
        s = 5;                                                                     \
        r = pcpu_this_cmpxchg(c, 5, 7);                                            \
        FAIL_IF(r != 5);                                                           \
        s = 7;                                                                     \
        AGREE(c, s);                                                               \
        r = pcpu_this_cmpxchg(c, 5, 9);                                            \
        FAIL_IF(r != 7);                                                           \
        AGREE(c, s);                                                               \
        r = pcpu_this_cmpxchg(c, 7, i_minus_one);                                  \
        FAIL_IF(r != 7);                                                           \
        s = (T)i_minus_one;                                                        \
        AGREE(c, s);                                                               \
        r = pcpu_this_cmpxchg(c, i_minus_one, TMIN);                               \
        FAIL_IF(r != (T)i_minus_one);                                              \
        s = TMIN;                                                                  \
        AGREE(c, s);                                                               \
        /* the upper half must take part in the comparison */                      \
        r = pcpu_this_cmpxchg(c, (T)((U)TMIN + ((U)1 << (sizeof(T) * 4))), 0);     \
        FAIL_IF(r != TMIN);                                                        \
        AGREE(c, s);                                                               \
        /* add_return: the new value of this unit */                               \
        pcpu_this_write(c, 0);                                                     \
        s = 0;                                                                     \
        r = pcpu_this_add_return(c, 10);                                           \
        SHADOW_ADD(T, U, s, 10);                                                   \
        FAIL_IF(r != s);                                                           \
        AGREE(c, s);                                                               \
        r = pcpu_this_add_return(c, i_minus_one);                                  \
        SHADOW_ADD(T, U, s, i_minus_one);                                          \
        FAIL_IF(r != s);                                                           \
        r = pcpu_this_add_return(c, -20);                                          \
        SHADOW_ADD(T, U, s, -20);                                                  \
        FAIL_IF(r != s);                                                           \
        AGREE(c, s);                                                               \
        r = pcpu_this_add_return(c, ui_minus_one);                                 \
        SHADOW_ADD(T, U, s, ui_minus_one);                                         \
        FAIL_IF(r != s);                                                           \
        AGREE(c, s);                                                               \
        pcpu_this_write(c, TMAX);                                                  \
        s = TMAX;                                                                  \
        r = pcpu_this_add_return(c, 2);                                            \
        SHADOW_ADD(T, U, s, 2);                                                    \
        FAIL_IF(r != s || r != (T)((U)TMIN + 1));                                  \
        AGREE(c, s);                                                               \
        /* the unit really is pcpu_this_ptr()'s and pcpu_this_cpu()'s */          \
        FAIL_IF(*PCPU_THIS_PTR(c) != s);                                           \
        FAIL_IF(*PCPU_PTR(c, (unsigned int)pcpu_this_cpu()) != s);                 \
        FAIL_IF(PCPU_THIS_PTR(c) != PCPU_PTR(c, (unsigned int)pcpu_this_cpu()));   \
        return true;                                                               \
    }                                                                              \
                                                                                   \
    static void test_shadow_##name(void **state)                                   \
    {                                                                              \
        (void)state;                                                               \
        T *c = PCPU_NEW(T);                                                        \
        char why[160] = "";                                                        \
        int tries = 0;                                                             \
        assert_non_null(c);                                                        \
        for (;;) {                                                                 \
            int before = pcpu_this_cpu();                                          \
            bool ok = seq_##name(c, why, sizeof(why));                             \
            if (ok)                                                                \
                break;                                                             \
            /* a moved unit explains a mismatch; anything else is a bug */         \
            if (pcpu_this_cpu() == before || ++tries > 50)                         \
                fail_msg("%s: %s (unit %d)", #name, why, before);                  \
        }                                                                          \
        check_sum_##name(c);                                                       \
        pcpu_free(c);                                                              \
    }

#define SHADOW_ADD(T, U, s, v) ((s) = (T)((U)(s) + (U)(T)(v)))

/* pcpu_sum over values written into every unit with pcpu_ptr, including a
 * sum that wraps around. */
#define DEFINE_SUM(name, T, U, TMAX)                                               \
    static void check_sum_##name(T *c)                                             \
    {                                                                              \
        U want = 0;                                                                \
        pcpu_for_each_cpu(cpu) {                                                   \
            T v = (T)(cpu * 3u + 1u);                                              \
            *PCPU_PTR(c, cpu) = v;                                                 \
            want += (U)v;                                                          \
        }                                                                          \
        assert_true(pcpu_sum(c) == (T)want);                                       \
        want = 0;                                                                  \
        pcpu_for_each_cpu(cpu) {                                                   \
            T v = (cpu & 1) ? (T)(TMAX - (T)cpu) : (T)((U)0 - (U)cpu - 1u);        \
            *PCPU_PTR(c, cpu) = v;                                                 \
            want += (U)v;                                                          \
        }                                                                          \
        assert_true(pcpu_sum(c) == (T)want);                                       \
        /* and the sum counts every unit's this-CPU updates */                     \
        zero_units(c, sizeof(T));                                                  \
        for (int i = 0; i < 1000; i++)                                             \
            pcpu_this_add(c, 2);                                                   \
        assert_true(pcpu_sum(c) == (T)2000);                                       \
    }

#define DEFINE_TYPE(name, T, U, TMIN, TMAX)                                        \
    DEFINE_SUM(name, T, U, TMAX)                                                   \
    DEFINE_SHADOW(name, T, U, TMIN, TMAX)

DEFINE_TYPE(int, int, unsigned int, INT_MIN, INT_MAX)
DEFINE_TYPE(uint, unsigned int, unsigned int, 0u, UINT_MAX)
DEFINE_TYPE(long, long, unsigned long, LONG_MIN, LONG_MAX)
DEFINE_TYPE(ulong, unsigned long, unsigned long, 0ul, ULONG_MAX)
DEFINE_TYPE(llong, long long, unsigned long long, LLONG_MIN, LLONG_MAX)
DEFINE_TYPE(ullong, unsigned long long, unsigned long long, 0ull, ULLONG_MAX)
DEFINE_TYPE(i32, int32_t, uint32_t, INT32_MIN, INT32_MAX)
DEFINE_TYPE(u32, uint32_t, uint32_t, 0u, UINT32_MAX)
DEFINE_TYPE(i64, int64_t, uint64_t, INT64_MIN, INT64_MAX)
DEFINE_TYPE(u64, uint64_t, uint64_t, 0u, UINT64_MAX)

/* Cookies of struct fields and array elements are cookies too. */
struct mixed {
    int a;
    unsigned long b;
    uint32_t arr[4];
};

static void test_fields(void **state)
{
    (void)state;
    struct mixed *m = PCPU_NEW(struct mixed);
    assert_non_null(m);
    for (int i = 0; i < 100; i++) {
        pcpu_this_inc(&m->a);
        pcpu_this_add(&m->b, 1000000000000ul);
        pcpu_this_add(&m->arr[2], 7u);
        pcpu_this_add(m->arr + 3, 1u);
    }
    assert_int_equal(pcpu_sum(&m->a), 100);
    assert_true(pcpu_sum(&m->b) == 100000000000000ul);
    assert_int_equal(pcpu_sum(&m->arr[2]), 700);
    assert_int_equal(pcpu_sum(&m->arr[3]), 100);
    assert_int_equal(pcpu_sum(&m->arr[1]), 0);
    assert_int_equal(pcpu_sum(&m->arr[0]), 0);
    pcpu_free(m);
}

/* The index a thread reports is a valid unit, and errno survives the slow
 * paths. */
static void test_this_cpu(void **state)
{
    (void)state;
    int *c = PCPU_NEW(int);
    assert_non_null(c);
    int cpu = pcpu_this_cpu();
    assert_true(cpu >= 0 && (unsigned int)cpu < pcpu_nr_cpus());
    errno = 1234;
    pcpu_this_inc(c);
    (void)pcpu_this_ptr(c);
    (void)pcpu_this_cpu();
    assert_int_equal(errno, 1234);
    pcpu_free(c);
}

static int group_setup(void **state)
{
    (void)state;
    (void)pin_here();
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    unpin();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shadow_int),   cmocka_unit_test(test_shadow_uint),
        cmocka_unit_test(test_shadow_long),  cmocka_unit_test(test_shadow_ulong),
        cmocka_unit_test(test_shadow_llong), cmocka_unit_test(test_shadow_ullong),
        cmocka_unit_test(test_shadow_i32),   cmocka_unit_test(test_shadow_u32),
        cmocka_unit_test(test_shadow_i64),   cmocka_unit_test(test_shadow_u64),
        cmocka_unit_test(test_fields),       cmocka_unit_test(test_this_cpu),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
