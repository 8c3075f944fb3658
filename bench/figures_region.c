/* SPDX-License-Identifier: MIT */
/*
 * figures_region.c - regions shared between processes, in percpu-bench:
 * what a prefork server's workers pay to count in shared memory.
 *
 *   region.percpu.inc    pcpu_this_inc() on an 8-byte object of a region
 *                        (an anonymous one, inherited by the processes)
 *   region.atomic.inc    one shared 8-byte counter in a MAP_SHARED mapping,
 *                        atomic add: what servers do today
 *   region.private.inc   pcpu_this_inc() on each process's own pcpu_alloc()
 *                        object: inc.percpu's loop, in processes, measured
 *                        with the other two (a same-time control)
 *   region.mem.4096_units kB the region's file holds with 4096 units
 *                        configured, two of them written whole (1 MiB
 *                        units), after a reader summed an object over all
 *                        4096 units; ideal: the two units
 *
 * The timed figures run in P processes (forked, one per CPU, pinned), not
 * threads: the "threads" field of a result holds P, the processes busy.
 * Their repetitions are interleaved as measure_group() does for threads
 * (each process runs repetition r of every loop in turn, all processes
 * starting each loop together at a process-shared barrier), after one
 * warm-up; a repetition's figure is the mean over the processes of their
 * CPU time (or, --wall, clock time) per operation, and the result the
 * median over repetitions.  Each loop's count is checked afterwards: the
 * region object's and the atomic counter's sums must equal every
 * increment made, and each process checks its own private object.
 */
#define _GNU_SOURCE
#include "bench.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "percpu.h"

enum { L_REGION, L_ATOMIC, L_PRIVATE, NLOOPS };
static const char *const loop_names[NLOOPS] = {"region.percpu.inc", "region.atomic.inc",
                                               "region.private.inc"};
#define MAX_PROCS 64

/* Everything the processes share (one MAP_SHARED mapping). */
struct shared {
    pthread_barrier_t bar;
    _Alignas(64) long atomic_counter;
    _Alignas(64) double cpu[MAX_PROCS][NLOOPS][BENCH_MAX_REPS + 1];
    double wall[MAX_PROCS][NLOOPS][BENCH_MAX_REPS + 1];
    int failed;
};

static long *region_counter;   /* cookie into the region              */
static long *private_counter;  /* each process's own (after fork)     */
static struct shared *sh;
static uint64_t iters[NLOOPS];

static void run_loop(int l, uint64_t n)
{
    long *rc = region_counter, *pc = private_counter;
    switch (l) {
    case L_REGION:
        for (uint64_t i = 0; i < n; i++)
            pcpu_this_inc(rc);
        break;
    case L_ATOMIC:
        for (uint64_t i = 0; i < n; i++)
            __atomic_fetch_add(&sh->atomic_counter, 1, __ATOMIC_RELAXED);
        break;
    default:
        for (uint64_t i = 0; i < n; i++)
            pcpu_this_inc(pc);
        break;
    }
}

static uint64_t calibrate(int l)
{
    double target = bench_opts.rep_ms * 1e6;
    for (uint64_t n = 256;; n *= 2) {
        double t0 = now_ns();
        run_loop(l, n);
        double dt = now_ns() - t0;
        if (dt >= target / 8 || n >= (1ull << 34)) {
            uint64_t it = (uint64_t)((double)n * target / (dt > 1 ? dt : 1));
            return it < 64 ? 64 : it;
        }
    }
}

static void pin_process(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof(set), &set) != 0)
        fprintf(stderr, "percpu-bench: cannot pin to CPU %d: %s\n", cpu, strerror(errno));
}

static void child(unsigned int id, unsigned int reps)
{
    pin_process(online_cpu(id));
    pcpu_for_each_cpu(c) *PCPU_PTR(private_counter, c) = 0; /* the parent's calibration */
    for (unsigned int rep = 0; rep <= reps; rep++) {
        for (int l = 0; l < NLOOPS; l++) {
            pthread_barrier_wait(&sh->bar);
            double t0 = now_ns(), c0 = thread_cpu_ns();
            run_loop(l, iters[l]);
            double t1 = now_ns(), c1 = thread_cpu_ns();
            sh->wall[id][l][rep] = (t1 - t0) / (double)iters[l];
            sh->cpu[id][l][rep] = (c1 - c0) / (double)iters[l];
            pthread_barrier_wait(&sh->bar);
        }
    }
    if (pcpu_sum(private_counter) != (long)((reps + 1) * iters[L_PRIVATE])) {
        fprintf(stderr, "percpu-bench: region.private.inc: process %u counted %ld, expected "
                        "%llu: UPDATES LOST\n", id, pcpu_sum(private_counter),
                (unsigned long long)((reps + 1) * iters[L_PRIVATE]));
        __atomic_store_n(&sh->failed, 1, __ATOMIC_RELAXED);
    }
    _exit(0);
}

/* All loops with P processes; adds one result per selected loop. */
static void measure_procs(unsigned int procs, const bool *sel)
{
    unsigned int reps = bench_opts.reps;
    pthread_barrierattr_t ba;
    pthread_barrierattr_init(&ba);
    pthread_barrierattr_setpshared(&ba, PTHREAD_PROCESS_SHARED);
    pthread_barrier_init(&sh->bar, &ba, procs);
    pthread_barrierattr_destroy(&ba);
    pcpu_for_each_cpu(c) *PCPU_PTR(region_counter, c) = 0;
    sh->atomic_counter = 0;
    progress("region: %u process%s", procs, procs == 1 ? "" : "es");
    pid_t pids[MAX_PROCS];
    fflush(NULL);
    for (unsigned int i = 0; i < procs; i++) {
        pids[i] = fork();
        if (pids[i] < 0) {
            perror("percpu-bench: fork");
            exit(2);
        }
        if (pids[i] == 0)
            child(i, reps);
    }
    for (unsigned int i = 0; i < procs; i++) {
        int st;
        if (waitpid(pids[i], &st, 0) != pids[i] || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            fprintf(stderr, "percpu-bench: a region process failed\n");
            exit(2);
        }
    }
    pthread_barrier_destroy(&sh->bar);
    uint64_t total = (uint64_t)procs * (reps + 1);
    if ((uint64_t)pcpu_sum(region_counter) != total * iters[L_REGION])
        fprintf(stderr, "percpu-bench: region.percpu.inc: sum %ld, expected %llu: UPDATES LOST\n",
                pcpu_sum(region_counter), (unsigned long long)(total * iters[L_REGION]));
    if ((uint64_t)sh->atomic_counter != total * iters[L_ATOMIC])
        fprintf(stderr, "percpu-bench: region.atomic.inc: count %ld, expected %llu\n",
                sh->atomic_counter, (unsigned long long)(total * iters[L_ATOMIC]));
    for (int l = 0; l < NLOOPS; l++) {
        if (!sel[l])
            continue;
        double cpu[BENCH_MAX_REPS], wall[BENCH_MAX_REPS], x;
        for (unsigned int rep = 1; rep <= reps; rep++) {
            double c = 0, w = 0;
            for (unsigned int i = 0; i < procs; i++) {
                c += sh->cpu[i][l][rep];
                w += sh->wall[i][l][rep];
            }
            cpu[rep - 1] = c / procs;
            wall[rep - 1] = w / procs;
        }
        struct result *r = result_add(loop_names[l], procs, "ns/op");
        if (bench_opts.wall) {
            stats_of(cpu, reps, &r->cpu, &x, &x, &x);
            stats_of(wall, reps, &r->value, &r->min, &r->max, &r->rmad);
            r->wall = r->value;
        } else {
            stats_of(wall, reps, &r->wall, &x, &x, &x);
            stats_of(cpu, reps, &r->value, &r->min, &r->max, &r->rmad);
            r->cpu = r->value;
        }
        r->oncpu = r->wall > 0 ? r->cpu / r->wall : 1;
        r->reps = reps;
        r->iters = iters[l];
    }
}

/* ---- memory: 4096 units configured, 2 written ----------------------------- */

#define MEM_UNITS 4096
#define MEM_UNIT_SIZE (1u << 20)

/* In a forked child: a fresh allocator with 4096 units, a region of 1 MiB
 * units, two units written whole, a sum over every unit; reports the
 * file's resident bytes through @fd. */
static void mem_child(int fd)
{
    pcpu_exit();
    struct pcpu_config cfg = {.nr_cpus = MEM_UNITS};
    const char *b = getenv("PERCPU_BACKEND");
    if (b && !strcmp(b, "km"))
        cfg.backend = PCPU_BACKEND_KM;
    size_t out[3] = {0, 0, 0};
    if (pcpu_init(&cfg) == 0) {
        struct pcpu_region *r = pcpu_region_open(NULL, MEM_UNIT_SIZE, PCPU_REGION_CREATE, 0600);
        long *count = r ? pcpu_region_alloc(r, "count", 8, 0) : NULL;
        unsigned char *data = r ? pcpu_region_alloc(r, "data", MEM_UNIT_SIZE - 64, 64) : NULL;
        if (count && data) {
            for (unsigned int u = 0; u < 2; u++)
                memset(pcpu_ptr(data, u), 0xa5, MEM_UNIT_SIZE - 64);
            pcpu_this_inc(count);
            /* A reader's pass: the sum over every unit, and one byte of
             * every page of the data in every unit. */
            long sum = pcpu_sum(count);
            unsigned long bytes = 0;
            pcpu_for_each_cpu(u) for (size_t off = 0; off < MEM_UNIT_SIZE - 64; off += 4096)
                bytes += ((volatile unsigned char *)pcpu_ptr(data, u))[off];
            struct pcpu_region_info in;
            if (sum == 1 && bytes == 2 * 0xa5ul * ((MEM_UNIT_SIZE - 64 + 4095) / 4096) &&
                pcpu_region_info(r, &in) == 0) {
                out[0] = in.resident_bytes;
                out[1] = in.file_bytes;
                out[2] = in.unit_size;
            }
        }
    }
    if (write(fd, out, sizeof(out)) != (ssize_t)sizeof(out))
        _exit(1);
    _exit(0);
}

static void measure_mem(void)
{
    int p[2];
    if (pipe(p) != 0)
        return;
    progress("region: memory with %u units", MEM_UNITS);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        mem_child(p[1]);
    }
    close(p[1]);
    size_t out[3] = {0, 0, 0};
    ssize_t got = pid > 0 ? read(p[0], out, sizeof(out)) : -1;
    close(p[0]);
    if (pid > 0)
        waitpid(pid, NULL, 0);
    if (got != (ssize_t)sizeof(out) || !out[0]) {
        fprintf(stderr, "percpu-bench: region.mem.4096_units: the child failed\n");
        return;
    }
    struct result *r = result_add("region.mem.4096_units", 1, "kB");
    r->value = r->min = r->max = (double)out[0] / 1024;
    r->ideal = 2.0 * (double)out[2] / 1024;
    r->ratio = r->value / r->ideal;
    r->reps = 1;
    r->iters = MEM_UNITS;
    r->source = "st_blocks of the region's file (4096 units of 1 MiB, 2 written, all read)";
}

void figures_region(void)
{
    bool sel[NLOOPS], any = false;
    for (int l = 0; l < NLOOPS; l++)
        any |= sel[l] = name_selected(loop_names[l]);
    if (any) {
        struct pcpu_region *r = pcpu_region_open(NULL, 4096, PCPU_REGION_CREATE, 0600);
        if (!r) {
            fprintf(stderr, "percpu-bench: region figures skipped: %s\n", strerror(errno));
        } else {
            sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
            region_counter = pcpu_region_alloc(r, "inc", sizeof(long), 0);
            private_counter = pcpu_alloc(sizeof(long), 0);
            if (sh == MAP_FAILED || !region_counter || !private_counter) {
                perror("percpu-bench: region figures");
                exit(2);
            }
            for (int l = 0; l < NLOOPS; l++)
                iters[l] = calibrate(l);
            unsigned int n = online_cpus() < MAX_PROCS ? online_cpus() : MAX_PROCS;
            measure_procs(1, sel);
            if (n > 1)
                measure_procs(n, sel);
            if (sh->failed)
                fprintf(stderr, "percpu-bench: region.private.inc: UPDATES LOST\n");
            munmap(sh, sizeof(*sh));
            pcpu_free(private_counter);
            pcpu_region_close(r);
        }
    }
    if (name_selected("region.mem.4096_units"))
        measure_mem();
}
