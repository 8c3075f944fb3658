/* SPDX-License-Identifier: MIT */
/* test_signal_reentry.c - signal handlers: this-CPU ops are async-signal-safe; re-entering the allocator from a handler stops the process with a message, never a hang or a double hand-out. */
/*
 * include/percpu.h, "Async-signal safety": the this-CPU operations, pcpu_ptr,
 * pcpu_this_ptr and pcpu_sum may be used in a signal handler (once the
 * thread made one this-CPU operation); pcpu_alloc/pcpu_free may not, and a
 * handler that re-enters the allocator on the thread it interrupted is
 * detected: the process stops with a one-line "percpu: ... signal handler
 * ..." message and SIGABRT.  Without that check such a handler deadlocks
 * on the allocator lock the interrupted code holds, or pops the same
 * thread-cache entry the interrupted code is popping and so hands one
 * object out twice.
 *
 * Every scenario runs in a forked child under a watchdog: a hang must fail
 * the test, and the expected death must not take the test program down.
 */
#include "testutil.h"
#include "child.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The child gives up looking for a re-entry after this long (it takes
 * milliseconds once the check exists); the watchdog is well above it. */
#define REENTRY_SECONDS 15.0
#define REENTRY_ITERATIONS 10000000L
#define WATCHDOG_SECONDS 30.0
/* The longest the this-CPU operations child waits for enough signals. */
#define THISCPU_SECONDS 30.0

/* Configure the allocator in a child (no cmocka asserts there: a failed
 * assert would unwind into the parent's copy of the test runner). */
static void child_init(unsigned int nr_cpus, unsigned int flags)
{
    pcpu_exit();
    struct pcpu_config cfg = {.nr_cpus = nr_cpus, .flags = flags};
    tu_env_mode(&cfg);
    if (pcpu_init(&cfg) != 0) {
        fprintf(stderr, "child: pcpu_init failed: %s\n", strerror(errno));
        _exit(5);
    }
}

static void install(int sig, void (*fn)(int))
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = fn;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    if (sigaction(sig, &sa, NULL) != 0) {
        perror("sigaction");
        _exit(5);
    }
}

/* ---- a signal sender -------------------------------------------------------- */

static pthread_t target_thread;
static atomic_int stop_sender; /* between threads: atomic, not volatile */

/* Sends SIGUSR1 to the target thread in a tight loop; the short random
 * pause makes the signal land at ever different places of the target's
 * loop.  The sender itself never touches the allocator. */
static void *sender(void *arg)
{
    (void)arg;
    uint64_t rs = 0x5eed;
    while (!atomic_load_explicit(&stop_sender, memory_order_relaxed)) {
        pthread_kill(target_thread, SIGUSR1);
        unsigned int spin = (unsigned int)(tu_rand(&rs) % 400);
        for (volatile unsigned int i = 0; i < spin; i++)
            ;
    }
    return NULL;
}

static void start_sender(pthread_t *t)
{
    atomic_store(&stop_sender, 0);
    target_thread = pthread_self();
    if (pthread_create(t, NULL, sender, NULL) != 0) {
        fprintf(stderr, "child: pthread_create failed\n");
        _exit(5);
    }
}

static void stop_sender_and_block(pthread_t t)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    atomic_store(&stop_sender, 1);
    pthread_join(t, NULL);
}

/* ---- (a) re-entry is detected ------------------------------------------------ */

/* Objects the interrupted (main) thread holds right now.  A slot is filled
 * only after pcpu_alloc returned and emptied before pcpu_free is called,
 * so an object the handler gets can never legitimately be in the table. */
#define SLOTS 64
static void *volatile held[SLOTS];

static bool is_held(const void *p)
{
    for (unsigned int i = 0; i < SLOTS; i++)
        if (held[i] == p)
            return true;
    return false;
}

static volatile sig_atomic_t handler_allocs;

static void handler_allocates(int sig)
{
    (void)sig;
    int e = errno;
    void *p = pcpu_alloc(8, 0);
    if (!p) {
        child_say("child: pcpu_alloc(8) in the handler returned NULL\n");
        _exit(4);
    }
    if (is_held(p)) {
        child_say("child: pcpu_alloc(8) in a signal handler returned an object the interrupted "
                  "thread holds (one object handed out twice)\n");
        _exit(3);
    }
    pcpu_free(p);
    handler_allocs++;
    errno = e;
}

/* The main thread's loop: alloc/free over thread-cache sizes (8, 64) and
 * sizes that take the allocator lock (5000, reserved 100), each object
 * marked with its slot so that a second owner shows up. */
static void reentry_child(void *arg)
{
    unsigned int flags = *(const unsigned int *)arg;
    child_init(0, flags);
    /* Thread cache and reserved area set up before the first signal, so
     * that the handler's calls outside the allocator need no malloc. */
    pcpu_free(pcpu_alloc(8, 0));
    pcpu_free(pcpu_alloc(64, 0));
    pcpu_free(pcpu_alloc(5000, 0));
    pcpu_free(pcpu_alloc_reserved(100, 0));
    install(SIGUSR1, handler_allocates);
    pthread_t t;
    start_sender(&t);
    uint64_t rs = 7;
    double end = tu_now() + REENTRY_SECONDS;
    long i;
    for (i = 0; i < REENTRY_ITERATIONS; i++) {
        unsigned int s = (unsigned int)(tu_rand(&rs) % SLOTS);
        void *p = held[s];
        if (p) {
            if (*(volatile uint32_t *)pcpu_ptr(p, 0) != s + 1) {
                child_say("child: an object the main thread held changed under it (handed out "
                          "twice)\n");
                _exit(3);
            }
            held[s] = NULL;
            pcpu_free(p);
        } else {
            switch (s % 4) {
            case 0: p = pcpu_alloc(8, 0); break;
            case 1: p = pcpu_alloc(64, 0); break;
            case 2: p = pcpu_alloc(5000, 0); break;
            default: p = pcpu_alloc_reserved(100, 0); break;
            }
            if (!p) {
                fprintf(stderr, "child: allocation failed: %s\n", strerror(errno));
                _exit(4);
            }
            if (is_held(p)) {
                child_say("child: pcpu_alloc returned an object the main thread already holds "
                          "(handed out twice)\n");
                _exit(3);
            }
            *(volatile uint32_t *)pcpu_ptr(p, 0) = s + 1;
            held[s] = p;
        }
        if ((i & 1023) == 0 && tu_now() > end)
            break;
    }
    stop_sender_and_block(t);
    fprintf(stderr, "child: no re-entry detected in %ld iterations (%ld handler allocations)\n", i,
            (long)handler_allocs);
    _exit(0);
}

static void expect_reentry_stops(unsigned int flags)
{
    struct child_result r;
    char how[128];
    run_watched(reentry_child, &flags, WATCHDOG_SECONDS, &r);
    if (!child_aborted(&r))
        fail_msg("flags 0x%x: pcpu_alloc re-entered from a signal handler: expected SIGABRT with "
                 "a message, the child %s; stderr: %.600s",
                 flags, child_verdict(&r, how, sizeof(how)), r.out);
    const char *line = strstr(r.out, "percpu:");
    if (!line || !strstr(line, "signal handler"))
        fail_msg("flags 0x%x: the abort message does not say \"percpu: ... signal handler\": "
                 "%.600s",
                 flags, r.out);
    const char *nl = strchr(r.out, '\n');
    if (line != r.out || !nl || nl[1] != 0)
        fail_msg("flags 0x%x: expected exactly one line on stderr, got: %.600s", flags, r.out);
}

static void test_alloc_reentered_from_handler_is_detected(void **state)
{
    (void)state;
    expect_reentry_stops(0);
}

static void test_alloc_reentered_from_handler_is_detected_no_cache(void **state)
{
    (void)state;
    /* Every call takes the lock: the handler would deadlock on it. */
    expect_reentry_stops(PCPU_F_NO_CACHE);
}

static void test_alloc_reentered_from_handler_is_detected_robust(void **state)
{
    (void)state;
    expect_reentry_stops(PCPU_F_DEBUG);
}

/* ---- (b) this-CPU operations in handlers ------------------------------------- */

static int *sig_int;
static long *sig_long;
static unsigned int sig_nr_units;
static volatile sig_atomic_t handler_runs;

/* Per run: +7 on the int, +18 on the long, plus reads of every kind. */
static void handler_thiscpu(int sig)
{
    (void)sig;
    pcpu_this_inc(sig_int);                 /* +1 */
    (void)pcpu_this_add_return(sig_int, 2); /* +2 */
    int io = pcpu_this_read(sig_int);
    for (;;) { /* +4 */
        int seen = pcpu_this_cmpxchg(sig_int, io, io + 4);
        if (seen == io)
            break;
        io = seen;
    }
    pcpu_this_add(sig_long, 7); /* +7 */
    long lo = pcpu_this_read(sig_long);
    for (;;) { /* +11 */
        long seen = pcpu_this_cmpxchg(sig_long, lo, lo + 11);
        if (seen == lo)
            break;
        lo = seen;
    }
    /* Reads through every kind of pointer; their values do not matter. */
    volatile long sink = *(volatile long *)pcpu_this_ptr(sig_long);
    for (unsigned int cpu = 0; cpu < sig_nr_units; cpu++)
        sink += *(volatile int *)pcpu_ptr(sig_int, cpu);
    sink += pcpu_sum(sig_int) + pcpu_sum(sig_long);
    (void)sink;
    handler_runs++;
}

static void thiscpu_child(void *arg)
{
    unsigned int nr_cpus = *(const unsigned int *)arg;
    child_init(nr_cpus, 0);
    sig_int = PCPU_NEW(int);
    sig_long = PCPU_NEW(long);
    if (!sig_int || !sig_long) {
        fprintf(stderr, "child: PCPU_NEW failed\n");
        _exit(4);
    }
    sig_nr_units = pcpu_nr_cpus();
    long main_int = 0, main_long = 0;
    /* The one this-CPU operation that makes the rest async-signal-safe. */
    pcpu_this_inc(sig_int);
    main_int++;
    handler_runs = 0;
    install(SIGUSR1, handler_thiscpu);
    pthread_t t;
    start_sender(&t);
    uint64_t rs = 11;
    /* Until the handler has run often enough to prove something (a fast
     * loop finishes its iterations before many signals land), or time is up
     * (THISCPU_SECONDS: on a loaded machine the thread is seldom on a CPU
     * to take a signal, 10 s gave fewer than 100 runs). */
    double end = tu_now() + THISCPU_SECONDS;
    for (long i = 0; i < 3000000 || handler_runs < 1000; i++) {
        pcpu_this_inc(sig_int);
        (void)pcpu_this_add_return(sig_int, 2);
        main_int += 3;
        pcpu_this_add(sig_long, 3);
        long lo = pcpu_this_read(sig_long);
        for (;;) {
            long seen = pcpu_this_cmpxchg(sig_long, lo, lo + 5);
            if (seen == lo)
                break;
            lo = seen;
        }
        main_long += 8;
        /* Allocator calls the handler interrupts without using them. */
        if ((i & 7) == 0) {
            uint64_t k = tu_rand(&rs) % 3;
            void *p = k == 0 ? pcpu_alloc(8, 0) : k == 1 ? pcpu_alloc(5000, 0)
                                                          : pcpu_alloc_reserved(100, 0);
            if (!p) {
                fprintf(stderr, "child: allocation failed: %s\n", strerror(errno));
                _exit(4);
            }
            pcpu_free(p);
        }
        if ((i & 1023) == 0 && tu_now() > end)
            break;
    }
    stop_sender_and_block(t);
    long runs = handler_runs;
    int want_int = (int)(main_int + 7 * runs);
    long want_long = main_long + 18 * runs;
    int got_int = pcpu_sum(sig_int);
    long got_long = pcpu_sum(sig_long);
    if (got_int != want_int || got_long != want_long) {
        fprintf(stderr,
                "child: nr_cpus %u: sums %d/%ld, expected %d/%ld (main %ld/%ld, %ld handler "
                "runs)\n",
                nr_cpus, got_int, got_long, want_int, want_long, main_int, main_long, runs);
        _exit(2);
    }
    if (runs < 100) {
        fprintf(stderr, "child: the handler ran only %ld times\n", runs);
        _exit(6);
    }
    pcpu_free(sig_int);
    pcpu_free(sig_long);
    if (pcpu_validate() != 0)
        _exit(7);
    pcpu_exit();
}

static void expect_thiscpu_in_handlers_exact(unsigned int nr_cpus)
{
    struct child_result r;
    char how[128];
    run_watched(thiscpu_child, &nr_cpus, THISCPU_SECONDS + WATCHDOG_SECONDS, &r);
    if (!child_exited_ok(&r))
        fail_msg("nr_cpus %u: this-CPU operations in signal handlers: the child %s; stderr: "
                 "%.600s",
                 nr_cpus, child_verdict(&r, how, sizeof(how)), r.out);
    if (r.out[0])
        fail_msg("nr_cpus %u: unexpected output: %.600s", nr_cpus, r.out);
}

static void test_thiscpu_ops_in_handlers_are_exact(void **state)
{
    (void)state;
    expect_thiscpu_in_handlers_exact(0); /* one unit per CPU: rseq where available */
}

static void test_thiscpu_ops_in_handlers_are_exact_atomic(void **state)
{
    (void)state;
    expect_thiscpu_in_handlers_exact(1); /* every CPU shares one unit: atomic mode */
}

/* ---- (c) allocating in a handler that interrupted plain code ---------------- */

static void *volatile outside_kept;
static volatile sig_atomic_t outside_bad;

static bool zero_everywhere(const void *cookie, size_t size)
{
    for (unsigned int u = 0; u < sig_nr_units; u++) {
        const unsigned char *q = pcpu_ptr(cookie, u);
        for (size_t i = 0; i < size; i++)
            if (q[i])
                return false;
    }
    return true;
}

static void handler_outside(int sig)
{
    (void)sig;
    void *a = pcpu_alloc(8, 0), *b = pcpu_alloc(5000, 0), *c = pcpu_alloc_reserved(100, 0);
    void *d = pcpu_alloc(64, 0);
    if (!a || !b || !c || !d) {
        outside_bad = 1;
        return;
    }
    if (!zero_everywhere(a, 8) || !zero_everywhere(b, 5000) || !zero_everywhere(c, 100) ||
        !zero_everywhere(d, 64))
        outside_bad = 2;
    memset(pcpu_ptr(a, 0), 1, 8);
    memset(pcpu_ptr(b, sig_nr_units - 1), 2, 5000);
    memset(pcpu_ptr(c, 0), 3, 100);
    pcpu_free(a);
    pcpu_free(b);
    pcpu_free(c);
    outside_kept = d; /* the interrupted code frees this one */
}

static void outside_child(void *arg)
{
    unsigned int flags = *(const unsigned int *)arg;
    child_init(0, flags);
    sig_nr_units = pcpu_nr_cpus();
    /* The allocator's one-time set-up of this thread (its cache) and of
     * the process (the reclaim worker) is done outside the handler: it
     * uses malloc, which ThreadSanitizer rightly reports in a handler. */
    pcpu_free(pcpu_alloc(8, 0));
    pcpu_free(pcpu_alloc(5000, 0));
    pcpu_free(pcpu_alloc_reserved(100, 0));
    install(SIGUSR1, handler_outside);
    void *mine[16] = {0};
    for (unsigned int i = 0; i < 2000; i++) {
        unsigned int s = i % 16;
        pcpu_free(mine[s]);
        mine[s] = pcpu_alloc(s < 8 ? 8 : 5000, 0);
        if (!mine[s]) {
            fprintf(stderr, "child: allocation failed: %s\n", strerror(errno));
            _exit(4);
        }
        outside_kept = NULL;
        /* Synchronous: the handler runs here, outside every allocator call. */
        raise(SIGUSR1);
        if (outside_bad) {
            fprintf(stderr, "child: allocation in the handler %s\n",
                    outside_bad == 1 ? "failed" : "returned memory that is not zero");
            _exit(2);
        }
        if (!outside_kept) {
            fprintf(stderr, "child: the handler did not run\n");
            _exit(2);
        }
        memset(pcpu_ptr(outside_kept, 0), 9, 64);
        pcpu_free(outside_kept);
    }
    for (unsigned int s = 0; s < 16; s++)
        pcpu_free(mine[s]);
    int problems = pcpu_validate();
    if (problems) {
        fprintf(stderr, "child: pcpu_validate found %d problems\n", problems);
        _exit(7);
    }
    pcpu_exit();
}

static void expect_alloc_outside_allocator_works(unsigned int flags)
{
    struct child_result r;
    char how[128];
    run_watched(outside_child, &flags, WATCHDOG_SECONDS, &r);
    if (!child_exited_ok(&r))
        fail_msg("flags 0x%x: pcpu_alloc in a handler that interrupted plain code: the child %s; "
                 "stderr: %.600s",
                 flags, child_verdict(&r, how, sizeof(how)), r.out);
    if (r.out[0])
        fail_msg("flags 0x%x: unexpected output: %.600s", flags, r.out);
}

static void test_alloc_in_handler_outside_allocator_works(void **state)
{
    (void)state;
    expect_alloc_outside_allocator_works(0);
    expect_alloc_outside_allocator_works(PCPU_F_NO_CACHE);
    expect_alloc_outside_allocator_works(PCPU_F_DEBUG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alloc_reentered_from_handler_is_detected),
        cmocka_unit_test(test_alloc_reentered_from_handler_is_detected_no_cache),
        cmocka_unit_test(test_alloc_reentered_from_handler_is_detected_robust),
        cmocka_unit_test(test_thiscpu_ops_in_handlers_are_exact),
        cmocka_unit_test(test_thiscpu_ops_in_handlers_are_exact_atomic),
        cmocka_unit_test(test_alloc_in_handler_outside_allocator_works),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
