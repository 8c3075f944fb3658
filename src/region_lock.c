/* SPDX-License-Identifier: MIT */
/*
 * region_lock.c - a lock in a shared file that survives its owner's death
 * and does not believe its own lock word.
 *
 * Why not a robust process-shared pthread mutex: glibc links a robust
 * mutex into its owner's robust list through pointers stored in the mutex
 * itself, and follows them on unlock and at thread exit.  In a region
 * those pointers are writable by every other process, so one corrupting
 * writer could make this process write through an arbitrary address;
 * and a corrupt owner field can make lock() wait forever.  Nothing in the
 * file may be trusted, so the lock is a plain futex word whose value is
 * only ever compared, never followed.
 *
 * The word is 0 when free, else the owner's pid in bits 0-21 (Linux pids
 * are below 2^22) and, in bits 22-31, a tag of the owner's start time
 * (/proc/<pid>/stat), never 0 (0: /proc could not be read, and then
 * only the pid is checked).  One atomic
 * compare-and-swap writes both, so there is no moment when the lock is
 * owned but its owner not yet named.  A waiter that finds the word taken
 * asks whether that owner still exists: no such process, a zombie, a
 * process whose start time does not match the tag (the pid was reused),
 * pid 0, or this very process (which cannot hold it: threads of one
 * process are serialised by a mutex of the process first, so the word
 * holds a pid, not a thread) -- then the owner is gone, and the waiter
 * takes the word over with a compare-and-swap from exactly the value it
 * judged.  Otherwise it sleeps on the futex (a shared futex: the word is
 * in a file mapping) for a short, growing time, and looks again: a dying
 * owner wakes nobody.  A word that names a live owner for longer than the
 * timeout (10 s: a stopped process, or a forged word) makes the call
 * fail with ETIMEDOUT instead of waiting forever.
 *
 * Everything is keyed by pid, so every process that changes a region's
 * directory must be in one PID namespace; region.c refuses an open for
 * writing from another (EINVAL).
 */
#include "region_lock.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define PID_BITS 22
#define PID_MASK ((1u << PID_BITS) - 1)

static pthread_mutex_t local = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static unsigned int timeout_ms = 10000;
/* The calling process's identity (under local; recomputed after fork). */
static pid_t me_pid;
static uint32_t me_word;

static void fork_prepare(void)
{
    pthread_mutex_lock(&local);
}

static void fork_release(void)
{
    pthread_mutex_unlock(&local);
}

static void register_atfork(void)
{
    pthread_atfork(fork_prepare, fork_release, fork_release);
}

void pcpu__rlock_set_timeout(unsigned int ms)
{
    __atomic_store_n(&timeout_ms, ms, __ATOMIC_RELAXED);
}

/* What /proc says about a process: its state letter and start time. */
struct proc_state {
    bool known;
    char state;
    unsigned long long start;
};

static struct proc_state proc_state_of(int pid)
{
    struct proc_state ps = {0};
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return ps;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    /* "pid (comm) S ppid ...": comm may hold anything, ')' included. */
    char *p = strrchr(buf, ')');
    if (!p || p[1] != ' ')
        return ps;
    p += 2;
    ps.state = *p;
    /* starttime is the 20th field after the state (field 22 in all). */
    for (int field = 0; field < 19 && p; field++) {
        p = strchr(p, ' ');
        if (p)
            p++;
    }
    if (!p)
        return ps;
    ps.start = strtoull(p, NULL, 10);
    ps.known = true;
    return ps;
}

static uint32_t tag_of(unsigned long long start)
{
    return 1 + (uint32_t)(((start * 0x9E3779B97F4A7C15ull) >> 32) % 1023);
}

uint32_t pcpu__rlock_owner_word(int pid)
{
    struct proc_state ps = proc_state_of(pid);
    return ((uint32_t)pid & PID_MASK) | ((ps.known ? tag_of(ps.start) : 0) << PID_BITS);
}

static void identify_self(void)
{
    pid_t pid = getpid();
    if (pid != me_pid) {
        me_pid = pid;
        me_word = pcpu__rlock_owner_word(pid);
    }
}

/* Whether the owner named by w is gone (see the top of the file). */
static bool owner_gone(uint32_t w)
{
    int pid = (int)(w & PID_MASK);
    uint32_t tag = w >> PID_BITS;
    if (pid == 0 || pid == me_pid)
        return true;
    if (kill(pid, 0) != 0 && errno == ESRCH)
        return true;
    struct proc_state ps = proc_state_of(pid);
    if (!ps.known)
        return false;
    if (ps.state == 'Z' || ps.state == 'X')
        return true;
    /* Owners that could read their own start time wrote its tag (never
     * 0); one that could not wrote 0, and then neither can we read it. */
    return tag != tag_of(ps.start);
}

bool pcpu__rlock_word_plausible(uint32_t w)
{
    /* An owner that died leaves its word behind, which the next locker
     * takes over: that is a normal state.  Only a word no owner could
     * have written (a pid of 0) is wrong. */
    return w == 0 || (w & PID_MASK) != 0;
}

uint64_t pcpu__rlock_pidns(void)
{
    struct stat st;
    return stat("/proc/self/ns/pid", &st) == 0 ? (uint64_t)st.st_ino : 0;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int pcpu__rlock_acquire(uint32_t *word)
{
    int saved = errno;
    pthread_once(&atfork_once, register_atfork);
    pthread_mutex_lock(&local);
    identify_self();
    double start = now_ms();
    long wait_us = 1000;
    uint32_t judged = 0;      /* the owner word the current wait is for */
    double judged_at = start;
    for (;;) {
        uint32_t cur = 0;
        if (__atomic_compare_exchange_n(word, &cur, me_word, false, __ATOMIC_ACQUIRE,
                                        __ATOMIC_RELAXED)) {
            errno = saved;
            return 0;
        }
        if (owner_gone(cur)) {
            if (__atomic_compare_exchange_n(word, &cur, me_word, false, __ATOMIC_ACQUIRE,
                                            __ATOMIC_RELAXED)) {
                errno = saved;
                return 1;
            }
            continue;
        }
        /* The timeout runs per owner: a queue of live owners that each
         * hold it briefly is not a reason to give up. */
        double now = now_ms();
        if (cur != judged) {
            judged = cur;
            judged_at = now;
            wait_us = 1000;
        } else if (now - judged_at >= (double)__atomic_load_n(&timeout_ms, __ATOMIC_RELAXED)) {
            pthread_mutex_unlock(&local);
            errno = ETIMEDOUT;
            return -1;
        }
        struct timespec ts = {.tv_sec = wait_us / 1000000, .tv_nsec = (wait_us % 1000000) * 1000};
        (void)syscall(SYS_futex, word, FUTEX_WAIT, cur, &ts, NULL, 0);
        if (wait_us < 100000)
            wait_us *= 2;
    }
}

void pcpu__rlock_release(uint32_t *word)
{
    int saved = errno;
    __atomic_store_n(word, 0, __ATOMIC_RELEASE);
    (void)syscall(SYS_futex, word, FUTEX_WAKE, 1, NULL, NULL, 0);
    pthread_mutex_unlock(&local);
    errno = saved;
}
