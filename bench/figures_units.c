/* SPDX-License-Identifier: MIT */
/*
 * figures_units.c - what a configuration with many units costs.
 *
 * The allocator promises that configuring many units (a 4096-CPU machine,
 * or nr_cpus set high) costs address space, not memory or time: work and
 * kernel resources follow the units a program touches.  These figures check
 * that by simulation: the same loops run with nr_cpus = 2, 64, 256, 1024
 * and 4096 while only units 0 and 1 are ever written.
 *
 * The unit count is fixed at initialisation, so each configuration runs in
 * its own process: the benchmark re-executes itself with the hidden option
 * --units-child N, and the child prints one "name value" line per figure.
 * The parent runs the configurations round-robin, several rounds, and keeps
 * each figure's median over the rounds; a drift of the machine's speed
 * therefore hits every unit count alike, and the ratios to the 2-unit
 * figures (the targets) are same-time ratios.
 *
 * Figures (T=1, the child pinned to the first CPU it may use):
 *   units.alloc_free.8   ns per 8-byte alloc + write in 2 units + free
 *   units.free_big       ns per free of one object of half a unit, written
 *                        over its whole length in 2 units
 *   units.live_1M        ns per allocation while 1M 8-byte objects pile up
 *   units.free_1M        ns per free of those 1M objects (each written in
 *                        2 units), in allocation order
 *   units.maps           memory mappings (lines of /proc/self/maps) per
 *                        chunk while the 1M objects live
 *   units.resident       kB the allocator holds for them (pcpu_stats)
 */
#define _GNU_SOURCE
#include "bench.h"

#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "percpu.h"

static const unsigned int unit_counts[] = {2, 64, 256, 1024, 4096};
#define NR_UNIT_COUNTS (sizeof(unit_counts) / sizeof(unit_counts[0]))

/* Figure names, their units and the scale from the child's raw figure. */
static const struct {
    const char *name;
    const char *unit;
} unit_figures[] = {
    {"units.alloc_free.8", "ns/op"}, {"units.free_big", "ns/op"},
    {"units.live_1M", "ns/op"},      {"units.free_1M", "ns/op"},
    {"units.maps", "maps/chunk"},    {"units.resident", "kB"},
};
#define NR_UNIT_FIGURES (sizeof(unit_figures) / sizeof(unit_figures[0]))

#define LIVE_OBJECTS 1000000
#define PAIR_ITERS 100000
#define BIG_ITERS 8

/* ---- the child ---------------------------------------------------------- */

static double clock_ns(void)
{
    return bench_opts.wall ? now_ns() : thread_cpu_ns();
}

static unsigned int count_maps(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f)
        return 0;
    unsigned int n = 0;
    int c;
    while ((c = getc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

static struct pcpu_stats stats_now(void)
{
    struct pcpu_stats s;
    memset(&s, 0, sizeof(s));
    s.size = sizeof(s);
    pcpu_stats_get(&s);
    return s;
}

/* Write @n bytes at the start of @p in units 0 and 1. */
static void touch_two(void *p, size_t n)
{
    memset(pcpu_ptr(p, 0), 0x5a, n);
    memset(pcpu_ptr(p, 1), 0xa5, n);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void child_fail(const char *what)
{
    fprintf(stderr, "percpu-bench --units-child: %s: %s\n", what, strerror(errno));
    exit(3);
}

static double pair_figure(void)
{
    double best[3];
    for (int r = 0; r < 3; r++) {
        double t0 = clock_ns();
        for (int i = 0; i < PAIR_ITERS; i++) {
            void *p = pcpu_alloc(8, 0);
            if (!p)
                child_fail("pcpu_alloc(8)");
            *(volatile uint64_t *)pcpu_ptr(p, 0) = (uint64_t)i;
            *(volatile uint64_t *)pcpu_ptr(p, 1) = (uint64_t)i;
            pcpu_free(p);
        }
        best[r] = (clock_ns() - t0) / PAIR_ITERS;
    }
    qsort(best, 3, sizeof(best[0]), cmp_double);
    return best[1];
}

static double free_big_figure(size_t size)
{
    double t[BIG_ITERS];
    for (int i = 0; i < BIG_ITERS; i++) {
        void *p = pcpu_alloc(size, 0);
        if (!p)
            child_fail("pcpu_alloc(half a unit)");
        touch_two(p, size);
        double t0 = clock_ns();
        pcpu_free(p);
        t[i] = clock_ns() - t0;
    }
    qsort(t, BIG_ITERS, sizeof(t[0]), cmp_double);
    return t[BIG_ITERS / 2];
}

int units_child(unsigned int nr_units)
{
    struct pcpu_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    const char *backend = getenv("PERCPU_BACKEND");
    cfg.backend = backend && strcmp(backend, "km") == 0 ? PCPU_BACKEND_KM : PCPU_BACKEND_VM;
    cfg.nr_cpus = nr_units;
    if (pcpu_init(&cfg) != 0)
        child_fail("pcpu_init");
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(online_cpu(0), &set);
    sched_setaffinity(0, sizeof(set), &set);

    struct pcpu_stats st = stats_now();
    size_t big = st.unit_size / 2;
    if (big > pcpu_max_alloc_size())
        big = pcpu_max_alloc_size();

    printf("units.alloc_free.8 %.4f\n", pair_figure());
    printf("units.free_big %.4f\n", free_big_figure(big));

    void **live = malloc(LIVE_OBJECTS * sizeof(void *));
    if (!live)
        child_fail("malloc");
    pcpu_reclaim(true);
    st = stats_now();
    unsigned int maps0 = count_maps(), chunks0 = st.nr_chunks;
    size_t resident0 = st.resident_bytes;
    double t0 = clock_ns();
    for (size_t i = 0; i < LIVE_OBJECTS; i++) {
        live[i] = pcpu_alloc(8, 0);
        if (!live[i])
            child_fail("pcpu_alloc(8) x 1M");
    }
    double alloc_ns = (clock_ns() - t0) / LIVE_OBJECTS;
    for (size_t i = 0; i < LIVE_OBJECTS; i++)
        touch_two(live[i], 8);
    st = stats_now();
    unsigned int maps1 = count_maps(), chunks1 = st.nr_chunks;
    t0 = clock_ns();
    for (size_t i = 0; i < LIVE_OBJECTS; i++)
        pcpu_free(live[i]);
    double free_ns = (clock_ns() - t0) / LIVE_OBJECTS;
    free(live);
    printf("units.live_1M %.4f\n", alloc_ns);
    printf("units.free_1M %.4f\n", free_ns);
    printf("units.maps %.4f\n",
           chunks1 > chunks0 ? (double)(maps1 - maps0) / (chunks1 - chunks0) : 0.0);
    printf("units.resident %.1f\n", (double)(st.resident_bytes - resident0) / 1024);
    fflush(stdout);
    pcpu_exit();
    return 0;
}

/* ---- the parent --------------------------------------------------------- */

/* Run one child; parse its lines into raw[figure].  Returns 0 on success. */
static int run_child(unsigned int nr_units, double raw[NR_UNIT_FIGURES])
{
    int fd[2];
    if (pipe(fd) != 0)
        return -1;
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        close(fd[0]);
        close(fd[1]);
        return -1;
    }
    if (pid == 0) {
        dup2(fd[1], STDOUT_FILENO);
        close(fd[0]);
        close(fd[1]);
        char n[16];
        snprintf(n, sizeof(n), "%u", nr_units);
        char *argv[] = {"percpu-bench", "--units-child", n, bench_opts.wall ? "--wall" : NULL,
                        NULL};
        execv("/proc/self/exe", argv);
        _exit(127);
    }
    close(fd[1]);
    FILE *f = fdopen(fd[0], "r");
    for (size_t i = 0; i < NR_UNIT_FIGURES; i++)
        raw[i] = -1;
    char name[64];
    double v;
    while (f && fscanf(f, "%63s %lf", name, &v) == 2)
        for (size_t i = 0; i < NR_UNIT_FIGURES; i++)
            if (strcmp(name, unit_figures[i].name) == 0)
                raw[i] = v;
    if (f)
        fclose(f);
    else
        close(fd[0]);
    int status;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return -1;
    for (size_t i = 0; i < NR_UNIT_FIGURES; i++)
        if (raw[i] < 0)
            return -1;
    return 0;
}

void figures_units(void)
{
    if (!name_selected("units."))
        return;
    unsigned int rounds = bench_opts.full ? 7 : 3;
    static double raw[BENCH_MAX_REPS][NR_UNIT_COUNTS][NR_UNIT_FIGURES];
    unsigned int ok[NR_UNIT_COUNTS] = {0};
    for (unsigned int r = 0; r < rounds; r++)
        for (size_t u = 0; u < NR_UNIT_COUNTS; u++) {
            progress("units: round %u/%u, %u units", r + 1, rounds, unit_counts[u]);
            if (run_child(unit_counts[u], raw[ok[u]][u]) == 0)
                ok[u]++;
            else
                fprintf(stderr, "percpu-bench: the %u-unit child failed\n", unit_counts[u]);
        }
    for (size_t u = 0; u < NR_UNIT_COUNTS; u++) {
        if (!ok[u])
            continue;
        for (size_t i = 0; i < NR_UNIT_FIGURES; i++) {
            double v[BENCH_MAX_REPS];
            for (unsigned int r = 0; r < ok[u]; r++)
                v[r] = raw[r][u][i];
            struct result *res = result_add(unit_figures[i].name, 1, unit_figures[i].unit);
            res->units = unit_counts[u];
            res->reps = ok[u];
            stats_of(v, ok[u], &res->value, &res->min, &res->max, &res->rmad);
            res->source = "child process per unit count, rounds interleaved";
        }
    }
}

const struct result *result_find_units(const char *name, unsigned int units)
{
    for (unsigned int i = 0; i < nr_results; i++)
        if (results[i].units == units && strcmp(results[i].name, name) == 0)
            return &results[i];
    return NULL;
}

void units_table(void)
{
    bool any = false;
    for (unsigned int i = 0; i < nr_results; i++)
        any |= results[i].units != 0;
    if (!any)
        return;
    printf("\nCost vs units: T=1, nr_cpus = N units configured, units 0 and 1 written;\n"
           "median of interleaved rounds, one process per unit count\n");
    printf("  %-20s %-10s", "figure", "unit");
    for (size_t u = 0; u < NR_UNIT_COUNTS; u++)
        printf(" %9u", unit_counts[u]);
    printf(" %9s\n", "x(max/2)");
    for (size_t i = 0; i < NR_UNIT_FIGURES; i++) {
        printf("  %-20s %-10s", unit_figures[i].name, unit_figures[i].unit);
        const struct result *first = NULL, *last = NULL;
        for (size_t u = 0; u < NR_UNIT_COUNTS; u++) {
            const struct result *r = result_find_units(unit_figures[i].name, unit_counts[u]);
            if (r)
                printf(" %9.*f", r->value >= 100 ? 0 : 2, r->value);
            else
                printf(" %9s", "-");
            if (r && !first)
                first = r;
            if (r)
                last = r;
        }
        if (first && last && first->value > 0)
            printf(" %9.2f\n", last->value / first->value);
        else
            printf(" %9s\n", "-");
    }
}

void units_plot_data(FILE *f)
{
    fprintf(f, "# units  alloc_free.8 free_big live_1M free_1M (each / its 2-unit figure)"
               "  maps_per_chunk  resident/2-unit\n");
    for (size_t u = 0; u < NR_UNIT_COUNTS; u++) {
        fprintf(f, "%u", unit_counts[u]);
        for (size_t i = 0; i < NR_UNIT_FIGURES; i++) {
            const struct result *r = result_find_units(unit_figures[i].name, unit_counts[u]);
            const struct result *b = result_find_units(unit_figures[i].name, unit_counts[0]);
            if (!r || !b || b->value <= 0)
                fprintf(f, " -");
            else if (strcmp(unit_figures[i].name, "units.maps") == 0)
                fprintf(f, " %g", r->value);
            else
                fprintf(f, " %g", r->value / b->value);
        }
        fprintf(f, "\n");
    }
}
