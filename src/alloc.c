/* SPDX-License-Identifier: MIT */
/*
 * alloc.c - pcpu_alloc(), pcpu_alloc_reserved(), pcpu_free(), pcpu_reclaim().
 *
 * The fast paths of the allocator, and where its policies meet: small
 * allocations of exactly a size class come from the calling thread's
 * cache without the lock (tcache.c); everything else takes the pool's
 * lock.  Frees start lock-free: the live bit is cleared atomically (which
 * is also what catches double frees), the object is zeroed in the units
 * that need it (units.c), and only objects that do not go to a cache take
 * the lock.  Usage counts (usage.c) are kept on every path; robust mode
 * checks what each call touched afterwards (validate.c); a pool release
 * that wants a balance pass schedules the worker (reclaim.c).
 *
 * Every entry point brackets itself with pcpu__enter()/pcpu__leave(), so
 * that a signal handler re-entering it on the same thread is caught.
 */
#include "internal.h"

#include <errno.h>

#include "init.h"
#include "lookup.h"
#include "os.h"
#include "pool.h"
#include "reclaim.h"
#include "tcache.h"
#include "topology.h"
#include "trace.h"
#include "units.h"
#include "usage.h"
#include "validate.h"

static inline __attribute__((always_inline)) int check_args(size_t size, size_t align,
                                                          size_t *bits, size_t *align_bits)
{
    if (unlikely(size == 0 || size > pcpu__layout.unit_size || (align & (align - 1)) ||
                 align > pcpu__page_size)) {
        errno = EINVAL;
        return -1;
    }
    *bits = (size + PCPU_GRANULE - 1) / PCPU_GRANULE;
    *align_bits = align ? (align < PCPU_GRANULE ? 1 : align / PCPU_GRANULE) : pcpu__natural_bits(*bits);
    return 0;
}

/* Out of memory with free objects parked in this thread's cache: give them
 * back and try again once (other threads' caches are theirs to use). */
static void *alloc_retry_locked(size_t bits, size_t align_bits, bool reserved,
                                struct pcpu_chunk **c)
{
    void *p = pcpu__pool_alloc_locked(bits, 1, align_bits, reserved, c);
    if (!p && errno == ENOMEM && pcpu__my_tcache && pcpu__tcache_flush_locked(pcpu__my_tcache))
        p = pcpu__pool_alloc_locked(bits, 1, align_bits, reserved, c);
    return p;
}

static void *alloc_slow(size_t size, size_t bits, size_t align_bits, bool reserved)
{
    struct pcpu_chunk *c;
    /* A thread with a cache counts its own allocations, here too: the
     * global count would need two samples of the peak under the lock. */
    struct pcpu_tcache *tc = pcpu__my_tcache;
    pcpu__pool_lock();
    void *p = alloc_retry_locked(bits, align_bits, reserved, &c);
    if (p) {
        pcpu__live_set(c, pcpu__chunk_bit(c, p), pcpu__live_mark(bits));
        if (unlikely(pcpu__units_hooked))
            pcpu__units_handed_out(p, bits * PCPU_GRANULE);
        if (!tc)
            pcpu__usage_alloc_locked(size);
    } else if (!errno) {
        errno = ENOMEM;
    }
    pcpu__pool_unlock();
    if (p && tc)
        pcpu__usage_count_alloc(&tc->usage, size);
    if (unlikely(pcpu__settings.robust) && p)
        pcpu__validate_around(p, bits);
    return p;
}

static inline __attribute__((always_inline)) void *alloc_impl(size_t size, size_t align)
{
    size_t bits, align_bits;
    if (unlikely(pcpu__ensure_init() != 0))
        return NULL;
    if (unlikely(check_args(size, align, &bits, &align_bits) != 0))
        return NULL;
    size_t ci = pcpu__tcache_class(bits);
    if (likely(bits <= PCPU_TCACHE_MAX_BITS && pcpu__settings.tcache)) {
        struct pcpu_tcache *tc = pcpu__tcache_mine();
        struct pcpu_tcache_entry e;
        if (unlikely(align_bits > pcpu__tcache_class_align(ci))) {
            /* More alignment than the class gives.  Above 256 bytes, 128
             * or 256 is asked of the class whose size is the next multiple
             * of it: refill runs there start on 256 bytes, so all its
             * objects have it (the size is rounded up anyway there).
             * Otherwise an object of the cache that has it by chance, else
             * one of the class's size from the pool (so that freeing it
             * feeds the cache). */
            size_t rounded = pcpu__tcache_aligned_class(ci, align_bits);
            if (rounded && likely(tc)) {
                ci = rounded;
                if (tc->cls[ci].count == 0 && pcpu__tcache_refill(tc, ci) != 0)
                    return NULL;
            }
            if (!tc || !pcpu__tcache_pop_aligned(tc, ci, align_bits, &e))
                return alloc_slow(size, pcpu__tcache_class_bits(ci), align_bits, false);
        } else if (likely(tc)) {
            if (unlikely(tc->cls[ci].count == 0) && pcpu__tcache_refill(tc, ci) != 0)
                return NULL;
            e = pcpu__tcache_pop(tc, ci);
        } else {
            return alloc_slow(size, bits, align_bits, false);
        }
        size_t cbits = pcpu__tcache_class_bits(ci);
        pcpu__live_set(e.chunk, pcpu__chunk_bit(e.chunk, e.cookie), pcpu__live_mark(cbits));
        pcpu__usage_count_alloc(&tc->usage, size);
        if (unlikely(pcpu__units_hooked)) {
            pcpu__units_handed_out(e.cookie, cbits * PCPU_GRANULE);
            if (pcpu__settings.robust)
                pcpu__validate_around(e.cookie, cbits);
        }
        return e.cookie;
    }
    return alloc_slow(size, bits, align_bits, false);
}

static void *alloc_reserved_impl(size_t size, size_t align)
{
    size_t bits, align_bits;
    if (unlikely(pcpu__ensure_init() != 0))
        return NULL;
    if (unlikely(check_args(size, align, &bits, &align_bits) != 0))
        return NULL;
    return alloc_slow(size, bits, align_bits, true);
}

/* ---- free -------------------------------------------------------------------- */

static _Noreturn void bad_free(void *cookie, struct pcpu_chunk *c, size_t bit)
{
    if (!c)
        pcpu__die("percpu: invalid free of %p (not a per-CPU pointer)", cookie);
    if (pcpu__test_bit(c->start_map, bit))
        pcpu__die("percpu: double free of %p", cookie);
    if (pcpu__test_bit(c->alloc_map, bit) && bit >= c->start_bit)
        pcpu__die("percpu: invalid free of %p (interior pointer of an allocation)", cookie);
    pcpu__die("percpu: double free of %p (not allocated)", cookie);
}

static inline __attribute__((always_inline)) void free_impl(void *cookie)
{
    if (!cookie)
        return;
    struct pcpu_chunk *c = pcpu__lookup(cookie);
    if (unlikely(!c))
        bad_free(cookie, NULL, 0);
    size_t off = (size_t)((char *)cookie - c->base);
    if (unlikely(off >= pcpu__layout.unit_size))
        pcpu__die("percpu: invalid free of %p (an address inside a unit, not a cookie)", cookie);
    if (unlikely(off % PCPU_GRANULE))
        pcpu__die("percpu: invalid free of %p (interior pointer of an allocation)", cookie);
    size_t bit = off / PCPU_GRANULE;
    struct pcpu_chunk *owner = pcpu__pool_owner(c, bit);
    if (unlikely(!owner))
        pcpu__die("percpu: invalid free of %p (a static per-CPU variable)", cookie);
    if (unlikely(!pcpu__live_unset_checked(owner, bit)))
        bad_free(cookie, owner, bit);
    size_t bits = pcpu__alloc_bits_fast(owner, bit);
    size_t bytes = bits * PCPU_GRANULE;
    struct pcpu_tcache *tc = likely(pcpu__settings.tcache) ? pcpu__tcache_mine() : NULL;
    /* The reserved area is scarce (libraries loaded later need it): its
     * objects go straight back. */
    if (likely(tc) && likely(!owner->is_reserved)) {
        if (likely(!pcpu__units_hooked)) {
            /* An object its class cache has room for is likely handed out
             * again soon: zero it now (with few units that is a read of
             * each).  Other frees wait in the batch, to be zeroed with
             * their neighbours where the kernel says pages hold data. */
            size_t ci = pcpu__tcache_class(bits);
            if (likely(!pcpu__units_many()) && likely(pcpu__tcache_takes(owner, bit, bits)) &&
                likely(pcpu__tcache_has_room(tc, ci))) {
                pcpu__units_zero(cookie, bytes);
                pcpu__tcache_push(tc, ci, cookie, owner);
            } else if (pcpu__units_batch_wanted(bytes)) {
                pcpu__tcache_defer(tc, cookie, owner, bits, false);
            } else {
                pcpu__units_zero(cookie, bytes);
                pcpu__tcache_defer(tc, cookie, owner, bits, true);
            }
            pcpu__usage_count_free(&tc->usage);
            return;
        }
        /* Robust mode and the tools: poison and mark now, and give the
         * space back at once, where a late write is caught soonest. */
        pcpu__units_freed(cookie, bytes);
        if (pcpu__tcache_takes(owner, bit, bits) &&
            pcpu__tcache_push(tc, pcpu__tcache_class(bits), cookie, owner)) {
            pcpu__usage_count_free(&tc->usage);
            if (pcpu__settings.robust)
                pcpu__validate_around(cookie, bits);
            return;
        }
    } else {
        pcpu__units_freed(cookie, bytes);
    }
    pcpu__pool_lock();
    if (pcpu__pool_release_locked(owner, bit, bits))
        pcpu__reclaim_kick_locked();
    if (tc)
        pcpu__usage_count_free(&tc->usage);
    else
        pcpu__usage_free_locked();
    pcpu__pool_unlock();
    if (unlikely(pcpu__settings.robust))
        pcpu__validate_around(cookie, bits);
}

static size_t reclaim_impl(bool all)
{
    if (pcpu__ensure_init() != 0)
        return 0;
    pcpu__pool_lock();
    if (all && pcpu__my_tcache)
        pcpu__tcache_flush_locked(pcpu__my_tcache);
    if (all)
        pcpu__tcache_store_flush_locked();
    size_t n = pcpu__pool_balance_locked(all);
    pcpu__pool_unlock();
    return n;
}

/* ---- the fast paths ---------------------------------------------------------- */

/* Most calls are small objects that a thread frees and allocates again in
 * turn.  These two serve them from the thread's class caches and nothing
 * else, with the fewest instructions and dependent loads we could find:
 * each first checks everything it needs (first use, alignment beyond the
 * class, robust mode and the tools, many units, an empty or full cache, a
 * pointer that is not the start of a live dynamic allocation) and, when
 * anything is off, changes nothing and leaves the call to the general
 * paths above, which do every check again and give the answers. */

static void *alloc_general(size_t size, size_t align);

/* Pop class ci's top object (or leave it to the general path when the
 * class is empty) and hand it out; mark is its live mark. */
static inline __attribute__((always_inline)) void *alloc_fast_pop(struct pcpu_tcache *tc, size_t ci,
                                                                  uint8_t mark, size_t size,
                                                                  size_t align)
{
    struct pcpu_tcache_class *cls = &tc->cls[ci];
    unsigned int n = cls->count;
    if (unlikely(n == 0))
        return alloc_general(size, align);
    cls->count = n - 1;
    struct pcpu_tcache_entry e = cls->e[n - 1];
    pcpu__live_set(e.chunk, pcpu__chunk_bit(e.chunk, e.cookie), mark);
    pcpu__usage_count_alloc(&tc->usage, size);
    pcpu__leave();
    pcpu_trace_alloc(e.cookie, size, align);
    return e.cookie;
}

/* 257 bytes to 4 KiB: the 64-byte step classes, whose objects are aligned
 * to 64 bytes (more is the general path's: see alloc_impl). */
static __attribute__((noinline)) void *alloc_fast_step(struct pcpu_tcache *tc, size_t size,
                                                      size_t align)
{
    if (unlikely(size > PCPU_TCACHE_MAX_BITS * PCPU_GRANULE) ||
        unlikely(align > PCPU_TCACHE_STEP_BITS * PCPU_GRANULE) || unlikely(align & (align - 1)))
        return alloc_general(size, align);
    size_t ci = pcpu__tcache_class((size + PCPU_GRANULE - 1) / PCPU_GRANULE);
    return alloc_fast_pop(tc, ci, pcpu__live_mark(pcpu__tcache_class_bits(ci)), size, align);
}

/* Returns the object, or what the general path returned. */
static inline __attribute__((always_inline)) void *alloc_fast(size_t size, size_t align)
{
    struct pcpu_tcache *tc = pcpu__my_tcache;
    /* A cache exists only once this thread allocated, so the allocator is
     * in use; after pcpu_exit() its classes are empty until the general
     * path has initialised again. */
    if (unlikely(!tc) || unlikely(!pcpu__settings.fast_alloc))
        return alloc_general(size, align);
    if (unlikely(size - 1 >= PCPU_TCACHE_EXACT_BITS * PCPU_GRANULE)) {
        if (unlikely(size == 0))
            return alloc_general(size, align);
        return alloc_fast_step(tc, size, align);
    }
    size_t bits = (size + PCPU_GRANULE - 1) / PCPU_GRANULE;
    /* 0 (most calls: tested first), or a power of two the class's natural
     * alignment covers. */
    if (unlikely(align) && (unlikely(align > (pcpu__natural_mask(bits) + 1) * PCPU_GRANULE) ||
                            unlikely(align & (align - 1))))
        return alloc_general(size, align);
    return alloc_fast_pop(tc, bits, (uint8_t)bits, size, align);
}

/* A free the fast path takes (free_fast_decode): the cookie starts a live
 * dynamic allocation; where its chunk and live mark are, and its size in
 * granules (as free_fast_decode fills it: the live mark, which is the size
 * up to 127 granules; see pcpu__live_mark). */
struct free_site {
    struct pcpu_tcache *tc;
    struct pcpu_chunk *c;
    uint8_t *live;
    size_t bit, bits;
};

/* The chunk of a cookie without the hint: the radix table, and the range
 * of the chunk's dynamic area (the first chunk's static and reserved
 * areas lie below start_bit), which is inside the first unit, so that the
 * cookie is in the chunk's reservation.  Remembered for the next free. */
static __attribute__((noinline)) bool refresh_free_hint(struct pcpu_tcache *tc, void *cookie)
{
    unsigned long gen = atomic_load_explicit(&pcpu__chunk_gen, memory_order_acquire);
    struct pcpu_chunk *c = pcpu__lookup_region(cookie);
    if (unlikely(!c))
        return false;
    size_t off = (size_t)((char *)cookie - c->base);
    if (off / PCPU_GRANULE - c->start_bit >= c->end_bit - c->start_bit)
        return false;
    tc->hint = (struct pcpu_free_hint){
        .lo = c->base + c->start_bit * PCPU_GRANULE,
        .len = (c->end_bit - c->start_bit) * PCPU_GRANULE,
        .start_bit = c->start_bit,
        .live = c->live,
        .end_map = c->end_map,
        .chunk = c,
        .gen = gen,
    };
    return true;
}

static inline __attribute__((always_inline)) bool free_fast_decode(void *cookie,
                                                                  struct free_site *f)
{
    struct pcpu_tcache *tc = pcpu__my_tcache;
    if (unlikely(!tc) || unlikely(!pcpu__settings.fast_alloc))
        return false;
    const struct pcpu_free_hint *h = &tc->hint;
    size_t off = (size_t)((char *)cookie - h->lo);
    if (unlikely(off >= h->len) ||
        unlikely(h->gen != atomic_load_explicit(&pcpu__chunk_gen, memory_order_acquire))) {
        if (!refresh_free_hint(tc, cookie))
            return false;
        off = (size_t)((char *)cookie - h->lo);
    }
    size_t bit = h->start_bit + off / PCPU_GRANULE;
    unsigned int mark = __atomic_load_n(&h->live[bit], __ATOMIC_RELAXED);
    if (unlikely(off % PCPU_GRANULE) || unlikely(!mark))
        return false;
    /* The live mark, which is the size itself up to 127 granules
     * (free_over_8_bytes reads the others).  (Whether the object is of an
     * exact class and aligned as its class is the caller's to test.) */
    *f = (struct free_site){tc, h->chunk, h->live, bit, mark};
    return true;
}

/* An object of 1 or 2 granules is of an exact class, aligned as it, when
 * a 2-granule one starts on an even granule. */
static inline __attribute__((always_inline)) bool small_object_aligned(const struct free_site *f)
{
    return !(f->bit & (f->bits - 1));
}

/* Take the object back and, with few units, zero it (reading each unit
 * is cheaper than asking the kernel): a 4- or 8-byte object inline, or
 * any object. */
static inline __attribute__((always_inline)) void take_back_and_zero(void *cookie,
                                                                      const struct free_site *f,
                                                                      bool word)
{
    __atomic_store_n(&f->live[f->bit], 0, __ATOMIC_RELAXED);
    if (word)
        pcpu__units_zero_word(cookie, f->bits * PCPU_GRANULE);
    else
        pcpu__units_zero(cookie, f->bits * PCPU_GRANULE);
}

/* Park a zeroed object in its class cache, if the class has room. */
static inline __attribute__((always_inline)) bool park_in_class(void *cookie,
                                                                 const struct free_site *f)
{
    struct pcpu_tcache_class *cls = &f->tc->cls[f->bits];
    unsigned int n = cls->count;
    if (unlikely(n >= PCPU_TCACHE_CAP))
        return false;
    pcpu__tcache_put(cls, n, cookie, f->c);
    pcpu__usage_count_free(&f->tc->usage);
    return true;
}

/* Out of line (it needs registers the inline path would save on every
 * free): into the pending batch, zeroed already (clean) or to be zeroed
 * with it, and the batch to the pool when that filled it.  Leaves. */
static __attribute__((noinline)) void to_pending_batch(void *cookie, struct pcpu_tcache *tc,
                                                       struct pcpu_chunk *c, size_t bits,
                                                       bool clean)
{
    bool full = pcpu__tcache_add_pending(tc, cookie, c, bits, clean);
    pcpu__usage_count_free(&tc->usage);
    if (full)
        pcpu__tcache_process(tc);
    pcpu__leave();
}

/* ---- the public entry points ------------------------------------------------ */

/* The general paths, entered: they leave.  Called last, so that the fast
 * paths need no registers saved. */
static __attribute__((noinline)) void *alloc_general(size_t size, size_t align)
{
    void *r = alloc_impl(size, align);
    pcpu__leave();
    pcpu_trace_alloc_result(r, size, align, 0);
    return r;
}

static __attribute__((noinline)) void free_general(void *cookie)
{
    pcpu_trace_free(cookie);
    free_impl(cookie);
    pcpu__leave();
}

/* The size of a live object whose mark does not say it (so over 127
 * granules: its end is not in its first word of the end map): the next
 * end bit, which is its own; 0 past the
 * biggest class (then the general path answers).  Reads no word past the
 * dynamic area's last (end_bit: the area's end), inside the map. */
static size_t size_from_end_map(const uint64_t *end_map, size_t bit, size_t end_bit)
{
    size_t last = (bit + PCPU_TCACHE_MAX_BITS - 1) / 64, area_last = (end_bit - 1) / 64;
    if (last > area_last)
        last = area_last;
    size_t wi = bit / 64 + 1;
    /* Four words a step while all are zero. */
    for (; wi + 3 <= last; wi += 4) {
        if (__atomic_load_n(&end_map[wi], __ATOMIC_RELAXED) |
            __atomic_load_n(&end_map[wi + 1], __ATOMIC_RELAXED) |
            __atomic_load_n(&end_map[wi + 2], __ATOMIC_RELAXED) |
            __atomic_load_n(&end_map[wi + 3], __ATOMIC_RELAXED))
            break;
    }
    for (; wi <= last; wi++) {
        uint64_t w = __atomic_load_n(&end_map[wi], __ATOMIC_RELAXED);
        if (w) {
            size_t bits = wi * 64 + (size_t)__builtin_ctzll(w) - bit + 1;
            return bits <= PCPU_TCACHE_MAX_BITS ? bits : 0;
        }
    }
    return 0;
}

/* The live marks of the 1 KiB and 4 KiB classes (pcpu__live_mark); every
 * mark between is a class (a multiple of 64 bytes) with the smallest
 * cache. */
#define FREE_MARK_1K (127u + 1024u / PCPU_GRANULE / 16u)
#define FREE_MARK_4K (127u + 4096u / PCPU_GRANULE / 16u)
_Static_assert(1024 / PCPU_GRANULE >=
                   PCPU_TCACHE_CAP * PCPU_TCACHE_EXACT_BITS / PCPU_TCACHE_MIN_CAP,
               "from 1 KiB a class caches PCPU_TCACHE_MIN_CAP objects");
_Static_assert(4096 / PCPU_GRANULE <= PCPU_TCACHE_MAX_BITS, "4 KiB is a class");

/* Objects over 8 bytes, zeroed out of line, and frees with many units
 * (the loops for wider objects need registers the inline path would
 * otherwise save and restore on every free).  As the general path: an
 * object its class cache has room for is zeroed now (it is likely handed
 * out again soon); others wait in the batch, zeroed now if small (reading
 * them is cheap), else with the batch where the kernel says pages hold
 * data. */
static __attribute__((noinline)) void free_over_8_bytes(void *cookie, struct pcpu_tcache *tc,
                                                  struct pcpu_chunk *c, uint8_t *live,
                                                  size_t bit, size_t mark)
{
    size_t bits = pcpu__live_mark_bits((unsigned int)mark);
    if (unlikely(!bits))
        bits = size_from_end_map(tc->hint.end_map, bit,
                                  tc->hint.start_bit + tc->hint.len / PCPU_GRANULE);
    /* Of a class, aligned as the class (pcpu__tcache_takes; the hint's
     * chunk is a dynamic area, never the reserved one). */
    size_t ci = pcpu__tcache_class(bits), bytes = bits * PCPU_GRANULE;
    if (unlikely(!bits) || unlikely(!pcpu__tcache_exact(bits)) ||
        unlikely(bit & (pcpu__tcache_class_align(ci) - 1))) {
        free_general(cookie);
        return;
    }
    pcpu_trace_free_live(cookie);
    struct free_site f = {tc, c, live, bit, bits};
    if (pcpu__settings.free_batched || !pcpu__tcache_has_room(tc, ci)) {
        if (pcpu__units_batch_wanted(bytes)) {
            __atomic_store_n(&live[bit], 0, __ATOMIC_RELAXED);
            to_pending_batch(cookie, tc, c, bits, false);
        } else {
            take_back_and_zero(cookie, &f, false);
            to_pending_batch(cookie, tc, c, bits, true);
        }
        return;
    }
    take_back_and_zero(cookie, &f, false);
    pcpu__tcache_push(tc, ci, cookie, c);
    pcpu__usage_count_free(&tc->usage);
    pcpu__leave();
}

/* The classes of 1 KiB to 4 KiB (marks FREE_MARK_1K to FREE_MARK_4K),
 * where the check for zero is most of the free and every other instruction
 * shows: the mark says a multiple of 16 granules, so the object is of a
 * class (exact) and the class's cache holds PCPU_TCACHE_MIN_CAP; what
 * remains to test is the class's alignment.  A function of its own, so
 * that the other frees over 8 bytes run exactly as before (the test in
 * free_over_8_bytes made 64- and 256-byte pairs measurably slower). */
static __attribute__((noinline)) void free_kib_class(void *cookie, struct pcpu_tcache *tc,
                                                  struct pcpu_chunk *c, uint8_t *live,
                                                  size_t bit, size_t mark)
{
    if (likely(!(bit & (PCPU_TCACHE_STEP_BITS - 1))) && likely(!pcpu__settings.free_batched)) {
        size_t bits = pcpu__live_mark_bits((unsigned int)mark);
        struct pcpu_tcache_class *cls = &tc->cls[pcpu__tcache_class(bits)];
        unsigned int n = cls->count;
        if (likely(n < PCPU_TCACHE_MIN_CAP)) {
            pcpu_trace_free_live(cookie);
            struct free_site f = {tc, c, live, bit, bits};
            take_back_and_zero(cookie, &f, false);
            pcpu__tcache_put(cls, n, cookie, c);
            pcpu__usage_count_free(&tc->usage);
            pcpu__leave();
            return;
        }
    }
    free_over_8_bytes(cookie, tc, c, live, bit, mark);
}

void *pcpu_alloc(size_t size, size_t align)
{
    pcpu__enter("pcpu_alloc");
    return alloc_fast(size, align);
}

void *pcpu_alloc_reserved(size_t size, size_t align)
{
    pcpu__enter("pcpu_alloc_reserved");
    void *r = alloc_reserved_impl(size, align);
    pcpu__leave();
    pcpu_trace_alloc_result(r, size, align, 1);
    return r;
}

/* A 4- or 8-byte object (bits a constant): back into its class, or the
 * batch when the class is full.  Leaves. */
static inline __attribute__((always_inline)) void free_word(void *cookie, struct free_site *f,
                                                                 size_t bits)
{
    f->bits = bits;
    take_back_and_zero(cookie, f, true);
    if (unlikely(!park_in_class(cookie, f))) {
        to_pending_batch(cookie, f->tc, f->c, bits, true);
        return;
    }
    pcpu__leave();
}

void pcpu_free(void *cookie)
{
    pcpu__enter("pcpu_free");
    struct free_site f;
    if (unlikely(!free_fast_decode(cookie, &f))) {
        free_general(cookie);
        return;
    }
    /* Inline only what needs few registers: 4- and 8-byte objects. */
    if (unlikely(f.bits - 1 >= 8 / PCPU_GRANULE)) {
        if (f.bits - FREE_MARK_1K <= FREE_MARK_4K - FREE_MARK_1K)
            free_kib_class(cookie, f.tc, f.c, f.live, f.bit, f.bits);
        else
            free_over_8_bytes(cookie, f.tc, f.c, f.live, f.bit, f.bits);
        return;
    }
    if (unlikely(!small_object_aligned(&f))) {
        free_general(cookie);
        return;
    }
    pcpu_trace_free_live(cookie);
    if (unlikely(pcpu__settings.free_batched)) {
        /* Many units: zeroed with the batch (free_over_8_bytes). */
        __atomic_store_n(&f.live[f.bit], 0, __ATOMIC_RELAXED);
        to_pending_batch(cookie, f.tc, f.c, f.bits, false);
        return;
    }
    /* One copy per size, so that the class's address is a constant
     * offset: a predicted branch instead of a wait for the end map. */
    if (f.bits == 1)
        free_word(cookie, &f, 1);
    else
        free_word(cookie, &f, 2);
}

size_t pcpu_reclaim(bool all)
{
    pcpu__enter("pcpu_reclaim");
    size_t r = reclaim_impl(all);
    pcpu__leave();
    return r;
}
