# SPDX-License-Identifier: MIT
# install.cmake - check an installed percpu the way a user's build sees it.
#
# Included by tests/CMakeLists.txt, it adds two tests, which run this same
# file as a script (cmake -P); each first does `cmake --install` of the
# build tree into a fresh temporary prefix, then:
#
#   install.pkgconfig      compiles tests/install_smoke.c outside the tree
#                          with nothing but `pkg-config --cflags --libs
#                          percpu` (PKG_CONFIG_PATH pointing into the
#                          prefix) and runs it against the installed shared
#                          library (checked: it prints the library it
#                          resolved);
#   install.cmake_package  checks percpuConfigVersion.cmake's answers, then
#                          configures and builds the outside project
#                          tests/install_project (find_package(percpu 0.2),
#                          percpu::percpu and percpu::percpu_static) with
#                          CMAKE_PREFIX_PATH=<prefix> and runs both
#                          programs: the shared one must resolve the
#                          installed libpercpu.so through the imported
#                          target alone (no LD_LIBRARY_PATH).
#
# Both check that the version is one (tests/versions.cmake): the installed
# header's PCPU_VERSION_*, the shared library's file name
# (libpercpu.so.<version>), what the program was compiled with and what
# pcpu_version() returns when it runs, and `pkg-config --modversion` or
# percpuConfigVersion.cmake's PACKAGE_VERSION.
#
# percpu.pc is written at install time and names the prefix it is
# installed into (checked); the CMake package is relocatable by itself.

if(NOT CMAKE_SCRIPT_MODE_FILE)
  # A sanitizer build's library needs the sanitizer runtime in the program.
  set(san "")
  if(PCPU_SANITIZE)
    set(san "-fsanitize=address,undefined")
  elseif(PCPU_TSAN)
    set(san "-fsanitize=thread")
  endif()
  foreach(kind pkgconfig cmake_package)
    add_test(NAME install.${kind}
      COMMAND ${CMAKE_COMMAND}
        -DPCPU_INSTALL_TEST=${kind}
        -DPCPU_BUILD_DIR=${PROJECT_BINARY_DIR}
        -DPCPU_SAN_FLAGS=${san}
        -DPCPU_SOURCE=${CMAKE_CURRENT_LIST_DIR}/install_smoke.c
        -DPCPU_PROJECT=${CMAKE_CURRENT_LIST_DIR}/install_project
        -DPCPU_CC=${CMAKE_C_COMPILER}
        -P ${CMAKE_CURRENT_LIST_FILE})
    # `cmake --install` rewrites install_manifest.txt in the build tree.
    set_tests_properties(install.${kind} PROPERTIES TIMEOUT 300 RESOURCE_LOCK pcpu_install)
  endforeach()
  return()
endif()

# ---- script mode ---------------------------------------------------------
include(${CMAKE_CURRENT_LIST_DIR}/versions.cmake)
include(${CMAKE_CURRENT_LIST_DIR}/script_util.cmake)

# The program prints "library: <path>" for the object that holds
# pcpu_alloc: the installed .so, or the program itself when linked static.
function(expect_library out path)
  string(FIND "${out}" "library: ${path}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "the program did not run against ${path}:\n${out}")
  endif()
endfunction()

install_to_temp_prefix(install)

# The version: the installed header's, and the library's file name.
file(GLOB_RECURSE headers ${prefix}/*/percpu.h)
list(LENGTH headers n)
if(NOT n EQUAL 1)
  message(FATAL_ERROR "expected one installed percpu.h under ${prefix}, found: ${headers}")
endif()
pcpu_header_version(${headers} version)
file(GLOB_RECURSE solibs ${prefix}/*/libpercpu.so.*.*.*)
string(REGEX REPLACE ".*/libpercpu\\.so\\." "" soversion "${solibs}")
pcpu_expect_version("the installed shared library (libpercpu.so.<version>)" ${version} "${soversion}")

if(PCPU_INSTALL_TEST STREQUAL "pkgconfig")
  find_program(PKG_CONFIG NAMES pkg-config pkgconf)
  if(NOT PKG_CONFIG)
    message(FATAL_ERROR "pkg-config not found (Debian: apt-get install pkg-config)")
  endif()
  file(GLOB_RECURSE pcs ${prefix}/*/percpu.pc)
  list(LENGTH pcs n)
  if(NOT n EQUAL 1)
    message(FATAL_ERROR "expected one installed percpu.pc under ${prefix}, found: ${pcs}")
  endif()
  get_filename_component(pcdir ${pcs} DIRECTORY)
  get_filename_component(libdir ${pcdir} DIRECTORY)

  set(ENV{PKG_CONFIG_PATH} ${pcdir})
  set(ENV{PKG_CONFIG_LIBDIR} ${pcdir})   # only ours, not a system-wide percpu
  run("pkg-config --variable=prefix" ${PKG_CONFIG} --variable=prefix percpu)
  string(STRIP "${run_out}" pc_prefix)
  if(NOT pc_prefix STREQUAL prefix)
    message(FATAL_ERROR "percpu.pc says prefix=${pc_prefix}, installed into ${prefix}")
  endif()
  run("pkg-config --modversion" ${PKG_CONFIG} --modversion percpu)
  string(STRIP "${run_out}" pc_version)
  pcpu_expect_version("percpu.pc (pkg-config --modversion)" ${version} "${pc_version}")
  run("pkg-config" ${PKG_CONFIG} --cflags --libs percpu)
  string(STRIP "${run_out}" flags)
  separate_arguments(flags UNIX_COMMAND "${flags}")
  message(STATUS "pkg-config flags: ${flags}")

  # Outside the source and build trees' include paths: only the flags above.
  run("compile" ${PCPU_CC} -std=gnu11 -Wall -Wextra -O2 ${PCPU_SOURCE} -o ${work}/install_smoke
      ${flags} ${PCPU_SAN_FLAGS} -pthread -ldl)

  run("installed program" ${CMAKE_COMMAND} -E env LD_LIBRARY_PATH=${libdir} ${work}/install_smoke)
  message(STATUS "${run_out}")
  expect_library("${run_out}" "${prefix}/")
  pcpu_expect_run_version("${run_out}" ${version} ${version_NUMBER})

elseif(PCPU_INSTALL_TEST STREQUAL "cmake_package")
  file(GLOB_RECURSE configs ${prefix}/*/percpuConfig.cmake)
  list(LENGTH configs n)
  if(NOT n EQUAL 1)
    message(FATAL_ERROR "expected one installed percpuConfig.cmake under ${prefix}, found: ${configs}")
  endif()
  get_filename_component(cfgdir ${configs} DIRECTORY)
  foreach(f percpuConfigVersion.cmake percpuTargets.cmake)
    if(NOT EXISTS ${cfgdir}/${f})
      message(FATAL_ERROR "${f} is not installed beside ${configs}")
    endif()
  endforeach()

  # What find_package(percpu X) accepts: any 0.x up to the installed one.
  function(check_request ask want)
    set(PACKAGE_FIND_VERSION ${ask})
    string(REPLACE "." ";" parts "${ask}.0.0")
    list(GET parts 0 PACKAGE_FIND_VERSION_MAJOR)
    list(GET parts 1 PACKAGE_FIND_VERSION_MINOR)
    list(GET parts 2 PACKAGE_FIND_VERSION_PATCH)
    include(${cfgdir}/percpuConfigVersion.cmake)
    if(want AND NOT PACKAGE_VERSION_COMPATIBLE)
      message(FATAL_ERROR "percpu ${PACKAGE_VERSION} refuses a request for ${ask}")
    elseif(NOT want AND PACKAGE_VERSION_COMPATIBLE)
      message(FATAL_ERROR "percpu ${PACKAGE_VERSION} accepts a request for ${ask}")
    endif()
  endfunction()
  set(PACKAGE_FIND_VERSION ${version})
  include(${cfgdir}/percpuConfigVersion.cmake)
  pcpu_expect_version("percpuConfigVersion.cmake (PACKAGE_VERSION)" ${version} "${PACKAGE_VERSION}")
  string(REGEX MATCH "^[0-9]+\\.[0-9]+" this_minor "${version}")
  foreach(ask ${this_minor} ${version} 0.1)
    check_request(${ask} TRUE)
  endforeach()
  foreach(ask 0.99 1.0)
    check_request(${ask} FALSE)
  endforeach()

  set(bin ${work}/project)
  set(cfg ${CMAKE_COMMAND} -S ${PCPU_PROJECT} -B ${bin}
      -DCMAKE_PREFIX_PATH=${prefix}
      -DCMAKE_C_COMPILER=${PCPU_CC}
      -DCMAKE_BUILD_TYPE=RelWithDebInfo
      "-DCMAKE_C_FLAGS=-Wall -Wextra ${PCPU_SAN_FLAGS}"
      "-DCMAKE_EXE_LINKER_FLAGS=${PCPU_SAN_FLAGS}")
  run("configure the outside project" ${cfg})
  message(STATUS "${run_out}")
  run("build the outside project" ${CMAKE_COMMAND} --build ${bin})

  run("installed program (shared)" ${bin}/app)
  message(STATUS "${run_out}")
  expect_library("${run_out}" "${prefix}/")
  pcpu_expect_run_version("${run_out}" ${version} ${version_NUMBER})
  run("installed program (static)" ${bin}/app_static)
  message(STATUS "${run_out}")
  expect_library("${run_out}" "${bin}/app_static")
  pcpu_expect_run_version("${run_out}" ${version} ${version_NUMBER})

else()
  message(FATAL_ERROR "PCPU_INSTALL_TEST=${PCPU_INSTALL_TEST}: pkgconfig or cmake_package")
endif()
file(REMOVE_RECURSE ${work})
