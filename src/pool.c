/* SPDX-License-Identifier: MIT */
/*
 * pool.c - every chunk of the allocator: the kernel's mm/percpu.c core,
 * without the parts that are about users (thread caches, statics,
 * this-CPU operations live above).
 *
 * Chunks are kept in slots by their largest free run (slot = bit length
 * of contig_bits) so that a request only looks at chunks that may fit it;
 * inside a chunk, chunk.c finds space using its hints.  When no chunk
 * fits, a new one is created through the backend.  Pages are populated
 * when an allocation lands on them (a few empty ones ahead, to save
 * system calls), and the balance policy gives empty pages and chunks back:
 * release reports when it is wanted (more than PCPU_EMPTY_POP_HIGH empty
 * populated pages, or an empty chunk) and the caller schedules it.
 *
 * The first chunk is special: its static area holds PCPU_DEFINE sections,
 * its reserved area is served by a second chunk structure over the same
 * memory (the kernel's reserved chunk), and it is never destroyed.
 *
 * Totals (populated and empty pages) are kept here from the changes seen
 * in each chunk's own counters around every call into chunk.c, so the map
 * code never writes pool state.  One mutex protects all of it; glibc's
 * adaptive mutex spins a little before sleeping, which is what a lock
 * held for a few hundred nanoseconds wants.
 */
#include "pool.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "lookup.h"
#include "os.h"
#include "topology.h"
#include "trace.h"
#include "units.h"

struct pcpu_pool_anchor pcpu__pool_anchor;

static struct {
    pthread_mutex_t lock;
    const struct pcpu_backend_ops *ops;
    size_t max_memory;
    unsigned int nr_slots;
    struct pcpu_chunk **slots;        /* list heads by contig size     */
    struct pcpu_chunk *oldest, *newest; /* every chunk but the reserved
                                           part, the first one first */
    struct pcpu_pool_stats st;
} pool = {
    .lock = PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP,
};

#define assert_locked() pcpu_assert_locked()

/* ---- the lock --------------------------------------------------------- */

/* How long a thread spins for the lock before it sleeps: the lock is held
 * for a search of a chunk's map or a batch of releases (a few
 * microseconds at most), and going to sleep in the kernel and being woken
 * costs more than that, to both threads (alloc.percpu.mixed at 2 threads
 * spent ~8% of its time in futex calls with the mutex's own short spin). */
#define POOL_SPIN 256

void pcpu__pool_lock(void)
{
    if (pthread_mutex_trylock(&pool.lock) != 0) {
        unsigned int i = 0;
        for (; i < POOL_SPIN; i++) {
            for (int k = 0; k < 8; k++)
                pcpu__cpu_relax();
            if (pthread_mutex_trylock(&pool.lock) == 0)
                break;
        }
        if (i == POOL_SPIN)
            pthread_mutex_lock(&pool.lock);
    }
    pcpu__lock_held = true;
}

void pcpu__pool_unlock(void)
{
    assert_locked();
    pcpu__lock_held = false;
    pthread_mutex_unlock(&pool.lock);
}

bool pcpu__pool_lock_held(void)
{
    return pcpu__lock_held;
}

int pcpu__pool_wait(pthread_cond_t *cond, const struct timespec *deadline)
{
    assert_locked();
    pcpu__lock_held = false;
    int r = deadline ? pthread_cond_timedwait(cond, &pool.lock, deadline)
                     : pthread_cond_wait(cond, &pool.lock);
    pcpu__lock_held = true;
    return r;
}

void pcpu__pool_fork_child(void)
{
    pcpu__pool_unlock();
}

/* ---- totals ------------------------------------------------------------ */

/* A chunk's page counts before a call into chunk.c; track() adds what the
 * call changed to the totals. */
struct pages_before {
    size_t populated, empty;
};

static struct pages_before pages_of(const struct pcpu_chunk *c)
{
    return (struct pages_before){c->nr_populated, c->nr_empty_populated};
}

static void track(const struct pcpu_chunk *c, struct pages_before b)
{
    pool.st.nr_populated += c->nr_populated - b.populated;
    pool.st.nr_empty_populated += c->nr_empty_populated - b.empty;
}

/* ---- slots and the list of chunks --------------------------------------- */

static unsigned int fls_size(size_t v)
{
    return v ? (unsigned int)(64 - __builtin_clzll((unsigned long long)v)) : 0;
}

static int chunk_slot(const struct pcpu_chunk *c)
{
    unsigned int s = fls_size(c->contig_bits);
    return s < pool.nr_slots ? (int)s : (int)pool.nr_slots - 1;
}

static void slot_unlink(struct pcpu_chunk *c)
{
    if (c->slot < 0)
        return;
    if (c->prev)
        c->prev->next = c->next;
    else
        pool.slots[c->slot] = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    c->slot = -1;
}

static void slot_link(struct pcpu_chunk *c, int slot)
{
    c->slot = slot;
    c->prev = NULL;
    c->next = pool.slots[slot];
    if (c->next)
        c->next->prev = c;
    pool.slots[slot] = c;
}

/* Put a chunk in the slot its largest free run says (the reserved part
 * is in no slot: only reserved requests look at it). */
static void relocate(struct pcpu_chunk *c)
{
    if (c->is_reserved)
        return;
    int s = chunk_slot(c);
    if (s != c->slot) {
        slot_unlink(c);
        slot_link(c, s);
    }
}

static void list_append(struct pcpu_chunk *c)
{
    c->list_next = NULL;
    c->list_prev = pool.newest;
    if (pool.newest)
        pool.newest->list_next = c;
    else
        pool.oldest = c;
    pool.newest = c;
}

static void list_remove(struct pcpu_chunk *c)
{
    if (c->list_prev)
        c->list_prev->list_next = c->list_next;
    else
        pool.oldest = c->list_next;
    if (c->list_next)
        c->list_next->list_prev = c->list_prev;
    else
        pool.newest = c->list_prev;
    c->list_prev = c->list_next = NULL;
}

/* ---- populate / depopulate ---------------------------------------------- */

static bool over_limit(size_t more_pages)
{
    if (!pool.max_memory)
        return false;
    size_t per_page = pcpu__page_size * pcpu__layout.nr_units;
    return (pool.st.nr_populated + more_pages) * per_page > pool.max_memory;
}

/* Pages [page, page+n) of c, none populated yet. */
static int populate(struct pcpu_chunk *c, size_t page, size_t n)
{
    if (pool.ops->populate(c, page, n) != 0) {
        errno = ENOMEM;
        return -1;
    }
    pool.st.nr_populate++;
    pcpu_trace_populate(c->base, page, n);
    struct pages_before b = pages_of(c);
    for (size_t p = page; p < page + n; p++)
        pcpu__chunk_set_populated(c, p, true);
    track(c, b);
    return 0;
}

static void depopulate(struct pcpu_chunk *c, size_t page, size_t n)
{
    pool.ops->depopulate(c, page, n);
    pool.st.nr_depopulate++;
    pcpu_trace_depopulate(c->base, page, n);
    struct pages_before b = pages_of(c);
    for (size_t p = page; p < page + n; p++)
        pcpu__chunk_set_populated(c, p, false);
    track(c, b);
}

/* Make sure the pages under [bit, bit+n) are populated in every unit. */
static int populate_range(struct pcpu_chunk *c, size_t bit, size_t n)
{
    size_t ps = pcpu__page_size;
    size_t first = bit * PCPU_GRANULE / ps;
    size_t last = ((bit + n) * PCPU_GRANULE - 1) / ps;
    size_t p = first;
    while (p <= last) {
        if (pcpu__test_bit(c->populated, p)) {
            p++;
            continue;
        }
        size_t q = p;
        while (q <= last && !pcpu__test_bit(c->populated, q))
            q++;
        /* Populate a few empty pages ahead: it costs no memory (nothing is
         * backed until written) and saves one system call per unit per
         * page for the allocations that follow. */
        size_t needed = q;
        while (q <= last + PCPU_POPULATE_AHEAD && q < c->nr_pages &&
               !pcpu__test_bit(c->populated, q) && pcpu__chunk_page_empty(c, q))
            q++;
        /* Pages ahead are optional: they must not make a request that
         * fits under max_memory fail. */
        if (q > needed && over_limit(q - p))
            q = needed;
        if (over_limit(q - p)) {
            errno = ENOMEM;
            return -1;
        }
        if (populate(c, p, q - p) != 0)
            return -1;
        p = q;
    }
    return 0;
}

/* ---- chunk lifecycle ------------------------------------------------------ */

static void destroy_chunk(struct pcpu_chunk *c)
{
    pcpu_trace_destroy_chunk(c->base);
    slot_unlink(c);
    list_remove(c);
    pcpu__lookup_remove(c);
    struct pages_before b = pages_of(c);
    for (size_t p = 0; p < c->nr_pages; p++)
        pcpu__chunk_set_populated(c, p, false);
    track(c, b);
    if (unlikely(pcpu__units_hooked))
        pcpu__units_unmapping(c->map_addr, c->map_size);
    pool.ops->destroy_chunk(c);
    pcpu__chunk_free_meta(c);
    pool.st.nr_chunks--;
    pool.st.nr_chunk_destroy++;
}

static struct pcpu_chunk *create_chunk(size_t start_bit)
{
    size_t unit_bits = pcpu__layout.unit_bits;
    struct pcpu_chunk *c = pcpu__chunk_alloc_meta(unit_bits, start_bit, unit_bits);
    if (!c)
        return NULL;
    c->slot = -1;
    if (pool.ops->create_chunk(c) != 0) {
        pcpu__chunk_free_meta(c);
        errno = ENOMEM;
        return NULL;
    }
    if (pcpu__lookup_insert(c) != 0) {
        pool.ops->destroy_chunk(c);
        pcpu__chunk_free_meta(c);
        errno = ENOMEM;
        return NULL;
    }
    pcpu_trace_create_chunk(c->base);
    list_append(c);
    pool.st.nr_chunks++;
    pool.st.nr_chunk_create++;
    if (pool.st.nr_chunks > pool.st.nr_max_chunks)
        pool.st.nr_max_chunks = pool.st.nr_chunks;
    relocate(c);
    return c;
}

/* ---- allocation and release ----------------------------------------------- */

static void *claim_in(struct pcpu_chunk *c, size_t bits, size_t count, size_t align_bits,
                      bool thorough)
{
    struct pages_before b = pages_of(c);
    size_t bit = pcpu__chunk_claim(c, bits, count, align_bits, thorough);
    track(c, b);
    if (bit == SIZE_MAX)
        return NULL;
    if (!c->is_reserved && populate_range(c, bit, bits * count) != 0) {
        b = pages_of(c);
        for (size_t i = 0; i < count; i++)
            pcpu__chunk_release(c, bit + i * bits, bits);
        track(c, b);
        relocate(c);
        return NULL;
    }
    relocate(c);
    pool.st.allocated_bits += bits * count;
    return c->base + bit * PCPU_GRANULE;
}

/* One pass over the chunks that may hold the run by their slot. */
static void *search_locked(size_t bits, size_t count, size_t align_bits, bool thorough,
                           struct pcpu_chunk **chunk_out)
{
    for (unsigned int s = fls_size(bits * count); s < pool.nr_slots; s++) {
        struct pcpu_chunk *c, *next;
        for (c = pool.slots[s]; c; c = next) {
            next = c->next;
            if (!thorough && !pcpu__chunk_may_fit(c, bits * count, align_bits))
                continue;
            void *p = claim_in(c, bits, count, align_bits, thorough);
            if (p) {
                *chunk_out = c;
                return p;
            }
            if (errno == ENOMEM)
                return NULL;
            if (c->contig_stale) {
                /* The hint was too high: make it exact so this chunk
                 * stops being offered requests it cannot take. */
                pcpu__chunk_refresh_contig(c);
                relocate(c);
            }
        }
    }
    return NULL;
}

void *pcpu__pool_take_run_locked(size_t bits, size_t count, size_t align_bits,
                                 struct pcpu_chunk **chunk_out)
{
    assert_locked();
    errno = 0;
    return search_locked(bits, count, align_bits, false, chunk_out);
}

void *pcpu__pool_alloc_locked(size_t bits, size_t count, size_t align_bits, bool reserved,
                              struct pcpu_chunk **chunk_out)
{
    assert_locked();
    void *p;
    errno = 0;
    struct pcpu_chunk *r = pcpu__pool_anchor.reserved;
    if (reserved && ((p = claim_in(r, bits, count, align_bits, false)) ||
                     (align_bits > 1 && (p = claim_in(r, bits, count, align_bits, true))))) {
        *chunk_out = r;
        return p;
    }
    /* The hints first; only an aligned request can be turned away by them
     * while a chunk has room (its longest run at the wrong alignment), so
     * such a request looks again at every block before a new chunk. */
    for (int thorough = 0; thorough < 1 + (align_bits > 1); thorough++) {
        p = search_locked(bits, count, align_bits, thorough, chunk_out);
        if (p || errno == ENOMEM)
            return p;
    }
    struct pcpu_chunk *c = create_chunk(0);
    if (!c)
        return NULL;
    p = claim_in(c, bits, count, align_bits, false);
    if (!p) {
        int err = errno ? errno : ENOMEM;
        if (pcpu__chunk_is_empty(c))
            destroy_chunk(c);
        errno = err;
        return NULL;
    }
    *chunk_out = c;
    return p;
}

bool pcpu__pool_release_locked(struct pcpu_chunk *c, size_t bit, size_t bits)
{
    assert_locked();
    struct pages_before b = pages_of(c);
    pcpu__chunk_release(c, bit, bits);
    track(c, b);
    relocate(c);
    pool.st.allocated_bits -= bits;
    return pool.st.nr_empty_populated > PCPU_EMPTY_POP_HIGH ||
           (pcpu__chunk_is_empty(c) && !c->is_first && !c->is_reserved);
}

bool pcpu__pool_release_many_locked(struct pcpu_freed *objs, size_t n)
{
    assert_locked();
    bool balance = false;
    pcpu__freed_sort(objs, n);
    for (size_t i = 0; i < n;) {
        struct pcpu_chunk *c = objs[i].chunk;
        size_t bit = pcpu__chunk_bit(c, objs[i].cookie);
        size_t total = (size_t)objs[i].bits * objs[i].count, count = objs[i].count;
        size_t j = i + 1;
        while (j < n && objs[j].chunk == c &&
               objs[j].cookie == objs[i].cookie + total * PCPU_GRANULE) {
            total += (size_t)objs[j].bits * objs[j].count;
            count += objs[j].count;
            j++;
        }
        struct pages_before b = pages_of(c);
        pcpu__chunk_release_run(c, bit, total, count);
        track(c, b);
        relocate(c);
        pool.st.allocated_bits -= total;
        balance |= pcpu__chunk_is_empty(c) && !c->is_first && !c->is_reserved;
        i = j;
    }
    return balance || pool.st.nr_empty_populated > PCPU_EMPTY_POP_HIGH;
}

/* ---- balance ------------------------------------------------------------ */

/* Depopulate empty populated pages of c, from its end, while above target. */
static size_t depopulate_chunk(struct pcpu_chunk *c, size_t target)
{
    size_t freed = 0;
    size_t p = c->nr_pages;
    while (p > 0 && pool.st.nr_empty_populated > target && c->nr_empty_populated > 0) {
        p--;
        if (!pcpu__test_bit(c->populated, p) || !pcpu__chunk_page_empty(c, p))
            continue;
        size_t end = p + 1;
        size_t room = pool.st.nr_empty_populated - target;
        while (p > 0 && end - p < room && pcpu__test_bit(c->populated, p - 1) &&
               pcpu__chunk_page_empty(c, p - 1))
            p--;
        depopulate(c, p, end - p);
        freed += end - p;
    }
    return freed;
}

size_t pcpu__pool_balance_locked(bool all)
{
    assert_locked();
    size_t freed = 0;
    /* Keep one empty chunk for the next burst, unless the first chunk
     * (never destroyed) is empty itself and already is that spare. */
    struct pcpu_chunk *first = pcpu__pool_anchor.first;
    bool keep_spare = !all && !(first && pcpu__chunk_is_empty(first));
    struct pcpu_chunk *c, *next;
    for (c = pool.oldest; c; c = next) {
        next = c->list_next;
        if (c == first || !pcpu__chunk_is_empty(c))
            continue;
        if (keep_spare) {
            keep_spare = false;
            continue;
        }
        freed += c->nr_populated;
        destroy_chunk(c);
    }
    size_t target = all ? 0 : PCPU_EMPTY_POP_LOW;
    /* Newer chunks first: populated pages should gather at the front. */
    for (c = pool.newest; c && pool.st.nr_empty_populated > target; c = c->list_prev)
        freed += depopulate_chunk(c, target);
    return freed;
}

/* ---- set-up and teardown ---------------------------------------------------- */

int pcpu__pool_init_locked(const struct pcpu_backend_ops *ops, size_t max_memory)
{
    assert_locked();
    const struct pcpu_layout *l = &pcpu__layout;
    memset(&pool.st, 0, sizeof(pool.st));
    pool.ops = ops;
    pool.max_memory = max_memory;
    pool.nr_slots = fls_size(l->unit_bits) + 1;
    pool.slots = pcpu__meta_calloc(pool.nr_slots, sizeof(*pool.slots));
    if (!pool.slots)
        return -1;
    size_t dyn_bit = l->dyn_off / PCPU_GRANULE;
    struct pcpu_chunk *first = create_chunk(dyn_bit);
    struct pcpu_chunk *res =
        first ? pcpu__chunk_alloc_meta(dyn_bit, l->reserved_off / PCPU_GRANULE, dyn_bit) : NULL;
    if (!res) {
        int err = errno ? errno : ENOMEM;
        pcpu__pool_exit_locked(false, NULL, NULL);
        errno = err;
        return -1;
    }
    first->is_first = true;
    res->is_reserved = true;
    res->slot = -1;
    res->base = first->base;
    res->map_addr = first->map_addr;
    res->map_size = first->map_size;
    /* The static and reserved areas are populated for good: their pages
     * hold data the pool does not track page by page.  The first chunk is
     * exempt from max_memory: without it there is no allocator to say
     * ENOMEM with. */
    size_t head_pages = (l->dyn_off + pcpu__page_size - 1) / pcpu__page_size;
    if (head_pages && populate(first, 0, head_pages) != 0) {
        pcpu__chunk_free_meta(res);
        pcpu__pool_exit_locked(false, NULL, NULL);
        errno = ENOMEM;
        return -1;
    }
    pcpu__pool_anchor.reserved = res;
    __atomic_store_n(&pcpu__pool_anchor.first, first, __ATOMIC_RELEASE);
    return 0;
}

void pcpu__pool_exit_locked(bool keep_first_range, char **old_first, size_t *old_size)
{
    assert_locked();
    struct pcpu_chunk *first = pcpu__pool_anchor.first;
    if (old_first) {
        *old_first = NULL;
        *old_size = 0;
    }
    __atomic_store_n(&pcpu__pool_anchor.first, NULL, __ATOMIC_RELEASE);
    if (first && keep_first_range) {
        /* Like destroy_chunk(), but the range stays reserved. */
        pcpu_trace_destroy_chunk(first->base);
        slot_unlink(first);
        list_remove(first);
        pcpu__lookup_remove(first);
        if (unlikely(pcpu__units_hooked))
            pcpu__units_unmapping(first->map_addr, first->map_size);
        if (pcpu__os_release_keep_range(first->map_addr, first->map_size) && old_first) {
            *old_first = first->map_addr;
            *old_size = first->map_size;
        }
        pcpu__chunk_free_meta(first);
    }
    while (pool.oldest)
        destroy_chunk(pool.oldest);
    if (pcpu__pool_anchor.reserved)
        pcpu__chunk_free_meta(pcpu__pool_anchor.reserved);
    pcpu__pool_anchor.reserved = NULL;
    pcpu__lookup_exit();
    pcpu__meta_free(pool.slots, pool.nr_slots * sizeof(*pool.slots));
    pool.slots = NULL;
    pool.nr_slots = 0;
    pool.ops = NULL;
    memset(&pool.st, 0, sizeof(pool.st));
}

/* ---- walks and reports ------------------------------------------------------ */

void pcpu__pool_for_each_chunk_locked(void (*fn)(struct pcpu_chunk *, void *), void *arg)
{
    assert_locked();
    if (pcpu__pool_anchor.reserved)
        fn(pcpu__pool_anchor.reserved, arg);
    for (struct pcpu_chunk *c = pool.oldest; c; c = c->list_next)
        fn(c, arg);
}

const struct pcpu_chunk *pcpu__pool_chunk_at_locked(unsigned int idx)
{
    assert_locked();
    const struct pcpu_pool_anchor *a = &pcpu__pool_anchor;
    if (!a->first)
        return NULL;
    if (idx == 0)
        return a->first;
    if (idx == 1 && a->reserved)
        return a->reserved;
    idx -= a->reserved ? 2 : 1;
    for (const struct pcpu_chunk *c = pool.oldest; c; c = c->list_next)
        if (c != a->first && idx-- == 0)
            return c;
    return NULL;
}

void pcpu__pool_stats_locked(struct pcpu_pool_stats *out)
{
    assert_locked();
    *out = pool.st;
}

const char *pcpu__pool_backend_name(void)
{
    return pool.ops ? pool.ops->name : "none";
}

struct validate_ctx {
    int problems;
    size_t populated, empty_pop;
    unsigned int chunks;
};

static void validate_one(struct pcpu_chunk *c, void *arg)
{
    struct validate_ctx *v = arg;
    v->problems += pcpu__chunk_validate(c);
    if (c->is_reserved)
        return;
    v->chunks++;
    v->populated += c->nr_populated;
    v->empty_pop += c->nr_empty_populated;
    if (c->slot != chunk_slot(c)) {
        fprintf(stderr, "percpu: validate: chunk %p in slot %d, should be %d\n", (void *)c->base,
                c->slot, chunk_slot(c));
        v->problems++;
    }
    if (pcpu__lookup(c->base) != c) {
        fprintf(stderr, "percpu: validate: chunk %p not found by address\n", (void *)c->base);
        v->problems++;
    }
}

int pcpu__pool_validate_locked(void)
{
    assert_locked();
    struct validate_ctx v = {0};
    if (!pcpu__pool_anchor.first)
        return 0;
    pcpu__pool_for_each_chunk_locked(validate_one, &v);
    if (v.chunks != pool.st.nr_chunks) {
        fprintf(stderr, "percpu: validate: %u chunks in the list, nr_chunks %u\n", v.chunks,
                pool.st.nr_chunks);
        v.problems++;
    }
    if (v.populated != pool.st.nr_populated || v.empty_pop != pool.st.nr_empty_populated) {
        fprintf(stderr, "percpu: validate: populated %zu/%zu, empty %zu/%zu (chunks/pool)\n",
                v.populated, pool.st.nr_populated, v.empty_pop, pool.st.nr_empty_populated);
        v.problems++;
    }
    return v.problems;
}

int pcpu__pool_validate_around_locked(const void *cookie, size_t bits)
{
    assert_locked();
    struct pcpu_chunk *c = pcpu__lookup(cookie);
    if (!c)
        return 0;
    size_t bit = pcpu__chunk_bit(c, cookie);
    struct pcpu_chunk *owner = pcpu__pool_owner(c, bit);
    return owner ? pcpu__chunk_validate_range(owner, bit, bits) : 0;
}
