/* SPDX-License-Identifier: MIT */
/*
 * internal.h - what every source file of the library shares, and nothing
 * more: symbol visibility, branch hints, graded assertions, fatal
 * messages, the allocator's size constants and the marker that catches
 * re-entry from signal handlers.  Each module has its own header for the
 * rest; the modules form layers, each calling only those below it:
 *
 *   clients   counter.c  ref.c  rwsem.c   (public API + clients.h only)
 *   API       alloc.c  init.c  thiscpu.c  validate.c  introspect.c  list.c
 *             region.c  region_dir.c  region_lock.c  region_file.c
 *   services  tcache.c  statics.c  rseq.c  reclaim.c  usage.c
 *   pool      pool.c                (lock, slots, every chunk, balance)
 *   chunk     chunk.c  lookup.c  backend.h  backend_vm.c  backend_km.c
 *             backend_shm.c         (regions' chunks; the pool never sees them)
 *   base      os.c  bitmap.c  topology.c  units.c  (and this header)
 *
 * A lower layer reports results (page deltas, counts, "balance wanted")
 * instead of reaching into a higher layer's state.
 */
#ifndef PCPU_INTERNAL_H
#define PCPU_INTERNAL_H

#define PCPU__LIBRARY_BUILD 1
#include "percpu.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifndef PCPU_DEBUG_LEVEL
#define PCPU_DEBUG_LEVEL 1
#endif

#define PCPU_HIDDEN __attribute__((visibility("hidden")))
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

/* ---- fatal messages and graded assertions (mimalloc style; internal.c) - */
PCPU_HIDDEN _Noreturn void pcpu__assert_fail(const char *expr, const char *file, int line);
PCPU_HIDDEN _Noreturn __attribute__((format(printf, 1, 2))) void pcpu__die(const char *fmt, ...);
PCPU_HIDDEN __attribute__((format(printf, 1, 2))) void pcpu__warn(const char *fmt, ...);

/* level 1: cheap checks on public paths; 2: internal consistency, lock
 * ownership; 3: expensive (whole-structure) checks. */
#if PCPU_DEBUG_LEVEL >= 1
#define pcpu_assert(e) ((e) ? (void)0 : pcpu__assert_fail(#e, __FILE__, __LINE__))
#else
#define pcpu_assert(e) ((void)0)
#endif
#if PCPU_DEBUG_LEVEL >= 2
#define pcpu_assert_internal(e) pcpu_assert(e)
#else
#define pcpu_assert_internal(e) ((void)0)
#endif
#if PCPU_DEBUG_LEVEL >= 3
#define pcpu_assert_expensive(e) pcpu_assert(e)
#else
#define pcpu_assert_expensive(e) ((void)0)
#endif

/* ---- the allocator lock's owner ------------------------------------------- */
/* Whether the calling thread holds the allocator lock (pool.c sets it), so
 * that every layer can state its locking rule.  One meaning per suffix:
 * a function named _locked runs with the allocator's lock held (and
 * checks it at debug level 2); an object's own lock (a counter's or a
 * reference's futex mutex, a region's lock) is _held (clients.h,
 * region_dir.h); rseq.c's mode lock has no suffix, its comments name it. */
PCPU_HIDDEN extern __thread bool pcpu__lock_held __attribute__((tls_model("initial-exec")));
#define pcpu_assert_locked() pcpu_assert_internal(pcpu__lock_held)

/* ---- sizes -------------------------------------------------------------- */
#define PCPU_GRANULE 4u                  /* bytes per map bit (min alloc)   */
#define PCPU_GRANULE_SHIFT 2
#define PCPU_DEFAULT_UNIT_SIZE (1u << 20)
#define PCPU_DEFAULT_RESERVED (16u << 10)
#define PCPU_MIN_UNIT_SIZE (64u << 10)
#define PCPU_MAX_UNIT_SIZE ((size_t)1 << 30)
#define PCPU_MIN_DYN_SIZE (32u << 10)   /* first chunk's dynamic area      */
#define PCPU_STATIC_ALIGN 64u            /* statics keep their offset mod this */

/* The lowest set bit of x (the largest power of two dividing it), 0 for 0. */
static inline size_t pcpu__low_bit(size_t x)
{
    return x & (~x + 1);
}

/* Natural alignment of an n-granule object, in granules: the largest power
 * of two dividing n, at most 16 bytes. */
static inline size_t pcpu__natural_bits(size_t bits)
{
    size_t low = pcpu__low_bit(bits);
    return low > 4 ? 4 : low;
}
/* pcpu__natural_bits(bits) - 1, for bits > 0, in three instructions: the
 * zeros below the lowest set bit, at most two of them. */
static inline size_t pcpu__natural_mask(size_t bits)
{
    return ~bits & (bits - 1) & 3;
}

/* A pause in a spin loop (the CPU's hint that this is one). */
static inline void pcpu__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* ---- re-entry from signal handlers --------------------------------------- */
/* The public call the calling thread is inside, or NULL.  The allocator is
 * not async-signal-safe (it takes a lock, and its thread caches are
 * per-thread stacks): a signal handler that calls it while its thread was
 * inside would deadlock or hand one object out twice.  Every public entry
 * point that takes the lock or touches a thread cache brackets itself with
 * pcpu__enter()/pcpu__leave(), so a re-entry stops the process instead. */
PCPU_HIDDEN extern __thread const char *pcpu__inside __attribute__((tls_model("initial-exec")));
PCPU_HIDDEN _Noreturn void pcpu__reentered(const char *fn);
static inline void pcpu__enter(const char *fn)
{
    if (unlikely(pcpu__inside != NULL))
        pcpu__reentered(fn);
    pcpu__inside = fn;
    atomic_signal_fence(memory_order_seq_cst);
}
static inline void pcpu__leave(void)
{
    atomic_signal_fence(memory_order_seq_cst);
    pcpu__inside = NULL;
}

#endif /* PCPU_INTERNAL_H */
