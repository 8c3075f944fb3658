/* SPDX-License-Identifier: MIT */
/*
 * units.c - every walk over the units of one object: their set-up, and
 * static templates.  The walks of their own are in units_zero.c (zeroing
 * and the check for zero), units_robust.c (robust mode's poison and
 * checks) and units_marks.c (marks for the memory tools).
 *
 * Static templates.  A PCPU_DEFINE section is copied into every unit, but
 * only its non-zero parts, so zero-initialised variables leave units
 * untouched too.
 */
#include "units.h"

#include <string.h>

bool pcpu__units_hooked;

void pcpu__units_init(bool robust_mode)
{
    pcpu__units_zero_check_init();
    pcpu__units_robust_set(robust_mode);
    pcpu__units_hooked = robust_mode || pcpu__units_annotate();
}

void pcpu__units_fill(void *cookie, const void *tmpl, size_t size)
{
    const size_t step = 64;
    for (size_t off = 0; off < size; off += step) {
        size_t len = size - off < step ? size - off : step;
        const char *src = (const char *)tmpl + off;
        bool zero = true;
        for (size_t i = 0; i < len; i++)
            if (src[i]) {
                zero = false;
                break;
            }
        if (zero)
            continue;
        for (unsigned int cpu = 0; cpu < pcpu__nr_units; cpu++)
            memcpy((char *)cookie + pcpu__cpu_offsets[cpu] + off, src, len);
    }
}

bool pcpu__units_equal(const void *cookie, const void *tmpl, size_t size)
{
    for (unsigned int cpu = 0; cpu < pcpu__nr_units; cpu++)
        if (memcmp((const char *)cookie + pcpu__cpu_offsets[cpu], tmpl, size) != 0)
            return false;
    return true;
}
