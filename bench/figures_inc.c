/* SPDX-License-Identifier: MIT */
/*
 * figures_inc.c - one increment of a counter, ns per op per thread: the
 * this-CPU fast path against what a user would write instead, and against
 * the least any rseq sequence can do.
 *
 *   inc.percpu          pcpu_this_inc() on a pcpu_alloc'd long
 *   inc.rseq_min        a hand-written sequence that arms rseq_cs, then
 *                       inside the critical section loads the index
 *                       (cpu_id, or mm_cid in cid mode), the unit's offset
 *                       from a table, adds and commits: the shape the
 *                       library's sequences had until 0.3, kept as a
 *                       baseline (x86_64 with glibc's rseq area)
 *   inc.rseq_cmp        the floor of the library's sequence shape (and
 *                       librseq's): read the index and the unit's offset
 *                       before the critical section, and inside only
 *                       compare the index word with what was read, then
 *                       add and commit (x86_64 with glibc's rseq area)
 *   inc.rseq_check      rseq_min and a word of the thread's own compared
 *                       with the index in the sequence (the library's
 *                       sequence before it dropped its per-thread limit;
 *                       not a target)
 *   inc.atomic_shared   one shared counter, atomic add (lock xadd)
 *   inc.tls             a __thread long, plain increment kept in memory by
 *                       an empty asm (cannot be removed)
 *   inc.striped_getcpu  sched_getcpu() + atomic add into a
 *                       cache-line-padded array indexed by CPU
 *
 * All run together (repetitions interleaved) at T=1 and T=all, since the
 * targets are ratios between them.  Each checks its count after the
 * measurement (the sum must equal the increments done), so a broken fast
 * path cannot look fast.
 */
#define _GNU_SOURCE
#include "bench.h"

#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "percpu.h"

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
static struct rmin_area rmin, rchk, rcmp;

/* inc.rseq_check: rseq_min plus one word of the thread's own compared
 * with the index inside the sequence: the library's sequence until it
 * stopped enrolling threads (a per-thread limit, zero until the thread's
 * first visit to the slow path).  Not a target: it shows what that one
 * load cost, which the library no longer pays (percpu.h, PCPU__RSEQ_HEAD). */
static __thread uint32_t rchk_limit __attribute__((tls_model("initial-exec")));

/* The descriptor of a sequence (label 3: the section [1, 2), abort at 4),
 * and the end of the section with the abort handler (after the signature
 * glibc registered), which starts again at TO. */
#define RSEQ_DESCRIPTOR                                                       \
    ".pushsection __rseq_cs, \"aw\"\n\t"                                      \
    ".balign 32\n"                                                            \
    "3:\n\t"                                                                  \
    ".long 0, 0\n\t"                                                          \
    ".quad 1f, 2f - 1f, 4f\n\t"                                               \
    ".popsection\n"
#define RSEQ_ABORT_TO(TO)                                                     \
    "2:\n\t"                                                                  \
    ".pushsection __rseq_failure, \"ax\"\n\t"                                 \
    ".long 0x53053053\n"                                                      \
    "4:\n\t"                                                                  \
    "jmp " TO "\n\t"                                                          \
    ".popsection\n"

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
            RSEQ_DESCRIPTOR                                                   \
            "0:\n\t"                                                          \
            "leaq 3b(%%rip), %[tmp]\n\t"                                      \
            "movq %[tmp], %%fs:8(%[rs])\n"                                    \
            "1:\n\t"                                                          \
            "movl %%fs:" #DISP "(%[rs]), %k[tmp]\n\t"                         \
            CHECK                                                             \
            "movq (%[tab], %[tmp], 8), %[tmp]\n\t"                            \
            "addq $1, (%[base], %[tmp])\n"                                    \
            RSEQ_ABORT_TO("0b")                                               \
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

/*
 * inc.rseq_cmp: the index word and the unit's offset are read before the
 * critical section, so no load inside it feeds the address of the commit;
 * inside, the index word is read again and compared with the first read
 * (a migration between the two sends it back to the start, as the abort
 * handler does).  librseq's percpu operations have this shape.
 */
#define RSEQ_CMP_LOOP(NAME, DISP, AREA)                                       \
static void NAME(void *s, uint64_t n)                                         \
{                                                                             \
    (void)s;                                                                  \
    char *rs = (char *)(uintptr_t)__rseq_offset;                              \
    for (uint64_t i = 0; i < n; i++) {                                        \
        uintptr_t idx, off, tmp;                                              \
        __asm__ __volatile__(                                                 \
            RSEQ_DESCRIPTOR                                                   \
            "5:\n\t"                                                          \
            "movl %%fs:" #DISP "(%[rs]), %k[idx]\n\t"                         \
            "movq (%[tab], %[idx], 8), %[off]\n\t"                            \
            "leaq 3b(%%rip), %[tmp]\n\t"                                      \
            "movq %[tmp], %%fs:8(%[rs])\n"                                    \
            "1:\n\t"                                                          \
            "cmpl %k[idx], %%fs:" #DISP "(%[rs])\n\t"                         \
            "jne 4f\n\t"                                                      \
            "addq $1, (%[base], %[off])\n"                                    \
            RSEQ_ABORT_TO("5b")                                               \
            : [idx] "=&r"(idx), [off] "=&r"(off), [tmp] "=&r"(tmp),           \
              "+m"(AREA.lines)                                                \
            : [rs] "r"(rs), [tab] "r"(AREA.offs), [base] "r"(AREA.lines)      \
            : "cc");                                                          \
    }                                                                         \
}
RSEQ_CMP_LOOP(inc_rseq_cmp_cpu_run, 4, rcmp)
RSEQ_CMP_LOOP(inc_rseq_cmp_cid_run, 24, rcmp)

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

static void inc_rseq_cmp_check(const struct loop *l, uint64_t total)
{
    rseq_area_check(l, total, &rcmp);
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

    struct loop loops[8] = {
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
            rmin.offs[i] = rchk.offs[i] = rcmp.offs[i] = (intptr_t)(i * sizeof(rmin.lines[0]));
        loops[nl++] = (struct loop){
            .name = "inc.rseq_min", .setup = inc_rseq_min_setup,
            .run = st.index == PCPU_INDEX_CID ? inc_rseq_min_cid_run : inc_rseq_min_cpu_run,
            .check = inc_rseq_min_check};
        loops[nl++] = (struct loop){
            .name = "inc.rseq_cmp", .setup = inc_rseq_min_setup,
            .run = st.index == PCPU_INDEX_CID ? inc_rseq_cmp_cid_run : inc_rseq_cmp_cpu_run,
            .check = inc_rseq_cmp_check};
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
