/* SPDX-License-Identifier: MIT */
/*
 * units_zero.h - zeroing an object in every unit where it may hold data, and the
 * check for zero that comes first (units_zero.c).
 */
#ifndef PCPU_UNITS_ZERO_H
#define PCPU_UNITS_ZERO_H

#include "internal.h"

#include <string.h>

/* Choose the check for zero (units_zero.c), at initialisation. */
PCPU_HIDDEN void pcpu__units_zero_check_init(void);

/* How objects from 1 KiB are checked for zero: the C library's
 * memcmp, 32-byte (AVX2) or 64-byte (AVX-512) vectors; chosen at
 * initialisation from what the CPU does well.  Tests narrow the choice
 * with pcpu__units_zero_check_set() (-1 if the CPU lacks the one asked
 * for) to check every path on one machine; not thread-safe against frees
 * running at the same time. */
enum pcpu__zero_check { PCPU__ZERO_CHECK_LIBC, PCPU__ZERO_CHECK_V32, PCPU__ZERO_CHECK_V64 };
PCPU_HIDDEN enum pcpu__zero_check pcpu__units_zero_check(void);
PCPU_HIDDEN int pcpu__units_zero_check_set(enum pcpu__zero_check c);

/* Zero an object of any size beyond 16 bytes in every unit where it is
 * not zero already. */
PCPU_HIDDEN void pcpu__units_zero_large(void *cookie, size_t bytes);
/* The same for whole 1 KiB blocks (the 4 KiB class). */
PCPU_HIDDEN void pcpu__units_zero_blocks(void *cookie, size_t bytes);

/* Zero a 4- or 8-byte object in every unit where it is not zero already,
 * with fixed-size moves (a variable-length copy would go through memory
 * and a library call) and one loop per width, so that the loop over the
 * units tests nothing but the data.  Inline: it is most of a small
 * pcpu_free(), and needs so few registers that the caller saves none. */
static inline __attribute__((always_inline)) void pcpu__units_zero_word(void *cookie,
                                                                      size_t bytes)
{
    unsigned int n = pcpu__nr_units;
    if (bytes == 4) {
        for (unsigned int i = 0; i < n; i++) {
            char *p = (char *)cookie + pcpu__cpu_offsets[i];
            uint32_t w, zw = 0;
            memcpy(&w, p, 4);
            if (w)
                memcpy(p, &zw, 4);
        }
        return;
    }
    for (unsigned int i = 0; i < n; i++) {
        char *p = (char *)cookie + pcpu__cpu_offsets[i];
        uint64_t a, z = 0;
        memcpy(&a, p, 8);
        if (a)
            memcpy(p, &z, 8);
    }
}

/* The same for any object: 12 and 16 bytes inline (a 12-byte one is read
 * and cleared as 8 + 4), longer ones out of line. */
static inline __attribute__((always_inline)) void pcpu__units_zero(void *cookie, size_t bytes)
{
    if (bytes > 16) {
        if (bytes % 1024 == 0)
            pcpu__units_zero_blocks(cookie, bytes);
        else
            pcpu__units_zero_large(cookie, bytes);
        return;
    }
    if (bytes <= 8) {
        pcpu__units_zero_word(cookie, bytes);
        return;
    }
    unsigned int n = pcpu__nr_units;
    for (unsigned int i = 0; i < n; i++) {
        char *p = (char *)cookie + pcpu__cpu_offsets[i];
        uint64_t a, b = 0, z = 0;
        uint32_t w = 0, zw = 0;
        memcpy(&a, p, 8);
        if (bytes == 16)
            memcpy(&b, p + 8, 8);
        else
            memcpy(&w, p + 8, 4);
        if (!(a | b | w))
            continue;
        memcpy(p, &z, 8);
        if (bytes == 16)
            memcpy(p + 8, &z, 8);
        else
            memcpy(p + 8, &zw, 4);
    }
}

/* One object of a batch: its cookie and length. */
struct pcpu_span {
    char *cookie;
    size_t bytes;
};

/* Whether freeing an object of this size should wait for a batch: with
 * many units, or big objects, reading every unit to find the written ones
 * costs more (page faults on never-touched pages, TLB misses) than asking
 * the kernel once per batch which pages hold data.  (Objects that go to a
 * class cache with room are read at once: they are likely used again.) */
static inline bool pcpu__units_many(void)
{
    return pcpu__nr_units > 16;
}
static inline bool pcpu__units_batch_wanted(size_t bytes)
{
    return pcpu__units_many() || bytes >= 512;
}

/* Zero n freed objects of the chunk whose guard starts at base, sorted by
 * address, in every unit where they may hold data: where the kernel can
 * say which pages do (PAGEMAP_SCAN), only there; else unit by unit. */
PCPU_HIDDEN void pcpu__units_zero_spans(char *base, const struct pcpu_span *spans, size_t n);

/* Give [off, off+len) (page-aligned offsets within a unit) of the chunk
 * whose guard starts at base back to the OS in every unit where it holds
 * data; it reads zero afterwards. */
PCPU_HIDDEN void pcpu__units_discard(char *base, size_t off, size_t len);

#endif
