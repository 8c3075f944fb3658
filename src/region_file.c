/* SPDX-License-Identifier: MIT */
/*
 * region_file.c - making a region's file and reading its header back
 * without trusting it.
 *
 * Making.  A region must never be seen half-made: an opener that found a
 * name with a header still being written would either reject a region
 * that is about to be fine or, worse, accept one that is not.  So the
 * file is built with no name at all (open(O_TMPFILE) in /dev/shm), sized
 * (sparse), given its whole header, and only then linked to its name with
 * linkat(), which fails with EEXIST if the name exists: of several
 * processes creating one name exactly one link succeeds, and whoever sees
 * the name sees a complete region.  Where O_TMPFILE or /proc is missing,
 * a temporary name and link() do the same (a crash can then leave the
 * temporary file behind, never a half-made region under the real name).
 * Anonymous regions are memfds, sealed against shrinking so that no
 * process can make another's mapping fault.
 *
 * Reading.  The header is read with pread() into a private copy, and
 * every field is checked there: values from the file are never used
 * twice or before they were checked, since another process may change
 * them meanwhile.  The layout is recomputed from the four numbers it
 * follows from and compared, so no offset from the file is believed.
 * Wrong magic, another layout version or page size: EINVAL (not our
 * region); anything else inconsistent: EBADMSG.
 */
#include "region_file.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "os.h"
#include "region_lock.h"
#include "topology.h"

/* Where glibc's shm_open() puts names (a tmpfs mount). */
#define SHM_DIR "/dev/shm"

_Static_assert(sizeof(struct pcpu_rfile_ent) == 96, "directory entries are 96 bytes");
_Static_assert(offsetof(struct pcpu_rfile_hdr, lock) == 128, "the mutable part starts at 128");

static size_t round_up(size_t v, size_t a)
{
    return (v + a - 1) & ~(a - 1);
}

static int layout_of(struct pcpu_rgeom *g)
{
    /* nr_units <= PCPU_MAX_CPUS, unit_size <= PCPU_MAX_UNIT_SIZE and
     * dir_cap <= PCPU_RFILE_DIR_MAX are checked first: nothing here can
     * overflow 64 bits after that (8192 units of 1 GiB are 2^43 bytes). */
    g->os_off = sizeof(struct pcpu_rfile_hdr);
    g->dir_off = round_up(g->os_off + (size_t)g->nr_units * sizeof(int32_t), 64);
    g->data_off =
        round_up(g->dir_off + (size_t)g->dir_cap * sizeof(struct pcpu_rfile_ent), g->page_size);
    g->file_size = g->data_off + (size_t)g->nr_units * g->unit_size;
    if (g->file_size > (size_t)INT64_MAX) {
        errno = EINVAL;
        return -1;
    }
    return 0;
}

int pcpu__rfile_geometry(unsigned int nr_units, size_t unit_size, struct pcpu_rgeom *g)
{
    memset(g, 0, sizeof(*g));
    g->page_size = pcpu__page_size;
    if (nr_units == 0 || nr_units > PCPU_MAX_CPUS || unit_size == 0 ||
        unit_size > PCPU_MAX_UNIT_SIZE || unit_size % g->page_size) {
        errno = EINVAL;
        return -1;
    }
    g->nr_units = nr_units;
    g->unit_size = unit_size;
    /* One entry per 16 bytes of a unit: smaller objects than that are
     * rare enough to run out of entries before space. */
    size_t cap = unit_size / 16;
    g->dir_cap = (unsigned int)(cap < 64 ? 64 : cap > PCPU_RFILE_DIR_MAX ? PCPU_RFILE_DIR_MAX : cap);
    g->pidns = pcpu__rlock_pidns();
    return layout_of(g);
}

/* Size fd for g and write the header and CPU table (fd is not visible to
 * anyone yet). */
static int build(int fd, const struct pcpu_rgeom *g, const int *os_id)
{
    if (ftruncate(fd, (off_t)g->file_size) != 0) {
        errno = (errno == EFBIG || errno == EINVAL) ? EINVAL : ENOMEM;
        return -1;
    }
    struct pcpu_rfile_hdr h;
    memset(&h, 0, sizeof(h));
    h.magic = PCPU_RFILE_MAGIC;
    h.layout = PCPU_RFILE_LAYOUT;
    h.hdr_size = sizeof(h);
    h.page_size = (uint32_t)g->page_size;
    h.nr_units = g->nr_units;
    h.unit_size = g->unit_size;
    h.dir_cap = g->dir_cap;
    h.os_off = g->os_off;
    h.dir_off = g->dir_off;
    h.data_off = g->data_off;
    h.file_size = g->file_size;
    h.pidns = g->pidns;
    h.created = (uint64_t)time(NULL);
    size_t tlen = (size_t)g->nr_units * sizeof(int32_t);
    int32_t *t = pcpu__meta_calloc(g->nr_units, sizeof(int32_t));
    if (!t) {
        errno = ENOMEM;
        return -1;
    }
    for (unsigned int i = 0; i < g->nr_units; i++)
        t[i] = os_id[i];
    bool ok = pwrite(fd, t, tlen, (off_t)g->os_off) == (ssize_t)tlen &&
              pwrite(fd, &h, sizeof(h), 0) == (ssize_t)sizeof(h);
    pcpu__meta_free(t, tlen);
    if (!ok) {
        errno = ENOMEM;
        return -1;
    }
    return 0;
}

int pcpu__rfile_create_anon(const struct pcpu_rgeom *g, const int *os_id)
{
    int fd = memfd_create("percpu-region", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) {
        /* A sandbox refusing memfd_create (EPERM, ENOSYS) is a refusal,
         * not a lack of memory. */
        errno = (errno == EMFILE || errno == ENFILE) ? errno
              : (errno == EPERM || errno == ENOSYS) ? EACCES : ENOMEM;
        return -1;
    }
    if (build(fd, g, os_id) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    /* Nobody may shrink it under another process's mapping (SIGBUS). */
    (void)fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
    return fd;
}

bool pcpu__rfile_name_ok(const char *name)
{
    if (!name || name[0] != '/')
        return false;
    size_t n = strnlen(name + 1, NAME_MAX + 1);
    if (n == 0 || n > NAME_MAX || strchr(name + 1, '/'))
        return false;
    return strcmp(name, "/.") != 0 && strcmp(name, "/..") != 0;
}

static void shm_path(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s%s", SHM_DIR, name);
}

/* The temporary-name way, where O_TMPFILE is not available: the file
 * gets a name of its own in /dev/shm until it is published or discarded. */
static int create_temp(mode_t mode, struct pcpu_rfile_new *nf)
{
    static _Atomic unsigned long seq;
    for (int tries = 0; tries < 16; tries++) {
        snprintf(nf->tmp, sizeof(nf->tmp), "%s/.pcpu-region-%ld-%lu", SHM_DIR,
                 (long)getpid(), atomic_fetch_add(&seq, 1));
        int fd = open(nf->tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
        if (fd >= 0)
            return fd;
        if (errno != EEXIST)
            break;
    }
    nf->tmp[0] = 0;
    return -1;
}

int pcpu__rfile_create_unnamed(mode_t mode, const struct pcpu_rgeom *g, const int *os_id,
                               struct pcpu_rfile_new *nf)
{
    nf->tmp[0] = 0;
    /* An unnamed file is linked into place through /proc/self/fd (linkat
     * with AT_EMPTY_PATH would need CAP_DAC_READ_SEARCH); without /proc,
     * a temporary name from the start. */
    int fd = -1;
    if (access("/proc/self/fd", F_OK) == 0) {
        fd = open(SHM_DIR, O_TMPFILE | O_RDWR | O_CLOEXEC, mode);
        /* Other errors (no O_TMPFILE, a sandbox refusing it): the
         * temporary name, which fails in its turn where it must. */
        if (fd < 0 && (errno == EACCES || errno == ENOENT || errno == EMFILE || errno == ENFILE))
            return -1;
    }
    if (fd < 0) {
        fd = create_temp(mode, nf);
        if (fd < 0)
            return -1;
    }
    if (build(fd, g, os_id) != 0) {
        int e = errno;
        pcpu__rfile_discard(fd, nf);
        errno = e;
        return -1;
    }
    return fd;
}

int pcpu__rfile_publish(int fd, const char *name, struct pcpu_rfile_new *nf)
{
    char path[PATH_MAX];
    shm_path(path, sizeof(path), name);
    int ret;
    if (nf->tmp[0]) {
        ret = link(nf->tmp, path);
    } else {
        char self[64];
        snprintf(self, sizeof(self), "/proc/self/fd/%d", fd);
        ret = linkat(AT_FDCWD, self, AT_FDCWD, path, AT_SYMLINK_FOLLOW);
    }
    int e = errno;
    pcpu__rfile_discard(-1, nf);
    errno = e;
    return ret;
}

void pcpu__rfile_discard(int fd, struct pcpu_rfile_new *nf)
{
    if (nf->tmp[0]) {
        unlink(nf->tmp);
        nf->tmp[0] = 0;
    }
    if (fd >= 0)
        close(fd);
}

int pcpu__rfile_read(int fd, struct pcpu_rgeom *g)
{
    struct stat st;
    struct pcpu_rfile_hdr h;
    if (fstat(fd, &st) != 0 || st.st_size < (off_t)sizeof(h) ||
        pread(fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h)) {
        errno = EINVAL;
        return -1;
    }
    if (h.magic != PCPU_RFILE_MAGIC || h.layout != PCPU_RFILE_LAYOUT ||
        h.page_size != pcpu__page_size) {
        errno = EINVAL;
        return -1;
    }
    memset(g, 0, sizeof(*g));
    g->page_size = pcpu__page_size;
    g->nr_units = h.nr_units;
    g->unit_size = h.unit_size;
    g->dir_cap = h.dir_cap;
    g->pidns = h.pidns;
    if (h.hdr_size != sizeof(h) || h.nr_units == 0 || h.nr_units > PCPU_MAX_CPUS ||
        h.unit_size == 0 || h.unit_size > PCPU_MAX_UNIT_SIZE || h.unit_size % g->page_size ||
        h.dir_cap == 0 || h.dir_cap > PCPU_RFILE_DIR_MAX || layout_of(g) != 0 ||
        h.os_off != g->os_off || h.dir_off != g->dir_off || h.data_off != g->data_off ||
        h.file_size != g->file_size || (uint64_t)st.st_size < h.file_size) {
        errno = EBADMSG;
        return -1;
    }
    return 0;
}

int pcpu__rfile_read_cpus(int fd, const struct pcpu_rgeom *g, int *os_id)
{
    size_t len = (size_t)g->nr_units * sizeof(int32_t);
    int32_t *t = pcpu__meta_calloc(g->nr_units, sizeof(int32_t));
    if (!t) {
        errno = ENOMEM;
        return -1;
    }
    int ret = 0;
    if (pread(fd, t, len, (off_t)g->os_off) != (ssize_t)len) {
        errno = EBADMSG;
        ret = -1;
    } else {
        for (unsigned int i = 0; i < g->nr_units; i++)
            os_id[i] = t[i];
    }
    pcpu__meta_free(t, len);
    return ret;
}
