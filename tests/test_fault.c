/* SPDX-License-Identifier: MIT */
/* test_fault.c - every OS-layer call of a realistic workload made to fail in turn, and allocation under RLIMIT_AS. */
/*
 * Fault injection: pcpu_fault_inject(n) makes the nth call into the OS
 * layer (mmap, mprotect, madvise, metadata calloc) fail.  The workload
 * below allocates many sizes (new chunks, new pages), frees, reclaims and
 * re-initialises; it runs for n = 1, 2, ... until it completes without
 * reaching call n.  Whatever call fails, the failure must surface as
 * NULL/ENOMEM (-1/ENOMEM for pcpu_init), pcpu_validate() must find
 * nothing, live data must be intact, the next try must work, and in the
 * end nothing may leak: nr_cur_alloc is 0 after the frees and the
 * metadata byte count returns to its starting value after exit + init.
 *
 * RLIMIT_AS: in a forked child with a tight address-space limit,
 * allocation fails cleanly with ENOMEM, live data stays intact, and after
 * some frees allocation works again.  Skipped under ASan/TSan, whose
 * shadow memory cannot live under an address-space limit.
 */
#include "testutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#define NR_UNITS 4u
#define MAX_OBJS 64

struct obj {
    unsigned char *p;
    size_t size;
    unsigned char seed;
};

static struct obj objs[MAX_OBJS];
static unsigned int nr_objs;
static unsigned long failures_seen;

static struct pcpu_config fault_cfg(void)
{
    struct pcpu_config cfg = {
        .backend = tu_backend(),
        .nr_cpus = NR_UNITS,
        .unit_size = 64u << 10, /* small units: the workload needs several chunks */
        .flags = PCPU_F_NO_RECLAIM, /* no worker making OS calls at random times */
    };
    return cfg;
}

static void fill(struct obj *o)
{
    for (unsigned int u = 0; u < NR_UNITS; u++) {
        unsigned char *q = pcpu_ptr(o->p, u);
        memset(q, o->seed + u, o->size);
    }
}

static void check_all(void)
{
    for (unsigned int i = 0; i < MAX_OBJS; i++) {
        struct obj *o = &objs[i];
        if (!o->p)
            continue;
        for (unsigned int u = 0; u < NR_UNITS; u++) {
            const unsigned char *q = pcpu_ptr(o->p, u);
            for (size_t b = 0; b < o->size; b++)
                if (q[b] != (unsigned char)(o->seed + u))
                    fail_msg("object %u (%p, %zu bytes) cpu %u offset %zu corrupted", i,
                             (void *)o->p, o->size, u, b);
        }
    }
}

/* A failed call: ENOMEM, everything consistent, data intact. */
static void after_failure(const char *what)
{
    if (errno != ENOMEM)
        fail_msg("%s failed with errno %d (%s), expected ENOMEM", what, errno, strerror(errno));
    failures_seen++;
    assert_valid();
    check_all();
}

static void *alloc_one(size_t size, size_t align, bool reserved)
{
    errno = 0;
    void *p = reserved ? pcpu_alloc_reserved(size, align) : pcpu_alloc(size, align);
    if (!p) {
        after_failure("pcpu_alloc");
        /* The fault fires once: the next try must work. */
        p = reserved ? pcpu_alloc_reserved(size, align) : pcpu_alloc(size, align);
        if (!p)
            fail_msg("pcpu_alloc(%zu, %zu) failed again after an injected fault: %s", size,
                     align, strerror(errno));
    }
    for (unsigned int u = 0; u < NR_UNITS; u++) {
        const unsigned char *q = pcpu_ptr(p, u);
        for (size_t b = 0; b < size; b++)
            if (q[b])
                fail_msg("new allocation %p not zero (cpu %u offset %zu)", p, u, b);
    }
    return p;
}

static void add(size_t size, size_t align, bool reserved)
{
    for (unsigned int i = 0; i < MAX_OBJS; i++) {
        if (objs[i].p)
            continue;
        objs[i].p = alloc_one(size, align, reserved);
        objs[i].size = size;
        objs[i].seed = (unsigned char)(17 * i + size);
        fill(&objs[i]);
        nr_objs++;
        return;
    }
    fail_msg("object table full");
}

static void drop(unsigned int i)
{
    pcpu_free(objs[i].p);
    objs[i].p = NULL;
    nr_objs--;
}

static const size_t sizes[] = {4, 8, 24, 64, 200, 256, 1000, 4096, 10000, 30000, 65536, 12, 48};

static void workload(const struct pcpu_config *cfg)
{
    unsigned int k = 0;
    /* Many sizes: fills the first chunk, creates more, populates pages. */
    for (unsigned int i = 0; i < 40; i++, k++) {
        size_t size = sizes[k % (sizeof(sizes) / sizeof(sizes[0]))];
        add(size, i % 5 == 0 ? 64 : 0, false);
    }
    add(100, 0, true);
    add(16, 8, true);
    /* Free every other one, give memory back, allocate into the holes. */
    for (unsigned int i = 0; i < MAX_OBJS; i += 2)
        if (objs[i].p)
            drop(i);
    (void)pcpu_reclaim(false);
    assert_valid();
    (void)pcpu_reclaim(true);
    assert_valid();
    check_all();
    for (unsigned int i = 0; i < 20; i++, k++)
        add(sizes[(k * 7) % (sizeof(sizes) / sizeof(sizes[0]))], 0, false);
    check_all();
    /* Everything back: no live allocation may remain. */
    for (unsigned int i = 0; i < MAX_OBJS; i++)
        if (objs[i].p)
            drop(i);
    (void)pcpu_reclaim(true);
    assert_valid();
    struct pcpu_stats st;
    assert_int_equal(pcpu_stats_get(&st), 0);
    if (st.nr_cur_alloc != 0)
        fail_msg("nr_cur_alloc %llu after freeing everything", (unsigned long long)st.nr_cur_alloc);
    /* Re-initialisation can fail too. */
    pcpu_exit();
    errno = 0;
    if (pcpu_init(cfg) != 0) {
        if (errno != ENOMEM)
            fail_msg("pcpu_init failed with errno %d (%s), expected ENOMEM", errno,
                     strerror(errno));
        failures_seen++;
        assert_int_equal(pcpu_init(cfg), 0);
    }
    assert_valid();
    for (unsigned int i = 0; i < 6; i++, k++)
        add(sizes[k % (sizeof(sizes) / sizeof(sizes[0]))], 0, false);
    check_all();
    for (unsigned int i = 0; i < MAX_OBJS; i++)
        if (objs[i].p)
            drop(i);
    assert_valid();
}

/* Metadata bytes of a freshly initialised allocator whose thread cache
 * exists (the cache outlives pcpu_exit, so make sure it is counted). */
static size_t fresh_meta(const struct pcpu_config *cfg)
{
    pcpu_exit();
    assert_int_equal(pcpu_init(cfg), 0);
    void *p = pcpu_alloc(8, 0);
    assert_non_null(p);
    pcpu_free(p);
    pcpu_exit();
    assert_int_equal(pcpu_init(cfg), 0);
    struct pcpu_stats st;
    assert_int_equal(pcpu_stats_get(&st), 0);
    return st.metadata_bytes;
}

static void test_fault_every_call(void **state)
{
    (void)state;
    struct pcpu_config cfg = fault_cfg();
    size_t base = fresh_meta(&cfg);
    long n;
    for (n = 1;; n++) {
        long start = pcpu_fault_inject(n);
        workload(&cfg);
        long calls = pcpu_fault_inject(0) - start;
        size_t meta = fresh_meta(&cfg);
        if (meta != base)
            fail_msg("fault at call %ld: metadata %zu bytes after exit+init, %zu before", n, meta,
                     base);
        if (calls < n)
            break; /* the workload no longer reaches call n */
        if (n > 100000)
            fail_msg("the workload does not end");
    }
    print_message("fault injection (%s): %ld fault points injected, %lu surfaced as ENOMEM\n",
                  cfg.backend == PCPU_BACKEND_KM ? "km" : "vm", n - 1, failures_seen);
    pcpu_exit();
}

/* ---- RLIMIT_AS ------------------------------------------------------------ */

#ifndef TU_SLOW_BUILD

#define RL_MAX 4096

/* Child: exit code 0 when all is well, else a number saying what broke. */
static int rlimit_child(void)
{
    pcpu_exit();
    struct pcpu_config cfg = {.backend = tu_backend(), .flags = PCPU_F_NO_RECLAIM};
    if (pcpu_init(&cfg) != 0)
        return 1;
    struct rlimit rl = {.rlim_cur = tu_status_bytes("VmSize") + (64u << 20), .rlim_max = RLIM_INFINITY};
    if (setrlimit(RLIMIT_AS, &rl) != 0)
        return 2;
    static unsigned char *p[RL_MAX];
    size_t size = 32u << 10;
    unsigned int n = 0;
    for (; n < RL_MAX; n++) {
        errno = 0;
        p[n] = pcpu_alloc(size, 0);
        if (!p[n])
            break;
        for (unsigned int u = 0; u < pcpu_nr_cpus(); u += 3)
            *(unsigned int *)pcpu_ptr(p[n], u) = n * 31 + u;
    }
    if (n == RL_MAX)
        return 3; /* the limit never bit */
    if (errno != ENOMEM)
        return 4;
    if (n == 0)
        return 5;
    if (pcpu_validate() != 0)
        return 6;
    for (unsigned int i = 0; i < n; i++)
        for (unsigned int u = 0; u < pcpu_nr_cpus(); u += 3)
            if (*(unsigned int *)pcpu_ptr(p[i], u) != i * 31 + u)
                return 7;
    /* Small objects may still fit in populated space: fine either way. */
    void *s = pcpu_alloc(8, 0);
    pcpu_free(s);
    for (unsigned int i = 0; i < n; i += 2)
        pcpu_free(p[i]);
    for (unsigned int i = 0; i < n; i += 2) {
        p[i] = pcpu_alloc(size, 0);
        if (!p[i])
            return 8;
    }
    for (unsigned int i = 1; i < n; i += 2)
        for (unsigned int u = 0; u < pcpu_nr_cpus(); u += 3)
            if (*(unsigned int *)pcpu_ptr(p[i], u) != i * 31 + u)
                return 9;
    if (pcpu_validate() != 0)
        return 10;
    for (unsigned int i = 0; i < n; i++)
        pcpu_free(p[i]);
    if (pcpu_validate() != 0)
        return 11;
    printf("RLIMIT_AS: %u objects of %zu bytes before ENOMEM\n", n, size);
    fflush(stdout);
    return 0;
}

#endif

static void test_rlimit_as(void **state)
{
    (void)state;
#ifdef TU_SLOW_BUILD
    skip();
#else
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(rlimit_child());
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("RLIMIT_AS child: %s %d", WIFEXITED(status) ? "exit code" : "signal",
                 WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
#endif
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fault_every_call),
        cmocka_unit_test(test_rlimit_as),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
