/* SPDX-License-Identifier: MIT */
/*
 * bitmap.h - word-at-a-time bit operations on the allocation maps
 * (bitmap.c).  Every access is a relaxed atomic (see bitmap.c).
 */
#ifndef PCPU_BITMAP_H
#define PCPU_BITMAP_H

#include "internal.h"

#define PCPU_WORD_BITS 64u
static inline size_t pcpu__words(size_t bits) { return (bits + 63) / 64; }
static inline bool pcpu__test_bit(const uint64_t *map, size_t bit)
{
    return (__atomic_load_n(&map[bit / 64], __ATOMIC_RELAXED) >> (bit % 64)) & 1;
}
PCPU_HIDDEN void pcpu__set_range(uint64_t *map, size_t start, size_t n);
PCPU_HIDDEN void pcpu__clear_range(uint64_t *map, size_t start, size_t n);
PCPU_HIDDEN void pcpu__set_bit(uint64_t *map, size_t bit);
PCPU_HIDDEN void pcpu__clear_bit(uint64_t *map, size_t bit);
/* First set / clear bit in [start, end), or end. */
PCPU_HIDDEN size_t pcpu__next_set(const uint64_t *map, size_t start, size_t end);
PCPU_HIDDEN size_t pcpu__next_zero(const uint64_t *map, size_t start, size_t end);
/* Last set bit in [start, end), or SIZE_MAX. */
PCPU_HIDDEN size_t pcpu__prev_set(const uint64_t *map, size_t start, size_t end);
PCPU_HIDDEN size_t pcpu__count_set(const uint64_t *map, size_t start, size_t end);
/* First position p in [start, end) with p % align == 0 and [p, p+n) clear. */
PCPU_HIDDEN size_t pcpu__find_zero_area(const uint64_t *map, size_t start, size_t end, size_t n,
                                        size_t align);

#endif
