/* SPDX-License-Identifier: MIT */
/* test_region.c - pcpu_region_*: arguments, errors, objects, read-only mappings, leaks, fork, unit sizes, EXCL races, permissions, foreign files, ENOMEM, misuse, pcpu_exit. */
/*
 * Written as a hostile user would: every bad argument must give its errno
 * and change nothing (no file left in /dev/shm, no descriptor or mapping
 * left in the process); a read-only mapping must really refuse writes (a
 * death test); a process configured with another unit size must reach
 * the same bytes through its own cookies; of processes racing to create
 * one name with EXCL exactly one wins and nobody sees it half made; a
 * file that is not a region, or one of another version, is refused.
 */
#include "region_util.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <time.h>

#define R_CREATE PCPU_REGION_CREATE
#define R_EXCL PCPU_REGION_EXCL
#define R_RDONLY PCPU_REGION_RDONLY

static int setup(void **state)
{
    (void)state;
    rt_cleanup_at_exit();
    tu_reinit(NULL);
    return 0;
}

/* Entries of /dev/shm whose name starts with this process's prefix. */
static unsigned int shm_leftovers(void)
{
    return rt_shm_names("pcpu-test-", NULL);
}

static void expect_open_fails(const char *name, size_t size, unsigned int flags, mode_t mode,
                              int err)
{
    errno = 0;
    struct pcpu_region *r = pcpu_region_open(name, size, flags, mode);
    if (r)
        fail_msg("open(%s, %zu, 0x%x, 0%o) succeeded", name ? name : "NULL", size, flags, mode);
    if (errno != err)
        fail_msg("open(%s, %zu, 0x%x, 0%o): errno %d (%s), expected %d", name ? name : "NULL",
                 size, flags, mode, errno, strerror(errno), err);
}

/* ---- arguments ------------------------------------------------------------ */

static void test_bad_arguments(void **state)
{
    (void)state;
    unsigned int fds = rt_count_fds();
    char longname[300];
    longname[0] = '/';
    memset(longname + 1, 'x', 256);
    longname[257] = 0;
    const char *bad_names[] = {"", "stats", "/", "/a/b", "//x", "/.", "/..", longname};
    for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
        expect_open_fails(bad_names[i], 4096, R_CREATE, 0600, EINVAL);
        expect_open_fails(bad_names[i], 0, 0, 0, EINVAL);
        errno = 0;
        assert_int_equal(pcpu_region_unlink(bad_names[i]), -1);
        assert_int_equal(errno, EINVAL);
    }
    longname[256] = 0; /* 255 bytes after the slash: allowed */
    struct pcpu_region *r = pcpu_region_open(longname, 4096, R_CREATE | R_EXCL, 0600);
    if (r) {
        struct pcpu_region_info in;
        assert_int_equal(pcpu_region_info(r, &in), 0);
        assert_string_equal(in.name, longname); /* the whole name, 256 characters */
        assert_int_equal(pcpu_region_close(r), 0);
        assert_int_equal(pcpu_region_unlink(longname), 0);
    } else {
        assert_int_equal(errno, ENAMETOOLONG); /* the file system's limit, not ours */
    }
    errno = 0;
    assert_int_equal(pcpu_region_unlink(NULL), -1);
    assert_int_equal(errno, EINVAL);

    const char *n = rt_name("args");
    expect_open_fails(NULL, 4096, 0, 0600, EINVAL);                  /* anonymous needs CREATE */
    expect_open_fails(NULL, 4096, R_RDONLY, 0600, EINVAL);
    expect_open_fails(n, 4096, R_EXCL, 0600, EINVAL);                /* EXCL without CREATE */
    expect_open_fails(n, 4096, R_CREATE | R_RDONLY, 0600, EINVAL);
    expect_open_fails(n, 4096, R_CREATE | 0x80u, 0600, EINVAL);      /* unknown flag */
    expect_open_fails(n, 4096, R_CREATE, 010600, EINVAL);            /* not permission bits */
    expect_open_fails(n, 0, R_CREATE, 0600, EINVAL);                 /* size 0 */
    expect_open_fails(NULL, 0, R_CREATE, 0600, EINVAL);
    expect_open_fails(n, pcpu_max_alloc_size() + 1, R_CREATE, 0600, EINVAL); /* > unit */
    expect_open_fails(n, SIZE_MAX, R_CREATE, 0600, EINVAL);
    expect_open_fails(n, SIZE_MAX / 2, R_CREATE, 0600, EINVAL);
    expect_open_fails(n, 0, 0, 0, ENOENT);
    expect_open_fails(n, 0, R_RDONLY, 0, ENOENT);
    errno = 0;
    assert_int_equal(pcpu_region_unlink(n), -1);
    assert_int_equal(errno, ENOENT);
    errno = 0;
    assert_int_equal(pcpu_region_close(NULL), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(shm_leftovers(), 0);
    assert_int_equal(rt_count_fds(), fds);
}

/* ---- create, open, unlink ----------------------------------------------- */

static void test_create_open_unlink(void **state)
{
    (void)state;
    const char *n = rt_name("col");
    struct pcpu_region *a = pcpu_region_open(n, 5000, R_CREATE | R_EXCL, 0600);
    assert_non_null(a);
    expect_open_fails(n, 4096, R_CREATE | R_EXCL, 0600, EEXIST);
    struct pcpu_region_info in;
    assert_int_equal(pcpu_region_info(a, &in), 0);
    assert_string_equal(in.name, n);
    assert_int_equal(in.nr_units, pcpu_nr_cpus());
    assert_int_equal(in.unit_size, 8192); /* rounded up to pages */
    assert_int_equal(in.nr_objects, 0);
    assert_int_equal(in.free_bytes, 8192);
    assert_true(in.writable);

    long *x = pcpu_region_alloc(a, "x", sizeof(long), 0);
    assert_non_null(x);
    pcpu_this_add(x, 41);
    pcpu_this_inc(x);

    /* CREATE without EXCL opens the existing one (size ignored), and so
     * does a plain open; each has its own cookie for the same bytes. */
    struct pcpu_region *b = pcpu_region_open(n, 12345, R_CREATE, 0600);
    struct pcpu_region *c = pcpu_region_open(n, 0, R_CREATE, 0600); /* size 0: it exists */
    struct pcpu_region *d = pcpu_region_open(n, 0, R_RDONLY, 0);
    assert_non_null(b);
    assert_non_null(c);
    assert_non_null(d);
    size_t size = 0;
    long *xb = pcpu_region_find(b, "x", &size);
    long *xd = pcpu_region_find(d, "x", NULL);
    assert_non_null(xb);
    assert_non_null(xd);
    assert_int_equal(size, sizeof(long));
    assert_ptr_not_equal(xb, x);
    assert_int_equal(pcpu_sum(xb), 42);
    assert_int_equal(pcpu_sum(xd), 42);
    pcpu_this_inc(xb);
    assert_int_equal(pcpu_sum(x), 43);
    assert_int_equal(pcpu_region_info(d, &in), 0);
    assert_false(in.writable);
    assert_int_equal(in.nr_objects, 1);

    /* unlink: the name goes, the mappings stay. */
    assert_int_equal(pcpu_region_unlink(n), 0);
    expect_open_fails(n, 0, 0, 0, ENOENT);
    pcpu_this_inc(x);
    assert_int_equal(pcpu_sum(xd), 44);
    assert_non_null(pcpu_region_alloc(c, "y", 100, 0));
    assert_non_null(pcpu_region_find(b, "y", NULL));
    for (struct pcpu_region **p = (struct pcpu_region *[]){a, b, c, d, NULL}; *p; p++)
        assert_int_equal(pcpu_region_close(*p), 0);
    errno = 0;
    assert_int_equal(pcpu_region_unlink(n), -1);
    assert_int_equal(errno, ENOENT);
}

/* ---- objects -------------------------------------------------------------- */

struct seen {
    unsigned int n, stop_at;
    size_t bytes;
};

static int count_fn(const char *obj, void *cookie, size_t size, void *arg)
{
    struct seen *s = arg;
    assert_non_null(cookie);
    assert_true(strlen(obj) >= 1 && strlen(obj) <= PCPU_REGION_NAME_MAX);
    s->n++;
    s->bytes += size;
    return s->n == s->stop_at ? 7 : 0;
}

static void expect_alloc_fails(struct pcpu_region *r, const char *obj, size_t size,
                               size_t align, int err)
{
    errno = 0;
    void *p = pcpu_region_alloc(r, obj, size, align);
    if (p || errno != err)
        fail_msg("alloc(%s, %zu, %zu): %p, errno %d (%s), expected %d", obj ? obj : "NULL",
                 size, align, p, errno, strerror(errno), err);
}

static void test_objects(void **state)
{
    (void)state;
    struct pcpu_region *r = pcpu_region_open(NULL, 4096, R_CREATE, 0600);
    assert_non_null(r);
    char n63[64], n64[65];
    memset(n63, 'a', 63);
    n63[63] = 0;
    memset(n64, 'b', 64);
    n64[64] = 0;
    expect_alloc_fails(r, "", 8, 0, EINVAL);
    expect_alloc_fails(r, n64, 8, 0, EINVAL);
    expect_alloc_fails(r, NULL, 8, 0, EINVAL);
    expect_alloc_fails(r, "z", 0, 0, EINVAL);
    expect_alloc_fails(r, "z", 4097, 0, EINVAL);
    expect_alloc_fails(r, "z", SIZE_MAX, 0, EINVAL);
    expect_alloc_fails(r, "z", 8, 3, EINVAL);
    expect_alloc_fails(r, "z", 8, 8192, EINVAL);
    errno = 0;
    assert_null(pcpu_region_alloc(NULL, "z", 8, 0));
    assert_int_equal(errno, EINVAL);
    void *a63 = pcpu_region_alloc(r, n63, 16, 0);
    assert_non_null(a63);
    size_t sz = 0;
    assert_ptr_equal(pcpu_region_find(r, n63, &sz), a63);
    assert_int_equal(sz, 16);
    expect_alloc_fails(r, n63, 16, 0, EEXIST);
    expect_alloc_fails(r, n63, 8, 0, EEXIST);
    errno = 0;
    assert_null(pcpu_region_find(r, "nothing", NULL));
    assert_int_equal(errno, ENOENT);
    errno = 0;
    assert_null(pcpu_region_find(r, n64, NULL));
    assert_int_equal(errno, EINVAL);

    /* Zero in every unit, also where a freed object was written. */
    unsigned char *big = pcpu_region_alloc(r, "big", 1000, 64);
    assert_non_null(big);
    assert_int_equal((uintptr_t)big % 64, 0);
    tu_fill_units(big, 1000, 0xa5);
    assert_int_equal(pcpu_region_free(r, big), 0);
    unsigned char *again = pcpu_region_alloc(r, "again", 1000, 64);
    assert_ptr_equal(again, big); /* first fit: the same place */
    tu_assert_zero_units(again, 1000);

    /* Foreign, interior, double and read-only frees: -1 EINVAL, nothing changes. */
    void *mine = pcpu_alloc(8, 0);
    assert_non_null(mine);
    int err_cases = 0;
    void *bad[] = {mine, again + 1, big + 1000, (char *)again + 4096 * 4, n63};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        errno = 0;
        assert_int_equal(pcpu_region_free(r, bad[i]), -1);
        assert_int_equal(errno, EINVAL);
        err_cases++;
    }
    pcpu_free(mine);
    assert_int_equal(pcpu_region_free(r, NULL), 0);
    assert_int_equal(pcpu_region_free(r, again), 0);
    errno = 0;
    assert_int_equal(pcpu_region_free(r, again), -1); /* double free */
    assert_int_equal(errno, EINVAL);
    assert_int_equal(pcpu_region_check(r), 0);

    /* ENOSPC by space: the rest of the unit, then one byte more. */
    struct pcpu_region_info in;
    assert_int_equal(pcpu_region_info(r, &in), 0);
    assert_int_equal(in.nr_objects, 1);
    assert_int_equal(in.used_bytes, 16);
    void *rest = pcpu_region_alloc(r, "rest", in.largest_free, 1);
    assert_non_null(rest);
    expect_alloc_fails(r, "more", 1, 1, ENOSPC);
    assert_int_equal(pcpu_region_free(r, rest), 0);

    /* ENOSPC by directory: 256 entries for a 4 KiB unit. */
    assert_int_equal(pcpu_region_info(r, &in), 0);
    size_t cap = in.dir_capacity;
    assert_true(cap >= 64 && cap < 4096);
    char name[32];
    for (size_t i = 1; i < cap; i++) {
        snprintf(name, sizeof(name), "o%zu", i);
        if (!pcpu_region_alloc(r, name, 1, 1))
            fail_msg("alloc %zu of %zu: %s", i, cap, strerror(errno));
    }
    expect_alloc_fails(r, "one-too-many", 1, 1, ENOSPC);
    assert_int_equal(pcpu_region_info(r, &in), 0);
    assert_int_equal(in.nr_objects, cap);

    /* foreach: all of them, then stopping early with fn's value. */
    struct seen s = {0};
    assert_int_equal(pcpu_region_foreach(r, count_fn, &s), 0);
    assert_int_equal(s.n, cap);
    assert_int_equal(s.bytes, 16 + cap - 1);
    s = (struct seen){.stop_at = 5};
    assert_int_equal(pcpu_region_foreach(r, count_fn, &s), 7);
    assert_int_equal(s.n, 5);
    errno = 0;
    assert_int_equal(pcpu_region_foreach(r, NULL, NULL), -1);
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_int_equal(pcpu_region_info(r, NULL), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(pcpu_region_check(r), 0);
    assert_int_equal(pcpu_region_close(r), 0);
    (void)err_cases;
}

/* Every width of this-CPU operation on region objects, against a plain
 * variable (the sum over units is what one CPU would have). */
static void test_thiscpu_ops(void **state)
{
    (void)state;
    struct pcpu_region *r = pcpu_region_open(NULL, 4096, R_CREATE, 0600);
    assert_non_null(r);
    char *c = pcpu_region_alloc(r, "c", 1, 0);
    short *s = pcpu_region_alloc(r, "s", 2, 0);
    int *i = pcpu_region_alloc(r, "i", 4, 0);
    long *l = pcpu_region_alloc(r, "l", 8, 0);
    assert_true(c && s && i && l);
    for (int k = 0; k < 1000; k++) {
        pcpu_this_add(c, 3);
        pcpu_this_sub(s, 7);
        pcpu_this_inc(i);
        pcpu_this_add(l, -5);
    }
    (void)pcpu_this_add_return(l, 5);
    assert_int_equal((unsigned char)pcpu_sum(c), (unsigned char)3000);
    assert_int_equal(pcpu_sum(s), (short)-7000);
    assert_int_equal(pcpu_sum(i), 1000);
    assert_int_equal(pcpu_sum(l), -4995);
    int old = pcpu_this_read(i);
    while (!pcpu_this_try_cmpxchg(i, &old, old + 10))
        ; /* migrated: old is now the other unit's value */
    assert_int_equal(pcpu_sum(i), 1010);
    *PCPU_PTR(l, 0) += 100;
    assert_int_equal(pcpu_sum(l), -4895);
    assert_int_equal(pcpu_region_close(r), 0);
}

/* ---- read-only mappings ------------------------------------------------ */

static long *ro_cookie;

static void write_ro_inc(void *arg)
{
    (void)arg;
    pcpu_this_inc(ro_cookie);
}

static void write_ro_ptr(void *arg)
{
    *PCPU_PTR(ro_cookie, (uintptr_t)arg) = 1;
}

static void test_rdonly(void **state)
{
    (void)state;
    const char *n = rt_name("ro");
    struct pcpu_region *w = pcpu_region_open(n, 4096, R_CREATE | R_EXCL, 0600);
    assert_non_null(w);
    long *x = pcpu_region_alloc(w, "x", 8, 0);
    assert_non_null(x);
    pcpu_this_add(x, 5);
    struct pcpu_region *r = pcpu_region_open(n, 0, R_RDONLY, 0);
    assert_non_null(r);
    ro_cookie = pcpu_region_find(r, "x", NULL);
    assert_non_null(ro_cookie);
    assert_int_equal(pcpu_sum(ro_cookie), 5);
    /* Writing through a read-only mapping faults, in every unit. */
    assert_int_equal(tu_dies_by_signal(write_ro_inc, NULL), SIGSEGV);
    for (unsigned int u = 0; u < pcpu_nr_cpus(); u++)
        assert_int_equal(tu_dies_by_signal(write_ro_ptr, (void *)(uintptr_t)u), SIGSEGV);
    assert_int_equal(pcpu_sum(ro_cookie), 5);
    expect_alloc_fails(r, "y", 8, 0, EACCES);
    errno = 0;
    assert_int_equal(pcpu_region_free(r, ro_cookie), -1);
    assert_int_equal(errno, EACCES);
    assert_non_null(pcpu_region_find(w, "x", NULL));

    /* A reader's sums grow monotonically while a writer process writes,
     * and are exact once it stops. */
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        child_prepare();
        close(pfd[0]);
        long done = 0;
        double end = tu_now() + 0.3;
        while (tu_now() < end) {
            for (int k = 0; k < 1000; k++)
                pcpu_this_inc(x);
            done += 1000;
        }
        child_check(write(pfd[1], &done, sizeof(done)) == sizeof(done), "pipe");
        _exit(0);
    }
    close(pfd[1]);
    long last = 5, reads = 0;
    int st = 0;
    while (waitpid(pid, &st, WNOHANG) == 0) {
        long now = pcpu_sum(ro_cookie);
        if (now < last)
            fail_msg("sum went back from %ld to %ld", last, now);
        last = now;
        reads++;
    }
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    long done = 0;
    assert_int_equal(read(pfd[0], &done, sizeof(done)), sizeof(done));
    close(pfd[0]);
    assert_int_equal(pcpu_sum(ro_cookie), 5 + done);
    assert_true(reads > 10);
    assert_int_equal(pcpu_region_close(r), 0);
    assert_int_equal(pcpu_region_close(w), 0);
    assert_int_equal(pcpu_region_unlink(n), 0);
}

/* ---- no leaks -------------------------------------------------------------- */

static void test_open_close_leaks(void **state)
{
    (void)state;
    const char *n = rt_name("leak");
    struct pcpu_region *keep = pcpu_region_open(n, 8192, R_CREATE | R_EXCL, 0600);
    assert_non_null(keep);
    assert_non_null(pcpu_region_alloc(keep, "k", 8, 0));
    /* One round first, so that lazily opened descriptors (the library's
     * own) are there before counting. */
    pcpu_region_close(pcpu_region_open(n, 0, R_RDONLY, 0));
    unsigned int fds = rt_count_fds(), maps = rt_count_maps();
    unsigned int files = rt_count_maps_of("/dev/shm/") + rt_count_maps_of("percpu-region");
    const char *absent = rt_name("absent");
    for (int i = 0; i < TU_STEPS(300, 3); i++) {
        struct pcpu_region *a = pcpu_region_open(n, 0, 0, 0);
        struct pcpu_region *b = pcpu_region_open(n, 0, R_RDONLY, 0);
        struct pcpu_region *c = pcpu_region_open(NULL, 4096 * (1 + i % 3), R_CREATE, 0600);
        if (!a || !b || !c)
            fail_msg("round %d: %p %p %p: %s", i, (void *)a, (void *)b, (void *)c, strerror(errno));
        long *x = pcpu_region_find(a, "k", NULL);
        assert_non_null(x);
        pcpu_this_inc(x);
        assert_non_null(pcpu_region_alloc(c, "t", 8, 0));
        expect_open_fails(n, 4096, R_CREATE | R_EXCL, 0600, EEXIST);
        expect_open_fails(absent, 0, 0, 0, ENOENT);
        assert_int_equal(pcpu_region_close(c), 0);
        assert_int_equal(pcpu_region_close(b), 0);
        assert_int_equal(pcpu_region_close(a), 0);
    }
    assert_int_equal(rt_count_fds(), fds);
    /* Every round maps a dozen ranges or more: a leak would show in
     * hundreds; file mappings must match exactly in every build. */
    assert_true(rt_count_maps() <= maps + RT_MAPS_SLACK);
    assert_int_equal(rt_count_maps_of("/dev/shm/") + rt_count_maps_of("percpu-region"), files);
    assert_int_equal(pcpu_sum((long *)pcpu_region_find(keep, "k", NULL)), TU_STEPS(300, 3));
    assert_int_equal(pcpu_region_close(keep), 0);
    assert_int_equal(pcpu_region_unlink(n), 0);
}

/* ---- fork ------------------------------------------------------------------ */

static void test_fork_after_open(void **state)
{
    (void)state;
    const char *n = rt_name("fork");
    struct pcpu_region *anon = pcpu_region_open(NULL, 4096, R_CREATE, 0600);
    struct pcpu_region *named = pcpu_region_open(n, 4096, R_CREATE | R_EXCL, 0600);
    assert_non_null(anon);
    assert_non_null(named);
    long *a = pcpu_region_alloc(anon, "a", 8, 0);
    int *b = pcpu_region_alloc(named, "b", 4, 0);
    assert_true(a && b);
    enum { KIDS = 3, N = 20000 };
    pid_t kids[KIDS];
    for (int k = 0; k < KIDS; k++) {
        fflush(NULL);
        kids[k] = fork();
        assert_true(kids[k] >= 0);
        if (kids[k] == 0) {
            child_prepare();
            /* The inherited cookies, without reopening; and a new object. */
            for (int i = 0; i < N; i++) {
                pcpu_this_inc(a);
                pcpu_this_add(b, 2);
            }
            char name[16];
            snprintf(name, sizeof(name), "kid%d", k);
            long *own = pcpu_region_alloc(anon, name, 8, 0);
            child_check(own != NULL, "alloc in child: %s", strerror(errno));
            pcpu_this_add(own, k + 1);
            _exit(0);
        }
    }
    for (int k = 0; k < KIDS; k++)
        assert_int_equal(rt_wait(kids[k]), 0);
    assert_int_equal(pcpu_sum(a), (long)KIDS * N);
    assert_int_equal(pcpu_sum(b), 2 * KIDS * N);
    for (int k = 0; k < KIDS; k++) {
        char name[16];
        snprintf(name, sizeof(name), "kid%d", k);
        long *own = pcpu_region_find(anon, name, NULL);
        assert_non_null(own);
        assert_int_equal(pcpu_sum(own), k + 1);
    }
    assert_int_equal(pcpu_region_check(anon), 0);
    assert_int_equal(pcpu_region_close(anon), 0);
    assert_int_equal(pcpu_region_close(named), 0);
    assert_int_equal(pcpu_region_unlink(n), 0);
}

/* ---- other configurations ------------------------------------------------ */

/* In a forked child: the allocator again with @unit_size and @nr_cpus. */
static void child_config(size_t unit_size, unsigned int nr_cpus)
{
    pcpu_exit();
    struct pcpu_config cfg = child_env_config();
    cfg.unit_size = unit_size;
    cfg.nr_cpus = nr_cpus;
    child_check(pcpu_init(&cfg) == 0, "pcpu_init: %s", strerror(errno));
}

static void test_unit_sizes(void **state)
{
    (void)state;
    const char *n = rt_name("units");
    /* 64 KiB units in a process with 1 MiB units. */
    struct pcpu_region *r = pcpu_region_open(n, 64 << 10, R_CREATE | R_EXCL, 0600);
    assert_non_null(r);
    long *x = pcpu_region_alloc(r, "x", 8, 0);
    unsigned char *tail = pcpu_region_alloc(r, "tail", 16, 0);
    assert_true(x && tail);
    static const size_t sizes[] = {64 << 10, 128 << 10, 4 << 20};
    enum { N = 10000 };
    for (size_t k = 0; k < 3; k++) {
        fflush(NULL);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            child_prepare();
            child_config(sizes[k], 0);
            struct pcpu_region *c = pcpu_region_open(n, 0, 0, 0);
            child_check(c != NULL, "open with unit %zu: %s", sizes[k], strerror(errno));
            long *cx = pcpu_region_find(c, "x", NULL);
            unsigned char *ct = pcpu_region_find(c, "tail", NULL);
            child_check(cx && ct, "find");
            for (int i = 0; i < N; i++)
                pcpu_this_inc(cx);
            /* The same bytes through this process's own spacing. */
            pcpu_for_each_cpu(u) memset(pcpu_ptr(ct, u), (int)(k + 1), 16);
            /* A region whose unit is larger than this process's: EINVAL. */
            if (sizes[k] == (64 << 10)) {
                errno = 0;
                child_check(!pcpu_region_open(NULL, 128 << 10, R_CREATE, 0600) && errno == EINVAL,
                            "unit larger than ours");
            }
            _exit(0);
        }
        assert_int_equal(rt_wait(pid), 0);
        for (unsigned int u = 0; u < pcpu_nr_cpus(); u++)
            for (int b = 0; b < 16; b++)
                assert_int_equal(PCPU_PTR(tail, u)[b], k + 1);
    }
    assert_int_equal(pcpu_sum(x), 3 * N);

    /* Another number of units, or units shared by CPUs: EINVAL, also read-only. */
    unsigned int nr[] = {pcpu_nr_cpus() + 1, pcpu_nr_cpus() > 1 ? pcpu_nr_cpus() - 1 : 64};
    for (int k = 0; k < 2; k++) {
        fflush(NULL);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            child_prepare();
            child_config(0, nr[k]);
            errno = 0;
            child_check(!pcpu_region_open(n, 0, R_RDONLY, 0) && errno == EINVAL,
                        "%u units: %s", nr[k], strerror(errno));
            errno = 0;
            child_check(!pcpu_region_open(n, 0, 0, 0) && (errno == EINVAL || errno == EOPNOTSUPP),
                        "%u units, writing: %s", nr[k], strerror(errno));
            _exit(0);
        }
        assert_int_equal(rt_wait(pid), 0);
    }
    assert_int_equal(pcpu_region_close(r), 0);
    assert_int_equal(pcpu_region_unlink(n), 0);
}

/* ---- creation races ------------------------------------------------------ */

static void test_excl_race(void **state)
{
    (void)state;
    enum { KIDS = 4, ROUNDS = 6 };
    for (int round = 0; round < ROUNDS; round++) {
        bool excl = round % 2 == 0;
        char tag[32];
        snprintf(tag, sizeof(tag), "race%d", round);
        const char *n = rt_name(tag);
        int go[2], res[2];
        assert_int_equal(pipe(go), 0);
        assert_int_equal(pipe(res), 0);
        pid_t kids[KIDS];
        for (int k = 0; k < KIDS; k++) {
            fflush(NULL);
            kids[k] = fork();
            assert_true(kids[k] >= 0);
            if (kids[k] == 0) {
                child_prepare();
                close(go[1]);
                char c;
                child_check(read(go[0], &c, 1) == 0, "start");
                struct pcpu_region *r =
                    pcpu_region_open(n, 8192, R_CREATE | (excl ? R_EXCL : 0), 0600);
                int out = r ? 1 : errno == EEXIST ? 2 : 100 + errno;
                if (r) {
                    /* Whatever this process opened is whole. */
                    child_check(pcpu_region_check(r) == 0, "check");
                    char name[16];
                    snprintf(name, sizeof(name), "k%d", k);
                    child_check(pcpu_region_alloc(r, name, 8, 0) != NULL, "alloc: %s",
                                strerror(errno));
                    struct pcpu_region_info in;
                    child_check(pcpu_region_info(r, &in) == 0 && in.unit_size == 8192, "info");
                }
                child_check(write(res[1], &out, sizeof(out)) == sizeof(out), "pipe");
                _exit(0);
            }
        }
        close(go[0]);
        close(res[1]);
        close(go[1]); /* everybody starts at once */
        int wins = 0, eexist = 0, out;
        while (read(res[0], &out, sizeof(out)) == sizeof(out)) {
            if (out == 1)
                wins++;
            else if (out == 2)
                eexist++;
            else
                fail_msg("a racer got errno %d", out - 100);
        }
        close(res[0]);
        for (int k = 0; k < KIDS; k++)
            assert_int_equal(rt_wait(kids[k]), 0);
        if (excl) {
            assert_int_equal(wins, 1);
            assert_int_equal(eexist, KIDS - 1);
        } else {
            assert_int_equal(wins, KIDS);
        }
        struct pcpu_region *r = pcpu_region_open(n, 0, 0, 0);
        assert_non_null(r);
        struct pcpu_region_info in;
        assert_int_equal(pcpu_region_info(r, &in), 0);
        assert_int_equal(in.nr_objects, wins);
        assert_int_equal(pcpu_region_check(r), 0);
        assert_int_equal(pcpu_region_close(r), 0);
        assert_int_equal(pcpu_region_unlink(n), 0);
    }
    /* No temporary file left behind. */
    DIR *d = opendir("/dev/shm");
    struct dirent *e;
    char tmp[64];
    snprintf(tmp, sizeof(tmp), ".pcpu-region-%ld-", (long)getpid());
    while (d && (e = readdir(d)))
        assert_true(strncmp(e->d_name, tmp, strlen(tmp)) != 0);
    if (d)
        closedir(d);
}

/* ---- permissions --------------------------------------------------------- */

static void test_permissions(void **state)
{
    (void)state;
    const char *n600 = rt_name("p600"), *n644 = rt_name("p644"), *n400 = rt_name("p400");
    mode_t old = umask(0);
    struct pcpu_region *a = pcpu_region_open(n600, 4096, R_CREATE | R_EXCL, 0600);
    struct pcpu_region *b = pcpu_region_open(n644, 4096, R_CREATE | R_EXCL, 0644);
    struct pcpu_region *c = pcpu_region_open(n400, 4096, R_CREATE | R_EXCL, 0400);
    umask(old);
    assert_true(a && b && c);
    struct stat st;
    assert_int_equal(stat(rt_path(n600), &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(stat(rt_path(n400), &st), 0);
    assert_int_equal(st.st_mode & 0777, 0400);
    assert_non_null(pcpu_region_alloc(b, "v", 8, 0));
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        child_prepare();
        /* Another user (as root: drop to nobody first). */
        if (getuid() == 0)
            child_check(setgid(65534) == 0 && setuid(65534) == 0, "setuid: %s", strerror(errno));
        errno = 0;
        child_check(!pcpu_region_open(n600, 0, 0, 0) && errno == EACCES, "0600 rw: %s",
                    strerror(errno));
        errno = 0;
        child_check(!pcpu_region_open(n600, 0, R_RDONLY, 0) && errno == EACCES, "0600 ro");
        errno = 0;
        child_check(!pcpu_region_open(n644, 0, 0, 0) && errno == EACCES, "0644 rw");
        errno = 0;
        child_check(!pcpu_region_open(n400, 0, 0, 0) && errno == EACCES, "0400 rw");
        struct pcpu_region *r = pcpu_region_open(n644, 0, R_RDONLY, 0);
        child_check(r != NULL, "0644 ro: %s", strerror(errno));
        child_check(pcpu_region_find(r, "v", NULL) != NULL, "find");
        errno = 0;
        child_check(pcpu_region_unlink(n600) == -1 && errno == EACCES, "unlink: %s",
                    strerror(errno));
        _exit(0);
    }
    assert_int_equal(rt_wait(pid), 0);
    for (struct pcpu_region **p = (struct pcpu_region *[]){a, b, c, NULL}; *p; p++)
        assert_int_equal(pcpu_region_close(*p), 0);
    assert_int_equal(pcpu_region_unlink(n600), 0);
    assert_int_equal(pcpu_region_unlink(n644), 0);
    assert_int_equal(pcpu_region_unlink(n400), 0);
}

/* ---- files that are not regions ------------------------------------------- */

static void write_file(const char *path, const void *data, size_t len, off_t size)
{
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    if (len)
        assert_int_equal(pwrite(fd, data, len, 0), (ssize_t)len);
    if (size)
        assert_int_equal(ftruncate(fd, size), 0);
    close(fd);
}

static void test_foreign_files(void **state)
{
    (void)state;
    const char *n = rt_name("foreign");
    char junk[256];
    memset(junk, 0x5a, sizeof(junk));
    write_file(rt_path(n), NULL, 0, 0);          /* empty */
    expect_open_fails(n, 0, 0, 0, EINVAL);
    expect_open_fails(n, 4096, R_CREATE, 0600, EINVAL);
    write_file(rt_path(n), junk, 10, 0);         /* too short */
    expect_open_fails(n, 0, R_RDONLY, 0, EINVAL);
    write_file(rt_path(n), junk, sizeof(junk), 1 << 20); /* not ours */
    expect_open_fails(n, 0, 0, 0, EINVAL);
    assert_int_equal(pcpu_region_unlink(n), 0);

    /* A real region, then: another layout version, another page size, a
     * file cut short. */
    struct pcpu_region *r = pcpu_region_open(n, 4096, R_CREATE | R_EXCL, 0600);
    assert_non_null(r);
    assert_int_equal(pcpu_region_close(r), 0);
    int fd = open(rt_path(n), O_RDWR);
    assert_true(fd >= 0);
    uint32_t v, saved;
    assert_int_equal(pread(fd, &saved, 4, 8), 4);
    v = saved + 1;
    assert_int_equal(pwrite(fd, &v, 4, 8), 4);
    expect_open_fails(n, 0, 0, 0, EINVAL);
    assert_int_equal(pwrite(fd, &saved, 4, 8), 4);
    assert_int_equal(pread(fd, &saved, 4, 16), 4);
    v = saved * 4;
    assert_int_equal(pwrite(fd, &v, 4, 16), 4);
    expect_open_fails(n, 0, 0, 0, EINVAL);
    assert_int_equal(pwrite(fd, &saved, 4, 16), 4);
    r = pcpu_region_open(n, 0, 0, 0);
    assert_non_null(r);
    assert_int_equal(pcpu_region_close(r), 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    assert_int_equal(ftruncate(fd, st.st_size - 4096), 0);
    expect_open_fails(n, 0, R_RDONLY, 0, EBADMSG);
    close(fd);
    assert_int_equal(pcpu_region_unlink(n), 0);
}

/* ---- out of memory ------------------------------------------------------- */

static void test_enomem(void **state)
{
    (void)state;
    const char *n = rt_name("nomem");
    struct pcpu_region *keep = pcpu_region_open(n, 4096, R_CREATE | R_EXCL, 0600);
    assert_non_null(keep);
    pcpu_region_close(pcpu_region_open(n, 0, 0, 0));
    unsigned int fds = rt_count_fds(), maps = rt_count_maps();
    /* Each of the first few OS-layer calls of an open fails in turn. */
    int failed = 0;
    for (long nth = 1; nth <= 4; nth++) {
        for (int anon = 0; anon < 2; anon++) {
            pcpu_fault_inject(nth);
            errno = 0;
            struct pcpu_region *r = anon ? pcpu_region_open(NULL, 4096, R_CREATE, 0600)
                                         : pcpu_region_open(n, 0, 0, 0);
            pcpu_fault_inject(0);
            if (r) {
                assert_int_equal(pcpu_region_close(r), 0);
                continue;
            }
            assert_int_equal(errno, ENOMEM);
            failed++;
        }
        assert_int_equal(rt_count_fds(), fds);
        assert_true(rt_count_maps() <= maps + RT_MAPS_SLACK);
    }
    assert_true(failed >= 2);
    /* A creation that fails leaves no region behind: the file is mapped
     * before it gets its name. */
    const char *m = rt_name("nomem-create");
    unsigned int names = shm_leftovers();
    failed = 0;
    for (long nth = 1; nth <= 6; nth++) {
        pcpu_fault_inject(nth);
        errno = 0;
        struct pcpu_region *r = pcpu_region_open(m, 4096, R_CREATE | R_EXCL, 0600);
        int e = errno;
        pcpu_fault_inject(0);
        if (r) {
            assert_int_equal(pcpu_region_close(r), 0);
            assert_int_equal(pcpu_region_unlink(m), 0);
            continue;
        }
        assert_int_equal(e, ENOMEM);
        failed++;
        expect_open_fails(m, 0, R_RDONLY, 0, ENOENT);
        assert_int_equal(rt_count_fds(), fds);
        assert_int_equal(shm_leftovers(), names);
    }
    assert_true(failed >= 2);
    /* Everything still works. */
    struct pcpu_region *r = pcpu_region_open(n, 0, 0, 0);
    assert_non_null(r);
    long *x = pcpu_region_alloc(r, "x", 8, 0);
    assert_non_null(x);
    pcpu_this_inc(x);
    assert_int_equal(pcpu_sum(x), 1);
    assert_int_equal(pcpu_region_close(r), 0);
    assert_int_equal(pcpu_region_close(keep), 0);
    assert_int_equal(pcpu_region_unlink(n), 0);
}

/* ---- misuse that cannot be answered ---------------------------------------- */

static void expect_death_naming(void (*fn)(void *), void *arg, const void *ptr)
{
    char p[64], out[4096];
    snprintf(p, sizeof(p), "%p", ptr);
    const char *need[] = {"percpu", p, NULL};
    if (!tu_dies_with(fn, arg, need, out, sizeof(out)))
        fail_msg("expected an abort naming %s, child wrote \"%s\"", p, out);
    char *nl = strchr(out, '\n');
    if (!nl || nl[1])
        fail_msg("message is not one line: \"%s\"", out);
}

static void close_it(void *r)
{
    pcpu_region_close(r);
}

static void alloc_in(void *r)
{
    pcpu_region_alloc(r, "x", 8, 0);
}

static void find_in(void *r)
{
    pcpu_region_find(r, "x", NULL);
}

static void pcpu_free_it(void *c)
{
    pcpu_free(c);
}

static void test_misuse(void **state)
{
    (void)state;
    struct pcpu_region *r = pcpu_region_open(NULL, 4096, R_CREATE, 0600);
    assert_non_null(r);
    long *x = pcpu_region_alloc(r, "x", 8, 0);
    assert_non_null(x);
    long not_a_region[16] = {0};
    expect_death_naming(close_it, not_a_region, not_a_region);
    expect_death_naming(alloc_in, not_a_region, not_a_region);
    expect_death_naming(pcpu_free_it, x, x); /* a region cookie is not pcpu_free's */
    struct pcpu_region *gone = pcpu_region_open(NULL, 4096, R_CREATE, 0600);
    assert_non_null(gone);
    assert_int_equal(pcpu_region_close(gone), 0);
    expect_death_naming(find_in, gone, gone); /* closed */
    assert_int_equal(pcpu_region_close(r), 0);
}

/* ---- pcpu_exit() ----------------------------------------------------------- */

static long *exit_cookie;

static void touch_exit_cookie(void *arg)
{
    (void)arg;
    pcpu_this_inc(exit_cookie);
}

static void test_exit_detaches(void **state)
{
    (void)state;
    struct pcpu_region *r = pcpu_region_open(NULL, 4096, R_CREATE, 0600);
    assert_non_null(r);
    exit_cookie = pcpu_region_alloc(r, "x", 8, 0);
    assert_non_null(exit_cookie);
    pcpu_this_inc(exit_cookie);
    tu_reinit(NULL);
    expect_alloc_fails(r, "y", 8, 0, EINVAL);
    errno = 0;
    assert_null(pcpu_region_find(r, "x", NULL));
    assert_int_equal(errno, EINVAL);
    assert_int_equal(tu_dies_by_signal(touch_exit_cookie, NULL), SIGSEGV);
    assert_int_equal(pcpu_region_close(r), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_bad_arguments, setup),
        cmocka_unit_test_setup(test_create_open_unlink, setup),
        cmocka_unit_test_setup(test_objects, setup),
        cmocka_unit_test_setup(test_thiscpu_ops, setup),
        cmocka_unit_test_setup(test_rdonly, setup),
        cmocka_unit_test_setup(test_open_close_leaks, setup),
        cmocka_unit_test_setup(test_fork_after_open, setup),
        cmocka_unit_test_setup(test_unit_sizes, setup),
        cmocka_unit_test_setup(test_excl_race, setup),
        cmocka_unit_test_setup(test_permissions, setup),
        cmocka_unit_test_setup(test_foreign_files, setup),
        cmocka_unit_test_setup(test_enomem, setup),
        cmocka_unit_test_setup(test_misuse, setup),
        cmocka_unit_test_setup(test_exit_detaches, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
