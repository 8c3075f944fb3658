/* SPDX-License-Identifier: MIT */
/*
 * rseq.h - the this-CPU machinery the inline operations of percpu.h rely
 * on (rseq.c): rseq registration, the modes (rseq or atomics), the table
 * from the thread's index to its unit.  Used by the
 * slow paths (thiscpu.c) and set up by init.c.
 */
#ifndef PCPU_RSEQ_H
#define PCPU_RSEQ_H

#include "internal.h"

#include "topology.h"

/* Fill pcpu__thiscpu in for ai and the index mode; the inline paths stay closed
 * until pcpu__rseq_start() (the allocator became used). */
PCPU_HIDDEN void pcpu__rseq_setup(const struct pcpu_alloc_info *ai, enum pcpu_index index);
PCPU_HIDDEN void pcpu__rseq_start(void);
/* Close every path (pcpu_exit). */
PCPU_HIDDEN void pcpu__rseq_stop(void);
/* Whether pcpu__rseq_setup() ran since the last stop. */
PCPU_HIDDEN bool pcpu__rseq_is_set_up(void);
PCPU_HIDDEN bool pcpu__rseq_runs_sequences(void);
PCPU_HIDDEN bool pcpu__rseq_uses_cid(void);

/* The slow path of an operation once the allocator is set up: register
 * rseq for the calling thread if the library does that, and say
 * whether to run the sequence again (off == PCPU__RETRY) or where the
 * atomic fallback goes.  cookie is passed through. */
PCPU_HIDDEN struct pcpu__unit_at pcpu__rseq_slow(const void *cookie);
/* The sequence that sent a thread to the slow path left rseq_cs armed. */
PCPU_HIDDEN void pcpu__rseq_disarm(void);
/* The calling thread's unit: its offset from a cookie, its index. */
PCPU_HIDDEN intptr_t pcpu__rseq_unit_off(void);
PCPU_HIDDEN unsigned int pcpu__rseq_unit_index(void);

/* fork(): hold this file's lock across it (after the allocator's). */
PCPU_HIDDEN void pcpu__rseq_fork_prepare(void);
PCPU_HIDDEN void pcpu__rseq_fork_parent(void);
PCPU_HIDDEN void pcpu__rseq_fork_child(void);

/* Exactness for regions shared between processes (the pins at the end of
 * rseq.c).  pcpu__rseq_pin_exact: the allocator must be initialised and
 * in use (pcpu__ensure_init()); 0 and @what pinned, or -1 with errno
 * EOPNOTSUPP when this process does not run restartable sequences indexed
 * by CPU (atomics, or CID mode), ENOMEM.  @what (a region's name) must
 * stay valid until pcpu__rseq_unpin_exact(@what).  While a pin is held, a
 * switch of the process to atomics stops it with a message naming @what.
 * pcpu__rseq_exact_check: that check (mode_lock held; degrade()). */
PCPU_HIDDEN int pcpu__rseq_pin_exact(const char *what);
PCPU_HIDDEN void pcpu__rseq_unpin_exact(const char *what);
PCPU_HIDDEN void pcpu__rseq_exact_check(void);

#endif
