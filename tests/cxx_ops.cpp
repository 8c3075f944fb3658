/* SPDX-License-Identifier: MIT */
// cxx_ops.cpp - the public header from C++17: every this-CPU operation on
// every supported type (1, 2, 4 and 8 bytes, and bool) through the
// overloads that replace _Generic, the per-CPU lists, plus PCPU_PTR,
// PCPU_THIS_PTR, PCPU_NEW and PCPU_DEFINE/PCPU_VAR.  Plain checks (no
// cmocka) so that nothing but the header and the library is involved.
#include "percpu.h"

#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <type_traits>

static int failures;

#define CHECK(cond)                                                               \
    do {                                                                          \
        if (!(cond)) {                                                            \
            std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, \
                         #cond);                                                  \
            failures++;                                                           \
        }                                                                         \
    } while (0)

template <class T> static void zero_units(T *c)
{
    pcpu_for_each_cpu(cpu) *PCPU_PTR(c, cpu) = 0;
}

// Runs the sequence until the thread stays on one unit for all of it.
template <class T> static void exercise()
{
    typedef typename std::make_unsigned<T>::type U;
    T *c = PCPU_NEW(T);
    CHECK(c != nullptr);
    if (!c)
        return;
    static_assert(std::is_same<decltype(pcpu_this_read(c)), T>::value, "read type");
    static_assert(std::is_same<decltype(pcpu_sum(c)), T>::value, "sum type");
    static_assert(std::is_same<decltype(PCPU_THIS_PTR(c)), T *>::value, "ptr type");
    for (int attempt = 0; attempt < 50; attempt++) {
        zero_units(c);
        int before = pcpu_this_cpu();
        bool ok = true;
        pcpu_this_add(c, 5);
        pcpu_this_sub(c, 2);
        pcpu_this_inc(c);
        pcpu_this_dec(c);
        pcpu_this_dec(c);
        ok &= pcpu_this_read(c) == T(2);
        pcpu_this_add(c, -1); // converted to T, as with "x += -1"
        ok &= pcpu_this_read(c) == T(1);
        pcpu_this_write(c, std::numeric_limits<T>::max());
        pcpu_this_inc(c); // wraps
        ok &= pcpu_this_read(c) == std::numeric_limits<T>::min();
        ok &= pcpu_this_cmpxchg(c, std::numeric_limits<T>::min(), T(9)) ==
              std::numeric_limits<T>::min();
        ok &= pcpu_this_cmpxchg(c, T(8), T(1)) == T(9);
        ok &= pcpu_this_add_return(c, 3) == T(12);
        ok &= *PCPU_THIS_PTR(c) == T(12);
        ok &= pcpu_sum(c) == T(12);
        // the operations added in 0.2
        ok &= pcpu_this_sub_return(c, 2) == T(10);
        ok &= pcpu_this_inc_return(c) == T(11);
        ok &= pcpu_this_dec_return(c) == T(10);
        ok &= pcpu_this_xchg(c, T(0x35)) == T(10);
        pcpu_this_and(c, T(0x1c));
        ok &= pcpu_this_read(c) == T(0x14);
        pcpu_this_or(c, T(0x41));
        ok &= pcpu_this_read(c) == T(0x55);
        T o = T(1);
        ok &= !pcpu_this_try_cmpxchg(c, &o, T(2)) && o == T(0x55);
        ok &= pcpu_this_try_cmpxchg(c, &o, T(12)) && o == T(0x55);
        ok &= pcpu_this_read(c) == T(12);
        static_assert(std::is_same<decltype(pcpu_this_xchg(c, 1)), T>::value, "xchg type");
        static_assert(std::is_same<decltype(pcpu_this_try_cmpxchg(c, &o, 1)), bool>::value,
                      "try_cmpxchg type");
        static_assert(std::is_same<decltype(pcpu_this_dec_return(c)), T>::value, "ret type");
        ok &= PCPU_THIS_PTR(c) == PCPU_PTR(c, static_cast<unsigned>(pcpu_this_cpu()));
        if (ok)
            break;
        if (pcpu_this_cpu() == before || attempt == 49) {
            CHECK(ok);
            break;
        }
    }
    // the sum of values written with PCPU_PTR wraps like the type
    U want = 0;
    pcpu_for_each_cpu(cpu)
    {
        T v = static_cast<T>(std::numeric_limits<T>::max() - static_cast<T>(cpu));
        *PCPU_PTR(c, cpu) = v;
        want = static_cast<U>(want + static_cast<U>(v));
    }
    CHECK(pcpu_sum(c) == static_cast<T>(want));
    pcpu_free(c);
}

// bool: the operations that make sense for it
static void booleans()
{
    bool *c = PCPU_NEW(bool);
    CHECK(c != nullptr);
    if (!c)
        return;
    for (int attempt = 0; attempt < 50; attempt++) {
        pcpu_for_each_cpu(cpu) *PCPU_PTR(c, cpu) = false;
        int before = pcpu_this_cpu();
        bool ok = true;
        pcpu_this_write(c, true);
        ok &= pcpu_this_read(c);
        ok &= pcpu_this_xchg(c, false);
        ok &= !pcpu_this_read(c);
        pcpu_this_or(c, true);
        ok &= pcpu_this_read(c);
        pcpu_this_and(c, false);
        ok &= !pcpu_this_read(c);
        ok &= !pcpu_this_cmpxchg(c, false, true);
        bool o = false;
        ok &= !pcpu_this_try_cmpxchg(c, &o, true) && o;
        ok &= pcpu_this_try_cmpxchg(c, &o, false);
        ok &= !pcpu_this_read(c);
        if (ok)
            break;
        if (pcpu_this_cpu() == before || attempt == 49) {
            CHECK(ok);
            break;
        }
    }
    pcpu_free(c);
}

// the per-CPU list from C++
struct item {
    pcpu_list_node node;
    int value;
};

static void lists()
{
    pcpu_list *l = PCPU_NEW(pcpu_list);
    CHECK(l != nullptr);
    if (!l)
        return;
    static item items[16];
    for (int i = 0; i < 16; i++) {
        items[i].value = i;
        pcpu_this_list_push(l, &items[i].node);
    }
    int seen = 0, sum = 0;
    pcpu_list_node *n = pcpu_this_list_pop(l);
    if (n) {
        seen++;
        sum += reinterpret_cast<item *>(n)->value;
    }
    pcpu_for_each_cpu(cpu)
    {
        for (pcpu_list_node *x = pcpu_list_pop_all(l, cpu); x; x = x->next) {
            seen++;
            sum += reinterpret_cast<item *>(x)->value;
        }
    }
    CHECK(seen == 16);
    CHECK(sum == 120);
    CHECK(pcpu_this_list_pop(l) == nullptr);
    pcpu_free(l);
}

// const cookies work for the reading operations
static void const_cookie()
{
    long *c = PCPU_NEW(long);
    CHECK(c != nullptr);
    pcpu_this_add(c, 40);
    const long *cc = c;
    CHECK(pcpu_sum(cc) == 40);
    pcpu_free(c);
}

PCPU_DEFINE(long, cxx_hits) = 7;
PCPU_DEFINE(unsigned int[3], cxx_triple) = {1, 2, 3};
PCPU_DECLARE(long, cxx_hits);

// static per-CPU variables: initial values in every unit, updates, sums
static void statics()
{
    unsigned int n = pcpu_nr_cpus();
    for (unsigned int cpu = 0; cpu < n; cpu++) {
        CHECK(*PCPU_PTR(PCPU_VAR(cxx_hits), cpu) == 7);
        CHECK((*PCPU_PTR(PCPU_VAR(cxx_triple), cpu))[2] == 3);
    }
    pcpu_this_inc(PCPU_VAR(cxx_hits));
    CHECK(pcpu_sum(PCPU_VAR(cxx_hits)) == 7L * n + 1);
}

int main()
{
    statics();
    exercise<char>();
    exercise<signed char>();
    exercise<unsigned char>();
    exercise<short>();
    exercise<unsigned short>();
    exercise<std::int8_t>();
    exercise<std::uint8_t>();
    exercise<std::int16_t>();
    exercise<std::uint16_t>();
    exercise<int>();
    exercise<unsigned int>();
    exercise<long>();
    exercise<unsigned long>();
    exercise<long long>();
    exercise<unsigned long long>();
    exercise<std::int32_t>();
    exercise<std::uint32_t>();
    exercise<std::int64_t>();
    exercise<std::uint64_t>();
    booleans();
    lists();
    const_cookie();
    if (failures) {
        std::fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    std::printf("cxx_ops: all checks passed\n");
    return 0;
}
