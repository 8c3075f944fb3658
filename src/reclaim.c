/* SPDX-License-Identifier: MIT */
/*
 * reclaim.c - giving empty memory back, in the background.
 *
 * Frees leave populated pages with nothing on them and, eventually, chunks
 * with nothing in them.  Keeping a few is worth it (the next allocation
 * needs no system call), keeping them all is not.  The pool decides what
 * to keep (pcpu__pool_balance_locked, its watermarks) and says when a pass
 * is wanted; this file only schedules it.  Like the kernel's balance work,
 * a worker thread wakes when kicked, waits a moment so that a burst of
 * frees is handled at once, then runs the pass.
 *
 * The worker is started on the first kick, so programs that never free
 * never get a thread; PCPU_F_NO_RECLAIM turns it off (pcpu_reclaim() then
 * does the same work on demand).
 */
#include "reclaim.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>

#include "pool.h"

#define RECLAIM_DELAY_MS 100

static pthread_t worker;
static bool enabled, running, pending, stopping;   /* under the pool lock */
static bool unloaded;   /* the library is going away: no worker any more */
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;

static void deadline(struct timespec *ts, long ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_nsec += ms * 1000000L;
    ts->tv_sec += ts->tv_nsec / 1000000000L;
    ts->tv_nsec %= 1000000000L;
}

static void *worker_main(void *arg)
{
    (void)arg;
    pcpu__pool_lock();
    while (!stopping) {
        while (!pending && !stopping)
            pcpu__pool_wait(&wake, NULL);
        if (stopping)
            break;
        struct timespec ts;
        deadline(&ts, RECLAIM_DELAY_MS);
        while (!stopping && pcpu__pool_wait(&wake, &ts) != ETIMEDOUT)
            ;
        if (stopping)
            break;
        pending = false;
        if (pcpu__pool_ready())
            pcpu__pool_balance_locked(false);
    }
    pcpu__pool_unlock();
    return NULL;
}

void pcpu__reclaim_enable(bool on)
{
    enabled = on && !unloaded;
}

void pcpu__reclaim_kick_locked(void)
{
    pcpu_assert_locked();
    if (!enabled || pending)
        return;
    pending = true;
    if (running) {
        pthread_cond_signal(&wake);
        return;
    }
    /* The worker must not take signals meant for the program. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    if (pthread_create(&worker, NULL, worker_main, NULL) == 0)
        running = true;
    else
        pending = false; /* no thread (RLIMIT_NPROC, a filter): the next kick tries */
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

void pcpu__reclaim_stop(void)
{
    pcpu__pool_lock();
    if (!running) {
        pending = false;
        pcpu__pool_unlock();
        return;
    }
    stopping = true;
    pthread_cond_broadcast(&wake);
    pcpu__pool_unlock();
    pthread_join(worker, NULL);
    pcpu__pool_lock();
    running = stopping = pending = false;
    pcpu__pool_unlock();
}

void pcpu__reclaim_unload(void)
{
    /* exit() called where this thread holds the lock (a signal handler
     * that interrupted the allocator): the worker may be waiting for it,
     * so do not wait for the worker; the process is going away. */
    if (pcpu__lock_held)
        return;
    pcpu__pool_lock();
    unloaded = true;
    enabled = false;
    pcpu__pool_unlock();
    pcpu__reclaim_stop();
}

void pcpu__reclaim_forget(void)
{
    pthread_cond_init(&wake, NULL);
    running = stopping = pending = false;
}
