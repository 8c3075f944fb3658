/* SPDX-License-Identifier: MIT */
/*
 * version.c - the version of the library a program runs with.
 *
 * The header's PCPU_VERSION_* say which version a program was compiled
 * against; these two say which library the dynamic linker actually gave
 * it (they are compiled into libpercpu, never inlined).  Plain constants:
 * no state, no initialisation, safe in any thread and in signal handlers.
 */
#include "internal.h"

unsigned int pcpu_version(void)
{
    return PCPU_VERSION_NUMBER;
}

const char *pcpu_version_string(void)
{
    return PCPU_VERSION;
}
