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

#endif
