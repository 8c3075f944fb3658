/* SPDX-License-Identifier: MIT */
/*
 * bitmap.c - word-at-a-time bit operations for the allocation maps.
 *
 * The maps are read without the lock by frees and lookups (live and end
 * bits), so every access is a relaxed atomic load or store: writers hold
 * the allocator lock, which makes plain read-modify-write sequences safe
 * between them, and relaxed accesses keep lock-free readers well defined.
 */
#include "bitmap.h"

#include <stdint.h>

static inline uint64_t ld(const uint64_t *w)
{
    return __atomic_load_n(w, __ATOMIC_RELAXED);
}

static inline void st(uint64_t *w, uint64_t v)
{
    __atomic_store_n(w, v, __ATOMIC_RELAXED);
}

/* Mask of bits [lo, hi) within one word, 0 <= lo < hi <= 64. */
static inline uint64_t span_mask(size_t lo, size_t hi)
{
    uint64_t m = hi >= 64 ? ~0ull : ((1ull << hi) - 1);
    return m & ~((1ull << lo) - 1);
}

void pcpu__set_bit(uint64_t *map, size_t bit)
{
    uint64_t *w = &map[bit / 64];
    st(w, ld(w) | (1ull << (bit % 64)));
}

void pcpu__clear_bit(uint64_t *map, size_t bit)
{
    uint64_t *w = &map[bit / 64];
    st(w, ld(w) & ~(1ull << (bit % 64)));
}

/* Set (fill ~0) or clear (fill 0) [start, start + n): the partial words
 * at the ends read-modify-write, the whole words between are stored (a
 * batch of frees clears thousands of bits at once). */
static inline void fill_range(uint64_t *map, size_t start, size_t n, uint64_t fill)
{
    if (n == 0)
        return;
    size_t end = start + n, wi = start / 64, we = (end - 1) / 64;
    if (wi == we) {
        uint64_t m = span_mask(start % 64, end - wi * 64);
        st(&map[wi], (ld(&map[wi]) & ~m) | (fill & m));
        return;
    }
    uint64_t head = span_mask(start % 64, 64);
    st(&map[wi], (ld(&map[wi]) & ~head) | (fill & head));
    for (size_t w = wi + 1; w < we; w++)
        st(&map[w], fill);
    uint64_t tail = span_mask(0, end - we * 64);
    st(&map[we], (ld(&map[we]) & ~tail) | (fill & tail));
}

void pcpu__set_range(uint64_t *map, size_t start, size_t n)
{
    fill_range(map, start, n, ~0ull);
}

void pcpu__clear_range(uint64_t *map, size_t start, size_t n)
{
    fill_range(map, start, n, 0);
}

static size_t next_bit(const uint64_t *map, size_t start, size_t end, uint64_t invert)
{
    if (start >= end)
        return end;
    size_t wi = start / 64;
    uint64_t w = (ld(&map[wi]) ^ invert) & ~((1ull << (start % 64)) - 1);
    for (;;) {
        if (w) {
            size_t r = wi * 64 + (size_t)__builtin_ctzll(w);
            return r < end ? r : end;
        }
        wi++;
        if (wi * 64 >= end)
            return end;
        w = ld(&map[wi]) ^ invert;
    }
}

size_t pcpu__next_set(const uint64_t *map, size_t start, size_t end)
{
    return next_bit(map, start, end, 0);
}

size_t pcpu__next_zero(const uint64_t *map, size_t start, size_t end)
{
    return next_bit(map, start, end, ~0ull);
}

size_t pcpu__prev_set(const uint64_t *map, size_t start, size_t end)
{
    if (start >= end)
        return SIZE_MAX;
    size_t last = end - 1;
    size_t wi = last / 64;
    uint64_t w = ld(&map[wi]) & span_mask(0, last % 64 + 1);
    for (;;) {
        if (w) {
            size_t r = wi * 64 + 63 - (size_t)__builtin_clzll(w);
            return r >= start ? r : SIZE_MAX;
        }
        if (wi == 0 || (wi - 1) * 64 + 63 < start)
            return SIZE_MAX;
        wi--;
        w = ld(&map[wi]);
    }
}

size_t pcpu__count_set(const uint64_t *map, size_t start, size_t end)
{
    size_t count = 0;
    while (start < end) {
        size_t wi = start / 64, lo = start % 64;
        size_t hi = (end - wi * 64) < 64 ? end - wi * 64 : 64;
        count += (size_t)__builtin_popcountll(ld(&map[wi]) & span_mask(lo, hi));
        start = wi * 64 + hi;
    }
    return count;
}

size_t pcpu__find_zero_area(const uint64_t *map, size_t start, size_t end, size_t n,
                            size_t align)
{
    size_t pos = start;
    for (;;) {
        pos = pcpu__next_zero(map, pos, end);
        pos = (pos + align - 1) & ~(align - 1);
        if (pos >= end || n > end - pos)
            return SIZE_MAX;
        size_t busy = pcpu__next_set(map, pos, pos + n);
        if (busy == pos + n)
            return pos;
        pos = busy + 1;
    }
}
