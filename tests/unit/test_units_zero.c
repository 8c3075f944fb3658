/* SPDX-License-Identifier: MIT */
/* test_units_zero.c - the zeroing of freed objects finds a written byte wherever it is, in any unit, with every check this CPU has (C library, 32-byte and 64-byte vectors), and a free followed by an allocation hands out zero memory with each of them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "percpu.h"
#include "units.h"

/*
 * The checks read whole 1 KiB blocks, then vector-sized pieces, then
 * 8- and 4-byte words: a byte missed at any of those seams would leave a
 * freed object dirty, and the next user would find data in memory the API
 * promises is zero.  So every byte is tried near each seam (the ends, each
 * 1 KiB boundary, each piece after the last block), and a sample in
 * between.  Sizes cover whole blocks (the 4 KiB class's path), blocks plus
 * pieces, pieces plus a tail, and an object below 1 KiB (the C library's
 * check whatever the CPU).
 */
static const size_t sizes[] = {4, 8, 12, 16, 20, 60, 100, 1020, 1024, 1028, 1052, 1088,
                               1092, 2048, 2100, 3068, 4096, 5120, 8192};

static const enum pcpu__zero_check checks[] = {PCPU__ZERO_CHECK_LIBC, PCPU__ZERO_CHECK_V32,
                                               PCPU__ZERO_CHECK_V64};
static const char *const check_names[] = {"libc", "32-byte vectors", "64-byte vectors"};

/* Whether byte k of an object of `bytes` bytes is tried. */
static bool near_seam(size_t k, size_t bytes)
{
    size_t tail_start = bytes & ~(size_t)1023;
    if (k < 80 || bytes - k <= 80 || k >= tail_start)
        return true;
    size_t in_block = k % 1024;
    return in_block < 72 || in_block >= 1024 - 72 || k % 37 == 0;
}

static bool unit_zero(const void *cookie, unsigned int u, size_t bytes)
{
    const unsigned char *p = pcpu_ptr(cookie, u);
    for (size_t i = 0; i < bytes; i++)
        if (p[i])
            return false;
    return true;
}

static unsigned int usable_checks(void)
{
    unsigned int n = 0;
    for (size_t i = 0; i < sizeof(checks) / sizeof(checks[0]); i++)
        if (pcpu__units_zero_check_set(checks[i]) == 0)
            n++;
    return n;
}

static void test_every_byte_found(void **state)
{
    (void)state;
    enum pcpu__zero_check best = pcpu__units_zero_check();
    unsigned int units = pcpu_nr_cpus();
    for (size_t c = 0; c < sizeof(checks) / sizeof(checks[0]); c++) {
        if (pcpu__units_zero_check_set(checks[c]) != 0) {
            printf("# %s: not on this CPU\n", check_names[c]);
            continue;
        }
        unsigned long tried = 0;
        for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
            size_t bytes = sizes[s];
            void *cookie = pcpu_alloc(bytes, 0);
            assert_non_null(cookie);
            for (unsigned int u = 0; u < units; u++)
                assert_true(unit_zero(cookie, u, bytes));
            for (unsigned int u = 0; u < units; u++) {
                for (size_t k = 0; k < bytes; k++) {
                    if (!near_seam(k, bytes))
                        continue;
                    unsigned char *p = pcpu_ptr(cookie, u);
                    /* 0x80 as well as 1: a test of signed bytes or of the
                     * top bit only would miss one of them. */
                    p[k] = (k & 1) ? 0x80 : 0x01;
                    pcpu__units_zero(cookie, bytes);
                    if (!unit_zero(cookie, u, bytes))
                        fail_msg("%s: %zu-byte object, byte %zu of unit %u written and not "
                                 "zeroed",
                                 check_names[c], bytes, k, u);
                    tried++;
                }
            }
            /* Two units written at once, the last one first in memory. */
            if (units > 1) {
                ((unsigned char *)pcpu_ptr(cookie, units - 1))[bytes - 1] = 7;
                ((unsigned char *)pcpu_ptr(cookie, 0))[0] = 7;
                pcpu__units_zero(cookie, bytes);
                for (unsigned int u = 0; u < units; u++)
                    assert_true(unit_zero(cookie, u, bytes));
            }
            pcpu_free(cookie);
        }
        printf("# %s: %lu written bytes found\n", check_names[c], tried);
    }
    assert_int_equal(pcpu__units_zero_check_set(best), 0);
}

/* The public promise with each check: memory written in every unit and
 * freed comes back zero, whichever object the allocator hands out. */
static void test_free_then_alloc_zero(void **state)
{
    (void)state;
    enum pcpu__zero_check best = pcpu__units_zero_check();
    unsigned int units = pcpu_nr_cpus();
    static const size_t big[] = {1024, 1088, 2048, 4096, 8192};
    for (size_t c = 0; c < sizeof(checks) / sizeof(checks[0]); c++) {
        if (pcpu__units_zero_check_set(checks[c]) != 0)
            continue;
        for (size_t s = 0; s < sizeof(big) / sizeof(big[0]); s++) {
            size_t bytes = big[s];
            for (int round = 0; round < 200; round++) {
                void *cookie = pcpu_alloc(bytes, 0);
                assert_non_null(cookie);
                for (unsigned int u = 0; u < units; u++) {
                    if (!unit_zero(cookie, u, bytes))
                        fail_msg("%s: %zu-byte object handed out with data in unit %u "
                                 "(round %d)",
                                 check_names[c], bytes, u, round);
                    unsigned char *p = pcpu_ptr(cookie, u);
                    p[((size_t)round * 61 + u * 13) % bytes] = (unsigned char)(round | 1);
                }
                pcpu_free(cookie);
            }
        }
    }
    assert_int_equal(pcpu__units_zero_check_set(best), 0);
}

/* A check the CPU lacks is refused and changes nothing. */
static void test_set_refuses_missing(void **state)
{
    (void)state;
    enum pcpu__zero_check best = pcpu__units_zero_check();
    assert_int_equal(pcpu__units_zero_check_set(PCPU__ZERO_CHECK_LIBC), 0);
    assert_int_equal(pcpu__units_zero_check(), PCPU__ZERO_CHECK_LIBC);
    unsigned int n = usable_checks();
    assert_true(n >= 1);
    assert_int_equal((int)best + 1, (int)n);
    if (best != PCPU__ZERO_CHECK_V64) {
        assert_int_equal(pcpu__units_zero_check_set(PCPU__ZERO_CHECK_V64), -1);
        assert_int_equal(pcpu__units_zero_check(), (int)best);
    }
    assert_int_equal(pcpu__units_zero_check_set(best), 0);
    printf("# this CPU's check: %d of 0..2\n", (int)best);
}

int main(void)
{
    /* The first allocation sets the allocator up, the check included. */
    void *first = pcpu_alloc(4, 0);
    if (!first) {
        perror("pcpu_alloc");
        return 1;
    }
    pcpu_free(first);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_byte_found),
        cmocka_unit_test(test_free_then_alloc_zero),
        cmocka_unit_test(test_set_refuses_missing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
