/* SPDX-License-Identifier: MIT */
/* test_longwalk.c - a long seeded random walk of allocator operations checked against the reference model. */
/*
 * The same model as the fuzzer (model.h), driven by a generator: the
 * walk is split into segments, each with its own configuration (2 or 256
 * units, both backends, robust mode, no thread cache), joined by exit+init.
 * About 200k operations by default (25k under a sanitizer); PCPU_LONGWALK=1 makes it millions
 * (PCPU_LONGWALK=<n> sets the count), PCPU_LONGWALK_SEED the seed.
 * pcpu_validate() runs every 64 operations (it walks every bitmap, so
 * running it after each one would turn minutes into hours), the touched
 * object is checked after each operation, and every live object at the
 * end of each segment.
 */
#include "testutil.h"
#include "model.h"

#include <stdlib.h>

static struct model m;

static void run_segment(uint64_t seed, unsigned long ops, unsigned int nr_units,
                        enum pcpu_backend backend, unsigned int flags)
{
    struct model_src src = {.rng = seed};
    m.validate_each = false;
    if (model_init(&m, nr_units, backend, flags) != 0)
        fail_msg("%s", m.err);
    for (unsigned long i = 0; i < ops; i++) {
        int r = model_step(&m, &src);
        if (!r && i % 64 == 63)
            r = model_validate(&m);
        if (r)
            fail_msg("seed %llu, operation %lu (%u units, %s, flags 0x%x): %s",
                     (unsigned long long)seed, i, m.nr_units,
                     m.backend == PCPU_BACKEND_KM ? "km" : "vm", m.flags, m.err);
    }
    if (model_finish(&m) != 0)
        fail_msg("seed %llu, end of segment: %s", (unsigned long long)seed, m.err);
}

static void test_longwalk(void **state)
{
    (void)state;
#ifdef TU_SLOW_BUILD
    unsigned long total = 25000; /* the sanitizers make each step ~10x dearer */
#else
    unsigned long total = 200000;
#endif
    const char *e = getenv("PCPU_LONGWALK");
    if (e && *e) {
        unsigned long n = strtoul(e, NULL, 0);
        total = n > 1 ? n : 4000000;
    }
    uint64_t seed = 0x5eed;
    const char *s = getenv("PCPU_LONGWALK_SEED");
    if (s && *s)
        seed = strtoull(s, NULL, 0);
    enum pcpu_backend env = tu_backend();
    enum pcpu_backend other = env == PCPU_BACKEND_VM ? PCPU_BACKEND_KM : PCPU_BACKEND_VM;
    /* Robust mode validates on every call, so its segment is short. */
    struct {
        unsigned int units;
        enum pcpu_backend backend;
        unsigned int flags;
        unsigned long share; /* per 1000 */
    } seg[] = {
        {2, env, 0, 400},
        {256, env, 0, 250},
        {2, env, PCPU_F_NO_CACHE, 150},
        {256, other, 0, 150},
        {2, env, PCPU_F_DEBUG, 50},
    };
    unsigned long done = 0;
    for (unsigned int round = 0; done < total; round++) {
        for (unsigned int i = 0; i < sizeof(seg) / sizeof(seg[0]) && done < total; i++) {
            unsigned long n = total / 1000 * seg[i].share;
            if (seg[i].flags & PCPU_F_DEBUG && n > 20000)
                n = 20000;
            if (n == 0)
                n = 100;
            run_segment(seed + round * 16 + i, n, seg[i].units, seg[i].backend, seg[i].flags);
            done += n;
        }
    }
    print_message("longwalk: %lu operations (%lu allocs, %lu frees, %lu inits, %lu ENOMEM)\n",
                  m.ops, m.allocs, m.frees, m.reinits, m.enomem);
    pcpu_exit();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_longwalk),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
