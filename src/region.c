/* SPDX-License-Identifier: MIT */
/*
 * region.c - pcpu_region_*: per-CPU memory shared between processes.
 *
 * A region is a chunk of the shm backend (backend_shm.c) plus a directory
 * of named objects kept in the same file (region_dir.c), under a lock
 * that survives its holder's death (region_lock.c).  This file checks the
 * arguments, decides whether this process may open the region at all,
 * and keeps the list of the regions it has open.
 *
 * Who may open it.  Units must mean the same CPUs in every process: the
 * region records the OS CPU id of each unit index, and a process with
 * another number of units or another assignment gets EINVAL (two
 * processes writing one unit from two CPUs would lose updates).  A
 * writer must also update its unit with restartable sequences indexed by
 * CPU, or its updates could interleave with another process's: it pins
 * that promise in the rseq layer (pcpu__rseq_pin_exact), which refuses
 * with EOPNOTSUPP where it does not hold and stops the process if it
 * stops holding later.  Readers promise nothing and need nothing.
 *
 * The list of open regions lets every call check that its region pointer
 * is one (a stale or foreign pointer stops the process with a message,
 * as a bad cookie does in pcpu_free), lets pcpu_exit() detach them all
 * (their cookies were computed from the unit offsets it is about to
 * forget), and survives fork(): the child inherits the list, the
 * mappings and the pins, so an anonymous region's cookies keep working
 * in the children that share it.
 */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "backend_shm.h"
#include "init.h"
#include "os.h"
#include "region.h"
#include "region_dir.h"
#include "region_file.h"
#include "region_lock.h"
#include "rseq.h"
#include "topology.h"

struct pcpu_region {
    struct pcpu_region *next;       /* the list of open regions          */
    char *name;                     /* as opened, or "(anonymous)"       */
    bool anonymous;
    bool writable;
    bool pinned;                    /* holds an exactness pin            */
    bool detached;                  /* by pcpu_exit(): cookies are gone  */
    int fd;
    struct pcpu_rgeom g;            /* checked copy of the header        */
    void *meta;                     /* [0, data_off) of the file         */
    struct pcpu_rdir dir;
    int *os_id;                     /* the region's CPUs (= this process's) */
    struct pcpu_shm_map map;
    struct pcpu_chunk chunk;        /* the units, at this process's offsets */
};

static pthread_mutex_t list_lock = PTHREAD_MUTEX_INITIALIZER;
static struct pcpu_region *open_regions;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

/* fork(): the list is held across it, so the child (whose only thread is
 * the forking one) finds it consistent and unlocked. */
static void fork_prepare(void)
{
    pthread_mutex_lock(&list_lock);
}

static void fork_release(void)
{
    pthread_mutex_unlock(&list_lock);
}

static void register_atfork(void)
{
    pthread_atfork(fork_prepare, fork_release, fork_release);
}

static void *fail_null(int err)
{
    errno = err;
    return NULL;
}

static int fail_int(int err)
{
    errno = err;
    return -1;
}

/* Stop unless r is an open region of this process (misuse that cannot be
 * answered: the pointer may be anything). */
static void need_open(const struct pcpu_region *r, const char *fn)
{
    pthread_mutex_lock(&list_lock);
    const struct pcpu_region *p = open_regions;
    while (p && p != r)
        p = p->next;
    pthread_mutex_unlock(&list_lock);
    if (!p)
        pcpu__die("percpu: %s: %p is not an open region", fn, (const void *)r);
}

/* Unmap and close what attach() and the open made (any part may be
 * missing); r keeps its name and pin. */
static void unmap(struct pcpu_region *r)
{
    if (r->chunk.map_addr)
        pcpu__backend_shm.destroy_chunk(&r->chunk);
    if (r->meta)
        munmap(r->meta, r->g.data_off);
    r->meta = NULL;
    if (r->fd >= 0)
        close(r->fd);
    r->fd = -1;
    free(r->os_id);
    r->os_id = NULL;
}

/* Release everything r holds (any part may be missing), then r. */
static void destroy(struct pcpu_region *r)
{
    unmap(r);
    if (r->pinned)
        pcpu__rseq_unpin_exact(r->name);
    free(r->name);
    free(r);
}

static int attach(struct pcpu_region *r)
{
    const struct pcpu_alloc_info *ai = pcpu__layout.ai;
    if (pcpu__rfile_read(r->fd, &r->g) != 0)
        return -1;
    if (r->g.nr_units != ai->nr_units || pcpu__shm_fits(r->g.unit_size) != 0)
        return fail_int(EINVAL);
    r->os_id = calloc(r->g.nr_units, sizeof(*r->os_id));
    if (!r->os_id)
        return fail_int(ENOMEM);
    if (pcpu__rfile_read_cpus(r->fd, &r->g, r->os_id) != 0)
        return -1;
    for (unsigned int i = 0; i < r->g.nr_units; i++)
        if (r->os_id[i] != ai->os_id[i])
            return fail_int(EINVAL);
    /* The directory's lock names its owners by pid: writers must share
     * one PID namespace (readers take no lock). */
    uint64_t ns = pcpu__rlock_pidns();
    if (r->writable && r->g.pidns && ns && r->g.pidns != ns)
        return fail_int(EINVAL);

    int prot = PROT_READ | (r->writable ? PROT_WRITE : 0);
    void *meta = pcpu__os_fault(PCPU_OS_MAP) ? MAP_FAILED
                                             : mmap(NULL, r->g.data_off, prot, MAP_SHARED, r->fd, 0);
    if (meta == MAP_FAILED)
        return fail_int(errno == EACCES ? EACCES : ENOMEM);
    r->meta = meta;
    r->dir.hdr = meta;
    r->dir.ents = (struct pcpu_rfile_ent *)((char *)meta + r->g.dir_off);
    r->dir.cap = r->g.dir_cap;
    r->dir.unit_size = r->g.unit_size;
    r->dir.what = r->name;

    r->map.fd = r->fd;
    r->map.writable = r->writable;
    r->map.nr_units = r->g.nr_units;
    r->map.unit_size = r->g.unit_size;
    r->map.data_off = (off_t)r->g.data_off;
    r->map.os_id = r->os_id;
    r->chunk.backend_data = &r->map;
    if (pcpu__backend_shm.create_chunk(&r->chunk) != 0) {
        r->chunk.map_addr = NULL;
        return -1;
    }
    return 0;
}

/*
 * Open r's file and map it: the existing region of that name, or a new
 * one (unit_size 0: only an existing one).  A new named region is built
 * and mapped under no name and published last, so that a creation that
 * fails leaves nothing behind and nobody sees a half-made one.  Another
 * process may create or unlink the name meanwhile, hence a few rounds.
 * 0, or -1 with errno (r may hold parts; destroy() releases them).
 */
static int open_and_attach(struct pcpu_region *r, const char *name, size_t unit_size,
                           unsigned int flags, mode_t mode)
{
    const struct pcpu_alloc_info *ai = pcpu__layout.ai;
    bool create = flags & PCPU_REGION_CREATE, excl = flags & PCPU_REGION_EXCL;
    struct pcpu_rgeom g;
    if (unit_size && pcpu__rfile_geometry(ai->nr_units, unit_size, &g) != 0)
        return -1;
    if (!name) {
        r->fd = pcpu__rfile_create_anon(&g, ai->os_id);
        return r->fd < 0 ? -1 : attach(r);
    }
    int oflags = (flags & PCPU_REGION_RDONLY) ? O_RDONLY : O_RDWR;
    for (int round = 0; round < 8; round++) {
        if (!excl) {
            r->fd = shm_open(name, oflags, 0);
            if (r->fd >= 0)
                return attach(r);
            if (errno != ENOENT || !create)
                return -1;
            if (!unit_size)
                return fail_int(EINVAL);
        }
        struct pcpu_rfile_new nf;
        r->fd = pcpu__rfile_create_unnamed(mode, &g, ai->os_id, &nf);
        if (r->fd < 0)
            return -1;
        int ret = attach(r);
        if (ret == 0)
            ret = pcpu__rfile_publish(r->fd, name, &nf);
        if (ret == 0)
            return 0;
        int e = errno;
        pcpu__rfile_discard(-1, &nf);
        unmap(r);
        if (e != EEXIST || excl)
            return fail_int(e);
    }
    return fail_int(EEXIST);
}

struct pcpu_region *pcpu_region_open(const char *name, size_t size, unsigned int flags,
                                     mode_t mode)
{
    const unsigned int known = PCPU_REGION_CREATE | PCPU_REGION_EXCL | PCPU_REGION_RDONLY;
    bool create = flags & PCPU_REGION_CREATE;
    if ((flags & ~known) || ((flags & PCPU_REGION_EXCL) && !create) ||
        (create && (flags & PCPU_REGION_RDONLY)) || (mode & ~(mode_t)07777) ||
        (!name && !create) || (name && !pcpu__rfile_name_ok(name)))
        return fail_null(EINVAL);
    if (pcpu__ensure_init() != 0)
        return NULL;
    pthread_once(&atfork_once, register_atfork);
    size_t unit_size = 0;
    if (create) {
        /* Size 0 opens an existing region only: an anonymous or an
         * exclusive creation needs one. */
        size_t ps = pcpu__page_size;
        if (size > pcpu__layout.unit_size ||
            (size == 0 && (!name || (flags & PCPU_REGION_EXCL))))
            return fail_null(EINVAL);
        unit_size = (size + ps - 1) & ~(ps - 1);
    }
    struct pcpu_region *r = calloc(1, sizeof(*r));
    if (!r)
        return fail_null(ENOMEM);
    r->fd = -1;
    r->anonymous = name == NULL;
    r->writable = !(flags & PCPU_REGION_RDONLY);
    r->name = strdup(name ? name : "(anonymous)");
    if (!r->name) {
        destroy(r);
        return fail_null(ENOMEM);
    }
    if (r->writable) {
        if (pcpu__rseq_pin_exact(r->name) != 0) {
            int e = errno;
            destroy(r);
            return fail_null(e);
        }
        r->pinned = true;
    }
    if (open_and_attach(r, name, unit_size, flags, mode) != 0) {
        int e = errno == EPERM ? EACCES : errno; /* a sandbox's refusal, or /dev/shm's */
        destroy(r);
        return fail_null(e);
    }
    pthread_mutex_lock(&list_lock);
    pcpu__on_exit(pcpu__regions_detach_all);
    r->next = open_regions;
    open_regions = r;
    pthread_mutex_unlock(&list_lock);
    return r;
}

int pcpu_region_close(struct pcpu_region *r)
{
    if (!r)
        return fail_int(EINVAL);
    pthread_mutex_lock(&list_lock);
    struct pcpu_region **pp = &open_regions;
    while (*pp && *pp != r)
        pp = &(*pp)->next;
    bool found = *pp != NULL;
    if (found)
        *pp = r->next;
    pthread_mutex_unlock(&list_lock);
    if (!found)
        pcpu__die("percpu: pcpu_region_close: %p is not an open region", (void *)r);
    destroy(r);
    return 0;
}

int pcpu_region_unlink(const char *name)
{
    if (!pcpu__rfile_name_ok(name))
        return fail_int(EINVAL);
    /* Another user's file in the sticky /dev/shm is EPERM: a permission
     * error all the same. */
    if (shm_unlink(name) != 0)
        return fail_int(errno == EPERM ? EACCES : errno);
    return 0;
}

/* Common checks of the calls that use r: 0, or -1 with errno. */
static int usable(struct pcpu_region *r, const char *fn, bool write)
{
    if (!r)
        return fail_int(EINVAL);
    need_open(r, fn);
    if (r->detached)
        return fail_int(EINVAL);
    if (write && !r->writable)
        return fail_int(EACCES);
    return 0;
}

static bool obj_name_ok(const char *obj)
{
    if (!obj)
        return false;
    size_t n = strnlen(obj, PCPU_REGION_NAME_MAX + 1);
    return n >= 1 && n <= PCPU_REGION_NAME_MAX;
}

void *pcpu_region_alloc(struct pcpu_region *r, const char *obj, size_t size, size_t align)
{
    if (usable(r, "pcpu_region_alloc", false) != 0)
        return NULL;
    if (!obj_name_ok(obj) || size == 0 || size > r->g.unit_size ||
        (align & (align - 1)) || align > pcpu__page_size)
        return fail_null(EINVAL);
    if (usable(r, "pcpu_region_alloc", true) != 0)
        return NULL;
    if (align == 0) {
        align = pcpu__low_bit(size);
        if (align > 16)
            align = 16;
    }
    int lk = pcpu__rlock_acquire(&r->dir.hdr->lock);
    if (lk < 0)
        return NULL;
    size_t off;
    int ret = pcpu__rdir_alloc_held(&r->dir, obj, size, align, &r->chunk, &off);
    int e = errno;
    pcpu__rlock_release(&r->dir.hdr->lock);
    if (ret != 0)
        return fail_null(e);
    return r->chunk.base + off;
}

void *pcpu_region_find(struct pcpu_region *r, const char *obj, size_t *size)
{
    if (usable(r, "pcpu_region_find", false) != 0)
        return NULL;
    if (!obj_name_ok(obj))
        return fail_null(EINVAL);
    struct pcpu_rent e;
    if (pcpu__rdir_find(&r->dir, obj, &e) != 0)
        return NULL;
    if (size)
        *size = e.size;
    return r->chunk.base + e.off;
}

int pcpu_region_free(struct pcpu_region *r, void *cookie)
{
    if (usable(r, "pcpu_region_free", false) != 0)
        return -1;
    if (!cookie)
        return 0;
    if (usable(r, "pcpu_region_free", true) != 0)
        return -1;
    uintptr_t c = (uintptr_t)cookie, b = (uintptr_t)r->chunk.base;
    if (c < b || c - b >= r->g.unit_size)
        return fail_int(EINVAL);
    int lk = pcpu__rlock_acquire(&r->dir.hdr->lock);
    if (lk < 0)
        return -1;
    int ret = pcpu__rdir_free_held(&r->dir, c - b, &r->chunk);
    int e = errno;
    pcpu__rlock_release(&r->dir.hdr->lock);
    return ret == 0 ? 0 : fail_int(e);
}

struct walk_arg {
    struct pcpu_region *r;
    int (*fn)(const char *obj, void *cookie, size_t size, void *arg);
    void *arg;
};

static int walk_one(const struct pcpu_rent *e, void *arg)
{
    struct walk_arg *w = arg;
    return w->fn(e->name, w->r->chunk.base + e->off, e->size, w->arg);
}

int pcpu_region_foreach(struct pcpu_region *r,
                        int (*fn)(const char *obj, void *cookie, size_t size, void *arg),
                        void *arg)
{
    if (usable(r, "pcpu_region_foreach", false) != 0)
        return -1;
    if (!fn)
        return fail_int(EINVAL);
    struct walk_arg w = {r, fn, arg};
    return pcpu__rdir_walk(&r->dir, walk_one, &w);
}

int pcpu_region_info(struct pcpu_region *r, struct pcpu_region_info *info)
{
    if (usable(r, "pcpu_region_info", false) != 0)
        return -1;
    if (!info)
        return fail_int(EINVAL);
    struct pcpu_region_info in;
    memset(&in, 0, sizeof(in));
    if (pcpu__rdir_usage(&r->dir, &in.nr_objects, &in.used_bytes, &in.largest_free) != 0)
        return -1;
    if (!r->anonymous)
        snprintf(in.name, sizeof(in.name), "%s", r->name);
    in.nr_units = r->g.nr_units;
    in.unit_size = r->g.unit_size;
    in.free_bytes = r->g.unit_size - in.used_bytes;
    in.dir_capacity = r->g.dir_cap;
    in.file_bytes = r->g.file_size;
    in.resident_bytes = pcpu__shm_resident(r->fd);
    in.writable = r->writable;
    *info = in;
    return 0;
}

int pcpu_region_check(struct pcpu_region *r)
{
    if (usable(r, "pcpu_region_check", false) != 0)
        return -1;
    return pcpu__rdir_check(&r->dir);
}

void pcpu__regions_detach_all(void)
{
    pthread_mutex_lock(&list_lock);
    for (struct pcpu_region *r = open_regions; r; r = r->next) {
        if (r->detached)
            continue;
        /* The addresses stay reserved (so stale cookies fault); the
         * memory and the file's pages are no longer mapped. */
        if (r->chunk.map_addr)
            (void)pcpu__os_release_keep_range(r->chunk.map_addr, r->chunk.map_size);
        if (r->pinned)
            pcpu__rseq_unpin_exact(r->name);
        r->pinned = false;
        r->detached = true;
    }
    pthread_mutex_unlock(&list_lock);
}
