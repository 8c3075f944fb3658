/* SPDX-License-Identifier: MIT */
/* test_seq_window.c - the window between a sequence's first read of the CPU number and its commit: migrations, signal handlers that update the same objects, and a switch to atomics that lands there; every sum exact. */
/*
 * A this-CPU sequence reads the thread's CPU number and its unit's offset
 * before its critical section, and inside only checks that the number
 * still names that offset.  So whatever happens between the first read and
 * the commit must send it back to the start:
 *   - a migration (here forced from inside the thread, by a signal
 *     handler that moves it to another CPU, at a high rate, so that many
 *     land between the read and the section);
 *   - a signal handler that makes this-CPU operations on the same objects
 *     in that window (the same handler does: its updates and the
 *     interrupted ones must all count once);
 *   - a switch of the whole process to atomics (another thread unregisters
 *     its rseq area and makes an operation: the library closes the table
 *     and calls membarrier; a sequence that read its offset before the
 *     close must not commit a plain update after it).
 * Every operation kind is in the loop: add, add_return, cmpxchg, xchg,
 * 1-byte and 8-byte widths, list push/pop, counter adds, ref get/put.
 * Each scenario runs in a forked child, since a switch to atomics lasts
 * for the process's life.
 */
#include "clients_util.h"

#include <signal.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

#define NR_WORKERS 3

extern const ptrdiff_t __rseq_offset __attribute__((weak));
extern const unsigned int __rseq_size __attribute__((weak));

static bool glibc_registers(void)
{
    return &__rseq_size != NULL && __rseq_size != 0;
}

/* Give up the calling thread's (glibc's) rseq registration, as a tracer
 * or a runtime with its own rseq would: 0, or -1 when it cannot. */
static int take_rseq(void)
{
#if defined(__x86_64__)
    char *tp;
    __asm__("movq %%fs:0, %0" : "=r"(tp));
    unsigned int sizes[2] = {32, glibc_registers() ? __rseq_size : 32};
    for (int i = 0; i < 2; i++)
        if (syscall(SYS_rseq, tp + __rseq_offset, sizes[i], 1, 0x53053053) == 0)
            return 0;
#endif
    return -1;
}

struct shared {
    long *sum;                    /* pcpu_this_inc / add_return */
    uint64_t *wide;               /* cmpxchg loop */
    unsigned char *narrow;        /* 1-byte adds (mod 256) */
    struct pcpu_counter counter;
    struct pcpu_ref ref;
    atomic_bool stop;
    atomic_long handler_ops;
    long ncpu;
};

static struct shared *g;

/* The handler: move this thread to another CPU, then update the same
 * objects (it may have interrupted a sequence between its read of the CPU
 * number and its commit). */
static void on_tick(int sig)
{
    (void)sig;
    int saved = errno;
    static __thread unsigned int seed = 1;
    seed = seed * 1103515245u + 12345u;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET((int)((seed >> 16) % (unsigned int)g->ncpu), &set);
    (void)sched_setaffinity(0, sizeof(set), &set);
    pcpu_this_inc(g->sum);
    pcpu_this_add(g->narrow, 1);
    pcpu_counter_inc(&g->counter);
    atomic_fetch_add_explicit(&g->handler_ops, 1, memory_order_relaxed);
    errno = saved;
}

struct worker {
    struct pcpu_list *list; /* the worker's own: only its node is on it */
    long incs, narrow, counted;
    uint64_t cas;
    long popped_back;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    /* A timer of this thread's own, firing often. */
    timer_t t;
    struct sigevent sev = {0};
    sev.sigev_notify = SIGEV_THREAD_ID;
    sev.sigev_signo = SIGUSR1;
    sev._sigev_un._tid = (pid_t)syscall(SYS_gettid);
    if (timer_create(CLOCK_MONOTONIC, &sev, &t) != 0)
        return (void *)1;
    struct itimerspec its = {{0, 20000}, {0, 20000}};
    timer_settime(t, 0, &its, NULL);
    struct pcpu_list_node node;
    while (!atomic_load_explicit(&g->stop, memory_order_relaxed)) {
        pcpu_this_inc(g->sum);
        (void)pcpu_this_add_return(g->sum, 2);
        w->incs += 3;
        pcpu_this_add(g->narrow, 3);
        w->narrow += 3;
        uint64_t old = pcpu_this_read(g->wide);
        while (!pcpu_this_try_cmpxchg(g->wide, &old, old + 5))
            ;
        w->cas += 5;
        /* xchg: take the unit's value and put it back on whatever unit the
         * thread is on then (the sum keeps it) */
        pcpu_this_add(g->wide, pcpu_this_xchg(g->wide, 0));
        pcpu_counter_add(&g->counter, 2);
        w->counted += 2;
        pcpu_ref_get(&g->ref);
        pcpu_ref_put(&g->ref);
        pcpu_this_list_push(w->list, &node);
        if (!pcpu_this_list_pop(w->list)) {
            /* migrated between the two: take it back from wherever it is */
            struct pcpu_list_node *n = NULL;
            for (unsigned int cpu = 0; cpu < pcpu_nr_cpus() && !n; cpu++)
                n = pcpu_list_pop_all(w->list, cpu);
            if (n != &node || node.next != NULL)
                return (void *)2; /* our node, alone */
            w->popped_back++;
        }
    }
    its = (struct itimerspec){{0, 0}, {0, 0}};
    timer_settime(t, 0, &its, NULL);
    timer_delete(t);
    return NULL;
}

/* The switch: a thread that gives up its rseq area, then operates. */
static void *unregister_main(void *arg)
{
    (void)arg;
    if (take_rseq() != 0)
        return (void *)1;
    pcpu_this_inc(g->sum);
    return NULL;
}

static void scenario(void *arg)
{
    bool switch_midway = arg != NULL;
    g = calloc(1, sizeof(*g));
    g->ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    g->sum = PCPU_NEW(long);
    g->wide = PCPU_NEW(uint64_t);
    g->narrow = PCPU_NEW(unsigned char);
    if (!g->sum || !g->wide || !g->narrow || pcpu_counter_init(&g->counter, 0) ||
        pcpu_ref_init(&g->ref, NULL, 0))
        _exit(10);
    pcpu_this_inc(g->sum); /* this thread set up before the handler can run */
    struct sigaction sa = {0};
    sa.sa_handler = on_tick;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR1, &sa, NULL);
    struct worker w[NR_WORKERS] = {0};
    pthread_t t[NR_WORKERS];
    for (int i = 0; i < NR_WORKERS; i++) {
        if (!(w[i].list = PCPU_NEW(struct pcpu_list)))
            _exit(10);
        pthread_create(&t[i], NULL, worker_main, &w[i]);
    }
    struct timespec ts = {0, 150 * 1000 * 1000};
    nanosleep(&ts, NULL);
    long switched = 0;
    if (switch_midway) {
        pthread_t u;
        void *r;
        pthread_create(&u, NULL, unregister_main, NULL);
        pthread_join(u, &r);
        if (r)
            _exit(11);
        switched = 1;
        nanosleep(&ts, NULL);
    }
    atomic_store(&g->stop, true);
    long incs = 1 + switched, narrow = 0, counted = 0;
    uint64_t cas = 0;
    for (int i = 0; i < NR_WORKERS; i++) {
        void *r;
        pthread_join(t[i], &r);
        if (r) {
            fprintf(stderr, "worker %d failed (%ld)\n", i, (long)(intptr_t)r);
            _exit(12);
        }
        incs += w[i].incs;
        narrow += w[i].narrow;
        counted += w[i].counted;
        cas += w[i].cas;
    }
    signal(SIGUSR1, SIG_IGN);
    long h = atomic_load(&g->handler_ops);
    struct pcpu_stats st;
    pcpu_stats_get(&st);
    fprintf(stderr, "%s: %ld operations in handlers, rseq %s at the end, sums:", 
            switch_midway ? "switch midway" : "migrations", h, st.rseq ? "on" : "off");
    int bad = 0;
    if (pcpu_sum(g->sum) != incs + h) {
        fprintf(stderr, " sum %ld, want %ld", pcpu_sum(g->sum), incs + h);
        bad = 1;
    }
    if (pcpu_sum(g->narrow) != (unsigned char)(narrow + h)) {
        fprintf(stderr, " narrow %u, want %u", pcpu_sum(g->narrow), (unsigned char)(narrow + h));
        bad = 1;
    }
    if (pcpu_sum(g->wide) != cas) {
        fprintf(stderr, " wide %llu, want %llu", (unsigned long long)pcpu_sum(g->wide),
                (unsigned long long)cas);
        bad = 1;
    }
    if (pcpu_counter_sum(&g->counter) != counted + h) {
        fprintf(stderr, " counter %lld, want %ld", (long long)pcpu_counter_sum(&g->counter),
                counted + h);
        bad = 1;
    }
    if (switch_midway && st.rseq)
        bad = 1; /* the unregistered thread must have switched the process */
    fprintf(stderr, bad ? " WRONG\n" : " exact\n");
    pcpu_ref_kill(&g->ref);
    if (!pcpu_ref_is_zero(&g->ref))
        _exit(13);
    _exit(bad ? 14 : 0);
}

static void run(void *arg)
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        scenario(arg);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (WIFSIGNALED(status))
        fail_msg("the scenario died from signal %d", WTERMSIG(status));
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_migrations_and_handlers_in_the_window(void **state)
{
    (void)state;
    run(NULL);
}

static void test_switch_to_atomics_in_the_window(void **state)
{
    (void)state;
    const char *ix = getenv("PERCPU_INDEX");
    if (!glibc_registers() || !PCPU__RSEQ_ASM || (ix && !strcmp(ix, "cid"))) {
        /* Without glibc's registration, a thread that unregisters is
         * registered again by the library; in CID mode it reads mm_cid 0
         * (the limitation <percpu/alloc.h> documents at enum
         * pcpu_index): no switch happens either way. */
        skip();
        return;
    }
    run((void *)1);
}

/*
 * The same, instruction by instruction: a child stops itself before an
 * operation; the test (its tracer) single-steps it K instructions, moves
 * it to the other CPU, and lets it run.  For every K from the return of
 * the stop through the whole operation, the update must land on the unit
 * of the CPU the thread finished on (inside the critical section a step
 * is a preemption, which restarts the sequence; before it, only the
 * sequence's own check can see the move).
 */
#define STEP_ROUNDS 160

struct step_report {
    int bad_round;  /* first round whose update landed elsewhere, or -1 */
    int landed_on, ran_on;
    int rounds;
};

static void step_child(struct step_report *rep, int cpu_a, int cpu_b)
{
    if (ptrace(PTRACE_TRACEME, 0, NULL, NULL) != 0)
        _exit(20);
    long *c = PCPU_NEW(long);
    if (!c)
        _exit(21);
    unsigned int n = pcpu_nr_cpus();
    long before[64];
    rep->bad_round = -1;
    for (int round = 0; round < STEP_ROUNDS; round++) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(round % 2 ? cpu_b : cpu_a, &set);
        sched_setaffinity(0, sizeof(set), &set);
        pcpu_this_inc(c); /* settle on that CPU (and register) */
        for (unsigned int u = 0; u < n && u < 64; u++)
            before[u] = *PCPU_PTR(c, u);
        raise(SIGSTOP);
        pcpu_this_inc(c);
        int cpu = pcpu_this_cpu();
        int landed = -1;
        for (unsigned int u = 0; u < n && u < 64; u++)
            if (*PCPU_PTR(c, u) != before[u])
                landed = landed < 0 ? (int)u : -2;
        if (landed != cpu && rep->bad_round < 0) {
            rep->bad_round = round;
            rep->landed_on = landed;
            rep->ran_on = cpu;
        }
        rep->rounds = round + 1;
    }
    _exit(0);
}

static void test_moved_at_every_instruction(void **state)
{
    (void)state;
    cpu_set_t all;
    assert_int_equal(sched_getaffinity(0, sizeof(all), &all), 0);
    int cpu_a = -1, cpu_b = -1;
    for (int i = 0; i < CPU_SETSIZE && cpu_b < 0; i++)
        if (CPU_ISSET(i, &all)) {
            if (cpu_a < 0)
                cpu_a = i;
            else
                cpu_b = i;
        }
    if (cpu_b < 0 || pcpu_nr_cpus() > 64) {
        skip(); /* one CPU: nowhere to move to */
        return;
    }
    struct step_report *rep = mmap(NULL, sizeof(*rep), PROT_READ | PROT_WRITE,
                                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(rep != MAP_FAILED);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        step_child(rep, cpu_a, cpu_b);
    int status;
    long steps_total = 0;
    for (int round = 0;; round++) {
        assert_int_equal(waitpid(pid, &status, 0), pid);
        if (WIFEXITED(status) || WIFSIGNALED(status))
            break;
        assert_true(WIFSTOPPED(status));
        if (WSTOPSIG(status) != SIGSTOP) {
            /* another signal: deliver it */
            ptrace(PTRACE_CONT, pid, NULL, (void *)(intptr_t)WSTOPSIG(status));
            continue;
        }
        /* Stopped before the operation: K steps (K grows with the round),
         * then to the other CPU, then run. */
        int k = round / 2;
        for (int i = 0; i < k; i++) {
            assert_int_equal(ptrace(PTRACE_SINGLESTEP, pid, NULL, NULL), 0);
            assert_int_equal(waitpid(pid, &status, 0), pid);
            if (!WIFSTOPPED(status))
                break;
            steps_total++;
        }
        if (!WIFSTOPPED(status))
            break;
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(round % 2 ? cpu_a : cpu_b, &set);
        (void)sched_setaffinity(pid, sizeof(set), &set);
        assert_int_equal(ptrace(PTRACE_CONT, pid, NULL, NULL), 0);
    }
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    print_message("%d rounds, %ld single steps\n", rep->rounds, steps_total);
    assert_int_equal(rep->rounds, STEP_ROUNDS);
    if (rep->bad_round >= 0)
        fail_msg("round %d (moved after %d instructions): the update landed on unit %d, the "
                 "thread finished on CPU %d",
                 rep->bad_round, rep->bad_round / 2, rep->landed_on, rep->ran_on);
    munmap(rep, sizeof(*rep));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_migrations_and_handlers_in_the_window),
        cmocka_unit_test(test_switch_to_atomics_in_the_window),
        cmocka_unit_test(test_moved_at_every_instruction),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
