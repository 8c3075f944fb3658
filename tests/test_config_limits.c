/* SPDX-License-Identifier: MIT */
/* test_config_limits.c - every size in pcpu_config is checked for overflow: bad values are refused with EINVAL and a "percpu:" line naming the field, never accepted or crashed on, and the allocator stays usable. */
#include "testutil.h"
#include "child.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/*
 * Why: sizes are rounded up and added together (static + reserved, units
 * times unit size); with values near SIZE_MAX that wraps around, and a
 * wrapped size was accepted silently (reserved_size = SIZE_MAX) or crashed
 * pcpu_init (SIZE_MAX - 8191).  Each case runs in a forked child, so a
 * crash is reported as such and does not take the other cases down.
 */

/* What the child reports through its exit status. */
enum {
    CHILD_OK = 0,
    CHILD_ACCEPTED = 10,   /* pcpu_init returned 0 */
    CHILD_BAD_RETURN = 11, /* neither 0 nor -1 */
    CHILD_BAD_ERRNO = 12,  /* -1 but errno is not EINVAL */
    CHILD_REINIT = 13,     /* a valid pcpu_init afterwards failed */
    CHILD_ALLOC = 14,      /* pcpu_alloc afterwards failed */
};

static const char *child_what(int code)
{
    switch (code) {
    case CHILD_ACCEPTED: return "pcpu_init accepted the configuration";
    case CHILD_BAD_RETURN: return "pcpu_init returned neither 0 nor -1";
    case CHILD_BAD_ERRNO: return "pcpu_init failed, but errno is not EINVAL";
    case CHILD_REINIT: return "a valid pcpu_init after the refusal failed";
    case CHILD_ALLOC: return "pcpu_alloc after the refusal failed";
    default: return "the child exited with an unexpected status (a sanitizer report?)";
    }
}

/* The child: refuse cfg, then work with a valid configuration. */
static void refuse_then_work(const struct pcpu_config *cfg)
{
    pcpu_exit();
    errno = 0;
    int r = pcpu_init(cfg);
    int e = errno;
    if (r == 0)
        _exit(CHILD_ACCEPTED);
    if (r != -1)
        _exit(CHILD_BAD_RETURN);
    if (e != EINVAL)
        _exit(CHILD_BAD_ERRNO);
    struct pcpu_config ok = {.backend = tu_backend()};
    if (pcpu_init(&ok) != 0)
        _exit(CHILD_REINIT);
    long *p = PCPU_NEW(long);
    if (!p)
        _exit(CHILD_ALLOC);
    pcpu_for_each_cpu(cpu) *PCPU_PTR(p, cpu) = (long)cpu;
    pcpu_free(p);
    pcpu_exit();
    _exit(CHILD_OK);
}

static void refuse_then_work_child(void *cfg)
{
    refuse_then_work(cfg);
}

/* Run refuse_then_work(cfg) in a child (child.h); its stderr goes to err. */
static int run_child(const struct pcpu_config *cfg, char *err, size_t len)
{
    struct child_result r;
    run_watched(refuse_then_work_child, (void *)cfg, CHILD_TIMEOUT, &r);
    assert_true(r.forked && !r.hung);
    child_out_copy(&r, err, len);
    return r.status;
}

/* The first line of text that starts with "percpu:" and contains every
 * string of need (NULL-terminated); NULL if none. */
static const char *find_line(const char *text, const char *const *need)
{
    for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        const char *end = strchr(l, '\n');
        size_t n = end ? (size_t)(end - l) : strlen(l);
        char line[1024];
        if (n >= sizeof(line))
            n = sizeof(line) - 1;
        memcpy(line, l, n);
        line[n] = 0;
        if (strncmp(line, "percpu:", 7) != 0)
            continue;
        bool all = true;
        for (const char *const *s = need; *s; s++)
            if (!strstr(line, *s))
                all = false;
        if (all)
            return l;
    }
    return NULL;
}

/* Any one of alts (NULL-terminated) occurs in the line starting at l. */
static bool line_has_any(const char *l, const char *const *alts)
{
    const char *end = strchr(l, '\n');
    size_t n = end ? (size_t)(end - l) : strlen(l);
    for (; *alts; alts++) {
        const char *p = strstr(l, *alts);
        if (p && p + strlen(*alts) <= l + n)
            return true;
    }
    return false;
}

/* cfg must be refused; the message names field (and holds every string
 * of more, if given).  Returns false (after saying why) if not, so that a
 * test goes through all its cases before it fails. */
static bool check_refused(const char *what, struct pcpu_config cfg, const char *field,
                          const char *const *more)
{
    char err[8192];
    cfg.backend = tu_backend();
    int status = run_child(&cfg, err, sizeof(err));
    if (WIFSIGNALED(status)) {
        print_error("%s: pcpu_init crashed with signal %d; stderr: %s\n", what,
                    WTERMSIG(status), err);
        return false;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != CHILD_OK) {
        print_error("%s: %s (%d); stderr: %s\n", what, child_what(WEXITSTATUS(status)),
                    WEXITSTATUS(status), err);
        return false;
    }
    const char *need[8] = {field};
    size_t k = 1;
    for (; more && *more && k < 7; more++)
        need[k++] = *more;
    need[k] = NULL;
    const char *l = find_line(err, need);
    if (!l) {
        char list[256] = "";
        for (size_t i = 0; i < k; i++)
            snprintf(list + strlen(list), sizeof(list) - strlen(list), " \"%s\"", need[i]);
        print_error("%s: no line starting with \"percpu:\" containing%s; stderr: %s\n", what,
                    list, err);
        return false;
    }
    print_message("%-40s refused: %.*s\n", what, (int)strcspn(l, "\n"), l);
    return true;
}

static void test_reserved_size_overflow(void **state)
{
    (void)state;
    static const struct {
        const char *what;
        size_t v;
    } cases[] = {
        {"reserved_size = SIZE_MAX", SIZE_MAX},
        {"reserved_size = SIZE_MAX - 8191", SIZE_MAX - 8191},
        {"reserved_size = SIZE_MAX - 63", SIZE_MAX - 63},
        {"reserved_size = SIZE_MAX / 2", SIZE_MAX / 2},
        {"reserved_size = 1 << 62", (size_t)1 << 62},
    };
    int bad = 0;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct pcpu_config cfg = {.reserved_size = cases[i].v};
        bad += !check_refused(cases[i].what, cfg, "reserved_size", NULL);
    }
    assert_int_equal(bad, 0);
}

static void test_unit_size_overflow(void **state)
{
    (void)state;
    static const struct {
        const char *what;
        size_t v;
    } cases[] = {
        {"unit_size = SIZE_MAX", SIZE_MAX},
        {"unit_size = SIZE_MAX - 4095", SIZE_MAX - 4095},
        {"unit_size = 1 << 63", (size_t)1 << 63},
    };
    int bad = 0;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct pcpu_config cfg = {.unit_size = cases[i].v};
        bad += !check_refused(cases[i].what, cfg, "unit_size", NULL);
        /* Also next to a huge reserved area: either may be named. */
        cfg.reserved_size = SIZE_MAX - 8191;
        char what[96];
        snprintf(what, sizeof(what), "%s, reserved_size = SIZE_MAX - 8191", cases[i].what);
        bad += !check_refused(what, cfg, "_size", NULL);
    }
    assert_int_equal(bad, 0);
}

static void test_nr_cpus_too_many(void **state)
{
    (void)state;
    struct pcpu_config cfg = {.nr_cpus = UINT_MAX};
    int bad = !check_refused("nr_cpus = UINT_MAX", cfg, "nr_cpus", NULL);
    cfg.nr_cpus = PCPU_MAX_CPUS + 1;
    bad += !check_refused("nr_cpus = PCPU_MAX_CPUS + 1", cfg, "nr_cpus", NULL);
    assert_int_equal(bad, 0);
}

/*
 * The rule for the first chunk: after the static and reserved areas,
 * rounded up to pages, at least 32 KiB of dynamic space must be left in
 * the unit.  The message must say so: "dynamic", the unit size and the
 * 32 KiB minimum (in bytes or KiB).
 */
static const char *const min_dyn[] = {"32768", "32 KiB", "32KiB", NULL};

static bool check_no_dynamic_space(const char *what, size_t unit, size_t reserved)
{
    char unit_b[32], unit_k[32], unit_k2[32];
    snprintf(unit_b, sizeof(unit_b), "%zu", unit ? unit : (size_t)1 << 20);
    snprintf(unit_k, sizeof(unit_k), "%zu KiB", (unit ? unit : (size_t)1 << 20) >> 10);
    snprintf(unit_k2, sizeof(unit_k2), "%zuKiB", (unit ? unit : (size_t)1 << 20) >> 10);
    const char *unit_alts[] = {unit_b, unit_k, unit_k2, NULL};
    struct pcpu_config cfg = {.unit_size = unit, .reserved_size = reserved};
    const char *more[] = {"dynamic", NULL};
    /* The common checks first (refused, named, usable afterwards)... */
    if (!check_refused(what, cfg, "reserved_size", more))
        return false;
    /* ...then the numbers of the rule in that same line. */
    char err[8192];
    cfg.backend = tu_backend();
    int status = run_child(&cfg, err, sizeof(err));
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == CHILD_OK);
    const char *need[] = {"reserved_size", "dynamic", NULL};
    const char *l = find_line(err, need);
    assert_non_null(l);
    if (!line_has_any(l, unit_alts)) {
        print_error("%s: the message does not give the unit size (%s): %s\n", what, unit_b, l);
        return false;
    }
    if (!line_has_any(l, min_dyn)) {
        print_error("%s: the message does not state the 32 KiB dynamic minimum: %s\n", what, l);
        return false;
    }
    return true;
}

static void test_reserved_leaves_no_dynamic_space(void **state)
{
    (void)state;
    int bad = !check_no_dynamic_space("unit 64 KiB, reserved 64 KiB", 64 * 1024, 64 * 1024);
    bad += !check_no_dynamic_space("reserved = default unit size (1 MiB)", 0, 1024 * 1024);
    bad += !check_no_dynamic_space("unit 1 MiB, reserved 1 MiB", 1024 * 1024, 1024 * 1024);
    bad += !check_no_dynamic_space("unit 64 KiB, reserved 48 KiB", 64 * 1024, 48 * 1024);
    assert_int_equal(bad, 0);
}

/* The rule exactly: 32 KiB of dynamic space is enough, less is not. */
static void test_dynamic_minimum_boundary(void **state)
{
    (void)state;
    tu_reinit(NULL);
    struct pcpu_stats st = tu_stats();
    const size_t unit = 64 * 1024, page = st.page_size;
    /* The largest reserved area that leaves 32 KiB after the static one. */
    size_t reserved = unit - 32 * 1024 - st.static_size;
    struct pcpu_config cfg = {.unit_size = unit, .reserved_size = reserved};
    tu_reinit(&cfg);
    st = tu_stats();
    assert_int_equal(st.unit_size, unit);
    assert_true(st.dyn_size >= 32 * 1024);
    void *p = pcpu_alloc(32 * 1024, 0);
    assert_non_null(p);
    pcpu_free(p);
    assert_valid();
    /* One page more: refused. */
    cfg.reserved_size = reserved + page;
    assert_true(check_no_dynamic_space("unit 64 KiB, dynamic space 28 KiB", unit, reserved + page));
    pcpu_exit();
}

/* max_memory = SIZE_MAX is a limit that never bites, not an error. */
static void test_max_memory_size_max(void **state)
{
    (void)state;
    pcpu_exit();
    struct pcpu_config cfg = {.backend = tu_backend(), .max_memory = SIZE_MAX};
    if (pcpu_init(&cfg) != 0)
        fail_msg("pcpu_init(max_memory = SIZE_MAX): %s", strerror(errno));
    void *v[64];
    for (int i = 0; i < 64; i++) {
        v[i] = pcpu_alloc(4096, 0);
        assert_non_null(v[i]);
    }
    for (int i = 0; i < 64; i++)
        pcpu_free(v[i]);
    assert_valid();
    pcpu_exit();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reserved_size_overflow),
        cmocka_unit_test(test_unit_size_overflow),
        cmocka_unit_test(test_nr_cpus_too_many),
        cmocka_unit_test(test_reserved_leaves_no_dynamic_space),
        cmocka_unit_test(test_dynamic_minimum_boundary),
        cmocka_unit_test(test_max_memory_size_max),
    };
    return TU_RUN_THEN_EXIT(tests);
}
