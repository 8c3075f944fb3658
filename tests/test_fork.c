/* SPDX-License-Identifier: MIT */
/* test_fork.c - objects freed by other threads while reclaim runs, and fork() while threads allocate. */
/*
 * Cross-thread: a producer allocates objects of mixed sizes and writes a
 * pattern into every unit, a consumer checks and frees them, and a third
 * thread calls pcpu_reclaim() in a loop; at the end everything balances
 * (nr_cur_alloc 0) and pcpu_validate() finds nothing.
 *
 * Fork: worker threads allocate, write and free without pause while the
 * main thread forks.  In each child only the forking thread exists: the
 * atfork handlers must leave the allocator usable (the lock, the other
 * threads' caches, the reclaim worker), so the child checks that the data
 * it inherited is intact, that pcpu_validate() == 0, and that it can
 * allocate (zeroed memory), write, free and reclaim.
 */
#include "testutil.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#ifdef TU_TSAN
#define SCALE 8 /* TSan is ~10x slower */
#else
#define SCALE 1
#endif

static unsigned int nr_units;

static void fill(unsigned char *p, size_t size, unsigned int tag)
{
    for (unsigned int u = 0; u < nr_units; u++)
        memset(pcpu_ptr(p, u), (int)((tag + u) | 1) & 0xff, size);
}

static int check(const unsigned char *p, size_t size, unsigned int tag)
{
    for (unsigned int u = 0; u < nr_units; u++) {
        const unsigned char *q = pcpu_ptr(p, u);
        unsigned char want = (unsigned char)((tag + u) | 1);
        for (size_t b = 0; b < size; b++)
            if (q[b] != want)
                return -1;
    }
    return 0;
}

static int zero(const unsigned char *p, size_t size)
{
    for (unsigned int u = 0; u < nr_units; u++) {
        const unsigned char *q = pcpu_ptr(p, u);
        for (size_t b = 0; b < size; b++)
            if (q[b])
                return -1;
    }
    return 0;
}

static size_t size_of(unsigned int i)
{
    static const size_t sizes[] = {4, 8, 16, 24, 32, 64, 128, 256, 512, 2048, 8, 8};
    return sizes[i % (sizeof(sizes) / sizeof(sizes[0]))];
}

/* ---- producer / consumer / reclaimer -------------------------------------- */

#define RING 1024
struct item {
    unsigned char *p;
    unsigned int tag;
};
static struct item ring[RING];
static unsigned int head, tail; /* under ring_lock */
static pthread_mutex_t ring_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ring_cond = PTHREAD_COND_INITIALIZER;
static atomic_bool stop_reclaim;
static atomic_uint bad;
#define NR_ITEMS (200000u / SCALE)

static void *producer(void *arg)
{
    (void)arg;
    for (unsigned int i = 0; i < NR_ITEMS; i++) {
        unsigned char *p = pcpu_alloc(size_of(i), 0);
        if (!p || zero(p, size_of(i)) != 0) {
            atomic_fetch_add(&bad, 1);
            continue;
        }
        fill(p, size_of(i), i);
        pthread_mutex_lock(&ring_lock);
        while (head - tail == RING)
            pthread_cond_wait(&ring_cond, &ring_lock);
        ring[head % RING] = (struct item){p, i};
        head++;
        pthread_cond_broadcast(&ring_cond);
        pthread_mutex_unlock(&ring_lock);
    }
    pthread_mutex_lock(&ring_lock);
    /* The end mark needs a free slot like any item (written into a full
     * ring it took the place of the oldest item, never freed). */
    while (head - tail == RING)
        pthread_cond_wait(&ring_cond, &ring_lock);
    ring[head % RING] = (struct item){NULL, 0};
    head++;
    pthread_cond_broadcast(&ring_cond);
    pthread_mutex_unlock(&ring_lock);
    return NULL;
}

static void *consumer(void *arg)
{
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&ring_lock);
        while (head == tail)
            pthread_cond_wait(&ring_cond, &ring_lock);
        struct item it = ring[tail % RING];
        tail++;
        pthread_cond_broadcast(&ring_cond);
        pthread_mutex_unlock(&ring_lock);
        if (!it.p)
            return NULL;
        if (check(it.p, size_of(it.tag), it.tag) != 0)
            atomic_fetch_add(&bad, 1);
        pcpu_free(it.p);
    }
}

static void *reclaimer(void *arg)
{
    (void)arg;
    unsigned int i = 0;
    while (!atomic_load(&stop_reclaim)) {
        (void)pcpu_reclaim(++i % 8 == 0);
        usleep(100);
    }
    return NULL;
}

static void test_cross_thread_free(void **state)
{
    (void)state;
    tu_reinit(NULL);
    nr_units = pcpu_nr_cpus();
    if (nr_units > 16)
        nr_units = 16; /* enough units to see cross-talk, fewer bytes to write */
    pthread_t a, b, r;
    head = tail = 0;
    atomic_store(&bad, 0);
    atomic_store(&stop_reclaim, false);
    assert_int_equal(pthread_create(&r, NULL, reclaimer, NULL), 0);
    assert_int_equal(pthread_create(&b, NULL, consumer, NULL), 0);
    assert_int_equal(pthread_create(&a, NULL, producer, NULL), 0);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    atomic_store(&stop_reclaim, true);
    pthread_join(r, NULL);
    assert_int_equal(atomic_load(&bad), 0);
    assert_valid();
    struct pcpu_stats st;
    assert_int_equal(pcpu_stats_get(&st), 0);
    assert_int_equal(st.nr_cur_alloc, 0);
    assert_int_equal(st.nr_alloc, NR_ITEMS);
    (void)pcpu_reclaim(true);
    assert_valid();
}

/* ---- fork while other threads allocate -------------------------------- */

#define NR_WORKERS 3
#define KEEP 64
static atomic_bool stop_workers;

static void *worker(void *arg)
{
    unsigned int id = (unsigned int)(uintptr_t)arg;
    unsigned char *held[KEEP] = {0};
    uint64_t rng = id + 1;
    while (!atomic_load(&stop_workers)) {
        unsigned int k = (unsigned int)(tu_rand(&rng) % KEEP);
        size_t size = size_of(k);
        if (held[k]) {
            if (check(held[k], size, k + id * KEEP) != 0)
                atomic_fetch_add(&bad, 1);
            pcpu_free(held[k]);
            held[k] = NULL;
        } else {
            held[k] = pcpu_alloc(size, 0);
            if (!held[k]) {
                atomic_fetch_add(&bad, 1);
                continue;
            }
            fill(held[k], size, k + id * KEEP);
        }
    }
    for (unsigned int k = 0; k < KEEP; k++)
        pcpu_free(held[k]);
    return NULL;
}

/* The child: exit code 0 if all is well, else what broke. */
static int child(unsigned char **mine, unsigned int n)
{
    for (unsigned int i = 0; i < n; i++)
        if (check(mine[i], size_of(i), 1000 + i) != 0)
            return 1;
    if (pcpu_validate() != 0)
        return 2;
    unsigned char *p[200];
    for (unsigned int i = 0; i < 200; i++) {
        p[i] = pcpu_alloc(size_of(i), 0);
        if (!p[i] || zero(p[i], size_of(i)) != 0)
            return 3;
        fill(p[i], size_of(i), 5000 + i);
    }
    for (unsigned int i = 0; i < 200; i++) {
        if (check(p[i], size_of(i), 5000 + i) != 0)
            return 4;
        pcpu_free(p[i]);
    }
    for (unsigned int i = 0; i < n; i += 2)
        pcpu_free(mine[i]);
    (void)pcpu_reclaim(true);
    if (pcpu_validate() != 0)
        return 5;
    for (unsigned int i = 1; i < n; i += 2)
        if (check(mine[i], size_of(i), 1000 + i) != 0)
            return 6;
    return 0;
}

static void test_fork_while_allocating(void **state)
{
    (void)state;
    struct pcpu_config cfg = {0};
#ifdef TU_TSAN
    /* TSan does not support a child that starts threads after a
     * multi-threaded fork, and a free may start the reclaim worker. */
    cfg.flags = PCPU_F_NO_RECLAIM;
#endif
    tu_reinit(&cfg);
    nr_units = pcpu_nr_cpus();
    if (nr_units > 16)
        nr_units = 16;
    unsigned char *mine[100];
    for (unsigned int i = 0; i < 100; i++) {
        mine[i] = pcpu_alloc(size_of(i), 0);
        assert_non_null(mine[i]);
        fill(mine[i], size_of(i), 1000 + i);
    }
    atomic_store(&bad, 0);
    atomic_store(&stop_workers, false);
    pthread_t w[NR_WORKERS];
    for (uintptr_t i = 0; i < NR_WORKERS; i++)
        assert_int_equal(pthread_create(&w[i], NULL, worker, (void *)i), 0);
    unsigned int forks = 40 / SCALE;
    for (unsigned int f = 0; f < forks; f++) {
        usleep(2000);
        fflush(NULL);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0)
            _exit(child(mine, 100));
        int status = 0;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            fail_msg("fork %u: child %s %d", f, WIFEXITED(status) ? "exit code" : "signal",
                     WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
    }
    atomic_store(&stop_workers, true);
    for (unsigned int i = 0; i < NR_WORKERS; i++)
        pthread_join(w[i], NULL);
    assert_int_equal(atomic_load(&bad), 0);
    for (unsigned int i = 0; i < 100; i++) {
        assert_int_equal(check(mine[i], size_of(i), 1000 + i), 0);
        pcpu_free(mine[i]);
    }
    assert_valid();
    print_message("fork: %u children checked\n", forks);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cross_thread_free),
        cmocka_unit_test(test_fork_while_allocating),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
