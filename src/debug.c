/*
 * debug.c - robust mode and sanitizer annotations.
 *
 * Three independent helpers share the hooks the core calls around every
 * allocation and free (pcpu__debug_active gates them all):
 *
 * Robust mode (PCPU_F_DEBUG or PERCPU_DEBUG=1).
 *   On free, the core hands the object to pcpu__debug_on_free() instead of
 *   zeroing it.  Each unit is looked at once: a unit whose bytes are all
 *   zero was never written (or written back to zero) and is left alone, so
 *   untouched units never become resident; any other unit is filled with
 *   the poison byte.  The "free space reads zero" invariant therefore
 *   becomes "free space reads zero or poison" in robust mode, and every
 *   path that hands map space to a user goes through
 *   pcpu__debug_on_alloc(): the locked path, the thread-cache path, and
 *   late static sections (statics.c).  There every byte of every unit must
 *   be zero or poison; anything else was written after free and stops the
 *   process with a message naming the cookie, the unit and the offset.
 *   Poisoned bytes are then zeroed, so the user still gets zeroed memory.
 *   Poison survives in thread caches and in the map (that is what catches
 *   a late write after the object was recycled by a later free); pages
 *   the reclaimer gives back read zero again, which is also accepted.
 *   The check is per byte, so a late write of 0 or of the poison value
 *   itself goes unnoticed; that is the price of not tracking which unit
 *   was poisoned.
 *   After every public operation pcpu_validate() runs and any problem
 *   stops the process; at pcpu_exit() live allocations are listed as
 *   leaks on stderr, one line each, at most LEAK_LINES lines.
 *
 * AddressSanitizer (when the library itself is built with it).
 *   Freed bytes are poisoned in every unit's shadow and unpoisoned when
 *   handed out again, so a use after free through any CPU's copy is
 *   reported.  Shadow poisoning costs no per-CPU memory, so here every
 *   unit is poisoned, touched or not.  Only whole 8-byte shadow granules
 *   are poisoned (see asan_mark), so up to 4 bytes at the ends of an
 *   object go unchecked.  A chunk's shadow is cleared when the chunk is
 *   unmapped: a later mapping at the same address must start clean.
 *
 * Valgrind (when <valgrind/memcheck.h> was found at build time).
 *   Freed bytes become NOACCESS in every unit and allocations DEFINED
 *   (they are zeroed, so their contents are known).  MALLOCLIKE_BLOCK
 *   would be the other choice, but it turns every unit copy into a heap
 *   block of its own for the leak checker and wants a FREELIKE_BLOCK for
 *   each before the chunk is unmapped; the per-CPU bytes are not heap
 *   blocks, they are pieces of a mapping whose lifetime the allocator
 *   manages, which is exactly what the MAKE_MEM_* requests describe.
 *   Valgrind forgets the marks itself when a mapping goes away.  The
 *   requests cost a few instructions when not running under valgrind.
 */
#include "internal.h"

#include <stdio.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
#define PCPU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PCPU_ASAN 1
#endif
#endif

#ifdef PCPU_ASAN
#include <sanitizer/asan_interface.h>
#include <sys/mman.h>
#endif

#ifdef PCPU_HAVE_VALGRIND
#include <valgrind/memcheck.h>
#endif

#define POISON_BYTE 0xa5u
#define LEAK_LINES 32u

bool pcpu__debug_active;
static bool robust;          /* PCPU_F_DEBUG in this initialisation */

/* Annotations are wanted whenever the tool is there, robust mode or not. */
static bool annotate(void)
{
#if defined(PCPU_ASAN)
    return true;
#elif defined(PCPU_HAVE_VALGRIND)
    return RUNNING_ON_VALGRIND != 0;
#else
    return false;
#endif
}

void pcpu__debug_init(void)
{
    robust = pcpu__g.debug;
    pcpu__debug_active = robust || annotate();
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
static void mark_unit(void *p, size_t bytes, bool on)
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

void pcpu__debug_on_alloc(void *cookie, size_t bytes)
{
    const uint32_t poison = POISON_BYTE * 0x01010101u;
    unsigned int n = pcpu__nr_units;
    for (unsigned int u = 0; u < n; u++) {
        unsigned char *p = (unsigned char *)cookie + pcpu__cpu_offsets[u];
        mark_unit(p, bytes, true);
        if (!robust)
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

void pcpu__debug_on_free(void *cookie, size_t bytes)
{
    if (!robust) {
        pcpu__zero_units(cookie, bytes);
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
        mark_unit((char *)cookie + pcpu__cpu_offsets[u], bytes, false);
}

/*
 * ASan does not clear the shadow of memory that is unmapped, and a later
 * mapping at the same address (the next chunk, or anything else) would
 * inherit the poison.  Unpoisoning the whole span with the ASan call would
 * write zeroes over its shadow and make an eighth of the span resident, so
 * the whole shadow pages are handed back to the OS instead (they read as
 * zero, "addressable", afterwards) and only the ends go through ASan.
 */
void pcpu__debug_on_unmap(void *addr, size_t size)
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

void pcpu__debug_after_op(void)
{
    if (!robust)
        return;
    int problems = pcpu__validate_all();
    if (problems)
        pcpu__die("percpu: robust mode: %d invariant violation%s (details above)", problems,
                  problems == 1 ? "" : "s");
}

struct leak_ctx {
    unsigned long nr;
    size_t bytes;
};

static void leaks_in(struct pcpu_chunk *c, void *arg)
{
    struct leak_ctx *l = arg;
    for (size_t bit = c->start_bit; bit < c->end_bit; bit++) {
        if (!pcpu__live_test(c, bit))
            continue;
        size_t size = pcpu__chunk_alloc_bits(c, bit) * PCPU_GRANULE;
        if (l->nr < LEAK_LINES)
            fprintf(stderr, "percpu: leak: %p (%zu bytes) still allocated at pcpu_exit\n",
                    (void *)(c->base + bit * PCPU_GRANULE), size);
        l->nr++;
        l->bytes += size;
    }
}

void pcpu__debug_on_exit(void)
{
    if (!robust)
        return;
    struct leak_ctx l = {0};
    pcpu__for_each_chunk(leaks_in, &l);
    if (l.nr > LEAK_LINES)
        fprintf(stderr, "percpu: leak: ... and %lu more\n", l.nr - LEAK_LINES);
    if (l.nr)
        fprintf(stderr, "percpu: leak: %lu allocation%s, %zu bytes per unit\n", l.nr,
                l.nr == 1 ? "" : "s", l.bytes);
}
