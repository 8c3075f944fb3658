/* SPDX-License-Identifier: MIT */
/*
 * trace.h - USDT tracepoints of the allocator (provider "percpu").
 *
 * Statically defined probes, in the spirit of the kernel's percpu
 * tracepoints (include/trace/events/percpu.h), that perf, bpftrace and
 * SystemTap attach to without rebuilding anything:
 *
 *   percpu:alloc          cookie, size, align, reserved   (every successful
 *                         pcpu_alloc()/pcpu_alloc_reserved(), whichever
 *                         path served it: thread cache or the pool lock)
 *   percpu:alloc_fail     size, align, reserved   (the call returns NULL:
 *                         EINVAL or ENOMEM, errno says which)
 *   percpu:free           cookie   (every pcpu_free() of a non-NULL cookie)
 *   percpu:create_chunk   base     (base: the cookie of offset 0 of the chunk)
 *   percpu:destroy_chunk  base
 *   percpu:populate       base, page, n   (pages [page, page+n) of every unit)
 *   percpu:depopulate     base, page, n
 *
 * size, align, page and n are size_t, reserved an int (0 or 1), cookie and
 * base addresses.  align is the alignment asked for (0: natural).
 *
 *   bpftrace -e 'usdt:/usr/local/lib/libpercpu.so:percpu:alloc
 *                { @bytes[arg1] = count(); }'
 *
 * Each probe is one nop instruction at its site plus an ELF note
 * (.note.stapsdt, listed by `readelf -n`) that tells the tracer where the
 * nop is and where to find the arguments (registers or constants the code
 * has at hand anyway); a tracer attaching turns the nop into a breakpoint.
 * No semaphores: no argument here costs anything to compute.  Untraced,
 * the probes on the thread-cache fast path cost 4 instructions per
 * pcpu_alloc() (the nops, the alloc/alloc_fail test, keeping align in a
 * register) and 1 per pcpu_free(), and no time that percpu-bench's
 * alloc.percpu.8 can tell apart from its run-to-run spread.
 *
 * Without <sys/sdt.h> (Debian: systemtap-sdt-dev; CMake defines
 * PCPU_HAVE_SDT when it finds it) every probe compiles to nothing.
 */
#ifndef PCPU_TRACE_H
#define PCPU_TRACE_H

#if defined(PCPU_HAVE_SDT) && PCPU_HAVE_SDT
#include <sys/sdt.h>
#define PCPU__PROBE1(name, a) STAP_PROBE1(percpu, name, a)
#define PCPU__PROBE3(name, a, b, c) STAP_PROBE3(percpu, name, a, b, c)
#define PCPU__PROBE4(name, a, b, c, d) STAP_PROBE4(percpu, name, a, b, c, d)
#else
#define PCPU__PROBE1(name, a) ((void)0)
#define PCPU__PROBE3(name, a, b, c) ((void)0)
#define PCPU__PROBE4(name, a, b, c, d) ((void)0)
#endif

/* A successful allocation (the fast path, which has no NULL to test). */
#define pcpu_trace_alloc(cookie, size, align)                                  \
    PCPU__PROBE4(alloc, (cookie), (size), (align), 0)

/* alloc or alloc_fail, from the result of one allocation call. */
#define pcpu_trace_alloc_result(cookie, size, align, reserved)                 \
    do {                                                                       \
        if (cookie)                                                            \
            PCPU__PROBE4(alloc, (cookie), (size), (align), (int)(reserved));   \
        else                                                                   \
            PCPU__PROBE3(alloc_fail, (size), (align), (int)(reserved));        \
    } while (0)

/* The free of a live object (the fast path: no NULL to test). */
#define pcpu_trace_free_live(cookie) PCPU__PROBE1(free, (cookie))

/* A NULL cookie is no free (as the kernel's free_percpu() does not trace it). */
#define pcpu_trace_free(cookie)                                                \
    do {                                                                       \
        if (cookie)                                                            \
            PCPU__PROBE1(free, (cookie));                                      \
    } while (0)

#define pcpu_trace_create_chunk(base) PCPU__PROBE1(create_chunk, (base))
#define pcpu_trace_destroy_chunk(base) PCPU__PROBE1(destroy_chunk, (base))
#define pcpu_trace_populate(base, page, n) PCPU__PROBE3(populate, (base), (page), (n))
#define pcpu_trace_depopulate(base, page, n) PCPU__PROBE3(depopulate, (base), (page), (n))

#endif /* PCPU_TRACE_H */
