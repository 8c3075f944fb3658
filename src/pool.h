/* SPDX-License-Identifier: MIT */
/*
 * pool.h - every chunk of the allocator and the lock over them (pool.c).
 *
 * The pool owns the allocator lock, the slots (chunks by largest free
 * run), the list of all chunks, chunk creation and destruction, the
 * populate/depopulate pair with its bookkeeping, allocation and release in
 * the maps, and the balance policy (the watermarks of empty populated
 * pages and empty chunks).  Its state is written here only; others read
 * the totals through pcpu__pool_stats_locked() and the first chunk
 * through pcpu__pool_owner().  Functions named _locked expect the lock
 * held, and check it at debug level 2.
 */
#ifndef PCPU_POOL_H
#define PCPU_POOL_H

#include <pthread.h>
#include <time.h>

#include "backend.h"
#include "chunk.h"

/* Balance watermarks, in populated-but-empty pages across all chunks, and
 * how many empty pages an allocation populates beyond what it needs. */
#define PCPU_EMPTY_POP_LOW 8u
#define PCPU_EMPTY_POP_HIGH 32u
#define PCPU_POPULATE_AHEAD 7u

struct pcpu_pool_stats {
    unsigned int nr_chunks;          /* the first included, not the reserved part */
    unsigned int nr_max_chunks;
    size_t nr_populated;             /* pages, per unit                   */
    size_t nr_empty_populated;             /* populated pages with nothing in them */
    size_t allocated_bits;           /* granules handed out, per unit     */
    uint64_t nr_populate, nr_depopulate, nr_chunk_create, nr_chunk_destroy;
};

/* The first chunk, for the lock-free free path to tell the reserved area
 * from the dynamic one; written by pool.c only. */
struct pcpu_pool_anchor {
    struct pcpu_chunk *first;        /* dynamic part; NULL when not set up */
    struct pcpu_chunk *reserved;     /* reserved part, same memory        */
};
PCPU_HIDDEN extern struct pcpu_pool_anchor pcpu__pool_anchor;

PCPU_HIDDEN void pcpu__pool_lock(void);
PCPU_HIDDEN void pcpu__pool_unlock(void);
PCPU_HIDDEN bool pcpu__pool_lock_held(void);
/* Sleep on cond (with the lock held) until woken or until the absolute
 * CLOCK_REALTIME deadline (NULL: none); returns what pthread_cond_wait()
 * or pthread_cond_timedwait() returned. */
PCPU_HIDDEN int pcpu__pool_wait(pthread_cond_t *cond, const struct timespec *deadline);
/* fork() child: the forking thread holds the lock; release it. */
PCPU_HIDDEN void pcpu__pool_fork_child(void);

static inline bool pcpu__pool_ready(void)
{
    return __atomic_load_n(&pcpu__pool_anchor.first, __ATOMIC_ACQUIRE) != NULL;
}

/* Set up the first chunk (dynamic part from the layout's dyn_off, reserved
 * part over [reserved_off, dyn_off), static and reserved pages populated
 * for good) with backend ops; 0, or -1 with errno. */
PCPU_HIDDEN int pcpu__pool_init_locked(const struct pcpu_backend_ops *ops, size_t max_memory);
/* Release every chunk.  keep_first_range: the first chunk's addresses stay
 * reserved without memory, and old_first and old_size say where (else
 * NULL). */
PCPU_HIDDEN void pcpu__pool_exit_locked(bool keep_first_range, char **old_first,
                                        size_t *old_size);

/* Like pcpu__pool_alloc_locked, from a chunk that has the run by its
 * hints, never a new chunk: NULL (errno 0) when none has, so that a
 * caller that can do with smaller pieces does not grow the pool. */
PCPU_HIDDEN void *pcpu__pool_take_run_locked(size_t bits, size_t count, size_t align_bits,
                                             struct pcpu_chunk **chunk_out);
/* Allocate count objects of bits granules, contiguous, the first aligned to
 * align_bits; returns the first object's cookie (the others follow) and its
 * chunk, or NULL with errno (ENOMEM). */
PCPU_HIDDEN void *pcpu__pool_alloc_locked(size_t bits, size_t count, size_t align_bits,
                                          bool reserved, struct pcpu_chunk **chunk_out);
/* Give an allocation back to its chunk's map; true when the balance
 * policy wants a pass (too many empty pages, or an empty chunk). */
PCPU_HIDDEN bool pcpu__pool_release_locked(struct pcpu_chunk *c, size_t bit, size_t bits);
/* The same for n objects at once (any chunks, any order; reordered):
 * neighbours in one chunk are given back as one run. */
PCPU_HIDDEN bool pcpu__pool_release_many_locked(struct pcpu_freed *objs, size_t n);
/* Destroy empty chunks but a spare and depopulate empty pages down to the
 * low watermark (all: everything empty); returns pages given back. */
PCPU_HIDDEN size_t pcpu__pool_balance_locked(bool all);

/* The chunk structure that owns bit of a chunk found by address: the
 * reserved part for the first chunk's reserved area, NULL for its static
 * area (static variables are not allocations). */
static inline struct pcpu_chunk *pcpu__pool_owner(struct pcpu_chunk *c, size_t bit)
{
    if (c->is_first && bit < c->start_bit) {
        struct pcpu_chunk *r = pcpu__pool_anchor.reserved;
        return bit >= r->start_bit && bit < r->end_bit ? r : NULL;
    }
    return c;
}

/* Walks, for reports and checks: the reserved part, then every chunk
 * oldest first (fn may not destroy chunks); chunk number idx in that order
 * with the first chunk first (NULL past the end). */
PCPU_HIDDEN void pcpu__pool_for_each_chunk_locked(void (*fn)(struct pcpu_chunk *, void *),
                                                  void *arg);
PCPU_HIDDEN const struct pcpu_chunk *pcpu__pool_chunk_at_locked(unsigned int idx);
PCPU_HIDDEN void pcpu__pool_stats_locked(struct pcpu_pool_stats *out);
PCPU_HIDDEN const char *pcpu__pool_backend_name(void);
/* Every invariant of every chunk, the slots and the totals; the number of
 * problems, each described on stderr. */
PCPU_HIDDEN int pcpu__pool_validate_locked(void);
/* What an operation on the object at cookie (bits granules) can have
 * broken, O(blocks touched); 0 if the cookie is in no chunk any more. */
PCPU_HIDDEN int pcpu__pool_validate_around_locked(const void *cookie, size_t bits);

#endif
