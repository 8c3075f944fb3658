/* SPDX-License-Identifier: MIT */
/*
 * child.h - run a scenario in a child process.
 *
 * For promises whose breach is a crash (SIGSEGV when the kernel reads an
 * unmapped rseq descriptor, a torn-down chunk under a running thread), a
 * hang (a deadlock in the allocator), or a deliberate stop of the process
 * (an abort with a report), and for scenarios that need a process in which
 * the allocator has not been used yet.  Two ways to run one:
 *
 *   run_watched()   the child's stderr is kept (child_result.out) and a
 *                   watchdog kills a child that outlives its deadline, so a
 *                   hang fails the test instead of stalling the run until
 *                   CTest's TIMEOUT; the caller judges how the child ended
 *                   (child_aborted, child_exited_ok, child_verdict).
 *   run_in_child()  the child must exit with status 0: it checks with
 *                   child_check() (which reports on stderr and exits 1,
 *                   never longjmp()s back into cmocka), and the parent fails
 *                   the test otherwise (skips it on CHILD_SKIP);
 *                   run_in_fresh_process() runs a fresh copy of the program
 *                   instead of a fork (child_dispatch).
 *
 * In every child the signals a scenario may die of take their default
 * actions, so that a crash ends the child instead of running the test
 * framework's handlers in it.  Header-only (static functions) so that each
 * test program takes just what it uses.
 */
#ifndef PCPU_TEST_CHILD_H
#define PCPU_TEST_CHILD_H

#include "testutil.h"

#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Exit status of a child that cannot run its scenario here: the test is
 * skipped, not passed. */
#define CHILD_SKIP 77

/* Seconds before a hung run_in_child() child is killed (SIGALRM): far
 * above the normal run time, also under the sanitizers. */
#define CHILD_TIMEOUT 300

/* ---- common to both ways -------------------------------------------------- */

/* In the child: the default actions for the signals a scenario may die
 * of (no core dumps from the expected deaths, no test framework handlers). */
static inline void child_default_signals(void)
{
    signal(SIGABRT, SIG_DFL);
    signal(SIGSEGV, SIG_DFL);
    signal(SIGBUS, SIG_DFL);
    signal(SIGILL, SIG_DFL);
    signal(SIGFPE, SIG_DFL);
    signal(SIGALRM, SIG_DFL);
}

/* In a child forked by hand: the default signal actions and the time
 * limit every child here gets. */
static inline void child_prepare(void)
{
    child_default_signals();
    alarm(CHILD_TIMEOUT);
}

/* Fork a child that runs fn(arg) and ends with _exit(0) if fn returns.  In
 * the child, @close_fd (if >= 0) is closed, stderr goes to @err_fd (if
 * >= 0), the signals take their default actions and, if @alarm_s, an
 * alarm ends it after that many seconds.  Returns the child's pid, or -1
 * if fork() failed. */
static inline pid_t child_start(void (*fn)(void *), void *arg, int err_fd, int close_fd,
                                unsigned int alarm_s)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    if (close_fd >= 0)
        close(close_fd);
    if (err_fd >= 0) {
        dup2(err_fd, STDERR_FILENO);
        close(err_fd);
    }
    child_default_signals();
    if (alarm_s)
        alarm(alarm_s);
    fn(arg);
    fflush(NULL);
    _exit(0);
}

/* "exited with status 1", "was killed by signal 6 (Aborted)": a wait
 * status, for failure messages. */
static inline const char *child_status_text(int status, char *buf, size_t len)
{
    if (WIFEXITED(status))
        snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, len, "was killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else
        snprintf(buf, len, "ended with wait status 0x%x", status);
    return buf;
}

/* Write a message from a child (also from a signal handler: write(2) only). */
static inline void child_say(const char *s)
{
    size_t n = strlen(s);
    while (n) {
        ssize_t k = write(STDERR_FILENO, s, n);
        if (k <= 0)
            break;
        s += k;
        n -= (size_t)k;
    }
}

/* ---- watched: stderr kept, a watchdog, the caller judges ------------------ */

struct child_result {
    int status;     /* waitpid status (meaningless if hung or !forked) */
    bool hung;      /* killed by the watchdog */
    bool forked;
    char out[16384]; /* the child's stderr, NUL-terminated (truncated) */
};

/* Run fn(arg) in a child whose stderr goes into r->out; the child ends with
 * _exit(0) if fn returns.  After timeout_s seconds the child is killed
 * (SIGKILL) and r->hung is set. */
static inline void run_watched(void (*fn)(void *), void *arg, double timeout_s, struct child_result *r)
{
    memset(r, 0, sizeof(*r));
    int fds[2];
    if (pipe(fds) != 0)
        return;
    pid_t pid = child_start(fn, arg, fds[1], fds[0], 0);
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return;
    }
    r->forked = true;
    close(fds[1]);
    double deadline = tu_now() + timeout_s;
    size_t got = 0;
    bool open = true;
    for (;;) {
        double left = deadline - tu_now();
        if (left <= 0) {
            kill(pid, SIGKILL);
            r->hung = true;
            break;
        }
        if (!open) {
            /* stderr closed (the child is dying): wait for its status. */
            int st;
            pid_t w = waitpid(pid, &st, WNOHANG);
            if (w == pid) {
                r->status = st;
                close(fds[0]);
                r->out[got] = 0;
                return;
            }
            usleep(10000);
            continue;
        }
        struct pollfd p = {.fd = fds[0], .events = POLLIN};
        int n = poll(&p, 1, (int)(left * 1000) + 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            continue;
        char buf[1024];
        ssize_t k = read(fds[0], buf, sizeof(buf));
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            open = false;
            continue;
        }
        size_t take = (size_t)k;
        if (take > sizeof(r->out) - 1 - got)
            take = sizeof(r->out) - 1 - got;
        memcpy(r->out + got, buf, take);
        got += take;
    }
    close(fds[0]);
    r->out[got] = 0;
    int st = 0;
    waitpid(pid, &st, 0);
    r->status = st;
}

/* "exited 0", "killed by signal 6 (Aborted)", "hung": for failure messages. */
static inline const char *child_verdict(const struct child_result *r, char *buf, size_t len)
{
    if (!r->forked)
        snprintf(buf, len, "could not be forked");
    else if (r->hung)
        snprintf(buf, len, "hung (killed by the watchdog)");
    else
        child_status_text(r->status, buf, len);
    return buf;
}

static inline bool child_aborted(const struct child_result *r)
{
    return r->forked && !r->hung && WIFSIGNALED(r->status) && WTERMSIG(r->status) == SIGABRT;
}

static inline bool child_exited_ok(const struct child_result *r)
{
    return r->forked && !r->hung && WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0;
}

/* The child's stderr into out (at most len bytes with the NUL). */
static inline void child_out_copy(const struct child_result *r, char *out, size_t len)
{
    if (!out || !len)
        return;
    size_t n = strnlen(r->out, len - 1);
    memcpy(out, r->out, n);
    out[n] = 0;
}

/* ---- must exit 0: child_check() in the child, the verdict asserted -------- */

__attribute__((noreturn, format(printf, 4, 5), unused)) static void
child_fail(const char *file, int line, const char *cond, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s:%d: child check failed: %s: ", file, line, cond);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    _exit(1);
}

/* child_check(cond, fmt, ...): in the child, stop with status 1 and a
 * message unless cond holds. */
#define child_check(cond, ...)                                                  \
    do {                                                                        \
        if (!(cond))                                                            \
            child_fail(__FILE__, __LINE__, #cond, __VA_ARGS__);                 \
    } while (0)

/* Wait for child @pid; fail the current test unless it exited with status
 * 0 (skip it on CHILD_SKIP).  what names the scenario in the message. */
static inline void child_wait_ok(const char *what, pid_t pid)
{
    int status = 0;
    pid_t r;
    while ((r = waitpid(pid, &status, 0)) < 0 && errno == EINTR)
        ;
    assert_int_equal(r, pid);
    if (WIFEXITED(status) && WEXITSTATUS(status) == CHILD_SKIP)
        skip();
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        char how[128];
        fail_msg("%s: the child %s", what, child_status_text(status, how, sizeof(how)));
    }
}

/* Run fn(arg) in a forked child, which must exit with status 0. */
static inline void run_in_child(const char *what, void (*fn)(void *), void *arg)
{
    pid_t pid = child_start(fn, arg, -1, -1, CHILD_TIMEOUT);
    assert_true(pid >= 0);
    child_wait_ok(what, pid);
}

/*
 * Scenarios that need a process in which only the constructors have run
 * (nothing forked it with the allocator's state, locks or at-fork
 * handlers behind it): the test program runs a fresh copy of itself,
 * "prog --child NAME", and main() hands such a command line to
 * child_dispatch() before starting cmocka.  The environment (backend,
 * index mode, tunables) is inherited.
 */
struct child_scenario {
    const char *name;
    void (*fn)(void *);
    const void *arg;
};

#define CHILD_FLAG "--child"

static inline void run_in_fresh_process(const char *name)
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        execl("/proc/self/exe", "pcpu-child", CHILD_FLAG, name, (char *)NULL);
        fprintf(stderr, "exec /proc/self/exe: %s\n", strerror(errno));
        _exit(127);
    }
    child_wait_ok(name, pid);
}

/* Returns only if the command line asks for no scenario. */
static inline void child_dispatch(int argc, char **argv, const struct child_scenario *list,
                                  size_t n)
{
    if (argc != 3 || strcmp(argv[1], CHILD_FLAG) != 0)
        return;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(list[i].name, argv[2]) != 0)
            continue;
        child_default_signals();
        alarm(CHILD_TIMEOUT);
        list[i].fn((void *)list[i].arg);
        fflush(NULL);
        _exit(0);
    }
    fprintf(stderr, "no scenario %s\n", argv[2]);
    _exit(2);
}

/* The configuration the environment selects (PERCPU_BACKEND,
 * PERCPU_INDEX), for children that call pcpu_init() themselves. */
static inline struct pcpu_config child_env_config(void)
{
    struct pcpu_config cfg = {0};
    tu_env_mode(&cfg);
    return cfg;
}

/* Let the calling thread be preempted and put to sleep many times: each
 * time it goes back to user space the kernel looks at its rseq area. */
static inline void child_rest(int times)
{
    for (int i = 0; i < times; i++) {
        usleep(1000);
        sched_yield();
    }
}

#endif
