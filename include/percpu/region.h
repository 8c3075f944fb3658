/* SPDX-License-Identifier: MIT */
/*
 * percpu/region.h - per-CPU memory shared between processes (regions).
 * Part of <percpu.h>: include that.
 *
 * A region is per-CPU memory that several processes of one machine map at
 * the same time: the workers of a prefork server counting requests, a
 * database's backends keeping statistics, a tracer and its daemon, a
 * monitor (percpu-stat) reading them live.  It is a chunk like the
 * allocator's own, with one unit per CPU index, but its units are a
 * shared file (a POSIX shared-memory object under /dev/shm, or a memfd
 * for an anonymous region), mapped in each process at that process's own
 * unit offsets.  So a cookie from pcpu_region_alloc() or
 * pcpu_region_find() works with pcpu_ptr(), pcpu_this_ptr(), pcpu_sum()
 * and every this-CPU operation, exactly as one from pcpu_alloc(); each
 * process updates the unit of the CPU it runs on and any process reads
 * one CPU's copy or the sum.  Nothing crosses a socket, no update takes a
 * shared cache line.
 *
 *   pcpu_region_open(name, size, flags, mode)   create or open
 *   pcpu_region_alloc(r, "requests", 8, 0)      a named object, zeroed
 *   pcpu_region_find(r, "requests", &size)      its cookie in this process
 *   pcpu_region_foreach(r, fn, arg)             every object
 *   pcpu_region_free(r, cookie)                 remove it
 *   pcpu_region_close(r)                        unmap it here
 *   pcpu_region_unlink(name)                    remove its name
 *
 * Exactness.  A restartable sequence restarts whenever its thread is
 * preempted, whoever preempts it, so this-CPU operations from threads of
 * any processes on one CPU never interleave, as long as every process
 * maps CPU k to unit k and uses restartable sequences indexed by CPU.
 * The region records which CPU each unit belongs to, and an open for
 * writing fails with EOPNOTSUPP in a process that cannot promise that
 * (no rseq, PCPU_INDEX_CID, or fewer units than CPUs; and on every
 * architecture where the library has no restartable sequences yet, such
 * as aarch64, where regions can only be read); such a process may still
 * open the region read-only.  A writer that loses rseq later (a
 * seccomp filter makes a new thread's registration fail, and the library
 * would switch the process to atomics) stops with a one-line message
 * naming the region instead of writing inexactly.
 *
 * Layout across processes.  Each process maps file unit i at its own
 * cookie base plus its own unit offset of CPU index i; an object's offset
 * inside a unit is the same everywhere, its cookie is not.  Processes may
 * be configured with different unit sizes (pcpu_config.unit_size), as
 * long as the region's unit fits in each one's (EINVAL otherwise), and
 * must have the same units and CPUs (pcpu_nr_cpus(), and which CPU each
 * unit index belongs to; EINVAL otherwise).
 *
 * The directory.  Object names (1..63 bytes), sizes and the free space
 * live in the file, after a header.  Allocation and free take a lock in
 * the file: a futex word holding the owner's pid and a tag of its start
 * time; a process that finds the owner dead (or a zombie, or its pid
 * reused by another process, or a word no process could have written)
 * takes the lock over and drops the entry the owner was making.  So a
 * process killed in the middle of an allocation leaves the region usable
 * and loses only what it held.  Lookups (find, foreach) take no lock:
 * each entry is read whole or read again.
 *
 * Trust.  Nothing read from the file is trusted: every offset, size,
 * count and name is copied out once, then checked; a header or directory
 * that another process with write access corrupted makes the call fail
 * with EBADMSG, never crash or touch memory outside the mapping, and a
 * lock word nobody releases makes allocation fail with ETIMEDOUT after
 * 10 seconds rather than hang.  A file made by another layout version, or
 * not by this library, fails to open with EINVAL.
 *
 * Memory.  The file is sparse: a unit costs memory for the pages some
 * process wrote.  tmpfs has no shared zero page, so reading a page nobody
 * wrote (a sum over every unit) also makes it cost a page, except in
 * units of CPU indexes beyond the machine's CPUs (a configured nr_cpus
 * larger than the machine), which are mapped read-only zero in every
 * process: nobody runs there.  Freeing an object gives back its whole
 * pages in every unit.
 *
 * Limits (each also said at the function it concerns): objects hold plain
 * data only (a pointer means nothing in another process, so lists,
 * counters, refs and rwsems do not go in regions); pcpu_is_percpu_address()
 * and pcpu_addr_info() do not know region memory, and pcpu_free() of a
 * region cookie stops the process as a foreign pointer; the processes
 * that open a region for writing must be in one PID namespace (the lock
 * names processes by pid): an open for writing from another gets EINVAL
 * (read-only opens work from anywhere) -- where the namespace can be told,
 * from /proc/self/ns/pid: a writer without /proc, or a region created
 * without it, is not checked, and keeping such writers in one PID
 * namespace is the caller's rule; a process with write
 * access that truncates the file makes every process that touches the
 * lost pages die of SIGBUS, as with any shared mapping (anonymous regions
 * are sealed against it); pcpu_exit() detaches every open region.
 */
#ifndef PERCPU_REGION_H
#define PERCPU_REGION_H
#ifndef PERCPU_H
#error "<percpu/region.h> is not for direct inclusion: #include <percpu.h>"
#endif

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* An open region (opaque; one per pcpu_region_open() call). */
struct pcpu_region;

#define PCPU_REGION_CREATE 0x1u /* create it when it does not exist         */
#define PCPU_REGION_EXCL 0x2u   /* with CREATE: EEXIST when it exists        */
#define PCPU_REGION_RDONLY 0x4u /* read only: pcpu_ptr, sums, lookups        */

/* Longest object name, in bytes (the terminating NUL not counted). */
#define PCPU_REGION_NAME_MAX 63

/**
 * pcpu_region_open - create or open a region shared between processes.
 * @name:  a POSIX shared-memory name: "/" then 1..255 bytes without "/"
 *         (the file /dev/shm/NAME); NULL for an anonymous region (a
 *         memfd), shared only with the children this process forks after
 *         the call, in which every cookie keeps working without reopening.
 *         NULL needs PCPU_REGION_CREATE.
 * @size:  with PCPU_REGION_CREATE: bytes per unit, 1 .. pcpu_max_alloc_size()
 *         (this process's unit size), rounded up to whole pages.  Ignored
 *         when an existing region is opened (pass 0; with CREATE and no
 *         EXCL, 0 opens the region if it exists and is EINVAL if not).
 * @flags: PCPU_REGION_CREATE (create it if it does not exist),
 *         PCPU_REGION_EXCL (with CREATE: fail if it exists),
 *         PCPU_REGION_RDONLY (read only: pcpu_ptr() reads, pcpu_sum(),
 *         find, foreach; writing through a cookie then faults).  CREATE
 *         and RDONLY do not go together.
 * @mode:  permission bits of a new region, as for shm_open() (the umask
 *         applies); 0600 or 0644 are usual.
 *
 * The region has pcpu_nr_cpus() units.  Creation is atomic: the file is
 * built under no name (O_TMPFILE) and then linked to @name, so no process
 * ever opens a half-made region, and of several processes creating one
 * name with PCPU_REGION_EXCL exactly one succeeds.  Initialises the
 * allocator if needed.
 *
 * Returns the region, or NULL with errno:
 *   EINVAL      bad @name, @flags, @mode or @size; a file that is not a
 *               region or one of another layout version; units, CPUs or a
 *               unit size this process cannot map (see the overview).
 *   EEXIST      CREATE|EXCL and @name exists.
 *   ENOENT      no region @name (without CREATE).
 *   EACCES      the file's permissions refuse the access asked for, or
 *               a sandbox (seccomp) refuses a call the open needs.
 *   EOPNOTSUPP  open for writing in a process that cannot update the
 *               region exactly (no rseq, PCPU_INDEX_CID, fewer units
 *               than CPUs, an architecture without the library's
 *               restartable sequences such as aarch64).
 *   EBADMSG     the region's header is inconsistent (corrupted).
 *   ENOMEM      out of memory or mappings; nothing is left behind (a
 *               region this call was creating is not created).
 *   and what shm_open() gives for @name: ELOOP (a symbolic link),
 *   EMFILE or ENFILE (no file descriptor left), ENAMETOOLONG (the file
 *   system's limit).
 * Costs: O(units) system calls when the region's unit size differs from
 * this process's (one mapping per unit), else a few.
 * Limits: a process with write access to the file that truncates it makes
 * every process that touches the lost pages die of SIGBUS, as with any
 * shared mapping (anonymous regions are sealed against it); pcpu_exit()
 * detaches every open region (only pcpu_region_close() works on it
 * afterwards, and its cookies fault).
 * Thread safety: any thread.  Not async-signal-safe.
 */
PCPU__PUBLIC struct pcpu_region *pcpu_region_open(const char *name, size_t size,
                                                  unsigned int flags, mode_t mode);

/**
 * pcpu_region_close - unmap a region from this process.
 * @r: an open region.
 *
 * Every cookie of @r becomes invalid in this process: its addresses are
 * unmapped and later mappings (another region's too) may reuse them, so
 * a cookie used after the call is undefined behaviour, as a pointer used
 * after free() (a region detached by pcpu_exit() keeps its addresses
 * reserved until this call: its cookies fault).  The region and its
 * objects stay for the other processes.  Returns 0, or -1 with errno
 * EINVAL if @r is NULL.  A pointer that is not an open region stops the
 * process with a one-line message naming it.  Thread safety: any thread, but no other thread may use @r
 * or its cookies during or after the call.  Not async-signal-safe.
 */
PCPU__PUBLIC int pcpu_region_close(struct pcpu_region *r);

/**
 * pcpu_region_unlink - remove a region's name.
 * @name: as for pcpu_region_open() (not NULL).
 *
 * Processes that have it open keep using it; it is freed once the last
 * one closes it.  Does not check that the file is a region (it is
 * shm_unlink()).  Returns 0, or -1 with errno EINVAL (bad name), ENOENT,
 * EACCES.  Thread safety: any thread.  Not async-signal-safe.
 */
PCPU__PUBLIC int pcpu_region_unlink(const char *name);

/**
 * pcpu_region_alloc - create a named object in a region.
 * @r:     a region open for writing.
 * @obj:   its name, 1..PCPU_REGION_NAME_MAX bytes, unique in the region.
 * @size:  bytes per unit, 1 .. the region's unit size.
 * @align: a power of two, 1 .. page size; 0: the size's natural alignment
 *         (the largest power of two dividing it, at most 16).
 *
 * Returns the object's cookie in this process, zero in every unit (only
 * units whose file pages hold data are written to make it so), or NULL
 * with errno:
 *   EINVAL      bad argument (NULL, name length, size, align); @r was
 *               detached by pcpu_exit().
 *   EEXIST      an object called @obj exists.
 *   ENOSPC      no free run of @size bytes at @align, or the directory is
 *               full.
 *   EACCES      @r was opened read-only.
 *   ETIMEDOUT   another live process has held the region's lock for 10
 *               seconds (stopped, or a forged lock word).
 *   EBADMSG     the directory is corrupt.
 * A process killed during the call leaves the region consistent: the
 * next allocation or free drops the half-made entry.
 * The cookie holds plain data (a pointer stored in it means nothing in
 * another process); it is not pcpu_free()'s (which stops the process, as
 * for any foreign pointer), and pcpu_is_percpu_address() and
 * pcpu_addr_info() do not know it.
 * Costs: O(objects * log objects) under the region's lock, plus zeroing
 * in the units that hold data there.
 * Thread safety: any thread of any process.  Not async-signal-safe.
 */
PCPU__PUBLIC void *pcpu_region_alloc(struct pcpu_region *r, const char *obj, size_t size,
                                     size_t align);

/**
 * pcpu_region_find - the cookie of an existing object.
 * @r:    an open region (read-only or not).
 * @obj:  its name.
 * @size: if not NULL, receives the object's size.
 *
 * Returns the cookie of @obj in this process, or NULL with errno ENOENT
 * (no such object), EINVAL (NULL argument, bad name length, @r detached),
 * EBADMSG (not found, and the directory holds corrupt entries; or @obj is
 * there twice).  Takes no lock: an object being created or freed at the
 * same moment is found or not.
 * Costs: O(objects).  Thread safety: any thread.  Not async-signal-safe.
 */
PCPU__PUBLIC void *pcpu_region_find(struct pcpu_region *r, const char *obj, size_t *size);

/**
 * pcpu_region_free - remove an object from a region.
 * @r:      a region open for writing.
 * @cookie: a cookie from pcpu_region_alloc() or pcpu_region_find() on @r
 *          in this process; NULL does nothing (returns 0).
 *
 * The object disappears for every process; its whole pages are given
 * back in every unit.  Cookies other processes hold for it become
 * dangling there (they keep mapping the same bytes, which a later object
 * may reuse): stop using an object everywhere before freeing it.
 * Returns 0, or -1 with errno EINVAL when @cookie is not the start of a
 * live object of @r (a foreign, interior or already freed cookie: the
 * region may be shared with processes that free objects too, so this is
 * an error, not a stop), EACCES (read-only), ETIMEDOUT, EBADMSG as for
 * pcpu_region_alloc().
 * Costs: O(objects) under the region's lock.  Thread safety: any thread.
 * Not async-signal-safe.
 */
PCPU__PUBLIC int pcpu_region_free(struct pcpu_region *r, void *cookie);

/**
 * pcpu_region_foreach - call @fn for every object of a region.
 * @r:   an open region.
 * @fn:  called with the object's name (a copy, valid during the call), its
 *       cookie in this process, its size and @arg; returns 0 to go on, a
 *       positive value to stop.
 * @arg: passed to @fn.
 *
 * Objects are visited in directory order; one created or freed during the
 * walk is visited or not.  @fn may call the region's functions (no lock is
 * held), except pcpu_region_close() of @r.  Returns 0 after the last
 * object, the first non-zero value @fn returned, or -1 with errno EINVAL (NULL argument, @r detached) or
 * EBADMSG (a corrupt entry; the objects before it were visited).
 * Costs: O(objects).  Thread safety: any thread.  Not async-signal-safe.
 */
PCPU__PUBLIC int pcpu_region_foreach(struct pcpu_region *r,
                                     int (*fn)(const char *obj, void *cookie, size_t size,
                                               void *arg),
                                     void *arg);

/* A region as pcpu_region_info() describes it. */
struct pcpu_region_info {
    char name[257];          /* as opened ("/" and up to 255 bytes);
                                "" for an anonymous region                 */
    unsigned int nr_units;   /* units (= pcpu_nr_cpus())                   */
    size_t unit_size;        /* bytes per unit                             */
    size_t nr_objects;       /* live objects                               */
    size_t used_bytes;       /* bytes per unit the objects take            */
    size_t free_bytes;       /* unit_size - used_bytes                     */
    size_t largest_free;     /* longest free run in a unit                 */
    size_t dir_capacity;     /* objects the directory can hold             */
    size_t file_bytes;       /* the file's size (header, directory, units) */
    size_t resident_bytes;   /* memory the file holds, as tmpfs counts it  */
    bool writable;           /* opened for writing                         */
};

/**
 * pcpu_region_info - describe a region.
 * @r:    an open region.
 * @info: filled in.
 *
 * Returns 0, or -1 with errno EINVAL (NULL argument, @r detached) or
 * EBADMSG (corrupt directory).  A snapshot: other processes may change
 * the region at the same time.  Costs: O(objects * log objects).
 * Thread safety: any thread.  Not async-signal-safe.
 */
PCPU__PUBLIC int pcpu_region_info(struct pcpu_region *r, struct pcpu_region_info *info);

/**
 * pcpu_region_check - check every invariant of a region's directory.
 * @r: an open region.
 *
 * For tests and monitors: every entry well-formed and inside a unit,
 * names unique, objects not overlapping, the directory's fill mark within
 * its capacity, the lock word free or naming a plausible process.
 * Returns 0 when all hold, or -1 with errno EBADMSG (one line on stderr
 * says what is wrong) or EINVAL (NULL, @r detached).  Takes no lock: run
 * it while nobody allocates or frees, or a half-made entry may show.
 * Costs: O(objects * log objects).  Thread safety: any thread.  Not
 * async-signal-safe.
 */
PCPU__PUBLIC int pcpu_region_check(struct pcpu_region *r);

#ifdef __cplusplus
}
#endif

#endif /* PERCPU_REGION_H */
