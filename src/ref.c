/* SPDX-License-Identifier: MIT */
/*
 * ref.c - per-CPU reference counts (the kernel's percpu_ref): the atomic
 * paths and the mode switches.
 *
 * ---- the state --------------------------------------------------------------
 *
 *   mode    0: per-CPU mode; not 0: atomic mode.  The get/put sequences
 *           (percpu.h, pcpu__gated_add) load it inside their critical
 *           section and leave without writing when it is not 0.
 *   pcpu    one unsigned long per unit: the net gets minus puts made there
 *           (wrapping; only the sum means anything).
 *   count   the atomic count, 63 bits, and DEAD in bit 63.  In per-CPU
 *           mode it holds the true count minus the units' sum plus BIAS
 *           (2^61); in atomic mode, the true count.
 *
 * The true count is count - BIAS + sum(units) in per-CPU mode, count in
 * atomic mode.  Gets and puts may land in either place at any time (a
 * sequence that finds the mode word set goes to the atomic count), and
 * both are right: the sum does not care where a reference was counted.
 * The BIAS keeps the atomic count far from zero while part of the count
 * lives in the units, so a put on the atomic count in per-CPU mode (during
 * a switch, or in the atomic fallback) can never look like the last one.
 *
 * ---- switching to atomic mode (kill, switch_to_atomic_sync) ------------------
 *
 * Under the ref's switch lock:
 *   1. mode = 1 (sequentially consistent store);
 *   2. membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ): every sequence
 *      that loaded mode == 0 either committed before the call returned (and
 *      its store is visible to us afterwards), or was running or preempted
 *      and restarts, loads mode == 1 and leaves for the atomic count.  So
 *      from here on no unit changes;
 *   3. sum the units and add (sum - BIAS) to count in one atomic add: the
 *      count becomes the true count in one step, whatever gets and puts
 *      hit the atomic count meanwhile.
 * This is the kernel's scheme with membarrier in the place of the RCU
 * grace period.  kill sets DEAD (an atomic OR on count) before step 1 and
 * calls confirm after step 3, then drops the initial reference with an
 * ordinary put: whichever put brings the count to zero (a fetch-and-sub
 * that saw exactly its own amount) calls release, on its own thread; none
 * can before, since the initial reference is held until then.
 * tryget_live in atomic mode is a compare-and-swap that fails on DEAD or
 * zero, so once confirm runs (after step 3, with DEAD set before step 1)
 * every tryget_live fails: the sequences no longer succeed and the atomic
 * path sees DEAD.
 *
 * ---- switching back (switch_to_percpu, resurrect, reinit) --------------------
 *
 * Add BIAS to count first, then zero every unit (no sequence writes them
 * while mode is 1, and the atomic fallback never does), then mode = 0 with
 * a release store: a sequence that loads mode == 0 finds zeroed units.
 * Adding BIAS first means the atomic count never lacks it while some
 * units may count.
 *
 * ---- the atomic fallback --------------------------------------------------------
 *
 * When the process runs without rseq (pcpu_stats.rseq false: aarch64,
 * fewer units than CPUs, rseq unavailable, or a switch to atomics at run
 * time) the sequences always leave, and gets and puts of a ref in per-CPU
 * mode go to the atomic count (with its BIAS), never to the units.  Every
 * ref is then effectively atomic; the switches still work the same (the
 * units sum to 0, and step 2 is a plain fence: no sequence can commit
 * after the process switched to atomics, see rseq.c).
 *
 * Memory order: a put in per-CPU mode is a plain store on x86, ordered
 * after the thread's earlier writes; step 2 makes it visible to the
 * switcher, whose atomic add (acq_rel) the last put's fetch-and-sub
 * (acq_rel) reads from: so release sees every write made before a put.
 */
#include "clients.h"

#define DEAD ((uint64_t)1 << 63)
#define CMASK (DEAD - 1)
#define BIAS ((uint64_t)1 << 61)

/* ref->flags beyond the PCPU_REF_* given to init. */
#define FORCE_ATOMIC 0x100u /* stay atomic: INIT_ATOMIC or switch_to_atomic_sync */
#define FREED 0x200u        /* the per-CPU part was freed by kill          */

static bool has_units(const struct pcpu_ref *ref)
{
    return ref->pcpu && !(ref->flags & FREED);
}

int pcpu_ref_init(struct pcpu_ref *ref, pcpu_ref_func_t release, unsigned int flags)
{
    unsigned long *p = PCPU_NEW(unsigned long);
    if (!p)
        return -1;
    memset(ref, 0, sizeof(*ref));
    ref->pcpu = p;
    ref->release = release;
    ref->flags = flags & (PCPU_REF_INIT_ATOMIC | PCPU_REF_INIT_DEAD | PCPU_REF_ALLOW_REINIT);
    if (flags & (PCPU_REF_INIT_ATOMIC | PCPU_REF_INIT_DEAD))
        ref->flags |= PCPU_REF_ALLOW_REINIT; /* as the kernel: they will switch */
    if (flags & PCPU_REF_INIT_ATOMIC)
        ref->flags |= FORCE_ATOMIC;
    if (flags & PCPU_REF_INIT_DEAD) {
        ref->mode = 1;
        ref->count = DEAD;
    } else if (flags & PCPU_REF_INIT_ATOMIC) {
        ref->mode = 1;
        ref->count = 1;
    } else {
        ref->count = BIAS + 1;
    }
    __atomic_thread_fence(__ATOMIC_RELEASE);
    return 0;
}

void pcpu_ref_exit(struct pcpu_ref *ref)
{
    if (has_units(ref))
        pcpu_free(ref->pcpu);
    ref->flags |= FREED;
    __atomic_store_n(&ref->mode, 1, __ATOMIC_RELAXED);
}

/* ---- the atomic paths ------------------------------------------------------- */

static _Noreturn void below_zero(struct pcpu_ref *ref, const char *fn)
{
    pcpu__die("percpu: %s: the reference count of %p dropped below zero", fn, (void *)ref);
}

void pcpu__ref_get_slow(struct pcpu_ref *ref, unsigned long n)
{
    __atomic_fetch_add(&ref->count, (uint64_t)n, __ATOMIC_RELAXED);
}

void pcpu__ref_put_slow(struct pcpu_ref *ref, unsigned long n)
{
    uint64_t old = __atomic_fetch_sub(&ref->count, (uint64_t)n, __ATOMIC_ACQ_REL);
    uint64_t cnt = old & CMASK;
    if (unlikely(cnt <= n)) {
        if (cnt < n)
            below_zero(ref, "pcpu_ref_put");
        /* The last reference: release here, on this thread. */
        pcpu__tsan_acquire(PCPU__REF_TSAN_SYNC(ref));
        if (ref->release)
            ref->release(ref);
    }
}

bool pcpu__ref_tryget_slow(struct pcpu_ref *ref, bool live)
{
    uint64_t v = __atomic_load_n(&ref->count, __ATOMIC_RELAXED);
    for (;;) {
        if ((v & CMASK) == 0 || (live && (v & DEAD)))
            return false;
        if (__atomic_compare_exchange_n(&ref->count, &v, v + 1, true, __ATOMIC_ACQUIRE,
                                        __ATOMIC_RELAXED))
            return true;
    }
}

/* ---- the switches (ref->lock held) ---------------------------------------------- */

static void to_atomic_held(struct pcpu_ref *ref, const char *fn)
{
    if (__atomic_load_n(&ref->mode, __ATOMIC_RELAXED))
        return;
    __atomic_store_n(&ref->mode, 1, __ATOMIC_SEQ_CST);
    pcpu__clients_flush();
    /* Every put made in per-CPU mode has finished (the flush restarted
     * those in flight): what they did before happens before the fold, and
     * so before a release that the fold makes possible.  ThreadSanitizer
     * learns it here (see pcpu_ref_put_many). */
    PCPU__TSAN_ACQUIRE(PCPU__REF_TSAN_SYNC(ref));
    unsigned long sum = 0;
    unsigned int n = pcpu_nr_cpus();
    for (unsigned int cpu = 0; cpu < n; cpu++)
        sum += __atomic_load_n(PCPU_PTR(ref->pcpu, cpu), __ATOMIC_RELAXED);
    uint64_t add = (uint64_t)sum - BIAS;
    uint64_t old = __atomic_fetch_add(&ref->count, add, __ATOMIC_ACQ_REL);
    if ((int64_t)(old & CMASK) - (int64_t)BIAS + (int64_t)sum < 0)
        below_zero(ref, fn);
}

static void to_percpu_held(struct pcpu_ref *ref)
{
    if (!__atomic_load_n(&ref->mode, __ATOMIC_RELAXED) || !has_units(ref) ||
        (ref->flags & FORCE_ATOMIC) || (__atomic_load_n(&ref->count, __ATOMIC_RELAXED) & DEAD))
        return;
    __atomic_fetch_add(&ref->count, BIAS, __ATOMIC_RELAXED);
    pcpu_for_each_cpu(cpu) __atomic_store_n(PCPU_PTR(ref->pcpu, cpu), 0, __ATOMIC_RELAXED);
    __atomic_store_n(&ref->mode, 0, __ATOMIC_RELEASE);
}

void pcpu_ref_kill_and_confirm(struct pcpu_ref *ref, pcpu_ref_func_t confirm)
{
    int saved = errno;
    pcpu__mutex_lock(&ref->lock);
    if (__atomic_fetch_or(&ref->count, DEAD, __ATOMIC_SEQ_CST) & DEAD)
        pcpu__die("percpu: pcpu_ref_kill(%p): the reference count is dying already", (void *)ref);
    to_atomic_held(ref, "pcpu_ref_kill");
    if (confirm)
        confirm(ref);
    if (!(ref->flags & PCPU_REF_ALLOW_REINIT) && has_units(ref)) {
        /* No sequence touches the units after the switch (they check the
         * mode word first), so they can go. */
        pcpu_free(ref->pcpu);
        ref->flags |= FREED;
    }
    pcpu__mutex_unlock(&ref->lock);
    errno = saved;
    /* The initial reference; release may run (and free ref) in here. */
    pcpu_ref_put(ref);
}

void pcpu_ref_kill(struct pcpu_ref *ref)
{
    pcpu_ref_kill_and_confirm(ref, NULL);
}

void pcpu_ref_switch_to_atomic_sync(struct pcpu_ref *ref)
{
    int saved = errno;
    pcpu__mutex_lock(&ref->lock);
    ref->flags |= FORCE_ATOMIC;
    to_atomic_held(ref, "pcpu_ref_switch_to_atomic_sync");
    pcpu__mutex_unlock(&ref->lock);
    errno = saved;
}

void pcpu_ref_switch_to_percpu(struct pcpu_ref *ref)
{
    int saved = errno;
    pcpu__mutex_lock(&ref->lock);
    ref->flags &= ~FORCE_ATOMIC;
    to_percpu_held(ref);
    pcpu__mutex_unlock(&ref->lock);
    errno = saved;
}

static void resurrect_held(struct pcpu_ref *ref, const char *fn)
{
    uint64_t v = __atomic_load_n(&ref->count, __ATOMIC_RELAXED);
    for (;;) {
        if (!(v & DEAD))
            pcpu__die("percpu: %s(%p): the reference count is not dead", fn, (void *)ref);
        /* Alive again with the initial reference, in one step. */
        if (__atomic_compare_exchange_n(&ref->count, &v, (v & CMASK) + 1, true,
                                        __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
            break;
    }
    to_percpu_held(ref);
}

void pcpu_ref_resurrect(struct pcpu_ref *ref)
{
    int saved = errno;
    pcpu__mutex_lock(&ref->lock);
    resurrect_held(ref, "pcpu_ref_resurrect");
    pcpu__mutex_unlock(&ref->lock);
    errno = saved;
}

void pcpu_ref_reinit(struct pcpu_ref *ref)
{
    int saved = errno;
    pcpu__mutex_lock(&ref->lock);
    if (!pcpu_ref_is_zero(ref))
        pcpu__die("percpu: pcpu_ref_reinit(%p): the reference count is not zero", (void *)ref);
    resurrect_held(ref, "pcpu_ref_reinit");
    pcpu__mutex_unlock(&ref->lock);
    errno = saved;
}

bool pcpu_ref_is_zero(struct pcpu_ref *ref)
{
    return __atomic_load_n(&ref->mode, __ATOMIC_ACQUIRE) &&
           (__atomic_load_n(&ref->count, __ATOMIC_ACQUIRE) & CMASK) == 0;
}

bool pcpu_ref_is_dying(struct pcpu_ref *ref)
{
    return (__atomic_load_n(&ref->count, __ATOMIC_RELAXED) & DEAD) != 0;
}
