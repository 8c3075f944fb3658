/* SPDX-License-Identifier: MIT */
/*
 * figures.c - the measured loops of percpu-bench.
 *
 * Every percpu figure is set against what a user would write instead:
 *
 *   inc.*    one increment of a counter, ns per op per thread:
 *            percpu          pcpu_this_inc() on a pcpu_alloc'd long
 *            rseq_min        the floor of any rseq design: a hand-written
 *                            sequence that arms rseq_cs, loads the index
 *                            (cpu_id, or mm_cid in cid mode), loads the
 *                            unit's offset from a table, adds and commits;
 *                            nothing else (x86_64 with glibc's rseq area)
 *            rseq_check      rseq_min and a word of the thread's own
 *                            compared with the index in the sequence (the
 *                            library's sequence before it dropped its
 *                            per-thread limit; not a target)
 *            atomic_shared   one shared counter, atomic add (lock xadd)
 *            tls             a __thread long, plain increment kept in
 *                            memory by an empty asm (cannot be removed)
 *            striped_getcpu  sched_getcpu() + atomic add into a
 *                            cache-line-padded array indexed by CPU
 *   ops.*    other this-CPU operations on a pcpu_alloc'd long, ns per op:
 *            percpu.xchg     pcpu_this_xchg() (a load and a store that
 *                            commits)
 *            percpu.cmpxchg  pcpu_this_cmpxchg() that succeeds (the
 *                            thread's own unit: one load, compare, store)
 *   list.*   one pop + push pair on a LIFO free list, ns per pair per
 *            thread (each thread starts with 64 nodes of its own):
 *            percpu          pcpu_this_list_pop() + pcpu_this_list_push()
 *                            on a per-CPU list
 *            mutex           one shared list under a pthread mutex
 *            treiber         one shared lock-free Treiber stack whose head
 *                            carries a tag (16-byte compare-and-swap, no
 *                            ABA)
 *            tls             a thread-local list (plain loads and stores):
 *                            the floor
 *            The node is handed to an empty asm between pop and push in
 *            every variant, as a user would touch it.
 *   alloc.*  one allocation + free pair, ns per pair per thread:
 *            percpu.N        pcpu_alloc(N) + pcpu_free, on an object the
 *                            thread wrote before in its CPU's unit
 *            percpu.mixed    a pool of live objects; each op frees a random
 *                            slot and refills it with a random size
 *                            1..4096 and a random alignment 1..256
 *            malloc.8        malloc(8) + free (the pointer escapes)
 *            padded.8        aligned_alloc of one 64-byte slot per unit,
 *                            memset 0, + free: a hand-made per-CPU object
 *   scale.*  T=1, alloc+free of 8 bytes with 1k/100k/1M live 8-byte objects.
 *            live_N: the N objects stay put while a FIFO window of 4096
 *            more cycles 64 at a time (64 frees, then 64 allocations: more
 *            than a thread cache holds), so the map, its hints and slots
 *            work around N live objects: the allocator's own scaling (the
 *            target; the live_N repetitions alternate, each on a fresh
 *            set of N).  random_live_N: each op
 *            frees a random one of the N and allocates its replacement;
 *            at 1M that mostly measures cache misses (the benchmark's own
 *            pointer array included), reported for information.
 *   mem.*    T=1, resident kB of 1M 8-byte per-CPU objects written on every
 *            unit, against 1M padded malloc'd objects (64 bytes per unit).
 *
 * Counters are checked after each measurement (the sum must equal the
 * number of increments done) so a broken fast path cannot look fast.
 */
#define _GNU_SOURCE
#include "bench.h"

#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "percpu.h"

static void die(const char *what)
{
    perror(what);
    exit(2);
}

static inline uint64_t rnd(uint64_t *s)
{
    /* xorshift64*: a few cycles, good enough to pick slots and sizes */
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545f4914f6cdd1dull;
}

static unsigned int nthreads_all(void)
{
    return online_cpus();
}

/* Measure @l at T=1 and at T = every online CPU. */
static void measure_1_n(struct loop *l)
{
    if (!name_selected(l->name))
        return;
    measure(l, 1);
    if (nthreads_all() > 1)
        measure(l, nthreads_all());
}

/* The same for @n loops measured together, repetitions interleaved, and
 * the T=1 and T=all runs alternating, so that the ratios between them and
 * between the thread counts are taken at the same time. */
static void measure_1_n_together(struct loop *loops, size_t n)
{
    struct loop *sel[12];
    unsigned int k = 0;
    for (size_t i = 0; i < n && k < 12; i++)
        if (name_selected(loops[i].name))
            sel[k++] = &loops[i];
    if (nthreads_all() > 1)
        measure_group_1_n_alternating(sel, k, nthreads_all());
    else
        measure_group(sel, k, 1);
}

/* ======================================================================
 * Increments
 * ====================================================================== */

static long *inc_cookie;

static void *inc_percpu_setup(const struct loop *l, unsigned int tid)
{
    (void)l;
    (void)tid;
    return inc_cookie;
}

static void inc_percpu_run(void *s, uint64_t n)
{
    long *c = s;
    for (uint64_t i = 0; i < n; i++)
        pcpu_this_inc(c);
}

static void inc_percpu_check(const struct loop *l, uint64_t total)
{
    long sum = pcpu_sum(inc_cookie);
    if ((uint64_t)sum != total)
        fprintf(stderr, "percpu-bench: %s: sum %ld, expected %llu: UPDATES LOST\n", l->name,
                sum, (unsigned long long)total);
    pcpu_for_each_cpu(cpu) *PCPU_PTR(inc_cookie, cpu) = 0;
}

static struct {
    _Alignas(64) long v;
    char pad[56];
} shared_ctr;

static void inc_atomic_run(void *s, uint64_t n)
{
    (void)s;
    for (uint64_t i = 0; i < n; i++)
        __atomic_fetch_add(&shared_ctr.v, 1, __ATOMIC_RELAXED);
}

static void inc_atomic_check(const struct loop *l, uint64_t total)
{
    if ((uint64_t)shared_ctr.v != total)
        fprintf(stderr, "percpu-bench: %s: count %ld, expected %llu\n", l->name, shared_ctr.v,
                (unsigned long long)total);
    shared_ctr.v = 0;
}

static __thread long tls_ctr;
static long tls_total;

static void inc_tls_run(void *s, uint64_t n)
{
    (void)s;
    for (uint64_t i = 0; i < n; i++) {
        tls_ctr++;
        /* the counter must be in memory at each step, as a real one is */
        __asm__ __volatile__("" : "+m"(tls_ctr));
    }
}

static void inc_tls_teardown(void *s)
{
    (void)s;
    __atomic_fetch_add(&tls_total, tls_ctr, __ATOMIC_RELAXED);
    tls_ctr = 0;
}

static void inc_tls_check(const struct loop *l, uint64_t total)
{
    if ((uint64_t)tls_total != total)
        fprintf(stderr, "percpu-bench: %s: count %ld, expected %llu\n", l->name, tls_total,
                (unsigned long long)total);
    tls_total = 0;
}

/*
 * inc.rseq_min: the least an rseq increment can do.  The unit offsets come
 * from a table of the benchmark's own (one 64-byte line per index), like
 * the library's, so the difference between this and inc.percpu is what
 * the library adds to the sequence: its checks of the index and of the
 * offset against constants, the disarm after the commit when built for a
 * shared object (this program is not), and the choice of the index word.
 */
#if defined(__x86_64__) && defined(__GLIBC__) && \
    (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 35))
#define HAVE_RSEQ_MIN 1
extern const ptrdiff_t __rseq_offset;

struct rmin_line {
    _Alignas(64) long v;
    char pad[56];
};
/* The table lies half a page past the lines: with the two arrays back to
 * back (both a whole number of pages) the table's entry for CPU 0 had the
 * same offset in its page as CPU 0's line, and each load of it right
 * after the add to the line waited as if it depended on that store (4K
 * aliasing): inc.rseq_min took 4.5-4.8 instead of 1.1-1.3 ns in some runs
 * of the same binary. */
struct rmin_area {
    struct rmin_line lines[PCPU_MAX_CPUS];
    char gap[2048];
    intptr_t offs[PCPU_MAX_CPUS];
};
/* One for each loop: their counts are checked apart. */
static struct rmin_area rmin, rchk;

/* inc.rseq_check: rseq_min plus one word of the thread's own compared
 * with the index inside the sequence: the library's sequence until it
 * stopped enrolling threads (a per-thread limit, zero until the thread's
 * first visit to the slow path).  Not a target: it shows what that one
 * load cost, which the library no longer pays (percpu.h, PCPU__RSEQ_HEAD). */
static __thread uint32_t rchk_limit __attribute__((tls_model("initial-exec")));

/* DISP: the index word's offset in struct rseq (cpu_id 4, mm_cid 24);
 * CHECK: what comes between the index's load and the table's. */
#define RSEQ_LOOP(NAME, DISP, CHECK, AREA)                                    \
static void NAME(void *s, uint64_t n)                                         \
{                                                                             \
    (void)s;                                                                  \
    char *rs = (char *)(uintptr_t)__rseq_offset;                              \
    for (uint64_t i = 0; i < n; i++) {                                        \
        uintptr_t tmp;                                                        \
        __asm__ __volatile__(                                                 \
            ".pushsection __rseq_cs, \"aw\"\n\t"                              \
            ".balign 32\n"                                                    \
            "3:\n\t"                                                          \
            ".long 0, 0\n\t"                                                  \
            ".quad 1f, 2f - 1f, 4f\n\t"                                       \
            ".popsection\n"                                                   \
            "0:\n\t"                                                          \
            "leaq 3b(%%rip), %[tmp]\n\t"                                      \
            "movq %[tmp], %%fs:8(%[rs])\n"                                    \
            "1:\n\t"                                                          \
            "movl %%fs:" #DISP "(%[rs]), %k[tmp]\n\t"                         \
            CHECK                                                             \
            "movq (%[tab], %[tmp], 8), %[tmp]\n\t"                            \
            "addq $1, (%[base], %[tmp])\n"                                    \
            "2:\n\t"                                                          \
            ".pushsection __rseq_failure, \"ax\"\n\t"                         \
            ".long 0x53053053\n"                                              \
            "4:\n\t"                                                          \
            "jmp 0b\n\t"                                                      \
            ".popsection\n"                                                   \
            : [tmp] "=&r"(tmp), "+m"(AREA.lines)                              \
            : [rs] "r"(rs), [tab] "r"(AREA.offs), [base] "r"(AREA.lines),     \
              [lim] "m"(rchk_limit)                                           \
            : "cc");                                                          \
    }                                                                         \
}
RSEQ_LOOP(inc_rseq_min_cpu_run, 4, "", rmin)
RSEQ_LOOP(inc_rseq_min_cid_run, 24, "", rmin)
/* Out of range it goes to the abort handler, which tries again: the
 * setup opens the limit before the loop runs. */
#define RCHK "cmpl %[lim], %k[tmp]\n\tjae 4f\n\t"
RSEQ_LOOP(inc_rseq_check_cpu_run, 4, RCHK, rchk)
RSEQ_LOOP(inc_rseq_check_cid_run, 24, RCHK, rchk)

/* The thread's rseq area must be registered: one library operation does
 * that wherever glibc did not. */
static void *inc_rseq_min_setup(const struct loop *l, unsigned int tid)
{
    (void)l;
    (void)tid;
    pcpu_this_inc(inc_cookie);
    pcpu_this_dec(inc_cookie);
    return NULL;
}

static void *inc_rseq_check_setup(const struct loop *l, unsigned int tid)
{
    rchk_limit = PCPU_MAX_CPUS;
    return inc_rseq_min_setup(l, tid);
}

static void rseq_area_check(const struct loop *l, uint64_t total, struct rmin_area *a)
{
    long sum = 0;
    for (size_t i = 0; i < PCPU_MAX_CPUS; i++) {
        sum += a->lines[i].v;
        a->lines[i].v = 0;
    }
    if ((uint64_t)sum != total)
        fprintf(stderr, "percpu-bench: %s: count %ld, expected %llu: UPDATES LOST\n", l->name,
                sum, (unsigned long long)total);
}

static void inc_rseq_min_check(const struct loop *l, uint64_t total)
{
    rseq_area_check(l, total, &rmin);
}

static void inc_rseq_check_check(const struct loop *l, uint64_t total)
{
    rseq_area_check(l, total, &rchk);
}
#else
#define HAVE_RSEQ_MIN 0
#endif

struct stripe {
    _Alignas(64) long v;
    char pad[56];
};
static struct stripe *stripes;
static long nr_stripes;

static void inc_striped_run(void *s, uint64_t n)
{
    (void)s;
    for (uint64_t i = 0; i < n; i++) {
        int cpu = sched_getcpu();
        __atomic_fetch_add(&stripes[cpu].v, 1, __ATOMIC_RELAXED);
    }
}

static void inc_striped_check(const struct loop *l, uint64_t total)
{
    long sum = 0;
    for (long i = 0; i < nr_stripes; i++) {
        sum += stripes[i].v;
        stripes[i].v = 0;
    }
    if ((uint64_t)sum != total)
        fprintf(stderr, "percpu-bench: %s: count %ld, expected %llu\n", l->name, sum,
                (unsigned long long)total);
}

void figures_inc(void)
{
    inc_cookie = PCPU_NEW(long);
    if (!inc_cookie)
        die("pcpu_alloc");
    nr_stripes = sysconf(_SC_NPROCESSORS_CONF);
    if (nr_stripes < (long)pcpu_nr_cpus())
        nr_stripes = pcpu_nr_cpus();
    stripes = aligned_alloc(64, (size_t)nr_stripes * sizeof(*stripes));
    if (!stripes)
        die("aligned_alloc");
    memset(stripes, 0, (size_t)nr_stripes * sizeof(*stripes));

    struct loop loops[7] = {
        {.name = "inc.percpu", .setup = inc_percpu_setup, .run = inc_percpu_run,
         .check = inc_percpu_check},
        {.name = "inc.atomic_shared", .run = inc_atomic_run, .check = inc_atomic_check},
        {.name = "inc.tls", .run = inc_tls_run, .teardown = inc_tls_teardown,
         .check = inc_tls_check},
        {.name = "inc.striped_getcpu", .run = inc_striped_run, .check = inc_striped_check},
    };
    size_t nl = 4;
#if HAVE_RSEQ_MIN
    struct pcpu_stats st;
    if (pcpu_stats_get(&st) == 0 && st.rseq) {
        for (size_t i = 0; i < PCPU_MAX_CPUS; i++)
            rmin.offs[i] = rchk.offs[i] = (intptr_t)(i * sizeof(rmin.lines[0]));
        loops[nl++] = (struct loop){
            .name = "inc.rseq_min", .setup = inc_rseq_min_setup,
            .run = st.index == PCPU_INDEX_CID ? inc_rseq_min_cid_run : inc_rseq_min_cpu_run,
            .check = inc_rseq_min_check};
        loops[nl++] = (struct loop){
            .name = "inc.rseq_check", .setup = inc_rseq_check_setup,
            .run = st.index == PCPU_INDEX_CID ? inc_rseq_check_cid_run
                                              : inc_rseq_check_cpu_run,
            .check = inc_rseq_check_check};
    }
#endif
    /* together: the targets are ratios between these */
    measure_1_n_together(loops, nl);
    pcpu_free(inc_cookie);
    free(stripes);
}

/* ======================================================================
 * Other this-CPU operations
 * ====================================================================== */

static long *ops_cookie;
/* xchg: values put in and taken out, over every thread (conservation) */
static uint64_t ops_in, ops_out;

struct ops_state {
    long *c;
    uint64_t in, out, ok;
};

static void *ops_setup(const struct loop *l, unsigned int tid)
{
    (void)l;
    (void)tid;
    struct ops_state *s = calloc(1, sizeof(*s));
    if (!s)
        die("calloc");
    s->c = ops_cookie;
    return s;
}

static void ops_teardown(void *p)
{
    struct ops_state *s = p;
    __atomic_fetch_add(&ops_in, s->in, __ATOMIC_RELAXED);
    __atomic_fetch_add(&ops_out, s->out + s->ok, __ATOMIC_RELAXED);
    free(s);
}

static void ops_xchg_run(void *p, uint64_t n)
{
    struct ops_state *s = p;
    long *c = s->c;
    uint64_t in = 0, out = 0;
    for (uint64_t i = 0; i < n; i++) {
        in += i;
        out += (uint64_t)pcpu_this_xchg(c, (long)i);
    }
    s->in += in;
    s->out += out;
}

static void ops_xchg_check(const struct loop *l, uint64_t total)
{
    (void)total;
    /* what went in is what came out plus what is still there */
    uint64_t left = (uint64_t)pcpu_sum(ops_cookie);
    if (ops_in != ops_out + left)
        fprintf(stderr, "percpu-bench: %s: %llu put in, %llu taken out + %llu left: "
                "EXCHANGES LOST\n", l->name, (unsigned long long)ops_in,
                (unsigned long long)ops_out, (unsigned long long)left);
    ops_in = ops_out = 0;
    pcpu_for_each_cpu(cpu) *PCPU_PTR(ops_cookie, cpu) = 0;
}

static void ops_cmpxchg_run(void *p, uint64_t n)
{
    struct ops_state *s = p;
    long *c = s->c;
    long v = pcpu_this_read(c);
    uint64_t ok = 0;
    for (uint64_t i = 0; i < n; i++) {
        long seen = pcpu_this_cmpxchg(c, v, v + 1);
        if (__builtin_expect(seen == v, 1)) {
            v++;
            ok++;
        } else {
            v = seen;
        }
    }
    s->ok += ok;
}

static void ops_cmpxchg_check(const struct loop *l, uint64_t total)
{
    (void)total;
    /* every successful compare added one */
    uint64_t sum = (uint64_t)pcpu_sum(ops_cookie);
    if (sum != ops_out)
        fprintf(stderr, "percpu-bench: %s: sum %llu, %llu successful compares: "
                "UPDATES LOST\n", l->name, (unsigned long long)sum,
                (unsigned long long)ops_out);
    ops_in = ops_out = 0;
    pcpu_for_each_cpu(cpu) *PCPU_PTR(ops_cookie, cpu) = 0;
}

void figures_ops(void)
{
    ops_cookie = PCPU_NEW(long);
    if (!ops_cookie)
        die("pcpu_alloc");
    struct loop loops[] = {
        {.name = "ops.percpu.xchg", .setup = ops_setup, .run = ops_xchg_run,
         .teardown = ops_teardown, .check = ops_xchg_check},
        {.name = "ops.percpu.cmpxchg", .setup = ops_setup, .run = ops_cmpxchg_run,
         .teardown = ops_teardown, .check = ops_cmpxchg_check},
    };
    for (size_t i = 0; i < sizeof(loops) / sizeof(loops[0]); i++)
        measure_1_n(&loops[i]);
    pcpu_free(ops_cookie);
}

/* ======================================================================
 * Lists: one pop + push pair
 * ====================================================================== */

#define LIST_NODES_PER_THREAD 64
#define LIST_MAX_THREADS 256

/* A node of every variant: the next pointer first, a payload after it. */
struct bench_node {
    struct pcpu_list_node link;
    long payload[3];
};
static struct bench_node *list_nodes;   /* LIST_MAX_THREADS * per thread */
static unsigned int list_nodes_out;     /* handed out by the setups      */

static struct bench_node *list_take_nodes(unsigned int tid)
{
    __atomic_fetch_add(&list_nodes_out, LIST_NODES_PER_THREAD, __ATOMIC_RELAXED);
    return list_nodes + (size_t)(tid % LIST_MAX_THREADS) * LIST_NODES_PER_THREAD;
}

/* Every figure checks that each node handed out is back exactly once. */
static void list_census(const struct loop *l, struct pcpu_list_node *(*next_chain)(void))
{
    unsigned int n = 0;
    for (struct pcpu_list_node *x; (x = next_chain()) != NULL;)
        for (; x; x = x->next)
            n++;
    if (n != list_nodes_out)
        fprintf(stderr, "percpu-bench: %s: %u nodes found, %u handed out: NODES LOST\n",
                l->name, n, list_nodes_out);
    list_nodes_out = 0;
}

/* -- percpu -- */
static struct pcpu_list *list_cookie;

static void *list_percpu_setup(const struct loop *l, unsigned int tid)
{
    (void)l;
    struct bench_node *nodes = list_take_nodes(tid);
    for (unsigned int i = 0; i < LIST_NODES_PER_THREAD; i++)
        pcpu_this_list_push(list_cookie, &nodes[i].link);
    return list_cookie;
}

static void list_percpu_run(void *p, uint64_t n)
{
    struct pcpu_list *l = p;
    for (uint64_t i = 0; i < n; i++) {
        struct pcpu_list_node *x = pcpu_this_list_pop(l);
        if (__builtin_expect(x != NULL, 1)) {
            escape(x);
            pcpu_this_list_push(l, x);
        }
    }
}

static unsigned int list_percpu_unit;
static struct pcpu_list_node *list_percpu_chain(void)
{
    while (list_percpu_unit < pcpu_nr_cpus()) {
        struct pcpu_list_node *x = pcpu_list_pop_all(list_cookie, list_percpu_unit++);
        if (x)
            return x;
    }
    return NULL;
}

static void list_percpu_check(const struct loop *l, uint64_t total)
{
    (void)total;
    list_percpu_unit = 0;
    list_census(l, list_percpu_chain);
}

/* -- one list under a mutex -- */
static struct {
    pthread_mutex_t lock;
    struct pcpu_list_node *head;
} list_mx = {PTHREAD_MUTEX_INITIALIZER, NULL};

static void mx_push(struct pcpu_list_node *x)
{
    pthread_mutex_lock(&list_mx.lock);
    x->next = list_mx.head;
    list_mx.head = x;
    pthread_mutex_unlock(&list_mx.lock);
}

static struct pcpu_list_node *mx_pop(void)
{
    pthread_mutex_lock(&list_mx.lock);
    struct pcpu_list_node *x = list_mx.head;
    if (x)
        list_mx.head = x->next;
    pthread_mutex_unlock(&list_mx.lock);
    return x;
}

static void *list_mutex_setup(const struct loop *l, unsigned int tid)
{
    (void)l;
    struct bench_node *nodes = list_take_nodes(tid);
    for (unsigned int i = 0; i < LIST_NODES_PER_THREAD; i++)
        mx_push(&nodes[i].link);
    return NULL;
}

static void list_mutex_run(void *p, uint64_t n)
{
    (void)p;
    for (uint64_t i = 0; i < n; i++) {
        struct pcpu_list_node *x = mx_pop();
        if (__builtin_expect(x != NULL, 1)) {
            escape(x);
            mx_push(x);
        }
    }
}

static struct pcpu_list_node *list_mutex_chain(void)
{
    struct pcpu_list_node *x = list_mx.head;
    list_mx.head = NULL;
    return x;
}

static void list_mutex_check(const struct loop *l, uint64_t total)
{
    (void)total;
    list_census(l, list_mutex_chain);
}

/* -- Treiber stack with a tag: {top, tag} swapped as one 16-byte word -- */
struct tagged {
    uintptr_t top;
    uintptr_t tag;
} __attribute__((aligned(16)));
static struct {
    struct tagged head;
    char pad[48];
} list_tr __attribute__((aligned(64)));

static inline bool cas16(struct tagged *p, struct tagged *old, struct tagged nv)
{
#if defined(__x86_64__)
    bool ok;
    __asm__ __volatile__("lock cmpxchg16b %1"
                         : "=@ccz"(ok), "+m"(*p), "+a"(old->top), "+d"(old->tag)
                         : "b"(nv.top), "c"(nv.tag)
                         : "memory");
    return ok;
#else
    /* __sync, not __atomic: compilers inline the 16-byte __sync forms
     * (aarch64: casp or ldaxp/stlxp) but call libatomic for __atomic */
    unsigned __int128 o = ((unsigned __int128)old->tag << 64) | old->top;
    unsigned __int128 n = ((unsigned __int128)nv.tag << 64) | nv.top;
    unsigned __int128 seen = __sync_val_compare_and_swap((unsigned __int128 *)(void *)p, o, n);
    old->top = (uintptr_t)seen;
    old->tag = (uintptr_t)(seen >> 64);
    return seen == o;
#endif
}

/* A torn read of the two halves only makes the compare-and-swap fail. */
static inline struct tagged tr_read(void)
{
    struct tagged t;
    t.tag = __atomic_load_n(&list_tr.head.tag, __ATOMIC_ACQUIRE);
    t.top = __atomic_load_n(&list_tr.head.top, __ATOMIC_ACQUIRE);
    return t;
}

static void tr_push(struct pcpu_list_node *x)
{
    struct tagged old = tr_read();
    for (;;) {
        __atomic_store_n(&x->next, (struct pcpu_list_node *)old.top, __ATOMIC_RELAXED);
        if (cas16(&list_tr.head, &old, (struct tagged){(uintptr_t)x, old.tag + 1}))
            return;
    }
}

static struct pcpu_list_node *tr_pop(void)
{
    struct tagged old = tr_read();
    for (;;) {
        struct pcpu_list_node *x = (struct pcpu_list_node *)old.top;
        if (!x)
            return NULL;
        /* x may be popped and pushed again meanwhile (the tag catches
         * that); nodes are never freed while the stack is in use */
        struct pcpu_list_node *next = __atomic_load_n(&x->next, __ATOMIC_RELAXED);
        if (cas16(&list_tr.head, &old, (struct tagged){(uintptr_t)next, old.tag + 1}))
            return x;
    }
}

static void *list_treiber_setup(const struct loop *l, unsigned int tid)
{
    (void)l;
    struct bench_node *nodes = list_take_nodes(tid);
    for (unsigned int i = 0; i < LIST_NODES_PER_THREAD; i++)
        tr_push(&nodes[i].link);
    return NULL;
}

static void list_treiber_run(void *p, uint64_t n)
{
    (void)p;
    for (uint64_t i = 0; i < n; i++) {
        struct pcpu_list_node *x = tr_pop();
        if (__builtin_expect(x != NULL, 1)) {
            escape(x);
            tr_push(x);
        }
    }
}

static struct pcpu_list_node *list_treiber_chain(void)
{
    struct pcpu_list_node *x = (struct pcpu_list_node *)list_tr.head.top;
    list_tr.head.top = 0;
    return x;
}

static void list_treiber_check(const struct loop *l, uint64_t total)
{
    (void)total;
    list_census(l, list_treiber_chain);
}

/* -- thread-local list -- */
static __thread struct pcpu_list_node *tls_head;
static struct pcpu_list_node *tls_gathered;

static void *list_tls_setup(const struct loop *l, unsigned int tid)
{
    (void)l;
    struct bench_node *nodes = list_take_nodes(tid);
    for (unsigned int i = 0; i < LIST_NODES_PER_THREAD; i++) {
        nodes[i].link.next = tls_head;
        tls_head = &nodes[i].link;
    }
    return NULL;
}

static void list_tls_run(void *p, uint64_t n)
{
    (void)p;
    for (uint64_t i = 0; i < n; i++) {
        struct pcpu_list_node *x = tls_head;
        if (__builtin_expect(x != NULL, 1)) {
            tls_head = x->next;
            escape(x);
            x->next = tls_head;
            tls_head = x;
        }
    }
}

/* Hand the thread's nodes over to the check. */
static pthread_mutex_t tls_gather_lock = PTHREAD_MUTEX_INITIALIZER;
static void list_tls_teardown(void *p)
{
    (void)p;
    pthread_mutex_lock(&tls_gather_lock);
    while (tls_head) {
        struct pcpu_list_node *x = tls_head;
        tls_head = x->next;
        x->next = tls_gathered;
        tls_gathered = x;
    }
    pthread_mutex_unlock(&tls_gather_lock);
}

static struct pcpu_list_node *list_tls_chain(void)
{
    struct pcpu_list_node *x = tls_gathered;
    tls_gathered = NULL;
    return x;
}

static void list_tls_check(const struct loop *l, uint64_t total)
{
    (void)total;
    list_census(l, list_tls_chain);
}

void figures_list(void)
{
    list_cookie = PCPU_NEW(struct pcpu_list);
    list_nodes = calloc((size_t)LIST_MAX_THREADS * LIST_NODES_PER_THREAD, sizeof(*list_nodes));
    if (!list_cookie || !list_nodes)
        die("allocating the lists");
    struct loop loops[] = {
        {.name = "list.percpu.push_pop", .setup = list_percpu_setup, .run = list_percpu_run,
         .check = list_percpu_check},
        {.name = "list.mutex.push_pop", .setup = list_mutex_setup, .run = list_mutex_run,
         .check = list_mutex_check},
        {.name = "list.treiber.push_pop", .setup = list_treiber_setup,
         .run = list_treiber_run, .check = list_treiber_check},
        {.name = "list.tls.push_pop", .setup = list_tls_setup, .run = list_tls_run,
         .teardown = list_tls_teardown, .check = list_tls_check},
    };
    for (size_t i = 0; i < sizeof(loops) / sizeof(loops[0]); i++)
        measure_1_n(&loops[i]);
    pcpu_free(list_cookie);
    free(list_nodes);
}

/* ======================================================================
 * Allocation
 * ====================================================================== */

#define MIXED_POOL 256

struct alloc_state {
    uint64_t seed;
    size_t size;
    size_t nr;              /* live objects (mixed, scale)               */
    void **live;
};

static void *alloc_setup(const struct loop *l, unsigned int tid)
{
    struct alloc_state *s = calloc(1, sizeof(*s));
    if (!s)
        die("calloc");
    s->seed = 0x9e3779b97f4a7c15ull * (tid + 1);
    s->size = l->arg;
    return s;
}

/*
 * The fixed-size pairs run on an object this thread used before: the setup
 * allocates one, writes it in the unit of the CPU the thread runs on (as a
 * program uses its per-CPU objects) and frees it, and the loop's
 * allocations get it back.  In an object nobody ever wrote, every unit is
 * the kernel's shared zero page; AMD Zen reads one physical page through
 * several addresses at about half speed, so the free's check for zero in
 * every unit costs about twice as much there (4 KiB, 2 units: ~120-150
 * against ~70-90 ns).
 */
static void *pair_setup(const struct loop *l, unsigned int tid)
{
    struct alloc_state *s = alloc_setup(l, tid);
    void *c = pcpu_alloc(s->size, 0);
    if (!c)
        die("pcpu_alloc");
    memset(pcpu_ptr(c, (unsigned int)online_cpu(tid)), 0xa5, s->size);
    pcpu_free(c);
    return s;
}

static void alloc_teardown(void *p)
{
    struct alloc_state *s = p;
    if (s->live) {
        for (size_t i = 0; i < s->nr; i++)
            pcpu_free(s->live[i]);
        free(s->live);
    }
    free(s);
}

static void alloc_percpu_run(void *p, uint64_t n)
{
    struct alloc_state *s = p;
    size_t size = s->size;
    for (uint64_t i = 0; i < n; i++) {
        void *c = pcpu_alloc(size, 0);
        if (__builtin_expect(!c, 0))
            die("pcpu_alloc");
        escape(c);
        pcpu_free(c);
    }
}

static inline void *mixed_alloc(uint64_t *seed)
{
    uint64_t r = rnd(seed);
    size_t size = 1 + (r % 4096);
    size_t align = (size_t)1 << ((r >> 32) % 9);   /* 1 .. 256 */
    void *c = pcpu_alloc(size, align);
    if (__builtin_expect(!c, 0))
        die("pcpu_alloc");
    return c;
}

static void *mixed_setup(const struct loop *l, unsigned int tid)
{
    struct alloc_state *s = alloc_setup(l, tid);
    s->nr = MIXED_POOL;
    s->live = malloc(s->nr * sizeof(void *));
    if (!s->live)
        die("malloc");
    for (size_t i = 0; i < s->nr; i++)
        s->live[i] = mixed_alloc(&s->seed);
    return s;
}

static void mixed_run(void *p, uint64_t n)
{
    struct alloc_state *s = p;
    for (uint64_t i = 0; i < n; i++) {
        size_t k = rnd(&s->seed) % s->nr;
        pcpu_free(s->live[k]);
        s->live[k] = mixed_alloc(&s->seed);
    }
}

static void malloc_run(void *p, uint64_t n)
{
    (void)p;
    for (uint64_t i = 0; i < n; i++) {
        void *m = malloc(8);
        if (__builtin_expect(!m, 0))
            die("malloc");
        escape(m);
        free(m);
    }
}

/* The floor of a 4 KiB pair: what any allocator that hands out zeroed
 * per-CPU memory without dirtying untouched pages must do once per pair,
 * read the object in every unit to see whether it needs zeroing.  Read
 * here as fast as this machine reads (the library's own check works the
 * same way): the bytes ORed into four independent vector accumulators, so
 * that loads issue back to back.  alloc.percpu.4096 is measured against
 * it. */
/* One template for every width: VT the vector type, BLOCK the bytes ORed
 * before each test, NONZERO that test; the rest is the function's
 * attributes (its instruction set). */
#define ZC_ZERO_FN(NAME, VT, BLOCK, NONZERO, ...)                                         \
    __VA_ARGS__ static bool NAME(const char *p, size_t bytes)                             \
    {                                                                                     \
        enum { per_block = BLOCK / sizeof(VT) };                                          \
        for (; bytes >= BLOCK; p += BLOCK, bytes -= BLOCK) {                              \
            const VT *v = (const VT *)(const void *)p;                                    \
            VT a = v[0], b = v[1], c = v[2], d = v[3];                                    \
            _Pragma("GCC unroll 8") for (int k = 4; k < per_block; k += 4)                \
            {                                                                             \
                a |= v[k];                                                                \
                b |= v[k + 1];                                                            \
                c |= v[k + 2];                                                            \
                d |= v[k + 3];                                                            \
            }                                                                             \
            if (NONZERO((a | b) | (c | d)))                                               \
                return false;                                                             \
        }                                                                                 \
        return true; /* 4096 bytes: no tail */                                            \
    }

typedef uint64_t zc_v16 __attribute__((vector_size(16), aligned(4), may_alias));
#define ZC_NONZERO_V16(o) (((o)[0] | (o)[1]) != 0)
ZC_ZERO_FN(zc_zero_v16, zc_v16, 256, ZC_NONZERO_V16)

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#include <immintrin.h>
typedef uint64_t zc_v32 __attribute__((vector_size(32), aligned(4), may_alias));
#define ZC_NONZERO_V32(o) (((o)[0] | (o)[1] | (o)[2] | (o)[3]) != 0)
ZC_ZERO_FN(zc_zero_v32, zc_v32, 1024, ZC_NONZERO_V32, __attribute__((target("avx2"))))

typedef uint64_t zc_v64 __attribute__((vector_size(64), aligned(4), may_alias));
#define ZC_NONZERO_V64(o) (_mm512_test_epi64_mask((__m512i)(o), (__m512i)(o)) != 0)
ZC_ZERO_FN(zc_zero_v64, zc_v64, 1024, ZC_NONZERO_V64, __attribute__((target("avx512f"))))

/* 64-byte vectors where the library takes them (units.c says why: cores
 * that keep their clock under AVX-512). */
static bool zc_wide(void)
{
    if (!__builtin_cpu_supports("avx512f"))
        return false;
    unsigned int a, b, c, d;
    return (__get_cpuid_count(7, 1, &a, &b, &c, &d) && (a & (1u << 4))) ||
           __builtin_cpu_is("amd");
}

/* The width the check uses: 64, 32 or 16 bytes (figures_alloc sets it). */
static unsigned int zc_width = 16;
#endif

static void zc_choose(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
    zc_width = zc_wide() ? 64 : __builtin_cpu_supports("avx2") ? 32 : 16;
#endif
}

static bool zc_zero(const char *p, size_t bytes)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (zc_width == 64)
        return zc_zero_v64(p, bytes);
    if (zc_width == 32)
        return zc_zero_v32(p, bytes);
#endif
    return zc_zero_v16(p, bytes);
}

/* Written (with zeroes) in this thread's CPU's unit, as the pair's object
 * (pair_setup). */
static void *zerocheck_setup(const struct loop *l, unsigned int tid)
{
    (void)l;
    void *c = pcpu_alloc(4096, 0);
    if (!c)
        die("pcpu_alloc");
    memset(pcpu_ptr(c, (unsigned int)online_cpu(tid)), 0, 4096);
    return c;
}

static void zerocheck_teardown(void *p)
{
    pcpu_free(p);
}

static void zerocheck_run(void *p, uint64_t n)
{
    unsigned int units = pcpu_nr_cpus();
    for (uint64_t i = 0; i < n; i++) {
        bool zero = true;
        for (unsigned int u = 0; u < units; u++)
            zero &= zc_zero(pcpu_ptr(p, u), 4096);
        if (__builtin_expect(!zero, 0))
            die("zerocheck: object not zero");
        escape(p);
    }
}

static size_t padded_bytes;

static void padded_run(void *p, uint64_t n)
{
    (void)p;
    size_t bytes = padded_bytes;
    for (uint64_t i = 0; i < n; i++) {
        void *m = aligned_alloc(64, bytes);
        if (__builtin_expect(!m, 0))
            die("aligned_alloc");
        memset(m, 0, bytes);
        escape(m);
        free(m);
    }
}

void figures_alloc(void)
{
    zc_choose();
    padded_bytes = (size_t)pcpu_nr_cpus() * 64;
    struct loop loops[] = {
        {.name = "alloc.percpu.8", .setup = pair_setup, .run = alloc_percpu_run,
         .teardown = alloc_teardown, .arg = 8},
        {.name = "alloc.percpu.64", .setup = pair_setup, .run = alloc_percpu_run,
         .teardown = alloc_teardown, .arg = 64},
        {.name = "alloc.percpu.256", .setup = pair_setup, .run = alloc_percpu_run,
         .teardown = alloc_teardown, .arg = 256},
        {.name = "alloc.percpu.4096", .setup = pair_setup, .run = alloc_percpu_run,
         .teardown = alloc_teardown, .arg = 4096},
        {.name = "alloc.percpu.mixed", .setup = mixed_setup, .run = mixed_run,
         .teardown = alloc_teardown},
        {.name = "alloc.malloc.8", .run = malloc_run},
        {.name = "alloc.padded.8", .run = padded_run},
        {.name = "alloc.zerocheck.4096", .setup = zerocheck_setup, .run = zerocheck_run,
         .teardown = zerocheck_teardown},
    };
    /* The fixed sizes with their baselines, interleaved; the mixed pool on
     * its own (its live objects would change the others' maps). */
    struct loop *mixed = &loops[4];
    /* The zero check's setup keeps its object: it runs before the 4 KiB
     * pair's, so that it does not take the object the pair's setup wrote
     * and freed (pair_setup). */
    struct loop fixed[] = {loops[0], loops[5], loops[6], loops[1], loops[2], loops[7], loops[3]};
    measure_1_n_together(fixed, sizeof(fixed) / sizeof(fixed[0]));
    /* Its target compares T=2 with T=1: their repetitions alternate. */
    if (name_selected(mixed->name)) {
        if (nthreads_all() > 1)
            measure_1_n_alternating(mixed, nthreads_all());
        else
            measure(mixed, 1);
    }
}

/* ======================================================================
 * Bulk: the kernel's bitmap-allocator pattern
 * ====================================================================== */

#define BULK_OBJECTS 1000000

/*
 * One repetition allocates BULK_OBJECTS objects of @size, then frees them
 * in the order they were allocated, timing the two phases apart: free has
 * to be at least as cheap as allocation, in bulk as one by one.  The
 * repetitions reuse the populated pages of the ones before (as a program
 * that does this repeatedly would); the first is a warm-up.
 */
static void bulk_measure(size_t size)
{
    char an[48], fn[48];
    snprintf(an, sizeof(an), "alloc.percpu.bulk_%zu", size);
    snprintf(fn, sizeof(fn), "free.percpu.bulk_%zu", size);
    if (!name_selected(an) && !name_selected(fn))
        return;
    progress("%s and %s, 1 thread", an, fn);
    void **v = malloc(BULK_OBJECTS * sizeof(void *));
    if (!v)
        die("malloc");
    unsigned int reps = bench_opts.reps;
    double at[BENCH_MAX_REPS + 1], ft[BENCH_MAX_REPS + 1];
    double awall[BENCH_MAX_REPS + 1], fwall[BENCH_MAX_REPS + 1];
    for (unsigned int rep = 0; rep <= reps; rep++) {
        double w0 = now_ns(), c0 = thread_cpu_ns();
        for (size_t i = 0; i < BULK_OBJECTS; i++) {
            v[i] = pcpu_alloc(size, 0);
            if (__builtin_expect(!v[i], 0))
                die("pcpu_alloc");
        }
        double w1 = now_ns(), c1 = thread_cpu_ns();
        for (size_t i = 0; i < BULK_OBJECTS; i++)
            pcpu_free(v[i]);
        double w2 = now_ns(), c2 = thread_cpu_ns();
        at[rep] = (c1 - c0) / BULK_OBJECTS;
        ft[rep] = (c2 - c1) / BULK_OBJECTS;
        awall[rep] = (w1 - w0) / BULK_OBJECTS;
        fwall[rep] = (w2 - w1) / BULK_OBJECTS;
    }
    free(v);
    const char *names[2] = {an, fn};
    double *cpu[2] = {at, ft}, *wall[2] = {awall, fwall};
    for (int k = 0; k < 2; k++) {
        struct result *r = result_add(names[k], 1, "ns/op");
        double x, *val = bench_opts.wall ? wall[k] : cpu[k];
        double *other = bench_opts.wall ? cpu[k] : wall[k];
        stats_of(val + 1, reps, &r->value, &r->min, &r->max, &r->rmad);
        stats_of(other + 1, reps, bench_opts.wall ? &r->cpu : &r->wall, &x, &x, &x);
        if (bench_opts.wall)
            r->wall = r->value;
        else
            r->cpu = r->value;
        r->oncpu = r->wall > 0 ? r->cpu / r->wall : 1;
        r->reps = reps;
        r->iters = BULK_OBJECTS;
    }
    pcpu_reclaim(true);
}

void figures_bulk(void)
{
    bulk_measure(4);
    bulk_measure(1024);
}

/* ======================================================================
 * Scale: cost of a pair with many live objects
 * ====================================================================== */

#define SCALE_WINDOW 4096

static void *scale_setup(const struct loop *l, unsigned int tid)
{
    struct alloc_state *s = alloc_setup(l, tid);
    s->nr = l->arg;
    s->live = malloc((s->nr + SCALE_WINDOW) * sizeof(void *));
    if (!s->live)
        die("malloc");
    for (size_t i = 0; i < s->nr + SCALE_WINDOW; i++) {
        s->live[i] = pcpu_alloc(8, 0);
        if (!s->live[i])
            die("pcpu_alloc");
    }
    return s;
}

/* The FIFO window: live[nr .. nr + SCALE_WINDOW) cycles, oldest first, 64
 * at a time: 64 frees then 64 allocations, twice what a thread cache
 * holds, so every group goes through the allocation map. */
#define SCALE_GROUP 64
static void scale_run(void *p, uint64_t n)
{
    struct alloc_state *s = p;
    void **win = s->live + s->nr;
    for (uint64_t done = 0; done < n; done += SCALE_GROUP) {
        size_t base = (size_t)(s->seed++ % (SCALE_WINDOW / SCALE_GROUP)) * SCALE_GROUP;
        for (size_t k = base; k < base + SCALE_GROUP; k++)
            pcpu_free(win[k]);
        for (size_t k = base; k < base + SCALE_GROUP; k++) {
            win[k] = pcpu_alloc(8, 0);
            if (__builtin_expect(!win[k], 0))
                die("pcpu_alloc");
        }
    }
}

static void scale_random_run(void *p, uint64_t n)
{
    struct alloc_state *s = p;
    for (uint64_t i = 0; i < n; i++) {
        size_t k = rnd(&s->seed) % s->nr;
        pcpu_free(s->live[k]);
        s->live[k] = pcpu_alloc(8, 0);
        if (__builtin_expect(!s->live[k], 0))
            die("pcpu_alloc");
    }
}

static void scale_teardown(void *p)
{
    struct alloc_state *s = p;
    for (size_t i = s->nr; i < s->nr + SCALE_WINDOW; i++)
        pcpu_free(s->live[i]);
    alloc_teardown(p);
    pcpu_reclaim(true);
}

void figures_scale(void)
{
    struct loop loops[] = {
        {.name = "scale.percpu.live_1000", .arg = 1000},
        {.name = "scale.percpu.live_100000", .arg = 100000},
        {.name = "scale.percpu.live_1000000", .arg = 1000000},
        {.name = "scale.percpu.random_live_1000", .arg = 1000},
        {.name = "scale.percpu.random_live_1000000", .arg = 1000000},
    };
    for (size_t i = 0; i < sizeof(loops) / sizeof(loops[0]); i++) {
        loops[i].setup = scale_setup;
        loops[i].run = strstr(loops[i].name, "random") ? scale_random_run : scale_run;
        loops[i].teardown = scale_teardown;
    }
    /* The target compares live_1000000 with live_1000: the live_N
     * repetitions alternate, each on its own fresh set of live objects
     * (with the sets live at once, the 1k figure would work around 1M
     * objects too). */
    struct loop *live[3];
    unsigned int nl = 0;
    for (size_t i = 0; i < 3; i++)
        if (name_selected(loops[i].name))
            live[nl++] = &loops[i];
    measure_alternating(live, nl, 1);
    for (size_t i = 3; i < sizeof(loops) / sizeof(loops[0]); i++)
        if (name_selected(loops[i].name))
            measure(&loops[i], 1);
}

/* ======================================================================
 * Memory
 * ====================================================================== */

#define MEM_OBJECTS 1000000

/* One memory figure: measured once (memory use does not vary between
 * runs), so min, max and median are the same value. */
static struct result *mem_result(const char *name, long kb, double ideal, const char *source)
{
    struct result *r = result_add(name, 1, "kB");
    r->value = r->min = r->max = r->rss_kb = (double)kb;
    r->ideal = ideal;
    r->ratio = r->value / ideal;
    r->reps = 1;
    r->iters = MEM_OBJECTS;
    r->source = source;
    return r;
}

void figures_mem(void)
{
    unsigned int units = pcpu_nr_cpus();
    double ideal = (double)MEM_OBJECTS * 8 * units / 1024;
    void **v = malloc(MEM_OBJECTS * sizeof(void *));
    if (!v)
        die("malloc");
    /* resident before we start: not 0, or malloc+memset becomes calloc
     * and the array's pages would be counted in the deltas below */
    memset(v, 0xff, MEM_OBJECTS * sizeof(void *));

    if (name_selected("mem.percpu.1M_x8")) {
        progress("mem.percpu.1M_x8");
        pcpu_reclaim(true);
        struct pcpu_stats a, b;
        pcpu_stats_get(&a);
        long rss0 = vm_rss_kb();
        for (size_t i = 0; i < MEM_OBJECTS; i++) {
            long *c = pcpu_alloc(8, 0);
            if (!c)
                die("pcpu_alloc");
            for (unsigned int cpu = 0; cpu < units; cpu++)
                *PCPU_PTR(c, cpu) = (long)i;
            v[i] = c;
        }
        long rss1 = vm_rss_kb();
        pcpu_stats_get(&b);
        struct result *r = mem_result("mem.percpu.1M_x8", rss1 - rss0, ideal,
                                      "VmRSS delta (includes allocator metadata)");
        /* the allocator's own view, as extras in the JSON */
        r->pcpu_resident_kb = ((double)b.resident_bytes - (double)a.resident_bytes) / 1024;
        r->pcpu_metadata_kb = ((double)b.metadata_bytes - (double)a.metadata_bytes) / 1024;
        for (size_t i = 0; i < MEM_OBJECTS; i++)
            pcpu_free(v[i]);
        pcpu_reclaim(true);
    }

    if (name_selected("mem.padded.1M_x8")) {
        progress("mem.padded.1M_x8");
        size_t bytes = (size_t)units * 64;
        long rss0 = vm_rss_kb();
        for (size_t i = 0; i < MEM_OBJECTS; i++) {
            char *m = aligned_alloc(64, bytes);
            if (!m)
                die("aligned_alloc");
            for (unsigned int cpu = 0; cpu < units; cpu++)
                *(long *)(m + (size_t)cpu * 64) = (long)i;
            v[i] = m;
        }
        long rss1 = vm_rss_kb();
        mem_result("mem.padded.1M_x8", rss1 - rss0, ideal, "VmRSS delta");
        for (size_t i = 0; i < MEM_OBJECTS; i++)
            free(v[i]);
    }
    free(v);
}

/* ======================================================================
 * A state worth drawing: pages in every state, several chunks
 * ====================================================================== */

struct demo {
    size_t nr;
    void *live[];
};

void *chunkmap_demo_state(void)
{
    enum { N = 6000 };
    struct demo *d = malloc(sizeof(*d) + N * sizeof(void *));
    if (!d)
        die("malloc");
    uint64_t seed = 42;
    d->nr = 0;
    /* a run of small objects fills pages completely */
    for (int i = 0; i < 2048; i++)
        d->live[d->nr++] = pcpu_alloc(8, 0);
    /* random sizes, then free most of them: partly used and empty pages */
    size_t first = d->nr;
    for (int i = 0; i < N - 2048; i++)
        d->live[d->nr++] = mixed_alloc(&seed);
    for (size_t i = first; i < d->nr; i++)
        if (rnd(&seed) % 100 < 60) {
            pcpu_free(d->live[i]);
            d->live[i] = NULL;
        }
    return d;
}

void chunkmap_demo_free(void *h)
{
    struct demo *d = h;
    for (size_t i = 0; i < d->nr; i++)
        pcpu_free(d->live[i]);
    free(d);
    pcpu_reclaim(true);
}
