/* SPDX-License-Identifier: MIT */
/* test_region_procs.c - regions under many processes: exact sums under forced migration, SIGKILL in the middle of allocations, forged and abandoned lock words, concurrent allocators. */
/*
 * Migration: several processes of several threads each increment the
 * same objects (1, 2, 4 and 8 bytes) while a thread of each process keeps
 * moving its workers between CPUs with sched_setaffinity(); every sum
 * must be exact, which only holds if no two updates of one unit ever
 * interleave, across processes.
 *
 * Death: a child allocates and frees in a loop and is killed with
 * SIGKILL at a random moment (often with the region's lock held, in the
 * middle of an entry); the parent, before and after reaping it, must be
 * able to allocate, find, free and list at once, the directory must check
 * out, and nothing may be lost but what the child held.
 *
 * The lock word: forged to name a dead process, a zombie, a live process
 * with another start time, pid 0, this very process -- each taken over at
 * once; to name a live process that never lets go -- ETIMEDOUT after the
 * (shortened) timeout, not a hang.  An entry left half made is dropped.
 */
#include "region_util.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/syscall.h>

/* White-box hooks of the library (hidden symbols; this program links the
 * static library). */
void pcpu__rlock_set_timeout(unsigned int ms);
uint32_t pcpu__rlock_owner_word(int pid);

/* The file format (src/region_file.h), as a corrupting process sees it. */
#define HDR_LOCK 128
#define HDR_DIR_OFF 48
struct ent {
    uint32_t word, owner;
    uint64_t off, size, pad;
    char name[64];
};
_Static_assert(sizeof(struct ent) == 96, "entry layout");

static int allowed_cpus(void)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    return sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set) : 1;
}

static int setup(void **state)
{
    (void)state;
    rt_cleanup_at_exit();
    tu_reinit(NULL);
    return 0;
}

/* ---- forced migration ------------------------------------------------------ */

enum { MIG_PROCS = 3, MIG_THREADS = 3 };
#define MIG_SECONDS 0.25

struct mig {
    unsigned char *c;
    short *s;
    int *i;
    long *l, *lr;
    _Atomic int tids[MIG_THREADS];
    _Atomic int done;
    _Atomic unsigned int cpus_seen; /* bit per CPU any worker ran on (first 32) */
    _Atomic long iters, rets;       /* what the workers did               */
};

static void *mig_worker(void *arg)
{
    struct mig *m = arg;
    static _Atomic int next;
    int me = atomic_fetch_add(&next, 1) % MIG_THREADS;
    atomic_store(&m->tids[me], (int)syscall(SYS_gettid));
    /* A fixed time rather than a fixed count, so that the flipper moves
     * every worker many times whatever the machine's speed. */
    double end = tu_now() + MIG_SECONDS;
    long k = 0;
    for (;; k++) {
        pcpu_this_inc(m->l);
        pcpu_this_add(m->i, 3);
        pcpu_this_dec(m->s);
        pcpu_this_add(m->c, 1);
        if (k % 16 == 0)
            (void)pcpu_this_add_return(m->lr, 2);
        if (k % 1024 == 1023) {
            int cpu = sched_getcpu();
            if (cpu >= 0 && cpu < 32)
                atomic_fetch_or(&m->cpus_seen, 1u << cpu);
            if (tu_now() >= end) {
                k++;
                break;
            }
        }
    }
    atomic_fetch_add(&m->iters, k);
    atomic_fetch_add(&m->rets, (k + 15) / 16);
    return NULL;
}

static void *mig_flipper(void *arg)
{
    struct mig *m = arg;
    cpu_set_t all;
    CPU_ZERO(&all);
    if (sched_getaffinity(0, sizeof(all), &all) != 0)
        return NULL;
    int cpus[64], n = 0;
    for (int c = 0; c < CPU_SETSIZE && n < 64; c++)
        if (CPU_ISSET(c, &all))
            cpus[n++] = c;
    uint64_t rnd = (uint64_t)getpid() * 7919;
    while (!atomic_load(&m->done)) {
        for (int t = 0; t < MIG_THREADS; t++) {
            int tid = atomic_load(&m->tids[t]);
            if (!tid)
                continue;
            cpu_set_t set;
            CPU_ZERO(&set);
            uint64_t r = tu_rand(&rnd);
            if (r % 3 == 0)
                set = all;
            else
                CPU_SET(cpus[r % (uint64_t)n], &set);
            (void)sched_setaffinity(tid, sizeof(set), &set);
        }
        usleep(200 + (unsigned int)(tu_rand(&rnd) % 300));
    }
    return NULL;
}

static void test_migration_exact(void **state)
{
    (void)state;
    struct pcpu_region *r = pcpu_region_open(NULL, 4096, PCPU_REGION_CREATE, 0600);
    assert_non_null(r);
    /* The shared part of struct mig lives in a shared mapping so that
     * each process can report what it saw. */
    struct mig *shared = mmap(NULL, sizeof(struct mig) * MIG_PROCS, PROT_READ | PROT_WRITE,
                              MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(shared != MAP_FAILED);
    struct mig proto = {0};
    proto.c = pcpu_region_alloc(r, "c", 1, 0);
    proto.s = pcpu_region_alloc(r, "s", 2, 0);
    proto.i = pcpu_region_alloc(r, "i", 4, 0);
    proto.l = pcpu_region_alloc(r, "l", 8, 0);
    proto.lr = pcpu_region_alloc(r, "lr", 8, 0);
    assert_true(proto.c && proto.s && proto.i && proto.l && proto.lr);
    pid_t kids[MIG_PROCS];
    for (int p = 0; p < MIG_PROCS; p++) {
        fflush(NULL);
        kids[p] = fork();
        assert_true(kids[p] >= 0);
        if (kids[p] == 0) {
            child_prepare();
            struct mig *m = &shared[p];
            m->c = proto.c;
            m->s = proto.s;
            m->i = proto.i;
            m->l = proto.l;
            m->lr = proto.lr;
            pthread_t w[MIG_THREADS], f;
            child_check(pthread_create(&f, NULL, mig_flipper, m) == 0, "flipper");
            for (int t = 0; t < MIG_THREADS; t++)
                child_check(pthread_create(&w[t], NULL, mig_worker, m) == 0, "worker");
            for (int t = 0; t < MIG_THREADS; t++)
                pthread_join(w[t], NULL);
            atomic_store(&m->done, 1);
            pthread_join(f, NULL);
            _exit(0);
        }
    }
    for (int p = 0; p < MIG_PROCS; p++)
        assert_int_equal(rt_wait(kids[p]), 0);
    long total = 0, rets = 0;
    for (int p = 0; p < MIG_PROCS; p++) {
        total += atomic_load(&shared[p].iters);
        rets += atomic_load(&shared[p].rets);
    }
    assert_true(total > 0);
    assert_int_equal(pcpu_sum(proto.l), total);
    assert_int_equal(pcpu_sum(proto.i), (int)(3 * total));
    assert_int_equal(pcpu_sum(proto.s), (short)-total);
    assert_int_equal(pcpu_sum(proto.c), (unsigned char)total);
    assert_int_equal(pcpu_sum(proto.lr), 2 * rets);
    unsigned int seen = 0;
    for (int p = 0; p < MIG_PROCS; p++)
        seen |= atomic_load(&shared[p].cpus_seen);
    if (allowed_cpus() > 1)
        assert_true(__builtin_popcount(seen) >= 2);
    munmap(shared, sizeof(struct mig) * MIG_PROCS);
    assert_int_equal(pcpu_region_close(r), 0);
}

/* ---- the lock word -------------------------------------------------------- */

/* The region file's first page (header), mapped read-write. */
static unsigned char *map_header(const char *name, size_t *len)
{
    int fd = open(rt_path(name), O_RDWR);
    assert_true(fd >= 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    uint64_t dir_off;
    assert_int_equal(pread(fd, &dir_off, 8, HDR_DIR_OFF), 8);
    *len = (size_t)dir_off + 256 * sizeof(struct ent);
    unsigned char *p = mmap(NULL, *len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    assert_true(p != MAP_FAILED);
    return p;
}

static uint32_t *lock_word(unsigned char *hdr)
{
    return (uint32_t *)(void *)(hdr + HDR_LOCK);
}

/* A child that sleeps until its pipe closes; its pid. */
static pid_t sleeper(int *release_fd)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[1]);
        char c;
        while (read(p[0], &c, 1) > 0)
            ;
        _exit(0);
    }
    close(p[0]);
    *release_fd = p[1];
    return pid;
}

/* ---- SIGKILL in the middle of allocations ----------------------------------- */

struct tally {
    unsigned int objects, tmp, held;
    size_t bytes;
    void *tmp_cookie[8];
};

static int tally_fn(const char *obj, void *cookie, size_t size, void *arg)
{
    struct tally *t = arg;
    t->objects++;
    t->bytes += size;
    if (strncmp(obj, "tmp-", 4) == 0 && t->tmp < 8)
        t->tmp_cookie[t->tmp++] = cookie;
    if (strncmp(obj, "held-", 5) == 0)
        t->held++;
    return 0;
}

static void test_sigkill_mid_alloc(void **state)
{
    (void)state;
    const char *n = rt_name("kill");
    const size_t unit = 64 << 10;
    struct pcpu_region *r = pcpu_region_open(n, unit, PCPU_REGION_CREATE | PCPU_REGION_EXCL, 0600);
    assert_non_null(r);
    long *base = pcpu_region_alloc(r, "base", 8, 0);
    assert_non_null(base);
    size_t hlen;
    unsigned char *hdr = map_header(n, &hlen);
    int held_lock = 0;
    uint64_t rnd = 12345;
    const int rounds = TU_STEPS(24, 3);
    unsigned int held_total = 0, mine = 0;
    for (int round = 0; round < rounds; round++) {
        int ready[2];
        assert_int_equal(pipe(ready), 0);
        fflush(NULL);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            child_prepare();
            close(ready[0]);
            /* A fresh open, as a worker process would do. */
            struct pcpu_region *c = pcpu_region_open(n, 0, 0, 0);
            child_check(c != NULL, "open: %s", strerror(errno));
            char name[64];
            for (int k = 0; k < 3; k++) {
                snprintf(name, sizeof(name), "held-%d-%d", round, k);
                long *h = pcpu_region_alloc(c, name, 8 * (size_t)(k + 1), 0);
                child_check(h != NULL, "alloc %s: %s", name, strerror(errno));
                pcpu_this_inc(h);
            }
            child_check(write(ready[1], "r", 1) == 1, "ready");
            for (unsigned long i = 0;; i++) {
                snprintf(name, sizeof(name), "tmp-%d-%lu", round, i);
                void *t = pcpu_region_alloc(c, name, 8 + (i % 7) * 200, 0);
                child_check(t != NULL, "alloc %s: %s", name, strerror(errno));
                child_check(pcpu_region_free(c, t) == 0, "free: %s", strerror(errno));
            }
        }
        close(ready[1]);
        char b;
        assert_int_equal(read(ready[0], &b, 1), 1);
        close(ready[0]);
        usleep((useconds_t)(tu_rand(&rnd) % 4000));
        assert_int_equal(kill(pid, SIGKILL), 0);
        held_total += 3;
        /* Half the rounds work while the dead child is a zombie (its pid
         * still exists), half after it is reaped. */
        bool reap_first = round % 2;
        if (reap_first)
            assert_int_equal(rt_wait(pid), 128 + SIGKILL);
        else
            while (kill(pid, 0) == 0) {
                char path[64], st[256] = "";
                snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
                FILE *f = fopen(path, "r");
                if (f) {
                    size_t got = fread(st, 1, sizeof(st) - 1, f);
                    st[got] = 0;
                    fclose(f);
                }
                char *p = strrchr(st, ')');
                if (p && p[1] == ' ' && p[2] == 'Z')
                    break;
                usleep(100);
            }
        uint32_t w = __atomic_load_n(lock_word(hdr), __ATOMIC_ACQUIRE);
        held_lock += w != 0 && (pid_t)(w & 0x3fffff) == pid;
        double t0 = tu_now();
        char name[64];
        snprintf(name, sizeof(name), "parent-%d", round);
        long *mineo = pcpu_region_alloc(r, name, 24, 0);
        if (!mineo)
            fail_msg("round %d: alloc after the kill: %s", round, strerror(errno));
        assert_true(tu_now() - t0 < 5.0); /* a busy machine may be slow; a missed takeover fails, not slows */
        mine++;
        pcpu_this_inc(mineo);
        for (int k = 0; k < 3; k++) {
            snprintf(name, sizeof(name), "held-%d-%d", round, k);
            size_t sz = 0;
            long *h = pcpu_region_find(r, name, &sz);
            if (!h)
                fail_msg("round %d: %s lost: %s", round, name, strerror(errno));
            assert_int_equal(sz, 8 * (size_t)(k + 1));
            assert_int_equal(pcpu_sum(h), 1);
        }
        /* At most the one temporary object the child had made is left;
         * it is the child's, the parent frees it. */
        struct tally t = {0};
        assert_int_equal(pcpu_region_foreach(r, tally_fn, &t), 0);
        assert_true(t.tmp <= 1);
        assert_int_equal(t.held, held_total);
        assert_int_equal(t.objects, 1 + mine + held_total + t.tmp);
        for (unsigned int k = 0; k < t.tmp; k++)
            assert_int_equal(pcpu_region_free(r, t.tmp_cookie[k]), 0);
        assert_int_equal(pcpu_region_check(r), 0);
        struct pcpu_region_info in;
        assert_int_equal(pcpu_region_info(r, &in), 0);
        assert_int_equal(in.nr_objects, 1 + mine + held_total);
        if (!reap_first)
            assert_int_equal(rt_wait(pid), 128 + SIGKILL);
    }
    /* Free everything: the whole unit is free again, nothing was lost. */
    struct tally t = {0};
    assert_int_equal(pcpu_region_foreach(r, tally_fn, &t), 0);
    struct pcpu_region_info in;
    assert_int_equal(pcpu_region_info(r, &in), 0);
    assert_int_equal(in.used_bytes, t.bytes);
    for (int round = 0; round < rounds; round++) {
        char name[64];
        for (int k = 0; k < 3; k++) {
            snprintf(name, sizeof(name), "held-%d-%d", round, k);
            assert_int_equal(pcpu_region_free(r, pcpu_region_find(r, name, NULL)), 0);
        }
        snprintf(name, sizeof(name), "parent-%d", round);
        assert_int_equal(pcpu_region_free(r, pcpu_region_find(r, name, NULL)), 0);
    }
    assert_int_equal(pcpu_region_free(r, base), 0);
    assert_int_equal(pcpu_region_info(r, &in), 0);
    assert_int_equal(in.nr_objects, 0);
    assert_int_equal(in.largest_free, unit);
    assert_non_null(pcpu_region_alloc(r, "everything", unit, 0));
    assert_int_equal(pcpu_region_check(r), 0);
    /* The point of the test: some children died holding the lock. */
    printf("  %d of %d children were killed holding the region's lock\n", held_lock, rounds);
    if (rounds >= 10)
        assert_true(held_lock >= 1);
    munmap(hdr, hlen);
    assert_int_equal(pcpu_region_close(r), 0);
    assert_int_equal(pcpu_region_unlink(n), 0);
}

/* An allocation with the lock word forged to w: it must succeed, and fast. */
static void expect_takeover(struct pcpu_region *r, uint32_t *word, uint32_t w, const char *what)
{
    static int seq;
    char name[32];
    snprintf(name, sizeof(name), "t%d", seq++);
    __atomic_store_n(word, w, __ATOMIC_RELEASE);
    double t0 = tu_now();
    void *p = pcpu_region_alloc(r, name, 8, 0);
    if (!p)
        fail_msg("%s (0x%x): %s", what, w, strerror(errno));
    if (tu_now() - t0 > 5.0)
        fail_msg("%s (0x%x): took %.2f s", what, w, tu_now() - t0);
    assert_int_equal(__atomic_load_n(word, __ATOMIC_ACQUIRE), 0);
    assert_int_equal(pcpu_region_free(r, p), 0);
}

static void test_lock_word(void **state)
{
    (void)state;
    const char *n = rt_name("lock");
    struct pcpu_region *r = pcpu_region_open(n, 4096, PCPU_REGION_CREATE | PCPU_REGION_EXCL, 0600);
    assert_non_null(r);
    size_t len;
    unsigned char *hdr = map_header(n, &len);
    uint32_t *word = lock_word(hdr);

    /* A dead owner (reaped), with any tag. */
    int rel;
    pid_t dead = sleeper(&rel);
    uint32_t dead_word = pcpu__rlock_owner_word(dead);
    close(rel);
    assert_int_equal(rt_wait(dead), 0);
    expect_takeover(r, word, dead_word, "dead owner");
    expect_takeover(r, word, (uint32_t)dead | (7u << 22), "dead owner, other tag");

    /* A zombie owner. */
    pid_t z = sleeper(&rel);
    uint32_t zw = pcpu__rlock_owner_word(z);
    close(rel);
    siginfo_t si;
    assert_int_equal(waitid(P_PID, (id_t)z, &si, WEXITED | WNOWAIT), 0);
    expect_takeover(r, word, zw, "zombie owner");
    assert_int_equal(rt_wait(z), 0);

    /* Pid 0, this process, and a live process with another start time. */
    expect_takeover(r, word, 5u << 22, "pid 0");
    expect_takeover(r, word, pcpu__rlock_owner_word(getpid()), "this process");
    pid_t live = sleeper(&rel);
    uint32_t lw = pcpu__rlock_owner_word(live);
    uint32_t other = (lw & 0x3fffff) | ((((lw >> 22) % 1023) + 1) << 22);
    assert_int_not_equal(other, lw);
    expect_takeover(r, word, other, "live pid, other start time");

    /* A live owner that keeps it: ETIMEDOUT after the timeout, not a hang. */
    pcpu__rlock_set_timeout(300);
    __atomic_store_n(word, lw, __ATOMIC_RELEASE);
    double t0 = tu_now();
    errno = 0;
    assert_null(pcpu_region_alloc(r, "blocked", 8, 0));
    assert_int_equal(errno, ETIMEDOUT);
    double dt = tu_now() - t0;
    assert_true(dt >= 0.25 && dt < 5.0);
    errno = 0;
    assert_int_equal(pcpu_region_free(r, pcpu_region_find(r, "t0", NULL)), 0); /* NULL: no-op */
    /* Lookups take no lock. */
    long *x = NULL;
    assert_null(pcpu_region_find(r, "blocked", NULL));
    pcpu__rlock_set_timeout(10000);
    /* Its owner exits: the next call takes the lock over. */
    close(rel);
    assert_int_equal(rt_wait(live), 0);
    x = pcpu_region_alloc(r, "after", 8, 0);
    assert_non_null(x);

    /* An entry its maker left half made (RESERVED: state 1) is dropped by
     * the next allocation, and never seen by lookups. */
    void *half = pcpu_region_alloc(r, "half", 8, 0);
    assert_non_null(half);
    uint64_t dir_off;
    memcpy(&dir_off, hdr + HDR_DIR_OFF, 8);
    struct ent *ents = (struct ent *)(void *)(hdr + dir_off);
    int k = -1;
    for (int i = 0; i < 256; i++)
        if ((ents[i].word & 3) == 2 && strcmp(ents[i].name, "half") == 0)
            k = i;
    assert_true(k >= 0);
    __atomic_store_n(&ents[k].word, (ents[k].word & ~3u) | 1u, __ATOMIC_RELEASE);
    errno = 0;
    assert_null(pcpu_region_find(r, "half", NULL));
    assert_int_equal(errno, ENOENT);
    assert_int_equal(pcpu_region_check(r), 0);
    assert_non_null(pcpu_region_alloc(r, "next", 8, 0));
    assert_int_equal(ents[k].word & 3, 2); /* its slot, reused */
    assert_string_equal(ents[k].name, "next");
    struct pcpu_region_info in;
    assert_int_equal(pcpu_region_info(r, &in), 0);
    assert_int_equal(in.nr_objects, 2);
    munmap(hdr, len);
    assert_int_equal(pcpu_region_close(r), 0);
    assert_int_equal(pcpu_region_unlink(n), 0);
}

/* ---- many allocators at once ---------------------------------------------- */

static void test_concurrent_allocators(void **state)
{
    (void)state;
    enum { PROCS = 4, KEEP = 5 };
    const int rounds = TU_STEPS(150, 5);
    struct pcpu_region *r = pcpu_region_open(NULL, 16384, PCPU_REGION_CREATE, 0600);
    assert_non_null(r);
    pid_t kids[PROCS];
    for (int p = 0; p < PROCS; p++) {
        fflush(NULL);
        kids[p] = fork();
        assert_true(kids[p] >= 0);
        if (kids[p] == 0) {
            child_prepare();
            char name[32];
            for (int i = 0; i < rounds; i++) {
                snprintf(name, sizeof(name), "p%d-%d", p, i);
                long *o = pcpu_region_alloc(r, name, 8 + (size_t)(i % 5) * 8, 0);
                child_check(o != NULL, "alloc %s: %s", name, strerror(errno));
                child_check(pcpu_sum(o) == 0, "%s not zero", name);
                pcpu_this_add(o, p + 1);
                child_check(pcpu_region_find(r, name, NULL) == o, "find %s", name);
                if (i >= KEEP)
                    child_check(pcpu_region_free(r, o) == 0, "free %s", name);
            }
            _exit(0);
        }
    }
    for (int p = 0; p < PROCS; p++)
        assert_int_equal(rt_wait(kids[p]), 0);
    struct pcpu_region_info in;
    assert_int_equal(pcpu_region_info(r, &in), 0);
    assert_int_equal(in.nr_objects, PROCS * KEEP);
    for (int p = 0; p < PROCS; p++)
        for (int i = 0; i < KEEP; i++) {
            char name[32];
            snprintf(name, sizeof(name), "p%d-%d", p, i);
            long *o = pcpu_region_find(r, name, NULL);
            assert_non_null(o);
            assert_int_equal(pcpu_sum(o), p + 1);
        }
    assert_int_equal(pcpu_region_check(r), 0);
    assert_int_equal(pcpu_region_close(r), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_migration_exact, setup),
        cmocka_unit_test_setup(test_sigkill_mid_alloc, setup),
        cmocka_unit_test_setup(test_lock_word, setup),
        cmocka_unit_test_setup(test_concurrent_allocators, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
