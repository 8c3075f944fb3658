/* SPDX-License-Identifier: MIT */
/* test_modules_dlclose.c - dlclose() of a module that ran this-CPU operations is safe for every thread, running or sleeping (rseq and atomic mode, with and without PCPU_DEFINE, after a commit or after a sequence's early exit). */
#include "child.h"
#include "libs/pcpu_oplib.h"

#include <dlfcn.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdbool.h>
#include <time.h>

/*
 * Why this can break: a this-CPU operation compiled into a module arms the
 * thread's rseq area with the address of a descriptor in that module's
 * __rseq_cs section, and the kernel reads that descriptor the next time the
 * thread returns to user space after a preemption, migration, signal or
 * sleep.  If the module has been unmapped by then, the read faults and the
 * kernel kills the thread with SIGSEGV.  So every scenario runs the
 * module's operations last (nothing in the program re-arms the area with a
 * descriptor of its own before the dlclose()), unloads the module, and then
 * makes the threads that ran them sleep and yield many times; each runs in
 * a forked child that must exit with status 0.
 *
 * The parent (cmocka's process) never touches the allocator, so that the
 * atomic-mode children can still call pcpu_init().
 */

#define ROUNDS 2000      /* rounds of updates per call in the single-shot scenarios */
#define CYCLES 50        /* dlopen/run/dlclose cycles                              */
#define CYCLE_ROUNDS 200 /* rounds per thread and cycle                            */
#define CYCLE_WORKERS 2  /* threads besides the main thread in each cycle          */

struct scenario {
    bool statics; /* the module with PCPU_DEFINE variables (else without)      */
    bool atomic;  /* units shared (nr_cpus = 1): this-CPU ops use atomics      */
    int block;    /* how the sleeping thread waits across the dlclose()        */
    int leave;    /* enum oplib_exit: the module's last operation's way out    */
};

enum { BLOCK_CONDVAR, BLOCK_PIPE, BLOCK_NANOSLEEP };

struct oplib {
    void *h;
    const char *path;
    bool statics;
    oplib_run_fn run;
    oplib_leave_fn leave;
    int (*check_initial)(unsigned int);
    long (*sum_int)(void);
    long (*sum_long)(void);
    long (*sum_zero)(void);
    int (*check_written)(void);
};

static void *sym(void *h, const char *name)
{
    void *p = dlsym(h, name);
    child_check(p != NULL, "dlsym(%s): %s", name, dlerror());
    return p;
}

static void oplib_open(struct oplib *m, bool statics)
{
    memset(m, 0, sizeof(*m));
    m->statics = statics;
    m->path = statics ? PCPU_OPLIB_PATH : PCPU_OPLIB_NOVAR_PATH;
    m->h = dlopen(m->path, RTLD_NOW | RTLD_LOCAL);
    child_check(m->h != NULL, "dlopen(%s): %s", m->path, dlerror());
    m->run = (oplib_run_fn)sym(m->h, "pcpu_oplib_run");
    m->leave = (oplib_leave_fn)sym(m->h, "pcpu_oplib_leave");
    if (!statics)
        return;
    m->check_initial = (int (*)(unsigned int))sym(m->h, "pcpu_oplib_check_initial");
    m->sum_int = (long (*)(void))sym(m->h, "pcpu_oplib_sum_int");
    m->sum_long = (long (*)(void))sym(m->h, "pcpu_oplib_sum_long");
    m->sum_zero = (long (*)(void))sym(m->h, "pcpu_oplib_sum_zero");
    m->check_written = (int (*)(void))sym(m->h, "pcpu_oplib_check_written");
    pcpu_for_each_cpu(cpu)
    {
        int r = m->check_initial(cpu);
        child_check(r == 0, "unit %u: module variable %d not at its initial value after dlopen",
                    cpu, r);
    }
}

/*
 * Unload.  On the code these tests were written against the module is
 * really unmapped here (checked with RTLD_NOLOAD).  A library that keeps
 * such modules mapped instead (RTLD_NODELETE) keeps its promise too, so
 * that is only reported, not failed; the scenarios then prove less.
 */
static void oplib_close(struct oplib *m)
{
    child_check(dlclose(m->h) == 0, "dlclose: %s", dlerror());
    m->h = NULL;
    void *again = dlopen(m->path, RTLD_NOW | RTLD_NOLOAD);
    if (again) {
        static bool told;
        if (!told)
            fprintf(stderr, "note: %s stays loaded after dlclose()\n", m->path);
        told = true;
        dlclose(again);
    }
}

/* The module's own variables after @rounds rounds in total since it was
 * loaded (by any threads, all finished). */
static void oplib_check_statics(const struct oplib *m, long rounds)
{
    if (!m->statics)
        return;
    long units = (long)pcpu_nr_cpus();
    long v = m->sum_int();
    child_check(v == OPLIB_INT_INIT * units + OPLIB_NET * rounds, "module int sum %ld, want %ld", v,
                OPLIB_INT_INIT * units + OPLIB_NET * rounds);
    v = m->sum_long();
    child_check(v == OPLIB_LONG_INIT * units + OPLIB_NET * rounds, "module long sum %ld, want %ld",
                v, OPLIB_LONG_INIT * units + OPLIB_NET * rounds);
    v = m->sum_zero();
    child_check(v == OPLIB_NET * rounds, "module zero-initialised sum %ld, want %ld", v,
                OPLIB_NET * rounds);
    child_check(m->check_written() == 0, "module's pcpu_this_write() not seen in exactly the "
                                         "units written");
}

static struct oplib_cookies cookies_new(void)
{
    struct oplib_cookies ck = {PCPU_NEW(int), PCPU_NEW(long), PCPU_NEW(int), PCPU_NEW(long)};
    child_check(ck.i && ck.l && ck.wi && ck.wl, "pcpu_alloc: %s", strerror(errno));
    return ck;
}

/* The program's cookies after @rounds rounds in total: the module's
 * updates are there, through cookies the program still holds. */
static void cookies_check(const struct oplib_cookies *ck, long rounds, const char *when)
{
    int si = pcpu_sum(ck->i);
    long sl = pcpu_sum(ck->l);
    child_check(si == (int)(OPLIB_NET * rounds), "%s: int cookie sum %d, want %ld", when, si,
                OPLIB_NET * rounds);
    child_check(sl == OPLIB_NET * rounds, "%s: long cookie sum %ld, want %ld", when, sl,
                OPLIB_NET * rounds);
    bool seen_i = false, seen_l = false;
    pcpu_for_each_cpu(cpu)
    {
        int wi = *PCPU_PTR(ck->wi, cpu);
        long wl = *PCPU_PTR(ck->wl, cpu);
        child_check(wi == 0 || wi == OPLIB_WRITTEN, "%s: unit %u of the written int is %d", when,
                    cpu, wi);
        child_check(wl == 0 || wl == OPLIB_WRITTEN, "%s: unit %u of the written long is %ld",
                    when, cpu, wl);
        seen_i |= wi == OPLIB_WRITTEN;
        seen_l |= wl == OPLIB_WRITTEN;
    }
    child_check(seen_i && seen_l, "%s: pcpu_this_write() landed in no unit", when);
}

/*
 * The objects of pcpu_oplib_leave(), in the state its early exits need:
 * the reference in atomic mode, the semaphore held by a writer (the
 * calling thread; objs_done() lets go), the cell and the list empty.
 */
static struct oplib_objs objs_new(void)
{
    static struct pcpu_ref ref;
    static struct pcpu_rwsem rwsem;
    static struct pcpu_counter counter;
    struct oplib_objs o = {&ref, &rwsem, &counter, PCPU_NEW(long), NULL};
    o.list = PCPU_NEW(struct pcpu_list);
    child_check(o.cell && o.list, "allocation: %s", strerror(errno));
    child_check(pcpu_ref_init(&ref, NULL, PCPU_REF_INIT_ATOMIC) == 0, "pcpu_ref_init: %s",
                strerror(errno));
    child_check(pcpu_rwsem_init(&rwsem) == 0, "pcpu_rwsem_init: %s", strerror(errno));
    child_check(pcpu_counter_init(&counter, 0) == 0, "pcpu_counter_init: %s", strerror(errno));
    pcpu_rwsem_down_write(&rwsem);
    return o;
}

/* After the module is gone: every early exit had its effect (@leaves
 * calls of pcpu_oplib_leave() with @how). */
static void objs_done(const struct oplib_objs *o, int how, long leaves)
{
    pcpu_rwsem_up_write(o->rwsem);
    if (how == OPLIB_EXIT_REF_ATOMIC) {
        for (long i = 0; i < leaves; i++)
            pcpu_ref_put(o->ref);
    }
    child_check(!pcpu_ref_is_zero(o->ref), "the reference lost its initial count");
    int64_t want = how == OPLIB_EXIT_COUNTER_FOLD ? 10 * leaves : 0;
    child_check(pcpu_counter_sum(o->counter) == want, "counter %lld, want %lld",
                (long long)pcpu_counter_sum(o->counter), (long long)want);
    child_check(pcpu_sum(o->cell) == 0, "a failing cmpxchg wrote");
}

/*
 * Before anything else in the child.  Atomic mode: fewer units than CPUs.
 * @quiet: no background reclaim thread.  The unload of a module with
 * PCPU_DEFINE frees its space, which starts or wakes that thread; when it
 * runs on the main thread's CPU it preempts the main thread before the
 * module is unmapped, and coming back to user space then disarms the
 * area: the main-thread scenarios would only fail now and then before the
 * fix.  (Threads that sleep across the unload do not depend on it.)
 */
static void scenario_setup(const struct scenario *s, bool quiet)
{
    if (!s->atomic && !quiet)
        return;
    struct pcpu_config cfg = child_env_config();
    if (s->atomic)
        cfg.nr_cpus = 1;
    if (quiet)
        cfg.flags |= PCPU_F_NO_RECLAIM;
    child_check(pcpu_init(&cfg) == 0, "pcpu_init: %s", strerror(errno));
    struct pcpu_stats st;
    child_check(pcpu_stats_get(&st) == 0, "pcpu_stats_get: %s", strerror(errno));
    child_check(!s->atomic || !st.rseq, "one unit for every CPU, yet this-CPU operations use rseq");
}

/* a) The main thread runs the module's operations, unloads it, then is
 * preempted and sleeps many times. */
static void main_thread_child(void *arg)
{
    const struct scenario *s = arg;
    scenario_setup(s, true);
    struct oplib_cookies ck = cookies_new();
    struct oplib_objs o = objs_new();
    struct oplib m;
    oplib_open(&m, s->statics);
    m.run(&ck, ROUNDS);
    oplib_check_statics(&m, ROUNDS);
    cookies_check(&ck, ROUNDS, "before dlclose");
    /* One more round right before the unload: the checks above took a
     * while, and a preemption in between would have disarmed the area. */
    m.run(&ck, 1);
    int left = m.leave(&o, s->leave);
    oplib_close(&m);
    child_rest(200);
    child_check(left == 0, "the module's last operation (way out %d) went wrong", s->leave);
    cookies_check(&ck, ROUNDS + 1, "after dlclose");
    objs_done(&o, s->leave, 1);
}

/*
 * Wait until thread @tid is asleep in the kernel (state S in
 * /proc/self/task/<tid>/stat) without waking it: being woken or preempted
 * before the unload would disarm its area while the module is still
 * there, and the scenario would prove nothing.
 */
static void wait_until_asleep(pid_t tid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)tid);
    for (;;) {
        FILE *f = fopen(path, "r");
        child_check(f != NULL, "%s: %s", path, strerror(errno));
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = 0;
        const char *p = strrchr(buf, ')');
        child_check(p && p[1] == ' ', "cannot parse %s", path);
        if (p[2] == 'S')
            return;
        usleep(200);
    }
}

/* b) A second thread runs the module's operations and then waits, in the
 * way the scenario says, across the unload; it wakes and goes on. */
struct sleeper {
    const struct scenario *s;
    struct oplib *m;
    struct oplib_cookies *ck;
    struct oplib_objs *o;
    int left;
    pthread_mutex_t mtx;
    pthread_cond_t cv;
    bool closed;
    bool ran;
    pid_t tid;
    int pipefd[2];
};

static void *sleeper_thread(void *arg)
{
    struct sleeper *sl = arg;
    pthread_mutex_lock(&sl->mtx);
    __atomic_store_n(&sl->tid, gettid(), __ATOMIC_RELAXED);
    sl->m->run(sl->ck, ROUNDS);
    sl->left = sl->m->leave(sl->o, sl->s->leave);
    /* No system call between the module's last operation and the wait:
     * waking the main thread here could let it preempt this one, and
     * coming back to user space would disarm the area while the module is
     * still loaded.  The main thread polls instead. */
    __atomic_store_n(&sl->ran, true, __ATOMIC_RELEASE);
    switch (sl->s->block) {
    case BLOCK_CONDVAR:
        while (!sl->closed)
            pthread_cond_wait(&sl->cv, &sl->mtx);
        pthread_mutex_unlock(&sl->mtx);
        break;
    case BLOCK_PIPE: {
        pthread_mutex_unlock(&sl->mtx);
        char c;
        ssize_t r;
        while ((r = read(sl->pipefd[0], &c, 1)) < 0 && errno == EINTR)
            ;
        child_check(r == 1, "read: %s", strerror(errno));
        break;
    }
    case BLOCK_NANOSLEEP: {
        pthread_mutex_unlock(&sl->mtx);
        /* Long enough for the unload to happen meanwhile (if it takes
         * longer, the scenario proves less, but it cannot fail wrongly). */
        struct timespec ts = {0, 300 * 1000 * 1000};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
        break;
    }
    }
    child_rest(200);
    return NULL;
}

static void sleeper_child(void *arg)
{
    const struct scenario *s = arg;
    scenario_setup(s, false);
    struct oplib_cookies ck = cookies_new();
    struct oplib_objs o = objs_new();
    struct oplib m;
    oplib_open(&m, s->statics);
    struct sleeper sl = {.s = s, .m = &m, .ck = &ck, .o = &o};
    pthread_mutex_init(&sl.mtx, NULL);
    pthread_cond_init(&sl.cv, NULL);
    child_check(pipe(sl.pipefd) == 0, "pipe: %s", strerror(errno));
    pthread_t t;
    child_check(pthread_create(&t, NULL, sleeper_thread, &sl) == 0, "pthread_create");
    while (!__atomic_load_n(&sl.ran, __ATOMIC_ACQUIRE))
        usleep(200);
    wait_until_asleep(__atomic_load_n(&sl.tid, __ATOMIC_RELAXED));
    oplib_check_statics(&m, ROUNDS);
    oplib_close(&m);
    switch (s->block) {
    case BLOCK_CONDVAR:
        pthread_mutex_lock(&sl.mtx);
        sl.closed = true;
        pthread_cond_broadcast(&sl.cv);
        pthread_mutex_unlock(&sl.mtx);
        break;
    case BLOCK_PIPE:
        child_check(write(sl.pipefd[1], "x", 1) == 1, "write: %s", strerror(errno));
        break;
    }
    child_rest(200);
    child_check(pthread_join(t, NULL) == 0, "pthread_join");
    child_check(sl.left == 0, "the module's last operation (way out %d) went wrong", s->leave);
    cookies_check(&ck, ROUNDS, "after the sleeper woke");
    objs_done(&o, s->leave, 1);
}

/* c) Load, let the main thread and two workers run the module's
 * operations, unload while the workers are blocked, wake them, repeat. */
struct cycler {
    struct oplib_cookies *ck;
    oplib_run_fn run;
    bool stop;
    pid_t tid[CYCLE_WORKERS];
    int done; /* runs of the module's operations finished, all cycles */
    sem_t go, closed, rested;
};

static void sem_wait_all(sem_t *s)
{
    while (sem_wait(s) != 0)
        ;
}

struct cycle_worker_arg {
    struct cycler *c;
    int i;
};

static void *cycle_worker(void *arg)
{
    struct cycler *c = ((struct cycle_worker_arg *)arg)->c;
    __atomic_store_n(&c->tid[((struct cycle_worker_arg *)arg)->i], gettid(), __ATOMIC_RELEASE);
    for (;;) {
        sem_wait_all(&c->go);
        if (c->stop)
            break;
        c->run(c->ck, CYCLE_ROUNDS);
        /* As in sleeper_thread(): no wake-up of the main thread between
         * the last operation and a wait that lasts across the unload. */
        __atomic_add_fetch(&c->done, 1, __ATOMIC_RELEASE);
        sem_wait_all(&c->closed);
        child_rest(5);
        sem_post(&c->rested);
    }
    return NULL;
}

static void cycles_child(void *arg)
{
    const struct scenario *s = arg;
    scenario_setup(s, false);
    struct oplib_cookies ck = cookies_new();
    struct cycler c = {.ck = &ck};
    sem_init(&c.go, 0, 0);
    sem_init(&c.closed, 0, 0);
    sem_init(&c.rested, 0, 0);
    pthread_t t[CYCLE_WORKERS];
    struct cycle_worker_arg wa[CYCLE_WORKERS];
    for (int i = 0; i < CYCLE_WORKERS; i++) {
        wa[i] = (struct cycle_worker_arg){&c, i};
        child_check(pthread_create(&t[i], NULL, cycle_worker, &wa[i]) == 0, "pthread_create");
    }
    for (int cycle = 0; cycle < CYCLES; cycle++) {
        struct oplib m;
        oplib_open(&m, s->statics);
        c.run = m.run;
        for (int i = 0; i < CYCLE_WORKERS; i++)
            sem_post(&c.go);
        m.run(&ck, CYCLE_ROUNDS);
        while (__atomic_load_n(&c.done, __ATOMIC_ACQUIRE) != (cycle + 1) * CYCLE_WORKERS)
            usleep(200);
        for (int i = 0; i < CYCLE_WORKERS; i++)
            wait_until_asleep(__atomic_load_n(&c.tid[i], __ATOMIC_ACQUIRE));
        oplib_check_statics(&m, (long)(CYCLE_WORKERS + 1) * CYCLE_ROUNDS);
        m.run(&ck, 1);
        oplib_close(&m);
        for (int i = 0; i < CYCLE_WORKERS; i++)
            sem_post(&c.closed);
        child_rest(5);
        for (int i = 0; i < CYCLE_WORKERS; i++)
            sem_wait_all(&c.rested);
    }
    c.stop = true;
    for (int i = 0; i < CYCLE_WORKERS; i++)
        sem_post(&c.go);
    for (int i = 0; i < CYCLE_WORKERS; i++)
        child_check(pthread_join(t[i], NULL) == 0, "pthread_join");
    child_rest(200);
    cookies_check(&ck, (long)CYCLES * ((CYCLE_WORKERS + 1) * CYCLE_ROUNDS + 1), "after the cycles");
}

#define SCENARIO_TEST(name, fn, ...)                                            \
    static void name(void **state)                                              \
    {                                                                           \
        (void)state;                                                            \
        static const struct scenario s = {__VA_ARGS__};                         \
        run_in_child(#name, fn, (void *)&s);                                    \
    }

/* Promise 1 with rseq (where available) and a module with PCPU_DEFINE. */
SCENARIO_TEST(test_dlclose_after_ops_main_thread_lives_on, main_thread_child, .statics = true)
SCENARIO_TEST(test_dlclose_while_thread_waits_on_condvar_it_lives_on, sleeper_child,
              .statics = true, .block = BLOCK_CONDVAR)
SCENARIO_TEST(test_dlclose_while_thread_blocks_in_read_it_lives_on, sleeper_child,
              .statics = true, .block = BLOCK_PIPE)
SCENARIO_TEST(test_dlclose_while_thread_in_nanosleep_it_lives_on, sleeper_child, .statics = true,
              .block = BLOCK_NANOSLEEP)
SCENARIO_TEST(test_dlclose_cycles_with_threads_running_ops_all_live_on, cycles_child,
              .statics = true)
/* The same in atomic mode: the sequence arms the area before it finds it
 * must take the atomic path. */
SCENARIO_TEST(test_dlclose_atomic_mode_main_thread_lives_on, main_thread_child, .statics = true,
              .atomic = true)
SCENARIO_TEST(test_dlclose_atomic_mode_sleeping_thread_lives_on, sleeper_child, .statics = true,
              .atomic = true, .block = BLOCK_CONDVAR)
SCENARIO_TEST(test_dlclose_atomic_mode_cycles_all_live_on, cycles_child, .statics = true,
              .atomic = true)
/* A module with no PCPU_DEFINE that only updates the program's cookies. */
SCENARIO_TEST(test_dlclose_module_without_statics_main_thread_lives_on, main_thread_child,
              .statics = false)
SCENARIO_TEST(test_dlclose_module_without_statics_sleeping_thread_lives_on, sleeper_child,
              .statics = false, .block = BLOCK_CONDVAR)
SCENARIO_TEST(test_dlclose_module_without_statics_cycles_all_live_on, cycles_child,
              .statics = false)
SCENARIO_TEST(test_dlclose_module_without_statics_atomic_mode_lives_on, main_thread_child,
              .statics = false, .atomic = true)
/* The module's last operation left its sequence early (see enum
 * oplib_exit), on the main thread and on a thread asleep across the
 * unload, with rseq (where available) and in atomic mode. */
#define EXIT_TESTS(tag, how)                                                        \
    SCENARIO_TEST(test_dlclose_after_##tag##_main_thread_lives_on, main_thread_child,   \
                  .statics = false, .leave = how)                                   \
    SCENARIO_TEST(test_dlclose_after_##tag##_sleeping_thread_lives_on, sleeper_child,   \
                  .statics = false, .block = BLOCK_CONDVAR, .leave = how)           \
    SCENARIO_TEST(test_dlclose_after_##tag##_atomic_mode_lives_on, sleeper_child,       \
                  .statics = false, .atomic = true, .block = BLOCK_CONDVAR, .leave = how)
EXIT_TESTS(ref_get_in_atomic_mode, OPLIB_EXIT_REF_ATOMIC)
EXIT_TESTS(read_trylock_writer_holds, OPLIB_EXIT_RWSEM_WRITER)
EXIT_TESTS(counter_fold, OPLIB_EXIT_COUNTER_FOLD)
EXIT_TESTS(failing_cmpxchg, OPLIB_EXIT_CMPXCHG_FAILS)
EXIT_TESTS(pop_of_empty_list, OPLIB_EXIT_LIST_EMPTY)
#define EXIT_CASES(tag)                                                             \
    cmocka_unit_test(test_dlclose_after_##tag##_main_thread_lives_on),              \
    cmocka_unit_test(test_dlclose_after_##tag##_sleeping_thread_lives_on),          \
    cmocka_unit_test(test_dlclose_after_##tag##_atomic_mode_lives_on)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dlclose_after_ops_main_thread_lives_on),
        cmocka_unit_test(test_dlclose_while_thread_waits_on_condvar_it_lives_on),
        cmocka_unit_test(test_dlclose_while_thread_blocks_in_read_it_lives_on),
        cmocka_unit_test(test_dlclose_while_thread_in_nanosleep_it_lives_on),
        cmocka_unit_test(test_dlclose_cycles_with_threads_running_ops_all_live_on),
        cmocka_unit_test(test_dlclose_atomic_mode_main_thread_lives_on),
        cmocka_unit_test(test_dlclose_atomic_mode_sleeping_thread_lives_on),
        cmocka_unit_test(test_dlclose_atomic_mode_cycles_all_live_on),
        cmocka_unit_test(test_dlclose_module_without_statics_main_thread_lives_on),
        cmocka_unit_test(test_dlclose_module_without_statics_sleeping_thread_lives_on),
        cmocka_unit_test(test_dlclose_module_without_statics_cycles_all_live_on),
        cmocka_unit_test(test_dlclose_module_without_statics_atomic_mode_lives_on),
        EXIT_CASES(ref_get_in_atomic_mode),
        EXIT_CASES(read_trylock_writer_holds),
        EXIT_CASES(counter_fold),
        EXIT_CASES(failing_cmpxchg),
        EXIT_CASES(pop_of_empty_list),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
