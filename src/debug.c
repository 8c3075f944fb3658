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

void pcpu__debug_after_op(const void *cookie, size_t bits)
{
    if (!robust)
        return;
    /* Only what the operation touched: a whole validation after every
     * call made robust mode quadratic.  The whole allocator is checked by
     * pcpu_validate() and at pcpu_exit(). */
    int problems = 0;
    pcpu__lock();
    struct pcpu_chunk *c = pcpu__lookup(cookie);
    if (c) {
        size_t bit = (size_t)((const char *)cookie - c->base) / PCPU_GRANULE;
        struct pcpu_chunk *owner = pcpu__owner_chunk(c, bit);
        if (owner)
            problems = pcpu__chunk_validate_range(owner, bit, bits);
    }
    pcpu__unlock();
    if (problems)
        pcpu__die("percpu: robust mode: %d invariant violation%s after an operation on %p "
                  "(details above)",
                  problems, problems == 1 ? "" : "s", cookie);
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

/* Free space and cached objects must read zero or poison in every unit;
 * counts the granules that do not, and names the first few. */
struct dirt_ctx {
    unsigned long nr;
};

/* The exit scan reads freed memory on purpose: under ASan it is poisoned
 * (see asan_mark), and the library's own look at it is not a use. */
#if defined(PCPU_ASAN)
#define PCPU_READS_FREED __attribute__((no_sanitize("address")))
#else
#define PCPU_READS_FREED
#endif

PCPU_READS_FREED static bool granule_dirty(const unsigned char *p)
{
    for (size_t j = 0; j < PCPU_GRANULE; j++)
        if (p[j] != 0 && p[j] != POISON_BYTE)
            return true;
    return false;
}

/* Scan [bit, bit+n) of c in every unit; obj is the freed object's cookie
 * when the range is one (cached), else NULL (free space). */
PCPU_READS_FREED static void scan_freed(const struct pcpu_chunk *c, size_t bit, size_t n,
                                        const void *obj, struct dirt_ctx *d)
{
    size_t ps = pcpu__page_size;
    for (unsigned int u = 0; u < pcpu__nr_units; u++) {
        const unsigned char *unit = (const unsigned char *)c->base + pcpu__cpu_offsets[u];
        for (size_t b = bit; b < bit + n; b++) {
            size_t off = b * PCPU_GRANULE;
            /* Unpopulated pages are not readable (vm) and read zero. */
            if (!c->is_reserved && !pcpu__test_bit(c->populated, off / ps)) {
                b = ((off / ps + 1) * ps) / PCPU_GRANULE - 1;
                continue;
            }
            if (!granule_dirty(unit + off))
                continue;
            /* Named by the granule, in cookie space, as a cookie would be. */
            if (d->nr < LEAK_LINES && obj)
                fprintf(stderr, "percpu: robust mode: %p was written after free (cpu %u, "
                        "offset %zu of the freed object %p)\n", (void *)(c->base + off), u,
                        off - (size_t)((const char *)obj - c->base), obj);
            else if (d->nr < LEAK_LINES)
                fprintf(stderr, "percpu: robust mode: %p was written after free (cpu %u, "
                        "free space)\n", (void *)(c->base + off), u);
            d->nr++;
            break; /* one report per unit and range */
        }
    }
}

static void dirt_in(struct pcpu_chunk *c, void *arg)
{
    size_t bit = c->start_bit;
    while (bit < c->end_bit) {
        size_t z = pcpu__next_zero(c->alloc_map, bit, c->end_bit);
        if (z >= c->end_bit)
            break;
        size_t e = pcpu__next_set(c->alloc_map, z, c->end_bit);
        scan_freed(c, z, e - z, NULL, arg);
        bit = e;
    }
}

static void dirt_in_cached(struct pcpu_chunk *c, void *cookie, size_t bits, void *arg)
{
    size_t bit = (size_t)((char *)cookie - c->base) / PCPU_GRANULE;
    scan_freed(c, bit, bits, cookie, arg);
}

void pcpu__debug_on_exit(void)
{
    bool leaks_wanted = robust || (pcpu__g.cfg.flags & PCPU_F_REPORT_LEAKS);
    if (!leaks_wanted)
        return;
    struct leak_ctx l = {0};
    pcpu__for_each_chunk(leaks_in, &l);
    if (l.nr > LEAK_LINES)
        fprintf(stderr, "percpu: leak: ... and %lu more\n", l.nr - LEAK_LINES);
    if (l.nr)
        fprintf(stderr, "percpu: leak: %lu allocation%s, %zu bytes per unit\n", l.nr,
                l.nr == 1 ? "" : "s", l.bytes);
    if (!robust)
        return;
    struct dirt_ctx d = {0};
    pcpu__for_each_chunk(dirt_in, &d);
    pcpu__tcache_for_each_cached_locked(dirt_in_cached, &d);
    int problems = pcpu__validate_locked();
    if (l.nr || d.nr || problems)
        pcpu__die("percpu: robust mode: at pcpu_exit: %lu leaked allocation%s, %lu write%s "
                  "after free, %d invariant violation%s",
                  l.nr, l.nr == 1 ? "" : "s", d.nr, d.nr == 1 ? "" : "s", problems,
                  problems == 1 ? "" : "s");
}
