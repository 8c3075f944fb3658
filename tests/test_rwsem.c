/* SPDX-License-Identifier: MIT */
/* test_rwsem.c - the per-CPU reader-writer semaphore: no torn reads, writers get in past a stream of readers, up_read on another thread, under migration. */
/*
 * The shared data is plain memory on purpose (so ThreadSanitizer builds
 * check the semaphore's ordering too).  Scenarios that would hang if the
 * semaphore starved a writer or lost a wake-up run in a forked child under
 * a watchdog (child.h), so that a hang fails the test instead of
 * stalling the run.  Runs in every mode (tests/CMakeLists.txt).
 */
#include "clients_util.h"

#define NWORDS 16

struct shared {
    struct pcpu_rwsem sem;
    uint64_t words[NWORDS]; /* all equal whenever no writer holds the sem */
    struct cu_mover mover;
    atomic_bool stop;
    atomic_long torn;
    atomic_ulong reads, writes;
};

static void test_basics(void **state)
{
    (void)state;
    struct pcpu_rwsem s;
    memset(&s, 0, sizeof(s));
    pcpu_rwsem_destroy(&s); /* zero-filled: nothing */
    assert_int_equal(pcpu_rwsem_init(&s), 0);
    assert_false(pcpu_rwsem_is_read_locked(&s));
    pcpu_rwsem_down_read(&s);
    assert_true(pcpu_rwsem_is_read_locked(&s));
    assert_true(pcpu_rwsem_down_read_trylock(&s));
    assert_false(pcpu_rwsem_down_write_trylock(&s));
    pcpu_rwsem_up_read(&s);
    pcpu_rwsem_up_read(&s);
    assert_false(pcpu_rwsem_is_read_locked(&s));
    assert_true(pcpu_rwsem_down_write_trylock(&s));
    assert_false(pcpu_rwsem_down_read_trylock(&s));
    assert_false(pcpu_rwsem_down_write_trylock(&s));
    pcpu_rwsem_up_write(&s);
    pcpu_rwsem_down_write(&s);
    pcpu_rwsem_up_write(&s);
    assert_true(pcpu_rwsem_down_read_trylock(&s));
    pcpu_rwsem_up_read(&s);
    pcpu_rwsem_destroy(&s);
}

/* ---- torn reads ------------------------------------------------------------------- */

static void *reader_main(void *arg)
{
    struct shared *sh = arg;
    static atomic_uint next;
    unsigned int id = atomic_fetch_add(&next, 1);
    cu_mover_enrol(&sh->mover, id);
    unsigned long n = 0;
    while (!atomic_load_explicit(&sh->stop, memory_order_relaxed)) {
        if (n % 8 == 7) {
            if (!pcpu_rwsem_down_read_trylock(&sh->sem))
                continue;
        } else {
            pcpu_rwsem_down_read(&sh->sem);
        }
        uint64_t first = sh->words[0];
        for (int i = 1; i < NWORDS; i++)
            if (sh->words[i] != first) {
                atomic_fetch_add(&sh->torn, 1);
                break;
            }
        pcpu_rwsem_up_read(&sh->sem);
        n++;
    }
    atomic_fetch_add(&sh->reads, n);
    cu_mover_leave(&sh->mover, id);
    return NULL;
}

static void *writer_main(void *arg)
{
    struct shared *sh = arg;
    static atomic_uint next;
    unsigned int id = 32 + atomic_fetch_add(&next, 1);
    cu_mover_enrol(&sh->mover, id);
    unsigned long n = 0;
    while (!atomic_load_explicit(&sh->stop, memory_order_relaxed)) {
        if (n % 4 == 3) {
            if (!pcpu_rwsem_down_write_trylock(&sh->sem))
                continue;
        } else {
            pcpu_rwsem_down_write(&sh->sem);
        }
        uint64_t v = sh->words[0] + 1;
        for (int i = 0; i < NWORDS; i++) {
            sh->words[i] = v;
            if (i == NWORDS / 2)
                sched_yield(); /* a long write: readers would see it half done */
        }
        pcpu_rwsem_up_write(&sh->sem);
        n++;
    }
    atomic_fetch_add(&sh->writes, n);
    cu_mover_leave(&sh->mover, id);
    return NULL;
}

static void torn_read_scenario(void *arg)
{
    (void)arg;
    ops_setup_mode();
    struct shared *sh = calloc(1, sizeof(*sh));
    if (!sh || pcpu_rwsem_init(&sh->sem) != 0)
        abort();
    cu_mover_start(&sh->mover);
    enum { R = 4, W = 2 };
    pthread_t r[R], w[W];
    for (int i = 0; i < R; i++)
        pthread_create(&r[i], NULL, reader_main, sh);
    for (int i = 0; i < W; i++)
        pthread_create(&w[i], NULL, writer_main, sh);
    usleep(OPS_SCALE(2000) * 1000u);
    atomic_store(&sh->stop, true);
    for (int i = 0; i < R; i++)
        pthread_join(r[i], NULL);
    for (int i = 0; i < W; i++)
        pthread_join(w[i], NULL);
    unsigned long moves = cu_mover_stop(&sh->mover);
    fprintf(stderr, "reads %lu writes %lu torn %ld migrations %lu\n", atomic_load(&sh->reads),
            atomic_load(&sh->writes), atomic_load(&sh->torn), moves);
    /* the writes all happened, one at a time */
    if (sh->words[0] != atomic_load(&sh->writes) || atomic_load(&sh->torn) != 0)
        _exit(3);
    /* both sides made progress: nobody was starved for two seconds */
    if (atomic_load(&sh->writes) == 0 || atomic_load(&sh->reads) == 0)
        _exit(4);
    if (pcpu_rwsem_is_read_locked(&sh->sem))
        _exit(5);
    pcpu_rwsem_destroy(&sh->sem);
    free(sh);
}

static void run_child(void (*fn)(void *), const char *what)
{
    struct child_result r;
    run_watched(fn, NULL, 60, &r);
    char how[128];
    print_message("%s: the child %s; %s", what, child_verdict(&r, how, sizeof(how)), r.out);
    if (r.hung || !WIFEXITED(r.status) || WEXITSTATUS(r.status) != 0)
        fail_msg("%s failed", what);
}

static void test_readers_never_see_a_write_half_done(void **state)
{
    (void)state;
    run_child(torn_read_scenario, "torn reads");
}

/* ---- writer starvation -------------------------------------------------------------- */

struct starve {
    struct pcpu_rwsem sem;
    atomic_long inside; /* readers between down_read and up_read */
    atomic_bool stop;
    atomic_ulong reads;
    struct cu_mover mover;
};

/* Readers in a tight loop, overlapping each other so that the sum of
 * their counts is never zero unless new readers are held off. */
static void *tight_reader_main(void *arg)
{
    struct starve *s = arg;
    static atomic_uint next;
    unsigned int id = atomic_fetch_add(&next, 1);
    cu_mover_enrol(&s->mover, id);
    unsigned long n = 0;
    while (!atomic_load_explicit(&s->stop, memory_order_relaxed)) {
        pcpu_rwsem_down_read(&s->sem);
        atomic_fetch_add(&s->inside, 1);
        /* a nested hold may only be tried (a waiting writer holds new
         * readers off: a blocking one would deadlock, as with any fair
         * rwlock) */
        if (pcpu_rwsem_down_read_trylock(&s->sem))
            pcpu_rwsem_up_read(&s->sem);
        for (volatile int i = 0; i < 50; i++)
            ;
        atomic_fetch_sub(&s->inside, 1);
        pcpu_rwsem_up_read(&s->sem);
        n++;
    }
    atomic_fetch_add(&s->reads, n);
    cu_mover_leave(&s->mover, id);
    return NULL;
}

static void starvation_scenario(void *arg)
{
    (void)arg;
    ops_setup_mode();
    struct starve *s = calloc(1, sizeof(*s));
    if (!s || pcpu_rwsem_init(&s->sem) != 0)
        abort();
    cu_mover_start(&s->mover);
    enum { R = 6 };
    pthread_t r[R];
    for (int i = 0; i < R; i++)
        pthread_create(&r[i], NULL, tight_reader_main, s);
    usleep(20000); /* the readers are streaming */
    /* The writer must get in, again and again: without a closed door it
     * would wait forever (the watchdog kills the child). */
    unsigned int n = OPS_SCALE(200);
    for (unsigned int i = 0; i < n; i++) {
        pcpu_rwsem_down_write(&s->sem);
        /* (not pcpu_rwsem_is_read_locked(): in the atomic fallback a
         * reader that finds the writer counts for a moment, then backs
         * off) */
        if (atomic_load(&s->inside) != 0)
            _exit(3); /* a reader inside with the writer */
        pcpu_rwsem_up_write(&s->sem);
    }
    atomic_store(&s->stop, true);
    for (int i = 0; i < R; i++)
        pthread_join(r[i], NULL);
    unsigned long moves = cu_mover_stop(&s->mover);
    fprintf(stderr, "%u writes through %lu reads, %lu migrations\n", n, atomic_load(&s->reads),
            moves);
    pcpu_rwsem_destroy(&s->sem);
    free(s);
}

static void test_writer_gets_in_past_streaming_readers(void **state)
{
    (void)state;
    run_child(starvation_scenario, "writer starvation");
}

/* ---- up_read on another thread --------------------------------------------------- */

struct handoff {
    struct pcpu_rwsem *sem;
    int fd[2]; /* tokens: one byte per read hold handed over */
    struct cu_mover *mover;
    unsigned int n;
};

static void *releaser_main(void *arg)
{
    struct handoff *h = arg;
    cu_mover_enrol(h->mover, 1);
    for (unsigned int i = 0; i < h->n; i++) {
        char c;
        if (read(h->fd[0], &c, 1) != 1)
            break;
        pcpu_rwsem_up_read(h->sem);
    }
    cu_mover_leave(h->mover, 1);
    return NULL;
}

static void handoff_scenario(void *arg)
{
    (void)arg;
    ops_setup_mode();
    static struct pcpu_rwsem sem;
    static struct cu_mover mover;
    if (pcpu_rwsem_init(&sem) != 0)
        abort();
    struct handoff h = {.sem = &sem, .mover = &mover, .n = OPS_SCALE(20000)};
    if (pipe(h.fd) != 0)
        abort();
    cu_mover_start(&mover);
    cu_mover_enrol(&mover, 0);
    pthread_t t;
    pthread_create(&t, NULL, releaser_main, &h);
    for (unsigned int i = 0; i < h.n; i++) {
        pcpu_rwsem_down_read(&sem);
        if (write(h.fd[1], "x", 1) != 1)
            abort();
        if (i % 1000 == 999) {
            /* a writer in the middle: it waits for the holds the other
             * thread has not released yet, and gets in once it has */
            pcpu_rwsem_down_write(&sem);
            if (pcpu_rwsem_is_read_locked(&sem))
                _exit(3);
            pcpu_rwsem_up_write(&sem);
        }
    }
    pthread_join(t, NULL);
    cu_mover_leave(&mover, 0);
    cu_mover_stop(&mover);
    if (pcpu_rwsem_is_read_locked(&sem))
        _exit(4);
    if (!pcpu_rwsem_down_write_trylock(&sem))
        _exit(5);
    pcpu_rwsem_up_write(&sem);
    pcpu_rwsem_destroy(&sem);
}

static void test_up_read_on_another_thread(void **state)
{
    (void)state;
    run_child(handoff_scenario, "up_read on another thread");
}

/* ---- ENOMEM -------------------------------------------------------------------------- */

static void test_init_enomem(void **state)
{
    (void)state;
    struct cu_exhausted e = cu_exhaust();
    uint64_t before = tu_stats().nr_cur_alloc;
    struct pcpu_rwsem s, zero;
    memset(&s, 0, sizeof(s));
    memset(&zero, 0, sizeof(zero));
    errno = 0;
    assert_int_equal(pcpu_rwsem_init(&s), -1);
    assert_int_equal(errno, ENOMEM);
    assert_memory_equal(&s, &zero, sizeof(s));
    assert_int_equal(tu_stats().nr_cur_alloc, before);
    cu_unexhaust(&e);
}

int main(void)
{
    if (ops_cannot_run())
        return 0;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basics),
        cmocka_unit_test(test_readers_never_see_a_write_half_done),
        cmocka_unit_test(test_writer_gets_in_past_streaming_readers),
        cmocka_unit_test(test_up_read_on_another_thread),
        cmocka_unit_test(test_init_enomem),
    };
    return cmocka_run_group_tests(tests, ops_group_setup, ops_group_teardown);
}
