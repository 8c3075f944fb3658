/* SPDX-License-Identifier: MIT */
/*
 * units.h - every walk over the units of one object: zeroing and the
 * check for zero (units_zero.c), robust-mode poisoning and checks
 * (units_robust.c), marks for the memory tools (units_marks.c), copying a
 * static template (units.c).  One object is the same bytes in every unit, so
 * these all loop over pcpu__cpu_offsets; keeping them here keeps the
 * rules in one place: never write a unit that is already right (a unit
 * nobody wrote stays on the shared zero page and costs no memory).
 */
#ifndef PCPU_UNITS_H
#define PCPU_UNITS_H

#include "internal.h"

#include <string.h>

/* Set at initialisation: robust mode (poison on free, check on alloc), and
 * whether any per-object hook is needed at all (robust mode, or a
 * sanitizer or valgrind that wants marks), so that the fast paths pay one
 * predictable branch. */
PCPU_HIDDEN extern bool pcpu__units_hooked;
PCPU_HIDDEN void pcpu__units_init(bool robust);
PCPU_HIDDEN bool pcpu__units_robust(void);

/* Whether the library itself is built with AddressSanitizer (units_marks.c
 * keeps its shadow right; the robust checks read freed memory on purpose,
 * which is not a use). */
#if defined(__SANITIZE_ADDRESS__)
#define PCPU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PCPU_ASAN 1
#endif
#endif
#ifdef PCPU_ASAN
#define PCPU_READS_FREED __attribute__((no_sanitize("address")))
#else
#define PCPU_READS_FREED
#endif

/* The memory tools (units_marks.c): whether one is there that wants marks,
 * and the mark of [p, p + bytes) of one unit, in use (on) or freed. */
PCPU_HIDDEN bool pcpu__units_annotate(void);
PCPU_HIDDEN void pcpu__units_mark(void *p, size_t bytes, bool on);
/* Choose the check for zero (units_zero.c), at initialisation. */
PCPU_HIDDEN void pcpu__units_zero_check_init(void);

/* How objects from 1 KiB are checked for zero (units.c): the C library's
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

/* A freed object: zero it (robust mode: poison the units that were
 * written), then mark it freed for the tools. */
PCPU_HIDDEN void pcpu__units_freed_hooked(void *cookie, size_t bytes);
static inline __attribute__((always_inline)) void pcpu__units_freed(void *cookie, size_t bytes)
{
    if (unlikely(pcpu__units_hooked))
        pcpu__units_freed_hooked(cookie, bytes);
    else
        pcpu__units_zero(cookie, bytes);
}

/* An object handed out: mark it usable for the tools; in robust mode check
 * that nothing was written while it was free (stops the process naming
 * the cookie) and turn poison back into zeroes.  Only when hooked. */
PCPU_HIDDEN void pcpu__units_handed_out(void *cookie, size_t bytes);

/* A chunk's mapping is about to go away (sanitizer shadow). */
PCPU_HIDDEN void pcpu__units_unmapping(void *addr, size_t size);

/* Copy a template into every unit, skipping zero runs; whether every unit
 * still equals it. */
PCPU_HIDDEN void pcpu__units_fill(void *cookie, const void *tmpl, size_t size);
PCPU_HIDDEN bool pcpu__units_equal(const void *cookie, const void *tmpl, size_t size);

/* Freed memory must read zero or poison: the offset of the first granule
 * of [cookie, cookie+bytes) in unit u that does not, or SIZE_MAX. */
PCPU_HIDDEN size_t pcpu__units_first_dirty(const void *cookie, size_t bytes, unsigned int u);

#endif
