/* SPDX-License-Identifier: MIT */
/*
 * region_util.h - helpers of the region tests: names that no other test
 * (or other run of this one) uses, counting this process's descriptors
 * and mappings, a child that runs with another environment, waiting for
 * children.  Header-only, static functions.
 */
#ifndef PCPU_REGION_UTIL_H
#define PCPU_REGION_UTIL_H

#include "child.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* "/pcpu-test-<pid>-<tag>": unique per process and tag (in one of 32
 * buffers used in turn: keep the result no longer than that). */
__attribute__((unused)) static const char *rt_name(const char *tag)
{
    static char buf[32][96];
    static unsigned int next;
    char *b = buf[next++ % 32];
    snprintf(b, sizeof(buf[0]), "/pcpu-test-%ld-%s", (long)getpid(), tag);
    return b;
}

/* How many names /dev/shm/<prefix><this pid>-* there are, each passed
 * to fn (its path) when fn is not NULL. */
static unsigned int rt_shm_names(const char *prefix, void (*fn)(const char *path))
{
    char start[64], path[512];
    snprintf(start, sizeof(start), "%s%ld-", prefix, (long)getpid());
    unsigned int n = 0;
    DIR *d = opendir("/dev/shm");
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (strncmp(e->d_name, start, strlen(start)) != 0)
            continue;
        n++;
        snprintf(path, sizeof(path), "/dev/shm/%s", e->d_name);
        if (fn)
            fn(path);
    }
    if (d)
        closedir(d);
    return n;
}

static void rt_unlink_path(const char *path)
{
    unlink(path);
}

/* At exit: remove every /dev/shm/pcpu-test-<this pid>-* left behind by
 * a test that failed before its own unlink (children leave with _exit()
 * and run none of this). */
static void rt_cleanup(void)
{
    rt_shm_names("pcpu-test-", rt_unlink_path);
}

__attribute__((unused)) static void rt_cleanup_at_exit(void)
{
    static bool done;
    if (!done)
        atexit(rt_cleanup);
    done = true;
}

/* The file behind a region name. */
__attribute__((unused)) static const char *rt_path(const char *name)
{
    static char buf[4][128];
    static unsigned int next;
    char *b = buf[next++ % 4];
    snprintf(b, sizeof(buf[0]), "/dev/shm%s", name);
    return b;
}

__attribute__((unused)) static unsigned int rt_count_fds(void)
{
    unsigned int n = 0;
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

/* Lines of /proc/self/maps; with @what, only those that contain it. */
__attribute__((unused)) static unsigned int rt_count_maps_of(const char *what)
{
    unsigned int n = 0;
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f)
        return 0;
    char line[4096];
    while (fgets(line, sizeof(line), f))
        n += !what || strstr(line, what) != NULL;
    fclose(f);
    return n;
}

__attribute__((unused)) static unsigned int rt_count_maps(void)
{
    return rt_count_maps_of(NULL);
}

/* Sanitizers' own allocators map memory as they go: a count of every
 * mapping may grow a little there without the library leaking any. */
#ifdef TU_SLOW_BUILD
#define RT_MAPS_SLACK 16u
#else
#define RT_MAPS_SLACK 0u
#endif

/* Wait for @pid; its exit status, or 128 + signal. */
__attribute__((unused)) static int rt_wait(pid_t pid)
{
    int status = 0;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return WEXITSTATUS(status);
}

/*
 * Run this program again as "prog --child NAME" with @env added to the
 * environment ("VAR=value" strings, NULL-terminated; "VAR=" removes VAR),
 * and return its status as rt_wait() does.  For scenarios that need
 * another index mode or rseq set-up from the start.
 */
__attribute__((unused)) static int rt_exec_child(const char *name, const char *const *env)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        for (; env && *env; env++) {
            char var[128];
            const char *eq = strchr(*env, '=');
            snprintf(var, sizeof(var), "%.*s", (int)(eq - *env), *env);
            if (eq[1])
                setenv(var, eq + 1, 1);
            else
                unsetenv(var);
        }
        execl("/proc/self/exe", "pcpu-child", CHILD_FLAG, name, (char *)NULL);
        _exit(127);
    }
    return rt_wait(pid);
}

#endif
