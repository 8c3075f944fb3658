/*
 * tcache.c - per-thread caches of small free objects.
 *
 * The allocation map is shared and protected by one lock; taking it on
 * every small allocation would make two threads slower than one.  Each
 * thread therefore keeps, per size class (one per granule count up to 256
 * bytes, then 64-byte steps up to 4 KiB), a small stack of objects that
 * are allocated in the map but not live.  pcpu_alloc() pops one and sets its live bit; pcpu_free() zeroes
 * the object and pushes it.  Refills and overflows move a batch at a time
 * under the lock, so the lock is taken once per PCPU_TCACHE_BATCH
 * operations at most.
 *
 * Counters that the kernel keeps under its lock (nr_alloc, nr_dealloc,
 * nr_max_alloc, min/max sizes) are kept per thread here and summed when a
 * snapshot is taken.  nr_max_alloc is exact for one thread; with several
 * it is an upper bound (each thread's peak since the last sample is added
 * as if all peaks happened at once).
 *
 * A thread's cache is flushed back to the map when the thread exits, and
 * dropped by pcpu_exit(); a forked child returns the caches of the threads
 * that did not follow it.
 */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

__thread struct pcpu_tcache *pcpu__my_tcache __attribute__((tls_model("initial-exec")));

static pthread_key_t tcache_key;
static pthread_once_t tcache_once = PTHREAD_ONCE_INIT;
static struct pcpu_tcache *all_caches; /* under the lock */

/* The map bit of a cached object. */
static inline size_t entry_bit(const struct pcpu_tcache_entry *e)
{
    return (size_t)((char *)e->cookie - e->chunk->base) / PCPU_GRANULE;
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

/* Give every cached object back to the map and fold the counters into the
 * global ones; the cache stays usable, empty. */
size_t pcpu__tcache_flush_locked(struct pcpu_tcache *tc)
{
    size_t returned = 0;
    /* This cache's peak since the last sample is about to be forgotten:
     * sample it first, or a thread that exits (or gives its cache back)
     * after its last refill takes the true maximum with it. */
    pcpu__note_max_alloc_locked();
    for (size_t ci = 1; ci < PCPU_TCACHE_NR_CLASSES; ci++) {
        struct pcpu_tcache_class *cls = &tc->cls[ci];
        size_t bits = pcpu__tcache_class_bits(ci);
        for (unsigned int i = 0; i < cls->count; i++) {
            struct pcpu_tcache_entry *e = &cls->e[i];
            size_t bit = entry_bit(e);
            pcpu__release_locked(e->chunk, bit, bits);
        }
        returned += cls->count;
        cls->count = 0;
    }
    pcpu__g.nr_alloc += atomic_load(&tc->nr_alloc);
    pcpu__g.nr_dealloc += atomic_load(&tc->nr_dealloc);
    size_t mn = atomic_load(&tc->min_size), mx = atomic_load(&tc->max_size);
    if (mn && mn < pcpu__g.min_alloc_size)
        pcpu__g.min_alloc_size = mn;
    if (mx > pcpu__g.max_alloc_size)
        pcpu__g.max_alloc_size = mx;
    atomic_store(&tc->nr_alloc, 0);
    atomic_store(&tc->nr_dealloc, 0);
    atomic_store(&tc->peak_net, 0);
    atomic_store(&tc->min_size, 0);
    atomic_store(&tc->max_size, 0);
    return returned;
}

static void thread_exit(void *arg)
{
    struct pcpu_tcache *tc = arg;
    pcpu__lock();
    if (atomic_load(&pcpu__g.state) != PCPU_STATE_OFF)
        pcpu__tcache_flush_locked(tc);
    unlink_cache(tc);
    pcpu__unlock();
    pcpu__my_tcache = NULL;
    pcpu__meta_free(tc, sizeof(*tc));
}

static void make_key(void)
{
    if (pthread_key_create(&tcache_key, thread_exit) != 0)
        tcache_key = (pthread_key_t)-1;
}

struct pcpu_tcache *pcpu__tcache_get(void)
{
    pthread_once(&tcache_once, make_key);
    if (tcache_key == (pthread_key_t)-1)
        return NULL;
    /* Without a cache the thread still works, through the locked path. */
    struct pcpu_tcache *tc = pcpu__meta_calloc(1, sizeof(*tc));
    if (!tc)
        return NULL;
    if (pthread_setspecific(tcache_key, tc) != 0) {
        pcpu__meta_free(tc, sizeof(*tc));
        return NULL;
    }
    pcpu__lock();
    tc->next = all_caches;
    if (all_caches)
        all_caches->prev = tc;
    all_caches = tc;
    atomic_store(&tc->epoch, atomic_load(&pcpu__g.stats_epoch));
    pcpu__unlock();
    pcpu__my_tcache = tc;
    return tc;
}

int pcpu__tcache_refill(struct pcpu_tcache *tc, size_t ci)
{
    struct pcpu_tcache_class *cls = &tc->cls[ci];
    size_t bits = pcpu__tcache_class_bits(ci);
    unsigned int batch = pcpu__tcache_cap(bits) / 2;
    size_t align = pcpu__natural_bits(bits);
    struct pcpu_chunk *c;
    pcpu__lock();
    if ((64 % bits) == 0) {
        /* One run that fills whole live_map words, so no other thread's
         * objects share a word (and its atomic updates) with this batch. */
        size_t count = 64 / bits < PCPU_TCACHE_BATCH ? PCPU_TCACHE_BATCH : 64 / bits;
        if (count > PCPU_TCACHE_CAP)
            count = PCPU_TCACHE_CAP;
        char *p = pcpu__alloc_locked(bits, count, count * bits >= 64 ? 64 : align, false, &c);
        for (size_t i = 0; p && i < count; i++)
            cls->e[cls->count++] =
                (struct pcpu_tcache_entry){p + (count - 1 - i) * bits * PCPU_GRANULE, c};
    }
    while (cls->count < batch) {
        void *p = pcpu__alloc_locked(bits, 1, align, false, &c);
        if (!p)
            break;
        cls->e[cls->count++] = (struct pcpu_tcache_entry){p, c};
    }
    if (cls->count == 0 && errno == ENOMEM && pcpu__tcache_flush_locked(tc) > 0) {
        /* Memory was parked in this cache's other classes. */
        void *p = pcpu__alloc_locked(bits, 1, align, false, &c);
        if (p)
            cls->e[cls->count++] = (struct pcpu_tcache_entry){p, c};
    }
    if (cls->count == 0) {
        int err = errno ? errno : ENOMEM;
        pcpu__unlock();
        errno = err;
        return -1;
    }
    pcpu__note_max_alloc_locked();
    pcpu__unlock();
    return 0;
}

void pcpu__tcache_put(struct pcpu_tcache *tc, size_t ci, void *cookie, struct pcpu_chunk *c)
{
    struct pcpu_tcache_class *cls = &tc->cls[ci];
    size_t bits = pcpu__tcache_class_bits(ci);
    unsigned int cap = pcpu__tcache_cap(bits);
    if (unlikely(cls->count >= cap)) {
        /* Return the older half: the newer objects are the warm ones. */
        unsigned int half = cap / 2;
        pcpu__lock();
        for (unsigned int i = 0; i < half; i++) {
            struct pcpu_tcache_entry *e = &cls->e[i];
            size_t bit = entry_bit(e);
            pcpu__release_locked(e->chunk, bit, bits);
        }
        /* Still under the lock: a fork() by another thread (which holds
         * the lock) must never see released objects still counted here,
         * or the child's atfork flush would release them twice. */
        memmove(&cls->e[0], &cls->e[half], (cls->count - half) * sizeof(cls->e[0]));
        cls->count -= half;
        pcpu__unlock();
    }
    /* The entry first, then the count that exposes it (release): a fork()
     * can snapshot this cache between any two instructions, and the child
     * flushes every entry below count, so count must never cover a stale
     * entry (one popped earlier and live now). */
    cls->e[cls->count] = (struct pcpu_tcache_entry){cookie, c};
    __atomic_store_n(&cls->count, cls->count + 1, __ATOMIC_RELEASE);
    pcpu__relaxed_inc(&tc->nr_dealloc);
}

void pcpu__tcache_drop_all_locked(void)
{
    for (struct pcpu_tcache *tc = all_caches; tc; tc = tc->next) {
        for (size_t ci = 1; ci < PCPU_TCACHE_NR_CLASSES; ci++)
            tc->cls[ci].count = 0;
        atomic_store(&tc->nr_alloc, 0);
        atomic_store(&tc->nr_dealloc, 0);
        atomic_store(&tc->peak_net, 0);
        atomic_store(&tc->min_size, 0);
        atomic_store(&tc->max_size, 0);
    }
}

void pcpu__tcache_flush_others_locked(void)
{
    struct pcpu_tcache *tc = all_caches, *next;
    for (; tc; tc = next) {
        next = tc->next;
        if (tc == pcpu__my_tcache)
            continue;
        pcpu__tcache_flush_locked(tc);
        unlink_cache(tc);
        pcpu__meta_free(tc, sizeof(*tc));
    }
}

size_t pcpu__tcache_count_locked(void)
{
    size_t n = 0;
    for (struct pcpu_tcache *tc = all_caches; tc; tc = tc->next)
        for (size_t ci = 1; ci < PCPU_TCACHE_NR_CLASSES; ci++)
            n += tc->cls[ci].count;
    return n;
}

void pcpu__tcache_stats_locked(uint64_t *nr_alloc, uint64_t *nr_dealloc, uint64_t *excursion,
                               size_t *min_size, size_t *max_size)
{
    uint64_t a = 0, d = 0, x = 0;
    size_t mn = SIZE_MAX, mx = 0;
    unsigned int now = atomic_load(&pcpu__g.stats_epoch);
    for (struct pcpu_tcache *tc = all_caches; tc; tc = tc->next) {
        uint64_t ta = atomic_load_explicit(&tc->nr_alloc, memory_order_relaxed);
        uint64_t td = atomic_load_explicit(&tc->nr_dealloc, memory_order_relaxed);
        int64_t peak = atomic_load_explicit(&tc->peak_net, memory_order_relaxed);
        int64_t net = (int64_t)(ta - td);
        a += ta;
        d += td;
        /* A peak from an earlier period was counted when that period was
         * sampled; only this period's can add to the maximum. */
        if (atomic_load_explicit(&tc->epoch, memory_order_relaxed) == now && peak > net)
            x += (uint64_t)(peak - net);
        size_t tmn = atomic_load_explicit(&tc->min_size, memory_order_relaxed);
        size_t tmx = atomic_load_explicit(&tc->max_size, memory_order_relaxed);
        if (tmn && tmn < mn)
            mn = tmn;
        if (tmx > mx)
            mx = tmx;
    }
    *nr_alloc = a;
    *nr_dealloc = d;
    *excursion = x;
    *min_size = mn;
    *max_size = mx;
}

void pcpu__note_max_alloc_locked(void)
{
    uint64_t a, d, x;
    size_t mn, mx;
    pcpu__tcache_stats_locked(&a, &d, &x, &mn, &mx);
    uint64_t cur = (pcpu__g.nr_alloc + a) - (pcpu__g.nr_dealloc + d);
    if (cur + x > pcpu__g.nr_max_alloc)
        pcpu__g.nr_max_alloc = cur + x;
    /* Peaks before this point are now accounted for. */
    atomic_fetch_add(&pcpu__g.stats_epoch, 1);
}

int pcpu__tcache_validate_locked(void)
{
    int problems = 0;
    for (struct pcpu_tcache *tc = all_caches; tc; tc = tc->next) {
        /* Other live threads push and pop their caches without the lock:
         * reading their entries here would race (and report objects just
         * handed out as broken).  Only the caller's own cache holds still;
         * the caches of exited threads were flushed. */
        if (tc != pcpu__my_tcache)
            continue;
        for (size_t ci = 1; ci < PCPU_TCACHE_NR_CLASSES; ci++) {
            struct pcpu_tcache_class *cls = &tc->cls[ci];
            size_t bits = pcpu__tcache_class_bits(ci);
            for (unsigned int i = 0; i < cls->count; i++) {
                struct pcpu_tcache_entry *e = &cls->e[i];
                size_t bit = entry_bit(e);
                if (pcpu__lookup(e->cookie) != e->chunk || !pcpu__test_bit(e->chunk->start_map, bit) ||
                    pcpu__live_test(e->chunk, bit) ||
                    pcpu__chunk_alloc_bits(e->chunk, bit) != bits) {
                    fprintf(stderr, "percpu: validate: cached object %p (class %zu) is not a "
                            "free allocation of that size\n", e->cookie, bits);
                    problems++;
                }
            }
        }
    }
    return problems;
}

void pcpu__tcache_for_each_cached_locked(
    void (*fn)(struct pcpu_chunk *c, void *cookie, size_t bits, void *arg), void *arg)
{
    for (struct pcpu_tcache *tc = all_caches; tc; tc = tc->next)
        for (size_t ci = 1; ci < PCPU_TCACHE_NR_CLASSES; ci++) {
            struct pcpu_tcache_class *cls = &tc->cls[ci];
            for (unsigned int i = 0; i < cls->count; i++)
                fn(cls->e[i].chunk, cls->e[i].cookie, pcpu__tcache_class_bits(ci), arg);
        }
}
