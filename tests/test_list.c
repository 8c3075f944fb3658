/* SPDX-License-Identifier: MIT */
/* test_list.c - per-CPU lists: LIFO per unit, pcpu_list_pop_all() takes a unit's list whole, and with 200 threads popping, touching and pushing back nodes (sched_yield between) next to a thread taking random units' lists whole, every node ends up in exactly one list: none lost, none held twice. */
#undef NDEBUG /* the header's check of node alignment is part of what is tested */
#include "ops_util.h"

#include <stdatomic.h>
#include <stdint.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

/*
 * Runs in the mode the environment gives (the variants in
 * tests/CMakeLists.txt: rseq by CPU id, CID mode, the library's own rseq
 * registration, and the atomic fallback with PCPU_TEST_ATOMIC=1).  The stress test is librseq's basic_percpu_ops
 * test with a pcpu_list_pop_all() thread added: each node has an owner
 * word that a thread claims with an atomic exchange when it pops the node
 * and gives back before pushing it, so a node handed to two threads at
 * once is seen at once, and a census at the end finds every node once.
 */

struct item {
    struct pcpu_list_node node; /* first: a node pointer is an item pointer */
    _Atomic int owner;          /* 0 while on a list, else the holder       */
    unsigned long touched;      /* pops by workers                          */
    unsigned int id;
};

static struct item *item_of(struct pcpu_list_node *n)
{
    return (struct item *)n;
}

/* Take every unit's list; count each node; all must be seen exactly once,
 * unowned.  Returns the number of nodes found. */
static unsigned int census(struct pcpu_list *l, struct item *items, unsigned int n,
                           unsigned long *touched)
{
    unsigned char *seen = calloc(n, 1);
    unsigned int found = 0;
    unsigned long t = 0;
    assert_non_null(seen);
    pcpu_for_each_cpu(cpu) {
        for (struct pcpu_list_node *x = pcpu_list_pop_all(l, cpu); x; x = x->next) {
            struct item *it = item_of(x);
            assert_true(it >= items && it < items + n);
            if (found == n)
                fail_msg("more nodes on the lists than exist (a cycle?)");
            if (seen[it->id]++)
                fail_msg("node %u is on the lists twice", it->id);
            assert_int_equal(atomic_load(&it->owner), 0);
            t += it->touched;
            found++;
        }
        assert_null(pcpu_list_pop_all(l, cpu));
    }
    for (unsigned int i = 0; i < n; i++)
        if (!seen[i])
            fail_msg("node %u is lost (on no list)", i);
    free(seen);
    if (touched)
        *touched = t;
    return found;
}

static struct item *new_items(unsigned int n)
{
    struct item *items = calloc(n, sizeof(*items));
    assert_non_null(items);
    for (unsigned int i = 0; i < n; i++)
        items[i].id = i;
    return items;
}

/* ---- single thread ------------------------------------------------------- */

static void test_empty_list_pops_null(void **state)
{
    (void)state;
    struct pcpu_list *l = PCPU_NEW(struct pcpu_list);
    assert_non_null(l);
    assert_null(pcpu_this_list_pop(l));
    pcpu_for_each_cpu(cpu) assert_null(pcpu_list_pop_all(l, cpu));
    assert_null(pcpu_this_list_pop(l));
    pcpu_free(l);
}

/* On one unit the list is a stack: nodes come back in reverse order, then
 * NULL. */
static void test_push_pop_is_lifo_on_one_unit(void **state)
{
    (void)state;
    enum { N = 100 };
    struct pcpu_list *l = PCPU_NEW(struct pcpu_list);
    struct item *items = new_items(N);
    assert_non_null(l);
    (void)ops_pin_here();
    for (int attempt = 0;; attempt++) {
        int before = pcpu_this_cpu();
        bool ok = true;
        for (unsigned int i = 0; i < N; i++)
            pcpu_this_list_push(l, &items[i].node);
        for (int i = N - 1; i >= 0 && ok; i--) {
            struct pcpu_list_node *x = pcpu_this_list_pop(l);
            ok = x == &items[i].node;
        }
        ok = ok && pcpu_this_list_pop(l) == NULL;
        if (ok)
            break;
        /* only a unit that changed under us (CID mode) explains it */
        if ((pcpu_this_cpu() == before && !ops_unit_may_move()) || attempt > 50)
            fail_msg("not LIFO on unit %d", before);
        /* gather every node back before the next attempt */
        pcpu_for_each_cpu(cpu) (void)pcpu_list_pop_all(l, cpu);
    }
    ops_unpin();
    pcpu_free(l);
    free(items);
}

/* Nodes pushed on each CPU this process can use are all found by taking
 * every unit's list; a taken unit is empty afterwards. */
static void test_pop_all_takes_every_units_list(void **state)
{
    (void)state;
    enum { PER_CPU = 50 };
    cpu_set_t set;
    CPU_ZERO(&set);
    assert_int_equal(sched_getaffinity(0, sizeof(set), &set), 0);
    unsigned int ncpu = (unsigned int)CPU_COUNT(&set);
    struct pcpu_list *l = PCPU_NEW(struct pcpu_list);
    struct item *items = new_items(ncpu * PER_CPU);
    assert_non_null(l);
    unsigned int k = 0;
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
        if (!CPU_ISSET(cpu, &set))
            continue;
        ops_pin_self(cpu);
        for (int i = 0; i < PER_CPU; i++, k++)
            pcpu_this_list_push(l, &items[k].node);
    }
    ops_unpin();
    /* a unit's chain is NULL-terminated and holds only our nodes */
    assert_int_equal(census(l, items, k, NULL), k);
    pcpu_for_each_cpu(cpu) assert_null(pcpu_list_pop_all(l, cpu));
    pcpu_free(l);
    free(items);
}

/* pop_all of a static per-CPU list works like one from PCPU_NEW. */
PCPU_DEFINE(struct pcpu_list, static_list);

static void test_static_list(void **state)
{
    (void)state;
    struct item *items = new_items(10);
    for (int i = 0; i < 10; i++)
        pcpu_this_list_push(PCPU_VAR(static_list), &items[i].node);
    assert_non_null(pcpu_this_list_pop(PCPU_VAR(static_list)));
    unsigned int n = 0;
    pcpu_for_each_cpu(cpu)
        for (struct pcpu_list_node *x = pcpu_list_pop_all(PCPU_VAR(static_list), cpu); x;
             x = x->next)
            n++;
    assert_int_equal(n, 9);
    free(items);
}

static void pop_all_out_of_range(void *arg)
{
    (void)arg;
    struct pcpu_list *l = PCPU_NEW(struct pcpu_list);
    (void)pcpu_list_pop_all(l, pcpu_nr_cpus());
}

static void test_pop_all_out_of_range_stops(void **state)
{
    (void)state;
    const char *need[] = {"pcpu_list_pop_all", "out of range", NULL};
    assert_true(tu_dies_with(pop_all_out_of_range, NULL, need, NULL, 0));
}

static void push_misaligned(void *arg)
{
    (void)arg;
    struct pcpu_list *l = PCPU_NEW(struct pcpu_list);
    static char buf[64] __attribute__((aligned(16)));
    pcpu_this_list_push(l, (struct pcpu_list_node *)(void *)(buf + 2));
}

static void test_misaligned_node_stops(void **state)
{
    (void)state;
    const char *need[] = {"not aligned", NULL};
    assert_true(tu_dies_with(push_misaligned, NULL, need, NULL, 0));
}

/* ---- pop_all against a pop in flight ----------------------------------------- */

/*
 * A pop that is slow between loading the head and committing its next:
 * the node's page was dropped (MADV_DONTNEED) after the push, so loading
 * its next takes a page fault, which does not restart the sequence.  A
 * thread on another CPU takes that unit's list at the same time.  Without
 * the fence and the restart of sequences in flight, both would get the
 * node (the pop commits after the exchange).  Every round ends with the
 * node in exactly one hand.
 */
struct inflight {
    struct pcpu_list *list;
    struct pcpu_list_node *node;
    char *page;
    size_t page_size;
    int cpu_pop, cpu_take;
    _Atomic unsigned int unit;
    _Atomic long armed;   /* round the popper is in                    */
    _Atomic long taken;   /* last round the taker is done with         */
    _Atomic int taker_got; /* the taker got the node in this round      */
    long rounds;
    unsigned long both, none, by_pop, by_take;
};

static void *inflight_taker(void *p)
{
    struct inflight *f = p;
    uint64_t seed = 17;
    ops_pin_self(f->cpu_take);
    for (long r = 1; r <= f->rounds; r++) {
        while (atomic_load(&f->armed) < r)
            ;
        unsigned int u = atomic_load(&f->unit);
        /* a varying head start for the pop, so that the take often lands
         * while the pop waits for its page */
        for (unsigned int k = (unsigned int)(tu_rand(&seed) % 2048); k; k--)
            __asm__ __volatile__("" ::: "memory");
        /* take until the popper has finished this round */
        bool got = false;
        while (atomic_load(&f->armed) == r) {
            if (pcpu_list_pop_all(f->list, u)) {
                got = true;
                break;
            }
        }
        if (!got && pcpu_list_pop_all(f->list, u))
            got = true;
        atomic_store(&f->taker_got, got);
        atomic_store(&f->taken, r);
    }
    return NULL;
}

static void test_pop_all_meets_pop_in_flight(void **state)
{
    (void)state;
    struct inflight f;
    memset(&f, 0, sizeof(f));
    if (!ops_two_cpus(&f.cpu_pop, &f.cpu_take))
        skip();
    f.list = PCPU_NEW(struct pcpu_list);
    assert_non_null(f.list);
    f.page_size = (size_t)sysconf(_SC_PAGESIZE);
    f.page = mmap(NULL, f.page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                  -1, 0);
    assert_true(f.page != MAP_FAILED);
    f.node = (struct pcpu_list_node *)(void *)f.page;
    f.rounds = OPS_SCALE(20000);
    ops_pin_self(f.cpu_pop);
    atomic_store(&f.unit, (unsigned int)pcpu_this_cpu());
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, inflight_taker, &f), 0);
    for (long r = 1; r <= f.rounds; r++) {
        atomic_store(&f.unit, (unsigned int)pcpu_this_cpu());
        pcpu_this_list_push(f.list, f.node);
        /* the node's next (NULL) now reads through a page fault */
        assert_int_equal(madvise(f.page, f.page_size, MADV_DONTNEED), 0);
        atomic_store(&f.armed, r);
        struct pcpu_list_node *got = pcpu_this_list_pop(f.list);
        atomic_store(&f.armed, r + 1);
        while (atomic_load(&f.taken) < r)
            ;
        bool taker = atomic_load(&f.taker_got);
        if (got && taker)
            f.both++;
        else if (!got && !taker) {
            /* a unit change in CID mode can leave it elsewhere: gather */
            bool found = false;
            pcpu_for_each_cpu(cpu) found |= pcpu_list_pop_all(f.list, cpu) != NULL;
            if (!found)
                f.none++;
        } else if (got)
            f.by_pop++;
        else
            f.by_take++;
    }
    assert_int_equal(pthread_join(t, NULL), 0);
    ops_unpin();
    print_message("%ld rounds: the pop got the node %lu times, pop_all %lu times; both %lu, "
                  "neither %lu\n",
                  f.rounds, f.by_pop, f.by_take, f.both, f.none);
    assert_int_equal(f.both, 0);
    assert_int_equal(f.none, 0);
    munmap(f.page, f.page_size);
    pcpu_free(f.list);
}

/* ---- the stress ----------------------------------------------------------- */

struct stress {
    struct pcpu_list *list;
    struct item *items;
    unsigned int nr_items;
    long reps;
    _Atomic int workers_left;
    _Atomic unsigned long dup;      /* a node held by two threads at once */
    _Atomic unsigned long pops;     /* successful worker pops            */
    _Atomic unsigned long empties;
    unsigned long pop_alls, moved;  /* the pop_all thread's figures      */
    bool too_long;                  /* a taken chain longer than nr_items */
};

static void claim(struct stress *s, struct item *it, int me)
{
    int prev = atomic_exchange(&it->owner, me);
    if (prev != 0)
        atomic_fetch_add(&s->dup, 1);
}

static void release(struct stress *s, struct item *it, int me)
{
    int prev = atomic_exchange(&it->owner, 0);
    if (prev != me)
        atomic_fetch_add(&s->dup, 1);
}

struct worker_arg {
    struct stress *s;
    int id;
};

static void *worker_main(void *p)
{
    struct worker_arg *a = p;
    struct stress *s = a->s;
    unsigned long pops = 0, empties = 0, empty_run = 0;
    unsigned int seed = (unsigned int)a->id;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    for (long i = 0; i < s->reps; i++) {
        struct pcpu_list_node *n = pcpu_this_list_pop(s->list);
        if (!n) {
            empties++;
            /* The pop_all thread gathers the nodes on its own CPU's unit;
             * a worker the scheduler keeps elsewhere would find its unit
             * empty for the whole run.  Move it, as a migration would. */
            if (++empty_run == 16) {
                empty_run = 0;
                (void)ops_move_randomly(0, &seed, ncpu);
            }
            sched_yield();
            continue;
        }
        empty_run = 0;
        struct item *it = item_of(n);
        claim(s, it, a->id);
        it->touched++;
        sched_yield(); /* encourage migration and interleaving */
        release(s, it, a->id);
        pcpu_this_list_push(s->list, n);
        pops++;
    }
    atomic_fetch_add(&s->pops, pops);
    atomic_fetch_add(&s->empties, empties);
    atomic_fetch_sub(&s->workers_left, 1);
    return NULL;
}

/* Takes a random unit's list whole and pushes the nodes back (on its own
 * unit), every few tens of microseconds until the workers are done. */
static void *pop_all_main(void *p)
{
    struct stress *s = p;
    uint64_t seed = 99;
    unsigned int n = pcpu_nr_cpus();
    while (atomic_load(&s->workers_left) > 0) {
        unsigned int u = (unsigned int)(tu_rand(&seed) % n);
        struct pcpu_list_node *x = pcpu_list_pop_all(s->list, u);
        s->pop_alls++;
        for (unsigned int k = 0; x; k++) {
            if (k == s->nr_items) {
                /* a cycle: nodes were linked twice; stop, and fail */
                s->too_long = true;
                atomic_store(&s->workers_left, 0);
                return NULL;
            }
            struct pcpu_list_node *next = x->next;
            struct item *it = item_of(x);
            claim(s, it, -1);
            release(s, it, -1);
            pcpu_this_list_push(s->list, x);
            s->moved++;
            x = next;
        }
        /* often enough to meet every kind of interleaving, not so often
         * that re-pushing whole lists is all the machine does */
        struct timespec ts = {0, 20 * 1000};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

static void run_stress(unsigned int nr_workers, long reps, unsigned int nr_items,
                       bool with_pop_all)
{
    struct stress s;
    memset(&s, 0, sizeof(s));
    s.list = PCPU_NEW(struct pcpu_list);
    s.items = new_items(nr_items);
    s.nr_items = nr_items;
    s.reps = reps;
    assert_non_null(s.list);
    for (unsigned int i = 0; i < nr_items; i++)
        pcpu_this_list_push(s.list, &s.items[i].node);
    atomic_store(&s.workers_left, (int)nr_workers);
    pthread_t *t = calloc(nr_workers, sizeof(*t));
    struct worker_arg *args = calloc(nr_workers, sizeof(*args));
    assert_non_null(t);
    assert_non_null(args);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    double t0 = tu_now();
    for (unsigned int i = 0; i < nr_workers; i++) {
        args[i] = (struct worker_arg){&s, (int)i + 1};
        assert_int_equal(pthread_create(&t[i], &attr, worker_main, &args[i]), 0);
    }
    pthread_t pa;
    if (with_pop_all)
        assert_int_equal(pthread_create(&pa, NULL, pop_all_main, &s), 0);
    for (unsigned int i = 0; i < nr_workers; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
    if (with_pop_all)
        assert_int_equal(pthread_join(pa, NULL), 0);
    pthread_attr_destroy(&attr);
    if (s.too_long)
        fail_msg("pcpu_list_pop_all() returned a chain longer than the number of nodes "
                 "(%u): a node was linked twice", nr_items);
    unsigned long touched = 0;
    unsigned int found = census(s.list, s.items, nr_items, &touched);
    print_message("%s: %u threads x %ld: %lu pops, %lu found empty, %lu pop_alls moved %lu "
                  "nodes, %.1f s\n",
                  ops_mode_name(), nr_workers, reps, (unsigned long)atomic_load(&s.pops),
                  (unsigned long)atomic_load(&s.empties), s.pop_alls, s.moved,
                  tu_now() - t0);
    assert_int_equal(atomic_load(&s.dup), 0);
    assert_int_equal(found, nr_items);
    assert_int_equal(touched, atomic_load(&s.pops));
    assert_true(atomic_load(&s.pops) > 0);
    free(t);
    free(args);
    free(s.items);
    pcpu_free(s.list);
}

/*
 * librseq's basic_percpu_ops test: 200 threads, each popping, touching and
 * pushing back a node with sched_yield() in between.  librseq does 100,000
 * rounds per thread; on a 2-CPU machine the 20 million sched_yield() calls
 * alone take over a minute, so the default is 8,000 rounds (1.6 million
 * pops per variant, ten variants in the suite), fewer threads and rounds
 * in sanitizer builds, and PCPU_TEST_LIST_REPS=100000 runs librseq's
 * count.
 */
static void test_200_threads_pop_touch_push_with_pop_all(void **state)
{
    (void)state;
    const char *env = getenv("PCPU_TEST_LIST_REPS");
    long reps = env ? atol(env) : 0;
#ifdef TU_SLOW_BUILD
    run_stress(50, reps > 0 ? reps : 5000, 1000, true);
#else
    run_stress(200, reps > 0 ? reps : 8000, 1000, true);
#endif
}

/* Fewer nodes than threads: units are often empty and a node changes
 * hands all the time. */
static void test_scarce_nodes(void **state)
{
    (void)state;
    run_stress(16, OPS_SCALE(40000), 8, true);
}

/*
 * The switch from rseq to atomics while lists are in use (only when the
 * library registers rseq itself, without glibc's registration): a thread
 * whose rseq area is taken by someone else makes the whole process switch;
 * pcpu_list_pop_all() calls of the rseq protocol may still be fencing
 * units then.
 */
static void *foreign_main(void *arg)
{
    struct pcpu_list *l = arg;
    if (!tu_take_rseq())
        return (void *)1;
    for (int i = 0; i < 10000; i++) {
        struct pcpu_list_node *n = pcpu_this_list_pop(l);
        if (n)
            pcpu_this_list_push(l, n);
    }
    tu_give_back_rseq();
    return NULL;
}

struct switch_arg {
    struct stress *s;
    pthread_t foreign;
    void *ret;
};

static void *switcher_main(void *p)
{
    struct switch_arg *a = p;
    struct timespec ts = {0, 200 * 1000 * 1000};
    nanosleep(&ts, NULL);
    assert_int_equal(pthread_create(&a->foreign, NULL, foreign_main, a->s->list), 0);
    pthread_join(a->foreign, &a->ret);
    return NULL;
}

static void test_switch_to_atomics_keeps_every_node(void **state)
{
    (void)state;
    if (tu_glibc_rseq())
        skip(); /* glibc registered every thread: nothing can take it */
    if (ops_want_atomic())
        skip(); /* atomic from the start */
    ops_setup(false); /* a fresh start in rseq mode */
    if (!tu_stats().rseq)
        skip(); /* no rseq here at all */
    /* The stress with a thread that forces the switch 200 ms in. */
    struct stress s;
    memset(&s, 0, sizeof(s));
    enum { W = 8, N = 64 };
    s.list = PCPU_NEW(struct pcpu_list);
    s.items = new_items(N);
    s.nr_items = N;
    s.reps = OPS_SCALE(200000);
    assert_non_null(s.list);
    for (unsigned int i = 0; i < N; i++)
        pcpu_this_list_push(s.list, &s.items[i].node);
    atomic_store(&s.workers_left, W);
    pthread_t t[W], pa, sw;
    struct worker_arg args[W];
    for (int i = 0; i < W; i++) {
        args[i] = (struct worker_arg){&s, i + 1};
        assert_int_equal(pthread_create(&t[i], NULL, worker_main, &args[i]), 0);
    }
    assert_int_equal(pthread_create(&pa, NULL, pop_all_main, &s), 0);
    struct switch_arg sa = {&s, 0, NULL};
    assert_int_equal(pthread_create(&sw, NULL, switcher_main, &sa), 0);
    for (int i = 0; i < W; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
    assert_int_equal(pthread_join(pa, NULL), 0);
    assert_int_equal(pthread_join(sw, NULL), 0);
    assert_false(s.too_long);
    bool switched = !tu_stats().rseq;
    unsigned long touched = 0;
    unsigned int found = census(s.list, s.items, N, &touched);
    print_message("switch to atomics %s; %lu pops, %lu pop_alls\n",
                  switched ? "done" : "NOT done", (unsigned long)atomic_load(&s.pops),
                  s.pop_alls);
    assert_int_equal(atomic_load(&s.dup), 0);
    assert_int_equal(found, N);
    assert_int_equal(touched, atomic_load(&s.pops));
    free(s.items);
    pcpu_free(s.list);
    if (sa.ret == NULL)
        assert_true(switched);
    /* back to the mode under test for whatever follows */
    ops_setup_mode();
}

int main(void)
{
    if (ops_cannot_run())
        return 0;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_list_pops_null),
        cmocka_unit_test(test_push_pop_is_lifo_on_one_unit),
        cmocka_unit_test(test_pop_all_takes_every_units_list),
        cmocka_unit_test(test_static_list),
        cmocka_unit_test(test_pop_all_out_of_range_stops),
        cmocka_unit_test(test_misaligned_node_stops),
        cmocka_unit_test(test_pop_all_meets_pop_in_flight),
        cmocka_unit_test(test_200_threads_pop_touch_push_with_pop_all),
        cmocka_unit_test(test_scarce_nodes),
        cmocka_unit_test(test_switch_to_atomics_keeps_every_node),
    };
    return cmocka_run_group_tests(tests, ops_group_setup, ops_group_teardown);
}
