/* SPDX-License-Identifier: MIT */
/*
 * plots.c - charts and the chunk-map picture of percpu-bench.
 *
 * plots_write() writes the figures as small whitespace-separated data files
 * (inc.dat, ops.dat, list.dat, alloc.dat, scale.dat, units.dat, mem.dat) and runs
 * gnuplot on plot.gp to
 * turn them into SVG charts (and PNG ones when gnuplot has pngcairo).
 * plot.gp is looked for next to the executable (the build copies it there),
 * in ../share/percpu from it (where `make install` and the percpu-tools
 * package put it) and then in the source tree.  Without gnuplot the data files are still
 * written and a line says the charts were skipped; that is not an error.
 *
 * chunkmap_write() draws the allocator's chunks from pcpu_chunk_info(): one
 * row of cells per chunk, one cell per page of a unit, coloured by state
 * (not populated / populated and empty / partly used / full), as SVG, and
 * saves pcpu_chunk_map_print()'s text picture next to it.
 */
#define _GNU_SOURCE
#include "bench.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "percpu.h"

#ifndef PCPU_BENCH_SOURCE_DIR
#define PCPU_BENCH_SOURCE_DIR "."
#endif

static FILE *open_in(const char *dir, const char *name)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f)
        perror(path);
    return f;
}

/* name value min max [value min max at T=N] per line; "-" where missing */
static void write_pairs(const char *dir, const char *file, const char *const *names,
                        size_t n, const char *strip)
{
    FILE *f = open_in(dir, file);
    if (!f)
        return;
    unsigned int tn = online_cpus();
    fprintf(f, "# figure  T=1: median min max  T=%u: median min max (ns)\n", tn);
    for (size_t i = 0; i < n; i++) {
        const struct result *a = result_find(names[i], 1);
        const struct result *b = tn > 1 ? result_find(names[i], tn) : NULL;
        if (!a && !b)
            continue;
        fprintf(f, "\"%s\"", names[i] + strlen(strip));
        if (a)
            fprintf(f, " %g %g %g", a->value, a->min, a->max);
        else
            fprintf(f, " - - -");
        if (b)
            fprintf(f, " %g %g %g", b->value, b->min, b->max);
        else
            fprintf(f, " - - -");
        fputc('\n', f);
    }
    fclose(f);
}

static bool have_gnuplot(void)
{
    return system("command -v gnuplot >/dev/null 2>&1") == 0;
}

static bool find_script(char *buf, size_t n)
{
    char exe[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (len > 0) {
        exe[len] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = 0;
            snprintf(buf, n, "%.*s/plot.gp", PATH_MAX - 16, exe);
            if (access(buf, R_OK) == 0)
                return true;
            snprintf(buf, n, "%.*s/../share/percpu/plot.gp", PATH_MAX - 32, exe);
            if (access(buf, R_OK) == 0)
                return true;
        }
    }
    snprintf(buf, n, "%s/plot.gp", PCPU_BENCH_SOURCE_DIR);
    return access(buf, R_OK) == 0;
}

void plots_write(const char *dir)
{
    static const char *const inc[] = {"inc.percpu", "inc.tls", "inc.atomic_shared",
                                      "inc.striped_getcpu"};
    static const char *const alloc[] = {"alloc.percpu.8", "alloc.percpu.64",
                                        "alloc.percpu.256", "alloc.percpu.4096",
                                        "alloc.percpu.mixed", "alloc.malloc.8",
                                        "alloc.padded.8"};
    static const char *const ops[] = {"inc.percpu", "ops.percpu.xchg", "ops.percpu.cmpxchg"};
    static const char *const list[] = {"list.percpu.push_pop", "list.tls.push_pop",
                                       "list.treiber.push_pop", "list.mutex.push_pop"};
    write_pairs(dir, "inc.dat", inc, 4, "inc.");
    write_pairs(dir, "ops.dat", ops, 3, "");
    write_pairs(dir, "list.dat", list, 4, "list.");
    write_pairs(dir, "alloc.dat", alloc, 7, "alloc.");
    static const char *const clients[] = {"counter.percpu.add", "counter.atomic.add",
                                          "ref.percpu.get_put", "ref.atomic.get_put",
                                          "rwsem.percpu.read", "rwsem.pthread.read"};
    write_pairs(dir, "clients.dat", clients, 6, "");

    FILE *f = open_in(dir, "scale.dat");
    if (f) {
        fprintf(f, "# live_objects median min max (ns per pair, T=1)\n");
        static const struct { const char *name; long live; } sc[] = {
            {"scale.percpu.live_1000", 1000},
            {"scale.percpu.live_100000", 100000},
            {"scale.percpu.live_1000000", 1000000},
        };
        for (size_t i = 0; i < 3; i++) {
            const struct result *r = result_find(sc[i].name, 1);
            if (r)
                fprintf(f, "%ld %g %g %g\n", sc[i].live, r->value, r->min, r->max);
        }
        fclose(f);
    }
    f = open_in(dir, "units.dat");
    if (f) {
        units_plot_data(f);
        fclose(f);
    }
    f = open_in(dir, "mem.dat");
    if (f) {
        const struct result *p = result_find("mem.percpu.1M_x8", 1);
        const struct result *q = result_find("mem.padded.1M_x8", 1);
        fprintf(f, "# label kB (1M 8-byte objects written on every unit)\n");
        if (p || q)
            fprintf(f, "\"ideal\" %g\n", p ? p->ideal : q->ideal);
        if (p)
            fprintf(f, "\"percpu\" %g\n", p->value);
        if (q)
            fprintf(f, "\"padded malloc\" %g\n", q->value);
        fclose(f);
    }

    char script[PATH_MAX];
    if (!have_gnuplot()) {
        printf("plots: gnuplot not found (Debian: apt-get install gnuplot-nox); "
               "charts skipped, data files are in %s\n", dir);
        return;
    }
    if (!find_script(script, sizeof(script))) {
        printf("plots: plot.gp not found; charts skipped\n");
        return;
    }
    if (strchr(dir, '\'') || strchr(dir, '"') || strchr(script, '\'') || strchr(script, '"')) {
        printf("plots: quotes in paths are not supported; charts skipped\n");
        return;
    }
    char cmd[3 * PATH_MAX];
    snprintf(cmd, sizeof(cmd), "gnuplot -e \"dir='%s'; ncpu=%u\" '%s'", dir, online_cpus(),
             script);
    int rc = system(cmd);
    if (rc != 0)
        printf("plots: gnuplot failed (status %d); charts may be missing\n", rc);
    else
        printf("wrote charts to %s (inc, ops, list, alloc, clients, scale, units, mem; "
               "chunkmap.svg)\n", dir);
}

/* ---- chunk map ---------------------------------------------------------- */

static const char *const state_color[4] = {"#e8e8e8", "#9ecae1", "#fdae6b", "#d62728"};
static const char *const state_name[4] = {"not populated", "populated, empty", "partly used",
                                          "full"};

void chunkmap_write(const char *dir)
{
    FILE *t = open_in(dir, "chunkmap.txt");
    if (t) {
        pcpu_chunk_map_print(t, 64);
        fclose(t);
    }

    enum { CELL = 9, PER_ROW = 64, LEFT = 10, TOP = 58, LABEL = 18 };
    struct pcpu_chunk_info info[256];
    unsigned int n = 0;
    while (n < 256) {
        memset(&info[n], 0, sizeof(info[n]));
        if (pcpu_chunk_info(n, &info[n]) != 0)
            break;
        n++;
    }
    size_t height = TOP;
    for (unsigned int i = 0; i < n; i++)
        height += LABEL + ((info[i].nr_pages + PER_ROW - 1) / PER_ROW) * CELL + 8;
    unsigned int width = LEFT * 2 + PER_ROW * CELL;
    if (width < 600)
        width = 600;

    FILE *f = open_in(dir, "chunkmap.svg");
    if (!f)
        goto out;
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%u\" height=\"%zu\" "
               "font-family=\"sans-serif\" font-size=\"11\">\n", width, height);
    fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    fprintf(f, "<text x=\"%d\" y=\"16\" font-size=\"14\">percpu chunk map: one cell per page "
               "of a unit (%u units per chunk)</text>\n", LEFT, pcpu_nr_cpus());
    for (int s = 0; s < 4; s++) {
        int x = LEFT + s * 140;
        fprintf(f, "<rect x=\"%d\" y=\"28\" width=\"12\" height=\"12\" fill=\"%s\" "
                   "stroke=\"#888\" stroke-width=\"0.5\"/>\n", x, state_color[s]);
        fprintf(f, "<text x=\"%d\" y=\"38\">%s</text>\n", x + 16, state_name[s]);
    }
    size_t y = TOP;
    for (unsigned int i = 0; i < n; i++) {
        const struct pcpu_chunk_info *ci = &info[i];
        fprintf(f, "<text x=\"%d\" y=\"%zu\">chunk %u%s: %zu/%zu pages populated, %zu live "
                   "allocations, %zu KiB free per unit</text>\n",
                LEFT, y + 12, i, ci->first ? " (first)" : ci->reserved ? " (reserved)" : "", ci->populated_pages,
                ci->nr_pages, ci->nr_alloc, ci->free_bytes / 1024);
        y += LABEL;
        for (size_t p = 0; p < ci->nr_pages; p++) {
            int s = ci->page_state ? ci->page_state[p] & 3 : 0;
            fprintf(f, "<rect x=\"%zu\" y=\"%zu\" width=\"%d\" height=\"%d\" fill=\"%s\" "
                       "stroke=\"white\" stroke-width=\"1\"/>\n",
                    LEFT + (p % PER_ROW) * CELL, y + (p / PER_ROW) * CELL, CELL, CELL,
                    state_color[s]);
        }
        y += ((ci->nr_pages + PER_ROW - 1) / PER_ROW) * CELL + 8;
    }
    fprintf(f, "</svg>\n");
    fclose(f);
out:
    for (unsigned int i = 0; i < n; i++)
        free(info[i].page_state);
}
