/* SPDX-License-Identifier: MIT */
/*
 * units.h - every walk over the units of one object.  One object is the
 * same bytes in every unit, so these all loop over pcpu__cpu_offsets;
 * keeping them together keeps the rules in one place: never write a unit
 * that is already right (a unit nobody wrote stays on the shared zero
 * page and costs no memory).  The walks are in units_zero.c (zeroing and
 * the check for zero), units_robust.c (robust mode's poison and checks)
 * and units_marks.c (marks for the memory tools), each with its header;
 * this one (units.c) sets them up and copies static templates.
 */
#ifndef PCPU_UNITS_H
#define PCPU_UNITS_H

#include "internal.h"

#include "units_marks.h"
#include "units_robust.h"
#include "units_zero.h"

/* Set at initialisation: robust mode (poison on free, check on alloc), and
 * whether any per-object hook is needed at all (robust mode, or a
 * sanitizer or valgrind that wants marks), so that the fast paths pay one
 * predictable branch. */
PCPU_HIDDEN extern bool pcpu__units_hooked;
PCPU_HIDDEN void pcpu__units_init(bool robust);

/* A freed object: zeroed where it may hold data, or, when a hook is
 * wanted, poisoned (robust mode) and marked for the tools. */
static inline __attribute__((always_inline)) void pcpu__units_freed(void *cookie, size_t bytes)
{
    if (unlikely(pcpu__units_hooked))
        pcpu__units_freed_hooked(cookie, bytes);
    else
        pcpu__units_zero(cookie, bytes);
}

/* Copy a template into every unit, skipping zero runs; whether every unit
 * still equals it. */
PCPU_HIDDEN void pcpu__units_fill(void *cookie, const void *tmpl, size_t size);
PCPU_HIDDEN bool pcpu__units_equal(const void *cookie, const void *tmpl, size_t size);

#endif
