/* SPDX-License-Identifier: MIT */
/*
 * region_dir.c - the directory of a region: named objects, their places
 * in the unit, and the free space between them.
 *
 * The directory is an array of fixed-size entries in the file, used from
 * the start up to a fill mark (dir_used in the header) that only grows:
 * entries past it were never written and are never read, which matters
 * because reading a page of tmpfs that nobody wrote allocates it.  There
 * is no separate free map: the free space of a unit is what the live
 * entries leave, found by sorting them by offset.  A directory of
 * statistics holds tens to thousands of objects and changes rarely, so
 * O(objects log objects) per allocation buys a structure with nothing to
 * keep consistent but the entries themselves.
 *
 * Each entry has a state word: FREE, RESERVED (being made), LIVE, and
 * above the two state bits a count of its changes.  Its other fields are
 * only written while it is FREE, under the region's lock, and the word is
 * stored after them (release), so a reader without the lock copies an
 * entry between two loads of its word and keeps the copy only if the word
 * did not change (a seqlock whose odd state is "not LIVE").  The steps of
 * an allocation: fill the FREE entry's fields, word to RESERVED, zero the
 * object in every unit, word to LIVE.  A holder of the lock that dies in
 * between leaves a RESERVED entry; since a RESERVED entry only exists
 * while its maker holds the lock, the next holder drops every one it
 * finds.  A free is one store of the word (LIVE to FREE).
 *
 * Trust: every value read from the file is copied once into a struct
 * pcpu_rent and checked there -- a state that is none of the three, a
 * name without its NUL within 64 bytes or empty, an object that does not
 * lie inside the unit, two live objects that overlap or share a name --
 * and the call fails with EBADMSG rather than use it.  The fill mark is
 * clamped to the capacity from the checked header.
 */
#include "region_dir.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend_shm.h"
#include "os.h"
#include "region_lock.h"

/* How often a lock-free read retries an entry that keeps changing before
 * it treats it as being changed (not there). */
#define READ_TRIES 64

static unsigned int fill_mark(const struct pcpu_rdir *d)
{
    uint32_t used = __atomic_load_n(&d->hdr->dir_used, __ATOMIC_ACQUIRE);
    return used < d->cap ? used : d->cap;
}

static uint32_t next_word(uint32_t w, uint32_t state)
{
    return (((w >> 2) + 1) << 2) | state;
}

/* Check a copied entry. */
static bool rent_ok(const struct pcpu_rdir *d, const struct pcpu_rent *e)
{
    size_t len = strnlen(e->name, sizeof(e->name));
    return len >= 1 && len < sizeof(e->name) && e->size >= 1 && e->size <= d->unit_size &&
           e->off <= d->unit_size - e->size;
}

static void copy_fields(const struct pcpu_rfile_ent *s, struct pcpu_rent *e)
{
    e->off = (size_t)__atomic_load_n(&s->off, __ATOMIC_RELAXED);
    e->size = (size_t)__atomic_load_n(&s->size, __ATOMIC_RELAXED);
    uint64_t w[8];
    for (int i = 0; i < 8; i++)
        w[i] = __atomic_load_n(&s->name[i], __ATOMIC_RELAXED);
    memcpy(e->name, w, sizeof(e->name));
}

/* Lock-free read of entry k: 1 and *e for a well-formed live entry, 0
 * for one that is not live (or is changing all the time), -1 for a
 * corrupt one. */
static int read_ent(const struct pcpu_rdir *d, unsigned int k, struct pcpu_rent *e)
{
    const struct pcpu_rfile_ent *s = &d->ents[k];
    for (int t = 0; t < READ_TRIES; t++) {
        uint32_t w1 = __atomic_load_n(&s->word, __ATOMIC_ACQUIRE);
        uint32_t st = PCPU_RENT_STATE(w1);
        if (st == PCPU_RENT_FREE || st == PCPU_RENT_RESERVED)
            return 0;
        if (st != PCPU_RENT_LIVE)
            return -1;
        copy_fields(s, e);
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if (__atomic_load_n(&s->word, __ATOMIC_RELAXED) == w1)
            return rent_ok(d, e) ? 1 : -1;
    }
    return 0;
}

int pcpu__rdir_find(const struct pcpu_rdir *d, const char *name, struct pcpu_rent *e)
{
    unsigned int used = fill_mark(d);
    bool found = false, corrupt = false;
    struct pcpu_rent c;
    for (unsigned int k = 0; k < used; k++) {
        int r = read_ent(d, k, &c);
        if (r < 0)
            corrupt = true;
        if (r <= 0 || strcmp(c.name, name) != 0)
            continue;
        if (found) {
            errno = EBADMSG;
            return -1;
        }
        found = true;
        *e = c;
    }
    if (found)
        return 0;
    errno = corrupt ? EBADMSG : ENOENT;
    return -1;
}

int pcpu__rdir_walk(const struct pcpu_rdir *d, int (*fn)(const struct pcpu_rent *e, void *arg),
                    void *arg)
{
    unsigned int used = fill_mark(d);
    struct pcpu_rent c;
    for (unsigned int k = 0; k < used; k++) {
        int r = read_ent(d, k, &c);
        if (r < 0) {
            errno = EBADMSG;
            return -1;
        }
        if (r == 0)
            continue;
        int ret = fn(&c, arg);
        if (ret)
            return ret;
    }
    return 0;
}

/* ---- the free space: live objects sorted by offset ----------------------- */

struct run {
    size_t off, size;
    unsigned int k;          /* entry index, for messages */
};

static int run_cmp(const void *a, const void *b)
{
    const struct run *x = a, *y = b;
    return x->off < y->off ? -1 : x->off > y->off;
}

/* Sort runs[0..n) and check that they do not overlap; on overlap, -1 and
 * the two entries in *ka, *kb. */
static int sort_runs(struct run *runs, size_t n, unsigned int *ka, unsigned int *kb)
{
    qsort(runs, n, sizeof(*runs), run_cmp);
    for (size_t i = 1; i < n; i++) {
        if (runs[i].off < runs[i - 1].off + runs[i - 1].size) {
            *ka = runs[i - 1].k;
            *kb = runs[i].k;
            return -1;
        }
    }
    return 0;
}

static size_t align_up(size_t v, size_t a)
{
    return (v + a - 1) & ~(a - 1);
}

/* The first place for size bytes at align in a unit, given the sorted
 * runs; SIZE_MAX if none. */
static size_t first_fit(const struct run *runs, size_t n, size_t unit, size_t size, size_t align)
{
    size_t pos = 0;
    for (size_t i = 0; i <= n; i++) {
        size_t limit = i < n ? runs[i].off : unit;
        size_t a = align_up(pos, align);
        if (a <= limit && limit - a >= size)
            return a;
        if (i < n && runs[i].off + runs[i].size > pos)
            pos = runs[i].off + runs[i].size;
    }
    return SIZE_MAX;
}

/* Every live entry's run, read lock-free (a snapshot); *n set.  NULL with
 * errno EBADMSG (corrupt entry) or ENOMEM; with d empty, a valid pointer
 * may still be returned (free it). */
static struct run *snapshot(const struct pcpu_rdir *d, size_t *n, unsigned int *bad)
{
    unsigned int used = fill_mark(d);
    struct run *runs = malloc((used ? used : 1) * sizeof(*runs));
    if (!runs) {
        errno = ENOMEM;
        return NULL;
    }
    size_t m = 0;
    struct pcpu_rent c;
    for (unsigned int k = 0; k < used; k++) {
        int r = read_ent(d, k, &c);
        if (r < 0) {
            *bad = k;
            free(runs);
            errno = EBADMSG;
            return NULL;
        }
        if (r > 0)
            runs[m++] = (struct run){c.off, c.size, k};
    }
    *n = m;
    return runs;
}

int pcpu__rdir_usage(const struct pcpu_rdir *d, size_t *objects, size_t *used, size_t *largest)
{
    size_t n;
    unsigned int bad, ka, kb;
    struct run *runs = snapshot(d, &n, &bad);
    if (!runs)
        return -1;
    if (sort_runs(runs, n, &ka, &kb) != 0) {
        free(runs);
        errno = EBADMSG;
        return -1;
    }
    size_t bytes = 0, big = 0, pos = 0;
    for (size_t i = 0; i < n; i++) {
        bytes += runs[i].size;
        if (runs[i].off - pos > big)
            big = runs[i].off - pos;
        pos = runs[i].off + runs[i].size;
    }
    if (d->unit_size - pos > big)
        big = d->unit_size - pos;
    free(runs);
    *objects = n;
    *used = bytes;
    *largest = big;
    return 0;
}

static __attribute__((format(printf, 2, 3))) int report(const struct pcpu_rdir *d,
                                                        const char *fmt, ...)
{
    char msg[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    pcpu__warn("region %s: %s", d->what, msg);
    errno = EBADMSG;
    return -1;
}

struct named {
    char name[64];
    unsigned int k;
};

static int named_cmp(const void *a, const void *b)
{
    return strcmp(((const struct named *)a)->name, ((const struct named *)b)->name);
}

int pcpu__rdir_check(const struct pcpu_rdir *d)
{
    uint32_t used = __atomic_load_n(&d->hdr->dir_used, __ATOMIC_RELAXED);
    if (used > d->cap)
        return report(d, "directory fill mark %u is beyond its capacity %u", used, d->cap);
    uint32_t lw = __atomic_load_n(&d->hdr->lock, __ATOMIC_RELAXED);
    if (!pcpu__rlock_word_plausible(lw))
        return report(d, "lock word 0x%x names no process", lw);
    size_t n;
    unsigned int bad = 0, ka, kb;
    struct run *runs = snapshot(d, &n, &bad);
    if (!runs)
        return errno == EBADMSG ? report(d, "directory entry %u is corrupt", bad) : -1;
    int ret = 0;
    if (sort_runs(runs, n, &ka, &kb) != 0)
        ret = report(d, "directory entries %u and %u overlap", ka, kb);
    /* Names: unique among live entries (sorted copies, then neighbours;
     * an entry that changed since the snapshot is left out). */
    struct named *names = ret ? NULL : malloc((n ? n : 1) * sizeof(*names));
    if (!ret && !names) {
        errno = ENOMEM;
        ret = -1;
    }
    size_t m = 0;
    for (size_t i = 0; !ret && i < n; i++) {
        struct pcpu_rent e;
        if (read_ent(d, runs[i].k, &e) > 0) {
            memcpy(names[m].name, e.name, sizeof(e.name));
            names[m++].k = runs[i].k;
        }
    }
    if (!ret) {
        qsort(names, m, sizeof(*names), named_cmp);
        for (size_t i = 1; i < m && !ret; i++)
            if (strcmp(names[i - 1].name, names[i].name) == 0)
                ret = report(d, "directory entries %u and %u have the same name",
                             names[i - 1].k, names[i].k);
    }
    free(names);
    free(runs);
    return ret;
}

/* ---- changes, under the region's lock ------------------------------------ */

static void bump_gen(const struct pcpu_rdir *d)
{
    __atomic_fetch_add(&d->hdr->gen, 1, __ATOMIC_RELEASE);
}

int pcpu__rdir_alloc_held(const struct pcpu_rdir *d, const char *name, size_t size,
                            size_t align, struct pcpu_chunk *c, size_t *off)
{
    unsigned int used = fill_mark(d);
    struct run *runs = malloc((used ? used : 1) * sizeof(*runs));
    if (!runs) {
        errno = ENOMEM;
        return -1;
    }
    size_t n = 0;
    long slot = -1;
    int err = 0;
    for (unsigned int k = 0; k < used && !err; k++) {
        struct pcpu_rfile_ent *s = &d->ents[k];
        uint32_t w = __atomic_load_n(&s->word, __ATOMIC_ACQUIRE);
        uint32_t st = PCPU_RENT_STATE(w);
        if (st == PCPU_RENT_RESERVED) {
            /* Its maker held the lock and is gone. */
            __atomic_store_n(&s->word, next_word(w, PCPU_RENT_FREE), __ATOMIC_RELEASE);
            st = PCPU_RENT_FREE;
        }
        if (st == PCPU_RENT_FREE) {
            if (slot < 0)
                slot = k;
            continue;
        }
        struct pcpu_rent e;
        copy_fields(s, &e);
        if (st != PCPU_RENT_LIVE || !rent_ok(d, &e))
            err = EBADMSG;
        else if (strcmp(e.name, name) == 0)
            err = EEXIST;
        else
            runs[n++] = (struct run){e.off, e.size, k};
    }
    unsigned int ka, kb;
    if (!err && sort_runs(runs, n, &ka, &kb) != 0)
        err = EBADMSG;
    size_t at = err ? SIZE_MAX : first_fit(runs, n, d->unit_size, size, align);
    free(runs);
    if (!err && at == SIZE_MAX)
        err = ENOSPC;
    if (!err && slot < 0) {
        if (used >= d->cap)
            err = ENOSPC;
        else
            slot = used;
    }
    if (err) {
        errno = err;
        return -1;
    }
    struct pcpu_rfile_ent *s = &d->ents[slot];
    if ((unsigned int)slot == used)
        __atomic_store_n(&d->hdr->dir_used, used + 1, __ATOMIC_RELEASE);
    /* The fields while the entry is FREE (readers ignore them), then the
     * word; a death anywhere here leaves a FREE or RESERVED entry. */
    uint32_t w = __atomic_load_n(&s->word, __ATOMIC_RELAXED);
    if (PCPU_RENT_STATE(w) != PCPU_RENT_FREE) {
        /* Junk past the fill mark (only a corrupting writer puts any). */
        w = next_word(w, PCPU_RENT_FREE);
        __atomic_store_n(&s->word, w, __ATOMIC_RELEASE);
    }
    uint64_t nw[8] = {0};
    memcpy(nw, name, strlen(name));
    __atomic_store_n(&s->off, (uint64_t)at, __ATOMIC_RELAXED);
    __atomic_store_n(&s->size, (uint64_t)size, __ATOMIC_RELAXED);
    __atomic_store_n(&s->owner, (uint32_t)getpid(), __ATOMIC_RELAXED);
    for (int i = 0; i < 8; i++)
        __atomic_store_n(&s->name[i], nw[i], __ATOMIC_RELAXED);
    w = next_word(w, PCPU_RENT_RESERVED);
    __atomic_store_n(&s->word, w, __ATOMIC_RELEASE);
    pcpu__shm_zero(c, at, size);
    __atomic_store_n(&s->word, next_word(w, PCPU_RENT_LIVE), __ATOMIC_RELEASE);
    bump_gen(d);
    *off = at;
    return 0;
}

int pcpu__rdir_free_held(const struct pcpu_rdir *d, size_t off, struct pcpu_chunk *c)
{
    unsigned int used = fill_mark(d);
    for (unsigned int k = 0; k < used; k++) {
        struct pcpu_rfile_ent *s = &d->ents[k];
        uint32_t w = __atomic_load_n(&s->word, __ATOMIC_ACQUIRE);
        if (PCPU_RENT_STATE(w) != PCPU_RENT_LIVE ||
            __atomic_load_n(&s->off, __ATOMIC_RELAXED) != (uint64_t)off)
            continue;
        struct pcpu_rent e;
        copy_fields(s, &e);
        if (e.off != off || !rent_ok(d, &e)) {
            errno = EBADMSG;
            return -1;
        }
        __atomic_store_n(&s->word, next_word(w, PCPU_RENT_FREE), __ATOMIC_RELEASE);
        /* Whole pages inside the object go back in every unit that has
         * them; the partial pages at its ends stay (the next allocation
         * there zeroes what it takes). */
        size_t ps = pcpu__page_size;
        size_t first = align_up(e.off, ps), end = (e.off + e.size) & ~(ps - 1);
        if (end > first)
            pcpu__backend_shm.depopulate(c, first / ps, (end - first) / ps);
        bump_gen(d);
        return 0;
    }
    errno = EINVAL;
    return -1;
}
