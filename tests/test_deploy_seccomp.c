/* SPDX-License-Identifier: MIT */
/* test_deploy_seccomp.c - under real seccomp filters (classic BPF, by hand) that refuse rseq, membarrier (all of it, or only its PRIVATE_EXPEDITED_RSEQ command), the NUMA calls, ioctl, madvise, or all of them, or the calls that make a region's file, every kind of workload gives exact results and the process exits 0; pcpu_stats.rseq says what was chosen. */
/*
 * Each scenario runs in a child process.  The filter is installed the way
 * a container runtime or a service manager installs it: in the child,
 * after PR_SET_NO_NEW_PRIVS, and then the test program is executed again
 * ("--child NAME"), so that the whole new process -- glibc's start-up
 * (which registers rseq), the library's constructors, the first use --
 * runs under the filter.  The "late_" scenarios install it in the new
 * process itself, after glibc's start-up and before the first use of the
 * library (a program that sandboxes itself): there glibc may already have
 * registered rseq for the main thread.  No PCPU_DEFINE here: a static
 * per-CPU variable would set the allocator up from a constructor.
 *
 * Each child first checks that its filter bites (the refused call fails
 * with the chosen errno, the allowed ones still work), then runs the
 * workload of deploy_util.h twice -- first use with the defaults from the
 * environment, then pcpu_exit() and pcpu_init() with 64 units, where
 * frees are zeroed after asking the kernel which pages hold data
 * (PAGEMAP_SCAN, an ioctl) -- and checks pcpu_stats.rseq:
 *   - rseq refused from the start: glibc's registration failed, the
 *     library's own is refused: atomics;
 *   - membarrier refused, or only its PRIVATE_EXPEDITED_RSEQ command
 *     (which every switch away from rseq, pcpu_ref_kill(),
 *     pcpu_list_pop_all(), pcpu_rwsem_down_write() and a counter near its
 *     limit need): atomics (before c339c05 the command was not tried at
 *     set-up, rseq was chosen and the first fence stopped the process);
 *   - NUMA calls, ioctl, madvise refused: rseq as without a filter (the
 *     library does without NUMA binding -- it binds only with several
 *     NUMA nodes online --, without PAGEMAP_SCAN it reads every unit, and
 *     freed pages it cannot give back with madvise are zeroed by hand);
 *   - region_files: memfd_create and openat(O_TMPFILE) refused: an
 *     anonymous region is EACCES, a named one is built under a temporary
 *     name instead;
 *   - late_rseq: with glibc's registration on (the default), glibc
 *     registered the main thread before the filter came: the library uses
 *     rseq on it, and the workload stays in that thread, because glibc
 *     2.35+ aborts the process ("Fatal glibc error: rseq registration
 *     failed") in any thread created afterwards; with
 *     GLIBC_TUNABLES=glibc.pthread.rseq=0 (the norseq variant) nothing
 *     was registered: atomics, threads work.
 * And one refusal that is the library's: a filter installed after the
 * library chose rseq that takes the membarrier command away stops the
 * process at the first fence with a one-line message (after_setup).
 *
 * Under ThreadSanitizer (make tsan) the scenarios that refuse madvise are
 * skipped: its runtime stops the process when it cannot madvise() its
 * shadow at start-up.  ASan runs them all.
 */
#include "testutil.h"

#include "deploy_util.h"

#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>

#if defined(__x86_64__)
#define DS_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define DS_ARCH AUDIT_ARCH_AARCH64
#endif

/* glibc 2.35+: nonzero when glibc registered rseq for its threads. */
extern const unsigned int __rseq_size __attribute__((weak));

#define MB_CMD_QUERY 0
#define MB_CMD_PRIVATE_EXPEDITED_RSEQ (1 << 7)
#define MB_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ (1 << 8)

/* What a filter refuses. */
enum {
    D_RSEQ = 1 << 0,       /* rseq: EPERM                                 */
    D_RSEQ_NOSYS = 1 << 1, /* rseq: ENOSYS (a kernel or filter without it) */
    D_MB = 1 << 2,         /* membarrier: EPERM                           */
    D_MB_RSEQ = 1 << 3,    /* membarrier(PRIVATE_EXPEDITED_RSEQ) only      */
    D_NUMA = 1 << 4,       /* mbind, set_mempolicy, get_mempolicy: EPERM  */
    D_IOCTL = 1 << 5,      /* ioctl: EPERM                                */
    D_MADVISE = 1 << 6,    /* madvise: EPERM                              */
    D_FILES = 1 << 7,      /* memfd_create, openat(O_TMPFILE): EPERM     */
};

struct scenario {
    const char *name;
    unsigned int deny;
    bool late;        /* installed after start-up, before the first use */
    bool after_setup; /* installed after the library chose its mode    */
};

static const struct scenario scenarios[] = {
    {"none", 0, false, false},
    {"rseq_eperm", D_RSEQ, false, false},
    {"rseq_enosys", D_RSEQ_NOSYS, false, false},
    {"membarrier", D_MB, false, false},
    {"membarrier_rseq_cmd", D_MB_RSEQ, false, false},
    {"numa", D_NUMA, false, false},
    {"ioctl", D_IOCTL, false, false},
    {"madvise", D_MADVISE, false, false},
    {"all", D_RSEQ | D_MB | D_NUMA | D_IOCTL | D_MADVISE, false, false},
    {"late_rseq", D_RSEQ, true, false},
    {"late_membarrier_rseq_cmd", D_MB_RSEQ, true, false},
    {"after_setup", D_MB_RSEQ, false, true},
    {"region_files", D_FILES, false, false},
};
#define NR_SCENARIOS (sizeof(scenarios) / sizeof(scenarios[0]))

/* Exit status of a child that cannot run its scenario here. */
#define DS_SKIP 77

/* ---- the filter --------------------------------------------------------------- */

#ifdef DS_ARCH

#define ARG_LO(i)                                                               \
    (offsetof(struct seccomp_data, args[i]) +                                   \
     (__BYTE_ORDER__ == __ORDER_BIG_ENDIAN__ ? 4 : 0))
#define ARG0_LO ARG_LO(0)

/* Build and install the filter for @deny; 0, or -1 with errno. */
static int install_filter(unsigned int deny)
{
    struct sock_filter f[48];
    unsigned int n = 0;
#define EMIT(x) (f[n++] = (struct sock_filter)x)
    /* Another architecture's calls (a 32-bit entry point): refused. */
    EMIT(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)));
    EMIT(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, DS_ARCH, 1, 0));
    EMIT(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS));
    EMIT(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)));
#if defined(__x86_64__)
    /* x32 calls have bit 30 set. */
    EMIT(BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000u, 0, 1));
    EMIT(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS));
#endif
    struct {
        unsigned int bit;
        long nr;
        int err;
    } rules[] = {
        {D_RSEQ, SYS_rseq, EPERM},
        {D_RSEQ_NOSYS, SYS_rseq, ENOSYS},
        {D_MB, SYS_membarrier, EPERM},
        {D_NUMA, SYS_mbind, EPERM},
        {D_NUMA, SYS_set_mempolicy, EPERM},
        {D_NUMA, SYS_get_mempolicy, EPERM},
#ifdef SYS_set_mempolicy_home_node
        {D_NUMA, SYS_set_mempolicy_home_node, EPERM},
#endif
        {D_IOCTL, SYS_ioctl, EPERM},
        {D_MADVISE, SYS_madvise, EPERM},
        {D_FILES, SYS_memfd_create, EPERM},
    };
    for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++) {
        if (!(deny & rules[i].bit))
            continue;
        EMIT(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned int)rules[i].nr, 0, 1));
        EMIT(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (unsigned int)rules[i].err));
    }
    if (deny & D_FILES) {
        /* openat with O_TMPFILE in its flags (args[2]); the number is
         * loaded again after the test, for the rules that follow. */
        EMIT(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_openat, 0, 5));
        EMIT(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG_LO(2)));
        EMIT(BPF_STMT(BPF_ALU | BPF_AND | BPF_K, (unsigned int)(O_TMPFILE & ~O_DIRECTORY)));
        EMIT(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 1, 0));
        EMIT(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM));
        EMIT(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)));
    }
    if (deny & D_MB_RSEQ) {
        /* membarrier with cmd (an int: the low word of args[0]) ==
         * PRIVATE_EXPEDITED_RSEQ; the registration and the rest pass. */
        EMIT(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_membarrier, 0, 3));
        EMIT(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG0_LO));
        EMIT(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, MB_CMD_PRIVATE_EXPEDITED_RSEQ, 0, 1));
        EMIT(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM));
    }
    EMIT(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
#undef EMIT
    struct sock_fprog prog = {.len = (unsigned short)n, .filter = f};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return -1;
    return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog);
}

#endif /* DS_ARCH */

/* ---- the child ---------------------------------------------------------------- */

/* A call the filter refuses fails with err; one it allows does not fail
 * with EPERM/ENOSYS from the filter. */
static void expect_errno(const char *what, long ret, int err, bool refused)
{
    int e = errno;
    if (refused)
        DW_CHECK(ret == -1 && e == err, "%s: returned %ld (%s), the filter should refuse it with %s",
                 what, ret, ret == -1 ? strerror(e) : "no error", strerror(err));
    else
        DW_CHECK(ret != -1 || (e != EPERM && e != ENOSYS), "%s refused (%s) without a rule", what,
                 strerror(e));
}

/* Check that the filter in place is the one asked for. */
static void verify_filter(unsigned int deny)
{
    long r;
    /* rseq(NULL, 0, 0, 0): EINVAL from a kernel that has it. */
    errno = 0;
    r = syscall(SYS_rseq, NULL, 0, 0, 0);
    if (deny & (D_RSEQ | D_RSEQ_NOSYS))
        expect_errno("rseq", r, deny & D_RSEQ ? EPERM : ENOSYS, true);
    else
        expect_errno("rseq", r, 0, false);
    errno = 0;
    r = syscall(SYS_membarrier, MB_CMD_QUERY, 0, 0);
    expect_errno("membarrier(QUERY)", r, EPERM, deny & D_MB);
    if ((deny & D_MB_RSEQ) && !(deny & D_MB)) {
        /* The registration passes, the command does not (the kernel's
         * own EPERM for an unregistered process is ruled out first). */
        errno = 0;
        r = syscall(SYS_membarrier, MB_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ, 0, 0);
        DW_CHECK(r == 0, "membarrier(REGISTER_PRIVATE_EXPEDITED_RSEQ): %s", strerror(errno));
        errno = 0;
        r = syscall(SYS_membarrier, MB_CMD_PRIVATE_EXPEDITED_RSEQ, 0, 0);
        expect_errno("membarrier(PRIVATE_EXPEDITED_RSEQ)", r, EPERM, true);
    }
    errno = 0;
    int mode = 0;
    r = syscall(SYS_get_mempolicy, &mode, NULL, 0, NULL, 0);
    expect_errno("get_mempolicy", r, EPERM, deny & D_NUMA);
    errno = 0;
    r = syscall(SYS_set_mempolicy, 0 /* MPOL_DEFAULT */, NULL, 0);
    expect_errno("set_mempolicy", r, EPERM, deny & D_NUMA);
    void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    DW_CHECK(p != MAP_FAILED, "mmap: %s", strerror(errno));
    errno = 0;
    r = syscall(SYS_mbind, p, 4096, 0 /* MPOL_DEFAULT */, NULL, 0, 0);
    expect_errno("mbind", r, EPERM, deny & D_NUMA);
    errno = 0;
    r = madvise(p, 4096, MADV_DONTNEED);
    expect_errno("madvise", r, EPERM, deny & D_MADVISE);
    munmap(p, 4096);
    struct termios t;
    errno = 0;
    r = ioctl(STDIN_FILENO, TCGETS, &t);
    if (deny & D_IOCTL)
        expect_errno("ioctl", r, EPERM, true);
    if (deny & D_FILES) {
        errno = 0;
        r = syscall(SYS_memfd_create, "x", 0);
        expect_errno("memfd_create", r, EPERM, true);
        errno = 0;
        r = open("/dev/shm", O_TMPFILE | O_RDWR, 0600);
        expect_errno("open(O_TMPFILE)", r, EPERM, true);
        r = open("/dev/null", O_RDONLY);
        DW_CHECK(r >= 0, "open(/dev/null): %s", strerror(errno));
        close((int)r);
    }
}

/* Regions where the sandbox refuses the calls that make their files: an
 * anonymous one is refused with EACCES (not ENOMEM), a named one is made
 * under a temporary name instead, exact, and leaves nothing behind. */
static void check_region_files(const struct scenario *s)
{
    if (!(s->deny & D_FILES))
        return;
    struct pcpu_stats st;
    DW_CHECK(pcpu_stats_get(&st) == 0, "pcpu_stats_get");
    bool writer = st.rseq && st.index == PCPU_INDEX_CPU;
    errno = 0;
    struct pcpu_region *a = pcpu_region_open(NULL, 4096, PCPU_REGION_CREATE, 0600);
    DW_CHECK(!a && errno == (writer ? EACCES : EOPNOTSUPP),
             "anonymous region without memfd_create: %p, %s", (void *)a, strerror(errno));
    if (!writer)
        return;
    char name[64];
    snprintf(name, sizeof(name), "/pcpu-test-%ld-seccomp", (long)getpid());
    struct pcpu_region *r =
        pcpu_region_open(name, 4096, PCPU_REGION_CREATE | PCPU_REGION_EXCL, 0600);
    DW_CHECK(r != NULL, "named region without O_TMPFILE: %s", strerror(errno));
    long *x = pcpu_region_alloc(r, "x", sizeof(long), 0);
    DW_CHECK(x != NULL, "pcpu_region_alloc: %s", strerror(errno));
    for (int i = 0; i < 1000; i++)
        pcpu_this_inc(x);
    DW_CHECK(pcpu_sum(x) == 1000, "sum %ld", pcpu_sum(x));
    DW_CHECK(pcpu_region_close(r) == 0 && pcpu_region_unlink(name) == 0, "close, unlink: %s",
             strerror(errno));
    char tmp[64];
    snprintf(tmp, sizeof(tmp), "/dev/shm/.pcpu-region-%ld-0", (long)getpid());
    DW_CHECK(access(tmp, F_OK) != 0, "%s left behind", tmp);
    fprintf(stderr, "%s: anonymous region EACCES, named one under a temporary name: exact\n",
            s->name);
}

static bool glibc_registered(void)
{
    return &__rseq_size != NULL && __rseq_size != 0;
}

/* pcpu_init() with @units units (0: the default), backend and index from
 * the environment. */
static void reinit_flags(unsigned int units, unsigned int flags)
{
    pcpu_exit();
    struct pcpu_config cfg = {.backend = tu_backend(), .nr_cpus = units, .flags = flags};
    const char *x = getenv("PERCPU_INDEX");
    if (x && !strcmp(x, "cid"))
        cfg.index = PCPU_INDEX_CID;
    DW_CHECK(pcpu_init(&cfg) == 0, "pcpu_init(%u units): %s", units, strerror(errno));
}

static void reinit(unsigned int units)
{
    reinit_flags(units, 0);
}

#define ITERS TU_STEPS(20000, 5)

/* The scenario after the exec: returns the exit status. */
static int child_main(const struct scenario *s)
{
    alarm(120);
    dw_name = s->name;
    const char *b = getenv("PCPU_DEPLOY_BASELINE");
    bool baseline = b && !strcmp(b, "1"); /* rseq without a filter */
    bool glibc_rseq = glibc_registered();
    if (s->after_setup) {
        /* Used first (the mode is chosen), filtered afterwards. */
        struct pcpu_ref ref;
        DW_CHECK(pcpu_ref_init(&ref, NULL, 0) == 0, "pcpu_ref_init: %s", strerror(errno));
        pcpu_ref_get(&ref);
        pcpu_ref_put(&ref);
        struct pcpu_stats st;
        DW_CHECK(pcpu_stats_get(&st) == 0, "pcpu_stats_get");
        DW_CHECK(st.rseq == baseline, "rseq %d without a filter, the parent saw %d", st.rseq,
                 baseline);
#ifdef DS_ARCH
        DW_CHECK(install_filter(s->deny) == 0, "seccomp: %s", strerror(errno));
#endif
        verify_filter(s->deny);
        fprintf(stderr, "%s: rseq %s, now killing a ref\n", s->name, st.rseq ? "on" : "off");
        pcpu_ref_kill(&ref); /* needs the fence with rseq: stops here */
        DW_CHECK(!st.rseq, "pcpu_ref_kill returned without membarrier(PRIVATE_EXPEDITED_RSEQ)");
        pcpu_ref_exit(&ref);
        return 0;
    }
    if (s->late) {
#ifdef DS_ARCH
        if (install_filter(s->deny) != 0) {
            fprintf(stderr, "%s: skipped: seccomp filter refused: %s\n", s->name,
                    strerror(errno));
            return DS_SKIP;
        }
#endif
    }
    verify_filter(s->deny);

    bool rseq_denied = s->deny & (D_RSEQ | D_RSEQ_NOSYS);
    bool expect = baseline;
    if (s->deny & (D_MB | D_MB_RSEQ))
        expect = false; /* no fence, no rseq */
    if (rseq_denied && !(s->late && glibc_rseq))
        expect = false; /* nobody could register */
    struct dw_opts o = {.name = s->name, .threads = 3, .iters = ITERS, .pin = true};
    if (rseq_denied && glibc_rseq) {
        /* glibc aborts threads whose registration fails once it has
         * registered the main thread: this thread only, and no reclaim
         * worker (a thread as well: started by the first frees, it would
         * take the process down with "Fatal glibc error: rseq
         * registration failed"). */
        fprintf(stderr,
                "%s: glibc registered rseq before the filter: one thread only, "
                "PCPU_F_NO_RECLAIM\n",
                s->name);
        o.threads = 0;
    }
    for (int pass = 0; pass < 2; pass++) {
        if (o.threads == 0 && s->late)
            reinit_flags(pass ? 64 : 0, PCPU_F_NO_RECLAIM); /* the worker is a thread too */
        else if (pass == 1)
            reinit(64);
        struct dw_result r = dw_run(&o);
        DW_CHECK(r.stats.rseq == expect,
                 "pass %d: pcpu_stats.rseq is %d, expected %d (no filter: %d, glibc's rseq: %d)",
                 pass, r.stats.rseq, expect, baseline, glibc_rseq);
        DW_CHECK(r.rseq_before_threads == expect, "pass %d: rseq %d before the threads", pass,
                 r.rseq_before_threads);
        if (pass == 1)
            DW_CHECK(r.stats.nr_units == 64, "%u units", r.stats.nr_units);
        fprintf(stderr, "%s: pass %d: %u units, %s, %u threads on %u units: exact\n", s->name,
                pass, r.stats.nr_units, r.stats.rseq ? "rseq" : "atomics", o.threads,
                r.units_seen);
    }
    check_region_files(s);
    pcpu_exit();
    return 0;
}

/* ---- the parent ----------------------------------------------------------------- */

static bool baseline_rseq;

struct outcome {
    int status;
    bool hung;
    char err[16384];
};

/* Fork, install the filter (unless late), run the scenario in a new
 * process; collect its stderr (echoed to ours). */
static void run_scenario(const struct scenario *s, struct outcome *out)
{
    memset(out, 0, sizeof(*out));
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], STDERR_FILENO);
        close(fds[1]);
        signal(SIGABRT, SIG_DFL);
        signal(SIGSEGV, SIG_DFL);
        setenv("PCPU_DEPLOY_BASELINE", baseline_rseq ? "1" : "0", 1);
#ifndef DS_ARCH
        fprintf(stderr, "%s: skipped: no seccomp architecture check for this machine\n",
                s->name);
        _exit(DS_SKIP);
#else
        if (!s->late && !s->after_setup && install_filter(s->deny) != 0) {
            fprintf(stderr, "%s: skipped: seccomp filter refused: %s\n", s->name,
                    strerror(errno));
            _exit(DS_SKIP);
        }
        execl("/proc/self/exe", "test_deploy_seccomp", "--child", s->name, (char *)NULL);
        fprintf(stderr, "%s: exec /proc/self/exe: %s\n", s->name, strerror(errno));
        _exit(126);
#endif
    }
    close(fds[1]);
    size_t got = 0;
    double deadline = tu_now() + 150;
    for (;;) {
        struct pollfd p = {.fd = fds[0], .events = POLLIN};
        int left = (int)((deadline - tu_now()) * 1000);
        if (left <= 0) {
            kill(pid, SIGKILL);
            out->hung = true;
            break;
        }
        int k = poll(&p, 1, left);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            continue;
        char buf[1024];
        ssize_t r = read(fds[0], buf, sizeof(buf));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        size_t take = (size_t)r < sizeof(out->err) - 1 - got ? (size_t)r : sizeof(out->err) - 1 - got;
        memcpy(out->err + got, buf, take);
        got += take;
    }
    close(fds[0]);
    out->err[got] = 0;
    assert_int_equal(waitpid(pid, &out->status, 0), pid);
    printf("---- %s (stderr) ----\n%s", s->name, out->err);
    fflush(stdout);
}

static const struct scenario *find(const char *name)
{
    for (size_t i = 0; i < NR_SCENARIOS; i++)
        if (!strcmp(scenarios[i].name, name))
            return &scenarios[i];
    return NULL;
}

/* ThreadSanitizer's runtime makes calls of its own: at start-up it
 * madvise()s its shadow (MADV_DONTDUMP) and stops the process when that
 * fails ("FATAL: ThreadSanitizer can not madvise shadow region").  (ASan
 * runs every scenario: checked.) */
#if defined(__SANITIZE_THREAD__)
#define DS_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define DS_TSAN 1
#endif
#endif

static bool runtime_needs(unsigned int deny)
{
#ifdef DS_TSAN
    return deny & D_MADVISE;
#else
    (void)deny;
    return false;
#endif
}

static void test_scenario(void **state)
{
    const struct scenario *s = *state;
    if (runtime_needs(s->deny)) {
        print_message("%s: skipped under ThreadSanitizer (its runtime needs madvise)\n",
                      s->name);
        skip();
    }
    static struct outcome out;
    struct outcome *o = &out;
    run_scenario(s, o);
    if (o->hung)
        fail_msg("%s: the child hung", s->name);
    if (WIFEXITED(o->status) && WEXITSTATUS(o->status) == DS_SKIP)
        skip();
    if (s->after_setup && baseline_rseq) {
        /* The library's own refusal: one line, then SIGABRT. */
        if (!WIFSIGNALED(o->status) || WTERMSIG(o->status) != SIGABRT ||
            !strstr(o->err, "membarrier(PRIVATE_EXPEDITED_RSEQ) failed"))
            fail_msg("%s: expected a stop with a membarrier message, got status 0x%x", s->name,
                     o->status);
        return;
    }
    if (strstr(o->err, "Sanitizer") || strstr(o->err, "runtime error:"))
        fail_msg("%s: a sanitizer reported something (see above)", s->name);
    if (WIFSIGNALED(o->status))
        fail_msg("%s: the child was killed by signal %d (%s)", s->name, WTERMSIG(o->status),
                 strsignal(WTERMSIG(o->status)));
    if (WEXITSTATUS(o->status) != 0)
        fail_msg("%s: the child exited with status %d", s->name, WEXITSTATUS(o->status));
}

static int setup_baseline(void **state)
{
    (void)state;
    /* Without a filter (this process: the children are new processes). */
    struct pcpu_stats st;
    if (pcpu_stats_get(&st) != 0)
        return -1;
    baseline_rseq = st.rseq;
    printf("without a filter: %s (glibc's rseq registration %s)\n",
           st.rseq ? "rseq" : "atomics", glibc_registered() ? "on" : "off");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "--child")) {
        const struct scenario *s = find(argv[2]);
        if (!s)
            return 2;
        int r = child_main(s);
        fflush(NULL);
        _exit(r);
    }
    struct CMUnitTest tests[NR_SCENARIOS];
    for (size_t i = 0; i < NR_SCENARIOS; i++) {
        tests[i] = (struct CMUnitTest){scenarios[i].name, test_scenario, NULL, NULL,
                                       (void *)&scenarios[i]};
    }
    return _cmocka_run_group_tests("test_deploy_seccomp", tests, NR_SCENARIOS, setup_baseline,
                                   NULL);
}
