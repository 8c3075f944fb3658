/*
 * debug.c - robust mode and sanitizer annotations.
 *
 * Placeholder until robust mode lands: nothing is active.
 */
#include "internal.h"

bool pcpu__debug_active;

void pcpu__debug_init(void)
{
    pcpu__debug_active = pcpu__g.debug;
}

void pcpu__debug_on_alloc(void *cookie, size_t bytes)
{
    (void)cookie;
    (void)bytes;
}

void pcpu__debug_on_free(void *cookie, size_t bytes)
{
    (void)cookie;
    (void)bytes;
}

void pcpu__debug_after_op(void)
{
}

void pcpu__debug_on_exit(void)
{
}
