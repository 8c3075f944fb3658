/* SPDX-License-Identifier: MIT */
/*
 * percpu/bits/list.h - the inline push and pop of <percpu/list.h>:
 * restartable sequences on the unit's head, slow paths in src/list.c.
 * Machinery, not API.
 */
#ifndef PERCPU_BITS_LIST_H
#define PERCPU_BITS_LIST_H
#ifndef PERCPU_H
#error "<percpu/bits/list.h> is not for direct inclusion: #include <percpu.h>"
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* The low bits of a unit's head (see src/list.c): a pcpu_list_pop_all() in
 * rseq mode has fenced the unit, or a pop of the atomic fallback holds it.
 * Plain numbers: they are pasted into the sequences. */
#define PCPU__LIST_FENCE 1
#define PCPU__LIST_LOCK 2
#define PCPU__LIST_BITS 3

/* Slow paths (src/list.c).  pcpu__list_push_slow(): NULL when it has
 * pushed the node, else the cookie with which to run the sequence again.
 * pcpu__list_pop_slow(): retry NULL when node is the result, else the
 * cookie with which to run the sequence again. */
struct pcpu__list_slow {
    struct pcpu_list_node *node;
    const void *retry;
};
PCPU__PUBLIC const void *pcpu__list_push_slow(const void *cookie, struct pcpu_list_node *node);
PCPU__PUBLIC struct pcpu__list_slow pcpu__list_pop_slow(const void *cookie);
PCPU__PUBLIC void pcpu__list_bad_node(const void *node);

#if PCPU__RSEQ_ASM
/* A list sequence: as PCPU__SEQ, and a compiler barrier (the node's
 * contents are published or taken with it); volatile, since a push has
 * no output the compiler could see used.  The barrier makes the compiler
 * reload values across a loop of list operations, so the index word's
 * place is an immediate here (a test of the const displacement picks the
 * sequence) rather than one more register to keep or rebuild. */
#define PCPU__LIST_SEQ1(DISP, INSN, OUTS, INS)                            \
    __asm__ __volatile__ goto(                                            \
        PCPU__RSEQ_HEAD_DISP("%[tmp]", "%l[slow]", DISP "(%[rs])")         \
        INSN "\n2:\n\t" PCPU__RSEQ_TAIL                                   \
        : PCPU__UNPAREN OUTS                                              \
        : PCPU__UNPAREN INS                                               \
        : "cc", "memory"                                                  \
        : slow)
#define PCPU__LIST_SEQ(INSN, OUTS, INS)                                   \
    do {                                                                  \
        if (PCPU__LIKELY(pcpu__index_disp == 4))                          \
            PCPU__LIST_SEQ1("4", INSN, OUTS, INS);                        \
        else                                                              \
            PCPU__LIST_SEQ1("24", INSN, OUTS, INS);                       \
    } while (0)
#define PCPU__LIST_INPUTS(cookie_)                                        \
    [rs] "r"(PCPU__RSEQ_AREA_TP),                                         \
    [tc] "r"(&pcpu__thiscpu),                                                  \
    [tab] "i"(offsetof(struct pcpu__thiscpu_state, seq_offs)),             \
    [ck] "r"(cookie_)
#endif

/* pcpu_this_list_push() */
static PCPU__INLINE void pcpu_this_list_push(struct pcpu_list *list,
                                             struct pcpu_list_node *node)
{
    const void *c = list;
#ifndef NDEBUG
    if (PCPU__UNLIKELY((uintptr_t)node & PCPU__LIST_BITS))
        pcpu__list_bad_node(node);
#endif
    PCPU__TSAN_RELEASE(node);
#if PCPU__RSEQ_ASM
    for (;;) {
        uintptr_t tmp, head;
        PCPU__LIST_SEQ("movq (%[ck], %[tmp]), %[head]\n\t"
                           "testb $" PCPU__STR(PCPU__LIST_BITS) ", %b[head]\n\t"
                           "jnz %l[slow]\n\t"
                           "movq %[head], (%[node])\n\t"
                           "movq %[node], (%[ck], %[tmp])",
                           ([tmp] "=&r"(tmp), [head] "=&r"(head)),
                           (PCPU__LIST_INPUTS(c), [node] "r"(node)));
        return;
    slow:
        PCPU__RSEQ_LEFT();
        c = pcpu__list_push_slow(c, node);
        if (!c)
            return;
    }
#else
    while ((c = pcpu__list_push_slow(c, node)) != NULL)
        ;
#endif
}

/* pcpu_this_list_pop() */
static PCPU__INLINE struct pcpu_list_node *pcpu_this_list_pop(struct pcpu_list *list)
{
    const void *c = list;
    struct pcpu__list_slow s;
#if PCPU__RSEQ_ASM
    for (;;) {
        uintptr_t tmp, head, next;
        PCPU__LIST_SEQ("movq (%[ck], %[tmp]), %[head]\n\t"
                           "testb $" PCPU__STR(PCPU__LIST_BITS) ", %b[head]\n\t"
                           "jnz %l[slow]\n\t"
                           "testq %[head], %[head]\n\t"
                           "jz 2f\n\t"
                           "movq (%[head]), %[next]\n\t"
                           "movq %[next], (%[ck], %[tmp])",
                           ([tmp] "=&r"(tmp), [head] "=&r"(head), [next] "=&r"(next)),
                           (PCPU__LIST_INPUTS(c)));
#ifdef PCPU__TSAN
        if (head)
            PCPU__TSAN_ACQUIRE(head);
#endif
        return (struct pcpu_list_node *)head;
    slow:
        PCPU__RSEQ_LEFT();
        s = pcpu__list_pop_slow(c);
        if (!s.retry)
            return s.node;
        c = s.retry;
    }
#else
    for (;;) {
        s = pcpu__list_pop_slow(c);
        if (!s.retry)
            return s.node;
        c = s.retry;
    }
#endif
}

#ifdef __cplusplus
}
#endif

#endif /* PERCPU_BITS_LIST_H */
