/* SPDX-License-Identifier: MIT */
/*
 * statics.h - where every module's PCPU_DEFINE section lives (statics.c).
 * All of it with the allocator lock held, except translate.
 */
#ifndef PCPU_STATICS_H
#define PCPU_STATICS_H

#include "internal.h"

/* Where a module's section lives (pcpu__module.placed). */
#define PCPU_PLACED_NOT 0
#define PCPU_PLACED_STATIC 1 /* the first chunk's static area            */
#define PCPU_PLACED_LATE 2   /* an allocation (reserved area or dynamic) */
/* Spare static area when the first chunk is set up for statics only, so
 * that libraries loaded at start-up join it without anything moving. */
#define PCPU_STATIC_SLACK (32u << 10)

/* Remember a module with a section; false if it was known already. */
PCPU_HIDDEN bool pcpu__statics_add_locked(struct pcpu__module *mod);
/* Place one module's section: at the end of the static area if
 * may_append and it fits, else in the reserved area (or dynamic space). */
PCPU_HIDDEN void pcpu__statics_place_one_locked(struct pcpu__module *mod, bool may_append);
/* Forget a module (dlclose); its reserved space goes back to the pool.
 * Returns true when the pool wants a balance pass. */
PCPU_HIDDEN bool pcpu__statics_remove_locked(struct pcpu__module *mod);
/* Bytes of static area every known section needs. */
PCPU_HIDDEN size_t pcpu__statics_size_locked(void);
/* Place every known section into the static area at cookie, which has
 * room bytes (initialisation; copies initial values). */
PCPU_HIDDEN void pcpu__statics_place_locked(char *cookie, size_t room);
/* Forget placements (teardown); [old_first, +old_size) is the old first
 * chunk's range, left reserved so that stale cookies fault, or NULL. */
PCPU_HIDDEN void pcpu__statics_reset_locked(char *old_first, size_t old_size);
/* A static variable's cookie from before the last pcpu_exit(), moved to
 * its current placement; any other cookie unchanged.  Takes the lock. */
PCPU_HIDDEN const void *pcpu__statics_translate(const void *cookie);
/* Every placed section still equals its template in every unit. */
PCPU_HIDDEN bool pcpu__statics_pristine_locked(void);

#endif
