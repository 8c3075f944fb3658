/*
 * statics.c - static per-CPU variables (PCPU_DEFINE) of every module.
 *
 * Each module (the program, each shared library) has one section of
 * PCPU_DEFINE variables and registers it from a constructor that
 * percpu.h puts in every file.  A section is a template: the variables are
 * used through PCPU_VAR(), which adds the module's delta to the template
 * address to get a cookie into the first chunk.
 *
 * Sections registered before the allocator is in use (the program's and
 * its start-up libraries', whose constructors run before main) go to the
 * first chunk's static area; the first chunk is laid out again when one
 * more registers, which is cheap because nothing else lives there yet.
 * Sections registered later (dlopen) take space from the reserved area,
 * which itself falls back to dynamic space, so a load never fails for
 * want of room.  A copy keeps the template's address modulo its alignment
 * so that every variable keeps its alignment.
 *
 * Only non-zero parts of the template are copied, so zero-initialised
 * variables leave untouched units untouched.
 */
#include "internal.h"

#include <errno.h>
#include <string.h>

static struct pcpu__section *sections; /* registration order, lock held */

/* Alignment a copy of the section must keep: the template start's own. */
static size_t section_align(const struct pcpu__section *sec)
{
    uintptr_t a = (uintptr_t)sec->start;
    size_t low = (size_t)(a & (~a + 1));
    if (low == 0 || low > pcpu__page_size)
        low = pcpu__page_size;
    return low < PCPU_GRANULE ? PCPU_GRANULE : low;
}

static size_t section_size(const struct pcpu__section *sec)
{
    return (size_t)(sec->stop - sec->start);
}

/* Copy the template into every unit, skipping zero runs. */
static void fill_units(const struct pcpu__section *sec, char *cookie)
{
    size_t size = section_size(sec);
    const size_t step = 64;
    for (size_t off = 0; off < size; off += step) {
        size_t len = size - off < step ? size - off : step;
        const char *src = sec->start + off;
        bool zero = true;
        for (size_t i = 0; i < len; i++)
            if (src[i]) {
                zero = false;
                break;
            }
        if (zero)
            continue;
        for (unsigned int cpu = 0; cpu < pcpu__nr_units; cpu++)
            memcpy(cookie + pcpu__cpu_offsets[cpu] + off, src, len);
    }
}

size_t pcpu__statics_size(void)
{
    size_t off = 0;
    for (struct pcpu__section *s = sections; s; s = s->next) {
        size_t a = section_align(s);
        off = ((off + a - 1) & ~(a - 1)) + section_size(s);
    }
    return off;
}

void pcpu__statics_place(char *static_cookie)
{
    size_t off = 0;
    for (struct pcpu__section *s = sections; s; s = s->next) {
        size_t a = section_align(s);
        off = (off + a - 1) & ~(a - 1);
        s->cookie = static_cookie + off;
        s->placed = 1;
        *s->delta = (intptr_t)((char *)s->cookie - s->start);
        fill_units(s, s->cookie);
        off += section_size(s);
    }
}

void pcpu__statics_reset(void)
{
    for (struct pcpu__section *s = sections; s; s = s->next) {
        s->placed = 0;
        s->cookie = NULL;
    }
}

/* Place one late section in the reserved area (or dynamic space). */
static void place_late(struct pcpu__section *s)
{
    size_t a = section_align(s);
    size_t bits = (section_size(s) + PCPU_GRANULE - 1) / PCPU_GRANULE;
    struct pcpu_chunk *c;
    void *p = pcpu__alloc_locked(bits, 1, a / PCPU_GRANULE, true, &c);
    if (!p) {
        pcpu__warn("no per-CPU memory for the %zu-byte static section at %p", section_size(s),
                   (void *)s->start);
        return;
    }
    /* Robust mode may have left poison there, ASan poisoned shadow. */
    if (unlikely(pcpu__debug_active))
        pcpu__debug_on_alloc(p, bits * PCPU_GRANULE);
    s->cookie = p;
    s->placed = 2;
    *s->delta = (intptr_t)((char *)p - s->start);
    fill_units(s, p);
}

void pcpu__section_register(struct pcpu__section *sec)
{
    if (!sec || sec->stop <= sec->start)
        return;
    pcpu__lock();
    struct pcpu__section **pp = &sections;
    for (; *pp; pp = &(*pp)->next)
        if (*pp == sec) {
            pcpu__unlock();
            return;
        }
    sec->next = NULL;
    sec->placed = 0;
    *pp = sec;
    int r = pcpu__relayout_locked();
    if (r == 1)
        place_late(sec);
    else if (r != 0)
        pcpu__warn("cannot lay out per-CPU static sections: %s", strerror(errno));
    pcpu__unlock();
}

void pcpu__section_unregister(struct pcpu__section *sec)
{
    if (!sec)
        return;
    pcpu__lock();
    for (struct pcpu__section **pp = &sections; *pp; pp = &(*pp)->next) {
        if (*pp != sec)
            continue;
        *pp = sec->next;
        if (sec->placed == 2 && atomic_load(&pcpu__g.state) != PCPU_STATE_OFF) {
            struct pcpu_chunk *c = pcpu__lookup(sec->cookie);
            size_t bit = (size_t)((char *)sec->cookie - c->base) / PCPU_GRANULE;
            c = pcpu__owner_chunk(c, bit);
            pcpu__zero_units(sec->cookie, section_size(sec));
            pcpu__release_locked(c, bit, pcpu__chunk_alloc_bits(c, bit));
        }
        sec->placed = 0;
        sec->cookie = NULL;
        sec->next = NULL;
        break;
    }
    pcpu__unlock();
}
