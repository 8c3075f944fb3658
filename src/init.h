/* SPDX-License-Identifier: MIT */
/*
 * init.h - the allocator's life (init.c): configuration, the states it
 * goes through, module registration, fork.
 */
#ifndef PCPU_INIT_H
#define PCPU_INIT_H

#include "internal.h"

enum pcpu_state {
    PCPU_STATE_OFF,      /* not initialised                              */
    PCPU_STATE_AUTO,     /* set up for static sections only; may still be
                            laid out again by pcpu_init()               */
    PCPU_STATE_USED,     /* in use: nothing moves any more               */
};

/* What the API paths read on every call, fixed at initialisation. */
struct pcpu_settings {
    bool tcache;         /* per-thread caches (not PCPU_F_NO_CACHE)      */
    bool robust;         /* PCPU_F_DEBUG                                 */
    /* alloc.c's fast paths may run: the cache is on and no per-object
     * hook is wanted (robust mode, sanitizers, valgrind). */
    bool fast_alloc;
    /* Many units: fast frees are not zeroed one by one but wait in the
     * thread's batch (one page-table scan per batch). */
    bool free_batched;
    enum pcpu_backend backend;
};
PCPU_HIDDEN extern struct pcpu_settings pcpu__settings;
PCPU_HIDDEN extern _Atomic int pcpu__state;

static inline bool pcpu__ready(void)
{
    return atomic_load_explicit(&pcpu__state, memory_order_acquire) == PCPU_STATE_USED;
}
/* What pcpu_exit() must tell a layer above before it forgets the unit
 * offsets (regions shared between processes detach their mappings): the
 * layer installs the call when it first needs it, so that this layer
 * calls nothing above it by name.  One slot; installing it twice with the
 * same function is harmless. */
PCPU_HIDDEN void pcpu__on_exit(void (*fn)(void));

/* Initialise with defaults if needed and mark the allocator used; 0 or -1
 * with errno. */
PCPU_HIDDEN int pcpu__ensure_init_slow(void);
static inline int pcpu__ensure_init(void)
{
    return likely(pcpu__ready()) ? 0 : pcpu__ensure_init_slow();
}

#endif
