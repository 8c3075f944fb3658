/* SPDX-License-Identifier: MIT */
/*
 * units_marks.c - telling the memory tools which per-CPU bytes are in use,
 * in every unit: AddressSanitizer (when the library itself is built with
 * it) and valgrind (when <valgrind/memcheck.h> was found at build time).
 *
 * AddressSanitizer (when the library itself is built with it).  Freed
 * bytes are poisoned in every unit's shadow and unpoisoned when handed out
 * again, so a use after free through any CPU's copy is reported.  Shadow
 * poisoning costs no per-CPU memory, so here every unit is poisoned,
 * touched or not.  Only whole 8-byte shadow granules are poisoned (see
 * asan_mark), so up to 4 bytes at the ends of an object go unchecked.  A
 * chunk's shadow is cleared when the chunk is unmapped: a later mapping at
 * the same address must start clean.
 *
 * Valgrind (when <valgrind/memcheck.h> was found at build time).  Freed
 * bytes become NOACCESS in every unit and allocations DEFINED (they are
 * zeroed, so their contents are known).  MALLOCLIKE_BLOCK would be the
 * other choice, but it turns every unit copy into a heap block of its own
 * for the leak checker and wants a FREELIKE_BLOCK for each before the
 * chunk is unmapped; the per-CPU bytes are not heap blocks, they are
 * pieces of a mapping whose lifetime the allocator manages, which is
 * exactly what the MAKE_MEM_* requests describe.  Valgrind forgets the
 * marks itself when a mapping goes away.
 */
#include "units_marks.h"

#ifdef PCPU_ASAN
#include <sanitizer/asan_interface.h>
#include <sys/mman.h>
#endif
#ifdef PCPU_HAVE_VALGRIND
#include <valgrind/memcheck.h>
#endif

#include "os.h"

/* Annotations are wanted whenever the tool is there, robust mode or not. */
bool pcpu__units_annotate(void)
{
#if defined(PCPU_ASAN)
    return true;
#elif defined(PCPU_HAVE_VALGRIND)
    return RUNNING_ON_VALGRIND != 0;
#else
    return false;
#endif
}

#ifdef PCPU_ASAN
/*
 * ASan keeps one shadow byte per 8 bytes, but objects are 4-byte granules,
 * so two objects can share a shadow byte, and they can be freed and
 * allocated by two threads at once: ASan's partial-granule updates are
 * read-modify-writes that would then race and could leave a live object
 * poisoned.  So a free poisons only the 8-byte granules wholly inside the
 * object (nobody else owns them), and an allocation unpoisons the object
 * widened to whole granules (every writer of a shared granule writes the
 * same "addressable").  Up to 4 bytes at either end of an object are thus
 * not checked -- a missed report, never a false one.
 */
static void asan_mark(void *p, size_t bytes, bool on)
{
    uintptr_t b = (uintptr_t)p, e = b + bytes;
    if (on) {
        b &= ~(uintptr_t)7;
        e = (e + 7) & ~(uintptr_t)7;
        ASAN_UNPOISON_MEMORY_REGION((void *)b, e - b);
    } else {
        b = (b + 7) & ~(uintptr_t)7;
        e &= ~(uintptr_t)7;
        if (e > b)
            ASAN_POISON_MEMORY_REGION((void *)b, e - b);
    }
}
#endif

/* Mark [p, p+bytes) of one unit usable (on) or freed (off) for the tools. */
void pcpu__units_mark(void *p, size_t bytes, bool on)
{
#ifdef PCPU_ASAN
    asan_mark(p, bytes, on);
#endif
#ifdef PCPU_HAVE_VALGRIND
    if (on)
        VALGRIND_MAKE_MEM_DEFINED(p, bytes);
    else
        VALGRIND_MAKE_MEM_NOACCESS(p, bytes);
#endif
    (void)p;
    (void)bytes;
    (void)on;
}

/*
 * ASan does not clear the shadow of memory that is unmapped, and a later
 * mapping at the same address (the next chunk, or anything else) would
 * inherit the poison.  Unpoisoning the whole span with the ASan call would
 * write zeroes over its shadow and make an eighth of the span resident, so
 * the whole shadow pages are handed back to the OS instead (they read as
 * zero, "addressable", afterwards) and only the ends go through ASan.
 */
void pcpu__units_unmapping(void *addr, size_t size)
{
#ifdef PCPU_ASAN
    size_t scale, offset;
    __asan_get_shadow_mapping(&scale, &offset);
    uintptr_t b = (uintptr_t)addr, e = b + size;
    uintptr_t ps = pcpu__page_size;
    uintptr_t sb = ((b >> scale) + offset + ps - 1) & ~(ps - 1);
    uintptr_t se = ((e >> scale) + offset) & ~(ps - 1);
    if (se > sb) {
        uintptr_t mb = (sb - offset) << scale, me = (se - offset) << scale;
        ASAN_UNPOISON_MEMORY_REGION(addr, mb - b);
        if (madvise((void *)sb, se - sb, MADV_DONTNEED) != 0)
            ASAN_UNPOISON_MEMORY_REGION((void *)mb, me - mb);
        ASAN_UNPOISON_MEMORY_REGION((void *)me, e - me);
    } else {
        ASAN_UNPOISON_MEMORY_REGION(addr, size);
    }
#endif
    (void)addr;
    (void)size;
}
