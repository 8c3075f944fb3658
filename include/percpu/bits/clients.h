/* SPDX-License-Identifier: MIT */
/*
 * percpu/bits/clients.h - the sequences of the counters, references and the semaphore: "add
 * unless" a condition holds, checked inside the critical section (see
 * docs/design.md, "Clients").  Machinery, not API.
 */
#ifndef PERCPU_BITS_CLIENTS_H
#define PERCPU_BITS_CLIENTS_H
#ifndef PERCPU_H
#error "<percpu/bits/clients.h> is not for direct inclusion: #include <percpu.h>"
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* A client sequence: as PCPU__SEQ, with exits of its own besides slow
 * (the C labels after CLOBBERS) and its own clobbers.  As the list
 * sequences do, the index word's place is an immediate (a test of the
 * const displacement picks the sequence), which saves a register: the
 * counter's sequence needs many.  volatile: a sequence whose outputs
 * are unused (a reference's get) must still run. */
#if PCPU__RSEQ_ASM
#define PCPU__CLIENT_SEQ1(DISP, BODY, OUTS, INS, CLOBBERS, ...)                 \
    __asm__ __volatile__ goto(PCPU__RSEQ_HEAD_DISP("%[tmp]", "%l[slow]", DISP "(%[rs])") \
                 BODY "\n2:\n\t" PCPU__RSEQ_TAIL                                  \
                 : PCPU__UNPAREN OUTS                                             \
                 : PCPU__UNPAREN INS                                              \
                 : PCPU__UNPAREN CLOBBERS                                         \
                 : __VA_ARGS__)
#define PCPU__CLIENT_SEQ_ANY(BODY, OUTS, INS, CLOBBERS, ...)                    \
    do {                                                                         \
        if (PCPU__LIKELY(pcpu__index_disp == 4))                                 \
            PCPU__CLIENT_SEQ1("4", BODY, OUTS, INS, CLOBBERS, __VA_ARGS__);      \
        else                                                                     \
            PCPU__CLIENT_SEQ1("24", BODY, OUTS, INS, CLOBBERS, __VA_ARGS__);     \
    } while (0)
#define PCPU__CLIENT_INPUTS(cookie_)                                            \
    [rs] "r"(PCPU__RSEQ_AREA_TP),                                                \
    [tc] "r"(&pcpu__thiscpu),                                                         \
    [tab] "i"(offsetof(struct pcpu__thiscpu_state, seq_offs)),                   \
    [ck] "r"(cookie_), [tcm] "m"(pcpu__thiscpu)
#endif

/*
 * Add @v to the current unit's copy of the unsigned long at @cookie, in
 * one sequence that first checks that the 32-bit word *@gate is 0.
 * Returns true when it added; false when *@gate was not 0, or when the
 * thread cannot use rseq now (the process runs on atomics): then nothing
 * was written and the caller takes its slow path.  A compiler barrier
 * (the sequence commits what came before it and what follows stays
 * after); with x86's ordering the commit is a release store and the gate
 * load an acquire.
 */
static PCPU__INLINE bool pcpu__gated_add(unsigned long *cookie, const uint32_t *gate,
                                         unsigned long v)
{
#if PCPU__RSEQ_ASM
    const void *c = cookie;
    for (;;) {
        uintptr_t tmp;
        PCPU__CLIENT_SEQ_ANY("cmpl $0, %[gate]\n\t"
                             "jne %l[closed]\n\t"
                             "addq %[v], (%[ck], %[tmp])",
                             ([tmp] "=&r"(tmp)),
                             (PCPU__CLIENT_INPUTS(c), [gate] "m"(*gate), [v] "er"(v)),
                             ("cc", "memory"), slow, closed);
        return true;
    closed:
        PCPU__RSEQ_LEFT();
        return false;
    slow:
        if (pcpu__seq_fallback(c).off != PCPU__RETRY)
            return false;
    }
#else
    (void)cookie;
    (void)gate;
    (void)v;
    return false;
#endif
}

#ifdef __cplusplus
}
#endif

#endif /* PERCPU_BITS_CLIENTS_H */
