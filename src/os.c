/* SPDX-License-Identifier: MIT */
/*
 * os.c - the OS layer: every memory system call the library makes.
 *
 * Keeping mmap/mprotect/madvise/mbind behind these few primitives gives one
 * place to count them, to make them fail on purpose (pcpu_fault_inject()),
 * and to port them.  The metadata allocator wraps calloc for the same
 * reason: the allocator must survive its own bookkeeping failing.
 *
 * Nothing here takes the allocator lock; callers hold it where it matters.
 */
#include "os.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

size_t pcpu__page_size = 4096;
atomic_size_t pcpu__meta_bytes;

void pcpu__os_init(void)
{
    long ps = sysconf(_SC_PAGESIZE);
    pcpu__page_size = ps > 0 ? (size_t)ps : 4096;
}

static atomic_long os_calls;     /* calls so far                         */
static atomic_long fail_at;      /* os_calls value that fails; 0 = never */

long pcpu_fault_inject(long nth)
{
    long now = atomic_load(&os_calls);
    atomic_store(&fail_at, nth > 0 ? now + nth : 0);
    return now;
}

bool pcpu__os_fault(enum pcpu_os_call what)
{
    (void)what;
    long n = atomic_fetch_add_explicit(&os_calls, 1, memory_order_relaxed) + 1;
    long f = atomic_load_explicit(&fail_at, memory_order_relaxed);
    if (unlikely(f != 0 && n == f)) {
        atomic_store(&fail_at, 0);
        return true;
    }
    return false;
}

/* Map size bytes aligned to align (a power of two >= page) with prot:
 * over-map, then trim both ends so nothing stays mapped that we don't own. */
static void *map_aligned(size_t size, size_t align, int prot)
{
    if (pcpu__os_fault(PCPU_OS_MAP)) {
        errno = ENOMEM;
        return NULL;
    }
    if (align < pcpu__page_size)
        align = pcpu__page_size;
    size_t span = size + align - pcpu__page_size;
    if (span < size) {
        errno = ENOMEM;
        return NULL;
    }
    int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;
    char *p = mmap(NULL, span, prot, flags, -1, 0);
    if (p == MAP_FAILED) {
        errno = ENOMEM;
        return NULL;
    }
    uintptr_t a = ((uintptr_t)p + align - 1) & ~(uintptr_t)(align - 1);
    size_t head = a - (uintptr_t)p;
    size_t tail = span - head - size;
    if (head)
        munmap(p, head);
    if (tail)
        munmap((char *)a + size, tail);
    return (void *)a;
}

void *pcpu__os_reserve(size_t size, size_t align)
{
    return map_aligned(size, align, PROT_NONE);
}

void *pcpu__os_map_rw(size_t size, size_t align)
{
    return map_aligned(size, align, PROT_READ | PROT_WRITE);
}

void pcpu__os_release(void *p, size_t size)
{
    if (p && munmap(p, size) != 0)
        pcpu__die("percpu: munmap(%p, %zu) failed: %s", p, size, strerror(errno));
}

bool pcpu__os_release_keep_range(void *p, size_t size)
{
    /* One call replaces the mapping: its memory goes back, the addresses
     * stay ours, and any access faults.  If even that fails, unmap. */
    void *q = mmap(p, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED,
                   -1, 0);
    if (q != MAP_FAILED)
        return true;
    pcpu__os_release(p, size);
    return false;
}

int pcpu__os_commit(void *p, size_t size)
{
    if (pcpu__os_fault(PCPU_OS_PROTECT) || mprotect(p, size, PROT_READ | PROT_WRITE) != 0) {
        errno = ENOMEM;
        return -1;
    }
    return 0;
}

int pcpu__os_protect_none(void *p, size_t size)
{
    if (pcpu__os_fault(PCPU_OS_PROTECT) || mprotect(p, size, PROT_NONE) != 0) {
        errno = ENOMEM;
        return -1;
    }
    return 0;
}

int pcpu__os_discard(void *p, size_t size)
{
    /* MADV_DONTNEED on private anonymous memory: the pages go back to the
     * OS now and read as zero afterwards, which is what a freed range
     * must look like. */
    if (pcpu__os_fault(PCPU_OS_ADVISE) || madvise(p, size, MADV_DONTNEED) != 0) {
        errno = ENOMEM;
        return -1;
    }
    return 0;
}

int pcpu__os_decommit(void *p, size_t size)
{
    if (pcpu__os_discard(p, size) != 0)
        return -1;
    /* Failing to take access away is harmless: the pages are already gone
     * and read as zero, so the range stays valid memory. */
    if (mprotect(p, size, PROT_NONE) != 0)
        return 0;
    return 0;
}

void pcpu__os_nohuge(void *p, size_t size)
{
    /* A huge page would make one touched byte cost 2 MiB of resident
     * memory spanning several units. */
#ifdef MADV_NOHUGEPAGE
    (void)madvise(p, size, MADV_NOHUGEPAGE);
#else
    (void)p;
    (void)size;
#endif
}

void pcpu__os_bind(void *p, size_t size, int node)
{
#ifdef SYS_mbind
    if (node < 0 || node >= 1024)
        return;
    unsigned long mask[1024 / (8 * sizeof(unsigned long))] = {0};
    mask[node / (8 * sizeof(unsigned long))] |= 1ul << (node % (8 * sizeof(unsigned long)));
    /* MPOL_PREFERRED (1): fall back to other nodes rather than fail. */
    (void)syscall(SYS_mbind, p, size, 1, mask, (unsigned long)1024, 0);
#else
    (void)p;
    (void)size;
    (void)node;
#endif
}

/* PAGEMAP_SCAN (Linux 6.7, linux/fs.h), spelled out because distribution
 * headers may predate it. */
struct pcpu_page_region {
    uint64_t start, end, categories;
};
struct pcpu_pm_scan_arg {
    uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
    uint64_t category_inverted, category_mask, category_anyof_mask, return_mask;
};
#define PCPU_PAGEMAP_SCAN _IOWR('f', 16, struct pcpu_pm_scan_arg)
#define PCPU_PAGE_IS_PRESENT (1u << 3)
#define PCPU_PAGE_IS_SWAPPED (1u << 4)
#define PCPU_PAGE_IS_PFNZERO (1u << 5)

/* /proc/self/pagemap, opened on first use; -2: the kernel cannot scan. */
static int pagemap_fd = -1;

void pcpu__os_fork_child(void)
{
    /* The descriptor names the parent's page tables. */
    if (pagemap_fd >= 0)
        close(pagemap_fd);
    if (pagemap_fd != -2)
        pagemap_fd = -1;
}

int pcpu__os_dirty_ranges(char *start, char *end, void (*fn)(char *lo, char *hi, void *arg),
                          void *arg)
{
    int fd = __atomic_load_n(&pagemap_fd, __ATOMIC_ACQUIRE);
    if (fd == -2)
        return -1;
    if (fd < 0) {
        fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return -1;
        int expected = -1;
        if (!__atomic_compare_exchange_n(&pagemap_fd, &expected, fd, false, __ATOMIC_ACQ_REL,
                                         __ATOMIC_ACQUIRE)) {
            close(fd);
            fd = expected;
            if (fd < 0)
                return -1;
        }
    }
    /* Zeroed: valgrind does not know the ioctl, and would take what the
     * kernel writes here for uninitialised memory. */
    struct pcpu_page_region vec[32] = {{0}};
    struct pcpu_pm_scan_arg a;
    uint64_t at = (uintptr_t)start;
    while (at < (uintptr_t)end) {
        memset(&a, 0, sizeof(a));
        a.size = sizeof(a);
        a.start = at;
        a.end = (uintptr_t)end;
        a.vec = (uintptr_t)vec;
        a.vec_len = sizeof(vec) / sizeof(vec[0]);
        /* present or swapped, and not the shared zero page */
        a.category_anyof_mask = PCPU_PAGE_IS_PRESENT | PCPU_PAGE_IS_SWAPPED;
        a.category_inverted = PCPU_PAGE_IS_PFNZERO;
        a.category_mask = PCPU_PAGE_IS_PFNZERO;
        a.return_mask = PCPU_PAGE_IS_PRESENT | PCPU_PAGE_IS_SWAPPED;
        long n = ioctl(fd, PCPU_PAGEMAP_SCAN, &a);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == ENOTTY || errno == EINVAL) {
                /* An older kernel: never ask again. */
                __atomic_store_n(&pagemap_fd, -2, __ATOMIC_RELEASE);
                close(fd);
            }
            return -1;
        }
        for (long i = 0; i < n; i++)
            fn((char *)(uintptr_t)vec[i].start, (char *)(uintptr_t)vec[i].end, arg);
        if (a.walk_end <= at)
            break;
        at = a.walk_end;
    }
    return 0;
}

void *pcpu__meta_calloc(size_t n, size_t size)
{
    if (pcpu__os_fault(PCPU_OS_META)) {
        errno = ENOMEM;
        return NULL;
    }
    void *p = calloc(n, size);
    if (!p) {
        errno = ENOMEM;
        return NULL;
    }
    atomic_fetch_add_explicit(&pcpu__meta_bytes, n * size, memory_order_relaxed);
    return p;
}

void pcpu__meta_free(void *p, size_t bytes)
{
    if (!p)
        return;
    atomic_fetch_sub_explicit(&pcpu__meta_bytes, bytes, memory_order_relaxed);
    free(p);
}

void *pcpu__meta_map(size_t bytes)
{
    if (pcpu__os_fault(PCPU_OS_META)) {
        errno = ENOMEM;
        return NULL;
    }
    /* Not calloc: once glibc has freed one block this big it serves the
     * next from the heap and clears all of it, so every thread would pay
     * for the whole cache in memory. */
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        errno = ENOMEM;
        return NULL;
    }
    atomic_fetch_add_explicit(&pcpu__meta_bytes, bytes, memory_order_relaxed);
    return p;
}

void pcpu__meta_unmap(void *p, size_t bytes)
{
    if (!p)
        return;
    atomic_fetch_sub_explicit(&pcpu__meta_bytes, bytes, memory_order_relaxed);
    pcpu__os_release(p, bytes);
}
