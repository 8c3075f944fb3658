/* SPDX-License-Identifier: MIT */
/* pcpu_other_rseq.c - another rseq library in the process, behaving as librseq does when it owns registration: the neighbour test_rseq_neighbour puts beside percpu. */
/*
 * librseq is not packaged by Debian, so the tests carry this stand-in for
 * its registration protocol (written here from its documented behaviour):
 *  - it exports rseq_offset, rseq_size and rseq_flags, and the functions
 *    rseq_register_current_thread() and rseq_unregister_current_thread();
 *  - when glibc registered rseq (its __rseq_size is not 0), glibc owns
 *    registration: rseq_offset is glibc's and registering does nothing;
 *  - otherwise the library owns it, with an initial-exec TLS area of its
 *    own: rseq_size is -1 until its constructor ran, 0 until a thread
 *    registered, then the kernel's feature size; a registration that
 *    fails once another succeeded stops the process (abort), as librseq
 *    does for "incoherent" registration.
 * Its own restartable sequence (other_rseq_inc) increments a per-CPU
 * array, so the test can check that both libraries' sequences are exact.
 */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "pcpu_other_rseq.h"

#define EXPORT __attribute__((visibility("default")))
#define SIG 0x53053053
#define AREA_LEN 32

struct area {
    uint32_t cpu_id_start;
    uint32_t cpu_id;
    uint64_t rseq_cs;
    uint32_t flags, node_id, mm_cid, pad;
} __attribute__((aligned(32)));

static __thread struct area my_area __attribute__((tls_model("initial-exec"))) = {
    .cpu_id = UINT32_MAX,
};

EXPORT ptrdiff_t rseq_offset;
EXPORT unsigned int rseq_size = UINT32_MAX;
EXPORT unsigned int rseq_flags;

static int owned;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static char *tp(void)
{
    char *p;
    __asm__("movq %%fs:0, %0" : "=r"(p));
    return p;
}

static void init(void)
{
    const ptrdiff_t *off = dlsym(RTLD_NEXT, "__rseq_offset");
    const unsigned int *size = dlsym(RTLD_NEXT, "__rseq_size");
    if (off && size && *size != 0) {
        rseq_offset = *off;
        __atomic_store_n(&rseq_size, *size < AREA_LEN ? *size : AREA_LEN, __ATOMIC_RELEASE);
        return;
    }
    owned = 1;
    rseq_offset = (char *)&my_area - tp();
    __atomic_store_n(&rseq_size, 0, __ATOMIC_RELEASE);
}

__attribute__((constructor)) static void other_ctor(void)
{
    pthread_once(&once, init);
}

EXPORT int rseq_register_current_thread(void)
{
    pthread_once(&once, init);
    if (!owned)
        return 0;
    if (syscall(SYS_rseq, &my_area, AREA_LEN, 0, SIG) != 0) {
        if (__atomic_load_n(&rseq_size, __ATOMIC_RELAXED) > 0)
            abort();
        return -1;
    }
    if (__atomic_load_n(&rseq_size, __ATOMIC_RELAXED) == 0) {
        unsigned long f = getauxval(AT_RSEQ_FEATURE_SIZE);
        __atomic_store_n(&rseq_size, f ? (unsigned int)f : 20u, __ATOMIC_RELAXED);
    }
    return 0;
}

EXPORT int rseq_unregister_current_thread(void)
{
    pthread_once(&once, init);
    if (!owned)
        return 0;
    return syscall(SYS_rseq, &my_area, AREA_LEN, 1, SIG) == 0 ? 0 : -1;
}

EXPORT int other_rseq_owned(void)
{
    pthread_once(&once, init);
    return owned;
}

EXPORT int other_rseq_cpu(void)
{
    struct area *a = (struct area *)(tp() + rseq_offset);
    return (int32_t)__atomic_load_n(&a->cpu_id, __ATOMIC_RELAXED);
}

EXPORT int other_rseq_inc(long *counts)
{
    struct area *a = (struct area *)(tp() + rseq_offset);
    for (;;) {
        int32_t cpu = (int32_t)__atomic_load_n(&a->cpu_id_start, __ATOMIC_RELAXED);
        if ((int32_t)__atomic_load_n(&a->cpu_id, __ATOMIC_RELAXED) < 0)
            return -1;
        __asm__ goto(".pushsection __rseq_cs, \"aw\"\n\t"
                     ".balign 32\n"
                     "3:\n\t"
                     ".long 0, 0\n\t"
                     ".quad 1f, 2f - 1f, 4f\n\t"
                     ".popsection\n\t"
                     "leaq 3b(%%rip), %%rax\n\t"
                     "movq %%rax, 8(%[area])\n"
                     "1:\n\t"
                     "cmpl %[cpu], 4(%[area])\n\t"
                     "jnz 4f\n\t"
                     "addq $1, (%[counts], %q[cpu], 8)\n"
                     "2:\n\t"
                     ".pushsection __rseq_failure, \"ax\"\n\t"
                     ".long 0x53053053\n"
                     "4:\n\t"
                     "jmp %l[again]\n\t"
                     ".popsection\n"
                     :
                     : [area] "r"(a), [cpu] "r"(cpu), [counts] "r"(counts)
                     : "rax", "memory", "cc"
                     : again);
        /* Leave no descriptor of this library armed (it may be dlclose()d). */
        __atomic_store_n(&a->rseq_cs, 0, __ATOMIC_RELAXED);
        return 0;
    again:;
    }
}
