/* SPDX-License-Identifier: MIT */
/* test_reserved_hints.c - the block hints stay right when reserved allocations reach the end of the reserved area (pcpu_validate, robust mode). */
#include "testutil.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/*
 * A static per-CPU variable makes the static area non-empty, so the
 * reserved area starts after it and ends somewhere inside a page: the
 * bitmap blocks that cover the end of the area are the ones whose hints
 * went wrong.  The variable is used (and checked) so it stays.
 */
PCPU_DEFINE(long, hint_canary) = 0x5eed;

static void check_canary(void)
{
    pcpu_for_each_cpu(cpu) assert_int_equal(*PCPU_PTR(PCPU_VAR(hint_canary), cpu), 0x5eed);
}

/* The sequence of the report: most of the reserved area, then a little
 * more that only fits at its very end (or falls back to dynamic space). */
static void test_reserved_end_sequence_validates(void **state)
{
    (void)state;
    tu_reinit(NULL);
    struct pcpu_stats st = tu_stats();
    assert_true(st.static_size > 0);
    print_message("static %zu, reserved %zu bytes\n", st.static_size, st.reserved_size);
    assert_valid();
    void *a = pcpu_alloc_reserved(16320, 0);
    assert_non_null(a);
    assert_valid();
    void *b = pcpu_alloc_reserved(24, 0);
    assert_non_null(b);
    assert_valid();
    pcpu_free(b);
    assert_valid();
    pcpu_free(a);
    assert_valid();
    check_canary();
}

/*
 * Fill the reserved area up to many different ends: a first allocation of
 * "reserved size minus gap" bytes for gaps of 0 .. 256 bytes, then small
 * allocations of several sizes until the area is full (they fall back to
 * dynamic space after that), validating after every step; then the same
 * with the small ones freed first.
 */
/* The gaps and first sizes go up in steps of 4 bytes (a granule), of 12
 * under the sanitizers (a third of them, still every remainder mod 16):
 * each is a fresh pcpu_init(), dear there. */
#ifdef TU_SLOW_BUILD
#define END_STEP 12
#else
#define END_STEP 4
#endif

/* 64 KiB units keep pcpu_validate() quick: the reserved area is the same. */
static void reinit_small(void)
{
    struct pcpu_config cfg = {.unit_size = 64 * 1024};
    tu_reinit(&cfg);
}

static void test_reserved_fill_to_every_end(void **state)
{
    (void)state;
    reinit_small();
    const size_t rsv = tu_stats().reserved_size;
    assert_true(rsv >= 1024);
    static const size_t smalls[] = {4, 8, 12, 16, 24, 40, 64, 100, 256};
    enum { MAX_SMALL = 80 };
    unsigned int steps = 0;
    for (size_t gap = 0; gap <= 256; gap += END_STEP) {
        for (size_t k = 0; k < sizeof(smalls) / sizeof(smalls[0]); k++) {
            reinit_small();
            void *big = pcpu_alloc_reserved(rsv - gap, 0);
            if (!big)
                fail_msg("pcpu_alloc_reserved(%zu): %s", rsv - gap, strerror(errno));
            if (pcpu_validate() != 0)
                fail_msg("invalid after pcpu_alloc_reserved(%zu)", rsv - gap);
            void *sm[MAX_SMALL];
            int n = 0;
            for (; n < MAX_SMALL && (size_t)n * smalls[k] <= gap + 2 * smalls[k]; n++) {
                sm[n] = pcpu_alloc_reserved(smalls[k], 0);
                assert_non_null(sm[n]);
                steps++;
                if (pcpu_validate() != 0)
                    fail_msg("invalid after pcpu_alloc_reserved(%zu) - gap %zu, then %d x "
                             "pcpu_alloc_reserved(%zu)",
                             rsv - gap, gap, n + 1, smalls[k]);
            }
            for (int i = 0; i < n; i++) {
                pcpu_free(sm[i]);
                if (pcpu_validate() != 0)
                    fail_msg("invalid after freeing small %d (size %zu, gap %zu)", i,
                             smalls[k], gap);
            }
            pcpu_free(big);
            assert_valid();
        }
    }
    /* Sizes that end the first allocation anywhere, then one that ends the
     * area exactly. */
    for (size_t first = 4; first < rsv; first += first < 512 ? END_STEP : 252) {
        reinit_small();
        void *a = pcpu_alloc_reserved(first, 0);
        assert_non_null(a);
        void *b = pcpu_alloc_reserved(rsv - first, 0);
        assert_non_null(b);
        steps += 2;
        if (pcpu_validate() != 0)
            fail_msg("invalid after pcpu_alloc_reserved(%zu) and (%zu)", first, rsv - first);
        void *c = pcpu_alloc_reserved(24, 0);
        assert_non_null(c);
        if (pcpu_validate() != 0)
            fail_msg("invalid after pcpu_alloc_reserved(%zu), (%zu) and (24)", first,
                     rsv - first);
        pcpu_free(a);
        pcpu_free(b);
        pcpu_free(c);
        assert_valid();
    }
    print_message("%u reserved allocations validated\n", steps);
    check_canary();
}

/* Robust mode checks the hints as it goes: the valid sequence above must
 * not stop the process.  In a child, since robust mode aborts. */
struct robust_how {
    bool by_env; /* PERCPU_DEBUG=1 instead of PCPU_F_DEBUG */
};

static void robust_child(const struct robust_how *how)
{
    pcpu_exit();
    int r;
    if (how->by_env) {
        setenv("PERCPU_DEBUG", "1", 1);
        r = pcpu_init(NULL);
    } else {
        struct pcpu_config cfg = {.backend = tu_backend(), .flags = PCPU_F_DEBUG};
        r = pcpu_init(&cfg);
    }
    if (r != 0)
        _exit(3);
    void *a = pcpu_alloc_reserved(16320, 0);
    void *b = pcpu_alloc_reserved(24, 0);
    void *c = pcpu_alloc_reserved(8, 0);
    if (!a || !b || !c)
        _exit(4);
    pcpu_free(b);
    pcpu_free(a);
    pcpu_free(c);
    if (pcpu_validate() != 0)
        _exit(5);
    pcpu_exit();
    _exit(0);
}

static void run_robust(bool by_env)
{
    struct robust_how how = {.by_env = by_env};
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* A crash must end the child, not return into cmocka's handler. */
        static const int sigs[] = {SIGSEGV, SIGBUS, SIGABRT, SIGILL, SIGFPE};
        for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
            signal(sigs[i], SIG_DFL);
        robust_child(&how);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (WIFSIGNALED(status))
        fail_msg("robust mode (%s) killed a valid program with signal %d",
                 by_env ? "PERCPU_DEBUG=1" : "PCPU_F_DEBUG", WTERMSIG(status));
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_reserved_end_robust_flag(void **state)
{
    (void)state;
    run_robust(false);
}

static void test_reserved_end_robust_env(void **state)
{
    (void)state;
    run_robust(true);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reserved_end_sequence_validates),
        cmocka_unit_test(test_reserved_fill_to_every_end),
        cmocka_unit_test(test_reserved_end_robust_flag),
        cmocka_unit_test(test_reserved_end_robust_env),
    };
    return TU_RUN_THEN_EXIT(tests);
}
