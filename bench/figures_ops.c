/* SPDX-License-Identifier: MIT */
/*
 * figures_ops.c - this-CPU operations other than the increment, on a
 * pcpu_alloc'd long, ns per op per thread, at T=1 and T=all:
 *
 *   ops.percpu.xchg     pcpu_this_xchg() (a load and a store that commits)
 *   ops.percpu.cmpxchg  pcpu_this_cmpxchg() that succeeds (the thread's
 *                       own unit: one load, compare, store)
 *
 * Checked after each measurement: what xchg put in is what came out plus
 * what is left; the sum is the number of successful compares.
 */
#define _GNU_SOURCE
#include "bench.h"

#include <stdlib.h>

#include "percpu.h"

static long *ops_cookie;
/* xchg: values put in and taken out, over every thread (conservation) */
static uint64_t ops_in, ops_out;

struct ops_state {
    long *c;
    uint64_t in, out, ok;
};

static void *ops_setup(const struct loop *l, unsigned int tid)
{
    (void)l;
    (void)tid;
    struct ops_state *s = calloc(1, sizeof(*s));
    if (!s)
        die("calloc");
    s->c = ops_cookie;
    return s;
}

static void ops_teardown(void *p)
{
    struct ops_state *s = p;
    __atomic_fetch_add(&ops_in, s->in, __ATOMIC_RELAXED);
    __atomic_fetch_add(&ops_out, s->out + s->ok, __ATOMIC_RELAXED);
    free(s);
}

static void ops_xchg_run(void *p, uint64_t n)
{
    struct ops_state *s = p;
    long *c = s->c;
    uint64_t in = 0, out = 0;
    for (uint64_t i = 0; i < n; i++) {
        in += i;
        out += (uint64_t)pcpu_this_xchg(c, (long)i);
    }
    s->in += in;
    s->out += out;
}

static void ops_xchg_check(const struct loop *l, uint64_t total)
{
    (void)total;
    /* what went in is what came out plus what is still there */
    uint64_t left = (uint64_t)pcpu_sum(ops_cookie);
    if (ops_in != ops_out + left)
        fprintf(stderr, "percpu-bench: %s: %llu put in, %llu taken out + %llu left: "
                "EXCHANGES LOST\n", l->name, (unsigned long long)ops_in,
                (unsigned long long)ops_out, (unsigned long long)left);
    ops_in = ops_out = 0;
    pcpu_for_each_cpu(cpu) *PCPU_PTR(ops_cookie, cpu) = 0;
}

static void ops_cmpxchg_run(void *p, uint64_t n)
{
    struct ops_state *s = p;
    long *c = s->c;
    long v = pcpu_this_read(c);
    uint64_t ok = 0;
    for (uint64_t i = 0; i < n; i++) {
        long seen = pcpu_this_cmpxchg(c, v, v + 1);
        if (__builtin_expect(seen == v, 1)) {
            v++;
            ok++;
        } else {
            v = seen;
        }
    }
    s->ok += ok;
}

static void ops_cmpxchg_check(const struct loop *l, uint64_t total)
{
    (void)total;
    /* every successful compare added one */
    uint64_t sum = (uint64_t)pcpu_sum(ops_cookie);
    if (sum != ops_out)
        fprintf(stderr, "percpu-bench: %s: sum %llu, %llu successful compares: "
                "UPDATES LOST\n", l->name, (unsigned long long)sum,
                (unsigned long long)ops_out);
    ops_in = ops_out = 0;
    pcpu_for_each_cpu(cpu) *PCPU_PTR(ops_cookie, cpu) = 0;
}

void figures_ops(void)
{
    ops_cookie = PCPU_NEW(long);
    if (!ops_cookie)
        die("pcpu_alloc");
    struct loop loops[] = {
        {.name = "ops.percpu.xchg", .setup = ops_setup, .run = ops_xchg_run,
         .teardown = ops_teardown, .check = ops_xchg_check},
        {.name = "ops.percpu.cmpxchg", .setup = ops_setup, .run = ops_cmpxchg_run,
         .teardown = ops_teardown, .check = ops_cmpxchg_check},
    };
    for (size_t i = 0; i < sizeof(loops) / sizeof(loops[0]); i++)
        measure_1_n(&loops[i]);
    pcpu_free(ops_cookie);
}
