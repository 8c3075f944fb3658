/* SPDX-License-Identifier: MIT */
/*
 * rseq.c - how this-CPU operations find the calling thread's unit: rseq
 * registration, the modes, the tables.
 *
 * The inline code in percpu.h reads everything from pcpu__thiscpu: a 32-bit
 * index word at a fixed offset from the thread pointer (the rseq cpu_id, or
 * mm_cid in PCPU_INDEX_CID mode), tables from that index straight to the
 * unit's offset, and limits saying which paths may use them.  The rseq
 * sequences have a table of their own (seq_offs) whose entries are 0
 * whenever an index must not run a sequence; they read it inside the
 * critical section.  This file fills pcpu__thiscpu in and decides, for the slow
 * paths (thiscpu.c), whether an operation runs its sequence again or goes
 * atomic.
 *
 * Nothing here keeps track of threads.  A thread's rseq_cs keeps pointing
 * at the last descriptor it armed until the kernel next preempts it, and a
 * descriptor in a module that has been unmapped kills the thread at that
 * moment; the sequences of code built for a shared object therefore clear
 * rseq_cs after their commit, and every early exit clears it (percpu.h,
 * PCPU__RSEQ_TAIL), so once a thread has left a module's code it points
 * at none of its descriptors, and dlclose() needs nothing from the library.
 * (The library once enrolled every thread on its first sequence, through a
 * limit of the thread's own that the sequence compared with its index, so
 * that a module's destructor could clear the rseq_cs of every enrolled
 * thread; that limit was a fourth load in every sequence.)
 *
 * Whose rseq area.  The kernel takes one rseq area per thread, so every
 * rseq user of a process must agree on it.  The area is chosen once,
 * before any code that uses the library runs (rseq_early), and the
 * library registers nothing until a thread's first this-CPU operation
 * finds that thread unregistered (the slow path, own_register):
 *  - glibc 2.35+ registers one per thread and publishes its offset
 *    (__rseq_offset, __rseq_size != 0): used as it is;
 *  - else, when a library that follows librseq's protocol is loaded (it
 *    exports rseq_offset, rseq_size and rseq_register_current_thread,
 *    and owns registration when glibc does not), its area: a thread it
 *    registered is used as it is, and one it did not is registered with
 *    that area, its length and the common signature, so that librseq's
 *    own sequences work on it too;
 *  - else glibc's own area (every thread has one at __rseq_offset, also
 *    when glibc leaves it unregistered), registered by the library; with
 *    a C library that has none, an initial-exec TLS area of its own.  A
 *    thread whose area is already registered (EBUSY: another copy of this
 *    library did it, or glibc did it for a thread created by a registered
 *    one) is used as it is.
 * A thread that already has another area registered (EINVAL: some other
 * library registered its own) cannot run the sequences: the process
 * switches to atomics, and says so once on stderr.
 *
 * Why the modes are global: a restartable sequence updates a unit with a
 * plain (unlocked) add, which is only safe if every thread that touches the
 * unit runs on that unit's CPU.  An atomic fallback done by a thread that
 * has migrated would race with it.  So either every thread uses rseq or
 * every thread uses atomics; never a mix.  If rseq turns out to be unusable
 * for some thread after the fact (its registration fails, or its mm_cid is
 * out of range), the whole process switches to atomics: every entry of
 * seq_offs drops to 0, which the sequences read inside the critical
 * section, and a membarrier(PRIVATE_EXPEDITED_RSEQ) restarts the sequences
 * that are in flight, so after it no unlocked update can still commit.  Only then do
 * atomics start.  Without that membarrier command the library never picks
 * rseq in the first place.
 */
#include "rseq.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef AT_RSEQ_FEATURE_SIZE
#define AT_RSEQ_FEATURE_SIZE 27
#endif

/* The kernel's struct rseq (uapi/linux/rseq.h), spelled out here because
 * distribution headers may predate node_id and mm_cid. */
struct pcpu_rseq_area {
    uint32_t cpu_id_start;
    uint32_t cpu_id;
    uint64_t rseq_cs;
    uint32_t flags;
    uint32_t node_id;
    uint32_t mm_cid;
    uint32_t pad_;
} __attribute__((aligned(32)));

#define PCPU_RSEQ_CS_OFF 8u
#define PCPU_RSEQ_CPU_ID_OFF 4u
#define PCPU_RSEQ_MM_CID_OFF 24u
#define PCPU_RSEQ_MM_CID_END 28u /* feature size that includes mm_cid */
#define PCPU_RSEQ_ORIG_SIZE 32u  /* registration length */
#define PCPU_RSEQ_UNREGISTER 1

#ifndef PCPU__RSEQ_SIG
#define PCPU__RSEQ_SIG 0x53053053
#endif

/* membarrier commands (linux/membarrier.h, 5.10+) */
#define PCPU_MEMBARRIER_RSEQ (1 << 7)
#define PCPU_MEMBARRIER_REGISTER_RSEQ (1 << 8)

/* glibc's registration, when glibc is new enough to have one. */
extern const ptrdiff_t __rseq_offset __attribute__((weak));
extern const unsigned int __rseq_size __attribute__((weak));

struct pcpu__thiscpu_state pcpu__thiscpu __attribute__((aligned(64)));
_Static_assert(offsetof(struct pcpu__thiscpu_state, seq_offs) == 64,
               "the hot fields share one cache line, the tables start the next");
_Static_assert(offsetof(struct pcpu__thiscpu_state, seq_offs) -
                       offsetof(struct pcpu__thiscpu_state, seq_neg_) ==
                   2 * sizeof(intptr_t),
               "seq_offs[-2] and seq_offs[-1] are seq_neg_");

/* The library's own area, with a C library that has none; cpu_id and
 * mm_cid start out of every range so that the inline paths send an
 * unregistered thread here. */
static __thread struct pcpu_rseq_area own_rseq __attribute__((tls_model("initial-exec"))) = {
    .cpu_id = UINT32_MAX,
    .mm_cid = UINT32_MAX,
};
/* REG_FAILED: this thread cannot have the area registered (another one is,
 * or the kernel refused); it is not asked again. */
enum { REG_NONE, REG_FAILED };
static __thread unsigned char own_state __attribute__((tls_model("initial-exec")));

/* Who registers the threads' areas (see the top of the file). */
enum owner { OWNER_GLIBC, OWNER_LIBRSEQ, OWNER_SELF };
static enum owner owner = OWNER_SELF;
/* librseq's rseq_size, when it owns registration (its registration
 * length follows it). */
static const unsigned int *librseq_size;
/* Thread-pointer offset of the area the sequences use; valid memory in
 * every thread from the first constructor on. */
ptrdiff_t pcpu__rseq_area;

/* Where in the rseq area the index word is: cpu_id until decided
 * otherwise. */
#define DISP_CPU ((ptrdiff_t)PCPU_RSEQ_CPU_ID_OFF)
#define DISP_CID ((ptrdiff_t)PCPU_RSEQ_MM_CID_OFF)
ptrdiff_t pcpu__index_disp = DISP_CPU;
/* Once rseq has been opened with pcpu__index_disp, any thread may hold
 * its value in a register for good (it is const to the code that reads
 * it): it never changes again. */
static bool disp_fixed;

/* mode_lock: modes, limits and tables. */
static pthread_mutex_t mode_lock = PTHREAD_MUTEX_INITIALIZER;

/* Set at init, read by the slow paths (no lock: written before mode is
 * published with release, read after it with acquire). */
static bool have_idx;           /* the index word can be read at all    */
static bool cid_mode;           /* the index word is mm_cid             */
static bool use_rseq;           /* pcpu__rseq_start() enables rseq      */
static uint32_t idx_limit;      /* entries of pcpu__thiscpu.offs in use      */
static uint32_t seq_open;       /* entries of pcpu__thiscpu.seq_offs not 0   */
static unsigned int nr_units;
static unsigned int nr_os_ids;
static unsigned int os_index[PCPU_MAX_CPUS]; /* OS CPU id -> CPU index */

static long sys_rseq(struct pcpu_rseq_area *area, uint32_t len, int flags)
{
#ifdef SYS_rseq
    return syscall(SYS_rseq, area, len, flags, PCPU__RSEQ_SIG);
#else
    (void)area;
    (void)len;
    (void)flags;
    errno = ENOSYS;
    return -1;
#endif
}

/* Whether this process may make rseq calls at all, without registering
 * anything: the kernel answers EINVAL to a NULL area when it has the call
 * and no filter (seccomp) refuses it. */
static bool rseq_allowed(void)
{
    return sys_rseq(NULL, 0, 0) != 0 && errno == EINVAL;
}

static char *thread_pointer(void)
{
#if defined(__x86_64__)
    /* The TCB starts with a pointer to itself (clang has no
     * __builtin_thread_pointer on x86). */
    char *tp;
    __asm__("movq %%fs:0, %0" : "=r"(tp));
    return tp;
#else
    return (char *)__builtin_thread_pointer();
#endif
}

/*
 * The sequences index seq_offs with the index word as it is (no bound
 * check, see PCPU__RSEQ_HEAD): every CPU id and mm_cid must be below
 * PCPU_MAX_CPUS.  Both are below the kernel's NR_CPUS, which x86_64 caps
 * at 8192; a kernel that says it was built for more (kernel_max, NR_CPUS
 * - 1) gets atomics instead.
 */
#if PCPU__RSEQ_ASM
static bool kernel_ids_fit(void)
{
    char buf[32];
    FILE *f = fopen("/sys/devices/system/cpu/kernel_max", "re");
    if (!f)
        return true;
    bool ok = true;
    if (fgets(buf, sizeof(buf), f))
        ok = strtoul(buf, NULL, 10) < PCPU_MAX_CPUS;
    fclose(f);
    return ok;
}
#endif

static bool glibc_registered(void)
{
    return &__rseq_size != NULL && &__rseq_offset != NULL && __rseq_size != 0;
}

/* mm_cid only in areas glibc registered: in an area nobody registered yet
 * it reads 0, a valid index, where cpu_id reads out of range. */
static bool cid_possible(void)
{
    if (!glibc_registered() || getauxval(AT_RSEQ_FEATURE_SIZE) < PCPU_RSEQ_MM_CID_END)
        return false;
    /* glibc before 2.40 says 20 but always allocates and registers the
     * 32-byte area, so mm_cid is there when the kernel has it. */
    return __rseq_size >= PCPU_RSEQ_MM_CID_END || __rseq_size == 20;
}

/* The calling thread's area (valid memory once rseq_early ran). */
static struct pcpu_rseq_area *thread_area(void)
{
    return (struct pcpu_rseq_area *)(thread_pointer() + pcpu__rseq_area);
}

/* cpu_id holds a CPU number only while the area is registered: -1 before
 * (the kernel's "uninitialised", also after an unregistration) and -2
 * where glibc's registration failed. */
static bool area_registered(const struct pcpu_rseq_area *area)
{
    return __atomic_load_n(&area->cpu_id, __ATOMIC_RELAXED) < UINT32_MAX - 1;
}

/* The length a librseq area is registered with: what librseq itself uses
 * (its feature size, at least the original 32 bytes), so that its own
 * unregistration of the thread later matches. */
static uint32_t librseq_len(void)
{
    unsigned int n = __atomic_load_n(librseq_size, __ATOMIC_RELAXED);
    return n > PCPU_RSEQ_ORIG_SIZE && n != UINT32_MAX ? n : PCPU_RSEQ_ORIG_SIZE;
}

/* Choose the area (see the top of the file).  Runs before any sequence
 * can, so that pcpu__rseq_area never changes under code that keeps it in
 * a register. */
static void choose_area(void)
{
    if (glibc_registered()) {
        owner = OWNER_GLIBC;
        pcpu__rseq_area = __rseq_offset;
        return;
    }
    const ptrdiff_t *off = dlsym(RTLD_DEFAULT, "rseq_offset");
    const unsigned int *size = dlsym(RTLD_DEFAULT, "rseq_size");
    int (*reg)(void) = (int (*)(void))dlsym(RTLD_DEFAULT, "rseq_register_current_thread");
    int (*unreg)(void) = (int (*)(void))dlsym(RTLD_DEFAULT, "rseq_unregister_current_thread");
    if (off && size && reg && unreg) {
        /* librseq sets its offset in a constructor that may not have run
         * yet (the order of unrelated libraries' constructors is the
         * link's); its registration runs it.  The thread is unregistered
         * again at once, so librseq's own registration of it later works,
         * but only when nothing had registered it. */
        if (__atomic_load_n(size, __ATOMIC_ACQUIRE) == UINT32_MAX &&
            rseq_allowed() && reg() == 0)
            (void)unreg();
        if (__atomic_load_n(size, __ATOMIC_ACQUIRE) != UINT32_MAX) {
            owner = OWNER_LIBRSEQ;
            librseq_size = size;
            pcpu__rseq_area = *off;
            return;
        }
    }
    owner = OWNER_SELF;
    pcpu__rseq_area = &__rseq_offset != NULL ? __rseq_offset
                                             : (char *)&own_rseq - thread_pointer();
}

/* Open the sequences' table (mode_lock held): the offsets of offs for the
 * indexes in use.  Release: a sequence that reads an entry sees the unit
 * it names set up. */
static void open_seq_table(void)
{
    for (uint32_t i = 0; i < idx_limit; i++)
        __atomic_store_n(&pcpu__thiscpu.seq_offs[i], pcpu__thiscpu.offs[i], __ATOMIC_RELEASE);
    seq_open = idx_limit;
}

/* Close it (mode_lock held): a sequence that reads an entry from now on
 * leaves through its slow exit; the ones in flight are the caller's
 * business (membarrier, or nobody may run one). */
static void close_seq_table(void)
{
    for (uint32_t i = 0; i < seq_open; i++)
        __atomic_store_n(&pcpu__thiscpu.seq_offs[i], 0, __ATOMIC_SEQ_CST);
    seq_open = 0;
}

/* Make sure the calling thread's area is registered, registering it if
 * the library does that (not with glibc's own registration).  Returns
 * false if it cannot be. */
static bool own_register(void)
{
    if (owner == OWNER_GLIBC)
        return true;
    struct pcpu_rseq_area *area = thread_area();
    /* Registered already: by its owner, by another copy of this library,
     * or by glibc for a thread created by a registered one. */
    if (area_registered(area))
        return true;
    if (own_state == REG_FAILED)
        return false;
    uint32_t len = owner == OWNER_LIBRSEQ ? librseq_len() : PCPU_RSEQ_ORIG_SIZE;
    if (sys_rseq(area, len, 0) == 0 || (errno == EBUSY && area_registered(area)))
        return true;
    if (errno == EINVAL) {
        static bool told;
        if (!__atomic_exchange_n(&told, true, __ATOMIC_RELAXED))
            pcpu__warn("another library registered a thread's rseq area, not %s: this-CPU "
                       "operations use atomics (see \"Whose rseq area\" in percpu.h)",
                       owner == OWNER_LIBRSEQ ? "librseq's" : "glibc's");
    }
    own_state = REG_FAILED;
    return false;
}

static uint32_t read_idx(void)
{
    return have_idx ? pcpu__tp_u32(pcpu__thiscpu.idx_off) : UINT32_MAX;
}

static unsigned int cpu_index_from_os(void)
{
    int cpu = sched_getcpu();
    if (cpu < 0 || (unsigned int)cpu >= nr_os_ids)
        return 0;
    return os_index[cpu];
}

/* The CPU index of the calling thread, whatever the mode. */
static unsigned int current_index(void)
{
    uint32_t idx = read_idx();
    if (idx < idx_limit)
        return cid_mode ? idx : os_index[idx];
    return cpu_index_from_os();
}

static intptr_t current_off(void)
{
    uint32_t idx = read_idx();
    if (idx < idx_limit)
        return pcpu__thiscpu.offs[idx];
    return pcpu__cpu_offsets[cpu_index_from_os()];
}

/* Switch every thread from rseq to atomics (see the top of the file). */
static void degrade(void)
{
    pthread_mutex_lock(&mode_lock);
    if (__atomic_load_n(&pcpu__thiscpu.mode, __ATOMIC_ACQUIRE) == PCPU__MODE_RSEQ) {
        pcpu__rseq_exact_check();
        close_seq_table();
        if (syscall(SYS_membarrier, PCPU_MEMBARRIER_RSEQ, 0, 0) != 0)
            pcpu__die("percpu: membarrier(PRIVATE_EXPEDITED_RSEQ) failed: %s",
                      strerror(errno));
        __atomic_store_n(&pcpu__thiscpu.atomic_limit, idx_limit, __ATOMIC_RELEASE);
        __atomic_store_n(&pcpu__thiscpu.mode, PCPU__MODE_ATOMIC, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&mode_lock);
}

/* The unit offset while the modes are off (only while another thread
 * tears the allocator down or sets it up, which the API forbids). */
static intptr_t offline_off(void)
{
    unsigned int n = pcpu__nr_units ? pcpu__nr_units : 1;
    int cpu = sched_getcpu();
    return pcpu__cpu_offsets[(cpu < 0 ? 0u : (unsigned int)cpu) % n];
}

void pcpu__rseq_disarm(void)
{
    __atomic_store_n(&thread_area()->rseq_cs, 0, __ATOMIC_RELAXED);
}

struct pcpu__unit_at pcpu__rseq_slow(const void *cookie)
{
    struct pcpu__unit_at r;
    r.cookie = cookie;
    uint32_t mode = __atomic_load_n(&pcpu__thiscpu.mode, __ATOMIC_ACQUIRE);
    if (mode == PCPU__MODE_OFF) {
        r.off = offline_off();
        return r;
    }
    /* No lock on the way to RETRY or to the atomic path: threads whose
     * index is beyond the atomic limit (CID mode with fewer units than
     * running threads) come here for every operation, which must stay
     * async-signal-safe. */
    bool registered = own_register();
    if (mode == PCPU__MODE_RSEQ) {
        uint32_t idx = read_idx();
        if (!registered || idx >= idx_limit)
            degrade();
        if (__atomic_load_n(&pcpu__thiscpu.mode, __ATOMIC_ACQUIRE) == PCPU__MODE_RSEQ) {
            r.off = PCPU__RETRY;
            return r;
        }
    }
    r.off = current_off();
    return r;
}

intptr_t pcpu__rseq_unit_off(void)
{
    if (__atomic_load_n(&pcpu__thiscpu.mode, __ATOMIC_ACQUIRE) == PCPU__MODE_OFF)
        return offline_off();
    (void)own_register();
    return current_off();
}

unsigned int pcpu__rseq_unit_index(void)
{
    if (__atomic_load_n(&pcpu__thiscpu.mode, __ATOMIC_ACQUIRE) == PCPU__MODE_OFF) {
        int c = sched_getcpu();
        return (c < 0 ? 0u : (unsigned int)c) % (pcpu__nr_units ? pcpu__nr_units : 1);
    }
    (void)own_register();
    return current_index();
}

bool pcpu__rseq_is_set_up(void)
{
    return __atomic_load_n(&pcpu__thiscpu.mode, __ATOMIC_ACQUIRE) != PCPU__MODE_OFF;
}

/* Before any operation can run (this runs ahead of the constructors of
 * the program and of the libraries that use this one), choose the area
 * the sequences use. */
__attribute__((constructor(101))) static void rseq_early(void)
{
    int saved = errno;
    choose_area();
    pcpu__thiscpu.rseq_off = pcpu__rseq_area;
    pcpu__thiscpu.cid = 0;
    /* The index mode the environment asks for, decided before any code
     * can read the displacement (pcpu_init() may still change it, up to
     * the first operation). */
    const char *ix = getenv("PERCPU_INDEX");
    if (ix && strcmp(ix, "cid") == 0 && cid_possible())
        pcpu__index_disp = DISP_CID;
    errno = saved;
}

void pcpu__rseq_fork_prepare(void)
{
    pthread_mutex_lock(&mode_lock);
}

void pcpu__rseq_fork_parent(void)
{
    pthread_mutex_unlock(&mode_lock);
}

void pcpu__rseq_fork_child(void)
{
    pthread_mutex_unlock(&mode_lock);
}

bool pcpu__rseq_runs_sequences(void)
{
    return __atomic_load_n(&pcpu__thiscpu.mode, __ATOMIC_ACQUIRE) == PCPU__MODE_RSEQ;
}

void pcpu__rseq_setup(const struct pcpu_alloc_info *ai, enum pcpu_index index)
{
    int saved = errno;
    pthread_mutex_lock(&mode_lock);

    nr_units = ai->nr_units;
    nr_os_ids = ai->nr_os_ids < PCPU_MAX_CPUS ? ai->nr_os_ids : PCPU_MAX_CPUS;
    for (unsigned int id = 0; id < nr_os_ids; id++)
        os_index[id] = ai->index_of_os[id] < nr_units ? ai->index_of_os[id] : 0;

    /* Whether the index word can be read: nothing is registered here
     * (threads are, one by one, on their first operation). */
    have_idx = owner == OWNER_GLIBC || rseq_allowed();
    bool cid_ok = owner == OWNER_GLIBC && cid_possible();
    cid_mode = have_idx && index == PCPU_INDEX_CID && cid_ok;
    ptrdiff_t disp = cid_mode ? DISP_CID : DISP_CPU;
    /* A re-initialisation that changes the index mode after sequences
     * ran cannot move the displacement: atomics then (see the header). */
    bool disp_ok = disp == pcpu__index_disp || !disp_fixed;
    if (disp_ok)
        pcpu__index_disp = disp;

    /* The index -> offset table: in CID mode the index is the CPU index;
     * in CPU mode it is the OS CPU id, mapped through index_of_os. */
    if (cid_mode) {
        idx_limit = nr_units;
        for (unsigned int i = 0; i < nr_units; i++)
            pcpu__thiscpu.offs[i] = pcpu__cpu_offsets[i];
    } else {
        idx_limit = nr_os_ids;
        for (unsigned int id = 0; id < nr_os_ids; id++)
            pcpu__thiscpu.offs[id] = pcpu__cpu_offsets[os_index[id]];
    }
    if (!have_idx)
        idx_limit = 0;
    pcpu__thiscpu.idx_off =
        pcpu__rseq_area + (cid_mode ? PCPU_RSEQ_MM_CID_OFF : PCPU_RSEQ_CPU_ID_OFF);
    pcpu__thiscpu.cid = cid_mode;

    /* rseq needs: the instruction sequences (x86_64), an index word, one
     * unit per CPU, CPU ids the table covers, and a way to switch to
     * atomics safely later: the membarrier command itself, tried once
     * (a seccomp filter may allow the registration and not the command,
     * and the switch, a ref's kill or a list's pop_all would then fail
     * when they need it). */
    bool rseq = false;
#if PCPU__RSEQ_ASM
    rseq = have_idx && disp_ok && !ai->units_shared && kernel_ids_fit() &&
           syscall(SYS_membarrier, PCPU_MEMBARRIER_REGISTER_RSEQ, 0, 0) == 0 &&
           syscall(SYS_membarrier, PCPU_MEMBARRIER_RSEQ, 0, 0) == 0;
#endif
    use_rseq = rseq;
    pthread_mutex_unlock(&mode_lock);
    errno = saved;
}

void pcpu__rseq_start(void)
{
    pthread_mutex_lock(&mode_lock);
    if (use_rseq)
        disp_fixed = true;
    __atomic_store_n(&pcpu__thiscpu.ptr_limit, idx_limit, __ATOMIC_RELEASE);
    if (use_rseq)
        open_seq_table();
    __atomic_store_n(&pcpu__thiscpu.atomic_limit, use_rseq ? 0 : idx_limit, __ATOMIC_RELEASE);
    __atomic_store_n(&pcpu__thiscpu.mode, use_rseq ? PCPU__MODE_RSEQ : PCPU__MODE_ATOMIC,
                     __ATOMIC_RELEASE);
    pthread_mutex_unlock(&mode_lock);
}

bool pcpu__rseq_uses_cid(void)
{
    return cid_mode;
}

void pcpu__rseq_stop(void)
{
    pthread_mutex_lock(&mode_lock);
    __atomic_store_n(&pcpu__thiscpu.mode, PCPU__MODE_OFF, __ATOMIC_RELEASE);
    close_seq_table();
    __atomic_store_n(&pcpu__thiscpu.atomic_limit, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&pcpu__thiscpu.ptr_limit, 0, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&mode_lock);
}

/* ---- exactness pins (regions shared between processes) ---------------
 *
 * A region (region.c) is memory that other processes update with their
 * own restartable sequences.  Updates from two processes to one unit are
 * exact only while both run sequences indexed by CPU: a sequence restarts
 * when its thread is preempted, whoever preempts it, so on one CPU no two
 * sequences interleave.  An atomic update made after a migration, or an
 * index that is a per-process concurrency id, breaks that.  A process
 * that opened a region for writing pins that promise here; degrade() runs
 * pcpu__rseq_exact_check() before it switches to atomics, and with
 * a pin held it stops the process, naming one pinned region, rather than
 * let the process write inexactly.  Pins are taken and dropped under
 * mode_lock, like the mode, so a pin and a switch to atomics are ordered.
 */
static const char **exact_pins;      /* the pinned names (callers' strings) */
static unsigned int nr_exact_pins, cap_exact_pins;

int pcpu__rseq_pin_exact(const char *what)
{
    int ret = 0;
    pthread_mutex_lock(&mode_lock);
    if (__atomic_load_n(&pcpu__thiscpu.mode, __ATOMIC_ACQUIRE) != PCPU__MODE_RSEQ || cid_mode) {
        ret = EOPNOTSUPP;
    } else if (nr_exact_pins == cap_exact_pins) {
        unsigned int cap = cap_exact_pins ? 2 * cap_exact_pins : 8;
        const char **v = realloc(exact_pins, cap * sizeof(*v));
        if (v) {
            exact_pins = v;
            cap_exact_pins = cap;
        } else {
            ret = ENOMEM;
        }
    }
    if (ret == 0)
        exact_pins[nr_exact_pins++] = what;
    pthread_mutex_unlock(&mode_lock);
    if (ret) {
        errno = ret;
        return -1;
    }
    return 0;
}

void pcpu__rseq_unpin_exact(const char *what)
{
    pthread_mutex_lock(&mode_lock);
    for (unsigned int i = 0; i < nr_exact_pins; i++) {
        if (exact_pins[i] == what) {
            exact_pins[i] = exact_pins[--nr_exact_pins];
            break;
        }
    }
    pthread_mutex_unlock(&mode_lock);
}

void pcpu__rseq_exact_check(void)
{
    if (nr_exact_pins)
        pcpu__die("percpu: region %s: a thread of this process cannot use rseq any more, so "
                  "its updates to the region would no longer be exact; stopping",
                  exact_pins[0]);
}
