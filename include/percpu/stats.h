/* SPDX-License-Identifier: MIT */
/*
 * percpu/stats.h - introspection: the allocator's figures, pictures of its
 * chunks, where an address lives, the invariant checker and fault
 * injection for tests.
 * Part of <percpu.h>: include that.
 */
#ifndef PERCPU_STATS_H
#define PERCPU_STATS_H
#ifndef PERCPU_H
#error "<percpu/stats.h> is not for direct inclusion: #include <percpu.h>"
#endif

/* The printers take a FILE *.  glibc names it struct _IO_FILE, so that
 * this header need not bring in <stdio.h>. */
#ifdef __GLIBC__
struct _IO_FILE;
#define PCPU__FILE struct _IO_FILE
#else
#include <stdio.h>
#define PCPU__FILE FILE
#endif

#ifdef __cplusplus
extern "C" {
#endif

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
 * allocator if needed.  resident_bytes is read from /proc/self/smaps
 * (0 without /proc).  Cost: O(chunks) plus reading smaps (milliseconds).
 * Thread safety: any thread.  Not async-signal-safe (nor are the other
 * calls of this header).
 */
PCPU__PUBLIC int pcpu_stats_get(struct pcpu_stats *st);

/**
 * pcpu_stats_print - print the figures and one line per chunk to @out
 * (stdout if NULL), in the spirit of the kernel's debugfs percpu_stats.
 * Thread safety: any thread.
 */
PCPU__PUBLIC void pcpu_stats_print(PCPU__FILE *out);

/**
 * pcpu_chunk_map_print - print a picture of every chunk.
 * @out:   where (stdout if NULL).
 * @width: characters per line (0: 64).
 *
 * One character per page of a unit: '#' full, '+' partly used, '.'
 * populated and empty, ' ' not populated.  Cost: O(pages of all chunks).
 * Thread safety: any thread (a snapshot).  Not async-signal-safe.
 */
PCPU__PUBLIC void pcpu_chunk_map_print(PCPU__FILE *out, unsigned int width);

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
 * pcpu_chunk_info - describe one chunk.
 * @idx:  which: 0 is the first chunk, then the others in the pool's order.
 * @info: filled in; page_state is malloc()ed, the caller frees it.
 *
 * Returns 0; -1 with errno ENOENT when there is no chunk @idx, EINVAL if
 * @info is NULL, ENOMEM if page_state could not be allocated.
 * Cost: O(chunks + pages of the chunk).  Thread safety: any thread (a
 * snapshot).  Not async-signal-safe.
 */
PCPU__PUBLIC int pcpu_chunk_info(unsigned int idx, struct pcpu_chunk_info *info);

/**
 * pcpu_is_percpu_address - true if @addr is inside a unit of a live chunk.
 * @addr: any address.
 *
 * A cookie itself is not: it points into the chunk's guard area.
 * Cost: O(log chunks).  Thread safety: any thread.  Not async-signal-safe.
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
 * the size asked rounded up to 4 bytes, and from 256 bytes to 4 KiB up to
 * its size class (a multiple of 64 bytes, or of the alignment asked when
 * that is 128 or 256).  Cost: O(log chunks).  Thread safety: any thread.
 * Not async-signal-safe.
 */
PCPU__PUBLIC int pcpu_addr_info(const void *addr, struct pcpu_addr_info *info);

/**
 * pcpu_validate - check every invariant of the allocator's data.
 *
 * Meant for tests: walks every chunk, bitmap, hint, slot and counter.
 * Returns 0 when all hold, else the number of problems found, each
 * described in one line on stderr.  Cost: O(memory of the maps).  Robust
 * mode (PCPU_F_DEBUG) checks what each call touched after it returns, and
 * all of this at pcpu_exit().  Thread safety: any thread (takes the
 * allocator lock).  Not async-signal-safe.
 */
PCPU__PUBLIC int pcpu_validate(void);

/**
 * pcpu_fault_inject - make a call into the OS layer fail, for tests.
 * @nth: the call from now on that fails (1: the next one); 0 turns fault
 *       injection off.
 *
 * Returns the number of OS-layer calls made so far.  Thread safety: any
 * thread (the count is the process's).  Not async-signal-safe.
 */
PCPU__PUBLIC long pcpu_fault_inject(long nth);

#ifdef __cplusplus
}
#endif

#endif /* PERCPU_STATS_H */
