/* SPDX-License-Identifier: MIT */
/* pcpu_other_rseq.h - the stand-in for librseq that test_rseq_neighbour loads (pcpu_other_rseq.c). */
#ifndef PCPU_OTHER_RSEQ_H
#define PCPU_OTHER_RSEQ_H

#include <stddef.h>

/* librseq's registration protocol. */
extern ptrdiff_t rseq_offset;
extern unsigned int rseq_size;
int rseq_register_current_thread(void);
int rseq_unregister_current_thread(void);

/* Whether this library owns registration (glibc does not). */
int other_rseq_owned(void);
/* The calling thread's CPU as its area says, negative when unregistered. */
int other_rseq_cpu(void);
/* counts[cpu]++ for the CPU the thread runs on, in a restartable sequence
 * of this library's own; -1 when the thread's area is not registered. */
int other_rseq_inc(long *counts);

#endif
