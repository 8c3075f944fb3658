/* SPDX-License-Identifier: MIT */
/* test_layout.c - topology and allocation info: unit counts, NUMA groups, bad configurations, stats. */
#include "testutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Hidden in the shared library, reachable from the static one. */
int pcpu__parse_cpulist(const char *s, unsigned char *set, unsigned int max);

static void test_default_init(void **state)
{
    (void)state;
    pcpu_exit();
    /* First use initialises with the defaults (and the environment). */
    unsigned int n = pcpu_nr_cpus();
    assert_int_equal(n, tu_possible_cpus());
    struct pcpu_stats st = tu_stats();
    assert_int_equal(st.nr_units, n);
    assert_int_equal(st.backend, tu_backend());
    assert_int_equal(st.nr_chunks, 1);
    assert_true(pcpu_max_alloc_size() >= 64 * 1024);
    int cpu = pcpu_this_cpu();
    assert_true(cpu >= 0 && (unsigned int)cpu < n);
    assert_valid();
}

/* Every CPU index gets its own unit: addresses at least unit_size apart,
 * and a write to one unit shows in no other. */
static void check_distinct_units(unsigned int n)
{
    struct pcpu_stats st = tu_stats();
    assert_int_equal(pcpu_nr_cpus(), n);
    assert_int_equal(st.nr_units, n);
    uint32_t *c = pcpu_alloc(sizeof(uint32_t), 0);
    assert_non_null(c);
    char **addr = calloc(n, sizeof(*addr));
    assert_non_null(addr);
    pcpu_for_each_cpu(cpu) addr[cpu] = pcpu_ptr(c, cpu);
    /* Sort a copy and check the gaps: O(n log n) instead of n^2. */
    char **sorted = malloc(n * sizeof(*sorted));
    memcpy(sorted, addr, n * sizeof(*sorted));
    for (unsigned int i = 1; i < n; i++) { /* insertion sort, mostly sorted */
        char *v = sorted[i];
        unsigned int j = i;
        while (j > 0 && sorted[j - 1] > v) {
            sorted[j] = sorted[j - 1];
            j--;
        }
        sorted[j] = v;
    }
    for (unsigned int i = 1; i < n; i++)
        assert_true((size_t)(sorted[i] - sorted[i - 1]) >= st.unit_size);
    free(sorted);
    pcpu_for_each_cpu(cpu) *(uint32_t *)addr[cpu] = 0x5a000000u + cpu;
    pcpu_for_each_cpu(cpu) assert_int_equal(*(uint32_t *)addr[cpu], 0x5a000000u + cpu);
    /* Writes to one unit only: the others stay as they were. */
    if (n > 1) {
        *(uint32_t *)addr[n - 1] = 7;
        assert_int_equal(*(uint32_t *)addr[0], 0x5a000000u);
        assert_int_equal(*(uint32_t *)addr[n - 2], 0x5a000000u + n - 2);
    }
    /* The address maps back to its CPU. */
    struct pcpu_addr_info ai;
    pcpu_for_each_cpu(cpu)
    {
        assert_int_equal(pcpu_addr_info(addr[cpu], &ai), 0);
        assert_int_equal(ai.cpu, cpu);
        assert_ptr_equal(ai.cookie, c);
    }
    free(addr);
    pcpu_free(c);
    assert_valid();
}

static void test_units_256(void **state)
{
    (void)state;
    struct pcpu_config cfg = {.nr_cpus = 256};
    tu_reinit(&cfg);
    check_distinct_units(256);
}

static void test_units_4096(void **state)
{
    (void)state;
    struct pcpu_config cfg = {.nr_cpus = 4096, .unit_size = 64 * 1024};
    tu_reinit(&cfg);
    check_distinct_units(4096);
    pcpu_exit();
}

static void test_units_1(void **state)
{
    (void)state;
    struct pcpu_config cfg = {.nr_cpus = 1};
    tu_reinit(&cfg);
    check_distinct_units(1);
    /* More CPUs than units: everyone shares unit 0. */
    assert_int_equal(pcpu_this_cpu(), 0);
}

static void test_fake_numa(void **state)
{
    (void)state;
    static const int nodes[4] = {0, 1, 0, 1};
    struct pcpu_config cfg = {.backend = tu_backend(), .nr_cpus = 4, .cpu_node = nodes};
    char msg[1024];
    pcpu_exit();
    tu_stderr_begin();
    int r = pcpu_init(&cfg);
    int err = errno;
    tu_stderr_end(msg, sizeof(msg));
    if (cfg.backend == PCPU_BACKEND_KM) {
        assert_int_equal(r, -1);
        assert_int_equal(err, EINVAL);
        assert_non_null(strstr(msg, "percpu:"));
        assert_non_null(strstr(msg, "NUMA"));
        /* The failed init left the allocator usable with defaults. */
        void *p = pcpu_alloc(8, 0);
        assert_non_null(p);
        pcpu_free(p);
        return;
    }
    assert_int_equal(r, 0);
    check_distinct_units(4);
    /* Units are grouped by node: CPUs 0 and 2 sit next to each other. */
    int *c = PCPU_NEW(int);
    assert_non_null(c);
    char *a0 = pcpu_ptr(c, 0), *a1 = pcpu_ptr(c, 1), *a2 = pcpu_ptr(c, 2), *a3 = pcpu_ptr(c, 3);
    size_t us = tu_stats().unit_size;
    assert_int_equal(a2 - a0, (ptrdiff_t)us);
    assert_int_equal(a3 - a1, (ptrdiff_t)us);
    assert_int_equal(a1 - a2, (ptrdiff_t)us);
    pcpu_free(c);
    assert_valid();
}

static void expect_einval(struct pcpu_config *cfg, const char *what)
{
    char msg[1024];
    pcpu_exit();
    tu_stderr_begin();
    errno = 0;
    int r = pcpu_init(cfg);
    int err = errno;
    tu_stderr_end(msg, sizeof(msg));
    if (r != -1 || err != EINVAL)
        fail_msg("%s: pcpu_init returned %d errno %d", what, r, err);
    if (!strstr(msg, "percpu:"))
        fail_msg("%s: no message on stderr (got \"%s\")", what, msg);
    /* Still usable: the next use initialises with the defaults. */
    void *p = pcpu_alloc(16, 0);
    assert_non_null(p);
    pcpu_free(p);
    assert_valid();
}

static void test_bad_configs(void **state)
{
    (void)state;
    static const int neg[2] = {0, -1};
    struct pcpu_config cfg;

    cfg = (struct pcpu_config){.backend = tu_backend(), .unit_size = 4096};
    expect_einval(&cfg, "unit_size too small");
    cfg = (struct pcpu_config){.backend = tu_backend(), .unit_size = (size_t)2 << 30};
    expect_einval(&cfg, "unit_size too large");
    cfg = (struct pcpu_config){.backend = tu_backend(), .nr_cpus = PCPU_MAX_CPUS + 1};
    expect_einval(&cfg, "nr_cpus too large");
    cfg = (struct pcpu_config){.backend = tu_backend(), .nr_cpus = 2, .cpu_node = neg};
    expect_einval(&cfg, "negative node");
    cfg = (struct pcpu_config){.backend = tu_backend(), .flags = 0x100};
    expect_einval(&cfg, "unknown flags");
    cfg = (struct pcpu_config){.backend = (enum pcpu_backend)7};
    expect_einval(&cfg, "unknown backend");
    cfg = (struct pcpu_config){.backend = tu_backend(), .unit_size = 64 * 1024,
                               .reserved_size = 64 * 1024};
    expect_einval(&cfg, "reserved area fills the unit");
}

static void test_busy(void **state)
{
    (void)state;
    struct pcpu_config cfg = {.nr_cpus = 2};
    tu_reinit(&cfg);
    /* A second pcpu_init, even before any allocation, is refused. */
    errno = 0;
    assert_int_equal(pcpu_init(&cfg), -1);
    assert_int_equal(errno, EBUSY);
    void *p = pcpu_alloc(4, 0);
    assert_non_null(p);
    errno = 0;
    assert_int_equal(pcpu_init(&cfg), -1);
    assert_int_equal(errno, EBUSY);
    errno = 0;
    assert_int_equal(pcpu_init(NULL), -1);
    assert_int_equal(errno, EBUSY);
    /* The allocator is untouched by the refused call. */
    assert_int_equal(pcpu_nr_cpus(), 2);
    pcpu_free(p);
    assert_valid();
    /* Implicit initialisation counts as use too. */
    pcpu_exit();
    assert_true(pcpu_nr_cpus() > 0);
    errno = 0;
    assert_int_equal(pcpu_init(NULL), -1);
    assert_int_equal(errno, EBUSY);
}

static void test_stats_agree(void **state)
{
    (void)state;
    struct pcpu_config cfg = {.nr_cpus = 8, .unit_size = 256 * 1024, .reserved_size = 32 * 1024};
    tu_reinit(&cfg);
    struct pcpu_stats st = tu_stats();
    assert_int_equal(st.size, sizeof(st));
    assert_int_equal(st.version, PCPU_STATS_VERSION);
    assert_int_equal(st.nr_units, 8);
    assert_int_equal(st.unit_size, 256 * 1024);
    assert_int_equal(st.reserved_size, 32 * 1024);
    assert_int_equal(st.static_size, 0); /* no PCPU_DEFINE in this program */
    assert_int_equal(st.static_size + st.reserved_size + st.dyn_size, st.unit_size);
    assert_int_equal(st.atom_size, st.page_size);
    assert_int_equal(st.backend, tu_backend());
    assert_int_equal(st.nr_chunks, 1);
    assert_int_equal(st.nr_alloc, 0);
    assert_int_equal(st.nr_cur_alloc, 0);
    assert_int_equal(pcpu_max_alloc_size(), 256 * 1024);

    /* Unit size is rounded up to the page size. */
    cfg = (struct pcpu_config){.nr_cpus = 3, .unit_size = 100 * 1000};
    tu_reinit(&cfg);
    st = tu_stats();
    assert_int_equal(st.unit_size % st.page_size, 0);
    assert_true(st.unit_size >= 100 * 1000 && st.unit_size < 100 * 1000 + st.page_size);
    assert_int_equal(st.nr_units, 3);
    assert_int_equal(st.reserved_size, 16 * 1024);
    assert_int_equal(st.static_size + st.reserved_size + st.dyn_size, st.unit_size);

    /* Counters follow allocations. */
    void *a = pcpu_alloc(100, 0), *b = pcpu_alloc(3000, 8);
    assert_non_null(a);
    assert_non_null(b);
    st = tu_stats();
    assert_int_equal(st.nr_alloc, 2);
    assert_int_equal(st.nr_cur_alloc, 2);
    assert_int_equal(st.min_alloc_size, 100);
    assert_int_equal(st.max_alloc_size, 3000);
    pcpu_free(a);
    pcpu_free(b);
    st = tu_stats();
    assert_int_equal(st.nr_dealloc, 2);
    assert_int_equal(st.nr_cur_alloc, 0);
    assert_true(st.nr_max_alloc >= 2);
    assert_valid();
}

static void test_parse_cpulist(void **state)
{
    (void)state;
    unsigned char set[64];
    memset(set, 0, sizeof(set));
    assert_int_equal(pcpu__parse_cpulist("0-3,8-11\n", set, 64), 8);
    for (int i = 0; i < 16; i++)
        assert_int_equal(set[i], (i < 4 || (i >= 8 && i < 12)) ? 1 : 0);
    memset(set, 0, sizeof(set));
    assert_int_equal(pcpu__parse_cpulist("5", set, 64), 1);
    assert_int_equal(set[5], 1);
    memset(set, 0, sizeof(set));
    assert_int_equal(pcpu__parse_cpulist("0,2,4-5,63", set, 64), 5);
    assert_int_equal(set[63], 1);
    memset(set, 0, sizeof(set));
    assert_int_equal(pcpu__parse_cpulist("0-64", set, 64), -1); /* past max */
    assert_int_equal(pcpu__parse_cpulist("3-1", set, 64), -1);
    assert_int_equal(pcpu__parse_cpulist("x", set, 64), -1);
    assert_int_equal(pcpu__parse_cpulist("1-", set, 64), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_init), cmocka_unit_test(test_units_256),
        cmocka_unit_test(test_units_4096),   cmocka_unit_test(test_units_1),
        cmocka_unit_test(test_fake_numa),    cmocka_unit_test(test_bad_configs),
        cmocka_unit_test(test_busy),         cmocka_unit_test(test_stats_agree),
        cmocka_unit_test(test_parse_cpulist),
    };
    return TU_RUN_THEN_EXIT(tests);
}
