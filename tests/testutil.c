/* SPDX-License-Identifier: MIT */
/*
 * testutil.c - helpers shared by the cmocka test programs: death tests in
 * a forked child (child.h), resident memory, re-initialisation on the backend the
 * environment selects.
 */
#include "testutil.h"
#include "child.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int tu_dies_with(void (*fn)(void *), void *arg, const char *const *need, char *out,
                        size_t len)
{
    struct child_result r;
    run_watched(fn, arg, CHILD_TIMEOUT, &r);
    child_out_copy(&r, out, len);
    if (!child_aborted(&r)) {
        char how[128];
        print_message("the child %s; stderr: %.500s\n", child_verdict(&r, how, sizeof(how)),
                      r.out);
        return 0;
    }
    for (; need && *need; need++)
        if (!strstr(r.out, *need)) {
            print_message("stderr lacks \"%s\": %.500s\n", *need, r.out);
            return 0;
        }
    return 1;
}

size_t tu_status_bytes(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    size_t kb = 0, n = strlen(field);
    while (f && fgets(line, sizeof(line), f))
        if (!strncmp(line, field, n) && sscanf(line + n, ": %zu kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb * 1024;
}

size_t tu_rss(void)
{
    return tu_status_bytes("VmRSS");
}

enum pcpu_backend tu_backend(void)
{
    const char *b = getenv("PERCPU_BACKEND");
    return b && !strcmp(b, "km") ? PCPU_BACKEND_KM : PCPU_BACKEND_VM;
}

void tu_env_mode(struct pcpu_config *cfg)
{
    cfg->backend = tu_backend();
    const char *x = getenv("PERCPU_INDEX");
    if (x && !strcmp(x, "cid"))
        cfg->index = PCPU_INDEX_CID;
}

void tu_reinit(struct pcpu_config *cfg)
{
    pcpu_exit();
    struct pcpu_config def = {0};
    if (!cfg)
        cfg = &def;
    tu_env_mode(cfg);
    int r = pcpu_init(cfg);
    if (r != 0)
        fprintf(stderr, "pcpu_init: %s\n", strerror(errno));
    assert_int_equal(r, 0);
}

uint64_t tu_rand(uint64_t *s)
{
    uint64_t x = *s ? *s : 0x9e3779b97f4a7c15ull;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545f4914f6cdd1dull;
}

int tu_dies_by_signal(void (*fn)(void *), void *arg)
{
    pid_t pid = child_start(fn, arg, -1, -1, 0);
    if (pid < 0)
        return 0;
    int status = 0;
    if (waitpid(pid, &status, 0) != pid)
        return 0;
    return WIFSIGNALED(status) ? WTERMSIG(status) : 0;
}

static int saved_stderr = -1;
static FILE *capture_file;

void tu_stderr_begin(void)
{
    fflush(stderr);
    capture_file = tmpfile();
    assert_non_null(capture_file);
    saved_stderr = dup(STDERR_FILENO);
    assert_true(saved_stderr >= 0);
    assert_true(dup2(fileno(capture_file), STDERR_FILENO) >= 0);
}

void tu_stderr_end(char *out, size_t len)
{
    fflush(stderr);
    assert_true(saved_stderr >= 0);
    dup2(saved_stderr, STDERR_FILENO);
    close(saved_stderr);
    saved_stderr = -1;
    size_t got = 0;
    if (out && len) {
        rewind(capture_file);
        got = fread(out, 1, len - 1, capture_file);
        out[got] = 0;
    }
    fclose(capture_file);
    capture_file = NULL;
}

unsigned int tu_possible_cpus(void)
{
    FILE *f = fopen("/sys/devices/system/cpu/possible", "r");
    char line[4096];
    unsigned int n = 0;
    if (f && fgets(line, sizeof(line), f)) {
        char *s = line;
        while (*s >= '0' && *s <= '9') {
            char *end;
            unsigned long a = strtoul(s, &end, 10), b = a;
            if (*end == '-')
                b = strtoul(end + 1, &end, 10);
            n += (unsigned int)(b - a + 1);
            s = end;
            if (*s == ',')
                s++;
        }
    }
    if (f)
        fclose(f);
    if (n == 0) {
        long c = sysconf(_SC_NPROCESSORS_CONF);
        n = c > 0 ? (unsigned int)c : 1;
    }
    return n;
}

double tu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

struct pcpu_stats tu_stats(void)
{
    struct pcpu_stats st;
    assert_int_equal(pcpu_stats_get(&st), 0);
    return st;
}

void tu_fill_units(void *cookie, size_t size, unsigned char byte)
{
    pcpu_for_each_cpu(cpu) memset(pcpu_ptr(cookie, cpu), byte, size);
}

void tu_assert_zero_units(void *cookie, size_t size)
{
    pcpu_for_each_cpu(cpu)
    {
        const unsigned char *p = pcpu_ptr(cookie, cpu);
        for (size_t i = 0; i < size; i++)
            if (p[i])
                fail_msg("cookie %p size %zu: cpu %u byte %zu is 0x%02x, not zero", cookie, size,
                         cpu, i, p[i]);
    }
}

size_t tu_held_size(size_t size)
{
    size_t g = (size + 3) / 4 * 4;
    if (g <= 256 || g > 4096)
        return g;
    return (g + 63) / 64 * 64;
}

extern const unsigned int __rseq_size __attribute__((weak));

bool tu_glibc_rseq(void)
{
    return &__rseq_size != NULL && __rseq_size != 0;
}

/* The kernel's struct rseq (32 bytes, 32-aligned), in the thread's TLS. */
static __thread struct {
    uint32_t cpu_id_start, cpu_id;
    uint64_t rseq_cs;
    uint32_t flags, node_id, mm_cid, pad;
} __attribute__((aligned(32))) foreign_area;

#define TU_RSEQ_SIG 0x53053053
#define TU_RSEQ_FLAG_UNREGISTER 1

bool tu_take_rseq(void)
{
    foreign_area.cpu_id = UINT32_MAX;
    return syscall(SYS_rseq, &foreign_area, 32, 0, TU_RSEQ_SIG) == 0;
}

void tu_give_back_rseq(void)
{
    syscall(SYS_rseq, &foreign_area, 32, TU_RSEQ_FLAG_UNREGISTER, TU_RSEQ_SIG);
}
