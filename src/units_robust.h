/* SPDX-License-Identifier: MIT */
/*
 * units_robust.h - robust mode's poison and checks over every unit of an object
 * (units_robust.c).
 */
#ifndef PCPU_UNITS_ROBUST_H
#define PCPU_UNITS_ROBUST_H

#include "internal.h"

/* Robust mode (PCPU_F_DEBUG): poison on free, check on hand-out; set at
 * initialisation (units.c). */
PCPU_HIDDEN void pcpu__units_robust_set(bool on);
PCPU_HIDDEN bool pcpu__units_robust(void);

/* A freed object, when a hook is wanted (robust mode or a tool): zero it
 * (robust mode: poison the units that were written), then mark it freed
 * for the tools. */
PCPU_HIDDEN void pcpu__units_freed_hooked(void *cookie, size_t bytes);

/* An object handed out: mark it usable for the tools; in robust mode check
 * that nothing was written while it was free (stops the process naming
 * the cookie) and turn poison back into zeroes.  Only when hooked. */
PCPU_HIDDEN void pcpu__units_handed_out(void *cookie, size_t bytes);

/* Freed memory must read zero or poison: the offset of the first granule
 * of [cookie, cookie+bytes) in unit u that does not, or SIZE_MAX. */
PCPU_HIDDEN size_t pcpu__units_first_dirty(const void *cookie, size_t bytes, unsigned int u);

#endif
