/*
 * pcpu_child.h - run a scenario in a forked child that must exit 0.
 *
 * For promises whose breach is a crash (SIGSEGV when the kernel reads an
 * unmapped rseq descriptor, a torn-down chunk under a running thread) or
 * that need a process in which the allocator has not been touched yet: the
 * cmocka process forks, the child runs the scenario and checks with
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

/* Run fn(arg) in a forked child; fail the current test unless the child
 * exits with status 0 (skip it on CHILD_SKIP).  what names the scenario
 * in the failure message. */
__attribute__((unused)) static void run_in_child(const char *what, void (*fn)(void *), void *arg)
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* The default actions: a crash must end the child, not run the
         * test framework's handlers in it. */
        signal(SIGSEGV, SIG_DFL);
        signal(SIGBUS, SIG_DFL);
        signal(SIGABRT, SIG_DFL);
        signal(SIGALRM, SIG_DFL);
        alarm(CHILD_TIMEOUT);
        fn(arg);
        fflush(NULL);
        _exit(0);
    }
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

/* The configuration the environment selects (PERCPU_BACKEND,
 * PERCPU_INDEX), for children that call pcpu_init() themselves. */
__attribute__((unused)) static struct pcpu_config child_env_config(void)
{
    struct pcpu_config cfg = {0};
    cfg.backend = pcpu_test_backend();
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
