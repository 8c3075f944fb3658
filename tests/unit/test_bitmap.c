/* SPDX-License-Identifier: MIT */
/* test_bitmap.c - every bitmap.h operation agrees with a bit-by-bit reference, at word edges and on random maps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "bitmap.h"
#include "unit_rand.h"

/*
 * The word-at-a-time code has its hard cases where a range starts or ends
 * on, just before or just after a word boundary, and where it is empty;
 * every function is checked on every pair of such positions.  The map sits
 * between two guard words so a write past either end shows, and each map
 * is checked with guards of all zeros and of all ones so a read past a
 * range's end that changes the answer shows too.
 */

#define NW 6                     /* words of the edge-case map (384 bits) */
#define NB (NW * 64)

static const size_t edges[] = {0,   1,   2,   31,  62,  63,  64,  65,  66,  127, 128, 129, 190,
                               191, 192, 193, 255, 256, 257, 319, 320, 321, 382, 383, NB};
#define NR_EDGES (sizeof(edges) / sizeof(edges[0]))

struct tmap {
    uint64_t buf[NW + 2]; /* guard, NW map words, guard */
    unsigned char ref[NB];
    uint64_t guard;
};

static uint64_t *words_of(struct tmap *m)
{
    return m->buf + 1;
}

/* Write ref into the words (and the guards). */
static void sync_words(struct tmap *m)
{
    memset(m->buf, 0, sizeof(m->buf));
    for (size_t i = 0; i < NB; i++)
        if (m->ref[i])
            m->buf[1 + i / 64] |= 1ull << (i % 64);
    m->buf[0] = m->buf[NW + 1] = m->guard;
}

/* Words and guards against ref, bit by bit; what describes the operation. */
static void check_words(struct tmap *m, const char *what, size_t a, size_t b)
{
    if (m->buf[0] != m->guard || m->buf[NW + 1] != m->guard) {
        print_message("%s(%zu, %zu) wrote a guard word\n", what, a, b);
        fail();
    }
    for (size_t i = 0; i < NB; i++) {
        bool got = (m->buf[1 + i / 64] >> (i % 64)) & 1;
        if (got != (bool)m->ref[i]) {
            print_message("%s(%zu, %zu): bit %zu is %d, expected %d\n", what, a, b, i, got,
                          m->ref[i]);
            fail();
        }
    }
}

/* ---- random maps ---------------------------------------------------------- */

static void fill_density(unsigned char *ref, size_t nb, unsigned int pct)
{
    for (size_t i = 0; i < nb; i++)
        ref[i] = unit_chance(pct);
}

/* Alternating runs of clear and set bits, each 1..maxrun long: long free
 * runs across words are what find_zero_area with big n needs. */
static void fill_runs(unsigned char *ref, size_t nb, size_t maxrun)
{
    unsigned char v = unit_chance(50);
    for (size_t i = 0; i < nb;) {
        size_t len = unit_range(1, maxrun);
        for (size_t k = 0; k < len && i < nb; k++)
            ref[i++] = v;
        v = !v;
    }
}

/* Map number k of a fixed sequence of shapes: empty, full, then random
 * densities and run lengths. */
static void make_map(struct tmap *m, unsigned int k)
{
    switch (k % 8) {
    case 0:
        memset(m->ref, k % 16 == 0 ? 0 : 1, NB);
        break;
    case 1:
        fill_density(m->ref, NB, 3);
        break;
    case 2:
        fill_density(m->ref, NB, 50);
        break;
    case 3:
        fill_density(m->ref, NB, 97);
        break;
    case 4:
        fill_runs(m->ref, NB, 8);
        break;
    case 5:
        fill_runs(m->ref, NB, 70);
        break;
    case 6:
        fill_runs(m->ref, NB, 200);
        break;
    default:
        /* Mostly set with a few long holes. */
        memset(m->ref, 1, NB);
        for (int h = 0; h < 3; h++) {
            size_t at = unit_range(0, NB - 1), len = unit_range(1, 150);
            for (size_t i = at; i < at + len && i < NB; i++)
                m->ref[i] = 0;
        }
        break;
    }
    m->guard = (k / 8) % 2 ? ~0ull : 0;
    sync_words(m);
}

/* ---- the reference -------------------------------------------------------- */

static size_t ref_next(const unsigned char *ref, size_t s, size_t e, unsigned char want)
{
    for (size_t i = s; i < e; i++)
        if (ref[i] == want)
            return i;
    return e;
}

static size_t ref_prev_set(const unsigned char *ref, size_t s, size_t e)
{
    for (size_t i = e; i > s; i--)
        if (ref[i - 1])
            return i - 1;
    return SIZE_MAX;
}

static size_t ref_count(const unsigned char *ref, size_t s, size_t e)
{
    size_t n = 0;
    for (size_t i = s; i < e; i++)
        n += ref[i];
    return n;
}

/* zrun[i]: clear bits from i on (zrun has nb + 1 entries). */
static void ref_zero_runs(const unsigned char *ref, size_t nb, size_t *zrun)
{
    zrun[nb] = 0;
    for (size_t i = nb; i > 0; i--)
        zrun[i - 1] = ref[i - 1] ? 0 : zrun[i] + 1;
}

static size_t ref_find_zero_area(const size_t *zrun, size_t s, size_t e, size_t n, size_t align)
{
    for (size_t p = (s + align - 1) / align * align; p < e && n <= e - p; p += align)
        if (zrun[p] >= n)
            return p;
    return SIZE_MAX;
}

/* ---- tests ---------------------------------------------------------------- */

static void test_words_and_test_bit(void **state)
{
    (void)state;
    assert_int_equal(pcpu__words(0), 0);
    assert_int_equal(pcpu__words(1), 1);
    assert_int_equal(pcpu__words(63), 1);
    assert_int_equal(pcpu__words(64), 1);
    assert_int_equal(pcpu__words(65), 2);
    assert_int_equal(pcpu__words(128), 2);
    assert_int_equal(pcpu__words(129), 3);
    struct tmap m;
    for (unsigned int k = 0; k < 64; k++) {
        make_map(&m, k);
        for (size_t i = 0; i < NB; i++)
            if (pcpu__test_bit(words_of(&m), i) != (bool)m.ref[i]) {
                print_message("map %u: test_bit(%zu) wrong\n", k, i);
                fail();
            }
    }
}

static void test_set_bit_and_clear_bit_touch_one_bit(void **state)
{
    (void)state;
    struct tmap m;
    for (unsigned int k = 0; k < 32; k++) {
        make_map(&m, k);
        for (size_t i = 0; i < NB; i++) {
            size_t bit = (i * 37 + k) % NB; /* every bit, in a scattered order */
            bool set = unit_chance(50);
            if (set)
                pcpu__set_bit(words_of(&m), bit);
            else
                pcpu__clear_bit(words_of(&m), bit);
            m.ref[bit] = set;
            check_words(&m, set ? "set_bit" : "clear_bit", bit, bit + 1);
        }
    }
}

static void test_set_range_and_clear_range_at_word_edges(void **state)
{
    (void)state;
    struct tmap m;
    for (unsigned int k = 0; k < 48; k++) {
        make_map(&m, k);
        for (size_t i = 0; i < NR_EDGES; i++) {
            for (size_t j = i; j < NR_EDGES; j++) {
                size_t s = edges[i], e = edges[j];
                for (int op = 0; op < 2; op++) {
                    /* Start each operation from the map's own contents. */
                    unsigned char saved[NB];
                    memcpy(saved, m.ref, NB);
                    if (op)
                        pcpu__set_range(words_of(&m), s, e - s);
                    else
                        pcpu__clear_range(words_of(&m), s, e - s);
                    memset(m.ref + s, op, e - s);
                    check_words(&m, op ? "set_range" : "clear_range", s, e - s);
                    memcpy(m.ref, saved, NB);
                    sync_words(&m);
                }
            }
        }
    }
}

static void check_queries(struct tmap *m, size_t s, size_t e, unsigned int k)
{
    const uint64_t *w = words_of(m);
    size_t got, want;
    if ((got = pcpu__next_set(w, s, e)) != (want = ref_next(m->ref, s, e, 1)) ||
        (got = pcpu__next_zero(w, s, e)) != (want = ref_next(m->ref, s, e, 0)) ||
        (got = pcpu__prev_set(w, s, e)) != (want = ref_prev_set(m->ref, s, e)) ||
        (got = pcpu__count_set(w, s, e)) != (want = s < e ? ref_count(m->ref, s, e) : 0)) {
        print_message("map %u (guard %llx), range [%zu, %zu): got %zu, expected %zu "
                      "(next_set %zu/%zu, next_zero %zu/%zu, prev_set %zu/%zu, count %zu)\n",
                      k, (unsigned long long)m->guard, s, e, got, want, pcpu__next_set(w, s, e),
                      ref_next(m->ref, s, e, 1), pcpu__next_zero(w, s, e),
                      ref_next(m->ref, s, e, 0), pcpu__prev_set(w, s, e),
                      ref_prev_set(m->ref, s, e), pcpu__count_set(w, s, e));
        fail();
    }
}

/* next_set, next_zero, prev_set and count_set on every pair of edge
 * positions, including empty ranges and start > end (which must answer
 * "nothing": end, end, SIZE_MAX, 0). */
static void test_queries_at_word_edges(void **state)
{
    (void)state;
    struct tmap m;
    for (unsigned int k = 0; k < 96; k++) {
        make_map(&m, k);
        for (size_t i = 0; i < NR_EDGES; i++)
            for (size_t j = 0; j < NR_EDGES; j++)
                check_queries(&m, edges[i], edges[j], k);
    }
}

static void test_queries_on_random_ranges(void **state)
{
    (void)state;
    struct tmap m;
    for (unsigned int k = 0; k < 200; k++) {
        make_map(&m, k);
        for (int r = 0; r < 300; r++) {
            size_t s = unit_range(0, NB), e = unit_range(s, NB);
            check_queries(&m, s, e, k);
        }
    }
}

static void check_find(const struct tmap *m, const size_t *zrun, size_t s, size_t e, size_t n,
                       size_t align, unsigned int k)
{
    size_t got = pcpu__find_zero_area(m->buf + 1, s, e, n, align);
    size_t want = ref_find_zero_area(zrun, s, e, n, align);
    if (got != want) {
        print_message("map %u (guard %llx): find_zero_area([%zu, %zu), n %zu, align %zu) = %zu, "
                      "expected %zu\n",
                      k, (unsigned long long)m->guard, s, e, n, align, got, want);
        fail();
    }
}

static const size_t find_sizes[] = {1, 2, 3, 4, 7, 8, 31, 63, 64, 65, 100, 127, 128, 129, 200, 256};
#define NR_FIND_SIZES (sizeof(find_sizes) / sizeof(find_sizes[0]))

/* Every power-of-two alignment 1..64 and sizes up to four words, over
 * every pair of edge positions. */
static void test_find_zero_area_at_word_edges(void **state)
{
    (void)state;
    struct tmap m;
    size_t zrun[NB + 1];
    for (unsigned int k = 0; k < 32; k++) {
        make_map(&m, k);
        ref_zero_runs(m.ref, NB, zrun);
        for (size_t i = 0; i < NR_EDGES; i++)
            for (size_t j = i; j < NR_EDGES; j++)
                for (size_t align = 1; align <= 64; align *= 2)
                    for (size_t z = 0; z < NR_FIND_SIZES; z++)
                        check_find(&m, zrun, edges[i], edges[j], find_sizes[z], align, k);
    }
}

static void test_find_zero_area_on_random_ranges(void **state)
{
    (void)state;
    struct tmap m;
    size_t zrun[NB + 1];
    for (unsigned int k = 0; k < 400; k++) {
        make_map(&m, k);
        ref_zero_runs(m.ref, NB, zrun);
        for (int r = 0; r < 400; r++) {
            size_t s = unit_range(0, NB), e = unit_range(s, NB);
            size_t align = (size_t)1 << unit_range(0, 6);
            size_t n = unit_chance(50) ? unit_range(1, 16) : unit_range(1, 300);
            check_find(&m, zrun, s, e, n, align, k);
        }
    }
}

/* A long map (40 words) with runs long enough that a fitting area spans
 * several words and the search has to skip many too-short holes. */
static void test_find_zero_area_long_map(void **state)
{
    (void)state;
    enum { LW = 40, LB = LW * 64 };
    static uint64_t map[LW];
    static unsigned char ref[LB];
    static size_t zrun[LB + 1];
    for (unsigned int k = 0; k < 60; k++) {
        if (k % 3 == 0)
            fill_runs(ref, LB, 40);
        else if (k % 3 == 1)
            fill_runs(ref, LB, 600);
        else
            fill_density(ref, LB, 20);
        memset(map, 0, sizeof(map));
        for (size_t i = 0; i < LB; i++)
            if (ref[i])
                map[i / 64] |= 1ull << (i % 64);
        ref_zero_runs(ref, LB, zrun);
        for (int r = 0; r < 2000; r++) {
            size_t s = unit_chance(30) ? 0 : unit_range(0, LB);
            size_t e = unit_chance(30) ? LB : unit_range(s, LB);
            size_t align = (size_t)1 << unit_range(0, 6);
            size_t n = unit_range(1, unit_chance(50) ? 64 : 1000);
            size_t got = pcpu__find_zero_area(map, s, e, n, align);
            size_t want = ref_find_zero_area(zrun, s, e, n, align);
            if (got != want) {
                print_message("long map %u: find_zero_area([%zu, %zu), n %zu, align %zu) = %zu, "
                              "expected %zu\n",
                              k, s, e, n, align, got, want);
                fail();
            }
            size_t c = pcpu__count_set(map, s, e);
            if (c != ref_count(ref, s, e)) {
                print_message("long map %u: count_set([%zu, %zu)) = %zu, expected %zu\n", k, s, e,
                              c, ref_count(ref, s, e));
                fail();
            }
            if (pcpu__prev_set(map, s, e) != ref_prev_set(ref, s, e) ||
                pcpu__next_zero(map, s, e) != ref_next(ref, s, e, 0)) {
                print_message("long map %u: prev_set/next_zero on [%zu, %zu) wrong\n", k, s, e);
                fail();
            }
        }
    }
}

int main(void)
{
    unit_seed(0x6269746d6170ull);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_words_and_test_bit),
        cmocka_unit_test(test_set_bit_and_clear_bit_touch_one_bit),
        cmocka_unit_test(test_set_range_and_clear_range_at_word_edges),
        cmocka_unit_test(test_queries_at_word_edges),
        cmocka_unit_test(test_queries_on_random_ranges),
        cmocka_unit_test(test_find_zero_area_at_word_edges),
        cmocka_unit_test(test_find_zero_area_on_random_ranges),
        cmocka_unit_test(test_find_zero_area_long_map),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
