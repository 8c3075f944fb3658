/* SPDX-License-Identifier: MIT */
/* test_lookup.c - the address-to-chunk radix table finds exactly the chunk whose reservation holds an address, for any chunk alignment, and nothing elsewhere. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "lookup.h"
#include "os.h"
#include "topology.h"
#include "unit_rand.h"

/*
 * The table only compares addresses, so the chunks here are fake: struct
 * pcpu_chunk objects whose map_addr/map_size describe reservations that
 * are never mapped.  Each one sits at the start of its own aligned slot
 * (key << chunk_shift), as real reservations do, and is at most a slot
 * long.  The reference answer for an address is computed from the sorted
 * keys independently of the table.
 */

#define ADDR_BITS 48 /* the table covers user addresses below 1 << 48 */

struct fake {
    struct pcpu_chunk c;
    uintptr_t key;
    bool in;
};

static struct fake *fakes;
static size_t nr_fakes;
static size_t shift;

static void *addr(uintptr_t a)
{
    return (void *)a;
}

static int by_key(const void *a, const void *b)
{
    uintptr_t x = ((const struct fake *)a)->key, y = ((const struct fake *)b)->key;
    return x < y ? -1 : x > y;
}

/* The chunk that must be found for a. */
static struct pcpu_chunk *expected(uintptr_t a)
{
    if (a >> ADDR_BITS)
        return NULL;
    struct fake probe = {.key = a >> shift};
    struct fake *f = bsearch(&probe, fakes, nr_fakes, sizeof(*fakes), by_key);
    if (!f || !f->in || a - (uintptr_t)f->c.map_addr >= f->c.map_size)
        return NULL;
    return &f->c;
}

static void check_addr(uintptr_t a, const char *what)
{
    struct pcpu_chunk *got = pcpu__lookup(addr(a)), *want = expected(a);
    if (got != want) {
        print_message("shift %zu: lookup(%#lx) (%s) = %p, expected %p\n", shift,
                      (unsigned long)a, what, (void *)got, (void *)want);
        fail();
    }
}

/* Inside, at both edges and just outside the reservation of f, and at the
 * edges of its slot. */
static void check_around(const struct fake *f)
{
    uintptr_t lo = (uintptr_t)f->c.map_addr, size = f->c.map_size, slot = (uintptr_t)1 << shift;
    check_addr(lo, "first byte");
    check_addr(lo + 1, "second byte");
    check_addr(lo + size / 2, "middle");
    check_addr(lo + size - 1, "last byte");
    check_addr(lo + size, "one past the end");
    check_addr(lo + slot - 1, "end of the slot");
    check_addr(lo + slot, "next slot");
    check_addr(lo - 1, "just before");
    check_addr(lo + (unit_rand() % size), "random inside");
}

/* nr keys: runs of neighbours (some across a second-level table's edge),
 * keys spread over the whole address space, the last key and key 1. */
static void make_fakes(size_t nr)
{
    uintptr_t nkeys = (uintptr_t)1 << (ADDR_BITS - shift);
    fakes = calloc(nr, sizeof(*fakes));
    assert_non_null(fakes);
    nr_fakes = 0;
    for (size_t attempt = 0; nr_fakes < nr; attempt++) {
        uintptr_t k;
        switch (attempt % 4) {
        case 0: /* around an edge of a second-level table */
            k = ((uintptr_t)unit_range(0, (nkeys - 1) >> PCPU_LOOKUP_L2_BITS)
                 << PCPU_LOOKUP_L2_BITS) +
                unit_range(0, 3) - 2;
            break;
        case 1: /* next to the previous one */
            k = nr_fakes ? fakes[nr_fakes - 1].key + 1 : 1;
            break;
        default:
            k = unit_range(1, nkeys - 1);
            break;
        }
        if (nr_fakes == 0)
            k = 1;
        else if (nr_fakes == 1)
            k = nkeys - 1;
        if (k == 0 || k >= nkeys)
            continue;
        bool dup = false;
        for (size_t i = 0; i < nr_fakes && !dup; i++)
            dup = fakes[i].key == k;
        if (dup)
            continue;
        struct fake *f = &fakes[nr_fakes++];
        f->key = k;
        f->c.map_addr = addr(k << shift);
        /* Whole slots and shorter reservations (a multiple of 4 KiB). */
        size_t slot = (size_t)1 << shift;
        f->c.map_size = unit_chance(30) || slot <= 4096
                            ? slot
                            : unit_range(1, slot / 4096) * 4096;
    }
    qsort(fakes, nr_fakes, sizeof(*fakes), by_key);
}

static void check_all(void)
{
    for (size_t i = 0; i < nr_fakes; i++)
        check_around(&fakes[i]);
    /* Anywhere, and beyond what the table covers. */
    for (int r = 0; r < 20000; r++) {
        check_addr((uintptr_t)unit_rand() & (((uintptr_t)1 << ADDR_BITS) - 1), "random");
        check_addr((uintptr_t)unit_rand(), "random 64-bit");
    }
    check_addr(0, "NULL");
    check_addr((uintptr_t)1 << ADDR_BITS, "first address beyond the table");
    check_addr(((uintptr_t)1 << ADDR_BITS) - 1, "last address of the table");
    check_addr(UINTPTR_MAX, "the last address");
    check_addr((uintptr_t)0xffff800000000000ull, "kernel half");
    check_addr((uintptr_t)1 << 56, "beyond 56 bits");
}

static void insert(struct fake *f)
{
    if (pcpu__lookup_insert(&f->c) != 0) {
        print_message("shift %zu: insert of key %#lx failed: %s\n", shift,
                      (unsigned long)f->key, strerror(errno));
        fail();
    }
    f->in = true;
}

static void remove_fake(struct fake *f)
{
    pcpu__lookup_remove(&f->c);
    f->in = false;
}

static void run_shift(size_t s, size_t nr)
{
    shift = s;
    pcpu__layout.chunk_shift = s;
    size_t meta_before = atomic_load(&pcpu__meta_bytes);
    make_fakes(nr);
    /* Before anything is inserted, nothing is found. */
    check_all();
    for (size_t i = 0; i < nr_fakes; i++)
        insert(&fakes[i]);
    check_all();
    /* Remove a random half, put some back, remove others: a removed
     * chunk is gone, its neighbours stay. */
    for (int round = 0; round < 4; round++) {
        for (size_t i = 0; i < nr_fakes; i++) {
            struct fake *f = &fakes[unit_range(0, nr_fakes - 1)];
            if (f->in && unit_chance(50))
                remove_fake(f);
            else if (!f->in && unit_chance(50))
                insert(f);
        }
        check_all();
    }
    /* Everything out: the table stays, finds nothing. */
    for (size_t i = 0; i < nr_fakes; i++)
        if (fakes[i].in)
            remove_fake(&fakes[i]);
    check_all();
    for (size_t i = 0; i < nr_fakes; i += 2)
        insert(&fakes[i]);
    check_all();
    /* Exit frees the table (even with chunks still in it) and every
     * metadata byte it took; afterwards nothing is found. */
    pcpu__lookup_exit();
    assert_null(pcpu__l1);
    assert_int_equal(atomic_load(&pcpu__meta_bytes), meta_before);
    for (size_t i = 0; i < nr_fakes; i++) {
        fakes[i].in = false;
        assert_null(pcpu__lookup(fakes[i].c.map_addr));
    }
    pcpu__lookup_exit(); /* twice is harmless */
    free(fakes);
    fakes = NULL;
    nr_fakes = 0;
}

/* 64 KiB slots (a one-unit chunk of the smallest unit): the largest table. */
static void test_lookup_shift_16(void **state)
{
    (void)state;
    run_shift(16, 800);
}
/* 2 MiB and 4 MiB slots: a default 1 MiB unit with one or a few CPUs. */
static void test_lookup_shift_21(void **state)
{
    (void)state;
    run_shift(21, 1500);
}
static void test_lookup_shift_22(void **state)
{
    (void)state;
    run_shift(22, 1500);
}
/* 1 GiB slots: fewer keys than one second-level table holds. */
static void test_lookup_shift_30(void **state)
{
    (void)state;
    run_shift(30, 1000);
}
/* 1 TiB slots (1 GiB units, ~1000 CPUs): a table of one entry. */
static void test_lookup_shift_40(void **state)
{
    (void)state;
    run_shift(40, 200);
}

/* A chunk beyond the table's reach cannot be inserted (ENOMEM), and the
 * table stays as it was. */
static void test_insert_beyond_the_table_fails(void **state)
{
    (void)state;
    shift = 22;
    pcpu__layout.chunk_shift = 22;
    size_t meta_before = atomic_load(&pcpu__meta_bytes);
    struct fake inside = {.key = 5};
    inside.c.map_addr = addr((uintptr_t)5 << 22);
    inside.c.map_size = (size_t)1 << 22;
    inside.in = true;
    fakes = calloc(1, sizeof(*fakes));
    assert_non_null(fakes);
    *fakes = inside;
    nr_fakes = 1;
    assert_int_equal(pcpu__lookup_insert(&fakes[0].c), 0);
    struct pcpu_chunk beyond = {.map_addr = addr((uintptr_t)1 << ADDR_BITS),
                                .map_size = (size_t)1 << 22};
    errno = 0;
    assert_int_equal(pcpu__lookup_insert(&beyond), -1);
    assert_int_equal(errno, ENOMEM);
    assert_null(pcpu__lookup(beyond.map_addr));
    check_around(&fakes[0]);
    pcpu__lookup_exit();
    assert_int_equal(atomic_load(&pcpu__meta_bytes), meta_before);
}

/* The table's own metadata can fail to allocate (first level, then a
 * second-level table): the insert fails, nothing is found for it, and a
 * later insert works. */
static void test_insert_survives_metadata_failure(void **state)
{
    (void)state;
    shift = 21;
    pcpu__layout.chunk_shift = 21;
    size_t meta_before = atomic_load(&pcpu__meta_bytes);
    struct pcpu_chunk a = {.map_addr = addr((uintptr_t)3 << 21), .map_size = 1 << 21};
    struct pcpu_chunk b = {.map_addr = addr((uintptr_t)0x7f1234 << 21), .map_size = 1 << 20};
    pcpu_fault_inject(1); /* the first-level table */
    assert_int_equal(pcpu__lookup_insert(&a), -1);
    pcpu_fault_inject(0);
    assert_null(pcpu__lookup(a.map_addr));
    assert_int_equal(pcpu__lookup_insert(&a), 0);
    pcpu_fault_inject(1); /* b's second-level table */
    assert_int_equal(pcpu__lookup_insert(&b), -1);
    pcpu_fault_inject(0);
    assert_null(pcpu__lookup(b.map_addr));
    assert_ptr_equal(pcpu__lookup(a.map_addr), &a);
    assert_int_equal(pcpu__lookup_insert(&b), 0);
    assert_ptr_equal(pcpu__lookup((char *)b.map_addr + 100), &b);
    pcpu__lookup_exit();
    assert_int_equal(atomic_load(&pcpu__meta_bytes), meta_before);
}

/* After pcpu__lookup_exit, a table for another chunk_shift is built from
 * scratch (a re-init with a different layout). */
static void test_rebuild_with_another_shift(void **state)
{
    (void)state;
    pcpu__layout.chunk_shift = 30;
    struct pcpu_chunk a = {.map_addr = addr((uintptr_t)7 << 30), .map_size = (size_t)1 << 30};
    assert_int_equal(pcpu__lookup_insert(&a), 0);
    assert_int_equal(pcpu__l1_shift, 30);
    pcpu__lookup_exit();
    pcpu__layout.chunk_shift = 20;
    struct pcpu_chunk b = {.map_addr = addr((uintptr_t)7 << 30), .map_size = (size_t)1 << 20};
    assert_int_equal(pcpu__lookup_insert(&b), 0);
    assert_int_equal(pcpu__l1_shift, 20);
    assert_ptr_equal(pcpu__lookup(b.map_addr), &b);
    assert_null(pcpu__lookup((char *)b.map_addr + ((size_t)1 << 20)));
    pcpu__lookup_exit();
}

#if PCPU_DEBUG_LEVEL >= 1
/* In a child with stderr silenced: status of fn(). */
static int child_status(void (*fn)(void))
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* cmocka catches SIGABRT to report a crashed test: not here. */
        signal(SIGABRT, SIG_DFL);
        FILE *null = freopen("/dev/null", "w", stderr);
        (void)null;
        fn();
        _exit(0);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    return st;
}

static struct pcpu_chunk dup_a = {.map_addr = (void *)((uintptr_t)9 << 22), .map_size = 4096};
static struct pcpu_chunk dup_b = {.map_addr = (void *)((uintptr_t)9 << 22), .map_size = 8192};

static void insert_twice(void)
{
    pcpu__layout.chunk_shift = 22;
    pcpu__lookup_insert(&dup_a);
    pcpu__lookup_insert(&dup_b);
}

static void remove_absent(void)
{
    pcpu__layout.chunk_shift = 22;
    pcpu__lookup_insert(&dup_a);
    pcpu__lookup_remove(&dup_b);
}

/* Two chunks in one slot, or removing a chunk that is not there, is a bug
 * in the caller and stops the process. */
static void test_misuse_stops_the_process(void **state)
{
    (void)state;
    int st = child_status(insert_twice);
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
    st = child_status(remove_absent);
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
}
#endif

/* Readers take no lock: while one thread inserts and removes chunks,
 * readers always find the chunks that stay and never find a wrong one. */
#define STAY 64
#define CHURN 256
static struct pcpu_chunk stay[STAY], churn[CHURN];
static atomic_bool stop;
static atomic_long wrong;

static void *reader(void *arg)
{
    (void)arg;
    uint64_t r = 12345;
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        for (size_t i = 0; i < STAY; i++) {
            r = r * 6364136223846793005ull + 1442695040888963407ull;
            if (pcpu__lookup((char *)stay[i].map_addr + (r >> 33) % stay[i].map_size) != &stay[i])
                atomic_fetch_add(&wrong, 1);
        }
        for (size_t i = 0; i < CHURN; i++) {
            struct pcpu_chunk *c = pcpu__lookup((char *)churn[i].map_addr + 8);
            if (c && c != &churn[i])
                atomic_fetch_add(&wrong, 1);
        }
    }
    return NULL;
}

static void test_readers_race_inserts_and_removes(void **state)
{
    (void)state;
    pcpu__layout.chunk_shift = 21;
    for (size_t i = 0; i < STAY; i++) {
        /* Interleaved with the churning chunks, in shared L2 tables. */
        stay[i].map_addr = addr((uintptr_t)(0x40000 + 5 * i) << 21);
        stay[i].map_size = 1 << 20;
        assert_int_equal(pcpu__lookup_insert(&stay[i]), 0);
    }
    for (size_t i = 0; i < CHURN; i++) {
        churn[i].map_addr = addr((uintptr_t)(0x40001 + i + i / 4) << 21);
        churn[i].map_size = 1 << 21;
    }
    /* A churning chunk of its own second-level table, created while
     * readers run. */
    churn[CHURN - 1].map_addr = addr((uintptr_t)0x123456 << 21);
    atomic_store(&stop, false);
    atomic_store(&wrong, 0);
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, reader, NULL), 0);
    bool in[CHURN] = {false};
    uint64_t r = 99;
    for (int round = 0; round < 200000; round++) {
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        size_t i = (r >> 33) % CHURN;
        if (in[i])
            pcpu__lookup_remove(&churn[i]);
        else
            assert_int_equal(pcpu__lookup_insert(&churn[i]), 0);
        in[i] = !in[i];
    }
    atomic_store(&stop, true);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(atomic_load(&wrong), 0);
    pcpu__lookup_exit();
}

/* A failed test must not leave its table (built for its chunk_shift) to
 * the next one. */
static int teardown(void **state)
{
    (void)state;
    pcpu_fault_inject(0);
    pcpu__lookup_exit();
    free(fakes);
    fakes = NULL;
    nr_fakes = 0;
    return 0;
}

int main(void)
{
    unit_seed(0x6c6f6f6b7570ull);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_lookup_shift_16, teardown),
        cmocka_unit_test_teardown(test_lookup_shift_21, teardown),
        cmocka_unit_test_teardown(test_lookup_shift_22, teardown),
        cmocka_unit_test_teardown(test_lookup_shift_30, teardown),
        cmocka_unit_test_teardown(test_lookup_shift_40, teardown),
        cmocka_unit_test_teardown(test_insert_beyond_the_table_fails, teardown),
        cmocka_unit_test_teardown(test_insert_survives_metadata_failure, teardown),
        cmocka_unit_test_teardown(test_rebuild_with_another_shift, teardown),
#if PCPU_DEBUG_LEVEL >= 1
        cmocka_unit_test_teardown(test_misuse_stops_the_process, teardown),
#endif
        cmocka_unit_test_teardown(test_readers_race_inserts_and_removes, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
