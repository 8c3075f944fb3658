/* SPDX-License-Identifier: MIT */
/*
 * percpu/list.h - per-CPU lists.
 * Part of <percpu.h>: include that.
 *
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
#ifndef PERCPU_LIST_H
#define PERCPU_LIST_H
#ifndef PERCPU_H
#error "<percpu/list.h> is not for direct inclusion: #include <percpu.h>"
#endif

#ifdef __cplusplus
extern "C" {
#endif

struct pcpu_list_node {
    struct pcpu_list_node *next;
};
struct pcpu_list {
    struct pcpu_list_node *head;
};

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
                                             struct pcpu_list_node *node);

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
static PCPU__INLINE struct pcpu_list_node *pcpu_this_list_pop(struct pcpu_list *list);

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

#ifdef __cplusplus
}
#endif

#include "bits/list.h"

#endif /* PERCPU_LIST_H */
