/* SPDX-License-Identifier: MIT */
/*
 * figures_alloc.c - one allocation + free pair, ns per pair per thread, at
 * T=1 and T=all, against what a user would pick instead:
 *
 *   alloc.percpu.N         pcpu_alloc(N) + pcpu_free, on an object the
 *                          thread wrote before in its CPU's unit
 *   alloc.percpu.mixed     a pool of live objects; each op frees a random
 *                          slot and refills it with a random size 1..4096
 *                          and a random alignment 1..256
 *   alloc.malloc.8         malloc(8) + free (the pointer escapes)
 *   alloc.padded.8         aligned_alloc of one 64-byte slot per unit,
 *                          memset 0, + free: a hand-made per-CPU object
 *   alloc.zerocheck.4096   the floor of a 4 KiB pair: reading the object in
 *                          every unit to see whether it needs zeroing
 *
 * Also the allocator state that the chunk-map picture draws
 * (chunkmap_demo_state).
 */
#define _GNU_SOURCE
#include "bench.h"

#include <stdlib.h>
#include <string.h>

#include "percpu.h"

#define MIXED_POOL 256

/*
 * The fixed-size pairs run on an object this thread used before: the setup
 * allocates one, writes it in the unit of the CPU the thread runs on (as a
 * program uses its per-CPU objects) and frees it, and the loop's
 * allocations get it back.  In an object nobody ever wrote, every unit is
 * the kernel's shared zero page; AMD Zen reads one physical page through
 * several addresses at about half speed, so the free's check for zero in
 * every unit costs about twice as much there (4 KiB, 2 units: ~120-150
 * against ~70-90 ns).
 */
static void *pair_setup(const struct loop *l, unsigned int tid)
{
    struct alloc_state *s = alloc_setup(l, tid);
    void *c = pcpu_alloc(s->size, 0);
    if (!c)
        die("pcpu_alloc");
    memset(pcpu_ptr(c, (unsigned int)online_cpu(tid)), 0xa5, s->size);
    pcpu_free(c);
    return s;
}

static void alloc_percpu_run(void *p, uint64_t n)
{
    struct alloc_state *s = p;
    size_t size = s->size;
    for (uint64_t i = 0; i < n; i++) {
        void *c = pcpu_alloc(size, 0);
        if (__builtin_expect(!c, 0))
            die("pcpu_alloc");
        escape(c);
        pcpu_free(c);
    }
}

static inline void *mixed_alloc(uint64_t *seed)
{
    uint64_t r = rnd(seed);
    size_t size = 1 + (r % 4096);
    size_t align = (size_t)1 << ((r >> 32) % 9);   /* 1 .. 256 */
    void *c = pcpu_alloc(size, align);
    if (__builtin_expect(!c, 0))
        die("pcpu_alloc");
    return c;
}

static void *mixed_setup(const struct loop *l, unsigned int tid)
{
    struct alloc_state *s = alloc_setup(l, tid);
    s->nr = MIXED_POOL;
    s->live = malloc(s->nr * sizeof(void *));
    if (!s->live)
        die("malloc");
    for (size_t i = 0; i < s->nr; i++)
        s->live[i] = mixed_alloc(&s->seed);
    return s;
}

static void mixed_run(void *p, uint64_t n)
{
    struct alloc_state *s = p;
    for (uint64_t i = 0; i < n; i++) {
        size_t k = rnd(&s->seed) % s->nr;
        pcpu_free(s->live[k]);
        s->live[k] = mixed_alloc(&s->seed);
    }
}

static void malloc_run(void *p, uint64_t n)
{
    (void)p;
    for (uint64_t i = 0; i < n; i++) {
        void *m = malloc(8);
        if (__builtin_expect(!m, 0))
            die("malloc");
        escape(m);
        free(m);
    }
}

/* The floor of a 4 KiB pair: what any allocator that hands out zeroed
 * per-CPU memory without dirtying untouched pages must do once per pair,
 * read the object in every unit to see whether it needs zeroing.  Read
 * here as fast as this machine reads (the library's own check works the
 * same way): the bytes ORed into four independent vector accumulators, so
 * that loads issue back to back.  alloc.percpu.4096 is measured against
 * it. */
/* One template for every width: VT the vector type, BLOCK the bytes ORed
 * before each test, NONZERO that test; the rest is the function's
 * attributes (its instruction set). */
#define ZC_ZERO_FN(NAME, VT, BLOCK, NONZERO, ...)                                         \
    __VA_ARGS__ static bool NAME(const char *p, size_t bytes)                             \
    {                                                                                     \
        enum { per_block = BLOCK / sizeof(VT) };                                          \
        for (; bytes >= BLOCK; p += BLOCK, bytes -= BLOCK) {                              \
            const VT *v = (const VT *)(const void *)p;                                    \
            VT a = v[0], b = v[1], c = v[2], d = v[3];                                    \
            _Pragma("GCC unroll 8") for (int k = 4; k < per_block; k += 4)                \
            {                                                                             \
                a |= v[k];                                                                \
                b |= v[k + 1];                                                            \
                c |= v[k + 2];                                                            \
                d |= v[k + 3];                                                            \
            }                                                                             \
            if (NONZERO((a | b) | (c | d)))                                               \
                return false;                                                             \
        }                                                                                 \
        return true; /* 4096 bytes: no tail */                                            \
    }

typedef uint64_t zc_v16 __attribute__((vector_size(16), aligned(4), may_alias));
#define ZC_NONZERO_V16(o) (((o)[0] | (o)[1]) != 0)
ZC_ZERO_FN(zc_zero_v16, zc_v16, 256, ZC_NONZERO_V16)

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#include <immintrin.h>
typedef uint64_t zc_v32 __attribute__((vector_size(32), aligned(4), may_alias));
#define ZC_NONZERO_V32(o) (((o)[0] | (o)[1] | (o)[2] | (o)[3]) != 0)
ZC_ZERO_FN(zc_zero_v32, zc_v32, 1024, ZC_NONZERO_V32, __attribute__((target("avx2"))))

typedef uint64_t zc_v64 __attribute__((vector_size(64), aligned(4), may_alias));
#define ZC_NONZERO_V64(o) (_mm512_test_epi64_mask((__m512i)(o), (__m512i)(o)) != 0)
ZC_ZERO_FN(zc_zero_v64, zc_v64, 1024, ZC_NONZERO_V64, __attribute__((target("avx512f"))))

/* 64-byte vectors where the library takes them (units.c says why: cores
 * that keep their clock under AVX-512). */
static bool zc_wide(void)
{
    if (!__builtin_cpu_supports("avx512f"))
        return false;
    unsigned int a, b, c, d;
    return (__get_cpuid_count(7, 1, &a, &b, &c, &d) && (a & (1u << 4))) ||
           __builtin_cpu_is("amd");
}

/* The width the check uses: 64, 32 or 16 bytes (figures_alloc sets it). */
static unsigned int zc_width = 16;
#endif

static void zc_choose(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
    zc_width = zc_wide() ? 64 : __builtin_cpu_supports("avx2") ? 32 : 16;
#endif
}

static bool zc_zero(const char *p, size_t bytes)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (zc_width == 64)
        return zc_zero_v64(p, bytes);
    if (zc_width == 32)
        return zc_zero_v32(p, bytes);
#endif
    return zc_zero_v16(p, bytes);
}

/* Written (with zeroes) in this thread's CPU's unit, as the pair's object
 * (pair_setup). */
static void *zerocheck_setup(const struct loop *l, unsigned int tid)
{
    (void)l;
    void *c = pcpu_alloc(4096, 0);
    if (!c)
        die("pcpu_alloc");
    memset(pcpu_ptr(c, (unsigned int)online_cpu(tid)), 0, 4096);
    return c;
}

static void zerocheck_teardown(void *p)
{
    pcpu_free(p);
}

static void zerocheck_run(void *p, uint64_t n)
{
    unsigned int units = pcpu_nr_cpus();
    for (uint64_t i = 0; i < n; i++) {
        bool zero = true;
        for (unsigned int u = 0; u < units; u++)
            zero &= zc_zero(pcpu_ptr(p, u), 4096);
        if (__builtin_expect(!zero, 0))
            die("zerocheck: object not zero");
        escape(p);
    }
}

static size_t padded_bytes;

static void padded_run(void *p, uint64_t n)
{
    (void)p;
    size_t bytes = padded_bytes;
    for (uint64_t i = 0; i < n; i++) {
        void *m = aligned_alloc(64, bytes);
        if (__builtin_expect(!m, 0))
            die("aligned_alloc");
        memset(m, 0, bytes);
        escape(m);
        free(m);
    }
}

void figures_alloc(void)
{
    zc_choose();
    padded_bytes = (size_t)pcpu_nr_cpus() * 64;
    struct loop loops[] = {
        {.name = "alloc.percpu.8", .setup = pair_setup, .run = alloc_percpu_run,
         .teardown = alloc_teardown, .arg = 8},
        {.name = "alloc.percpu.64", .setup = pair_setup, .run = alloc_percpu_run,
         .teardown = alloc_teardown, .arg = 64},
        {.name = "alloc.percpu.256", .setup = pair_setup, .run = alloc_percpu_run,
         .teardown = alloc_teardown, .arg = 256},
        {.name = "alloc.percpu.4096", .setup = pair_setup, .run = alloc_percpu_run,
         .teardown = alloc_teardown, .arg = 4096},
        {.name = "alloc.percpu.mixed", .setup = mixed_setup, .run = mixed_run,
         .teardown = alloc_teardown},
        {.name = "alloc.malloc.8", .run = malloc_run},
        {.name = "alloc.padded.8", .run = padded_run},
        {.name = "alloc.zerocheck.4096", .setup = zerocheck_setup, .run = zerocheck_run,
         .teardown = zerocheck_teardown},
    };
    /* The fixed sizes with their baselines, interleaved; the mixed pool on
     * its own (its live objects would change the others' maps). */
    struct loop *mixed = &loops[4];
    /* The zero check's setup keeps its object: it runs before the 4 KiB
     * pair's, so that it does not take the object the pair's setup wrote
     * and freed (pair_setup). */
    struct loop fixed[] = {loops[0], loops[5], loops[6], loops[1], loops[2], loops[7], loops[3]};
    measure_1_n_together(fixed, sizeof(fixed) / sizeof(fixed[0]));
    /* Its target compares T=2 with T=1: their repetitions alternate. */
    if (name_selected(mixed->name)) {
        if (nthreads_all() > 1)
            measure_1_n_alternating(mixed, nthreads_all());
        else
            measure(mixed, 1);
    }
}

/* ======================================================================
 * A state worth drawing: pages in every state, several chunks
 * ====================================================================== */

struct demo {
    size_t nr;
    void *live[];
};

void *chunkmap_demo_state(void)
{
    enum { N = 6000 };
    struct demo *d = malloc(sizeof(*d) + N * sizeof(void *));
    if (!d)
        die("malloc");
    uint64_t seed = 42;
    d->nr = 0;
    /* a run of small objects fills pages completely */
    for (int i = 0; i < 2048; i++)
        d->live[d->nr++] = pcpu_alloc(8, 0);
    /* random sizes, then free most of them: partly used and empty pages */
    size_t first = d->nr;
    for (int i = 0; i < N - 2048; i++)
        d->live[d->nr++] = mixed_alloc(&seed);
    for (size_t i = first; i < d->nr; i++)
        if (rnd(&seed) % 100 < 60) {
            pcpu_free(d->live[i]);
            d->live[i] = NULL;
        }
    return d;
}

void chunkmap_demo_free(void *h)
{
    struct demo *d = h;
    for (size_t i = 0; i < d->nr; i++)
        pcpu_free(d->live[i]);
    free(d);
    pcpu_reclaim(true);
}
