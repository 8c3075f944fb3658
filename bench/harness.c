/* SPDX-License-Identifier: MIT */
/*
 * harness.c - pinned worker threads, timing and statistics for percpu-bench.
 *
 * measure() runs one loop on T real threads, thread i pinned to the i-th
 * CPU this process may use; measure_group() runs several, repetitions
 * interleaved.  All threads start each repetition together (a barrier),
 * time their own loop, and the repetition's figure is the mean of the
 * threads' ns per operation.  One untimed warm-up repetition
 * comes first; the reported value is the median of the timed ones, with
 * min, max and the relative median absolute deviation as the spread.
 *
 * The iteration count is calibrated once per loop (on its first, usually
 * single-thread, measurement) so that a repetition lasts about
 * bench_opts.rep_ms, and then kept, so T=1 and T=N do the same work per
 * thread.
 */
#define _GNU_SOURCE
#include "bench.h"

#include <errno.h>
#include <gnu/libc-version.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "percpu.h"

struct bench_opts bench_opts;
struct result results[BENCH_MAX_RESULTS];
unsigned int nr_results;

static int cpu_list[PCPU_MAX_CPUS];
static unsigned int nr_cpu_list;

static void cpus_init(void)
{
    if (nr_cpu_list)
        return;
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) == 0) {
        for (int c = 0; c < CPU_SETSIZE && nr_cpu_list < PCPU_MAX_CPUS; c++)
            if (CPU_ISSET(c, &set))
                cpu_list[nr_cpu_list++] = c;
    }
    if (!nr_cpu_list) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        for (long c = 0; c < n && c < PCPU_MAX_CPUS; c++)
            cpu_list[nr_cpu_list++] = (int)c;
    }
}

unsigned int online_cpus(void)
{
    cpus_init();
    return nr_cpu_list;
}

int online_cpu(unsigned int i)
{
    cpus_init();
    return cpu_list[i % nr_cpu_list];
}

/* CPU time of the calling thread: what a repetition cost while it ran. */
double thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median_sorted(const double *v, unsigned int n)
{
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void stats_of(double *v, unsigned int n, double *median, double *min,
              double *max, double *rmad)
{
    double s[BENCH_MAX_REPS], d[BENCH_MAX_REPS];
    memcpy(s, v, n * sizeof(*v));
    qsort(s, n, sizeof(*s), cmp_double);
    double m = median_sorted(s, n);
    for (unsigned int i = 0; i < n; i++)
        d[i] = s[i] > m ? s[i] - m : m - s[i];
    qsort(d, n, sizeof(*d), cmp_double);
    *median = m;
    *min = s[0];
    *max = s[n - 1];
    *rmad = m > 0 ? median_sorted(d, n) / m : 0;
}

struct result *result_add(const char *name, unsigned int threads, const char *unit)
{
    if (nr_results == BENCH_MAX_RESULTS) {
        fprintf(stderr, "percpu-bench: too many results\n");
        exit(2);
    }
    struct result *r = &results[nr_results++];
    memset(r, 0, sizeof(*r));
    snprintf(r->name, sizeof(r->name), "%s", name);
    r->threads = threads;
    r->unit = unit;
    return r;
}

const struct result *result_find(const char *name, unsigned int threads)
{
    for (unsigned int i = 0; i < nr_results; i++)
        if (results[i].threads == threads && strcmp(results[i].name, name) == 0)
            return &results[i];
    return NULL;
}

/* --only takes one prefix or several separated by commas. */
bool name_selected(const char *name)
{
    if (!bench_opts.only)
        return true;
    for (const char *p = bench_opts.only;;) {
        size_t len = strcspn(p, ",");
        if (len && strncmp(name, p, len) == 0)
            return true;
        if (!p[len])
            return false;
        p += len + 1;
    }
}

void progress(const char *fmt, ...)
{
    if (bench_opts.quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    fputs("  .. ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* ---- one measurement ---------------------------------------------------- */

/*
 * A group of loops measured together: every thread runs repetition r of
 * each loop in turn (all threads start each loop together), so the
 * machine's drift between phases of a run (up to 2x here) hits the
 * baseline and the subject alike, and their ratio is a same-time ratio.
 */
#define GROUP_MAX 12

struct run {
    struct loop **ls;
    unsigned int nl;
    unsigned int threads, reps;    /* reps includes the warm-up          */
    pthread_barrier_t bar;
    /* thread CPU time and wall-clock time per op, [thread][loop][rep] */
    double ns[256][GROUP_MAX][BENCH_MAX_REPS + 1];
    double wall[256][GROUP_MAX][BENCH_MAX_REPS + 1];
};

struct worker {
    struct run *run;
    unsigned int tid;
};

static void pin(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    int e = pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
    if (e)
        fprintf(stderr, "percpu-bench: cannot pin to CPU %d: %s\n", cpu, strerror(e));
}

/* Double the count until a run lasts 1/8 of the target, then scale. */
static uint64_t calibrate(struct loop *l, void *state)
{
    uint64_t n = 256;
    double target = bench_opts.rep_ms * 1e6;
    for (;;) {
        double t0 = now_ns();
        l->run(state, n);
        l->extra_ops += n;
        double dt = now_ns() - t0;
        if (dt >= target / 8 || n >= (1ull << 34)) {
            double k = target / (dt > 1 ? dt : 1);
            uint64_t it = (uint64_t)((double)n * k);
            return it < 64 ? 64 : it;
        }
        n *= 2;
    }
}

static void *worker_main(void *p)
{
    struct worker *w = p;
    struct run *r = w->run;
    void *state[GROUP_MAX];
    pin(online_cpu(w->tid));
    for (unsigned int j = 0; j < r->nl; j++) {
        struct loop *l = r->ls[j];
        state[j] = l->setup ? l->setup(l, w->tid) : NULL;
        if (w->tid == 0 && !l->iters)
            l->iters = calibrate(l, state[j]);
    }
    for (unsigned int rep = 0; rep < r->reps; rep++) {
        for (unsigned int j = 0; j < r->nl; j++) {
            struct loop *l = r->ls[j];
            pthread_barrier_wait(&r->bar);
            double t0 = now_ns(), c0 = thread_cpu_ns();
            l->run(state[j], l->iters);
            double t1 = now_ns(), c1 = thread_cpu_ns();
            r->wall[w->tid][j][rep] = (t1 - t0) / (double)l->iters;
            r->ns[w->tid][j][rep] = (c1 - c0) / (double)l->iters;
            pthread_barrier_wait(&r->bar);
        }
    }
    for (unsigned int j = r->nl; j-- > 0;)
        if (r->ls[j]->teardown)
            r->ls[j]->teardown(state[j]);
    return NULL;
}

static void run_threads(struct run *r)
{
    pthread_barrier_init(&r->bar, NULL, r->threads);
    pthread_t tids[256];
    struct worker ws[256];
    for (unsigned int i = 0; i < r->threads; i++) {
        ws[i] = (struct worker){r, i};
        int e = pthread_create(&tids[i], NULL, worker_main, &ws[i]);
        if (e) {
            fprintf(stderr, "percpu-bench: pthread_create: %s\n", strerror(e));
            exit(2);
        }
    }
    for (unsigned int i = 0; i < r->threads; i++)
        pthread_join(tids[i], NULL);
    pthread_barrier_destroy(&r->bar);
}

/* A result from per-repetition figures (CPU time and wall clock). */
static struct result *result_of(const struct loop *l, unsigned int threads, double *per_rep,
                                double *wall_rep, unsigned int n)
{
    struct result *res = result_add(l->name, threads, "ns/op");
    double x;
    if (bench_opts.wall) {
        stats_of(per_rep, n, &res->cpu, &x, &x, &x);
        stats_of(wall_rep, n, &res->value, &res->min, &res->max, &res->rmad);
        res->wall = res->value;
    } else {
        stats_of(wall_rep, n, &res->wall, &x, &x, &x);
        stats_of(per_rep, n, &res->value, &res->min, &res->max, &res->rmad);
        res->cpu = res->value;
    }
    res->oncpu = res->wall > 0 ? res->cpu / res->wall : 1;
    res->reps = n;
    res->iters = l->iters;
    return res;
}

/* Repetition rep of loop j, averaged over the run's threads. */
static void rep_of(const struct run *r, unsigned int j, unsigned int rep, double *cpu,
                   double *wall)
{
    double s = 0, w = 0;
    for (unsigned int i = 0; i < r->threads; i++) {
        s += r->ns[i][j][rep];
        w += r->wall[i][j][rep];
    }
    *cpu = s / r->threads;
    *wall = w / r->threads;
}

/* The figures of loop j of the group, from its timed repetitions. */
static struct result *group_result(struct run *r, unsigned int j)
{
    struct loop *l = r->ls[j];
    unsigned int threads = r->threads, n = r->reps - 1;
    double per_rep[BENCH_MAX_REPS], wall_rep[BENCH_MAX_REPS];
    for (unsigned int rep = 0; rep < n; rep++)
        rep_of(r, j, rep + 1, &per_rep[rep], &wall_rep[rep]);  /* skip the warm-up */
    struct result *res = result_of(l, threads, per_rep, wall_rep, n);
    if (l->check)
        l->check(l, (uint64_t)threads * (n + 1) * l->iters + l->extra_ops);
    l->extra_ops = 0;
    return res;
}

/* Calibrate alone first if nobody did, so all threads agree on iters:
 * thread 0 calibrates inside a one-thread run of zero repetitions. */
static void calibrate_alone(struct run *r, struct loop **ls, unsigned int nl)
{
    bool uncalibrated = false;
    for (unsigned int j = 0; j < nl; j++)
        uncalibrated |= !ls[j]->iters;
    if (!uncalibrated)
        return;
    r->ls = ls;
    r->nl = nl;
    r->reps = 0;
    r->threads = 1;
    run_threads(r);
}

/* The checks of a group measured in fresh runs (fresh_rep), whose ops
 * the runs added to extra_ops. */
static void check_fresh(struct loop **ls, unsigned int nl)
{
    for (unsigned int j = 0; j < nl; j++) {
        if (ls[j]->check)
            ls[j]->check(ls[j], ls[j]->extra_ops);
        ls[j]->extra_ops = 0;
    }
}

/* At most GROUP_MAX loops (else exit) and 256 threads; false if no loop. */
static bool group_ok(unsigned int nl, unsigned int *threads)
{
    if (nl > GROUP_MAX) {
        fprintf(stderr, "percpu-bench: more than %d loops in a group\n", GROUP_MAX);
        exit(2);
    }
    if (*threads > 256)
        *threads = 256;
    return nl > 0;
}

/* Run ls[0, nl) in fresh threads (their caches start empty): one warm-up
 * repetition, then the timed one, into cpu[j][rep] and wall[j][rep]. */
static void fresh_rep(struct run *r, struct loop **ls, unsigned int nl, unsigned int threads,
                      unsigned int rep, double (*cpu)[BENCH_MAX_REPS],
                      double (*wall)[BENCH_MAX_REPS])
{
    r->ls = ls;
    r->nl = nl;
    r->threads = threads;
    r->reps = 2;
    run_threads(r);
    for (unsigned int j = 0; j < nl; j++) {
        rep_of(r, j, 1, &cpu[j][rep], &wall[j][rep]);
        ls[j]->extra_ops += (uint64_t)threads * 2 * ls[j]->iters;
    }
}

void measure_group(struct loop **ls, unsigned int nl, unsigned int threads)
{
    static struct run run;          /* big: keep it off the stack */
    struct run *r = &run;
    if (!group_ok(nl, &threads))
        return;
    r->ls = ls;
    r->nl = nl;
    for (unsigned int j = 0; j < nl; j++)
        progress("%s, %u thread%s%s", ls[j]->name, threads, threads > 1 ? "s" : "",
                 nl > 1 ? " (interleaved)" : "");
    if (threads > 1)
        calibrate_alone(r, ls, nl);
    r->threads = threads;
    r->reps = bench_opts.reps + 1;
    run_threads(r);
    for (unsigned int j = 0; j < nl; j++)
        group_result(r, j);
}

struct result *measure(struct loop *l, unsigned int threads)
{
    measure_group(&l, 1, threads);
    return &results[nr_results - 1];
}

void measure_1_n_alternating(struct loop *l, unsigned int threads)
{
    measure_group_1_n_alternating(&l, 1, threads);
}

void measure_group_1_n_alternating(struct loop **ls, unsigned int nl, unsigned int threads)
{
    static struct run run;
    static double cpu[2][GROUP_MAX][BENCH_MAX_REPS], wall[2][GROUP_MAX][BENCH_MAX_REPS];
    if (!group_ok(nl, &threads))
        return;
    for (unsigned int j = 0; j < nl; j++)
        progress("%s, 1 and %u threads (alternating)", ls[j]->name, threads);
    calibrate_alone(&run, ls, nl);
    unsigned int n = bench_opts.reps;
    for (unsigned int rep = 0; rep < n; rep++)
        for (unsigned int k = 0; k < 2; k++)
            fresh_rep(&run, ls, nl, k ? threads : 1, rep, cpu[k], wall[k]);
    for (unsigned int k = 0; k < 2; k++)
        for (unsigned int j = 0; j < nl; j++)
            result_of(ls[j], k ? threads : 1, cpu[k][j], wall[k][j], n);
    check_fresh(ls, nl);
}

void measure_alternating(struct loop **ls, unsigned int nl, unsigned int threads)
{
    static struct run run;
    static double cpu[GROUP_MAX][BENCH_MAX_REPS], wall[GROUP_MAX][BENCH_MAX_REPS];
    if (!group_ok(nl, &threads))
        return;
    for (unsigned int j = 0; j < nl; j++)
        progress("%s, %u thread%s (alternating, set up afresh)", ls[j]->name, threads,
                 threads > 1 ? "s" : "");
    /* Each loop calibrated on its own state, and run on its own. */
    for (unsigned int j = 0; j < nl; j++)
        calibrate_alone(&run, &ls[j], 1);
    unsigned int n = bench_opts.reps;
    for (unsigned int rep = 0; rep < n; rep++)
        for (unsigned int j = 0; j < nl; j++)
            fresh_rep(&run, &ls[j], 1, threads, rep, &cpu[j], &wall[j]);
    for (unsigned int j = 0; j < nl; j++)
        result_of(ls[j], threads, cpu[j], wall[j], n);
    check_fresh(ls, nl);
}

/* ---- machine ------------------------------------------------------------ */

long vm_rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

static void cpu_model(char *buf, size_t n)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];
    snprintf(buf, n, "unknown");
    if (!f)
        return;
    while (fgets(line, sizeof(line), f)) {
        char *c = strchr(line, ':');
        if (c && (strncmp(line, "model name", 10) == 0 || strncmp(line, "Processor", 9) == 0)) {
            c++;
            while (*c == ' ' || *c == '\t')
                c++;
            c[strcspn(c, "\n")] = 0;
            snprintf(buf, n, "%s", c);
            break;
        }
    }
    fclose(f);
}

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fprintf(f, "\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            fprintf(f, "\\u%04x", *s);
        else
            fputc(*s, f);
    }
    fputc('"', f);
}

struct machine {
    char model[256];
    struct utsname uts;
    double load1;
    struct pcpu_stats st;
};

static void machine_get(struct machine *m)
{
    cpu_model(m->model, sizeof(m->model));
    uname(&m->uts);
    m->load1 = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &m->load1) != 1)
            m->load1 = -1;
        fclose(f);
    }
    memset(&m->st, 0, sizeof(m->st));
    pcpu_stats_get(&m->st);
}

void machine_json(FILE *f)
{
    struct machine m;
    machine_get(&m);
    fprintf(f, "  \"machine\": {\n    \"cpus\": %u,\n    \"units\": %u,\n    \"model\": ",
            online_cpus(), m.st.nr_units);
    json_str(f, m.model);
    fprintf(f, ",\n    \"kernel\": ");
    json_str(f, m.uts.release);
    fprintf(f, ",\n    \"arch\": ");
    json_str(f, m.uts.machine);
    fprintf(f, ",\n    \"glibc\": ");
    json_str(f, gnu_get_libc_version());
    fprintf(f, ",\n    \"compiler\": ");
    json_str(f, __VERSION__);
    fprintf(f, ",\n    \"rseq\": %s,\n    \"backend\": \"%s\",\n    \"index\": \"%s\","
               "\n    \"unit_size\": %zu,\n    \"page_size\": %zu,\n    \"mode\": \"%s\","
               "\n    \"reps\": %u,\n    \"rep_ms\": %.0f,\n    \"loadavg_1min\": %.2f\n  }",
            m.st.rseq ? "true" : "false", m.st.backend == PCPU_BACKEND_KM ? "km" : "vm",
            m.st.index == PCPU_INDEX_CID ? "cid" : "cpu", m.st.unit_size, m.st.page_size,
            bench_opts.full ? "full" : "quick", bench_opts.reps, bench_opts.rep_ms, m.load1);
}

void machine_print(FILE *f)
{
    struct machine m;
    machine_get(&m);
    fprintf(f, "machine: %s, %u CPUs online, %u units, kernel %s %s, glibc %s\n", m.model,
            online_cpus(), m.st.nr_units, m.uts.release, m.uts.machine, gnu_get_libc_version());
    fprintf(f, "percpu:  backend %s, index %s, this-CPU ops %s, unit %zu KiB; load average %.2f\n",
            m.st.backend == PCPU_BACKEND_KM ? "km" : "vm",
            m.st.index == PCPU_INDEX_CID ? "cid" : "cpu",
            m.st.rseq ? "rseq" : "atomic fallback (no rseq)", m.st.unit_size / 1024, m.load1);
    fprintf(f, "mode:    %s, median of %u repetitions of ~%.0f ms each (+1 warm-up), "
               "timed by %s\n",
            bench_opts.full ? "full" : "quick", bench_opts.reps, bench_opts.rep_ms,
            bench_opts.wall ? "wall clock" : "each thread's CPU time (oncpu = CPU/wall)");
}
