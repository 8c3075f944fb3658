/* SPDX-License-Identifier: MIT */
/*
 * percpu/bits/rwsem.h - the inline read lock and unlock of <percpu/rwsem.h>;
 * slow paths in src/rwsem.c.  Machinery, not API.
 */
#ifndef PERCPU_BITS_RWSEM_H
#define PERCPU_BITS_RWSEM_H
#ifndef PERCPU_H
#error "<percpu/bits/rwsem.h> is not for direct inclusion: #include <percpu.h>"
#endif

#include "clients.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Slow paths (src/rwsem.c). */
PCPU__PUBLIC bool pcpu__rwsem_down_read_slow(struct pcpu_rwsem *s, bool wait);
PCPU__PUBLIC void pcpu__rwsem_wake_writer(struct pcpu_rwsem *s);


/* pcpu_rwsem_down_read() */
static PCPU__INLINE void pcpu_rwsem_down_read(struct pcpu_rwsem *s)
{
    if (PCPU__LIKELY(pcpu__gated_add(s->readers, &s->block, 1))) {
        PCPU__TSAN_ACQUIRE(s);
        return;
    }
    (void)pcpu__rwsem_down_read_slow(s, true);
}

/* pcpu_rwsem_down_read_trylock() */
static PCPU__INLINE bool pcpu_rwsem_down_read_trylock(struct pcpu_rwsem *s)
{
    if (PCPU__LIKELY(pcpu__gated_add(s->readers, &s->block, 1))) {
        PCPU__TSAN_ACQUIRE(s);
        return true;
    }
    return pcpu__rwsem_down_read_slow(s, false);
}

/* pcpu_rwsem_up_read() */
static PCPU__INLINE void pcpu_rwsem_up_read(struct pcpu_rwsem *s)
{
    PCPU__TSAN_RELEASE(s);
#if defined(__x86_64__)
    /* The sequence (rseq) is a plain store, in order after the reader's
     * accesses on x86; the writer's membarrier supplies the fence before
     * the load below.  The atomic fallback's decrement is locked: a full
     * fence.  Only the compiler must be kept from moving things across. */
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    pcpu_this_dec(s->readers);
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
#else
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    pcpu_this_dec(s->readers);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
#endif
    if (PCPU__UNLIKELY(__atomic_load_n(&s->block, __ATOMIC_RELAXED) != 0))
        pcpu__rwsem_wake_writer(s);
}

#ifdef __cplusplus
}
#endif

#endif /* PERCPU_BITS_RWSEM_H */
