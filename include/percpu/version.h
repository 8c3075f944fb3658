/* SPDX-License-Identifier: MIT */
/*
 * percpu/version.h - which library a program runs with.
 * Part of <percpu.h>: include that.
 *
 * <percpu.h> defines PCPU_VERSION_MAJOR, PCPU_VERSION_MINOR and
 * PCPU_VERSION_PATCH (the header's version), PCPU_VERSION_NUMBER and
 * PCPU_VERSION; the functions here give the library's, which may be newer.
 */
#ifndef PERCPU_VERSION_H
#define PERCPU_VERSION_H
#ifndef PERCPU_H
#error "<percpu/version.h> is not for direct inclusion: #include <percpu.h>"
#endif

#ifdef __cplusplus
extern "C" {
#endif

/**
 * pcpu_version - the version of the library the program runs with.
 *
 * Returns PCPU_VERSION_NUMBER of the library loaded at run time (major *
 * 10000 + minor * 100 + patch), which may be newer than the header the
 * program was compiled with (PCPU_VERSION_NUMBER): compare the two to see
 * which library a program really got, or to require a minimum at run
 * time.  Needs no initialisation and never fails.
 *
 * What versions promise: while the major version is 0, the API of these
 * headers may change between minor versions, and NEWS.md lists every
 * change; a patch version only fixes.  The shared library's SONAME
 * (libpercpu.so.0) changes exactly when its ABI breaks, so a program keeps
 * working with any later library of the same SONAME; its symbols are
 * versioned (PERCPU_0).
 * Thread safety: any thread.  Async-signal-safe.
 */
PCPU__PUBLIC unsigned int pcpu_version(void);

/**
 * pcpu_version_string - the version of the library, as text.
 *
 * Returns PCPU_VERSION of the library loaded at run time,
 * "major.minor.patch": a static string, never NULL, never to be freed.
 * Needs no initialisation and never fails.
 * Thread safety: any thread.  Async-signal-safe.
 */
PCPU__PUBLIC const char *pcpu_version_string(void);

#ifdef __cplusplus
}
#endif

#endif /* PERCPU_VERSION_H */
