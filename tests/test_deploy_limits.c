/* SPDX-License-Identifier: MIT */
/* test_deploy_limits.c - an address-space limit (RLIMIT_AS) or data limit (RLIMIT_DATA) below the first chunk: every call that needs the allocator fails with ENOMEM (pcpu_counter_init included), nothing crashes, and once the limit is raised everything works and validates. */
/*
 * A container or a service manager may start a program under a memory
 * limit (ulimit -v, systemd's LimitAS=/LimitDATA=) so low that the
 * library cannot even map its first chunk.  test_fault.c covers a limit
 * reached after the first chunk; here the set-up itself fails:
 *   pcpu_alloc(), pcpu_alloc_reserved(), PCPU_NEW  NULL, errno ENOMEM
 *   pcpu_counter_init(), _init_many()             -1, ENOMEM (before
 *       c339c05, EINVAL: the allocator's failed set-up read as "too many
 *       counters")
 *   pcpu_ref_init(), pcpu_rwsem_init()            -1, ENOMEM
 *   pcpu_init() (256 units)                       -1, ENOMEM
 *   pcpu_nr_cpus(), pcpu_max_alloc_size()         0
 *   pcpu_this_cpu()                               -1
 *   pcpu_stats_get()                              -1, ENOMEM
 * and then, with the limit raised in the same process, the first use is
 * tried again: the workload of deploy_util.h gives exact results and
 * pcpu_validate() finds nothing.
 *
 * Each case runs in a forked child (the parent never uses the library),
 * which sets the limit from what it measures in /proc/self/status
 * (VmSize, VmData) plus a margin far below the first chunk.  RLIMIT_DATA
 * bounds private writable mappings since Linux 4.7; the vm backend
 * reserves its chunks PROT_NONE (not data) and fails when it makes the
 * first pages writable, the km backend at the mapping.  Skipped under
 * ASan/TSan, whose shadow memory cannot live under such a limit (as
 * test_fault.c's RLIMIT_AS case).
 */
#include "testutil.h"

#include "deploy_util.h"
#include "child.h"

#include <sys/mman.h>
#include <sys/resource.h>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define UNDER_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
    __has_feature(memory_sanitizer)
#define UNDER_SANITIZER 1
#endif
#endif

#ifndef UNDER_SANITIZER

/* A figure of /proc/self/status, in bytes. */
static size_t status_bytes(const char *key)
{
    FILE *f = fopen("/proc/self/status", "re");
    char line[256];
    size_t kb = 0, klen = strlen(key);
    while (f && fgets(line, sizeof(line), f))
        if (!strncmp(line, key, klen) && line[klen] == ':' &&
            sscanf(line + klen + 1, "%zu", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb * 1024;
}

/* Room for the set-up's bookkeeping (~0.8 MiB, malloc'ed) but not for the
 * first chunk (7 MiB of address space with 2 units of 1 MiB: the span
 * over-mapped for alignment). */
#define MARGIN (2u << 20)

static void expect_enomem(const char *what, bool failed)
{
    int e = errno;
    child_check(failed, "%s worked under the limit", what);
    child_check(e == ENOMEM, "%s failed with errno %d (%s), expected ENOMEM", what, e,
                strerror(e));
}

static void release_fn(struct pcpu_ref *r)
{
    (void)r;
}

static void limit_child(void *arg)
{
    int resource = (int)(intptr_t)arg;
    const char *rname = resource == RLIMIT_AS ? "RLIMIT_AS" : "RLIMIT_DATA";
    /* Everything this process will need besides the library, first. */
    char *buf = malloc(1 << 16);
    child_check(buf != NULL, "malloc");
    FILE *f = tmpfile();
    child_check(f != NULL, "tmpfile: %s", strerror(errno));
    size_t used = status_bytes(resource == RLIMIT_AS ? "VmSize" : "VmData");
    child_check(used > 0, "no VmSize/VmData in /proc/self/status");
    struct rlimit rl = {.rlim_cur = used + MARGIN, .rlim_max = RLIM_INFINITY};
    child_check(setrlimit(resource, &rl) == 0, "setrlimit(%s): %s", rname, strerror(errno));
    /* Does the limit bind anonymous mappings here (RLIMIT_DATA: Linux 4.7+,
     * unless booted with ignore_rlimit_data)? */
    void *probe = mmap(NULL, 8u << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (probe != MAP_FAILED) {
        munmap(probe, 8u << 20);
        fprintf(stderr, "skipped: %s does not limit anonymous mappings in this kernel\n", rname);
        _exit(CHILD_SKIP);
    }

    errno = 0;
    expect_enomem("pcpu_alloc", pcpu_alloc(8, 0) == NULL);
    errno = 0;
    expect_enomem("pcpu_alloc_reserved", pcpu_alloc_reserved(16, 8) == NULL);
    errno = 0;
    expect_enomem("PCPU_NEW", PCPU_NEW(long) == NULL);
    struct pcpu_counter c, cm[4];
    memset(&c, 0, sizeof(c));
    memset(cm, 0, sizeof(cm));
    errno = 0;
    expect_enomem("pcpu_counter_init", pcpu_counter_init(&c, 5) == -1);
    errno = 0;
    expect_enomem("pcpu_counter_init_many", pcpu_counter_init_many(cm, 0, 4) == -1);
    struct pcpu_ref ref;
    memset(&ref, 0, sizeof(ref));
    errno = 0;
    expect_enomem("pcpu_ref_init", pcpu_ref_init(&ref, release_fn, 0) == -1);
    struct pcpu_rwsem sem;
    memset(&sem, 0, sizeof(sem));
    errno = 0;
    expect_enomem("pcpu_rwsem_init", pcpu_rwsem_init(&sem) == -1);
    struct pcpu_stats st;
    errno = 0;
    expect_enomem("pcpu_stats_get", pcpu_stats_get(&st) == -1);
    child_check(pcpu_nr_cpus() == 0, "pcpu_nr_cpus() %u", pcpu_nr_cpus());
    child_check(pcpu_max_alloc_size() == 0, "pcpu_max_alloc_size() %zu", pcpu_max_alloc_size());
    child_check(pcpu_this_cpu() == -1, "pcpu_this_cpu() %d", pcpu_this_cpu());
    struct pcpu_config cfg = {.backend = tu_backend(), .nr_cpus = 256};
    errno = 0;
    expect_enomem("pcpu_init(256 units)", pcpu_init(&cfg) == -1);
    /* Destroying what never was: nothing to do. */
    pcpu_counter_destroy(&c);
    pcpu_counter_destroy_many(cm, 4);
    pcpu_ref_exit(&ref);
    pcpu_rwsem_destroy(&sem);
    pcpu_stats_print(f); /* whatever it prints, it must not crash */
    fclose(f);
    free(buf);

    /* The limit raised: the first use again. */
    rl.rlim_cur = RLIM_INFINITY;
    child_check(setrlimit(resource, &rl) == 0, "raising %s: %s", rname, strerror(errno));
    child_check(pcpu_counter_init(&c, 5) == 0, "pcpu_counter_init: %s", strerror(errno));
    child_check(pcpu_counter_init_many(cm, 1, 4) == 0, "pcpu_counter_init_many: %s",
                strerror(errno));
    child_check(pcpu_ref_init(&ref, release_fn, 0) == 0, "pcpu_ref_init: %s", strerror(errno));
    child_check(pcpu_rwsem_init(&sem) == 0, "pcpu_rwsem_init: %s", strerror(errno));
    child_check(pcpu_nr_cpus() > 0, "pcpu_nr_cpus() 0 after the limit was raised");
    child_check(pcpu_this_cpu() >= 0, "pcpu_this_cpu() %d", pcpu_this_cpu());
    pcpu_counter_add(&c, 10);
    pcpu_counter_inc(&cm[3]);
    child_check(pcpu_counter_sum(&c) == 15 && pcpu_counter_sum(&cm[3]) == 2, "counters");
    pcpu_rwsem_down_write(&sem);
    pcpu_rwsem_up_write(&sem);
    pcpu_ref_kill(&ref);
    child_check(pcpu_ref_is_zero(&ref), "ref not zero after kill");
    pcpu_ref_exit(&ref);
    pcpu_rwsem_destroy(&sem);
    pcpu_counter_destroy(&c);
    pcpu_counter_destroy_many(cm, 4);
    child_check(pcpu_validate() == 0, "pcpu_validate after the first use");
    struct dw_opts o = {.name = rname, .threads = 3, .iters = 5000, .pin = true};
    struct dw_result r = dw_run(&o);
    child_check(pcpu_validate() == 0, "pcpu_validate");
    /* And pcpu_init() with many units, which the limit refused. */
    pcpu_exit();
    child_check(pcpu_init(&cfg) == 0, "pcpu_init(256 units): %s", strerror(errno));
    r = dw_run(&o);
    child_check(r.stats.nr_units == 256, "%u units", r.stats.nr_units);
    child_check(pcpu_validate() == 0, "pcpu_validate with 256 units");
    fprintf(stderr, "%s: %zu bytes + %u KiB: ENOMEM everywhere; raised: everything works\n",
            rname, used, MARGIN >> 10);
    pcpu_exit();
}

#endif

static void test_rlimit_as_first_chunk(void **state)
{
    (void)state;
#ifdef UNDER_SANITIZER
    print_message("skipped under the sanitizers (their shadow memory needs the address space)\n");
    skip();
#else
    run_in_child("RLIMIT_AS below the first chunk", limit_child, (void *)(intptr_t)RLIMIT_AS);
#endif
}

static void test_rlimit_data_first_chunk(void **state)
{
    (void)state;
#ifdef UNDER_SANITIZER
    print_message("skipped under the sanitizers (their shadow memory needs the address space)\n");
    skip();
#else
    run_in_child("RLIMIT_DATA below the first chunk", limit_child, (void *)(intptr_t)RLIMIT_DATA);
#endif
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rlimit_as_first_chunk),
        cmocka_unit_test(test_rlimit_data_first_chunk),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
