/* SPDX-License-Identifier: MIT */
/*
 * pcpu-live - how the allocator behaves with many live small objects.
 *
 *   pcpu-live [count [units [size]]]
 *
 * Allocates count objects of size bytes (default 1M x 8 B), writes each in
 * one of two units (as two busy CPUs would), reports the time per
 * allocation, resident memory against the ideal (count * size * 2 units),
 * the time to free them all, and how much memory is left after reclaim.
 */
#include <percpu.h>

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
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

static int usage(FILE *f, int status)
{
    fprintf(f, "usage: pcpu-live [count [units [size]]]   (defaults: 1000000 256 8)\n");
    return status;
}

/* argv[i] as a whole number in [1, max], or dflt when absent; false if it
 * is something else. */
static bool arg(int argc, char **argv, int i, unsigned long long max, unsigned long long dflt,
                unsigned long long *out)
{
    *out = dflt;
    if (argc <= i)
        return true;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(argv[i], &end, 0);
    if (errno || end == argv[i] || *end || argv[i][0] == '-' || v < 1 || v > max)
        return false;
    *out = v;
    return true;
}

int main(int argc, char **argv)
{
    unsigned long long a_count, a_cpus, a_size;
    if (argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")))
        return usage(stdout, 0);
    if (argc > 4 || !arg(argc, argv, 1, SIZE_MAX / sizeof(void *), 1000000, &a_count) ||
        !arg(argc, argv, 2, UINT_MAX, 256, &a_cpus) || !arg(argc, argv, 3, SIZE_MAX, 8, &a_size))
        return usage(stderr, 2);
    size_t count = (size_t)a_count, size = (size_t)a_size;
    struct pcpu_config cfg = {.nr_cpus = (unsigned int)a_cpus};
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
    unsigned int written = st0.nr_units < 2 ? 1 : 2; /* as two busy CPUs would */
    double t0 = now();
    for (size_t i = 0; i < count; i++) {
        v[i] = pcpu_alloc(size, 0);
        if (!v[i]) {
            perror("pcpu_alloc");
            return 1;
        }
        *(unsigned char *)pcpu_ptr(v[i], (unsigned int)(i % written)) = 1;
    }
    double t1 = now();
    pcpu_stats_get(&st);
    double ideal = (double)count * (double)size * written;
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
