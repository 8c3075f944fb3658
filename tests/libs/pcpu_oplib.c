/* SPDX-License-Identifier: MIT */
/* pcpu_oplib.c - a dlopen()ed module that runs this-CPU operations (its rseq descriptors live in it), built with and without PCPU_DEFINE variables. */
#include <stdint.h>

#include "percpu.h"
#include "pcpu_oplib.h"

#define EXPORT __attribute__((visibility("default")))

/* One round of every kind of update on an int and a long object.  The
 * calls are spelled out per type so that each _Generic branch (and its own
 * rseq sequence) is compiled into this module. */
static void round_int(int *c)
{
    pcpu_this_inc(c);
    pcpu_this_add(c, 2);
    (void)pcpu_this_add_return(c, 3);
    for (;;) {
        int seen = pcpu_this_read(c);
        if (pcpu_this_cmpxchg(c, seen, seen + 1) == seen)
            break;
    }
    pcpu_this_sub(c, 1);
}

static void round_long(long *c)
{
    pcpu_this_inc(c);
    pcpu_this_add(c, 2L);
    (void)pcpu_this_add_return(c, 3L);
    for (;;) {
        long seen = pcpu_this_read(c);
        if (pcpu_this_cmpxchg(c, seen, seen + 1) == seen)
            break;
    }
    pcpu_this_sub(c, 1L);
}

#ifndef OPLIB_NO_STATICS
PCPU_DEFINE(int, ol_int) = OPLIB_INT_INIT;
PCPU_DEFINE(long, ol_long) = OPLIB_LONG_INIT;
PCPU_DEFINE(long, ol_zero);
PCPU_DEFINE(int, ol_written);

/* 0 if the module's variables hold their initial values in unit @cpu. */
EXPORT int pcpu_oplib_check_initial(unsigned int cpu)
{
    if (*PCPU_PTR(PCPU_VAR(ol_int), cpu) != OPLIB_INT_INIT)
        return 1;
    if (*PCPU_PTR(PCPU_VAR(ol_long), cpu) != OPLIB_LONG_INIT)
        return 2;
    if (*PCPU_PTR(PCPU_VAR(ol_zero), cpu) != 0)
        return 3;
    if (*PCPU_PTR(PCPU_VAR(ol_written), cpu) != 0)
        return 4;
    return 0;
}

/* The module's own counters, as sums over every unit. */
EXPORT long pcpu_oplib_sum_int(void)
{
    return pcpu_sum(PCPU_VAR(ol_int));
}

EXPORT long pcpu_oplib_sum_long(void)
{
    return pcpu_sum(PCPU_VAR(ol_long));
}

EXPORT long pcpu_oplib_sum_zero(void)
{
    return pcpu_sum(PCPU_VAR(ol_zero));
}

/* Every unit of ol_written is 0 or OPLIB_WRITTEN, and at least one is
 * OPLIB_WRITTEN (after a pcpu_oplib_run()): returns 0, else 1. */
EXPORT int pcpu_oplib_check_written(void)
{
    int seen = 0;
    pcpu_for_each_cpu(cpu)
    {
        int v = *PCPU_PTR(PCPU_VAR(ol_written), cpu);
        if (v != 0 && v != OPLIB_WRITTEN)
            return 1;
        seen |= v == OPLIB_WRITTEN;
    }
    return !seen;
}
#endif

/*
 * @rounds rounds of updates on the program's cookies (and, in the module
 * with variables, on its own), then the writes.  The last operation before
 * returning is a this-CPU operation of this module, so the thread's rseq
 * area is left pointing at one of this module's descriptors.
 */
EXPORT void pcpu_oplib_run(const struct oplib_cookies *ck, int rounds)
{
    for (int r = 0; r < rounds; r++) {
        if (ck) {
            round_int(ck->i);
            round_long(ck->l);
        }
#ifndef OPLIB_NO_STATICS
        round_int(PCPU_VAR(ol_int));
        round_long(PCPU_VAR(ol_long));
        round_long(PCPU_VAR(ol_zero));
#endif
    }
#ifndef OPLIB_NO_STATICS
    pcpu_this_write(PCPU_VAR(ol_written), OPLIB_WRITTEN);
#endif
    if (ck) {
        pcpu_this_write(ck->wl, (long)OPLIB_WRITTEN);
        pcpu_this_write(ck->wi, OPLIB_WRITTEN);
    }
}

/* See enum oplib_exit: the last sequence this returns from left early. */
EXPORT int pcpu_oplib_leave(const struct oplib_objs *o, enum oplib_exit how)
{
    switch (how) {
    case OPLIB_EXIT_NONE:
        return 0;
    case OPLIB_EXIT_REF_ATOMIC:
        pcpu_ref_get(o->ref);
        return 0;
    case OPLIB_EXIT_RWSEM_WRITER:
        return pcpu_rwsem_down_read_trylock(o->rwsem) ? 1 : 0;
    case OPLIB_EXIT_COUNTER_FOLD:
        /* The second reaches the batch from the same unit (or the first
         * does, after a migration): the program checks the sum, 10. */
        pcpu_counter_add_batch(o->counter, 5, 8);
        pcpu_counter_add_batch(o->counter, 5, 8);
        return 0;
    case OPLIB_EXIT_CMPXCHG_FAILS:
        return pcpu_this_cmpxchg(o->cell, 1L, 2L) == 0 ? 0 : 1;
    case OPLIB_EXIT_LIST_EMPTY:
        return pcpu_this_list_pop(o->list) == NULL ? 0 : 1;
    }
    return 1;
}
