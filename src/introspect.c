/* SPDX-License-Identifier: MIT */
/*
 * introspect.c - what the allocator can tell about itself.
 *
 * The kernel exposes percpu_stats in debugfs; here pcpu_stats_get() fills a
 * versioned struct with the same figures under the same names, plus what a
 * userspace user needs to judge memory (populated pages, resident bytes as
 * the OS counts them, metadata).  pcpu_stats_print() and
 * pcpu_chunk_map_print() render them for people; pcpu_addr_info() maps a
 * real address back to its unit and allocation.  Reporting only: every
 * figure comes from the module that keeps it (pool, usage, tcache, rseq,
 * the layout).
 */
#include "internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "init.h"
#include "lookup.h"
#include "os.h"
#include "pool.h"
#include "rseq.h"
#include "tcache.h"
#include "topology.h"
#include "usage.h"

/* Sum the Rss of the mappings that belong to live chunks. */
static size_t resident_locked(void)
{
    FILE *f = fopen("/proc/self/smaps", "re");
    if (!f)
        return 0;
    char line[512];
    size_t total = 0;
    bool ours = false;
    while (fgets(line, sizeof(line), f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
            ours = pcpu__lookup((void *)lo) != NULL;
            continue;
        }
        size_t kb;
        if (ours && sscanf(line, "Rss: %zu kB", &kb) == 1)
            total += kb * 1024;
    }
    fclose(f);
    return total;
}

static int stats_get_impl(struct pcpu_stats *st)
{
    if (!st) {
        errno = EINVAL;
        return -1;
    }
    if (pcpu__ensure_init() != 0)
        return -1;
    memset(st, 0, sizeof(*st));
    st->size = sizeof(*st);
    st->version = PCPU_STATS_VERSION;
    pcpu__pool_lock();
    const struct pcpu_alloc_info *ai = pcpu__layout.ai;
    struct pcpu_pool_stats ps;
    struct pcpu_usage_totals u;
    pcpu__pool_stats_locked(&ps);
    pcpu__usage_totals_locked(&u);
    st->nr_units = ai->nr_units;
    st->unit_size = ai->unit_size;
    st->static_size = ai->static_size;
    st->reserved_size = ai->reserved_size;
    st->dyn_size = ai->dyn_size;
    st->atom_size = ai->atom_size;
    st->page_size = pcpu__page_size;
    st->nr_alloc = u.nr_alloc;
    st->nr_dealloc = u.nr_dealloc;
    st->nr_cur_alloc = st->nr_alloc - st->nr_dealloc;
    st->nr_max_alloc = u.nr_max_alloc;
    st->nr_chunks = ps.nr_chunks;
    st->nr_max_chunks = ps.nr_max_chunks;
    st->min_alloc_size = u.min_size;
    st->max_alloc_size = u.max_size;
    st->empty_pop_pages = ps.nr_empty_populated;
    st->populated_pages = ps.nr_populated;
    st->cached_objects = pcpu__tcache_count_locked();
    st->allocated_bytes = ps.allocated_bits * PCPU_GRANULE;
    st->nr_populate = ps.nr_populate;
    st->nr_depopulate = ps.nr_depopulate;
    st->nr_chunk_create = ps.nr_chunk_create;
    st->nr_chunk_destroy = ps.nr_chunk_destroy;
    st->backend = pcpu__settings.backend;
    st->index = pcpu__rseq_uses_cid() ? PCPU_INDEX_CID : PCPU_INDEX_CPU;
    st->resident_bytes = resident_locked();
    pcpu__pool_unlock();
    st->metadata_bytes = atomic_load(&pcpu__meta_bytes);
    st->rseq = pcpu__rseq_runs_sequences();
    return 0;
}

static unsigned char page_state(const struct pcpu_chunk *c, size_t pg)
{
    size_t bb = pcpu__page_size / PCPU_GRANULE;
    size_t lo = pg * bb, hi = lo + bb > c->nr_bits ? c->nr_bits : lo + bb;
    bool pop = c->is_reserved || pcpu__test_bit(c->populated, pg);
    size_t lo_r = lo < c->start_bit ? c->start_bit : lo;
    size_t hi_r = hi > c->end_bit ? c->end_bit : hi;
    size_t used = hi_r > lo_r ? pcpu__count_set(c->alloc_map, lo_r, hi_r) : 0;
    size_t len = hi_r > lo_r ? hi_r - lo_r : 0;
    if (!pop)
        return 0;
    if (used == 0 && len)
        return 1;
    return used == len ? 3 : 2;
}

static int chunk_info_impl(unsigned int idx, struct pcpu_chunk_info *info)
{
    if (!info) {
        errno = EINVAL;
        return -1;
    }
    if (pcpu__ensure_init() != 0)
        return -1;
    pcpu__pool_lock();
    const struct pcpu_chunk *c = pcpu__pool_chunk_at_locked(idx);
    if (!c) {
        pcpu__pool_unlock();
        errno = ENOENT;
        return -1;
    }
    memset(info, 0, sizeof(*info));
    info->base = c->base;
    info->unit_size = pcpu__layout.unit_size;
    info->start_offset = c->start_bit * PCPU_GRANULE;
    info->free_bytes = c->free_bits * PCPU_GRANULE;
    info->contig_free = c->contig_bits * PCPU_GRANULE;
    info->nr_pages = c->nr_pages;
    info->populated_pages = c->is_reserved ? c->nr_pages : c->nr_populated;
    info->nr_alloc = c->nr_alloc;
    info->first = c->is_first;
    info->reserved = c->is_reserved;
    info->page_state = malloc(c->nr_pages ? c->nr_pages : 1);
    if (!info->page_state) {
        pcpu__pool_unlock();
        errno = ENOMEM;
        return -1;
    }
    for (size_t pg = 0; pg < c->nr_pages; pg++)
        info->page_state[pg] = page_state(c, pg);
    pcpu__pool_unlock();
    return 0;
}

static void chunk_map_print_impl(FILE *out, unsigned int width)
{
    static const char glyph[] = {' ', '.', '+', '#'};
    if (!out)
        out = stdout;
    if (!width)
        width = 64;
    struct pcpu_chunk_info ci;
    for (unsigned int i = 0; chunk_info_impl(i, &ci) == 0; i++) {
        fprintf(out, "chunk %u %s%p: %zu pages, %zu populated, %zu allocations, %zu bytes free\n",
                i, ci.first ? "(first) " : ci.reserved ? "(reserved) " : "", ci.base, ci.nr_pages,
                ci.populated_pages, ci.nr_alloc, ci.free_bytes);
        for (size_t pg = 0; pg < ci.nr_pages; pg += width) {
            fputs("  |", out);
            for (size_t k = pg; k < pg + width && k < ci.nr_pages; k++)
                fputc(glyph[ci.page_state[k]], out);
            fputs("|\n", out);
        }
        free(ci.page_state);
    }
    fputs("  legend: '#' full  '+' partly used  '.' populated, empty  ' ' not populated\n", out);
}

static void stats_print_impl(FILE *out)
{
    struct pcpu_stats st;
    if (!out)
        out = stdout;
    if (stats_get_impl(&st) != 0) {
        fprintf(out, "percpu: no statistics: %s\n", strerror(errno));
        return;
    }
#define P(name, fmt) fprintf(out, "  %-18s: %14" fmt "\n", #name, st.name)
    fprintf(out, "Percpu Memory Statistics\nAllocation Info:\n");
    fprintf(out, "----------------------------------------\n");
    fprintf(out, "  %-18s: %14s\n", "backend", pcpu__pool_backend_name());
    fprintf(out, "  %-18s: %14s\n", "index", st.index == PCPU_INDEX_CID ? "cid" : "cpu");
    fprintf(out, "  %-18s: %14s\n", "this_cpu ops", st.rseq ? "rseq" : "atomic");
    P(nr_units, "u");
    P(unit_size, "zu");
    P(static_size, "zu");
    P(reserved_size, "zu");
    P(dyn_size, "zu");
    P(atom_size, "zu");
    fprintf(out, "Global Stats:\n----------------------------------------\n");
    P(nr_alloc, PRIu64);
    P(nr_dealloc, PRIu64);
    P(nr_cur_alloc, PRIu64);
    P(nr_max_alloc, PRIu64);
    P(nr_chunks, "u");
    P(nr_max_chunks, "u");
    P(min_alloc_size, "zu");
    P(max_alloc_size, "zu");
    P(empty_pop_pages, "zu");
    P(populated_pages, "zu");
    P(resident_bytes, "zu");
    P(metadata_bytes, "zu");
    P(allocated_bytes, "zu");
    P(cached_objects, "zu");
    P(nr_populate, PRIu64);
    P(nr_depopulate, PRIu64);
#undef P
    fprintf(out, "Per Chunk Stats:\n----------------------------------------\n");
    struct pcpu_chunk_info ci;
    for (unsigned int i = 0; chunk_info_impl(i, &ci) == 0; i++) {
        fprintf(out, "Chunk %u:%s\n", i, ci.first ? " <- First Chunk" : ci.reserved ? " <- Reserved" : "");
        fprintf(out, "  %-18s: %14zu\n  %-18s: %14zu\n  %-18s: %14zu\n  %-18s: %14zu\n"
                     "  %-18s: %14zu\n",
                "nr_alloc", ci.nr_alloc, "start_offset", ci.start_offset, "free_bytes",
                ci.free_bytes, "contig_bytes", ci.contig_free, "populated_pages",
                ci.populated_pages);
        free(ci.page_state);
    }
}

static bool is_percpu_address_impl(const void *addr)
{
    if (!pcpu__pool_ready())
        return false;
    pcpu__pool_lock();
    struct pcpu_chunk *c = pcpu__lookup(addr);
    bool r = c && (size_t)((const char *)addr - c->base) >= pcpu__layout.unit_size;
    pcpu__pool_unlock();
    return r;
}

static int addr_info_impl(const void *addr, struct pcpu_addr_info *info)
{
    if (!info) {
        errno = EINVAL;
        return -1;
    }
    if (!pcpu__pool_ready()) {
        errno = ENOENT;
        return -1;
    }
    pcpu__pool_lock();
    struct pcpu_chunk *c = pcpu__lookup(addr);
    size_t off = c ? (size_t)((const char *)addr - c->base) : 0;
    if (!c || off < pcpu__layout.unit_size) {
        pcpu__pool_unlock();
        errno = ENOENT;
        return -1;
    }
    const struct pcpu_alloc_info *ai = pcpu__layout.ai;
    unsigned int pos = (unsigned int)(off / pcpu__layout.unit_size - 1);
    memset(info, 0, sizeof(*info));
    for (unsigned int i = 0; i < ai->nr_units; i++)
        if (ai->unit_pos[i] == pos)
            info->cpu = i;
    info->unit_offset = off % pcpu__layout.unit_size;
    size_t bit = info->unit_offset / PCPU_GRANULE;
    struct pcpu_chunk *owner = pcpu__pool_owner(c, bit);
    if (owner && bit >= owner->start_bit && bit < owner->end_bit &&
        pcpu__test_bit(owner->alloc_map, bit)) {
        size_t s = pcpu__prev_set(owner->start_map, owner->start_bit, bit + 1);
        if (s != SIZE_MAX && pcpu__live_test(owner, s)) {
            size_t n = pcpu__chunk_alloc_bits(owner, s);
            if (bit < s + n) {
                info->cookie = owner->base + s * PCPU_GRANULE;
                info->size = n * PCPU_GRANULE;
            }
        }
    }
    pcpu__pool_unlock();
    return 0;
}

int pcpu_stats_get(struct pcpu_stats *st)
{
    pcpu__enter("pcpu_stats_get");
    int r = stats_get_impl(st);
    pcpu__leave();
    return r;
}

int pcpu_chunk_info(unsigned int idx, struct pcpu_chunk_info *info)
{
    pcpu__enter("pcpu_chunk_info");
    int r = chunk_info_impl(idx, info);
    pcpu__leave();
    return r;
}

void pcpu_chunk_map_print(FILE *out, unsigned int width)
{
    pcpu__enter("pcpu_chunk_map_print");
    chunk_map_print_impl(out, width);
    pcpu__leave();
}

void pcpu_stats_print(FILE *out)
{
    pcpu__enter("pcpu_stats_print");
    stats_print_impl(out);
    pcpu__leave();
}

bool pcpu_is_percpu_address(const void *addr)
{
    pcpu__enter("pcpu_is_percpu_address");
    bool r = is_percpu_address_impl(addr);
    pcpu__leave();
    return r;
}

int pcpu_addr_info(const void *addr, struct pcpu_addr_info *info)
{
    pcpu__enter("pcpu_addr_info");
    int r = addr_info_impl(addr, info);
    pcpu__leave();
    return r;
}
