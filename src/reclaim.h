/* SPDX-License-Identifier: MIT */
/*
 * reclaim.h - the background worker that runs the pool's balance pass
 * (reclaim.c).
 */
#ifndef PCPU_RECLAIM_H
#define PCPU_RECLAIM_H

#include "internal.h"

/* Whether the worker may run (PCPU_F_NO_RECLAIM turns it off). */
PCPU_HIDDEN void pcpu__reclaim_enable(bool on);
/* The pool wants a balance pass: schedule one (allocator lock held). */
PCPU_HIDDEN void pcpu__reclaim_kick_locked(void);
/* Stop the worker and wait for it (lock not held). */
PCPU_HIDDEN void pcpu__reclaim_stop(void);
/* The library is being unloaded (or the process exits): stop the worker
 * for good (lock not held). */
PCPU_HIDDEN void pcpu__reclaim_unload(void);
/* fork() child: the worker did not follow. */
PCPU_HIDDEN void pcpu__reclaim_forget(void);

#endif
