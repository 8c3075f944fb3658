/* SPDX-License-Identifier: MIT */
/* test_alloc.c - pcpu_alloc/pcpu_free: alignment, argument errors, zeroing in every unit, reuse, reserved area, guard, 1M objects. */
#include "testutil.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static size_t page_size(void)
{
    return (size_t)sysconf(_SC_PAGESIZE);
}

static int setup(void **state)
{
    (void)state;
    tu_reinit(NULL);
    return 0;
}

static void check_alignment(size_t size, size_t align)
{
    void *c = pcpu_alloc(size, align);
    if (!c)
        fail_msg("pcpu_alloc(%zu, %zu) failed: %s", size, align, strerror(errno));
    if (align && (uintptr_t)c % align)
        fail_msg("pcpu_alloc(%zu, %zu) = %p is misaligned", size, align, c);
    pcpu_for_each_cpu(cpu) assert_int_equal((uintptr_t)pcpu_ptr(c, cpu) % (align ? align : 1), 0);
    /* The whole object is usable in the first and last units. */
    memset(pcpu_ptr(c, 0), 0xab, size);
    memset(pcpu_ptr(c, pcpu_nr_cpus() - 1), 0xcd, size);
    pcpu_free(c);
}

static void test_alignment(void **state)
{
    (void)state;
    size_t ps = page_size();
    static const size_t sizes[] = {1, 2, 3, 4, 5, 7, 8, 12, 16, 24, 31, 64, 100, 256, 257,
                                   1000, 4096, 4097, 10000, 65536};
    for (size_t a = 1; a <= ps; a *= 2)
        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
            check_alignment(sizes[i], a);
    /* align 0: the natural alignment (at least 4, at most 16). */
    for (size_t s = 1; s <= 64; s++) {
        void *c = pcpu_alloc(s, 0);
        assert_non_null(c);
        size_t nat = s & (~s + 1);
        nat = nat < 4 ? 4 : nat > 16 ? 16 : nat;
        assert_int_equal((uintptr_t)c % nat, 0);
        pcpu_free(c);
    }
    /* Many live objects of mixed alignment do not overlap. */
    enum { N = 300 };
    void *live[N];
    size_t sz[N];
    uint64_t seed = 42;
    for (int i = 0; i < N; i++) {
        sz[i] = 1 + tu_rand(&seed) % 2000;
        size_t a = (size_t)1 << (tu_rand(&seed) % 13);
        if (a > ps)
            a = ps;
        live[i] = pcpu_alloc(sz[i], a);
        assert_non_null(live[i]);
        assert_int_equal((uintptr_t)live[i] % a, 0);
        memset(pcpu_ptr(live[i], 0), i & 0xff, sz[i]);
    }
    for (int i = 0; i < N; i++) {
        const unsigned char *p = pcpu_ptr(live[i], 0);
        for (size_t k = 0; k < sz[i]; k++)
            assert_int_equal(p[k], i & 0xff);
        pcpu_free(live[i]);
    }
    assert_valid();
}

/*
 * Churn with alignments above the size classes' (128 .. page size): such
 * requests take cached objects that happen to be aligned, or class-sized
 * ones from the map that later feed the caches.  Every object handed out
 * is aligned, zero in every unit, and not shared with a live one.
 */
static void test_overaligned_churn(void **state)
{
    (void)state;
    size_t ps = page_size();
    enum { N = 256, ROUNDS = 60000 };
    void *live[N] = {0};
    size_t sz[N] = {0};
    uint64_t seed = 7;
    for (int r = 0; r < ROUNDS; r++) {
        size_t k = tu_rand(&seed) % N;
        if (live[k]) {
            pcpu_for_each_cpu(cpu) {
                const unsigned char *p = pcpu_ptr(live[k], cpu);
                assert_int_equal(p[0], (k & 0x7f) + 1);
                assert_int_equal(p[sz[k] - 1], (k & 0x7f) + 1);
            }
            pcpu_free(live[k]);
        }
        uint64_t x = tu_rand(&seed);
        sz[k] = 1 + x % 4096;
        size_t a = (size_t)1 << (3 + (x >> 32) % 10); /* 8 .. 4096 */
        if (a > ps)
            a = ps;
        live[k] = pcpu_alloc(sz[k], a);
        assert_non_null(live[k]);
        pcpu_for_each_cpu(cpu) {
            unsigned char *p = pcpu_ptr(live[k], cpu);
            assert_int_equal((uintptr_t)p % a, 0);
            for (size_t i = 0; i < sz[k]; i++)
                if (p[i])
                    fail_msg("object %p (size %zu, align %zu) not zero at unit %u byte %zu",
                             live[k], sz[k], a, cpu, i);
            p[0] = p[sz[k] - 1] = (unsigned char)((k & 0x7f) + 1);
        }
    }
    for (int k = 0; k < N; k++)
        pcpu_free(live[k]);
    assert_valid();
}

/*
 * Above 256 bytes, 128- and 256-byte alignment is served by the size class
 * of the next multiple of the alignment: every object is aligned, holds
 * that many bytes (pcpu_addr_info says so, and all of them can be written
 * in every unit without touching a neighbour), and is zero when handed out
 * again.
 */
static void test_overaligned_classes(void **state)
{
    (void)state;
    enum { N = 12 };
    static const size_t aligns[] = {128, 256};
    for (size_t ai = 0; ai < 2; ai++) {
        size_t a = aligns[ai];
        for (size_t size = 257; size <= 4096; size += 191) {
            size_t cls = (size + 63) & ~(size_t)63;
            size_t want = (cls + a - 1) & ~(a - 1);
            void *v[N];
            for (int round = 0; round < 2; round++) {
                for (int i = 0; i < N; i++) {
                    v[i] = pcpu_alloc(size, a);
                    assert_non_null(v[i]);
                    struct pcpu_addr_info info;
                    assert_int_equal(pcpu_addr_info(pcpu_ptr(v[i], 0), &info), 0);
                    assert_ptr_equal(info.cookie, v[i]);
                    if (info.size != want)
                        fail_msg("pcpu_alloc(%zu, %zu): holds %zu bytes, want %zu", size, a,
                                 info.size, want);
                    pcpu_for_each_cpu(cpu) assert_int_equal((uintptr_t)pcpu_ptr(v[i], cpu) % a, 0);
                    tu_assert_zero_units(v[i], want);
                    tu_fill_units(v[i], want, (unsigned char)(i + 1));
                }
                for (int i = 0; i < N; i++) {
                    pcpu_for_each_cpu(cpu) {
                        const unsigned char *p = pcpu_ptr(v[i], cpu);
                        assert_int_equal(p[0], i + 1);
                        assert_int_equal(p[want - 1], i + 1);
                    }
                    pcpu_free(v[i]);
                }
            }
        }
    }
    assert_valid();
}

/*
 * A size asked for more alignment than its natural one is rounded up to a
 * multiple of the alignment: the object holds that many bytes (the held
 * size of the rounded size), is aligned and zero in every unit, and
 * objects of one such size lie side by side without holes (the pattern
 * that once made every allocation walk all the holes left before it).
 */
static void test_overaligned_small(void **state)
{
    (void)state;
    static const size_t sizes[] = {1, 3, 4, 8, 12, 20, 100, 200, 250};
    for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
        for (size_t a = 8; a <= 4096; a *= 2) {
            size_t size = sizes[si];
            size_t want = tu_held_size((size + a - 1) & ~(a - 1));
            enum { N = 40 };
            char *v[N];
            for (int i = 0; i < N; i++) {
                v[i] = pcpu_alloc(size, a);
                if (!v[i])
                    fail_msg("pcpu_alloc(%zu, %zu): %s", size, a, strerror(errno));
                struct pcpu_addr_info info;
                assert_int_equal(pcpu_addr_info(pcpu_ptr(v[i], 0), &info), 0);
                assert_ptr_equal(info.cookie, v[i]);
                if (info.size != want)
                    fail_msg("pcpu_alloc(%zu, %zu): holds %zu bytes, want %zu", size, a, info.size,
                             want);
                pcpu_for_each_cpu(cpu) assert_int_equal((uintptr_t)pcpu_ptr(v[i], cpu) % a, 0);
                tu_assert_zero_units(v[i], want);
                tu_fill_units(v[i], want, (unsigned char)(i + 1));
            }
            /* No holes: most neighbours (those of one refill run or one
             * search frontier) are exactly the held size apart. */
            int adjacent = 0;
            for (int i = 1; i < N; i++)
                adjacent += v[i] - v[i - 1] == (ptrdiff_t)want || v[i - 1] - v[i] == (ptrdiff_t)want;
            if (adjacent < N / 2)
                fail_msg("pcpu_alloc(%zu, %zu): only %d of %d neighbours side by side", size, a,
                         adjacent, N - 1);
            for (int i = 0; i < N; i++)
                pcpu_free(v[i]);
        }
    }
    assert_valid();
}

static void test_sizes(void **state)
{
    (void)state;
    size_t max = pcpu_max_alloc_size();
    assert_true(max >= 64 * 1024);
    for (size_t s = 1; s <= 64 * 1024; s = s < 64 ? s + 1 : s * 3 / 2) {
        void *c = pcpu_alloc(s, 0);
        if (!c)
            fail_msg("pcpu_alloc(%zu) failed: %s", s, strerror(errno));
        memset(pcpu_ptr(c, 0), 1, s);
        memset(pcpu_ptr(c, pcpu_nr_cpus() - 1), 2, s);
        pcpu_free(c);
    }
    /* Up to the maximum, which takes a chunk of its own. */
    size_t big[] = {64 * 1024, max / 2, max - page_size(), max - 4, max};
    for (size_t i = 0; i < sizeof(big) / sizeof(big[0]); i++) {
        void *c = pcpu_alloc(big[i], 0);
        if (!c)
            fail_msg("pcpu_alloc(%zu) failed: %s", big[i], strerror(errno));
        char *p = pcpu_ptr(c, pcpu_nr_cpus() - 1);
        p[0] = 1;
        p[big[i] - 1] = 2;
        pcpu_free(c);
        assert_valid();
    }
    void *c = pcpu_alloc(max, page_size());
    assert_non_null(c);
    pcpu_free(c);
    pcpu_reclaim(true);
    assert_valid();
}

static void expect_einval(size_t size, size_t align)
{
    errno = 0;
    void *c = pcpu_alloc(size, align);
    if (c || errno != EINVAL)
        fail_msg("pcpu_alloc(%zu, %zu) = %p errno %d, want NULL/EINVAL", size, align, c, errno);
    errno = 0;
    c = pcpu_alloc_reserved(size, align);
    if (c || errno != EINVAL)
        fail_msg("pcpu_alloc_reserved(%zu, %zu) = %p errno %d, want NULL/EINVAL", size, align, c,
                 errno);
}

static void test_einval(void **state)
{
    (void)state;
    size_t max = pcpu_max_alloc_size();
    expect_einval(0, 0);
    expect_einval(0, 8);
    expect_einval(max + 1, 0);
    expect_einval(max + 4096, 0);
    expect_einval(SIZE_MAX, 0);
    expect_einval(8, 3);
    expect_einval(8, 12);
    expect_einval(8, 24);
    expect_einval(8, page_size() * 2);
    expect_einval(8, SIZE_MAX);
    expect_einval(8, (size_t)1 << 63);
    /* Nothing was counted or leaked. */
    struct pcpu_stats st = tu_stats();
    assert_int_equal(st.nr_cur_alloc, 0);
    assert_valid();
}

/* Fill in every unit, free, allocate again: memory is zero everywhere. */
static void check_zeroing(size_t size, size_t align, int rounds)
{
    for (int r = 0; r < rounds; r++) {
        enum { N = 40 };
        void *c[N];
        for (int i = 0; i < N; i++) {
            c[i] = pcpu_alloc(size, align);
            assert_non_null(c[i]);
            tu_assert_zero_units(c[i], size);
            tu_fill_units(c[i], size, (unsigned char)(0xa5 ^ i));
        }
        for (int i = 0; i < N; i++)
            pcpu_free(c[i]);
    }
    /* The recycled objects (same ones, from the cache or the map) read zero. */
    void *again[40];
    for (int i = 0; i < 40; i++) {
        again[i] = pcpu_alloc(size, align);
        assert_non_null(again[i]);
        tu_assert_zero_units(again[i], size);
    }
    for (int i = 0; i < 40; i++)
        pcpu_free(again[i]);
}

static void test_zeroing(void **state)
{
    (void)state;
    /* Small sizes hit the thread cache, large ones the map. */
    static const size_t sizes[] = {1, 4, 8, 13, 16, 64, 100, 256, 257, 1000, 4096, 12345, 65536};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        check_zeroing(sizes[i], 0, 2);
        check_zeroing(sizes[i], 64, 1);
    }
    /* Also with many units, where pages are written in some units only. */
    struct pcpu_config cfg = {.nr_cpus = 64};
    tu_reinit(&cfg);
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
        check_zeroing(sizes[i], 0, 1);
    /* And without thread caches. */
    cfg = (struct pcpu_config){.nr_cpus = 4, .flags = PCPU_F_NO_CACHE};
    tu_reinit(&cfg);
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
        check_zeroing(sizes[i], 0, 1);
    assert_valid();
    tu_reinit(NULL);
}

/* One dirty byte anywhere in one unit is found and cleared: the check for
 * zero reads objects in wide vectors with several accumulators and a tail,
 * and a byte in any lane, block or tail must count.  The fixed positions
 * are edges; past them, one byte in every 32-byte vector of the object (at
 * a position that moves through the vector), so that every accumulator of
 * every 1 KiB block is seen to count. */
static void test_zeroing_one_byte(void **state)
{
    (void)state;
    static const size_t sizes[] = {4, 12, 36, 260, 512, 516, 1024, 1028, 2000, 3072, 4096};
    static const size_t edges[] = {0, 7, 8, 31, 32, 100, 255, 256, 300, 511, 512, 513};
    size_t same = 0;
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        size_t size = sizes[i];
        size_t nedges = sizeof(edges) / sizeof(edges[0]);
        size_t npos = nedges + 2 + size / 32;
        for (size_t k = 0; k < npos; k++) {
            size_t pos = k < nedges       ? edges[k]
                         : k == nedges     ? size - 4
                         : k == nedges + 1 ? size - 1
                                           : (k - nedges - 2) * 32 + (k * 7) % 32;
            if (pos >= size)
                continue;
            pcpu_for_each_cpu(cpu) {
                unsigned char *c = pcpu_alloc(size, 0);
                assert_non_null(c);
                ((unsigned char *)pcpu_ptr(c, cpu))[pos] = 0x80;
                pcpu_free(c);
                unsigned char *again = pcpu_alloc(size, 0);
                assert_non_null(again);
                same += again == c;
                pcpu_for_each_cpu(u) {
                    const unsigned char *p = pcpu_ptr(again, u);
                    for (size_t b = 0; b < size; b++)
                        if (p[b])
                            fail_msg("size %zu: byte %zu written in unit %u, read %#x at byte "
                                     "%zu of unit %u after free and alloc",
                                     size, pos, cpu, p[b], b, u);
                }
                pcpu_free(again);
            }
        }
    }
    /* The same object came back (so its dirty byte was checked) most times. */
    assert_true(same > 0);
    assert_valid();
}

/* A freed object's space is handed out again. */
static void test_reuse(void **state)
{
    (void)state;
    void *a = pcpu_alloc(24, 8);
    assert_non_null(a);
    pcpu_free(a);
    void *b = pcpu_alloc(24, 8);
    assert_ptr_equal(a, b); /* the thread cache gives the warm one back */
    pcpu_free(b);

    /* Large objects go back to the map and are found there again. */
    struct pcpu_stats st0 = tu_stats();
    for (int round = 0; round < 200; round++) {
        void *c = pcpu_alloc(8192, 0);
        assert_non_null(c);
        memset(pcpu_ptr(c, 0), 0xff, 8192);
        pcpu_free(c);
    }
    struct pcpu_stats st1 = tu_stats();
    assert_int_equal(st1.nr_chunks, st0.nr_chunks);
    assert_int_equal(st1.nr_cur_alloc, st0.nr_cur_alloc);
    assert_int_equal(st1.nr_alloc - st0.nr_alloc, 200);
    assert_int_equal(st1.nr_dealloc - st0.nr_dealloc, 200);

    /* Allocating the whole dynamic space twice over needs no extra chunk
     * once the first round is freed. */
    enum { N = 2000 };
    static void *v[N];
    for (int i = 0; i < N; i++)
        assert_non_null(v[i] = pcpu_alloc(300, 0));
    for (int i = 0; i < N; i++)
        pcpu_free(v[i]);
    unsigned int chunks = tu_stats().nr_chunks;
    for (int i = 0; i < N; i++)
        assert_non_null(v[i] = pcpu_alloc(300, 0));
    assert_true(tu_stats().nr_chunks <= chunks);
    for (int i = 0; i < N; i++)
        pcpu_free(v[i]);
    assert_valid();
}

struct pair {
    long a;
    char b;
    double c;
};

static void test_new(void **state)
{
    (void)state;
    struct pair *p = PCPU_NEW(struct pair);
    assert_non_null(p);
    assert_int_equal((uintptr_t)p % _Alignof(struct pair), 0);
    pcpu_for_each_cpu(cpu)
    {
        struct pair *q = PCPU_PTR(p, cpu);
        assert_int_equal(q->a, 0);
        assert_int_equal(q->b, 0);
        assert_true(q->c == 0.0);
        q->a = cpu;
    }
    /* &cookie->field is a cookie too. */
    long *fa = &p->a;
    pcpu_for_each_cpu(cpu) assert_int_equal(*PCPU_PTR(fa, cpu), cpu);
    pcpu_free(p);
    uint64_t *u = PCPU_NEW(uint64_t);
    assert_non_null(u);
    assert_int_equal((uintptr_t)u % 8, 0);
    pcpu_free(u);
}

static void test_reserved(void **state)
{
    (void)state;
    struct pcpu_stats st = tu_stats();
    size_t lo = st.static_size, hi = st.static_size + st.reserved_size;
    assert_true(st.reserved_size > 0);
    struct pcpu_addr_info ai;

    void *r = pcpu_alloc_reserved(64, 0);
    assert_non_null(r);
    assert_int_equal(pcpu_addr_info(pcpu_ptr(r, 0), &ai), 0);
    assert_true(ai.unit_offset >= lo && ai.unit_offset < hi);
    assert_ptr_equal(ai.cookie, r);
    assert_int_equal(ai.size, 64);
    tu_assert_zero_units(r, 64);
    tu_fill_units(r, 64, 0x77);
    pcpu_free(r);
    void *r2 = pcpu_alloc_reserved(64, 0);
    assert_non_null(r2);
    tu_assert_zero_units(r2, 64);
    pcpu_free(r2);

    /* Fill the reserved area, then it falls back to dynamic space. */
    enum { N = 256 };
    void *v[N];
    int in_reserved = 0, fell_back = 0;
    for (int i = 0; i < N; i++) {
        v[i] = pcpu_alloc_reserved(1024, 16);
        assert_non_null(v[i]);
        assert_int_equal(pcpu_addr_info(pcpu_ptr(v[i], 0), &ai), 0);
        assert_ptr_equal(ai.cookie, v[i]);
        if (ai.unit_offset >= lo && ai.unit_offset + 1024 <= hi)
            in_reserved++;
        else
            fell_back++;
        memset(pcpu_ptr(v[i], pcpu_nr_cpus() - 1), i, 1024);
    }
    assert_int_equal(in_reserved, (int)(st.reserved_size / 1024));
    assert_true(fell_back > 0);
    assert_valid();
    for (int i = 0; i < N; i++) {
        unsigned char *p = pcpu_ptr(v[i], pcpu_nr_cpus() - 1);
        assert_int_equal(p[0], i & 0xff);
        assert_int_equal(p[1023], i & 0xff);
        pcpu_free(v[i]);
    }
    /* All of it is free again. */
    void *again = pcpu_alloc_reserved(st.reserved_size, 0);
    assert_non_null(again);
    assert_int_equal(pcpu_addr_info(pcpu_ptr(again, 0), &ai), 0);
    assert_int_equal(ai.unit_offset, lo);
    pcpu_free(again);
    assert_valid();
}

static void *g_cookie;

static void touch_cookie(void *arg)
{
    volatile char *p = arg;
    (void)*p;
}

static void write_cookie(void *arg)
{
    volatile char *p = arg;
    *p = 1;
}

static void test_cookie_guard(void **state)
{
    (void)state;
    static const size_t sizes[] = {4, 100, 4096, 65536};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        g_cookie = pcpu_alloc(sizes[i], 0);
        assert_non_null(g_cookie);
        assert_int_equal(tu_dies_by_signal(touch_cookie, g_cookie), SIGSEGV);
        assert_int_equal(tu_dies_by_signal(write_cookie, g_cookie), SIGSEGV);
        /* The last byte of the object too. */
        assert_int_equal(tu_dies_by_signal(touch_cookie, (char *)g_cookie + sizes[i] - 1),
                         SIGSEGV);
        /* A real address does not fault. */
        assert_int_equal(tu_dies_by_signal(touch_cookie, pcpu_ptr(g_cookie, 0)), 0);
        pcpu_free(g_cookie);
    }
    void *r = pcpu_alloc_reserved(16, 0);
    assert_non_null(r);
    assert_int_equal(tu_dies_by_signal(touch_cookie, r), SIGSEGV);
    pcpu_free(r);
}

static void test_million(void **state)
{
    (void)state;
    enum { N = TU_STEPS(1 << 20, 4) }; /* 2 MiB a unit under the sanitizers */
    void **v = malloc(N * sizeof(*v));
    assert_non_null(v);
    double t0 = tu_now();
    for (int i = 0; i < N; i++) {
        v[i] = pcpu_alloc(8, 0);
        if (!v[i])
            fail_msg("allocation %d failed: %s", i, strerror(errno));
    }
    double t1 = tu_now();
    for (int i = 0; i < N; i += 4099)
        *(uint64_t *)pcpu_ptr(v[i], 0) = (uint64_t)i;
    for (int i = 0; i < N; i += 4099)
        assert_int_equal(*(uint64_t *)pcpu_ptr(v[i], 0), i);
    struct pcpu_stats st = tu_stats();
    assert_int_equal(st.nr_cur_alloc, N);
    /* 8 MiB per unit at least. */
    assert_true(st.nr_chunks >= (unsigned int)((size_t)N * 8 / st.unit_size));
    assert_valid();
    double t2 = tu_now();
    for (int i = 0; i < N; i++)
        pcpu_free(v[i]);
    double t3 = tu_now();
    printf("# %d x 8 bytes, %u units: alloc %.1f ns/op, free %.1f ns/op, %u chunks\n", N,
           pcpu_nr_cpus(), (t1 - t0) * 1e9 / N, (t3 - t2) * 1e9 / N, st.nr_chunks);
    st = tu_stats();
    assert_int_equal(st.nr_cur_alloc, 0);
    free(v);
    assert_valid();
    pcpu_reclaim(true);
    assert_int_equal(tu_stats().nr_chunks, 1);
    assert_valid();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_alignment, setup),
        cmocka_unit_test_setup(test_overaligned_churn, setup),
        cmocka_unit_test_setup(test_overaligned_classes, setup),
        cmocka_unit_test_setup(test_overaligned_small, setup),
        cmocka_unit_test_setup(test_sizes, setup),
        cmocka_unit_test_setup(test_einval, setup),
        cmocka_unit_test_setup(test_zeroing, setup),
        cmocka_unit_test_setup(test_zeroing_one_byte, setup),
        cmocka_unit_test_setup(test_reuse, setup),
        cmocka_unit_test_setup(test_new, setup),
        cmocka_unit_test_setup(test_reserved, setup),
        cmocka_unit_test_setup(test_cookie_guard, setup),
        cmocka_unit_test_setup(test_million, setup),
    };
    return TU_RUN_THEN_EXIT(tests);
}
