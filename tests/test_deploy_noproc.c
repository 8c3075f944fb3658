/* SPDX-License-Identifier: MIT */
/* test_deploy_noproc.c - with /proc and /sys hidden (a private mount namespace, empty tmpfs over each), and in a one-CPU cpuset widened after the first use, every kind of workload gives exact results: the library's fallbacks for the number of CPUs, NUMA nodes, PAGEMAP_SCAN and resident memory. */
/*
 * What the library reads from /proc and /sys, and what it does without:
 *   /sys/devices/system/cpu/possible   the CPUs -> sysconf(_SC_NPROCESSORS_CONF),
 *                                      which glibc (2.36) then takes from
 *                                      the affinity mask (sched_getaffinity):
 *                                      here, 2 CPUs -> 2 units (a one-CPU
 *                                      cpuset: up to that CPU, see below);
 *   /sys/devices/system/cpu/kernel_max whether CPU ids fit the sequences'
 *                                      table: assumed to fit (rseq kept);
 *   /sys/devices/system/{cpu,node}     NUMA nodes: node 0 for every unit,
 *                                      no binding;
 *   /proc/self/pagemap                 PAGEMAP_SCAN with many units: every
 *                                      unit is read instead;
 *   /proc/self/smaps                   pcpu_stats.resident_bytes: 0.
 *
 * Each scenario runs in a forked child (the parent never uses the
 * library): unshare(CLONE_NEWNS), every mount made private, an empty
 * tmpfs mounted over /proc and over /sys, open("/proc/self/maps") and
 * /sys/devices/system/cpu/possible checked to fail, then the workload of
 * deploy_util.h with the defaults (first use) and again with 256 units.
 * Where the kernel refuses the namespace (EPERM: not root, or a
 * container without CAP_SYS_ADMIN) the scenario is skipped with a
 * message.
 *
 * The one-CPU cpuset: the process is pinned to one CPU before the first
 * use (as a container with cpuset.cpus = one CPU), then widened to every
 * CPU it had (the cpuset grown at run time); threads pinned to each CPU
 * then update the units, sums exact.  With /sys the units are the
 * possible CPUs (the affinity does not matter) and rseq stays; without
 * /sys the library counts the CPUs up to the highest one the process may
 * run on (pinned to the last CPU here, so every CPU gets a unit and rseq
 * stays); CPUs a cpuset adds beyond that would share units, and threads
 * on them switch the process to atomics -- exact all the same.
 */
#include "testutil.h"

#include "deploy_util.h"
#include "child.h"
#include "region_util.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>

#define ITERS TU_STEPS(20000, 5)

/* What a child learns before anything is hidden, from the parent. */
static int baseline_rseq = -1;    /* rseq where nothing is taken away */
static unsigned int nr_possible;  /* /sys/devices/system/cpu/possible */
static unsigned int nr_allowed;   /* CPUs in the affinity mask        */

static bool can_read(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    close(fd);
    return true;
}

/* In the child: /proc and /sys gone for this process, or skip. */
static void hide_proc_sys(void)
{
    if (unshare(CLONE_NEWNS) != 0) {
        fprintf(stderr, "skipped: unshare(CLONE_NEWNS): %s (the kernel refuses a mount "
                        "namespace here)\n", strerror(errno));
        _exit(errno == EPERM ? CHILD_SKIP : 1);
    }
    child_check(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0,
                "making mounts private: %s", strerror(errno));
    const char *dirs[] = {"/proc", "/sys"};
    for (int i = 0; i < 2; i++) {
        if (mount("none", dirs[i], "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=16k,mode=555") !=
            0) {
            fprintf(stderr, "skipped: mounting a tmpfs over %s: %s\n", dirs[i], strerror(errno));
            _exit(errno == EPERM ? CHILD_SKIP : 1);
        }
    }
    child_check(!can_read("/proc/self/maps"), "/proc/self/maps still readable");
    child_check(!can_read("/proc/self/pagemap"), "/proc/self/pagemap still readable");
    child_check(!can_read("/proc/self/smaps"), "/proc/self/smaps still readable");
    child_check(!can_read("/sys/devices/system/cpu/possible"), "sysfs still there");
    child_check(!can_read("/sys/devices/system/cpu/kernel_max"), "sysfs still there");
}

static void reinit(unsigned int units)
{
    pcpu_exit();
    struct pcpu_config cfg = {.backend = tu_backend(), .nr_cpus = units};
    const char *x = getenv("PERCPU_INDEX");
    if (x && !strcmp(x, "cid"))
        cfg.index = PCPU_INDEX_CID;
    child_check(pcpu_init(&cfg) == 0, "pcpu_init(%u units): %s", units, strerror(errno));
}

/* Statistics print and read without /proc (resident_bytes from smaps). */
static void check_stats(const struct pcpu_stats *st, bool noproc)
{
    FILE *f = tmpfile();
    child_check(f != NULL, "tmpfile: %s", strerror(errno));
    pcpu_stats_print(f);
    child_check(ftell(f) > 0, "pcpu_stats_print wrote nothing");
    fclose(f);
    child_check(st->backend == tu_backend(), "backend %d", (int)st->backend);
    child_check(st->populated_pages > 0, "no populated pages");
    if (noproc)
        child_check(st->resident_bytes == 0, "resident_bytes %zu without /proc/self/smaps",
                    st->resident_bytes);
}

static void noproc_child(void *arg)
{
    unsigned int units = (unsigned int)(uintptr_t)arg;
    hide_proc_sys();
    long conf = sysconf(_SC_NPROCESSORS_CONF);
    struct dw_opts o = {.name = "noproc", .threads = 3, .iters = ITERS, .pin = true};
    if (units)
        reinit(units);
    /* the first use, when units is 0 */
    unsigned int n = pcpu_nr_cpus();
    child_check(n == (units ? units : (unsigned int)conf),
                "pcpu_nr_cpus() %u; sysconf(_SC_NPROCESSORS_CONF) %ld without /sys", n, conf);
    struct dw_result r = dw_run(&o);
    check_stats(&r.stats, true);
    /* Units for every CPU (the fallback found them all): rseq as with /sys. */
    if (n >= nr_possible)
        child_check(r.stats.rseq == (baseline_rseq == 1), "rseq %d, %d with /proc and /sys",
                    r.stats.rseq, baseline_rseq);
    fprintf(stderr,
            "noproc: %u units (possible CPUs %u, _SC_NPROCESSORS_CONF %ld), %s, "
            "resident_bytes %zu, threads on %u units: exact\n",
            n, nr_possible, conf, r.stats.rseq ? "rseq" : "atomics", r.stats.resident_bytes,
            r.units_seen);
    pcpu_exit();
}

static void test_noproc_defaults(void **state)
{
    (void)state;
    run_in_child("no /proc, no /sys, defaults", noproc_child, (void *)(uintptr_t)0);
}

static void test_noproc_many_units(void **state)
{
    (void)state;
    run_in_child("no /proc, no /sys, 256 units", noproc_child, (void *)(uintptr_t)256);
}

/* A named region is created without /proc: the file cannot be linked
 * into place through /proc/self/fd, so it is built under a temporary
 * name, which must be gone afterwards. */
static void region_child(void *arg)
{
    (void)arg;
    hide_proc_sys();
    const char *name = rt_name("noproc");
    struct pcpu_region *r =
        pcpu_region_open(name, 4096, PCPU_REGION_CREATE | PCPU_REGION_EXCL, 0600);
    if (!r && errno == EOPNOTSUPP) {
        /* No exact writer here (CID mode, no rseq): reading is what is left. */
        struct pcpu_stats st;
        child_check(pcpu_stats_get(&st) == 0, "pcpu_stats_get: %s", strerror(errno));
        child_check(!st.rseq || st.index == PCPU_INDEX_CID,
                    "EOPNOTSUPP with rseq indexed by CPU");
        fprintf(stderr, "noproc region: EOPNOTSUPP for writing (%s)\n",
                st.rseq ? "CID mode" : "no rseq");
        return;
    }
    child_check(r != NULL, "pcpu_region_open(%s, CREATE|EXCL) without /proc: %s", name,
                strerror(errno));
    child_check(rt_shm_names(".pcpu-region-", NULL) == 0, "a temporary name is left in /dev/shm");
    errno = 0;
    child_check(!pcpu_region_open(name, 4096, PCPU_REGION_CREATE | PCPU_REGION_EXCL, 0600) &&
                    errno == EEXIST,
                "a second CREATE|EXCL: errno %d", errno);
    long *x = pcpu_region_alloc(r, "x", sizeof(long), 0);
    child_check(x != NULL, "pcpu_region_alloc: %s", strerror(errno));
    for (int i = 0; i < 1000; i++)
        pcpu_this_inc(x);
    struct pcpu_region *again = pcpu_region_open(name, 0, PCPU_REGION_RDONLY, 0);
    child_check(again != NULL, "reopen read-only: %s", strerror(errno));
    long *y = pcpu_region_find(again, "x", NULL);
    child_check(y && pcpu_sum(y) == 1000, "the other mapping sums %ld",
                y ? pcpu_sum(y) : -1L);
    child_check(pcpu_region_close(again) == 0 && pcpu_region_close(r) == 0, "close");
    child_check(pcpu_region_unlink(name) == 0, "unlink: %s", strerror(errno));
    fprintf(stderr, "noproc region: created under a temporary name, exact, nothing left\n");
}

static void test_noproc_region(void **state)
{
    (void)state;
    run_in_child("no /proc, no /sys, a named region", region_child, NULL);
}

/* ---- a one-CPU cpuset, widened ---------------------------------------------------- */

static void cpuset_child(void *arg)
{
    bool noproc = arg != NULL;
    cpu_set_t all, one;
    child_check(sched_getaffinity(0, sizeof(all), &all) == 0, "sched_getaffinity: %s",
                strerror(errno));
    /* With /sys the first allowed CPU; without, the last one: a cpuset
     * that does not start at CPU 0 (the one unit the library then knows
     * of is not the CPU the process runs on). */
    int first = dw_allowed_cpu(noproc ? nr_allowed - 1 : 0);
    child_check(first >= 0, "no CPU");
    if (noproc)
        hide_proc_sys();
    CPU_ZERO(&one);
    CPU_SET(first, &one);
    child_check(sched_setaffinity(0, sizeof(one), &one) == 0, "sched_setaffinity: %s",
                strerror(errno));
    /* The first use, on one CPU. */
    long conf = sysconf(_SC_NPROCESSORS_CONF);
    unsigned int n = pcpu_nr_cpus();
    /* Without /sys: the C library's count (1 here) or one past the CPU
     * the process may run on, whichever is more. */
    unsigned int expect = (unsigned int)(conf > first + 1 ? conf : first + 1);
    if (noproc)
        child_check(n == expect && conf == 1,
                    "%u units, _SC_NPROCESSORS_CONF %ld with CPU %d only and no /sys", n, conf,
                    first);
    else
        child_check(n == nr_possible, "%u units with one CPU allowed, %u possible", n,
                    nr_possible);
    uint64_t *c = PCPU_NEW(uint64_t);
    child_check(c != NULL, "PCPU_NEW: %s", strerror(errno));
    pcpu_this_inc(c);
    pcpu_free(c);
    /* The cpuset grows. */
    child_check(sched_setaffinity(0, sizeof(all), &all) == 0, "widening: %s", strerror(errno));
    struct dw_opts o = {.name = noproc ? "cpuset/noproc" : "cpuset", .threads = 4,
                        .iters = ITERS, .pin = true};
    struct dw_result r = dw_run(&o);
    check_stats(&r.stats, noproc);
    /* Each worker pinned to another CPU (as many as there are). */
    unsigned int want = nr_allowed < o.threads ? nr_allowed : o.threads;
    if (want > n)
        want = n;
    if (!getenv("PERCPU_INDEX"))
        child_check(r.units_seen == want, "threads pinned to %u CPUs ran on %u of %u units",
                    nr_allowed, r.units_seen, n);
    if (!noproc)
        child_check(r.stats.rseq == (baseline_rseq == 1), "rseq %d, %d without the cpuset",
                    r.stats.rseq, baseline_rseq);
    else if (dw_allowed_cpu(nr_allowed - 1) >= (int)n)
        child_check(!r.stats.rseq, "rseq kept with %u CPUs sharing %u unit(s)", nr_allowed, n);
    else
        child_check(r.stats.rseq == (baseline_rseq == 1),
                    "rseq %d, %d with /sys, although every CPU has its unit", r.stats.rseq,
                    baseline_rseq);
    fprintf(stderr, "%s: %u units after starting on CPU %d, %s at the end, threads on %u CPUs "
                    "used %u units: exact\n",
            o.name, n, first, r.stats.rseq ? "rseq" : "atomics", nr_allowed, r.units_seen);
    pcpu_exit();
}

static void test_cpuset_widened(void **state)
{
    (void)state;
    run_in_child("one-CPU cpuset widened", cpuset_child, NULL);
}

static void test_cpuset_widened_noproc(void **state)
{
    (void)state;
    run_in_child("one-CPU cpuset widened, no /sys", cpuset_child, (void *)1);
}

/* ---- the parent ---------------------------------------------------------------------- */

static void baseline_child(void *arg)
{
    (void)arg;
    struct pcpu_stats st;
    child_check(pcpu_stats_get(&st) == 0, "pcpu_stats_get: %s", strerror(errno));
    _exit(st.rseq ? 10 : 11);
}

static int setup(void **state)
{
    (void)state;
    nr_possible = tu_possible_cpus();
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) != 0)
        return -1;
    nr_allowed = (unsigned int)CPU_COUNT(&set);
    /* The library is not used in this process: ask a child. */
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0)
        baseline_child(NULL);
    int status = 0;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
        return -1;
    baseline_rseq = WEXITSTATUS(status) == 10;
    printf("possible CPUs %u, allowed %u, rseq %s with /proc and /sys\n", nr_possible,
           nr_allowed, baseline_rseq ? "on" : "off");
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_noproc_defaults),
        cmocka_unit_test(test_noproc_many_units),
        cmocka_unit_test(test_noproc_region),
        cmocka_unit_test(test_cpuset_widened),
        cmocka_unit_test(test_cpuset_widened_noproc),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
