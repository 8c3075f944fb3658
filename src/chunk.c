/* SPDX-License-Identifier: MIT */
/*
 * chunk.c - the allocation map inside one chunk.
 *
 * Each chunk's unit is divided into 4-byte granules, one bit each in
 * alloc_map.  The same offsets are used in every unit, so one map serves
 * all of them.  An allocation of n granules sets n bits in alloc_map, its
 * first granule in start_map and its last in end_map (so a free needs no
 * size and can tell a real start from an interior pointer), and a live
 * mark (a byte per granule) says whether the user holds it (thread caches
 * hold allocations that are in the map but not live).
 *
 * Searching a bitmap from the start would cost more as the chunk fills, so
 * every page of the unit (a "block") carries hints: its longest free run,
 * the free bits at its start and end, and its free count.  A search walks
 * block hints from the first block with free space and only looks at the
 * bits of a block whose hints say the request fits, or joins a run across
 * block edges using the left/right hints.  The cost of a claim is bounded
 * by the number of blocks, never by the number of live allocations.
 *
 * Blocks are grouped by PCPU_GROUP_BLOCKS with a second level of the same
 * hints (longest run and where it starts, free bits at each edge), so a
 * search skips a group in one step when nothing in it fits, and a run
 * carried in from the left is settled at the group's edge; a change only
 * marks its group dirty, and the next search that reaches the group
 * measures it again from the block hints.  Group hints fit in 32 bits
 * because a unit is at most 1 GiB (2^28 granules).
 *
 * The chunk keeps an upper bound of its largest free run (contig_bits) to
 * choose its slot; claims may leave it too high (contig_stale), and the
 * pool refreshes it from the block hints when a search comes back empty.
 * The chunk counts its own populated and empty pages; the pool keeps the
 * totals from the changes it sees.  Everything here runs with the
 * allocator lock held.
 */
#include "chunk.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "os.h"

static inline size_t block_bits(void)
{
    return pcpu__page_size / PCPU_GRANULE;
}

static inline size_t block_len(const struct pcpu_chunk *c, size_t b)
{
    size_t lo = b * block_bits();
    size_t hi = lo + block_bits();
    return (hi > c->nr_bits ? c->nr_bits : hi) - lo;
}

/* Longest run of set bits in x, and where it starts (0 if x == 0). */
static unsigned int longest_ones(uint64_t x, unsigned int *start)
{
    unsigned int len = 0;
    uint64_t last = 0;
    /* After k steps a bit is set where a run of k+1 ones ends. */
    while (x) {
        last = x;
        x &= x << 1;
        len++;
    }
    if (len)
        *start = (unsigned int)__builtin_ctzll(last) - (len - 1);
    return len;
}

/* One block's hints from the map, given its free count (which callers
 * keep up to date incrementally: counting bits is the expensive part).
 * Works a word at a time, so a block riddled with small holes costs the
 * same as a clean one. */
static struct pcpu_block_hint compute_block_hint_nfree(const struct pcpu_chunk *c, size_t b, size_t nfree)
{
    size_t lo = b * block_bits(), len = block_len(c, b), hi = lo + len;
    if (nfree == len)
        return (struct pcpu_block_hint){len, len, len, len, 0};
    if (nfree == 0)
        return (struct pcpu_block_hint){0, 0, 0, 0, 0};
    struct pcpu_block_hint h = {.nfree = (uint32_t)nfree};
    size_t best = 0, best_start = 0, run = 0, run_start = lo;
    bool seen_used = false;
    /* Blocks start on word boundaries; only the last block of a map that
     * ends inside a page (the reserved area's) ends inside a word, and
     * there the bits past its end are neither used nor free: a free run
     * that reaches the end is the block's right edge, not an inner run. */
    for (size_t w = lo / 64; w * 64 < hi; w++) {
        size_t base = w * 64;
        unsigned int valid = hi - base < 64 ? (unsigned int)(hi - base) : 64;
        uint64_t vmask = valid == 64 ? ~0ull : (1ull << valid) - 1;
        uint64_t used = __atomic_load_n(&c->alloc_map[w], __ATOMIC_RELAXED) & vmask;
        if (used == 0) {
            if (!run)
                run_start = base;
            run += valid;
            continue;
        }
        unsigned int low = (unsigned int)__builtin_ctzll(used);
        unsigned int high = (unsigned int)__builtin_clzll(used) - (64 - valid);
        if (!run)
            run_start = base;
        run += low;
        if (!seen_used) {
            h.left = (uint32_t)run;
            seen_used = true;
        }
        if (run > best) {
            best = run;
            best_start = run_start;
        }
        /* Free runs strictly inside the word's valid part. */
        uint64_t inner = ~used & vmask;
        inner &= ~0ull << low;
        if (high)
            inner &= vmask >> high;
        unsigned int at = 0;
        unsigned int n = longest_ones(inner, &at);
        if (n > best) {
            best = n;
            best_start = base + at;
        }
        run = high;
        run_start = base + valid - high;
    }
    h.right = (uint32_t)run;
    if (run > best) {
        best = run;
        best_start = run_start;
    }
    h.contig = (uint32_t)best;
    h.contig_start = (uint32_t)(best_start - lo);
    return h;
}

static struct pcpu_block_hint compute_block_hint(const struct pcpu_chunk *c, size_t b)
{
    size_t lo = b * block_bits(), len = block_len(c, b);
    return compute_block_hint_nfree(c, b, len - pcpu__count_set(c->alloc_map, lo, lo + len));
}

/* One live mark per granule, rounded up to whole words for the scans. */
static size_t nr_live_bytes(const struct pcpu_chunk *c)
{
    return pcpu__words(c->nr_bits) * 64;
}

struct pcpu_chunk *pcpu__chunk_alloc_meta(size_t nr_bits, size_t start_bit, size_t end_bit)
{
    size_t words = pcpu__words(nr_bits);
    size_t pages = (nr_bits + block_bits() - 1) / block_bits();
    struct pcpu_chunk *c = pcpu__meta_calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->nr_bits = nr_bits;
    c->nr_pages = pages;
    c->start_bit = start_bit;
    c->end_bit = end_bit;
    c->meta_bytes = sizeof(*c);
    uint64_t **maps[] = {&c->alloc_map, &c->start_map, &c->end_map, &c->populated};
    size_t counts[] = {words, words, words, pcpu__words(pages)};
    for (size_t i = 0; i < sizeof(maps) / sizeof(maps[0]); i++) {
        *maps[i] = pcpu__meta_calloc(counts[i], sizeof(uint64_t));
        if (!*maps[i]) {
            pcpu__chunk_free_meta(c);
            return NULL;
        }
        c->meta_bytes += counts[i] * sizeof(uint64_t);
    }
    /* Zeroed pages from the OS for the big ones: only the parts whose
     * granules are ever handed out become resident. */
    c->live = pcpu__meta_calloc(nr_live_bytes(c), 1);
    if (!c->live) {
        pcpu__chunk_free_meta(c);
        return NULL;
    }
    c->meta_bytes += nr_live_bytes(c);
    c->block_hints = pcpu__meta_calloc(pages, sizeof(*c->block_hints));
    c->nr_groups = (pages + PCPU_GROUP_BLOCKS - 1) / PCPU_GROUP_BLOCKS;
    c->group_hints = pcpu__meta_calloc(c->nr_groups, sizeof(*c->group_hints));
    c->group_hint_stale = pcpu__meta_calloc(pcpu__words(c->nr_groups), sizeof(uint64_t));
    if (!c->block_hints || !c->group_hints || !c->group_hint_stale) {
        pcpu__chunk_free_meta(c);
        return NULL;
    }
    c->meta_bytes += pages * sizeof(*c->block_hints) + c->nr_groups * sizeof(*c->group_hints) +
                     pcpu__words(c->nr_groups) * sizeof(uint64_t);
    pcpu__set_range(c->group_hint_stale, 0, c->nr_groups);

    /* Granules outside [start_bit, end_bit) are hidden: permanently
     * allocated, so searches and merges stop at the region's edges. */
    if (start_bit)
        pcpu__set_range(c->alloc_map, 0, start_bit);
    if (end_bit < nr_bits)
        pcpu__set_range(c->alloc_map, end_bit, nr_bits - end_bit);
    for (size_t b = 0; b < pages; b++)
        c->block_hints[b] = compute_block_hint(c, b);
    c->free_bits = end_bit - start_bit;
    c->contig_bits = c->free_bits;
    c->contig_start = start_bit;
    c->first_free_block = start_bit / block_bits();
    return c;
}

_Atomic unsigned long pcpu__chunk_gen;

void pcpu__chunk_free_meta(struct pcpu_chunk *c)
{
    if (!c)
        return;
    atomic_fetch_add_explicit(&pcpu__chunk_gen, 1, memory_order_release);
    size_t words = pcpu__words(c->nr_bits);
    pcpu__meta_free(c->alloc_map, words * 8);
    pcpu__meta_free(c->start_map, words * 8);
    pcpu__meta_free(c->end_map, words * 8);
    pcpu__meta_free(c->live, nr_live_bytes(c));
    pcpu__meta_free(c->populated, pcpu__words(c->nr_pages) * 8);
    pcpu__meta_free(c->block_hints, c->nr_pages * sizeof(*c->block_hints));
    pcpu__meta_free(c->group_hints, c->nr_groups * sizeof(*c->group_hints));
    pcpu__meta_free(c->group_hint_stale, pcpu__words(c->nr_groups) * sizeof(uint64_t));
    pcpu__meta_free(c, sizeof(*c));
}

bool pcpu__chunk_page_empty(const struct pcpu_chunk *c, size_t page)
{
    return c->block_hints[page].nfree == block_bits();
}

static void account_empty(struct pcpu_chunk *c, size_t b, bool was_empty)
{
    bool now = pcpu__chunk_page_empty(c, b);
    if (now == was_empty || !pcpu__test_bit(c->populated, b))
        return;
    if (now)
        c->nr_empty_populated++;
    else
        c->nr_empty_populated--;
}

/* Refresh the hints of the blocks covering [bit, bit+n) after the map
 * changed there; blocks entirely inside the range are all-set or all-clear. */
/* Update block b's hints after [a, z) (inside the block) was freed: the
 * freed bits join one run; runs only grow, so only that run can become
 * the longest or reach the block's edges.  Returns that run's bounds in
 * *start and *end.  The hints from before the free usually say where the
 * neighbouring free runs end (a run from the block's start, the longest
 * run, or one reaching its end), so a scan of the map is the exception;
 * frees in address order, the common bulk case, never scan. */
static void md_after_free(struct pcpu_chunk *c, size_t b, size_t a, size_t z, size_t *start,
                          size_t *end)
{
    struct pcpu_block_hint *h = &c->block_hints[b];
    size_t lo = b * block_bits(), len = block_len(c, b), hi = lo + len;
    size_t cs = lo + h->contig_start, ce = cs + h->contig;
    size_t s, e;
    if (h->left >= a - lo)
        s = lo;
    else if (h->contig && ce == a)
        s = cs;
    else {
        size_t p = pcpu__prev_set(c->alloc_map, lo, a);
        s = p == SIZE_MAX ? lo : p + 1;
    }
    if (h->right >= hi - z)
        e = hi;
    else if (h->contig && cs == z)
        e = ce;
    else
        e = pcpu__next_set(c->alloc_map, z, hi);
    *start = s;
    *end = e;
    h->nfree += (uint32_t)(z - a);
    if (h->nfree == len) {
        *h = (struct pcpu_block_hint){len, len, len, len, 0};
        return;
    }
    if (s == lo)
        h->left = (uint32_t)(e - lo);
    if (e == hi)
        h->right = (uint32_t)(hi - s);
    if (e - s > h->contig) {
        h->contig = (uint32_t)(e - s);
        h->contig_start = (uint32_t)(s - lo);
    }
}

/* Update block b's hints after [a, z) (inside the block) was claimed.  Only
 * a claim that cuts into the longest run needs the block measured again. */
static void md_after_claim(struct pcpu_chunk *c, size_t b, size_t a, size_t z)
{
    struct pcpu_block_hint *h = &c->block_hints[b];
    size_t lo = b * block_bits(), len = block_len(c, b), hi = lo + len;
    size_t nfree = h->nfree - (z - a);
    size_t cs = lo + h->contig_start;
    if (nfree == 0 || (a < cs + h->contig && cs < z)) {
        *h = compute_block_hint_nfree(c, b, nfree);
        return;
    }
    h->nfree = (uint32_t)nfree;
    if (a < lo + h->left)
        h->left = (uint32_t)(a - lo);
    if (z > hi - h->right)
        h->right = (uint32_t)(hi - z);
}

/* Refresh the hints of the blocks covering [bit, bit+n) after the map
 * changed there; blocks entirely inside the range are all-set or
 * all-clear.  After a free, *run_lo and *run_hi get the bounds of the free
 * run that now holds [bit, bit+n) within its first and last blocks. */
static void refresh_range(struct pcpu_chunk *c, size_t bit, size_t n, bool allocated,
                          size_t *run_lo, size_t *run_hi)
{
    size_t b0 = bit / block_bits(), b1 = (bit + n - 1) / block_bits();
    for (size_t g = b0 / PCPU_GROUP_BLOCKS; g <= b1 / PCPU_GROUP_BLOCKS; g++)
        pcpu__set_bit(c->group_hint_stale, g);
    for (size_t b = b0; b <= b1; b++) {
        bool was_empty = pcpu__chunk_page_empty(c, b);
        size_t lo = b * block_bits(), len = block_len(c, b);
        if (b != b0 && b != b1 && bit <= lo && lo + len <= bit + n) {
            uint32_t v = allocated ? 0 : (uint32_t)len;
            c->block_hints[b] = (struct pcpu_block_hint){v, v, v, v, 0};
        } else {
            size_t a = bit > lo ? bit : lo;
            size_t z = bit + n < lo + len ? bit + n : lo + len;
            size_t s, e;
            if (allocated) {
                md_after_claim(c, b, a, z);
            } else {
                md_after_free(c, b, a, z, &s, &e);
                if (b == b0)
                    *run_lo = s;
                if (b == b1)
                    *run_hi = e;
            }
        }
        account_empty(c, b, was_empty);
    }
}

void pcpu__chunk_set_populated(struct pcpu_chunk *c, size_t page, bool on)
{
    if (pcpu__test_bit(c->populated, page) == on)
        return;
    if (on)
        pcpu__set_bit(c->populated, page);
    else
        pcpu__clear_bit(c->populated, page);
    long d = on ? 1 : -1;
    c->nr_populated += d;
    if (pcpu__chunk_page_empty(c, page))
        c->nr_empty_populated += d;
}

/* Claim [p, p + n*count) as count allocations of n bits each. */
static void mark_allocated(struct pcpu_chunk *c, size_t p, size_t n, size_t count)
{
    pcpu__set_range(c->alloc_map, p, n * count);
    for (size_t i = 0; i < count; i++) {
        pcpu__set_bit(c->start_map, p + i * n);
        pcpu__set_bit(c->end_map, p + i * n + n - 1);
    }
    n *= count;
    refresh_range(c, p, n, true, NULL, NULL);
    c->free_bits -= n;
    c->nr_alloc += count;
    while (c->first_free_block < c->nr_pages && c->block_hints[c->first_free_block].nfree == 0)
        c->first_free_block++;
    /* Claiming out of the largest run leaves the hint too high. */
    if (p < c->contig_start + c->contig_bits && c->contig_start < p + n)
        c->contig_stale = true;
    if (c->contig_bits > c->free_bits)
        c->contig_bits = c->free_bits;
}

/* Free runs of a span of the map (a block, a group, a chunk): its length,
 * the free bits at each edge and its longest free run (the first one of
 * that length, start in chunk bits). */
struct span_hint {
    size_t len, left, right, contig, contig_start;
};

/* Extend acc by q, the span that starts right where acc ends (at q_lo). */
static void span_append(struct span_hint *acc, const struct span_hint *q, size_t q_lo)
{
    if (acc->len == 0) {
        *acc = *q;
        return;
    }
    size_t cross = acc->right + q->left;
    if (cross > acc->contig) {
        acc->contig = cross;
        acc->contig_start = q_lo - acc->right;
    }
    if (q->contig > acc->contig) {
        acc->contig = q->contig;
        acc->contig_start = q->contig_start;
    }
    if (acc->left == acc->len)
        acc->left += q->left;
    acc->right = q->right == q->len ? acc->right + q->len : q->right;
    acc->len += q->len;
}

static struct span_hint block_span(const struct pcpu_chunk *c, size_t b)
{
    const struct pcpu_block_hint *h = &c->block_hints[b];
    size_t lo = b * block_bits();
    return (struct span_hint){block_len(c, b), h->left, h->right, h->contig,
                            lo + h->contig_start};
}

/* Blocks [b0, b1) summed up from their hints. */
static struct span_hint summarize(const struct pcpu_chunk *c, size_t b0, size_t b1)
{
    struct span_hint acc = {0, 0, 0, 0, b0 * block_bits()};
    for (size_t b = b0; b < b1; b++) {
        struct span_hint q = block_span(c, b);
        span_append(&acc, &q, b * block_bits());
    }
    return acc;
}

static inline size_t group_end(const struct pcpu_chunk *c, size_t g)
{
    size_t b1 = (g + 1) * PCPU_GROUP_BLOCKS;
    return b1 < c->nr_pages ? b1 : c->nr_pages;
}

static const struct pcpu_group_hint *group_hint(struct pcpu_chunk *c, size_t g)
{
    if (pcpu__test_bit(c->group_hint_stale, g)) {
        struct span_hint s = summarize(c, g * PCPU_GROUP_BLOCKS, group_end(c, g));
        c->group_hints[g] = (struct pcpu_group_hint){(uint32_t)s.contig, (uint32_t)s.contig_start,
                                           (uint32_t)s.left, (uint32_t)s.right};
        pcpu__clear_bit(c->group_hint_stale, g);
    }
    return &c->group_hints[g];
}

size_t pcpu__chunk_claim(struct pcpu_chunk *c, size_t piece, size_t count, size_t align,
                         bool thorough)
{
    size_t n = piece * count;
    if (thorough ? n > c->contig_bits : !pcpu__chunk_may_fit(c, n, align))
        return SIZE_MAX;
    size_t bb = block_bits();
    size_t carry = SIZE_MAX; /* start of a free run reaching this block */
    size_t p;
    for (size_t b = c->first_free_block; b < c->nr_pages; b++) {
        if (b % PCPU_GROUP_BLOCKS == 0) {
            /* At a group's start, its hints decide in one step whether a
             * carried run ends in it and whether its blocks need a look. */
            size_t g = b / PCPU_GROUP_BLOCKS, end = group_end(c, g);
            const struct pcpu_group_hint *gh = group_hint(c, g);
            size_t glo = b * bb, ghi = (end - 1) * bb + block_len(c, end - 1);
            if (carry != SIZE_MAX) {
                p = (carry + align - 1) & ~(align - 1);
                if (p + n <= glo + gh->left)
                    goto found;
                if (gh->left == ghi - glo) {
                    b = end - 1; /* the run goes on through the group */
                    continue;
                }
                carry = SIZE_MAX;
            }
            if (gh->contig < n) {
                carry = gh->right ? ghi - gh->right : SIZE_MAX;
                b = end - 1;
                continue;
            }
        }
        const struct pcpu_block_hint *h = &c->block_hints[b];
        size_t lo = b * bb, len = block_len(c, b), hi = lo + len;
        if (carry != SIZE_MAX) {
            if (h->left == len)
                continue;
            p = (carry + align - 1) & ~(align - 1);
            if (p + n <= lo + h->left)
                goto found;
            carry = SIZE_MAX;
        }
        bool fits = pcpu__run_fits(lo + h->contig_start, h->contig, n, align);
        if (h->contig >= n && (fits || thorough)) {
            /* Small requests take the first hole that fits (holes get
             * reused); larger ones go straight to the run known to fit
             * instead of walking every small hole before it. */
            size_t from = n >= 16 && fits ? lo + h->contig_start : lo;
            p = pcpu__find_zero_area(c->alloc_map, from, hi, n, align);
            if (p != SIZE_MAX)
                goto found;
        }
        if (h->left == len)
            carry = lo;
        else if (h->right)
            carry = hi - h->right;
    }
    if (carry != SIZE_MAX) {
        p = (carry + align - 1) & ~(align - 1);
        if (p + n <= c->nr_bits)
            goto found;
    }
    return SIZE_MAX;
found:
    pcpu_assert_internal(pcpu__next_set(c->alloc_map, p, p + n) == p + n);
    mark_allocated(c, p, piece, count);
    return p;
}

size_t pcpu__chunk_alloc_bits(const struct pcpu_chunk *c, size_t bit)
{
    size_t e = pcpu__next_set(c->end_map, bit, c->nr_bits);
    pcpu_assert(e < c->nr_bits);
    return e - bit + 1;
}

/* How many whole free blocks a merge looks across before giving up and
 * keeping an upper bound instead: freeing must not cost a walk over the
 * whole chunk. */
#define MERGE_BLOCKS 4

/* First free bit of the free run that ends just before bit; SIZE_MAX if
 * the walk gave up. */
static size_t run_start(const struct pcpu_chunk *c, size_t lo)
{
    size_t bb = block_bits();
    if (lo % bb)
        return lo;
    size_t b = lo / bb;
    for (unsigned int k = 0; b > 0; k++) {
        if (k == MERGE_BLOCKS)
            return SIZE_MAX;
        b--;
        const struct pcpu_block_hint *h = &c->block_hints[b];
        if (h->nfree != block_len(c, b))
            return b * bb + block_len(c, b) - h->right;
    }
    return 0;
}

/* The end of the free run that reaches hi (the end of a block's run);
 * SIZE_MAX if the walk gave up. */
static size_t run_end(const struct pcpu_chunk *c, size_t hi)
{
    size_t bb = block_bits();
    if (hi >= c->nr_bits)
        return c->nr_bits;
    if (hi % bb)
        return hi;
    size_t b = hi / bb - 1;
    for (unsigned int k = 0; ++b < c->nr_pages; k++) {
        if (k == MERGE_BLOCKS)
            return SIZE_MAX;
        const struct pcpu_block_hint *h = &c->block_hints[b];
        if (h->nfree != block_len(c, b))
            return b * bb + h->left;
    }
    return c->nr_bits;
}

void pcpu__chunk_release_run(struct pcpu_chunk *c, size_t bit, size_t n, size_t count)
{
    pcpu_assert(pcpu__test_bit(c->start_map, bit));
    pcpu_assert(pcpu__test_bit(c->end_map, bit + n - 1));
    pcpu_assert_internal(pcpu__count_set(c->alloc_map, bit, bit + n) == n);
    pcpu_assert_internal(pcpu__count_set(c->start_map, bit, bit + n) == count);
    pcpu__clear_range(c->alloc_map, bit, n);
    if (count == 1) {
        pcpu__clear_bit(c->start_map, bit);
        pcpu__clear_bit(c->end_map, bit + n - 1);
    } else {
        pcpu__clear_range(c->start_map, bit, n);
        pcpu__clear_range(c->end_map, bit, n);
    }
    size_t run_lo = bit, run_hi = bit + n;
    refresh_range(c, bit, n, false, &run_lo, &run_hi);
    c->free_bits += n;
    c->nr_alloc -= count;
    if (bit / block_bits() < c->first_free_block)
        c->first_free_block = bit / block_bits();
    size_t lo = run_start(c, run_lo), hi = run_end(c, run_hi);
    if (lo == SIZE_MAX || hi == SIZE_MAX) {
        /* A big free area: assume the most, refresh on a failed search. */
        c->contig_bits = c->free_bits;
        c->contig_stale = true;
    } else if (hi - lo > c->contig_bits) {
        /* Larger than even the upper bound: this run is the largest. */
        c->contig_bits = hi - lo;
        c->contig_start = lo;
        c->contig_stale = false;
    }
}

void pcpu__chunk_refresh_contig(struct pcpu_chunk *c)
{
    /* From the group hints: the blocks of clean groups are not read. */
    struct span_hint s = {0, 0, 0, 0, 0};
    for (size_t g = 0; g < c->nr_groups; g++) {
        const struct pcpu_group_hint *gh = group_hint(c, g);
        size_t b0 = g * PCPU_GROUP_BLOCKS, end = group_end(c, g);
        size_t glo = b0 * block_bits();
        struct span_hint q = {(end - 1) * block_bits() + block_len(c, end - 1) - glo, gh->left,
                            gh->right, gh->contig, gh->contig_start};
        span_append(&s, &q, glo);
    }
    c->contig_bits = s.contig;
    c->contig_start = s.contig_start;
    c->contig_stale = false;
}

#define CHECK(cond, ...)                                                                   \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            fprintf(stderr, "percpu: validate: chunk %p: ", (void *)c->base);             \
            fprintf(stderr, __VA_ARGS__);                                                  \
            fputc('\n', stderr);                                                           \
            problems++;                                                                    \
        }                                                                                  \
    } while (0)

/* Block b's hints against a bit-by-bit reference, independent of the
 * word-level code. */
static int validate_block(const struct pcpu_chunk *c, size_t b)
{
    int problems = 0;
    size_t bb = block_bits();
    size_t lo = b * bb, len = block_len(c, b), ref_free = 0, ref_left = 0, ref_right = 0,
           ref_contig = 0, cur = 0;
    bool in_left = true;
    for (size_t i = lo; i < lo + len; i++) {
        if (pcpu__test_bit(c->alloc_map, i)) {
            in_left = false;
            cur = 0;
            continue;
        }
        ref_free++;
        cur++;
        if (in_left)
            ref_left++;
        if (cur > ref_contig)
            ref_contig = cur;
    }
    ref_right = cur;
    const struct pcpu_block_hint *h = &c->block_hints[b];
    CHECK(h->nfree == ref_free && h->left == ref_left && h->right == ref_right &&
              h->contig == ref_contig,
          "block %zu hints {contig %u, left %u, right %u, free %u} should be {%zu,%zu,%zu,%zu}",
          b, h->contig, h->left, h->right, h->nfree, ref_contig, ref_left, ref_right,
          ref_free);
    if (h->contig) {
        size_t cs = lo + h->contig_start;
        CHECK(cs + h->contig <= lo + len &&
                  pcpu__next_set(c->alloc_map, cs, cs + h->contig) == cs + h->contig,
              "block %zu: longest run at %u is not free", b, h->contig_start);
    }
    if (b < c->first_free_block)
        CHECK(c->block_hints[b].nfree == 0, "block %zu has free bits before first_free_block %zu", b,
              c->first_free_block);
    if (h->contig)
        CHECK(c->contig_bits >= h->contig, "contig hint %zu below block %zu's run %u",
              c->contig_bits, b, h->contig);
    return problems;
}

static int validate_group(const struct pcpu_chunk *c, size_t g)
{
    int problems = 0;
    if (pcpu__test_bit(c->group_hint_stale, g))
        return 0;
    struct span_hint s = summarize(c, g * PCPU_GROUP_BLOCKS, group_end(c, g));
    const struct pcpu_group_hint *gh = &c->group_hints[g];
    CHECK(gh->contig == s.contig && gh->left == s.left && gh->right == s.right &&
              (!s.contig || gh->contig_start == s.contig_start),
          "group %zu hints {contig %u at %u, left %u, right %u} should be "
          "{%zu at %zu, %zu, %zu}",
          g, gh->contig, gh->contig_start, gh->left, gh->right, s.contig, s.contig_start, s.left,
          s.right);
    return problems;
}

/* The allocation at bit (a start) ends, does not overlap another, is fully
 * marked and populated; *end gets its last bit (or end_bit). */
static int validate_alloc(const struct pcpu_chunk *c, size_t pos, size_t *end)
{
    int problems = 0;
    size_t bb = block_bits();
    size_t e = pcpu__next_set(c->end_map, pos, c->end_bit);
    *end = e;
    CHECK(e < c->end_bit, "allocation at bit %zu has no end", pos);
    if (e >= c->end_bit)
        return problems;
    CHECK(pcpu__next_set(c->start_map, pos + 1, e + 1) == e + 1,
          "allocation at bit %zu overlaps another", pos);
    CHECK(pcpu__count_set(c->alloc_map, pos, e + 1) == e + 1 - pos,
          "allocation at bit %zu not fully marked", pos);
    if (c->populated && !c->is_reserved) {
        for (size_t pg = pos / bb; pg <= e / bb; pg++)
            CHECK(pcpu__test_bit(c->populated, pg), "allocation at bit %zu on unpopulated page %zu",
                  pos, pg);
    }
    return problems;
}

int pcpu__chunk_validate_range(const struct pcpu_chunk *c, size_t bit, size_t n)
{
    int problems = 0;
    size_t bb = block_bits();
    CHECK(c->free_bits <= c->end_bit - c->start_bit, "free_bits %zu above the region's %zu",
          c->free_bits, c->end_bit - c->start_bit);
    if (n == 0 || bit >= c->nr_bits)
        return problems;
    if (bit + n > c->nr_bits)
        n = c->nr_bits - bit;
    /* The neighbouring blocks too: a free merges runs across edges. */
    size_t b0 = bit / bb, b1 = (bit + n - 1) / bb;
    b0 = b0 ? b0 - 1 : 0;
    b1 = b1 + 1 < c->nr_pages ? b1 + 1 : c->nr_pages - 1;
    for (size_t b = b0; b <= b1; b++)
        problems += validate_block(c, b);
    for (size_t g = b0 / PCPU_GROUP_BLOCKS; g <= b1 / PCPU_GROUP_BLOCKS; g++)
        problems += validate_group(c, g);
    if (bit >= c->start_bit && bit < c->end_bit && pcpu__test_bit(c->start_map, bit)) {
        size_t e;
        problems += validate_alloc(c, bit, &e);
    }
    return problems;
}

int pcpu__chunk_validate(const struct pcpu_chunk *c)
{
    int problems = 0;
    CHECK(c->start_bit <= c->end_bit && c->end_bit <= c->nr_bits, "bad region");
    CHECK(pcpu__count_set(c->alloc_map, 0, c->start_bit) == c->start_bit,
          "hidden head not allocated");
    CHECK(pcpu__count_set(c->alloc_map, c->end_bit, c->nr_bits) == c->nr_bits - c->end_bit,
          "hidden tail not allocated");
    size_t used = pcpu__count_set(c->alloc_map, c->start_bit, c->end_bit);
    CHECK(c->free_bits + used == c->end_bit - c->start_bit, "free_bits %zu but %zu used of %zu",
          c->free_bits, used, c->end_bit - c->start_bit);
    for (size_t b = 0; b < c->nr_pages; b++)
        problems += validate_block(c, b);
    for (size_t g = 0; g < c->nr_groups; g++)
        problems += validate_group(c, g);
    /* The chunk's hint against the blocks (refresh_contig reads groups). */
    struct span_hint all = summarize(c, 0, c->nr_pages);
    CHECK(c->contig_bits >= all.contig, "contig hint %zu below real %zu", c->contig_bits,
          all.contig);
    if (!c->contig_stale)
        CHECK(c->contig_bits == all.contig, "contig hint %zu not exact (%zu)", c->contig_bits,
              all.contig);
    /* Walk the allocations: starts, ends and live bits agree. */
    size_t nr = 0, pos = c->start_bit, covered = 0;
    while ((pos = pcpu__next_set(c->start_map, pos, c->end_bit)) < c->end_bit) {
        size_t e;
        problems += validate_alloc(c, pos, &e);
        if (e >= c->end_bit)
            break;
        covered += e + 1 - pos;
        nr++;
        pos = e + 1;
    }
    CHECK(nr == c->nr_alloc, "nr_alloc %zu but %zu allocations in the map", c->nr_alloc, nr);
    CHECK(covered == used, "%zu bits allocated but allocations cover %zu", used, covered);
    for (size_t bit = 0; bit < c->nr_bits; bit++) {
        unsigned int mark = __atomic_load_n(&c->live[bit], __ATOMIC_RELAXED);
        if (!mark)
            continue;
        if (!pcpu__test_bit(c->start_map, bit)) {
            CHECK(false, "live mark %zu is not an allocation start", bit);
            continue;
        }
        size_t said = pcpu__live_mark_bits(mark);
        CHECK(!said || said == pcpu__chunk_alloc_bits(c, bit),
              "live mark %zu says %zu granules, the map %zu", bit, said,
              pcpu__chunk_alloc_bits(c, bit));
    }
    if (c->populated && !c->is_reserved) {
        size_t pop = 0, empty = 0;
        for (size_t pg = 0; pg < c->nr_pages; pg++) {
            if (pcpu__test_bit(c->populated, pg)) {
                pop++;
                if (pcpu__chunk_page_empty(c, pg))
                    empty++;
            }
        }
        CHECK(pop == c->nr_populated, "nr_populated %zu but %zu pages populated",
              c->nr_populated, pop);
        CHECK(empty == c->nr_empty_populated, "nr_empty_populated %zu but %zu", c->nr_empty_populated, empty);
    }
    return problems;
}

static int freed_cmp(const void *a, const void *b)
{
    const struct pcpu_freed *x = a, *y = b;
    if (x->chunk != y->chunk)
        return (uintptr_t)x->chunk < (uintptr_t)y->chunk ? -1 : 1;
    return x->cookie < y->cookie ? -1 : x->cookie > y->cookie;
}

static bool freed_sorted(const struct pcpu_freed *o, size_t n)
{
    for (size_t i = 1; i < n; i++)
        if (freed_cmp(&o[i - 1], &o[i]) > 0)
            return false;
    return true;
}

void pcpu__freed_sort(struct pcpu_freed *o, size_t n)
{
    if (n > 32) {
        /* Batches usually come in runs: objects freed in the order they
         * were handed out, which a thread cache hands out last-in first-out
         * from runs taken in address order.  Turning descending runs
         * around is often all the sorting there is to do. */
        if (freed_sorted(o, n))
            return;
        for (size_t i = 0; i < n;) {
            size_t j = i + 1;
            while (j < n && freed_cmp(&o[j - 1], &o[j]) > 0)
                j++;
            for (size_t a = i, b = j - 1; a < b; a++, b--) {
                struct pcpu_freed t = o[a];
                o[a] = o[b];
                o[b] = t;
            }
            i = j;
        }
        if (!freed_sorted(o, n))
            qsort(o, n, sizeof(*o), freed_cmp);
        return;
    }
    for (size_t i = 1; i < n; i++) {
        struct pcpu_freed x = o[i];
        size_t j = i;
        while (j > 0 && (o[j - 1].chunk > x.chunk ||
                         (o[j - 1].chunk == x.chunk && o[j - 1].cookie > x.cookie))) {
            o[j] = o[j - 1];
            j--;
        }
        o[j] = x;
    }
}
