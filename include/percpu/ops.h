/* SPDX-License-Identifier: MIT */
/*
 * percpu/ops.h - this-CPU operations and sums.
 * Part of <percpu.h>: include that.
 *
 * Every pcpu_this_*() operation acts on the calling thread's current unit
 * and is correct under preemption, migration and signals: no update is
 * lost and none is applied twice.  With rseq each is one restartable
 * sequence committed by one unlocked instruction; where rseq cannot be
 * used (no rseq in the kernel or allowed by a seccomp filter, fewer units
 * than CPUs, a thread whose rseq area another library registered, an
 * architecture without the sequences) each is one relaxed atomic operation
 * on the current unit, with the same results.  pcpu_stats.rseq says which.
 *
 * Objects: integers of 1, 2, 4 or 8 bytes, selected by the object's type
 * (char, signed char, unsigned char, short, unsigned short, int, unsigned,
 * long, unsigned long, long long, unsigned long long, and the intN_t and
 * uintN_t of those sizes); bool for the operations that make sense on it.
 * Any other type fails to compile.  Values are converted to the object's
 * type first, and arithmetic wraps around (as the kernel's this_cpu ops).
 *
 * Memory order: relaxed: an operation orders nothing but itself.
 * Cost: O(1), no shared cache line written.
 * Thread safety: any thread, also concurrently with others on the same
 * cookie.  Async-signal-safe once the thread has made one this-CPU
 * operation (the first may register rseq for the thread or initialise the
 * allocator, which takes locks).
 *
 * Modules: code built for a shared object (__PIC__ without __PIE__)
 * clears the thread's rseq descriptor after every sequence (one store), so
 * that no thread is left pointing into a module that is dlclose()d; an
 * executable, which is never unmapped, does not.  PCPU_DISARM_AFTER_SEQ,
 * defined to 1 or 0 before <percpu.h> is included, overrides the choice
 * (0 only for a shared object that is never unloaded).
 *
 * A plugin with its own copy of the library (libpercpu.a linked into a
 * shared object) can be dlclose()d while the process goes on: the copy's
 * destructor stops its background reclaim worker and removes its
 * thread-exit hook, and glibc drops its fork handlers, so nothing of it
 * runs afterwards.  Its memory stays mapped (the copy cannot know that no
 * cookie is left in use); a plugin that wants it back calls pcpu_exit()
 * before it is unloaded.  Limit: with a C library older than glibc 2.35
 * (no __rseq_offset), a copy registers an rseq area of its own, in its
 * own thread-local storage, for the threads it runs on; do not unload
 * such a copy while those threads live (the kernel would keep writing
 * into storage the copy no longer owns).
 *
 * Whose rseq area.  The kernel takes one rseq area per thread, so every
 * rseq user in a process must agree on it.  The library picks one once,
 * before any code that uses it runs, and registers nothing until a
 * thread's first this-CPU operation finds that thread unregistered:
 *  - glibc 2.35+ registers an area for every thread (the default): the
 *    library uses it, as librseq and other rseq users do.
 *  - glibc does not register (GLIBC_TUNABLES=glibc.pthread.rseq=0, or
 *    glibc older than 2.35), and librseq, or another library that
 *    follows its protocol (it exports rseq_offset, rseq_size and
 *    rseq_register_current_thread()), is loaded at start-up: the library
 *    uses librseq's area.  Threads librseq registered are used as they
 *    are; a thread whose first rseq user is this library gets librseq's
 *    area registered by it (librseq's length and signature), so that
 *    librseq's own sequences work on that thread too.  librseq's
 *    rseq_register_current_thread() on such a thread then fails as a
 *    second registration (librseq aborts once another thread has
 *    registered through it): register threads with librseq before their
 *    first this-CPU operation, or not at all.
 *  - glibc does not register and no such library is loaded: the library
 *    registers glibc's own (unused) area of the thread, or one of its
 *    own with a C library that has none.  glibc then registers the
 *    threads that such a thread creates, with the same area; another
 *    copy of this library (a plugin's) shares it.
 *  - Refused: librseq loaded later (dlopen()) than this library's first
 *    registration, with glibc not registering: librseq's registration
 *    fails with EINVAL on the threads this library registered and on the
 *    threads they create afterwards (librseq returns -1, or aborts once
 *    another thread registered through it).  Load librseq at start-up
 *    (link with it), or let glibc register.  librseq linked statically
 *    into a program whose symbols are not exported (no -rdynamic) cannot
 *    be seen and counts as "loaded later".
 *  - A thread on which a library outside these protocols registered an
 *    area of its own cannot run this library's sequences: its first
 *    this-CPU operation switches the process to atomics (exact, slower;
 *    pcpu_stats.rseq turns false) and one line on stderr says so.
 * PCPU_INDEX_CID needs glibc's registration (mm_cid in its area); with
 * the other two, units follow CPU ids.
 */
#ifndef PERCPU_OPS_H
#define PERCPU_OPS_H
#ifndef PERCPU_H
#error "<percpu/ops.h> is not for direct inclusion: #include <percpu.h>"
#endif

#include "bits/thiscpu.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * pcpu_this_ptr - address of the calling thread's current unit's copy.
 * @cookie: a cookie (from pcpu_alloc(), PCPU_VAR() or arithmetic on those).
 *
 * O(1): two loads once the thread is registered with rseq; otherwise a
 * call that asks the OS for the CPU (the first time in a thread it may
 * register rseq or initialise the allocator).  The thread may migrate as
 * soon as this returns, so the copy may belong to another CPU by the time
 * it is used: use the pcpu_this_*() operations for updates, and this for
 * statistics or data only this thread touches.
 * Thread safety: any thread.  Async-signal-safe once the thread has made
 * one this-CPU operation.
 */
static PCPU__INLINE void *pcpu_this_ptr(const void *cookie);

#ifndef __cplusplus
/**
 * pcpu_this_add - add @v to the calling thread's current unit's copy.
 * @cookie: cookie of an integer object of 1, 2, 4 or 8 bytes (char,
 *          signed char, unsigned char, short, unsigned short, int,
 *          unsigned, long, unsigned long, long long, unsigned long long and
 *          the intN_t/uintN_t of those sizes); any other type, bool
 *          included, fails to compile.
 * @v:      converted to the object's type first; the sum wraps around.
 *
 * Thread safety, signals, cost: as every operation here (the top of this
 * header).
 */
#define pcpu_this_add(cookie, v) PCPU__THIS_GENERIC(cookie, this_add)((cookie), (v))
/** pcpu_this_sub - subtract @v from the current unit's copy (wraps).
 * Async-signal-safe. */
#define pcpu_this_sub(cookie, v) PCPU__THIS_GENERIC(cookie, this_sub)((cookie), (v))
/** pcpu_this_inc - add 1 to the current unit's copy.  Async-signal-safe. */
#define pcpu_this_inc(cookie) PCPU__THIS_GENERIC(cookie, this_inc)((cookie))
/** pcpu_this_dec - subtract 1 from the current unit's copy.
 * Async-signal-safe. */
#define pcpu_this_dec(cookie) PCPU__THIS_GENERIC(cookie, this_dec)((cookie))
/**
 * pcpu_this_read - the current unit's copy, as the object's type.
 * A relaxed load; the thread may have moved on by the time it returns.
 * Also on bool objects.  Async-signal-safe.
 */
#define pcpu_this_read(cookie) PCPU__THIS_GENERIC_B(cookie, this_read)((cookie))
/**
 * pcpu_this_write - store @v in the current unit's copy.
 * With rseq the store lands on the unit of the CPU that executes it, so it
 * is ordered with the other threads' this-CPU updates of that unit.  Also
 * on bool objects.  Async-signal-safe.
 */
#define pcpu_this_write(cookie, v) PCPU__THIS_GENERIC_B(cookie, this_write)((cookie), (v))
/**
 * pcpu_this_xchg - store @v in the current unit's copy and return the value
 * it replaced, as the object's type.
 * With rseq: a load and a plain store that commits (an xchg instruction
 * with a memory operand would be locked).  Also on bool objects.
 * Async-signal-safe.
 */
#define pcpu_this_xchg(cookie, v) PCPU__THIS_GENERIC_B(cookie, this_xchg)((cookie), (v))
/**
 * pcpu_this_and - the current unit's copy &= @v (no result; read it if
 * needed).  @v is converted to the object's type first.  Also on bool
 * objects.  Async-signal-safe.
 */
#define pcpu_this_and(cookie, v) PCPU__THIS_GENERIC_B(cookie, this_and)((cookie), (v))
/** pcpu_this_or - the current unit's copy |= @v.  As pcpu_this_and(). */
#define pcpu_this_or(cookie, v) PCPU__THIS_GENERIC_B(cookie, this_or)((cookie), (v))
/**
 * pcpu_this_cmpxchg - if the current unit's copy equals @old, store @new.
 * Returns the value seen (equal to @old exactly when @new was stored), as
 * the object's type.  Loop on it for any read-modify-write update.
 * A compare that fails writes nothing (with rseq: load, compare, and a
 * plain store only when equal), so another thread may update the same
 * unit through pcpu_ptr() with atomics without ever losing an update --
 * a lock taken with this and released from another CPU works.  (Updates
 * that always write -- add, xchg, and, or -- race with such remote
 * atomics, as in the kernel: only this thread's CPU is excluded.)
 * Also on bool objects.  Async-signal-safe.
 */
#define pcpu_this_cmpxchg(cookie, old, new)                                     \
    PCPU__THIS_GENERIC_B(cookie, this_cmpxchg)((cookie), (old), (new))
/**
 * pcpu_this_try_cmpxchg - if the current unit's copy equals *@oldp, store
 * @new and return true; else store the value seen in *@oldp and return
 * false (the kernel's this_cpu_try_cmpxchg).
 * @cookie: cookie of an integer object (as pcpu_this_add()).
 * @oldp:   pointer to a variable of the object's type (not a cookie).
 * @new:    the value to store, converted to the object's type.
 *
 * One sequence, as pcpu_this_cmpxchg(); a failing compare writes nothing
 * to the object.  The usual loop:
 *      long old = pcpu_this_read(c);
 *      while (!pcpu_this_try_cmpxchg(c, &old, old * 2))
 *          ;
 * Also on bool objects.  Async-signal-safe.
 */
#define pcpu_this_try_cmpxchg(cookie, oldp, new)                                \
    PCPU__THIS_GENERIC_B(cookie, this_try_cmpxchg)((cookie), (oldp), (new))
/**
 * pcpu_this_add_return - add @v to the current unit's copy and return the
 * new value of that copy (not the sum over units), as the object's type.
 * Async-signal-safe.
 */
#define pcpu_this_add_return(cookie, v)                                         \
    PCPU__THIS_GENERIC(cookie, this_add_return)((cookie), (v))
/** pcpu_this_sub_return - subtract @v, return the copy's new value.
 * Async-signal-safe. */
#define pcpu_this_sub_return(cookie, v)                                         \
    PCPU__THIS_GENERIC(cookie, this_sub_return)((cookie), (v))
/** pcpu_this_inc_return - add 1, return the copy's new value.
 * Async-signal-safe. */
#define pcpu_this_inc_return(cookie) PCPU__THIS_GENERIC(cookie, this_inc_return)((cookie))
/** pcpu_this_dec_return - subtract 1, return the copy's new value.
 * Async-signal-safe. */
#define pcpu_this_dec_return(cookie) PCPU__THIS_GENERIC(cookie, this_dec_return)((cookie))
/**
 * pcpu_sum - the sum of every unit's copy (units 0 .. pcpu_nr_cpus()-1), as
 * the object's type (wrapping around like the updates).
 * Relaxed loads, one unit after the other: while other threads update, the
 * result is some mix of before and after, exact once they have stopped.
 * Not for bool.  Cost: O(units).  Thread safety: any thread.
 * Async-signal-safe.
 */
#define pcpu_sum(cookie) PCPU__THIS_GENERIC(cookie, sum)((cookie))

#else /* __cplusplus: the same names, as overloaded templates */
} /* extern "C" */
#include "bits/ops_cxx.h"
extern "C" {
#endif /* __cplusplus */

#ifdef __cplusplus
}
#endif

#endif /* PERCPU_OPS_H */
