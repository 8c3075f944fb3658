/* SPDX-License-Identifier: MIT */
/* test_list_signal.c - signal handlers that push, pop and take whole lists while the code they interrupted pushes, pops or takes whole lists: no deadlock, no node lost or held twice, in rseq and atomic mode; a handler inside a pop sees exactly the documented results. */
#include "ops_util.h"

#include <stdatomic.h>
#include <stdint.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

/*
 * Each scenario runs in a forked child under a watchdog (child.h):
 * a deadlock between a handler and the code it interrupted (a pop waiting
 * for a lock bit its own thread holds) shows up as a killed child, not a
 * hung test.  The child reports failures on stderr and with its exit
 * status.
 *
 * Modes: the environment's (rseq where available, CID, norseq: the
 * variants in tests/CMakeLists.txt), and always also the atomic fallback
 * (fewer units than CPUs), whatever the environment says.
 */

#define WATCHDOG_SECONDS 60

#define CHECK(cond, ...)                                                          \
    do {                                                                          \
        if (!(cond)) {                                                            \
            fprintf(stderr, "child: line %d: %s: ", __LINE__, #cond);             \
            fprintf(stderr, __VA_ARGS__);                                         \
            fputc('\n', stderr);                                                  \
            _exit(1);                                                             \
        }                                                                         \
    } while (0)

/* In the child: the mode to run in (no cmocka asserts there). */
static void child_mode(bool atomic)
{
    struct pcpu_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    if (atomic)
        cfg.nr_cpus = ops_possible_cpus() - 1;
    CHECK(ops_init(&cfg) == 0, "pcpu_init: %s", strerror(errno));
    struct pcpu_stats st;
    CHECK(pcpu_stats_get(&st) == 0, "stats");
    if (atomic)
        CHECK(!st.rseq, "fewer units than CPUs but rseq in use");
}

static void expect_child_ok(void (*fn)(void *), void *arg, const char *what)
{
    struct child_result r;
    run_watched(fn, arg, WATCHDOG_SECONDS, &r);
    if (!r.forked)
        fail_msg("%s: cannot fork", what);
    if (r.hung)
        fail_msg("%s: the child hung (deadlock?) and was killed; stderr: %.600s", what, r.out);
    if (!WIFEXITED(r.status) || WEXITSTATUS(r.status) != 0)
        fail_msg("%s: the child %s %d; stderr: %.1500s", what,
                 WIFEXITED(r.status) ? "exited with status" : "was killed by signal",
                 WIFEXITED(r.status) ? WEXITSTATUS(r.status) : WTERMSIG(r.status), r.out);
}

/* ---- handlers against a busy thread ------------------------------------- */

enum { NR_ITEMS = 256 };

struct item {
    struct pcpu_list_node node;
    _Atomic int owner;
    unsigned int id;
};

static struct pcpu_list *list;
static struct item items[NR_ITEMS];
static _Atomic unsigned long dup_holds;
static _Atomic int stop_sender;
static volatile sig_atomic_t in_handler;
static unsigned long handler_runs, handler_pops, handler_empty, handler_taken;
static uint64_t handler_seed = 7;

static void claim(struct item *it, int me)
{
    if (atomic_exchange(&it->owner, me) != 0)
        atomic_fetch_add(&dup_holds, 1);
}

static void release(struct item *it, int me)
{
    if (atomic_exchange(&it->owner, 0) != me)
        atomic_fetch_add(&dup_holds, 1);
}

/* Re-push a chain taken whole, claiming each node on the way. */
static unsigned long push_back_chain(struct pcpu_list_node *x, int me)
{
    unsigned long n = 0;
    while (x) {
        struct pcpu_list_node *next = x->next;
        claim((struct item *)x, me);
        release((struct item *)x, me);
        pcpu_this_list_push(list, x);
        x = next;
        n++;
    }
    return n;
}

/* Async-signal-safe throughout: list operations and atomics. */
static void handler(int sig)
{
    (void)sig;
    int saved = errno;
    in_handler = 1;
    __atomic_store_n(&handler_runs, handler_runs + 1, __ATOMIC_RELAXED);
    struct pcpu_list_node *n = pcpu_this_list_pop(list);
    if (n) {
        claim((struct item *)n, 3);
        release((struct item *)n, 3);
        pcpu_this_list_push(list, n);
        handler_pops++;
    } else {
        handler_empty++;
    }
    if ((handler_runs & 7) == 0) {
        unsigned int u = (unsigned int)(tu_rand(&handler_seed) % pcpu_nr_cpus());
        handler_taken += push_back_chain(pcpu_list_pop_all(list, u), 4);
    }
    in_handler = 0;
    errno = saved;
}

/* Sends signals to the main thread as fast as it can, and pushes and pops
 * in between (another thread on the same lists). */
static int cpu_main = -1, cpu_sender = -1;

static void *sender_main(void *arg)
{
    pthread_t target = *(pthread_t *)arg;
    unsigned long sent = 0;
    if (cpu_sender >= 0)
        ops_pin_self(cpu_sender);
    while (!atomic_load(&stop_sender)) {
        unsigned long before = __atomic_load_n(&handler_runs, __ATOMIC_RELAXED);
        pthread_kill(target, SIGUSR1);
        sent++;
        /* until the handler has run (a pending signal is not queued twice),
         * or for a while if the target is not running */
        double give_up = tu_now() + 0.001;
        do {
            struct pcpu_list_node *n = pcpu_this_list_pop(list);
            if (n) {
                claim((struct item *)n, 2);
                release((struct item *)n, 2);
                pcpu_this_list_push(list, n);
            }
        } while (__atomic_load_n(&handler_runs, __ATOMIC_RELAXED) == before &&
                 !atomic_load(&stop_sender) && tu_now() < give_up);
    }
    return (void *)sent;
}

static void busy_child(void *arg)
{
    bool atomic = *(bool *)arg;
    child_mode(atomic);
    list = PCPU_NEW(struct pcpu_list);
    CHECK(list != NULL, "PCPU_NEW");
    for (unsigned int i = 0; i < NR_ITEMS; i++) {
        items[i].id = i;
        pcpu_this_list_push(list, &items[i].node); /* also: the first operation */
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = handler;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    CHECK(sigaction(SIGUSR1, &sa, NULL) == 0, "sigaction");
    /* On two CPUs when there are two: a signal to a running thread is
     * then delivered at once. */
    if (ops_two_cpus(&cpu_main, &cpu_sender))
        ops_pin_self(cpu_main);
    pthread_t self = pthread_self(), sender;
    CHECK(pthread_create(&sender, NULL, sender_main, &self) == 0, "pthread_create");
    uint64_t seed = 3;
    unsigned long pops = 0, taken = 0;
    /* At least 2 s and 2000 handler runs; on a busy machine the sender
     * may need longer (up to 20 s), which is no failure. */
    double start = tu_now();
    for (unsigned long i = 0;; i++) {
        struct pcpu_list_node *n = pcpu_this_list_pop(list);
        if (n) {
            claim((struct item *)n, 1);
            release((struct item *)n, 1);
            pcpu_this_list_push(list, n);
            pops++;
        }
        if ((i & 63) == 0) {
            unsigned int u = (unsigned int)(tu_rand(&seed) % pcpu_nr_cpus());
            taken += push_back_chain(pcpu_list_pop_all(list, u), 1);
        }
        if ((i & 1023) == 0) {
            double t = tu_now() - start;
            if ((t > 2.0 && __atomic_load_n(&handler_runs, __ATOMIC_RELAXED) >= 2000) ||
                t > 20.0)
                break;
        }
    }
    atomic_store(&stop_sender, 1);
    void *sent;
    pthread_join(sender, &sent);
    /* no handler may run during the census */
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &block, NULL);
    unsigned char seen[NR_ITEMS] = {0};
    unsigned int found = 0;
    pcpu_for_each_cpu(cpu) {
        for (struct pcpu_list_node *x = pcpu_list_pop_all(list, cpu); x; x = x->next) {
            struct item *it = (struct item *)x;
            CHECK(it >= items && it < items + NR_ITEMS, "foreign node %p", (void *)x);
            CHECK(!seen[it->id]++, "node %u twice", it->id);
            CHECK(atomic_load(&it->owner) == 0, "node %u still held", it->id);
            found++;
        }
    }
    printf("  %s: %lu signals sent, %lu handler runs (%lu pops, %lu found empty, %lu nodes "
           "taken whole); main %lu pops, %lu taken whole\n",
           atomic ? "atomic" : "environment's mode", (unsigned long)(uintptr_t)sent,
           handler_runs, handler_pops, handler_empty, handler_taken, pops, taken);
    fflush(stdout);
    CHECK(found == NR_ITEMS, "%u of %d nodes found", found, NR_ITEMS);
    CHECK(atomic_load(&dup_holds) == 0, "%lu nodes held twice",
          (unsigned long)atomic_load(&dup_holds));
    CHECK(handler_runs >= 20, "the handler ran only %lu times in 20 s", handler_runs);
    CHECK(pops > 0 && handler_pops > 0, "nothing popped");
}

static void test_handlers_against_busy_thread(void **state)
{
    (void)state;
    bool atomic = ops_want_atomic();
    expect_child_ok(busy_child, &atomic, "handlers, environment's mode");
}

static void test_handlers_against_busy_thread_atomic(void **state)
{
    (void)state;
    if (ops_possible_cpus() < 2)
        skip();
    bool atomic = true;
    expect_child_ok(busy_child, &atomic, "handlers, atomic mode");
}

/* ---- a handler in the middle of a pop ------------------------------------ */

/*
 * A node on a page that is made unreadable after it was pushed: the next
 * pop faults when it loads that node's next, and the SIGSEGV handler runs
 * in the middle of the pop.  The handler makes the page readable again,
 * so the pop goes on when it returns.
 *
 * Atomic fallback: the pop holds the unit's lock bit while it loads next.
 * The handler's pop and pcpu_list_pop_all() on that unit must return NULL
 * at once (documented: they never wait for a lock bit in a handler that
 * interrupted a pop), and its push must go through; the interrupted pop
 * then finds the handler's node in front and returns it.
 * rseq: the fault aborts the pop's sequence; the handler's push lands;
 * the pop starts again and returns the handler's node -- had it gone on
 * with the head it loaded before the signal, the handler's node would be
 * lost.
 */
static struct pcpu_list_node *far_node;   /* on the protected page */
static struct pcpu_list_node near1, near2; /* ordinary memory */
static char *page;
static size_t page_size;
static volatile sig_atomic_t faults;
static struct pcpu_list_node *volatile in_pop_popped, *volatile in_pop_taken;
static volatile bool in_pop_atomic;

static void segv_handler(int sig, siginfo_t *si, void *uc)
{
    (void)sig;
    (void)uc;
    if ((char *)si->si_addr < page || (char *)si->si_addr >= page + page_size)
        _exit(90); /* a real crash */
    faults++;
    if (in_pop_atomic) {
        in_pop_popped = pcpu_this_list_pop(list);
        in_pop_taken = pcpu_list_pop_all(list, (unsigned int)pcpu_this_cpu());
    }
    pcpu_this_list_push(list, &near2);
    mprotect(page, page_size, PROT_READ | PROT_WRITE);
}

static void in_pop_child(void *arg)
{
    bool atomic = *(bool *)arg;
    child_mode(atomic);
    CHECK(ops_pin_here(), "cannot pin"); /* one unit throughout */
    struct pcpu_stats st;
    CHECK(pcpu_stats_get(&st) == 0, "stats");
    bool cid = st.index == PCPU_INDEX_CID;
    page_size = (size_t)sysconf(_SC_PAGESIZE);
    page = mmap(NULL, page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(page != MAP_FAILED, "mmap");
    far_node = (struct pcpu_list_node *)(void *)page;
    list = PCPU_NEW(struct pcpu_list);
    CHECK(list != NULL, "PCPU_NEW");
    in_pop_atomic = atomic;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = segv_handler;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    CHECK(sigaction(SIGSEGV, &sa, NULL) == 0, "sigaction");
    for (int attempt = 0;; attempt++) {
        unsigned int unit = (unsigned int)pcpu_this_cpu();
        pcpu_this_list_push(list, &near1);
        pcpu_this_list_push(list, far_node); /* far -> near1 */
        CHECK(mprotect(page, page_size, PROT_NONE) == 0, "mprotect");
        faults = 0;
        struct pcpu_list_node *a = pcpu_this_list_pop(list);
        struct pcpu_list_node *b = pcpu_this_list_pop(list);
        struct pcpu_list_node *c = pcpu_this_list_pop(list);
        struct pcpu_list_node *d = pcpu_this_list_pop(list);
        bool as_expected = faults == 1 && a == &near2 && b == far_node && c == &near1 &&
                           d == NULL && (!atomic || (!in_pop_popped && !in_pop_taken));
        if (!as_expected && attempt < 20 &&
            ((unsigned int)pcpu_this_cpu() != unit || cid)) {
            /* the unit may have moved under us (CID mode): gather, retry */
            mprotect(page, page_size, PROT_READ | PROT_WRITE);
            pcpu_for_each_cpu(u) (void)pcpu_list_pop_all(list, u);
            continue;
        }
        CHECK(faults == 1, "%d faults", (int)faults);
        if (atomic) {
            CHECK(in_pop_popped == NULL, "a pop in the handler returned %p instead of NULL",
                  (void *)in_pop_popped);
            CHECK(in_pop_taken == NULL, "pop_all in the handler returned %p instead of NULL",
                  (void *)in_pop_taken);
        }
        /* the handler's node first, then the two pushed before */
        CHECK(a == &near2, "first pop %p, want the handler's node %p", (void *)a,
              (void *)&near2);
        CHECK(b == far_node && c == &near1 && d == NULL, "then %p %p %p", (void *)b,
              (void *)c, (void *)d);
        break;
    }
}

static void test_handler_inside_pop(void **state)
{
    (void)state;
    bool atomic = ops_want_atomic();
    expect_child_ok(in_pop_child, &atomic, "handler inside a pop, environment's mode");
}

static void test_handler_inside_pop_atomic(void **state)
{
    (void)state;
    if (ops_possible_cpus() < 2)
        skip();
    bool atomic = true;
    expect_child_ok(in_pop_child, &atomic, "handler inside a pop, atomic mode");
}

int main(void)
{
    if (ops_cannot_run())
        return 0;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handlers_against_busy_thread),
        cmocka_unit_test(test_handlers_against_busy_thread_atomic),
        cmocka_unit_test(test_handler_inside_pop),
        cmocka_unit_test(test_handler_inside_pop_atomic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
