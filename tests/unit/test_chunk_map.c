/* SPDX-License-Identifier: MIT */
/* test_chunk_map.c - a chunk's allocation map, its block and group hints and its page counts agree with a reference model through random claims and releases. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "chunk.h"
#include "tcache.h"
#include "os.h"
#include "unit_rand.h"
#include "../testutil.h" /* TU_STEPS: fewer steps under the sanitizers */

/*
 * The model keeps one byte per granule (allocated or hidden), the length
 * of every allocation at its first granule, the used granules of every
 * page and which pages are populated.  Every claim is checked against it
 * (a free, aligned run inside the region, or SIZE_MAX only when the model
 * has no such run), and the chunk's counters and hints are compared with
 * it and with pcpu__chunk_validate(), whose own bit-by-bit checks of the
 * block and group hints are the reference for the hints.
 *
 * The test plays the pool: it populates the pages under every claim (as
 * populate_range does) and now and then depopulates empty pages or
 * populates free ones (as balancing does).  chunk.c reads only
 * pcpu__page_size, which each map sets before it is created.
 */

struct model {
    const char *name;
    struct pcpu_chunk *c;
    size_t nr_bits, start_bit, end_bit, bb, nr_pages;
    size_t meta_before;
    unsigned char *used;   /* 1 = allocated or hidden                   */
    uint32_t *len_at;      /* allocation length at its first granule    */
    unsigned char *live;   /* live bit set by the test (at starts)      */
    size_t *page_used;     /* used granules per page (hidden included)  */
    unsigned char *pop;    /* populated pages                           */
    size_t *starts;        /* first granules of the allocations         */
    size_t nr_allocs;
    size_t free_bits;
    size_t step;
    bool quick;            /* skip the per-step checks (bulk set-up)    */
    size_t claims, failed_claims, misses, misses_unaligned, fast_misses;
    char first_miss[512];
};

/* The model a test is working on, for the teardown of a failed test. */
static struct model *current_model;

static size_t page_len(const struct model *m, size_t pg)
{
    size_t lo = pg * m->bb;
    return lo + m->bb <= m->nr_bits ? m->bb : m->nr_bits - lo;
}

/* What pcpu__chunk_page_empty() must say: a whole page with nothing used
 * (hidden granules count as used; a page cut short by the map's end is
 * shared with what follows it and never empty). */
static bool ref_page_empty(const struct model *m, size_t pg)
{
    return page_len(m, pg) == m->bb && m->page_used[pg] == 0;
}

static void model_init(struct model *m, const char *name, size_t page_size, size_t nr_bits,
                       size_t start_bit, size_t end_bit)
{
    memset(m, 0, sizeof(*m));
    m->name = name;
    pcpu__page_size = page_size;
    m->bb = page_size / PCPU_GRANULE;
    m->nr_bits = nr_bits;
    m->start_bit = start_bit;
    m->end_bit = end_bit;
    m->nr_pages = (nr_bits + m->bb - 1) / m->bb;
    m->meta_before = atomic_load(&pcpu__meta_bytes);
    m->c = pcpu__chunk_alloc_meta(nr_bits, start_bit, end_bit);
    assert_non_null(m->c);
    current_model = m;
    struct pcpu_chunk *c = m->c;
    assert_int_equal(c->meta_bytes, atomic_load(&pcpu__meta_bytes) - m->meta_before);
    m->used = calloc(nr_bits, 1);
    m->len_at = calloc(nr_bits, sizeof(*m->len_at));
    m->live = calloc(nr_bits, 1);
    m->page_used = calloc(m->nr_pages, sizeof(*m->page_used));
    m->pop = calloc(m->nr_pages, 1);
    m->starts = calloc(nr_bits, sizeof(*m->starts));
    assert_true(m->used && m->len_at && m->live && m->page_used && m->pop && m->starts);
    for (size_t i = 0; i < nr_bits; i++) {
        if (i < start_bit || i >= end_bit) {
            m->used[i] = 1;
            m->page_used[i / m->bb]++;
        }
    }
    m->free_bits = end_bit - start_bit;

    assert_int_equal(c->nr_bits, nr_bits);
    assert_int_equal(c->nr_pages, m->nr_pages);
    assert_int_equal(c->start_bit, start_bit);
    assert_int_equal(c->end_bit, end_bit);
    assert_int_equal(c->free_bits, end_bit - start_bit);
    assert_int_equal(pcpu__chunk_total_bits(c), end_bit - start_bit);
    assert_true(pcpu__chunk_is_empty(c));
    assert_int_equal(c->nr_alloc, 0);
    assert_int_equal(c->nr_populated, 0);
    assert_int_equal(c->nr_empty_populated, 0);
    assert_int_equal(c->contig_bits, end_bit - start_bit);
    assert_int_equal(pcpu__chunk_validate(c), 0);
    for (size_t pg = 0; pg < m->nr_pages; pg++)
        assert_int_equal(pcpu__chunk_page_empty(c, pg), ref_page_empty(m, pg));
}

static void model_free(struct model *m)
{
    free(m->used);
    free(m->len_at);
    free(m->live);
    free(m->page_used);
    free(m->pop);
    free(m->starts);
    memset(m, 0, sizeof(*m));
    current_model = NULL;
    pcpu__page_size = 4096;
}

static void model_fini(struct model *m)
{
    pcpu__chunk_free_meta(m->c);
    /* Every metadata byte the chunk took is given back. */
    size_t before = m->meta_before;
    model_free(m);
    assert_int_equal(atomic_load(&pcpu__meta_bytes), before);
}

#define FAILF(m, ...)                                                                        \
    do {                                                                                     \
        print_message("%s, step %zu: ", (m)->name, (m)->step);                               \
        print_message(__VA_ARGS__);                                                          \
        print_message("\n");                                                                 \
        fail();                                                                              \
    } while (0)

/* ---- the reference's answers ------------------------------------------------ */

/* First aligned position of a free run of n granules in the region. */
static size_t ref_fit(const struct model *m, size_t n, size_t align)
{
    size_t pos = m->start_bit, end = m->end_bit;
    while (pos < end) {
        const unsigned char *z = memchr(m->used + pos, 0, end - pos);
        if (!z)
            break;
        size_t s = (size_t)(z - m->used);
        const unsigned char *o = memchr(m->used + s, 1, end - s);
        size_t e = o ? (size_t)(o - m->used) : end;
        size_t p = (s + align - 1) / align * align;
        if (p < e && n <= e - p)
            return p;
        pos = e;
    }
    return SIZE_MAX;
}

/* Longest free run in the region (its first occurrence in *at). */
static size_t ref_longest(const struct model *m, size_t *at)
{
    size_t pos = m->start_bit, end = m->end_bit, best = 0;
    *at = SIZE_MAX;
    while (pos < end) {
        const unsigned char *z = memchr(m->used + pos, 0, end - pos);
        if (!z)
            break;
        size_t s = (size_t)(z - m->used);
        const unsigned char *o = memchr(m->used + s, 1, end - s);
        size_t e = o ? (size_t)(o - m->used) : end;
        if (e - s > best) {
            best = e - s;
            *at = s;
        }
        pos = e;
    }
    return best;
}

static void ref_mark(struct model *m, size_t p, size_t n, unsigned char v)
{
    for (size_t i = p; i < p + n; i++) {
        m->used[i] = v;
        if (v)
            m->page_used[i / m->bb]++;
        else
            m->page_used[i / m->bb]--;
    }
    if (v)
        m->free_bits -= n;
    else
        m->free_bits += n;
}

/* ---- checks ----------------------------------------------------------------- */

static void check_counts(struct model *m)
{
    struct pcpu_chunk *c = m->c;
    if (c->free_bits != m->free_bits)
        FAILF(m, "free_bits %zu, model %zu", c->free_bits, m->free_bits);
    if (c->nr_alloc != m->nr_allocs)
        FAILF(m, "nr_alloc %zu, model %zu", c->nr_alloc, m->nr_allocs);
    if (pcpu__chunk_is_empty(c) != (m->nr_allocs == 0))
        FAILF(m, "chunk_is_empty %d with %zu allocations", pcpu__chunk_is_empty(c),
              m->nr_allocs);
    size_t pop = 0, empty = 0;
    for (size_t pg = 0; pg < m->nr_pages; pg++) {
        pop += m->pop[pg];
        empty += m->pop[pg] && ref_page_empty(m, pg);
    }
    if (c->nr_populated != pop || c->nr_empty_populated != empty)
        FAILF(m, "nr_populated %zu nr_empty_populated %zu, model %zu and %zu", c->nr_populated,
              c->nr_empty_populated, pop, empty);
}

static void check_range(struct model *m, size_t bit, size_t n)
{
    int problems = pcpu__chunk_validate_range(m->c, bit, n);
    if (problems)
        FAILF(m, "validate_range(%zu, %zu) found %d problems (see stderr)", bit, n, problems);
}

/* Everything: the whole-chunk validation, every page's emptiness, every
 * allocation's length, the contig upper bound and the first free block. */
static void check_full(struct model *m)
{
    struct pcpu_chunk *c = m->c;
    int problems = pcpu__chunk_validate(c);
    if (problems)
        FAILF(m, "validate found %d problems (see stderr)", problems);
    check_counts(m);
    for (size_t pg = 0; pg < m->nr_pages; pg++) {
        if (pcpu__chunk_page_empty(c, pg) != ref_page_empty(m, pg))
            FAILF(m, "page_empty(%zu) = %d, model %d", pg, pcpu__chunk_page_empty(c, pg),
                  ref_page_empty(m, pg));
        if (pcpu__test_bit(c->populated, pg) != (bool)m->pop[pg])
            FAILF(m, "populated bit of page %zu wrong", pg);
    }
    for (size_t i = 0; i < m->nr_allocs; i++) {
        size_t s = m->starts[i];
        if (pcpu__chunk_alloc_bits(c, s) != m->len_at[s])
            FAILF(m, "alloc_bits(%zu) = %zu, model %u", s, pcpu__chunk_alloc_bits(c, s),
                  m->len_at[s]);
        if (pcpu__live_test(c, s) != (bool)m->live[s])
            FAILF(m, "live bit of %zu wrong", s);
    }
    size_t at, longest = ref_longest(m, &at);
    if (c->contig_bits < longest)
        FAILF(m, "contig_bits %zu below the longest free run %zu (at %zu)", c->contig_bits,
              longest, at);
    if (!c->contig_stale && c->contig_bits != longest)
        FAILF(m, "contig_bits %zu not stale but the longest run is %zu", c->contig_bits,
              longest);
    size_t first_free = ref_fit(m, 1, 1);
    if (first_free != SIZE_MAX && c->first_free_block > first_free / m->bb)
        FAILF(m, "first_free_block %zu after the first free granule %zu", c->first_free_block,
              first_free);
}

/* pcpu__chunk_refresh_contig makes contig_bits exact and names a real run. */
static void check_refresh(struct model *m)
{
    struct pcpu_chunk *c = m->c;
    pcpu__chunk_refresh_contig(c);
    size_t at, longest = ref_longest(m, &at);
    if (c->contig_stale || c->contig_bits != longest)
        FAILF(m, "after refresh_contig: contig_bits %zu (stale %d), longest run %zu at %zu",
              c->contig_bits, c->contig_stale, longest, at);
    if (longest) {
        size_t s = c->contig_start;
        bool ok = s >= m->start_bit && s + longest <= m->end_bit;
        for (size_t i = s; ok && i < s + longest; i++)
            ok = !m->used[i];
        if (!ok)
            FAILF(m, "after refresh_contig: contig_start %zu is not a free run of %zu", s,
                  longest);
    }
}

/* ---- operations ------------------------------------------------------------- */

static void populate(struct model *m, size_t pg, bool on)
{
    pcpu__chunk_set_populated(m->c, pg, on);
    m->pop[pg] = on;
}

/* pcpu__chunk_claim(piece, count, align) checked against the model; the
 * first granule or SIZE_MAX. */
static size_t do_claim(struct model *m, size_t piece, size_t count, size_t align)
{
    struct pcpu_chunk *c = m->c;
    size_t n = piece * count;
    size_t contig = c->contig_bits, contig_start = c->contig_start;
    bool stale = c->contig_stale;
    size_t p = pcpu__chunk_claim(c, piece, count, align, false);
    m->claims++;
    /* The fast search may turn an aligned request away when the longest
     * run sits at the wrong alignment (documented); the thorough one, which
     * the pool tries next, must not miss. */
    if (p == SIZE_MAX && align > 1 && ref_fit(m, n, align) != SIZE_MAX) {
        m->fast_misses++;
        p = pcpu__chunk_claim(c, piece, count, align, true);
    }
    if (p == SIZE_MAX) {
        m->failed_claims++;
        /* A failed claim changes nothing: the model still is the map. */
        size_t fit = ref_fit(m, n, align);
        if (fit != SIZE_MAX && align == 1)
            m->misses_unaligned++;
        if (fit != SIZE_MAX && m->misses++ == 0)
            snprintf(m->first_miss, sizeof(m->first_miss),
                     "%s, step %zu: claim(piece %zu, count %zu, align %zu) returned SIZE_MAX "
                     "but granules [%zu, %zu) are free and aligned (chunk hint before: "
                     "contig_bits %zu at %zu, stale %d)",
                     m->name, m->step, piece, count, align, fit, fit + n, contig, contig_start,
                     stale);
        check_counts(m);
        return SIZE_MAX;
    }
    if (p % align || p < m->start_bit || p > m->end_bit || n > m->end_bit - p)
        FAILF(m, "claim(%zu, %zu, %zu) = %zu: unaligned or outside [%zu, %zu)", piece, count,
              align, p, m->start_bit, m->end_bit);
    for (size_t i = p; i < p + n; i++)
        if (m->used[i])
            FAILF(m, "claim(%zu, %zu, %zu) = %zu: granule %zu was already in use", piece, count,
                  align, p, i);
    ref_mark(m, p, n, 1);
    for (size_t k = 0; k < count; k++) {
        size_t s = p + k * piece;
        m->len_at[s] = (uint32_t)piece;
        m->starts[m->nr_allocs++] = s;
        if (pcpu__chunk_alloc_bits(c, s) != piece || pcpu__alloc_bits_fast(c, s) != piece)
            FAILF(m, "allocation %zu of claim at %zu: alloc_bits %zu, fast %zu, want %zu", k, p,
                  pcpu__chunk_alloc_bits(c, s), pcpu__alloc_bits_fast(c, s), piece);
        /* Half of them handed to the "user" (the rest stay "cached"). */
        if (unit_chance(50)) {
            uint8_t mark = pcpu__live_mark(piece);
            size_t said = pcpu__live_mark_bits(mark);
            if (!mark || (said != 0 && said != piece) || (said == 0 && mark != PCPU_LIVE_UNSIZED))
                FAILF(m, "live mark %u of %zu granules says %zu", mark, piece, said);
            pcpu__live_set(c, s, mark);
            m->live[s] = 1;
        }
    }
    /* The pool populates what it just claimed. */
    for (size_t pg = p / m->bb; pg <= (p + n - 1) / m->bb; pg++)
        populate(m, pg, true);
    if (!m->quick) {
        check_counts(m);
        check_range(m, p, n);
    }
    return p;
}

static void do_release(struct model *m, size_t idx)
{
    struct pcpu_chunk *c = m->c;
    size_t s = m->starts[idx], n = m->len_at[s];
    m->starts[idx] = m->starts[--m->nr_allocs];
    if (m->live[s]) {
        if (!pcpu__live_unset_checked(c, s))
            FAILF(m, "live_clear(%zu) said it was not live", s);
        m->live[s] = 0;
    }
    /* A second clear is how a double free is caught. */
    if (pcpu__live_unset_checked(c, s))
        FAILF(m, "live_clear(%zu) twice said live", s);
    if (pcpu__alloc_bits_fast(c, s) != n)
        FAILF(m, "alloc_bits_fast(%zu) = %zu before release, want %zu", s,
              pcpu__alloc_bits_fast(c, s), n);
    pcpu__chunk_release(c, s, n);
    ref_mark(m, s, n, 0);
    m->len_at[s] = 0;
    if (!m->quick) {
        check_counts(m);
        check_range(m, s, n);
    }
}

/* What balancing does: give back some empty populated pages, populate
 * some free ones; setting a page to its current state changes nothing. */
static void shuffle_pages(struct model *m)
{
    for (int k = 0; k < 6; k++) {
        size_t pg = unit_range(0, m->nr_pages - 1);
        if (m->pop[pg]) {
            if (ref_page_empty(m, pg))
                populate(m, pg, false);
            else
                populate(m, pg, true); /* no change */
        } else {
            populate(m, pg, true);
            if (unit_chance(30))
                populate(m, pg, true);
        }
    }
    check_counts(m);
}

/* A request shaped like the pool's: small objects (sometimes a thread
 * cache's batch, aligned the way tcache.c asks), medium, large and a few
 * spanning many pages; natural or explicit power-of-two alignment up to a
 * page. */
static void random_request(const struct model *m, size_t *piece, size_t *count, size_t *align)
{
    size_t total = m->end_bit - m->start_bit;
    unsigned int r = (unsigned int)unit_range(0, 99);
    *count = 1;
    if (r < 45) {
        *piece = unit_range(1, 16);
        if (unit_chance(20))
            *count = unit_range(2, 32);
    } else if (r < 75) {
        *piece = unit_range(17, 300);
    } else if (r < 93) {
        *piece = unit_range(301, 3000);
    } else {
        *piece = unit_range(3001, 40000);
    }
    if (*piece * *count > total / 2) {
        *piece = unit_range(1, total / 2 > 1 ? total / 2 : 1);
        *count = 1;
    }
    if (*count > 1) {
        *align = *piece * *count >= 64 ? 64 : pcpu__natural_bits(*piece);
        return;
    }
    r = (unsigned int)unit_range(0, 99);
    if (r < 60)
        *align = pcpu__natural_bits(*piece);
    else if (r < 90)
        *align = (size_t)1 << unit_range(0, 6);
    else
        *align = (size_t)1 << unit_range(7, 10);
}

static void release_all(struct model *m, size_t full_every)
{
    while (m->nr_allocs) {
        m->step++;
        do_release(m, unit_range(0, m->nr_allocs - 1));
        if (m->step % full_every == 0)
            check_full(m);
    }
    check_full(m);
    check_refresh(m);
    struct pcpu_chunk *c = m->c;
    assert_true(pcpu__chunk_is_empty(c));
    assert_int_equal(c->contig_bits, m->end_bit - m->start_bit);
    assert_int_equal(c->contig_start, m->start_bit);
}

static void report_misses(const struct model *m)
{
    print_message("%s: %zu claims, %zu returned SIZE_MAX, %zu of them while a fitting run "
                  "was free (%zu with align 1); the fast search passed over %zu aligned "
                  "fits that the thorough one found\n",
                  m->name, m->claims, m->failed_claims, m->misses, m->misses_unaligned,
                  m->fast_misses);
    if (m->misses) {
        print_message("first: %s\n", m->first_miss);
        fail_msg("%s: pcpu__chunk_claim missed %zu fitting runs", m->name, m->misses);
    }
}

/* Random claims and releases in phases that fill the map up to a target
 * (nearly empty, half, nearly full, ...), then everything released. */
static void random_workload(struct model *m, size_t steps, size_t full_every)
{
    static const unsigned int target_pct[] = {40, 70, 97, 50, 10, 85, 99, 30};
    size_t total = m->end_bit - m->start_bit;
    for (size_t i = 0; i < steps; i++) {
        m->step++;
        size_t target = total * target_pct[(i * 8 / steps) % 8] / 100;
        bool below = total - m->free_bits < target;
        if (m->nr_allocs == 0 || unit_chance(below ? 80 : 25)) {
            size_t piece, count, align;
            random_request(m, &piece, &count, &align);
            do_claim(m, piece, count, align);
        } else {
            do_release(m, unit_range(0, m->nr_allocs - 1));
        }
        if (m->step % 37 == 0)
            shuffle_pages(m);
        if (m->step % full_every == 0)
            check_full(m);
        if (m->step % 499 == 0) {
            check_refresh(m);
            check_full(m);
        }
    }
    check_full(m);
    release_all(m, full_every);
}

/* Every granule of the region in its own 1-granule allocation (so every
 * granule is its own allocation, whatever order the claims took). */
static void fill_by_granules(struct model *m)
{
    size_t total = m->end_bit - m->start_bit;
    m->quick = true;
    for (size_t k = 0; k < total; k++) {
        m->step++;
        if (do_claim(m, 1, 1, 1) == SIZE_MAX)
            FAILF(m, "claim %zu of %zu single granules failed", k, total);
        if (k % 1024 == 0)
            check_full(m);
    }
    m->quick = false;
    check_full(m);
}

/* Release every 1-granule allocation for which keep() is false. */
static void release_unless(struct model *m, bool (*keep)(const struct model *, size_t))
{
    m->quick = true;
    for (size_t i = 0; i < m->nr_allocs;) {
        size_t s = m->starts[i];
        if (m->len_at[s] == 1 && !keep(m, s)) {
            m->step++;
            do_release(m, i);
        } else {
            i++;
        }
        if (m->step % 1024 == 0)
            check_full(m);
    }
    m->quick = false;
    check_full(m);
}

/* ---- the maps ------------------------------------------------------------------ */

struct geometry {
    const char *name;
    size_t page_size, nr_bits, start_bit, end_bit;
    size_t steps, full_every;
};

#define KIB_BITS(k) ((size_t)(k) * 1024 / PCPU_GRANULE)

static const struct geometry geometries[] = {
    /* a unit of 32 KiB: fewer blocks than one group, checked every step */
    {"32 KiB map", 4096, KIB_BITS(32), 0, KIB_BITS(32), 8000, 1},
    /* 256 KiB: 64 blocks, 4 groups */
    {"256 KiB map", 4096, KIB_BITS(256), 0, KIB_BITS(256), 15000, 16},
    /* 1 MiB, the default unit: 256 blocks, 16 groups */
    {"1 MiB map", 4096, KIB_BITS(1024), 0, KIB_BITS(1024), 15000, 128},
    /* the first chunk's reserved area: the map ends inside a page and a
     * word (at the dynamic area), the region starts after the statics */
    {"reserved-like map", 4096, KIB_BITS(20) + 301, 1003, KIB_BITS(20) + 301, 10000, 1},
    /* hidden granules at both ends, a last group of 8 blocks and a last
     * block cut short */
    {"hidden head and tail", 4096, KIB_BITS(96) - 37, 777, KIB_BITS(96) - 1505, 15000, 4},
    /* 64 KiB pages (some arm64 and ppc64 kernels): 16384-granule blocks */
    {"64 KiB pages", 65536, KIB_BITS(1024), 0, KIB_BITS(1024), 4000, 64},
};

static void run_geometry(const struct geometry *g)
{
    static struct model m; /* outlives a failed test, for teardown */
    model_init(&m, g->name, g->page_size, g->nr_bits, g->start_bit, g->end_bit);
    random_workload(&m, TU_STEPS(g->steps, 4), g->full_every);
    report_misses(&m);
    model_fini(&m);
}

/* One test per geometry (GEOMETRY_TEST in main names each). */
static void test_random_ops_keep_map_exact(void **state)
{
    run_geometry(*state);
}

/* ---- deterministic cases ------------------------------------------------------- */

/* A fresh map of every geometry: hints exact, region fully free, one claim
 * of the whole region takes it from its first granule, one granule more
 * does not fit, and releasing it gives the whole region back as one run. */
static void test_whole_region_claim_and_release(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(geometries) / sizeof(geometries[0]); i++) {
        const struct geometry *g = &geometries[i];
        static struct model m; /* outlives a failed test, for teardown */
        model_init(&m, g->name, g->page_size, g->nr_bits, g->start_bit, g->end_bit);
        size_t total = g->end_bit - g->start_bit;
        assert_int_equal(do_claim(&m, total + 1, 1, 1), SIZE_MAX);
        assert_int_equal(do_claim(&m, total, 1, 1), g->start_bit);
        check_full(&m);
        assert_int_equal(do_claim(&m, 1, 1, 1), SIZE_MAX);
        check_refresh(&m);
        assert_int_equal(m.c->contig_bits, 0);
        release_all(&m, 1);
        report_misses(&m);
        model_fini(&m);
    }
}

/* Granule by granule, a region fills up completely (every granule,
 * including the last one before the end of a map that ends inside a word)
 * and then refuses; released in random order it becomes one run again. */
static void test_fill_by_granules_then_drain(void **state)
{
    (void)state;
    static const size_t idx[] = {0, 3, 4};
    for (size_t i = 0; i < sizeof(idx) / sizeof(idx[0]); i++) {
        const struct geometry *g = &geometries[idx[i]];
        static struct model m; /* outlives a failed test, for teardown */
        model_init(&m, g->name, g->page_size, g->nr_bits, g->start_bit, g->end_bit);
        fill_by_granules(&m);
        check_full(&m);
        assert_int_equal(m.c->free_bits, 0);
        assert_int_equal(do_claim(&m, 1, 1, 1), SIZE_MAX);
        release_all(&m, 1024);
        report_misses(&m);
        model_fini(&m);
    }
}

/* Pins: granules that stay allocated so free runs end near edges. */
static bool pin_block_edges(const struct model *m, size_t s)
{
    size_t off = s % m->bb;
    return off >= m->bb - 2 || off < 2;
}
static bool pin_group_edges(const struct model *m, size_t s)
{
    size_t off = s % (m->bb * PCPU_GROUP_BLOCKS);
    return off == m->bb * PCPU_GROUP_BLOCKS - 1 || off == 1;
}
static bool pin_odd_block_edges(const struct model *m, size_t s)
{
    return (s / m->bb) % 2 && s % m->bb == 3;
}
static bool pin_none(const struct model *m, size_t s)
{
    (void)m;
    (void)s;
    return false;
}

/* Free runs that end just before, on and just after block and group edges
 * (on a map with hidden granules at both ends and a short last block),
 * then claims sized around a block and around a group, which must join
 * runs across those edges. */
static void test_claims_across_block_and_group_edges(void **state)
{
    (void)state;
    bool (*const pins[])(const struct model *, size_t) = {pin_block_edges, pin_group_edges,
                                                          pin_odd_block_edges, pin_none};
    const struct geometry *g = &geometries[4];
    for (size_t r = 0; r < sizeof(pins) / sizeof(pins[0]); r++) {
        static struct model m; /* outlives a failed test, for teardown */
        model_init(&m, g->name, g->page_size, g->nr_bits, g->start_bit, g->end_bit);
        size_t bb = m.bb, gb = bb * PCPU_GROUP_BLOCKS;
        fill_by_granules(&m);
        release_unless(&m, pins[r]);
        check_full(&m);
        check_refresh(&m);
        for (int k = 0; k < 400; k++) {
            m.step++;
            size_t n;
            switch (unit_range(0, 3)) {
            case 0:
                n = bb - 6 + unit_range(0, 12);
                break;
            case 1:
                n = 2 * bb - 6 + unit_range(0, 12);
                break;
            case 2:
                n = gb - 6 + unit_range(0, 12);
                break;
            default:
                n = unit_range(1, 64);
                break;
            }
            do_claim(&m, n, 1, (size_t)1 << unit_range(0, 6));
            if (m.nr_allocs && unit_chance(45)) {
                size_t i = unit_range(0, m.nr_allocs - 1);
                if (m.len_at[m.starts[i]] > 1)
                    do_release(&m, i);
            }
            if (k % 8 == 0)
                check_full(&m);
        }
        check_full(&m);
        check_refresh(&m);
        release_all(&m, 1024);
        report_misses(&m);
        model_fini(&m);
    }
}

/* Populating, depopulating and claiming in every order keeps nr_populated
 * and nr_empty_populated right, and setting a page to the state it has is a
 * no-op. */
static void test_populated_and_empty_counts(void **state)
{
    (void)state;
    const struct geometry *g = &geometries[3]; /* pages with hidden granules */
    static struct model m; /* outlives a failed test, for teardown */
    model_init(&m, g->name, g->page_size, g->nr_bits, g->start_bit, g->end_bit);
    for (size_t pg = 0; pg < m.nr_pages; pg++) {
        populate(&m, pg, true);
        populate(&m, pg, true);
        check_counts(&m);
    }
    /* A claim into an empty populated page makes it non-empty; its release
     * makes it empty again. */
    size_t p = do_claim(&m, m.bb, 1, m.bb);
    assert_int_not_equal(p, SIZE_MAX);
    check_full(&m);
    do_release(&m, 0);
    check_full(&m);
    for (size_t pg = 0; pg < m.nr_pages; pg++) {
        if (ref_page_empty(&m, pg))
            populate(&m, pg, false);
        check_counts(&m);
    }
    for (int k = 0; k < 3000; k++) {
        m.step++;
        if (m.nr_allocs && unit_chance(45))
            do_release(&m, unit_range(0, m.nr_allocs - 1));
        else
            do_claim(&m, unit_range(1, 1500), 1, 1);
        shuffle_pages(&m);
        check_full(&m);
    }
    release_all(&m, 1);
    model_fini(&m);
}

/* Every metadata allocation of pcpu__chunk_alloc_meta can fail: the call
 * returns NULL with ENOMEM and gives back what it had taken. */
static void test_alloc_meta_failure_gives_everything_back(void **state)
{
    (void)state;
    pcpu__page_size = 4096;
    size_t before = atomic_load(&pcpu__meta_bytes);
    bool succeeded = false;
    for (long nth = 1; nth < 64 && !succeeded; nth++) {
        pcpu_fault_inject(nth);
        errno = 0;
        struct pcpu_chunk *c = pcpu__chunk_alloc_meta(KIB_BITS(256), 100, KIB_BITS(256));
        pcpu_fault_inject(0);
        if (c) {
            succeeded = true;
            assert_int_equal(pcpu__chunk_validate(c), 0);
            pcpu__chunk_free_meta(c);
        } else {
            assert_int_equal(errno, ENOMEM);
        }
        assert_int_equal(atomic_load(&pcpu__meta_bytes), before);
    }
    assert_true(succeeded);
}

/* The claim must find an aligned run that is not the longest one.  Here the
 * longest free run is [1, 7) (6 granules, starting at an odd granule) and
 * [8, 12) is free: a 4-granule object with its natural 16-byte alignment
 * (align 4 granules) fits at 8 and nowhere else (not in [1, 7)). */
static void test_claim_uses_aligned_run_shorter_than_longest(void **state)
{
    (void)state;
    static struct model m; /* outlives a failed test, for teardown */
    model_init(&m, "aligned run beside the longest", 4096, KIB_BITS(32), 0, KIB_BITS(32));
    fill_by_granules(&m);
    /* Free [1, 7) and [8, 12). */
    for (size_t i = 0; i < m.nr_allocs;) {
        size_t s = m.starts[i];
        if ((s >= 1 && s < 7) || (s >= 8 && s < 12))
            do_release(&m, i);
        else
            i++;
    }
    check_full(&m);
    m.step++;
    size_t p = do_claim(&m, 4, 1, 4);
    if (p != 8)
        print_message("claim(4 granules, align 4) = %zu, expected 8: contig hint %zu at %zu "
                      "(stale %d)\n",
                      p, m.c->contig_bits, m.c->contig_start, m.c->contig_stale);
    assert_int_equal(p, 8);
    release_all(&m, 64);
    model_fini(&m);
}

/* The same at the block level, with the chunk's hint stale so the search
 * runs: block 0's longest run [1, 11) cannot hold 8 granules aligned to 8,
 * its shorter run [16, 25) can, and so can [2048, 2060), the chunk's
 * longest run.  Two such claims both fit; the first one (wherever it
 * goes) leaves the chunk hint stale, and the second must still find the
 * other place. */
static void test_claim_searches_block_past_unaligned_longest(void **state)
{
    (void)state;
    static struct model m; /* outlives a failed test, for teardown */
    model_init(&m, "aligned run inside a block", 4096, KIB_BITS(32), 0, KIB_BITS(32));
    fill_by_granules(&m);
    for (size_t i = 0; i < m.nr_allocs;) {
        size_t s = m.starts[i];
        if ((s >= 1 && s < 11) || (s >= 16 && s < 25) || (s >= 2048 && s < 2060))
            do_release(&m, i);
        else
            i++;
    }
    check_full(&m);
    m.step++;
    size_t first = do_claim(&m, 8, 1, 8);
    assert_true(first == 16 || first == 2048);
    m.step++;
    size_t second = do_claim(&m, 8, 1, 8);
    if (second == SIZE_MAX)
        print_message("second claim(8 granules, align 8) = SIZE_MAX after the first took %zu; "
                      "contig hint %zu at %zu (stale %d)\n",
                      first, m.c->contig_bits, m.c->contig_start, m.c->contig_stale);
    assert_int_equal(second, first == 16 ? 2048 : 16);
    release_all(&m, 64);
    model_fini(&m);
}

/* A failed test must not leave its page size or an armed fault behind. */
static int teardown(void **state)
{
    (void)state;
    pcpu_fault_inject(0);
    if (current_model) {
        pcpu__chunk_free_meta(current_model->c);
        model_free(current_model);
    }
    pcpu__page_size = 4096;
    return 0;
}

/* A live mark says a size only when it is the right one, and it says the
 * size of every thread-cache class (the frees of those never scan the end
 * map); never 0, which means "not live". */
static void test_live_marks_say_class_sizes(void **state)
{
    (void)state;
    for (size_t bits = 1; bits <= 1u << 16; bits++) {
        uint8_t mark = pcpu__live_mark(bits);
        size_t said = pcpu__live_mark_bits(mark);
        assert_int_not_equal(mark, 0);
        if (said)
            assert_int_equal(said, bits);
        else
            assert_int_equal(mark, PCPU_LIVE_UNSIZED);
        if (pcpu__tcache_exact(bits))
            assert_int_equal(said, bits);
    }
}

/* A test of the random workload on geometries[i], named name. */
#define GEOMETRY_TEST(name, i)                                                    \
    {#name, test_random_ops_keep_map_exact, NULL, teardown, (void *)&geometries[i]}

int main(void)
{
    unit_seed(0x6368756e6bull);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_live_marks_say_class_sizes),
        cmocka_unit_test_teardown(test_alloc_meta_failure_gives_everything_back, teardown),
        cmocka_unit_test_teardown(test_whole_region_claim_and_release, teardown),
        cmocka_unit_test_teardown(test_fill_by_granules_then_drain, teardown),
        cmocka_unit_test_teardown(test_claims_across_block_and_group_edges, teardown),
        cmocka_unit_test_teardown(test_populated_and_empty_counts, teardown),
        cmocka_unit_test_teardown(test_claim_uses_aligned_run_shorter_than_longest, teardown),
        cmocka_unit_test_teardown(test_claim_searches_block_past_unaligned_longest, teardown),
        GEOMETRY_TEST(test_random_ops_keep_32k_map_exact, 0),
        GEOMETRY_TEST(test_random_ops_keep_256k_map_exact, 1),
        GEOMETRY_TEST(test_random_ops_keep_1m_map_exact, 2),
        GEOMETRY_TEST(test_random_ops_keep_reserved_like_map_exact, 3),
        GEOMETRY_TEST(test_random_ops_keep_hidden_head_and_tail_exact, 4),
        GEOMETRY_TEST(test_random_ops_keep_64k_page_map_exact, 5),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
