/* SPDX-License-Identifier: MIT */
/* test_rseq_neighbour.c - percpu beside another rseq library (librseq's registration protocol, tests/libs/pcpu_other_rseq.c), with glibc's registration on and off: both libraries' sequences exact on every thread. */
/*
 * The kernel takes one rseq area per thread.  With glibc registering (the
 * default), both libraries use glibc's.  With GLIBC_TUNABLES=
 * glibc.pthread.rseq=0 (or a glibc older than 2.35) the other library
 * owns registration, and percpu must use its area: threads the other
 * library registered first, threads whose first rseq user is percpu,
 * threads that unregister in the middle, and this program's PCPU_DEFINE
 * variable, whose constructor sets percpu up before main() without
 * registering anything.  Built twice: linked with the other library
 * (percpu finds it at start-up), and as _late, which dlopen()s it after
 * percpu has registered threads itself: the rule percpu.h documents.
 */
#include "clients_util.h"

#include <dlfcn.h>
#include <sys/wait.h>

#include "libs/pcpu_other_rseq.h"

PCPU_DEFINE(long, ctor_counted);

#define NR_THREADS 4

static inline bool rseq_in_use(void)
{
    struct pcpu_stats st;
    assert_int_equal(pcpu_stats_get(&st), 0);
    return st.rseq;
}

#ifndef NEIGHBOUR_LATE

struct shared {
    long *ctr;
    long counts[PCPU_MAX_CPUS];
    struct cu_mover mover;
    unsigned int per_thread;
};

struct worker {
    struct shared *s;
    unsigned int id;
    int reg, unreg, other_fail;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct shared *s = w->s;
    /* Even threads register with the other library first, odd ones make
     * a percpu operation first (percpu registers them, with the other
     * library's area when it owns registration). */
    if (w->id % 2 == 0)
        w->reg = rseq_register_current_thread();
    cu_mover_enrol(&s->mover, w->id);
    for (unsigned int i = 0; i < s->per_thread; i++) {
        pcpu_this_inc(s->ctr);
        pcpu_this_add(PCPU_VAR(ctor_counted), 1);
        if (other_rseq_inc(s->counts) != 0)
            w->other_fail++;
        /* Halfway, an even thread leaves the other library and comes
         * back through percpu's next operation. */
        if (w->id % 2 == 0 && i == s->per_thread / 2) {
            w->unreg = rseq_unregister_current_thread();
            pcpu_this_inc(s->ctr);
            pcpu_this_add(PCPU_VAR(ctor_counted), -1);
        }
    }
    cu_mover_leave(&s->mover, w->id);
    return NULL;
}

static void test_both_libraries_exact_on_every_thread(void **state)
{
    (void)state;
    /* The constructor of ctor_counted set percpu up before main(): the
     * other library can still register this thread. */
    assert_int_equal(other_rseq_owned(), !tu_glibc_rseq());
    assert_int_equal(rseq_register_current_thread(), 0);
    struct shared *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    s->ctr = PCPU_NEW(long);
    assert_non_null(s->ctr);
    s->per_thread = OPS_SCALE(2000000);
    for (unsigned int i = 0; i < 1000; i++) {
        pcpu_this_inc(s->ctr);
        assert_int_equal(other_rseq_inc(s->counts), 0);
    }
    cu_mover_start(&s->mover);
    struct worker w[NR_THREADS];
    pthread_t t[NR_THREADS];
    for (unsigned int i = 0; i < NR_THREADS; i++) {
        w[i] = (struct worker){.s = s, .id = i};
        assert_int_equal(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
    }
    for (unsigned int i = 0; i < NR_THREADS; i++)
        pthread_join(t[i], NULL);
    unsigned long moves = cu_mover_stop(&s->mover);
    long other = 0;
    for (unsigned int i = 0; i < PCPU_MAX_CPUS; i++)
        other += s->counts[i];
    long expect = 1000 + (long)NR_THREADS * s->per_thread;
    for (unsigned int i = 0; i < NR_THREADS; i++) {
        assert_int_equal(w[i].reg, 0);
        assert_int_equal(w[i].unreg, 0);
        assert_int_equal(w[i].other_fail, 0);
    }
    assert_int_equal(pcpu_sum(s->ctr), expect + NR_THREADS / 2);
    assert_int_equal(pcpu_sum(PCPU_VAR(ctor_counted)),
                     (long)NR_THREADS * s->per_thread - NR_THREADS / 2);
    assert_int_equal(other, expect);
    /* Neither had to give up its sequences. */
    assert_true(rseq_in_use());
    print_message("glibc %s, %lu migrations\n", tu_glibc_rseq() ? "registers" : "does not register",
                  moves);
    assert_int_equal(rseq_unregister_current_thread(), 0);
    pcpu_free(s->ctr);
    free(s);
}

/* A third library registers an area of its own on a thread, without any
 * protocol: percpu cannot use that thread's rseq, says so in one line and
 * goes on with atomics, exactly. */
struct foreign {
    long *ctr;
    unsigned int n;
};

static void *foreign_main(void *arg)
{
    struct foreign *f = arg;
    if (!tu_take_rseq())
        return (void *)1;
    for (unsigned int i = 0; i < f->n; i++)
        pcpu_this_inc(f->ctr);
    return NULL;
}

static void foreign_child(void *arg)
{
    (void)arg;
    struct foreign f = {.ctr = PCPU_NEW(long), .n = 10000};
    if (!f.ctr || !rseq_in_use())
        _exit(2);
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, foreign_main, &f);
    for (unsigned int i = 0; i < f.n; i++)
        pcpu_this_inc(f.ctr);
    void *r0, *r1;
    pthread_join(t[0], &r0);
    pthread_join(t[1], &r1);
    if (r0 || r1)
        _exit(3);
    if (pcpu_sum(f.ctr) != 3 * (long)f.n)
        _exit(4);
    if (rseq_in_use())
        _exit(5);
    /* tu_dies_with() wants a death with the message. */
    abort();
}

static void test_foreign_area_means_atomics_and_one_line(void **state)
{
    (void)state;
    if (tu_glibc_rseq()) {
        skip(); /* glibc's area is registered on every thread: no room for a third */
        return;
    }
    const char *need[] = {"another library registered a thread's rseq area", NULL};
    char out[4096];
    assert_true(tu_dies_with(foreign_child, NULL, need, out, sizeof(out)));
    /* One line, said once for the two threads. */
    const char *first = strstr(out, need[0]);
    assert_non_null(first);
    assert_null(strstr(first + 1, need[0]));
}

int main(void)
{
#if !PCPU__RSEQ_ASM
    return 0; /* the stand-in's sequence is x86_64 only */
#endif
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_both_libraries_exact_on_every_thread),
        cmocka_unit_test(test_foreign_area_means_atomics_and_one_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#else /* NEIGHBOUR_LATE */

static void *percpu_thread(void *arg)
{
    pcpu_this_inc((long *)arg);
    return NULL;
}

struct late {
    int (*reg)(void);
    pthread_barrier_t go;
    int result, err;
};

static void *late_register(void *arg)
{
    struct late *l = arg;
    pthread_barrier_wait(&l->go);
    pthread_barrier_wait(&l->go);
    l->result = l->reg();
    l->err = errno;
    return NULL;
}

/* The other library loaded after percpu has registered threads itself:
 * such a thread (and, glibc's doing, every thread it creates afterwards)
 * has glibc's area registered, so the other library's registration of it
 * fails (EINVAL), as percpu.h says ("load librseq at start-up"); a thread
 * percpu never touched registers fine. */
static void test_other_library_loaded_late(void **state)
{
    (void)state;
    struct late untouched = {0}, later = {0};
    pthread_t t1, t2;
    pthread_barrier_init(&untouched.go, NULL, 2);
    pthread_barrier_init(&later.go, NULL, 2);
    assert_int_equal(pthread_create(&t1, NULL, late_register, &untouched), 0);
    pthread_barrier_wait(&untouched.go); /* it exists before percpu's first use */

    long *ctr = PCPU_NEW(long);
    assert_non_null(ctr);
    pcpu_this_inc(ctr);
    void *h = dlopen(PCPU_OTHER_RSEQ_PATH, RTLD_NOW | RTLD_GLOBAL);
    assert_non_null(h);
    int (*reg)(void) = (int (*)(void))dlsym(h, "rseq_register_current_thread");
    assert_non_null(reg);
    untouched.reg = later.reg = reg;
    /* The failures first: once one thread registered, the other library
     * (like librseq) aborts on a failing registration. */
    int here = reg(), here_err = errno;
    assert_int_equal(pthread_create(&t2, NULL, late_register, &later), 0);
    pthread_barrier_wait(&later.go);
    pthread_barrier_wait(&later.go);
    pthread_join(t2, NULL);
    if (tu_glibc_rseq()) {
        assert_int_equal(later.result, 0);
        assert_int_equal(here, 0);
    } else {
        assert_int_equal(later.result, -1);
        assert_int_equal(later.err, EINVAL);
        assert_int_equal(here, -1);
        assert_int_equal(here_err, EINVAL);
    }
    pthread_barrier_wait(&untouched.go);
    pthread_join(t1, NULL);
    assert_int_equal(untouched.result, 0);
    /* percpu goes on, on every kind of thread. */
    pthread_t t3;
    assert_int_equal(pthread_create(&t3, NULL, percpu_thread, ctr), 0);
    pthread_join(t3, NULL);
    assert_int_equal(pcpu_sum(ctr), 2);
    pcpu_free(ctr);
    pthread_barrier_destroy(&untouched.go);
    pthread_barrier_destroy(&later.go);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_other_library_loaded_late),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#endif
