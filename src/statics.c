/* SPDX-License-Identifier: MIT */
/*
 * statics.c - static per-CPU variables (PCPU_DEFINE) of every module.
 *
 * Each module (the program, each shared library) has one section of
 * PCPU_DEFINE variables and registers it from a constructor that
 * percpu.h puts in every file.  A section is a template: the variables are
 * used through PCPU_VAR(), which adds the module's delta to the template
 * address to get a cookie into the first chunk.
 *
 * The rule that everything here follows: once placed, a section never
 * moves while the allocator lives.  A program may touch its variables
 * (this-CPU operations, pcpu_ptr(), saved addresses) from the moment its
 * constructor ran, and other threads may be using them while a library is
 * loaded, so "laying the first chunk out again" is never safe after the
 * fact.  Instead:
 *   - The first module to register sets the allocator up for statics only
 *     (init.c's AUTO state) with a static area that has room to spare
 *     (PCPU_STATIC_SLACK), and later modules loaded at start-up are
 *     appended to it.
 *   - Modules that do not fit, and every module registered once the
 *     allocator is in use, take space from the reserved area, which falls
 *     back to dynamic space, so a load never fails for want of room.
 *   - pcpu_init() may still lay everything out again with the program's
 *     configuration, but only while nothing has used per-CPU memory:
 *     every this-CPU operation and pcpu_sum() leave AUTO on first use, and
 *     pcpu__statics_pristine() checks that no unit was written through a
 *     pointer.
 * A copy keeps the template's address modulo its alignment so that every
 * variable keeps its alignment, and only non-zero parts of the template
 * are copied, so zero-initialised variables leave untouched units
 * untouched.
 *
 * After pcpu_exit() a module's delta still describes the old placement;
 * the first chunk's address range stays reserved (no memory) until the
 * next pcpu_exit(), so a cookie computed from it can be recognised and
 * moved to the new placement by the this-CPU slow paths
 * (pcpu__statics_translate), and anything else using it faults instead of
 * writing into memory that is no longer the library's.
 */
#include "statics.h"

#include <errno.h>
#include <string.h>

#include "lookup.h"
#include "os.h"
#include "pool.h"
#include "units.h"

static struct pcpu__module *modules; /* registration order */
static size_t static_used;           /* bytes of the static area in use */
static size_t static_room;           /* bytes the static area has       */
static char *static_cookie;          /* cookie of the static area start */
static char *stale_base;             /* reserved range of the old first chunk */
static size_t stale_size;

/* Alignment a copy of the section must keep: the template start's own. */
static size_t section_align(const struct pcpu__module *m)
{
    uintptr_t a = (uintptr_t)m->start;
    size_t low = pcpu__low_bit((size_t)a);
    if (low == 0 || low > pcpu__page_size)
        low = pcpu__page_size;
    return low < PCPU_GRANULE ? PCPU_GRANULE : low;
}

static size_t section_size(const struct pcpu__module *m)
{
    return (size_t)(m->stop - m->start);
}

static void set_placement(struct pcpu__module *m, void *cookie, int how)
{
    m->cookie = cookie;
    m->placed = how;
    *m->delta = (intptr_t)((char *)cookie - m->start);
    pcpu__units_fill(cookie, m->start, section_size(m));
}

bool pcpu__statics_add_locked(struct pcpu__module *mod)
{
    pcpu_assert_locked();
    struct pcpu__module **pp = &modules;
    for (; *pp; pp = &(*pp)->next)
        if (*pp == mod)
            return false;
    mod->next = NULL;
    mod->placed = PCPU_PLACED_NOT;
    mod->stale_cookie = NULL;
    *pp = mod;
    return true;
}

size_t pcpu__statics_size_locked(void)
{
    pcpu_assert_locked();
    size_t off = 0;
    for (struct pcpu__module *m = modules; m; m = m->next) {
        size_t a = section_align(m);
        off = ((off + a - 1) & ~(a - 1)) + section_size(m);
    }
    return off;
}

/* Place m at the end of the static area if it fits; false if not. */
static bool append_static(struct pcpu__module *m)
{
    size_t a = section_align(m);
    size_t off = (static_used + a - 1) & ~(a - 1);
    if (!static_cookie || off > static_room || section_size(m) > static_room - off)
        return false;
    set_placement(m, static_cookie + off, PCPU_PLACED_STATIC);
    static_used = off + section_size(m);
    return true;
}

void pcpu__statics_place_locked(char *cookie, size_t room)
{
    pcpu_assert_locked();
    static_cookie = cookie;
    static_room = room;
    static_used = 0;
    for (struct pcpu__module *m = modules; m; m = m->next)
        if (!append_static(m))
            pcpu__die("percpu: static sections do not fit the static area (%zu bytes)", room);
}

/* Place one section in the reserved area (or dynamic space). */
static void place_late(struct pcpu__module *m)
{
    size_t a = section_align(m);
    size_t bits = (section_size(m) + PCPU_GRANULE - 1) / PCPU_GRANULE;
    struct pcpu_chunk *c;
    void *p = pcpu__pool_alloc_locked(bits, 1, a / PCPU_GRANULE, true, &c);
    if (!p) {
        pcpu__warn("no per-CPU memory for the %zu-byte static section at %p", section_size(m),
                   (void *)m->start);
        return;
    }
    /* Robust mode may have left poison there, ASan poisoned shadow. */
    if (unlikely(pcpu__units_hooked))
        pcpu__units_handed_out(p, bits * PCPU_GRANULE);
    set_placement(m, p, PCPU_PLACED_LATE);
}

void pcpu__statics_place_one_locked(struct pcpu__module *mod, bool may_append)
{
    pcpu_assert_locked();
    if (!may_append || !append_static(mod))
        place_late(mod);
}

bool pcpu__statics_remove_locked(struct pcpu__module *mod)
{
    pcpu_assert_locked();
    bool balance = false;
    for (struct pcpu__module **pp = &modules; *pp; pp = &(*pp)->next) {
        if (*pp != mod)
            continue;
        *pp = mod->next;
        if (mod->placed == PCPU_PLACED_LATE && pcpu__pool_ready()) {
            struct pcpu_chunk *c = pcpu__lookup(mod->cookie);
            size_t bit = pcpu__chunk_bit(c, mod->cookie);
            c = pcpu__pool_owner(c, bit);
            pcpu__units_zero(mod->cookie, section_size(mod));
            balance = pcpu__pool_release_locked(c, bit, pcpu__chunk_alloc_bits(c, bit));
        }
        /* A section in the static area leaves its space unused, as the
         * kernel's static area does: nothing can move into it safely. */
        mod->placed = PCPU_PLACED_NOT;
        mod->cookie = NULL;
        mod->stale_cookie = NULL;
        mod->next = NULL;
        break;
    }
    return balance;
}

void pcpu__statics_reset_locked(char *old_first, size_t old_size)
{
    pcpu_assert_locked();
    /* The range of the life before the last one is of no use any more. */
    if (stale_base)
        pcpu__os_release(stale_base, stale_size);
    stale_base = old_first;
    stale_size = old_first ? old_size : 0;
    for (struct pcpu__module *m = modules; m; m = m->next) {
        m->stale_cookie = m->placed ? m->cookie : NULL;
        m->placed = PCPU_PLACED_NOT;
        m->cookie = NULL;
    }
    static_cookie = NULL;
    static_room = static_used = 0;
}

const void *pcpu__statics_translate(const void *cookie)
{
    const char *c = cookie;
    if (!stale_base || c < stale_base || c >= stale_base + stale_size)
        return cookie;
    const void *out = cookie;
    pcpu__pool_lock();
    for (struct pcpu__module *m = modules; m; m = m->next) {
        const char *old = m->stale_cookie;
        if (m->placed && old && c >= old && c < old + section_size(m)) {
            out = (char *)m->cookie + (c - old);
            break;
        }
    }
    pcpu__pool_unlock();
    return out;
}

bool pcpu__statics_pristine_locked(void)
{
    pcpu_assert_locked();
    for (struct pcpu__module *m = modules; m; m = m->next)
        if (m->placed && !pcpu__units_equal(m->cookie, m->start, section_size(m)))
            return false;
    return true;
}
