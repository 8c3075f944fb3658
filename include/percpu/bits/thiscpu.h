/* SPDX-License-Identifier: MIT */
/*
 * percpu/bits/thiscpu.h - how the this-CPU operations of <percpu/ops.h>
 * are made: the state the inline paths read, the restartable sequences
 * (x86_64), the atomic fallback, and one function per operation, width
 * and type.  Machinery, not API: never use these names.  docs/design.md
 * says why the sequences look the way they do.
 */
#ifndef PERCPU_BITS_THISCPU_H
#define PERCPU_BITS_THISCPU_H
#ifndef PERCPU_H
#error "<percpu/bits/thiscpu.h> is not for direct inclusion: #include <percpu.h>"
#endif

#ifdef __cplusplus
extern "C" {
#endif


/* pcpu__thiscpu.mode */
#define PCPU__MODE_OFF 0u    /* not set up yet: everything takes the slow path */
#define PCPU__MODE_RSEQ 1u   /* restartable sequences (x86_64)                 */
#define PCPU__MODE_ATOMIC 2u /* atomics on the current unit                   */

/* pcpu__thiscpu_slow(): "rseq is usable now, run the sequence again".  No
 * unit is at offset 0 from a cookie (cookies point into a guard area), and
 * a test against 0 needs no register for the constant. */
#define PCPU__RETRY 0

/*
 * Where the sequences find the thread's rseq area: thread pointer +
 * pcpu__rseq_area, the same offset in every thread.  The library chooses
 * the area once, before any code that uses it runs (a constructor of its
 * own): glibc's when glibc registered it (its __rseq_offset), else the one
 * another rseq library already owns (librseq's rseq_offset), else glibc's
 * unregistered area (or one of the library's own with a C library that
 * has none), which the library then registers thread by thread.  const
 * for the code that reads it, like pcpu__index_disp below: the compiler
 * keeps it in a register across a loop of operations.
 */
#ifdef PCPU__LIBRARY_BUILD
PCPU__PUBLIC extern ptrdiff_t pcpu__rseq_area;
#else
PCPU__PUBLIC extern const ptrdiff_t pcpu__rseq_area;
#endif
#define PCPU__RSEQ_CS_TP ((char *)(uintptr_t)(pcpu__rseq_area + 8))
#define PCPU__RSEQ_AREA_TP ((char *)(uintptr_t)pcpu__rseq_area)

/*
 * Everything the inline code reads, in one exported variable.  The thread's
 * index (rseq cpu_id or mm_cid) is the 32-bit word at thread pointer +
 * idx_off (pcpu__rseq_area plus the index word's place in the area).
 * An index i < limit selects offs[i], the
 * cookie-to-copy offset of its unit, so finding the copy is one load.
 * Limits so that each path can be switched off on its own.  The rseq
 * sequences have a table of their own, seq_offs: the same offsets while
 * rseq is in use, 0 (never a unit's offset) for every index that must not
 * use rseq now.  The sequence reads its entry inside the critical section,
 * which is what lets a switch to atomics take effect safely (rseq.c).
 */
struct pcpu__thiscpu_state {
    uint32_t mode;          /* PCPU__TC_*                                  */
    uint32_t pad0_;
    uint32_t atomic_limit;  /* indexes the atomic path may use inline      */
    uint32_t ptr_limit;     /* indexes pcpu_this_ptr() may use inline      */
    intptr_t rseq_off;      /* pcpu__rseq_area                             */
    intptr_t idx_off;       /* the index word, from the thread pointer     */
    char *unused_;          /* (was the rseq_cs offset; pcpu__rseq_area) */
    uint32_t cid;           /* the index is mm_cid, not cpu_id             */
    uint32_t pad32_;
    /* seq_offs[-2] and [-1], always 0: the sequences sign-extend the
     * index word, whose values out of range are -1 (rseq not registered)
     * and -2 (registration failed); see PCPU__RSEQ_HEAD.  They also end
     * the hot cache line, so the tables start on the next. */
    intptr_t seq_neg_[2];
    /* First, so that the sequences reach it with an 8-bit displacement. */
    intptr_t seq_offs[PCPU_MAX_CPUS];
    intptr_t offs[PCPU_MAX_CPUS];
};
PCPU__PUBLIC extern struct pcpu__thiscpu_state pcpu__thiscpu;

#ifdef PCPU__LIBRARY_BUILD
PCPU__PUBLIC extern ptrdiff_t pcpu__index_disp;
#else
PCPU__PUBLIC extern const ptrdiff_t pcpu__index_disp;
#endif
/* pcpu__index_disp: where the sequences read the thread's index in the
 * rseq area: cpu_id (4) or mm_cid (24).  const for the
 * same reason, so that a loop of operations costs no test of the index
 * mode: the library fixes it before any program code runs (from
 * PERCPU_INDEX) and changes it only while no sequence can have run; a
 * configuration that would need it changed later uses atomics instead. */

/*
 * Slow paths.  They take the operation's cookie and hand back the one to
 * use from then on: when a this-CPU operation or pcpu_sum() is the first
 * use after pcpu_exit(), the cookie was computed from a static variable's
 * old placement (PCPU_VAR reads the module's offset before the call
 * initialises the allocator again), and the slow path moves it to the new
 * placement, so that no write lands where the old first chunk was.
 *
 * pcpu__thiscpu_slow(): initialise if needed, register rseq for this
 * thread if the library does it; off is PCPU__RETRY if the rseq
 * sequence should run (again), else the offset of the unit for an atomic
 * operation.  pcpu__thiscpu_ptr_slow(): the current unit's copy.
 * pcpu__sum_slow(): initialise (marking the allocator used) for pcpu_sum().
 */
struct pcpu__unit_at {
    intptr_t off;
    const void *cookie;
};
PCPU__PUBLIC struct pcpu__unit_at pcpu__thiscpu_slow(const void *cookie);
PCPU__PUBLIC void *pcpu__thiscpu_ptr_slow(const void *cookie);
PCPU__PUBLIC const void *pcpu__sum_slow(const void *cookie);

/* The 32-bit word at thread pointer + off; ~0 where it cannot be read. */
static inline uint32_t pcpu__tp_u32(intptr_t off)
{
#if defined(__x86_64__) && defined(__LP64__)
    uint32_t v;
    /* volatile: the kernel rewrites the word whenever the thread moves */
    __asm__ __volatile__("movl %%fs:(%1), %0" : "=r"(v) : "r"(off));
    return v;
#elif defined(__aarch64__)
    return *(volatile uint32_t *)((char *)__builtin_thread_pointer() + off);
#else
    (void)off;
    return ~(uint32_t)0;
#endif
}

static inline uint32_t pcpu__thiscpu_mode(void)
{
    return __atomic_load_n(&pcpu__thiscpu.mode, __ATOMIC_ACQUIRE);
}

/* Where an atomic operation on the current unit goes, or off ==
 * PCPU__RETRY when the rseq sequence should run instead. */
static inline struct pcpu__unit_at pcpu__atomic_at(const void *cookie)
{
    uint32_t lim = __atomic_load_n(&pcpu__thiscpu.atomic_limit, __ATOMIC_ACQUIRE);
    uint32_t idx = pcpu__tp_u32(pcpu__thiscpu.idx_off);
    if (PCPU__LIKELY(idx < lim)) {
        struct pcpu__unit_at s;
        s.off = pcpu__thiscpu.offs[idx];
        s.cookie = cookie;
        return s;
    }
    return pcpu__thiscpu_slow(cookie);
}

/* pcpu_this_ptr() (documented in <percpu/ops.h>). */
static PCPU__INLINE void *pcpu_this_ptr(const void *cookie)
{
    uint32_t lim = __atomic_load_n(&pcpu__thiscpu.ptr_limit, __ATOMIC_ACQUIRE);
    uint32_t idx = pcpu__tp_u32(pcpu__thiscpu.idx_off);
    if (PCPU__LIKELY(idx < lim))
        return (char *)(uintptr_t)cookie + pcpu__thiscpu.offs[idx];
    return pcpu__thiscpu_ptr_slow(cookie);
}

#if defined(__x86_64__) && defined(__LP64__) && defined(__GNUC__)
#define PCPU__RSEQ_ASM 1

/*
 * Signature in front of every abort handler: the kernel only jumps to an
 * abort address preceded by the value the thread registered with.  glibc
 * uses this one on x86, so it is the only one that works with its area.
 */
#define PCPU__RSEQ_SIG 0x53053053

/*
 * The start of every sequence.  Label 3: the descriptor (version 0, no
 * flags, the section [1, 2), abort at 4), and its address in
 * __rseq_cs_ptr_array for tools.  Label 0 arms it by storing its address in
 * rseq_cs (the kernel clears rseq_cs when it aborts, so the abort handler
 * comes back here, not to 1).  Label 1 starts the critical section: read
 * the index word sign-extended, load the unit offset into TMP from
 * pcpu__thiscpu.seq_offs and leave through FAIL if it is 0 (both inside the
 * section, so a migration or a switch to atomics restarts it).  The
 * commit instruction that follows must end at label 2.
 *
 * No bound check: the index word is either a CPU id or mm_cid, below the
 * kernel's CPU count (at most 8192 on x86_64, PCPU_MAX_CPUS; the library
 * does not use rseq on a kernel built for more, see rseq.c), or one of the
 * values out of range, -1 (not registered: glibc's "uninitialised", the
 * library's own area) and -2 (registration failed), which land on
 * seq_neg_, always 0.
 *
 * So the sequence has the three loads any rseq increment needs (the
 * index, the offset, the object) and one test.  Reading the index and
 * the offset before the section instead, and inside only comparing the
 * index word again (librseq's shape: benchmark figure inc.rseq_cmp), adds
 * instructions and saves nothing measurable (docs/design.md, "The shape
 * of a sequence").  Disarming after the commit in shared objects
 * (PCPU__RSEQ_DISARM, one store) keeps dlclose() safe.
 *
 * A 0 in seq_offs means: the allocator is not set up, rseq is not in use,
 * or the index is beyond the units (mm_cid of a thread past them); the
 * slow path tells which.
 */
#define PCPU__RSEQ_HEAD(TMPQ, FAIL)                                       \
    PCPU__RSEQ_HEAD_DISP(TMPQ, FAIL, "(%[rs], %[ixd])")
/* The same with the index word at IX (a memory operand, %fs implied). */
#define PCPU__RSEQ_HEAD_DISP(TMPQ, FAIL, IX)                              \
    ".pushsection __rseq_cs, \"aw\"\n\t"                                  \
    ".balign 32\n"                                                        \
    "3:\n\t"                                                              \
    ".long 0, 0\n\t"                                                      \
    ".quad 1f, 2f - 1f, 4f\n\t"                                           \
    ".popsection\n\t"                                                     \
    ".pushsection __rseq_cs_ptr_array, \"aw\"\n\t"                        \
    ".quad 3b\n\t"                                                        \
    ".popsection\n"                                                       \
    "0:\n\t"                                                              \
    "leaq 3b(%%rip), " TMPQ "\n\t"                                        \
    "movq " TMPQ ", %%fs:8(%[rs])\n"                                      \
    "1:\n\t"                                                              \
    "movslq %%fs:" IX ", " TMPQ "\n\t"                                    \
    "movq %c[tab](%[tc], " TMPQ ", 8), " TMPQ "\n\t"                      \
    "testq " TMPQ ", " TMPQ "\n\t"                                        \
    "jz " FAIL "\n\t"

/*
 * After the commit (label 2): in code built for a shared object, clear
 * rseq_cs, so that no thread keeps a descriptor of a module that may be
 * dlclose()d (see "Modules" above).  Every other way out of a sequence
 * clears it too: the kernel does when it aborts one, the slow paths
 * always do (pcpu__seq_fallback()), and the C code at every other early
 * exit calls PCPU__RSEQ_LEFT().  A thread preempted between the
 * commit and this store is still running the module's code, which nobody
 * may unload under it.
 */
#ifndef PCPU_DISARM_AFTER_SEQ
#if defined(__PIC__) && !defined(__PIE__)
#define PCPU_DISARM_AFTER_SEQ 1
#else
#define PCPU_DISARM_AFTER_SEQ 0
#endif
#endif
#if PCPU_DISARM_AFTER_SEQ
#define PCPU__RSEQ_DISARM "movq $0, %%fs:8(%[rs])\n\t"
#define PCPU__RSEQ_LEFT() \
    __asm__ __volatile__("movq $0, %%fs:(%0)" : : "r"(PCPU__RSEQ_CS_TP))
#else
#define PCPU__RSEQ_DISARM ""
#define PCPU__RSEQ_LEFT() ((void)0)
#endif

/* The abort handler lives out of line, after the signature; TAIL starts
 * at label 2 with the disarm. */
#define PCPU__RSEQ_TAIL                                                   \
    PCPU__RSEQ_DISARM                                                     \
    ".pushsection __rseq_failure, \"ax\"\n\t"                             \
    ".long " PCPU__STR(PCPU__RSEQ_SIG) "\n"                               \
    "4:\n\t"                                                              \
    "jmp 0b\n\t"                                                          \
    ".popsection\n"

/* One sequence: head, the commit instruction INSN (ending at label 2),
 * tail; OUTS and INS are parenthesised operand lists.  Leaves through the
 * caller's label slow. */
#define PCPU__SEQ(INSN, OUTS, INS)                                        \
    __asm__ goto(PCPU__RSEQ_HEAD("%[tmp]", "%l[slow]")                     \
                 INSN "\n2:\n\t" PCPU__RSEQ_TAIL                          \
                 : PCPU__UNPAREN OUTS                                      \
                 : PCPU__UNPAREN INS                                       \
                 : "cc"                                                    \
                 : slow)

#define PCPU__RSEQ_INPUTS(cookie_)                                        \
    [rs] "r"(PCPU__RSEQ_AREA_TP),                                         \
    [ixd] "r"(pcpu__index_disp),                                           \
    [tc] "r"(&pcpu__thiscpu),                                                  \
    [tab] "i"(offsetof(struct pcpu__thiscpu_state, seq_offs)),             \
    [ck] "r"(cookie_), [tcm] "m"(pcpu__thiscpu)

/*
 * What a sequence writes, for the compiler: some unit's copy of the
 * object, which lies somewhere above the cookie (units follow the guard
 * area the cookie points into).  The operand is typed with the object's
 * width (a union of the integer types of that width, so it aliases every
 * object the operation can be applied to, signed or not) rather than char:
 * that keeps the library's own pointer-typed state out of its reach, so
 * the compiler does not reload it after every update.  (Only the 1-byte
 * operations cannot have that: every 1-byte type is a character type.)
 * Like the kernel's this_cpu ops, the sequences are not compiler barriers
 * for other memory.
 */
union pcpu__units8 {
    unsigned char uc[(size_t)1 << 44]; /* char aliases everything anyway */
};
union pcpu__units16 {
    unsigned short us[(size_t)1 << 43];
};
union pcpu__units32 {
    unsigned int u[(size_t)1 << 42];
};
union pcpu__units64 {
    unsigned long ul[(size_t)1 << 41];
    unsigned long long ull[(size_t)1 << 41];
};
#define PCPU__RSEQ_MEM(W, cookie_)                                        \
    [mem] "+m"(*(union pcpu__units##W *)(uintptr_t)(cookie_))
#else
#define PCPU__RSEQ_ASM 0
#endif

/*
 * The width-specific operations; W is 8, 16, 32 or 64, SFX the instruction suffix,
 * VC the constraint for an immediate operand.  Each loops only when the
 * mode changes under it (first use, or a switch to atomics).
 */
#if PCPU__RSEQ_ASM
/* The memory operand names the whole area above the cookie (see
 * PCPU__RSEQ_MEM); compilers that know the object's real size would warn
 * about that on every use, so the warning is off for these functions. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Warray-bounds"
/*
 * After a sequence left through its slow exit (index out of range: rseq
 * not set up yet, this thread not registered yet, or the process switched
 * to atomics): off is PCPU__RETRY to run the sequence again, or the
 * offset of the current unit for an atomic operation.
 */
static inline struct pcpu__unit_at pcpu__seq_fallback(const void *cookie)
{
    if (pcpu__thiscpu_mode() == PCPU__MODE_ATOMIC) {
        /* The sequence armed rseq_cs before finding its entry closed:
         * disarm it (wherever the sequence lives: this thread may never
         * run a sequence to its commit again, and an executable's own
         * sequences do not disarm). */
        __asm__ __volatile__("movq $0, %%fs:(%0)" : : "r"(PCPU__RSEQ_CS_TP) : "memory");
        return pcpu__atomic_at(cookie);
    }
    return pcpu__thiscpu_slow(cookie);
}

/*
 * The frame of every operation: SEQ (declarations, then the sequence,
 * which leaves through the label slow) and RESULT (its return) run first;
 * the fast path is the sequence alone, with no mode test before it, since
 * the table entry it checks inside is 0 whenever rseq must not be used.
 * ATOMIC is the same operation as an atomic on PCPU__AT(W), the current
 * unit's copy, for when rseq is not in use.
 */
#define PCPU__AT(W) ((uint##W##_t *)((char *)(uintptr_t)c + s_.off))
#define PCPU__OP_FRAME(SEQ, RESULT, ATOMIC)                                     \
    struct pcpu__unit_at s_;                                                       \
    for (;;) {                                                                  \
        uintptr_t tmp;                                                          \
        SEQ;                                                                    \
        RESULT;                                                                 \
    slow: PCPU__COLD_LABEL                                                      \
        s_ = pcpu__seq_fallback(c);                                              \
        c = s_.cookie;                                                          \
        if (s_.off != PCPU__RETRY)                                           \
            break;                                                              \
    }                                                                           \
    ATOMIC

#define PCPU__THIS_RSEQ_OPS(W, SFX, VC)                                         \
static PCPU__INLINE void pcpu__this_add##W(const void *c, uint##W##_t v)              \
{                                                                               \
    PCPU__OP_FRAME(                                                             \
        PCPU__SEQ("add" SFX " %[v], (%[ck], %[tmp])",                      \
                      ([tmp] "=&r"(tmp), PCPU__RSEQ_MEM(W, c)),                 \
                      (PCPU__RSEQ_INPUTS(c), [v] VC(v))),                       \
        return,                                                                 \
        __atomic_fetch_add(PCPU__AT(W), v, __ATOMIC_RELAXED);)                  \
}                                                                               \
static PCPU__INLINE void pcpu__this_write##W(const void *c, uint##W##_t v)            \
{                                                                               \
    PCPU__OP_FRAME(                                                             \
        PCPU__SEQ("mov" SFX " %[v], (%[ck], %[tmp])",                      \
                      ([tmp] "=&r"(tmp), PCPU__RSEQ_MEM(W, c)),                 \
                      (PCPU__RSEQ_INPUTS(c), [v] VC(v))),                       \
        return,                                                                 \
        __atomic_store_n(PCPU__AT(W), v, __ATOMIC_RELAXED);)                    \
}                                                                               \
static PCPU__INLINE uint##W##_t pcpu__this_add_return##W(const void *c, uint##W##_t v) \
{                                                                               \
    /* xadd without lock: one instruction, so a commit on this CPU */           \
    PCPU__OP_FRAME(                                                             \
        uint##W##_t old = v;                                                    \
        PCPU__SEQ("xadd" SFX " %[old], (%[ck], %[tmp])",                   \
                      ([old] "+r"(old), [tmp] "=&r"(tmp), PCPU__RSEQ_MEM(W, c)), \
                      (PCPU__RSEQ_INPUTS(c))),                                  \
        return (uint##W##_t)(old + v),                                          \
        return __atomic_add_fetch(PCPU__AT(W), v, __ATOMIC_RELAXED);)           \
}                                                                               \
static PCPU__INLINE uint##W##_t pcpu__this_cmpxchg##W(const void *c, uint##W##_t old, \
                                                uint##W##_t nv)                 \
{                                                                               \
    /* Load, compare, and commit with a plain store only when equal: an        \
     * unlocked cmpxchg would write the old value back on failure and lose    \
     * another CPU's atomic update of this unit made in between. */           \
    PCPU__OP_FRAME(                                                             \
        uint##W##_t seen;                                                       \
        PCPU__SEQ("mov" SFX " (%[ck], %[tmp]), %[seen]\n\t"                \
                      "cmp" SFX " %[seen], %[old]\n\t"                          \
                      "jne 2f\n\t"                                              \
                      "mov" SFX " %[nv], (%[ck], %[tmp])",                     \
                      ([seen] "=&r"(seen), [tmp] "=&r"(tmp), PCPU__RSEQ_MEM(W, c)), \
                      (PCPU__RSEQ_INPUTS(c), [old] "r"(old), [nv] "r"(nv))),    \
        return seen,                                                            \
        uint##W##_t seen = old;                                                 \
        __atomic_compare_exchange_n(PCPU__AT(W), &seen, nv, 0, __ATOMIC_RELAXED, \
                                    __ATOMIC_RELAXED);                          \
        return seen;)                                                           \
}                                                                               \
static PCPU__INLINE uint##W##_t pcpu__this_xchg##W(const void *c, uint##W##_t nv)     \
{                                                                               \
    /* Load, then commit the new value with a plain store (xchg with a         \
     * memory operand is always locked). */                                     \
    PCPU__OP_FRAME(                                                             \
        uint##W##_t old;                                                        \
        PCPU__SEQ("mov" SFX " (%[ck], %[tmp]), %[old]\n\t"                 \
                      "mov" SFX " %[nv], (%[ck], %[tmp])",                     \
                      ([old] "=&r"(old), [tmp] "=&r"(tmp), PCPU__RSEQ_MEM(W, c)), \
                      (PCPU__RSEQ_INPUTS(c), [nv] VC(nv))),                     \
        return old,                                                             \
        return __atomic_exchange_n(PCPU__AT(W), nv, __ATOMIC_RELAXED);)         \
}                                                                               \
static PCPU__INLINE void pcpu__this_and##W(const void *c, uint##W##_t v)              \
{                                                                               \
    PCPU__OP_FRAME(                                                             \
        PCPU__SEQ("and" SFX " %[v], (%[ck], %[tmp])",                      \
                      ([tmp] "=&r"(tmp), PCPU__RSEQ_MEM(W, c)),                 \
                      (PCPU__RSEQ_INPUTS(c), [v] VC(v))),                       \
        return,                                                                 \
        __atomic_fetch_and(PCPU__AT(W), v, __ATOMIC_RELAXED);)                  \
}                                                                               \
static PCPU__INLINE void pcpu__this_or##W(const void *c, uint##W##_t v)               \
{                                                                               \
    PCPU__OP_FRAME(                                                             \
        PCPU__SEQ("or" SFX " %[v], (%[ck], %[tmp])",                       \
                      ([tmp] "=&r"(tmp), PCPU__RSEQ_MEM(W, c)),                 \
                      (PCPU__RSEQ_INPUTS(c), [v] VC(v))),                       \
        return,                                                                 \
        __atomic_fetch_or(PCPU__AT(W), v, __ATOMIC_RELAXED);)                   \
}
PCPU__THIS_RSEQ_OPS(8, "b", "ir")
PCPU__THIS_RSEQ_OPS(16, "w", "ir")
PCPU__THIS_RSEQ_OPS(32, "l", "ir")
PCPU__THIS_RSEQ_OPS(64, "q", "er")
#pragma GCC diagnostic pop
#else /* no rseq sequences: atomics on the current unit */
#define PCPU__AT(W) ((uint##W##_t *)((char *)(uintptr_t)c + s_.off))
/* ATOMIC as above; the slow path never asks for a sequence here, but a
 * retry is harmless. */
#define PCPU__OP_FRAME(SEQ, RESULT, ATOMIC)                                     \
    struct pcpu__unit_at s_;                                                       \
    while (PCPU__UNLIKELY((s_ = pcpu__atomic_at(c)).off == PCPU__RETRY))  \
        c = s_.cookie;                                                          \
    c = s_.cookie;                                                              \
    ATOMIC
#define PCPU__THIS_ATOMIC_OPS(W)                                                \
static PCPU__INLINE void pcpu__this_add##W(const void *c, uint##W##_t v)              \
{ PCPU__OP_FRAME(, , __atomic_fetch_add(PCPU__AT(W), v, __ATOMIC_RELAXED);) }    \
static PCPU__INLINE void pcpu__this_write##W(const void *c, uint##W##_t v)            \
{ PCPU__OP_FRAME(, , __atomic_store_n(PCPU__AT(W), v, __ATOMIC_RELAXED);) }      \
static PCPU__INLINE uint##W##_t pcpu__this_add_return##W(const void *c, uint##W##_t v) \
{ PCPU__OP_FRAME(, , return __atomic_add_fetch(PCPU__AT(W), v, __ATOMIC_RELAXED);) } \
static PCPU__INLINE uint##W##_t pcpu__this_cmpxchg##W(const void *c, uint##W##_t old, \
                                                uint##W##_t nv)                 \
{                                                                               \
    PCPU__OP_FRAME(, ,                                                          \
        __atomic_compare_exchange_n(PCPU__AT(W), &old, nv, 0, __ATOMIC_RELAXED, \
                                    __ATOMIC_RELAXED);                          \
        return old;)                                                            \
}                                                                               \
static PCPU__INLINE uint##W##_t pcpu__this_xchg##W(const void *c, uint##W##_t v)      \
{ PCPU__OP_FRAME(, , return __atomic_exchange_n(PCPU__AT(W), v, __ATOMIC_RELAXED);) } \
static PCPU__INLINE void pcpu__this_and##W(const void *c, uint##W##_t v)              \
{ PCPU__OP_FRAME(, , __atomic_fetch_and(PCPU__AT(W), v, __ATOMIC_RELAXED);) }    \
static PCPU__INLINE void pcpu__this_or##W(const void *c, uint##W##_t v)               \
{ PCPU__OP_FRAME(, , __atomic_fetch_or(PCPU__AT(W), v, __ATOMIC_RELAXED);) }
PCPU__THIS_ATOMIC_OPS(8)
PCPU__THIS_ATOMIC_OPS(16)
PCPU__THIS_ATOMIC_OPS(32)
PCPU__THIS_ATOMIC_OPS(64)
#endif

/*
 * Reads and sums need no sequence: a relaxed load of whole words.  A sum
 * before the allocator is in use goes through pcpu__sum_slow() first (see
 * there): it is what marks the static layout as read.
 */
#define PCPU__THIS_READ_OPS(W)                                                  \
static PCPU__INLINE uint##W##_t pcpu__this_read##W(const void *c)                     \
{                                                                               \
    return __atomic_load_n((uint##W##_t *)pcpu_this_ptr(c), __ATOMIC_RELAXED);  \
}                                                                               \
static PCPU__INLINE uint##W##_t pcpu__sum##W(const void *c)                           \
{                                                                               \
    uint##W##_t sum = 0;                                                        \
    if (PCPU__UNLIKELY(pcpu__thiscpu_mode() == PCPU__MODE_OFF))                        \
        c = pcpu__sum_slow(c);                                                  \
    unsigned int n = __atomic_load_n(&pcpu__nr_units, __ATOMIC_ACQUIRE);        \
    for (unsigned int i = 0; i < n; i++)                                        \
        sum = (uint##W##_t)(sum +                                               \
              __atomic_load_n((uint##W##_t *)((char *)(uintptr_t)c +            \
                                              pcpu__cpu_offsets[i]),            \
                              __ATOMIC_RELAXED));                               \
    return sum;                                                                 \
}
PCPU__THIS_READ_OPS(8)
PCPU__THIS_READ_OPS(16)
PCPU__THIS_READ_OPS(32)
PCPU__THIS_READ_OPS(64)

/*
 * One family of typed wrappers per C integer type.  Arithmetic is done on
 * the unsigned type of the same width, so signed objects wrap around like
 * the kernel's this_cpu ops instead of overflowing; values are converted to
 * the object's type first, so a negative int added to a long or unsigned
 * long is sign-extended exactly as with "x += v", and an int added to a
 * char is truncated to the char's width exactly as with "x += v".
 *
 * BITS: the operations that make sense on bool too (read, write, xchg,
 * the compares, and, or); ARITH: the others (add and sub in their forms,
 * pcpu_sum()).
 */
#define PCPU__THIS_TYPED_BITS(name, T, W)                                       \
static PCPU__INLINE T pcpu__this_read_##name(const void *c)                           \
{ return (T)pcpu__this_read##W(c); }                                            \
static PCPU__INLINE void pcpu__this_write_##name(const void *c, T v)                  \
{ pcpu__this_write##W(c, (uint##W##_t)v); }                                     \
static PCPU__INLINE T pcpu__this_xchg_##name(const void *c, T v)                      \
{ return (T)pcpu__this_xchg##W(c, (uint##W##_t)v); }                            \
static PCPU__INLINE void pcpu__this_and_##name(const void *c, T v)                    \
{ pcpu__this_and##W(c, (uint##W##_t)v); }                                       \
static PCPU__INLINE void pcpu__this_or_##name(const void *c, T v)                     \
{ pcpu__this_or##W(c, (uint##W##_t)v); }                                        \
static PCPU__INLINE T pcpu__this_cmpxchg_##name(const void *c, T o, T n)              \
{ return (T)pcpu__this_cmpxchg##W(c, (uint##W##_t)o, (uint##W##_t)n); }         \
static PCPU__INLINE bool pcpu__this_try_cmpxchg_##name(const void *c, T *o, T n)      \
{                                                                               \
    uint##W##_t want = (uint##W##_t)*o;                                         \
    uint##W##_t seen = pcpu__this_cmpxchg##W(c, want, (uint##W##_t)n);          \
    if (PCPU__LIKELY(seen == want))                                             \
        return true;                                                            \
    *o = (T)seen;                                                               \
    return false;                                                               \
}
#define PCPU__THIS_TYPED_ARITH(name, T, W)                                      \
static PCPU__INLINE void pcpu__this_add_##name(const void *c, T v)                    \
{ pcpu__this_add##W(c, (uint##W##_t)v); }                                       \
static PCPU__INLINE void pcpu__this_sub_##name(const void *c, T v)                    \
{ pcpu__this_add##W(c, (uint##W##_t)((uint##W##_t)0 - (uint##W##_t)v)); }       \
static PCPU__INLINE void pcpu__this_inc_##name(const void *c)                         \
{ pcpu__this_add##W(c, 1); }                                                    \
static PCPU__INLINE void pcpu__this_dec_##name(const void *c)                         \
{ pcpu__this_add##W(c, (uint##W##_t)~(uint##W##_t)0); }                         \
static PCPU__INLINE T pcpu__this_add_return_##name(const void *c, T v)                \
{ return (T)pcpu__this_add_return##W(c, (uint##W##_t)v); }                      \
static PCPU__INLINE T pcpu__this_sub_return_##name(const void *c, T v)                \
{                                                                               \
    return (T)pcpu__this_add_return##W(                                         \
        c, (uint##W##_t)((uint##W##_t)0 - (uint##W##_t)v));                     \
}                                                                               \
static PCPU__INLINE T pcpu__this_inc_return_##name(const void *c)                     \
{ return (T)pcpu__this_add_return##W(c, 1); }                                   \
static PCPU__INLINE T pcpu__this_dec_return_##name(const void *c)                     \
{ return (T)pcpu__this_add_return##W(c, (uint##W##_t)~(uint##W##_t)0); }        \
static PCPU__INLINE T pcpu__sum_##name(const void *c)                                 \
{ return (T)pcpu__sum##W(c); }
#define PCPU__THIS_TYPED(name, T, W)                                            \
    PCPU__THIS_TYPED_BITS(name, T, W)                                           \
    PCPU__THIS_TYPED_ARITH(name, T, W)

#if __SIZEOF_LONG__ == 8
#define PCPU__LONG_BITS 64
#else
#define PCPU__LONG_BITS 32
#endif
#define PCPU__THIS_TYPED_(name, T, W) PCPU__THIS_TYPED(name, T, W)
PCPU__THIS_TYPED_BITS(bool, bool, 8)
PCPU__THIS_TYPED(char, char, 8)
PCPU__THIS_TYPED(schar, signed char, 8)
PCPU__THIS_TYPED(uchar, unsigned char, 8)
PCPU__THIS_TYPED(short, short, 16)
PCPU__THIS_TYPED(ushort, unsigned short, 16)
PCPU__THIS_TYPED(int, int, 32)
PCPU__THIS_TYPED(uint, unsigned int, 32)
PCPU__THIS_TYPED_(long, long, PCPU__LONG_BITS)
PCPU__THIS_TYPED_(ulong, unsigned long, PCPU__LONG_BITS)
PCPU__THIS_TYPED(llong, long long, 64)
PCPU__THIS_TYPED(ullong, unsigned long long, 64)

#ifndef __cplusplus
/*
 * Dispatch on the type of *cookie.  Any other type (float, pointers,
 * structs, void; bool for the arithmetic) has no association and fails to
 * compile.  The intN_t/uintN_t types are among these (int8_t is signed
 * char, uint16_t unsigned short, and so on).
 */
#define PCPU__GENERIC_INTS(op)                                                  \
        char: pcpu__##op##_char,                                                \
        signed char: pcpu__##op##_schar,                                        \
        unsigned char: pcpu__##op##_uchar,                                      \
        short: pcpu__##op##_short,                                              \
        unsigned short: pcpu__##op##_ushort,                                    \
        int: pcpu__##op##_int,                                                  \
        unsigned int: pcpu__##op##_uint,                                        \
        long: pcpu__##op##_long,                                                \
        unsigned long: pcpu__##op##_ulong,                                      \
        long long: pcpu__##op##_llong,                                          \
        unsigned long long: pcpu__##op##_ullong
#define PCPU__THIS_GENERIC(cookie, op) _Generic(*(cookie), PCPU__GENERIC_INTS(op))
/* The same, bool included. */
#define PCPU__THIS_GENERIC_B(cookie, op)                                        \
    _Generic(*(cookie), bool: pcpu__##op##_bool, PCPU__GENERIC_INTS(op))
#endif /* !__cplusplus */

#ifdef __cplusplus
}
#endif

#endif /* PERCPU_BITS_THISCPU_H */
