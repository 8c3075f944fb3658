/* SPDX-License-Identifier: MIT */
/* test_robust.c - robust mode (poison, write-after-free detection, validation, leak report) and sanitizer annotations. */
/*
 * Robust mode (PCPU_F_DEBUG / PERCPU_DEBUG=1): freed objects are poisoned
 * in the units that were written, and only there (untouched units stay
 * unbacked); a write after free is reported by the next allocation of the
 * object, naming the cookie and the unit; broken invariants stop the
 * process at the next operation; pcpu_exit() lists leaked allocations.
 * Under AddressSanitizer a write to a freed object through any unit's copy
 * is reported by ASan itself (those tests only run in ASan builds; the
 * tests that read freed memory on purpose are skipped there).
 */
#include "testutil.h"
#include "child.h"
/* White-box: to break an invariant on purpose. */
#include "../src/lookup.h"
#include "../src/os.h"
#include "../src/pool.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define POISON 0xa5

/* valgrind cannot run sanitized programs, and the packaged one chokes on
 * clang's DWARF 5: the gcc build is the one that checks it. */
#if !defined(TU_ASAN) && !defined(TU_TSAN) && !defined(__clang__) && \
    defined(__has_include)
#if __has_include(<valgrind/memcheck.h>)
#define VALGRIND_TEST 1 /* the library was built with the client requests too */
#endif
#endif

static void robust_init(unsigned int nr_cpus)
{
    struct pcpu_config cfg = {.nr_cpus = nr_cpus, .flags = PCPU_F_DEBUG};
    tu_reinit(&cfg);
}

/* ---- robust mode ------------------------------------------------------- */

static void test_poison_touched_units_only(void **state)
{
    (void)state;
#ifdef TU_ASAN
    skip(); /* reads freed memory on purpose */
#else
    robust_init(4);
    unsigned char *p = pcpu_alloc(64, 0);
    assert_non_null(p);
    memset(pcpu_ptr(p, 1), 0x11, 64);
    pcpu_free(p);
    const unsigned char *u0 = pcpu_ptr(p, 0), *u1 = pcpu_ptr(p, 1);
    for (unsigned int i = 0; i < 64; i++) {
        assert_int_equal(u0[i], 0);      /* never written: left alone */
        assert_int_equal(u1[i], POISON); /* written: poisoned */
    }
    /* Handed out again: zero everywhere, poison gone. */
    unsigned char *q = pcpu_alloc(64, 0);
    assert_ptr_equal(q, p); /* the thread cache is LIFO */
    for (unsigned int u = 0; u < 4; u++)
        for (unsigned int i = 0; i < 64; i++)
            assert_int_equal(((unsigned char *)pcpu_ptr(q, u))[i], 0);
    pcpu_free(q);
    /* Big objects go back to the map poisoned and come back zeroed. */
    unsigned char *b = pcpu_alloc(20000, 0);
    memset(pcpu_ptr(b, 3), 0x22, 20000);
    pcpu_free(b);
    unsigned char *c = pcpu_alloc(30000, 0);
    for (unsigned int u = 0; u < 4; u++)
        for (unsigned int i = 0; i < 30000; i++)
            assert_int_equal(((unsigned char *)pcpu_ptr(c, u))[i], 0);
    pcpu_free(c);
    assert_valid();
    pcpu_exit();
#endif
}

static void test_poison_keeps_untouched_units_unbacked(void **state)
{
    (void)state;
#ifdef TU_TSAN
    skip(); /* TSan's shadow of every unit read counts as resident */
#endif
    struct pcpu_config cfg = {.nr_cpus = 256, .flags = PCPU_F_DEBUG | PCPU_F_NO_RECLAIM};
    tu_reinit(&cfg);
    size_t before = tu_rss();
    unsigned char *p = pcpu_alloc(64u << 10, 0);
    assert_non_null(p);
    memset(pcpu_ptr(p, 7), 1, 64u << 10);
    pcpu_free(p);
    size_t after = tu_rss();
    /* Poisoning all 256 units would cost 16 MiB; one unit costs 64 KiB. */
    if (after > before + (4u << 20))
        fail_msg("RSS grew by %zu KiB freeing one object in robust mode", (after - before) >> 10);
    pcpu_exit();
}

static void *uaf_cookie;

#ifndef TU_ASAN
static void write_after_free(void *arg)
{
    (void)arg;
    ((unsigned char *)pcpu_ptr(uaf_cookie, 2))[5] = 0x42;
    (void)pcpu_alloc(64, 0); /* gets the same object back and checks it */
}
#endif

static void test_write_after_free_detected(void **state)
{
    (void)state;
#ifdef TU_ASAN
    skip(); /* ASan reports the write itself (test_asan_use_after_free) */
#else
    robust_init(4);
    uaf_cookie = pcpu_alloc(64, 0);
    assert_non_null(uaf_cookie);
    pcpu_free(uaf_cookie);
    char cookie[32], out[4096];
    snprintf(cookie, sizeof(cookie), "%p", uaf_cookie);
    const char *need[] = {"written after free", cookie, "cpu 2", "offset 5", NULL};
    if (!tu_dies_with(write_after_free, NULL, need, out, sizeof(out)))
        fail_msg("write after free not reported as expected; child said: %s", out);
    pcpu_exit();
#endif
}

/* Corrupt the hints of the block an object lives in, then operate on it:
 * the check after the operation looks at exactly that block. */
static void break_block_hint(void *arg)
{
    (void)arg;
    void *p = pcpu_alloc(16, 0);
    pcpu_free(p); /* parked in this thread's cache */
    pcpu__pool_lock();
    struct pcpu_chunk *c = pcpu__lookup(p);
    size_t bit = pcpu__chunk_bit(c, p);
    c->block_hints[bit / (pcpu__page_size / PCPU_GRANULE)].nfree ^= 1;
    pcpu__pool_unlock();
    (void)pcpu_alloc(16, 0); /* the same object back from the cache */
}

static void test_validation_after_each_operation(void **state)
{
    (void)state;
    robust_init(2);
    char out[4096];
    const char *need[] = {"robust mode", "invariant violation", "block", NULL};
    if (!tu_dies_with(break_block_hint, NULL, need, out, sizeof(out)))
        fail_msg("broken block hint not caught; child said: %s", out);
    pcpu_exit();
}

static void *leaked[3];

static void leak_and_exit(void *arg)
{
    (void)arg;
    pcpu_exit();
    abort(); /* tu_dies_with wants SIGABRT; the report came before */
}

static void test_leak_report(void **state)
{
    (void)state;
    robust_init(2);
    leaked[0] = pcpu_alloc(8, 0);
    leaked[1] = pcpu_alloc(1000, 0);
    leaked[2] = pcpu_alloc(40, 0);
    pcpu_free(leaked[2]);
    char c0[48], c1[48], out[4096];
    snprintf(c0, sizeof(c0), "%p (8 bytes)", leaked[0]);
    snprintf(c1, sizeof(c1), "%p (%zu bytes)", leaked[1], tu_held_size(1000));
    const char *need[] = {"percpu: leak:", c0, c1, "2 allocations", NULL};
    if (!tu_dies_with(leak_and_exit, NULL, need, out, sizeof(out)))
        fail_msg("leak report missing; child said: %s", out);
    pcpu_free(leaked[0]);
    pcpu_free(leaked[1]);
    /* Nothing live: nothing reported. */
    const char *none[] = {NULL};
    assert_true(tu_dies_with(leak_and_exit, NULL, none, out, sizeof(out)));
    if (strstr(out, "leak"))
        fail_msg("leak reported with nothing live: %s", out);
    pcpu_exit();
}

static void test_env_enables_robust_mode(void **state)
{
    (void)state;
#ifdef TU_ASAN
    skip();
#else
    pcpu_exit();
    setenv("PERCPU_DEBUG", "1", 1);
    void *p = pcpu_alloc(32, 0); /* initialises with the environment */
    unsetenv("PERCPU_DEBUG");
    assert_non_null(p);
    memset(pcpu_ptr(p, 0), 7, 32);
    pcpu_free(p);
    assert_int_equal(((unsigned char *)pcpu_ptr(p, 0))[31], POISON);
    pcpu_exit();
#endif
}

#if defined(TU_ASAN) || defined(VALGRIND_TEST)
/* Run fn in a child (child.h); returns its wait status, stderr in out. */
static int run_child(void (*fn)(void *), void *arg, char *out, size_t len)
{
    struct child_result r;
    run_watched(fn, arg, CHILD_TIMEOUT, &r);
    assert_true(r.forked && !r.hung);
    child_out_copy(&r, out, len);
    return r.status;
}

#endif

/* ---- AddressSanitizer ------------------------------------------------------- */

#ifdef TU_ASAN
static void asan_uaf(void *arg)
{
    unsigned int u = (unsigned int)(uintptr_t)arg;
    ((volatile unsigned char *)pcpu_ptr(uaf_cookie, u))[8] = 1;
    fprintf(stderr, "not caught\n");
}
#endif

static void test_asan_use_after_free(void **state)
{
    (void)state;
#ifndef TU_ASAN
    skip();
#else
    for (int robust = 0; robust < 2; robust++) {
        struct pcpu_config cfg = {.nr_cpus = 4, .flags = robust ? PCPU_F_DEBUG : 0};
        tu_reinit(&cfg);
        for (size_t size = 64; size <= 8192; size *= 128) {
            uaf_cookie = pcpu_alloc(size, 0);
            assert_non_null(uaf_cookie);
            for (unsigned int u = 0; u < 4; u++)
                ((unsigned char *)pcpu_ptr(uaf_cookie, u))[8] = 9; /* live: fine */
            pcpu_free(uaf_cookie);
            for (unsigned int u = 0; u < 4; u++) {
                char out[8192];
                int st = run_child(asan_uaf, (void *)(uintptr_t)u, out, sizeof(out));
                if (!(WIFEXITED(st) && WEXITSTATUS(st) != 0) && !WIFSIGNALED(st))
                    fail_msg("unit %u: use after free not stopped", u);
                if (!strstr(out, "AddressSanitizer") || !strstr(out, "use-after-poison"))
                    fail_msg("unit %u: no ASan report: %.400s", u, out);
            }
            /* Allocated again: usable in every unit. */
            void *again = pcpu_alloc(size, 0);
            for (unsigned int u = 0; u < 4; u++)
                memset(pcpu_ptr(again, u), 1, size);
            pcpu_free(again);
        }
        pcpu_exit();
    }
#endif
}

/* ---- valgrind --------------------------------------------------------------- */

#ifdef VALGRIND_TEST
static void run_under_valgrind(void *arg)
{
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0)
        _exit(98);
    exe[n] = 0;
    execlp("valgrind", "valgrind", "-q", "--error-exitcode=99", exe, (char *)arg, (char *)NULL);
    _exit(97);
}

/* Run by valgrind: one write through a freed object's unit 2 copy. */
static int valgrind_uaf(void)
{
    struct pcpu_config cfg = {.nr_cpus = 4, .flags = PCPU_F_NO_RECLAIM};
    if (pcpu_init(&cfg) != 0)
        return 1;
    unsigned char *p = pcpu_alloc(64, 0);
    memset(pcpu_ptr(p, 2), 1, 64); /* live: fine */
    pcpu_free(p);
    ((volatile unsigned char *)pcpu_ptr(p, 2))[3] = 1; /* freed: reported */
    p = pcpu_alloc(64, 0);
    memset(pcpu_ptr(p, 2), 1, 64); /* allocated again: fine */
    pcpu_free(p);
    pcpu_exit();
    return 0;
}
#endif

static void test_valgrind_use_after_free(void **state)
{
    (void)state;
#ifndef VALGRIND_TEST
    skip();
#else
    if (system("valgrind --version > /dev/null 2>&1") != 0)
        skip();
    char out[16384];
    int st = run_child(run_under_valgrind, "--valgrind-uaf", out, sizeof(out));
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 99 || !strstr(out, "Invalid write of size 1"))
        fail_msg("valgrind did not report the write after free (status %d): %.600s", st, out);
    /* Exactly one report: the live and re-allocated writes are fine. */
    const char *first = strstr(out, "Invalid");
    if (first && strstr(first + 1, "Invalid"))
        fail_msg("valgrind reported more than the one bad write: %.600s", out);
#endif
}

int main(int argc, char **argv)
{
#ifdef VALGRIND_TEST
    if (argc > 1 && !strcmp(argv[1], "--valgrind-uaf"))
        return valgrind_uaf();
#endif
    (void)argc;
    (void)argv;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_poison_touched_units_only),
        cmocka_unit_test(test_poison_keeps_untouched_units_unbacked),
        cmocka_unit_test(test_write_after_free_detected),
        cmocka_unit_test(test_validation_after_each_operation),
        cmocka_unit_test(test_leak_report),
        cmocka_unit_test(test_env_enables_robust_mode),
        cmocka_unit_test(test_asan_use_after_free),
        cmocka_unit_test(test_valgrind_use_after_free),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
