/* SPDX-License-Identifier: MIT */
/*
 * test_index_switch.c - re-initialising with the other index mode keeps
 * every this-CPU update.
 *
 * The sequences read the index word (cpu_id or mm_cid) from a place that
 * is const to the compiler, so code may hold it in a register across
 * pcpu_exit() and pcpu_init().  A re-initialisation that picks the other
 * mode after sequences ran must therefore not let a thread index units by
 * the old word: two threads on different CPUs would share a unit without
 * knowing it and lose updates.  The promise (header, enum pcpu_index):
 * such a configuration runs its this-CPU operations as atomics, and a
 * configuration with the first mode again uses rseq.  Here the thread that
 * switches the configuration also increments, in the same function, while
 * a second thread increments on another CPU; every increment must count.
 */
#include "testutil.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

enum { PER_THREAD = 300000 };

static void pin_to(unsigned int i)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) != 0)
        return;
    unsigned int n = 0;
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &set) && n++ == i % (unsigned int)CPU_COUNT(&set)) {
            CPU_ZERO(&set);
            CPU_SET(c, &set);
            sched_setaffinity(0, sizeof(set), &set);
            return;
        }
}

static void *incrementer(void *arg)
{
    long *c = arg;
    pin_to(1);
    for (int i = 0; i < PER_THREAD; i++)
        pcpu_this_inc(c);
    return NULL;
}

static void init_mode(enum pcpu_index index)
{
    struct pcpu_config cfg = {.index = index};
    pcpu_exit();
    if (pcpu_init(&cfg) != 0)
        fail_msg("pcpu_init(index %d): %s", (int)index, strerror(errno));
}

static void test_switching_index_mode_loses_no_update(void **state)
{
    (void)state;
    pin_to(0);
    static const enum pcpu_index order[] = {PCPU_INDEX_CPU, PCPU_INDEX_CID, PCPU_INDEX_CPU,
                                            PCPU_INDEX_CID, PCPU_INDEX_CID, PCPU_INDEX_CPU};
    bool first_rseq = false;
    enum pcpu_index first_index = PCPU_INDEX_CPU;
    for (size_t round = 0; round < sizeof(order) / sizeof(order[0]); round++) {
        init_mode(order[round]);
        long *c = PCPU_NEW(long);
        assert_non_null(c);
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, incrementer, c), 0);
        for (int i = 0; i < PER_THREAD; i++)
            pcpu_this_inc(c);
        assert_int_equal(pthread_join(t, NULL), 0);
        long sum = pcpu_sum(c);
        if (sum != 2L * PER_THREAD)
            fail_msg("round %zu (index %s): sum %ld, expected %ld", round,
                     order[round] == PCPU_INDEX_CID ? "cid" : "cpu", sum, 2L * PER_THREAD);

        struct pcpu_stats st = tu_stats();
        if (round == 0) {
            first_rseq = st.rseq;
            first_index = st.index;
        } else if (first_rseq) {
            /* rseq only in the mode the sequences were fixed to */
            if (st.index == first_index)
                assert_true(st.rseq);
            else
                assert_false(st.rseq);
        }
        pcpu_free(c);
        assert_valid();
    }
}

/* A pcpu_init() before the first operation may pick either mode and keep
 * rseq: nothing can have read the old place yet. */
/* Run this program afresh with --fresh MODE; its line: "rseq index". */
static void run_fresh(const char *mode, int *rseq, int *index)
{
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    assert_true(n > 0);
    self[n] = 0;
    char cmd[4200];
    snprintf(cmd, sizeof(cmd), "'%s' --fresh %s", self, mode);
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    int got = fscanf(f, "%d %d", rseq, index);
    int status = pclose(f);
    if (got != 2 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("fresh process with index %s failed (status 0x%x)", mode, status);
}

static void test_mode_picked_before_first_use_keeps_rseq(void **state)
{
    (void)state;
    int rseq_cpu, index_cpu, rseq_cid, index_cid;
    run_fresh("cpu", &rseq_cpu, &index_cpu);
    run_fresh("cid", &rseq_cid, &index_cid);
    assert_int_equal(index_cpu, PCPU_INDEX_CPU);
    /* whichever the environment fixed first, either mode picked before
     * the first operation runs on rseq where the other does */
    assert_int_equal(rseq_cid, rseq_cpu);
}

/* The fresh process: first thing, pcpu_init() with the mode asked for,
 * some operations, and the figures on stdout. */
static int fresh_main(const char *mode)
{
    enum pcpu_index want = strcmp(mode, "cid") == 0 ? PCPU_INDEX_CID : PCPU_INDEX_CPU;
    struct pcpu_config cfg = {.index = want};
    if (pcpu_init(&cfg) != 0) {
        perror("pcpu_init");
        return 1;
    }
    long *c = PCPU_NEW(long);
    if (!c)
        return 1;
    for (int i = 0; i < 1000; i++)
        pcpu_this_inc(c);
    if (pcpu_sum(c) != 1000) {
        fprintf(stderr, "sum %ld, expected 1000\n", pcpu_sum(c));
        return 1;
    }
    struct pcpu_stats st;
    pcpu_stats_get(&st);
    printf("%d %d\n", st.rseq ? 1 : 0, (int)st.index);
    pcpu_free(c);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--fresh") == 0)
        return fresh_main(argv[2]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_switching_index_mode_loses_no_update),
        cmocka_unit_test(test_mode_picked_before_first_use_keeps_rseq),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
