/* SPDX-License-Identifier: MIT */
/* pcpu_plugin_copy.c - a plugin that carries its own copy of the library (linked with libpercpu.a, its symbols hidden), as plugin authors ship them: test_plugin_copy loads, uses and unloads it. */
/*
 * Everything that leaves something behind in the process is used here:
 * thread caches (a thread-exit hook), frees that wake the background
 * reclaim worker, this-CPU operations on static and allocated objects,
 * lists, counters, references and the semaphore.  Once the program has
 * dlclose()d the plugin, none of it may run again: threads that used the
 * plugin exit afterwards, the worker's timed wait ends, the program forks.
 */
#include <percpu.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "pcpu_plugin_copy.h"

#define EXPORT __attribute__((visibility("default")))

PCPU_DEFINE(long, plugin_calls);

static long *hits;
static struct pcpu_counter counter;
static struct pcpu_rwsem sem;
static int ready;

static void ref_release(struct pcpu_ref *ref)
{
    (void)ref;
}

EXPORT int plugin_copy_setup(int atomic)
{
    if (atomic) {
        /* Fewer units than CPUs: this-CPU operations use atomics. */
        struct pcpu_config cfg = {.nr_cpus = 1};
        const char *b = getenv("PERCPU_BACKEND");
        cfg.backend = b && !strcmp(b, "km") ? PCPU_BACKEND_KM : PCPU_BACKEND_VM;
        if (pcpu_init(&cfg) != 0)
            return -1;
    }
    hits = PCPU_NEW(long);
    if (!hits || pcpu_counter_init(&counter, 0) != 0 || pcpu_rwsem_init(&sem) != 0)
        return -1;
    ready = 1;
    return 0;
}

/* One thread's use: allocations of every class size (its cache), frees
 * (the batch, the worker), every kind of operation.  Returns the number
 * of increments it made on hits. */
EXPORT long plugin_copy_work(unsigned int rounds)
{
    if (!ready)
        return -1;
    long made = 0;
    struct pcpu_list_node nodes[4];
    for (unsigned int r = 0; r < rounds; r++) {
        void *objs[32];
        for (unsigned int i = 0; i < 32; i++) {
            objs[i] = pcpu_alloc(8u << (i % 10), 0);
            if (!objs[i])
                return -1;
            pcpu_this_inc((long *)objs[i]);
        }
        for (unsigned int i = 0; i < 32; i++)
            pcpu_free(objs[i]);
        pcpu_this_inc(hits);
        pcpu_this_add(PCPU_VAR(plugin_calls), 1);
        made++;
        pcpu_counter_add(&counter, 1);
        /* This thread's own list: its nodes live on this stack. */
        struct pcpu_list *list = PCPU_NEW(struct pcpu_list);
        if (!list)
            return -1;
        for (unsigned int i = 0; i < 4; i++)
            pcpu_this_list_push(list, &nodes[i]);
        (void)pcpu_this_list_pop(list);
        for (unsigned int cpu = 0; cpu < pcpu_nr_cpus(); cpu++)
            (void)pcpu_list_pop_all(list, cpu);
        pcpu_free(list);
        pcpu_rwsem_down_read(&sem);
        pcpu_rwsem_up_read(&sem);
        struct pcpu_ref ref;
        if (pcpu_ref_init(&ref, ref_release, 0) != 0)
            return -1;
        pcpu_ref_get(&ref);
        pcpu_ref_put(&ref);
        pcpu_ref_kill(&ref);
        pcpu_ref_exit(&ref);
    }
    /* Big objects: their frees leave whole pages and chunks empty, which
     * wakes the background reclaim worker of this copy. */
    void *big[12];
    for (unsigned int i = 0; i < 12; i++)
        if (!(big[i] = pcpu_alloc(200u << 10, 0)))
            return -1;
    for (unsigned int i = 0; i < 12; i++)
        pcpu_free(big[i]);
    return made;
}

EXPORT void plugin_copy_totals(struct plugin_copy_totals *t)
{
    t->hits = pcpu_sum(hits);
    t->calls = pcpu_sum(PCPU_VAR(plugin_calls));
    t->counter = pcpu_counter_sum(&counter);
    pcpu_rwsem_down_write(&sem);
    pcpu_rwsem_up_write(&sem);
}
