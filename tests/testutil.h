/* SPDX-License-Identifier: MIT */
/*
 * testutil.h - helpers shared by the cmocka test programs.
 */
#ifndef TU_TESTUTIL_H
#define TU_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "percpu.h"

/* The sanitizer the program is built with, for gcc and clang alike:
 * TU_ASAN (AddressSanitizer), TU_TSAN (ThreadSanitizer), TU_MSAN
 * (MemorySanitizer). */
#if defined(__SANITIZE_ADDRESS__)
#define TU_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__)
#define TU_TSAN 1
#endif
#if defined(__has_feature)
#if __has_feature(address_sanitizer) && !defined(TU_ASAN)
#define TU_ASAN 1
#endif
#if __has_feature(thread_sanitizer) && !defined(TU_TSAN)
#define TU_TSAN 1
#endif
#if __has_feature(memory_sanitizer)
#define TU_MSAN 1
#endif
#endif

/* Sanitizer builds check every access and mark shadow for every unit:
 * 5-20x slower.  The longest loops run TU_STEPS(n, d) = n/d steps there
 * (the same seeds and kinds of steps, fewer of them) so that CI's
 * sanitizer runs stay short; the plain build runs them in full. */
#if defined(TU_ASAN) || defined(TU_TSAN) || defined(TU_MSAN)
#define TU_SLOW_BUILD 1
#endif
#ifdef TU_SLOW_BUILD
#define TU_STEPS(n, d) ((n) / (d) ? (n) / (d) : 1)
#else
#define TU_STEPS(n, d) (n)
#endif

/* Run fn in a forked child (run_watched: child.h); return 1 if the child
 * died from SIGABRT and its stderr contains every string in need
 * (NULL-terminated list), else say why and return 0.  The child's stderr
 * is copied into out (if not NULL, at most len bytes). */
int tu_dies_with(void (*fn)(void *), void *arg, const char *const *need, char *out,
                        size_t len);

/* A size field of /proc/self/status ("VmRSS", "VmSize", ...) in bytes;
 * 0 if it is not there. */
size_t tu_status_bytes(const char *field);
/* Resident bytes of the whole process (VmRSS). */
size_t tu_rss(void);

/* The backend chosen by PERCPU_BACKEND (what the tests run under). */
enum pcpu_backend tu_backend(void);

/* The backend (PERCPU_BACKEND) and index mode (PERCPU_INDEX=cid) the
 * environment selects, into cfg, as a program that does not call
 * pcpu_init() gets them (pcpu_init() with a config ignores the
 * environment). */
void tu_env_mode(struct pcpu_config *cfg);

/* pcpu_exit() then pcpu_init() with cfg (NULL: the defaults) in the mode
 * the environment selects (tu_env_mode); asserts success. */
void tu_reinit(struct pcpu_config *cfg);

/* The bytes an allocation of size holds in the map, as reports give it:
 * up to 4 KiB the smallest thread-cache class that holds it (4-byte steps
 * to 256 bytes, then 64-byte steps), beyond that whole 4-byte granules. */
size_t tu_held_size(size_t size);

/* The end of a test program's main(): run the group, then pcpu_exit(), so
 * that every chunk and mapping is given back before the process ends
 * (leak checkers and robust mode's final check see the whole run). */
#define TU_RUN_THEN_EXIT(tests)                                                 \
    __extension__({                                                             \
        int tu_r_ = cmocka_run_group_tests(tests, NULL, NULL);                  \
        pcpu_exit();                                                            \
        tu_r_;                                                                  \
    })

/* Deterministic pseudo-random numbers (xorshift64*). */
uint64_t tu_rand(uint64_t *state);

/* Run fn in a forked child; return the signal that killed it, or 0 if it
 * exited normally (or could not be forked). */
int tu_dies_by_signal(void (*fn)(void *), void *arg);

/* Capture this process's stderr: begin redirects it to a temporary file,
 * end restores it and copies what was written into out (NUL-terminated,
 * at most len bytes).  Not nestable. */
void tu_stderr_begin(void);
void tu_stderr_end(char *out, size_t len);

/* Number of possible CPUs of the machine (sysfs, else sysconf). */
unsigned int tu_possible_cpus(void);

/* Seconds on a monotonic clock. */
double tu_now(void);

/* Take a stats snapshot; asserts success. */
struct pcpu_stats tu_stats(void);

/* Write byte over the object's size bytes in every unit. */
void tu_fill_units(void *cookie, size_t size, unsigned char byte);
/* Fail unless the object's size bytes are zero in every unit. */
void tu_assert_zero_units(void *cookie, size_t size);

/* glibc registered an rseq area for every thread (its __rseq_size is not
 * 0): no other owner can register one. */
bool tu_glibc_rseq(void);
/* Give the calling thread an rseq area of a foreign owner (registered
 * with the kernel, as another library would): the thread's rseq is taken.
 * False if the kernel refuses (glibc's or no rseq).  tu_give_back_rseq()
 * unregisters it: a thread must not exit with a registration in its
 * TLS. */
bool tu_take_rseq(void);
void tu_give_back_rseq(void);

/* Assert the allocator's invariants hold. */
#define assert_valid() assert_int_equal(pcpu_validate(), 0)

#endif
