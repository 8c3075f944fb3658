/* SPDX-License-Identifier: MIT */
/* pcpu_testlib.c - a shared library with its own static per-CPU variables, loaded by test_statics with dlopen(). */
#include <stdint.h>
#include <string.h>

#include "percpu.h"

#define EXPORT __attribute__((visibility("default")))

struct tl_pair {
    int a;
    long b;
};

struct tl_aligned {
    uint64_t v;
} __attribute__((aligned(64)));

typedef unsigned char tl_buf_t[300];

PCPU_DEFINE(long, tl_counter) = 42;
PCPU_DEFINE(int, tl_zero);
PCPU_DEFINE(struct tl_pair, tl_pair) = {7, -9};
PCPU_DEFINE(struct tl_aligned, tl_aligned) = {0xfeedfacecafebeefull};
PCPU_DEFINE(tl_buf_t, tl_buf) = {[0] = 1, [150] = 2, [299] = 3};
PCPU_DEFINE(uint32_t, tl_big_zero[512]);

EXPORT long *pcpu_testlib_counter(void)
{
    return PCPU_VAR(tl_counter);
}

/* 0 if every variable holds its initial value in unit cpu, else a code
 * saying which one does not. */
EXPORT int pcpu_testlib_check(unsigned int cpu)
{
    if (*PCPU_PTR(PCPU_VAR(tl_counter), cpu) != 42)
        return 1;
    if (*PCPU_PTR(PCPU_VAR(tl_zero), cpu) != 0)
        return 2;
    struct tl_pair *p = PCPU_PTR(PCPU_VAR(tl_pair), cpu);
    if (p->a != 7 || p->b != -9)
        return 3;
    struct tl_aligned *al = PCPU_PTR(PCPU_VAR(tl_aligned), cpu);
    if ((uintptr_t)al % 64 != 0)
        return 4;
    if (al->v != 0xfeedfacecafebeefull)
        return 5;
    unsigned char *b = *PCPU_PTR(PCPU_VAR(tl_buf), cpu);
    for (int i = 0; i < 300; i++)
        if (b[i] != (i == 0 ? 1 : i == 150 ? 2 : i == 299 ? 3 : 0))
            return 6;
    uint32_t *z = *PCPU_PTR(PCPU_VAR(tl_big_zero), cpu);
    for (int i = 0; i < 512; i++)
        if (z[i])
            return 7;
    return 0;
}

/* Overwrite every variable in every unit (a later load must not see it). */
EXPORT void pcpu_testlib_scribble(void)
{
    pcpu_for_each_cpu(cpu)
    {
        *PCPU_PTR(PCPU_VAR(tl_counter), cpu) = -1;
        *PCPU_PTR(PCPU_VAR(tl_zero), cpu) = 5;
        PCPU_PTR(PCPU_VAR(tl_pair), cpu)->b = 1;
        PCPU_PTR(PCPU_VAR(tl_aligned), cpu)->v = 0;
        memset(*PCPU_PTR(PCPU_VAR(tl_buf), cpu), 0x55, sizeof(tl_buf_t));
        memset(*PCPU_PTR(PCPU_VAR(tl_big_zero), cpu), 0xaa, 512 * sizeof(uint32_t));
    }
}

/* The cookie of one variable, to check from the program that it is a
 * per-CPU cookie. */
EXPORT void *pcpu_testlib_cookie(void)
{
    return PCPU_VAR(tl_pair);
}
