/* SPDX-License-Identifier: MIT */
/* test_region_corrupt.c - a region whose header and directory were corrupted at random is opened by other processes: every call gives a result or an error (EBADMSG, EINVAL from open), never a crash or an access outside the mapping. */
/*
 * A region is made with a few dozen objects and closed; its header, CPU
 * table and directory are saved.  Then, round after round (a fixed seed,
 * thousands of rounds), the saved bytes are written back and corrupted:
 * random bytes flipped, random 32-bit words set to 0, all ones, small or
 * random values.  A process that did not create the region opens it
 * (read-write and read-only) and calls everything: find for every name,
 * foreach (reading every byte of every object it is given, in every
 * unit), info, check, alloc, free.  Each call must succeed or fail with
 * an error the header allows; any crash (SIGSEGV, SIGBUS) kills the
 * child, which the parent reports.  The tallies show that both outcomes
 * happen (a test whose corruptions were all harmless, or all rejected at
 * open, would prove little).
 */
#include "region_util.h"

#include <errno.h>
#include <stdatomic.h>
#include <sys/mman.h>

void pcpu__rlock_set_timeout(unsigned int ms);

#define NOBJ 24
#define HDR_DIR_OFF 48
#define HDR_LEN 144
#define ENT_SIZE 96
#define ROUNDS TU_STEPS(2400, 12)
#define BATCH 120

struct tally {
    _Atomic long open_ok, open_einval, open_ebadmsg;
    _Atomic long calls, ebadmsg, other_errors;
};

static int setup(void **state)
{
    (void)state;
    rt_cleanup_at_exit();
    tu_reinit(NULL);
    return 0;
}

static int touch_fn(const char *obj, void *cookie, size_t size, void *arg)
{
    long *sum = arg;
    (void)obj;
    /* Every byte of the object in every unit: outside the mapping, this
     * faults. */
    for (unsigned int u = 0; u < pcpu_nr_cpus(); u++) {
        const unsigned char *p = pcpu_ptr(cookie, u);
        for (size_t i = 0; i < size; i++)
            *sum += p[i];
    }
    return 0;
}

/* In the children: where failures are reported (stderr itself is quiet:
 * pcpu_region_check() says on it what it found wrong, thousands of times). */
static int err_fd = 2;

static void bad_errno(const char *call, int round)
{
    dprintf(err_fd, "round %d: %s failed with errno %d (%s)\n", round, call, errno,
            strerror(errno));
    _exit(1);
}

/* One round's calls on an opened region. */
static void exercise(struct pcpu_region *r, bool rw, int round, struct tally *t)
{
    long sum = 0;
    char name[32];
    for (int i = 0; i < NOBJ; i++) {
        snprintf(name, sizeof(name), "obj-%d", i);
        size_t size = 0;
        atomic_fetch_add(&t->calls, 1);
        errno = 0;
        void *c = pcpu_region_find(r, name, &size);
        if (c) {
            touch_fn(name, c, size, &sum);
            if (rw) {
                errno = 0;
                if (pcpu_region_free(r, c) != 0 && errno != EBADMSG)
                    bad_errno("free of a found object", round);
            }
        } else if (errno == EBADMSG) {
            atomic_fetch_add(&t->ebadmsg, 1);
        } else if (errno != ENOENT) {
            bad_errno("find", round);
        }
    }
    atomic_fetch_add(&t->calls, 3);
    errno = 0;
    if (pcpu_region_foreach(r, touch_fn, &sum) != 0) {
        if (errno != EBADMSG)
            bad_errno("foreach", round);
        atomic_fetch_add(&t->ebadmsg, 1);
    }
    struct pcpu_region_info in;
    errno = 0;
    if (pcpu_region_info(r, &in) != 0) {
        if (errno != EBADMSG)
            bad_errno("info", round);
        atomic_fetch_add(&t->ebadmsg, 1);
    } else if (in.used_bytes > in.unit_size || in.nr_objects > in.dir_capacity) {
        dprintf(err_fd, "round %d: info: %zu of %zu bytes, %zu objects\n", round,
                in.used_bytes, in.unit_size, in.nr_objects);
        _exit(1);
    }
    errno = 0;
    if (pcpu_region_check(r) != 0) {
        if (errno != EBADMSG)
            bad_errno("check", round);
        atomic_fetch_add(&t->ebadmsg, 1);
    }
    if (!rw)
        return;
    for (int k = 0; k < 3; k++) {
        snprintf(name, sizeof(name), "new-%d", k);
        atomic_fetch_add(&t->calls, 1);
        errno = 0;
        long *c = pcpu_region_alloc(r, name, 8 << k, 0);
        if (!c) {
            if (errno == EBADMSG)
                atomic_fetch_add(&t->ebadmsg, 1);
            else if (errno == ENOSPC || errno == EEXIST || errno == ETIMEDOUT)
                atomic_fetch_add(&t->other_errors, 1);
            else
                bad_errno("alloc", round);
            continue;
        }
        pcpu_this_inc(c);
        if (pcpu_sum(c) != 1) {
            dprintf(err_fd, "round %d: a new object was not zero\n", round);
            _exit(1);
        }
    }
}

static void corrupt(unsigned char *img, size_t len, size_t dir_off, size_t dir_len,
                    uint64_t *rnd)
{
    int n = 1 + (int)(tu_rand(rnd) % 6);
    for (int i = 0; i < n; i++) {
        uint64_t r = tu_rand(rnd);
        size_t at;
        switch (r % 10) {
        case 0: case 1: case 2: case 3: /* the header */
            at = (size_t)(r >> 8) % HDR_LEN;
            break;
        case 4: /* the CPU table and padding before the directory */
            at = HDR_LEN + (size_t)(r >> 8) % (dir_off - HDR_LEN);
            break;
        default: /* the directory, a little past its fill mark too */
            at = dir_off + (size_t)(r >> 8) % dir_len;
            break;
        }
        uint64_t v = tu_rand(rnd);
        if (v % 2 && at + 4 <= len) {
            uint32_t w;
            switch ((v >> 1) % 4) {
            case 0: w = 0; break;
            case 1: w = UINT32_MAX; break;
            case 2: w = (uint32_t)(v >> 8) % 300; break;
            default: w = (uint32_t)(v >> 16); break;
            }
            memcpy(img + (at & ~(size_t)3), &w, 4);
        } else {
            img[at] ^= (unsigned char)(1 + (v >> 8) % 255);
        }
    }
}

static void test_random_corruption(void **state)
{
    (void)state;
    const char *n = rt_name("corrupt");
    char name[32];
    struct pcpu_region *r = pcpu_region_open(n, 8192, PCPU_REGION_CREATE | PCPU_REGION_EXCL, 0600);
    assert_non_null(r);
    for (int i = 0; i < NOBJ; i++) {
        snprintf(name, sizeof(name), "obj-%d", i);
        long *o = pcpu_region_alloc(r, name, 8 + (size_t)(i % 4) * 100, 0);
        assert_non_null(o);
        pcpu_this_add(o, i);
    }
    /* Holes in the directory too. */
    for (int i = 0; i < NOBJ; i += 5) {
        snprintf(name, sizeof(name), "obj-%d", i);
        assert_int_equal(pcpu_region_free(r, pcpu_region_find(r, name, NULL)), 0);
    }
    assert_int_equal(pcpu_region_close(r), 0);

    int fd = open(rt_path(n), O_RDWR);
    assert_true(fd >= 0);
    uint64_t dir_off;
    assert_int_equal(pread(fd, &dir_off, 8, HDR_DIR_OFF), 8);
    size_t dir_len = (NOBJ + 8) * ENT_SIZE;
    size_t len = (size_t)dir_off + dir_len;
    unsigned char *pristine = malloc(len), *img = malloc(len);
    assert_true(pristine && img);
    assert_int_equal(pread(fd, pristine, len, 0), (ssize_t)len);

    struct tally *t = mmap(NULL, sizeof(*t), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                           -1, 0);
    assert_true(t != MAP_FAILED);
    memset(t, 0, sizeof(*t));
    for (int first = 0; first < ROUNDS; first += BATCH) {
        fflush(NULL);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            child_prepare();
            err_fd = dup(2);
            int devnull = open("/dev/null", O_WRONLY);
            child_check(err_fd >= 0 && devnull >= 0 && dup2(devnull, 2) == 2, "stderr");
            /* A forged lock word must not stall the run. */
            pcpu__rlock_set_timeout(200);
            for (int round = first; round < first + BATCH && round < ROUNDS; round++) {
                uint64_t rnd = 0x5eed0000u + (uint64_t)round;
                memcpy(img, pristine, len);
                corrupt(img, len, (size_t)dir_off, dir_len, &rnd);
                if (pwrite(fd, img, len, 0) != (ssize_t)len)
                    bad_errno("pwrite", round);
                for (int rw = 1; rw >= 0; rw--) {
                    errno = 0;
                    struct pcpu_region *o =
                        pcpu_region_open(n, 0, rw ? 0 : PCPU_REGION_RDONLY, 0);
                    if (!o) {
                        if (errno == EINVAL)
                            atomic_fetch_add(&t->open_einval, 1);
                        else if (errno == EBADMSG)
                            atomic_fetch_add(&t->open_ebadmsg, 1);
                        else
                            bad_errno("open", round);
                        continue;
                    }
                    atomic_fetch_add(&t->open_ok, 1);
                    exercise(o, rw, round, t);
                    if (pcpu_region_close(o) != 0)
                        bad_errno("close", round);
                }
            }
            _exit(0);
        }
        int st = rt_wait(pid);
        if (st != 0)
            fail_msg("rounds %d..%d: the child %s %d", first, first + BATCH - 1,
                     st > 128 ? "was killed by signal" : "exited with", st > 128 ? st - 128 : st);
    }
    printf("  %d rounds: opens %ld ok, %ld EINVAL, %ld EBADMSG; %ld calls on opened regions, "
           "%ld EBADMSG, %ld ENOSPC/EEXIST/ETIMEDOUT\n",
           ROUNDS, atomic_load(&t->open_ok), atomic_load(&t->open_einval),
           atomic_load(&t->open_ebadmsg), atomic_load(&t->calls), atomic_load(&t->ebadmsg),
           atomic_load(&t->other_errors));
    assert_true(atomic_load(&t->open_ok) > 0);
    assert_true(atomic_load(&t->open_einval) > 0);
    assert_true(atomic_load(&t->open_ebadmsg) > 0);
    assert_true(atomic_load(&t->ebadmsg) > 0);

    /* Written back whole, the region is fine again. */
    assert_int_equal(pwrite(fd, pristine, len, 0), (ssize_t)len);
    close(fd);
    r = pcpu_region_open(n, 0, 0, 0);
    assert_non_null(r);
    assert_int_equal(pcpu_region_check(r), 0);
    long *o1 = pcpu_region_find(r, "obj-1", NULL);
    assert_non_null(o1);
    assert_int_equal(pcpu_region_close(r), 0);
    assert_int_equal(pcpu_region_unlink(n), 0);
    munmap(t, sizeof(*t));
    free(pristine);
    free(img);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_random_corruption, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
