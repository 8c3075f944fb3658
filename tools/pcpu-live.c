/* SPDX-License-Identifier: MIT */
/*
 * pcpu-live - how the allocator behaves with many live small objects.
 *
 *   pcpu-live [count] [nr_cpus] [size]
 *
 * Allocates count objects of size bytes (default 1M x 8 B), writes each in
 * one of two units (as two busy CPUs would), reports the time per
 * allocation, resident memory against the ideal (count * size * 2 units),
 * the time to free them all, and how much memory is left after reclaim.
 */
#include <percpu.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    size_t count = argc > 1 ? strtoull(argv[1], NULL, 0) : 1000000;
    unsigned int cpus = argc > 2 ? (unsigned int)atoi(argv[2]) : 256;
    size_t size = argc > 3 ? strtoull(argv[3], NULL, 0) : 8;
    struct pcpu_config cfg = {.nr_cpus = cpus};
    const char *b = getenv("PERCPU_BACKEND");
    if (b && !strcmp(b, "km"))
        cfg.backend = PCPU_BACKEND_KM;
    if (pcpu_init(&cfg) != 0) {
        perror("pcpu_init");
        return 1;
    }
    unsigned char **v = malloc(count * sizeof(*v));
    if (!v)
        return 1;
    struct pcpu_stats st0, st;
    pcpu_stats_get(&st0);
    double t0 = now();
    for (size_t i = 0; i < count; i++) {
        v[i] = pcpu_alloc(size, 0);
        if (!v[i]) {
            perror("pcpu_alloc");
            return 1;
        }
        *(unsigned char *)pcpu_ptr(v[i], (unsigned int)(i & 1)) = 1;
    }
    double t1 = now();
    pcpu_stats_get(&st);
    double ideal = (double)count * (double)size * 2;
    double res = (double)st.resident_bytes - (double)st0.resident_bytes;
    printf("units %u  backend %s  objects %zu x %zu B\n", st.nr_units,
           st.backend == PCPU_BACKEND_KM ? "km" : "vm", count, size);
    printf("alloc: %.3f s total, %.1f ns per allocation\n", t1 - t0, (t1 - t0) * 1e9 / (double)count);
    printf("resident: %.1f MiB for an ideal %.1f MiB (%.2fx), %u chunks, metadata %.1f MiB\n",
           res / 1048576, ideal / 1048576, res / ideal, st.nr_chunks,
           (double)st.metadata_bytes / 1048576);
    t0 = now();
    for (size_t i = 0; i < count; i++)
        pcpu_free(v[i]);
    t1 = now();
    printf("free: %.3f s total, %.1f ns per free\n", t1 - t0, (t1 - t0) * 1e9 / (double)count);
    t0 = now();
    do {
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
        pcpu_stats_get(&st);
    } while (st.resident_bytes > ((size_t)1 << 20) && now() - t0 < 5);
    printf("after %.1f s of background reclaim: resident %.2f MiB, %u chunks, %zu populated pages\n",
           now() - t0, (double)st.resident_bytes / 1048576, st.nr_chunks, st.populated_pages);
    free(v);
    pcpu_exit();
    return 0;
}
