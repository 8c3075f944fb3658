/* SPDX-License-Identifier: MIT */
/*
 * units_robust.c - robust mode's poisoning and checks of freed objects, in
 * every unit.
 *
 * Robust mode (PCPU_F_DEBUG or PERCPU_DEBUG=1).  A free poisons instead of
 * zeroing: each unit is looked at once, and one whose bytes are all zero
 * is left alone (untouched units stay untouched); any other is filled with
 * the poison byte.  The invariant "free space reads zero" becomes "free
 * space reads zero or poison", and every path that hands space to a user
 * goes through pcpu__units_handed_out(): there every byte of every unit
 * must be zero or poison; anything else was written after free and stops
 * the process with a message naming the cookie, the unit and the offset.
 * Poisoned bytes are then zeroed, so the user still gets zeroed memory.
 * Poison survives in thread caches and in the map (that is what catches a
 * late write after the object was recycled); pages the reclaimer gives
 * back read zero again, which is also accepted.  The check is per byte,
 * so a late write of 0 or of the poison value itself goes unnoticed: the
 * price of not tracking which unit was poisoned.
 */
#include "units_robust.h"

#include "units_marks.h"
#include "units_zero.h"

#ifdef PCPU_HAVE_VALGRIND
#include <valgrind/memcheck.h>
#endif

#define POISON_BYTE 0xa5u

static bool robust;

void pcpu__units_robust_set(bool on)
{
    robust = on;
}

bool pcpu__units_robust(void)
{
    return robust;
}

/* Objects are whole granules (4 bytes) at granule-aligned offsets, so the
 * scans go a word at a time; memcpy keeps them free of aliasing trouble. */
static inline uint32_t word_at(const unsigned char *p, size_t i)
{
    uint32_t w;
    memcpy(&w, p + i, sizeof(w));
    return w;
}

static bool unit_is_zero(const unsigned char *p, size_t bytes)
{
    for (size_t i = 0; i < bytes; i += PCPU_GRANULE)
        if (word_at(p, i))
            return false;
    return true;
}

void pcpu__units_handed_out(void *cookie, size_t bytes)
{
    const uint32_t poison = POISON_BYTE * 0x01010101u;
    unsigned int n = pcpu__nr_units;
    for (unsigned int u = 0; u < n; u++) {
        unsigned char *p = (unsigned char *)cookie + pcpu__cpu_offsets[u];
        pcpu__units_mark(p, bytes, true);
        if (!pcpu__units_robust())
            continue;
        bool poisoned = false;
        for (size_t i = 0; i < bytes; i += PCPU_GRANULE) {
            uint32_t w = word_at(p, i);
            if (w == 0)
                continue;
            poisoned = true;
            if (w == poison)
                continue;
            /* A mix of zero and poison is fine: objects are carved anew. */
            for (size_t j = i; j < i + PCPU_GRANULE; j++)
                if (p[j] != 0 && p[j] != POISON_BYTE)
                    pcpu__die("percpu: robust mode: %p was written after free (cpu %u, "
                              "offset %zu, byte 0x%02x)",
                              cookie, u, j, p[j]);
        }
        if (poisoned)
            memset(p, 0, bytes);
    }
}

void pcpu__units_freed_hooked(void *cookie, size_t bytes)
{
    if (!pcpu__units_robust()) {
        pcpu__units_zero(cookie, bytes);
    } else {
        unsigned int n = pcpu__nr_units;
        for (unsigned int u = 0; u < n; u++) {
            unsigned char *p = (unsigned char *)cookie + pcpu__cpu_offsets[u];
            /* Reading first keeps never-written units on the zero page. */
            if (!unit_is_zero(p, bytes))
                memset(p, POISON_BYTE, bytes);
        }
    }
    for (unsigned int u = 0; u < pcpu__nr_units; u++)
        pcpu__units_mark((char *)cookie + pcpu__cpu_offsets[u], bytes, false);
}

PCPU_READS_FREED size_t pcpu__units_first_dirty(const void *cookie, size_t bytes,
                                                 unsigned int u)
{
    const unsigned char *p = (const unsigned char *)cookie + pcpu__cpu_offsets[u];
    size_t at = SIZE_MAX;
    /* The memory is freed, NOACCESS for valgrind (pcpu__units_mark): the check's
     * own reads are not the program's uses after free. */
#ifdef PCPU_HAVE_VALGRIND
    VALGRIND_DISABLE_ERROR_REPORTING;
#endif
    for (size_t i = 0; i < bytes && at == SIZE_MAX; i += PCPU_GRANULE)
        for (size_t j = i; j < i + PCPU_GRANULE; j++)
            if (p[j] != 0 && p[j] != POISON_BYTE) {
                at = i;
                break;
            }
#ifdef PCPU_HAVE_VALGRIND
    VALGRIND_ENABLE_ERROR_REPORTING;
#endif
    return at;
}
