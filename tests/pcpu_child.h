/* SPDX-License-Identifier: MIT */
/*
 * pcpu_child.h - run a scenario in a child process that must exit 0.
 *
 * For promises whose breach is a crash (SIGSEGV when the kernel reads an
 * unmapped rseq descriptor, a torn-down chunk under a running thread) or
 * that need a process in which the allocator has not been used yet: the
 * cmocka process forks (run_in_child) or runs a fresh copy of itself
 * (run_in_fresh_process), the child runs the scenario and checks with
 * child_check() (which reports on stderr and exits 1, never longjmp()s
 * back into cmocka), and the parent asserts that the child exited with
 * status 0.  Header-only so that each test program takes just what it uses.
 */
#ifndef PCPU_CHILD_H
#define PCPU_CHILD_H

#include "testutil.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Exit status of a child that cannot run its scenario here: the test is
 * skipped, not passed. */
#define CHILD_SKIP 77

/* Seconds before a hung child is killed (SIGALRM): far above the normal
 * run time, also under the sanitizers. */
#define CHILD_TIMEOUT 300

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
__attribute__((unused)) static void child_verdict(const char *what, pid_t pid)
{
    int status = 0;
    pid_t r;
    while ((r = waitpid(pid, &status, 0)) < 0 && errno == EINTR)
        ;
    assert_int_equal(r, pid);
    if (WIFSIGNALED(status))
        fail_msg("%s: the child was killed by signal %d (%s)", what, WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    if (WIFEXITED(status) && WEXITSTATUS(status) == CHILD_SKIP)
        skip();
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("%s: the child exited with status %d", what, WEXITSTATUS(status));
}

/* In the child: the default actions, so that a crash ends the child
 * instead of running the test framework's handlers in it, and a time
 * limit. */
__attribute__((unused)) static void child_prepare(void)
{
    signal(SIGSEGV, SIG_DFL);
    signal(SIGBUS, SIG_DFL);
    signal(SIGABRT, SIG_DFL);
    signal(SIGALRM, SIG_DFL);
    alarm(CHILD_TIMEOUT);
}

/* Run fn(arg) in a forked child, which must exit with status 0. */
__attribute__((unused)) static void run_in_child(const char *what, void (*fn)(void *), void *arg)
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        child_prepare();
        fn(arg);
        fflush(NULL);
        _exit(0);
    }
    child_verdict(what, pid);
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

__attribute__((unused)) static void run_in_fresh_process(const char *name)
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        execl("/proc/self/exe", "pcpu-child", CHILD_FLAG, name, (char *)NULL);
        fprintf(stderr, "exec /proc/self/exe: %s\n", strerror(errno));
        _exit(127);
    }
    child_verdict(name, pid);
}

/* Returns only if the command line asks for no scenario. */
__attribute__((unused)) static void child_dispatch(int argc, char **argv,
                                                   const struct child_scenario *list, size_t n)
{
    if (argc != 3 || strcmp(argv[1], CHILD_FLAG) != 0)
        return;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(list[i].name, argv[2]) != 0)
            continue;
        child_prepare();
        list[i].fn((void *)list[i].arg);
        fflush(NULL);
        _exit(0);
    }
    fprintf(stderr, "no scenario %s\n", argv[2]);
    _exit(2);
}

/* The configuration the environment selects (PERCPU_BACKEND,
 * PERCPU_INDEX), for children that call pcpu_init() themselves. */
__attribute__((unused)) static struct pcpu_config child_env_config(void)
{
    struct pcpu_config cfg = {0};
    cfg.backend = tu_backend();
    const char *x = getenv("PERCPU_INDEX");
    if (x && !strcmp(x, "cid"))
        cfg.index = PCPU_INDEX_CID;
    return cfg;
}

/* Let the calling thread be preempted and put to sleep many times: each
 * time it goes back to user space the kernel looks at its rseq area. */
__attribute__((unused)) static void child_rest(int times)
{
    for (int i = 0; i < times; i++) {
        usleep(1000);
        sched_yield();
    }
}

#endif
