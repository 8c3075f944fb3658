/* SPDX-License-Identifier: MIT */
/*
 * percpu/rwsem.h - the per-CPU reader-writer semaphore (the kernel's
 * percpu-rwsem).
 * Part of <percpu.h>: include that.
 *
 * The kernel's percpu-rwsem: a reader-writer lock for data that is read
 * very often and written rarely.  Taking and releasing it for reading
 * writes no shared cache line while no writer comes; taking it for
 * writing costs a membarrier() (microseconds) and a wait for the readers
 * inside: use it where writes are rare.  How: docs/design.md,
 * "Reader-writer semaphore".
 *
 *      static struct pcpu_rwsem cfg_lock;      pcpu_rwsem_init(&cfg_lock);
 *      pcpu_rwsem_down_read(&cfg_lock);        (readers, any thread)
 *      ... read the configuration ...
 *      pcpu_rwsem_up_read(&cfg_lock);
 *      pcpu_rwsem_down_write(&cfg_lock);       (the rare writer)
 *      ... change it ...
 *      pcpu_rwsem_up_write(&cfg_lock);
 *
 * Readers that find a writer sleep (futex) until it leaves; a writer
 * waiting for the readers inside stops new ones, so writers are not
 * starved.  Writers take turns among themselves (a futex mutex).  Readers
 * are not queued: when a writer leaves, the readers it held off run, but
 * a next writer may close the door again before all of them got in, so a
 * steady stream of writers can delay a reader.
 */
#ifndef PERCPU_RWSEM_H
#define PERCPU_RWSEM_H
#ifndef PERCPU_H
#error "<percpu/rwsem.h> is not for direct inclusion: #include <percpu.h>"
#endif

#ifdef __cplusplus
extern "C" {
#endif

struct pcpu_rwsem {
    unsigned long *readers; /* per-unit reader counts (a cookie)          */
    uint32_t block;         /* 0: no writer; 1: a writer; 2: and sleepers */
    uint32_t wseq;          /* futex word: a draining writer sleeps on it */
    uint32_t wlock;         /* futex mutex between writers                */
};

/**
 * pcpu_rwsem_init - set up a semaphore, unlocked.
 * @s: the semaphore (embedded anywhere).
 *
 * Allocates one unsigned long per unit.  Returns 0, or -1 with errno
 * ENOMEM (nothing allocated).  Thread safety: not concurrently with other
 * calls on @s.  Not async-signal-safe.
 */
PCPU__PUBLIC int pcpu_rwsem_init(struct pcpu_rwsem *s);

/**
 * pcpu_rwsem_destroy - free the per-CPU part of @s.
 * @s: an unlocked semaphore from pcpu_rwsem_init(), or a zero-filled one
 *     (nothing to do).
 *
 * No other call on @s may run during or after it.  Not async-signal-safe.
 */
PCPU__PUBLIC void pcpu_rwsem_destroy(struct pcpu_rwsem *s);

/**
 * pcpu_rwsem_down_read - take @s for reading, sleeping while a writer
 * holds it or waits for it.
 * @s: the semaphore.
 *
 * With no writer around: one restartable sequence (check the writer word,
 * increment the unit's count).  Acquire: what a writer wrote before
 * pcpu_rwsem_up_write() is visible after this returns.  Readers share;
 * the same thread may not take it again while a writer may be waiting
 * (that would deadlock, as with any fair rwlock).
 * Thread safety: any thread.  May sleep; not async-signal-safe.
 */
static PCPU__INLINE void pcpu_rwsem_down_read(struct pcpu_rwsem *s);

/**
 * pcpu_rwsem_down_read_trylock - take @s for reading unless a writer holds
 * it or waits for it.
 * @s: the semaphore.
 *
 * Returns true when it took it (with acquire ordering), false at once
 * otherwise.  Never sleeps.
 * Thread safety: any thread.  Async-signal-safe once the thread has made
 * one this-CPU operation.
 */
static PCPU__INLINE bool pcpu_rwsem_down_read_trylock(struct pcpu_rwsem *s);

/**
 * pcpu_rwsem_up_read - release a read hold of @s.
 * @s: the semaphore, held for reading (by this thread or another: the
 *     hold may be released on another thread or CPU than took it).
 *
 * A this-CPU decrement (the counts only matter summed), then a load of
 * the writer word; if a writer is waiting, a futex wake.  Release: what
 * the reader did before is visible to the next writer.
 * Thread safety: any thread.  Async-signal-safe once the thread has made
 * one this-CPU operation.
 */
static PCPU__INLINE void pcpu_rwsem_up_read(struct pcpu_rwsem *s);

/**
 * pcpu_rwsem_down_write - take @s for writing, sleeping until every reader
 * has left and no other writer holds it.
 * @s: the semaphore.
 *
 * New readers wait from the moment this starts waiting for the readers.
 * Costs a membarrier() (some microseconds) and a wait for the readers
 * inside.  Acquire: what readers did before their pcpu_rwsem_up_read()
 * is visible after this returns.
 * Thread safety: any thread.  May sleep; not async-signal-safe.
 */
PCPU__PUBLIC void pcpu_rwsem_down_write(struct pcpu_rwsem *s);

/**
 * pcpu_rwsem_down_write_trylock - take @s for writing if no writer holds
 * it and no reader is inside.
 * @s: the semaphore.
 *
 * Returns true when it took it.  Never sleeps, but costs a membarrier()
 * (readers that come meanwhile wait for a moment).
 * Thread safety: any thread.  Not async-signal-safe.
 */
PCPU__PUBLIC bool pcpu_rwsem_down_write_trylock(struct pcpu_rwsem *s);

/**
 * pcpu_rwsem_up_write - release @s held for writing, waking the readers
 * and the next writer that wait.
 * @s: the semaphore, held for writing (by any thread).
 *
 * Release: everything written before is visible to the readers and the
 * writer that take it next.
 * Thread safety: any thread.  Not async-signal-safe.
 */
PCPU__PUBLIC void pcpu_rwsem_up_write(struct pcpu_rwsem *s);

/**
 * pcpu_rwsem_is_read_locked - true when some reader holds @s (the sum of
 * the readers' counts is not zero; a snapshot, for assertions).  In the
 * atomic fallback a reader that finds a writer counts for a moment before
 * it backs off, so while a writer holds @s this may say true for an
 * instant although no reader is inside.
 * Thread safety: any thread.  Async-signal-safe.
 */
PCPU__PUBLIC bool pcpu_rwsem_is_read_locked(struct pcpu_rwsem *s);

#ifdef __cplusplus
}
#endif

#include "bits/rwsem.h"

#endif /* PERCPU_RWSEM_H */
