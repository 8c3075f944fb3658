/* SPDX-License-Identifier: MIT */
/* test_threads.c - concurrent allocation and free from several threads, objects freed by other threads, consistent totals. */
#include "testutil.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { NR_THREADS = 4, STEPS = TU_STEPS(20000, 4), RING = 256 };

/* A handoff ring per thread: others push objects for it to free. */
struct ring {
    pthread_mutex_t lock;
    void *obj[RING];
    uint32_t tag[RING];
    size_t size[RING];
    unsigned int n;
};

struct worker {
    int id, nr;
    uint64_t allocs, frees, handed, received;
    long *counter; /* shared per-CPU counter of operations */
    pthread_barrier_t *start;
};

static struct ring rings[NR_THREADS];

static unsigned char byte_of(uint32_t tag, size_t i)
{
    return (unsigned char)((tag * 31u + i) | 1);
}

static void fill(void *c, size_t size, uint32_t tag)
{
    unsigned char *p = pcpu_ptr(c, 0), *q = pcpu_ptr(c, pcpu_nr_cpus() - 1);
    for (size_t i = 0; i < size; i++)
        p[i] = q[i] = byte_of(tag, i);
}

static bool intact(void *c, size_t size, uint32_t tag)
{
    unsigned char *p = pcpu_ptr(c, 0), *q = pcpu_ptr(c, pcpu_nr_cpus() - 1);
    for (size_t i = 0; i < size; i++)
        if (p[i] != byte_of(tag, i) || q[i] != byte_of(tag, i))
            return false;
    return true;
}

static bool all_zero(void *c, size_t size)
{
    for (unsigned int cpu = 0; cpu < pcpu_nr_cpus(); cpu += (pcpu_nr_cpus() > 8 ? 7 : 1)) {
        unsigned char *p = pcpu_ptr(c, cpu);
        for (size_t i = 0; i < size; i++)
            if (p[i])
                return false;
    }
    return true;
}

static _Atomic int bad;
static _Atomic int finished;

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    uint64_t rng = 0x1234 + (uint64_t)w->id * 7919;
    enum { LOCAL = 64 };
    void *obj[LOCAL] = {0};
    size_t size[LOCAL] = {0};
    uint32_t tag[LOCAL] = {0};
    pthread_barrier_wait(w->start);
    for (int step = 0; step < STEPS; step++) {
        uint64_t r = tu_rand(&rng);
        unsigned int i = (unsigned int)(r % LOCAL);
        if (!obj[i]) {
            size_t s = (r >> 8) % 8 == 0 ? 1 + (r >> 16) % 3000 : 1 + (r >> 16) % 128;
            obj[i] = pcpu_alloc(s, 0);
            if (!obj[i] || !all_zero(obj[i], s)) {
                bad++;
                continue;
            }
            size[i] = s;
            tag[i] = (uint32_t)(w->id << 24 | step);
            fill(obj[i], s, tag[i]);
            w->allocs++;
        } else if ((r >> 40) % 3 == 0) {
            /* Hand it to another thread to free. */
            struct ring *rg = &rings[(w->id + 1 + (r >> 44) % (w->nr - 1)) % w->nr];
            pthread_mutex_lock(&rg->lock);
            if (rg->n < RING) {
                rg->obj[rg->n] = obj[i];
                rg->size[rg->n] = size[i];
                rg->tag[rg->n] = tag[i];
                rg->n++;
                obj[i] = NULL;
                w->handed++;
            }
            pthread_mutex_unlock(&rg->lock);
        } else {
            if (!intact(obj[i], size[i], tag[i]))
                bad++;
            pcpu_free(obj[i]);
            obj[i] = NULL;
            w->frees++;
        }
        pcpu_this_inc(w->counter);
        /* Free what others handed over. */
        if (step % 16 == 0) {
            struct ring *mine = &rings[w->id];
            pthread_mutex_lock(&mine->lock);
            for (unsigned int k = 0; k < mine->n; k++) {
                if (!intact(mine->obj[k], mine->size[k], mine->tag[k]))
                    bad++;
                pcpu_free(mine->obj[k]);
                w->frees++;
                w->received++;
            }
            mine->n = 0;
            pthread_mutex_unlock(&mine->lock);
        }
    }
    for (unsigned int i = 0; i < LOCAL; i++)
        if (obj[i]) {
            if (!intact(obj[i], size[i], tag[i]))
                bad++;
            pcpu_free(obj[i]);
            w->frees++;
        }
    atomic_fetch_add(&finished, 1);
    return NULL;
}

static void run_threads(int nr)
{
    pthread_t th[NR_THREADS];
    struct worker w[NR_THREADS];
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, (unsigned int)nr);
    long *counter = PCPU_NEW(long);
    assert_non_null(counter);
    for (int i = 0; i < NR_THREADS; i++) {
        pthread_mutex_init(&rings[i].lock, NULL);
        rings[i].n = 0;
    }
    struct pcpu_stats st0 = tu_stats();
    bad = 0;
    finished = 0;
    double t0 = tu_now();
    for (int i = 0; i < nr; i++) {
        w[i] = (struct worker){.id = i, .nr = nr, .counter = counter, .start = &start};
        assert_int_equal(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
    }
    /* Validate while they run: it must see no problem in the middle of
     * other threads' work (it takes the lock; caches change without it). */
    int validations = 0, problems = 0;
    while (atomic_load(&finished) < nr) {
        problems += pcpu_validate();
        validations++;
    }
    for (int i = 0; i < nr; i++)
        pthread_join(th[i], NULL);
    double t1 = tu_now();
    printf("# %d validations during the run\n", validations);
    assert_int_equal(problems, 0);
    /* Objects still in the rings: free them here (yet another thread). */
    uint64_t left = 0;
    for (int i = 0; i < nr; i++) {
        for (unsigned int k = 0; k < rings[i].n; k++) {
            assert_true(intact(rings[i].obj[k], rings[i].size[k], rings[i].tag[k]));
            pcpu_free(rings[i].obj[k]);
            left++;
        }
        rings[i].n = 0;
    }
    assert_int_equal(bad, 0);
    uint64_t allocs = 0, frees = 0, handed = 0, received = 0;
    for (int i = 0; i < nr; i++) {
        allocs += w[i].allocs;
        frees += w[i].frees;
        handed += w[i].handed;
        received += w[i].received;
    }
    assert_int_equal(handed, received + left);
    assert_int_equal(allocs, frees + left);
    /* Every thread's operations are in the sum. */
    assert_int_equal(pcpu_sum(counter), (long)nr * STEPS);
    pcpu_free(counter);
    struct pcpu_stats st = tu_stats();
    /* The counter was allocated before st0 and freed after. */
    assert_int_equal(st.nr_alloc - st0.nr_alloc, allocs);
    assert_int_equal(st.nr_dealloc - st0.nr_dealloc, allocs + 1);
    assert_int_equal(st.nr_cur_alloc, st0.nr_cur_alloc - 1);
    assert_true(st.nr_max_alloc >= st0.nr_cur_alloc);
    printf("# %d threads: %llu allocations, %llu handed to another thread, %.0f ns/op\n", nr,
           (unsigned long long)allocs, (unsigned long long)handed,
           (t1 - t0) * 1e9 / ((double)nr * STEPS));
    assert_valid();
    pthread_barrier_destroy(&start);
}

static void test_two_threads(void **state)
{
    (void)state;
    tu_reinit(NULL);
    run_threads(2);
    pcpu_reclaim(true);
    assert_int_equal(tu_stats().nr_chunks, 1);
}

static void test_four_threads(void **state)
{
    (void)state;
    tu_reinit(NULL);
    run_threads(4);
}

static void test_four_threads_256(void **state)
{
    (void)state;
    struct pcpu_config cfg = {.nr_cpus = 256, .unit_size = 256 * 1024};
    tu_reinit(&cfg);
    run_threads(4);
}

static void test_four_threads_no_cache(void **state)
{
    (void)state;
    struct pcpu_config cfg = {.flags = PCPU_F_NO_CACHE};
    tu_reinit(&cfg);
    run_threads(4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_threads),
        cmocka_unit_test(test_four_threads),
        cmocka_unit_test(test_four_threads_256),
        cmocka_unit_test(test_four_threads_no_cache),
    };
    return TU_RUN_THEN_EXIT(tests);
}
