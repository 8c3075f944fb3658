/* SPDX-License-Identifier: MIT */
/*
 * server_stats.c - what a server needs from per-CPU counters and
 * reference counts: request statistics, a connection limit, and a
 * configuration object that is replaced while requests use it.
 *
 * A simulated server: worker threads accept "connections" and serve
 * "requests".  Every request bumps per-CPU counters (pcpu_counter: no
 * shared cache line per request, exact totals when asked); a connection
 * is admitted only under the connection limit (pcpu_counter_limited_add:
 * exact even with every worker admitting at once); each request reads the
 * current configuration under a reference (pcpu_ref: a get and a put are
 * a few nanoseconds and touch no shared line), and an admin thread swaps
 * in new configurations and retires the old ones with pcpu_ref_kill(): the
 * old one is freed by whichever request drops the last reference.
 * A reader-writer semaphore (pcpu_rwsem) guards the pointer to the current
 * configuration: requests take it for reading (cheap, per-CPU), the admin
 * for writing (rare, expensive).
 *
 *   usage: server_stats [workers] [requests-per-worker]
 */
#include <percpu.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CONNECTIONS 64

/* ---- statistics: one array of counters, one per-CPU allocation ---------- */

enum { ST_REQUESTS, ST_BYTES, ST_ERRORS, ST_OPEN_CONNS, ST_REFUSED, NR_STATS };
static const char *const stat_names[NR_STATS] = {"requests", "bytes", "errors",
                                                 "open connections", "refused connections"};
static struct pcpu_counter stats[NR_STATS];

/* ---- the configuration, retired with pcpu_ref_kill() -------------------- */

struct config {
    struct pcpu_ref ref; /* one reference per request using it, plus the initial one */
    unsigned int version;
    size_t reply_size;
};

static atomic_uint configs_freed;

static void config_release(struct pcpu_ref *ref)
{
    /* The last put: nobody can be using the configuration any more. */
    struct config *cfg = (struct config *)((char *)ref - offsetof(struct config, ref));
    pcpu_ref_exit(&cfg->ref);
    free(cfg);
    atomic_fetch_add(&configs_freed, 1);
}

static struct config *config_new(unsigned int version)
{
    struct config *cfg = calloc(1, sizeof(*cfg));
    if (!cfg || pcpu_ref_init(&cfg->ref, config_release, 0) != 0) {
        perror("config");
        exit(1);
    }
    cfg->version = version;
    cfg->reply_size = 100 + version;
    return cfg;
}

static struct pcpu_rwsem config_lock; /* guards current */
static struct config *current;

/* A reference to the current configuration; put it when done. */
static struct config *config_get(void)
{
    pcpu_rwsem_down_read(&config_lock);
    struct config *cfg = current;
    pcpu_ref_get(&cfg->ref); /* live: the initial reference is still held */
    pcpu_rwsem_up_read(&config_lock);
    return cfg;
}

static void config_replace(unsigned int version)
{
    struct config *fresh = config_new(version);
    pcpu_rwsem_down_write(&config_lock);
    struct config *old = current;
    current = fresh;
    pcpu_rwsem_up_write(&config_lock);
    /* Drop the initial reference: freed now, or by the last request
     * still using it. */
    pcpu_ref_kill(&old->ref);
}

/* ---- the workers --------------------------------------------------------- */

static unsigned long requests_per_worker = 200000;
static atomic_bool stop_admin;

static void *worker(void *arg)
{
    unsigned int seed = (unsigned int)(uintptr_t)arg;
    for (unsigned long i = 0; i < requests_per_worker; i++) {
        /* every 100 requests, a new connection (admitted under the limit) */
        if (i % 100 == 0) {
            if (!pcpu_counter_limited_add(&stats[ST_OPEN_CONNS], MAX_CONNECTIONS, 1)) {
                /* refused: this connection's 100 requests are not served */
                pcpu_counter_inc(&stats[ST_REFUSED]);
                i += 99;
                continue;
            }
        }
        struct config *cfg = config_get();
        pcpu_counter_inc(&stats[ST_REQUESTS]);
        pcpu_counter_add(&stats[ST_BYTES], (int64_t)cfg->reply_size);
        if (rand_r(&seed) % 1000 == 0)
            pcpu_counter_inc(&stats[ST_ERRORS]);
        pcpu_ref_put(&cfg->ref);
        /* the connection closes after its 100th request */
        if (i % 100 == 99)
            pcpu_counter_dec(&stats[ST_OPEN_CONNS]);
    }
    return NULL;
}

static void *admin(void *arg)
{
    (void)arg;
    unsigned int version = 1;
    while (!atomic_load(&stop_admin)) {
        config_replace(++version);
        /* a dashboard would print pcpu_counter_read() (cheap, approximate) */
        printf("  config v%u, about %lld requests so far\n", version,
               (long long)pcpu_counter_read(&stats[ST_REQUESTS]));
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return (void *)(uintptr_t)version;
}

int main(int argc, char **argv)
{
    unsigned int nworkers = argc > 1 ? (unsigned int)atoi(argv[1]) : 4;
    if (argc > 2)
        requests_per_worker = strtoul(argv[2], NULL, 10);
    if (nworkers < 1 || nworkers > 256)
        nworkers = 4;
    /* whole connections of 100 requests */
    requests_per_worker = (requests_per_worker + 99) / 100 * 100;

    if (pcpu_counter_init_many(stats, 0, NR_STATS) != 0 || pcpu_rwsem_init(&config_lock) != 0) {
        perror("init");
        return 1;
    }
    current = config_new(1);

    pthread_t t[256], a;
    pthread_create(&a, NULL, admin, NULL);
    for (unsigned int i = 0; i < nworkers; i++)
        pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)(i + 1));
    for (unsigned int i = 0; i < nworkers; i++)
        pthread_join(t[i], NULL);
    atomic_store(&stop_admin, true);
    void *ret;
    pthread_join(a, &ret);
    unsigned int versions = (unsigned int)(uintptr_t)ret;

    /* Exact totals: pcpu_counter_sum() adds every CPU's part. */
    printf("%u workers, %lu requests each:\n", nworkers, requests_per_worker);
    for (int i = 0; i < NR_STATS; i++)
        printf("  %-20s %lld\n", stat_names[i], (long long)pcpu_counter_sum(&stats[i]));

    /* Retire the last configuration too; every one is freed exactly once. */
    pcpu_ref_kill(&current->ref);
    printf("  configurations: %u made, %u freed\n", versions, atomic_load(&configs_freed));

    int64_t served = pcpu_counter_sum(&stats[ST_REQUESTS]);
    int64_t refused = pcpu_counter_sum(&stats[ST_REFUSED]);
    int ok = pcpu_counter_sum(&stats[ST_OPEN_CONNS]) == 0 &&
             served + refused * 100 == (int64_t)nworkers * (int64_t)requests_per_worker &&
             atomic_load(&configs_freed) == versions;
    pcpu_counter_destroy_many(stats, NR_STATS);
    pcpu_rwsem_destroy(&config_lock);
    if (!ok) {
        fprintf(stderr, "server_stats: the totals do not add up\n");
        return 1;
    }
    return 0;
}
