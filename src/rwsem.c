/* SPDX-License-Identifier: MIT */
/*
 * rwsem.c - the per-CPU reader-writer semaphore (the kernel's
 * percpu-rwsem): the readers' slow paths and the writers.
 *
 * ---- the state --------------------------------------------------------------
 *
 *   readers  one unsigned long per unit: readers in minus readers out
 *            counted there (wrapping; a reader may leave on another unit
 *            than it came in on, so only the sum means anything).
 *   block    0: no writer; 1: a writer holds the semaphore or is waiting
 *            for the readers inside; 2: the same, and readers sleep on
 *            this word (futex) until it is 0 again.
 *   wseq     bumped by a reader leaving while a writer waits; the writer
 *            sleeps on it (futex) between looks at the readers' sum.
 *   wlock    a futex mutex: one writer at a time.
 *
 * ---- why a writer excludes readers (rseq) --------------------------------------
 *
 * A reader comes in with one restartable sequence (percpu.h,
 * pcpu__gated_add) that loads block and increments its unit's count only
 * if block was 0.  A writer, holding wlock, sets block = 1 and calls
 * membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ).  Any reader sequence
 * that loaded block == 0 either committed before the call returned --
 * and the call makes that increment visible to the writer -- or had not
 * committed, so it is restarted (or restarts when next scheduled) and
 * loads block == 1.  After the call no reader can come in, and every
 * reader that did is counted; the writer then sleeps until the sum of the
 * counts is 0.  Readers only leave meanwhile, so the sum read unit by unit
 * is at least the true one: 0 means they are all gone.
 *
 * A reader leaving (up_read) decrements its unit's count (a this-CPU
 * operation, the sequence's store) and then loads block; if a writer is
 * there it bumps wseq and wakes it.  No wake-up is lost: if the load saw
 * 0, then the writer's membarrier came after the decrement reached memory
 * (the barrier it runs on the reader's CPU drains the store first) and
 * the writer's sum sees it; the writer reads wseq before each sum and
 * sleeps only while wseq is unchanged.
 *
 * Ordering: the writer's release of block (a release exchange to 0) is
 * loaded by the readers' sequences (an x86 load, ordered before the
 * loads of the critical section; the sequence is a compiler barrier), and
 * the readers' critical sections end with a store ordered before the
 * decrement's commit, which the writer's membarrier or wseq makes visible
 * before it reads the sum (then an acquire fence).
 *
 * ---- without rseq (atomic fallback) ------------------------------------------
 *
 * The readers cannot check block inside a sequence, so they use the order
 * of two full fences instead (the kernel's slow path, a Dekker pattern):
 * increment the current unit's count with a sequentially consistent
 * atomic, then load block.  The writer stores block (sequentially
 * consistent) then reads the counts.  Either the reader sees the writer's
 * block, or the writer sees the reader's increment.  A reader that sees
 * block takes its increment back from the same unit (an atomic on that
 * unit's address, so that the pair cancels out in any sum that includes
 * either), wakes the writer and sleeps until block is 0.
 *
 * Writers are not starved: block is set before a writer waits for the
 * readers, and stops every new one.  Readers waiting for a writer are not
 * queued (see percpu.h).
 */
#include "clients.h"

int pcpu_rwsem_init(struct pcpu_rwsem *s)
{
    unsigned long *p = PCPU_NEW(unsigned long);
    if (!p)
        return -1;
    memset(s, 0, sizeof(*s));
    s->readers = p;
    return 0;
}

void pcpu_rwsem_destroy(struct pcpu_rwsem *s)
{
    if (s->readers)
        pcpu_free(s->readers);
    s->readers = NULL;
}

/* Sleep until no writer holds or waits. */
static void wait_for_writer(struct pcpu_rwsem *s)
{
    uint32_t b = __atomic_load_n(&s->block, __ATOMIC_ACQUIRE);
    while (b != 0) {
        if (b == 1 && !__atomic_compare_exchange_n(&s->block, &b, 2, false, __ATOMIC_RELAXED,
                                                   __ATOMIC_RELAXED))
            continue; /* b is what it is now */
        pcpu__futex_wait(&s->block, 2);
        b = __atomic_load_n(&s->block, __ATOMIC_ACQUIRE);
    }
}

void pcpu__rwsem_wake_writer(struct pcpu_rwsem *s)
{
    __atomic_fetch_add(&s->wseq, 1, __ATOMIC_SEQ_CST);
    pcpu__futex_wake(&s->wseq, 1);
}

bool pcpu__rwsem_down_read_slow(struct pcpu_rwsem *s, bool wait)
{
    int saved = errno;
    for (;;) {
        if (pcpu__rseq_runs_sequences()) {
            if (pcpu__gated_add(s->readers, &s->block, 1))
                break;
            if (pcpu__rseq_runs_sequences()) {
                /* block was not 0: a writer */
                if (!wait) {
                    errno = saved;
                    return false;
                }
                wait_for_writer(s);
                continue;
            }
        }
        unsigned long *p = pcpu__clients_unit(s->readers);
        if (!p)
            continue; /* rseq usable again for this thread: the sequence */
        __atomic_fetch_add(p, 1, __ATOMIC_SEQ_CST);
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        if (__atomic_load_n(&s->block, __ATOMIC_SEQ_CST) == 0)
            break;
        __atomic_fetch_sub(p, 1, __ATOMIC_SEQ_CST);
        pcpu__rwsem_wake_writer(s);
        if (!wait) {
            errno = saved;
            return false;
        }
        wait_for_writer(s);
    }
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    pcpu__tsan_acquire(s);
    errno = saved;
    return true;
}

/* Stop new readers and make every reader that came in visible (see the
 * top); wlock held. */
static void close_door(struct pcpu_rwsem *s)
{
    uint32_t old = __atomic_exchange_n(&s->block, 1, __ATOMIC_SEQ_CST);
    pcpu_assert_internal(old == 0);
    (void)old;
    pcpu__clients_flush();
}

static void open_door(struct pcpu_rwsem *s)
{
    if (__atomic_exchange_n(&s->block, 0, __ATOMIC_RELEASE) == 2)
        pcpu__futex_wake(&s->block, INT_MAX);
}

void pcpu_rwsem_down_write(struct pcpu_rwsem *s)
{
    int saved = errno;
    pcpu__mutex_lock(&s->wlock);
    close_door(s);
    for (;;) {
        uint32_t seq = __atomic_load_n(&s->wseq, __ATOMIC_ACQUIRE);
        if (pcpu_sum(s->readers) == 0)
            break;
        pcpu__futex_wait(&s->wseq, seq);
    }
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    pcpu__tsan_acquire(s);
    errno = saved;
}

bool pcpu_rwsem_down_write_trylock(struct pcpu_rwsem *s)
{
    int saved = errno;
    if (!pcpu__mutex_trylock(&s->wlock))
        return false;
    close_door(s);
    if (pcpu_sum(s->readers) == 0) {
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        pcpu__tsan_acquire(s);
        errno = saved;
        return true;
    }
    open_door(s);
    pcpu__mutex_unlock(&s->wlock);
    errno = saved;
    return false;
}

void pcpu_rwsem_up_write(struct pcpu_rwsem *s)
{
    int saved = errno;
    pcpu__tsan_release(s);
    open_door(s);
    pcpu__mutex_unlock(&s->wlock);
    errno = saved;
}

bool pcpu_rwsem_is_read_locked(struct pcpu_rwsem *s)
{
    return pcpu_sum(s->readers) != 0;
}
