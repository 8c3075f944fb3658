# SPDX-License-Identifier: MIT
# versions.cmake - one version everywhere (included by install.cmake and
# package.cmake in script mode).  include/percpu.h defines it
# (PCPU_VERSION_MAJOR/MINOR/PATCH); an installed percpu.h, percpu.pc,
# percpuConfigVersion.cmake, the shared library's file name, the Debian
# packages and what pcpu_version() returns at run time must all say the
# same.

# pcpu_header_version(<percpu.h> <var>): "major.minor.patch" from the
# header's defines; <var>_NUMBER gets PCPU_VERSION_NUMBER's value.
function(pcpu_header_version header var)
  file(STRINGS ${header} defines REGEX "^#define PCPU_VERSION_(MAJOR|MINOR|PATCH)[ \t]+[0-9]+")
  set(parts "")
  foreach(p MAJOR MINOR PATCH)
    if(NOT defines MATCHES "PCPU_VERSION_${p}[ \t]+([0-9]+)")
      message(FATAL_ERROR "${header} does not define PCPU_VERSION_${p}")
    endif()
    list(APPEND parts ${CMAKE_MATCH_1})
  endforeach()
  list(GET parts 0 major)
  list(GET parts 1 minor)
  list(GET parts 2 patch)
  math(EXPR number "${major} * 10000 + ${minor} * 100 + ${patch}")
  set(${var} "${major}.${minor}.${patch}" PARENT_SCOPE)
  set(${var}_NUMBER ${number} PARENT_SCOPE)
endfunction()

# pcpu_expect_version(<what> <want> <got>): stop when they differ.
function(pcpu_expect_version what want got)
  if(NOT "${got}" STREQUAL "${want}")
    message(FATAL_ERROR "version mismatch: the header says ${want}, ${what} says \"${got}\"")
  endif()
  message(STATUS "version of ${what}: ${got}")
endfunction()

# pcpu_expect_run_version(<program's output> <version> <number>): the line
# install_smoke.c prints, for the header it was compiled with and for the
# library it runs with (pcpu_version(), pcpu_version_string()).
function(pcpu_expect_run_version out version number)
  if(NOT out MATCHES "version: header ([^ ]*) \\(([0-9]+)\\), library ([^ ]*) \\(([0-9]+)\\)")
    message(FATAL_ERROR "the program did not print its versions:\n${out}")
  endif()
  pcpu_expect_version("the header the program was compiled with" "${version} ${number}"
    "${CMAKE_MATCH_1} ${CMAKE_MATCH_2}")
  pcpu_expect_version("pcpu_version_string() and pcpu_version()" "${version} ${number}"
    "${CMAKE_MATCH_3} ${CMAKE_MATCH_4}")
endfunction()
