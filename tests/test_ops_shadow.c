/* SPDX-License-Identifier: MIT */
/* test_ops_shadow.c - every this-CPU operation at every width (1, 2, 4, 8 bytes, bool) agrees with the same operation on a plain variable, across wrap-around and sign extension; sums, struct fields and array elements, pcpu_this_cpu(). */
#include "ops_util.h"

#include <limits.h>
#include <stdint.h>

/*
 * The kernel's lib/percpu_test.c method: each operation is applied both to
 * a per-CPU object and to a plain variable of the same type with ordinary
 * C, and the two must agree after every step (the current unit's copy and
 * the sum over units, every other unit staying zero), for every supported
 * type.  The thread is pinned; where the unit can change anyway (mm_cid in
 * CID mode) the sequence is run again.
 *
 * Shadow arithmetic: "s += v" for an object of type T converts v to T
 * first and wraps around (done on the unsigned type of T's width, so the
 * shadow itself never overflows a signed type); and, or and xchg are the
 * C operators; the compares are written out.
 *
 * After each type's sequence, pcpu_sum() over values written into every
 * unit (a sum that wraps around included) and over this-CPU updates.
 */

static void zero_units(void *c, size_t size)
{
    pcpu_for_each_cpu(cpu) memset(pcpu_ptr(c, cpu), 0, size);
}

#define FAIL_IF(cond)                                                              \
    do {                                                                           \
        if (cond) {                                                                \
            snprintf(why, why_len, "line %d: %s", __LINE__, #cond);                \
            return false;                                                          \
        }                                                                          \
    } while (0)

/* The current unit and (for integers) the sum equal the shadow. */
#define AGREE(c, s) FAIL_IF(pcpu_this_read(c) != (s) || pcpu_sum(c) != (s))
#define AGREE_B(c, s) FAIL_IF(pcpu_this_read(c) != (s) || *PCPU_THIS_PTR(c) != (s))

#define SHADOW_ADD(T, U, s, v) ((s) = (T)((U)(s) + (U)(T)(v)))

/* The result of an operation has exactly the object's type. */
#define IS_T(T, e) _Generic((e), T: 1, default: 0)

/* The operands, read at run time: constants that do not fit the object's
 * type would (rightly) draw conversion warnings. */
static volatile int v_i_minus_one = -1;
static volatile unsigned int v_ui_minus_one = UINT_MAX;
static volatile long v_l_minus_one = -1L;
static volatile int v_big = 0x12345;                  /* truncated at 1 and 2 bytes */
static volatile long long v_wide = 0x7edcba9876543210ll; /* and at 4 */
static volatile int v_minus_20 = -20;

#define DEFINE_SHADOW(name, T, U, TMIN, TMAX)                                      \
    static bool seq_##name(T *c, char *why, size_t why_len)                        \
    {                                                                              \
        T s = 0, r;                                                                \
        const int i_minus_one = v_i_minus_one;                                     \
        const unsigned int ui_minus_one = v_ui_minus_one;                          \
        const long l_minus_one = v_l_minus_one;                                    \
        const int big = v_big;                                                     \
        const long long wide = v_wide;                                             \
        const int minus_20 = v_minus_20;                                           \
        _Static_assert(IS_T(T, pcpu_this_read(c)), "read type");                   \
        _Static_assert(IS_T(T, pcpu_this_xchg(c, 0)), "xchg type");                \
        _Static_assert(IS_T(T, pcpu_this_cmpxchg(c, 0, 0)), "cmpxchg type");       \
        _Static_assert(IS_T(T, pcpu_this_add_return(c, 0)), "add_return type");    \
        _Static_assert(IS_T(T, pcpu_this_sub_return(c, 0)), "sub_return type");    \
        _Static_assert(IS_T(T, pcpu_this_inc_return(c)), "inc_return type");       \
        _Static_assert(IS_T(T, pcpu_this_dec_return(c)), "dec_return type");       \
        _Static_assert(IS_T(T, pcpu_sum(c)), "sum type");                          \
        _Static_assert(IS_T(bool, pcpu_this_try_cmpxchg(c, &s, 0)), "try type");   \
        zero_units(c, sizeof(T));                                                  \
        AGREE(c, s);                                                               \
        /* add: sign extension of -1, none of UINT_MAX, truncation of big */      \
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
        pcpu_this_add(c, big);                                                     \
        SHADOW_ADD(T, U, s, big);                                                  \
        AGREE(c, s);                                                               \
        pcpu_this_add(c, wide);                                                    \
        SHADOW_ADD(T, U, s, wide);                                                 \
        AGREE(c, s);                                                               \
        pcpu_this_sub(c, big);                                                     \
        SHADOW_ADD(T, U, s, (U)0 - (U)(T)big);                                     \
        AGREE(c, s);                                                               \
        pcpu_this_sub(c, i_minus_one);                                             \
        SHADOW_ADD(T, U, s, (U)0 - (U)(T)i_minus_one);                             \
        AGREE(c, s);                                                               \
        pcpu_this_sub(c, ui_minus_one);                                            \
        SHADOW_ADD(T, U, s, (U)0 - (U)(T)ui_minus_one);                            \
        AGREE(c, s);                                                               \
        pcpu_this_sub(c, 5);                                                       \
        SHADOW_ADD(T, U, s, (U)0 - (U)5);                                          \
        AGREE(c, s);                                                               \
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
        /* and through every returning form */                                    \
        pcpu_this_write(c, TMAX);                                                  \
        s = TMAX;                                                                  \
        r = pcpu_this_inc_return(c);                                               \
        SHADOW_ADD(T, U, s, 1);                                                    \
        FAIL_IF(s != TMIN || r != s);                                              \
        AGREE(c, s);                                                               \
        r = pcpu_this_dec_return(c);                                               \
        SHADOW_ADD(T, U, s, (U)0 - (U)1);                                          \
        FAIL_IF(s != TMAX || r != s);                                              \
        AGREE(c, s);                                                               \
        r = pcpu_this_add_return(c, 2);                                            \
        SHADOW_ADD(T, U, s, 2);                                                    \
        FAIL_IF(r != s || r != (T)((U)TMIN + 1));                                  \
        AGREE(c, s);                                                               \
        r = pcpu_this_sub_return(c, 3);                                            \
        SHADOW_ADD(T, U, s, (U)0 - (U)3);                                          \
        FAIL_IF(r != s || r != (T)((U)TMAX - 1));                                  \
        AGREE(c, s);                                                               \
        r = pcpu_this_sub_return(c, i_minus_one);                                  \
        SHADOW_ADD(T, U, s, 1);                                                    \
        FAIL_IF(r != s || r != TMAX);                                              \
        AGREE(c, s);                                                               \
        r = pcpu_this_add_return(c, ui_minus_one);                                 \
        SHADOW_ADD(T, U, s, ui_minus_one);                                         \
        FAIL_IF(r != s);                                                           \
        AGREE(c, s);                                                               \
        r = pcpu_this_sub_return(c, wide);                                         \
        SHADOW_ADD(T, U, s, (U)0 - (U)(T)wide);                                    \
        FAIL_IF(r != s);                                                           \
        AGREE(c, s);                                                               \
        pcpu_this_write(c, TMIN);                                                  \
        s = TMIN;                                                                  \
        pcpu_this_sub(c, 1);                                                       \
        SHADOW_ADD(T, U, s, (U)0 - (U)1);                                          \
        FAIL_IF(s != TMAX);                                                        \
        AGREE(c, s);                                                               \
        /* write converts like an assignment */                                   \
        pcpu_this_write(c, big);                                                   \
        s = (T)big;                                                                \
        AGREE(c, s);                                                               \
        pcpu_this_write(c, i_minus_one);                                           \
        s = (T)i_minus_one;                                                        \
        AGREE(c, s);                                                               \
        /* xchg: the old value, as T (sign-extended for signed types) */         \
        r = pcpu_this_xchg(c, big);                                                \
        FAIL_IF(r != s || r != (T)i_minus_one);                                    \
        s = (T)big;                                                                \
        AGREE(c, s);                                                               \
        r = pcpu_this_xchg(c, TMIN);                                               \
        FAIL_IF(r != s);                                                           \
        s = TMIN;                                                                  \
        AGREE(c, s);                                                               \
        r = pcpu_this_xchg(c, wide);                                               \
        FAIL_IF(r != TMIN);                                                        \
        s = (T)wide;                                                               \
        AGREE(c, s);                                                               \
        /* and / or with values that are sign-extended or truncated first */     \
        pcpu_this_write(c, TMAX);                                                  \
        s = TMAX;                                                                  \
        pcpu_this_and(c, -2);                                                      \
        s &= (T)-2;                                                                \
        AGREE(c, s);                                                               \
        pcpu_this_or(c, TMIN);                                                     \
        s |= TMIN;                                                                 \
        AGREE(c, s);                                                               \
        pcpu_this_and(c, big);                                                     \
        s &= (T)big;                                                               \
        AGREE(c, s);                                                               \
        pcpu_this_or(c, wide);                                                     \
        s |= (T)wide;                                                              \
        AGREE(c, s);                                                               \
        pcpu_this_and(c, ui_minus_one);                                            \
        s &= (T)ui_minus_one;                                                      \
        AGREE(c, s);                                                               \
        pcpu_this_and(c, 0);                                                       \
        s = 0;                                                                     \
        AGREE(c, s);                                                               \
        pcpu_this_or(c, l_minus_one);                                              \
        s |= (T)l_minus_one;                                                       \
        AGREE(c, s);                                                               \
        /* cmpxchg: returns what it saw, stores only on a match */                \
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
        /* the expected value is converted to T too: -1 matches TMAX of an    \
         * unsigned type */                                                       \
        r = pcpu_this_cmpxchg(c, i_minus_one, TMIN);                               \
        FAIL_IF(r != (T)i_minus_one);                                              \
        s = TMIN;                                                                  \
        AGREE(c, s);                                                               \
        /* the upper half of the width takes part in the comparison */            \
        r = pcpu_this_cmpxchg(c, (T)((U)TMIN + ((U)1 << (sizeof(T) * 4))), 0);     \
        FAIL_IF(r != TMIN);                                                        \
        AGREE(c, s);                                                               \
        /* try_cmpxchg: true and *old untouched on a match; false and *old =   \
         * what it saw otherwise, writing nothing */                              \
        {                                                                          \
            T old = TMIN;                                                          \
            FAIL_IF(!pcpu_this_try_cmpxchg(c, &old, TMAX));                        \
            FAIL_IF(old != TMIN);                                                  \
            s = TMAX;                                                              \
            AGREE(c, s);                                                           \
            old = (T)((U)TMAX - 1);                                                \
            FAIL_IF(pcpu_this_try_cmpxchg(c, &old, 3));                            \
            FAIL_IF(old != TMAX);                                                  \
            AGREE(c, s);                                                           \
            old = (T)((U)TMAX ^ ((U)1 << (sizeof(T) * 8 - 1)));                    \
            FAIL_IF(pcpu_this_try_cmpxchg(c, &old, 3));                            \
            FAIL_IF(old != TMAX);                                                  \
            AGREE(c, s);                                                           \
            /* the kernel's loop: double the value */                             \
            pcpu_this_write(c, 3);                                                 \
            s = 3;                                                                 \
            old = pcpu_this_read(c);                                               \
            while (!pcpu_this_try_cmpxchg(c, &old, (T)((U)old * 2u)))              \
                ;                                                                  \
            s = (T)((U)s * 2u);                                                    \
            AGREE(c, s);                                                           \
        }                                                                          \
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
        r = pcpu_this_add_return(c, minus_20);                                     \
        SHADOW_ADD(T, U, s, minus_20);                                             \
        FAIL_IF(r != s);                                                           \
        AGREE(c, s);                                                               \
        r = pcpu_this_add_return(c, ui_minus_one);                                 \
        SHADOW_ADD(T, U, s, ui_minus_one);                                         \
        FAIL_IF(r != s);                                                           \
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
            if (seq_##name(c, why, sizeof(why)))                                   \
                break;                                                             \
            /* a moved unit explains a mismatch; anything else is a bug */         \
            if ((pcpu_this_cpu() == before && !ops_unit_may_move()) || ++tries > 50) \
                fail_msg("%s: %s (unit %d)", #name, why, before);                  \
        }                                                                          \
        check_sum_##name(c);                                                       \
        pcpu_free(c);                                                              \
    }

/* pcpu_sum over values written into every unit with pcpu_ptr, including a
 * sum that wraps around, and over this-CPU updates. */
#define DEFINE_SUM(name, T, U, TMAX)                                               \
    static void check_sum_##name(T *c)                                             \
    {                                                                              \
        U want = 0;                                                                \
        pcpu_for_each_cpu(cpu) {                                                   \
            T v = (T)(cpu * 3u + 1u);                                              \
            *PCPU_PTR(c, cpu) = v;                                                 \
            want += (U)v;                                                           \
        }                                                                          \
        assert_true(pcpu_sum(c) == (T)want);                                       \
        want = 0;                                                                  \
        pcpu_for_each_cpu(cpu) {                                                   \
            T v = (cpu & 1) ? (T)(TMAX - (T)cpu) : (T)((U)0 - (U)cpu - 1u);        \
            *PCPU_PTR(c, cpu) = v;                                                 \
            want += (U)v;                                                           \
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

DEFINE_TYPE(char, char, unsigned char, CHAR_MIN, CHAR_MAX)
DEFINE_TYPE(schar, signed char, unsigned char, SCHAR_MIN, SCHAR_MAX)
DEFINE_TYPE(uchar, unsigned char, unsigned char, 0, UCHAR_MAX)
DEFINE_TYPE(short, short, unsigned short, SHRT_MIN, SHRT_MAX)
DEFINE_TYPE(ushort, unsigned short, unsigned short, 0, USHRT_MAX)
DEFINE_TYPE(i8, int8_t, uint8_t, INT8_MIN, INT8_MAX)
DEFINE_TYPE(u8, uint8_t, uint8_t, 0, UINT8_MAX)
DEFINE_TYPE(i16, int16_t, uint16_t, INT16_MIN, INT16_MAX)
DEFINE_TYPE(u16, uint16_t, uint16_t, 0, UINT16_MAX)
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

/* bool: the operations that make sense for it, against C's bool. */
static bool seq_bool(bool *c, char *why, size_t why_len)
{
    bool s = false, r;
    const int two = 2;
    _Static_assert(IS_T(bool, pcpu_this_read(c)), "read type");
    _Static_assert(IS_T(bool, pcpu_this_xchg(c, 0)), "xchg type");
    _Static_assert(IS_T(bool, pcpu_this_cmpxchg(c, 0, 0)), "cmpxchg type");
    zero_units(c, sizeof(bool));
    AGREE_B(c, s);
    pcpu_this_write(c, two); /* converted to bool: true, stored as 1 */
    s = two;
    AGREE_B(c, s);
    FAIL_IF(*(unsigned char *)PCPU_THIS_PTR(c) != 1);
    r = pcpu_this_xchg(c, false);
    FAIL_IF(r != true);
    s = false;
    AGREE_B(c, s);
    pcpu_this_or(c, two);
    s |= (bool)two;
    AGREE_B(c, s);
    pcpu_this_and(c, true);
    s &= true;
    AGREE_B(c, s);
    pcpu_this_and(c, 0);
    s &= false;
    AGREE_B(c, s);
    r = pcpu_this_cmpxchg(c, true, true);
    FAIL_IF(r != false);
    AGREE_B(c, s);
    r = pcpu_this_cmpxchg(c, false, true);
    FAIL_IF(r != false);
    s = true;
    AGREE_B(c, s);
    bool old = false;
    FAIL_IF(pcpu_this_try_cmpxchg(c, &old, false));
    FAIL_IF(old != true);
    AGREE_B(c, s);
    FAIL_IF(!pcpu_this_try_cmpxchg(c, &old, false));
    s = false;
    AGREE_B(c, s);
    return true;
}

static void test_shadow_bool(void **state)
{
    (void)state;
    bool *c = PCPU_NEW(bool);
    char why[160] = "";
    assert_non_null(c);
    for (int tries = 0;; tries++) {
        int before = pcpu_this_cpu();
        if (seq_bool(c, why, sizeof(why)))
            break;
        if ((pcpu_this_cpu() == before && !ops_unit_may_move()) || tries > 50)
            fail_msg("bool: %s (unit %d)", why, before);
    }
    pcpu_free(c);
}

/*
 * A 1- or 2-byte operation writes its own bytes only: neighbours packed
 * around it (in every unit) keep their values whatever the operation, also
 * when the operation wraps around or a compare fails.
 */
struct packed {
    uint8_t b0;
    int8_t b1;
    uint8_t b2;
    bool flag;
    uint16_t h0;
    int16_t h1;
    uint32_t w;
};

static void fill(struct packed *p)
{
    pcpu_for_each_cpu(cpu) {
        struct packed *q = PCPU_PTR(p, cpu);
        q->b0 = 0xa5;
        q->b1 = 0x5a;
        q->b2 = 0xc3;
        q->flag = true;
        q->h0 = 0xbeef;
        q->h1 = 0x1234;
        q->w = 0xdeadbeef;
    }
}

static void test_narrow_ops_leave_neighbours_alone(void **state)
{
    (void)state;
    struct packed *p = PCPU_NEW(struct packed);
    assert_non_null(p);
    fill(p);
    for (int i = 0; i < 1000; i++) {
        pcpu_this_add(&p->b1, 77);
        pcpu_this_sub(&p->b1, 77);
        (void)pcpu_this_inc_return(&p->b1);
        (void)pcpu_this_dec_return(&p->b1);
        pcpu_this_or(&p->b1, 0);
        pcpu_this_and(&p->b1, -1);
        int8_t x = pcpu_this_xchg(&p->b1, 0x5a);
        int8_t o = (int8_t)(x + 1);
        (void)pcpu_this_try_cmpxchg(&p->b1, &o, 0); /* may fail: fine */
        pcpu_this_write(&p->b1, 0x5a);
        (void)pcpu_this_cmpxchg(&p->b1, 0x7f, 0);
        pcpu_this_add(&p->h0, 0x1111);
        pcpu_this_sub(&p->h0, 0x1111);
        uint16_t h = pcpu_this_xchg(&p->h0, 0xbeef);
        (void)pcpu_this_cmpxchg(&p->h0, (uint16_t)(h + 1), 0);
        pcpu_this_or(&p->h0, 0);
        pcpu_this_write(&p->h0, 0xbeef);
        (void)pcpu_this_xchg(&p->flag, true);
        pcpu_this_or(&p->flag, false);
    }
    pcpu_for_each_cpu(cpu) {
        struct packed *q = PCPU_PTR(p, cpu);
        assert_int_equal(q->b0, 0xa5);
        assert_int_equal(q->b2, 0xc3);
        assert_true(q->flag);
        assert_int_equal(q->h1, 0x1234);
        assert_int_equal(q->w, 0xdeadbeef);
    }
    pcpu_free(p);
}

/* Sums of narrow types wrap like the type; every unit counts. */
static void test_narrow_sums_wrap(void **state)
{
    (void)state;
    signed char *sc = PCPU_NEW(signed char);
    unsigned short *us = PCPU_NEW(unsigned short);
    assert_non_null(sc);
    assert_non_null(us);
    unsigned char want_c = 0;
    unsigned short want_s = 0;
    pcpu_for_each_cpu(cpu) {
        signed char v = (signed char)(cpu & 1 ? 100 : -77);
        *PCPU_PTR(sc, cpu) = v;
        want_c = (unsigned char)(want_c + (unsigned char)v);
        unsigned short w = (unsigned short)(60000u - cpu);
        *PCPU_PTR(us, cpu) = w;
        want_s = (unsigned short)(want_s + w);
    }
    assert_int_equal(pcpu_sum(sc), (signed char)want_c);
    assert_int_equal(pcpu_sum(us), want_s);
    pcpu_free(sc);
    pcpu_free(us);
}

/* Cookies of struct fields and array elements are cookies too. */
struct fields {
    int a;
    unsigned long b;
    uint32_t arr[4];
};

static void test_fields(void **state)
{
    (void)state;
    struct fields *m = PCPU_NEW(struct fields);
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
    ops_group_setup(state);
    (void)ops_pin_here();
    return 0;
}

static int group_teardown(void **state)
{
    ops_unpin();
    return ops_group_teardown(state);
}

int main(void)
{
    if (ops_cannot_run())
        return 0;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shadow_char),   cmocka_unit_test(test_shadow_schar),
        cmocka_unit_test(test_shadow_uchar),  cmocka_unit_test(test_shadow_short),
        cmocka_unit_test(test_shadow_ushort), cmocka_unit_test(test_shadow_i8),
        cmocka_unit_test(test_shadow_u8),     cmocka_unit_test(test_shadow_i16),
        cmocka_unit_test(test_shadow_u16),    cmocka_unit_test(test_shadow_int),
        cmocka_unit_test(test_shadow_uint),   cmocka_unit_test(test_shadow_long),
        cmocka_unit_test(test_shadow_ulong),  cmocka_unit_test(test_shadow_llong),
        cmocka_unit_test(test_shadow_ullong), cmocka_unit_test(test_shadow_i32),
        cmocka_unit_test(test_shadow_u32),    cmocka_unit_test(test_shadow_i64),
        cmocka_unit_test(test_shadow_u64),    cmocka_unit_test(test_shadow_bool),
        cmocka_unit_test(test_narrow_ops_leave_neighbours_alone),
        cmocka_unit_test(test_narrow_sums_wrap),
        cmocka_unit_test(test_fields),
        cmocka_unit_test(test_this_cpu),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
