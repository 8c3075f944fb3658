/* SPDX-License-Identifier: MIT */
/*
 * internal.c - the library's last-resort reporting (fatal messages,
 * warnings, failed assertions) and the per-thread marker of the public
 * call a thread is inside, declared in internal.h because every layer
 * uses them.
 *
 * A fatal message is written with one write() so that it cannot interleave
 * with other threads' output, then the process aborts: the messages are
 * what tests and users read when the library stops a program.
 */
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

void pcpu__assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "percpu: assertion failed: %s (%s:%d)\n", expr, file, line);
    fflush(stderr);
    abort();
}

void pcpu__die(const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if ((size_t)n > sizeof(buf) - 2)
        n = sizeof(buf) - 2;
    buf[n++] = '\n';
    /* One write: the message must not interleave with other threads'. */
    ssize_t w = write(STDERR_FILENO, buf, (size_t)n);
    (void)w;
    abort();
}

__thread bool pcpu__lock_held __attribute__((tls_model("initial-exec")));
__thread const char *pcpu__inside __attribute__((tls_model("initial-exec")));

void pcpu__reentered(const char *fn)
{
    pcpu__die("percpu: %s called from a signal handler that interrupted %s on the same "
              "thread (the allocator is not async-signal-safe)",
              fn, pcpu__inside);
}

void pcpu__warn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("percpu: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

