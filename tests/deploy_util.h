/* SPDX-License-Identifier: MIT */
/* deploy_util.h - one short workload of every kind (allocation with reclaim, every this-CPU operation, lists, counters, refs, rwsems), checked exactly, for the deployment-environment tests. */
/*
 * The deployment tests (test_deploy_seccomp.c, test_deploy_noproc.c,
 * deploy_workload.c under valgrind) take something away from the process
 * -- a system call, /proc and /sys, CPUs, address space -- and then need
 * to show that everything the library offers still works and gives exact
 * results.  This header is that "everything": dw_run() runs
 *
 *   - allocation and free of many sizes and alignments (reserved ones
 *     too), every new object checked zero in a sample of units, the
 *     units written, frees in batches big enough to be zeroed through
 *     PAGEMAP_SCAN when there are many units, pcpu_reclaim(false/true),
 *     pcpu_validate() after each step, and no allocation left behind;
 *   - every this-CPU operation (1-, 2-, 4- and 8-byte objects) from
 *     several threads, with exact sums (xchg and cmpxchg included);
 *   - per-CPU lists: push/pop from every thread while another thread
 *     takes units' lists whole with pcpu_list_pop_all(); every node ends
 *     up in exactly one place;
 *   - counters: adds of every kind (batch 1 included) with an exact sum,
 *     pcpu_counter_init_many(), and pcpu_counter_limited_add() from every
 *     thread up to its limit exactly and back down to its lower limit;
 *   - refs: get/put/tryget from every thread, pcpu_ref_kill() while they
 *     run, release exactly once and only after the last put; a ref killed,
 *     reinitialised, switched to atomic and back, killed again;
 *   - an rwsem: readers in every thread check what a writer thread
 *     changes under the write lock (never half of it);
 *
 * and returns pcpu_stats_get()'s snapshot, whose rseq field says whether
 * the this-CPU operations used rseq or atomics.  Any wrong result ends
 * the process with status 1 and a line on stderr (the tests run it in
 * child processes); it uses no test framework so that the valgrind
 * workload can use it too.
 */
#ifndef PCPU_DEPLOY_UTIL_H
#define PCPU_DEPLOY_UTIL_H

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "percpu.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define DW_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define DW_SANITIZER 1
#endif
#endif

/* What the workload is told. */
struct dw_opts {
    const char *name;      /* for messages                                  */
    unsigned int threads;  /* worker threads; 0: the calling thread alone   */
    unsigned int iters;    /* this-CPU operations of each kind per worker   */
    bool pin;              /* pin worker i to the i-th CPU the process may use */
};

/* What it saw. */
struct dw_result {
    struct pcpu_stats stats;     /* pcpu_stats_get() at the end          */
    unsigned int units_seen;     /* distinct pcpu_this_cpu() of the workers */
    bool rseq_before_threads;    /* stats.rseq after the calling thread's
                                    first operations, before any worker ran */
};

static const char *dw_name = "deploy";

__attribute__((noreturn, format(printf, 4, 5), unused)) static void
dw_fail(const char *file, int line, const char *cond, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s:%d: %s: check failed: %s: ", file, line, dw_name, cond);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(NULL);
    _exit(1);
}

#define DW_CHECK(cond, ...)                                                     \
    do {                                                                        \
        if (!(cond))                                                            \
            dw_fail(__FILE__, __LINE__, #cond, __VA_ARGS__);                    \
    } while (0)

/* ---- workers --------------------------------------------------------------- */

#define DW_MAX_THREADS 16

/* Workers that have finished (the calling thread's own part, see
 * dw_run_workers(), polls it). */
static unsigned int dw_done;
static unsigned int dw_nr_workers;
static bool dw_workers_running(void)
{
    return __atomic_load_n(&dw_done, __ATOMIC_ACQUIRE) < dw_nr_workers;
}

struct dw_worker {
    unsigned int id;
    const struct dw_opts *o;
    void (*fn)(struct dw_worker *w);
    pthread_barrier_t *start;
    int cpu;                 /* to pin to, or -1 */
    /* results, per piece */
    uint64_t n1, n2, n3;
    unsigned char seen[64];  /* units seen (first 512, as bits) */
};

static void dw_note_unit(struct dw_worker *w)
{
    int u = pcpu_this_cpu();
    DW_CHECK(u >= 0 && (unsigned int)u < pcpu_nr_cpus(), "pcpu_this_cpu() = %d of %u units", u,
             pcpu_nr_cpus());
    if (u < 512)
        w->seen[u / 8] |= (unsigned char)(1u << (u % 8));
}

static void *dw_thread_main(void *arg)
{
    struct dw_worker *w = arg;
    if (w->cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(w->cpu, &set);
        DW_CHECK(sched_setaffinity(0, sizeof(set), &set) == 0, "pinning to CPU %d: %s", w->cpu,
                 strerror(errno));
    }
    if (w->start)
        pthread_barrier_wait(w->start);
    w->fn(w);
    __atomic_fetch_add(&dw_done, 1, __ATOMIC_RELEASE);
    return NULL;
}

/* The i-th CPU the process may run on, or -1. */
static int dw_allowed_cpu(unsigned int i)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) != 0)
        return -1;
    int n = CPU_COUNT(&set);
    if (n <= 0)
        return -1;
    unsigned int k = i % (unsigned int)n;
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &set) && k-- == 0)
            return c;
    return -1;
}

/* Run fn in o->threads threads (or once in this one), plus extra(arg) in
 * this thread meanwhile if given (with no threads: afterwards; it may
 * loop while dw_workers_running()); w[] gets the workers' results. */
static void dw_run_workers(const struct dw_opts *o, struct dw_worker *w,
                           void (*fn)(struct dw_worker *), void (*extra)(void *), void *arg)
{
    unsigned int n = o->threads ? o->threads : 1;
    DW_CHECK(n <= DW_MAX_THREADS, "%u threads", n);
    for (unsigned int i = 0; i < n; i++) {
        memset(&w[i], 0, sizeof(w[i]));
        w[i].id = i;
        w[i].o = o;
        w[i].fn = fn;
        w[i].cpu = o->pin ? dw_allowed_cpu(i) : -1;
    }
    dw_done = 0;
    dw_nr_workers = n;
    if (o->threads == 0) {
        fn(&w[0]);
        dw_done = 1;
        if (extra)
            extra(arg);
        return;
    }
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, n + 1);
    pthread_t t[DW_MAX_THREADS];
    for (unsigned int i = 0; i < n; i++) {
        w[i].start = &start;
        int e = pthread_create(&t[i], NULL, dw_thread_main, &w[i]);
        DW_CHECK(e == 0, "pthread_create: %s", strerror(e));
    }
    pthread_barrier_wait(&start);
    if (extra)
        extra(arg);
    for (unsigned int i = 0; i < n; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&start);
}

/* ---- allocation ------------------------------------------------------------ */

/* A sample of units to write and check: the first, the last, some between. */
static unsigned int dw_sample(unsigned int *u, unsigned int max)
{
    unsigned int n = pcpu_nr_cpus(), k = 0;
    unsigned int want[] = {0, 1, 2, n / 3, n / 2, n - 2, n - 1};
    for (unsigned int i = 0; i < sizeof(want) / sizeof(want[0]) && k < max; i++) {
        if (want[i] >= n)
            continue;
        bool dup = false;
        for (unsigned int j = 0; j < k; j++)
            dup = dup || u[j] == want[i];
        if (!dup)
            u[k++] = want[i];
    }
    return k;
}

struct dw_obj {
    unsigned char *p;
    size_t size;
    unsigned char seed;
};

static void dw_obj_new(struct dw_obj *ob, size_t size, size_t align, bool reserved,
                       unsigned char seed)
{
    unsigned int u[8], nu = dw_sample(u, 8);
    errno = 0;
    ob->p = reserved ? pcpu_alloc_reserved(size, align) : pcpu_alloc(size, align);
    DW_CHECK(ob->p != NULL, "pcpu_alloc%s(%zu, %zu): %s", reserved ? "_reserved" : "", size,
             align, strerror(errno));
    DW_CHECK(align <= 1 || ((uintptr_t)ob->p & (align - 1)) == 0, "%p not aligned to %zu",
             (void *)ob->p, align);
    ob->size = size;
    ob->seed = seed;
    for (unsigned int i = 0; i < nu; i++) {
        unsigned char *q = pcpu_ptr(ob->p, u[i]);
        for (size_t b = 0; b < size; b++)
            DW_CHECK(q[b] == 0, "new object %p (%zu bytes) not zero: unit %u byte %zu is 0x%02x",
                     (void *)ob->p, size, u[i], b, q[b]);
        memset(q, (unsigned char)(seed + u[i]), size);
    }
}

static void dw_obj_check(const struct dw_obj *ob)
{
    unsigned int u[8], nu = dw_sample(u, 8);
    for (unsigned int i = 0; i < nu; i++) {
        const unsigned char *q = pcpu_ptr(ob->p, u[i]);
        for (size_t b = 0; b < ob->size; b++)
            DW_CHECK(q[b] == (unsigned char)(ob->seed + u[i]),
                     "object %p (%zu bytes) unit %u byte %zu changed", (void *)ob->p, ob->size,
                     u[i], b);
    }
}

static const size_t dw_sizes[] = {1,   2,   3,    4,    7,    8,    12,   16,    24,    31,
                                  32,  48,  64,   100,  128,  200,  256,  500,   512,   1000,
                                  1024, 2048, 4000, 4096, 8192, 10000, 30000, 65536};
static const size_t dw_aligns[] = {0, 1, 2, 8, 16, 64, 256, 4096};
#define DW_NSIZES (sizeof(dw_sizes) / sizeof(dw_sizes[0]))
#define DW_NALIGNS (sizeof(dw_aligns) / sizeof(dw_aligns[0]))
#define DW_OBJS 84
#define DW_SMALL 4500 /* more than a batch of frees with many units (4096) */

static void dw_alloc(const struct dw_opts *o)
{
    (void)o;
    static struct dw_obj obj[DW_OBJS];
    struct pcpu_stats st0;
    DW_CHECK(pcpu_stats_get(&st0) == 0, "pcpu_stats_get: %s", strerror(errno));
    for (unsigned int i = 0; i < DW_OBJS; i++)
        dw_obj_new(&obj[i], dw_sizes[i % DW_NSIZES], dw_aligns[i % DW_NALIGNS],
                   i % 16 == 5 && dw_sizes[i % DW_NSIZES] <= 1024, (unsigned char)(i * 7 + 1));
    for (unsigned int i = 0; i < DW_OBJS; i++)
        dw_obj_check(&obj[i]);
    DW_CHECK(pcpu_validate() == 0, "pcpu_validate after %u allocations", DW_OBJS);
    /* Every other one back, memory back to the OS, new ones in the holes:
     * they must read zero although their places were written. */
    for (unsigned int i = 0; i < DW_OBJS; i += 2)
        pcpu_free(obj[i].p);
    (void)pcpu_reclaim(false);
    DW_CHECK(pcpu_validate() == 0, "pcpu_validate after frees and reclaim");
    for (unsigned int i = 0; i < DW_OBJS; i += 2)
        dw_obj_new(&obj[i], dw_sizes[(i * 5 + 3) % DW_NSIZES], 0, false, (unsigned char)(i + 99));
    for (unsigned int i = 0; i < DW_OBJS; i++)
        dw_obj_check(&obj[i]);
    for (unsigned int i = 0; i < DW_OBJS; i++)
        pcpu_free(obj[i].p);
    (void)pcpu_reclaim(true);
    DW_CHECK(pcpu_validate() == 0, "pcpu_validate after freeing everything");

    /* Many small objects freed at once: with many units a batch is zeroed
     * where the kernel says pages hold data (PAGEMAP_SCAN), else unit by
     * unit. */
    static struct dw_obj small[DW_SMALL];
    for (int round = 0; round < 2; round++) {
        for (unsigned int i = 0; i < DW_SMALL; i++)
            dw_obj_new(&small[i], 8, 0, false, (unsigned char)(i + round));
        for (unsigned int i = 0; i < DW_SMALL; i += 97)
            dw_obj_check(&small[i]);
        for (unsigned int i = 0; i < DW_SMALL; i++)
            pcpu_free(small[i].p);
        (void)pcpu_reclaim(round == 1);
    }
    DW_CHECK(pcpu_validate() == 0, "pcpu_validate after the small objects");
    struct pcpu_stats st;
    DW_CHECK(pcpu_stats_get(&st) == 0, "pcpu_stats_get: %s", strerror(errno));
    DW_CHECK(st.nr_cur_alloc == st0.nr_cur_alloc, "%llu live allocations, %llu before",
             (unsigned long long)st.nr_cur_alloc, (unsigned long long)st0.nr_cur_alloc);
}

/* ---- this-CPU operations ----------------------------------------------------- */

struct dw_ops {
    uint8_t u8;
    uint8_t b8;      /* 1-byte add_return */
    uint16_t u16;
    uint32_t u32;
    uint64_t u64;
    int64_t s64;     /* inc/dec/sub/add_return */
    uint32_t cx;     /* try_cmpxchg increments */
    uint64_t cx2;    /* cmpxchg adds 2 */
    uint32_t pool;   /* tokens: add 1, take them all with xchg */
    uint16_t pool16; /* the same with 2 bytes */
    uint16_t bits;   /* or */
    uint16_t mask;   /* and */
    int32_t w;       /* write/read */
};
static struct dw_ops *dw_ops_obj;

static void dw_ops_worker(struct dw_worker *w)
{
    struct dw_ops *o = dw_ops_obj;
    uint64_t taken = 0, taken16 = 0;
    uint16_t bit = (uint16_t)(1u << (w->id % 16));
    dw_note_unit(w);
    for (unsigned int k = 0; k < w->o->iters; k++) {
        pcpu_this_inc(&o->u8);
        (void)pcpu_this_add_return(&o->b8, 1);
        pcpu_this_add(&o->u16, 3);
        pcpu_this_sub(&o->u32, 5);
        uint64_t r = pcpu_this_add_return(&o->u64, 7);
        DW_CHECK(r >= 7, "add_return gave %llu", (unsigned long long)r);
        (void)pcpu_this_inc_return(&o->s64);
        (void)pcpu_this_dec_return(&o->s64);
        (void)pcpu_this_sub_return(&o->s64, 2);
        pcpu_this_dec(&o->s64);
        (void)pcpu_this_add_return(&o->s64, 4);
        uint32_t old = pcpu_this_read(&o->cx);
        while (!pcpu_this_try_cmpxchg(&o->cx, &old, old + 1))
            ;
        for (;;) {
            uint64_t v = pcpu_this_read(&o->cx2);
            if (pcpu_this_cmpxchg(&o->cx2, v, v + 2) == v)
                break;
        }
        pcpu_this_add(&o->pool, 1);
        if (k % 3 == 0)
            taken += pcpu_this_xchg(&o->pool, 0);
        pcpu_this_inc(&o->pool16);
        if (k % 5 == 0)
            taken16 += pcpu_this_xchg(&o->pool16, (uint16_t)0);
        pcpu_this_or(&o->bits, bit);
        pcpu_this_and(&o->mask, (uint16_t)~bit);
        pcpu_this_write(&o->w, (int32_t)k);
        (void)pcpu_this_read(&o->w);
        if (k % 256 == 0)
            dw_note_unit(w);
    }
    w->n1 = taken;
    w->n2 = taken16;
}

static unsigned int dw_ops(const struct dw_opts *o)
{
    struct dw_worker w[DW_MAX_THREADS];
    dw_ops_obj = PCPU_NEW(struct dw_ops);
    DW_CHECK(dw_ops_obj != NULL, "PCPU_NEW: %s", strerror(errno));
    pcpu_for_each_cpu(cpu) PCPU_PTR(dw_ops_obj, cpu)->mask = 0xffff;
    dw_run_workers(o, w, dw_ops_worker, NULL, NULL);
    struct dw_ops *x = dw_ops_obj;
    unsigned int n = o->threads ? o->threads : 1;
    uint64_t total = (uint64_t)n * o->iters, taken = 0, taken16 = 0;
    uint16_t bits = 0;
    unsigned int seen = 0;
    for (unsigned int i = 0; i < n; i++) {
        taken += w[i].n1;
        taken16 += w[i].n2;
        bits |= (uint16_t)(1u << (i % 16));
        for (unsigned int b = 0; b < 512; b++)
            if (w[i].seen[b / 8] & (1u << (b % 8)))
                w[0].seen[b / 8] |= (unsigned char)(1u << (b % 8));
    }
    for (unsigned int b = 0; b < 512; b++)
        seen += (w[0].seen[b / 8] >> (b % 8)) & 1u;
    DW_CHECK(pcpu_sum(&x->u8) == (uint8_t)total, "u8 sum %u, expected %u", pcpu_sum(&x->u8),
             (uint8_t)total);
    DW_CHECK(pcpu_sum(&x->b8) == (uint8_t)total, "b8 sum %u", pcpu_sum(&x->b8));
    DW_CHECK(pcpu_sum(&x->u16) == (uint16_t)(3 * total), "u16 sum %u, expected %u",
             pcpu_sum(&x->u16), (uint16_t)(3 * total));
    DW_CHECK(pcpu_sum(&x->u32) == (uint32_t)(0 - 5 * total), "u32 sum %u", pcpu_sum(&x->u32));
    DW_CHECK(pcpu_sum(&x->u64) == 7 * total, "u64 sum %llu, expected %llu",
             (unsigned long long)pcpu_sum(&x->u64), (unsigned long long)(7 * total));
    DW_CHECK(pcpu_sum(&x->s64) == (int64_t)total, "s64 sum %lld, expected %llu",
             (long long)pcpu_sum(&x->s64), (unsigned long long)total);
    DW_CHECK(pcpu_sum(&x->cx) == (uint32_t)total, "try_cmpxchg sum %u", pcpu_sum(&x->cx));
    DW_CHECK(pcpu_sum(&x->cx2) == 2 * total, "cmpxchg sum %llu",
             (unsigned long long)pcpu_sum(&x->cx2));
    DW_CHECK(taken + pcpu_sum(&x->pool) == total, "xchg: %llu taken + %u left != %llu",
             (unsigned long long)taken, pcpu_sum(&x->pool), (unsigned long long)total);
    DW_CHECK((uint16_t)(taken16 + pcpu_sum(&x->pool16)) == (uint16_t)total,
             "2-byte xchg: %llu taken + %u left", (unsigned long long)taken16,
             pcpu_sum(&x->pool16));
    uint16_t or_all = 0, and_all = 0xffff;
    pcpu_for_each_cpu(cpu)
    {
        or_all |= PCPU_PTR(x, cpu)->bits;
        and_all &= PCPU_PTR(x, cpu)->mask;
    }
    DW_CHECK(or_all == bits, "or: 0x%x, expected 0x%x", or_all, bits);
    DW_CHECK((and_all & bits) == 0 && (and_all | bits) == 0xffff, "and: 0x%x (threads' bits 0x%x)",
             and_all, bits);
    pcpu_free(dw_ops_obj);
    dw_ops_obj = NULL;
    return seen;
}

/* ---- lists ----------------------------------------------------------------- */

#define DW_NODES 48 /* per worker */

struct dw_node {
    struct pcpu_list_node node;
    unsigned int id;
};
static struct dw_node dw_nodes[DW_MAX_THREADS * DW_NODES];
static struct pcpu_list *dw_list;
static unsigned char dw_node_count[DW_MAX_THREADS * DW_NODES];

/* Take every unit's list whole, counting the nodes. */
static void dw_pop_all_units(void)
{
    pcpu_for_each_cpu(cpu)
    {
        for (struct pcpu_list_node *x = pcpu_list_pop_all(dw_list, cpu); x;) {
            struct pcpu_list_node *next = x->next;
            struct dw_node *d = (struct dw_node *)(void *)x;
            DW_CHECK(d >= dw_nodes && d < dw_nodes + DW_MAX_THREADS * DW_NODES,
                     "pop_all returned a foreign node %p", (void *)x);
            __atomic_fetch_add(&dw_node_count[d->id], 1, __ATOMIC_RELAXED);
            x = next;
        }
    }
}

/* This thread, while the workers push and pop. */
static void dw_list_taker(void *arg)
{
    (void)arg;
    while (dw_workers_running()) {
        dw_pop_all_units();
        sched_yield();
    }
}

static void dw_list_worker(struct dw_worker *w)
{
    struct dw_node *held[DW_MAX_THREADS * DW_NODES];
    unsigned int nh = 0;
    for (unsigned int i = 0; i < DW_NODES; i++)
        held[nh++] = &dw_nodes[w->id * DW_NODES + i];
    unsigned int rounds = w->o->iters / 64 + 4;
    for (unsigned int r = 0; r < rounds; r++) {
        while (nh)
            pcpu_this_list_push(dw_list, &held[--nh]->node);
        for (unsigned int i = 0; i < DW_NODES; i++) {
            struct pcpu_list_node *x = pcpu_this_list_pop(dw_list);
            if (!x)
                break;
            held[nh++] = (struct dw_node *)(void *)x;
        }
        if (w->o->threads == 0 && r % 4 == 3)
            dw_pop_all_units(); /* no taker thread: take the lists here */
    }
    /* What this worker holds at the end counts once. */
    for (unsigned int i = 0; i < nh; i++)
        __atomic_fetch_add(&dw_node_count[held[i]->id], 1, __ATOMIC_RELAXED);
}

static void dw_lists(const struct dw_opts *o)
{
    struct dw_worker w[DW_MAX_THREADS];
    unsigned int n = o->threads ? o->threads : 1;
    dw_list = PCPU_NEW(struct pcpu_list);
    DW_CHECK(dw_list != NULL, "PCPU_NEW(struct pcpu_list): %s", strerror(errno));
    memset(dw_node_count, 0, sizeof(dw_node_count));
    for (unsigned int i = 0; i < n * DW_NODES; i++)
        dw_nodes[i].id = i;
    dw_run_workers(o, w, dw_list_worker, o->threads ? dw_list_taker : NULL, NULL);
    dw_pop_all_units();
    for (unsigned int i = 0; i < n * DW_NODES; i++)
        DW_CHECK(dw_node_count[i] == 1, "list node %u found %u times", i, dw_node_count[i]);
    pcpu_for_each_cpu(cpu)
        DW_CHECK(pcpu_list_pop_all(dw_list, cpu) == NULL, "unit %u not empty", cpu);
    pcpu_free(dw_list);
    dw_list = NULL;
}

/* ---- counters --------------------------------------------------------------- */

#define DW_LIMIT 3000

static struct pcpu_counter dw_cnt, dw_lim, dw_many[3];

static void dw_counter_worker(struct dw_worker *w)
{
    int64_t delta = 0;
    for (unsigned int k = 0; k < w->o->iters; k++) {
        pcpu_counter_add(&dw_cnt, 1);
        delta += 1;
        if (k % 7 == 0) {
            pcpu_counter_dec(&dw_cnt);
            delta -= 1;
        }
        if (k % 10 == 0) {
            pcpu_counter_add_batch(&dw_cnt, 2, 1); /* batch 1: straight to the count */
            delta += 2;
        }
        if (k % 50 == 0) {
            pcpu_counter_add(&dw_cnt, 100000); /* at least the batch: folds */
            delta += 100000;
        }
        pcpu_counter_inc(&dw_many[k % 3]);
    }
    w->n1 = (uint64_t)delta;
    /* Up to the limit, together with the other workers. */
    uint64_t ok = 0;
    while (pcpu_counter_limited_add(&dw_lim, DW_LIMIT, 1))
        ok++;
    w->n2 = ok;
}

/* Down to the lower limit 0. */
static void dw_counter_down(struct dw_worker *w)
{
    uint64_t ok = 0;
    while (pcpu_counter_limited_add(&dw_lim, 0, -1))
        ok++;
    w->n3 = ok;
}

static void dw_counters(const struct dw_opts *o)
{
    struct dw_worker w[DW_MAX_THREADS];
    unsigned int n = o->threads ? o->threads : 1;
    DW_CHECK(pcpu_counter_init(&dw_cnt, 100) == 0, "pcpu_counter_init: %s", strerror(errno));
    DW_CHECK(pcpu_counter_init(&dw_lim, 0) == 0, "pcpu_counter_init: %s", strerror(errno));
    DW_CHECK(pcpu_counter_init_many(dw_many, -5, 3) == 0, "pcpu_counter_init_many: %s",
             strerror(errno));
    dw_run_workers(o, w, dw_counter_worker, NULL, NULL);
    int64_t expect = 100;
    uint64_t ok = 0;
    for (unsigned int i = 0; i < n; i++) {
        expect += (int64_t)w[i].n1;
        ok += w[i].n2;
    }
    DW_CHECK(pcpu_counter_sum(&dw_cnt) == expect, "counter sum %lld, expected %lld",
             (long long)pcpu_counter_sum(&dw_cnt), (long long)expect);
    DW_CHECK(pcpu_counter_compare(&dw_cnt, expect) == 0, "compare with the exact value");
    DW_CHECK(pcpu_counter_compare(&dw_cnt, expect - 1) == 1, "compare below");
    DW_CHECK(pcpu_counter_compare(&dw_cnt, expect + 1) == -1, "compare above");
    int64_t bound = (int64_t)pcpu_counter_batch() * pcpu_nr_cpus();
    int64_t rd = pcpu_counter_read(&dw_cnt);
    DW_CHECK(rd - expect <= bound && expect - rd <= bound, "read %lld, sum %lld, bound %lld",
             (long long)rd, (long long)expect, (long long)bound);
    int64_t many = 0;
    for (int i = 0; i < 3; i++)
        many += pcpu_counter_sum(&dw_many[i]);
    DW_CHECK(many == (int64_t)n * o->iters - 15, "init_many counters sum to %lld", (long long)many);
    DW_CHECK(ok == DW_LIMIT, "limited_add succeeded %llu times up to the limit %d",
             (unsigned long long)ok, DW_LIMIT);
    DW_CHECK(pcpu_counter_sum(&dw_lim) == DW_LIMIT, "limited counter %lld",
             (long long)pcpu_counter_sum(&dw_lim));
    DW_CHECK(!pcpu_counter_limited_add(&dw_lim, DW_LIMIT, 1), "an add past the limit worked");
    dw_run_workers(o, w, dw_counter_down, NULL, NULL);
    ok = 0;
    for (unsigned int i = 0; i < n; i++)
        ok += w[i].n3;
    DW_CHECK(ok == DW_LIMIT, "limited_add down to 0 succeeded %llu times", (unsigned long long)ok);
    DW_CHECK(pcpu_counter_sum(&dw_lim) == 0, "limited counter %lld after going down",
             (long long)pcpu_counter_sum(&dw_lim));
    pcpu_counter_set(&dw_cnt, -3);
    DW_CHECK(pcpu_counter_sum_positive(&dw_cnt) == 0, "sum_positive of -3");
    DW_CHECK(pcpu_counter_read_positive(&dw_cnt) == 0, "read_positive of -3");
    pcpu_counter_destroy(&dw_cnt);
    pcpu_counter_destroy(&dw_lim);
    pcpu_counter_destroy_many(dw_many, 3);
}

/* ---- refs -------------------------------------------------------------------- */

static struct pcpu_ref dw_ref;
static unsigned int dw_released;
static unsigned int dw_ref_puts_left; /* workers that still hold their reference */
static unsigned int dw_ref_progress;

static void dw_ref_release(struct pcpu_ref *r)
{
    DW_CHECK(r == &dw_ref, "release of %p", (void *)r);
    DW_CHECK(__atomic_load_n(&dw_ref_puts_left, __ATOMIC_ACQUIRE) == 0,
             "release ran while %u workers still held references", dw_ref_puts_left);
    __atomic_fetch_add(&dw_released, 1, __ATOMIC_ACQ_REL);
}

static void dw_ref_worker(struct dw_worker *w)
{
    /* Holds one reference (taken for it by dw_refs()) throughout. */
    uint64_t live = 0;
    for (unsigned int k = 0; k < w->o->iters; k++) {
        pcpu_ref_get(&dw_ref);
        pcpu_ref_put(&dw_ref);
        if (pcpu_ref_tryget_live(&dw_ref)) {
            live++;
            pcpu_ref_put(&dw_ref);
        }
        DW_CHECK(pcpu_ref_tryget(&dw_ref), "tryget failed while a reference is held");
        pcpu_ref_get_many(&dw_ref, 3);
        pcpu_ref_put_many(&dw_ref, 4);
        if (k == w->o->iters / 4)
            __atomic_fetch_add(&dw_ref_progress, 1, __ATOMIC_RELEASE);
    }
    w->n1 = live;
    DW_CHECK(dw_released == 0, "released while held");
    __atomic_fetch_sub(&dw_ref_puts_left, 1, __ATOMIC_RELEASE);
    pcpu_ref_put(&dw_ref);
}

/* This thread: kill the ref while the workers run. */
static void dw_ref_killer(void *arg)
{
    unsigned int n = *(unsigned int *)arg;
    while (__atomic_load_n(&dw_ref_progress, __ATOMIC_ACQUIRE) < n && dw_workers_running())
        sched_yield();
    pcpu_ref_kill(&dw_ref);
    DW_CHECK(pcpu_ref_is_dying(&dw_ref), "not dying after kill");
    DW_CHECK(!pcpu_ref_tryget_live(&dw_ref), "tryget_live after kill");
}

static void dw_refs(const struct dw_opts *o)
{
    struct dw_worker w[DW_MAX_THREADS];
    unsigned int n = o->threads ? o->threads : 1;
    dw_released = 0;
    dw_ref_progress = 0;
    DW_CHECK(pcpu_ref_init(&dw_ref, dw_ref_release, 0) == 0, "pcpu_ref_init: %s",
             strerror(errno));
    dw_ref_puts_left = n;
    pcpu_ref_get_many(&dw_ref, n);
    if (o->threads == 0) {
        /* Alone: kill first, then the worker's get/put on a dying ref. */
        dw_ref_progress = n;
        dw_ref_killer(&n);
        dw_run_workers(o, w, dw_ref_worker, NULL, NULL);
    } else {
        dw_run_workers(o, w, dw_ref_worker, dw_ref_killer, &n);
    }
    DW_CHECK(dw_released == 1, "release ran %u times", dw_released);
    DW_CHECK(pcpu_ref_is_zero(&dw_ref), "not zero after the last put");
    DW_CHECK(!pcpu_ref_tryget(&dw_ref), "tryget at zero");
    pcpu_ref_exit(&dw_ref);

    /* Kill, reinit, switch to atomic and back, kill again: released twice. */
    dw_released = 0;
    dw_ref_puts_left = 0;
    DW_CHECK(pcpu_ref_init(&dw_ref, dw_ref_release, PCPU_REF_ALLOW_REINIT) == 0,
             "pcpu_ref_init: %s", strerror(errno));
    pcpu_ref_get(&dw_ref);
    pcpu_ref_kill(&dw_ref);
    DW_CHECK(dw_released == 0, "released with a reference left");
    pcpu_ref_put(&dw_ref);
    DW_CHECK(dw_released == 1, "released %u times after the last put", dw_released);
    pcpu_ref_reinit(&dw_ref);
    DW_CHECK(!pcpu_ref_is_dying(&dw_ref) && pcpu_ref_tryget_live(&dw_ref), "reinit");
    pcpu_ref_put(&dw_ref);
    pcpu_ref_switch_to_atomic_sync(&dw_ref);
    pcpu_ref_get(&dw_ref);
    pcpu_ref_switch_to_percpu(&dw_ref);
    pcpu_ref_put(&dw_ref);
    pcpu_ref_kill(&dw_ref);
    DW_CHECK(dw_released == 2, "released %u times after the second kill", dw_released);
    pcpu_ref_exit(&dw_ref);
}

/* ---- rwsem -------------------------------------------------------------------- */

#define DW_WRITES 20

static struct pcpu_rwsem dw_sem;
static uint64_t dw_sem_a, dw_sem_b;

static void dw_rwsem_reader(struct dw_worker *w)
{
    uint64_t reads = 0;
    for (unsigned int k = 0; k < w->o->iters / 4 + 1; k++) {
        bool got = k % 8 == 0 ? pcpu_rwsem_down_read_trylock(&dw_sem) : true;
        if (k % 8 != 0)
            pcpu_rwsem_down_read(&dw_sem);
        if (!got)
            continue;
        uint64_t a = dw_sem_a, b = dw_sem_b;
        DW_CHECK(a == b, "a reader saw half a write: %llu, %llu", (unsigned long long)a,
                 (unsigned long long)b);
        pcpu_rwsem_up_read(&dw_sem);
        reads++;
    }
    w->n1 = reads;
}

/* This thread: the writer. */
static void dw_rwsem_writer(void *arg)
{
    (void)arg;
    for (unsigned int i = 0; i < DW_WRITES; i++) {
        if (i % 5 == 0 && pcpu_rwsem_down_write_trylock(&dw_sem)) {
            /* got it without waiting */
        } else {
            pcpu_rwsem_down_write(&dw_sem);
        }
        /* (pcpu_rwsem_is_read_locked() may say true here for an instant
         * in the atomic fallback: a reader that found the writer counts
         * until it backs off; the header says so.) */
        dw_sem_a++;
        sched_yield();
        dw_sem_b++;
        pcpu_rwsem_up_write(&dw_sem);
        if (dw_workers_running())
            usleep(200);
    }
}

static void dw_rwsems(const struct dw_opts *o)
{
    struct dw_worker w[DW_MAX_THREADS];
    DW_CHECK(pcpu_rwsem_init(&dw_sem) == 0, "pcpu_rwsem_init: %s", strerror(errno));
    dw_sem_a = dw_sem_b = 0;
    dw_run_workers(o, w, dw_rwsem_reader, dw_rwsem_writer, NULL);
    DW_CHECK(dw_sem_a == DW_WRITES && dw_sem_b == DW_WRITES, "writes: %llu, %llu",
             (unsigned long long)dw_sem_a, (unsigned long long)dw_sem_b);
    DW_CHECK(!pcpu_rwsem_is_read_locked(&dw_sem), "read-locked at the end");
    pcpu_rwsem_destroy(&dw_sem);
}

/* ---- all of it ------------------------------------------------------------------ */

static struct pcpu_stats dw_stats(void)
{
    struct pcpu_stats st;
    DW_CHECK(pcpu_stats_get(&st) == 0, "pcpu_stats_get: %s", strerror(errno));
    DW_CHECK(st.nr_units == pcpu_nr_cpus(), "stats: %u units, pcpu_nr_cpus() %u", st.nr_units,
             pcpu_nr_cpus());
    return st;
}

/* Everything, in this order; the allocator may be set up already or not
 * (the first call here is then the first use). */
__attribute__((unused)) static struct dw_result dw_run(const struct dw_opts *o)
{
    struct dw_result r;
    memset(&r, 0, sizeof(r));
    if (o->name)
        dw_name = o->name;
    /* The calling thread's first operations decide nothing new, but the
     * mode is known from here on. */
    uint64_t *c = PCPU_NEW(uint64_t);
    DW_CHECK(c != NULL, "first allocation: %s", strerror(errno));
    DW_CHECK(pcpu_nr_cpus() > 0, "pcpu_nr_cpus() is 0");
    pcpu_this_inc(c);
    DW_CHECK(pcpu_sum(c) == 1, "first increment: sum %llu", (unsigned long long)pcpu_sum(c));
    pcpu_free(c);
    struct pcpu_stats st0 = dw_stats();
    r.rseq_before_threads = st0.rseq;
    dw_alloc(o);
    r.units_seen = dw_ops(o);
    dw_lists(o);
    dw_counters(o);
    dw_refs(o);
    dw_rwsems(o);
    DW_CHECK(pcpu_validate() == 0, "pcpu_validate at the end");
    r.stats = dw_stats();
    DW_CHECK(r.stats.nr_cur_alloc == st0.nr_cur_alloc, "%llu allocations left, %llu before",
             (unsigned long long)r.stats.nr_cur_alloc, (unsigned long long)st0.nr_cur_alloc);
    return r;
}

#endif
