/*
 * percpu.h - per-CPU memory for Linux programs (the whole public API).
 *
 * A per-CPU allocation ("cookie") names one object that exists once per CPU
 * unit.  Every chunk of per-CPU memory is made of nr_cpus units of the same
 * size; an allocation takes the same offset in every unit, so one cookie
 * plus a per-CPU offset (one table shared by all chunks) gives any CPU's
 * copy:
 *
 *      cookie ---------+
 *                      |   chunk: [guard][unit 0][unit 1] ... [unit N-1]
 *                      v           ^       ^                   ^
 *      pcpu_ptr(c, cpu) = c + pcpu__cpu_offsets[cpu]  (one load, one add)
 *
 * Cookies point into a guard area that is never mapped, so dereferencing
 * one directly faults at once instead of silently touching CPU 0's copy.
 *
 * Memory is zeroed on allocation in every unit.  Pages are only made
 * resident in the units that are really written, so configuring 256 or
 * 4096 units on a small machine costs address space, not memory.
 *
 * This-CPU operations (pcpu_this_add() and friends, on integers of 1, 2, 4
 * and 8 bytes) update the calling thread's current unit inside a
 * restartable sequence (rseq), so they are plain loads and stores that the
 * kernel restarts on preemption or migration; where rseq is not available
 * they fall back to atomics.  Per-CPU lists (pcpu_this_list_push() and
 * pcpu_this_list_pop(), pcpu_list_pop_all()) are intrusive LIFO lists, one
 * per unit, built the same way: the free lists and caches of allocators.
 *
 * Thread safety: every function here may be called from any thread unless
 * its comment says otherwise.  Errors are reported with a NULL or -1 return
 * and errno; misuse that cannot be reported (double free, foreign pointer)
 * stops the process with a one-line message naming the pointer.
 *
 * Async-signal safety: the this-CPU operations (pcpu_this_*()), pcpu_ptr(),
 * pcpu_this_ptr(), pcpu_sum(), pcpu_nr_cpus(), pcpu_this_cpu() and the
 * per-CPU list operations (pcpu_this_list_push(), pcpu_this_list_pop(),
 * pcpu_list_pop_all()) may be called from a signal handler once the
 * interrupted thread has made one this-CPU operation (the first may set
 * the thread up, which takes locks).  (What a list pop in a handler
 * returns in the atomic fallback is said at pcpu_this_list_pop().)
 * Nothing else is: the allocator takes a lock and keeps per-thread caches.
 * A signal handler that calls pcpu_alloc(), pcpu_free() or any other
 * function marked "not async-signal-safe" while its thread was inside one
 * of them stops the process with a one-line message naming both calls --
 * never a hang, never one object handed out twice.  (A handler that
 * interrupts code outside the library may call them; that is not portable
 * practice, but it works.)
 */
#ifndef PERCPU_H
#define PERCPU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PCPU_VERSION_MAJOR 0
#define PCPU_VERSION_MINOR 2

/* Largest number of units (CPUs) a chunk can have. */
#define PCPU_MAX_CPUS 8192

#if defined(__GNUC__)
#define PCPU__LIKELY(x) __builtin_expect(!!(x), 1)
#define PCPU__UNLIKELY(x) __builtin_expect(!!(x), 0)
#define PCPU__PUBLIC __attribute__((visibility("default")))
#define PCPU__INLINE inline __attribute__((always_inline))
/* after a label: the code that follows is rarely run (laid out apart) */
#if defined(__clang__)
#define PCPU__COLD_LABEL ;
#else
#define PCPU__COLD_LABEL __attribute__((cold));
#endif
#else
#define PCPU__LIKELY(x) (x)
#define PCPU__UNLIKELY(x) (x)
#define PCPU__PUBLIC
#define PCPU__INLINE inline
#define PCPU__COLD_LABEL ;
#endif

/* ------------------------------------------------------------------------
 * Internal state the inline functions read.  Not part of the API: never
 * touch these directly.
 * ------------------------------------------------------------------------ */

/* Offset from a cookie to the copy of CPU index i (the kernel's
 * __per_cpu_offset).  Valid for i < pcpu__nr_units once initialised. */
PCPU__PUBLIC extern intptr_t pcpu__cpu_offsets[PCPU_MAX_CPUS];
/* Units per chunk; 0 until the allocator is initialised. */
PCPU__PUBLIC extern unsigned int pcpu__nr_units;

PCPU__PUBLIC void pcpu__bad_cpu(unsigned int cpu);

/* ------------------------------------------------------------------------
 * Per-CPU pointers
 * ------------------------------------------------------------------------ */

/**
 * pcpu_ptr - address of one CPU's copy of a per-CPU object.
 * @cookie: a cookie from pcpu_alloc(), PCPU_VAR() or arithmetic on those
 *          (&cookie->field, cookie + i).
 * @cpu:    CPU index, 0 <= cpu < pcpu_nr_cpus().
 *
 * Returns the real address of @cpu's copy.  One table load and one add.
 * @cpu out of range is a programming error: builds without NDEBUG stop the
 * process with a message, others read outside the table.
 * Thread safety: any thread; the address stays valid until the object is
 * freed.
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
 * This is the number of possible CPUs, or pcpu_config.nr_cpus.  Initialises
 * the allocator with defaults if needed (0 only if that fails).
 */
PCPU__PUBLIC unsigned int pcpu_nr_cpus(void);

/**
 * pcpu_this_cpu - CPU index (unit) of the calling thread right now.
 *
 * In PCPU_INDEX_CPU mode this is the index of the CPU the thread runs on,
 * in PCPU_INDEX_CID mode its rseq concurrency id.  The thread may migrate
 * as soon as this returns, so use it for statistics, not for exclusion.
 * Returns -1 with errno set if the allocator cannot be initialised.
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
 *         4).
 *
 * Returns a cookie whose memory is zero in every unit, or NULL with errno:
 *   EINVAL  size or align out of range, or the allocator's configuration
 *           is unusable (see pcpu_init());
 *   ENOMEM  the OS refused memory or pcpu_config.max_memory would be
 *           exceeded; the allocator stays fully usable.
 * Sizes up to 4 KiB are served from per-thread caches of size classes
 * without a global lock (each class holds up to 32 objects and 8 KiB per
 * unit, but at least 8 objects: a thread whose every class is full pins
 * up to 1.3 MiB per unit): the size is rounded up to 4 bytes up to 256
 * bytes, then to 64 bytes (and those classes are 64-byte aligned), so
 * such an object holds up to 63 bytes per unit more than asked.  Above
 * 256 bytes an alignment of 128 or 256 is served by the class of the next
 * multiple of it (all its objects have it: up to 192 bytes more); other
 * alignments above the class's are served from the cache when a cached
 * object happens to have it, else through the lock.  Freed objects wait
 * in a small per-thread batch before their space is reused (at most 1024
 * zeroed objects and 64 KiB per unit of them, and 64 KiB per unit of not
 * yet zeroed ones), so that frees are zeroed and given back in bulk
 * (objects freed in the order they were made travel as one run); what a
 * thread gives back of the classes that do not come in whole lines of
 * live marks (those above 256 bytes, and small odd sizes) waits, zeroed,
 * in a store the threads share, up to one class cache's worth per class,
 * where the next refill of that class takes it without searching the map;
 * pcpu_reclaim(true) gives the calling thread's and the store's back at
 * once.
 *
 * Cost with many units: a free zeroes the object only where it may hold
 * data.  With up to 16 units it reads the object in each unit; with more,
 * frees wait in the batch (up to 4096 objects per thread) and one
 * PAGEMAP_SCAN of the chunk's page tables per batch says which units'
 * pages were written, so the work follows the units touched; the zeroed
 * small objects (up to 64 bytes, 64 KiB per unit) stay with the thread
 * for its next allocations.  Measured here with 2 of 4096 units written,
 * an alloc+free pair costs 34-36 ns and a free 21-22 ns, 1.84-1.87x and
 * 1.2-1.3x what they cost with 2 units configured (percpu-bench --full,
 * units.*), not 2000x.  A kernel
 * without PAGEMAP_SCAN (before 6.7) reads every unit instead.
 *
 * Limit of reading: a unit nobody wrote since the kernel populated it is
 * the kernel's shared zero page, and on AMD Zen processors reading one
 * physical page through several addresses goes at about half speed, so a
 * free reads such units at about half speed too (4 KiB in 2 units, never
 * written in either: ~120-150 ns per alloc+free instead of ~70-90 ns).
 * Units written once are the program's own pages and read at full speed.  In a
 * build of the library with AddressSanitizer every free and allocation
 * marks the shadow of every configured unit: O(units) per call.
 * Thread safety: any thread.  Not async-signal-safe (see the top).
 */
PCPU__PUBLIC void *pcpu_alloc(size_t size, size_t align);

/**
 * pcpu_alloc_reserved - allocate from the first chunk's reserved area.
 * @size, @align: as for pcpu_alloc().
 *
 * The reserved area is kept for static per-CPU sections of libraries loaded
 * with dlopen(), like the kernel's module reserve.  When it is full this
 * falls back to the dynamic area instead of failing.  Errors as
 * pcpu_alloc().  Thread safety: any thread.  Not async-signal-safe.
 */
PCPU__PUBLIC void *pcpu_alloc_reserved(size_t size, size_t align);

/**
 * pcpu_free - free a per-CPU object.
 * @cookie: from pcpu_alloc() or pcpu_alloc_reserved(), or NULL (no-op).
 *
 * A cookie that is not the start of a live allocation (double free,
 * interior or foreign pointer) stops the process with a message such as
 * "percpu: double free of 0x7f3c2a001040".  Limit: the check is a plain
 * read of the object's live mark, not an atomic exchange (that would cost
 * every free a locked instruction), so two threads freeing the same
 * cookie at the same instant -- a data race in the program -- may both
 * pass it; a second free after the first returned is always caught.
 * Thread safety: any thread, also one other than the allocating thread.
 * Not async-signal-safe.
 */
PCPU__PUBLIC void pcpu_free(void *cookie);

/**
 * pcpu_max_alloc_size - the largest size pcpu_alloc() accepts.
 *
 * Equal to the dynamic space of one unit (the unit size minus nothing for
 * chunks after the first).  Initialises the allocator if needed; 0 if that
 * fails.
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
 *   Best when threads are pinned or outnumber CPUs: every CPU that ever
 *   runs a thread gets its copy touched, and nothing else.
 * PCPU_INDEX_CID: the unit numbered by the thread's rseq concurrency id
 *   (mm_cid, Linux 6.3+), a small dense number among the threads running at
 *   once.  Best on big machines running few threads: a process with 4
 *   threads on a 256-CPU box touches 4 units instead of up to 256, so
 *   memory and pcpu_sum() stay small.  Falls back to CPU ids where the
 *   kernel does not provide mm_cid.
 *   Limitation: a thread that unregisters glibc's rseq area itself (the
 *   rseq system call with RSEQ_FLAG_UNREGISTER) reads mm_cid 0 from then
 *   on, which is a valid index, so its this-CPU operations update unit 0
 *   without the kernel's protection and can lose updates made there by
 *   the thread that really has concurrency id 0.  (In PCPU_INDEX_CPU mode
 *   its cpu_id reads -1, and the library re-registers it or switches the
 *   process to atomics: exact.)  Telling the two apart inside the
 *   sequence would cost every CID-mode operation one more load; a program
 *   that unregisters rseq should use PCPU_INDEX_CPU.
 *
 * The restartable sequences read the index word from a place fixed for the
 * whole process (so that no operation tests the mode): the first
 * configuration that opens them fixes it (PERCPU_INDEX decides it before
 * any program code runs; a pcpu_init() before the first operation may
 * still change it).  If pcpu_exit() and pcpu_init() later pick the other
 * mode, this-CPU operations are done as atomics on the right unit from
 * then on (correct, slower; pcpu_stats.rseq says false).
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
 * It must come before any other use; static per-CPU variables that were
 * registered by constructors do not count as use (they are laid out again
 * with their initial values) as long as nothing touched them: a this-CPU
 * operation, pcpu_sum(), or a write through pcpu_ptr() on any of them (or
 * any other call into the library) makes this too late, and it fails with
 * EBUSY instead of moving memory that is in use.  Not detected: an address
 * taken with pcpu_ptr() on a static variable and only read before this
 * call (it points into the old placement afterwards).
 *
 * unit_size is rounded up to the page size and must be 64 KiB .. 1 GiB;
 * nr_cpus must be 1 .. PCPU_MAX_CPUS; cpu_node, if given, has nr_cpus
 * entries (or as many as there are possible CPUs when nr_cpus is 0).
 * Fewer units than possible CPUs works, but this-CPU operations then use
 * atomics because CPUs share units.
 *
 * Returns 0, or -1 with errno:
 *   EBUSY   the allocator was already used, static variables included
 *           (call pcpu_exit() first);
 *   EINVAL  the configuration is unusable; a line on stderr says why (for
 *           example the KM backend with more than one NUMA group, or a
 *           reserved_size that leaves the first chunk less than 32 KiB of
 *           dynamic space); every size is checked for overflow;
 *   ENOMEM  the first chunk could not be mapped.
 * Thread safety: call it before other threads use the allocator.  Not
 * async-signal-safe.
 */
PCPU__PUBLIC int pcpu_init(const struct pcpu_config *cfg);

/**
 * pcpu_exit - release every chunk, mapping and cache.
 *
 * Every cookie becomes invalid, including static per-CPU variables until
 * the next initialisation.  The allocator can be initialised again
 * afterwards (explicitly or on first use), with another configuration.
 * Static variables are placed again with their initial values; a this-CPU
 * operation or pcpu_sum() through PCPU_VAR() may be that first use (the
 * cookie it computed from the old placement is moved to the new one).
 * The first chunk's address range stays reserved, without memory, until
 * the next pcpu_exit(), so any other stale use of a static variable faults
 * instead of writing into memory the library no longer owns.
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
 *
 * The background worker does this on its own (within about 200 ms of the
 * frees that made memory empty); this is for programs that want it at once
 * and for configurations with PCPU_F_NO_RECLAIM.  Keeps the low watermarks
 * (a few empty populated pages and one empty chunk) unless @all is true;
 * with @all, the calling thread's cached and waiting freed objects, and
 * those in the store the threads share, go back first (other threads'
 * stay theirs: each thread's caches and batch of frees keep what they hold
 * until that thread allocates, fills its batch, calls this, or exits).
 * Returns the number of pages given back.  Thread safety: any thread; not
 * async-signal-safe.
 */
PCPU__PUBLIC size_t pcpu_reclaim(bool all);

/* ------------------------------------------------------------------------
 * Introspection
 * ------------------------------------------------------------------------ */

#define PCPU_STATS_VERSION 1

/* The kernel's percpu_stats figures, under its names, and more. */
struct pcpu_stats {
    size_t size;          /* sizeof(struct pcpu_stats) (output)          */
    unsigned int version; /* PCPU_STATS_VERSION (output)                 */
    unsigned int nr_units;
    size_t unit_size;     /* bytes per unit                              */
    size_t static_size;   /* first chunk: static area                    */
    size_t reserved_size; /* first chunk: reserved area                  */
    size_t dyn_size;      /* first chunk: dynamic area                   */
    size_t atom_size;     /* allocation granularity of chunks            */
    size_t page_size;
    uint64_t nr_alloc;       /* allocations ever made                    */
    uint64_t nr_dealloc;     /* frees ever made                          */
    uint64_t nr_cur_alloc;   /* live allocations                         */
    uint64_t nr_max_alloc;   /* most live at once (may be a little high
                                when several threads allocate)           */
    unsigned int nr_chunks;  /* live chunks, the first included         */
    unsigned int nr_max_chunks;
    size_t min_alloc_size;   /* smallest size ever requested             */
    size_t max_alloc_size;   /* largest size ever requested              */
    size_t empty_pop_pages;  /* populated pages holding no allocation    */
    size_t populated_pages;  /* populated pages, per unit, all chunks    */
    size_t resident_bytes;   /* memory really held, as the OS counts it  */
    size_t metadata_bytes;   /* the allocator's own bookkeeping          */
    size_t allocated_bytes;  /* bytes handed out, per unit               */
    size_t cached_objects;   /* free objects parked in caches (threads', shared store) */
    uint64_t nr_populate;    /* populate calls into the backend          */
    uint64_t nr_depopulate;  /* depopulate calls into the backend        */
    uint64_t nr_chunk_create;
    uint64_t nr_chunk_destroy;
    enum pcpu_backend backend;
    enum pcpu_index index;
    bool rseq;               /* this-CPU operations use rseq             */
};

/**
 * pcpu_stats_get - take a snapshot of the allocator's figures.
 * @st: filled in whole (size and version included).
 *
 * Returns 0, or -1 with errno EINVAL if @st is NULL.  Initialises the
 * allocator if needed.  resident_bytes is read from /proc/self/smaps and
 * costs a few milliseconds.  Thread safety: any thread.  Not
 * async-signal-safe (nor are the other introspection calls below).
 */
PCPU__PUBLIC int pcpu_stats_get(struct pcpu_stats *st);

/**
 * pcpu_stats_print - print the figures and one line per chunk to @out
 * (stdout if NULL), in the spirit of the kernel's debugfs percpu_stats.
 */
PCPU__PUBLIC void pcpu_stats_print(FILE *out);

/**
 * pcpu_chunk_map_print - print a picture of every chunk: one character per
 * page of a unit ('#' full, '+' partly used, '.' populated and empty, ' '
 * not populated), to @out (stdout if NULL).  @width: characters per line
 * (0: 64).
 */
PCPU__PUBLIC void pcpu_chunk_map_print(FILE *out, unsigned int width);

/* One chunk as pcpu_chunk_info() reports it. */
struct pcpu_chunk_info {
    void *base;              /* cookie of offset 0 in this chunk         */
    size_t unit_size;
    size_t start_offset;     /* first allocatable offset                 */
    size_t free_bytes;
    size_t contig_free;      /* largest free run (an upper bound)        */
    size_t nr_pages;         /* pages per unit                           */
    size_t populated_pages;
    size_t nr_alloc;         /* live allocations in the chunk            */
    bool first;              /* the first chunk (static+reserved+dyn)    */
    bool reserved;           /* the reserved area of the first chunk     */
    /* page_state[i] for i < nr_pages: 0 unpopulated, 1 populated and
     * empty, 2 partly used, 3 full.  Owned by the caller when non-NULL. */
    unsigned char *page_state;
};

/**
 * pcpu_chunk_info - describe chunk number @idx (0 is the first chunk).
 * @info: filled in; page_state is malloc()ed, the caller frees it.
 *
 * Returns 0; -1 with errno ENOENT when there is no chunk @idx, EINVAL if
 * @info is NULL, ENOMEM if page_state could not be allocated.
 */
PCPU__PUBLIC int pcpu_chunk_info(unsigned int idx, struct pcpu_chunk_info *info);

/**
 * pcpu_is_percpu_address - true if @addr is inside a unit of a live chunk.
 * (A cookie itself is not: it points into the chunk's guard area.)
 */
PCPU__PUBLIC bool pcpu_is_percpu_address(const void *addr);

/* Where an address lives, as pcpu_addr_info() reports it. */
struct pcpu_addr_info {
    unsigned int cpu;   /* the unit the address is in                 */
    size_t unit_offset; /* offset of the address inside that unit     */
    void *cookie;       /* the live allocation holding it, or NULL    */
    size_t size;        /* that allocation's size, or 0               */
};

/**
 * pcpu_addr_info - map a real address back to its unit and allocation.
 * @addr: any address.
 * @info: filled in on success.
 *
 * Returns 0, or -1 with errno ENOENT when @addr is in no unit of a live
 * chunk, EINVAL when @info is NULL.  size is the size the allocation holds:
 * rounded up to 4 bytes, and up to its size class from 256 bytes to 4 KiB
 * (with an alignment of 128 or 256 there, to a multiple of it: see
 * pcpu_alloc()).  Thread safety: any thread.  Not
 * async-signal-safe.
 */
PCPU__PUBLIC int pcpu_addr_info(const void *addr, struct pcpu_addr_info *info);

/**
 * pcpu_validate - check every invariant of the allocator's data.
 *
 * Meant for tests: walks every chunk, bitmap, hint, slot and counter.
 * Returns 0 when all hold, else the number of problems found, each
 * described in one line on stderr.  Thread safety: any thread (takes the
 * allocator lock).  Not async-signal-safe.  Robust mode (PCPU_F_DEBUG)
 * checks what each call touched after it returns, and all of this at
 * pcpu_exit().
 */
PCPU__PUBLIC int pcpu_validate(void);

/**
 * pcpu_fault_inject - make the @nth call into the OS layer from now fail
 * (1 = the next one); 0 turns fault injection off.  For tests.
 * Returns the number of OS-layer calls made so far.
 */
PCPU__PUBLIC long pcpu_fault_inject(long nth);

/* ------------------------------------------------------------------------
 * Static per-CPU variables
 * ------------------------------------------------------------------------ */
/*
 * PCPU_DEFINE(type, name);                 zero in every unit
 * PCPU_DEFINE(type, name) = initializer;   every unit starts with this
 * PCPU_DECLARE(type, name);                defined in another file
 * PCPU_VAR(name)                           the cookie, of type (type *)
 *
 * At file scope, in the program or any shared library (also one loaded
 * with dlopen()).  The variables live in an ELF section of their module;
 * that section is a template: before main() (or before dlopen() returns)
 * it is copied into every unit of the first chunk's static area (modules
 * known at start-up) or reserved area (modules loaded later, falling back
 * to dynamic space when full), and dlclose() gives the space back.
 * PCPU_VAR() is the variable's address plus the module's offset: one load
 * and one add.  It is valid in the module that defines the variable; to
 * use a variable from another module, pass its cookie.
 *
 * Once placed, a section never moves while the allocator lives: modules
 * loaded later (also at start-up, after the first) are appended to the
 * static area while it has room, else placed in the reserved area, so
 * their variables and everyone else's keep their addresses while other
 * threads use them.  dlclose() of a module is safe for every thread,
 * whatever it did with the module's this-CPU operations before: a
 * module's sequences leave no thread pointing at their descriptors once
 * it has left them (see "Modules" with the this-CPU operations below).
 *
 * Example:
 *     PCPU_DEFINE(long, nr_requests);
 *     ...  pcpu_this_inc(PCPU_VAR(nr_requests));
 *          long total = pcpu_sum(PCPU_VAR(nr_requests));
 */
#define PCPU__SECTION_NAME "pcpu_data"

/*
 * One per module (the program, each shared library) that has PCPU_DEFINE
 * variables; not part of the API.  The library places the module's
 * section of templates and takes it back when the module is unloaded.
 * (The module's rseq descriptors need nothing from the library at unload:
 * see PCPU_DISARM_AFTER_SEQ.)
 */
struct pcpu__module {
    char *start;                 /* the module's template section         */
    char *stop;
    intptr_t *delta;             /* set to (copy - template) when placed  */
    /* owned by the library */
    struct pcpu__module *next;
    void *cookie;                /* where the section lives now           */
    void *stale_cookie;          /* where it lived before pcpu_exit()     */
    int placed;
};

PCPU__PUBLIC void pcpu__module_register(struct pcpu__module *mod);
PCPU__PUBLIC void pcpu__module_unregister(struct pcpu__module *mod);

extern char __start_pcpu_data[] __attribute__((weak, visibility("hidden")));
extern char __stop_pcpu_data[] __attribute__((weak, visibility("hidden")));
__attribute__((weak, visibility("hidden"))) intptr_t pcpu__module_delta;
__attribute__((weak, visibility("hidden"))) struct pcpu__module pcpu__this_module = {
    __start_pcpu_data, __stop_pcpu_data, &pcpu__module_delta, 0, 0, 0, 0};

/* Every file that includes this header registers its module (registering
 * twice is harmless); modules without variables skip it.  The destructor
 * runs on dlclose() and at exit. */
__attribute__((constructor, used)) static void pcpu__module_ctor(void)
{
    if (pcpu__this_module.start != pcpu__this_module.stop)
        pcpu__module_register(&pcpu__this_module);
}
__attribute__((destructor, used)) static void pcpu__module_dtor(void)
{
    if (pcpu__this_module.start != pcpu__this_module.stop)
        pcpu__module_unregister(&pcpu__this_module);
}

#ifdef __cplusplus
} /* extern "C" */
/* The type named by a macro argument, also for array types (int[4]). */
template <class T> struct pcpu__type_identity {
    typedef T type;
};
extern "C" {
#define PCPU__TYPEOF(T_) pcpu__type_identity<T_>::type
#else
#define PCPU__TYPEOF(T_) __typeof__(T_)
#endif

#define PCPU_DEFINE(type, name) \
    __attribute__((section(PCPU__SECTION_NAME), used)) PCPU__TYPEOF(type) pcpu__var_##name
#define PCPU_DECLARE(type, name) extern PCPU__TYPEOF(type) pcpu__var_##name
#ifdef __cplusplus
#define PCPU_VAR(name) \
    (reinterpret_cast<decltype(&pcpu__var_##name)>((char *)&pcpu__var_##name + pcpu__module_delta))
#else
#define PCPU_VAR(name) \
    ((__typeof__(&pcpu__var_##name))((char *)&pcpu__var_##name + pcpu__module_delta))
#endif


/* ------------------------------------------------------------------------
 * This-CPU operations
 * ------------------------------------------------------------------------ */
/*
 * All of these act on the calling thread's current unit and are correct
 * under preemption, migration and signals: no update is lost and none is
 * applied twice.  On x86_64 the update is a restartable sequence: the
 * thread reads its CPU number (or concurrency id) from its rseq area, loads
 * that unit's offset and commits with one instruction; if the kernel
 * preempts, migrates or signals the thread before the commit, it restarts
 * the sequence.  Elsewhere, when the kernel has no rseq, when the allocator
 * has fewer units than CPUs (two CPUs share a unit), or when some thread
 * cannot use rseq, they are relaxed atomic operations on the unit of the
 * CPU the thread was last seen on; the results are the same, only slower.
 *
 * Widths: objects of 1, 2, 4 and 8 bytes, every C integer type (bool for
 * the operations that make sense on it), selected by the object's type.
 * Each operation is one sequence committed by one unlocked instruction:
 * add (add, sub, inc, dec), and, or, xadd (the *_return forms), mov
 * (write), a load then a mov (xchg), and a load and compare then a mov
 * only when equal (cmpxchg, try_cmpxchg: a failing compare writes
 * nothing).
 *
 * Memory order: relaxed (like the kernel's this_cpu ops): they order
 * nothing but themselves.  Async-signal-safe once the thread has done one
 * this-CPU operation (which may register rseq for it, with a C library
 * that does not).
 *
 * Modules: the kernel reads the descriptor of the last sequence a thread
 * armed the next time it preempts or signals that thread, so a descriptor
 * in a module that has been dlclose()d would kill the thread.  Code built
 * for a shared object (__PIC__ without __PIE__) therefore disarms after
 * every sequence (one store), so no thread is left pointing into a module
 * once it has left the module's code; an executable, which is never
 * unmapped, does not.  PCPU_DISARM_AFTER_SEQ, defined to 1 or 0 before
 * this header is included, overrides the choice (0 only for a shared
 * object that is never unloaded).
 */

/* ---- internal state of the inline paths (src/thiscpu.c) ---------------- */

/* pcpu__tc.mode */
#define PCPU__TC_OFF 0u    /* not set up yet: everything takes the slow path */
#define PCPU__TC_RSEQ 1u   /* restartable sequences (x86_64)                 */
#define PCPU__TC_ATOMIC 2u /* atomics on the current unit                   */

/* pcpu__thiscpu_slow(): "rseq is usable now, run the sequence again".  No
 * unit is at offset 0 from a cookie (cookies point into a guard area), and
 * a test against 0 needs no register for the constant. */
#define PCPU__TC_RETRY 0

/*
 * Where the sequences find the thread's rseq area.  glibc 2.35+ keeps one
 * in every thread's control block at the const offset __rseq_offset, also
 * when it did not register it (the library registers it then), so the
 * area is always at thread pointer + __rseq_offset.
 */
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 35))
extern const ptrdiff_t __rseq_offset;
#define PCPU__RSEQ_CS_TP ((char *)(uintptr_t)(__rseq_offset + 8))
#define PCPU__RSEQ_AREA_TP ((char *)(uintptr_t)__rseq_offset)
#else
#define PCPU__RSEQ_CS_TP (pcpu__tc.cs_ptr)
#define PCPU__RSEQ_AREA_TP (pcpu__tc.cs_ptr - 8)
#endif

/*
 * Everything the inline code reads, in one exported variable.  The thread's
 * index (rseq cpu_id or mm_cid) is the 32-bit word at thread pointer +
 * idx_off; the rseq area itself is at thread pointer + rseq_off, the same
 * offset in every thread (glibc's __rseq_offset, whoever registered that
 * area, or the library's own initial-exec TLS area with a C library that
 * has none).  An index i < limit selects offs[i], the
 * cookie-to-copy offset of its unit, so finding the copy is one load.
 * Limits so that each path can be switched off on its own.  The rseq
 * sequences have a table of their own, seq_offs: the same offsets while
 * rseq is in use, 0 (never a unit's offset) for every index that must not
 * use rseq now.  The sequence reads its entry inside the critical section,
 * which is what lets a switch to atomics take effect safely (rseq.c).
 */
struct pcpu__thiscpu_state {
    uint32_t mode;          /* PCPU__TC_*                                  */
    uint32_t pad0_;
    uint32_t atomic_limit;  /* indexes the atomic path may use inline      */
    uint32_t ptr_limit;     /* indexes pcpu_this_ptr() may use inline      */
    intptr_t rseq_off;      /* struct rseq, from the thread pointer        */
    intptr_t idx_off;       /* the index word, from the thread pointer     */
    /* Thread-pointer offset of rseq_cs for the sequences where glibc does
     * not say where its area is (glibc's own __rseq_offset is const, so
     * the compiler keeps it in a register across a loop of updates; this
     * one it has to reload).  Always valid: set by a constructor. */
    char *cs_ptr;
    uint32_t cid;           /* the index is mm_cid, not cpu_id             */
    uint32_t pad32_;
    /* seq_offs[-2] and [-1], always 0: the sequences sign-extend the
     * index word, whose values out of range are -1 (rseq not registered)
     * and -2 (registration failed); see PCPU__RSEQ_HEAD.  They also end
     * the hot cache line, so the tables start on the next. */
    intptr_t seq_neg_[2];
    /* First, so that the sequences reach it with an 8-bit displacement. */
    intptr_t seq_offs[PCPU_MAX_CPUS];
    intptr_t offs[PCPU_MAX_CPUS];
};
PCPU__PUBLIC extern struct pcpu__thiscpu_state pcpu__tc;

#ifdef PCPU__LIBRARY_BUILD
PCPU__PUBLIC extern ptrdiff_t pcpu__index_disp;
#else
PCPU__PUBLIC extern const ptrdiff_t pcpu__index_disp;
#endif
/* pcpu__index_disp: where the sequences read the thread's index in the
 * rseq area: cpu_id (4) or mm_cid (24).  const for the
 * same reason, so that a loop of operations costs no test of the index
 * mode: the library fixes it before any program code runs (from
 * PERCPU_INDEX) and changes it only while no sequence can have run; a
 * configuration that would need it changed later uses atomics instead. */

/*
 * Slow paths.  They take the operation's cookie and hand back the one to
 * use from then on: when a this-CPU operation or pcpu_sum() is the first
 * use after pcpu_exit(), the cookie was computed from a static variable's
 * old placement (PCPU_VAR reads the module's offset before the call
 * initialises the allocator again), and the slow path moves it to the new
 * placement, so that no write lands where the old first chunk was.
 *
 * pcpu__thiscpu_slow(): initialise if needed, register rseq for this
 * thread if the library does it; off is PCPU__TC_RETRY if the rseq
 * sequence should run (again), else the offset of the unit for an atomic
 * operation.  pcpu__thiscpu_ptr_slow(): the current unit's copy.
 * pcpu__sum_slow(): initialise (marking the allocator used) for pcpu_sum().
 */
struct pcpu__slow {
    intptr_t off;
    const void *cookie;
};
PCPU__PUBLIC struct pcpu__slow pcpu__thiscpu_slow(const void *cookie);
PCPU__PUBLIC void *pcpu__thiscpu_ptr_slow(const void *cookie);
PCPU__PUBLIC const void *pcpu__sum_slow(const void *cookie);

/* The 32-bit word at thread pointer + off; ~0 where it cannot be read. */
static inline uint32_t pcpu__tp_u32(intptr_t off)
{
#if defined(__x86_64__) && defined(__LP64__)
    uint32_t v;
    /* volatile: the kernel rewrites the word whenever the thread moves */
    __asm__ __volatile__("movl %%fs:(%1), %0" : "=r"(v) : "r"(off));
    return v;
#elif defined(__aarch64__)
    return *(volatile uint32_t *)((char *)__builtin_thread_pointer() + off);
#else
    (void)off;
    return ~(uint32_t)0;
#endif
}

static inline uint32_t pcpu__tc_mode(void)
{
    return __atomic_load_n(&pcpu__tc.mode, __ATOMIC_ACQUIRE);
}

/* Where an atomic operation on the current unit goes, or off ==
 * PCPU__TC_RETRY when the rseq sequence should run instead. */
static inline struct pcpu__slow pcpu__tc_atomic_at(const void *cookie)
{
    uint32_t lim = __atomic_load_n(&pcpu__tc.atomic_limit, __ATOMIC_ACQUIRE);
    uint32_t idx = pcpu__tp_u32(pcpu__tc.idx_off);
    if (PCPU__LIKELY(idx < lim)) {
        struct pcpu__slow s;
        s.off = pcpu__tc.offs[idx];
        s.cookie = cookie;
        return s;
    }
    return pcpu__thiscpu_slow(cookie);
}

/**
 * pcpu_this_ptr - address of the calling thread's current unit's copy.
 * @cookie: a cookie (from pcpu_alloc(), PCPU_VAR() or arithmetic on those).
 *
 * One load of the thread's rseq index and one table load when rseq is
 * registered; otherwise a call that asks the OS for the CPU (and, the first
 * time in a thread, may register rseq or initialise the allocator).  The
 * thread may migrate as soon as this returns, so the copy may belong to
 * another CPU by the time it is used: use the pcpu_this_*() operations for
 * updates, and this for statistics or data only this thread touches.
 * Thread safety: any thread.
 */
static PCPU__INLINE void *pcpu_this_ptr(const void *cookie)
{
    uint32_t lim = __atomic_load_n(&pcpu__tc.ptr_limit, __ATOMIC_ACQUIRE);
    uint32_t idx = pcpu__tp_u32(pcpu__tc.idx_off);
    if (PCPU__LIKELY(idx < lim))
        return (char *)(uintptr_t)cookie + pcpu__tc.offs[idx];
    return pcpu__thiscpu_ptr_slow(cookie);
}

#if defined(__x86_64__) && defined(__LP64__) && defined(__GNUC__)
#define PCPU__RSEQ_ASM 1

/*
 * Signature in front of every abort handler: the kernel only jumps to an
 * abort address preceded by the value the thread registered with.  glibc
 * uses this one on x86, so it is the only one that works with its area.
 */
#define PCPU__RSEQ_SIG 0x53053053
#define PCPU__STR2(x) #x
#define PCPU__STR(x) PCPU__STR2(x)

/*
 * The start of every sequence.  Label 3: the descriptor (version 0, no
 * flags, the section [1, 2), abort at 4), and its address in
 * __rseq_cs_ptr_array for tools.  Label 0 arms it by storing its address in
 * rseq_cs (the kernel clears rseq_cs when it aborts, so the abort handler
 * comes back here, not to 1).  Label 1 starts the critical section: read
 * the index word sign-extended, load the unit offset into TMP from
 * pcpu__tc.seq_offs and leave through FAIL if it is 0 (both inside the
 * section, so a migration or a switch to atomics restarts it).  The
 * commit instruction that follows must end at label 2.
 *
 * No bound check: the index word is either a CPU id or mm_cid, below the
 * kernel's CPU count (at most 8192 on x86_64, PCPU_MAX_CPUS; the library
 * does not use rseq on a kernel built for more, see rseq.c), or one of the
 * values out of range, -1 (not registered: glibc's "uninitialised", the
 * library's own area) and -2 (registration failed), which land on
 * seq_neg_, always 0.
 *
 * So the sequence has the three loads any rseq increment needs (the
 * index, the offset, the object) and one test.  An earlier design
 * compared the index with a limit of the thread's own (a TLS word, which
 * sent a thread's first sequence through the slow path so that the
 * library knew every thread that could hold a module's descriptor): that
 * fourth load made pcpu_this_inc() 1.1-1.4x slower than the least
 * sequence (percpu-bench's inc.rseq_check against inc.rseq_min), and a
 * bound check as well as the test made list push/pop pairs about 1.35x
 * as slow as without it (AMD Zen 3: one branch more per sequence, in code
 * dense with branches).
 * Disarming after the commit in shared objects (PCPU__RSEQ_DISARM, one
 * store) keeps dlclose() safe without the thread list.
 *
 * A 0 in seq_offs means: the allocator is not set up, rseq is not in use,
 * or the index is beyond the units (mm_cid of a thread past them); the
 * slow path tells which.
 */
#define PCPU__RSEQ_HEAD(TMPQ, FAIL)                                       \
    PCPU__RSEQ_HEAD_DISP(TMPQ, FAIL, "(%[rs], %[ixd])")
/* The same with the index word at IX (a memory operand, %fs implied). */
#define PCPU__RSEQ_HEAD_DISP(TMPQ, FAIL, IX)                              \
    ".pushsection __rseq_cs, \"aw\"\n\t"                                  \
    ".balign 32\n"                                                        \
    "3:\n\t"                                                              \
    ".long 0, 0\n\t"                                                      \
    ".quad 1f, 2f - 1f, 4f\n\t"                                           \
    ".popsection\n\t"                                                     \
    ".pushsection __rseq_cs_ptr_array, \"aw\"\n\t"                        \
    ".quad 3b\n\t"                                                        \
    ".popsection\n"                                                       \
    "0:\n\t"                                                              \
    "leaq 3b(%%rip), " TMPQ "\n\t"                                        \
    "movq " TMPQ ", %%fs:8(%[rs])\n"                                      \
    "1:\n\t"                                                              \
    "movslq %%fs:" IX ", " TMPQ "\n\t"                                    \
    "movq %c[tab](%[tc], " TMPQ ", 8), " TMPQ "\n\t"                      \
    "testq " TMPQ ", " TMPQ "\n\t"                                        \
    "jz " FAIL "\n\t"

/*
 * After the commit (label 2): in code built for a shared object, clear
 * rseq_cs, so that no thread keeps a descriptor of a module that may be
 * dlclose()d (see "Modules" above).  Every other way out of a sequence
 * clears it too: the kernel does when it aborts one, the slow paths
 * always do (pcpu__tc_fallback()), and the C code at every other early
 * exit calls PCPU__RSEQ_LEFT().  A thread preempted between the
 * commit and this store is still running the module's code, which nobody
 * may unload under it.
 */
#ifndef PCPU_DISARM_AFTER_SEQ
#if defined(__PIC__) && !defined(__PIE__)
#define PCPU_DISARM_AFTER_SEQ 1
#else
#define PCPU_DISARM_AFTER_SEQ 0
#endif
#endif
#if PCPU_DISARM_AFTER_SEQ
#define PCPU__RSEQ_DISARM "movq $0, %%fs:8(%[rs])\n\t"
#define PCPU__RSEQ_LEFT() \
    __asm__ __volatile__("movq $0, %%fs:(%0)" : : "r"(PCPU__RSEQ_CS_TP))
#else
#define PCPU__RSEQ_DISARM ""
#define PCPU__RSEQ_LEFT() ((void)0)
#endif

/* The abort handler lives out of line, after the signature; TAIL starts
 * at label 2 with the disarm. */
#define PCPU__RSEQ_TAIL                                                   \
    PCPU__RSEQ_DISARM                                                     \
    ".pushsection __rseq_failure, \"ax\"\n\t"                             \
    ".long " PCPU__STR(PCPU__RSEQ_SIG) "\n"                               \
    "4:\n\t"                                                              \
    "jmp 0b\n\t"                                                          \
    ".popsection\n"

#define PCPU__UNPAREN(...) __VA_ARGS__
/* One sequence: head, the commit instruction INSN (ending at label 2),
 * tail; OUTS and INS are parenthesised operand lists.  Leaves through the
 * caller's label slow. */
#define PCPU__SEQ(INSN, OUTS, INS)                                        \
    __asm__ goto(PCPU__RSEQ_HEAD("%[tmp]", "%l[slow]")                     \
                 INSN "\n2:\n\t" PCPU__RSEQ_TAIL                          \
                 : PCPU__UNPAREN OUTS                                      \
                 : PCPU__UNPAREN INS                                       \
                 : "cc"                                                    \
                 : slow)

#define PCPU__RSEQ_INPUTS(cookie_)                                        \
    [rs] "r"(PCPU__RSEQ_AREA_TP),                                         \
    [ixd] "r"(pcpu__index_disp),                                           \
    [tc] "r"(&pcpu__tc),                                                  \
    [tab] "i"(offsetof(struct pcpu__thiscpu_state, seq_offs)),             \
    [ck] "r"(cookie_), [tcm] "m"(pcpu__tc)

/*
 * What a sequence writes, for the compiler: some unit's copy of the
 * object, which lies somewhere above the cookie (units follow the guard
 * area the cookie points into).  The operand is typed with the object's
 * width (a union of the integer types of that width, so it aliases every
 * object the operation can be applied to, signed or not) rather than char:
 * that keeps the library's own pointer-typed state out of its reach, so
 * the compiler does not reload it after every update.  (Only the 1-byte
 * operations cannot have that: every 1-byte type is a character type.)
 * Like the kernel's this_cpu ops, the sequences are not compiler barriers
 * for other memory.
 */
union pcpu__units8 {
    unsigned char uc[(size_t)1 << 44]; /* char aliases everything anyway */
};
union pcpu__units16 {
    unsigned short us[(size_t)1 << 43];
};
union pcpu__units32 {
    unsigned int u[(size_t)1 << 42];
};
union pcpu__units64 {
    unsigned long ul[(size_t)1 << 41];
    unsigned long long ull[(size_t)1 << 41];
};
#define PCPU__RSEQ_MEM(W, cookie_)                                        \
    [mem] "+m"(*(union pcpu__units##W *)(uintptr_t)(cookie_))
#else
#define PCPU__RSEQ_ASM 0
#endif

/*
 * The width-specific operations; W is 8, 16, 32 or 64, SFX the instruction suffix,
 * VC the constraint for an immediate operand.  Each loops only when the
 * mode changes under it (first use, or a switch to atomics).
 */
#if PCPU__RSEQ_ASM
/* The memory operand names the whole area above the cookie (see
 * PCPU__RSEQ_MEM); compilers that know the object's real size would warn
 * about that on every use, so the warning is off for these functions. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Warray-bounds"
/*
 * After a sequence left through its slow exit (index out of range: rseq
 * not set up yet, this thread not registered yet, or the process switched
 * to atomics): off is PCPU__TC_RETRY to run the sequence again, or the
 * offset of the current unit for an atomic operation.
 */
static inline struct pcpu__slow pcpu__tc_fallback(const void *cookie)
{
    if (pcpu__tc_mode() == PCPU__TC_ATOMIC) {
        /* The sequence armed rseq_cs before finding its entry closed:
         * disarm it (wherever the sequence lives: this thread may never
         * run a sequence to its commit again, and an executable's own
         * sequences do not disarm). */
        __asm__ __volatile__("movq $0, %%fs:(%0)" : : "r"(PCPU__RSEQ_CS_TP) : "memory");
        return pcpu__tc_atomic_at(cookie);
    }
    return pcpu__thiscpu_slow(cookie);
}

/*
 * The frame of every operation: SEQ (declarations, then the sequence,
 * which leaves through the label slow) and RESULT (its return) run first;
 * the fast path is the sequence alone, with no mode test before it, since
 * the table entry it checks inside is 0 whenever rseq must not be used.
 * ATOMIC is the same operation as an atomic on PCPU__AT(W), the current
 * unit's copy, for when rseq is not in use.
 */
#define PCPU__AT(W) ((uint##W##_t *)((char *)(uintptr_t)c + s_.off))
#define PCPU__OP_FRAME(SEQ, RESULT, ATOMIC)                                     \
    struct pcpu__slow s_;                                                       \
    for (;;) {                                                                  \
        uintptr_t tmp;                                                          \
        SEQ;                                                                    \
        RESULT;                                                                 \
    slow: PCPU__COLD_LABEL                                                      \
        s_ = pcpu__tc_fallback(c);                                              \
        c = s_.cookie;                                                          \
        if (s_.off != PCPU__TC_RETRY)                                           \
            break;                                                              \
    }                                                                           \
    ATOMIC

#define PCPU__THIS_RSEQ_OPS(W, SFX, VC)                                         \
static PCPU__INLINE void pcpu__this_add##W(const void *c, uint##W##_t v)              \
{                                                                               \
    PCPU__OP_FRAME(                                                             \
        PCPU__SEQ("add" SFX " %[v], (%[ck], %[tmp])",                      \
                      ([tmp] "=&r"(tmp), PCPU__RSEQ_MEM(W, c)),                 \
                      (PCPU__RSEQ_INPUTS(c), [v] VC(v))),                       \
        return,                                                                 \
        __atomic_fetch_add(PCPU__AT(W), v, __ATOMIC_RELAXED);)                  \
}                                                                               \
static PCPU__INLINE void pcpu__this_write##W(const void *c, uint##W##_t v)            \
{                                                                               \
    PCPU__OP_FRAME(                                                             \
        PCPU__SEQ("mov" SFX " %[v], (%[ck], %[tmp])",                      \
                      ([tmp] "=&r"(tmp), PCPU__RSEQ_MEM(W, c)),                 \
                      (PCPU__RSEQ_INPUTS(c), [v] VC(v))),                       \
        return,                                                                 \
        __atomic_store_n(PCPU__AT(W), v, __ATOMIC_RELAXED);)                    \
}                                                                               \
static PCPU__INLINE uint##W##_t pcpu__this_add_return##W(const void *c, uint##W##_t v) \
{                                                                               \
    /* xadd without lock: one instruction, so a commit on this CPU */           \
    PCPU__OP_FRAME(                                                             \
        uint##W##_t old = v;                                                    \
        PCPU__SEQ("xadd" SFX " %[old], (%[ck], %[tmp])",                   \
                      ([old] "+r"(old), [tmp] "=&r"(tmp), PCPU__RSEQ_MEM(W, c)), \
                      (PCPU__RSEQ_INPUTS(c))),                                  \
        return (uint##W##_t)(old + v),                                          \
        return __atomic_add_fetch(PCPU__AT(W), v, __ATOMIC_RELAXED);)           \
}                                                                               \
static PCPU__INLINE uint##W##_t pcpu__this_cmpxchg##W(const void *c, uint##W##_t old, \
                                                uint##W##_t nv)                 \
{                                                                               \
    /* Load, compare, and commit with a plain store only when equal: an        \
     * unlocked cmpxchg would write the old value back on failure and lose    \
     * another CPU's atomic update of this unit made in between. */           \
    PCPU__OP_FRAME(                                                             \
        uint##W##_t seen;                                                       \
        PCPU__SEQ("mov" SFX " (%[ck], %[tmp]), %[seen]\n\t"                \
                      "cmp" SFX " %[seen], %[old]\n\t"                          \
                      "jne 2f\n\t"                                              \
                      "mov" SFX " %[nv], (%[ck], %[tmp])",                     \
                      ([seen] "=&r"(seen), [tmp] "=&r"(tmp), PCPU__RSEQ_MEM(W, c)), \
                      (PCPU__RSEQ_INPUTS(c), [old] "r"(old), [nv] "r"(nv))),    \
        return seen,                                                            \
        uint##W##_t seen = old;                                                 \
        __atomic_compare_exchange_n(PCPU__AT(W), &seen, nv, 0, __ATOMIC_RELAXED, \
                                    __ATOMIC_RELAXED);                          \
        return seen;)                                                           \
}                                                                               \
static PCPU__INLINE uint##W##_t pcpu__this_xchg##W(const void *c, uint##W##_t nv)     \
{                                                                               \
    /* Load, then commit the new value with a plain store (xchg with a         \
     * memory operand is always locked). */                                     \
    PCPU__OP_FRAME(                                                             \
        uint##W##_t old;                                                        \
        PCPU__SEQ("mov" SFX " (%[ck], %[tmp]), %[old]\n\t"                 \
                      "mov" SFX " %[nv], (%[ck], %[tmp])",                     \
                      ([old] "=&r"(old), [tmp] "=&r"(tmp), PCPU__RSEQ_MEM(W, c)), \
                      (PCPU__RSEQ_INPUTS(c), [nv] VC(nv))),                     \
        return old,                                                             \
        return __atomic_exchange_n(PCPU__AT(W), nv, __ATOMIC_RELAXED);)         \
}                                                                               \
static PCPU__INLINE void pcpu__this_and##W(const void *c, uint##W##_t v)              \
{                                                                               \
    PCPU__OP_FRAME(                                                             \
        PCPU__SEQ("and" SFX " %[v], (%[ck], %[tmp])",                      \
                      ([tmp] "=&r"(tmp), PCPU__RSEQ_MEM(W, c)),                 \
                      (PCPU__RSEQ_INPUTS(c), [v] VC(v))),                       \
        return,                                                                 \
        __atomic_fetch_and(PCPU__AT(W), v, __ATOMIC_RELAXED);)                  \
}                                                                               \
static PCPU__INLINE void pcpu__this_or##W(const void *c, uint##W##_t v)               \
{                                                                               \
    PCPU__OP_FRAME(                                                             \
        PCPU__SEQ("or" SFX " %[v], (%[ck], %[tmp])",                       \
                      ([tmp] "=&r"(tmp), PCPU__RSEQ_MEM(W, c)),                 \
                      (PCPU__RSEQ_INPUTS(c), [v] VC(v))),                       \
        return,                                                                 \
        __atomic_fetch_or(PCPU__AT(W), v, __ATOMIC_RELAXED);)                   \
}
PCPU__THIS_RSEQ_OPS(8, "b", "ir")
PCPU__THIS_RSEQ_OPS(16, "w", "ir")
PCPU__THIS_RSEQ_OPS(32, "l", "ir")
PCPU__THIS_RSEQ_OPS(64, "q", "er")
#pragma GCC diagnostic pop
#else /* no rseq sequences: atomics on the current unit */
#define PCPU__AT(W) ((uint##W##_t *)((char *)(uintptr_t)c + s_.off))
/* ATOMIC as above; the slow path never asks for a sequence here, but a
 * retry is harmless. */
#define PCPU__OP_FRAME(SEQ, RESULT, ATOMIC)                                     \
    struct pcpu__slow s_;                                                       \
    while (PCPU__UNLIKELY((s_ = pcpu__tc_atomic_at(c)).off == PCPU__TC_RETRY))  \
        c = s_.cookie;                                                          \
    c = s_.cookie;                                                              \
    ATOMIC
#define PCPU__THIS_ATOMIC_OPS(W)                                                \
static PCPU__INLINE void pcpu__this_add##W(const void *c, uint##W##_t v)              \
{ PCPU__OP_FRAME(, , __atomic_fetch_add(PCPU__AT(W), v, __ATOMIC_RELAXED);) }    \
static PCPU__INLINE void pcpu__this_write##W(const void *c, uint##W##_t v)            \
{ PCPU__OP_FRAME(, , __atomic_store_n(PCPU__AT(W), v, __ATOMIC_RELAXED);) }      \
static PCPU__INLINE uint##W##_t pcpu__this_add_return##W(const void *c, uint##W##_t v) \
{ PCPU__OP_FRAME(, , return __atomic_add_fetch(PCPU__AT(W), v, __ATOMIC_RELAXED);) } \
static PCPU__INLINE uint##W##_t pcpu__this_cmpxchg##W(const void *c, uint##W##_t old, \
                                                uint##W##_t nv)                 \
{                                                                               \
    PCPU__OP_FRAME(, ,                                                          \
        __atomic_compare_exchange_n(PCPU__AT(W), &old, nv, 0, __ATOMIC_RELAXED, \
                                    __ATOMIC_RELAXED);                          \
        return old;)                                                            \
}                                                                               \
static PCPU__INLINE uint##W##_t pcpu__this_xchg##W(const void *c, uint##W##_t v)      \
{ PCPU__OP_FRAME(, , return __atomic_exchange_n(PCPU__AT(W), v, __ATOMIC_RELAXED);) } \
static PCPU__INLINE void pcpu__this_and##W(const void *c, uint##W##_t v)              \
{ PCPU__OP_FRAME(, , __atomic_fetch_and(PCPU__AT(W), v, __ATOMIC_RELAXED);) }    \
static PCPU__INLINE void pcpu__this_or##W(const void *c, uint##W##_t v)               \
{ PCPU__OP_FRAME(, , __atomic_fetch_or(PCPU__AT(W), v, __ATOMIC_RELAXED);) }
PCPU__THIS_ATOMIC_OPS(8)
PCPU__THIS_ATOMIC_OPS(16)
PCPU__THIS_ATOMIC_OPS(32)
PCPU__THIS_ATOMIC_OPS(64)
#endif

/*
 * Reads and sums need no sequence: a relaxed load of whole words.  A sum
 * before the allocator is in use goes through pcpu__sum_slow() first (see
 * there): it is what marks the static layout as read.
 */
#define PCPU__THIS_READ_OPS(W)                                                  \
static PCPU__INLINE uint##W##_t pcpu__this_read##W(const void *c)                     \
{                                                                               \
    return __atomic_load_n((uint##W##_t *)pcpu_this_ptr(c), __ATOMIC_RELAXED);  \
}                                                                               \
static PCPU__INLINE uint##W##_t pcpu__sum##W(const void *c)                           \
{                                                                               \
    uint##W##_t sum = 0;                                                        \
    if (PCPU__UNLIKELY(pcpu__tc_mode() == PCPU__TC_OFF))                        \
        c = pcpu__sum_slow(c);                                                  \
    unsigned int n = __atomic_load_n(&pcpu__nr_units, __ATOMIC_ACQUIRE);        \
    for (unsigned int i = 0; i < n; i++)                                        \
        sum = (uint##W##_t)(sum +                                               \
              __atomic_load_n((uint##W##_t *)((char *)(uintptr_t)c +            \
                                              pcpu__cpu_offsets[i]),            \
                              __ATOMIC_RELAXED));                               \
    return sum;                                                                 \
}
PCPU__THIS_READ_OPS(8)
PCPU__THIS_READ_OPS(16)
PCPU__THIS_READ_OPS(32)
PCPU__THIS_READ_OPS(64)

/*
 * One family of typed wrappers per C integer type.  Arithmetic is done on
 * the unsigned type of the same width, so signed objects wrap around like
 * the kernel's this_cpu ops instead of overflowing; values are converted to
 * the object's type first, so a negative int added to a long or unsigned
 * long is sign-extended exactly as with "x += v", and an int added to a
 * char is truncated to the char's width exactly as with "x += v".
 *
 * BITS: the operations that make sense on bool too (read, write, xchg,
 * the compares, and, or); ARITH: the others (add and sub in their forms,
 * pcpu_sum()).
 */
#define PCPU__THIS_TYPED_BITS(name, T, W)                                       \
static PCPU__INLINE T pcpu__this_read_##name(const void *c)                           \
{ return (T)pcpu__this_read##W(c); }                                            \
static PCPU__INLINE void pcpu__this_write_##name(const void *c, T v)                  \
{ pcpu__this_write##W(c, (uint##W##_t)v); }                                     \
static PCPU__INLINE T pcpu__this_xchg_##name(const void *c, T v)                      \
{ return (T)pcpu__this_xchg##W(c, (uint##W##_t)v); }                            \
static PCPU__INLINE void pcpu__this_and_##name(const void *c, T v)                    \
{ pcpu__this_and##W(c, (uint##W##_t)v); }                                       \
static PCPU__INLINE void pcpu__this_or_##name(const void *c, T v)                     \
{ pcpu__this_or##W(c, (uint##W##_t)v); }                                        \
static PCPU__INLINE T pcpu__this_cmpxchg_##name(const void *c, T o, T n)              \
{ return (T)pcpu__this_cmpxchg##W(c, (uint##W##_t)o, (uint##W##_t)n); }         \
static PCPU__INLINE bool pcpu__this_try_cmpxchg_##name(const void *c, T *o, T n)      \
{                                                                               \
    uint##W##_t want = (uint##W##_t)*o;                                         \
    uint##W##_t seen = pcpu__this_cmpxchg##W(c, want, (uint##W##_t)n);          \
    if (PCPU__LIKELY(seen == want))                                             \
        return true;                                                            \
    *o = (T)seen;                                                               \
    return false;                                                               \
}
#define PCPU__THIS_TYPED_ARITH(name, T, W)                                      \
static PCPU__INLINE void pcpu__this_add_##name(const void *c, T v)                    \
{ pcpu__this_add##W(c, (uint##W##_t)v); }                                       \
static PCPU__INLINE void pcpu__this_sub_##name(const void *c, T v)                    \
{ pcpu__this_add##W(c, (uint##W##_t)((uint##W##_t)0 - (uint##W##_t)v)); }       \
static PCPU__INLINE void pcpu__this_inc_##name(const void *c)                         \
{ pcpu__this_add##W(c, 1); }                                                    \
static PCPU__INLINE void pcpu__this_dec_##name(const void *c)                         \
{ pcpu__this_add##W(c, (uint##W##_t)~(uint##W##_t)0); }                         \
static PCPU__INLINE T pcpu__this_add_return_##name(const void *c, T v)                \
{ return (T)pcpu__this_add_return##W(c, (uint##W##_t)v); }                      \
static PCPU__INLINE T pcpu__this_sub_return_##name(const void *c, T v)                \
{                                                                               \
    return (T)pcpu__this_add_return##W(                                         \
        c, (uint##W##_t)((uint##W##_t)0 - (uint##W##_t)v));                     \
}                                                                               \
static PCPU__INLINE T pcpu__this_inc_return_##name(const void *c)                     \
{ return (T)pcpu__this_add_return##W(c, 1); }                                   \
static PCPU__INLINE T pcpu__this_dec_return_##name(const void *c)                     \
{ return (T)pcpu__this_add_return##W(c, (uint##W##_t)~(uint##W##_t)0); }        \
static PCPU__INLINE T pcpu__sum_##name(const void *c)                                 \
{ return (T)pcpu__sum##W(c); }
#define PCPU__THIS_TYPED(name, T, W)                                            \
    PCPU__THIS_TYPED_BITS(name, T, W)                                           \
    PCPU__THIS_TYPED_ARITH(name, T, W)

#if __SIZEOF_LONG__ == 8
#define PCPU__LONG_BITS 64
#else
#define PCPU__LONG_BITS 32
#endif
#define PCPU__THIS_TYPED_(name, T, W) PCPU__THIS_TYPED(name, T, W)
PCPU__THIS_TYPED_BITS(bool, bool, 8)
PCPU__THIS_TYPED(char, char, 8)
PCPU__THIS_TYPED(schar, signed char, 8)
PCPU__THIS_TYPED(uchar, unsigned char, 8)
PCPU__THIS_TYPED(short, short, 16)
PCPU__THIS_TYPED(ushort, unsigned short, 16)
PCPU__THIS_TYPED(int, int, 32)
PCPU__THIS_TYPED(uint, unsigned int, 32)
PCPU__THIS_TYPED_(long, long, PCPU__LONG_BITS)
PCPU__THIS_TYPED_(ulong, unsigned long, PCPU__LONG_BITS)
PCPU__THIS_TYPED(llong, long long, 64)
PCPU__THIS_TYPED(ullong, unsigned long long, 64)

#ifndef __cplusplus
/*
 * Dispatch on the type of *cookie.  Any other type (float, pointers,
 * structs, void; bool for the arithmetic) has no association and fails to
 * compile.  The intN_t/uintN_t types are among these (int8_t is signed
 * char, uint16_t unsigned short, and so on).
 */
#define PCPU__GENERIC_INTS(op)                                                  \
        char: pcpu__##op##_char,                                                \
        signed char: pcpu__##op##_schar,                                        \
        unsigned char: pcpu__##op##_uchar,                                      \
        short: pcpu__##op##_short,                                              \
        unsigned short: pcpu__##op##_ushort,                                    \
        int: pcpu__##op##_int,                                                  \
        unsigned int: pcpu__##op##_uint,                                        \
        long: pcpu__##op##_long,                                                \
        unsigned long: pcpu__##op##_ulong,                                      \
        long long: pcpu__##op##_llong,                                          \
        unsigned long long: pcpu__##op##_ullong
#define PCPU__THIS_GENERIC(cookie, op) _Generic(*(cookie), PCPU__GENERIC_INTS(op))
/* The same, bool included. */
#define PCPU__THIS_GENERIC_B(cookie, op)                                        \
    _Generic(*(cookie), bool: pcpu__##op##_bool, PCPU__GENERIC_INTS(op))

/*
 * Every operation below: thread-safe (any thread, also concurrently with
 * others on the same cookie; no update is lost) and async-signal-safe once
 * the calling thread has made one this-CPU operation.  With rseq each is
 * one restartable sequence committed by one unlocked instruction; without,
 * one relaxed atomic operation on the current unit's copy.
 */

/**
 * pcpu_this_add - add @v to the calling thread's current unit's copy.
 * @cookie: cookie of an integer object of 1, 2, 4 or 8 bytes (char,
 *          signed char, unsigned char, short, unsigned short, int,
 *          unsigned, long, unsigned long, long long, unsigned long long and
 *          the intN_t/uintN_t of those sizes); any other type, bool
 *          included, fails to compile.
 * @v:      converted to the object's type first; the sum wraps around.
 *
 * With rseq: a restartable sequence committed by one add instruction (no
 * lock prefix).  Without: an atomic add on the current unit.  The same
 * holds for every pcpu_this_*() below.  Thread safety: any thread, also
 * concurrently with others on the same cookie; no update is lost.
 * Async-signal-safe (see above).
 */
#define pcpu_this_add(cookie, v) PCPU__THIS_GENERIC(cookie, this_add)((cookie), (v))
/** pcpu_this_sub - subtract @v from the current unit's copy (wraps).
 * Async-signal-safe. */
#define pcpu_this_sub(cookie, v) PCPU__THIS_GENERIC(cookie, this_sub)((cookie), (v))
/** pcpu_this_inc - add 1 to the current unit's copy.  Async-signal-safe. */
#define pcpu_this_inc(cookie) PCPU__THIS_GENERIC(cookie, this_inc)((cookie))
/** pcpu_this_dec - subtract 1 from the current unit's copy.
 * Async-signal-safe. */
#define pcpu_this_dec(cookie) PCPU__THIS_GENERIC(cookie, this_dec)((cookie))
/**
 * pcpu_this_read - the current unit's copy, as the object's type.
 * A relaxed load; the thread may have moved on by the time it returns.
 * Also on bool objects.  Async-signal-safe.
 */
#define pcpu_this_read(cookie) PCPU__THIS_GENERIC_B(cookie, this_read)((cookie))
/**
 * pcpu_this_write - store @v in the current unit's copy.
 * With rseq the store lands on the unit of the CPU that executes it, so it
 * is ordered with the other threads' this-CPU updates of that unit.  Also
 * on bool objects.  Async-signal-safe.
 */
#define pcpu_this_write(cookie, v) PCPU__THIS_GENERIC_B(cookie, this_write)((cookie), (v))
/**
 * pcpu_this_xchg - store @v in the current unit's copy and return the value
 * it replaced, as the object's type.
 * With rseq: a load and a plain store that commits (an xchg instruction
 * with a memory operand would be locked).  Also on bool objects.
 * Async-signal-safe.
 */
#define pcpu_this_xchg(cookie, v) PCPU__THIS_GENERIC_B(cookie, this_xchg)((cookie), (v))
/**
 * pcpu_this_and - the current unit's copy &= @v (no result; read it if
 * needed).  @v is converted to the object's type first.  Also on bool
 * objects.  Async-signal-safe.
 */
#define pcpu_this_and(cookie, v) PCPU__THIS_GENERIC_B(cookie, this_and)((cookie), (v))
/** pcpu_this_or - the current unit's copy |= @v.  As pcpu_this_and(). */
#define pcpu_this_or(cookie, v) PCPU__THIS_GENERIC_B(cookie, this_or)((cookie), (v))
/**
 * pcpu_this_cmpxchg - if the current unit's copy equals @old, store @new.
 * Returns the value seen (equal to @old exactly when @new was stored), as
 * the object's type.  Loop on it for any read-modify-write update.
 * A compare that fails writes nothing (with rseq: load, compare, and a
 * plain store only when equal), so another thread may update the same
 * unit through pcpu_ptr() with atomics without ever losing an update --
 * a lock taken with this and released from another CPU works.  (Updates
 * that always write -- add, xchg, and, or -- race with such remote
 * atomics, as in the kernel: only this thread's CPU is excluded.)
 * Also on bool objects.  Async-signal-safe.
 */
#define pcpu_this_cmpxchg(cookie, old, new)                                     \
    PCPU__THIS_GENERIC_B(cookie, this_cmpxchg)((cookie), (old), (new))
/**
 * pcpu_this_try_cmpxchg - if the current unit's copy equals *@oldp, store
 * @new and return true; else store the value seen in *@oldp and return
 * false (the kernel's this_cpu_try_cmpxchg).
 * @oldp: pointer to a variable of the object's type (not a cookie).
 *
 * One sequence, as pcpu_this_cmpxchg(); a failing compare writes nothing
 * to the object.  The usual loop:
 *      long old = pcpu_this_read(c);
 *      while (!pcpu_this_try_cmpxchg(c, &old, old * 2))
 *          ;
 * Also on bool objects.  Async-signal-safe.
 */
#define pcpu_this_try_cmpxchg(cookie, oldp, new)                                \
    PCPU__THIS_GENERIC_B(cookie, this_try_cmpxchg)((cookie), (oldp), (new))
/**
 * pcpu_this_add_return - add @v to the current unit's copy and return the
 * new value of that copy (not the sum over units), as the object's type.
 * Async-signal-safe.
 */
#define pcpu_this_add_return(cookie, v)                                         \
    PCPU__THIS_GENERIC(cookie, this_add_return)((cookie), (v))
/** pcpu_this_sub_return - subtract @v, return the copy's new value.
 * Async-signal-safe. */
#define pcpu_this_sub_return(cookie, v)                                         \
    PCPU__THIS_GENERIC(cookie, this_sub_return)((cookie), (v))
/** pcpu_this_inc_return - add 1, return the copy's new value.
 * Async-signal-safe. */
#define pcpu_this_inc_return(cookie) PCPU__THIS_GENERIC(cookie, this_inc_return)((cookie))
/** pcpu_this_dec_return - subtract 1, return the copy's new value.
 * Async-signal-safe. */
#define pcpu_this_dec_return(cookie) PCPU__THIS_GENERIC(cookie, this_dec_return)((cookie))
/**
 * pcpu_sum - the sum of every unit's copy (units 0 .. pcpu_nr_cpus()-1), as
 * the object's type (wrapping around like the updates).
 * Relaxed loads, one unit after the other: while other threads update, the
 * result is some mix of before and after, exact once they have stopped.
 * Not for bool.  Thread safety: any thread.  Async-signal-safe.
 */
#define pcpu_sum(cookie) PCPU__THIS_GENERIC(cookie, sum)((cookie))

#else /* __cplusplus: the same names as overloaded templates */
} /* extern "C" */
extern "C++" {
/* Supported object types (cv-qualifiers ignored); others have no
 * definition and fail to compile, and bool has only the operations that
 * make sense for it. */
template <class T> struct pcpu__int;
template <class T> struct pcpu__int<const T> : pcpu__int<T> {};
template <class T> struct pcpu__int<volatile T> : pcpu__int<T> {};
template <class T> struct pcpu__int<const volatile T> : pcpu__int<T> {};
#define PCPU__CXX_BITS(T, name)                                                 \
        static T read(const void *c) { return pcpu__this_read_##name(c); }      \
        static void write(const void *c, T v) { pcpu__this_write_##name(c, v); } \
        static T xchg(const void *c, T v) { return pcpu__this_xchg_##name(c, v); } \
        static void and_(const void *c, T v) { pcpu__this_and_##name(c, v); }   \
        static void or_(const void *c, T v) { pcpu__this_or_##name(c, v); }     \
        static T cmpxchg(const void *c, T o, T n)                               \
        { return pcpu__this_cmpxchg_##name(c, o, n); }                          \
        static bool try_cmpxchg(const void *c, T *o, T n)                       \
        { return pcpu__this_try_cmpxchg_##name(c, o, n); }
#define PCPU__CXX_ARITH(T, name)                                                \
        static void add(const void *c, T v) { pcpu__this_add_##name(c, v); }    \
        static void sub(const void *c, T v) { pcpu__this_sub_##name(c, v); }    \
        static void inc(const void *c) { pcpu__this_inc_##name(c); }            \
        static void dec(const void *c) { pcpu__this_dec_##name(c); }            \
        static T add_return(const void *c, T v)                                 \
        { return pcpu__this_add_return_##name(c, v); }                          \
        static T sub_return(const void *c, T v)                                 \
        { return pcpu__this_sub_return_##name(c, v); }                          \
        static T inc_return(const void *c) { return pcpu__this_inc_return_##name(c); } \
        static T dec_return(const void *c) { return pcpu__this_dec_return_##name(c); } \
        static T sum(const void *c) { return pcpu__sum_##name(c); }
#define PCPU__CXX_INT(T, name)                                                  \
    template <> struct pcpu__int<T> {                                           \
        typedef T type;                                                         \
        PCPU__CXX_BITS(T, name)                                                 \
        PCPU__CXX_ARITH(T, name)                                                \
    };
template <> struct pcpu__int<bool> {
    typedef bool type;
    PCPU__CXX_BITS(bool, bool)
};
PCPU__CXX_INT(char, char)
PCPU__CXX_INT(signed char, schar)
PCPU__CXX_INT(unsigned char, uchar)
PCPU__CXX_INT(short, short)
PCPU__CXX_INT(unsigned short, ushort)
PCPU__CXX_INT(int, int)
PCPU__CXX_INT(unsigned int, uint)
PCPU__CXX_INT(long, long)
PCPU__CXX_INT(unsigned long, ulong)
PCPU__CXX_INT(long long, llong)
PCPU__CXX_INT(unsigned long long, ullong)
#undef PCPU__CXX_INT
#undef PCPU__CXX_BITS
#undef PCPU__CXX_ARITH

/* As the C macros above; the value arguments are converted to the
 * object's type (they take no part in deduction). */
template <class T> inline void pcpu_this_add(T *c, typename pcpu__int<T>::type v)
{ pcpu__int<T>::add(c, v); }
template <class T> inline void pcpu_this_sub(T *c, typename pcpu__int<T>::type v)
{ pcpu__int<T>::sub(c, v); }
template <class T> inline void pcpu_this_inc(T *c) { pcpu__int<T>::inc(c); }
template <class T> inline void pcpu_this_dec(T *c) { pcpu__int<T>::dec(c); }
template <class T> inline typename pcpu__int<T>::type pcpu_this_read(T *c)
{ return pcpu__int<T>::read(c); }
template <class T> inline void pcpu_this_write(T *c, typename pcpu__int<T>::type v)
{ pcpu__int<T>::write(c, v); }
template <class T>
inline typename pcpu__int<T>::type pcpu_this_xchg(T *c, typename pcpu__int<T>::type v)
{ return pcpu__int<T>::xchg(c, v); }
template <class T> inline void pcpu_this_and(T *c, typename pcpu__int<T>::type v)
{ pcpu__int<T>::and_(c, v); }
template <class T> inline void pcpu_this_or(T *c, typename pcpu__int<T>::type v)
{ pcpu__int<T>::or_(c, v); }
template <class T>
inline typename pcpu__int<T>::type pcpu_this_cmpxchg(T *c, typename pcpu__int<T>::type o,
                                                     typename pcpu__int<T>::type n)
{ return pcpu__int<T>::cmpxchg(c, o, n); }
template <class T>
inline bool pcpu_this_try_cmpxchg(T *c, typename pcpu__int<T>::type *o,
                                  typename pcpu__int<T>::type n)
{ return pcpu__int<T>::try_cmpxchg(c, o, n); }
template <class T>
inline typename pcpu__int<T>::type pcpu_this_add_return(T *c, typename pcpu__int<T>::type v)
{ return pcpu__int<T>::add_return(c, v); }
template <class T>
inline typename pcpu__int<T>::type pcpu_this_sub_return(T *c, typename pcpu__int<T>::type v)
{ return pcpu__int<T>::sub_return(c, v); }
template <class T> inline typename pcpu__int<T>::type pcpu_this_inc_return(T *c)
{ return pcpu__int<T>::inc_return(c); }
template <class T> inline typename pcpu__int<T>::type pcpu_this_dec_return(T *c)
{ return pcpu__int<T>::dec_return(c); }
template <class T> inline typename pcpu__int<T>::type pcpu_sum(T *c)
{ return pcpu__int<T>::sum(c); }
} /* extern "C++" */
extern "C" {
#endif /* __cplusplus */

/* ------------------------------------------------------------------------
 * Per-CPU lists
 * ------------------------------------------------------------------------ */
/*
 * An intrusive LIFO list per unit: the building block of per-CPU free
 * lists and caches (librseq's percpu list, the kernel's per-CPU freelists).
 * Allocate the list with PCPU_NEW(struct pcpu_list) (or PCPU_DEFINE): it
 * starts empty in every unit.  Embed a struct pcpu_list_node in your
 * objects; a node is on at most one list at a time and belongs to the
 * list while it is on it.
 *
 *      struct obj { struct pcpu_list_node node; ... };
 *      struct pcpu_list *free_objs = PCPU_NEW(struct pcpu_list);
 *      pcpu_this_list_push(free_objs, &o->node);
 *      struct pcpu_list_node *n = pcpu_this_list_pop(free_objs);
 *
 * push and pop act on the calling thread's current unit and are free of
 * ABA: a node popped by one thread is never also returned to another,
 * under preemption, migration and signals.  pcpu_list_pop_all() takes a
 * whole unit's list from any thread, at any time.
 *
 * How: with rseq, push is one restartable sequence (load the head, link
 * the node to it, commit the node as the new head with one store) and so
 * is pop (load the head, test for empty, load head->next, commit it):
 * nothing else can change the unit's head in between, so there is no ABA.
 * pcpu_list_pop_all() from another CPU first fences the unit (a bit in its
 * head that the sequences test inside the critical section, sending them
 * to a slow path that waits until the fence is gone), restarts the
 * sequences in flight on that unit with membarrier(), then takes the list
 * with an atomic exchange that also lifts the fence.  Without rseq
 * (atomic fallback: no rseq, fewer units than CPUs, aarch64) pushes are
 * lock-free compare-and-swaps and pops of one unit take turns through a
 * lock bit in its head, so a node cannot be popped and pushed back under a
 * pop in progress.  See src/list.c.
 *
 * Rules:
 *   - Nodes must be aligned to at least 4 bytes (the natural alignment of
 *     the struct is that of a pointer; beware of packed structs): the two
 *     low bits of a head are the fence and the lock.  Builds without
 *     NDEBUG stop the process on a misaligned node; others corrupt the
 *     list.
 *   - The nodes' memory must stay readable while they are on a list (pop
 *     reads head->next); free a node only after taking it off.
 *   - Memory order: a push releases the node (what the pushing thread
 *     wrote to it before the push is visible to the thread that pops it or
 *     takes it with pcpu_list_pop_all()), a pop acquires it.
 *   - fork(): in the atomic fallback, a fork() while another thread is in
 *     the middle of pcpu_this_list_pop() or pcpu_list_pop_all() (between
 *     two compare-and-swaps) can leave that unit's lock bit set in the
 *     child, where pops and pcpu_list_pop_all() of that unit then wait
 *     forever.  (With rseq, fork() waits for a pcpu_list_pop_all() in
 *     progress, and push and pop hold nothing.)
 */
struct pcpu_list_node {
    struct pcpu_list_node *next;
};
struct pcpu_list {
    struct pcpu_list_node *head;
};

/* The low bits of a unit's head (see src/list.c): a pcpu_list_pop_all() in
 * rseq mode has fenced the unit, or a pop of the atomic fallback holds it.
 * Plain numbers: they are pasted into the sequences. */
#define PCPU__LIST_FENCE 1
#define PCPU__LIST_LOCK 2
#define PCPU__LIST_BITS 3

/* Slow paths (src/list.c).  pcpu__list_push_slow(): NULL when it has
 * pushed the node, else the cookie with which to run the sequence again.
 * pcpu__list_pop_slow(): retry NULL when node is the result, else the
 * cookie with which to run the sequence again. */
struct pcpu__list_slow {
    struct pcpu_list_node *node;
    const void *retry;
};
PCPU__PUBLIC const void *pcpu__list_push_slow(const void *cookie, struct pcpu_list_node *node);
PCPU__PUBLIC struct pcpu__list_slow pcpu__list_pop_slow(const void *cookie);
PCPU__PUBLIC void pcpu__list_bad_node(const void *node);

/* ThreadSanitizer cannot see the sequences' stores: tell it that a push
 * publishes the node and a pop takes it. */
#if defined(__SANITIZE_THREAD__)
#define PCPU__TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define PCPU__TSAN 1
#endif
#endif
#ifdef PCPU__TSAN
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define PCPU__TSAN_RELEASE(p) __tsan_release((void *)(p))
#define PCPU__TSAN_ACQUIRE(p) __tsan_acquire((void *)(p))
#else
#define PCPU__TSAN_RELEASE(p) ((void)0)
#define PCPU__TSAN_ACQUIRE(p) ((void)0)
#endif

#if PCPU__RSEQ_ASM
/* A list sequence: as PCPU__SEQ, and a compiler barrier (the node's
 * contents are published or taken with it); volatile, since a push has
 * no output the compiler could see used.  The barrier makes the compiler
 * reload values across a loop of list operations, so the index word's
 * place is an immediate here (a test of the const displacement picks the
 * sequence) rather than one more register to keep or rebuild. */
#define PCPU__LIST_SEQ1(DISP, INSN, OUTS, INS)                            \
    __asm__ __volatile__ goto(                                            \
        PCPU__RSEQ_HEAD_DISP("%[tmp]", "%l[slow]", DISP "(%[rs])")         \
        INSN "\n2:\n\t" PCPU__RSEQ_TAIL                                   \
        : PCPU__UNPAREN OUTS                                              \
        : PCPU__UNPAREN INS                                               \
        : "cc", "memory"                                                  \
        : slow)
#define PCPU__LIST_SEQ(INSN, OUTS, INS)                                   \
    do {                                                                  \
        if (PCPU__LIKELY(pcpu__index_disp == 4))                          \
            PCPU__LIST_SEQ1("4", INSN, OUTS, INS);                        \
        else                                                              \
            PCPU__LIST_SEQ1("24", INSN, OUTS, INS);                       \
    } while (0)
#define PCPU__LIST_INPUTS(cookie_)                                        \
    [rs] "r"(PCPU__RSEQ_AREA_TP),                                         \
    [tc] "r"(&pcpu__tc),                                                  \
    [tab] "i"(offsetof(struct pcpu__thiscpu_state, seq_offs)),             \
    [ck] "r"(cookie_)
#endif

/**
 * pcpu_this_list_push - push @node onto the current unit's list.
 * @list: cookie of a struct pcpu_list.
 * @node: a node on no list, aligned to at least 4 bytes.
 *
 * With rseq: one restartable sequence committed by one store; if the unit
 * is fenced by a pcpu_list_pop_all() at that moment it waits (briefly) for
 * it.  Without: a compare-and-swap loop, never waiting.
 * Thread safety: any thread.  Async-signal-safe once the thread has made
 * one this-CPU operation (a handler may push while the code it interrupted
 * pushes or pops).
 */
static PCPU__INLINE void pcpu_this_list_push(struct pcpu_list *list,
                                             struct pcpu_list_node *node)
{
    const void *c = list;
#ifndef NDEBUG
    if (PCPU__UNLIKELY((uintptr_t)node & PCPU__LIST_BITS))
        pcpu__list_bad_node(node);
#endif
    PCPU__TSAN_RELEASE(node);
#if PCPU__RSEQ_ASM
    for (;;) {
        uintptr_t tmp, head;
        PCPU__LIST_SEQ("movq (%[ck], %[tmp]), %[head]\n\t"
                           "testb $" PCPU__STR(PCPU__LIST_BITS) ", %b[head]\n\t"
                           "jnz %l[slow]\n\t"
                           "movq %[head], (%[node])\n\t"
                           "movq %[node], (%[ck], %[tmp])",
                           ([tmp] "=&r"(tmp), [head] "=&r"(head)),
                           (PCPU__LIST_INPUTS(c), [node] "r"(node)));
        return;
    slow:
        PCPU__RSEQ_LEFT();
        c = pcpu__list_push_slow(c, node);
        if (!c)
            return;
    }
#else
    while ((c = pcpu__list_push_slow(c, node)) != NULL)
        ;
#endif
}

/**
 * pcpu_this_list_pop - take the first node of the current unit's list.
 * @list: cookie of a struct pcpu_list.
 *
 * Returns the node, or NULL when the current unit's list is empty (other
 * units' lists may not be: this looks at one unit only).
 * With rseq: one restartable sequence (load the head, test for empty, load
 * its next, commit that as the head with one store); if the unit is fenced
 * by a pcpu_list_pop_all() at that moment it waits (briefly) for it.
 * Without: the pops of one unit take turns (a lock bit in the head, held
 * for two loads and a compare-and-swap) while pushes go on.
 * Thread safety: any thread.  Async-signal-safe once the thread has made
 * one this-CPU operation.  Signal handlers: with rseq a handler may pop
 * while the code it interrupted pushes or pops, like any other thread.  In
 * the atomic fallback a pop in a handler that interrupted a pop or
 * pcpu_list_pop_all() of the same thread never waits for a lock bit (the
 * interrupted code might hold it): if that unit's lock is held at that
 * moment, by anyone, it returns NULL as if the list were empty, and the
 * list is left as it is.
 */
static PCPU__INLINE struct pcpu_list_node *pcpu_this_list_pop(struct pcpu_list *list)
{
    const void *c = list;
    struct pcpu__list_slow s;
#if PCPU__RSEQ_ASM
    for (;;) {
        uintptr_t tmp, head, next;
        PCPU__LIST_SEQ("movq (%[ck], %[tmp]), %[head]\n\t"
                           "testb $" PCPU__STR(PCPU__LIST_BITS) ", %b[head]\n\t"
                           "jnz %l[slow]\n\t"
                           "testq %[head], %[head]\n\t"
                           "jz 2f\n\t"
                           "movq (%[head]), %[next]\n\t"
                           "movq %[next], (%[ck], %[tmp])",
                           ([tmp] "=&r"(tmp), [head] "=&r"(head), [next] "=&r"(next)),
                           (PCPU__LIST_INPUTS(c)));
#ifdef PCPU__TSAN
        if (head)
            PCPU__TSAN_ACQUIRE(head);
#endif
        return (struct pcpu_list_node *)head;
    slow:
        PCPU__RSEQ_LEFT();
        s = pcpu__list_pop_slow(c);
        if (!s.retry)
            return s.node;
        c = s.retry;
    }
#else
    for (;;) {
        s = pcpu__list_pop_slow(c);
        if (!s.retry)
            return s.node;
        c = s.retry;
    }
#endif
}

/**
 * pcpu_list_pop_all - take the whole list of unit @cpu.
 * @list: cookie of a struct pcpu_list.
 * @cpu:  unit index, 0 <= cpu < pcpu_nr_cpus() (checked: out of range
 *        stops the process with a message).
 *
 * Returns the old head of that unit's list (NULL-terminated through next),
 * or NULL if it was empty; the unit's list is then empty.  May run on any
 * thread at any time, concurrently with pushes and pops on that unit from
 * any thread and with other pcpu_list_pop_all() calls: every node ends up
 * either in the returned chain or still on the list (or popped by exactly
 * one pop), never in two places.
 *
 * Cost: with rseq, an empty unit costs one load; otherwise the unit is
 * fenced and membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ) restarts the
 * sequences in flight -- aimed at the unit's CPU where the kernel supports
 * it (MEMBARRIER_CMD_FLAG_CPU, Linux 5.10+) in PCPU_INDEX_CPU mode, at
 * every CPU running the process in PCPU_INDEX_CID mode (a unit is not a
 * CPU there) -- so microseconds, not nanoseconds.  Signals are blocked
 * while the unit is fenced, and calls on the same (list, unit) take turns.
 * Without rseq: a compare-and-swap, after the unit's pops in progress.
 * Thread safety: any thread.  Async-signal-safe (in the atomic fallback a
 * call in a signal handler that interrupted a pop or pcpu_list_pop_all()
 * of the same thread returns NULL instead of waiting when the unit's lock
 * bit is held, as pcpu_this_list_pop() does).  Not counted as a this-CPU
 * operation for the async-signal-safety rule of the others.
 */
PCPU__PUBLIC struct pcpu_list_node *pcpu_list_pop_all(struct pcpu_list *list, unsigned int cpu);

/* ------------------------------------------------------------------------
 * Clients: counters, reference counts, reader-writer semaphores
 * ------------------------------------------------------------------------ */
/*
 * The three abstractions the kernel builds on its per-CPU allocator, built
 * here on this library's allocator and this-CPU machinery (src/counter.c,
 * src/ref.c, src/rwsem.c say how each works and why it is correct).
 *
 * Their fast paths are restartable sequences of their own, made of the
 * same parts as the this-CPU operations above, that test a condition and
 * write the unit only when it holds: "add unless the delta would reach
 * the batch" (counters), "add unless the object's mode word says atomic"
 * (references, and readers of the semaphore).  A condition on a word
 * outside the unit is checked inside the critical section, so whoever
 * changes that word and then calls
 * membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ) knows that every
 * sequence in flight either committed before the call returned or will
 * run again and see the new value: that is how a reference count leaves
 * per-CPU mode and a writer stops new readers, without a cost for them.
 * Without rseq (the atomic fallback) each has a scheme of its own, said
 * with its functions.
 *
 * The structs are declared so that they can be embedded (or zero-filled
 * and initialised in place); their fields are not API.
 */

/* A client sequence: as PCPU__SEQ, with exits of its own besides slow
 * (the C labels after CLOBBERS) and its own clobbers.  As the list
 * sequences do, the index word's place is an immediate (a test of the
 * const displacement picks the sequence), which saves a register: the
 * counter's sequence needs many.  volatile: a sequence whose outputs
 * are unused (a reference's get) must still run. */
#if PCPU__RSEQ_ASM
#define PCPU__CLIENT_SEQ1(DISP, BODY, OUTS, INS, CLOBBERS, ...)                 \
    __asm__ __volatile__ goto(PCPU__RSEQ_HEAD_DISP("%[tmp]", "%l[slow]", DISP "(%[rs])") \
                 BODY "\n2:\n\t" PCPU__RSEQ_TAIL                                  \
                 : PCPU__UNPAREN OUTS                                             \
                 : PCPU__UNPAREN INS                                              \
                 : PCPU__UNPAREN CLOBBERS                                         \
                 : __VA_ARGS__)
#define PCPU__CLIENT_SEQ_ANY(BODY, OUTS, INS, CLOBBERS, ...)                    \
    do {                                                                         \
        if (PCPU__LIKELY(pcpu__index_disp == 4))                                 \
            PCPU__CLIENT_SEQ1("4", BODY, OUTS, INS, CLOBBERS, __VA_ARGS__);      \
        else                                                                     \
            PCPU__CLIENT_SEQ1("24", BODY, OUTS, INS, CLOBBERS, __VA_ARGS__);     \
    } while (0)
#define PCPU__CLIENT_INPUTS(cookie_)                                            \
    [rs] "r"(PCPU__RSEQ_AREA_TP),                                                \
    [tc] "r"(&pcpu__tc),                                                         \
    [tab] "i"(offsetof(struct pcpu__thiscpu_state, seq_offs)),                   \
    [ck] "r"(cookie_), [tcm] "m"(pcpu__tc)
#endif

/*
 * Add @v to the current unit's copy of the unsigned long at @cookie, in
 * one sequence that first checks that the 32-bit word *@gate is 0.
 * Returns true when it added; false when *@gate was not 0, or when the
 * thread cannot use rseq now (the process runs on atomics): then nothing
 * was written and the caller takes its slow path.  A compiler barrier
 * (the sequence commits what came before it and what follows stays
 * after); with x86's ordering the commit is a release store and the gate
 * load an acquire.
 */
static PCPU__INLINE bool pcpu__gated_add(unsigned long *cookie, const uint32_t *gate,
                                         unsigned long v)
{
#if PCPU__RSEQ_ASM
    const void *c = cookie;
    for (;;) {
        uintptr_t tmp;
        PCPU__CLIENT_SEQ_ANY("cmpl $0, %[gate]\n\t"
                             "jne %l[closed]\n\t"
                             "addq %[v], (%[ck], %[tmp])",
                             ([tmp] "=&r"(tmp)),
                             (PCPU__CLIENT_INPUTS(c), [gate] "m"(*gate), [v] "er"(v)),
                             ("cc", "memory"), slow, closed);
        return true;
    closed:
        PCPU__RSEQ_LEFT();
        return false;
    slow:
        if (pcpu__tc_fallback(c).off != PCPU__TC_RETRY)
            return false;
    }
#else
    (void)cookie;
    (void)gate;
    (void)v;
    return false;
#endif
}

/* ------------------------------------------------------------------------
 * Per-CPU counters
 * ------------------------------------------------------------------------ */
/*
 * The kernel's percpu_counter: a 64-bit count that many threads change
 * without sharing a cache line.  Every unit keeps a local delta (an
 * int32_t); an add changes only the calling thread's unit, until the
 * delta would reach the batch: then it folds the delta and the amount into
 * the shared count, under the counter's lock.  pcpu_counter_read() is
 * that shared count (one load, approximate); pcpu_counter_sum() adds
 * every unit's delta to it (exact, walks every unit).
 *
 *      struct pcpu_counter requests;
 *      if (pcpu_counter_init(&requests, 0) != 0)
 *          return -1;                                 (errno ENOMEM)
 *      pcpu_counter_inc(&requests);                   (any thread)
 *      int64_t about = pcpu_counter_read(&requests);
 *      int64_t exact = pcpu_counter_sum(&requests);
 *      pcpu_counter_destroy(&requests);
 *
 * The error bound: every unit's delta stays strictly between -batch and
 * batch, for the largest batch any add used on the counter (with rseq an
 * add is one restartable sequence that stores the new delta only when it
 * stays inside, so no thread leaves a delta beyond the batch behind on a
 * unit it migrated away from; without rseq, a compare-and-swap loop that
 * does the same).  So |read - sum| < batch * pcpu_nr_cpus(): with
 * pcpu_counter_add() alone, pcpu_counter_batch() * pcpu_nr_cpus().
 *
 * Limits (see pcpu_counter_limited_add()): a counter remembers the last
 * upper and lower limit that pcpu_counter_limited_add() used.  While the
 * count is far from a limit, increases through it stay per-CPU; near the
 * limit they take the lock and check the exact sum.
 *
 * Costs: an add is a few nanoseconds (a sequence like pcpu_this_add(), a
 * compare more), plus, once per batch of adds on a unit, a fold under the
 * lock (a contended cache line).  A counter holds 4 bytes per unit of
 * per-CPU memory (pcpu_counter_init_many() packs n counters' deltas into
 * one allocation of 4 * n bytes per unit), and the struct is 120 bytes:
 * what the adds read and what the folds write are kept 64 bytes apart, so
 * that one CPU's fold does not make every other CPU's next add miss.
 */
struct pcpu_counter {
    /* Read by every add; written only by init and destroy, by the limits
     * (limited adds, and folds that bring the count near a limit) and by
     * the first add with a larger batch. */
    int32_t *counters;   /* per-CPU deltas (a cookie), NULL: no counter */
    /* The fold threshold of pcpu_counter_add() (an int32_t value): 64
     * bits wide so that the compiler knows the sequences' 32-bit stores
     * cannot change it, and keeps it in a register across a loop of adds. */
    int64_t batch;
    int64_t limit_hi;    /* the limits the gates were opened for       */
    int64_t limit_lo;
    int32_t max_batch;   /* largest batch an add used: the error bound */
    uint32_t gate;       /* PCPU__CTR_GATE_*: limited fast paths closed */
    uint32_t flags;      /* PCPU__CTR_*                                */
    /* Written by every fold.  The gap keeps these 64 bytes or more from
     * the fields above, so that they never share a cache line, wherever
     * the counter lies: another CPU's fold then does not take the line
     * every add reads from under it (percpu-bench counter.percpu.add). */
    unsigned char pcpu__gap[64];
    uint32_t lock;       /* futex word: folds, sum, set, limits        */
    int64_t count;       /* the folded value: pcpu_counter_read()      */
};

/* The largest batch a counter uses; larger ones are taken as this (the
 * local deltas then never overflow their 32 bits). */
#define PCPU_COUNTER_MAX_BATCH ((int32_t)1 << 30)

/* Slow paths (src/counter.c).  pcpu__counter_fold(): the sequence found
 * that @v would take the unit's delta to the batch; nothing was written.
 * pcpu__counter_slow(): everything else (an amount outside the batch, a
 * batch out of range, or the thread cannot run the sequence now): returns
 * true when the sequence should run again.  pcpu__counter_note_batch():
 * an add uses a batch larger than any before. */
PCPU__PUBLIC void pcpu__counter_fold(struct pcpu_counter *c, int32_t v, int32_t batch);
PCPU__PUBLIC bool pcpu__counter_slow(struct pcpu_counter *c, int64_t v, int32_t batch);
PCPU__PUBLIC void pcpu__counter_note_batch(struct pcpu_counter *c, int32_t batch);

/* The add of pcpu_counter_add_batch() once @batch is known to be in range
 * and at most c->max_batch. */
static PCPU__INLINE void pcpu__counter_add(struct pcpu_counter *c, int64_t v, int32_t batch)
{
#if PCPU__RSEQ_ASM
    if (PCPU__LIKELY(v > -(int64_t)batch && v < (int64_t)batch)) {
        const void *ck = c->counters;
        /* |delta + v| < batch  <=>  delta + v + batch - 1 < 2 * batch - 1,
         * unsigned: one compare. */
        uint32_t bias = (uint32_t)batch - 1, range = 2 * (uint32_t)batch - 1;
        for (;;) {
            uintptr_t tmp;
            uint32_t nv, t2;
            PCPU__CLIENT_SEQ_ANY("movl (%[ck], %[tmp]), %[nv]\n\t"
                                 "addl %[v], %[nv]\n\t"
                                 "leal (%q[nv], %q[bias]), %[t2]\n\t"
                                 "cmpl %[range], %[t2]\n\t"
                                 "jae %l[fold]\n\t"
                                 "movl %[nv], (%[ck], %[tmp])",
                                 ([tmp] "=&r"(tmp), [nv] "=&r"(nv), [t2] "=&r"(t2),
                                  PCPU__RSEQ_MEM(32, ck)),
                                 (PCPU__CLIENT_INPUTS(ck), [v] "r"((int32_t)v),
                                  [bias] "r"(bias), [range] "ir"(range)),
                                 ("cc"), slow, fold);
            return;
        fold:
            PCPU__RSEQ_LEFT();
            pcpu__counter_fold(c, (int32_t)v, batch);
            return;
        slow:
            if (!pcpu__counter_slow(c, v, batch))
                return;
        }
    }
#endif
    while (pcpu__counter_slow(c, v, batch))
        ;
}

/**
 * pcpu_counter_init - set up a counter with the value @value.
 * @c:     the counter (embedded anywhere; zero-filled or not).
 * @value: its initial value.
 *
 * Allocates one int32_t per unit (pcpu_alloc()).  The batch of
 * pcpu_counter_add() is pcpu_counter_batch().
 * Returns 0, or -1 with errno ENOMEM (the per-CPU allocation failed; @c
 * is left as it was and nothing is allocated).
 * Thread safety: not concurrently with other calls on @c.  Not
 * async-signal-safe.
 */
PCPU__PUBLIC int pcpu_counter_init(struct pcpu_counter *c, int64_t value);

/**
 * pcpu_counter_init_many - set up @n counters (an array) sharing one
 * per-CPU allocation.
 * @c:     an array of @n counters.
 * @value: the initial value of each.
 * @n:     how many; their deltas take 4 * @n bytes per unit, at most
 *         pcpu_max_alloc_size().
 *
 * One pcpu_alloc() for all: the deltas of neighbouring counters share
 * cache lines in each unit, which only the CPU of that unit writes.
 * Destroy them together with pcpu_counter_destroy_many() (one of them
 * alone with pcpu_counter_destroy() stops the process with a message).
 * Returns 0, or -1 with errno:
 *   EINVAL  @n is 0, or 4 * @n bytes is more than pcpu_alloc() accepts;
 *   ENOMEM  the per-CPU allocation failed; nothing is allocated and the
 *           counters are left as they were.
 * Thread safety: not concurrently with other calls on these counters.
 * Not async-signal-safe.
 */
PCPU__PUBLIC int pcpu_counter_init_many(struct pcpu_counter *c, int64_t value, unsigned int n);

/**
 * pcpu_counter_destroy - free a counter's per-CPU part.
 * @c: a counter from pcpu_counter_init(), or a zero-filled one that was
 *     never initialised (then this does nothing), or one destroyed
 *     already (nothing either).
 *
 * A counter of pcpu_counter_init_many() (of more than one) stops the
 * process with a message: destroy those with pcpu_counter_destroy_many().
 * Thread safety: no other call on @c may run during or after it.  Not
 * async-signal-safe.
 */
PCPU__PUBLIC void pcpu_counter_destroy(struct pcpu_counter *c);

/**
 * pcpu_counter_destroy_many - free the per-CPU part of @n counters.
 * @c: the array given to pcpu_counter_init_many(); also an array of
 *     counters set up one by one, or zero-filled ones (each is destroyed
 *     as pcpu_counter_destroy() would).
 * @n: the number of counters in @c.
 *
 * Thread safety: no other call on these counters may run during or after
 * it.  Not async-signal-safe.
 */
PCPU__PUBLIC void pcpu_counter_destroy_many(struct pcpu_counter *c, unsigned int n);

/**
 * pcpu_counter_add_batch - add @v to @c, folding at @batch.
 * @c:     an initialised counter.
 * @v:     any amount; one outside (-@batch, @batch) goes straight to the
 *         shared count (one atomic add, or under the lock).
 * @batch: the fold threshold for this add: 1 .. PCPU_COUNTER_MAX_BATCH
 *         (smaller values are taken as 1, larger as the maximum).  A
 *         batch larger than the counter's before widens its error bound
 *         (see the top of this section) from then on.
 *
 * No update is ever lost.  Writes no shared cache line unless the calling
 * unit's delta would reach @batch, when it folds the delta and @v into
 * the shared count under the counter's lock.
 * Thread safety: any thread, concurrently with every other call on @c
 * except init and destroy.  Async-signal-safe once the thread has made one
 * this-CPU operation: a handler whose thread it interrupted inside a
 * counter's lock does not wait for the lock (it adds @v to the shared
 * count directly).
 */
static PCPU__INLINE void pcpu_counter_add_batch(struct pcpu_counter *c, int64_t v, int32_t batch)
{
    if (PCPU__UNLIKELY(batch > __atomic_load_n(&c->max_batch, __ATOMIC_RELAXED) || batch < 1))
        pcpu__counter_note_batch(c, batch);
    if (PCPU__UNLIKELY(batch < 1))
        batch = 1;
    if (PCPU__UNLIKELY(batch > PCPU_COUNTER_MAX_BATCH))
        batch = PCPU_COUNTER_MAX_BATCH;
    pcpu__counter_add(c, v, batch);
}

/**
 * pcpu_counter_add - add @v to @c with the counter's batch
 * (pcpu_counter_batch()).
 * @c: an initialised counter.
 * @v: any amount.
 *
 * As pcpu_counter_add_batch(): with rseq, one restartable sequence in the
 * common case (load the delta, add, store it when it stays inside the
 * batch); without, a compare-and-swap on the current unit.
 * Thread safety: any thread.  Async-signal-safe once the thread has made
 * one this-CPU operation.
 */
static PCPU__INLINE void pcpu_counter_add(struct pcpu_counter *c, int64_t v)
{
    pcpu__counter_add(c, v, (int32_t)c->batch);
}

/**
 * pcpu_counter_inc - add 1 to @c (pcpu_counter_add()).
 * Thread safety: any thread.  Async-signal-safe once the thread has made
 * one this-CPU operation.
 */
static PCPU__INLINE void pcpu_counter_inc(struct pcpu_counter *c)
{
    pcpu__counter_add(c, 1, (int32_t)c->batch);
}

/**
 * pcpu_counter_dec - subtract 1 from @c (pcpu_counter_add()).
 * Thread safety: any thread.  Async-signal-safe once the thread has made
 * one this-CPU operation.
 */
static PCPU__INLINE void pcpu_counter_dec(struct pcpu_counter *c)
{
    pcpu__counter_add(c, -1, (int32_t)c->batch);
}

/**
 * pcpu_counter_read - the folded value of @c: one load, approximate.
 * @c: an initialised counter.
 *
 * Returns the shared count, which differs from pcpu_counter_sum() by less
 * than the batch times pcpu_nr_cpus() (see the top of this section).
 * Thread safety: any thread.  Async-signal-safe.
 */
static PCPU__INLINE int64_t pcpu_counter_read(const struct pcpu_counter *c)
{
    return __atomic_load_n(&c->count, __ATOMIC_RELAXED);
}

/**
 * pcpu_counter_read_positive - pcpu_counter_read(), or 0 when that is
 * negative (a counter of things that exist may read below 0 for a while).
 * Thread safety: any thread.  Async-signal-safe.
 */
static PCPU__INLINE int64_t pcpu_counter_read_positive(const struct pcpu_counter *c)
{
    int64_t v = pcpu_counter_read(c);
    return v > 0 ? v : 0;
}

/**
 * pcpu_counter_sum - the exact value of @c.
 * @c: an initialised counter.
 *
 * The shared count plus every unit's delta, read under the counter's lock
 * (which holds folds off), so it counts every add that completed before
 * the call started, and adds that run meanwhile either wholly or not at
 * all.  Folds nothing.  Costs a walk over pcpu_nr_cpus() units.
 * Thread safety: any thread.  Not async-signal-safe (it takes the lock;
 * called from a handler that interrupted its thread inside a counter's
 * lock it stops the process with a message instead of hanging).
 */
PCPU__PUBLIC int64_t pcpu_counter_sum(struct pcpu_counter *c);

/**
 * pcpu_counter_sum_positive - pcpu_counter_sum(), or 0 when that is
 * negative.  Thread safety and signals as pcpu_counter_sum().
 */
PCPU__PUBLIC int64_t pcpu_counter_sum_positive(struct pcpu_counter *c);

/**
 * pcpu_counter_set - make the exact value of @c equal to @value.
 * @c:     an initialised counter.
 * @value: the new value.
 *
 * Under the lock, the shared count takes the difference between @value
 * and the exact sum, so the units' deltas stay as they are (no unit is
 * written from another CPU) and the error bound still holds.  Adds that
 * run meanwhile count either before the set (and are overwritten) or
 * after it.  Thread safety: any thread.  Not async-signal-safe (as
 * pcpu_counter_sum()).
 */
PCPU__PUBLIC void pcpu_counter_set(struct pcpu_counter *c, int64_t value);

/**
 * pcpu_counter_compare - compare the exact value of @c with @rhs.
 * @c:   an initialised counter.
 * @rhs: the value to compare with.
 *
 * Returns -1, 0 or 1 as the value is below, equal to or above @rhs.
 * Exact, and cheap when it can be: it answers from pcpu_counter_read()
 * when that is farther from @rhs than the error bound (the counter's
 * largest batch times pcpu_nr_cpus()), else from pcpu_counter_sum().
 * Thread safety: any thread.  Not async-signal-safe (it may sum).
 */
PCPU__PUBLIC int pcpu_counter_compare(struct pcpu_counter *c, int64_t rhs);

/**
 * pcpu_counter_limited_add - add @v to @c unless that takes it past @limit.
 * @c:     an initialised counter.
 * @limit: for @v > 0 the most the value may be after the add; for @v < 0
 *         the least.
 * @v:     the amount (0: nothing to do, returns true).
 *
 * Returns true when it added @v, false when the exact value plus @v would
 * have been above @limit (@v > 0) or below it (@v < 0), and then it
 * changed nothing.  Exact: when every increase of @c goes through this
 * with the same @limit, the exact value is never above @limit (a
 * concurrent pcpu_counter_sum() never sees more); and a call fails only if
 * the exact value plus @v would have crossed @limit at some moment during
 * the call.  (Likewise below for decreases with the same lower limit.)
 * Plain adds that decrease the counter may run concurrently.
 *
 * How: while the shared count is farther from the limit than the batch
 * times pcpu_nr_cpus(), an increase is one restartable sequence on the
 * calling unit's delta (as pcpu_counter_add(), which also checks a gate
 * word of the counter inside the sequence); near the limit, the first call
 * closes that gate -- membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ),
 * some microseconds -- and from then on calls check the exact sum under
 * the lock, until the count is far from the limit again.  A new @limit
 * closes the gate the same way.  Without rseq every call takes the lock
 * and checks the exact sum.
 * Thread safety: any thread.  Not async-signal-safe (it may take the lock;
 * as pcpu_counter_sum()).
 */
PCPU__PUBLIC bool pcpu_counter_limited_add(struct pcpu_counter *c, int64_t limit, int64_t v);

/**
 * pcpu_counter_batch - the default batch: max(256, 2 * pcpu_nr_cpus()).
 *
 * The fold threshold of pcpu_counter_add(), as the kernel's
 * percpu_counter_batch, but with 256 where the kernel has 32: here a
 * fold takes a futex lock whose cache line two busy CPUs pass back and
 * forth (some hundred nanoseconds each time), and at 32 adds per fold that
 * cost dominates (percpu-bench, 2 CPUs adding: ~10 ns per add at 32, ~4
 * at 256).  The price is a looser pcpu_counter_read() (see the error bound
 * above); pcpu_counter_add_batch() takes any other batch.  Initialises the
 * allocator if needed.
 * Thread safety: any thread.  Not async-signal-safe.
 */
PCPU__PUBLIC int32_t pcpu_counter_batch(void);

/* ------------------------------------------------------------------------
 * Per-CPU reference counts
 * ------------------------------------------------------------------------ */
/*
 * The kernel's percpu_ref: a reference count for an object that many
 * threads get and put often and that is torn down once.  While the ref is
 * live it is in per-CPU mode: a get or a put is one restartable sequence
 * on the calling thread's unit (no shared cache line).  pcpu_ref_kill()
 * switches it to atomic mode (one shared count) and drops the initial
 * reference; from then on the count can reach zero, and the put (or kill)
 * that brings it there calls the release function.
 *
 *      struct config { struct pcpu_ref ref; ... };
 *      static void config_release(struct pcpu_ref *r)
 *      {
 *          free(container_of(r, struct config, ref));
 *      }
 *      pcpu_ref_init(&cfg->ref, config_release, 0);     (count 1)
 *      if (pcpu_ref_tryget_live(&cfg->ref)) {           (readers)
 *          use(cfg);
 *          pcpu_ref_put(&cfg->ref);
 *      }
 *      pcpu_ref_kill(&cfg->ref);                        (retire it)
 *
 * The switch: the mode word is checked inside the get/put sequences, so
 * setting it and then calling membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ)
 * leaves no per-CPU update in flight (each committed before, or restarts
 * and sees atomic mode); only then are the units summed into the atomic
 * count.  In per-CPU mode the atomic count carries a large bias, so gets
 * and puts that go to it meanwhile (or in the atomic fallback) can never
 * make it reach zero early.
 *
 * Atomic fallback (no rseq: aarch64, fewer units than CPUs, rseq
 * unavailable): a ref in per-CPU mode does its gets and puts on the atomic
 * count (with the bias), so every ref behaves as in atomic mode, at the
 * cost of a shared cache line; the switches and their guarantees are the
 * same.
 *
 * Limitations: in per-CPU mode a put below zero cannot be seen (the sum
 * is only taken at a switch; then it stops the process).  Without
 * PCPU_REF_ALLOW_REINIT (or PCPU_REF_INIT_ATOMIC / PCPU_REF_INIT_DEAD,
 * which imply it) pcpu_ref_kill() frees the per-CPU part, so a
 * resurrected ref stays in atomic mode.  The count must not reach zero in
 * per-CPU mode (puts beyond the gets, without kill): a switch that then
 * finds it zero calls no release.
 */
struct pcpu_ref;
typedef void (*pcpu_ref_func_t)(struct pcpu_ref *ref);

#define PCPU_REF_INIT_ATOMIC 0x1u  /* start in atomic mode (and stay there) */
#define PCPU_REF_INIT_DEAD 0x2u    /* start dead, count 0 (resurrect/reinit) */
#define PCPU_REF_ALLOW_REINIT 0x4u /* keep the per-CPU part after kill      */

struct pcpu_ref {
    uint32_t mode;            /* not 0: atomic mode (the sequences leave)   */
    uint32_t lock;            /* futex word: mode switches take turns       */
    unsigned long *pcpu;      /* per-unit counts (a cookie) or NULL          */
    uint64_t count;           /* the atomic count, bit 63: dead              */
    pcpu_ref_func_t release;
    pcpu_ref_func_t confirm;  /* of the kill in progress                     */
    unsigned int flags;       /* PCPU_REF_* and PCPU__REF_*                  */
};

/*
 * Where ThreadSanitizer is told about the puts' order (see
 * pcpu_ref_put_many): a field no atomic operation touches.  At the ref's
 * own address (the mode word) the switch's release store would replace
 * what the puts announced there, and a release would seem to race with
 * them.
 */
#define PCPU__REF_TSAN_SYNC(ref) ((void *)&(ref)->release)

/* Slow paths (src/ref.c): the atomic count. */
PCPU__PUBLIC void pcpu__ref_get_slow(struct pcpu_ref *ref, unsigned long n);
PCPU__PUBLIC void pcpu__ref_put_slow(struct pcpu_ref *ref, unsigned long n);
PCPU__PUBLIC bool pcpu__ref_tryget_slow(struct pcpu_ref *ref, bool live);

/**
 * pcpu_ref_init - set up a reference count: count 1, live, per-CPU mode.
 * @ref:     the ref (embedded in the object it counts).
 * @release: called once when the count drops to zero after
 *           pcpu_ref_kill(), on the thread whose put (or kill) dropped it;
 *           may free the object.  May be NULL.
 * @flags:   0, or PCPU_REF_INIT_ATOMIC (atomic mode until
 *           pcpu_ref_switch_to_percpu()), PCPU_REF_INIT_DEAD (count 0,
 *           dying: every tryget fails until pcpu_ref_resurrect() or
 *           pcpu_ref_reinit()), PCPU_REF_ALLOW_REINIT (keep the per-CPU
 *           part after pcpu_ref_kill(), for pcpu_ref_reinit()).
 *
 * Allocates one unsigned long per unit.  Returns 0, or -1 with errno
 * ENOMEM (nothing allocated).  Thread safety: not concurrently with other
 * calls on @ref.  Not async-signal-safe.
 */
PCPU__PUBLIC int pcpu_ref_init(struct pcpu_ref *ref, pcpu_ref_func_t release, unsigned int flags);

/**
 * pcpu_ref_exit - free the per-CPU part of @ref.
 * @ref: a ref from pcpu_ref_init(), killed and released (or never used),
 *       or zero-filled (nothing to do).
 *
 * No get, put or other call on @ref may run during or after it (until
 * pcpu_ref_init() again).  Not async-signal-safe.
 */
PCPU__PUBLIC void pcpu_ref_exit(struct pcpu_ref *ref);

/**
 * pcpu_ref_get_many - take @n references.
 * @ref: the ref; the caller must already hold a reference, or otherwise
 *       know that the count cannot drop to zero meanwhile.
 * @n:   how many.
 *
 * Per-CPU mode: one restartable sequence on the calling unit (it checks
 * the mode word inside).  Atomic mode and the atomic fallback: one atomic
 * add.  Never sleeps.
 * Thread safety: any thread, also during a mode switch.  Async-signal-safe
 * once the thread has made one this-CPU operation.
 */
static PCPU__INLINE void pcpu_ref_get_many(struct pcpu_ref *ref, unsigned long n)
{
    if (PCPU__LIKELY(pcpu__gated_add(ref->pcpu, &ref->mode, n)))
        return;
    pcpu__ref_get_slow(ref, n);
}

/**
 * pcpu_ref_get - take a reference (pcpu_ref_get_many() of 1).
 * Thread safety: any thread.  Async-signal-safe once the thread has made
 * one this-CPU operation.
 */
static PCPU__INLINE void pcpu_ref_get(struct pcpu_ref *ref)
{
    pcpu_ref_get_many(ref, 1);
}

/**
 * pcpu_ref_put_many - drop @n references.
 * @ref: the ref.
 * @n:   how many (the caller holds them).
 *
 * Per-CPU mode: one restartable sequence.  Atomic mode: one atomic
 * subtraction; if it brings the count to zero, the release function runs
 * here, on this thread, before this returns (it may free @ref: do not
 * touch @ref after a put that may have been the last).  Everything this
 * thread wrote before the put is visible to the release function.  A
 * count that would drop below zero stops the process with a message
 * naming @ref.  Never sleeps (the release function may).
 * Thread safety: any thread, also during a mode switch.  Async-signal-safe
 * once the thread has made one this-CPU operation (the release function
 * then runs in the handler, if this put is the last).
 */
static PCPU__INLINE void pcpu_ref_put_many(struct pcpu_ref *ref, unsigned long n)
{
    /* ThreadSanitizer cannot see the sequences or membarrier: the put
     * announces itself after its last plain read of @ref, and the switch
     * to atomic mode (ref.c) takes that in, so a release that frees the
     * memory @ref lives in is ordered after this. */
    unsigned long *units = ref->pcpu;
    PCPU__TSAN_RELEASE(PCPU__REF_TSAN_SYNC(ref));
    if (PCPU__LIKELY(pcpu__gated_add(units, &ref->mode, (unsigned long)0 - n)))
        return;
    pcpu__ref_put_slow(ref, n);
}

/**
 * pcpu_ref_put - drop a reference (pcpu_ref_put_many() of 1).
 * Thread safety: any thread.  Async-signal-safe once the thread has made
 * one this-CPU operation.
 */
static PCPU__INLINE void pcpu_ref_put(struct pcpu_ref *ref)
{
    pcpu_ref_put_many(ref, 1);
}

/**
 * pcpu_ref_tryget - take a reference unless the count has reached zero.
 * @ref: the ref.
 *
 * Returns true when it took one.  In per-CPU mode it always succeeds (the
 * initial reference is still held); in atomic mode it fails once the
 * count is zero (a released ref, or one started with
 * PCPU_REF_INIT_DEAD).  Never sleeps.
 * Thread safety: any thread.  Async-signal-safe once the thread has made
 * one this-CPU operation.
 */
static PCPU__INLINE bool pcpu_ref_tryget(struct pcpu_ref *ref)
{
    if (PCPU__LIKELY(pcpu__gated_add(ref->pcpu, &ref->mode, 1)))
        return true;
    return pcpu__ref_tryget_slow(ref, false);
}

/**
 * pcpu_ref_tryget_live - take a reference unless the ref is dying.
 * @ref: the ref.
 *
 * Returns true when it took one.  Fails once pcpu_ref_kill() has begun
 * and the ref has left per-CPU mode: certainly from the moment the kill's
 * confirm function runs (or pcpu_ref_kill() returns) until
 * pcpu_ref_resurrect() or pcpu_ref_reinit().  Never sleeps.
 * Thread safety: any thread.  Async-signal-safe once the thread has made
 * one this-CPU operation.
 */
static PCPU__INLINE bool pcpu_ref_tryget_live(struct pcpu_ref *ref)
{
    if (PCPU__LIKELY(pcpu__gated_add(ref->pcpu, &ref->mode, 1)))
        return true;
    return pcpu__ref_tryget_slow(ref, true);
}

/**
 * pcpu_ref_kill_and_confirm - mark @ref dying, switch it to atomic mode,
 * call @confirm, and drop the initial reference.
 * @ref:     a live ref (killing one twice stops the process with a
 *           message naming it).
 * @confirm: NULL, or called once the switch is complete, before this
 *           returns: from then on every pcpu_ref_tryget_live() fails.
 *
 * Waits for the per-CPU updates in flight (membarrier) and sums the
 * units into the atomic count.  If dropping the initial reference brings
 * the count to zero, the release function runs here, after @confirm (it
 * may free @ref).  Without PCPU_REF_ALLOW_REINIT the per-CPU part is
 * freed.  Gets and puts may run concurrently on any thread; no reference
 * is lost or counted twice.
 * Thread safety: any thread; switches of one ref take turns.  May sleep;
 * not async-signal-safe.
 */
PCPU__PUBLIC void pcpu_ref_kill_and_confirm(struct pcpu_ref *ref, pcpu_ref_func_t confirm);

/**
 * pcpu_ref_kill - pcpu_ref_kill_and_confirm() without a confirm function.
 * Thread safety: any thread.  May sleep; not async-signal-safe.
 */
PCPU__PUBLIC void pcpu_ref_kill(struct pcpu_ref *ref);

/**
 * pcpu_ref_switch_to_atomic_sync - put @ref in atomic mode and keep it
 * there, returning once the switch is complete.
 * @ref: the ref.
 *
 * Every get and put goes to the atomic count until
 * pcpu_ref_switch_to_percpu() (resurrect and reinit also leave it atomic).
 * A ref already in atomic mode stays so.  Does not touch the count:
 * release is never called from here.
 * Thread safety: any thread.  May sleep; not async-signal-safe.
 */
PCPU__PUBLIC void pcpu_ref_switch_to_atomic_sync(struct pcpu_ref *ref);

/**
 * pcpu_ref_switch_to_percpu - let @ref use per-CPU mode again.
 * @ref: the ref.
 *
 * Undoes pcpu_ref_switch_to_atomic_sync() and PCPU_REF_INIT_ATOMIC: a
 * live ref goes back to per-CPU mode at once; a dying one when it is
 * resurrected.  A ref whose per-CPU part was freed (killed without
 * PCPU_REF_ALLOW_REINIT) stays atomic.
 * Thread safety: any thread.  May sleep (it waits for a switch in
 * progress); not async-signal-safe.
 */
PCPU__PUBLIC void pcpu_ref_switch_to_percpu(struct pcpu_ref *ref);

/**
 * pcpu_ref_resurrect - bring a dying ref back to life.
 * @ref: a ref that was killed (or started with PCPU_REF_INIT_DEAD) and not
 *       exited; its count may be zero or not (references taken before the
 *       kill may still be held).  A live ref stops the process with a
 *       message naming it.
 *
 * Takes the initial reference again and switches back to per-CPU mode
 * (unless the ref is kept atomic, or has no per-CPU part any more).
 * Thread safety: any thread; gets and puts may run concurrently.  May
 * sleep; not async-signal-safe.
 */
PCPU__PUBLIC void pcpu_ref_resurrect(struct pcpu_ref *ref);

/**
 * pcpu_ref_reinit - pcpu_ref_resurrect() for a ref whose count is zero.
 * @ref: a released ref (with PCPU_REF_ALLOW_REINIT, to be per-CPU again)
 *       or one started with PCPU_REF_INIT_DEAD.  A count that is not zero
 *       stops the process with a message naming it.
 *
 * The release function may run again at the next kill.
 * Thread safety: any thread.  May sleep; not async-signal-safe.
 */
PCPU__PUBLIC void pcpu_ref_reinit(struct pcpu_ref *ref);

/**
 * pcpu_ref_is_zero - true when @ref is in atomic mode with count zero
 * (released, or started with PCPU_REF_INIT_DEAD and not revived).
 * Thread safety: any thread.  Async-signal-safe.
 */
PCPU__PUBLIC bool pcpu_ref_is_zero(struct pcpu_ref *ref);

/**
 * pcpu_ref_is_dying - true from the start of pcpu_ref_kill() (or
 * PCPU_REF_INIT_DEAD) until pcpu_ref_resurrect() or pcpu_ref_reinit().
 * Thread safety: any thread.  Async-signal-safe.
 */
PCPU__PUBLIC bool pcpu_ref_is_dying(struct pcpu_ref *ref);

/* ------------------------------------------------------------------------
 * Per-CPU reader-writer semaphore
 * ------------------------------------------------------------------------ */
/*
 * The kernel's percpu-rwsem: a reader-writer lock for data that is read
 * very often and written rarely.  A reader is a this-CPU increment of a
 * per-unit count, in one restartable sequence that first checks the
 * writer word: no shared cache line is written while no writer comes.  A
 * writer sets the writer word, calls
 * membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ) so that every reader
 * sequence in flight has either committed (and is counted) or will see
 * the word, then sleeps (futex) until the readers' counts sum to zero.
 * That makes writing expensive (microseconds, more with many readers
 * inside): use it where writes are rare.
 *
 *      static struct pcpu_rwsem cfg_lock;      pcpu_rwsem_init(&cfg_lock);
 *      pcpu_rwsem_down_read(&cfg_lock);        (readers, any thread)
 *      ... read the configuration ...
 *      pcpu_rwsem_up_read(&cfg_lock);
 *      pcpu_rwsem_down_write(&cfg_lock);       (the rare writer)
 *      ... change it ...
 *      pcpu_rwsem_up_write(&cfg_lock);
 *
 * Readers that find a writer sleep (futex) until it leaves; a writer
 * waiting for the readers inside stops new ones, so writers are not
 * starved.  Writers take turns among themselves (a futex mutex).  Readers
 * are not queued: when a writer leaves, the readers it held off run, but
 * a next writer may close the door again before all of them got in, so a
 * steady stream of writers can delay a reader.
 *
 * Atomic fallback (no rseq): a reader increments the current unit's count
 * with an atomic, then checks the writer word (a full fence between, as
 * the writer has between setting the word and summing); if a writer is
 * there it takes the increment back from the same unit, wakes the writer
 * and waits.
 */
struct pcpu_rwsem {
    unsigned long *readers; /* per-unit reader counts (a cookie)          */
    uint32_t block;         /* 0: no writer; 1: a writer; 2: and sleepers */
    uint32_t wseq;          /* futex word: a draining writer sleeps on it */
    uint32_t wlock;         /* futex mutex between writers                */
};

/* Slow paths (src/rwsem.c). */
PCPU__PUBLIC bool pcpu__rwsem_down_read_slow(struct pcpu_rwsem *s, bool wait);
PCPU__PUBLIC void pcpu__rwsem_wake_writer(struct pcpu_rwsem *s);

/**
 * pcpu_rwsem_init - set up a semaphore, unlocked.
 * @s: the semaphore (embedded anywhere).
 *
 * Allocates one unsigned long per unit.  Returns 0, or -1 with errno
 * ENOMEM (nothing allocated).  Thread safety: not concurrently with other
 * calls on @s.  Not async-signal-safe.
 */
PCPU__PUBLIC int pcpu_rwsem_init(struct pcpu_rwsem *s);

/**
 * pcpu_rwsem_destroy - free the per-CPU part of @s.
 * @s: an unlocked semaphore from pcpu_rwsem_init(), or a zero-filled one
 *     (nothing to do).
 *
 * No other call on @s may run during or after it.  Not async-signal-safe.
 */
PCPU__PUBLIC void pcpu_rwsem_destroy(struct pcpu_rwsem *s);

/**
 * pcpu_rwsem_down_read - take @s for reading, sleeping while a writer
 * holds it or waits for it.
 * @s: the semaphore.
 *
 * With no writer around: one restartable sequence (check the writer word,
 * increment the unit's count).  Acquire: what a writer wrote before
 * pcpu_rwsem_up_write() is visible after this returns.  Readers share;
 * the same thread may not take it again while a writer may be waiting
 * (that would deadlock, as with any fair rwlock).
 * Thread safety: any thread.  May sleep; not async-signal-safe.
 */
static PCPU__INLINE void pcpu_rwsem_down_read(struct pcpu_rwsem *s)
{
    if (PCPU__LIKELY(pcpu__gated_add(s->readers, &s->block, 1))) {
        PCPU__TSAN_ACQUIRE(s);
        return;
    }
    (void)pcpu__rwsem_down_read_slow(s, true);
}

/**
 * pcpu_rwsem_down_read_trylock - take @s for reading unless a writer holds
 * it or waits for it.
 * @s: the semaphore.
 *
 * Returns true when it took it (with acquire ordering), false at once
 * otherwise.  Never sleeps.
 * Thread safety: any thread.  Async-signal-safe once the thread has made
 * one this-CPU operation.
 */
static PCPU__INLINE bool pcpu_rwsem_down_read_trylock(struct pcpu_rwsem *s)
{
    if (PCPU__LIKELY(pcpu__gated_add(s->readers, &s->block, 1))) {
        PCPU__TSAN_ACQUIRE(s);
        return true;
    }
    return pcpu__rwsem_down_read_slow(s, false);
}

/**
 * pcpu_rwsem_up_read - release a read hold of @s.
 * @s: the semaphore, held for reading (by this thread or another: the
 *     hold may be released on another thread or CPU than took it).
 *
 * A this-CPU decrement (the counts only matter summed), then a load of
 * the writer word; if a writer is waiting, a futex wake.  Release: what
 * the reader did before is visible to the next writer.
 * Thread safety: any thread.  Async-signal-safe once the thread has made
 * one this-CPU operation.
 */
static PCPU__INLINE void pcpu_rwsem_up_read(struct pcpu_rwsem *s)
{
    PCPU__TSAN_RELEASE(s);
#if defined(__x86_64__)
    /* The sequence (rseq) is a plain store, in order after the reader's
     * accesses on x86; the writer's membarrier supplies the fence before
     * the load below.  The atomic fallback's decrement is locked: a full
     * fence.  Only the compiler must be kept from moving things across. */
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    pcpu_this_dec(s->readers);
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
#else
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    pcpu_this_dec(s->readers);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
#endif
    if (PCPU__UNLIKELY(__atomic_load_n(&s->block, __ATOMIC_RELAXED) != 0))
        pcpu__rwsem_wake_writer(s);
}

/**
 * pcpu_rwsem_down_write - take @s for writing, sleeping until every reader
 * has left and no other writer holds it.
 * @s: the semaphore.
 *
 * New readers wait from the moment this starts waiting for the readers.
 * Costs a membarrier() (some microseconds) and a wait for the readers
 * inside.  Acquire: what readers did before their pcpu_rwsem_up_read()
 * is visible after this returns.
 * Thread safety: any thread.  May sleep; not async-signal-safe.
 */
PCPU__PUBLIC void pcpu_rwsem_down_write(struct pcpu_rwsem *s);

/**
 * pcpu_rwsem_down_write_trylock - take @s for writing if no writer holds
 * it and no reader is inside.
 * @s: the semaphore.
 *
 * Returns true when it took it.  Never sleeps, but costs a membarrier()
 * (readers that come meanwhile wait for a moment).
 * Thread safety: any thread.  Not async-signal-safe.
 */
PCPU__PUBLIC bool pcpu_rwsem_down_write_trylock(struct pcpu_rwsem *s);

/**
 * pcpu_rwsem_up_write - release @s held for writing, waking the readers
 * and the next writer that wait.
 * @s: the semaphore, held for writing (by any thread).
 *
 * Release: everything written before is visible to the readers and the
 * writer that take it next.
 * Thread safety: any thread.  Not async-signal-safe.
 */
PCPU__PUBLIC void pcpu_rwsem_up_write(struct pcpu_rwsem *s);

/**
 * pcpu_rwsem_is_read_locked - true when some reader holds @s (the sum of
 * the readers' counts is not zero; a snapshot, for assertions).  In the
 * atomic fallback a reader that finds a writer counts for a moment before
 * it backs off, so while a writer holds @s this may say true for an
 * instant although no reader is inside.
 * Thread safety: any thread.  Async-signal-safe.
 */
PCPU__PUBLIC bool pcpu_rwsem_is_read_locked(struct pcpu_rwsem *s);

#ifdef __cplusplus
}
#endif

/* Per-CPU memory shared between processes (regions, version 0.3). */
#include <percpu/region.h>

#endif /* PERCPU_H */
