/* SPDX-License-Identifier: MIT */
/* test_reclaim.c - empty pages and chunks go back to the OS (background worker, pcpu_reclaim, PCPU_F_NO_RECLAIM) and resident memory follows the units written. */
#include "testutil.h"

#include "child.h"

#include <errno.h>
#include <grp.h>
#include <pthread.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { N_OBJ = 60000, OBJ_SIZE = 64 }; /* four chunks: one stays spare, one may be held by the batch */

/* Allocate N_OBJ objects of OBJ_SIZE, written in units 0 and 1 only. */
static void **alloc_touching_two(void)
{
    void **v = malloc(N_OBJ * sizeof(*v));
    assert_non_null(v);
    for (int i = 0; i < N_OBJ; i++) {
        v[i] = pcpu_alloc(OBJ_SIZE, 0);
        if (!v[i])
            fail_msg("allocation %d: %s", i, strerror(errno));
        memset(pcpu_ptr(v[i], 0), 0x11, OBJ_SIZE);
        memset(pcpu_ptr(v[i], 1), 0x22, OBJ_SIZE);
    }
    return v;
}

static void free_all(void **v)
{
    for (int i = 0; i < N_OBJ; i++)
        pcpu_free(v[i]);
    free(v);
}

static void print_stats(const char *when, const struct pcpu_stats *st)
{
    printf("# %-14s chunks %u, populated %zu pages, empty %zu, resident %zu KiB\n", when,
           st->nr_chunks, st->populated_pages, st->empty_pop_pages, st->resident_bytes >> 10);
}

/* What may stay resident in the two written units once everything is
 * freed: empty populated pages up to the high watermark (frees after the
 * worker's last pass may leave that many without waking it again), plus
 * the pages still holding objects parked in this thread's cache, waiting
 * in its batch of frees to be zeroed (at most 64 KiB per unit, 16 pages:
 * see PCPU_PENDING_BYTES) or kept zeroed in its reserve (with many units:
 * at most 64 KiB per unit, PCPU_RESERVE_BYTES), which may also keep one
 * more chunk. */
enum { EMPTY_POP_HIGH = 32, CACHE_PAGES = 8 + 16 + 16, BATCH_CHUNKS = 1 };

static size_t slack(const struct pcpu_stats *st)
{
    return 2 * (size_t)(EMPTY_POP_HIGH + CACHE_PAGES) * st->page_size;
}

static void test_background(void **state)
{
    (void)state;
    struct pcpu_config cfg = {.nr_cpus = 256};
    tu_reinit(&cfg);
    struct pcpu_stats st0 = tu_stats();
    print_stats("start", &st0);
    void **v = alloc_touching_two();
    struct pcpu_stats st1 = tu_stats();
    print_stats("allocated", &st1);
    /* Two units of 2.5 MiB written; the other 254 cost nothing. */
    size_t written = (size_t)N_OBJ * OBJ_SIZE * 2;
    assert_true(st1.resident_bytes >= st0.resident_bytes + written * 9 / 10);
    assert_true(st1.resident_bytes <= st0.resident_bytes + written * 2);
    assert_true(st1.nr_chunks >= 3);
    free_all(v);
    struct pcpu_stats st = st1;
    double t0 = tu_now();
    bool back = false;
    /* The worker needs about 0.1 s here; the bound is loose because CI
     * machines run this under sanitizers next to other tests. */
    while (tu_now() - t0 < 10.0) {
        st = tu_stats();
        if (st.resident_bytes <= st0.resident_bytes + slack(&st) &&
            st.empty_pop_pages <= EMPTY_POP_HIGH &&
            st.nr_chunks <= st0.nr_chunks + 1 + BATCH_CHUNKS) {
            back = true;
            break;
        }
        usleep(20 * 1000);
    }
    print_stats("freed", &st);
    printf("# reclaimed in %.0f ms\n", (tu_now() - t0) * 1e3);
    assert_true(back);
    assert_true(st.nr_depopulate > 0 || st.backend == PCPU_BACKEND_KM);
    assert_true(st.nr_chunk_destroy > 0);
    assert_valid();
}

static void test_reclaim_all(void **state)
{
    (void)state;
    struct pcpu_config cfg = {.nr_cpus = 256};
    tu_reinit(&cfg);
    struct pcpu_stats st0 = tu_stats();
    void **v = alloc_touching_two();
    free_all(v);
    size_t n = pcpu_reclaim(true);
    assert_true(n > 0);
    struct pcpu_stats st = tu_stats();
    print_stats("reclaim(all)", &st);
    assert_int_equal(st.nr_chunks, 1);
    assert_int_equal(st.empty_pop_pages, 0);
    assert_int_equal(st.cached_objects, 0);
    assert_true(st.populated_pages <= st0.populated_pages);
    assert_true(st.resident_bytes <= st0.resident_bytes + 2 * st.page_size);
    assert_valid();
    /* Nothing left to give back. */
    assert_int_equal(pcpu_reclaim(true), 0);
    /* And it all works again. */
    v = alloc_touching_two();
    free_all(v);
    assert_valid();
}

static void test_no_reclaim(void **state)
{
    (void)state;
    struct pcpu_config cfg = {.nr_cpus = 256, .flags = PCPU_F_NO_RECLAIM};
    tu_reinit(&cfg);
    void **v = alloc_touching_two();
    free_all(v);
    struct pcpu_stats st1 = tu_stats();
    usleep(400 * 1000); /* well past the worker's delay */
    struct pcpu_stats st2 = tu_stats();
    print_stats("no reclaim", &st2);
    assert_true(st1.nr_chunks >= 3);
    assert_int_equal(st2.nr_chunks, st1.nr_chunks);
    assert_int_equal(st2.populated_pages, st1.populated_pages);
    assert_int_equal(st2.nr_depopulate, st1.nr_depopulate);
    assert_int_equal(st2.nr_chunk_destroy, st1.nr_chunk_destroy);
    /* On demand, keeping the low watermarks. */
    assert_true(pcpu_reclaim(false) > 0);
    struct pcpu_stats st3 = tu_stats();
    print_stats("reclaim(false)", &st3);
    assert_true(st3.nr_chunks <= 2 + BATCH_CHUNKS);
    assert_true(st3.populated_pages < st2.populated_pages);
    assert_true(st3.resident_bytes < st2.resident_bytes);
    assert_valid();
    pcpu_reclaim(true);
    assert_int_equal(tu_stats().nr_chunks, 1);
    assert_valid();
}

/* 1M 8-byte objects (a quarter under the sanitizers) over 256 units, each
 * written in one of two units: resident memory stays within twice the
 * ideal (two units' worth). */
static void test_memory_claim(void **state)
{
    (void)state;
    enum { N = TU_STEPS(1 << 20, 4) };
    struct pcpu_config cfg = {.nr_cpus = 256};
    tu_reinit(&cfg);
    struct pcpu_stats st0 = tu_stats();
    void **v = malloc(N * sizeof(*v));
    assert_non_null(v);
    double t0 = tu_now();
    for (int i = 0; i < N; i++) {
        v[i] = pcpu_alloc(8, 0);
        if (!v[i])
            fail_msg("allocation %d: %s", i, strerror(errno));
        *(uint64_t *)pcpu_ptr(v[i], (unsigned int)i & 1) = (uint64_t)i | 1;
    }
    double t1 = tu_now();
    struct pcpu_stats st = tu_stats();
    size_t ideal = (size_t)N * 8 * 2;
    size_t used = st.resident_bytes - st0.resident_bytes;
    printf("# %d x 8 bytes in 2 of 256 units: resident %.1f MiB (ideal %.1f MiB), "
           "%u chunks, %.0f ns/alloc\n",
           (int)N, used / 1048576.0, ideal / 1048576.0, st.nr_chunks, (t1 - t0) * 1e9 / N);
    assert_true(used >= ideal / 2);
    assert_true(used <= 2 * ideal);
    for (int i = 0; i < N; i += 997)
        assert_int_equal(*(uint64_t *)pcpu_ptr(v[i], (unsigned int)i & 1), (uint64_t)i | 1);
    free(v);
    /* Freeing a million objects costs a read of 256 units each; pcpu_exit
     * gives everything back at once. */
    pcpu_exit();
}

/*
 * The worker cannot be started (RLIMIT_NPROC reached: a user at its
 * process limit), then can: frees after the limit is lifted must start
 * it, and memory goes back.  Needs root to become another user (root
 * ignores RLIMIT_NPROC); in a child, which gives up root for good.
 */
static bool empty_pages_back_within(double seconds)
{
    double t0 = tu_now();
    while (tu_now() - t0 < seconds) {
        struct pcpu_stats st;
        if (pcpu_stats_get(&st) == 0 && st.empty_pop_pages <= EMPTY_POP_HIGH)
            return true;
        usleep(20 * 1000);
    }
    return false;
}

static void *nothing(void *arg)
{
    return arg;
}

static void nproc_child(void *arg)
{
    (void)arg;
    if (geteuid() != 0) {
        fprintf(stderr, "skipped: needs root to run as another user under RLIMIT_NPROC\n");
        _exit(CHILD_SKIP);
    }
    pcpu_exit();
    child_check(setgroups(0, NULL) == 0 && setgid(65534) == 0 && setuid(65534) == 0,
                "becoming nobody: %s", strerror(errno));
    struct rlimit old, one;
    child_check(getrlimit(RLIMIT_NPROC, &old) == 0, "getrlimit");
    one = old;
    one.rlim_cur = 1;
    child_check(setrlimit(RLIMIT_NPROC, &one) == 0, "setrlimit: %s", strerror(errno));
    pthread_t t;
    int e = pthread_create(&t, NULL, nothing, NULL);
    if (e == 0) {
        pthread_join(t, NULL);
        fprintf(stderr, "skipped: RLIMIT_NPROC 1 does not stop thread creation here\n");
        _exit(CHILD_SKIP);
    }
    struct pcpu_config cfg = {.nr_cpus = 256};
    child_check(pcpu_init(&cfg) == 0, "pcpu_init: %s", strerror(errno));
    void **v = alloc_touching_two();
    free_all(v);
    usleep(300 * 1000);
    size_t stuck = tu_stats().empty_pop_pages;
    child_check(stuck > EMPTY_POP_HIGH, "%zu empty pages with no worker", stuck);
    /* The limit lifted: the next frees that leave memory empty start it. */
    child_check(setrlimit(RLIMIT_NPROC, &old) == 0, "setrlimit back: %s", strerror(errno));
    v = alloc_touching_two();
    free_all(v);
    bool back = empty_pages_back_within(10.0);
    fprintf(stderr, "no worker: %zu empty pages 0.3 s after the frees; worker allowed again: %s\n",
            stuck, back ? "given back" : "nothing given back in 10 s");
    child_check(back, "no background reclaim after the worker could be started again");
    child_check(pcpu_validate() == 0, "pcpu_validate");
    pcpu_exit();
}

static void test_worker_refused_then_allowed(void **state)
{
    (void)state;
    pcpu_exit();
    run_in_child("reclaim worker refused, then allowed", nproc_child, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_background),
        cmocka_unit_test(test_reclaim_all),
        cmocka_unit_test(test_no_reclaim),
        cmocka_unit_test(test_memory_claim),
        cmocka_unit_test(test_worker_refused_then_allowed),
    };
    return TU_RUN_THEN_EXIT(tests);
}
