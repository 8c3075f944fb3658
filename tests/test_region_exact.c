/* SPDX-License-Identifier: MIT */
/* test_region_exact.c - who may write a region: EOPNOTSUPP in CID mode and without rseq (reading works), and a writer that loses rseq later stops with a message naming the region. */
/*
 * Each scenario runs in a fresh copy of this program (exec), so that the
 * index mode and rseq come up as the environment and a seccomp filter
 * make them:
 *   cid        PERCPU_INDEX=cid: units by concurrency id, whose numbers
 *              are per process, so two processes could write one unit
 *              from two CPUs.
 *   norseq     glibc's registration off (GLIBC_TUNABLES) and rseq(2)
 *              refused by seccomp before the library starts: atomics.
 *   lose       a writer with rseq opens the region, then a seccomp
 *              filter makes a new thread's registration fail: its first
 *              this-CPU operation would switch the process to atomics;
 *              the process must stop instead, naming the region (with
 *              the library's own registration and threads that start
 *              unregistered, as with a C library that does not register
 *              them; glibc 2.35+ stops the process itself when a new
 *              thread cannot register, which is checked too).
 *   lose_ro    the same in a process that only reads the region: it goes
 *              on in atomics, and still reads.
 */
#include "region_util.h"

#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#define VALUE 1234

/* The region the scenarios open (passed through the environment). */
static const char *region_name(void)
{
    const char *n = getenv("PCPU_TEST_REGION");
    child_check(n != NULL, "PCPU_TEST_REGION unset");
    return n;
}

/* Make rseq(2) fail with ENOSYS for this thread and the threads it
 * creates from now on. */
static void deny_rseq(void)
{
#ifdef SYS_rseq
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_rseq, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = sizeof(f) / sizeof(f[0]), .filter = f};
    child_check(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0, "no_new_privs: %s", strerror(errno));
    child_check(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0, "seccomp: %s",
                strerror(errno));
#endif
}

/* Writing refused with EOPNOTSUPP, reading works; the sum is VALUE. */
static void expect_read_only_access(void)
{
    const char *n = region_name();
    errno = 0;
    child_check(!pcpu_region_open(n, 0, 0, 0) && errno == EOPNOTSUPP, "open rw: %s",
                strerror(errno));
    errno = 0;
    child_check(!pcpu_region_open(n, 4096, PCPU_REGION_CREATE, 0600) && errno == EOPNOTSUPP,
                "create: %s", strerror(errno));
    errno = 0;
    child_check(!pcpu_region_open(NULL, 4096, PCPU_REGION_CREATE, 0600) && errno == EOPNOTSUPP,
                "anonymous: %s", strerror(errno));
    struct pcpu_region *r = pcpu_region_open(n, 0, PCPU_REGION_RDONLY, 0);
    child_check(r != NULL, "open ro: %s", strerror(errno));
    long *v = pcpu_region_find(r, "v", NULL);
    child_check(v != NULL, "find: %s", strerror(errno));
    child_check(pcpu_sum(v) == VALUE, "sum %ld", pcpu_sum(v));
    child_check(pcpu_region_close(r) == 0, "close");
}

static void scenario_cid(void *arg)
{
    (void)arg;
    struct pcpu_stats st;
    child_check(pcpu_stats_get(&st) == 0, "stats");
    if (st.index != PCPU_INDEX_CID) {
        printf("skipped: no mm_cid on this kernel\n");
        _exit(CHILD_SKIP);
    }
    expect_read_only_access();
}

static void scenario_norseq(void *arg)
{
    (void)arg;
#ifndef SYS_rseq
    _exit(CHILD_SKIP);
#endif
    deny_rseq();
    struct pcpu_stats st;
    child_check(pcpu_stats_get(&st) == 0, "stats");
    child_check(!st.rseq, "rseq in use despite the filter");
    expect_read_only_access();
}

static long *lose_cookie;

/*
 * glibc 2.35+ registers a new thread itself whenever the thread creating
 * it has a registered area, and stops the process if that fails, so with
 * glibc a thread cannot lose rseq on its own.  A C library that leaves
 * new threads unregistered (older glibc, others) lets the library
 * register them lazily, and there a refused registration is what sends
 * the process to atomics.  This puts the calling thread in that state:
 * its area unregistered and marked so, as such a library leaves it, so
 * that the threads it creates come up unregistered too.
 */
extern const ptrdiff_t __rseq_offset __attribute__((weak));
static bool forget_rseq(void)
{
#if defined(__x86_64__) && defined(SYS_rseq)
    if (&__rseq_offset == NULL)
        return false;
    char *tp;
    __asm__("movq %%fs:0, %0" : "=r"(tp));
    uint32_t *area = (uint32_t *)(void *)(tp + __rseq_offset);
    if (syscall(SYS_rseq, area, 32, 1 /* unregister */, 0x53053053) != 0)
        return false;
    __atomic_store_n(&area[1], UINT32_MAX, __ATOMIC_RELAXED); /* cpu_id: not registered */
    return true;
#else
    return false;
#endif
}

static void *one_op(void *arg)
{
    (void)arg;
    pcpu_this_inc(lose_cookie);
    return NULL;
}

static void lose(bool writer, bool as_old_libc)
{
    const char *n = region_name();
    struct pcpu_region *r = pcpu_region_open(n, 0, writer ? 0 : PCPU_REGION_RDONLY, 0);
    child_check(r != NULL, "open: %s", strerror(errno));
    long *v = pcpu_region_find(r, "v", NULL);
    child_check(v != NULL, "find");
    long *priv = pcpu_alloc(sizeof(long), 0);
    child_check(priv != NULL, "alloc");
    if (writer)
        pcpu_this_inc(v); /* exact, with rseq */
    long before = pcpu_sum(v);
    struct pcpu_stats st;
    child_check(pcpu_stats_get(&st) == 0 && st.rseq, "rseq expected before the filter");
    if (as_old_libc && !forget_rseq())
        _exit(CHILD_SKIP);
    deny_rseq();
    lose_cookie = priv;
    pthread_t t;
    child_check(pthread_create(&t, NULL, one_op, NULL) == 0, "thread");
    pthread_join(t, NULL);
    /* Only a reader gets here. */
    child_check(!writer, "a writer went on after losing rseq");
    child_check(pcpu_stats_get(&st) == 0 && !st.rseq, "atomics expected after the loss");
    child_check(pcpu_sum(priv) == 1, "private sum");
    child_check(pcpu_sum(v) == before, "region sum %ld, %ld before", pcpu_sum(v), before);
    child_check(pcpu_region_close(r) == 0, "close");
}

static void scenario_lose(void *arg)
{
    (void)arg;
    lose(true, true);
}

static void scenario_lose_ro(void *arg)
{
    (void)arg;
    lose(false, true);
}

static void scenario_lose_glibc(void *arg)
{
    (void)arg;
    lose(true, false);
}

static const struct child_scenario scenarios[] = {
    {"cid", scenario_cid, NULL},
    {"norseq", scenario_norseq, NULL},
    {"lose", scenario_lose, NULL},
    {"lose_ro", scenario_lose_ro, NULL},
    {"lose_glibc", scenario_lose_glibc, NULL},
};

/* ---- the parent -------------------------------------------------------------- */

static const char *test_region;
static struct pcpu_region *parent_r;

static int setup(void **state)
{
    (void)state;
    rt_cleanup_at_exit();
    tu_reinit(NULL);
    test_region = rt_name("exact");
    parent_r = pcpu_region_open(test_region, 4096, PCPU_REGION_CREATE | PCPU_REGION_EXCL, 0600);
    assert_non_null(parent_r);
    long *v = pcpu_region_alloc(parent_r, "v", sizeof(long), 0);
    assert_non_null(v);
    pcpu_this_add(v, VALUE);
    setenv("PCPU_TEST_REGION", test_region, 1);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    assert_int_equal(pcpu_region_close(parent_r), 0);
    assert_int_equal(pcpu_region_unlink(test_region), 0);
    return 0;
}

/* Run scenario @name with @env; its status (rt_wait()) and its stderr. */
static int run_scenario(const char *name, const char *const *env, char *out, size_t len)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        dup2(p[1], 2);
        close(p[1]);
        _exit(rt_exec_child(name, env));
    }
    close(p[1]);
    size_t got = 0;
    ssize_t n;
    while (got + 1 < len && (n = read(p[0], out + got, len - 1 - got)) > 0)
        got += (size_t)n;
    out[got] = 0;
    close(p[0]);
    int st = rt_wait(pid);
    if (st == CHILD_SKIP)
        skip();
    return st;
}

static void test_cid(void **state)
{
    (void)state;
    char out[4096];
    const char *env[] = {"PERCPU_INDEX=cid", NULL};
    int st = run_scenario("cid", env, out, sizeof(out));
    if (st != 0)
        fail_msg("cid: status %d: %s", st, out);
}

static void test_norseq(void **state)
{
    (void)state;
    char out[4096];
    const char *env[] = {"GLIBC_TUNABLES=glibc.pthread.rseq=0", "PERCPU_INDEX=", NULL};
    int st = run_scenario("norseq", env, out, sizeof(out));
    if (st != 0)
        fail_msg("norseq: status %d: %s", st, out);
}

static void test_lose_rseq(void **state)
{
    (void)state;
    char out[4096];
    /* With the library's own registration (glibc's off) and threads that
     * come up unregistered (forget_rseq), a new thread whose registration
     * fails sends the process to atomics: a writer must stop, naming the
     * region; a reader goes on. */
    const char *own[] = {"PERCPU_INDEX=", "GLIBC_TUNABLES=glibc.pthread.rseq=0", NULL};
    int st = run_scenario("lose", own, out, sizeof(out));
    if (st != 128 + SIGABRT)
        fail_msg("lose: status %d, expected death by SIGABRT: \"%s\"", st, out);
    if (!strstr(out, "percpu: region ") || !strstr(out, test_region))
        fail_msg("the message does not name the region %s: \"%s\"", test_region, out);
    char *nl = strchr(out, '\n');
    if (!nl || nl[1])
        fail_msg("not one line: \"%s\"", out);
    st = run_scenario("lose_ro", own, out, sizeof(out));
    if (st != 0)
        fail_msg("lose_ro: status %d: %s", st, out);
    /* With glibc's registration, glibc itself stops a process whose new
     * thread cannot register ("rseq registration failed"): the writer
     * dies before any inexact write either way. */
    const char *glibc[] = {"PERCPU_INDEX=", NULL};
    st = run_scenario("lose_glibc", glibc, out, sizeof(out));
    if (st != 128 + SIGABRT)
        fail_msg("lose (glibc's registration): status %d: \"%s\"", st, out);
    /* Each writer's increment before the filter counted; the region is fine. */
    long *v = pcpu_region_find(parent_r, "v", NULL);
    assert_non_null(v);
    assert_int_equal(pcpu_sum(v), VALUE + 2);
    assert_int_equal(pcpu_region_check(parent_r), 0);
}

int main(int argc, char **argv)
{
    child_dispatch(argc, argv, scenarios, sizeof(scenarios) / sizeof(scenarios[0]));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_norseq, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lose_rseq, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
