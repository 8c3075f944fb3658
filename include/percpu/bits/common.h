/* SPDX-License-Identifier: MIT */
/*
 * percpu/bits/common.h - compiler helpers and the state every inline
 * function of the API reads.  Machinery, not API: never use these names.
 */
#ifndef PERCPU_BITS_COMMON_H
#define PERCPU_BITS_COMMON_H
#ifndef PERCPU_H
#error "<percpu/bits/common.h> is not for direct inclusion: #include <percpu.h>"
#endif

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define PCPU__LIKELY(x) __builtin_expect(!!(x), 1)
#define PCPU__UNLIKELY(x) __builtin_expect(!!(x), 0)
#define PCPU__PUBLIC __attribute__((visibility("default")))
#define PCPU__INLINE inline __attribute__((always_inline))
/* after a label: the code that follows is rarely run (laid out apart) */
#if defined(__clang__)
#define PCPU__COLD_LABEL ;
#else
#define PCPU__COLD_LABEL __attribute__((cold));
#endif
#else
#define PCPU__LIKELY(x) (x)
#define PCPU__UNLIKELY(x) (x)
#define PCPU__PUBLIC
#define PCPU__INLINE inline
#define PCPU__COLD_LABEL ;
#endif

#define PCPU__STR2(x) #x
#define PCPU__STR(x) PCPU__STR2(x)
#define PCPU__UNPAREN(...) __VA_ARGS__

/* ThreadSanitizer cannot see what restartable sequences and membarrier()
 * order: the inline paths tell it where they publish and take. */
#if defined(__SANITIZE_THREAD__)
#define PCPU__TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define PCPU__TSAN 1
#endif
#endif
#ifdef PCPU__TSAN
#ifdef __cplusplus
extern "C" {
#endif
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#ifdef __cplusplus
}
#endif
#define PCPU__TSAN_RELEASE(p) __tsan_release((void *)(p))
#define PCPU__TSAN_ACQUIRE(p) __tsan_acquire((void *)(p))
#else
#define PCPU__TSAN_RELEASE(p) ((void)0)
#define PCPU__TSAN_ACQUIRE(p) ((void)0)
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Offset from a cookie to the copy of CPU index i (the kernel's
 * __per_cpu_offset).  Valid for i < pcpu__nr_units once initialised. */
PCPU__PUBLIC extern intptr_t pcpu__cpu_offsets[PCPU_MAX_CPUS];
/* Units per chunk; 0 until the allocator is initialised. */
PCPU__PUBLIC extern unsigned int pcpu__nr_units;

PCPU__PUBLIC void pcpu__bad_cpu(unsigned int cpu);

#ifdef __cplusplus
}
#endif

#endif /* PERCPU_BITS_COMMON_H */
