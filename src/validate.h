/* SPDX-License-Identifier: MIT */
/*
 * validate.h - checking the allocator's invariants (validate.c): on
 * demand (pcpu_validate), after each operation in robust mode, and at
 * pcpu_exit().
 */
#ifndef PCPU_VALIDATE_H
#define PCPU_VALIDATE_H

#include "internal.h"

/* Robust mode, after an operation on the object at cookie (bits granules):
 * check what it touched; stops the process on a problem.  Takes the lock. */
PCPU_HIDDEN void pcpu__validate_around(const void *cookie, size_t bits);
/* pcpu_exit(), before anything is released (lock held): list leaks when
 * asked (or robust); in robust mode also find writes into freed or cached
 * memory and check every invariant, and stop the process if anything is
 * wrong. */
PCPU_HIDDEN void pcpu__validate_at_exit_locked(bool robust, bool report_leaks);

#endif
