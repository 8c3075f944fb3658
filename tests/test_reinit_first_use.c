/* SPDX-License-Identifier: MIT */
/* test_reinit_first_use.c - after pcpu_exit(), the first use of a static variable through PCPU_VAR works and never writes outside live per-CPU memory. */
#include "child.h"

#include <stdbool.h>
#include <sys/mman.h>

/*
 * pcpu_exit() takes the static variables' copies away with the first
 * chunk; the next operation initialises the allocator again and lays them
 * out anew.  PCPU_VAR(x) is evaluated before the operation runs, so the
 * operation must not act on the cookie of the old layout: that would read
 * or write where the old chunk was, or beyond it.
 *
 * To see such a stray access, each scenario maps the address range of the
 * old first chunk itself, and what is free of the range just after it (so
 * that nothing else lands there, the new chunk included), fills them with
 * a pattern, and checks after the first use that the pattern is intact
 * and that the operation's effect is in the variable.  The same after an
 * explicit pcpu_init() with another layout.  Each runs in a forked child
 * that must exit with status 0 (a stray write may also crash it).
 */

#define INIT_VALUE 3L
#define PATTERN 0x5ca1ab1e0ddba11ull

PCPU_DEFINE(long, rx) = INIT_VALUE;
PCPU_DEFINE(int, rx_int) = -8;
PCPU_DEFINE(long, rx_zero);

/* The range the first chunk occupies now. */
struct range {
    char *base;
    size_t len;
};

static struct range first_chunk(void)
{
    struct pcpu_chunk_info info;
    child_check(pcpu_chunk_info(0, &info) == 0, "pcpu_chunk_info: %s", strerror(errno));
    free(info.page_state);
    child_check(info.first, "chunk 0 is not the first chunk");
    struct range r = {info.base, ((size_t)pcpu_nr_cpus() + 1) * info.unit_size};
    return r;
}

/* The ranges a scenario maps itself: the old first chunk's, and what is
 * free of the range just after it. */
struct blocked {
    struct range old, after;
};

/* Start of the first mapping that ends above @addr (UINTPTR_MAX if
 * none). */
static uintptr_t next_mapping(uintptr_t addr)
{
    FILE *f = fopen("/proc/self/maps", "r");
    child_check(f != NULL, "/proc/self/maps: %s", strerror(errno));
    uintptr_t best = UINTPTR_MAX;
    unsigned long lo, hi;
    char line[512];
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && hi > addr && lo < best)
            best = lo;
    fclose(f);
    return best;
}

static void fill(struct range r)
{
    uint64_t *w = (uint64_t *)r.base;
    for (size_t i = 0; i < r.len / sizeof(*w); i++)
        w[i] = PATTERN;
}

/*
 * Map the old first chunk's range ourselves, filled with the pattern (exit
 * the child with CHILD_SKIP if the system will not map it there), and as
 * much of the following @after bytes as no other mapping holds: a stale
 * cookie plus the new layout's unit offsets lands at most that far (the
 * new layout's span) past the old chunk's start.  Nothing else, the new
 * chunk included, can be placed there meanwhile.
 */
static struct blocked block(struct range old, size_t after)
{
    struct blocked b = {old, {old.base + old.len, 0}};
    void *p = mmap(old.base, old.len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (p == MAP_FAILED || p != old.base) {
        if (p != MAP_FAILED)
            munmap(p, old.len);
        fprintf(stderr, "cannot map the old chunk's range %p+%#zx: skipped\n", (void *)old.base,
                old.len);
        _exit(CHILD_SKIP);
    }
    fill(b.old);
    uintptr_t end = (uintptr_t)b.after.base;
    uintptr_t next = next_mapping(end);
    size_t len = next > end ? (size_t)(next - end) : 0;
    if (len > after)
        len = after;
    if (len) {
        p = mmap(b.after.base, len, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
        if (p == b.after.base) {
            b.after.len = len;
            fill(b.after);
        } else if (p != MAP_FAILED) {
            munmap(p, len);
        }
    }
    return b;
}

static void check_range(struct range r, const char *where, const char *what)
{
    const uint64_t *w = (const uint64_t *)r.base;
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < r.len / sizeof(*w); i++)
        if (w[i] != PATTERN && bad++ == 0)
            first = i;
    child_check(bad == 0, "%s: %zu words changed %s (%p+%#zx); the first at offset %#zx holds %#llx",
                what, bad, where, (void *)r.base, r.len, first * sizeof(*w),
                (unsigned long long)w[first]);
    child_check(r.len == 0 || (!pcpu_is_percpu_address(r.base) &&
                               !pcpu_is_percpu_address(r.base + r.len - 1)),
                "%s: the new layout overlaps the range the test mapped", what);
}

static void check_and_unblock(struct blocked b, const char *what)
{
    check_range(b.old, "where the old first chunk was", what);
    check_range(b.after, "just after the old first chunk", what);
    munmap(b.old.base, b.old.len);
    if (b.after.len)
        munmap(b.after.base, b.after.len);
}

/* Span of the layout a first use without pcpu_init() picks: the default
 * unit size (1 MiB) for every possible CPU, plus the guard. */
static size_t default_span(void)
{
    return ((size_t)tu_possible_cpus() + 1) << 20;
}

/* Every unit of the static variables at its initial value. */
static void check_initial(const char *what)
{
    pcpu_for_each_cpu(cpu)
    {
        child_check(*PCPU_PTR(PCPU_VAR(rx), cpu) == INIT_VALUE, "%s: unit %u of rx is %ld", what,
                    cpu, *PCPU_PTR(PCPU_VAR(rx), cpu));
        child_check(*PCPU_PTR(PCPU_VAR(rx_int), cpu) == -8, "%s: unit %u of rx_int is %d", what,
                    cpu, *PCPU_PTR(PCPU_VAR(rx_int), cpu));
        child_check(*PCPU_PTR(PCPU_VAR(rx_zero), cpu) == 0, "%s: unit %u of rx_zero is %ld",
                    what, cpu, *PCPU_PTR(PCPU_VAR(rx_zero), cpu));
    }
}

enum first_use {
    USE_INC,
    USE_ADD,
    USE_ADD_RETURN,
    USE_WRITE,
    USE_CMPXCHG,
    USE_READ,
    USE_SUM,
    USE_THIS_PTR,
};

static const char *const use_names[] = {
    "pcpu_this_inc", "pcpu_this_add",   "pcpu_this_add_return", "pcpu_this_write",
    "pcpu_this_cmpxchg", "pcpu_this_read", "pcpu_sum", "pcpu_this_ptr",
};

/* The first use after pcpu_exit(), and what pcpu_sum(PCPU_VAR(rx)) must
 * then be, as a difference from INIT_VALUE * units.  Checks what the
 * operation returned. */
static long first_use(enum first_use use)
{
    const char *what = use_names[use];
    switch (use) {
    case USE_INC:
        pcpu_this_inc(PCPU_VAR(rx));
        return 1;
    case USE_ADD:
        pcpu_this_add(PCPU_VAR(rx), 5L);
        return 5;
    case USE_ADD_RETURN: {
        long v = pcpu_this_add_return(PCPU_VAR(rx), 5L);
        child_check(v == INIT_VALUE + 5, "%s returned %ld, want %ld", what, v, INIT_VALUE + 5);
        return 5;
    }
    case USE_WRITE:
        pcpu_this_write(PCPU_VAR(rx), 1000L);
        return 1000 - INIT_VALUE;
    case USE_CMPXCHG: {
        long v = pcpu_this_cmpxchg(PCPU_VAR(rx), INIT_VALUE, INIT_VALUE + 7);
        child_check(v == INIT_VALUE, "%s saw %ld, want %ld", what, v, INIT_VALUE);
        return 7;
    }
    case USE_READ: {
        long v = pcpu_this_read(PCPU_VAR(rx));
        child_check(v == INIT_VALUE, "%s returned %ld, want %ld", what, v, INIT_VALUE);
        return 0;
    }
    case USE_SUM: {
        long v = pcpu_sum(PCPU_VAR(rx));
        long want = INIT_VALUE * (long)pcpu_nr_cpus();
        child_check(v == want, "%s returned %ld, want %ld", what, v, want);
        return 0;
    }
    case USE_THIS_PTR: {
        long *p = pcpu_this_ptr(PCPU_VAR(rx));
        child_check(pcpu_is_percpu_address(p), "%s returned %p, not per-CPU memory", what,
                    (void *)p);
        child_check(*p == INIT_VALUE, "*%s is %ld, want %ld", what, *p, INIT_VALUE);
        /* Only this thread touches the variable: a plain store is fine. */
        *p += 1;
        return 1;
    }
    }
    return 0;
}

/* Use the allocator, exit, block the old range, first use, check. */
static void exit_then_first_use(enum first_use use)
{
    const char *what = use_names[use];
    pcpu_this_inc(PCPU_VAR(rx_zero)); /* in use, on the current layout */
    struct range old = first_chunk();
    pcpu_exit();
    struct blocked b = block(old, default_span());
    long delta = first_use(use);
    long units = (long)pcpu_nr_cpus();
    check_and_unblock(b, what);
    long sum = pcpu_sum(PCPU_VAR(rx));
    child_check(sum == INIT_VALUE * units + delta, "after %s as the first use: sum %ld, want %ld",
                what, sum, INIT_VALUE * units + delta);
    child_check(pcpu_sum(PCPU_VAR(rx_zero)) == 0, "after %s: rx_zero is not back at 0", what);
    child_check(pcpu_sum(PCPU_VAR(rx_int)) == -8 * (int)units, "after %s: rx_int sum %d", what,
                pcpu_sum(PCPU_VAR(rx_int)));
    /* And the variable goes on working. */
    pcpu_this_inc(PCPU_VAR(rx));
    child_check(pcpu_sum(PCPU_VAR(rx)) == INIT_VALUE * units + delta + 1,
                "after %s: a second operation is lost", what);
}

static void first_use_child(void *arg)
{
    exit_then_first_use(*(const enum first_use *)arg);
}

#define FIRST_USE_TEST(name, use)                                               \
    static void name(void **state)                                              \
    {                                                                           \
        (void)state;                                                            \
        static const enum first_use u = use;                                    \
        run_in_child(#name, first_use_child, (void *)&u);                       \
    }
FIRST_USE_TEST(test_exit_then_this_inc_as_first_use, USE_INC)
FIRST_USE_TEST(test_exit_then_this_add_as_first_use, USE_ADD)
FIRST_USE_TEST(test_exit_then_this_add_return_as_first_use, USE_ADD_RETURN)
FIRST_USE_TEST(test_exit_then_this_write_as_first_use, USE_WRITE)
FIRST_USE_TEST(test_exit_then_this_cmpxchg_as_first_use, USE_CMPXCHG)
FIRST_USE_TEST(test_exit_then_this_read_as_first_use, USE_READ)
FIRST_USE_TEST(test_exit_then_sum_as_first_use, USE_SUM)
FIRST_USE_TEST(test_exit_then_this_ptr_as_first_use, USE_THIS_PTR)

/* 20 exits, each followed by a first use through an operation (all kinds
 * in turn), on alternating configurations: the one before the exit is not
 * always the default the next first use picks. */
static void repeated_child(void *arg)
{
    (void)arg;
    for (int i = 0; i < 20; i++) {
        if (i % 4 == 3) {
            /* An explicit configuration with another unit size; its layout
             * is what the next exit leaves stale. */
            struct pcpu_config cfg = child_env_config();
            cfg.unit_size = 256 * 1024;
            pcpu_exit();
            child_check(pcpu_init(&cfg) == 0, "pcpu_init: %s", strerror(errno));
            check_initial("after pcpu_init");
        }
        exit_then_first_use((enum first_use)(i % 8));
    }
}

static void test_repeated_exit_and_first_use(void **state)
{
    (void)state;
    run_in_child("20 exits and first uses", repeated_child, NULL);
}

/* pcpu_exit(), then pcpu_init() with another layout: operations through
 * PCPU_VAR work and the statics start from their initial values. */
static void reinit_child(void *arg)
{
    (void)arg;
    static const struct {
        size_t unit_size;
        unsigned int nr_cpus;
    } cfgs[] = {{256 * 1024, 0}, {128 * 1024, 3}, {256 * 1024, 64}, {0, 64}, {0, 0}};
    for (size_t k = 0; k < sizeof(cfgs) / sizeof(cfgs[0]); k++) {
        pcpu_this_add(PCPU_VAR(rx), 100L);
        pcpu_this_inc(PCPU_VAR(rx_zero));
        struct range old = first_chunk();
        pcpu_exit();
        struct pcpu_config cfg = child_env_config();
        cfg.unit_size = cfgs[k].unit_size;
        cfg.nr_cpus = cfgs[k].nr_cpus;
        size_t span = ((size_t)(cfg.nr_cpus ? cfg.nr_cpus : tu_possible_cpus()) + 1) *
                      (cfg.unit_size ? cfg.unit_size : (size_t)1 << 20);
        struct blocked b = block(old, span);
        child_check(pcpu_init(&cfg) == 0, "pcpu_init: %s", strerror(errno));
        if (cfgs[k].nr_cpus)
            child_check(pcpu_nr_cpus() == cfgs[k].nr_cpus, "%u units, want %u", pcpu_nr_cpus(),
                        cfgs[k].nr_cpus);
        check_initial("after pcpu_init");
        long units = (long)pcpu_nr_cpus();
        for (int i = 0; i < 100; i++) {
            pcpu_this_inc(PCPU_VAR(rx));
            pcpu_this_add(PCPU_VAR(rx_int), 2);
        }
        check_and_unblock(b, "pcpu_init and operations");
        child_check(pcpu_sum(PCPU_VAR(rx)) == INIT_VALUE * units + 100, "rx sum %ld, want %ld",
                    pcpu_sum(PCPU_VAR(rx)), INIT_VALUE * units + 100);
        child_check(pcpu_sum(PCPU_VAR(rx_int)) == -8 * (int)units + 200, "rx_int sum %d",
                    pcpu_sum(PCPU_VAR(rx_int)));
        child_check(pcpu_sum(PCPU_VAR(rx_zero)) == 0, "rx_zero sum %ld",
                    pcpu_sum(PCPU_VAR(rx_zero)));
    }
}

static void test_exit_then_init_other_layout_statics_work(void **state)
{
    (void)state;
    run_in_child("pcpu_exit and pcpu_init", reinit_child, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exit_then_this_inc_as_first_use),
        cmocka_unit_test(test_exit_then_this_add_as_first_use),
        cmocka_unit_test(test_exit_then_this_add_return_as_first_use),
        cmocka_unit_test(test_exit_then_this_write_as_first_use),
        cmocka_unit_test(test_exit_then_this_cmpxchg_as_first_use),
        cmocka_unit_test(test_exit_then_this_read_as_first_use),
        cmocka_unit_test(test_exit_then_sum_as_first_use),
        cmocka_unit_test(test_exit_then_this_ptr_as_first_use),
        cmocka_unit_test(test_repeated_exit_and_first_use),
        cmocka_unit_test(test_exit_then_init_other_layout_statics_work),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
