/* SPDX-License-Identifier: MIT */
/*
 * tcache.c - per-thread caches of small free objects.
 *
 * The allocation map is shared and protected by one lock; taking it on
 * every small allocation would make two threads slower than one.  Each
 * thread therefore keeps, per size class (one per granule count up to 256
 * bytes, then 64-byte steps up to 4 KiB), a small stack of objects that
 * are allocated in the map but not live.  pcpu_alloc() pops one and sets
 * its live bit; pcpu_free() zeroes the object and pushes it.  Refills move
 * a batch at a time under the lock.
 *
 * Frees that do not fit a class cache (a full class, another size, a
 * reserved object) and frees whose zeroing is better done in bulk (big
 * objects, many units: see units.h) wait in a pending batch of up to
 * PCPU_PENDING_MAX objects.  Processing the batch zeroes its dirty objects
 * chunk by chunk at once, fills the class caches from it, and gives the
 * rest back to the pool in one lock hold, adjacent objects as one run:
 * so a free costs no more than an allocation, also in bulk.  With many
 * units the small objects of that rest stay in the thread's reserve
 * instead, for the next refills (see PCPU_RESERVE_MAX).
 *
 * What threads give back of the exact classes waits in a shared store, one
 * class cache's worth per class, for the next thread that refills that
 * class: in a loop of mixed sizes most refills then move a few entries
 * under the lock instead of searching the map, and most give-backs do not
 * update it, so two threads spend little time in the one lock.
 *
 * A thread's cache is flushed back to the pool when the thread exits, and
 * dropped by pcpu_exit(); a forked child returns the caches of the threads
 * that did not follow it.  Each cache carries its thread's usage counts,
 * which are folded into the totals whenever the cache is flushed.
 */
#include "tcache.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "lookup.h"
#include "os.h"
#include "pool.h"
#include "reclaim.h"

__thread struct pcpu_tcache *pcpu__my_tcache __attribute__((tls_model("initial-exec")));

/* The key whose destructor flushes a thread's cache at its exit; NO_KEY
 * before the first cache and after the library's unload. */
#define NO_KEY ((pthread_key_t)-1)
static pthread_key_t tcache_key = NO_KEY;
static pthread_once_t tcache_once = PTHREAD_ONCE_INIT;
static struct pcpu_tcache *all_caches; /* under the lock */

/* The map bit of a cached object. */
static inline size_t entry_bit(const struct pcpu_tcache_entry *e)
{
    return pcpu__chunk_bit(e->chunk, e->cookie);
}

/* Zero the pending objects that are dirty: per chunk, in one go (units.c
 * asks the kernel which pages hold data when that is worth it). */
static void clean_pending(struct pcpu_tcache *tc, size_t n)
{
    if (!tc->nr_dirty)
        return;
    struct pcpu_freed *p = tc->pending;
    pcpu__freed_sort(p, n);
    struct pcpu_span *spans = tc->spans;
    for (size_t i = 0; i < n;) {
        struct pcpu_chunk *c = p[i].chunk;
        size_t k = 0, j = i;
        for (; j < n && p[j].chunk == c; j++)
            if (!p[j].clean) {
                spans[k++] = (struct pcpu_span){p[j].cookie,
                                                (size_t)p[j].bits * p[j].count * PCPU_GRANULE};
                p[j].clean = true;
            }
        pcpu__units_zero_spans(c->base, spans, k);
        i = j;
    }
    __atomic_store_n(&tc->nr_clean, tc->nr_clean + tc->nr_dirty, __ATOMIC_RELAXED);
    __atomic_store_n(&tc->nr_dirty, 0, __ATOMIC_RELAXED);
    tc->clean_bytes += tc->dirty_bytes;
    tc->dirty_bytes = 0;
}

/*
 * Move what the reserve takes of pending[0, n) (clean, sorted when the
 * batch had anything to zero) into it; the rest stays packed at the front
 * of pending, and its count is returned.  Taken from the end, so the
 * reserve's top is the lowest address: refills hand objects out in
 * address order, and the next batch comes back sorted.
 */
static size_t to_reserve(struct pcpu_tcache *tc, size_t n)
{
    size_t left = 0, i = n, bytes = tc->reserve_bytes;
    unsigned int r = tc->nr_reserve;
    while (i > 0 && r < PCPU_RESERVE_MAX) {
        struct pcpu_freed *f = &tc->pending[--i];
        size_t b = f->bits * PCPU_GRANULE;
        /* A run's objects share the first one's size and alignment; they
         * go in one by one, highest first, and what does not fit stays. */
        if (f->bits <= PCPU_RESERVE_MAX_BITS &&
            pcpu__tcache_takes(f->chunk, pcpu__chunk_bit(f->chunk, f->cookie), f->bits)) {
            unsigned int k = f->count;
            while (k > 0 && r < PCPU_RESERVE_MAX && bytes + b <= PCPU_RESERVE_BYTES) {
                k--;
                tc->reserve[r++] = (struct pcpu_freed){.cookie = f->cookie + k * b,
                                                       .chunk = f->chunk,
                                                       .bits = f->bits,
                                                       .count = 1,
                                                       .clean = f->clean};
                bytes += b;
            }
            if (k == 0)
                continue;
            f->count = (uint16_t)k;
        }
        /* Kept objects collect at the end for now (i < the slot). */
        tc->pending[n - 1 - left++] = *f;
    }
    /* Entries first, then the count (fork: see pcpu__tcache_process). */
    __atomic_store_n(&tc->nr_reserve, r, __ATOMIC_RELEASE);
    tc->reserve_bytes = bytes;
    /* pending[0, i) was not looked at; pending[n - left, n) is kept. */
    memmove(&tc->pending[i], &tc->pending[n - left], left * sizeof(tc->pending[0]));
    return i + left;
}

/*
 * Fill class ci's empty cache from the reserve: objects of its size near
 * the top.  The reserve's count drops below the part looked at before any
 * object moves, so a fork() in between leaks objects in the child but
 * never gives one back twice.  true if the cache got any.
 */
static bool from_reserve(struct pcpu_tcache *tc, size_t ci)
{
    unsigned int top = tc->nr_reserve;
    if (!top)
        return false;
    struct pcpu_tcache_class *cls = &tc->cls[ci];
    uint32_t bits = (uint32_t)pcpu__tcache_class_bits(ci);
    unsigned int want = pcpu__tcache_cap(bits) - cls->count;
    /* Look at most this far down: a refill costs a bounded walk even
     * when the reserve is full of other sizes. */
    unsigned int lo = top > 4 * PCPU_TCACHE_CAP ? top - 4 * PCPU_TCACHE_CAP : 0;
    unsigned int cut = top, found = 0;
    for (unsigned int i = top; i-- > lo && found < want;)
        if (tc->reserve[i].bits == bits) {
            cut = i;
            found++;
        }
    if (!found)
        return false;
    __atomic_store_n(&tc->nr_reserve, cut, __ATOMIC_RELEASE);
    /* Upwards: the highest address is pushed first, so the lowest ends
     * on top of the class stack; the others close up in place. */
    unsigned int w = cut;
    for (unsigned int i = cut; i < top; i++) {
        struct pcpu_freed f = tc->reserve[i];
        if (f.bits == bits) {
            (void)pcpu__tcache_push(tc, ci, f.cookie, f.chunk);
            tc->reserve_bytes -= bits * PCPU_GRANULE;
        } else {
            tc->reserve[w++] = f;
        }
    }
    __atomic_store_n(&tc->nr_reserve, w, __ATOMIC_RELEASE);
    return true;
}

/* The shared store (under the lock): zeroed objects of exact classes,
 * allocated in the map but not live, as in a thread's class cache.  A
 * class holds at most what one thread's cache may, so the store pins at
 * most one more cache's worth of memory.  Few units only: with many, the
 * threads' reserves do this job. */
static struct pcpu_tcache_class store[PCPU_TCACHE_NR_CLASSES];

/* Not the classes whose refills take runs filling whole lines of live
 * marks (pcpu__tcache_refill): objects from the store would put two
 * threads' objects in one line of marks again. */
static inline bool store_takes(size_t bits)
{
    return 64 % bits != 0;
}

/* Move what the store takes of objs[0, n) into it; the rest stays packed
 * at the front, and its count is returned.  A run goes in object by
 * object from its end. */
static size_t to_store(struct pcpu_freed *objs, size_t n)
{
    size_t keep = 0;
    for (size_t i = 0; i < n; i++) {
        struct pcpu_freed *f = &objs[i];
        size_t ci = pcpu__tcache_class(f->bits);
        if (f->clean && ci < PCPU_TCACHE_NR_CLASSES && store_takes(f->bits) &&
            pcpu__tcache_takes(f->chunk, pcpu__chunk_bit(f->chunk, f->cookie), f->bits)) {
            struct pcpu_tcache_class *cls = &store[ci];
            unsigned int cap = pcpu__tcache_cap(f->bits);
            size_t bytes = (size_t)f->bits * PCPU_GRANULE;
            while (f->count > 0 && cls->count < cap) {
                f->count--;
                cls->e[cls->count++] =
                    (struct pcpu_tcache_entry){f->cookie + f->count * bytes, f->chunk};
            }
            if (f->count == 0)
                continue;
        }
        if (keep != i)
            objs[keep] = *f;
        keep++;
    }
    return keep;
}

/* Fill class ci's empty cache with up to want objects of the store. */
static unsigned int from_store(struct pcpu_tcache *tc, size_t ci, unsigned int want)
{
    struct pcpu_tcache_class *from = &store[ci], *to = &tc->cls[ci];
    unsigned int k = from->count < want ? from->count : want;
    for (unsigned int i = 0; i < k; i++)
        to->e[i] = from->e[from->count - k + i];
    from->count -= k;
    /* Entries first, then the count (fork: see pcpu__tcache_push). */
    __atomic_store_n(&to->count, k, __ATOMIC_RELEASE);
    return k;
}

/* Give objects back to the pool (lock held), and schedule a balance pass
 * when the pool wants one. */
static void give_back_locked(struct pcpu_freed *objs, size_t n)
{
    if (n && pcpu__pool_release_many_locked(objs, n))
        pcpu__reclaim_kick_locked();
}

/* Objects a thread gives back: to the store, the rest to the pool. */
static void release_locked(struct pcpu_freed *objs, size_t n)
{
    if (!pcpu__units_many())
        n = to_store(objs, n);
    give_back_locked(objs, n);
}

size_t pcpu__tcache_store_flush_locked(void)
{
    pcpu_assert_locked();
    struct pcpu_freed batch[PCPU_TCACHE_CAP];
    size_t returned = 0;
    for (size_t ci = 1; ci < PCPU_TCACHE_NR_CLASSES; ci++) {
        struct pcpu_tcache_class *cls = &store[ci];
        uint16_t bits = (uint16_t)pcpu__tcache_class_bits(ci);
        for (unsigned int i = 0; i < cls->count; i++)
            batch[i] = (struct pcpu_freed){.cookie = cls->e[i].cookie,
                                           .chunk = cls->e[i].chunk,
                                           .bits = bits,
                                           .count = 1,
                                           .clean = true};
        give_back_locked(batch, cls->count);
        returned += cls->count;
        cls->count = 0;
    }
    return returned;
}

static void unlink_cache(struct pcpu_tcache *tc)
{
    if (tc->prev)
        tc->prev->next = tc->next;
    else
        all_caches = tc->next;
    if (tc->next)
        tc->next->prev = tc->prev;
    tc->prev = tc->next = NULL;
}

size_t pcpu__tcache_flush_locked(struct pcpu_tcache *tc)
{
    pcpu_assert_locked();
    clean_pending(tc, tc->nr_pending);
    size_t returned = tc->nr_clean; /* objects: all clean now */
    give_back_locked(tc->pending, tc->nr_pending);
    tc->nr_pending = 0;
    __atomic_store_n(&tc->nr_clean, 0, __ATOMIC_RELAXED);
    tc->clean_bytes = 0;
    returned += tc->nr_reserve;
    give_back_locked(tc->reserve, tc->nr_reserve);
    tc->nr_reserve = 0;
    tc->reserve_bytes = 0;
    for (size_t ci = 1; ci < PCPU_TCACHE_NR_CLASSES; ci++) {
        struct pcpu_tcache_class *cls = &tc->cls[ci];
        uint32_t bits = (uint32_t)pcpu__tcache_class_bits(ci);
        for (unsigned int i = 0; i < cls->count;) {
            /* Through the pending array, which is empty now. */
            unsigned int k = 0;
            for (; k < PCPU_PENDING_MAX && i < cls->count; k++, i++)
                tc->pending[k] = (struct pcpu_freed){.cookie = cls->e[i].cookie,
                                                     .chunk = cls->e[i].chunk,
                                                     .bits = bits,
                                                     .count = 1,
                                                     .clean = true};
            give_back_locked(tc->pending, k);
        }
        returned += cls->count;
        cls->count = 0;
    }
    /* A flush means memory is wanted back (or a thread left): the store's
     * too. */
    returned += pcpu__tcache_store_flush_locked();
    pcpu__usage_fold_locked(&tc->usage);
    return returned;
}

/* Zero the pending batch where it is dirty and move what fits into the
 * class caches (and, with many units, the reserve); returns how many
 * objects are left at the front of the pending array, which the count no
 * longer covers: the caller gives them back to the pool. */
static size_t sort_pending(struct pcpu_tcache *tc)
{
    /* Out of the count first: a fork() by another thread may snapshot
     * this one at any instruction, and its child gives back what the count
     * covers; an object it misses is leaked in the child, never given back
     * twice. */
    size_t n = tc->nr_pending;
    __atomic_store_n(&tc->nr_pending, 0, __ATOMIC_RELEASE);
    clean_pending(tc, n);
    __atomic_store_n(&tc->nr_clean, 0, __ATOMIC_RELAXED);
    tc->clean_bytes = 0;
    /* With many units small objects go to the reserve first: the refills
     * that take them back hand them out in address order, so the next
     * batch needs no sorting. */
    if (pcpu__units_many())
        n = to_reserve(tc, n);
    /* Class caches (no lock), then the rest, packed at the front. */
    size_t keep = 0;
    for (size_t i = 0; i < n; i++) {
        struct pcpu_freed *f = &tc->pending[i];
        /* Full classes first: a batch of frees in a row mostly finds its
         * class full, and the object's own fields are then not needed. */
        size_t ci = pcpu__tcache_class(f->bits);
        if (f->count == 1 && ci < PCPU_TCACHE_NR_CLASSES && pcpu__tcache_has_room(tc, ci) &&
            pcpu__tcache_takes(f->chunk, pcpu__chunk_bit(f->chunk, f->cookie), f->bits)) {
            pcpu__tcache_push(tc, ci, f->cookie, f->chunk);
            continue;
        }
        if (keep != i)
            tc->pending[keep] = *f;
        keep++;
    }
    return keep;
}

/* Give back the objects sort_pending() left at the front of the batch. */
static void process_left(struct pcpu_tcache *tc, size_t left)
{
    if (left) {
        pcpu__pool_lock();
        release_locked(tc->pending, left);
        pcpu__pool_unlock();
    }
}

void pcpu__tcache_process(struct pcpu_tcache *tc)
{
    process_left(tc, sort_pending(tc));
}

static void thread_exit(void *arg)
{
    struct pcpu_tcache *tc = arg;
    pcpu__pool_lock();
    if (pcpu__pool_ready())
        pcpu__tcache_flush_locked(tc);
    pcpu__usage_detach_locked(&tc->usage);
    unlink_cache(tc);
    pcpu__pool_unlock();
    pcpu__my_tcache = NULL;
    pcpu__meta_unmap(tc, sizeof(*tc));
}

static void make_key(void)
{
    pthread_key_t k;
    if (pthread_key_create(&k, thread_exit) == 0)
        __atomic_store_n(&tcache_key, k, __ATOMIC_RELEASE);
}

struct pcpu_tcache *pcpu__tcache_make(void)
{
    pthread_once(&tcache_once, make_key);
    pthread_key_t key = __atomic_load_n(&tcache_key, __ATOMIC_ACQUIRE);
    if (key == NO_KEY)
        return NULL;
    struct pcpu_tcache *tc = pcpu__meta_map(sizeof(*tc));
    if (!tc)
        return NULL;
    if (pthread_setspecific(key, tc) != 0) {
        pcpu__meta_unmap(tc, sizeof(*tc));
        return NULL;
    }
    pcpu__pool_lock();
    tc->next = all_caches;
    if (all_caches)
        all_caches->prev = tc;
    all_caches = tc;
    pcpu__usage_attach_locked(&tc->usage);
    pcpu__pool_unlock();
    pcpu__my_tcache = tc;
    return tc;
}

void pcpu__tcache_unload(void)
{
    /* Threads that still hold caches keep them (their memory stays the
     * library's); only the exit hook goes, and no new thread gets one. */
    pthread_key_t key = __atomic_exchange_n(&tcache_key, NO_KEY, __ATOMIC_ACQ_REL);
    if (key != NO_KEY)
        pthread_key_delete(key);
}

int pcpu__tcache_refill(struct pcpu_tcache *tc, size_t ci)
{
    struct pcpu_tcache_class *cls = &tc->cls[ci];
    if (from_reserve(tc, ci))
        return 0;
    /* Freed objects wait in the pending batch: use them when zeroing them
     * now is cheap (nothing dirty, or a batch big enough to be worth one
     * scan), before taking the lock.  With many units one scan costs tens
     * of microseconds whatever the batch holds, so a loop that frees and
     * allocates one object at a time must not pay one per refill. */
    size_t left = 0;
    if (tc->nr_pending &&
        (tc->nr_dirty == 0 ||
         tc->nr_dirty >= (pcpu__units_many() ? PCPU_PENDING_DIRTY_MANY : PCPU_PENDING_DIRTY))) {
        left = sort_pending(tc);
        if (cls->count || from_reserve(tc, ci)) {
            process_left(tc, left);
            return 0;
        }
    }
    size_t bits = pcpu__tcache_class_bits(ci);
    unsigned int batch = pcpu__tcache_cap(bits) / 2;
    size_t align = pcpu__tcache_class_align(ci);
    struct pcpu_chunk *c;
    pcpu__pool_lock();
    /* What the batch could not place goes back under the same lock hold
     * as the claim (two threads that refill often meet at the lock). */
    release_locked(tc->pending, left);
    if (store_takes(bits) && from_store(tc, ci, batch)) {
        pcpu__pool_unlock();
        return 0;
    }
    if ((64 % bits) == 0) {
        /* One run that fills whole cache lines of live marks, so no other
         * thread's objects share a line of marks with this batch. */
        size_t count = 64 / bits < PCPU_TCACHE_BATCH ? PCPU_TCACHE_BATCH : 64 / bits;
        if (count > PCPU_TCACHE_CAP)
            count = PCPU_TCACHE_CAP;
        char *p = pcpu__pool_alloc_locked(bits, count, count * bits >= 64 ? 64 : align, false, &c);
        for (size_t i = 0; p && i < count; i++)
            cls->e[cls->count++] =
                (struct pcpu_tcache_entry){p + (count - 1 - i) * bits * PCPU_GRANULE, c};
    }
    if (cls->count == 0 && batch > 1) {
        /* The batch as one run where a chunk has one: one search of the
         * map instead of one per object (a search in a fragmented chunk
         * is most of a refill, with the lock held). */
        /* Runs of the 64-byte classes start on 256 bytes: then a class
         * whose size is a multiple of 128 or 256 bytes holds only objects
         * aligned that far, and pcpu__tcache_pop_aligned finds one for an
         * over-aligned request without the lock.  Runs of an exact class
         * start aligned to its size's power of two (up to 256 bytes), for
         * the same reason: sizes rounded up to an alignment (alloc.c). */
        size_t run_align = PCPU_TCACHE_RUN_ALIGN_BITS;
        if (bits <= PCPU_TCACHE_EXACT_BITS && pcpu__low_bit(bits) < run_align)
            run_align = pcpu__low_bit(bits);
        char *p = pcpu__pool_take_run_locked(bits, batch, run_align, &c);
        for (size_t i = 0; p && i < batch; i++)
            cls->e[cls->count++] =
                (struct pcpu_tcache_entry){p + (batch - 1 - i) * bits * PCPU_GRANULE, c};
    }
    while (cls->count < batch) {
        void *p = pcpu__pool_alloc_locked(bits, 1, align, false, &c);
        if (!p)
            break;
        cls->e[cls->count++] = (struct pcpu_tcache_entry){p, c};
    }
    if (cls->count == 0 && errno == ENOMEM && pcpu__tcache_flush_locked(tc) > 0) {
        /* Memory was parked in this cache's other classes. */
        void *p = pcpu__pool_alloc_locked(bits, 1, align, false, &c);
        if (p)
            cls->e[cls->count++] = (struct pcpu_tcache_entry){p, c};
    }
    if (cls->count == 0) {
        int err = errno ? errno : ENOMEM;
        pcpu__pool_unlock();
        errno = err;
        return -1;
    }
    /* No sample of the peak here: no count changes (usage.c says when one
     * is needed), and each sample makes every thread's next allocation
     * read the period word this one just wrote. */
    pcpu__pool_unlock();
    return 0;
}

void pcpu__tcache_drop_all_locked(void)
{
    pcpu_assert_locked();
    for (size_t ci = 1; ci < PCPU_TCACHE_NR_CLASSES; ci++)
        store[ci].count = 0;
    for (struct pcpu_tcache *tc = all_caches; tc; tc = tc->next) {
        for (size_t ci = 1; ci < PCPU_TCACHE_NR_CLASSES; ci++)
            tc->cls[ci].count = 0;
        __atomic_store_n(&tc->nr_clean, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&tc->nr_dirty, 0, __ATOMIC_RELAXED);
        tc->nr_pending = tc->nr_reserve = 0;
        tc->dirty_bytes = tc->clean_bytes = tc->reserve_bytes = 0;
    }
}

void pcpu__tcache_flush_others_locked(void)
{
    pcpu_assert_locked();
    struct pcpu_tcache *tc = all_caches, *next;
    for (; tc; tc = next) {
        next = tc->next;
        if (tc == pcpu__my_tcache)
            continue;
        if (pcpu__pool_ready())
            pcpu__tcache_flush_locked(tc);
        pcpu__usage_detach_locked(&tc->usage);
        unlink_cache(tc);
        pcpu__meta_unmap(tc, sizeof(*tc));
    }
}

size_t pcpu__tcache_count_locked(void)
{
    pcpu_assert_locked();
    size_t n = 0;
    for (size_t ci = 1; ci < PCPU_TCACHE_NR_CLASSES; ci++)
        n += store[ci].count;
    for (struct pcpu_tcache *tc = all_caches; tc; tc = tc->next) {
        /* Objects, not entries: adjacent frees share one entry. */
        n += __atomic_load_n(&tc->nr_clean, __ATOMIC_RELAXED);
        n += __atomic_load_n(&tc->nr_dirty, __ATOMIC_RELAXED);
        n += __atomic_load_n(&tc->nr_reserve, __ATOMIC_RELAXED);
        for (size_t ci = 1; ci < PCPU_TCACHE_NR_CLASSES; ci++)
            n += tc->cls[ci].count;
    }
    return n;
}

/* Every entry of a class cache (a thread's or the store) is a free
 * allocation of its class's size. */
static int validate_classes(const struct pcpu_tcache_class *classes, const char *whose)
{
    int problems = 0;
    for (size_t ci = 1; ci < PCPU_TCACHE_NR_CLASSES; ci++) {
        const struct pcpu_tcache_class *cls = &classes[ci];
        size_t bits = pcpu__tcache_class_bits(ci);
        if (cls->count > PCPU_TCACHE_CAP) {
            fprintf(stderr, "percpu: validate: %s class %zu holds %u objects, more than %u\n",
                    whose, bits, cls->count, PCPU_TCACHE_CAP);
            problems++;
            continue;
        }
        for (unsigned int i = 0; i < cls->count; i++) {
            const struct pcpu_tcache_entry *e = &cls->e[i];
            size_t bit = entry_bit(e);
            if (pcpu__lookup(e->cookie) != e->chunk || !pcpu__test_bit(e->chunk->start_map, bit) ||
                pcpu__live_test(e->chunk, bit) || pcpu__chunk_alloc_bits(e->chunk, bit) != bits) {
                fprintf(stderr, "percpu: validate: %s object %p (class %zu) is not a "
                        "free allocation of that size\n", whose, e->cookie, bits);
                problems++;
            }
        }
    }
    return problems;
}

int pcpu__tcache_validate_locked(void)
{
    pcpu_assert_locked();
    int problems = validate_classes(store, "stored");
    struct pcpu_tcache *tc = pcpu__my_tcache;
    /* Other live threads push and pop their caches without the lock:
     * reading their entries here would race (and report objects just
     * handed out as broken).  Only the caller's own cache holds still;
     * the caches of exited threads were flushed. */
    if (!tc)
        return problems;
    problems += validate_classes(tc->cls, "cached");
    for (unsigned int i = 0; i < tc->nr_pending + tc->nr_reserve; i++) {
        const struct pcpu_freed *f =
            i < tc->nr_pending ? &tc->pending[i] : &tc->reserve[i - tc->nr_pending];
        for (unsigned int k = 0; k < f->count; k++) {
            char *cookie = f->cookie + (size_t)k * f->bits * PCPU_GRANULE;
            size_t bit = pcpu__chunk_bit(f->chunk, cookie);
            struct pcpu_chunk *owner = pcpu__lookup(cookie);
            if (!owner || !pcpu__test_bit(f->chunk->start_map, bit) ||
                pcpu__live_test(f->chunk, bit) || pcpu__chunk_alloc_bits(f->chunk, bit) != f->bits) {
                fprintf(stderr, "percpu: validate: pending freed object %p is not a free "
                        "allocation of %u granules\n", (void *)cookie, f->bits);
                problems++;
            }
        }
    }
    return problems;
}

void pcpu__tcache_for_each_cached_locked(
    void (*fn)(struct pcpu_chunk *c, void *cookie, size_t bits, void *arg), void *arg)
{
    for (size_t ci = 1; ci < PCPU_TCACHE_NR_CLASSES; ci++)
        for (unsigned int i = 0; i < store[ci].count; i++)
            fn(store[ci].e[i].chunk, store[ci].e[i].cookie, pcpu__tcache_class_bits(ci), arg);
    for (struct pcpu_tcache *tc = all_caches; tc; tc = tc->next) {
        for (size_t ci = 1; ci < PCPU_TCACHE_NR_CLASSES; ci++) {
            struct pcpu_tcache_class *cls = &tc->cls[ci];
            for (unsigned int i = 0; i < cls->count; i++)
                fn(cls->e[i].chunk, cls->e[i].cookie, pcpu__tcache_class_bits(ci), arg);
        }
        /* Robust mode poisons at free: pending objects are clean too. */
        for (unsigned int i = 0; i < tc->nr_pending; i++) {
            const struct pcpu_freed *f = &tc->pending[i];
            for (unsigned int k = 0; f->clean && k < f->count; k++)
                fn(f->chunk, f->cookie + (size_t)k * f->bits * PCPU_GRANULE, f->bits, arg);
        }
        for (unsigned int i = 0; i < tc->nr_reserve; i++)
            fn(tc->reserve[i].chunk, tc->reserve[i].cookie, tc->reserve[i].bits, arg);
    }
}
