/* SPDX-License-Identifier: MIT */
/*
 * count_events.c - count events per CPU from several threads.
 *
 * The classic use of per-CPU memory: a statistics counter that many
 * threads bump all the time and someone reads now and then.  One shared
 * atomic counter would bounce its cache line between CPUs on every event;
 * with a per-CPU counter each thread only touches its own CPU's copy
 * (pcpu_this_inc() is a restartable sequence, not a locked instruction),
 * and the reader adds the copies up with pcpu_sum().
 *
 *   usage: count_events [threads] [events-per-thread]
 */
#include <percpu.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

struct stats {
    unsigned long events;
    unsigned long odd; /* a second counter in the same object */
};

static struct stats *stats; /* a cookie: never dereferenced directly */
static unsigned long per_thread = 1000000;

static void *worker(void *arg)
{
    (void)arg;
    for (unsigned long i = 0; i < per_thread; i++) {
        pcpu_this_inc(&stats->events);
        if (i & 1)
            pcpu_this_inc(&stats->odd);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int nr_threads = argc > 1 ? atoi(argv[1]) : 4;
    if (argc > 2)
        per_thread = strtoul(argv[2], NULL, 0);
    if (nr_threads < 1 || nr_threads > 1024) {
        fprintf(stderr, "usage: %s [threads 1..1024] [events-per-thread]\n", argv[0]);
        return 2;
    }

    stats = PCPU_NEW(struct stats);
    if (!stats) {
        perror("pcpu_alloc");
        return 1;
    }

    pthread_t *threads = calloc((size_t)nr_threads, sizeof(*threads));
    if (!threads)
        return 1;
    for (int i = 0; i < nr_threads; i++)
        if (pthread_create(&threads[i], NULL, worker, NULL) != 0) {
            perror("pthread_create");
            return 1;
        }
    for (int i = 0; i < nr_threads; i++)
        pthread_join(threads[i], NULL);

    /* Each CPU's copy: which CPUs the threads ran on, and how much. */
    printf("%-6s %14s %14s\n", "cpu", "events", "odd");
    pcpu_for_each_cpu(cpu) {
        const struct stats *s = PCPU_PTR(stats, cpu);
        if (s->events || s->odd)
            printf("%-6u %14lu %14lu\n", cpu, s->events, s->odd);
    }
    unsigned long total = pcpu_sum(&stats->events);
    printf("%-6s %14lu %14lu\n", "sum", total, pcpu_sum(&stats->odd));

    unsigned long want = (unsigned long)nr_threads * per_thread;
    printf("expected %lu events: %s\n", want, total == want ? "ok" : "MISMATCH");
    pcpu_free(stats);
    free(threads);
    return total == want ? 0 : 1;
}
