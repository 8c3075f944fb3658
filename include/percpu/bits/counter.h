/* SPDX-License-Identifier: MIT */
/*
 * percpu/bits/counter.h - the inline adds of <percpu/counter.h>; slow paths in
 * src/counter.c.  Machinery, not API.
 */
#ifndef PERCPU_BITS_COUNTER_H
#define PERCPU_BITS_COUNTER_H
#ifndef PERCPU_H
#error "<percpu/bits/counter.h> is not for direct inclusion: #include <percpu.h>"
#endif

#include "clients.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Slow paths (src/counter.c).  pcpu__counter_fold(): the sequence found
 * that @v would take the unit's delta to the batch; nothing was written.
 * pcpu__counter_slow(): everything else (an amount outside the batch, a
 * batch out of range, or the thread cannot run the sequence now): returns
 * true when the sequence should run again.  pcpu__counter_note_batch():
 * an add uses a batch larger than any before. */
PCPU__PUBLIC void pcpu__counter_fold(struct pcpu_counter *c, int32_t v, int32_t batch);
PCPU__PUBLIC bool pcpu__counter_slow(struct pcpu_counter *c, int64_t v, int32_t batch);
PCPU__PUBLIC void pcpu__counter_note_batch(struct pcpu_counter *c, int32_t batch);

/* The body of a counter's add sequence, after its own checks: add v to
 * the unit's delta and commit it if |delta + v| < batch, else leave
 * through the C label FULL without writing.  The test in one compare:
 * |delta + v| < batch  <=>  delta + v + batch - 1 < 2 * batch - 1,
 * unsigned (BIAS = batch - 1, RANGE = 2 * batch - 1).  Shared with the
 * fast path of pcpu_counter_limited_add() (src/counter.c). */
#define PCPU__COUNTER_ADD_BODY(FULL)                                      \
    "movl (%[ck], %[tmp]), %[nv]\n\t"                                     \
    "addl %[v], %[nv]\n\t"                                                \
    "leal (%q[nv], %q[bias]), %[t2]\n\t"                                  \
    "cmpl %[range], %[t2]\n\t"                                            \
    "jae %l[" FULL "]\n\t"                                                \
    "movl %[nv], (%[ck], %[tmp])"
#define PCPU__COUNTER_ADD_OUTS(ck)                                        \
    [tmp] "=&r"(tmp), [nv] "=&r"(nv), [t2] "=&r"(t2), PCPU__RSEQ_MEM(32, ck)

/* The add of pcpu_counter_add_batch() once @batch is known to be in range
 * and at most c->max_batch. */
static PCPU__INLINE void pcpu__counter_add(struct pcpu_counter *c, int64_t v, int32_t batch)
{
#if PCPU__RSEQ_ASM
    if (PCPU__LIKELY(v > -(int64_t)batch && v < (int64_t)batch)) {
        const void *ck = c->counters;
        uint32_t bias = (uint32_t)batch - 1, range = 2 * (uint32_t)batch - 1;
        for (;;) {
            uintptr_t tmp;
            uint32_t nv, t2;
            PCPU__CLIENT_SEQ_ANY(PCPU__COUNTER_ADD_BODY("fold"), (PCPU__COUNTER_ADD_OUTS(ck)),
                                 (PCPU__CLIENT_INPUTS(ck), [v] "r"((int32_t)v),
                                  [bias] "r"(bias), [range] "ir"(range)),
                                 ("cc"), slow, fold);
            return;
        fold:
            PCPU__RSEQ_LEFT();
            pcpu__counter_fold(c, (int32_t)v, batch);
            return;
        slow:
            if (!pcpu__counter_slow(c, v, batch))
                return;
        }
    }
#endif
    while (pcpu__counter_slow(c, v, batch))
        ;
}


/* pcpu_counter_add_batch() */
static PCPU__INLINE void pcpu_counter_add_batch(struct pcpu_counter *c, int64_t v, int32_t batch)
{
    if (PCPU__UNLIKELY(batch > __atomic_load_n(&c->max_batch, __ATOMIC_RELAXED) || batch < 1))
        pcpu__counter_note_batch(c, batch);
    if (PCPU__UNLIKELY(batch < 1))
        batch = 1;
    if (PCPU__UNLIKELY(batch > PCPU_COUNTER_MAX_BATCH))
        batch = PCPU_COUNTER_MAX_BATCH;
    pcpu__counter_add(c, v, batch);
}

/* pcpu_counter_add() */
static PCPU__INLINE void pcpu_counter_add(struct pcpu_counter *c, int64_t v)
{
    pcpu__counter_add(c, v, (int32_t)c->batch);
}

/* pcpu_counter_inc() */
static PCPU__INLINE void pcpu_counter_inc(struct pcpu_counter *c)
{
    pcpu__counter_add(c, 1, (int32_t)c->batch);
}

/* pcpu_counter_dec() */
static PCPU__INLINE void pcpu_counter_dec(struct pcpu_counter *c)
{
    pcpu__counter_add(c, -1, (int32_t)c->batch);
}

/* pcpu_counter_read() */
static PCPU__INLINE int64_t pcpu_counter_read(const struct pcpu_counter *c)
{
    return __atomic_load_n(&c->count, __ATOMIC_RELAXED);
}

/* pcpu_counter_read_positive() */
static PCPU__INLINE int64_t pcpu_counter_read_positive(const struct pcpu_counter *c)
{
    int64_t v = pcpu_counter_read(c);
    return v > 0 ? v : 0;
}

#ifdef __cplusplus
}
#endif

#endif /* PERCPU_BITS_COUNTER_H */
