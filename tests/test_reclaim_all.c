/* SPDX-License-Identifier: MIT */
/* test_reclaim_all.c - no fixed cap on the number of chunks: one pcpu_reclaim(true) gives back every empty chunk, the worker keeps going until the watermarks hold, and the introspection calls see every chunk. */
#include "testutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * Small units (64 KiB) make a chunk cheap, so hundreds or thousands of them
 * cost little memory.  pcpu_max_alloc_size() is the whole unit, so one such
 * object fills a chunk of its own (the first chunk's dynamic area is
 * smaller) and N objects make N chunks.
 */
enum { UNIT = 64 * 1024 };

static void reinit_small(unsigned int flags)
{
    struct pcpu_config cfg = {.nr_cpus = 2, .unit_size = UNIT, .flags = flags};
    tu_reinit(&cfg);
    assert_int_equal(pcpu_max_alloc_size(), UNIT);
}

/* n objects that fill a chunk each; asserts that they made n chunks. */
static void **alloc_chunks(unsigned int n)
{
    unsigned int before = tu_stats().nr_chunks;
    void **v = malloc(n * sizeof(*v));
    assert_non_null(v);
    for (unsigned int i = 0; i < n; i++) {
        v[i] = pcpu_alloc(UNIT, 0);
        if (!v[i])
            fail_msg("allocation %u: %s", i, strerror(errno));
    }
    struct pcpu_stats st = tu_stats();
    assert_true(st.nr_chunks >= before + n);
    return v;
}

static void free_all(void **v, unsigned int n)
{
    for (unsigned int i = 0; i < n; i++)
        pcpu_free(v[i]);
    free(v);
}

/* One pcpu_reclaim(true) leaves only the first chunk. */
static void reclaim_all_once(unsigned int n, unsigned int flags)
{
    reinit_small(flags);
    void **v = alloc_chunks(n);
    free_all(v, n);
    size_t pages = pcpu_reclaim(true);
    struct pcpu_stats st = tu_stats();
    print_message("%u chunk-sized objects freed%s: pcpu_reclaim(true) gave back %zu pages, "
                  "%u chunks left\n",
                  n, flags & PCPU_F_NO_RECLAIM ? " (no worker)" : "", pages, st.nr_chunks);
    assert_int_equal(st.nr_chunks, 1);
    assert_int_equal(st.nr_cur_alloc, 0);
    assert_valid();
    /* Nothing is left to give back. */
    assert_int_equal(pcpu_reclaim(true), 0);
    assert_int_equal(tu_stats().nr_chunks, 1);
}

static void test_reclaim_true_frees_200_empty_chunks(void **state)
{
    (void)state;
    /* Without the worker only the call itself can have done it. */
    reclaim_all_once(200, PCPU_F_NO_RECLAIM);
    /* And with the worker running next to it. */
    reclaim_all_once(200, 0);
}

/* The background worker, left alone, brings 200 empty chunks down to its
 * low watermark (one spare empty chunk besides the first). */
static void test_worker_reclaims_200_empty_chunks(void **state)
{
    (void)state;
    enum { N = 200 };
    reinit_small(0);
    void **v = alloc_chunks(N);
    free_all(v, N);
    struct pcpu_stats st = tu_stats();
    double t0 = tu_now();
    /* The worker needs well under a second; the bound is loose for
     * sanitizer builds on a busy CI machine. */
    while (tu_now() - t0 < 10.0) {
        st = tu_stats();
        if (st.nr_chunks <= 2)
            break;
        usleep(20 * 1000);
    }
    print_message("worker: %u chunks left after %.0f ms\n", st.nr_chunks,
                  (tu_now() - t0) * 1e3);
    assert_true(st.nr_chunks <= 2);
    assert_valid();
}

/* More chunks than any fixed array of 4096. */
enum { MANY = 5000 };

static int cmp_ptr(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t) * (void *const *)a, y = (uintptr_t) * (void *const *)b;
    return x < y ? -1 : x > y;
}

/* Problems found by the checks below; one test reports all of them (the
 * set-up of 5000 chunks is slow under sanitizers, so it is done once). */
static int problems;

#define problem(...)                                                            \
    do {                                                                        \
        print_error(__VA_ARGS__);                                               \
        problems++;                                                             \
    } while (0)

/* pcpu_chunk_info(): every index below the number of entries works, the
 * next is ENOENT, and the chunks listed are exactly ours plus the first. */
static void check_chunk_info(void **v, unsigned int entries)
{
    void **bases = malloc(entries * sizeof(*bases));
    assert_non_null(bases);
    struct pcpu_chunk_info ci;
    unsigned int nb = 0, i;
    for (i = 0; i < entries; i++) {
        if (pcpu_chunk_info(i, &ci) != 0) {
            problem("pcpu_chunk_info(%u) failed (%s) with %u entries expected\n", i,
                    strerror(errno), entries);
            break;
        }
        if (!ci.first && !ci.reserved) {
            if (ci.nr_alloc != 1)
                problem("chunk %u holds %zu allocations, expected 1\n", i, ci.nr_alloc);
            bases[nb++] = ci.base;
        }
        free(ci.page_state);
    }
    if (i == entries) {
        errno = 0;
        if (pcpu_chunk_info(entries, &ci) != -1 || errno != ENOENT)
            problem("pcpu_chunk_info(%u) past the last chunk: not ENOENT\n", entries);
    }
    qsort(bases, nb, sizeof(*bases), cmp_ptr);
    unsigned int missing = 0;
    for (unsigned int k = 0; k < MANY; k++)
        missing += !bsearch(&v[k], bases, nb, sizeof(*bases), cmp_ptr);
    if (missing)
        problem("%u of the %u chunks holding an object are not listed by pcpu_chunk_info\n",
                missing, MANY);
    free(bases);
}

/* Count the sections of pcpu_stats_print() that start a chunk ("Chunk N:"). */
static unsigned int printed_chunks(void)
{
    FILE *f = tmpfile();
    assert_non_null(f);
    pcpu_stats_print(f);
    rewind(f);
    char line[512];
    unsigned int n = 0;
    bool in_order = true;
    while (fgets(line, sizeof(line), f)) {
        unsigned int idx;
        if (sscanf(line, "Chunk %u:", &idx) == 1) {
            if (idx != n)
                in_order = false;
            n++;
        }
    }
    fclose(f);
    if (!in_order)
        problem("pcpu_stats_print: chunk sections not numbered 0, 1, 2, ...\n");
    return n;
}

static void test_5000_chunks_listed_and_reclaimed(void **state)
{
    (void)state;
    problems = 0;
    reinit_small(PCPU_F_NO_RECLAIM);
    /* How many entries pcpu_chunk_info() has beside the real chunks: the
     * reserved area of the first chunk is listed on its own. */
    unsigned int extra = 0;
    struct pcpu_chunk_info ci;
    for (unsigned int i = 0; pcpu_chunk_info(i, &ci) == 0; i++) {
        extra += ci.reserved;
        free(ci.page_state);
    }
    void **v = alloc_chunks(MANY);
    struct pcpu_stats st = tu_stats();
    assert_int_equal(st.nr_chunks, MANY + 1);
    unsigned int entries = st.nr_chunks + extra;

    check_chunk_info(v, entries);
    unsigned int printed = printed_chunks();
    print_message("%u chunks live: pcpu_stats_print shows %u of %u chunk entries\n",
                  st.nr_chunks, printed, entries);
    if (printed != entries)
        problem("pcpu_stats_print shows %u chunks, expected %u\n", printed, entries);

    /* One pcpu_reclaim(true) gives them all back. */
    free_all(v, MANY);
    size_t pages = pcpu_reclaim(true);
    st = tu_stats();
    print_message("%u chunk-sized objects freed (no worker): pcpu_reclaim(true) gave back %zu "
                  "pages, %u chunks left\n",
                  MANY, pages, st.nr_chunks);
    if (st.nr_chunks != 1)
        problem("%u chunks left after pcpu_reclaim(true), expected 1\n", st.nr_chunks);
    if (pcpu_validate() != 0)
        problem("pcpu_validate() failed\n");
    assert_int_equal(problems, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reclaim_true_frees_200_empty_chunks),
        cmocka_unit_test(test_worker_reclaims_200_empty_chunks),
        cmocka_unit_test(test_5000_chunks_listed_and_reclaimed),
    };
    return TU_RUN_THEN_EXIT(tests);
}
