/* SPDX-License-Identifier: MIT */
/*
 * tcache.h - per-thread caches of small free objects (tcache.c).
 *
 * Size classes: one per granule count up to 256 bytes, then one per 64
 * bytes up to 4 KiB.  A request up to 4 KiB takes an object of the
 * smallest class that holds it (so from 256 bytes on, up to 63 bytes per
 * unit are not used: the price of never taking the lock for it).  The
 * 64-byte classes are 64-byte aligned, the others naturally (at most 16
 * bytes); a request for more alignment takes a cached object of its class
 * that happens to have it (pcpu__tcache_pop_aligned), else one of the
 * class's size from the pool under the lock.  A cached object is allocated
 * in its chunk's map but not live.  Each cache also
 * carries its thread's usage counts (usage.h).
 */
#ifndef PCPU_TCACHE_H
#define PCPU_TCACHE_H

#include "chunk.h"
#include "units.h"
#include "usage.h"

#define PCPU_TCACHE_EXACT_BITS 64u
#define PCPU_TCACHE_STEP_BITS 16u
#define PCPU_TCACHE_MAX_BITS 1024u
#define PCPU_TCACHE_NR_CLASSES \
    (PCPU_TCACHE_EXACT_BITS + (PCPU_TCACHE_MAX_BITS - PCPU_TCACHE_EXACT_BITS) / PCPU_TCACHE_STEP_BITS + 1)
#define PCPU_TCACHE_CAP 32u
#define PCPU_TCACHE_BATCH 16u
/* Refill runs of the classes above the exact ones start on 256 bytes. */
#define PCPU_TCACHE_RUN_ALIGN_BITS (256u / PCPU_GRANULE)

/* An allocation of exactly a class's size (what a cache may hold). */
static inline bool pcpu__tcache_exact(size_t bits)
{
    return bits <= PCPU_TCACHE_EXACT_BITS ||
           (bits <= PCPU_TCACHE_MAX_BITS && bits % PCPU_TCACHE_STEP_BITS == 0);
}
static inline size_t pcpu__tcache_class(size_t bits)
{
    if (bits <= PCPU_TCACHE_EXACT_BITS)
        return bits;
    return PCPU_TCACHE_EXACT_BITS +
           (bits - PCPU_TCACHE_EXACT_BITS + PCPU_TCACHE_STEP_BITS - 1) / PCPU_TCACHE_STEP_BITS;
}
static inline size_t pcpu__tcache_class_bits(size_t cls)
{
    if (cls <= PCPU_TCACHE_EXACT_BITS)
        return cls;
    return PCPU_TCACHE_EXACT_BITS + (cls - PCPU_TCACHE_EXACT_BITS) * PCPU_TCACHE_STEP_BITS;
}
/* The alignment a class's objects have, in granules. */
static inline size_t pcpu__tcache_class_align(size_t cls)
{
    return cls <= PCPU_TCACHE_EXACT_BITS ? pcpu__natural_bits(cls) : PCPU_TCACHE_STEP_BITS;
}
/* The class that serves an allocation of class ci aligned to align_bits
 * granules beyond ci's own alignment, with every object aligned so: above
 * the exact classes, for 128 or 256 bytes, the class of the next multiple
 * of the alignment (its refill runs start on 256 bytes); 0 where there is
 * none. */
static inline size_t pcpu__tcache_aligned_class(size_t ci, size_t align_bits)
{
    size_t bits = pcpu__tcache_class_bits(ci);
    if (bits <= PCPU_TCACHE_EXACT_BITS || align_bits > PCPU_TCACHE_RUN_ALIGN_BITS)
        return 0;
    bits = (bits + align_bits - 1) & ~(align_bits - 1);
    return bits <= PCPU_TCACHE_MAX_BITS ? pcpu__tcache_class(bits) : 0;
}

/* Fewer objects of the bigger classes, so a cache pins little memory:
 * 8 KiB per unit, but never fewer than 8 objects.  With 4 (a refill then
 * brings 2), two threads allocating and freeing mixed sizes met at the
 * lock every few pairs and ran slower per pair than one thread
 * (alloc.percpu.mixed in percpu-bench shows it).  A thread whose every
 * class is full pins 1.3 MiB per unit (0.85 MiB with 4). */
#define PCPU_TCACHE_MIN_CAP 8u
static inline unsigned int pcpu__tcache_cap(size_t bits)
{
    if (bits <= PCPU_TCACHE_EXACT_BITS)
        return PCPU_TCACHE_CAP;
    /* From 1 KiB the minimum, without a division on every free. */
    if (bits >= PCPU_TCACHE_CAP * PCPU_TCACHE_EXACT_BITS / PCPU_TCACHE_MIN_CAP)
        return PCPU_TCACHE_MIN_CAP;
    return PCPU_TCACHE_CAP * PCPU_TCACHE_EXACT_BITS / (uint32_t)bits;
}

struct pcpu_tcache_entry {
    void *cookie;
    struct pcpu_chunk *chunk;
};

struct pcpu_tcache_class {
    unsigned int count;
    struct pcpu_tcache_entry e[PCPU_TCACHE_CAP];
};

/* Freed objects that wait for a batch: to be zeroed (where dirty), then
 * put in a class cache or given back to the pool, all at once.  Bounds on
 * what a thread keeps waiting: clean objects (zeroed at free: they only
 * wait for the lock; 1024 of them make one lock hold and one update of the
 * map's hints per 1024 frees in a row), dirty ones (zeroed in bulk), and
 * the bytes of each per unit.  The bounds are small because waiting objects keep their
 * pages (and chunk) from going back to the OS until the batch is
 * processed: at the thread's next allocation that finds its class cache
 * empty, when the batch is full, at pcpu_reclaim(true) or thread exit. */
#define PCPU_PENDING_CLEAN 1024u
#define PCPU_PENDING_DIRTY 64u           /* with few units                  */
/* Many units: one scan of a chunk's page tables costs the same whatever
 * the batch holds (it walks the chunk's whole address range), so the
 * batch must be big enough to make it small per free (with 1024 it was
 * the biggest cost of a free/allocate pair at 4096 units).  The cache is mapped on its own, so with few
 * units the untouched part of these arrays costs no memory. */
#define PCPU_PENDING_DIRTY_MANY 4096u
#define PCPU_PENDING_MAX (PCPU_PENDING_DIRTY_MANY + PCPU_PENDING_CLEAN)
#define PCPU_PENDING_BYTES (64u << 10)

/* With many units, zeroing waits for a big batch (one scan of the chunk
 * each), and a batch is more than a class cache holds.  The clean objects
 * a batch leaves over stay with the thread, in the reserve, for the next
 * refills of their classes: a thread that frees and allocates in turn
 * then never takes the lock, and the pool is not churned by giving
 * thousands of objects back and taking them again.  Small objects only
 * (up to 64 bytes), and at most PCPU_RESERVE_BYTES of them per unit: like
 * the batch, what waits there keeps its pages from the reclaimer. */
#define PCPU_RESERVE_MAX PCPU_PENDING_DIRTY_MANY
#define PCPU_RESERVE_MAX_BITS 16u
#define PCPU_RESERVE_BYTES (64u << 10)

/* The dynamic area of the chunk this thread last freed into, so that the
 * next free there needs no radix lookup and no read of the chunk: a
 * cookie in [lo, lo + len) is granule start_bit + (cookie - lo) / 4 of
 * chunk, whose live marks and end map are these.  Valid only while
 * pcpu__chunk_gen equals gen (chunk.h). */
struct pcpu_free_hint {
    char *lo;
    size_t len;
    size_t start_bit;
    uint8_t *live;
    uint64_t *end_map;
    struct pcpu_chunk *chunk;
    unsigned long gen;
};

struct pcpu_tcache {
    struct pcpu_tcache *prev, *next; /* all caches, under the lock      */
    struct pcpu_free_hint hint;      /* alloc.c's fast free             */
    struct pcpu_usage usage;         /* this thread's counts            */
    unsigned int nr_pending;
    unsigned int nr_clean;           /* objects pending, zeroed already */
    unsigned int nr_dirty;           /* objects pending, not zeroed yet */
    size_t dirty_bytes;
    size_t clean_bytes;              /* pending and zeroed already      */
    struct pcpu_tcache_class cls[PCPU_TCACHE_NR_CLASSES]; /* [0] unused */
    struct pcpu_freed pending[PCPU_PENDING_MAX];
    unsigned int nr_reserve;         /* clean, small, many units only   */
    size_t reserve_bytes;
    struct pcpu_freed reserve[PCPU_RESERVE_MAX]; /* top: lowest address */
    struct pcpu_span spans[PCPU_PENDING_MAX];    /* scratch of a batch    */
};

PCPU_HIDDEN extern __thread struct pcpu_tcache *pcpu__my_tcache
    __attribute__((tls_model("initial-exec")));

/* The calling thread's cache, made on first use; NULL if that failed (the
 * thread then works through the locked paths). */
PCPU_HIDDEN struct pcpu_tcache *pcpu__tcache_make(void);
static inline struct pcpu_tcache *pcpu__tcache_mine(void)
{
    struct pcpu_tcache *tc = pcpu__my_tcache;
    return likely(tc) ? tc : pcpu__tcache_make();
}
/* Fill class ci's empty cache: from the pending batch when that is cheap,
 * else from the pool (takes the lock); 0, or -1 with errno. */
PCPU_HIDDEN int pcpu__tcache_refill(struct pcpu_tcache *tc, size_t ci);
/* Zero the pending batch where it is dirty, fill class caches from it and
 * give the rest back to the pool under one lock hold. */
PCPU_HIDDEN void pcpu__tcache_process(struct pcpu_tcache *tc);

/* Whether a freed object of bits granules at bit, owned by c, may go to a
 * class cache (exact class size, natural alignment, not reserved). */
static inline bool pcpu__tcache_takes(const struct pcpu_chunk *c, size_t bit, size_t bits)
{
    return pcpu__tcache_exact(bits) && !c->is_reserved &&
           /* a power of two: no division */
           (bit & (pcpu__tcache_class_align(pcpu__tcache_class(bits)) - 1)) == 0;
}

/* Pop an object of class ci (the cache must hold one). */
static inline struct pcpu_tcache_entry pcpu__tcache_pop(struct pcpu_tcache *tc, size_t ci)
{
    struct pcpu_tcache_class *cls = &tc->cls[ci];
    return cls->e[--cls->count];
}

/* Pop an object of class ci whose first granule is a multiple of
 * align_bits (more than the class promises): the cache's objects are
 * aligned that far by chance often enough (half of a 64-byte class's are
 * 128-byte aligned) that looking saves the lock.  false if none is. */
static inline bool pcpu__tcache_pop_aligned(struct pcpu_tcache *tc, size_t ci, size_t align_bits,
                                            struct pcpu_tcache_entry *out)
{
    struct pcpu_tcache_class *cls = &tc->cls[ci];
    for (unsigned int i = cls->count; i-- > 0;) {
        struct pcpu_tcache_entry e = cls->e[i];
        if (pcpu__chunk_bit(e.chunk, e.cookie) & (align_bits - 1))
            continue;
        /* The top entry takes its place, after the count dropped: a
         * fork() between the two leaves the child without the top entry
         * (leaked there), never with it twice (given back twice). */
        struct pcpu_tcache_entry top = cls->e[cls->count - 1];
        __atomic_store_n(&cls->count, cls->count - 1, __ATOMIC_RELEASE);
        __atomic_thread_fence(__ATOMIC_RELEASE);
        cls->e[i] = top;
        *out = e;
        return true;
    }
    return false;
}

static inline bool pcpu__tcache_has_room(const struct pcpu_tcache *tc, size_t ci)
{
    return tc->cls[ci].count < pcpu__tcache_cap(pcpu__tcache_class_bits(ci));
}

/* Park a freed, zeroed object in cls, whose count n is below its cap. */
static inline void pcpu__tcache_put(struct pcpu_tcache_class *cls, unsigned int n, void *cookie,
                                    struct pcpu_chunk *c)
{
    /* Entry first, then the count that makes it visible: a fork() may
     * snapshot this thread at any instruction, and the child flushes what
     * the count covers. */
    cls->e[n] = (struct pcpu_tcache_entry){cookie, c};
    __atomic_store_n(&cls->count, n + 1, __ATOMIC_RELEASE);
}

/* Park a freed, zeroed object of class ci if its cache has room. */
static inline bool pcpu__tcache_push(struct pcpu_tcache *tc, size_t ci, void *cookie,
                                     struct pcpu_chunk *c)
{
    struct pcpu_tcache_class *cls = &tc->cls[ci];
    if (unlikely(cls->count >= pcpu__tcache_cap(pcpu__tcache_class_bits(ci))))
        return false;
    pcpu__tcache_put(cls, cls->count, cookie, c);
    return true;
}

/* Add a freed object to the pending batch (clean: already zeroed or
 * poisoned); true when the batch is full and must be processed now
 * (pcpu__tcache_defer does that itself). */
static inline bool pcpu__tcache_add_pending(struct pcpu_tcache *tc, void *cookie,
                                            struct pcpu_chunk *c, size_t bits, bool clean)
{
    unsigned int n = tc->nr_pending;
    struct pcpu_freed *last = n ? &tc->pending[n - 1] : NULL;
    if (last && last->cookie + (size_t)last->bits * last->count * PCPU_GRANULE == (char *)cookie &&
        last->chunk == c && last->bits == bits && last->clean == clean &&
        last->count < PCPU_FREED_COUNT_MAX) {
        /* Right after the last entry's objects: one more of them (a child
         * forked before this store leaks the object, never frees it). */
        __atomic_store_n(&last->count, last->count + 1, __ATOMIC_RELEASE);
    } else {
        struct pcpu_freed *f = &tc->pending[n];
        f->cookie = cookie;
        f->chunk = c;
        f->bits = (uint32_t)bits;
        f->count = 1;
        f->clean = clean;
        /* The count covers the entry only once it is written (fork, above). */
        __atomic_store_n(&tc->nr_pending, n + 1, __ATOMIC_RELEASE);
    }
    /* The object counts are read by pcpu_stats from other threads. */
    if (!clean) {
        __atomic_store_n(&tc->nr_dirty, tc->nr_dirty + 1, __ATOMIC_RELAXED);
        tc->dirty_bytes += bits * PCPU_GRANULE;
    } else {
        __atomic_store_n(&tc->nr_clean, tc->nr_clean + 1, __ATOMIC_RELAXED);
        tc->clean_bytes += bits * PCPU_GRANULE;
    }
    return unlikely(tc->nr_clean >= PCPU_PENDING_CLEAN ||
                    tc->nr_dirty >= (pcpu__units_many() ? PCPU_PENDING_DIRTY_MANY
                                                         : PCPU_PENDING_DIRTY) ||
                    tc->dirty_bytes >= PCPU_PENDING_BYTES ||
                    tc->clean_bytes >= PCPU_PENDING_BYTES);
}

static inline void pcpu__tcache_defer(struct pcpu_tcache *tc, void *cookie, struct pcpu_chunk *c,
                                      size_t bits, bool clean)
{
    if (pcpu__tcache_add_pending(tc, cookie, c, bits, clean))
        pcpu__tcache_process(tc);
}

/* With the allocator lock held: */
/* Give one cache's objects back, pending ones included (it stays usable);
 * returns how many. */
PCPU_HIDDEN size_t pcpu__tcache_flush_locked(struct pcpu_tcache *tc);
/* Give the shared store's objects back to the pool; how many. */
PCPU_HIDDEN size_t pcpu__tcache_store_flush_locked(void);
/* pcpu_exit: forget every cached object (the chunks go away). */
PCPU_HIDDEN void pcpu__tcache_drop_all_locked(void);
/* The library is being unloaded (or the process exits): no thread-exit
 * hook may call into it any more, and threads make no new caches. */
PCPU_HIDDEN void pcpu__tcache_unload(void);
/* fork child: give other threads' objects back and free their caches. */
PCPU_HIDDEN void pcpu__tcache_flush_others_locked(void);
PCPU_HIDDEN size_t pcpu__tcache_count_locked(void);
PCPU_HIDDEN int pcpu__tcache_validate_locked(void);
/* Every object parked in any thread's cache (robust checks at exit). */
PCPU_HIDDEN void pcpu__tcache_for_each_cached_locked(
    void (*fn)(struct pcpu_chunk *c, void *cookie, size_t bits, void *arg), void *arg);

#endif
