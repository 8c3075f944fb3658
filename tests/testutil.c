/*
 * testutil.c - helpers shared by the cmocka test programs: death tests in
 * a forked child, resident memory, re-initialisation on the backend the
 * environment selects.
 */
#define _GNU_SOURCE
#include "testutil.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int pcpu_test_dies_with(void (*fn)(void *), void *arg, const char *const *need, char *out,
                        size_t len)
{
    int fds[2];
    if (pipe(fds) != 0)
        return 0;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], STDERR_FILENO);
        /* No core dumps from the expected deaths. */
        signal(SIGABRT, SIG_DFL);
        fn(arg);
        _exit(0);
    }
    close(fds[1]);
    char buf[4096];
    size_t got = 0;
    ssize_t r;
    while ((r = read(fds[0], buf + got, sizeof(buf) - 1 - got)) > 0)
        got += (size_t)r;
    buf[got] = 0;
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    if (out && len) {
        strncpy(out, buf, len - 1);
        out[len - 1] = 0;
    }
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGABRT)
        return 0;
    for (; need && *need; need++)
        if (!strstr(buf, *need))
            return 0;
    return 1;
}

size_t pcpu_test_rss(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    size_t kb = 0;
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %zu kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb * 1024;
}

enum pcpu_backend pcpu_test_backend(void)
{
    const char *b = getenv("PERCPU_BACKEND");
    return b && !strcmp(b, "km") ? PCPU_BACKEND_KM : PCPU_BACKEND_VM;
}

void pcpu_test_reinit(struct pcpu_config *cfg)
{
    pcpu_exit();
    struct pcpu_config def = {0};
    if (!cfg)
        cfg = &def;
    cfg->backend = pcpu_test_backend();
    const char *x = getenv("PERCPU_INDEX");
    if (x && !strcmp(x, "cid"))
        cfg->index = PCPU_INDEX_CID;
    int r = pcpu_init(cfg);
    if (r != 0)
        fprintf(stderr, "pcpu_init: %s\n", strerror(errno));
    assert_int_equal(r, 0);
}

uint64_t pcpu_test_rand(uint64_t *s)
{
    uint64_t x = *s ? *s : 0x9e3779b97f4a7c15ull;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545f4914f6cdd1dull;
}
