/* SPDX-License-Identifier: MIT */
/*
 * units_marks.h - marks for the memory tools (AddressSanitizer, valgrind) over
 * every unit of an object (units_marks.c).
 */
#ifndef PCPU_UNITS_MARKS_H
#define PCPU_UNITS_MARKS_H

#include "internal.h"

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
/* A chunk's mapping is about to go away (sanitizer shadow). */
PCPU_HIDDEN void pcpu__units_unmapping(void *addr, size_t size);

#endif
