/* SPDX-License-Identifier: MIT */
/*
 * percpu-bench.c - measure percpu against what users would pick instead.
 *
 * The main job of the project (`make run`).  It measures this-CPU
 * increments against a shared atomic, a thread-local and a sched_getcpu()
 * striped array; other this-CPU operations (xchg, cmpxchg); a per-CPU free
 * list against a locked list, a tagged Treiber stack and a thread-local
 * list; per-CPU allocation against malloc and a hand-padded
 * per-CPU array; allocation cost with up to a million live objects; and
 * resident memory against the ideal and the padded layout.  Every timed
 * figure runs on real threads pinned one per CPU, at T=1 and T=all online
 * CPUs, and is the median of several repetitions with its spread shown.
 *
 * Output: a table with each figure's ratio to its baselines and to the
 * published anchors (struct anchor below), PASS/MISS per target, the
 * allocator's own stats and chunk map; optionally a JSON file of every
 * figure (--json) and SVG charts via gnuplot plus an SVG chunk map
 * (--plots).
 */
#define _GNU_SOURCE
#include "bench.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "percpu.h"

static void usage(FILE *f)
{
    fprintf(f,
"usage: percpu-bench [options]\n"
"\n"
"Measures percpu against the alternatives a user would pick instead and\n"
"checks the project's targets.  Timed figures run on real threads pinned\n"
"one per CPU, at 1 thread and at one thread per online CPU; each is the\n"
"median of several repetitions (after one warm-up), shown with its spread.\n"
"\n"
"  --full          longer run: 15 repetitions of ~200 ms (quick: 5 of ~15 ms)\n"
"  --reps N        repetitions per figure (1..%d)\n"
"  --ms MS         target duration of one repetition in milliseconds\n"
"  --json FILE     write every figure, the machine and the targets as JSON\n"
"  --plots DIR     write SVG (and PNG) charts via gnuplot, and the chunk map\n"
"                  as chunkmap.txt / chunkmap.svg\n"
"  --only PREFIX   run only figures whose name starts with PREFIX (inc.,\n"
"                  ops., list., alloc., free., scale., mem., units., counter.,\n"
"                  ref., rwsem., region.), or with one of several PREFIX,PREFIX;\n"
"                  targets needing others say SKIP\n"
"  --strict        exit with status 1 when a target is missed\n"
"  --wall          report wall-clock time per op instead of the threads' CPU\n"
"                  time (CPU time is the default: on a shared machine it is\n"
"                  not inflated by other processes; oncpu%% shows the share)\n"
"  --quiet         no progress lines on stderr\n"
"  --help          this text\n"
"\n"
"Figures: inc.{percpu,rseq_cmp,rseq_min,rseq_check,atomic_shared,tls,\nstriped_getcpu} (ns/op/thread),\n"
"ops.percpu.{xchg,cmpxchg} (ns/op/thread),\n"
"list.{percpu,mutex,treiber,tls}.push_pop (ns per pop+push pair per thread),\n"
"alloc.{percpu.{8,64,256,4096,mixed},malloc.8,padded.8} (ns per alloc+free\n"
"pair per thread), alloc.zerocheck.4096 (ns to check a 4 KiB object for zero\n"
"in every unit: the floor of alloc.percpu.4096),\n"
"{alloc,free}.percpu.bulk_{4,4_align8,1024} (T=1, ns per op of 1M\n"
"allocations then 1M frees in order), scale.percpu.live_{1000,100000,1000000} (T=1),\n"
"mem.{percpu,padded}.1M_x8 (kB resident for 1M 8-byte objects on every unit),\n"
"units.{alloc_free.8,free_big,live_1M,free_1M,maps,resident} at 2..4096\n"
"configured units with 2 touched (one child process per unit count),\n"
"counter.{percpu,atomic}.add (ns/op/thread), ref.{percpu,atomic}.get_put (ns\n"
"per get+put pair), rwsem.{percpu,pthread}.read (ns per read lock+unlock),\n"
"region.{percpu,atomic,private}.inc (ns/op per process, in 1 and one process\n"
"per CPU; \"threads\" is the number of processes), region.mem.4096_units (kB\n"
"of a region's file, 4096 units configured, 2 written).\n"
"The environment variables PERCPU_BACKEND=vm|km and PERCPU_INDEX=cpu|cid\n"
"select the allocator's configuration as for any program.\n",
            BENCH_MAX_REPS);
}

/* ---- the table ---------------------------------------------------------- */

/*
 * Figures published for other machines (librseq's, and the reference
 * figures the project set out to beat), printed for orientation only and
 * labelled so: no ratio and no target uses them; every comparison is
 * between figures of this run.
 */
struct anchor {
    const char *name;
    unsigned int threads;      /* 0: any; 2: only when T=2 */
    const char *text;
};
static const struct anchor anchors[] = {
    /* librseq's rseq_load_add_store__ptr() in a loop, built from source,
     * on the machine of the README's table (2.01-2.06 ns, 150M increments,
     * sum checked) */
    {"inc.percpu", 1, "librseq 2.0"},
    {"inc.tls", 1, "ref 1.2"},
    {"inc.atomic_shared", 1, "ref 2.0"},
    {"inc.atomic_shared", 2, "ref 7.9"},
    {"alloc.percpu.8", 1, "librseq 21.7"},
    {"alloc.percpu.8", 2, "librseq 133"},
    {"alloc.malloc.8", 1, "ref 9.2"},
    {"mem.percpu.1M_x8", 0, "librseq 1.06x"},
};

static const char *anchor_of(const struct result *r)
{
    for (size_t i = 0; i < sizeof(anchors) / sizeof(anchors[0]); i++)
        if (strcmp(anchors[i].name, r->name) == 0 &&
            (anchors[i].threads == 0 || anchors[i].threads == r->threads))
            return anchors[i].text;
    return "";
}

/* A base named "=PREFIX" is the figure's counterpart: the same name with
 * its first component replaced by PREFIX (free.percpu.bulk_4 against
 * alloc.percpu.bulk_4). */
struct group {
    const char *prefix, *title, *base1, *label1, *base2, *label2;
};
static const struct group groups[] = {
    {"inc.", "Increments: ns per op per thread", "inc.rseq_cmp", "x rseqcmp", "inc.tls",
     "x tls"},
    {"ops.", "Other this-CPU operations: ns per op per thread", "inc.tls", "x inc.tls",
     "inc.percpu", "x inc"},
    {"list.", "Lists: ns per pop+push pair per thread", "list.tls.push_pop", "x tls",
     "list.percpu.push_pop", "x percpu"},
    {"alloc.", "Allocation: ns per alloc+free pair per thread (bulk: per allocation)",
     "alloc.malloc.8", "x malloc8", "alloc.percpu.8", "x percpu8"},
    {"free.", "Bulk free: T=1, ns per free of 1M objects, freed in allocation order",
     "=alloc", "x alloc", NULL, ""},
    {"scale.", "Scale: T=1, ns per pair with N live 8-byte objects", "scale.percpu.live_1000",
     "x live1k", NULL, ""},
    {"counter.", "Counters: ns per add per thread", "inc.percpu", "x inc",
     "counter.atomic.add", "x atomic"},
    {"ref.", "Reference counts: ns per get+put pair per thread", "ref.atomic.get_put",
     "x atomic", NULL, ""},
    {"rwsem.", "Reader-writer semaphore: ns per read lock+unlock per thread",
     "rwsem.pthread.read", "x pthread", NULL, ""},
    {"mem.", "Memory: T=1, resident kB for 1M 8-byte objects on every unit", NULL, "x ideal",
     "mem.percpu.1M_x8", "x percpu"},
    {"region.", "Regions shared between processes: ns per op per process (T = processes "
                "busy); mem: kB of the file",
     "inc.percpu", "x inc", "region.percpu.inc", "x region"},
};

static void ratio_cell(char *buf, size_t n, const struct result *r, const char *base)
{
    char counterpart[64];
    if (base && base[0] == '=') {
        const char *dot = strchr(r->name, '.');
        snprintf(counterpart, sizeof(counterpart), "%s%s", base + 1, dot ? dot : "");
        base = counterpart;
    }
    const struct result *b = base ? result_find(base, r->threads) : NULL;
    if (b && b->value > 0)
        snprintf(buf, n, "%.2f", r->value / b->value);
    else
        snprintf(buf, n, "-");
}

static void print_table(void)
{
    for (size_t g = 0; g < sizeof(groups) / sizeof(groups[0]); g++) {
        const struct group *gr = &groups[g];
        bool any = false;
        for (unsigned int i = 0; i < nr_results; i++)
            any |= strncmp(results[i].name, gr->prefix, strlen(gr->prefix)) == 0;
        if (!any)
            continue;
        printf("\n%s\n", gr->title);
        printf("  %-27s %3s %9s %6s  %-21s %6s %9s %9s  %s\n", "figure", "T", "median", "rMAD",
               "min .. max", "oncpu", gr->label1, gr->label2, "elsewhere*");
        /* each name's rows together, in the order names first appeared */
        unsigned int order[BENCH_MAX_RESULTS], no = 0;
        for (unsigned int i = 0; i < nr_results; i++) {
            bool seen = false;
            for (unsigned int k = 0; k < i && !seen; k++)
                seen = strcmp(results[k].name, results[i].name) == 0;
            if (!seen)
                for (unsigned int k = i; k < nr_results; k++)
                    if (strcmp(results[k].name, results[i].name) == 0)
                        order[no++] = k;
        }
        for (unsigned int o = 0; o < no; o++) {
            const struct result *r = &results[order[o]];
            if (strncmp(r->name, gr->prefix, strlen(gr->prefix)) != 0)
                continue;
            char c1[16], c2[16], mm[40], val[24], mad[16], onc[16];
            if (r->ideal > 0)
                snprintf(c1, sizeof(c1), "%.2f", r->ratio);
            else
                ratio_cell(c1, sizeof(c1), r, gr->base1);
            ratio_cell(c2, sizeof(c2), r, gr->base2);
            if (strcmp(r->unit, "kB") == 0) {
                snprintf(val, sizeof(val), "%.0f", r->value);
                snprintf(mm, sizeof(mm), "ideal %.0f", r->ideal);
                snprintf(mad, sizeof(mad), "-");
                snprintf(onc, sizeof(onc), "-");
            } else {
                snprintf(onc, sizeof(onc), "%.0f%%", r->oncpu * 100);
                snprintf(val, sizeof(val), "%.2f", r->value);
                snprintf(mm, sizeof(mm), "%.2f .. %.2f", r->min, r->max);
                snprintf(mad, sizeof(mad), "%.1f%%", r->rmad * 100);
            }
            printf("  %-27s %3u %9s %6s  %-21s %6s %9s %9s  %s\n", r->name, r->threads, val, mad,
                   mm, onc, c1, c2, anchor_of(r));
        }
    }
    printf("  * elsewhere: figures published for other machines (librseq, ref), for orientation\n"
           "    only; every ratio and target compares figures measured in this run.\n");
    const struct result *m = result_find("mem.percpu.1M_x8", 1);
    if (m)
        printf("  (mem: %s; the allocator's own pcpu_stats say resident +%.0f kB, "
               "metadata +%.0f kB)\n", m->source, m->pcpu_resident_kb, m->pcpu_metadata_kb);
}

/* ---- targets ------------------------------------------------------------ */

struct target_result {
    char text[96];
    double ratio, limit;
    int state;          /* 1 pass, 0 miss, -1 skipped */
    bool absolute;      /* ratio holds the figure itself, limit its bound */
};
static struct target_result targets[96];
static unsigned int nr_targets;

/* a/b compared with limit: want "<=" or ">=". */
static void target(const char *text, const char *a, unsigned int ta, const char *b,
                   unsigned int tb, bool at_most, double limit)
{
    struct target_result *t = &targets[nr_targets++];
    const struct result *ra = result_find(a, ta), *rb = result_find(b, tb);
    snprintf(t->text, sizeof(t->text), "%s", text);
    t->limit = limit;
    if (!ra || !rb || rb->value <= 0) {
        t->state = -1;
        return;
    }
    t->ratio = ra->value / rb->value;
    t->state = at_most ? t->ratio <= limit : t->ratio >= limit;
}

/* The same at T=1 and at T=n: "a ... b (T=%u)". */
static void target_1_n(const char *fmt, const char *a, const char *b, bool at_most,
                       double limit)
{
    char buf[96];
    unsigned int n = online_cpus();
    snprintf(buf, sizeof(buf), fmt, 1u);
    target(buf, a, 1, b, 1, at_most, limit);
    if (n > 1) {
        snprintf(buf, sizeof(buf), fmt, n);
        target(buf, a, n, b, n, at_most, limit);
    }
}

/* An absolute bound in the figure's own unit (the ratio column shows the
 * figure). */
static void target_abs(const char *text, const char *a, unsigned int ta, double limit)
{
    struct target_result *t = &targets[nr_targets++];
    const struct result *ra = result_find(a, ta);
    snprintf(t->text, sizeof(t->text), "%s", text);
    t->limit = limit;
    t->state = ra ? ra->value <= limit : -1;
    t->ratio = ra ? ra->value : 0;
    t->absolute = true;
}

/* units.* at 4096 units against 2 (or, @absolute, against @limit). */
static void target_units(const char *text, const char *name, double limit, bool absolute)
{
    struct target_result *t = &targets[nr_targets++];
    const struct result *big = result_find_units(name, 4096), *two = result_find_units(name, 2);
    snprintf(t->text, sizeof(t->text), "%s", text);
    t->limit = limit;
    t->absolute = absolute;
    if (!big || (!absolute && (!two || two->value <= 0))) {
        t->state = -1;
        return;
    }
    t->ratio = absolute ? big->value : big->value / two->value;
    t->state = t->ratio <= limit;
}

static int check_targets(void)
{
    unsigned int n = online_cpus();
    char buf[96];
    target_1_n("inc.percpu within 1.1x of inc.rseq_cmp (T=%u)", "inc.percpu", "inc.rseq_cmp",
               true, 1.1);
    target_1_n("inc.percpu within 1.5x of inc.tls (T=%u)", "inc.percpu", "inc.tls", true, 1.5);
    snprintf(buf, sizeof(buf), "inc.atomic_shared >= 4x inc.percpu (T=%u)", n);
    target(buf, "inc.atomic_shared", n, "inc.percpu", n, false, 4);
    target_1_n("inc.striped_getcpu >= 3x inc.percpu (T=%u)", "inc.striped_getcpu", "inc.percpu",
               false, 3);
    target_1_n("alloc.percpu.8 within 1.2x of alloc.malloc.8 (T=%u)", "alloc.percpu.8",
               "alloc.malloc.8", true, 1.2);
    snprintf(buf, sizeof(buf), "alloc.percpu.8 T=%u within 1.5x of T=1", n);
    target(buf, "alloc.percpu.8", n, "alloc.percpu.8", 1, true, 1.5);
    snprintf(buf, sizeof(buf), "alloc.percpu.256 T=%u within 1.2x of T=1", n);
    target(buf, "alloc.percpu.256", n, "alloc.percpu.256", 1, true, 1.2);
    target_1_n("alloc.percpu.4096 within 4x of alloc.malloc.8 (T=%u)", "alloc.percpu.4096",
               "alloc.malloc.8", true, 4);
    target_abs("alloc.percpu.mixed T=1 at most 400 ns", "alloc.percpu.mixed", 1, 400);
    snprintf(buf, sizeof(buf), "alloc.percpu.mixed T=%u within 1.2x of T=1", n);
    target(buf, "alloc.percpu.mixed", n, "alloc.percpu.mixed", 1, true, 1.2);
    target("free.percpu.bulk_4 at most alloc.percpu.bulk_4", "free.percpu.bulk_4", 1,
           "alloc.percpu.bulk_4", 1, true, 1);
    target("free.percpu.bulk_1024 at most alloc.percpu.bulk_1024", "free.percpu.bulk_1024", 1,
           "alloc.percpu.bulk_1024", 1, true, 1);
    target("alloc.percpu.bulk_4_align8 within 2x of alloc.percpu.bulk_4",
           "alloc.percpu.bulk_4_align8", 1, "alloc.percpu.bulk_4", 1, true, 2);
    snprintf(buf, sizeof(buf), "list.treiber >= 3x list.percpu push_pop (T=%u)", n);
    target(buf, "list.treiber.push_pop", n, "list.percpu.push_pop", n, false, 3);
    target_1_n("list.percpu push_pop within 1.5x of list.tls (T=%u)", "list.percpu.push_pop",
               "list.tls.push_pop", true, 1.5);
    target("scale: 1M live within 1.2x of 1k live", "scale.percpu.live_1000000", 1,
           "scale.percpu.live_1000", 1, true, 1.2);
    /* the clients (issue 13): against a shared atomic / pthread_rwlock with
     * every CPU busy, and the counter's add against a plain increment */
    snprintf(buf, sizeof(buf), "counter.atomic.add >= 4x counter.percpu.add (T=%u)", n);
    target(buf, "counter.atomic.add", n, "counter.percpu.add", n, false, 4);
    snprintf(buf, sizeof(buf), "ref.atomic.get_put >= 4x ref.percpu (T=%u)", n);
    target(buf, "ref.atomic.get_put", n, "ref.percpu.get_put", n, false, 4);
    snprintf(buf, sizeof(buf), "rwsem.pthread.read >= 4x rwsem.percpu (T=%u)", n);
    target(buf, "rwsem.pthread.read", n, "rwsem.percpu.read", n, false, 4);
    target_1_n("counter.percpu.add within 1.3x of inc.percpu (T=%u)", "counter.percpu.add",
               "inc.percpu", true, 1.3);
    target_1_n("ref.percpu.get_put within 2.5x of inc.rseq_cmp (T=%u)", "ref.percpu.get_put",
               "inc.rseq_cmp", true, 2.5);
    target_1_n("rwsem.percpu.read within 2.5x of inc.rseq_cmp (T=%u)", "rwsem.percpu.read",
               "inc.rseq_cmp", true, 2.5);
    /* mem vs ideal: compare against a pseudo-result holding the ideal */
    const struct result *m = result_find("mem.percpu.1M_x8", 1);
    struct target_result *t = &targets[nr_targets++];
    snprintf(t->text, sizeof(t->text), "mem.percpu within 1.2x of ideal");
    t->limit = 1.2;
    t->state = m ? m->ratio <= 1.2 : -1;
    t->ratio = m ? m->ratio : 0;
    /* cost vs units: the most units against two, both touching two */
    static const char *const unit_timed[] = {"units.alloc_free.8", "units.free_big",
                                             "units.live_1M", "units.free_1M"};
    for (size_t i = 0; i < sizeof(unit_timed) / sizeof(unit_timed[0]); i++) {
        snprintf(buf, sizeof(buf), "%s: 4096 units within 2x of 2", unit_timed[i]);
        target_units(buf, unit_timed[i], 2.0, false);
    }
    target_units("units.maps: 4096 units at most 3 maps per chunk", "units.maps", 3.0, true);
    target_units("units.resident: 4096 units within 1.1x of 2", "units.resident", 1.1, false);
    target("mem.padded >= 4x mem.percpu", "mem.padded.1M_x8", 1, "mem.percpu.1M_x8", 1, false, 4);
    /* regions (issue 27): P processes busy, in the threads field */
    target_1_n("region.percpu.inc within 1.2x of inc.percpu (P=%u)", "region.percpu.inc",
               "inc.percpu", true, 1.2);
    snprintf(buf, sizeof(buf), "region.atomic.inc >= 10x region.percpu.inc (P=%u)", n);
    target(buf, "region.atomic.inc", n, "region.percpu.inc", n, false, 10);
    const struct result *rm = result_find("region.mem.4096_units", 1);
    t = &targets[nr_targets++];
    snprintf(t->text, sizeof(t->text), "region.mem: 4096 units, 2 written, within 1.1x of 2");
    t->limit = 1.1;
    t->state = rm ? rm->ratio <= 1.1 : -1;
    t->ratio = rm ? rm->ratio : 0;

    printf("\nTargets (ratios within this run)\n");
    int missed = 0;
    for (unsigned int i = 0; i < nr_targets; i++) {
        t = &targets[i];
        if (t->state < 0)
            printf("  SKIP  %-52s (figures not measured)\n", t->text);
        else
            printf("  %s  %-52s %s %.2f\n", t->state ? "PASS" : "MISS", t->text,
                   t->absolute ? "value" : "ratio", t->ratio);
        missed += t->state == 0;
    }
    return missed;
}

/* ---- JSON --------------------------------------------------------------- */

static int write_json(const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        return -1;
    }
    fprintf(f, "{\n");
    machine_json(f);
    fprintf(f, ",\n  \"results\": [\n");
    for (unsigned int i = 0; i < nr_results; i++) {
        const struct result *r = &results[i];
        fprintf(f, "    {\"name\": \"%s\", \"threads\": %u, \"value\": %.4f, \"unit\": \"%s\"",
                r->name, r->threads, r->value, r->unit);
        if (r->units)
            fprintf(f, ", \"units\": %u, \"min\": %.4f, \"max\": %.4f, \"rmad\": %.4f, "
                       "\"reps\": %u, \"source\": \"%s\"}%s\n",
                    r->units, r->min, r->max, r->rmad, r->reps, r->source,
                    i + 1 < nr_results ? "," : "");
        if (r->units)
            continue;
        if (strcmp(r->unit, "kB") == 0)
            fprintf(f, ", \"ideal\": %.1f, \"ratio\": %.4f, \"source\": \"%s\", "
                       "\"rss_kb\": %.0f, \"pcpu_resident_kb\": %.1f, \"pcpu_metadata_kb\": %.1f",
                    r->ideal, r->ratio, r->source, r->rss_kb, r->pcpu_resident_kb,
                    r->pcpu_metadata_kb);
        else
            fprintf(f, ", \"min\": %.4f, \"max\": %.4f, \"rmad\": %.4f, \"reps\": %u, "
                       "\"iters\": %llu, \"clock\": \"%s\", \"cpu_ns\": %.4f, \"wall_ns\": %.4f, "
                       "\"oncpu\": %.3f",
                    r->min, r->max, r->rmad, r->reps, (unsigned long long)r->iters,
                    bench_opts.wall ? "wall" : "thread_cpu", r->cpu, r->wall, r->oncpu);
        fprintf(f, "}%s\n", i + 1 < nr_results ? "," : "");
    }
    fprintf(f, "  ],\n  \"targets\": [\n");
    for (unsigned int i = 0; i < nr_targets; i++) {
        const struct target_result *t = &targets[i];
        fprintf(f, "    {\"target\": \"%s\", \"ratio\": %.4f, \"limit\": %.2f, \"result\": \"%s\"}%s\n",
                t->text, t->ratio, t->limit,
                t->state < 0 ? "SKIP" : t->state ? "PASS" : "MISS",
                i + 1 < nr_targets ? "," : "");
    }
    fprintf(f, "  ]\n}\n");
    if (fclose(f) != 0) {
        perror(path);
        return -1;
    }
    return 0;
}

/* ---- main --------------------------------------------------------------- */

int main(int argc, char **argv)
{
    static const struct option lopts[] = {
        {"full", no_argument, NULL, 'f'},   {"reps", required_argument, NULL, 'r'},
        {"ms", required_argument, NULL, 'm'}, {"json", required_argument, NULL, 'j'},
        {"plots", required_argument, NULL, 'p'}, {"only", required_argument, NULL, 'o'},
        {"strict", no_argument, NULL, 's'}, {"quiet", no_argument, NULL, 'q'},
        {"wall", no_argument, NULL, 'w'},
        {"units-child", required_argument, NULL, 'u'},
        {"help", no_argument, NULL, 'h'},   {NULL, 0, NULL, 0},
    };
    unsigned int reps = 0, units_of_child = 0;
    double ms = 0;
    int c;
    while ((c = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
        switch (c) {
        case 'f': bench_opts.full = true; break;
        case 'r': reps = (unsigned int)strtoul(optarg, NULL, 0); break;
        case 'm': ms = strtod(optarg, NULL); break;
        case 'j': bench_opts.json = optarg; break;
        case 'p': bench_opts.plots = optarg; break;
        case 'o': bench_opts.only = optarg; break;
        case 's': bench_opts.strict = true; break;
        case 'q': bench_opts.quiet = true; break;
        case 'w': bench_opts.wall = true; break;
        case 'u': units_of_child = (unsigned int)strtoul(optarg, NULL, 0); break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        usage(stderr);
        return 2;
    }
    bench_opts.reps = reps ? reps : bench_opts.full ? 15 : 5;
    bench_opts.rep_ms = ms > 0 ? ms : bench_opts.full ? 200 : 15;
    if (bench_opts.reps < 1 || bench_opts.reps > BENCH_MAX_REPS) {
        fprintf(stderr, "percpu-bench: --reps must be 1..%d\n", BENCH_MAX_REPS);
        return 2;
    }
    /* one configuration of figures_units(), before anything initialises */
    if (units_of_child)
        return units_child(units_of_child);
    if (pcpu_nr_cpus() == 0) {
        perror("percpu-bench: cannot initialise the allocator");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("percpu-bench: percpu against what users would pick instead\n");
    machine_print(stdout);

    double t0 = now_ns();
    /* memory first, while the allocator is fresh */
    figures_mem();
    figures_inc();
    figures_ops();
    figures_list();
    figures_alloc();
    figures_bulk();
    figures_scale();
    figures_clients();
    figures_units();
    figures_region();

    print_table();
    units_table();
    int missed = check_targets();

    /* a varied state to draw: full, partly used, empty and unpopulated pages */
    void *demo = chunkmap_demo_state();
    printf("\nChunk map (a demo state: 2048 8-byte objects, then mixed sizes with 60%% freed;\n"
           "'#' full, '+' partly used, '.' populated and empty, ' ' not populated)\n");
    pcpu_chunk_map_print(stdout, 64);
    if (bench_opts.plots) {
        if (mkdir(bench_opts.plots, 0777) != 0 && errno != EEXIST)
            perror(bench_opts.plots);
        else
            chunkmap_write(bench_opts.plots);
    }
    chunkmap_demo_free(demo);

    printf("\nAllocator statistics at the end of the run\n");
    pcpu_stats_print(stdout);

    if (bench_opts.json && write_json(bench_opts.json) == 0)
        printf("\nwrote %s\n", bench_opts.json);
    if (bench_opts.plots)
        plots_write(bench_opts.plots);
    printf("%d target%s missed; total time %.1f s\n", missed, missed == 1 ? "" : "s",
           (now_ns() - t0) / 1e9);
    return bench_opts.strict && missed ? 1 : 0;
}
