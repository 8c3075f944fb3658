/*
 * internal.h - what the library's source files share with each other.
 *
 * Layout of the data (all offsets are per unit and equal in every unit):
 *
 *   reservation of one chunk (aligned to a power of two >= its size):
 *
 *     base                base+U        base+2U             base+(N+1)U
 *      | guard (never RW) | unit pos 0  | unit pos 1 | ... | unit pos N-1 |
 *
 *   A cookie is base + off: it lies in the guard, so it faults when
 *   dereferenced.  CPU index i's copy is at cookie + pcpu__cpu_offsets[i],
 *   where pcpu__cpu_offsets[i] = (1 + unit_pos(i)) * U for every chunk.
 *   Units are ordered by NUMA group (as in the kernel's alloc info), so a
 *   CPU's unit position and its index differ when nodes interleave.
 *
 *   First chunk, per unit:  | static | reserved | dynamic ... |
 *   The dynamic part is served by the first chunk's own map; the reserved
 *   part by a second chunk structure that shares the same memory.
 *
 * Locking: one mutex (pcpu__g.lock) protects chunks, maps, slots and
 * counters.  Frees start without it (live bit, zeroing, thread cache) and
 * only take it to give space back to a chunk's map.
 */
#ifndef PCPU_INTERNAL_H
#define PCPU_INTERNAL_H

#define PCPU__LIBRARY_BUILD 1
#include "percpu.h"

#include <pthread.h>
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

/* ---- graded assertions (mimalloc style) -------------------------------- */
PCPU_HIDDEN _Noreturn void pcpu__assert_fail(const char *expr, const char *file, int line);
PCPU_HIDDEN _Noreturn __attribute__((format(printf, 1, 2))) void pcpu__die(const char *fmt, ...);
PCPU_HIDDEN __attribute__((format(printf, 1, 2))) void pcpu__warn(const char *fmt, ...);

/* level 1: cheap checks on public paths; 2: internal consistency;
 * 3: expensive (whole-structure) checks. */
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
    if (__builtin_expect(pcpu__inside != NULL, 0))
        pcpu__reentered(fn);
    pcpu__inside = fn;
    atomic_signal_fence(memory_order_seq_cst);
}
static inline void pcpu__leave(void)
{
    atomic_signal_fence(memory_order_seq_cst);
    pcpu__inside = NULL;
}
/* pcpu_validate() without the re-entry bracket (robust mode calls it from
 * inside other calls). */
PCPU_HIDDEN int pcpu__validate_all(void);
PCPU_HIDDEN int pcpu__validate_locked(void);

/* ---- sizes -------------------------------------------------------------- */
#define PCPU_GRANULE 4u                  /* bytes per map bit (min alloc)   */
#define PCPU_GRANULE_SHIFT 2
#define PCPU_DEFAULT_UNIT_SIZE (1u << 20)
#define PCPU_DEFAULT_RESERVED (16u << 10)
#define PCPU_MIN_UNIT_SIZE (64u << 10)
#define PCPU_MIN_DYN_SIZE (32u << 10)   /* first chunk's dynamic area      */
#define PCPU_MAX_UNIT_SIZE ((size_t)1 << 30)
#define PCPU_STATIC_ALIGN 64u            /* statics keep their offset mod this */

/* Reclaim watermarks, in populated-but-empty pages across all chunks, and
 * how many empty pages an allocation populates beyond what it needs. */
#define PCPU_EMPTY_POP_LOW 8u
#define PCPU_EMPTY_POP_HIGH 32u
#define PCPU_POPULATE_AHEAD 7u

/* ---- OS layer (os.c): the only file that makes memory system calls ---- */
enum pcpu_os_call { PCPU_OS_MAP, PCPU_OS_PROTECT, PCPU_OS_ADVISE, PCPU_OS_META };

PCPU_HIDDEN extern size_t pcpu__page_size;
PCPU_HIDDEN bool pcpu__os_fault(enum pcpu_os_call what);   /* injection point */
PCPU_HIDDEN void *pcpu__os_reserve(size_t size, size_t align); /* PROT_NONE */
PCPU_HIDDEN void *pcpu__os_map_rw(size_t size, size_t align);  /* usable    */
PCPU_HIDDEN void pcpu__os_release(void *p, size_t size);
/* Give the memory back but keep the range reserved (PROT_NONE); false if
 * it could only be unmapped. */
PCPU_HIDDEN bool pcpu__os_release_keep_range(void *p, size_t size);
PCPU_HIDDEN int pcpu__os_commit(void *p, size_t size);     /* make usable   */
PCPU_HIDDEN int pcpu__os_decommit(void *p, size_t size);   /* give back, PROT_NONE */
PCPU_HIDDEN int pcpu__os_discard(void *p, size_t size);    /* give back, stay usable */
PCPU_HIDDEN int pcpu__os_protect_none(void *p, size_t size);
PCPU_HIDDEN void pcpu__os_bind(void *p, size_t size, int node);
PCPU_HIDDEN void pcpu__os_nohuge(void *p, size_t size);
/* Metadata allocations (zeroed); failure injectable. */
PCPU_HIDDEN void *pcpu__meta_calloc(size_t n, size_t size);
PCPU_HIDDEN void pcpu__meta_free(void *p, size_t bytes);
PCPU_HIDDEN extern atomic_size_t pcpu__meta_bytes;

/* ---- topology and allocation info (topology.c) ------------------------ */
struct pcpu_group {
    int node;                 /* NUMA node of every unit in the group     */
    unsigned int first_unit;  /* unit position of the first unit          */
    unsigned int nr_units;
};

struct pcpu_alloc_info {
    size_t static_size;
    size_t reserved_size;
    size_t dyn_size;
    size_t unit_size;
    size_t atom_size;
    unsigned int nr_units;      /* CPU indexes 0..nr_units-1              */
    unsigned int nr_possible;   /* possible CPUs of the machine           */
    unsigned int nr_os_ids;     /* highest possible OS CPU id + 1         */
    bool units_shared;          /* fewer units than possible CPUs         */
    unsigned int nr_groups;
    struct pcpu_group *groups;
    unsigned int *unit_pos;     /* CPU index -> unit position             */
    int *node;                  /* CPU index -> NUMA node                 */
    int *os_id;                 /* CPU index -> OS CPU id, -1 if simulated*/
    unsigned int *index_of_os;  /* OS CPU id -> CPU index (nr_os_ids)     */
};

PCPU_HIDDEN int pcpu__build_alloc_info(const struct pcpu_config *cfg, size_t static_size,
                                       struct pcpu_alloc_info **out);
PCPU_HIDDEN void pcpu__free_alloc_info(struct pcpu_alloc_info *ai);
PCPU_HIDDEN int pcpu__parse_cpulist(const char *s, unsigned char *set, unsigned int max);
PCPU_HIDDEN bool pcpu__node_online(int node);

/* ---- bitmaps (bitmap.c) ------------------------------------------------- */
#define PCPU_WORD_BITS 64u
static inline size_t pcpu__words(size_t bits) { return (bits + 63) / 64; }
static inline bool pcpu__test_bit(const uint64_t *map, size_t bit)
{
    return (__atomic_load_n(&map[bit / 64], __ATOMIC_RELAXED) >> (bit % 64)) & 1;
}
PCPU_HIDDEN void pcpu__set_range(uint64_t *map, size_t start, size_t n);
PCPU_HIDDEN void pcpu__clear_range(uint64_t *map, size_t start, size_t n);
PCPU_HIDDEN void pcpu__set_bit(uint64_t *map, size_t bit);
PCPU_HIDDEN void pcpu__clear_bit(uint64_t *map, size_t bit);
/* First set / clear bit in [start, end), or end. */
PCPU_HIDDEN size_t pcpu__next_set(const uint64_t *map, size_t start, size_t end);
PCPU_HIDDEN size_t pcpu__next_zero(const uint64_t *map, size_t start, size_t end);
/* Last set bit in [start, end), or SIZE_MAX. */
PCPU_HIDDEN size_t pcpu__prev_set(const uint64_t *map, size_t start, size_t end);
PCPU_HIDDEN size_t pcpu__count_set(const uint64_t *map, size_t start, size_t end);
/* First position p in [start, end) with p % align == 0 and [p, p+n) clear. */
PCPU_HIDDEN size_t pcpu__find_zero_area(const uint64_t *map, size_t start, size_t end, size_t n,
                                        size_t align);

/* ---- chunks (chunk.c) ---------------------------------------------------- */
/* Per-page (block) hints over the allocation map. */
struct pcpu_block_md {
    uint32_t contig; /* longest free run inside the block          */
    uint32_t left;   /* free bits at the block's start             */
    uint32_t right;  /* free bits at the block's end               */
    uint32_t nfree;  /* free bits in the block                     */
    uint32_t contig_start; /* where the longest run starts (in block)  */
};

/* Blocks per group: a search skips a whole group whose longest free run
 * is too short, so it looks at about nr_pages / 16 + 16 hints, not at
 * every block. */
#define PCPU_GROUP_BLOCKS 16u

/* Hints of a group of blocks, recomputed from the block hints when a
 * search needs them after a change (dirty bit). */
struct pcpu_group_md {
    uint32_t contig;       /* longest free run inside the group        */
    uint32_t contig_start; /* its first bit (in the chunk)             */
    uint32_t left;         /* free bits at the group's start           */
    uint32_t right;        /* free bits at the group's end             */
};

struct pcpu_backend_ops;

struct pcpu_chunk {
    struct pcpu_chunk *prev, *next; /* slot list                          */
    struct pcpu_chunk *list_prev, *list_next; /* all chunks, by age       */
    int slot;
    bool is_first;        /* the first chunk's dynamic part               */
    bool is_reserved;     /* the first chunk's reserved part              */
    char *base;           /* cookie of offset 0 (start of the guard)      */
    void *map_addr;       /* the reservation, for the backend             */
    size_t map_size;
    size_t start_bit;     /* allocatable map region [start_bit, end_bit)  */
    size_t end_bit;
    size_t nr_bits;       /* bits covered by the maps                     */
    size_t nr_pages;      /* pages (blocks) covered                       */
    uint64_t *alloc_map;  /* 1 = allocated (or hidden)                    */
    uint64_t *start_map;  /* 1 = first granule of an allocation           */
    uint64_t *end_map;    /* 1 = last granule of an allocation            */
    uint64_t *live_map;   /* 1 = allocation handed to the user; words are
                             spread out, use pcpu__live_word()           */
    size_t live_stride;   /* live words between logically adjacent ones   */
    struct pcpu_block_md *md;
    struct pcpu_group_md *gmd;
    uint64_t *gdirty;     /* 1 bit per group: gmd must be recomputed       */
    size_t nr_groups;
    uint64_t *populated;  /* 1 bit per page; shared by first+reserved     */
    size_t free_bits;
    size_t contig_bits;   /* largest free run, an upper bound             */
    size_t contig_start;  /* its first bit, when not stale                */
    bool contig_stale;    /* contig_bits may be too high                  */
    size_t first_free_block;
    size_t nr_populated;
    size_t nr_empty_pop;  /* populated pages with no allocated granule    */
    size_t nr_alloc;      /* allocations in the map (live or cached)      */
    size_t meta_bytes;
    void *backend_data;
};

PCPU_HIDDEN struct pcpu_chunk *pcpu__chunk_alloc_meta(size_t nr_bits, size_t start_bit,
                                                      size_t end_bit);
PCPU_HIDDEN void pcpu__chunk_free_meta(struct pcpu_chunk *c);
/* Find a run of piece*count bits aligned to align bits and claim it as count
 * allocations of piece bits; returns the first bit or SIZE_MAX. */
PCPU_HIDDEN size_t pcpu__chunk_claim(struct pcpu_chunk *c, size_t piece, size_t count,
                                     size_t align);
/* Release the allocation starting at bit (n bits long). */
PCPU_HIDDEN void pcpu__chunk_release(struct pcpu_chunk *c, size_t bit, size_t n);
/* Length in bits of the allocation starting at bit (from end_map). */
PCPU_HIDDEN size_t pcpu__chunk_alloc_bits(const struct pcpu_chunk *c, size_t bit);
/* Recompute the exact largest free run. */
PCPU_HIDDEN void pcpu__chunk_refresh_contig(struct pcpu_chunk *c);
PCPU_HIDDEN bool pcpu__chunk_page_empty(const struct pcpu_chunk *c, size_t page);
PCPU_HIDDEN void pcpu__chunk_set_populated(struct pcpu_chunk *c, size_t page, bool on);
PCPU_HIDDEN int pcpu__chunk_validate(const struct pcpu_chunk *c);
/* What one operation on [bit, bit+n) can have broken: the blocks around
 * it, their groups, the allocation there; O(blocks touched). */
PCPU_HIDDEN int pcpu__chunk_validate_range(const struct pcpu_chunk *c, size_t bit, size_t n);
static inline size_t pcpu__chunk_total_bits(const struct pcpu_chunk *c)
{
    return c->end_bit - c->start_bit;
}
/* The live_map word holding bit.  Frees and thread-cache allocations set
 * and clear live bits with atomic operations from many threads; two
 * threads' caches take neighbouring runs of the map, so logically adjacent
 * words are placed a cache line or more apart (word w at
 * (w % 8) * stride + w / 8) to keep those threads off each other's lines. */
static inline uint64_t *pcpu__live_word(const struct pcpu_chunk *c, size_t bit)
{
    size_t w = bit / 64;
    return &c->live_map[(w % 8) * c->live_stride + w / 8];
}
static inline bool pcpu__live_test(const struct pcpu_chunk *c, size_t bit)
{
    return (__atomic_load_n(pcpu__live_word(c, bit), __ATOMIC_RELAXED) >> (bit % 64)) & 1;
}

/* Length in bits of the allocation starting at bit; the common small case
 * finds its end bit in the same word. */
static inline size_t pcpu__alloc_bits_fast(const struct pcpu_chunk *c, size_t bit)
{
    uint64_t w = __atomic_load_n(&c->end_map[bit / 64], __ATOMIC_RELAXED) >> (bit % 64);
    if (likely(w))
        return (size_t)__builtin_ctzll(w) + 1;
    return pcpu__chunk_alloc_bits(c, bit);
}
/* Whether a request of n bits aligned to align bits can fit the largest
 * run of a region whose run starts at start (the kernel's block hint
 * check): rejects hole-riddled blocks and chunks in O(1). */
static inline bool pcpu__run_fits(size_t start, size_t len, size_t n, size_t align)
{
    size_t pad = ((start + align - 1) & ~(align - 1)) - start;
    return pad + n <= len;
}
static inline bool pcpu__chunk_may_fit(const struct pcpu_chunk *c, size_t n, size_t align)
{
    if (n > c->contig_bits)
        return false;
    return c->contig_stale || pcpu__run_fits(c->contig_start, c->contig_bits, n, align);
}
static inline bool pcpu__chunk_is_empty(const struct pcpu_chunk *c)
{
    return c->free_bits == pcpu__chunk_total_bits(c);
}

/* ---- backends ------------------------------------------------------------ */
/* The seed's contract: create, destroy, populate, depopulate, address to
 * chunk, verify allocation info.  Called with the allocator lock held. */
struct pcpu_backend_ops {
    const char *name;
    /* Map the chunk's memory; fills c->base, c->map_addr, c->map_size. */
    int (*create_chunk)(struct pcpu_chunk *c);
    void (*destroy_chunk)(struct pcpu_chunk *c);
    /* Make pages [page, page+n) usable in every unit; memory reads zero. */
    int (*populate)(struct pcpu_chunk *c, size_t page, size_t n);
    /* Give pages [page, page+n) back in every unit. */
    void (*depopulate)(struct pcpu_chunk *c, size_t page, size_t n);
    /* Address (cookie or unit address) to chunk; NULL if none. */
    struct pcpu_chunk *(*addr_to_chunk)(const void *addr);
    /* Check the allocation info suits this backend; message + EINVAL. */
    int (*verify_alloc_info)(const struct pcpu_alloc_info *ai);
    /* Created chunks start fully populated (KM). */
    bool born_populated;
};

PCPU_HIDDEN extern const struct pcpu_backend_ops pcpu__backend_vm;
PCPU_HIDDEN extern const struct pcpu_backend_ops pcpu__backend_km;

/* ---- address lookup (lookup.c) ------------------------------------------ */
/* Reservations are aligned to 1 << pcpu__g.chunk_shift, so an address maps
 * to its chunk through a two-level radix table without any lock. */
PCPU_HIDDEN int pcpu__lookup_insert(struct pcpu_chunk *c);
PCPU_HIDDEN void pcpu__lookup_remove(struct pcpu_chunk *c);
PCPU_HIDDEN void pcpu__lookup_exit(void);
#define PCPU_LOOKUP_L2_BITS 12u
typedef struct pcpu_chunk *_Atomic pcpu__lookup_slot;
PCPU_HIDDEN extern pcpu__lookup_slot *_Atomic *pcpu__l1;
PCPU_HIDDEN extern size_t pcpu__l1_len, pcpu__l1_shift;

/* The chunk whose reservation holds addr, or NULL (lock-free, inline: it
 * is on every free). */
static inline struct pcpu_chunk *pcpu__lookup(const void *addr)
{
    pcpu__lookup_slot *_Atomic *t = pcpu__l1;
    if (!t)
        return NULL;
    uintptr_t key = (uintptr_t)addr >> pcpu__l1_shift;
    if ((key >> PCPU_LOOKUP_L2_BITS) >= pcpu__l1_len)
        return NULL;
    pcpu__lookup_slot *l2 =
        atomic_load_explicit(&t[key >> PCPU_LOOKUP_L2_BITS], memory_order_acquire);
    if (!l2)
        return NULL;
    struct pcpu_chunk *c = atomic_load_explicit(
        &l2[key & ((1u << PCPU_LOOKUP_L2_BITS) - 1)], memory_order_acquire);
    if (!c || (uintptr_t)addr - (uintptr_t)c->map_addr >= c->map_size)
        return NULL;
    return c;
}

/* Natural alignment of an n-granule object, in granules: the largest power
 * of two dividing n, at most 16 bytes. */
static inline size_t pcpu__natural_bits(size_t bits)
{
    size_t low = bits & (~bits + 1);
    return low > 4 ? 4 : low;
}

/* ---- thread caches (tcache.c) -------------------------------------------- */
/* Size classes: one per granule count up to 256 bytes, then one per 64
 * bytes up to 4 KiB.  Only requests of exactly a class's size use a cache,
 * so every allocation keeps its own size in the map (and in reports). */
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

/* Statistics fields are written by the owning thread only (relaxed
 * stores) and read by whoever takes a snapshot. */
struct pcpu_tcache {
    struct pcpu_tcache *prev, *next; /* all caches, under the lock      */
    _Atomic uint64_t nr_alloc;
    _Atomic uint64_t nr_dealloc;
    _Atomic int64_t peak_net;        /* max of alloc - dealloc this epoch */
    _Atomic size_t min_size, max_size;
    _Atomic unsigned int epoch;      /* the sample period peak_net is of */
    struct pcpu_tcache_class cls[PCPU_TCACHE_NR_CLASSES]; /* [0] unused */
};

PCPU_HIDDEN struct pcpu_tcache *pcpu__tcache_get(void);
/* Take objects of class ci from the map into the cache (takes the lock). */
PCPU_HIDDEN int pcpu__tcache_refill(struct pcpu_tcache *tc, size_t ci);
/* Park a freed, zeroed object of class ci (may take the lock to make room). */
PCPU_HIDDEN void pcpu__tcache_put(struct pcpu_tcache *tc, size_t ci, void *cookie,
                                  struct pcpu_chunk *c);
/* Give one cache's objects back to the map (it stays usable); returns how
 * many it held. */
PCPU_HIDDEN size_t pcpu__tcache_flush_locked(struct pcpu_tcache *tc);
/* pcpu_exit: forget every cached object (the chunks go away). */
PCPU_HIDDEN void pcpu__tcache_drop_all_locked(void);
/* fork child: give other threads' objects back and free their caches. */
PCPU_HIDDEN void pcpu__tcache_flush_others_locked(void);
PCPU_HIDDEN size_t pcpu__tcache_count_locked(void);
PCPU_HIDDEN void pcpu__tcache_stats_locked(uint64_t *nr_alloc, uint64_t *nr_dealloc,
                                           uint64_t *excursion, size_t *min_size,
                                           size_t *max_size);
PCPU_HIDDEN int pcpu__tcache_validate_locked(void);
/* Every object parked in any thread's cache (robust checks at exit). */
PCPU_HIDDEN void pcpu__tcache_for_each_cached_locked(
    void (*fn)(struct pcpu_chunk *c, void *cookie, size_t bits, void *arg), void *arg);
PCPU_HIDDEN extern __thread struct pcpu_tcache *pcpu__my_tcache
    __attribute__((tls_model("initial-exec")));

/* ---- the allocator's global state (core.c) ------------------------------ */
enum pcpu_state {
    PCPU_STATE_OFF,      /* not initialised                              */
    PCPU_STATE_AUTO,     /* initialised only for static sections        */
    PCPU_STATE_USED,     /* in use                                       */
};

struct pcpu_global {
    pthread_mutex_t lock;
    _Atomic int state;               /* enum pcpu_state                  */
    struct pcpu_config cfg;
    const struct pcpu_backend_ops *ops;
    struct pcpu_alloc_info *ai;
    size_t unit_size;
    size_t unit_bits;
    size_t chunk_shift;              /* log2 of the reservation alignment */
    size_t chunk_span;               /* (nr_units + 1) * unit_size        */
    size_t static_size;              /* statics placed at init            */
    size_t static_off;               /* where the static area starts (0)  */
    size_t reserved_off;
    size_t dyn_off;
    struct pcpu_chunk *first;        /* first chunk, dynamic part         */
    struct pcpu_chunk *reserved;     /* first chunk, reserved part        */
    unsigned int nr_slots;
    struct pcpu_chunk **slots;       /* list heads by contig size         */
    struct pcpu_chunk *oldest, *newest; /* every chunk but the reserved
                                           part, oldest (the first) first */
    unsigned int nr_chunks;          /* dynamic chunks incl. first        */
    unsigned int nr_max_chunks;
    size_t nr_empty_pop;             /* over all chunks                   */
    size_t nr_populated;
    bool tcache_on;
    bool debug;
    /* statistics under the lock (thread caches keep their own) */
    uint64_t nr_alloc, nr_dealloc;
    uint64_t nr_max_alloc;
    _Atomic unsigned int stats_epoch;  /* bumped when nr_max_alloc is sampled */
    uint64_t nr_populate, nr_depopulate, nr_chunk_create, nr_chunk_destroy;
    size_t min_alloc_size, max_alloc_size;
    size_t allocated_bits;
};

PCPU_HIDDEN extern struct pcpu_global pcpu__g;

static inline bool pcpu__ready(void)
{
    return atomic_load_explicit(&pcpu__g.state, memory_order_acquire) == PCPU_STATE_USED;
}
/* Initialise with defaults if needed and mark the allocator used;
 * 0 or -1 with errno. */
PCPU_HIDDEN int pcpu__ensure_init_slow(void);
static inline int pcpu__ensure_init(void)
{
    return likely(pcpu__ready()) ? 0 : pcpu__ensure_init_slow();
}
PCPU_HIDDEN void pcpu__lock(void);
PCPU_HIDDEN void pcpu__unlock(void);

/* Core operations used by tcache.c, statics.c and stats.c (lock held). */
/* Allocate count objects of bits granules, contiguous, the first aligned to
 * align_bits; returns the first object's cookie (the others follow). */
PCPU_HIDDEN void *pcpu__alloc_locked(size_t bits, size_t count, size_t align_bits, bool reserved,
                                     struct pcpu_chunk **chunk_out);
PCPU_HIDDEN void pcpu__release_locked(struct pcpu_chunk *c, size_t bit, size_t bits);
PCPU_HIDDEN void pcpu__chunk_relocate(struct pcpu_chunk *c);
PCPU_HIDDEN void pcpu__destroy_chunk_locked(struct pcpu_chunk *c);
PCPU_HIDDEN size_t pcpu__reclaim_locked(bool all);
PCPU_HIDDEN void pcpu__zero_units(void *cookie, size_t bytes);
PCPU_HIDDEN void pcpu__note_max_alloc_locked(void);
/* Set the allocator up for static sections only (state AUTO; lock held). */
PCPU_HIDDEN int pcpu__init_auto_locked(void);
/* Resolve the chunk structure that owns a bit of a first-chunk address. */
PCPU_HIDDEN struct pcpu_chunk *pcpu__owner_chunk(struct pcpu_chunk *c, size_t bit);
/* Apply a function to every chunk: the reserved part, then the others
 * oldest first (fn may destroy the chunk it is given). */
PCPU_HIDDEN void pcpu__for_each_chunk(void (*fn)(struct pcpu_chunk *, void *), void *arg);

/* ---- robust mode and sanitizer annotations (debug.c) --------------------- */
/* Hooks the core calls around every allocation and free; they poison and
 * check memory in robust mode (PCPU_F_DEBUG) and tell AddressSanitizer and
 * valgrind which per-CPU bytes are usable.  pcpu__debug_active says whether
 * any of that is on, so the fast paths pay one predictable branch. */
PCPU_HIDDEN extern bool pcpu__debug_active;
PCPU_HIDDEN void pcpu__debug_init(void);               /* init, lock held */
PCPU_HIDDEN void pcpu__debug_on_alloc(void *cookie, size_t bytes);
/* On free, instead of pcpu__zero_units(): zeroes (or, in robust mode,
 * poisons) the object's units, then marks them freed for the tools. */
PCPU_HIDDEN void pcpu__debug_on_free(void *cookie, size_t bytes);
/* A chunk's mapping is about to go away (lock held). */
PCPU_HIDDEN void pcpu__debug_on_unmap(void *addr, size_t size);
/* Robust mode: validate what an operation on the object at cookie (bits
 * granules) touched; takes the lock. */
PCPU_HIDDEN void pcpu__debug_after_op(const void *cookie, size_t bits);
PCPU_HIDDEN void pcpu__debug_on_exit(void);            /* report leaks, lock held */

/* ---- reclaim worker (reclaim.c) ------------------------------------------ */
PCPU_HIDDEN void pcpu__reclaim_kick_locked(void);
PCPU_HIDDEN void pcpu__reclaim_stop(void);
PCPU_HIDDEN void pcpu__reclaim_forget(void); /* after fork, in the child */

/* ---- static sections (statics.c) ----------------------------------------- */
/* Where a module's section lives (pcpu__module.placed). */
#define PCPU_PLACED_NOT 0
#define PCPU_PLACED_STATIC 1 /* the first chunk's static area            */
#define PCPU_PLACED_LATE 2   /* an allocation (reserved area or dynamic) */
/* Spare static area when the first chunk is set up for statics only, so
 * that libraries loaded at start-up join it without anything moving. */
#define PCPU_STATIC_SLACK (32u << 10)

/* Bytes of static area the registered sections need (lock held). */
PCPU_HIDDEN size_t pcpu__statics_size(void);
/* Place every registered section into the static area at cookie, which
 * has room bytes (init, lock held; copies initial values). */
PCPU_HIDDEN void pcpu__statics_place(char *cookie, size_t room);
/* Forget placements (teardown, lock held); [old_first, +old_size) is the
 * old first chunk's range, left reserved so that stale cookies fault, or
 * NULL. */
PCPU_HIDDEN void pcpu__statics_reset(char *old_first, size_t old_size);
/* A static variable's cookie from before the last pcpu_exit(), moved to
 * its current placement; any other cookie unchanged.  Takes the lock. */
PCPU_HIDDEN const void *pcpu__statics_translate(const void *cookie);
/* Every placed section still equals its template in every unit (lock). */
PCPU_HIDDEN bool pcpu__statics_pristine(void);

/* ---- this-CPU operations (thiscpu.c) ------------------------------------- */
/* Called at the end of initialisation, once pcpu__cpu_offsets and the
 * alloc info are final, and at pcpu_exit. */
PCPU_HIDDEN void pcpu__thiscpu_init(const struct pcpu_alloc_info *ai, enum pcpu_index index);
PCPU_HIDDEN void pcpu__thiscpu_exit(void);
/* Open the inline paths (the allocator became used). */
PCPU_HIDDEN void pcpu__thiscpu_start(void);
PCPU_HIDDEN bool pcpu__thiscpu_uses_rseq(void);
PCPU_HIDDEN bool pcpu__thiscpu_uses_cid(void);
/* A module goes away: no thread's rseq_cs may point into its
 * descriptors any more (see thiscpu.c). */
PCPU_HIDDEN void pcpu__rseq_release(struct pcpu__module *mod);
/* fork(): hold this file's lock across it (after the allocator's); in the
 * child only the calling thread is left. */
PCPU_HIDDEN void pcpu__thiscpu_fork_prepare(void);
PCPU_HIDDEN void pcpu__thiscpu_fork_parent(void);
PCPU_HIDDEN void pcpu__thiscpu_fork_child(void);

/* ---- thread-cache fast paths (inline: they are most of a small alloc) ---- */

/* Counters written only by their owner: a plain add, kept atomic so that a
 * snapshot from another thread reads a whole value. */
static inline void pcpu__relaxed_inc(_Atomic uint64_t *v)
{
    atomic_store_explicit(v, atomic_load_explicit(v, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

static inline void pcpu__tcache_count_alloc(struct pcpu_tcache *tc, size_t size)
{
    pcpu__relaxed_inc(&tc->nr_alloc);
    int64_t net = (int64_t)(atomic_load_explicit(&tc->nr_alloc, memory_order_relaxed) -
                            atomic_load_explicit(&tc->nr_dealloc, memory_order_relaxed));
    unsigned int epoch = atomic_load_explicit(&pcpu__g.stats_epoch, memory_order_relaxed);
    if (unlikely(atomic_load_explicit(&tc->epoch, memory_order_relaxed) != epoch)) {
        atomic_store_explicit(&tc->epoch, epoch, memory_order_relaxed);
        atomic_store_explicit(&tc->peak_net, net, memory_order_relaxed);
    } else if (net > atomic_load_explicit(&tc->peak_net, memory_order_relaxed)) {
        atomic_store_explicit(&tc->peak_net, net, memory_order_relaxed);
    }
    size_t mn = atomic_load_explicit(&tc->min_size, memory_order_relaxed);
    if (unlikely(mn == 0 || size < mn))
        atomic_store_explicit(&tc->min_size, size, memory_order_relaxed);
    if (unlikely(size > atomic_load_explicit(&tc->max_size, memory_order_relaxed)))
        atomic_store_explicit(&tc->max_size, size, memory_order_relaxed);
}

/* Park a freed object; the full-cache case goes out of line. */
static inline void pcpu__tcache_push(struct pcpu_tcache *tc, size_t ci, void *cookie,
                                     struct pcpu_chunk *c)
{
    struct pcpu_tcache_class *cls = &tc->cls[ci];
    if (unlikely(cls->count >= pcpu__tcache_cap(pcpu__tcache_class_bits(ci)))) {
        pcpu__tcache_put(tc, ci, cookie, c);
        return;
    }
    /* Entry first, then the count that makes it visible: a fork() may
     * snapshot this thread at any instruction, and the child flushes what
     * the count covers. */
    cls->e[cls->count] = (struct pcpu_tcache_entry){cookie, c};
    __atomic_store_n(&cls->count, cls->count + 1, __ATOMIC_RELEASE);
    pcpu__relaxed_inc(&tc->nr_dealloc);
}

#endif /* PCPU_INTERNAL_H */
