/* SPDX-License-Identifier: MIT */
/*
 * region_lock.h - the lock that serialises changes to a region's
 * directory between processes and threads (region_lock.c).
 */
#ifndef PCPU_REGION_LOCK_H
#define PCPU_REGION_LOCK_H

#include "internal.h"

/* Take the lock whose futex word is @word (in a shared mapping): first
 * this process's own mutex, then the word.  Returns 0; 1 when the word
 * was taken over from an owner that is gone (whatever it was changing
 * may be half done); -1 with errno ETIMEDOUT when one live owner kept it
 * for the whole timeout (then nothing is held). */
PCPU_HIDDEN int pcpu__rlock_acquire(uint32_t *word);
PCPU_HIDDEN void pcpu__rlock_release(uint32_t *word);
/* Whether @w could be a lock word: 0, or one naming a process (alive or
 * not: a dead owner's word is taken over by the next locker). */
PCPU_HIDDEN bool pcpu__rlock_word_plausible(uint32_t w);
/* The calling process's PID namespace (an inode number), 0 if unknown. */
PCPU_HIDDEN uint64_t pcpu__rlock_pidns(void);
/* How long a waiter waits for one live owner (ms); for tests. */
PCPU_HIDDEN void pcpu__rlock_set_timeout(unsigned int ms);
/* The word this process writes as owner (for tests that forge one). */
PCPU_HIDDEN uint32_t pcpu__rlock_owner_word(int pid);

#endif
