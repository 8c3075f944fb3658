/*
 * reclaim.c - giving empty memory back, in the background.
 *
 * Frees leave populated pages with nothing on them and, eventually, chunks
 * with nothing in them.  Keeping a few is worth it (the next allocation
 * needs no system call), keeping them all is not.  Like the kernel's
 * balance work, a worker thread wakes when the number of empty populated
 * pages passes a high watermark or a chunk becomes empty, waits a moment
 * so that a burst of frees is handled at once, then depopulates empty
 * pages down to a low watermark (from the end of the last chunks first,
 * to keep populated pages near the start) and destroys empty chunks but
 * one.
 *
 * The worker is started on the first kick, so programs that never free
 * never get a thread; PCPU_F_NO_RECLAIM turns it off (pcpu_reclaim() then
 * does the same work on demand).
 */
#include "internal.h"

#include <errno.h>
#include <signal.h>
#include <time.h>

#define RECLAIM_DELAY_MS 100

static pthread_t worker;
static bool running, pending, stopping;
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
    pcpu__lock();
    while (!stopping) {
        while (!pending && !stopping)
            pthread_cond_wait(&wake, &pcpu__g.lock);
        if (stopping)
            break;
        struct timespec ts;
        deadline(&ts, RECLAIM_DELAY_MS);
        while (!stopping && pthread_cond_timedwait(&wake, &pcpu__g.lock, &ts) != ETIMEDOUT)
            ;
        if (stopping)
            break;
        pending = false;
        pcpu__reclaim_locked(false);
    }
    pcpu__unlock();
    return NULL;
}

void pcpu__reclaim_kick_locked(void)
{
    if (pcpu__g.cfg.flags & PCPU_F_NO_RECLAIM)
        return;
    if (pending)
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
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

void pcpu__reclaim_stop(void)
{
    pcpu__lock();
    if (!running) {
        pending = false;
        pcpu__unlock();
        return;
    }
    stopping = true;
    pthread_cond_broadcast(&wake);
    pcpu__unlock();
    pthread_join(worker, NULL);
    pcpu__lock();
    running = stopping = pending = false;
    pcpu__unlock();
}

void pcpu__reclaim_forget(void)
{
    pthread_cond_init(&wake, NULL);
    running = stopping = pending = false;
}

/* Depopulate empty populated pages of c, from its end, while above target. */
static size_t depopulate_chunk(struct pcpu_chunk *c, size_t target)
{
    size_t freed = 0;
    size_t p = c->nr_pages;
    while (p > 0 && pcpu__g.nr_empty_pop > target && c->nr_empty_pop > 0) {
        p--;
        if (!pcpu__test_bit(c->populated, p) || !pcpu__chunk_page_empty(c, p))
            continue;
        size_t end = p + 1;
        size_t room = pcpu__g.nr_empty_pop - target;
        while (p > 0 && end - p < room && pcpu__test_bit(c->populated, p - 1) &&
               pcpu__chunk_page_empty(c, p - 1))
            p--;
        pcpu__g.ops->depopulate(c, p, end - p);
        pcpu__g.nr_depopulate++;
        for (size_t q = p; q < end; q++)
            pcpu__chunk_set_populated(c, q, false);
        freed += end - p;
    }
    return freed;
}

size_t pcpu__reclaim_locked(bool all)
{
    size_t freed = 0;
    /* Keep one empty chunk for the next burst, unless the first chunk
     * (never destroyed) is empty itself and already is that spare. */
    struct pcpu_chunk *first = pcpu__g.first;
    bool keep_spare = !all && !(first && pcpu__chunk_is_empty(first));
    struct pcpu_chunk *c, *next;
    for (c = pcpu__g.oldest; c; c = next) {
        next = c->list_next;
        if (c == first || !pcpu__chunk_is_empty(c))
            continue;
        if (keep_spare) {
            keep_spare = false;
            continue;
        }
        freed += c->nr_populated;
        pcpu__destroy_chunk_locked(c);
    }
    size_t target = all ? 0 : PCPU_EMPTY_POP_LOW;
    /* Newer chunks first: populated pages should gather at the front. */
    for (c = pcpu__g.newest; c && pcpu__g.nr_empty_pop > target; c = c->list_prev)
        freed += depopulate_chunk(c, target);
    return freed;
}

static size_t reclaim_impl(bool all)
{
    if (pcpu__ensure_init() != 0)
        return 0;
    pcpu__lock();
    if (all && pcpu__my_tcache) {
        pcpu__tcache_flush_locked(pcpu__my_tcache);
    }
    size_t n = pcpu__reclaim_locked(all);
    pcpu__unlock();
    return n;
}

size_t pcpu_reclaim(bool all)
{
    pcpu__enter("pcpu_reclaim");
    size_t r = reclaim_impl(all);
    pcpu__leave();
    return r;
}
