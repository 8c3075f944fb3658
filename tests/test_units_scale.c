/* SPDX-License-Identifier: MIT */
/* test_units_scale.c - with thousands of units, memory, zeroing and memory mappings follow the units touched, not the units configured. */
/*
 * Issue 11: a program may configure up to 4096 units (pcpu_config.nr_cpus)
 * on a machine with far fewer CPUs, and touch only a few of them.  The
 * promises guarded here:
 *   - 10M live 8-byte objects written in two of 4096 units cost what two
 *     units of them cost in memory, validate clean, and all of it goes back
 *     when they are freed;
 *   - at every unit count (2 .. 4096), space that was written in a few
 *     units and freed is zero in every unit when it is handed out again,
 *     whether the frees were zeroed through the thread's batch filling up
 *     or through pcpu_reclaim(true) (and also in a forked child, whose
 *     page tables are not its parent's);
 *   - a chunk costs at most 3 lines of /proc/self/maps however it is
 *     populated and depopulated;
 *   - a process that already uses most of vm.max_map_count still gets
 *     per-CPU memory.
 * Times are printed for information only (percpu-bench measures them);
 * nothing here asserts on time (only the CTest TIMEOUT in
 * tests/CMakeLists.txt catches frees that cost O(units configured)).
 */
#include "testutil.h"
#include "child.h"

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/*
 * Under the sanitizers the counts go down.  TSan makes every step ~10x
 * dearer and shadows every byte written.  ASan costs far more here: the
 * library keeps ASan's shadow of freed objects poisoned in every unit,
 * touched or not (units.c), so with 4096 units each allocation and free
 * writes the shadow of all 4096 copies: ~0.35 ms per 8-byte allocation
 * and ~0.7 ms per free measured, and a freed half-unit object of the
 * default 1 MiB unit dirties 256 MB of shadow.  So under ASan the counts
 * are small, and the chunk-count tests use the smallest unit (64 KiB),
 * which keeps their shadow sixteen times smaller; the promises checked
 * are the same.
 */
#if defined(TU_ASAN)
#define SCALE_LIVE 10000ul  /* objects in the 4096-unit memory test */
#define SCALE_TIMED 1000u   /* objects timed at each unit count */
#define SCALE_UNIT ((size_t)64 << 10)
#define SCALE_SMALL 200u    /* small objects in the map-lines test */
#elif defined(TU_TSAN)
#define SCALE_LIVE 1000000ul
#define SCALE_TIMED 20000u
#define SCALE_UNIT ((size_t)0)
#define SCALE_SMALL 3000u
#else
#define SCALE_LIVE 10000000ul
#define SCALE_TIMED 200000u
#define SCALE_UNIT ((size_t)0) /* the default, 1 MiB */
#define SCALE_SMALL 3000u
#endif

#define MANY_UNITS 4096

/* The bytes the zero checks compare against: more than the biggest object
 * checked here (20000 bytes). */
static const unsigned char zeros[32768];

static void units_init_cfg(unsigned int nr_units, size_t unit_size, unsigned int flags)
{
    struct pcpu_config cfg = {.nr_cpus = nr_units, .unit_size = unit_size, .flags = flags};
    tu_reinit(&cfg);
    assert_int_equal(pcpu_nr_cpus(), nr_units);
}

static void units_init(unsigned int nr_units)
{
    units_init_cfg(nr_units, 0, 0);
}

static int cleanup(void **state)
{
    (void)state;
    pcpu_exit();
    return 0;
}

/* Offset of the first non-zero byte of @cookie's copy in unit @u, or -1. */
static long first_nonzero(void *cookie, unsigned int u, size_t bytes)
{
    const unsigned char *p = pcpu_ptr(cookie, u);
    if (memcmp(p, zeros, bytes) == 0)
        return -1;
    for (size_t i = 0; i < bytes; i++)
        if (p[i])
            return (long)i;
    return -1;
}

/* ---- 10M live 8-byte objects in 2 of 4096 units ----------------------------- */

#define NR_LIVE SCALE_LIVE

static void test_10m_live_8byte_objects_on_4096_units_cost_two_units_and_go_back(void **state)
{
    (void)state;
    units_init(MANY_UNITS);
    void **objs = malloc(NR_LIVE * sizeof(*objs));
    assert_non_null(objs);
    struct pcpu_stats st0 = tu_stats();

    double t0 = tu_now();
    for (unsigned long i = 0; i < NR_LIVE; i++) {
        uint64_t *p = pcpu_alloc(8, 0);
        if (!p)
            fail_msg("pcpu_alloc(8) number %lu of %lu failed: %s", i, NR_LIVE, strerror(errno));
        /* Two touched units, each with a value only this object holds, so
         * an object handed out twice shows below. */
        *PCPU_PTR(p, 0) = i + 1;
        *PCPU_PTR(p, 1) = ~(uint64_t)i;
        objs[i] = p;
    }
    double t1 = tu_now();

    struct pcpu_stats st1 = tu_stats();
    assert_int_equal(st1.nr_cur_alloc, st0.nr_cur_alloc + NR_LIVE);
    /*
     * The ideal: every object's 8 bytes in the two written units, nothing
     * else.  What the layout may add on top: in each touched unit, each
     * chunk's used space begins and ends in a page that it may share with
     * unused space (the first chunk's static and reserved areas, the end
     * of a chunk left too small for the next cache refill), so up to 2
     * pages per chunk per touched unit; and whatever was resident before.
     * That is ~1 MiB for ~80 chunks against 160 MB, far inside the issue's
     * 1.1x, which is asserted too.  The lower bound (90% of the ideal: no
     * swap is expected, but leave room for some) shows that resident_bytes
     * really counts the written pages, so the upper bound means something.
     */
    size_t ideal = (size_t)NR_LIVE * 8 * 2;
    size_t slack = (size_t)st1.nr_chunks * 2 * 2 * st1.page_size;
    print_message("%lu objects on %u units: %u chunks, resident %zu bytes = %.4fx the ideal "
                  "%zu (allowed: ideal + %zu slack + %zu resident before)\n",
                  NR_LIVE, MANY_UNITS, st1.nr_chunks, st1.resident_bytes,
                  (double)st1.resident_bytes / (double)ideal, ideal, slack, st0.resident_bytes);
    assert_true(st1.resident_bytes >= ideal / 10 * 9);
    assert_true(st1.resident_bytes <= st0.resident_bytes + ideal + slack);
    assert_true((double)st1.resident_bytes <= 1.1 * (double)ideal);
    assert_valid();

    /* Every object still holds its own values: no space was handed out twice. */
    for (unsigned long i = 0; i < NR_LIVE; i++) {
        uint64_t *p = objs[i];
        if (*PCPU_PTR(p, 0) != i + 1 || *PCPU_PTR(p, 1) != ~(uint64_t)i)
            fail_msg("object %lu (%p) reads %#llx / %#llx", i, (void *)p,
                     (unsigned long long)*PCPU_PTR(p, 0), (unsigned long long)*PCPU_PTR(p, 1));
    }

    double t2 = tu_now();
    for (unsigned long i = 0; i < NR_LIVE; i++)
        pcpu_free(objs[i]);
    double t3 = tu_now();
    pcpu_reclaim(true);
    double t4 = tu_now();
    free(objs);
    print_message("%u units: %.0f ns per 8-byte alloc (2 units written), %.0f ns per free, "
                  "reclaim %.3f s\n",
                  MANY_UNITS, (t1 - t0) * 1e9 / NR_LIVE, (t3 - t2) * 1e9 / NR_LIVE, t4 - t3);

    /* Everything given back: the first chunk only, no more resident memory
     * and no more populated pages than before the first allocation. */
    struct pcpu_stats st2 = tu_stats();
    print_message("after freeing: %u chunks, resident %zu bytes (before: %zu), populated "
                  "pages %zu (before: %zu)\n",
                  st2.nr_chunks, st2.resident_bytes, st0.resident_bytes, st2.populated_pages,
                  st0.populated_pages);
    assert_int_equal(st2.nr_cur_alloc, st0.nr_cur_alloc);
    assert_int_equal(st2.nr_chunks, 1);
    assert_true(st2.resident_bytes <= st0.resident_bytes);
    assert_true(st2.populated_pages <= st0.populated_pages);
    assert_valid();
}

/* ---- freed space reads zero in every unit, at every unit count -------------- */

static const unsigned int unit_counts[] = {2, 64, 256, 1024, MANY_UNITS};
static const size_t obj_sizes[] = {8, 64, 1000, 4096, 20000};
#define NR_SIZES (sizeof(obj_sizes) / sizeof(obj_sizes[0]))
/* Objects of each size per round: a round frees ~200 KB per unit, more than
 * the 64 KiB a thread's batch holds, so batches fill and are zeroed during
 * the frees even without pcpu_reclaim(). */
#define PER_SIZE 8
#define ROUNDS 8
#define PER_ROUND (PER_SIZE * NR_SIZES)

struct written {
    unsigned int units[4];
    unsigned int n;
};

/* Units 0, 1, the last and a middle one (fewer when they coincide). */
static struct written written_units(unsigned int nr)
{
    unsigned int cand[4] = {0, 1, nr - 1, nr / 2 + 1 < nr ? nr / 2 + 1 : nr - 1};
    struct written w = {.n = 0};
    for (unsigned int i = 0; i < 4; i++) {
        bool seen = false;
        for (unsigned int j = 0; j < w.n; j++)
            seen |= w.units[j] == cand[i];
        if (!seen)
            w.units[w.n++] = cand[i];
    }
    return w;
}

/* Non-zero bytes in unit u of the object: all of it, its first and last
 * bytes, or one byte in the middle (so that only some of a big object's
 * pages hold data). */
static void scribble(void *cookie, size_t bytes, unsigned int u, unsigned int how,
                     unsigned char v)
{
    unsigned char *p = pcpu_ptr(cookie, u);
    switch (how % 3) {
    case 0:
        memset(p, v, bytes);
        break;
    case 1:
        p[0] = v;
        p[bytes - 1] = v;
        break;
    default:
        p[bytes / 2] = v;
        break;
    }
}

struct range {
    char *lo, *hi;
};

static void check_zero(void *cookie, size_t bytes, unsigned int u, unsigned int nr,
                       unsigned int round, const char *how)
{
    long at = first_nonzero(cookie, u, bytes);
    if (at >= 0)
        fail_msg("%u units, %s, round %u: new object %p of %zu bytes reads 0x%02x at "
                 "offset %ld in unit %u",
                 nr, how, round, cookie, bytes, ((unsigned char *)pcpu_ptr(cookie, u))[at],
                 at, u);
}

/*
 * Rounds of: allocate PER_SIZE objects of each size, check they read zero
 * (every unit of the first object of each size, the written units of all),
 * write non-zero bytes in the written units, free them all.  flush: call
 * pcpu_reclaim(true) after each round's frees (zeroes the thread's batch at
 * once and hands its pages back); otherwise the batch zeroes when it fills.
 * Returns how many new objects overlapped space freed earlier: the checks
 * are only worth something if freed space is really handed out again.
 */
static unsigned int zero_rounds(unsigned int nr, bool flush)
{
    const char *how = flush ? "frees flushed by pcpu_reclaim(true)" : "frees zeroed in batches";
    struct written w = written_units(nr);
    static void *objs[PER_ROUND];
    static size_t sizes[PER_ROUND];
    static struct range freed[ROUNDS * PER_ROUND];
    unsigned int nr_freed = 0, reused = 0;

    for (unsigned int r = 0; r < ROUNDS; r++) {
        for (unsigned int k = 0; k < PER_SIZE; k++) {
            for (unsigned int s = 0; s < NR_SIZES; s++) {
                unsigned int i = k * NR_SIZES + s;
                size_t bytes = obj_sizes[s];
                void *p = pcpu_alloc(bytes, 0);
                if (!p)
                    fail_msg("%u units, %s, round %u: pcpu_alloc(%zu) failed: %s", nr, how, r,
                             bytes, strerror(errno));
                objs[i] = p;
                sizes[i] = bytes;
                char *lo = p, *hi = lo + bytes;
                for (unsigned int f = 0; f < nr_freed; f++)
                    if (lo < freed[f].hi && freed[f].lo < hi) {
                        reused++;
                        break;
                    }
                if (k == 0) {
                    for (unsigned int u = 0; u < nr; u++)
                        check_zero(p, bytes, u, nr, r, how);
                } else {
                    for (unsigned int j = 0; j < w.n; j++)
                        check_zero(p, bytes, w.units[j], nr, r, how);
                }
            }
        }
        for (unsigned int i = 0; i < PER_ROUND; i++)
            for (unsigned int j = 0; j < w.n; j++)
                scribble(objs[i], sizes[i], w.units[j], i + j + r,
                         (unsigned char)(0x11 * (1 + (i + j + r) % 15)));
        /* Free in an order that mixes sizes and addresses. */
        for (unsigned int i = 0; i < PER_ROUND; i++) {
            unsigned int x = (i * 7 + r) % PER_ROUND;
            pcpu_free(objs[x]);
            freed[nr_freed++] = (struct range){objs[x], (char *)objs[x] + sizes[x]};
        }
        if (flush)
            pcpu_reclaim(true);
    }
    assert_valid();
    return reused;
}

/* ns per 8-byte alloc (writing units 0 and 1) and per free, for information. */
#define NR_TIMED SCALE_TIMED

static void time_alloc_free(unsigned int nr)
{
    static void *objs[NR_TIMED];
    double t0 = tu_now();
    for (unsigned int i = 0; i < NR_TIMED; i++) {
        uint64_t *p = pcpu_alloc(8, 0);
        if (!p)
            fail_msg("%u units: pcpu_alloc(8) failed: %s", nr, strerror(errno));
        *PCPU_PTR(p, 0) = i + 1;
        *PCPU_PTR(p, 1) = i + 1;
        objs[i] = p;
    }
    double t1 = tu_now();
    for (unsigned int i = 0; i < NR_TIMED; i++)
        pcpu_free(objs[i]);
    double t2 = tu_now();
    pcpu_reclaim(true);
    print_message("%4u units: %6.0f ns per 8-byte alloc (2 units written), %6.0f ns per free "
                  "(%u objects)\n",
                  nr, (t1 - t0) * 1e9 / NR_TIMED, (t2 - t1) * 1e9 / NR_TIMED, NR_TIMED);
}

static void test_freed_space_reads_zero_in_every_unit_at_every_unit_count(void **state)
{
    (void)state;
    for (size_t c = 0; c < sizeof(unit_counts) / sizeof(unit_counts[0]); c++) {
        unsigned int nr = unit_counts[c];
        units_init(nr);
        time_alloc_free(nr);
        unsigned int batched = zero_rounds(nr, false);
        unsigned int flushed = zero_rounds(nr, true);
        print_message("%4u units: %u and %u of %u new objects reused freed space (batched, "
                      "flushed)\n",
                      nr, batched, flushed, (unsigned int)(ROUNDS * PER_ROUND));
        assert_true(batched > 0);
        assert_true(flushed > 0);
    }
}

/*
 * The kernel is asked which pages hold data through /proc/self/pagemap.  A
 * descriptor opened by the parent describes the parent's page tables, so a
 * child that asked it would take its own freshly written pages (absent in
 * the parent) for clean ones and hand them out dirty.  The parent zeroes a
 * batch first (so the library has asked the kernel), then the child writes
 * space the parent never wrote, frees it, and must get it back zeroed.
 */
struct fork_arg {
    unsigned int nr;
};

static void child_reuses_zeroed(void *argp)
{
    const struct fork_arg *a = argp;
    struct written w = written_units(a->nr);
    enum { N = 64 };
    void *objs[N];
    for (unsigned int round = 0; round < 4; round++) {
        for (unsigned int i = 0; i < N; i++) {
            size_t bytes = obj_sizes[i % NR_SIZES];
            objs[i] = pcpu_alloc(bytes, 0);
            child_check(objs[i] != NULL, "round %u: pcpu_alloc(%zu): %s", round, bytes,
                        strerror(errno));
            for (unsigned int j = 0; j < w.n; j++) {
                long at = first_nonzero(objs[i], w.units[j], bytes);
                child_check(at < 0,
                            "%u units, round %u: new object %p of %zu bytes reads non-zero "
                            "at offset %ld in unit %u",
                            a->nr, round, objs[i], bytes, at, w.units[j]);
                memset(pcpu_ptr(objs[i], w.units[j]), 0x77, bytes);
            }
        }
        for (unsigned int i = 0; i < N; i++)
            pcpu_free(objs[i]);
        pcpu_reclaim(true);
    }
    child_check(pcpu_validate() == 0, "pcpu_validate() found problems");
}

static void forked_child_case(unsigned int nr)
{
    units_init(nr);
    /* The parent writes, frees and zeroes a batch: the library has looked
     * at its page tables before the fork. */
    void *objs[16];
    for (unsigned int i = 0; i < 16; i++) {
        objs[i] = pcpu_alloc(20000, 0);
        assert_non_null(objs[i]);
        memset(pcpu_ptr(objs[i], 0), 0x33, 20000);
        memset(pcpu_ptr(objs[i], nr - 1), 0x33, 20000);
    }
    for (unsigned int i = 0; i < 16; i++)
        pcpu_free(objs[i]);
    pcpu_reclaim(true);
    struct fork_arg a = {nr};
    run_in_child("freed space handed out again in a forked child", child_reuses_zeroed, &a);
}

/* Few units: the kernel is asked unit by unit (objects of 512 bytes and
 * more wait in the batch). */
static void test_freed_space_reads_zero_in_forked_child_2_units(void **state)
{
    (void)state;
    forked_child_case(2);
}

/* Many units: the kernel is asked once per chunk. */
static void test_freed_space_reads_zero_in_forked_child_4096_units(void **state)
{
    (void)state;
    forked_child_case(MANY_UNITS);
}

/* ---- map lines per chunk ----------------------------------------------------- */

struct maps_count {
    unsigned int total;   /* lines of /proc/self/maps */
    unsigned int chunks;  /* lines inside some chunk */
    unsigned int worst;   /* most lines inside one chunk */
    unsigned int nr_chunks;
};

/* Count the lines of /proc/self/maps, in total and per chunk (a chunk spans
 * its guard unit and its units: (nr_units + 1) * unit_size from its base). */
static struct maps_count count_maps(void)
{
    struct pcpu_stats st = tu_stats();
    unsigned int n = st.nr_chunks;
    size_t span = ((size_t)st.nr_units + 1) * st.unit_size;
    struct range *spans = calloc(n, sizeof(*spans));
    unsigned int *per = calloc(n, sizeof(*per));
    assert_non_null(spans);
    assert_non_null(per);
    for (unsigned int i = 0; i < n; i++) {
        struct pcpu_chunk_info info;
        assert_int_equal(pcpu_chunk_info(i, &info), 0);
        free(info.page_state);
        spans[i].lo = info.base;
        spans[i].hi = (char *)info.base + span;
    }
    struct maps_count mc = {.nr_chunks = n};
    FILE *f = fopen("/proc/self/maps", "re");
    assert_non_null(f);
    char line[4096];
    while (fgets(line, sizeof(line), f)) {
        if (!strchr(line, '\n') && !feof(f)) {
            /* A long path: skip the rest of the line. */
            int ch;
            while ((ch = fgetc(f)) != EOF && ch != '\n')
                ;
        }
        mc.total++;
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx", &lo, &hi) != 2)
            continue;
        for (unsigned int i = 0; i < n; i++)
            if ((char *)lo < spans[i].hi && spans[i].lo < (char *)hi) {
                per[i]++;
                mc.chunks++;
            }
    }
    fclose(f);
    for (unsigned int i = 0; i < n; i++)
        if (per[i] > mc.worst)
            mc.worst = per[i];
    free(spans);
    free(per);
    return mc;
}

#define MAPS_SLACK 4

static void check_maps(const struct maps_count *before, const char *phase)
{
    struct maps_count mc = count_maps();
    print_message("%-44s %3u chunks, %4u map lines in chunks (most in one: %u), %u lines in "
                  "all (%+d)\n",
                  phase, mc.nr_chunks, mc.chunks, mc.worst, mc.total,
                  (int)mc.total - (int)before->total);
    if (mc.worst > 3)
        fail_msg("%s: a chunk has %u lines in /proc/self/maps (at most 3 promised)", phase,
                 mc.worst);
    /* Everything the process gained since the first chunk alone, the
     * library's own bookkeeping included: 3 per chunk, counting the first
     * (whose lines may grow too), plus MAPS_SLACK for one-off mappings
     * that do not grow with the chunks (a thread's stack and guard and its
     * malloc arena are 4 lines).  Not under a sanitizer: its runtime maps
     * shadow and metadata of its own for the mappings it sees (TSan added
     * ~1 line per chunk). */
#if !defined(TU_ASAN) && !defined(TU_TSAN)
    if (mc.total > before->total + 3 * mc.nr_chunks + MAPS_SLACK)
        fail_msg("%s: /proc/self/maps grew from %u to %u lines with %u chunks (at most 3 per "
                 "chunk promised)",
                 phase, before->total, mc.total, mc.nr_chunks);
#endif
}

#define NR_BIG 16
#define NR_SMALL SCALE_SMALL

static void test_chunk_costs_at_most_3_map_lines_however_populated_4096_units(void **state)
{
    (void)state;
    /* No background reclaimer: its thread would come and go with its own
     * mappings (pcpu_reclaim() below does the same work). */
    units_init_cfg(MANY_UNITS, SCALE_UNIT, PCPU_F_NO_RECLAIM);
    const unsigned int nr = MANY_UNITS;
    static void *big[NR_BIG], *small[NR_SMALL], *mid[NR_BIG * 4];
    size_t half = pcpu_max_alloc_size() / 2;
    uint64_t rs = 11;
    struct maps_count before = count_maps();
    assert_int_equal(before.nr_chunks, 1);
    check_maps(&before, "first chunk only");

    /* Half-unit objects (two per chunk), written in scattered units and
     * only in some of their pages. */
    for (unsigned int i = 0; i < NR_BIG; i++) {
        big[i] = pcpu_alloc(half, 0);
        if (!big[i])
            fail_msg("pcpu_alloc(%zu) number %u failed: %s", half, i, strerror(errno));
        unsigned int us[] = {0, 1, nr - 1, (i * 37u) % nr, (unsigned int)(tu_rand(&rs) % nr)};
        for (unsigned int j = 0; j < 5; j++) {
            char *p = pcpu_ptr(big[i], us[j]);
            p[0] = 1;
            p[(i * 4096u * 13) % half] = 2;
            p[half - 1] = 3;
        }
    }
    check_maps(&before, "half-unit objects, written in 5 units");

    /* Small objects of mixed sizes in between, written in one unit each. */
    for (unsigned int i = 0; i < NR_SMALL; i++) {
        size_t bytes = 8 + (tu_rand(&rs) % 4000);
        small[i] = pcpu_alloc(bytes, 0);
        if (!small[i])
            fail_msg("pcpu_alloc(%zu) failed: %s", bytes, strerror(errno));
        memset(pcpu_ptr(small[i], (unsigned int)(tu_rand(&rs) % nr)), 0x5a, bytes);
    }
    check_maps(&before, "plus small objects, each in a random unit");

    /* Every other big object freed: partly populated chunks; then pages
     * given back (depopulated) in the units that held data. */
    for (unsigned int i = 0; i < NR_BIG; i += 2) {
        pcpu_free(big[i]);
        big[i] = NULL;
    }
    for (unsigned int i = 0; i < NR_SMALL; i += 3) {
        pcpu_free(small[i]);
        small[i] = NULL;
    }
    uint64_t depop = tu_stats().nr_depopulate;
    pcpu_reclaim(false);
    check_maps(&before, "half freed, pcpu_reclaim(false)");
    /* The pattern must really have depopulated something. */
    assert_true(tu_stats().nr_depopulate > depop);

    /* Medium objects into the holes, written in other units. */
    for (unsigned int i = 0; i < NR_BIG * 4; i++) {
        size_t bytes = half / 5;
        mid[i] = pcpu_alloc(bytes, 0);
        if (!mid[i])
            fail_msg("pcpu_alloc(%zu) failed: %s", bytes, strerror(errno));
        unsigned int u = (unsigned int)(tu_rand(&rs) % nr);
        memset(pcpu_ptr(mid[i], u), 0x6b, bytes / 3);
        ((char *)pcpu_ptr(mid[i], (u + 1) % nr))[bytes - 1] = 1;
    }
    check_maps(&before, "plus tenth-unit objects in the holes");

    for (unsigned int i = 0; i < NR_BIG * 4; i += 2) {
        pcpu_free(mid[i]);
        mid[i] = NULL;
    }
    pcpu_reclaim(false);
    check_maps(&before, "half of those freed, pcpu_reclaim(false)");
    pcpu_reclaim(true);
    check_maps(&before, "pcpu_reclaim(true)");
    assert_valid();

    for (unsigned int i = 0; i < NR_BIG; i++)
        pcpu_free(big[i]);
    for (unsigned int i = 0; i < NR_SMALL; i++)
        pcpu_free(small[i]);
    for (unsigned int i = 0; i < NR_BIG * 4; i++)
        pcpu_free(mid[i]);
    pcpu_reclaim(true);
    check_maps(&before, "all freed, pcpu_reclaim(true)");
    assert_int_equal(tu_stats().nr_chunks, 1);
    assert_valid();
}

/* ---- most of vm.max_map_count already used ---------------------------------- */

/* Lines the process leaves free below vm.max_map_count. */
#define MAP_HEADROOM 1000
/* Beyond this many mappings, creating them takes too long for a unit test:
 * fill only up to here (the test then shows less than it could). */
#define MAP_FILL_CAP 200000
#define NR_HOG_CHUNKS 20

static unsigned int maps_lines(void)
{
    FILE *f = fopen("/proc/self/maps", "re");
    if (!f)
        return 0;
    unsigned int n = 0;
    int ch;
    while ((ch = fgetc(f)) != EOF)
        n += ch == '\n';
    fclose(f);
    return n;
}

static void child_maps_nearly_full(void *arg)
{
    (void)arg;
    FILE *f = fopen("/proc/sys/vm/max_map_count", "re");
    child_check(f != NULL, "cannot read /proc/sys/vm/max_map_count: %s", strerror(errno));
    unsigned long max = 0;
    child_check(fscanf(f, "%lu", &max) == 1, "cannot parse vm.max_map_count");
    fclose(f);
    unsigned long limit = max;
    if (limit > MAP_FILL_CAP) {
        printf("vm.max_map_count is %lu: filling only up to %u mappings (more would take too "
               "long), so this shows less than it could\n",
               max, MAP_FILL_CAP);
        limit = MAP_FILL_CAP;
    }
    if (limit <= 2 * MAP_HEADROOM) {
        printf("vm.max_map_count is only %lu: nothing to fill\n", max);
        fflush(NULL);
        _exit(CHILD_SKIP);
    }

    /* Single pages, alternately readable and inaccessible, so that
     * neighbours cannot merge into one mapping. */
    long ps = sysconf(_SC_PAGESIZE);
    unsigned int have = maps_lines();
    unsigned long want = limit - MAP_HEADROOM;
    unsigned long made = 0;
    for (unsigned long i = have; i < want; i++, made++) {
        void *p = mmap(NULL, (size_t)ps, (made & 1) ? PROT_NONE : PROT_READ,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        child_check(p != MAP_FAILED, "mmap number %lu failed: %s", made, strerror(errno));
    }
    unsigned int filled = maps_lines();
    child_check(filled + 50 >= want, "only %u map lines after %lu mmaps (wanted %lu)", filled,
                made, want);
    printf("vm.max_map_count %lu: the process holds %u map lines\n", max, filled);

    pcpu_exit();
    struct pcpu_config cfg = child_env_config();
    cfg.nr_cpus = MANY_UNITS;
    cfg.unit_size = SCALE_UNIT;
    child_check(pcpu_init(&cfg) == 0, "pcpu_init with %u units: %s", MANY_UNITS,
                strerror(errno));
    /* Objects of more than half a unit: one per chunk. */
    size_t bytes = pcpu_max_alloc_size() / 2 + 4096;
    unsigned int us[] = {0, 1, MANY_UNITS / 2, MANY_UNITS - 1};
    void *objs[NR_HOG_CHUNKS];
    for (unsigned int i = 0; i < NR_HOG_CHUNKS; i++) {
        objs[i] = pcpu_alloc(bytes, 0);
        child_check(objs[i] != NULL, "pcpu_alloc(%zu) number %u failed with %u map lines: %s",
                    bytes, i, maps_lines(), strerror(errno));
        for (unsigned int j = 0; j < 4; j++) {
            char *p = pcpu_ptr(objs[i], us[j]);
            p[0] = (char)(i + 1);
            p[bytes / 2] = (char)(i + 1);
            p[bytes - 1] = (char)(i + 1);
        }
    }
    for (unsigned int i = 0; i < NR_HOG_CHUNKS; i++)
        for (unsigned int j = 0; j < 4; j++) {
            char *p = pcpu_ptr(objs[i], us[j]);
            child_check(p[0] == (char)(i + 1) && p[bytes - 1] == (char)(i + 1),
                        "object %u lost its bytes in unit %u", i, us[j]);
        }
    struct pcpu_stats st;
    child_check(pcpu_stats_get(&st) == 0, "pcpu_stats_get: %s", strerror(errno));
    child_check(st.nr_chunks >= NR_HOG_CHUNKS, "%u chunks", st.nr_chunks);
    unsigned int lines = maps_lines();
    printf("%u chunks of %u units: %u map lines (%+d)\n", st.nr_chunks, MANY_UNITS, lines,
           (int)lines - (int)filled);
    child_check(pcpu_validate() == 0, "pcpu_validate() found problems");
    for (unsigned int i = 0; i < NR_HOG_CHUNKS; i++)
        pcpu_free(objs[i]);
    pcpu_reclaim(true);
    child_check(pcpu_stats_get(&st) == 0 && st.nr_chunks == 1,
                "%u chunks left after freeing all", st.nr_chunks);
}

static void test_per_cpu_memory_when_process_uses_most_of_max_map_count_4096_units(void **state)
{
    (void)state;
    run_in_child("20 chunks of 4096 units with vm.max_map_count nearly used up",
                 child_maps_nearly_full, NULL);
}

/* ---- the thread's reserve (many units) ------------------------------------ */

/*
 * With many units, the clean small objects a zeroed batch leaves over stay
 * with the thread for its next allocations (the reserve, tcache.h).  What
 * went through it must read zero in every written unit; the allocator must
 * validate with reserves full; a fork() while another thread's reserve is
 * full must leave the child sound (that thread is gone there: its objects
 * go back); and a thread's exit gives everything back.
 */
#define RESERVE_UNITS 256u
#define RESERVE_OBJS TU_STEPS(3000u, 4)
#define RESERVE_ROUNDS 6u

static atomic_uint reserve_errors;

/* Allocate, check zero, scribble in units 0, 1 and the last, free mixed;
 * returns how many objects read non-zero (and prints the first). */
static unsigned int reserve_churn(unsigned int seed)
{
    static const size_t sizes[] = {4, 8, 12, 16, 24, 32, 48, 64, 100};
    const unsigned int units[] = {0, 1, RESERVE_UNITS - 1};
    void **objs = malloc(RESERVE_OBJS * sizeof(*objs));
    size_t *lens = malloc(RESERVE_OBJS * sizeof(*lens));
    unsigned int bad = 0;
    if (!objs || !lens)
        abort();
    for (unsigned int r = 0; r < RESERVE_ROUNDS; r++) {
        for (unsigned int i = 0; i < RESERVE_OBJS; i++) {
            lens[i] = sizes[(i + r + seed) % (sizeof(sizes) / sizeof(sizes[0]))];
            objs[i] = pcpu_alloc(lens[i], 0);
            if (!objs[i]) {
                fprintf(stderr, "pcpu_alloc(%zu): %s\n", lens[i], strerror(errno));
                abort();
            }
            for (unsigned int j = 0; j < 3; j++) {
                long at = first_nonzero(objs[i], units[j], lens[i]);
                if (at >= 0 && bad++ == 0)
                    fprintf(stderr, "round %u: new object %p of %zu bytes reads non-zero at "
                            "offset %ld in unit %u\n", r, objs[i], lens[i], at, units[j]);
                memset(pcpu_ptr(objs[i], units[j]), 0x5a + (int)j, lens[i]);
            }
        }
        for (unsigned int i = 0; i < RESERVE_OBJS; i++)
            pcpu_free(objs[(i * 7 + r) % RESERVE_OBJS]);
    }
    free(objs);
    free(lens);
    return bad;
}

static sem_t reserve_ready, reserve_go;

static void *reserve_thread(void *arg)
{
    (void)arg;
    atomic_fetch_add(&reserve_errors, reserve_churn(1));
    sem_post(&reserve_ready);
    sem_wait(&reserve_go); /* holding its reserve while the parent forks */
    atomic_fetch_add(&reserve_errors, reserve_churn(2));
    return NULL;
}

static void child_after_reserves(void *arg)
{
    const size_t *base = arg; /* allocated bytes before any churn */
    child_check(pcpu_validate() == 0, "pcpu_validate() found problems after fork");
    child_check(reserve_churn(3) == 0, "objects read non-zero in the child");
    child_check(pcpu_validate() == 0, "pcpu_validate() found problems after the churn");
    pcpu_reclaim(true);
    struct pcpu_stats st = {.size = sizeof(st)};
    child_check(pcpu_stats_get(&st) == 0, "pcpu_stats_get: %s", strerror(errno));
    child_check(st.nr_chunks == 1 && st.cached_objects == 0 && st.allocated_bytes == *base,
                "the child kept %u chunks, %zu cached objects, %zu of %zu bytes allocated "
                "after freeing all",
                st.nr_chunks, st.cached_objects, st.allocated_bytes, *base);
}

static void test_small_frees_kept_by_threads_read_zero_and_go_back_256_units(void **state)
{
    (void)state;
    units_init(RESERVE_UNITS);
    size_t base = tu_stats().allocated_bytes;
    atomic_store(&reserve_errors, 0);
    assert_int_equal(sem_init(&reserve_ready, 0, 0), 0);
    assert_int_equal(sem_init(&reserve_go, 0, 0), 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, reserve_thread, NULL), 0);
    assert_int_equal(reserve_churn(0), 0);
    sem_wait(&reserve_ready);
    assert_valid();
    run_in_child("a fork() while two threads keep reserves", child_after_reserves, &base);
    sem_post(&reserve_go);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(atomic_load(&reserve_errors), 0);
    assert_valid();
    pcpu_reclaim(true);
    struct pcpu_stats st = tu_stats();
    assert_int_equal(st.nr_chunks, 1);
    assert_int_equal(st.cached_objects, 0);
    assert_int_equal(st.allocated_bytes, base);
    sem_destroy(&reserve_ready);
    sem_destroy(&reserve_go);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(
            test_10m_live_8byte_objects_on_4096_units_cost_two_units_and_go_back, cleanup),
        cmocka_unit_test_teardown(test_freed_space_reads_zero_in_every_unit_at_every_unit_count,
                                  cleanup),
        cmocka_unit_test_teardown(test_freed_space_reads_zero_in_forked_child_2_units, cleanup),
        cmocka_unit_test_teardown(test_freed_space_reads_zero_in_forked_child_4096_units,
                                  cleanup),
        cmocka_unit_test_teardown(
            test_chunk_costs_at_most_3_map_lines_however_populated_4096_units, cleanup),
        cmocka_unit_test_teardown(
            test_per_cpu_memory_when_process_uses_most_of_max_map_count_4096_units, cleanup),
        cmocka_unit_test_teardown(
            test_small_frees_kept_by_threads_read_zero_and_go_back_256_units, cleanup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
