/* SPDX-License-Identifier: MIT */
/* test_robust_scale.c - robust mode stays usable with tens of thousands of objects, and still catches writes after free and bad frees. */
/*
 * Robust mode (PCPU_F_DEBUG) checks what each operation touched (its chunk
 * and blocks) after every call, and the whole allocator at pcpu_exit() and
 * on pcpu_validate().  A full pcpu_validate() after every call made it
 * quadratic: 13k allocations in a 512 KiB unit took ~5 s, four times more
 * per doubling, so the big tests below (~66k objects) would take many
 * minutes.  They assert nothing about time; tests/CMakeLists.txt gives this
 * program a CTest TIMEOUT that only the quadratic behaviour overruns.
 *
 * The scoped checks must still catch what the full ones caught: a write
 * into a freed object when its space is handed out again (through the
 * thread cache, the chunk map, or as part of a larger allocation), and
 * frees of cookies that are not live, with many objects around.
 * Public API only: the checks are observed through their messages.
 */
#include "testutil.h"
#include "child.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Under AddressSanitizer the library poisons freed objects in ASan's shadow,
 * so ASan itself reports the late writes below (test_robust.c checks that);
 * those tests are skipped there (TU_ASAN: testutil.h). */
#define NR_UNITS 4

static void robust_init(size_t unit_size)
{
    struct pcpu_config cfg = {.nr_cpus = NR_UNITS, .unit_size = unit_size, .flags = PCPU_F_DEBUG};
    tu_reinit(&cfg);
}

/* ---- many objects ---------------------------------------------------------- */

#define NR_SMALL 60000         /* 8-byte objects */
#define MIX_EVERY 10           /* every 10th object has another size */
#define NR_OBJS (NR_SMALL + NR_SMALL / (MIX_EVERY - 1))

static void *objs[NR_OBJS];
static size_t sizes[NR_OBJS];
static unsigned int order[NR_OBJS];

static size_t mixed_size(uint64_t *rs)
{
    static const size_t small[] = {4, 12, 16, 24, 32, 48, 64, 100, 128, 200, 256};
    static const size_t big[] = {320, 1000, 3000, 5000};
    uint64_t r = tu_rand(rs) % 100;
    if (r < 90)
        return small[tu_rand(rs) % (sizeof(small) / sizeof(small[0]))];
    return big[tu_rand(rs) % (sizeof(big) / sizeof(big[0]))];
}

static void shuffle(unsigned int *a, unsigned int n, uint64_t *rs)
{
    for (unsigned int i = n - 1; i > 0; i--) {
        unsigned int j = (unsigned int)(tu_rand(rs) % (i + 1));
        unsigned int t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

/* Allocate object i: zero in the units looked at, then marked with its
 * index in unit 0 and unit i % NR_UNITS (a second owner would show). */
static void alloc_one(unsigned int i)
{
    void *p = pcpu_alloc(sizes[i], 0);
    if (!p)
        fail_msg("pcpu_alloc(%zu) failed: %s (object %u)", sizes[i], strerror(errno), i);
    uint32_t *u0 = pcpu_ptr(p, 0), *ui = pcpu_ptr(p, i % NR_UNITS);
    if (*u0 != 0 || *ui != 0)
        fail_msg("object %u (%p, %zu bytes) not zeroed", i, p, sizes[i]);
    *u0 = i + 1;
    *ui = i + 1;
    objs[i] = p;
}

static void check_one(unsigned int i)
{
    const uint32_t *u0 = pcpu_ptr(objs[i], 0), *ui = pcpu_ptr(objs[i], i % NR_UNITS);
    if (*u0 != i + 1 || *ui != i + 1)
        fail_msg("object %u (%p) lost its contents (%u/%u)", i, objs[i], *u0, *ui);
}

static void free_one(unsigned int i)
{
    check_one(i);
    pcpu_free(objs[i]);
    objs[i] = NULL;
}

/* Fill, free in random order, refill, churn half, free all. */
static void many_objects(size_t unit_size)
{
    robust_init(unit_size);
    uint64_t rs = 0x0b5e55ed ^ unit_size;
    for (unsigned int i = 0; i < NR_OBJS; i++) {
        sizes[i] = i % MIX_EVERY == MIX_EVERY - 1 ? mixed_size(&rs) : 8;
        order[i] = i;
    }
    for (unsigned int i = 0; i < NR_OBJS; i++)
        alloc_one(i);
    struct pcpu_stats st = tu_stats();
    assert_true(st.nr_cur_alloc >= NR_OBJS);
    assert_true(st.nr_chunks >= 2); /* the first chunk is full */

    shuffle(order, NR_OBJS, &rs);
    for (unsigned int k = 0; k < NR_OBJS; k++)
        free_one(order[k]);
    for (unsigned int i = 0; i < NR_OBJS; i++)
        alloc_one(i);

    /* Churn: half of them freed and allocated again, interleaved. */
    shuffle(order, NR_OBJS, &rs);
    for (unsigned int k = 0; k < NR_OBJS / 2; k++) {
        free_one(order[k]);
        if (k % 2)
            alloc_one(order[k - 1]);
    }
    for (unsigned int k = 0; k < NR_OBJS / 2; k++)
        if (!objs[order[k]])
            alloc_one(order[k]);
    for (unsigned int i = 0; i < NR_OBJS; i++)
        check_one(i);
    assert_valid();

    shuffle(order, NR_OBJS, &rs);
    for (unsigned int k = 0; k < NR_OBJS; k++)
        free_one(order[k]);
    assert_valid();
    pcpu_exit(); /* nothing live, nothing written after free: silent */
}

static void test_robust_many_objects_512k_units(void **state)
{
    (void)state;
    many_objects(512u << 10);
}

static void test_robust_many_objects_64k_units(void **state)
{
    (void)state;
    many_objects(64u << 10);
}

static void test_robust_many_objects_1m_units(void **state)
{
    (void)state;
#ifdef TU_SLOW_BUILD
    /* ~20 s per backend under each sanitizer, for the paths the 64 KiB
     * and 512 KiB cases take already; the plain build runs it. */
    skip();
#endif
    many_objects(1u << 20);
}

/* ---- detection still works ------------------------------------------------- */

/* Detection scenarios run among this many live objects (enough to fill
 * more than one 64 KiB chunk, few enough that the old full validation
 * runs them in seconds). */
#define NR_BACKGROUND 5000

static void *background[NR_BACKGROUND];

static void fill_background(size_t unit_size)
{
    robust_init(unit_size);
    for (unsigned int i = 0; i < NR_BACKGROUND; i++) {
        background[i] = pcpu_alloc(i % 7 ? 8 : 40, 0);
        assert_non_null(background[i]);
        *(uint32_t *)pcpu_ptr(background[i], i % NR_UNITS) = i + 1;
    }
}

static void drop_background(void)
{
    for (unsigned int i = 0; i < NR_BACKGROUND; i++) {
        pcpu_free(background[i]);
        background[i] = NULL;
    }
    assert_valid();
    pcpu_exit();
}

/* After a failed test: free what is still live, so that pcpu_exit() (which
 * stops a robust-mode process that leaks) does not take the next tests
 * down with it. */
static int cleanup(void **state)
{
    (void)state;
    for (unsigned int i = 0; i < NR_OBJS; i++) {
        pcpu_free(objs[i]);
        objs[i] = NULL;
    }
    for (unsigned int i = 0; i < NR_BACKGROUND; i++) {
        pcpu_free(background[i]);
        background[i] = NULL;
    }
    pcpu_exit();
    return 0;
}

struct uaf {
    void *cookie;       /* the freed object */
    size_t size;        /* its size, and the size allocated again */
    unsigned int unit;  /* where the late write goes */
    size_t offset;
};

/* In the child: write into the freed object, then allocate the same size
 * until its space comes back (keeping what else comes back). */
static void write_then_reallocate(void *arg)
{
    struct uaf *u = arg;
    ((volatile unsigned char *)pcpu_ptr(u->cookie, u->unit))[u->offset] = 0x42;
    for (unsigned int i = 0; i < 4096; i++) {
        void *p = pcpu_alloc(u->size, 0);
        if (!p) {
            fprintf(stderr, "child: pcpu_alloc(%zu) failed: %s\n", u->size, strerror(errno));
            _exit(4);
        }
        if (p == u->cookie) {
            fprintf(stderr, "child: got %p back and nothing was reported\n", p);
            _exit(2);
        }
    }
    fprintf(stderr, "child: %p was never handed out again\n", u->cookie);
    _exit(3);
}

static void expect_write_after_free_caught(size_t unit_size, size_t size, unsigned int unit,
                                           size_t offset)
{
    fill_background(unit_size);
    struct uaf u = {.size = size, .unit = unit, .offset = offset};
    u.cookie = pcpu_alloc(size, 0);
    assert_non_null(u.cookie);
    memset(pcpu_ptr(u.cookie, unit), 0x33, size); /* written, so poisoned on free */
    pcpu_free(u.cookie);
    struct child_result r;
    char how[128], cookie[32];
    snprintf(cookie, sizeof(cookie), "%p", u.cookie);
    run_watched(write_then_reallocate, &u, 60, &r);
    if (!child_aborted(&r) || !strstr(r.out, "written after free") || !strstr(r.out, cookie))
        fail_msg("%zu-byte object, write at unit %u offset %zu after free: expected SIGABRT "
                 "and \"written after free\" naming %s; the child %s; stderr: %.600s",
                 size, unit, offset, cookie, child_verdict(&r, how, sizeof(how)), r.out);
    drop_background();
}

static void test_write_after_free_caught_thread_cache_object(void **state)
{
    (void)state;
#ifdef TU_ASAN
    skip();
#endif
    expect_write_after_free_caught(512u << 10, 64, 3, 6);
    expect_write_after_free_caught(64u << 10, 8, 1, 0);
}

static void test_write_after_free_caught_chunk_map_object(void **state)
{
    (void)state;
#ifdef TU_ASAN
    skip();
#endif
    expect_write_after_free_caught(512u << 10, 5000, 2, 4000);
    expect_write_after_free_caught(1u << 20, 3000, 0, 0);
}

/* A freed object written to, whose space comes back as part of a larger
 * allocation: the check covers the whole new allocation. */
struct merged {
    unsigned char *a;
    size_t a_size, big;
};

static void write_then_allocate_bigger(void *arg)
{
    struct merged *m = arg;
    ((volatile unsigned char *)pcpu_ptr(m->a, 1))[m->a_size / 2] = 0x42;
    for (unsigned int i = 0; i < 4096; i++) {
        unsigned char *p = pcpu_alloc(m->big, 0);
        if (!p) {
            fprintf(stderr, "child: pcpu_alloc(%zu) failed: %s\n", m->big, strerror(errno));
            _exit(4);
        }
        if (p <= m->a + m->a_size / 2 && m->a + m->a_size / 2 < p + m->big) {
            fprintf(stderr, "child: %p covers the written byte and nothing was reported\n",
                    (void *)p);
            _exit(2);
        }
    }
    fprintf(stderr, "child: the space of %p was never handed out again\n", (void *)m->a);
    _exit(3);
}

static void test_write_after_free_caught_in_merged_space(void **state)
{
    (void)state;
#ifdef TU_ASAN
    skip();
#endif
    fill_background(512u << 10);
    /* Bigger than the thread caches' classes (4 KiB), so the freed space
     * goes back to the map where a larger request can take it. */
    struct merged m = {.a_size = 5000, .big = 12000};
    m.a = pcpu_alloc(m.a_size, 0);
    unsigned char *b = pcpu_alloc(m.a_size, 0);
    assert_non_null(m.a);
    assert_non_null(b);
    memset(pcpu_ptr(m.a, 1), 0x33, m.a_size);
    memset(pcpu_ptr(b, 1), 0x33, m.a_size);
    pcpu_free(m.a);
    pcpu_free(b);
    struct child_result r;
    char how[128];
    run_watched(write_then_allocate_bigger, &m, 60, &r);
    if (!child_aborted(&r) || !strstr(r.out, "written after free"))
        fail_msg("write into freed space handed out as part of a larger object: expected SIGABRT "
                 "and \"written after free\"; the child %s; stderr: %.600s",
                 child_verdict(&r, how, sizeof(how)), r.out);
    drop_background();
}

static void double_free(void *arg)
{
    pcpu_free(arg);
    pcpu_free(arg);
}

static void do_free(void *arg)
{
    pcpu_free(arg);
}

static void expect_bad_free(void (*fn)(void *), void *arg, const char *what)
{
    struct child_result r;
    char how[128], cookie[32];
    snprintf(cookie, sizeof(cookie), "%p", arg);
    run_watched(fn, arg, 60, &r);
    if (!child_aborted(&r) || !strstr(r.out, "percpu:") || !strstr(r.out, cookie))
        fail_msg("%s of %s among many live objects: expected SIGABRT naming the cookie; the child "
                 "%s; stderr: %.600s",
                 what, cookie, child_verdict(&r, how, sizeof(how)), r.out);
}

static void test_bad_frees_caught_among_many_objects(void **state)
{
    (void)state;
    fill_background(64u << 10);
    expect_bad_free(double_free, background[NR_BACKGROUND / 2], "double free");
    expect_bad_free(double_free, background[7], "double free"); /* a 40-byte one */
    char *big = pcpu_alloc(5000, 0);
    assert_non_null(big);
    expect_bad_free(double_free, big, "double free");
    expect_bad_free(do_free, big + 16, "interior free");
    pcpu_free(big);
    expect_bad_free(do_free, big, "free of a freed object");
    drop_background();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        /* The quick ones first: they also run in time on a quadratic build. */
        cmocka_unit_test_teardown(test_write_after_free_caught_thread_cache_object, cleanup),
        cmocka_unit_test_teardown(test_write_after_free_caught_chunk_map_object, cleanup),
        cmocka_unit_test_teardown(test_write_after_free_caught_in_merged_space, cleanup),
        cmocka_unit_test_teardown(test_bad_frees_caught_among_many_objects, cleanup),
        cmocka_unit_test_teardown(test_robust_many_objects_512k_units, cleanup),
        cmocka_unit_test_teardown(test_robust_many_objects_64k_units, cleanup),
        cmocka_unit_test_teardown(test_robust_many_objects_1m_units, cleanup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
