/* SPDX-License-Identifier: MIT */
/* deploy_workload.c - a short program that uses everything once (allocation with reclaim and the background worker, PAGEMAP_SCAN with 64 units, every this-CPU operation, lists, counters, refs, rwsems, static variables, statistics, pcpu_exit), run under valgrind by CTest: a correct program must get no error report. */
/*
 * Not a cmocka program: valgrind runs it as any user program would be run
 * (valgrind --error-exitcode=1 ... deploy_workload), and its verdict is the
 * exit status: 0 when every result was exact and valgrind found nothing.
 * PERCPU_BACKEND picks the backend and PERCPU_DEBUG=1 robust mode, as for
 * any program (pcpu_init() applies PERCPU_DEBUG to an explicit
 * configuration too).
 *
 * What valgrind reported here before c339c05: memcheck does not know the
 * PAGEMAP_SCAN ioctl, so the page regions the kernel wrote were
 * "uninitialised" and the zeroing and madvise calls that followed from
 * them were errors (vm and km); and robust mode's check at pcpu_exit()
 * read freed units that the library itself had marked NOACCESS.
 *
 * Under valgrind there is no rseq (valgrind 3.19 does not implement the
 * call): glibc's registration fails and the library runs on atomics.
 */
#include "deploy_util.h"

#include <time.h>

PCPU_DEFINE(uint64_t, dw_static_hits);
PCPU_DEFINE(int32_t, dw_static_seven) = 7;
PCPU_DEFINE(struct pcpu_list, dw_static_list);

static void statics(void)
{
    pcpu_for_each_cpu(cpu)
    {
        DW_CHECK(*PCPU_PTR(PCPU_VAR(dw_static_seven), cpu) == 7, "static initial value in unit %u",
                 cpu);
        DW_CHECK(*PCPU_PTR(PCPU_VAR(dw_static_hits), cpu) == 0, "static not zero in unit %u",
                 cpu);
    }
    for (int i = 0; i < 1000; i++) {
        pcpu_this_inc(PCPU_VAR(dw_static_hits));
        pcpu_this_add(PCPU_VAR(dw_static_seven), 2);
    }
    DW_CHECK(pcpu_sum(PCPU_VAR(dw_static_hits)) == 1000, "static sum %llu",
             (unsigned long long)pcpu_sum(PCPU_VAR(dw_static_hits)));
    DW_CHECK(pcpu_sum(PCPU_VAR(dw_static_seven)) == (int32_t)(7 * pcpu_nr_cpus() + 2000),
             "initialised static sum %d", pcpu_sum(PCPU_VAR(dw_static_seven)));
    static struct pcpu_list_node nodes[8];
    for (int i = 0; i < 8; i++)
        pcpu_this_list_push(PCPU_VAR(dw_static_list), &nodes[i]);
    DW_CHECK(pcpu_this_list_pop(PCPU_VAR(dw_static_list)) != NULL, "static list pop");
    unsigned int n = 1;
    pcpu_for_each_cpu(cpu)
    {
        for (struct pcpu_list_node *x = pcpu_list_pop_all(PCPU_VAR(dw_static_list), cpu); x;
             x = x->next)
            n++;
    }
    DW_CHECK(n == 8, "static list: %u nodes back", n);
}

/* Frees that leave pages and a chunk empty, then time for the background
 * worker to give them back. */
static void background_reclaim(void)
{
    enum { N = 600 };
    static void *p[N];
    for (int i = 0; i < N; i++) {
        p[i] = pcpu_alloc(1024, 0);
        DW_CHECK(p[i] != NULL, "pcpu_alloc: %s", strerror(errno));
        memset(pcpu_ptr(p[i], 0), 0x5a, 1024);
        memset(pcpu_ptr(p[i], pcpu_nr_cpus() - 1), 0xa5, 1024);
    }
    for (int i = 0; i < N; i++)
        pcpu_free(p[i]);
    struct timespec ts = {0, 250 * 1000 * 1000};
    nanosleep(&ts, NULL);
    DW_CHECK(pcpu_validate() == 0, "pcpu_validate after the worker ran");
}

int main(void)
{
    struct pcpu_config cfg = {.nr_cpus = 64};
    const char *b = getenv("PERCPU_BACKEND");
    cfg.backend = b && !strcmp(b, "km") ? PCPU_BACKEND_KM : PCPU_BACKEND_VM;
    DW_CHECK(pcpu_init(&cfg) == 0, "pcpu_init(64 units): %s", strerror(errno));
    statics();
    struct dw_opts o = {.name = "deploy_workload", .threads = 2, .iters = 400, .pin = false};
    struct dw_result r = dw_run(&o);
    background_reclaim();
    (void)pcpu_reclaim(true);
    FILE *out = fopen("/dev/null", "w");
    pcpu_stats_print(out);
    pcpu_chunk_map_print(out, 64);
    if (out)
        fclose(out);
    struct pcpu_stats st;
    DW_CHECK(pcpu_stats_get(&st) == 0, "pcpu_stats_get: %s", strerror(errno));
    printf("deploy_workload: %u units, %s, %s, %llu allocations, %llu populates, "
           "%llu depopulates: exact\n",
           st.nr_units, st.backend == PCPU_BACKEND_KM ? "km" : "vm",
           r.stats.rseq ? "rseq" : "atomics", (unsigned long long)st.nr_alloc,
           (unsigned long long)st.nr_populate, (unsigned long long)st.nr_depopulate);
    fflush(stdout);
    pcpu_exit();
    return 0;
}
