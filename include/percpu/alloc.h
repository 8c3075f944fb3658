/* SPDX-License-Identifier: MIT */
/*
 * percpu/alloc.h - per-CPU pointers, allocation, set-up and teardown.
 * Part of <percpu.h>: include that.
 *
 * A cookie names one object that exists once per CPU unit, at the same
 * offset in every unit; pcpu_ptr() turns it into one CPU's copy.  A cookie
 * is never dereferenced directly (it points into a guard area that is
 * never mapped, so doing so faults at once).  &cookie->field and cookie + i
 * are cookies too.
 */
#ifndef PERCPU_ALLOC_H
#define PERCPU_ALLOC_H
#ifndef PERCPU_H
#error "<percpu/alloc.h> is not for direct inclusion: #include <percpu.h>"
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------
 * Per-CPU pointers
 * ------------------------------------------------------------------------ */

/**
 * pcpu_ptr - address of one CPU's copy of a per-CPU object.
 * @cookie: a cookie from pcpu_alloc(), PCPU_VAR() or arithmetic on those
 *          (&cookie->field, cookie + i).
 * @cpu:    CPU index, 0 <= cpu < pcpu_nr_cpus().
 *
 * Returns the real address of @cpu's copy.  O(1): one table load and one
 * add.  @cpu out of range is a programming error: builds without NDEBUG
 * stop the process with a message, others read outside the table.
 * Thread safety: any thread; the address stays valid until the object is
 * freed.  Async-signal-safe.
 */
static inline void *pcpu_ptr(const void *cookie, unsigned int cpu)
{
#ifndef NDEBUG
    if (PCPU__UNLIKELY(cpu >= pcpu__nr_units))
        pcpu__bad_cpu(cpu);
#endif
    return (char *)(uintptr_t)cookie + pcpu__cpu_offsets[cpu];
}

/**
 * pcpu_nr_cpus - number of units per chunk; valid CPU indexes are below it.
 *
 * The number of possible CPUs, or pcpu_config.nr_cpus.  Initialises the
 * allocator with defaults if needed; returns 0 only if that fails.
 * Thread safety: any thread.  Async-signal-safe once the allocator is
 * initialised.
 */
PCPU__PUBLIC unsigned int pcpu_nr_cpus(void);

/**
 * pcpu_this_cpu - CPU index (unit) of the calling thread right now.
 *
 * In PCPU_INDEX_CPU mode the index of the CPU the thread runs on, in
 * PCPU_INDEX_CID mode its rseq concurrency id.  The thread may migrate as
 * soon as this returns: use it for statistics, not for exclusion.
 * Returns -1 with errno set if the allocator cannot be initialised.
 * Thread safety: any thread.  Async-signal-safe once the thread has made
 * one this-CPU operation.
 */
PCPU__PUBLIC int pcpu_this_cpu(void);

/* Iterate over every CPU index: pcpu_for_each_cpu(cpu) { ... }. */
#define pcpu_for_each_cpu(cpu) \
    for (unsigned int cpu = 0, pcpu__n_##cpu = pcpu_nr_cpus(); cpu < pcpu__n_##cpu; cpu++)

#ifdef __cplusplus
#define PCPU_PTR(cookie, cpu) (static_cast<decltype(cookie)>(pcpu_ptr((cookie), (cpu))))
#define PCPU_THIS_PTR(cookie) (static_cast<decltype(cookie)>(pcpu_this_ptr((cookie))))
#else
/* Typed versions: the result has the cookie's type. */
#define PCPU_PTR(cookie, cpu) ((__typeof__(cookie))pcpu_ptr((cookie), (cpu)))
#define PCPU_THIS_PTR(cookie) ((__typeof__(cookie))pcpu_this_ptr((cookie)))
#endif

/* ------------------------------------------------------------------------
 * Allocation
 * ------------------------------------------------------------------------ */

/**
 * pcpu_alloc - allocate a per-CPU object.
 * @size:  1 .. pcpu_max_alloc_size() bytes.
 * @align: a power of two, 1 .. page size; 0 means the natural alignment of
 *         @size (the largest power of two dividing it, at most 16, at least
 *         4).  More than that rounds @size up to a multiple of @align (the
 *         object holds that many bytes; it costs what that size costs).
 *
 * Returns a cookie whose memory is zero in every unit, or NULL with errno:
 *   EINVAL  @size or @align out of range, or the allocator's configuration
 *           is unusable (see pcpu_init());
 *   ENOMEM  the OS refused memory or pcpu_config.max_memory would be
 *           exceeded; the allocator stays fully usable.
 * Sizes up to 4 KiB come from per-thread caches (no lock) and are rounded
 * up to 4 bytes, and from 256 bytes to 64 bytes (pcpu_addr_info() gives
 * the size an object holds); each thread keeps at most a bounded number of
 * free objects (about 1.3 MiB per unit at worst) until it allocates again,
 * calls pcpu_reclaim(true) or exits.
 * Cost: O(1) amortised, and for the zeroing O(units written), not
 * O(units configured) (see docs/design.md, "Zeroing").  A build of the
 * library with AddressSanitizer marks every configured unit: O(units).
 * Thread safety: any thread.  Not async-signal-safe (see <percpu.h>).
 */
PCPU__PUBLIC void *pcpu_alloc(size_t size, size_t align);

/**
 * pcpu_alloc_reserved - allocate from the first chunk's reserved area.
 * @size, @align: as for pcpu_alloc().
 *
 * The reserved area is kept for the static per-CPU sections of libraries
 * loaded with dlopen(), like the kernel's module reserve.  When it is full
 * this falls back to the dynamic area instead of failing.  Errors as
 * pcpu_alloc().  Thread safety: any thread.  Not async-signal-safe.
 */
PCPU__PUBLIC void *pcpu_alloc_reserved(size_t size, size_t align);

/**
 * pcpu_free - free a per-CPU object.
 * @cookie: from pcpu_alloc() or pcpu_alloc_reserved(), or NULL (no-op).
 *
 * A cookie that is not the start of a live allocation (double free,
 * interior or foreign pointer) stops the process with a message such as
 * "percpu: double free of 0x7f3c2a001040".  Limit: two threads freeing
 * the same cookie at the same instant (a data race in the program) may
 * both pass that check; a second free after the first returned is always
 * caught.  Cost: O(1) amortised; the zeroing as pcpu_alloc().
 * Thread safety: any thread, also one other than the allocating thread.
 * Not async-signal-safe.
 */
PCPU__PUBLIC void pcpu_free(void *cookie);

/**
 * pcpu_max_alloc_size - the largest size pcpu_alloc() accepts.
 *
 * The dynamic space of one unit.  Initialises the allocator if needed;
 * 0 if that fails, with errno set as pcpu_init() would.
 * Thread safety: any thread.  Not async-signal-safe.
 */
PCPU__PUBLIC size_t pcpu_max_alloc_size(void);

#ifdef __cplusplus
#define PCPU_NEW(type) (static_cast<type *>(pcpu_alloc(sizeof(type), alignof(type))))
#else
/* Allocate one zeroed object of @type per CPU. */
#define PCPU_NEW(type) ((type *)pcpu_alloc(sizeof(type), _Alignof(type)))
#endif

/* ------------------------------------------------------------------------
 * Set-up and teardown
 * ------------------------------------------------------------------------ */

enum pcpu_backend {
    PCPU_BACKEND_VM, /* reserve address space, populate pages on demand */
    PCPU_BACKEND_KM, /* one contiguous usable block per chunk */
};

/*
 * Which unit a thread's this-CPU operations use.
 *
 * PCPU_INDEX_CPU: the unit of the CPU the thread runs on (like the kernel).
 * PCPU_INDEX_CID: the unit numbered by the thread's rseq concurrency id
 *   (mm_cid, Linux 6.3+), a small dense number among the threads running
 *   at once: a process with 4 threads on a 256-CPU machine touches 4 units
 *   instead of up to 256.  Falls back to CPU ids where the kernel or the C
 *   library does not provide mm_cid.
 *   Limitation: a thread that unregisters its rseq area itself reads
 *   mm_cid 0 from then on, a valid index, so its this-CPU operations can
 *   lose updates made on unit 0 by the thread that really has concurrency
 *   id 0.  (PCPU_INDEX_CPU is exact there.)  A program that unregisters
 *   rseq should use PCPU_INDEX_CPU.
 *
 * The first configuration that runs a this-CPU operation fixes the mode
 * for the process (PERCPU_INDEX decides it before any program code runs;
 * a pcpu_init() before the first operation may still change it).  If
 * pcpu_exit() and pcpu_init() later pick the other mode, this-CPU
 * operations are done as atomics from then on (correct, slower;
 * pcpu_stats.rseq says false).
 */
enum pcpu_index {
    PCPU_INDEX_CPU,
    PCPU_INDEX_CID,
};

/* pcpu_config.flags */
#define PCPU_F_DEBUG 0x1u      /* robust mode: poison, check, validate   */
#define PCPU_F_NO_RECLAIM 0x2u /* no background reclaim thread           */
#define PCPU_F_NO_CACHE 0x4u   /* no per-thread cache of small objects   */
#define PCPU_F_REPORT_LEAKS 0x8u /* pcpu_exit() lists live allocations    */

struct pcpu_config {
    enum pcpu_backend backend; /* chunk backend; VM by default           */
    enum pcpu_index index;     /* unit per CPU id, or per rseq mm_cid    */
    unsigned int nr_cpus;      /* units per chunk; 0: possible CPUs      */
    size_t unit_size;          /* bytes per unit; 0: default (1 MiB)     */
    size_t reserved_size;      /* reserved area; 0: default (16 KiB)     */
    const int *cpu_node;       /* NUMA node of each cpu; NULL: from sysfs */
    size_t max_memory;         /* 0: no limit; else ENOMEM past it       */
    unsigned int flags;        /* PCPU_F_*                               */
};

/**
 * pcpu_init - configure and initialise the allocator.
 * @cfg: the configuration, or NULL for defaults (environment variables
 *       PERCPU_BACKEND=vm|km, PERCPU_INDEX=cpu|cid, PERCPU_DEBUG=1 apply).
 *
 * Optional: the allocator initialises itself with defaults on first use.
 * It must come before any other use.  Static per-CPU variables registered
 * by constructors do not count as use while nothing touched them (they
 * are laid out again with their initial values); a this-CPU operation,
 * pcpu_sum() or any other call on them makes this too late.  Not detected:
 * an address taken with pcpu_ptr() on a static variable and only read
 * before this call (it points into the old placement afterwards).
 *
 * unit_size is rounded up to the page size and must be 64 KiB .. 1 GiB;
 * nr_cpus must be 1 .. PCPU_MAX_CPUS; cpu_node, if given, has nr_cpus
 * entries (or as many as there are possible CPUs when nr_cpus is 0).
 * Fewer units than possible CPUs works, with this-CPU operations done as
 * atomics (CPUs share units).
 *
 * Returns 0, or -1 with errno:
 *   EBUSY   the allocator was already used, static variables included
 *           (call pcpu_exit() first);
 *   EINVAL  the configuration is unusable; a line on stderr says why (for
 *           example the KM backend with more than one NUMA group, or a
 *           reserved_size that leaves the first chunk less than 32 KiB of
 *           dynamic space); every size is checked for overflow;
 *   ENOMEM  the first chunk could not be mapped.
 * Thread safety: before other threads use the allocator.  Not
 * async-signal-safe.
 */
PCPU__PUBLIC int pcpu_init(const struct pcpu_config *cfg);

/**
 * pcpu_exit - release every chunk, mapping and cache.
 *
 * Every cookie becomes invalid, static per-CPU variables included until
 * the next initialisation (explicit, or on first use, with any
 * configuration).  Static variables are then placed again with their
 * initial values; a this-CPU operation or pcpu_sum() through PCPU_VAR()
 * may be that first use.  The first chunk's address range stays reserved,
 * without memory, until the next pcpu_exit(), so any other stale use of a
 * static variable faults instead of writing into memory the library no
 * longer owns.
 *
 * Robust mode (PCPU_F_DEBUG) checks the whole allocator here: live
 * allocations (leaks), writes into freed or cached memory and broken
 * invariants are reported one per line, naming the cookie, and stop the
 * process (SIGABRT).  Otherwise leaks are only listed when asked for
 * (PCPU_F_REPORT_LEAKS, or PERCPU_LEAKS=1), and nothing stops.
 * Thread safety: no other thread may use the allocator during or after the
 * call, until it is initialised again.  Not async-signal-safe.
 */
PCPU__PUBLIC void pcpu_exit(void);

/**
 * pcpu_reclaim - give empty chunks and empty populated pages back now.
 * @all: false: keep the low watermarks (a few empty populated pages and
 *       one empty chunk); true: give everything back, and first the
 *       calling thread's cached and waiting freed objects and those of the
 *       store the threads share (other threads' stay theirs until they
 *       allocate, fill their batch of frees, call this, or exit).
 *
 * The background worker does the same on its own, within about 200 ms of
 * the frees that left memory empty; this is for programs that want it at
 * once and for PCPU_F_NO_RECLAIM.  Where the worker thread cannot be
 * created (RLIMIT_NPROC reached, a seccomp filter refusing clone), nothing
 * goes back in the background until a later free that leaves memory
 * empty can start it; this call works regardless.  Returns the number of
 * pages given back.
 * Cost: O(chunks + pages given back).
 * Thread safety: any thread.  Not async-signal-safe.
 */
PCPU__PUBLIC size_t pcpu_reclaim(bool all);

#ifdef __cplusplus
}
#endif

#endif /* PERCPU_ALLOC_H */
