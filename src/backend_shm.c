/* SPDX-License-Identifier: MIT */
/*
 * backend_shm.c - chunks whose units are a shared file: the backend of
 * regions shared between processes (region.c).
 *
 * The seed's point is that the allocator's core does not care where a
 * chunk's memory comes from.  Here it comes from a file in tmpfs (a POSIX
 * shared-memory object, or a memfd for anonymous regions) holding one
 * unit per CPU index, unit i at file offset data_off + i * R, where R is
 * the region's unit size.  Each process maps the file so that its *own*
 * unit offsets reach the file's units:
 *
 *   this process, unit spacing U >= R (its pcpu_config.unit_size):
 *
 *     B           B+U              B+2U             B+(N+1)U
 *     | guard     | file unit 0 |//| file unit 1 |//|  ...
 *     (PROT_NONE)  <---- R ---->   (the // gaps stay PROT_NONE)
 *
 *   B + pcpu__cpu_offsets[i] (= B + (1 + unit_pos(i)) * U) maps file
 *   unit i, so a cookie B + off reaches offset off of every unit with the
 *   same pcpu_ptr() arithmetic as any chunk.
 *
 * Two processes configured with different unit sizes U1 and U2 each map
 * file unit i at their own B + their own offsets[i]; an object's offset
 * inside a unit (off) is the same in both, so both reach the same bytes,
 * through different cookies.  A region whose R is larger than a
 * process's U cannot be placed there (units would overlap): EINVAL.
 * When R == U and unit positions follow the indexes (one NUMA group),
 * consecutive units are one mapping; otherwise one mapping per unit.
 *
 * Memory: the file is sparse (ftruncate), so a unit costs memory only for
 * the pages somebody touched.  tmpfs has no shared zero page: reading a
 * hole through a mapping allocates the page, so a reader that sums an
 * object over every unit makes each unit hold that page.  Units of CPU
 * indexes that belong to no CPU of this machine (a configured nr_cpus
 * beyond it) are therefore mapped as private read-only zero pages: no
 * thread ever runs there, nobody can write them, and reading them costs
 * nothing.  Zeroing an object (pcpu__shm_zero) and giving its pages back
 * (depopulate: a hole punched in the file) touch only the units where the
 * file holds data, found with lseek(SEEK_DATA), never the holes.
 *
 * The file is not trusted, but this layer reads nothing from it: the
 * geometry comes from the caller, which validated it (region_file.c).
 */
#include "backend_shm.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "os.h"

int pcpu__shm_fits(size_t unit_size)
{
    if (unit_size == 0 || unit_size % pcpu__page_size || unit_size > pcpu__layout.unit_size) {
        errno = EINVAL;
        return -1;
    }
    return 0;
}

static bool unit_is_file(const struct pcpu_shm_map *m, unsigned int i)
{
    return m->os_id == NULL || m->os_id[i] >= 0;
}

static int shm_create_chunk(struct pcpu_chunk *c)
{
    const struct pcpu_layout *l = &pcpu__layout;
    const struct pcpu_shm_map *m = c->backend_data;
    if (!m || m->nr_units != l->nr_units || pcpu__shm_fits(m->unit_size) != 0) {
        errno = EINVAL;
        return -1;
    }
    size_t U = l->unit_size, R = m->unit_size, span = l->chunk_span;
    char *base = pcpu__os_reserve(span, pcpu__page_size);
    if (!base)
        return -1;
    int prot = PROT_READ | (m->writable ? PROT_WRITE : 0);
    const unsigned int *pos = l->ai->unit_pos;
    for (unsigned int i = 0; i < m->nr_units;) {
        /* A run of indexes whose units are adjacent both here and in the
         * file (only when R == U), all of the file or all zero. */
        bool file = unit_is_file(m, i);
        unsigned int j = i + 1;
        if (R == U)
            while (j < m->nr_units && pos[j] == pos[j - 1] + 1 && unit_is_file(m, j) == file)
                j++;
        char *at = base + pcpu__cpu_offsets[i];
        size_t len = (size_t)(j - i) * R;
        void *p = MAP_FAILED;
        int err = ENOMEM;
        if (!pcpu__os_fault(PCPU_OS_MAP)) {
            if (file)
                p = mmap(at, len, prot, MAP_SHARED | MAP_FIXED, m->fd,
                         m->data_off + (off_t)i * (off_t)R);
            else
                p = mmap(at, len, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED,
                         -1, 0);
            if (p == MAP_FAILED && errno == EACCES)
                err = EACCES;
        }
        if (p == MAP_FAILED) {
            pcpu__os_release(base, span);
            errno = err;
            return -1;
        }
        i = j;
    }
    pcpu__os_nohuge(base, span);
    c->base = base;
    c->map_addr = base;
    c->map_size = span;
    return 0;
}

static void shm_destroy_chunk(struct pcpu_chunk *c)
{
    /* One munmap takes the file's units and the reservation around them. */
    pcpu__os_release(c->map_addr, c->map_size);
    c->map_addr = c->base = NULL;
    c->map_size = 0;
}

static int shm_populate(struct pcpu_chunk *c, size_t page, size_t n)
{
    /* A sparse file: pages exist once written. */
    (void)c;
    (void)page;
    (void)n;
    return 0;
}

/*
 * Call fn(c, unit, lo, hi, arg) for every unit whose [off, off + len)
 * holds data in the file, with [lo, hi) the part of that range (unit
 * offsets) that does.  0, or -1 when the file system cannot say where its
 * data is (then nothing was called).  O(data extents): a walk by
 * lseek(SEEK_DATA / SEEK_HOLE) over the file, skipping to the next unit's
 * range whenever an extent ends past the current one.
 */
typedef void (*shm_fn)(struct pcpu_chunk *c, unsigned int unit, size_t lo, size_t hi,
                       void *arg);
static int for_each_data(struct pcpu_chunk *c, size_t off, size_t len, shm_fn fn, void *arg)
{
    const struct pcpu_shm_map *m = c->backend_data;
    const off_t R = (off_t)m->unit_size, d0 = m->data_off;
    const unsigned int n = m->nr_units;
    off_t pos = d0 + (off_t)off;
    const off_t end = d0 + (off_t)(n - 1) * R + (off_t)(off + len);
    while (pos < end) {
        off_t d = lseek(m->fd, pos, SEEK_DATA);
        if (d < 0)
            return errno == ENXIO ? 0 : -1;
        if (d >= end)
            return 0;
        off_t h = lseek(m->fd, d, SEEK_HOLE);
        if (h < 0)
            return -1;
        unsigned int u0 = (unsigned int)((d - d0) / R);
        unsigned int u1 = (unsigned int)((h - 1 - d0) / R);
        if (u1 >= n)
            u1 = n - 1;
        for (unsigned int u = u0; u <= u1; u++) {
            off_t ubase = d0 + (off_t)u * R;
            off_t lo = ubase + (off_t)off, hi = lo + (off_t)len;
            if (lo < d)
                lo = d;
            if (hi > h)
                hi = h;
            if (lo < hi && unit_is_file(m, u))
                fn(c, u, (size_t)(lo - ubase), (size_t)(hi - ubase), arg);
        }
        /* Past this extent; and past the rest of unit u1, where the range
         * ended if the extent went beyond it. */
        off_t next = d0 + (off_t)u1 * R + (off_t)(off + len);
        pos = h < next ? h : d0 + (off_t)(u1 + 1) * R + (off_t)off;
        if (pos < h)
            pos = h;
    }
    return 0;
}

static void zero_in(struct pcpu_chunk *c, unsigned int unit, size_t lo, size_t hi, void *arg)
{
    (void)arg;
    memset(c->base + pcpu__cpu_offsets[unit] + lo, 0, hi - lo);
}

void pcpu__shm_zero(struct pcpu_chunk *c, size_t off, size_t len)
{
    if (len == 0 || for_each_data(c, off, len, zero_in, NULL) == 0)
        return;
    /* No SEEK_DATA: write zeroes only where they are not (reading still
     * makes tmpfs allocate the page, but nothing else can tell). */
    const struct pcpu_shm_map *m = c->backend_data;
    for (unsigned int u = 0; u < m->nr_units; u++) {
        if (!unit_is_file(m, u))
            continue;
        char *p = c->base + pcpu__cpu_offsets[u] + off;
        for (size_t k = 0; k < len; k++)
            if (p[k])
                p[k] = 0;
    }
}

static void punch_in(struct pcpu_chunk *c, unsigned int unit, size_t lo, size_t hi, void *arg)
{
    (void)arg;
    const struct pcpu_shm_map *m = c->backend_data;
    off_t at = m->data_off + (off_t)unit * (off_t)m->unit_size + (off_t)lo;
    /* A failed punch leaves data that the next allocation zeroes. */
    (void)fallocate(m->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, at, (off_t)(hi - lo));
}

static void shm_depopulate(struct pcpu_chunk *c, size_t page, size_t n)
{
    const struct pcpu_shm_map *m = c->backend_data;
    if (!m->writable || n == 0)
        return;
    (void)for_each_data(c, page * pcpu__page_size, n * pcpu__page_size, punch_in, NULL);
}

static int shm_verify(const struct pcpu_alloc_info *ai)
{
    /* Any layout can map a region; whether it can map a given one
     * (units, CPUs, unit size) is for region_file.c and create_chunk. */
    (void)ai;
    return 0;
}

size_t pcpu__shm_resident(int fd)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return 0;
    return (size_t)st.st_blocks * 512;
}

const struct pcpu_backend_ops pcpu__backend_shm = {
    .name = "shm",
    .create_chunk = shm_create_chunk,
    .destroy_chunk = shm_destroy_chunk,
    .populate = shm_populate,
    .depopulate = shm_depopulate,
    .verify_alloc_info = shm_verify,
};
