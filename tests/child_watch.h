/* SPDX-License-Identifier: MIT */
/* child_watch.h - run a scenario in a forked child under a watchdog, keeping its stderr. */
/*
 * The scenarios these tests run can hang (a deadlock in the allocator),
 * crash, or stop the process on purpose, and the verdict depends on which
 * of those happened: a hang must fail the test instead of stalling the
 * whole run until CTest's TIMEOUT, so the parent kills a child that takes
 * longer than its deadline and says so.  Header-only (static functions)
 * so that the test programs can share it without touching testutil.
 */
#ifndef PCPU_CHILD_WATCH_H
#define PCPU_CHILD_WATCH_H

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct child_result {
    int status;     /* waitpid status (meaningless if hung or !forked) */
    bool hung;      /* killed by the watchdog */
    bool forked;
    char out[8192]; /* the child's stderr, NUL-terminated (truncated) */
};

static inline double child_watch_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Run fn(arg) in a child whose stderr goes into r->out; the child ends with
 * _exit(0) if fn returns.  After timeout_s seconds the child is killed
 * (SIGKILL) and r->hung is set. */
static inline void run_watched(void (*fn)(void *), void *arg, double timeout_s, struct child_result *r)
{
    memset(r, 0, sizeof(*r));
    int fds[2];
    if (pipe(fds) != 0)
        return;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return;
    }
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], STDERR_FILENO);
        close(fds[1]);
        /* The expected deaths need no core dumps, and the test framework's
         * handlers must not turn them into something else. */
        signal(SIGABRT, SIG_DFL);
        signal(SIGSEGV, SIG_DFL);
        signal(SIGBUS, SIG_DFL);
        signal(SIGILL, SIG_DFL);
        signal(SIGFPE, SIG_DFL);
        fn(arg);
        _exit(0);
    }
    r->forked = true;
    close(fds[1]);
    double deadline = child_watch_now() + timeout_s;
    size_t got = 0;
    bool open = true;
    for (;;) {
        double left = deadline - child_watch_now();
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
    else if (WIFEXITED(r->status))
        snprintf(buf, len, "exited with status %d", WEXITSTATUS(r->status));
    else if (WIFSIGNALED(r->status))
        snprintf(buf, len, "was killed by signal %d (%s)", WTERMSIG(r->status),
                 strsignal(WTERMSIG(r->status)));
    else
        snprintf(buf, len, "ended with wait status 0x%x", r->status);
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

#endif
