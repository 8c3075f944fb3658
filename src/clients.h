/* SPDX-License-Identifier: MIT */
/*
 * clients.h - what the clients (counter.c, ref.c, rwsem.c) share: futex
 * waits and wake-ups, a small futex mutex, and the fence that makes a
 * word checked inside restartable sequences take effect everywhere.
 *
 * The clients sit on top of the API layer (see internal.h): they use the
 * public header and, from below, only internal.h's messages and rseq.h's
 * answer to "are the sequences in use".
 *
 * Names: a client function ending in _held runs with its object's own
 * lock held (the counter's or the reference's futex mutex); _locked, as
 * everywhere in the library, means the allocator's lock (pool.c).
 */
#ifndef PCPU_CLIENTS_H
#define PCPU_CLIENTS_H

#include "internal.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "rseq.h"

/* membarrier (linux/membarrier.h) */
#define PCPU_CLIENT_MB_RSEQ (1 << 7)

/* Sleep while *w == val (or until woken; spurious returns are fine: every
 * caller checks its condition again).  errno is kept. */
static inline void pcpu__futex_wait(uint32_t *w, uint32_t val)
{
    int saved = errno;
    syscall(SYS_futex, w, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
    errno = saved;
}

static inline void pcpu__futex_wake(uint32_t *w, int n)
{
    int saved = errno;
    syscall(SYS_futex, w, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
    errno = saved;
}

/*
 * A mutex in one word (0 free, 1 held, 2 held and someone sleeps), after
 * Drepper's "Futexes are tricky": a short spin first, since the clients
 * hold it for a handful of instructions.  Acquire on lock, release on
 * unlock.
 */
static inline bool pcpu__mutex_trylock(uint32_t *m)
{
    uint32_t free_ = 0;
    return __atomic_compare_exchange_n(m, &free_, 1, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED);
}

static inline void pcpu__mutex_lock(uint32_t *m)
{
    if (likely(pcpu__mutex_trylock(m)))
        return;
    for (int i = 0; i < 100; i++) {
        pcpu__cpu_relax();
        if (__atomic_load_n(m, __ATOMIC_RELAXED) == 0 && pcpu__mutex_trylock(m))
            return;
    }
    while (__atomic_exchange_n(m, 2, __ATOMIC_ACQUIRE) != 0)
        pcpu__futex_wait(m, 2);
}

static inline void pcpu__mutex_unlock(uint32_t *m)
{
    if (__atomic_exchange_n(m, 0, __ATOMIC_RELEASE) == 2)
        pcpu__futex_wake(m, 1);
}

/*
 * After a word that client sequences check inside their critical section
 * has changed: make sure no sequence that read the old value can still
 * commit.  With rseq, membarrier(PRIVATE_EXPEDITED_RSEQ) restarts every
 * sequence in flight on the CPUs running this process (one preempted
 * elsewhere restarts when it runs again) and orders the change before
 * what those CPUs do next, and their earlier stores before what the
 * caller does next.  Without rseq no sequence commits (the switch to
 * atomics restarted them all before publishing the atomic mode), and the
 * fallbacks order themselves; a full fence is all that is needed.
 */
static inline void pcpu__clients_flush(void)
{
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (!pcpu__rseq_runs_sequences())
        return;
    int saved = errno;
    if (syscall(SYS_membarrier, PCPU_CLIENT_MB_RSEQ, 0, 0) != 0)
        pcpu__die("percpu: membarrier(PRIVATE_EXPEDITED_RSEQ) failed: %s", strerror(errno));
    errno = saved;
}

/*
 * The current unit's copy of @cookie for the atomic fallback, or NULL
 * when the thread should run its sequence again (rseq became usable for
 * it: the first operation of a thread comes here).
 */
static inline void *pcpu__clients_unit(const void *cookie)
{
#if PCPU__RSEQ_ASM
    struct pcpu__unit_at s = pcpu__seq_fallback(cookie);
#else
    struct pcpu__unit_at s = pcpu__atomic_at(cookie);
#endif
    if (s.off == PCPU__RETRY)
        return NULL;
    return (char *)(uintptr_t)s.cookie + s.off;
}

/* ThreadSanitizer cannot see the sequences' stores (see percpu.h). */
#define pcpu__tsan_acquire(p) PCPU__TSAN_ACQUIRE(p)
#define pcpu__tsan_release(p) PCPU__TSAN_RELEASE(p)

#endif /* PCPU_CLIENTS_H */
