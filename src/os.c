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
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
