/* SPDX-License-Identifier: MIT */
/* test_robust_exit.c - pcpu_exit() in robust mode stops on leaks and on writes after free, naming the cookie; outside it, leaks are reported only with PCPU_F_REPORT_LEAKS. */
/*
 * As librseq's robust pools do at destroy time: in robust mode
 * (PCPU_F_DEBUG) pcpu_exit() checks the whole allocator, reports every live
 * allocation ("percpu: leak: <cookie> (<n> bytes) still allocated at
 * pcpu_exit") and every freed object written to since its free ("written
 * after free" and the first dirty 4-byte granule in cookie space), and
 * then stops the process (SIGABRT).  Freed objects parked in a thread
 * cache count as freed.  Outside robust mode pcpu_exit() says nothing
 * about leaks unless PCPU_F_REPORT_LEAKS asks for the lines, and then it
 * returns normally.  Static per-CPU variables are not allocations.
 *
 * Each scenario runs in a forked child; the parent looks at how the child
 * ended and at its stderr.
 */
#include "testutil.h"
#include "child.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* Under AddressSanitizer the library poisons freed objects in ASan's shadow,
 * so ASan itself reports the late writes below (test_robust.c checks that);
 * those tests are skipped there (TU_ASAN: testutil.h). */

#ifndef PCPU_F_REPORT_LEAKS
#define PCPU_F_REPORT_LEAKS 0x8u
#endif

#define NR_UNITS 4
#define WATCHDOG_SECONDS 60.0

/* A static per-CPU variable: never a leak. */
PCPU_DEFINE(long, exit_static) = 3;

static void child_init(unsigned int flags)
{
    pcpu_exit();
    struct pcpu_config cfg = {.nr_cpus = NR_UNITS, .flags = flags};
    tu_env_mode(&cfg);
    if (pcpu_init(&cfg) != 0) {
        fprintf(stderr, "child: pcpu_init(flags 0x%x) failed: %s\n", flags, strerror(errno));
        _exit(5);
    }
}

static void *must_alloc(size_t size)
{
    void *p = pcpu_alloc(size, 0);
    if (!p) {
        fprintf(stderr, "child: pcpu_alloc(%zu) failed: %s\n", size, strerror(errno));
        _exit(4);
    }
    return p;
}

/* The children pass the cookies they made to the parent through a shared
 * mapping: the parent's expectations name them. */
struct shared {
    void *cookie[8];
    size_t size[8];
    unsigned int n;
};
static struct shared *sh;

static void share_setup(void)
{
    if (!sh) {
        sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        assert_true(sh != MAP_FAILED);
    }
    memset(sh, 0, sizeof(*sh));
}

static void share(void *cookie, size_t size)
{
    sh->cookie[sh->n] = cookie;
    sh->size[sh->n] = size;
    sh->n++;
}

static void run(void (*fn)(void *), void *arg, struct child_result *r)
{
    share_setup();
    run_watched(fn, arg, WATCHDOG_SECONDS, r);
}

static bool says_leak(const char *out, void *cookie, size_t size)
{
    char line[128];
    snprintf(line, sizeof(line), "percpu: leak: %p (%zu bytes) still allocated at pcpu_exit",
             cookie, tu_held_size(size));
    return strstr(out, line) != NULL;
}

/* ---- (a) robust mode: a leak stops the process ------------------------------ */

static void robust_leak(void *arg)
{
    (void)arg;
    child_init(PCPU_F_DEBUG);
    void *keep = must_alloc(24);
    share(keep, 24);
    void *gone = must_alloc(24);
    pcpu_free(gone);
    pcpu_exit();
    fprintf(stderr, "child: pcpu_exit() returned\n");
}

static void test_robust_exit_stops_on_leak(void **state)
{
    (void)state;
    struct child_result r;
    char how[128];
    run(robust_leak, NULL, &r);
    if (!child_aborted(&r) || !strstr(r.out, "leak") || sh->n != 1 ||
        !says_leak(r.out, sh->cookie[0], 24))
        fail_msg("robust mode, one 24-byte leak (%p): expected SIGABRT and \"percpu: leak: %p "
                 "(24 bytes) still allocated at pcpu_exit\"; the child %s; stderr: %.600s",
                 sh->cookie[0], sh->cookie[0], child_verdict(&r, how, sizeof(how)), r.out);
}

/* ---- (b) robust mode: a write after free stops the process ------------------ */

struct late_write {
    size_t size;
    unsigned int unit;
    size_t offset;       /* of the late write in the object */
    unsigned int flags;  /* besides PCPU_F_DEBUG */
    bool write_before;   /* written (so poisoned) before the free */
};

static void robust_late_write(void *arg)
{
    const struct late_write *w = arg;
    child_init(PCPU_F_DEBUG | w->flags);
    unsigned char *p = must_alloc(w->size);
    share(p, w->size);
    if (w->write_before)
        memset(pcpu_ptr(p, w->unit), 0x77, w->size);
    pcpu_free(p);
    /* Nothing else in between: a small object sits in the thread cache. */
    ((volatile unsigned char *)pcpu_ptr(p, w->unit))[w->offset] = 0x11;
    pcpu_exit();
    fprintf(stderr, "child: pcpu_exit() returned\n");
}

/* Returns whether the late write was caught as promised (else says why). */
static bool late_write_caught(const struct late_write *w)
{
    struct child_result r;
    char how[128], where[32];
    run(robust_late_write, (void *)w, &r);
    void *granule = sh->n ? (char *)sh->cookie[0] + (w->offset & ~(size_t)3) : NULL;
    snprintf(where, sizeof(where), "%p", granule);
    if (!child_aborted(&r) || !strstr(r.out, "written after free") || !strstr(r.out, where)) {
        print_error("robust mode, %zu-byte object %p (flags 0x%x), byte %zu of unit %u written "
                    "after free: expected SIGABRT at pcpu_exit with \"written after free\" and "
                    "%s; the child %s; stderr: %.600s\n",
                    w->size, sh->cookie[0], w->flags, w->offset, w->unit, where,
                    child_verdict(&r, how, sizeof(how)), r.out);
        return false;
    }
    if (strstr(r.out, "still allocated")) {
        print_error("nothing leaked, but: %.600s\n", r.out);
        return false;
    }
    return true;
}

static void test_robust_exit_stops_on_write_after_free(void **state)
{
    (void)state;
#ifdef TU_ASAN
    skip();
#endif
    /* The case of the issue: a 100-byte object (thread cache), unit 0
     * never written before the free, byte 0 written after it. */
    struct late_write w = {.size = 100, .unit = 0, .offset = 0};
    assert_true(late_write_caught(&w));
}

static void test_robust_exit_stops_on_write_after_free_variants(void **state)
{
    (void)state;
#ifdef TU_ASAN
    skip();
#endif
    /* Objects that fill whole pages go without the reclaimer, which could
     * otherwise give their pages back before the late write. */
    static const struct late_write cases[] = {
        /* poisoned unit, written again */
        {.size = 100, .unit = 2, .offset = 0, .write_before = true},
        /* not at the start: the first dirty granule is named */
        {.size = 100, .unit = 1, .offset = 9},
        /* no thread cache: back in the chunk map */
        {.size = 100, .unit = 3, .offset = 0, .flags = PCPU_F_NO_CACHE},
        /* a size that never goes through the thread cache */
        {.size = 5000, .unit = 1, .offset = 0, .flags = PCPU_F_NO_RECLAIM, .write_before = true},
        {.size = 5000, .unit = 3, .offset = 4097, .flags = PCPU_F_NO_RECLAIM},
    };
    unsigned int missed = 0;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        missed += !late_write_caught(&cases[i]);
    if (missed)
        fail_msg("%u of %zu writes after free not caught at pcpu_exit", missed,
                 sizeof(cases) / sizeof(cases[0]));
}

/* ---- (c) not robust: leaks are not reported --------------------------------- */

static void plain_leaks(void *arg)
{
    unsigned int flags = *(const unsigned int *)arg;
    child_init(flags);
    share(must_alloc(24), 24);
    share(must_alloc(1000), 1000);
    share(must_alloc(8), 8);
    void *r = pcpu_alloc_reserved(32, 0);
    if (!r)
        _exit(4);
    share(r, 32);
    void *gone = must_alloc(64);
    pcpu_free(gone);
    *(long *)pcpu_ptr(PCPU_VAR(exit_static), 1) = 9;
    pcpu_exit();
    /* Usable again afterwards. */
    void *again = pcpu_alloc(8, 0);
    if (!again) {
        fprintf(stderr, "child: pcpu_alloc after pcpu_exit failed: %s\n", strerror(errno));
        _exit(6);
    }
    pcpu_free(again);
    pcpu_exit();
}

static void test_plain_exit_is_silent_about_leaks(void **state)
{
    (void)state;
    unsigned int flags = 0;
    struct child_result r;
    char how[128];
    run(plain_leaks, &flags, &r);
    if (!child_exited_ok(&r) || r.out[0])
        fail_msg("no robust mode, leaks at pcpu_exit: expected a silent, normal exit; the child "
                 "%s; stderr: %.600s",
                 child_verdict(&r, how, sizeof(how)), r.out);
}

/* ---- (d) PCPU_F_REPORT_LEAKS: the lines, no stop ---------------------------- */

static void test_report_leaks_flag_lists_leaks_and_returns(void **state)
{
    (void)state;
    unsigned int flags = PCPU_F_REPORT_LEAKS;
    struct child_result r;
    char how[128];
    run(plain_leaks, &flags, &r);
    if (!child_exited_ok(&r))
        fail_msg("PCPU_F_REPORT_LEAKS: pcpu_exit must report and return; the child %s; stderr: "
                 "%.600s",
                 child_verdict(&r, how, sizeof(how)), r.out);
    assert_int_equal(sh->n, 4);
    for (unsigned int i = 0; i < sh->n; i++)
        if (!says_leak(r.out, sh->cookie[i], sh->size[i]))
            fail_msg("PCPU_F_REPORT_LEAKS: no leak line for %p (%zu bytes); stderr: %.600s",
                     sh->cookie[i], sh->size[i], r.out);
    /* One line per leak, nothing about the freed object or the static. */
    unsigned int lines = 0;
    for (const char *s = r.out; (s = strstr(s, "still allocated")) != NULL; s++)
        lines++;
    if (lines != sh->n)
        fail_msg("PCPU_F_REPORT_LEAKS: %u leak lines for %u leaks: %.600s", lines, sh->n, r.out);
    if (strstr(r.out, "written after free"))
        fail_msg("PCPU_F_REPORT_LEAKS: unexpected report: %.600s", r.out);
}

/* ---- (e) robust mode, clean: silent ----------------------------------------- */

static void robust_clean(void *arg)
{
    (void)arg;
    child_init(PCPU_F_DEBUG);
    /* Freed objects of every kind, written before their free (poisoned),
     * some in the thread cache, some in the map, some handed out again. */
    static const size_t sizes[] = {4, 8, 24, 64, 100, 256, 1000, 5000, 40000};
    void *p[sizeof(sizes) / sizeof(sizes[0])];
    for (unsigned int round = 0; round < 3; round++) {
        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
            p[i] = must_alloc(sizes[i]);
            memset(pcpu_ptr(p[i], (unsigned int)(i + round) % NR_UNITS), 0x5a, sizes[i]);
        }
        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
            pcpu_free(p[i]);
    }
    void *r = pcpu_alloc_reserved(48, 0);
    if (!r)
        _exit(4);
    memset(pcpu_ptr(r, 1), 1, 48);
    pcpu_free(r);
    *(long *)pcpu_ptr(PCPU_VAR(exit_static), 2) = 11;
    pcpu_exit();
    /* And again, with the allocator initialised anew. */
    child_init(PCPU_F_DEBUG);
    pcpu_free(must_alloc(8));
    pcpu_exit();
}

static void test_robust_exit_silent_when_clean(void **state)
{
    (void)state;
    struct child_result r;
    char how[128];
    run(robust_clean, NULL, &r);
    if (!child_exited_ok(&r) || r.out[0])
        fail_msg("robust mode, no leaks and no late writes: pcpu_exit must be silent and return; "
                 "the child %s; stderr: %.600s",
                 child_verdict(&r, how, sizeof(how)), r.out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_robust_exit_stops_on_leak),
        cmocka_unit_test(test_robust_exit_stops_on_write_after_free),
        cmocka_unit_test(test_robust_exit_stops_on_write_after_free_variants),
        cmocka_unit_test(test_plain_exit_is_silent_about_leaks),
        cmocka_unit_test(test_report_leaks_flag_lists_leaks_and_returns),
        cmocka_unit_test(test_robust_exit_silent_when_clean),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
