/* SPDX-License-Identifier: MIT */
/* test_walk.c - seeded random walk of allocations and frees, pcpu_validate() after every step, contents checked against a shadow. */
#include "testutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_LIVE 96

/* Sanitizer builds check every step 10-20x slower (and ASan marks the
 * shadow of every unit: 256 units cost 256 marks per call), so they walk
 * a quarter as far; the same seeds, the same kinds of steps. */
#define STEPS(n) TU_STEPS(n, 4)

struct obj {
    unsigned char *cookie;
    size_t size;
    uint32_t tag;
};

/* The byte an object holds at offset i in unit cpu. */
static unsigned char pattern(uint32_t tag, size_t i, unsigned int cpu)
{
    uint32_t x = tag * 2654435761u + (uint32_t)i * 40503u + cpu * 97u;
    return (unsigned char)(x >> 13) | 1; /* never zero */
}

struct walk {
    struct obj live[MAX_LIVE];
    unsigned int nr_live;
    unsigned int units[4]; /* the units written and checked */
    unsigned int nr_units;
};

static void check_obj(const struct walk *w, const struct obj *o)
{
    for (unsigned int k = 0; k < w->nr_units; k++) {
        const unsigned char *p = pcpu_ptr(o->cookie, w->units[k]);
        for (size_t i = 0; i < o->size; i++)
            if (p[i] != pattern(o->tag, i, w->units[k]))
                fail_msg("object %p (size %zu, tag %u): unit %u byte %zu is 0x%02x, want 0x%02x",
                         (void *)o->cookie, o->size, o->tag, w->units[k], i, p[i],
                         pattern(o->tag, i, w->units[k]));
    }
}

static void random_walk(uint64_t seed, int steps, bool validate_each)
{
    struct walk *w = calloc(1, sizeof(*w));
    assert_non_null(w);
    unsigned int n = pcpu_nr_cpus();
    w->units[w->nr_units++] = 0;
    if (n > 1)
        w->units[w->nr_units++] = n - 1;
    if (n > 2)
        w->units[w->nr_units++] = n / 2;
    size_t ps = (size_t)sysconf(_SC_PAGESIZE);
    uint64_t rng = seed;
    uint32_t next_tag = 1;
    struct pcpu_stats st0 = tu_stats();
    double t0 = tu_now();
    for (int step = 0; step < steps; step++) {
        uint64_t r = tu_rand(&rng);
        bool do_alloc = w->nr_live == 0 || (w->nr_live < MAX_LIVE && (r & 3) != 0 &&
                                            (r % 100) < 55);
        if (do_alloc) {
            /* Mostly small, sometimes up to a page. */
            uint64_t kind = (r >> 8) % 16;
            size_t size = kind < 10 ? 1 + (r >> 16) % 64
                        : kind < 14 ? 1 + (r >> 16) % 512
                                    : 1 + (r >> 16) % 4096;
            size_t align = (r >> 32) % 4 == 0 ? (size_t)1 << ((r >> 40) % 13) : 0;
            if (align > ps)
                align = ps;
            bool reserved = (r >> 48) % 32 == 0;
            unsigned char *c = reserved ? pcpu_alloc_reserved(size, align) : pcpu_alloc(size, align);
            if (!c)
                fail_msg("step %d: alloc(%zu, %zu) failed: %s", step, size, align,
                         strerror(errno));
            if (align)
                assert_int_equal((uintptr_t)c % align, 0);
            /* No other live object overlaps it. */
            for (unsigned int j = 0; j < w->nr_live; j++) {
                const struct obj *o = &w->live[j];
                if (c < o->cookie + o->size && o->cookie < c + size)
                    fail_msg("step %d: %p+%zu overlaps live %p+%zu", step, (void *)c, size,
                             (void *)o->cookie, o->size);
            }
            struct obj *o = &w->live[w->nr_live++];
            *o = (struct obj){c, size, next_tag++};
            for (unsigned int k = 0; k < w->nr_units; k++) {
                unsigned char *p = pcpu_ptr(c, w->units[k]);
                for (size_t i = 0; i < size; i++) {
                    if (p[i])
                        fail_msg("step %d: new object %p unit %u byte %zu not zero", step,
                                 (void *)c, w->units[k], i);
                    p[i] = pattern(o->tag, i, w->units[k]);
                }
            }
        } else {
            unsigned int j = (unsigned int)((r >> 8) % w->nr_live);
            struct obj *o = &w->live[j];
            check_obj(w, o);
            pcpu_free(o->cookie);
            w->live[j] = w->live[--w->nr_live];
        }
        if (validate_each || step % 64 == 0) {
            int problems = pcpu_validate();
            if (problems)
                fail_msg("step %d: pcpu_validate found %d problems", step, problems);
        }
        if (step % 2048 == 0)
            for (unsigned int j = 0; j < w->nr_live; j++)
                check_obj(w, &w->live[j]);
    }
    struct pcpu_stats st = tu_stats();
    printf("# walk seed %llu: %d steps, %u units, %.2f s, %u chunks (max %u), %zu cached\n",
           (unsigned long long)seed, steps, n, tu_now() - t0, st.nr_chunks,
           st.nr_max_chunks, st.cached_objects);
    assert_int_equal(st.nr_cur_alloc - st0.nr_cur_alloc, w->nr_live);
    for (unsigned int j = 0; j < w->nr_live; j++) {
        check_obj(w, &w->live[j]);
        pcpu_free(w->live[j].cookie);
    }
    st = tu_stats();
    assert_int_equal(st.nr_cur_alloc, st0.nr_cur_alloc);
    assert_valid();
    pcpu_reclaim(true);
    assert_valid();
    assert_int_equal(tu_stats().nr_chunks, 1);
    free(w);
}

static void test_walk_small_units(void **state)
{
    (void)state;
    /* Small units: chunks fill up and new ones come and go. */
    struct pcpu_config cfg = {.nr_cpus = 4, .unit_size = 64 * 1024, .reserved_size = 4096};
    tu_reinit(&cfg);
    random_walk(1, STEPS(8000), true);
    random_walk(0xdeadbeef, STEPS(5000), true);
}

static void test_walk_default(void **state)
{
    (void)state;
    tu_reinit(NULL);
    random_walk(7, STEPS(1500), true);
}

static void test_walk_no_cache(void **state)
{
    (void)state;
    struct pcpu_config cfg = {.unit_size = 64 * 1024, .flags = PCPU_F_NO_CACHE};
    tu_reinit(&cfg);
    random_walk(99, STEPS(8000), true);
}

static void test_walk_256(void **state)
{
    (void)state;
    struct pcpu_config cfg = {.nr_cpus = 256, .unit_size = 64 * 1024};
    tu_reinit(&cfg);
    random_walk(12345, STEPS(3000), true);
    random_walk(777, STEPS(20000), false);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_walk_small_units),
        cmocka_unit_test(test_walk_default),
        cmocka_unit_test(test_walk_no_cache),
        cmocka_unit_test(test_walk_256),
    };
    return TU_RUN_THEN_EXIT(tests);
}
