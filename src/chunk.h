/* SPDX-License-Identifier: MIT */
/*
 * chunk.h - one chunk and its allocation map (chunk.c).
 *
 * A chunk is one reservation of (nr_units + 1) units (see topology.h for
 * the picture) with one map for all units.  The map and its hints belong
 * to chunk.c; the pool (pool.c) links chunks into its slots and list and
 * keeps the totals, which it learns from each chunk's own counters
 * (nr_populated, nr_empty_populated) rather than chunk.c writing them; the
 * backend fills in the mapping fields.  Everything here runs with the
 * allocator lock held, except the live-bit and end-bit reads below, which
 * frees do without it.
 */
#ifndef PCPU_CHUNK_H
#define PCPU_CHUNK_H

#include "internal.h"

#include "bitmap.h"

/* Per-page (block) hints over the allocation map. */
struct pcpu_block_hint {
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
struct pcpu_group_hint {
    uint32_t contig;       /* longest free run inside the group        */
    uint32_t contig_start; /* its first bit (in the chunk)             */
    uint32_t left;         /* free bits at the group's start           */
    uint32_t right;        /* free bits at the group's end             */
};

struct pcpu_chunk {
    /* the pool's (pool.c) */
    struct pcpu_chunk *prev, *next; /* slot list                          */
    struct pcpu_chunk *list_prev, *list_next; /* all chunks, by age       */
    int slot;
    bool is_first;        /* the first chunk's dynamic part               */
    bool is_reserved;     /* the first chunk's reserved part              */
    /* the backend's (backend.h) */
    char *base;           /* cookie of offset 0 (start of the guard)      */
    void *map_addr;       /* the reservation                              */
    size_t map_size;
    void *backend_data;
    /* the map's (chunk.c) */
    size_t start_bit;     /* allocatable map region [start_bit, end_bit)  */
    size_t end_bit;
    size_t nr_bits;       /* bits covered by the maps                     */
    size_t nr_pages;      /* pages (blocks) covered                       */
    uint64_t *alloc_map;  /* 1 = allocated (or hidden)                    */
    uint64_t *start_map;  /* 1 = first granule of an allocation           */
    uint64_t *end_map;    /* 1 = last granule of an allocation            */
    uint8_t *live;        /* per granule: 1 = the allocation starting here
                             is handed to the user                       */
    struct pcpu_block_hint *block_hints; /* one per page             */
    struct pcpu_group_hint *group_hints; /* one per group of pages   */
    uint64_t *group_hint_stale; /* 1 bit per group: its hint must be recomputed */
    size_t nr_groups;
    uint64_t *populated;  /* 1 bit per page; shared by first+reserved     */
    size_t free_bits;
    size_t contig_bits;   /* largest free run, an upper bound             */
    size_t contig_start;  /* its first bit, when not stale                */
    bool contig_stale;    /* contig_bits may be too high                  */
    size_t first_free_block;
    size_t nr_populated;  /* pages marked populated                       */
    size_t nr_empty_populated;  /* populated pages with no allocated granule    */
    size_t nr_alloc;      /* allocations in the map (live or cached)      */
    size_t meta_bytes;
};

PCPU_HIDDEN struct pcpu_chunk *pcpu__chunk_alloc_meta(size_t nr_bits, size_t start_bit,
                                                      size_t end_bit);
/* Frees c's metadata, and first bumps pcpu__chunk_gen (with the lock
 * held): whoever remembers a chunk outside the lock (a thread's free hint,
 * tcache.h) remembers the generation too, and trusts the memory only while
 * it is unchanged.  A free of a live object of c happens after c was made
 * and before c can be destroyed, so it always sees the bump of any chunk
 * destroyed before its object was handed out. */
PCPU_HIDDEN void pcpu__chunk_free_meta(struct pcpu_chunk *c);
PCPU_HIDDEN extern _Atomic unsigned long pcpu__chunk_gen;
/* Find a run of piece*count bits aligned to align bits and claim it as count
 * allocations of piece bits; returns the first bit or SIZE_MAX.  The fast
 * search (thorough false) trusts the hints as the kernel does: a block or
 * chunk whose longest free run cannot hold the request at that alignment
 * is skipped, even if a shorter run elsewhere in it could; thorough looks
 * at every block with a long enough run, for when the fast search failed. */
PCPU_HIDDEN size_t pcpu__chunk_claim(struct pcpu_chunk *c, size_t piece, size_t count,
                                     size_t align, bool thorough);
/* Freed objects on their way back to their chunk's map: count objects of
 * bits granules each, one after the other from cookie (a thread that
 * frees objects in the order they were made sends them as one entry). */
struct pcpu_freed {
    char *cookie;
    struct pcpu_chunk *chunk;   /* the owner (the reserved part for reserved objects) */
    uint32_t bits;              /* of each object                      */
    uint16_t count;             /* at least 1                          */
    bool clean;                 /* zeroed (or poisoned) already */
};
#define PCPU_FREED_COUNT_MAX UINT16_MAX

/* Sort freed objects by chunk, then address. */
PCPU_HIDDEN void pcpu__freed_sort(struct pcpu_freed *o, size_t n);

/* Release [bit, bit+n), which holds exactly count whole allocations (one
 * in the common case; several adjacent ones when frees come in batches,
 * which then cost one update of the hints). */
PCPU_HIDDEN void pcpu__chunk_release_run(struct pcpu_chunk *c, size_t bit, size_t n,
                                         size_t count);
static inline void pcpu__chunk_release(struct pcpu_chunk *c, size_t bit, size_t n)
{
    pcpu__chunk_release_run(c, bit, n, 1);
}
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
static inline bool pcpu__chunk_is_empty(const struct pcpu_chunk *c)
{
    return c->free_bits == pcpu__chunk_total_bits(c);
}
static inline size_t pcpu__chunk_bit(const struct pcpu_chunk *c, const void *cookie)
{
    return (size_t)((const char *)cookie - c->base) / PCPU_GRANULE;
}

/* Live marks, one byte per granule: plain (relaxed) loads and stores, no
 * atomic read-modify-write on the paths where every allocation and free
 * pays it.  Each byte is written only by the thread that hands the object
 * out or takes it back, and thread-cache refills take runs of 64 granules
 * (a cache line of marks) for the small classes, so threads do not share
 * lines of marks either.  A double free by one thread is always caught; a
 * double free racing with the first free of the same object in another
 * thread may not be (that program has a data race on the object). */
static inline bool pcpu__live_test(const struct pcpu_chunk *c, size_t bit)
{
    return __atomic_load_n(&c->live[bit], __ATOMIC_RELAXED) != 0;
}
/* A live mark also says the object's size when a byte can: up to 127
 * granules the count itself, multiples of 16 granules up to 2032 as 127 +
 * count / 16 (every thread-cache class is one or the other), else
 * PCPU_LIVE_UNSIZED.  A free then knows the size from the byte it reads
 * anyway, not from a scan of the end map (16 words for a 4 KiB object). */
#define PCPU_LIVE_UNSIZED 255u
static inline uint8_t pcpu__live_mark(size_t bits)
{
    if (bits < 128)
        return (uint8_t)bits;
    if (bits % 16 == 0 && bits / 16 < PCPU_LIVE_UNSIZED - 127)
        return (uint8_t)(127 + bits / 16);
    return PCPU_LIVE_UNSIZED;
}
/* The size a nonzero mark says; 0 if it does not (then the end map does). */
static inline size_t pcpu__live_mark_bits(unsigned int mark)
{
    if (mark < 128)
        return mark;
    return mark < PCPU_LIVE_UNSIZED ? (mark - 127) * (size_t)16 : 0;
}
/* Mark the allocation at bit, of bits granules, handed to the user.
 * Release: a thread-cache pop (its count decrement) before it must be
 * visible first, so that a fork() snapshot never shows an object both live
 * and still cached (the child would flush a live object). */
static inline void pcpu__live_set(const struct pcpu_chunk *c, size_t bit, uint8_t mark)
{
    pcpu_assert_internal(!pcpu__live_test(c, bit));
    pcpu_assert_internal(mark != 0);
    __atomic_store_n(&c->live[bit], mark, __ATOMIC_RELEASE);
}
/* Take the allocation at bit back from the user (live_take: known live);
 * false if it was not live (a double free, or not an allocation start). */
static inline void pcpu__live_unset(const struct pcpu_chunk *c, size_t bit)
{
    __atomic_store_n(&c->live[bit], 0, __ATOMIC_RELAXED);
}
static inline bool pcpu__live_unset_checked(const struct pcpu_chunk *c, size_t bit)
{
    if (unlikely(!pcpu__live_test(c, bit)))
        return false;
    pcpu__live_unset(c, bit);
    return true;
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

#endif
