/* SPDX-License-Identifier: MIT */
/*
 * figures_clients.c - the counters, reference counts and reader-writer
 * semaphore of percpu-bench, each against what a user would write
 * instead (ns per operation per thread):
 *
 *   counter.percpu.add    pcpu_counter_add(c, 1) on one shared counter
 *   counter.atomic.add    one shared int64_t, atomic add (lock xadd)
 *   ref.percpu.get_put    pcpu_ref_get() + pcpu_ref_put() on one live ref
 *   ref.atomic.get_put    one shared count: atomic add, then atomic
 *                         subtract with acquire-release (what a put needs
 *                         to hand the object to the release function)
 *   rwsem.percpu.read     pcpu_rwsem_down_read() + pcpu_rwsem_up_read()
 *   rwsem.pthread.read    pthread_rwlock_rdlock() + pthread_rwlock_unlock()
 *
 * All six run together (repetitions interleaved), at T=1 and at one thread
 * per CPU, so the ratios are same-time ratios.  Each loop checks its
 * result after the measurement (the counter's sum, the ref still live and
 * not released, the semaphore free), so a broken fast path cannot look
 * fast.
 */
#define _GNU_SOURCE
#include "bench.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "percpu.h"

static struct pcpu_counter counter;
static struct {
    _Alignas(64) int64_t v;
} atomic_counter;

static struct pcpu_ref ref;
static int ref_released;
static struct {
    _Alignas(64) long v;
} atomic_ref;

static struct pcpu_rwsem rwsem;
static pthread_rwlock_t prw = PTHREAD_RWLOCK_INITIALIZER;

static void counter_percpu_run(void *s, uint64_t n)
{
    (void)s;
    for (uint64_t i = 0; i < n; i++)
        pcpu_counter_add(&counter, 1);
}

static void counter_percpu_check(const struct loop *l, uint64_t total)
{
    int64_t sum = pcpu_counter_sum(&counter);
    if ((uint64_t)sum != total)
        fprintf(stderr, "percpu-bench: %s: sum %lld, expected %llu: UPDATES LOST\n", l->name,
                (long long)sum, (unsigned long long)total);
    pcpu_counter_set(&counter, 0);
}

static void counter_atomic_run(void *s, uint64_t n)
{
    (void)s;
    for (uint64_t i = 0; i < n; i++)
        __atomic_fetch_add(&atomic_counter.v, 1, __ATOMIC_RELAXED);
}

static void counter_atomic_check(const struct loop *l, uint64_t total)
{
    int64_t v = __atomic_exchange_n(&atomic_counter.v, 0, __ATOMIC_RELAXED);
    if ((uint64_t)v != total)
        fprintf(stderr, "percpu-bench: %s: count %lld, expected %llu\n", l->name,
                (long long)v, (unsigned long long)total);
}

static void ref_release(struct pcpu_ref *r)
{
    (void)r;
    ref_released = 1;
}

static void ref_percpu_run(void *s, uint64_t n)
{
    (void)s;
    for (uint64_t i = 0; i < n; i++) {
        pcpu_ref_get(&ref);
        escape(&ref);
        pcpu_ref_put(&ref);
    }
}

static void ref_percpu_check(const struct loop *l, uint64_t total)
{
    (void)total;
    if (ref_released || pcpu_ref_is_dying(&ref))
        fprintf(stderr, "percpu-bench: %s: the ref was released: COUNT BROKEN\n", l->name);
}

static void ref_atomic_run(void *s, uint64_t n)
{
    (void)s;
    for (uint64_t i = 0; i < n; i++) {
        __atomic_fetch_add(&atomic_ref.v, 1, __ATOMIC_RELAXED);
        escape(&atomic_ref);
        if (__atomic_fetch_sub(&atomic_ref.v, 1, __ATOMIC_ACQ_REL) == 1)
            abort(); /* the initial reference is held: never the last */
    }
}

static void rwsem_percpu_run(void *s, uint64_t n)
{
    (void)s;
    for (uint64_t i = 0; i < n; i++) {
        pcpu_rwsem_down_read(&rwsem);
        escape(&rwsem);
        pcpu_rwsem_up_read(&rwsem);
    }
}

static void rwsem_percpu_check(const struct loop *l, uint64_t total)
{
    (void)total;
    if (pcpu_rwsem_is_read_locked(&rwsem))
        fprintf(stderr, "percpu-bench: %s: readers left inside: COUNT BROKEN\n", l->name);
}

static void rwsem_pthread_run(void *s, uint64_t n)
{
    (void)s;
    for (uint64_t i = 0; i < n; i++) {
        pthread_rwlock_rdlock(&prw);
        escape(&prw);
        pthread_rwlock_unlock(&prw);
    }
}

void figures_clients(void)
{
    if (pcpu_counter_init(&counter, 0) != 0 || pcpu_ref_init(&ref, ref_release, 0) != 0 ||
        pcpu_rwsem_init(&rwsem) != 0) {
        perror("percpu-bench: clients");
        exit(2);
    }
    atomic_ref.v = 1; /* the initial reference */
    struct loop loops[] = {
        {.name = "counter.percpu.add", .run = counter_percpu_run, .check = counter_percpu_check},
        {.name = "counter.atomic.add", .run = counter_atomic_run, .check = counter_atomic_check},
        {.name = "ref.percpu.get_put", .run = ref_percpu_run, .check = ref_percpu_check},
        {.name = "ref.atomic.get_put", .run = ref_atomic_run},
        {.name = "rwsem.percpu.read", .run = rwsem_percpu_run, .check = rwsem_percpu_check},
        {.name = "rwsem.pthread.read", .run = rwsem_pthread_run},
    };
    struct loop *sel[12];
    unsigned int k = 0;
    for (size_t i = 0; i < sizeof(loops) / sizeof(loops[0]); i++)
        if (name_selected(loops[i].name))
            sel[k++] = &loops[i];
    if (k) {
        measure_group(sel, k, 1);
        if (online_cpus() > 1)
            measure_group(sel, k, online_cpus());
    }
    ref_released = 0;
    pcpu_ref_kill(&ref);
    if (!ref_released)
        fprintf(stderr, "percpu-bench: the ref was not released at kill: COUNT BROKEN\n");
    pcpu_ref_exit(&ref);
    pcpu_rwsem_destroy(&rwsem);
    pcpu_counter_destroy(&counter);
}
