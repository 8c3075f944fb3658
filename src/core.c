/*
 * core.c - the per-CPU allocator: set-up, chunks, slots, alloc and free.
 *
 * This is the kernel's mm/percpu.c core in userspace.  A chunk is nr_units
 * units of unit_size bytes with one allocation map for all of them (see
 * internal.h for the picture).  Chunks are kept in slots by their largest
 * free run so that a request only looks at chunks that may fit it; inside
 * a chunk, chunk.c finds space using per-page hints.  When no chunk fits,
 * a new one is created through the backend (vm or km, chosen at run time).
 * The first chunk also holds the static area (PCPU_DEFINE sections) and
 * the reserved area (pcpu_alloc_reserved, sections of dlopen()ed code).
 *
 * Small allocations are served by per-thread caches (tcache.c) and frees
 * start lock-free: the live bit is cleared atomically (which is also what
 * catches double frees), the units are zeroed, and only objects that do
 * not go to a cache take the lock.  Memory comes from the OS zeroed and is
 * zeroed again on free, and only in units whose bytes are not zero already,
 * so untouched units never become resident.
 */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

intptr_t pcpu__cpu_offsets[PCPU_MAX_CPUS];
unsigned int pcpu__nr_units;

struct pcpu_global pcpu__g = {
    .lock = PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP,
};

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

void pcpu__lock(void)
{
    pthread_mutex_lock(&pcpu__g.lock);
}

void pcpu__unlock(void)
{
    pthread_mutex_unlock(&pcpu__g.lock);
}

void pcpu__bad_cpu(unsigned int cpu)
{
    pcpu__die("percpu: pcpu_ptr: cpu %u out of range (pcpu_nr_cpus() is %u)", cpu,
              pcpu__nr_units);
}

static unsigned int fls_size(size_t v)
{
    return v ? (unsigned int)(64 - __builtin_clzll((unsigned long long)v)) : 0;
}

/* ---- slots --------------------------------------------------------------- */

static int chunk_slot(const struct pcpu_chunk *c)
{
    unsigned int s = fls_size(c->contig_bits);
    return s < pcpu__g.nr_slots ? (int)s : (int)pcpu__g.nr_slots - 1;
}

static void slot_unlink(struct pcpu_chunk *c)
{
    if (c->slot < 0)
        return;
    if (c->prev)
        c->prev->next = c->next;
    else
        pcpu__g.slots[c->slot] = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    c->slot = -1;
}

static void slot_link(struct pcpu_chunk *c, int slot)
{
    c->slot = slot;
    c->prev = NULL;
    c->next = pcpu__g.slots[slot];
    if (c->next)
        c->next->prev = c;
    pcpu__g.slots[slot] = c;
}

void pcpu__chunk_relocate(struct pcpu_chunk *c)
{
    if (c->is_reserved)
        return;
    int s = chunk_slot(c);
    if (s != c->slot) {
        slot_unlink(c);
        slot_link(c, s);
    }
}

void pcpu__for_each_chunk(void (*fn)(struct pcpu_chunk *, void *), void *arg)
{
    if (pcpu__g.reserved)
        fn(pcpu__g.reserved, arg);
    struct pcpu_chunk *c, *next;
    for (c = pcpu__g.oldest; c; c = next) {
        next = c->list_next;
        fn(c, arg);
    }
}

static void list_append(struct pcpu_chunk *c)
{
    c->list_next = NULL;
    c->list_prev = pcpu__g.newest;
    if (pcpu__g.newest)
        pcpu__g.newest->list_next = c;
    else
        pcpu__g.oldest = c;
    pcpu__g.newest = c;
}

static void list_remove(struct pcpu_chunk *c)
{
    if (c->list_prev)
        c->list_prev->list_next = c->list_next;
    else
        pcpu__g.oldest = c->list_next;
    if (c->list_next)
        c->list_next->list_prev = c->list_prev;
    else
        pcpu__g.newest = c->list_prev;
    c->list_prev = c->list_next = NULL;
}

/* ---- chunk lifecycle ------------------------------------------------------ */

static bool over_limit(size_t more_pages)
{
    if (!pcpu__g.cfg.max_memory)
        return false;
    size_t per_page = pcpu__page_size * pcpu__g.ai->nr_units;
    return (pcpu__g.nr_populated + more_pages) * per_page > pcpu__g.cfg.max_memory;
}

static void mark_populated(struct pcpu_chunk *c, size_t page, size_t n)
{
    for (size_t p = page; p < page + n; p++)
        pcpu__chunk_set_populated(c, p, true);
}

void pcpu__destroy_chunk_locked(struct pcpu_chunk *c)
{
    slot_unlink(c);
    list_remove(c);
    pcpu__lookup_remove(c);
    for (size_t p = 0; p < c->nr_pages; p++)
        pcpu__chunk_set_populated(c, p, false);
    if (unlikely(pcpu__debug_active))
        pcpu__debug_on_unmap(c->map_addr, c->map_size);
    pcpu__g.ops->destroy_chunk(c);
    pcpu__chunk_free_meta(c);
    pcpu__g.nr_chunks--;
    pcpu__g.nr_chunk_destroy++;
}

static struct pcpu_chunk *create_chunk(size_t start_bit)
{
    const struct pcpu_backend_ops *ops = pcpu__g.ops;
    size_t pages = pcpu__g.unit_size / pcpu__page_size;
    /* The first chunk is exempt from max_memory: without it there is no
     * allocator to say ENOMEM with. */
    if (ops->born_populated && pcpu__g.first && over_limit(pages)) {
        errno = ENOMEM;
        return NULL;
    }
    struct pcpu_chunk *c = pcpu__chunk_alloc_meta(pcpu__g.unit_bits, start_bit, pcpu__g.unit_bits);
    if (!c)
        return NULL;
    c->slot = -1;
    if (ops->create_chunk(c) != 0) {
        pcpu__chunk_free_meta(c);
        errno = ENOMEM;
        return NULL;
    }
    if (pcpu__lookup_insert(c) != 0) {
        ops->destroy_chunk(c);
        pcpu__chunk_free_meta(c);
        errno = ENOMEM;
        return NULL;
    }
    if (ops->born_populated)
        mark_populated(c, 0, c->nr_pages);
    list_append(c);
    pcpu__g.nr_chunks++;
    pcpu__g.nr_chunk_create++;
    if (pcpu__g.nr_chunks > pcpu__g.nr_max_chunks)
        pcpu__g.nr_max_chunks = pcpu__g.nr_chunks;
    pcpu__chunk_relocate(c);
    return c;
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
        if (pcpu__g.ops->populate(c, p, q - p) != 0) {
            errno = ENOMEM;
            return -1;
        }
        pcpu__g.nr_populate++;
        mark_populated(c, p, q - p);
        p = q;
    }
    return 0;
}

static void *claim_in(struct pcpu_chunk *c, size_t bits, size_t count, size_t align_bits)
{
    size_t bit = pcpu__chunk_claim(c, bits, count, align_bits);
    if (bit == SIZE_MAX)
        return NULL;
    if (!c->is_reserved && populate_range(c, bit, bits * count) != 0) {
        for (size_t i = 0; i < count; i++)
            pcpu__chunk_release(c, bit + i * bits, bits);
        pcpu__chunk_relocate(c);
        return NULL;
    }
    pcpu__chunk_relocate(c);
    pcpu__g.allocated_bits += bits * count;
    return c->base + bit * PCPU_GRANULE;
}

void *pcpu__alloc_locked(size_t bits, size_t count, size_t align_bits, bool reserved,
                         struct pcpu_chunk **chunk_out)
{
    void *p;
    errno = 0;
    if (reserved && (p = claim_in(pcpu__g.reserved, bits, count, align_bits))) {
        *chunk_out = pcpu__g.reserved;
        return p;
    }
    for (unsigned int s = fls_size(bits * count); s < pcpu__g.nr_slots; s++) {
        struct pcpu_chunk *c, *next;
        for (c = pcpu__g.slots[s]; c; c = next) {
            next = c->next;
            if (!pcpu__chunk_may_fit(c, bits * count, align_bits))
                continue;
            p = claim_in(c, bits, count, align_bits);
            if (p) {
                *chunk_out = c;
                return p;
            }
            if (errno == ENOMEM)
                return NULL;
            if (c->contig_stale) {
                /* The hint was too high: make it exact so this chunk stops
                 * being offered requests it cannot take. */
                pcpu__chunk_refresh_contig(c);
                pcpu__chunk_relocate(c);
            }
        }
    }
    struct pcpu_chunk *c = create_chunk(0);
    if (!c)
        return NULL;
    p = claim_in(c, bits, count, align_bits);
    if (!p) {
        int err = errno ? errno : ENOMEM;
        if (pcpu__chunk_is_empty(c) && c != pcpu__g.first)
            pcpu__destroy_chunk_locked(c);
        errno = err;
        return NULL;
    }
    *chunk_out = c;
    return p;
}

void pcpu__release_locked(struct pcpu_chunk *c, size_t bit, size_t bits)
{
    pcpu__chunk_release(c, bit, bits);
    pcpu__chunk_relocate(c);
    pcpu__g.allocated_bits -= bits;
    if (pcpu__g.nr_empty_pop > PCPU_EMPTY_POP_HIGH ||
        (pcpu__chunk_is_empty(c) && c != pcpu__g.first && !c->is_reserved))
        pcpu__reclaim_kick_locked();
}

struct pcpu_chunk *pcpu__owner_chunk(struct pcpu_chunk *c, size_t bit)
{
    if (c->is_first && bit < c->start_bit) {
        struct pcpu_chunk *r = pcpu__g.reserved;
        return bit >= r->start_bit && bit < r->end_bit ? r : NULL;
    }
    return c;
}

/* ---- zeroing ---------------------------------------------------------------- */

/* Compared against with memcmp, which the C library vectorises. */
static const unsigned char zero_block[4096];

static bool all_zero(const char *p, size_t bytes)
{
    while (bytes > sizeof(zero_block)) {
        if (memcmp(p, zero_block, sizeof(zero_block)) != 0)
            return false;
        p += sizeof(zero_block);
        bytes -= sizeof(zero_block);
    }
    return memcmp(p, zero_block, bytes) == 0;
}

/* The common small case of pcpu__zero_units(), inline in pcpu_free(). */
static inline __attribute__((always_inline)) void zero_units_small(char *cookie, size_t bytes)
{
    unsigned int n = pcpu__nr_units;
    for (unsigned int i = 0; i < n; i++) {
        char *p = cookie + pcpu__cpu_offsets[i];
        uint64_t a = 0, b = 0;
        memcpy(&a, p, bytes < 8 ? bytes : 8);
        if (bytes > 8)
            memcpy(&b, p + 8, bytes - 8);
        if (a | b)
            memset(p, 0, bytes);
    }
}

static __attribute__((noinline)) void zero_units_large(char *cookie, size_t bytes)
{
    /* Reading before writing keeps untouched units untouched: a never
     * written page reads as the shared zero page and costs no memory. */
    unsigned int n = pcpu__nr_units;
    for (unsigned int i = 0; i < n; i++) {
        char *p = (char *)cookie + pcpu__cpu_offsets[i];
        if (!all_zero(p, bytes))
            memset(p, 0, bytes);
    }
}

void pcpu__zero_units(void *cookie, size_t bytes)
{
    if (bytes <= 16)
        zero_units_small(cookie, bytes);
    else
        zero_units_large(cookie, bytes);
}

/* ---- set-up and teardown -------------------------------------------------- */

static int parse_env_config(struct pcpu_config *cfg)
{
    const char *b = getenv("PERCPU_BACKEND");
    if (b && *b) {
        if (!strcmp(b, "vm"))
            cfg->backend = PCPU_BACKEND_VM;
        else if (!strcmp(b, "km"))
            cfg->backend = PCPU_BACKEND_KM;
        else {
            pcpu__warn("PERCPU_BACKEND=%s: expected vm or km", b);
            errno = EINVAL;
            return -1;
        }
    }
    const char *x = getenv("PERCPU_INDEX");
    if (x && *x) {
        if (!strcmp(x, "cpu"))
            cfg->index = PCPU_INDEX_CPU;
        else if (!strcmp(x, "cid"))
            cfg->index = PCPU_INDEX_CID;
        else {
            pcpu__warn("PERCPU_INDEX=%s: expected cpu or cid", x);
            errno = EINVAL;
            return -1;
        }
    }
    return 0;
}

/* Release everything.  keep_range: pcpu_exit(), where the first chunk's
 * addresses stay reserved so that cookies of static variables computed
 * from their old placement fault or get translated, never land in memory
 * that belongs to someone else (see statics.c). */
static void teardown_locked(bool keep_range)
{
    if (pcpu__g.ai)
        pcpu__debug_on_exit();
    pcpu__tcache_drop_all_locked();
    pcpu__thiscpu_exit();
    char *old_first = NULL;
    size_t old_size = 0;
    struct pcpu_chunk *first = pcpu__g.first;
    if (first && keep_range) {
        /* Like pcpu__destroy_chunk_locked(), but the range stays ours. */
        slot_unlink(first);
        list_remove(first);
        pcpu__lookup_remove(first);
        for (size_t p = 0; p < first->nr_pages; p++)
            pcpu__chunk_set_populated(first, p, false);
        if (unlikely(pcpu__debug_active))
            pcpu__debug_on_unmap(first->map_addr, first->map_size);
        if (pcpu__os_release_keep_range(first->map_addr, first->map_size)) {
            old_first = first->map_addr;
            old_size = first->map_size;
        }
        pcpu__chunk_free_meta(first);
        pcpu__g.nr_chunks--;
    }
    pcpu__statics_reset(old_first, old_size);
    while (pcpu__g.oldest)
        pcpu__destroy_chunk_locked(pcpu__g.oldest);
    if (pcpu__g.reserved)
        pcpu__chunk_free_meta(pcpu__g.reserved);
    pcpu__lookup_exit();
    pcpu__meta_free(pcpu__g.slots, pcpu__g.nr_slots * sizeof(*pcpu__g.slots));
    pcpu__free_alloc_info(pcpu__g.ai);
    memset(pcpu__cpu_offsets, 0, sizeof(intptr_t) * pcpu__nr_units);
    pcpu__nr_units = 0;
    /* Everything but the lock goes back to its initial state. */
    pthread_mutex_t lock = pcpu__g.lock;
    memset(&pcpu__g, 0, sizeof(pcpu__g));
    pcpu__g.lock = lock;
    atomic_store(&pcpu__g.state, PCPU_STATE_OFF);
}

/* fork(): both locks are held across it, so the child starts with
 * consistent state and the forking thread (the only one left) owns them. */
static void atfork_prepare(void)
{
    pcpu__lock();
    pcpu__thiscpu_fork_prepare();
}

static void atfork_parent(void)
{
    pcpu__thiscpu_fork_parent();
    pcpu__unlock();
}

static void atfork_child(void)
{
    /* Only this thread exists in the child: other threads' caches will
     * never be used or flushed by them, and the worker is gone. */
    pcpu__thiscpu_fork_child();
    pcpu__reclaim_forget();
    if (atomic_load(&pcpu__g.state) != PCPU_STATE_OFF)
        pcpu__tcache_flush_others_locked();
    pcpu__unlock();
}

static void register_atfork(void)
{
    pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

/* Initialise with the lock held.  cfg NULL: defaults and environment. */
static int init_locked(const struct pcpu_config *user_cfg, enum pcpu_state state)
{
    struct pcpu_config cfg = {0};
    if (user_cfg) {
        cfg = *user_cfg;
    } else if (parse_env_config(&cfg) != 0) {
        return -1;
    }
    if ((unsigned int)cfg.backend > PCPU_BACKEND_KM || (unsigned int)cfg.index > PCPU_INDEX_CID) {
        pcpu__warn("unknown backend (%d) or index mode (%d)", (int)cfg.backend, (int)cfg.index);
        errno = EINVAL;
        return -1;
    }
    if (cfg.flags & ~(PCPU_F_DEBUG | PCPU_F_NO_RECLAIM | PCPU_F_NO_CACHE | PCPU_F_REPORT_LEAKS)) {
        pcpu__warn("unknown flags 0x%x", cfg.flags);
        errno = EINVAL;
        return -1;
    }
    /* Robust mode can be asked for from outside any program. */
    const char *d = getenv("PERCPU_DEBUG");
    if (d && *d && strcmp(d, "0") != 0)
        cfg.flags |= PCPU_F_DEBUG;
    const char *lk = getenv("PERCPU_LEAKS");
    if (lk && *lk && strcmp(lk, "0") != 0)
        cfg.flags |= PCPU_F_REPORT_LEAKS;
    pthread_once(&atfork_once, register_atfork);
    long ps = sysconf(_SC_PAGESIZE);
    pcpu__page_size = ps > 0 ? (size_t)ps : 4096;

    /* Statics only: leave room for the libraries that load after this
     * one at start-up (nothing may move once placed). */
    size_t static_room = pcpu__statics_size();
    if (state == PCPU_STATE_AUTO)
        static_room += PCPU_STATIC_SLACK;
    struct pcpu_alloc_info *ai;
    if (pcpu__build_alloc_info(&cfg, static_room, &ai) != 0)
        return -1;
    const struct pcpu_backend_ops *ops =
        cfg.backend == PCPU_BACKEND_KM ? &pcpu__backend_km : &pcpu__backend_vm;
    if (ops->verify_alloc_info(ai) != 0) {
        pcpu__free_alloc_info(ai);
        errno = EINVAL;
        return -1;
    }

    struct pcpu_global *g = &pcpu__g;
    g->cfg = cfg;
    g->cfg.cpu_node = NULL; /* the caller's array need not outlive us */
    g->ops = ops;
    g->ai = ai;
    g->unit_size = ai->unit_size;
    g->unit_bits = ai->unit_size / PCPU_GRANULE;
    g->chunk_span = ((size_t)ai->nr_units + 1) * ai->unit_size;
    g->chunk_shift = fls_size(g->chunk_span - 1);
    g->static_off = 0;
    g->static_size = ai->static_size;
    g->reserved_off = ai->static_size;
    g->dyn_off = ai->static_size + ai->reserved_size;
    g->tcache_on = !(cfg.flags & PCPU_F_NO_CACHE);
    g->debug = (cfg.flags & PCPU_F_DEBUG) != 0;
    g->min_alloc_size = SIZE_MAX;
    g->nr_slots = fls_size(g->unit_bits) + 1;
    g->slots = pcpu__meta_calloc(g->nr_slots, sizeof(*g->slots));
    for (unsigned int i = 0; i < ai->nr_units; i++)
        pcpu__cpu_offsets[i] = (intptr_t)(ai->unit_pos[i] + 1) * (intptr_t)ai->unit_size;
    pcpu__nr_units = ai->nr_units;

    size_t dyn_bit = g->dyn_off / PCPU_GRANULE;
    struct pcpu_chunk *first = g->slots ? create_chunk(dyn_bit) : NULL;
    struct pcpu_chunk *res = first ? pcpu__chunk_alloc_meta(dyn_bit, g->reserved_off / PCPU_GRANULE,
                                                            dyn_bit)
                                   : NULL;
    if (!res) {
        int err = errno ? errno : ENOMEM;
        teardown_locked(false);
        errno = err;
        return -1;
    }
    first->is_first = true;
    g->first = first;
    res->is_reserved = true;
    res->slot = -1;
    res->base = first->base;
    res->map_addr = first->map_addr;
    res->map_size = first->map_size;
    g->reserved = res;
    /* The static and reserved areas are populated for good: their pages
     * hold data the allocator does not track page by page. */
    size_t head_pages = (g->dyn_off + pcpu__page_size - 1) / pcpu__page_size;
    if (head_pages && !ops->born_populated) {
        if (ops->populate(first, 0, head_pages) != 0) {
            teardown_locked(false);
            errno = ENOMEM;
            return -1;
        }
        g->nr_populate++;
        mark_populated(first, 0, head_pages);
    }
    pcpu__debug_init();
    pcpu__thiscpu_init(ai, cfg.index);
    pcpu__statics_place(first->base + g->static_off, ai->static_size);
    atomic_store_explicit(&g->state, state, memory_order_release);
    if (state == PCPU_STATE_USED)
        pcpu__thiscpu_start();
    return 0;
}

/*
 * The allocator is "used" from the first call that can hand out, read or
 * write per-CPU memory other than through pcpu_ptr(): allocation, the
 * this-CPU operations (whose inline paths stay closed until then, so that
 * they come here), pcpu_sum(), introspection.  From then on nothing moves.
 */
int pcpu__ensure_init_slow(void)
{
    int ret = 0;
    pcpu__lock();
    int st = atomic_load(&pcpu__g.state);
    if (st == PCPU_STATE_OFF) {
        ret = init_locked(NULL, PCPU_STATE_USED);
    } else if (st == PCPU_STATE_AUTO) {
        atomic_store_explicit(&pcpu__g.state, PCPU_STATE_USED, memory_order_release);
        pcpu__thiscpu_start();
    }
    pcpu__unlock();
    return ret;
}

int pcpu__init_auto_locked(void)
{
    return init_locked(NULL, PCPU_STATE_AUTO);
}

static int init_impl(const struct pcpu_config *cfg)
{
    pcpu__lock();
    int st = atomic_load(&pcpu__g.state);
    /* Only registered statics, untouched: they may still be laid out
     * again with this configuration.  Anything else that used them makes
     * this too late, as any other use does. */
    if (st == PCPU_STATE_USED || (st == PCPU_STATE_AUTO && !pcpu__statics_pristine())) {
        pcpu__unlock();
        errno = EBUSY;
        return -1;
    }
    if (st == PCPU_STATE_AUTO)
        teardown_locked(false);
    int ret = init_locked(cfg, PCPU_STATE_USED);
    if (ret != 0 && st == PCPU_STATE_AUTO) {
        /* Keep the statics usable with the defaults. */
        int err = errno;
        (void)init_locked(NULL, PCPU_STATE_AUTO);
        errno = err;
    }
    pcpu__unlock();
    return ret;
}

static void exit_impl(void)
{
    pcpu__reclaim_stop();
    pcpu__lock();
    if (atomic_load(&pcpu__g.state) != PCPU_STATE_OFF)
        teardown_locked(true);
    pcpu__unlock();
}

unsigned int pcpu_nr_cpus(void)
{
    if (pcpu__ensure_init() != 0)
        return 0;
    return pcpu__nr_units;
}

size_t pcpu_max_alloc_size(void)
{
    if (pcpu__ensure_init() != 0)
        return 0;
    return pcpu__g.unit_size;
}

/* ---- allocation ------------------------------------------------------------ */

static inline __attribute__((always_inline)) int check_args(size_t size, size_t align,
                                                          size_t *bits, size_t *align_bits)
{
    if (unlikely(size == 0 || size > pcpu__g.unit_size || (align & (align - 1)) ||
                 align > pcpu__page_size)) {
        errno = EINVAL;
        return -1;
    }
    *bits = (size + PCPU_GRANULE - 1) / PCPU_GRANULE;
    *align_bits = align ? (align < PCPU_GRANULE ? 1 : align / PCPU_GRANULE) : pcpu__natural_bits(*bits);
    return 0;
}

static inline void set_live(struct pcpu_chunk *c, void *cookie)
{
    size_t bit = (size_t)((char *)cookie - c->base) / PCPU_GRANULE;
    /* Release: the thread-cache pop (count decrement) before it must be
     * visible first, so a fork() snapshot never shows an object both live
     * and still cached (the child would flush a live object). */
    uint64_t old = __atomic_fetch_or(pcpu__live_word(c, bit), 1ull << (bit % 64), __ATOMIC_RELEASE);
    pcpu_assert_internal(!(old & (1ull << (bit % 64))));
    (void)old;
}

static void note_size_locked(size_t size)
{
    if (size < pcpu__g.min_alloc_size)
        pcpu__g.min_alloc_size = size;
    if (size > pcpu__g.max_alloc_size)
        pcpu__g.max_alloc_size = size;
}

/* Out of memory with free objects parked in this thread's cache: give them
 * back and try again once (other threads' caches are theirs to use). */
static void *alloc_retry_locked(size_t bits, size_t align_bits, bool reserved,
                                struct pcpu_chunk **c)
{
    void *p = pcpu__alloc_locked(bits, 1, align_bits, reserved, c);
    if (!p && errno == ENOMEM && pcpu__my_tcache && pcpu__tcache_flush_locked(pcpu__my_tcache))
        p = pcpu__alloc_locked(bits, 1, align_bits, reserved, c);
    return p;
}

static void *alloc_slow(size_t size, size_t bits, size_t align_bits, bool reserved)
{
    struct pcpu_chunk *c;
    pcpu__lock();
    void *p = alloc_retry_locked(bits, align_bits, reserved, &c);
    if (p) {
        set_live(c, p);
        if (unlikely(pcpu__debug_active))
            pcpu__debug_on_alloc(p, bits * PCPU_GRANULE);
        /* Sample the threads' cached peaks with the counters they were
         * reached under, then count this one (exact for one thread). */
        pcpu__note_max_alloc_locked();
        pcpu__g.nr_alloc++;
        note_size_locked(size);
        pcpu__note_max_alloc_locked();
    } else if (!errno) {
        errno = ENOMEM;
    }
    pcpu__unlock();
    if (unlikely(pcpu__debug_active) && p)
        pcpu__debug_after_op(p, bits);
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
    if (likely(pcpu__tcache_exact(bits) && align_bits <= pcpu__natural_bits(bits) &&
               pcpu__g.tcache_on)) {
        struct pcpu_tcache *tc = pcpu__my_tcache;
        if (unlikely(!tc))
            tc = pcpu__tcache_get();
        if (likely(tc)) {
            struct pcpu_tcache_class *cls = &tc->cls[ci];
            if (unlikely(cls->count == 0)) {
                if (pcpu__tcache_refill(tc, ci) != 0)
                    return NULL;
            }
            struct pcpu_tcache_entry e = cls->e[--cls->count];
            set_live(e.chunk, e.cookie);
            pcpu__tcache_count_alloc(tc, size);
            if (unlikely(pcpu__debug_active)) {
                pcpu__debug_on_alloc(e.cookie, bits * PCPU_GRANULE);
                pcpu__debug_after_op(e.cookie, bits);
            }
            return e.cookie;
        }
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
    if (unlikely(off >= pcpu__g.unit_size))
        pcpu__die("percpu: invalid free of %p (an address inside a unit, not a cookie)", cookie);
    if (unlikely(off % PCPU_GRANULE))
        pcpu__die("percpu: invalid free of %p (interior pointer of an allocation)", cookie);
    size_t bit = off / PCPU_GRANULE;
    struct pcpu_chunk *owner = pcpu__owner_chunk(c, bit);
    if (unlikely(!owner))
        pcpu__die("percpu: invalid free of %p (a static per-CPU variable)", cookie);
    uint64_t mask = 1ull << (bit % 64);
    uint64_t old = __atomic_fetch_and(pcpu__live_word(owner, bit), ~mask, __ATOMIC_RELAXED);
    if (unlikely(!(old & mask)))
        bad_free(cookie, owner, bit);
    size_t bits = pcpu__alloc_bits_fast(owner, bit);
    /* Robust mode poisons the touched units instead of zeroing them. */
    if (unlikely(pcpu__debug_active))
        pcpu__debug_on_free(cookie, bits * PCPU_GRANULE);
    else
        pcpu__zero_units(cookie, bits * PCPU_GRANULE);
    size_t ci = pcpu__tcache_class(bits);
    if (likely(pcpu__tcache_exact(bits) && !owner->is_reserved && pcpu__g.tcache_on &&
               bit % pcpu__natural_bits(bits) == 0)) {
        struct pcpu_tcache *tc = pcpu__my_tcache;
        if (unlikely(!tc))
            tc = pcpu__tcache_get();
        if (likely(tc)) {
            pcpu__tcache_push(tc, ci, cookie, owner);
            if (unlikely(pcpu__debug_active))
                pcpu__debug_after_op(cookie, bits);
            return;
        }
    }
    pcpu__lock();
    pcpu__release_locked(owner, bit, bits);
    pcpu__note_max_alloc_locked();
    pcpu__g.nr_dealloc++;
    pcpu__unlock();
    if (unlikely(pcpu__debug_active))
        pcpu__debug_after_op(cookie, bits);
}

/* ---- validation ----------------------------------------------------------- */

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
    v->empty_pop += c->nr_empty_pop;
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

int pcpu__validate_locked(void)
{
    struct validate_ctx v = {0};
    if (atomic_load(&pcpu__g.state) == PCPU_STATE_OFF)
        return 0;
    pcpu__for_each_chunk(validate_one, &v);
    if (v.chunks != pcpu__g.nr_chunks) {
        fprintf(stderr, "percpu: validate: %u chunks in the list, nr_chunks %u\n", v.chunks,
                pcpu__g.nr_chunks);
        v.problems++;
    }
    if (v.populated != pcpu__g.nr_populated || v.empty_pop != pcpu__g.nr_empty_pop) {
        fprintf(stderr, "percpu: validate: populated %zu/%zu, empty %zu/%zu (chunks/global)\n",
                v.populated, pcpu__g.nr_populated, v.empty_pop, pcpu__g.nr_empty_pop);
        v.problems++;
    }
    v.problems += pcpu__tcache_validate_locked();
    return v.problems;
}

int pcpu__validate_all(void)
{
    pcpu__lock();
    int problems = pcpu__validate_locked();
    pcpu__unlock();
    return problems;
}

int pcpu_init(const struct pcpu_config *cfg)
{
    pcpu__enter("pcpu_init");
    int r = init_impl(cfg);
    pcpu__leave();
    return r;
}

void pcpu_exit(void)
{
    pcpu__enter("pcpu_exit");
    exit_impl();
    pcpu__leave();
}

void *pcpu_alloc(size_t size, size_t align)
{
    pcpu__enter("pcpu_alloc");
    void *r = alloc_impl(size, align);
    pcpu__leave();
    return r;
}

void *pcpu_alloc_reserved(size_t size, size_t align)
{
    pcpu__enter("pcpu_alloc_reserved");
    void *r = alloc_reserved_impl(size, align);
    pcpu__leave();
    return r;
}

void pcpu_free(void *cookie)
{
    pcpu__enter("pcpu_free");
    free_impl(cookie);
    pcpu__leave();
}

int pcpu_validate(void)
{
    pcpu__enter("pcpu_validate");
    int r = pcpu__validate_all();
    pcpu__leave();
    return r;
}
