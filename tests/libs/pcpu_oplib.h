/* SPDX-License-Identifier: MIT */
/* pcpu_oplib.h - what test_modules_dlclose and pcpu_oplib.c share: the cookies the program hands in and the net effect of one round. */
#ifndef PCPU_OPLIB_H
#define PCPU_OPLIB_H

/* Cookies the program allocated and hands to pcpu_oplib_run(). */
struct oplib_cookies {
    int *i;   /* gets OPLIB_NET per round            */
    long *l;  /* gets OPLIB_NET per round            */
    int *wi;  /* pcpu_this_write() of OPLIB_WRITTEN  */
    long *wl; /* pcpu_this_write() of OPLIB_WRITTEN  */
};

/* What one round adds to each counter: inc, add 2, add_return 3,
 * cmpxchg +1, sub 1. */
#define OPLIB_NET 6
#define OPLIB_WRITTEN 77

/* Initial values of the module's variables (pcpu_oplib.c). */
#define OPLIB_INT_INIT 5
#define OPLIB_LONG_INIT 7

typedef void (*oplib_run_fn)(const struct oplib_cookies *ck, int rounds);

/*
 * pcpu_oplib_leave(): one operation of the module whose sequence leaves
 * other than through its commit, so that what the thread last armed is a
 * descriptor of the module whose sequence ended at an early exit.
 */
enum oplib_exit {
    OPLIB_EXIT_NONE,
    OPLIB_EXIT_REF_ATOMIC,    /* pcpu_ref_get() of a reference in atomic mode  */
    OPLIB_EXIT_RWSEM_WRITER,  /* pcpu_rwsem_down_read_trylock(), writer holds  */
    OPLIB_EXIT_COUNTER_FOLD,  /* pcpu_counter_add_batch() that reaches the batch */
    OPLIB_EXIT_CMPXCHG_FAILS, /* pcpu_this_cmpxchg() whose compare fails        */
    OPLIB_EXIT_LIST_EMPTY,    /* pcpu_this_list_pop() of an empty list          */
};

/* The objects those operations work on (set up by the program). */
struct oplib_objs {
    struct pcpu_ref *ref;     /* in atomic mode                        */
    struct pcpu_rwsem *rwsem; /* held by a writer                      */
    struct pcpu_counter *counter;
    long *cell;               /* a cookie whose units are all 0        */
    struct pcpu_list *list;   /* empty                                 */
};

/* Returns 0 when the operation did what it should (the reference got,
 * the trylock failed, the count right, the cmpxchg saw 0, the pop NULL). */
typedef int (*oplib_leave_fn)(const struct oplib_objs *o, enum oplib_exit how);

#endif
