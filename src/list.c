/* SPDX-License-Identifier: MIT */
/*
 * list.c - per-CPU lists: the slow paths of push and pop, and
 * pcpu_list_pop_all().
 *
 * A unit's list is one word, its head: a node pointer whose two low bits
 * are free (nodes are at least 4-byte aligned) and carry
 *   FENCE (bit 0)  a pcpu_list_pop_all() in rseq mode is taking the list;
 *   LOCK  (bit 1)  a pop of the atomic fallback is taking a node.
 * Two protocols share that word, one per mode of the this-CPU operations
 * (thiscpu.c); the modes are global, so at any time one of them is in use,
 * except across the one-way switch from rseq to atomics (see the end).
 *
 * ---- rseq mode -----------------------------------------------------------
 *
 * push and pop are restartable sequences (percpu.h): each loads the head
 * of the unit of the CPU it runs on (the mm_cid's unit in CID mode), tests
 * the two bits, and commits with one plain store; pop also loads
 * head->next in between.  Between the load and the commit nothing else can
 * change that head: the only code that writes a unit's head with sequences
 * runs on that unit's CPU (holds that cid), and the kernel restarts a
 * sequence that is preempted, migrated or signalled before its commit.  So
 * the head a pop commits is the next of a node that is still the first on
 * the list: no ABA, and no node can be freed under the load of its next.
 *
 * The one writer that is not on that CPU is pcpu_list_pop_all() from
 * another thread.  Its atomic exchange alone would race with a sequence
 * that loaded the head before it and commits after it (the plain store
 * would bring the taken list back).  So it fences the unit first:
 *
 *   1. block signals (a handler on this thread must not find the unit
 *      fenced by the code it interrupted: it would wait for ever), and take
 *      the spin lock of this (list, unit) in a small hashed table, so that
 *      only one caller fences a given unit at a time;
 *   2. set FENCE with an atomic OR (a full barrier on x86);
 *   3. membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ): every CPU that
 *      runs one of our threads (only the unit's CPU with
 *      MEMBARRIER_CMD_FLAG_CPU in CPU mode) is interrupted; a sequence in
 *      flight there is restarted, one preempted elsewhere restarts when it
 *      runs again, and the kernel orders our OR before everything those
 *      CPUs do afterwards;
 *   4. load the head again.  If FENCE is still set, it has been set
 *      continuously since step 2: only the lock holder sets it, and the
 *      only thing that can clear it is the plain commit of a sequence that
 *      loaded the head before step 2 -- which, had it committed after
 *      step 3, would have been restarted instead.  Every sequence that
 *      loads the head from now on sees FENCE and leaves for the slow path
 *      without writing; every one that loaded it before step 2 has either
 *      committed (before step 3, and FENCE would be gone) or will restart.
 *      So from here on the head changes by atomics only.  If FENCE is gone,
 *      such a commit overwrote it: go back to step 2;
 *   5. take the list and lift the fence in one atomic exchange (a
 *      compare-and-swap that waits for LOCK, see the end), release the
 *      spin lock, restore the signal mask.
 * The slow path of a sequence that found FENCE waits until it is gone and
 * runs the sequence again; it holds nothing meanwhile, so a signal handler
 * may do the same, and the fencer never waits for it.  An empty unit is
 * answered with one load and no fence: that load is a moment when the
 * list was empty.  Ordering of the nodes' contents: the sequences are x86
 * code (stores are seen in order), a pusher's stores to its node precede
 * its commit, and pcpu_list_pop_all() reads the head with an atomic.
 *
 * ---- atomic fallback ------------------------------------------------------
 *
 * No sequences, no plain stores: every change of a head is an atomic.
 *   push: a compare-and-swap loop (node->next = head, then head = node),
 *         keeping the two bits as they are.  Never waits.
 *   pop:  set LOCK with a compare-and-swap (unless the list is empty); while
 *         LOCK is held nobody else removes nodes, so the first node and its
 *         next stay what they are except that pushes may put new nodes in
 *         front; unlink the first node with a compare-and-swap that also
 *         clears LOCK, retrying after pushes.  A popped node therefore
 *         cannot come back as the head under another pop in progress (the
 *         ABA of a plain Treiber stack), and no pop reads the next of a
 *         node that another pop has already taken.
 *   pcpu_list_pop_all(): the same lock, then head = 0 (bits kept).
 * Signal handlers: a pop (or pop_all) on a thread that is already inside
 * one (a TLS depth counter) must not wait for LOCK -- the code it
 * interrupted may hold it.  It makes one attempt and, if LOCK is held,
 * returns NULL as if the list were empty (documented in percpu.h).  Since
 * a thread that waits for a lock holds none, no cycle of waiting threads
 * can form.
 *
 * ---- the switch from rseq to atomics ---------------------------------------
 *
 * thiscpu.c closes every thread's sequences, restarts them with
 * membarrier, and only then publishes the atomic mode: a thread that acts
 * on the atomic mode can no longer meet a plain commit.  What can still be
 * in progress is a pcpu_list_pop_all() of the rseq protocol, with FENCE
 * set.  Hence the atomic protocol keeps FENCE untouched and ignores it
 * (it is only a message to the sequences), and the rseq protocol's
 * exchange in step 5 waits while LOCK is held: the two can interleave
 * without either losing the other's nodes.
 */
#include "internal.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define FENCE ((uintptr_t)PCPU__LIST_FENCE)
#define LOCK ((uintptr_t)PCPU__LIST_LOCK)
#define BITS ((uintptr_t)PCPU__LIST_BITS)

/* membarrier (linux/membarrier.h) */
#define MB_PRIVATE_EXPEDITED_RSEQ (1 << 7)
#define MB_FLAG_CPU (1 << 0)

static inline struct pcpu_list_node *node_of(uintptr_t head)
{
    return (struct pcpu_list_node *)(head & ~BITS);
}

/* Busy-wait politely: pause a while, then give the CPU away (the holder
 * may be waiting for it).  sched_yield() is a plain system call, fine in a
 * signal handler. */
static void relax(unsigned int *spins)
{
    if (++*spins < 64) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#elif defined(__aarch64__)
        __asm__ __volatile__("yield");
#endif
        return;
    }
    sched_yield();
}

void pcpu__list_bad_node(const void *node)
{
    pcpu__die("percpu: list node %p is not aligned to 4 bytes", node);
}

/* ---- atomic fallback ------------------------------------------------------ */

/* How deep the calling thread is in atomic pops and pop_alls: more than 0
 * on entry means a signal handler interrupted one of them. */
static __thread unsigned int pop_depth __attribute__((tls_model("initial-exec")));

static bool pop_enter(void)
{
    unsigned int d = pop_depth;
    pop_depth = d + 1;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    return d != 0;
}

static void pop_leave(void)
{
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    pop_depth--;
}

static void atomic_push(uintptr_t *h, struct pcpu_list_node *node)
{
    uintptr_t cur = __atomic_load_n(h, __ATOMIC_RELAXED);
    do {
        node->next = node_of(cur);
    } while (!__atomic_compare_exchange_n(h, &cur, (uintptr_t)node | (cur & BITS), true,
                                          __ATOMIC_RELEASE, __ATOMIC_RELAXED));
}

/* Take LOCK of *h.  Returns the head with LOCK set, or 0 when the list is
 * empty, or (nested only) when LOCK is held by someone. */
static uintptr_t atomic_lock(uintptr_t *h, bool nested)
{
    unsigned int spins = 0;
    uintptr_t cur = __atomic_load_n(h, __ATOMIC_ACQUIRE);
    for (;;) {
        if (!node_of(cur))
            return 0;
        if (cur & LOCK) {
            if (nested)
                return 0;
            relax(&spins);
            cur = __atomic_load_n(h, __ATOMIC_ACQUIRE);
            continue;
        }
        if (__atomic_compare_exchange_n(h, &cur, cur | LOCK, true, __ATOMIC_ACQUIRE,
                                        __ATOMIC_ACQUIRE))
            return cur | LOCK;
    }
}

static struct pcpu_list_node *atomic_pop(uintptr_t *h)
{
    bool nested = pop_enter();
    struct pcpu_list_node *top = NULL;
    uintptr_t cur = atomic_lock(h, nested);
    if (cur) {
        /* Ours until LOCK is cleared: only pushes change the head now, and
         * only by putting nodes in front, so a failed compare-and-swap just
         * means a new first node (whose next the pusher wrote before
         * publishing it). */
        for (;;) {
            top = node_of(cur);
            uintptr_t next = (uintptr_t)__atomic_load_n(&top->next, __ATOMIC_RELAXED);
            if (__atomic_compare_exchange_n(h, &cur, next | (cur & FENCE), false,
                                            __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
                break;
        }
        PCPU__TSAN_ACQUIRE(top);
    }
    pop_leave();
    return top;
}

static uintptr_t atomic_pop_all(uintptr_t *h)
{
    bool nested = pop_enter();
    uintptr_t cur = atomic_lock(h, nested), got = 0;
    if (cur) {
        while (!__atomic_compare_exchange_n(h, &cur, cur & FENCE, false, __ATOMIC_ACQ_REL,
                                            __ATOMIC_ACQUIRE))
            ;
        got = cur & ~BITS;
    }
    pop_leave();
    return got;
}

/* ---- the slow paths of the sequences -------------------------------------- */

/*
 * In rseq mode, when the sequence could have run (the table entry of the
 * thread's index is open), what sent it here is FENCE: wait until the
 * current unit is not fenced and say so (true: run the sequence again).
 * The unit may change meanwhile (migration); the wait follows it.
 * false: the usual slow path must decide (first use, atomics, ...).
 */
static bool wait_unfenced(const void *cookie)
{
#if PCPU__RSEQ_ASM
    unsigned int spins = 0;
    for (;;) {
        if (__atomic_load_n(&pcpu__thiscpu.mode, __ATOMIC_ACQUIRE) != PCPU__MODE_RSEQ)
            return false;
        uint32_t idx = pcpu__tp_u32(pcpu__thiscpu.idx_off);
        intptr_t off = idx < PCPU_MAX_CPUS
                           ? __atomic_load_n(&pcpu__thiscpu.seq_offs[idx], __ATOMIC_ACQUIRE)
                           : 0;
        if (!off)
            return false;
        const uintptr_t *h = (const uintptr_t *)((const char *)cookie + off);
        /* (LOCK: the process has just switched to atomics, which the
         * next round sees.) */
        if (!(__atomic_load_n(h, __ATOMIC_ACQUIRE) & BITS))
            return true;
        relax(&spins);
    }
#else
    (void)cookie;
    return false;
#endif
}

/* The usual slow path: off PCPU__RETRY (run the sequence again), or
 * the current unit for the atomic protocol. */
static struct pcpu__unit_at fallback(const void *cookie)
{
#if PCPU__RSEQ_ASM
    return pcpu__seq_fallback(cookie);
#else
    return pcpu__atomic_at(cookie);
#endif
}

const void *pcpu__list_push_slow(const void *cookie, struct pcpu_list_node *node)
{
    int saved = errno;
    const void *retry = cookie;
    if ((uintptr_t)node & BITS)
        pcpu__list_bad_node(node);
    if (!wait_unfenced(cookie)) {
        struct pcpu__unit_at s = fallback(cookie);
        retry = s.cookie;
        if (s.off != PCPU__RETRY) {
            atomic_push((uintptr_t *)(void *)((char *)(uintptr_t)s.cookie + s.off), node);
            retry = NULL;
        }
    }
    errno = saved;
    return retry;
}

struct pcpu__list_slow pcpu__list_pop_slow(const void *cookie)
{
    int saved = errno;
    struct pcpu__list_slow r = {NULL, cookie};
    if (!wait_unfenced(cookie)) {
        struct pcpu__unit_at s = fallback(cookie);
        r.retry = s.cookie;
        if (s.off != PCPU__RETRY) {
            r.node = atomic_pop((uintptr_t *)(void *)((char *)(uintptr_t)s.cookie + s.off));
            r.retry = NULL;
        }
    }
    errno = saved;
    return r;
}

/* ---- pcpu_list_pop_all() in rseq mode -------------------------------------- */

#define NR_FENCE_LOCKS 64
static struct {
    int held;
    char pad_[64 - sizeof(int)];
} fence_locks[NR_FENCE_LOCKS] __attribute__((aligned(64)));

static int *fence_lock_of(const uintptr_t *h)
{
    uintptr_t x = (uintptr_t)h;
    x ^= x >> 17;
    x *= 0x9e3779b97f4a7c15ull;
    return &fence_locks[(x >> 40) % NR_FENCE_LOCKS].held;
}

static void fence_lock(int *l)
{
    unsigned int spins = 0;
    while (__atomic_exchange_n(l, 1, __ATOMIC_ACQUIRE))
        relax(&spins);
}

static void fence_unlock(int *l)
{
    __atomic_store_n(l, 0, __ATOMIC_RELEASE);
}

/* fork(): no fence may be in progress in the child (its owner does not
 * exist there), so the parent waits for those in progress and holds every
 * lock across the fork.  A fence is only held with signals blocked, so
 * the thread calling fork() holds none of them. */
static void fork_prepare(void)
{
    for (int i = 0; i < NR_FENCE_LOCKS; i++)
        fence_lock(&fence_locks[i].held);
}

static void fork_release(void)
{
    for (int i = NR_FENCE_LOCKS - 1; i >= 0; i--)
        fence_unlock(&fence_locks[i].held);
}

__attribute__((constructor)) static void list_atfork(void)
{
    pthread_atfork(fork_prepare, fork_release, fork_release);
}

/* The OS CPU whose sequences write unit @unit (CPU mode), or -1 if none
 * does: the inverse of the index -> offset table thiscpu.c fills in. */
static int os_cpu_of(unsigned int unit)
{
    uint32_t n = __atomic_load_n(&pcpu__thiscpu.ptr_limit, __ATOMIC_ACQUIRE);
    intptr_t off = pcpu__cpu_offsets[unit];
    for (uint32_t id = 0; id < n; id++)
        if (pcpu__thiscpu.offs[id] == off)
            return (int)id;
    return -1;
}

/* -1: the kernel refused MEMBARRIER_CMD_FLAG_CPU once, do not ask again. */
static int flag_cpu_ok = 1;

/* Restart every sequence in flight (or preempted) that may write @unit. */
static void restart_sequences(unsigned int unit)
{
    if (!__atomic_load_n(&pcpu__thiscpu.cid, __ATOMIC_RELAXED)) { /* CPU mode */
        int cpu = os_cpu_of(unit);
        if (cpu < 0)
            return; /* no CPU maps to this unit: no sequence writes it */
        if (__atomic_load_n(&flag_cpu_ok, __ATOMIC_RELAXED) > 0) {
            if (syscall(SYS_membarrier, MB_PRIVATE_EXPEDITED_RSEQ, MB_FLAG_CPU, cpu) == 0)
                return;
            if (errno != EINVAL)
                pcpu__die("percpu: membarrier(PRIVATE_EXPEDITED_RSEQ, cpu %d) failed: %s", cpu,
                          strerror(errno));
            __atomic_store_n(&flag_cpu_ok, -1, __ATOMIC_RELAXED);
        }
    }
    if (syscall(SYS_membarrier, MB_PRIVATE_EXPEDITED_RSEQ, 0, 0) != 0)
        pcpu__die("percpu: membarrier(PRIVATE_EXPEDITED_RSEQ) failed: %s", strerror(errno));
}

/* Steps 1-5 of the opening comment. */
static uintptr_t fenced_pop_all(uintptr_t *h, unsigned int unit)
{
    if (__atomic_load_n(h, __ATOMIC_ACQUIRE) == 0)
        return 0;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int *lock = fence_lock_of(h);
    fence_lock(lock);
    do {
        __atomic_fetch_or(h, FENCE, __ATOMIC_SEQ_CST);
        restart_sequences(unit);
    } while (!(__atomic_load_n(h, __ATOMIC_SEQ_CST) & FENCE));
    /* Fenced: from here on only atomics change *h. */
    unsigned int spins = 0;
    uintptr_t cur = __atomic_load_n(h, __ATOMIC_ACQUIRE);
    for (;;) {
        if (cur & LOCK) {
            /* an atomic-mode pop, after a switch to atomics */
            relax(&spins);
            cur = __atomic_load_n(h, __ATOMIC_ACQUIRE);
            continue;
        }
        if (__atomic_compare_exchange_n(h, &cur, 0, true, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
            break;
    }
    fence_unlock(lock);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return cur & ~BITS;
}

struct pcpu_list_node *pcpu_list_pop_all(struct pcpu_list *list, unsigned int cpu)
{
    int saved = errno;
    const void *c = list;
    if (unlikely(__atomic_load_n(&pcpu__thiscpu.mode, __ATOMIC_ACQUIRE) == PCPU__MODE_OFF))
        c = pcpu__sum_slow(c); /* initialise; a stale static cookie moves */
    unsigned int n = __atomic_load_n(&pcpu__nr_units, __ATOMIC_ACQUIRE);
    if (unlikely(cpu >= n))
        pcpu__die("percpu: pcpu_list_pop_all: cpu %u out of range (pcpu_nr_cpus() is %u)",
                  cpu, n);
    uintptr_t *h = (uintptr_t *)(void *)((char *)(uintptr_t)c + pcpu__cpu_offsets[cpu]);
    uintptr_t got;
    if (__atomic_load_n(&pcpu__thiscpu.mode, __ATOMIC_ACQUIRE) == PCPU__MODE_RSEQ)
        got = fenced_pop_all(h, cpu);
    else
        got = atomic_pop_all(h);
#ifdef PCPU__TSAN
    for (struct pcpu_list_node *n = node_of(got); n; n = n->next)
        PCPU__TSAN_ACQUIRE(n);
#endif
    errno = saved;
    return node_of(got);
}
