# SPDX-License-Identifier: MIT
# package.cmake - the Debian packages (`make deb`), built by CPack's DEB
# generator from the same install rules as `make install`.
#
#   libpercpu0      (libs)     the shared library libpercpu.so.0, named
#                              after its SONAME; shlibs file and ldconfig
#   libpercpu-dev   (libdevel) percpu.h, libpercpu.a, libpercpu.so,
#                              percpu.pc, the CMake package, the man pages;
#                              depends on libpercpu0 of the same version
#   percpu-tools    (utils)    percpu-bench, pcpu-live, percpu-stat (linked
#                              with the static library: they depend on libc
#                              only)
#
# Each install() rule names its component (runtime, dev, tools); CPack
# installs each component into a staging tree under /usr, and
# cmake/deb-docs.cmake adds what Debian wants there and `make install`
# does not (usr/share/doc/<package>/copyright and changelog.gz, compressed
# man pages).  dpkg-shlibdeps (dpkg-dev) computes the dependency on libc.
#
# Why CPack and not debian/ with dpkg-buildpackage: CPack comes with
# CMake, so the packages need nothing beyond what the build already has
# (dpkg-buildpackage wants debhelper and a second, parallel description
# of where every file goes); the install rules stay the only list of what
# is installed, so `make install` and the packages cannot drift apart.
# What CPack does not do (a source package, a symbols file, automatic
# man page compression) is not needed to install percpu from a .deb.
#
#   make deb                       -> build/packages/*.deb
#   cpack --config build/CPackConfig.cmake -B DIR   (packages into DIR)

set(PCPU_DEB_MAINTAINER "The percpu authors <maintainers@users.noreply.r-seed-534d0478.example>"
  CACHE STRING "Maintainer field of the Debian packages")

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME percpu)
set(CPACK_PACKAGE_VENDOR "The percpu authors")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "${PCPU_DEB_MAINTAINER}")
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${PCPU_DEB_MAINTAINER}")
set(CPACK_DEBIAN_PACKAGE_SOURCE percpu)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)      # <package>_<version>_<arch>.deb
set(CPACK_PACKAGE_DIRECTORY ${PROJECT_BINARY_DIR}/packages)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_INSTALL_PREFIX /usr)
# Install with DESTDIR, so that CMAKE_INSTALL_PREFIX is /usr (percpu.pc
# is written at install time and names it).
set(CPACK_SET_DESTDIR ON)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)

set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL runtime dev tools)
set(CPACK_DEBIAN_ENABLE_COMPONENT_DEPENDS ON)  # dev -> "libpercpu0 (= version)"
set(CPACK_COMPONENT_DEV_DEPENDS runtime)

set(CPACK_DEBIAN_RUNTIME_PACKAGE_NAME libpercpu${PCPU_SOVERSION})
set(CPACK_DEBIAN_RUNTIME_PACKAGE_SECTION libs)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_SHLIBDEPS ON)
# ldconfig runs through libc's trigger, as Debian's policy asks.  (CPack
# also writes a postinst and postrm that call ldconfig for any package with
# a library in /usr/lib, and has no way to leave them out: a redundant
# call, which lintian warns about.)
file(WRITE ${PROJECT_BINARY_DIR}/deb/runtime/triggers "activate-noawait ldconfig\n")
set(CPACK_DEBIAN_RUNTIME_PACKAGE_CONTROL_EXTRA ${PROJECT_BINARY_DIR}/deb/runtime/triggers)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON)
# Programs built against this version run with any later libpercpu0 (the
# SONAME changes when the ABI breaks).
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS_POLICY ">=")
set(CPACK_DEBIAN_RUNTIME_DESCRIPTION
"per-CPU memory allocator and rseq this-CPU operations (shared library)
percpu gives Linux programs per-CPU memory the way the Linux kernel gives
it to itself: one allocation is one object per CPU, all at the same offset
of their CPU's unit, so one pointer plus one table load reaches any CPU's
copy. Its this-CPU operations (add, increment, compare-and-exchange, lists)
are restartable sequences (rseq); per-CPU counters, reference counts and a
reader-writer semaphore are built on them.

This package contains the shared library.")

set(CPACK_DEBIAN_DEV_PACKAGE_NAME libpercpu-dev)
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION libdevel)
set(CPACK_DEBIAN_DEV_DESCRIPTION
"per-CPU memory allocator and rseq this-CPU operations (development files)
percpu gives Linux programs per-CPU memory the way the Linux kernel gives
it to itself, with this-CPU operations over rseq, per-CPU counters,
reference counts and a reader-writer semaphore.

This package contains the header percpu.h, the static library, the
pkg-config file (pkg-config percpu), the CMake package
(find_package(percpu)) and the manual pages (man 7 percpu).")

set(CPACK_DEBIAN_TOOLS_PACKAGE_NAME percpu-tools)
set(CPACK_DEBIAN_TOOLS_PACKAGE_SECTION utils)
set(CPACK_DEBIAN_TOOLS_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_TOOLS_PACKAGE_SUGGESTS "gnuplot-nox | gnuplot")
set(CPACK_DEBIAN_TOOLS_DESCRIPTION
"benchmark and inspection tools for the percpu allocator
percpu-bench measures the percpu library (this-CPU operations, allocation,
counters, reference counts, lists) against what a program would use
instead: shared atomics, thread-local counters, sched_getcpu() striping,
malloc, mutexes and pthread_rwlock. pcpu-live shows how the allocator
behaves with many live small objects. percpu-stat shows the objects of a
per-CPU region shared between processes, once or live, as a table, JSON
or OpenMetrics for Prometheus.")

set(CPACK_PRE_BUILD_SCRIPTS ${CMAKE_CURRENT_LIST_DIR}/deb-docs.cmake)
# What deb-docs.cmake reads.
set(CPACK_PCPU_LICENSE ${PROJECT_SOURCE_DIR}/LICENSE)
set(CPACK_PCPU_NEWS ${PROJECT_SOURCE_DIR}/NEWS.md)
set(CPACK_PCPU_STRIP ${CMAKE_STRIP})

include(CPack)
