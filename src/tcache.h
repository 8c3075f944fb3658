/*
 * tcache.h - per-thread caches of small free objects (tcache.c).
 *
 * Size classes: one per granule count up to 256 bytes, then one per 64
 * bytes up to 4 KiB.  Only requests of exactly a class's size use a cache,
 * so every allocation keeps its own size in the map (and in reports).
 * A cached object is allocated in its chunk's map but not live.  Each
 * cache also carries its thread's usage counts (usage.h).
 */
#ifndef PCPU_TCACHE_H
#define PCPU_TCACHE_H

#include "chunk.h"
#include "usage.h"

#define PCPU_TCACHE_EXACT_BITS 64u
#define PCPU_TCACHE_STEP_BITS 16u
#define PCPU_TCACHE_MAX_BITS 1024u
#define PCPU_TCACHE_NR_CLASSES \
    (PCPU_TCACHE_EXACT_BITS + (PCPU_TCACHE_MAX_BITS - PCPU_TCACHE_EXACT_BITS) / PCPU_TCACHE_STEP_BITS + 1)
#define PCPU_TCACHE_CAP 32u
#define PCPU_TCACHE_BATCH 16u

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
/* Fewer objects of the bigger classes, so a cache pins little memory. */
static inline unsigned int pcpu__tcache_cap(size_t bits)
{
    if (bits <= PCPU_TCACHE_EXACT_BITS)
        return PCPU_TCACHE_CAP;
    size_t cap = PCPU_TCACHE_CAP * PCPU_TCACHE_EXACT_BITS / bits;
    return cap < 4 ? 4 : (unsigned int)cap;
}

struct pcpu_tcache_entry {
    void *cookie;
    struct pcpu_chunk *chunk;
};

struct pcpu_tcache_class {
    unsigned int count;
    struct pcpu_tcache_entry e[PCPU_TCACHE_CAP];
};

struct pcpu_tcache {
    struct pcpu_tcache *prev, *next; /* all caches, under the lock      */
    struct pcpu_usage usage;         /* this thread's counts            */
    struct pcpu_tcache_class cls[PCPU_TCACHE_NR_CLASSES]; /* [0] unused */
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
/* Take objects of class ci from the pool into the cache (takes the lock);
 * 0, or -1 with errno. */
PCPU_HIDDEN int pcpu__tcache_refill(struct pcpu_tcache *tc, size_t ci);
/* Park a freed object when its class is full (takes the lock to give the
 * older half back). */
PCPU_HIDDEN void pcpu__tcache_put_full(struct pcpu_tcache *tc, size_t ci, void *cookie,
                                       struct pcpu_chunk *c);

/* Pop an object of class ci (the cache must hold one). */
static inline struct pcpu_tcache_entry pcpu__tcache_pop(struct pcpu_tcache *tc, size_t ci)
{
    struct pcpu_tcache_class *cls = &tc->cls[ci];
    return cls->e[--cls->count];
}

/* Park a freed, zeroed object; the full-cache case goes out of line. */
static inline void pcpu__tcache_push(struct pcpu_tcache *tc, size_t ci, void *cookie,
                                     struct pcpu_chunk *c)
{
    struct pcpu_tcache_class *cls = &tc->cls[ci];
    if (unlikely(cls->count >= pcpu__tcache_cap(pcpu__tcache_class_bits(ci)))) {
        pcpu__tcache_put_full(tc, ci, cookie, c);
        return;
    }
    /* Entry first, then the count that makes it visible: a fork() may
     * snapshot this thread at any instruction, and the child flushes what
     * the count covers. */
    cls->e[cls->count] = (struct pcpu_tcache_entry){cookie, c};
    __atomic_store_n(&cls->count, cls->count + 1, __ATOMIC_RELEASE);
}

/* With the allocator lock held: */
/* Give one cache's objects back (it stays usable); returns how many. */
PCPU_HIDDEN size_t pcpu__tcache_flush_locked(struct pcpu_tcache *tc);
/* pcpu_exit: forget every cached object (the chunks go away). */
PCPU_HIDDEN void pcpu__tcache_drop_all_locked(void);
/* fork child: give other threads' objects back and free their caches. */
PCPU_HIDDEN void pcpu__tcache_flush_others_locked(void);
PCPU_HIDDEN size_t pcpu__tcache_count_locked(void);
PCPU_HIDDEN int pcpu__tcache_validate_locked(void);
/* Every object parked in any thread's cache (robust checks at exit). */
PCPU_HIDDEN void pcpu__tcache_for_each_cached_locked(
    void (*fn)(struct pcpu_chunk *c, void *cookie, size_t bits, void *arg), void *arg);

#endif
