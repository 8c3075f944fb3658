/* SPDX-License-Identifier: MIT */
/* test_statics_stable.c - once per-CPU memory has been read or written, the static layout never moves: later modules go elsewhere and pcpu_init() fails with EBUSY. */
#include "child.h"
#include "libs/pcpu_oplib.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdbool.h>

/*
 * While only constructors have run, the allocator lays the first chunk out
 * again whenever one more module registers static variables (and
 * pcpu_init() may still pick another configuration): nothing can have been
 * stored there yet.  Every way of reaching per-CPU memory ends that state:
 * this-CPU operations, pcpu_this_read(), pcpu_this_ptr(), pcpu_sum(), and
 * writes through pcpu_ptr().  After that a module loaded with dlopen()
 * must go to the reserved area (or dynamic space), and pcpu_init() must
 * fail with EBUSY, leaving every value where it was.
 *
 * Each scenario needs a process in which the allocator has not been used
 * yet: every test runs a fresh copy of this program (fork and exec, see
 * child_dispatch()) in which only the constructors have run, and which
 * must exit with status 0.  Exec rather than a plain fork: a child forked
 * from a process with the allocator set up inherits its at-fork handling,
 * which ThreadSanitizer cannot follow (it then reports the allocator lock
 * as locked twice once a thread of the child takes it).
 */

#define INIT_VALUE 11L
#define INT_INIT -3

PCPU_DEFINE(long, st_zero);
PCPU_DEFINE(long, st_init) = INIT_VALUE;
PCPU_DEFINE(int, st_int) = INT_INIT;

struct oplib {
    void *h;
    int (*check_initial)(unsigned int);
    long (*sum_long)(void);
};

static void oplib_open(struct oplib *m)
{
    m->h = dlopen(PCPU_OPLIB_PATH, RTLD_NOW | RTLD_LOCAL);
    child_check(m->h != NULL, "dlopen: %s", dlerror());
    m->check_initial = (int (*)(unsigned int))dlsym(m->h, "pcpu_oplib_check_initial");
    m->sum_long = (long (*)(void))dlsym(m->h, "pcpu_oplib_sum_long");
    child_check(m->check_initial && m->sum_long, "dlsym: %s", dlerror());
}

/* The module's variables start with their initial values in every unit. */
static void oplib_check_initial(const struct oplib *m, const char *when)
{
    pcpu_for_each_cpu(cpu)
    {
        int r = m->check_initial(cpu);
        child_check(r == 0, "%s: unit %u: module variable %d not at its initial value", when, cpu,
                    r);
    }
    long units = (long)pcpu_nr_cpus();
    child_check(m->sum_long() == OPLIB_LONG_INIT * units, "%s: module sum %ld, want %ld", when,
                m->sum_long(), OPLIB_LONG_INIT * units);
}

static void oplib_close(struct oplib *m)
{
    child_check(dlclose(m->h) == 0, "dlclose: %s", dlerror());
}

/* The program's variables hold their initial values plus @zero_add,
 * @init_add (sums over every unit). */
static void check_sums(long zero_add, long init_add, const char *when)
{
    long units = (long)pcpu_nr_cpus();
    long z = pcpu_sum(PCPU_VAR(st_zero));
    long v = pcpu_sum(PCPU_VAR(st_init));
    int i = pcpu_sum(PCPU_VAR(st_int));
    child_check(z == zero_add, "%s: sum of the zero-initialised variable %ld, want %ld", when, z,
                zero_add);
    child_check(v == INIT_VALUE * units + init_add,
                "%s: sum of the initialised variable %ld, want %ld", when, v,
                INIT_VALUE * units + init_add);
    child_check(i == INT_INIT * (int)units, "%s: sum of the int variable %d, want %d", when, i,
                INT_INIT * (int)units);
}

/* a) This-CPU operations first, then a module with PCPU_DEFINE. */
static void ops_then_dlopen_child(void *arg)
{
    (void)arg;
    for (int i = 0; i < 1000; i++) {
        pcpu_this_inc(PCPU_VAR(st_zero));
        pcpu_this_inc(PCPU_VAR(st_init));
    }
    struct oplib m;
    oplib_open(&m);
    check_sums(1000, 1000, "after dlopen");
    oplib_check_initial(&m, "after dlopen");
    oplib_close(&m);
    check_sums(1000, 1000, "after dlclose");
    /* And a second load, with the first one's space given back. */
    oplib_open(&m);
    check_sums(1000, 1000, "after the second dlopen");
    oplib_check_initial(&m, "after the second dlopen");
    oplib_close(&m);
}

/* b) One thread increments while the main thread loads and unloads. */
struct incrementer {
    bool stop;
    long count;
};

static void *incrementer_thread(void *arg)
{
    struct incrementer *in = arg;
    long n = 0;
    while (!__atomic_load_n(&in->stop, __ATOMIC_ACQUIRE)) {
        pcpu_this_inc(PCPU_VAR(st_zero));
        __atomic_store_n(&in->count, ++n, __ATOMIC_RELEASE);
    }
    return NULL;
}

static void dlopen_under_increments_child(void *arg)
{
    (void)arg;
    struct incrementer in = {0};
    pthread_t t;
    child_check(pthread_create(&t, NULL, incrementer_thread, &in) == 0, "pthread_create");
    /* The variable is in use before the first load. */
    while (__atomic_load_n(&in.count, __ATOMIC_ACQUIRE) < 1000)
        sched_yield();
    for (int cycle = 0; cycle < 20; cycle++) {
        struct oplib m;
        oplib_open(&m);
        oplib_check_initial(&m, "during the increments");
        oplib_close(&m);
        child_rest(1);
    }
    __atomic_store_n(&in.stop, true, __ATOMIC_RELEASE);
    child_check(pthread_join(t, NULL) == 0, "pthread_join");
    check_sums(__atomic_load_n(&in.count, __ATOMIC_ACQUIRE), 0, "after the cycles");
}

/* c) pcpu_init() once per-CPU memory has been touched in some way.  The
 * configurations tried have unit sizes other than the default (1 MiB), so
 * one that was wrongly taken shows in the stats. */
static struct pcpu_config sized_config(size_t unit_size)
{
    struct pcpu_config cfg = child_env_config();
    cfg.unit_size = unit_size;
    return cfg;
}

static void expect_ebusy_for(const char *after, size_t unit_size)
{
    struct pcpu_config cfg = sized_config(unit_size);
    errno = 0;
    int r = pcpu_init(&cfg);
    child_check(r == -1 && errno == EBUSY, "pcpu_init after %s returned %d (errno %d, %s), want "
                                           "-1 with EBUSY",
                after, r, errno, strerror(errno));
    struct pcpu_stats st;
    child_check(pcpu_stats_get(&st) == 0, "pcpu_stats_get: %s", strerror(errno));
    child_check(st.unit_size != cfg.unit_size, "after %s: the refused configuration is in use",
                after);
}

static void expect_ebusy(const char *after)
{
    expect_ebusy_for(after, 256 * 1024);
}

enum touch { TOUCH_OPS, TOUCH_READ, TOUCH_THIS_PTR, TOUCH_SUM, TOUCH_PTR_WRITE };

static void init_after_touch_child(void *arg)
{
    enum touch how = *(const enum touch *)arg;
    switch (how) {
    case TOUCH_OPS:
        for (int i = 0; i < 100; i++) {
            pcpu_this_inc(PCPU_VAR(st_zero));
            pcpu_this_add(PCPU_VAR(st_init), 2L);
        }
        expect_ebusy("this-CPU operations");
        check_sums(100, 200, "after the refused pcpu_init");
        break;
    case TOUCH_READ: {
        long v = pcpu_this_read(PCPU_VAR(st_init));
        child_check(v == INIT_VALUE, "pcpu_this_read %ld, want %ld", v, INIT_VALUE);
        expect_ebusy("pcpu_this_read");
        check_sums(0, 0, "after the refused pcpu_init");
        break;
    }
    case TOUCH_THIS_PTR: {
        long *p = pcpu_this_ptr(PCPU_VAR(st_init));
        child_check(*p == INIT_VALUE, "*pcpu_this_ptr %ld, want %ld", *p, INIT_VALUE);
        expect_ebusy("pcpu_this_ptr");
        /* The address handed out is still the variable's. */
        child_check(*p == INIT_VALUE, "*pcpu_this_ptr %ld after the refused pcpu_init", *p);
        check_sums(0, 0, "after the refused pcpu_init");
        break;
    }
    case TOUCH_SUM: {
        long v = pcpu_sum(PCPU_VAR(st_zero));
        child_check(v == 0, "pcpu_sum %ld, want 0", v);
        expect_ebusy("pcpu_sum");
        check_sums(0, 0, "after the refused pcpu_init");
        break;
    }
    case TOUCH_PTR_WRITE: {
        long *p = pcpu_ptr(PCPU_VAR(st_zero), 0);
        *p = 1234;
        expect_ebusy("a write through pcpu_ptr");
        child_check(*(long *)pcpu_ptr(PCPU_VAR(st_zero), 0) == 1234,
                    "the value written through pcpu_ptr is gone (%ld)",
                    *(long *)pcpu_ptr(PCPU_VAR(st_zero), 0));
        check_sums(1234, 0, "after the refused pcpu_init");
        break;
    }
    }
}

/* The positive case: only constructors have run, so pcpu_init() may
 * still choose the layout, and the statics start from their initial
 * values in it. */
static void init_before_use_child(void *arg)
{
    (void)arg;
    struct pcpu_config cfg = sized_config(256 * 1024);
    child_check(pcpu_init(&cfg) == 0, "pcpu_init before any use: %s", strerror(errno));
    struct pcpu_stats st;
    child_check(pcpu_stats_get(&st) == 0, "pcpu_stats_get: %s", strerror(errno));
    child_check(st.unit_size == cfg.unit_size, "unit size %zu, want %zu", st.unit_size,
                cfg.unit_size);
    pcpu_for_each_cpu(cpu)
    {
        child_check(*PCPU_PTR(PCPU_VAR(st_zero), cpu) == 0, "unit %u: zero variable", cpu);
        child_check(*PCPU_PTR(PCPU_VAR(st_init), cpu) == INIT_VALUE, "unit %u: initialised "
                                                                     "variable",
                    cpu);
        child_check(*PCPU_PTR(PCPU_VAR(st_int), cpu) == INT_INIT, "unit %u: int variable", cpu);
    }
    pcpu_this_inc(PCPU_VAR(st_zero));
    pcpu_this_inc(PCPU_VAR(st_init));
    check_sums(1, 1, "after pcpu_init");
    expect_ebusy_for("pcpu_init and this-CPU operations", 512 * 1024);
}

static const enum touch touch_ops = TOUCH_OPS, touch_read = TOUCH_READ,
                         touch_this_ptr = TOUCH_THIS_PTR, touch_sum = TOUCH_SUM,
                         touch_ptr_write = TOUCH_PTR_WRITE;

static const struct child_scenario scenarios[] = {
    {"ops_then_dlopen", ops_then_dlopen_child, NULL},
    {"dlopen_under_increments", dlopen_under_increments_child, NULL},
    {"init_after_ops", init_after_touch_child, &touch_ops},
    {"init_after_read", init_after_touch_child, &touch_read},
    {"init_after_this_ptr", init_after_touch_child, &touch_this_ptr},
    {"init_after_sum", init_after_touch_child, &touch_sum},
    {"init_after_ptr_write", init_after_touch_child, &touch_ptr_write},
    {"init_before_use", init_before_use_child, NULL},
};

#define FRESH_TEST(name, scenario)                                              \
    static void name(void **state)                                              \
    {                                                                           \
        (void)state;                                                            \
        run_in_fresh_process(scenario);                                         \
    }
FRESH_TEST(test_ops_then_dlopen_keeps_values_and_module_initial_values, "ops_then_dlopen")
FRESH_TEST(test_dlopen_cycles_lose_no_concurrent_increment, "dlopen_under_increments")
FRESH_TEST(test_init_after_this_cpu_ops_is_ebusy_and_keeps_values, "init_after_ops")
FRESH_TEST(test_init_after_this_read_is_ebusy, "init_after_read")
FRESH_TEST(test_init_after_this_ptr_is_ebusy_and_pointer_stays_valid, "init_after_this_ptr")
FRESH_TEST(test_init_after_sum_is_ebusy, "init_after_sum")
FRESH_TEST(test_init_after_write_through_ptr_is_ebusy_and_keeps_value, "init_after_ptr_write")
FRESH_TEST(test_init_after_constructors_only_succeeds_with_initial_values, "init_before_use")

int main(int argc, char **argv)
{
    /* A fresh copy of this program runs one scenario; cmocka's process
     * itself makes no pcpu_* call. */
    child_dispatch(argc, argv, scenarios, sizeof(scenarios) / sizeof(scenarios[0]));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ops_then_dlopen_keeps_values_and_module_initial_values),
        cmocka_unit_test(test_dlopen_cycles_lose_no_concurrent_increment),
        cmocka_unit_test(test_init_after_this_cpu_ops_is_ebusy_and_keeps_values),
        cmocka_unit_test(test_init_after_this_read_is_ebusy),
        cmocka_unit_test(test_init_after_this_ptr_is_ebusy_and_pointer_stays_valid),
        cmocka_unit_test(test_init_after_sum_is_ebusy),
        cmocka_unit_test(test_init_after_write_through_ptr_is_ebusy_and_keeps_value),
        cmocka_unit_test(test_init_after_constructors_only_succeeds_with_initial_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
