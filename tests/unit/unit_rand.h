/* SPDX-License-Identifier: MIT */
/*
 * unit_rand.h - deterministic pseudo-random numbers for the white-box unit
 * tests.  The seed is fixed so a failure reproduces; PCPU_UNIT_SEED in the
 * environment picks another one (each program prints the seed it used).
 */
#ifndef PCPU_UNIT_RAND_H
#define PCPU_UNIT_RAND_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static uint64_t unit_rng = 0x9e3779b97f4a7c15ull;

static inline void unit_seed(uint64_t fallback)
{
    const char *s = getenv("PCPU_UNIT_SEED");
    unit_rng = s && *s ? strtoull(s, NULL, 0) : fallback;
    if (unit_rng == 0)
        unit_rng = 1;
    fprintf(stderr, "seed 0x%llx (set PCPU_UNIT_SEED to change)\n", (unsigned long long)unit_rng);
}

/* xorshift64* */
static inline uint64_t unit_rand(void)
{
    unit_rng ^= unit_rng >> 12;
    unit_rng ^= unit_rng << 25;
    unit_rng ^= unit_rng >> 27;
    return unit_rng * 0x2545f4914f6cdd1dull;
}

/* Uniform in [lo, hi]. */
static inline size_t unit_range(size_t lo, size_t hi)
{
    return lo + (size_t)(unit_rand() % (uint64_t)(hi - lo + 1));
}

/* True with probability pct percent. */
static inline int unit_chance(unsigned int pct)
{
    return unit_rand() % 100 < pct;
}

#endif
