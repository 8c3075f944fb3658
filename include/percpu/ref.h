/* SPDX-License-Identifier: MIT */
/*
 * percpu/ref.h - per-CPU reference counts (the kernel's percpu_ref).
 * Part of <percpu.h>: include that.
 *
 * The kernel's percpu_ref: a reference count for an object that many
 * threads get and put often and that is torn down once.  While the ref is
 * live it is in per-CPU mode: a get or a put is one restartable sequence
 * on the calling thread's unit (no shared cache line).  pcpu_ref_kill()
 * switches it to atomic mode (one shared count) and drops the initial
 * reference; from then on the count can reach zero, and the put (or kill)
 * that brings it there calls the release function.
 *
 *      struct config { struct pcpu_ref ref; ... };
 *      static void config_release(struct pcpu_ref *r)
 *      {
 *          free(container_of(r, struct config, ref));
 *      }
 *      pcpu_ref_init(&cfg->ref, config_release, 0);     (count 1)
 *      if (pcpu_ref_tryget_live(&cfg->ref)) {           (readers)
 *          use(cfg);
 *          pcpu_ref_put(&cfg->ref);
 *      }
 *      pcpu_ref_kill(&cfg->ref);                        (retire it)
 *
 * Without rseq (the atomic fallback) a ref in per-CPU mode counts on its
 * shared atomic count, so every ref behaves as in atomic mode, at the cost
 * of a shared cache line; the switches and their guarantees are the same.
 * How the switch works: docs/design.md, "Reference counts".
 *
 * Limitations: in per-CPU mode a put below zero cannot be seen (the sum
 * is only taken at a switch; then it stops the process).  Without
 * PCPU_REF_ALLOW_REINIT (or PCPU_REF_INIT_ATOMIC / PCPU_REF_INIT_DEAD,
 * which imply it) pcpu_ref_kill() frees the per-CPU part, so a
 * resurrected ref stays in atomic mode.  The count must not reach zero in
 * per-CPU mode (puts beyond the gets, without kill): a switch that then
 * finds it zero calls no release.
 */
#ifndef PERCPU_REF_H
#define PERCPU_REF_H
#ifndef PERCPU_H
#error "<percpu/ref.h> is not for direct inclusion: #include <percpu.h>"
#endif

#ifdef __cplusplus
extern "C" {
#endif

struct pcpu_ref;
typedef void (*pcpu_ref_func_t)(struct pcpu_ref *ref);

#define PCPU_REF_INIT_ATOMIC 0x1u  /* start in atomic mode (and stay there) */
#define PCPU_REF_INIT_DEAD 0x2u    /* start dead, count 0 (resurrect/reinit) */
#define PCPU_REF_ALLOW_REINIT 0x4u /* keep the per-CPU part after kill      */

struct pcpu_ref {
    uint32_t mode;            /* not 0: atomic mode (the sequences leave)   */
    uint32_t lock;            /* futex word: mode switches take turns       */
    unsigned long *pcpu;      /* per-unit counts (a cookie) or NULL          */
    uint64_t count;           /* the atomic count, bit 63: dead              */
    pcpu_ref_func_t release;
    pcpu_ref_func_t confirm;  /* of the kill in progress                     */
    unsigned int flags;       /* PCPU_REF_* and PCPU__REF_*                  */
};

/**
 * pcpu_ref_init - set up a reference count: count 1, live, per-CPU mode.
 * @ref:     the ref (embedded in the object it counts).
 * @release: called once when the count drops to zero after
 *           pcpu_ref_kill(), on the thread whose put (or kill) dropped it;
 *           may free the object.  May be NULL.
 * @flags:   0, or PCPU_REF_INIT_ATOMIC (atomic mode until
 *           pcpu_ref_switch_to_percpu()), PCPU_REF_INIT_DEAD (count 0,
 *           dying: every tryget fails until pcpu_ref_resurrect() or
 *           pcpu_ref_reinit()), PCPU_REF_ALLOW_REINIT (keep the per-CPU
 *           part after pcpu_ref_kill(), for pcpu_ref_reinit()).
 *
 * Allocates one unsigned long per unit.  Returns 0, or -1 with errno
 * ENOMEM (nothing allocated).  Thread safety: not concurrently with other
 * calls on @ref.  Not async-signal-safe.
 */
PCPU__PUBLIC int pcpu_ref_init(struct pcpu_ref *ref, pcpu_ref_func_t release, unsigned int flags);

/**
 * pcpu_ref_exit - free the per-CPU part of @ref.
 * @ref: a ref from pcpu_ref_init(), killed and released (or never used),
 *       or zero-filled (nothing to do).
 *
 * No get, put or other call on @ref may run during or after it (until
 * pcpu_ref_init() again).  Not async-signal-safe.
 */
PCPU__PUBLIC void pcpu_ref_exit(struct pcpu_ref *ref);

/**
 * pcpu_ref_get_many - take @n references.
 * @ref: the ref; the caller must already hold a reference, or otherwise
 *       know that the count cannot drop to zero meanwhile.
 * @n:   how many.
 *
 * Per-CPU mode: one restartable sequence on the calling unit (it checks
 * the mode word inside).  Atomic mode and the atomic fallback: one atomic
 * add.  Never sleeps.
 * Thread safety: any thread, also during a mode switch.  Async-signal-safe
 * once the thread has made one this-CPU operation.
 */
static PCPU__INLINE void pcpu_ref_get_many(struct pcpu_ref *ref, unsigned long n);

/**
 * pcpu_ref_get - take a reference (pcpu_ref_get_many() of 1).
 * Thread safety: any thread.  Async-signal-safe once the thread has made
 * one this-CPU operation.
 */
static PCPU__INLINE void pcpu_ref_get(struct pcpu_ref *ref);

/**
 * pcpu_ref_put_many - drop @n references.
 * @ref: the ref.
 * @n:   how many (the caller holds them).
 *
 * Per-CPU mode: one restartable sequence.  Atomic mode: one atomic
 * subtraction; if it brings the count to zero, the release function runs
 * here, on this thread, before this returns (it may free @ref: do not
 * touch @ref after a put that may have been the last).  Everything this
 * thread wrote before the put is visible to the release function.  A
 * count that would drop below zero stops the process with a message
 * naming @ref.  Never sleeps (the release function may).
 * Thread safety: any thread, also during a mode switch.  Async-signal-safe
 * once the thread has made one this-CPU operation (the release function
 * then runs in the handler, if this put is the last).
 */
static PCPU__INLINE void pcpu_ref_put_many(struct pcpu_ref *ref, unsigned long n);

/**
 * pcpu_ref_put - drop a reference (pcpu_ref_put_many() of 1).
 * Thread safety: any thread.  Async-signal-safe once the thread has made
 * one this-CPU operation.
 */
static PCPU__INLINE void pcpu_ref_put(struct pcpu_ref *ref);

/**
 * pcpu_ref_tryget - take a reference unless the count has reached zero.
 * @ref: the ref.
 *
 * Returns true when it took one.  In per-CPU mode it always succeeds (the
 * initial reference is still held); in atomic mode it fails once the
 * count is zero (a released ref, or one started with
 * PCPU_REF_INIT_DEAD).  Never sleeps.
 * Thread safety: any thread.  Async-signal-safe once the thread has made
 * one this-CPU operation.
 */
static PCPU__INLINE bool pcpu_ref_tryget(struct pcpu_ref *ref);

/**
 * pcpu_ref_tryget_live - take a reference unless the ref is dying.
 * @ref: the ref.
 *
 * Returns true when it took one.  Fails once pcpu_ref_kill() has begun
 * and the ref has left per-CPU mode: certainly from the moment the kill's
 * confirm function runs (or pcpu_ref_kill() returns) until
 * pcpu_ref_resurrect() or pcpu_ref_reinit().  Never sleeps.
 * Thread safety: any thread.  Async-signal-safe once the thread has made
 * one this-CPU operation.
 */
static PCPU__INLINE bool pcpu_ref_tryget_live(struct pcpu_ref *ref);

/**
 * pcpu_ref_kill_and_confirm - mark @ref dying, switch it to atomic mode,
 * call @confirm, and drop the initial reference.
 * @ref:     a live ref (killing one twice stops the process with a
 *           message naming it).
 * @confirm: NULL, or called once the switch is complete, before this
 *           returns: from then on every pcpu_ref_tryget_live() fails.
 *
 * Waits for the per-CPU updates in flight (membarrier) and sums the
 * units into the atomic count.  If dropping the initial reference brings
 * the count to zero, the release function runs here, after @confirm (it
 * may free @ref).  Without PCPU_REF_ALLOW_REINIT the per-CPU part is
 * freed.  Gets and puts may run concurrently on any thread; no reference
 * is lost or counted twice.
 * Thread safety: any thread; switches of one ref take turns.  May sleep;
 * not async-signal-safe.
 */
PCPU__PUBLIC void pcpu_ref_kill_and_confirm(struct pcpu_ref *ref, pcpu_ref_func_t confirm);

/**
 * pcpu_ref_kill - pcpu_ref_kill_and_confirm() without a confirm function.
 * Thread safety: any thread.  May sleep; not async-signal-safe.
 */
PCPU__PUBLIC void pcpu_ref_kill(struct pcpu_ref *ref);

/**
 * pcpu_ref_switch_to_atomic_sync - put @ref in atomic mode and keep it
 * there, returning once the switch is complete.
 * @ref: the ref.
 *
 * Every get and put goes to the atomic count until
 * pcpu_ref_switch_to_percpu() (resurrect and reinit also leave it atomic).
 * A ref already in atomic mode stays so.  Does not touch the count:
 * release is never called from here.
 * Thread safety: any thread.  May sleep; not async-signal-safe.
 */
PCPU__PUBLIC void pcpu_ref_switch_to_atomic_sync(struct pcpu_ref *ref);

/**
 * pcpu_ref_switch_to_percpu - let @ref use per-CPU mode again.
 * @ref: the ref.
 *
 * Undoes pcpu_ref_switch_to_atomic_sync() and PCPU_REF_INIT_ATOMIC: a
 * live ref goes back to per-CPU mode at once; a dying one when it is
 * resurrected.  A ref whose per-CPU part was freed (killed without
 * PCPU_REF_ALLOW_REINIT) stays atomic.
 * Thread safety: any thread.  May sleep (it waits for a switch in
 * progress); not async-signal-safe.
 */
PCPU__PUBLIC void pcpu_ref_switch_to_percpu(struct pcpu_ref *ref);

/**
 * pcpu_ref_resurrect - bring a dying ref back to life.
 * @ref: a ref that was killed (or started with PCPU_REF_INIT_DEAD) and not
 *       exited; its count may be zero or not (references taken before the
 *       kill may still be held).  A live ref stops the process with a
 *       message naming it.
 *
 * Takes the initial reference again and switches back to per-CPU mode
 * (unless the ref is kept atomic, or has no per-CPU part any more).
 * Thread safety: any thread; gets and puts may run concurrently.  May
 * sleep; not async-signal-safe.
 */
PCPU__PUBLIC void pcpu_ref_resurrect(struct pcpu_ref *ref);

/**
 * pcpu_ref_reinit - pcpu_ref_resurrect() for a ref whose count is zero.
 * @ref: a released ref (with PCPU_REF_ALLOW_REINIT, to be per-CPU again)
 *       or one started with PCPU_REF_INIT_DEAD.  A count that is not zero
 *       stops the process with a message naming it.
 *
 * The release function may run again at the next kill.
 * Thread safety: any thread.  May sleep; not async-signal-safe.
 */
PCPU__PUBLIC void pcpu_ref_reinit(struct pcpu_ref *ref);

/**
 * pcpu_ref_is_zero - true when @ref is in atomic mode with count zero
 * (released, or started with PCPU_REF_INIT_DEAD and not revived).
 * Thread safety: any thread.  Async-signal-safe.
 */
PCPU__PUBLIC bool pcpu_ref_is_zero(struct pcpu_ref *ref);

/**
 * pcpu_ref_is_dying - true from the start of pcpu_ref_kill() (or
 * PCPU_REF_INIT_DEAD) until pcpu_ref_resurrect() or pcpu_ref_reinit().
 * Thread safety: any thread.  Async-signal-safe.
 */
PCPU__PUBLIC bool pcpu_ref_is_dying(struct pcpu_ref *ref);

#ifdef __cplusplus
}
#endif

#include "bits/ref.h"

#endif /* PERCPU_REF_H */
