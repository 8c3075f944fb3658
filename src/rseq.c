/*
 * rseq.c - how this-CPU operations find the calling thread's unit: rseq
 * registration, the modes, the tables.
 *
 * The inline code in percpu.h reads everything from pcpu__tc: a 32-bit
 * index word at a fixed offset from the thread pointer (the rseq cpu_id, or
 * mm_cid in PCPU_INDEX_CID mode), tables from that index straight to the
 * unit's offset, and limits saying which paths may use them.  The rseq
 * sequences have a table of their own (seq_offs) whose entries are 0
 * whenever an index must not run a sequence; they read it inside the
 * critical section.  This file fills pcpu__tc in and decides, for the slow
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
 * Where the rseq area comes from: glibc 2.35+ registers one per thread and
 * publishes its offset (__rseq_offset, __rseq_size != 0).  When it did not
 * (older glibc, or GLIBC_TUNABLES=glibc.pthread.rseq=0) the library
 * registers an initial-exec TLS area of its own, lazily: its cpu_id starts
 * at -1, which fails the inline range check and lands here, where the
 * thread registers; a pthread key destructor unregisters it at thread exit.
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

struct pcpu__thiscpu_state pcpu__tc __attribute__((aligned(64)));
_Static_assert(offsetof(struct pcpu__thiscpu_state, seq_offs) == 64,
               "the hot fields share one cache line, the tables start the next");
_Static_assert(offsetof(struct pcpu__thiscpu_state, seq_offs) -
                       offsetof(struct pcpu__thiscpu_state, seq_neg_) ==
                   2 * sizeof(intptr_t),
               "seq_offs[-2] and seq_offs[-1] are seq_neg_");

/* The library's own area; cpu_id and mm_cid start out of every range so
 * that the inline paths send an unregistered thread here. */
static __thread struct pcpu_rseq_area own_rseq __attribute__((tls_model("initial-exec"))) = {
    .cpu_id = UINT32_MAX,
    .mm_cid = UINT32_MAX,
};
/* REG_BORROWED: someone else (glibc) registered the area for this thread. */
enum { REG_NONE, REG_DONE, REG_FAILED, REG_BORROWED };
static __thread unsigned char own_state __attribute__((tls_model("initial-exec")));

/* Where in the rseq area the index word is: cpu_id until decided
 * otherwise. */
#define DISP_CPU ((ptrdiff_t)PCPU_RSEQ_CPU_ID_OFF)
#define DISP_CID ((ptrdiff_t)PCPU_RSEQ_MM_CID_OFF)
ptrdiff_t pcpu__index_disp = DISP_CPU;
/* Once rseq has been opened with pcpu__index_disp, any thread may hold
 * its value in a register for good (it is const to the code that reads
 * it): it never changes again. */
static bool disp_fixed;

/* tc_lock: modes, limits and tables. */
static pthread_mutex_t tc_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static pthread_key_t thread_key;
static bool thread_key_ok;

/* Set at init, read by the slow paths (no lock: written before mode is
 * published with release, read after it with acquire). */
static bool use_own;            /* threads register own_rseq            */
static bool have_idx;           /* the index word can be read at all    */
static bool cid_mode;           /* the index word is mm_cid             */
static bool use_rseq;           /* pcpu__rseq_start() enables rseq      */
static uint32_t idx_limit;      /* entries of pcpu__tc.offs in use      */
static uint32_t seq_open;       /* entries of pcpu__tc.seq_offs not 0   */
static unsigned int nr_units;
static unsigned int nr_os_ids;
static unsigned int os_index[PCPU_MAX_CPUS]; /* OS CPU id -> CPU index */

static bool rseq_syscall_exists(void)
{
#ifdef SYS_rseq
    return true;
#else
    return false;
#endif
}

static long sys_rseq(struct pcpu_rseq_area *area, int flags)
{
#ifdef SYS_rseq
    return syscall(SYS_rseq, area, PCPU_RSEQ_ORIG_SIZE, flags, PCPU__RSEQ_SIG);
#else
    (void)area;
    (void)flags;
    errno = ENOSYS;
    return -1;
#endif
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

/* The area the library registers when glibc did not: glibc's own (every
 * thread has one at __rseq_offset even when glibc leaves it unregistered,
 * with cpu_id set to "registration failed"), which is where the inline
 * sequences look; own_rseq only with a C library that has none. */
static struct pcpu_rseq_area *own_area(void)
{
    if (&__rseq_offset != NULL)
        return (struct pcpu_rseq_area *)(thread_pointer() + __rseq_offset);
    return &own_rseq;
}

/* Thread exit (pthread key destructor): give the library's own rseq
 * registration back.  A later operation in this thread (another key's
 * destructor) comes back through the slow path and registers again, which
 * sets the key again, so this runs again. */
static void thread_exit(void *arg)
{
    (void)arg;
    if (own_state != REG_DONE)
        return;
    struct pcpu_rseq_area *area = own_area();
    if (sys_rseq(area, PCPU_RSEQ_UNREGISTER) == 0) {
        /* No longer the kernel's: make the index word fail the inline
         * range checks again, so a later operation in this thread comes
         * back and registers anew. */
        __atomic_store_n(&area->cpu_id, UINT32_MAX, __ATOMIC_RELAXED);
        __atomic_store_n(&area->mm_cid, UINT32_MAX, __ATOMIC_RELAXED);
        own_state = REG_NONE;
    }
}

static void make_key(void)
{
    thread_key_ok = pthread_key_create(&thread_key, thread_exit) == 0;
}

/* Open the sequences' table (tc_lock held): the offsets of offs for the
 * indexes in use.  Release: a sequence that reads an entry sees the unit
 * it names set up. */
static void open_seq_locked(void)
{
    for (uint32_t i = 0; i < idx_limit; i++)
        __atomic_store_n(&pcpu__tc.seq_offs[i], pcpu__tc.offs[i], __ATOMIC_RELEASE);
    seq_open = idx_limit;
}

/* Close it (tc_lock held): a sequence that reads an entry from now on
 * leaves through its slow exit; the ones in flight are the caller's
 * business (membarrier, or nobody may run one). */
static void close_seq_locked(void)
{
    for (uint32_t i = 0; i < seq_open; i++)
        __atomic_store_n(&pcpu__tc.seq_offs[i], 0, __ATOMIC_SEQ_CST);
    seq_open = 0;
}

/* Register own_rseq for the calling thread if the library uses it and it
 * is not registered yet.  Returns false if that failed. */
static bool own_register(void)
{
    if (!use_own || own_state == REG_DONE || own_state == REG_BORROWED)
        return true;
    if (own_state == REG_FAILED)
        return false;
    struct pcpu_rseq_area *area = own_area();
    /* EBUSY: this very area is registered already (glibc registers new
     * threads' areas itself once one of its threads has an area
     * registered), with the same signature: that is all we need. */
    if (sys_rseq(area, 0) != 0) {
        if (errno == EBUSY && __atomic_load_n(&area->cpu_id, __ATOMIC_RELAXED) < UINT32_MAX - 1) {
            own_state = REG_BORROWED;
            return true;
        }
        own_state = REG_FAILED;
        return false;
    }
    own_state = REG_DONE;
    /* The destructor only runs for threads with a non-NULL value. */
    if (thread_key_ok)
        pthread_setspecific(thread_key, &own_state);
    return true;
}

static uint32_t read_idx(void)
{
    return have_idx ? pcpu__tp_u32(pcpu__tc.idx_off) : UINT32_MAX;
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
        return pcpu__tc.offs[idx];
    return pcpu__cpu_offsets[cpu_index_from_os()];
}

/* Switch every thread from rseq to atomics (see the top of the file). */
static void degrade(void)
{
    pthread_mutex_lock(&tc_lock);
    if (__atomic_load_n(&pcpu__tc.mode, __ATOMIC_ACQUIRE) == PCPU__TC_RSEQ) {
        pcpu__rseq_exact_check_locked();
        close_seq_locked();
        if (syscall(SYS_membarrier, PCPU_MEMBARRIER_RSEQ, 0, 0) != 0)
            pcpu__die("percpu: membarrier(PRIVATE_EXPEDITED_RSEQ) failed: %s",
                      strerror(errno));
        __atomic_store_n(&pcpu__tc.atomic_limit, idx_limit, __ATOMIC_RELEASE);
        __atomic_store_n(&pcpu__tc.mode, PCPU__TC_ATOMIC, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&tc_lock);
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
    __atomic_store_n((uint64_t *)(void *)((char *)own_area() + PCPU_RSEQ_CS_OFF), 0,
                     __ATOMIC_RELAXED);
}

struct pcpu__slow pcpu__rseq_slow(const void *cookie)
{
    struct pcpu__slow r;
    r.cookie = cookie;
    uint32_t mode = __atomic_load_n(&pcpu__tc.mode, __ATOMIC_ACQUIRE);
    if (mode == PCPU__TC_OFF) {
        r.off = offline_off();
        return r;
    }
    /* No lock on the way to RETRY or to the atomic path: threads whose
     * index is beyond the atomic limit (CID mode with fewer units than
     * running threads) come here for every operation, which must stay
     * async-signal-safe. */
    bool registered = own_register();
    if (mode == PCPU__TC_RSEQ) {
        uint32_t idx = read_idx();
        if (!registered || idx >= idx_limit)
            degrade();
        if (__atomic_load_n(&pcpu__tc.mode, __ATOMIC_ACQUIRE) == PCPU__TC_RSEQ) {
            r.off = PCPU__TC_RETRY;
            return r;
        }
    }
    r.off = current_off();
    return r;
}

intptr_t pcpu__rseq_unit_off(void)
{
    if (__atomic_load_n(&pcpu__tc.mode, __ATOMIC_ACQUIRE) == PCPU__TC_OFF)
        return offline_off();
    (void)own_register();
    return current_off();
}

unsigned int pcpu__rseq_unit_index(void)
{
    if (__atomic_load_n(&pcpu__tc.mode, __ATOMIC_ACQUIRE) == PCPU__TC_OFF) {
        int c = sched_getcpu();
        return (c < 0 ? 0u : (unsigned int)c) % (pcpu__nr_units ? pcpu__nr_units : 1);
    }
    (void)own_register();
    return current_index();
}

bool pcpu__rseq_active(void)
{
    return __atomic_load_n(&pcpu__tc.mode, __ATOMIC_ACQUIRE) != PCPU__TC_OFF;
}

/* Before any operation can run (this runs ahead of the constructors of
 * the program and of the libraries that use this one), point the
 * sequences at a real rseq area: glibc's, or this library's own. */
__attribute__((constructor(101))) static void rseq_early(void)
{
    intptr_t off = (intptr_t)((char *)own_area() - thread_pointer());
    pcpu__tc.cs_ptr = (char *)(off + PCPU_RSEQ_CS_OFF);
    pcpu__tc.cid = 0;
    /* The index mode the environment asks for, decided before any code
     * can read the displacement (pcpu_init() may still change it, up to
     * the first operation). */
    const char *ix = getenv("PERCPU_INDEX");
    if (ix && strcmp(ix, "cid") == 0 && cid_possible())
        pcpu__index_disp = DISP_CID;
}

void pcpu__rseq_fork_prepare(void)
{
    pthread_mutex_lock(&tc_lock);
}

void pcpu__rseq_fork_parent(void)
{
    pthread_mutex_unlock(&tc_lock);
}

void pcpu__rseq_fork_child(void)
{
    pthread_mutex_unlock(&tc_lock);
}

bool pcpu__rseq_uses_rseq(void)
{
    return __atomic_load_n(&pcpu__tc.mode, __ATOMIC_ACQUIRE) == PCPU__TC_RSEQ;
}

void pcpu__rseq_setup(const struct pcpu_alloc_info *ai, enum pcpu_index index)
{
    int saved = errno;
    pthread_mutex_lock(&tc_lock);
    pthread_once(&key_once, make_key);

    nr_units = ai->nr_units;
    nr_os_ids = ai->nr_os_ids < PCPU_MAX_CPUS ? ai->nr_os_ids : PCPU_MAX_CPUS;
    for (unsigned int id = 0; id < nr_os_ids; id++)
        os_index[id] = ai->index_of_os[id] < nr_units ? ai->index_of_os[id] : 0;

    /* Where the index word lives. */
    intptr_t rseq_off = 0;
    have_idx = false;
    use_own = false;
    bool cid_ok = cid_possible();
    if (glibc_registered()) {
        rseq_off = __rseq_offset;
        have_idx = true;
    } else if (rseq_syscall_exists()) {
        use_own = true;
        rseq_off = (intptr_t)((char *)own_area() - thread_pointer());
        have_idx = own_register();
        if (!have_idx)
            use_own = false;
    }
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
            pcpu__tc.offs[i] = pcpu__cpu_offsets[i];
    } else {
        idx_limit = nr_os_ids;
        for (unsigned int id = 0; id < nr_os_ids; id++)
            pcpu__tc.offs[id] = pcpu__cpu_offsets[os_index[id]];
    }
    if (!have_idx)
        idx_limit = 0;
    pcpu__tc.rseq_off = rseq_off;
    pcpu__tc.idx_off = rseq_off + (cid_mode ? PCPU_RSEQ_MM_CID_OFF : PCPU_RSEQ_CPU_ID_OFF);
    /* The sequences always run first, so their area must be real memory
     * even where rseq is not used: the (unregistered) own area then. */
    intptr_t seq_off = rseq_off ? rseq_off : (intptr_t)((char *)own_area() - thread_pointer());
    pcpu__tc.cs_ptr = (char *)(seq_off + PCPU_RSEQ_CS_OFF);
    pcpu__tc.cid = cid_mode;

    /* rseq needs: the instruction sequences (x86_64), an index word, one
     * unit per CPU, CPU ids the table covers, and a way to switch to
     * atomics safely later. */
    bool rseq = false;
#if PCPU__RSEQ_ASM
    rseq = have_idx && disp_ok && !ai->units_shared && kernel_ids_fit() &&
           syscall(SYS_membarrier, PCPU_MEMBARRIER_REGISTER_RSEQ, 0, 0) == 0;
#endif
    use_rseq = rseq;
    pthread_mutex_unlock(&tc_lock);
    errno = saved;
}

void pcpu__rseq_start(void)
{
    pthread_mutex_lock(&tc_lock);
    if (use_rseq)
        disp_fixed = true;
    __atomic_store_n(&pcpu__tc.ptr_limit, idx_limit, __ATOMIC_RELEASE);
    if (use_rseq)
        open_seq_locked();
    __atomic_store_n(&pcpu__tc.atomic_limit, use_rseq ? 0 : idx_limit, __ATOMIC_RELEASE);
    __atomic_store_n(&pcpu__tc.mode, use_rseq ? PCPU__TC_RSEQ : PCPU__TC_ATOMIC,
                     __ATOMIC_RELEASE);
    pthread_mutex_unlock(&tc_lock);
}

bool pcpu__rseq_uses_cid(void)
{
    return cid_mode;
}

void pcpu__rseq_stop(void)
{
    pthread_mutex_lock(&tc_lock);
    __atomic_store_n(&pcpu__tc.mode, PCPU__TC_OFF, __ATOMIC_RELEASE);
    close_seq_locked();
    __atomic_store_n(&pcpu__tc.atomic_limit, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&pcpu__tc.ptr_limit, 0, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&tc_lock);
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
 * pcpu__rseq_exact_check_locked() before it switches to atomics, and with
 * a pin held it stops the process, naming one pinned region, rather than
 * let the process write inexactly.  Pins are taken and dropped under
 * tc_lock, like the mode, so a pin and a switch to atomics are ordered.
 */
static const char **exact_pins;      /* the pinned names (callers' strings) */
static unsigned int nr_exact_pins, cap_exact_pins;

int pcpu__rseq_pin_exact(const char *what)
{
    int ret = 0;
    pthread_mutex_lock(&tc_lock);
    if (__atomic_load_n(&pcpu__tc.mode, __ATOMIC_ACQUIRE) != PCPU__TC_RSEQ || cid_mode) {
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
    pthread_mutex_unlock(&tc_lock);
    if (ret) {
        errno = ret;
        return -1;
    }
    return 0;
}

void pcpu__rseq_unpin_exact(const char *what)
{
    pthread_mutex_lock(&tc_lock);
    for (unsigned int i = 0; i < nr_exact_pins; i++) {
        if (exact_pins[i] == what) {
            exact_pins[i] = exact_pins[--nr_exact_pins];
            break;
        }
    }
    pthread_mutex_unlock(&tc_lock);
}

void pcpu__rseq_exact_check_locked(void)
{
    if (nr_exact_pins)
        pcpu__die("percpu: region %s: a thread of this process cannot use rseq any more, so "
                  "its updates to the region would no longer be exact; stopping",
                  exact_pins[0]);
}
