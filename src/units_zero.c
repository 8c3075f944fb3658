/* SPDX-License-Identifier: MIT */
/*
 * units_zero.c - zeroing an object in every unit, and the check for zero
 * that comes first.
 *
 * Zeroing.  Memory comes from the OS zeroed and is zeroed again on free,
 * so an allocation is always zero in every unit.  A free reads each unit
 * before writing it: a unit nobody wrote is still the shared zero page and
 * costs no memory, and writing zeroes there would make it resident.
 *
 * The check reads with the widest vectors the core reads well (chosen
 * once, at initialisation); with many units, which units' pages hold data
 * at all is asked of the kernel (PAGEMAP_SCAN) instead of read unit by
 * unit, so that the work follows the units written.
 */
#include "units_zero.h"

#include <stdio.h>

#include "os.h"
#include "topology.h"

/* Whether memory reads zero: from 1 KiB, the bytes ORed together in the
 * widest vectors the machine reads well.  A comparison against a zero
 * block (memcmp) reads twice the bytes, and one chain of ORs waits on
 * itself: four independent accumulators let the core issue its loads back
 * to back; the 4 KiB class's free waits on this more than on anything
 * else (percpu-bench alloc.zerocheck.4096 measures it).  Objects are whole
 * 4-byte granules; the vectors may be unaligned.
 *
 * 64-byte vectors only where they do not slow the core down: Intel cores
 * before the ones with AVX-VNNI lower their clock while 512-bit
 * instructions run, which would slow the caller's own code for a while
 * after every free (glibc takes the same marker for its ZMM routines);
 * AMD's cores with AVX-512 do not.  Each width's functions come from one
 * template, so the two cannot disagree. */
#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#include <immintrin.h>
typedef uint64_t pcpu__v32 __attribute__((vector_size(32), aligned(4), may_alias));
typedef uint64_t pcpu__v64 __attribute__((vector_size(64), aligned(4), may_alias));
#define PCPU_HAVE_VECTOR_PATH 1

static bool tail_zero(const char *p, size_t bytes)
{
    uint64_t any = 0, w;
    for (; bytes >= 8; p += 8, bytes -= 8) {
        memcpy(&w, p, 8);
        any |= w;
    }
    if (bytes) {
        uint32_t t;
        memcpy(&t, p, 4);
        any |= t;
    }
    return any == 0;
}

__attribute__((target("avx2"), always_inline)) static inline bool vec_zero_v32(pcpu__v32 o)
{
    return _mm256_testz_si256((__m256i)o, (__m256i)o);
}
__attribute__((target("avx512f"), always_inline)) static inline bool vec_zero_v64(pcpu__v64 o)
{
    return _mm512_test_epi64_mask((__m512i)o, (__m512i)o) == 0;
}

/*
 * For vectors of type VT (W bytes, instruction set ISA):
 * blocks_zero_W    whole 1 KiB blocks, one test each;
 * pieces_zero_W    whole W-byte pieces (what is left of a size class's
 *                  object after its blocks);
 * all_zero_W       any object from 1 KiB: the blocks, the pieces, the tail;
 * first_dirty_W    the first unit in which an object of whole blocks (the
 *                  4 KiB class) is not zero, or pcpu__nr_units: every unit
 *                  in one call and no call inside (so no registers to
 *                  save) while all are clean.
 */
#define PCPU__ZERO_CHECKS(W, VT, ISA)                                                         \
    __attribute__((target(ISA), always_inline)) static inline bool blocks_zero_##W(          \
        const char *p, size_t blocks)                                                         \
    {                                                                                         \
        enum { per_block = 1024 / sizeof(VT) };                                               \
        for (; blocks > 0; p += 1024, blocks--) {                                             \
            const VT *v = (const VT *)(const void *)p;                                        \
            VT a = v[0], b = v[1], c = v[2], d = v[3];                                        \
            _Pragma("GCC unroll 8") for (int k = 4; k < per_block; k += 4)                    \
            {                                                                                 \
                a |= v[k];                                                                    \
                b |= v[k + 1];                                                                \
                c |= v[k + 2];                                                                \
                d |= v[k + 3];                                                                \
            }                                                                                 \
            if (!vec_zero_##W((a | b) | (c | d)))                                             \
                return false;                                                                 \
        }                                                                                     \
        return true;                                                                          \
    }                                                                                         \
    __attribute__((target(ISA))) static bool pieces_zero_##W(const char *p, size_t pieces)    \
    {                                                                                         \
        const VT *v = (const VT *)(const void *)p;                                            \
        VT a = {0}, b = {0};                                                                  \
        size_t k = 0;                                                                         \
        for (; k + 2 <= pieces; k += 2) {                                                     \
            a |= v[k];                                                                        \
            b |= v[k + 1];                                                                    \
        }                                                                                     \
        if (k < pieces)                                                                       \
            a |= v[k];                                                                        \
        return vec_zero_##W(a | b);                                                           \
    }                                                                                         \
    __attribute__((target(ISA))) static bool all_zero_##W(const char *p, size_t bytes)        \
    {                                                                                         \
        if (!blocks_zero_##W(p, bytes / 1024))                                                \
            return false;                                                                     \
        if (bytes % 1024 == 0)                                                                \
            return true;                                                                      \
        p += bytes & ~(size_t)1023;                                                           \
        bytes %= 1024;                                                                        \
        return pieces_zero_##W(p, bytes / sizeof(VT)) &&                                      \
               tail_zero(p + (bytes & ~(sizeof(VT) - 1)), bytes % sizeof(VT));                \
    }                                                                                         \
    __attribute__((target(ISA))) static unsigned int first_dirty_##W(const char *cookie,      \
                                                                     size_t blocks)           \
    {                                                                                         \
        unsigned int n = pcpu__nr_units, i = 0;                                               \
        for (; i < n; i++)                                                                    \
            if (!blocks_zero_##W(cookie + pcpu__cpu_offsets[i], blocks))                      \
                break;                                                                        \
        return i;                                                                             \
    }

PCPU__ZERO_CHECKS(v32, pcpu__v32, "avx2")
PCPU__ZERO_CHECKS(v64, pcpu__v64, "avx512f")
#endif

/* The check in use (pcpu__units_zero_check_set can narrow it for tests). */
static enum pcpu__zero_check zero_check, zero_check_best;

static enum pcpu__zero_check zero_check_detect(void)
{
#ifdef PCPU_HAVE_VECTOR_PATH
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) {
        unsigned int a, b, c, d;
        bool vnni = __get_cpuid_count(7, 1, &a, &b, &c, &d) && (a & (1u << 4));
        if (vnni || __builtin_cpu_is("amd"))
            return PCPU__ZERO_CHECK_V64;
    }
    if (__builtin_cpu_supports("avx2"))
        return PCPU__ZERO_CHECK_V32;
#endif
    return PCPU__ZERO_CHECK_LIBC;
}

void pcpu__units_zero_check_init(void)
{
    zero_check_best = zero_check_detect();
    zero_check = zero_check_best;
}

enum pcpu__zero_check pcpu__units_zero_check(void)
{
    return zero_check;
}

int pcpu__units_zero_check_set(enum pcpu__zero_check c)
{
    if (c > zero_check_best)
        return -1;
    zero_check = c;
    return 0;
}

/* Otherwise the C library's memcmp against a block of zeroes: below 1 KiB
 * its short-length code costs less than the setup of the loops above, and
 * without the vector paths it is what there is. */
static const unsigned char zero_block[1024];

static inline __attribute__((always_inline)) bool all_zero(const char *p, size_t bytes)
{
#ifdef PCPU_HAVE_VECTOR_PATH
    if (likely(bytes >= 1024)) {
        if (zero_check == PCPU__ZERO_CHECK_V64)
            return all_zero_v64(p, bytes);
        if (zero_check == PCPU__ZERO_CHECK_V32)
            return all_zero_v32(p, bytes);
    }
#endif
    for (; bytes > sizeof(zero_block); p += sizeof(zero_block), bytes -= sizeof(zero_block))
        if (memcmp(p, zero_block, sizeof(zero_block)) != 0)
            return false;
    return memcmp(p, zero_block, bytes) == 0;
}

/* Units i and up: zeroed where they are not zero.  Out of line, so that
 * the blocks path's clean case (every unit) stays a leaf.  Aligned to a
 * cache line: where the link happened to put it moved the 64-byte pair
 * (alloc.percpu.64, which spends a sixth of its time here) by 5-7%
 * between builds that did not change it. */
static __attribute__((noinline, aligned(64))) void zero_units_from(void *cookie, size_t bytes,
                                                                   unsigned int i)
{
    for (unsigned int n = pcpu__nr_units; i < n; i++) {
        char *p = (char *)cookie + pcpu__cpu_offsets[i];
        if (!all_zero(p, bytes))
            memset(p, 0, bytes);
    }
}

void pcpu__units_zero_large(void *cookie, size_t bytes)
{
    zero_units_from(cookie, bytes, 0);
}

__attribute__((noinline)) void pcpu__units_zero_blocks(void *cookie, size_t bytes)
{
    unsigned int i = 0;
#ifdef PCPU_HAVE_VECTOR_PATH
    if (likely(zero_check != PCPU__ZERO_CHECK_LIBC)) {
        i = zero_check == PCPU__ZERO_CHECK_V64 ? first_dirty_v64(cookie, bytes / 1024)
                                               : first_dirty_v32(cookie, bytes / 1024);
        if (likely(i == pcpu__nr_units))
            return;
    }
#endif
    zero_units_from(cookie, bytes, i);
}

/* Zero [p, p+len) unless it is zero already (the page is real: reading
 * first only saves writing cache lines that hold zeroes anyway). */
static void zero_if_needed(char *p, size_t len)
{
    if (len <= 32) {
        /* Most batched objects are a few granules (4 bytes each): 8-byte
         * words and at most one 4-byte tail, no library call. */
        uint64_t any = 0, w;
        size_t i = 0;
        for (; i + 8 <= len; i += 8) {
            memcpy(&w, p + i, 8);
            any |= w;
        }
        if (i < len) {
            uint32_t t;
            memcpy(&t, p + i, 4);
            any |= t;
        }
        if (any) {
            for (i = 0; i + 8 <= len; i += 8)
                memset(p + i, 0, 8);
            if (i < len)
                memset(p + i, 0, 4);
        }
        return;
    }
    if (!all_zero(p, len))
        memset(p, 0, len);
}

/*
 * Every range of [off_lo, off_hi) (offsets within a unit) of the chunk
 * whose guard starts at base that may hold data, in every unit, passed to
 * fn as (start of that unit, offsets [o1, o2)); -1 if the kernel cannot
 * tell.  With few units each is asked about just that range; with many,
 * one walk over the whole chunk (the kernel skips untouched parts in big
 * steps), split here by unit.
 */
struct dirty_walk {
    char *base;
    size_t off_lo, off_hi;
    void (*fn)(char *unit_start, size_t o1, size_t o2, void *arg);
    void *arg;
};

static void dirty_range(char *lo, char *hi, void *arg)
{
    const struct dirty_walk *w = arg;
    size_t unit = pcpu__layout.unit_size;
    while (lo < hi) {
        char *unit_start = w->base + (size_t)(lo - w->base) / unit * unit;
        char *unit_end = unit_start + unit;
        size_t o1 = (size_t)(lo - unit_start);
        size_t o2 = (size_t)((hi < unit_end ? hi : unit_end) - unit_start);
        if (o1 < w->off_lo)
            o1 = w->off_lo;
        if (o2 > w->off_hi)
            o2 = w->off_hi;
        if (o1 < o2 && unit_start != w->base)
            w->fn(unit_start, o1, o2, w->arg);
        lo = unit_end < hi ? unit_end : hi;
    }
}

static int for_each_dirty(char *base, size_t off_lo, size_t off_hi,
                          void (*fn)(char *unit_start, size_t o1, size_t o2, void *arg),
                          void *arg)
{
    size_t unit = pcpu__layout.unit_size;
    unsigned int nr = pcpu__nr_units;
    struct dirty_walk w = {base, off_lo, off_hi, fn, arg};
    if (nr > 16)
        return pcpu__os_dirty_ranges(base + unit, base + (nr + (size_t)1) * unit, dirty_range,
                                     &w);
    for (unsigned int u = 0; u < nr; u++) {
        char *unit_start = base + (size_t)(pcpu__layout.ai->unit_pos[u] + 1) * unit;
        size_t lo = off_lo & ~(pcpu__page_size - 1);
        if (pcpu__os_dirty_ranges(unit_start + lo, unit_start + off_hi, dirty_range, &w) != 0)
            return -1;
    }
    return 0;
}

struct spans_ctx {
    char *base;
    const struct pcpu_span *spans;
    size_t n;
};

/* Zero the parts of the batch's objects in [o1, o2) of one unit. */
static void zero_spans_in(char *unit_start, size_t o1, size_t o2, void *arg)
{
    const struct spans_ctx *x = arg;
    /* First span ending after o1 (spans are sorted and disjoint). */
    size_t a = 0, b = x->n;
    while (a < b) {
        size_t m = (a + b) / 2;
        size_t end = (size_t)(x->spans[m].cookie - x->base) + x->spans[m].bytes;
        if (end <= o1)
            a = m + 1;
        else
            b = m;
    }
    for (size_t i = a; i < x->n; i++) {
        size_t s = (size_t)(x->spans[i].cookie - x->base), e = s + x->spans[i].bytes;
        if (s >= o2)
            break;
        size_t zs = s > o1 ? s : o1, ze = e < o2 ? e : o2;
        zero_if_needed(unit_start + zs, ze - zs);
    }
}

void pcpu__units_zero_spans(char *base, const struct pcpu_span *spans, size_t n)
{
    if (n == 0)
        return;
    struct spans_ctx x = {base, spans, n};
    size_t lo = (size_t)(spans[0].cookie - base);
    size_t hi = (size_t)(spans[n - 1].cookie - base) + spans[n - 1].bytes;
    /* With few units, a scan costs a walk of the page tables of the whole
     * range in each unit: for objects scattered thinly over it (a batch of
     * frees at random places) reading them costs less (alloc.percpu.mixed,
     * 2 units: ~15% of a pair in the scans, and the two threads' scans
     * slowed each other); for dense batches (objects freed in the order
     * they were made) the scan saves reading pages nobody wrote. */
    if (pcpu__nr_units <= 16) {
        size_t bytes = 0;
        for (size_t i = 0; i < n; i++)
            bytes += spans[i].bytes;
        if (bytes < (hi - lo) / 4)
            goto read_each;
    }
    if (for_each_dirty(base, lo, hi, zero_spans_in, &x) == 0)
        return;
read_each:
    for (size_t i = 0; i < n; i++)
        pcpu__units_zero(spans[i].cookie, spans[i].bytes);
}

static void discard_in(char *unit_start, size_t o1, size_t o2, void *arg)
{
    (void)arg;
    size_t ps = pcpu__page_size;
    o1 &= ~(ps - 1);
    o2 = (o2 + ps - 1) & ~(ps - 1);
    (void)pcpu__os_discard(unit_start + o1, o2 - o1);
}

void pcpu__units_discard(char *base, size_t off, size_t len)
{
    if (for_each_dirty(base, off, off + len, discard_in, NULL) == 0)
        return;
    size_t unit = pcpu__layout.unit_size;
    for (unsigned int u = 0; u < pcpu__nr_units; u++)
        (void)pcpu__os_discard(base + (size_t)(u + 1) * unit + off, len);
}
