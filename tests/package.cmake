# SPDX-License-Identifier: MIT
# package.cmake - the Debian packages as a user installs them.
#
# Included by tests/CMakeLists.txt, it adds the test "package.deb", which
# runs this same file as a script (cmake -P):
#   - builds the packages of this build tree with CPack
#     (cmake/package.cmake) into a fresh temporary directory and checks
#     their names (<package>_<version>_<dpkg --print-architecture>.deb),
#     control fields (version, architecture, section, dependencies:
#     libpercpu-dev on libpercpu0 of the same version, libpercpu0 on libc,
#     percpu-tools on libpercpu0 exactly when its programs need
#     libpercpu.so), the library package's shlibs and ldconfig trigger,
#     and their contents: together, every file `cmake --install` installs
#     (man pages compressed), each in one package, plus a copyright file
#     in each;
#   - unpacks them all into a throw-away root (dpkg -x, no root needed),
#     builds tests/install_smoke.c there with `pkg-config --cflags --libs
#     percpu` (PKG_CONFIG_SYSROOT_DIR) and the outside project
#     tests/install_project with find_package(percpu)
#     (CMAKE_PREFIX_PATH=<root>/usr), runs them against the unpacked
#     library (LD_LIBRARY_PATH) and checks that the header, percpu.pc,
#     the CMake package, the packages and pcpu_version() at run time agree
#     on the version;
#   - runs lintian on the .debs where it is installed (`make deb` installs
#     it; `make test` does not, to keep CI short): no errors.
# Skipped (output "SKIPPED: ...") without dpkg (not a Debian system).  Not
# added to sanitizer, coverage or fuzzing builds: nobody ships those, and
# programs built against them need the sanitizer's runtime.

if(NOT CMAKE_SCRIPT_MODE_FILE)
  if(PCPU_SANITIZE OR PCPU_TSAN OR PCPU_COVERAGE OR PCPU_FUZZ)
    return()
  endif()
  add_test(NAME package.deb
    COMMAND ${CMAKE_COMMAND}
      -DPCPU_BUILD_DIR=${PROJECT_BINARY_DIR}
      -DPCPU_SOURCE=${CMAKE_CURRENT_LIST_DIR}/install_smoke.c
      -DPCPU_PROJECT=${CMAKE_CURRENT_LIST_DIR}/install_project
      -DPCPU_CC=${CMAKE_C_COMPILER}
      -DPCPU_SOVERSION=${PCPU_SOVERSION}
      -DPCPU_CPACK=${CMAKE_CPACK_COMMAND}
      -P ${CMAKE_CURRENT_LIST_FILE})
  # CPack installs the build tree like `cmake --install` does.  A high
  # COST starts it among the first tests, beside the long ones, instead
  # of last, where it would add its time to the run's.
  set_tests_properties(package.deb PROPERTIES TIMEOUT 300 RESOURCE_LOCK pcpu_install
    SKIP_REGULAR_EXPRESSION "SKIPPED:" COST 1000)
  return()
endif()

# ---- script mode ---------------------------------------------------------
cmake_minimum_required(VERSION 3.18)
include(${CMAKE_CURRENT_LIST_DIR}/versions.cmake)

find_program(DPKG dpkg)
find_program(DPKG_DEB dpkg-deb)
if(NOT DPKG OR NOT DPKG_DEB)
  message("SKIPPED: dpkg not found (Debian packages are built and checked on Debian)")
  return()
endif()
foreach(tool dpkg-shlibdeps file readelf)
  find_program(have_${tool} ${tool})
  if(NOT have_${tool})
    message(FATAL_ERROR "${tool} not found (Debian: apt-get install dpkg-dev file binutils; "
      "`make test` installs them)")
  endif()
endforeach()
find_program(PKG_CONFIG NAMES pkg-config pkgconf)
find_program(LINTIAN lintian)

include(${CMAKE_CURRENT_LIST_DIR}/script_util.cmake)

string(RANDOM LENGTH 8 tag)
set(work ${PCPU_BUILD_DIR}/package-test-${tag})
file(REMOVE_RECURSE ${work})
file(MAKE_DIRECTORY ${work})

# ---- build the packages ----------------------------------------------------
run("cpack" ${PCPU_CPACK} --config ${PCPU_BUILD_DIR}/CPackConfig.cmake -B ${work}/debs)
run("dpkg --print-architecture" ${DPKG} --print-architecture)
string(STRIP "${run_out}" arch)

# The packages' names; their version is checked against the header below.
file(GLOB debs RELATIVE ${work}/debs ${work}/debs/*.deb)
list(SORT debs)
set(runtime libpercpu${PCPU_SOVERSION})
set(version "")
foreach(d ${debs})
  if(d MATCHES "^libpercpu-dev_([^_]+)_")
    set(version ${CMAKE_MATCH_1})
  endif()
endforeach()
set(want "")
foreach(p ${runtime} libpercpu-dev percpu-tools)
  list(APPEND want ${p}_${version}_${arch}.deb)
endforeach()
list(SORT want)
if(NOT debs STREQUAL want OR version STREQUAL "")
  message(FATAL_ERROR "cpack made ${debs}; expected ${want}")
endif()
message(STATUS "packages: ${debs}")

# ---- unpack: one tree per package, and all of them in one root ------------
set(root ${work}/root)
file(MAKE_DIRECTORY ${root} ${work}/pkg ${work}/control)
foreach(p ${runtime} libpercpu-dev percpu-tools)
  set(deb ${work}/debs/${p}_${version}_${arch}.deb)
  run("dpkg-deb -x ${p}" ${DPKG_DEB} -x ${deb} ${work}/pkg/${p})
  run("dpkg-deb -x ${p}" ${DPKG_DEB} -x ${deb} ${root})
  run("dpkg-deb -e ${p}" ${DPKG_DEB} -e ${deb} ${work}/control/${p})
  foreach(field Package Version Architecture Section Depends Maintainer Description)
    execute_process(COMMAND ${DPKG_DEB} -f ${deb} ${field} OUTPUT_VARIABLE v
      OUTPUT_STRIP_TRAILING_WHITESPACE)
    set(${p}_${field} "${v}")
  endforeach()
  foreach(field Package Version Architecture Section Maintainer Description)
    if("${${p}_${field}}" STREQUAL "")
      message(FATAL_ERROR "${p}: no ${field} field")
    endif()
  endforeach()
  pcpu_expect_version("the package ${p} (Version)" ${version} "${${p}_Version}")
  if(NOT ${p}_Package STREQUAL p OR NOT ${p}_Architecture STREQUAL arch)
    message(FATAL_ERROR "${p}: Package ${${p}_Package}, Architecture ${${p}_Architecture} "
      "(dpkg --print-architecture: ${arch})")
  endif()
  if(NOT EXISTS ${work}/pkg/${p}/usr/share/doc/${p}/copyright)
    message(FATAL_ERROR "${p} has no usr/share/doc/${p}/copyright")
  endif()
  message(STATUS "${p}: Section ${${p}_Section}, Depends: ${${p}_Depends}")
endforeach()

# The header in the dev package defines the version all the rest must have.
pcpu_header_version(${root}/usr/include/percpu.h hversion)
pcpu_expect_version("the packages (file names)" ${hversion} ${version})

# Sections and dependencies.
foreach(pair "${runtime}:libs" "libpercpu-dev:libdevel" "percpu-tools:utils")
  string(REPLACE ":" ";" pair "${pair}")
  list(GET pair 0 p)
  list(GET pair 1 s)
  if(NOT ${p}_Section STREQUAL s)
    message(FATAL_ERROR "${p}: Section ${${p}_Section}, expected ${s}")
  endif()
endforeach()
if(NOT ${runtime}_Depends MATCHES "(^|, )libc6( |,|$)")
  message(FATAL_ERROR "${runtime} does not depend on libc6: ${${runtime}_Depends}")
endif()
if(NOT libpercpu-dev_Depends MATCHES "(^|, )${runtime} \\(= ${version}\\)(,|$)")
  message(FATAL_ERROR "libpercpu-dev must depend on ${runtime} (= ${version}): ${libpercpu-dev_Depends}")
endif()
# The tools depend on the shared library exactly when they link it.
file(GLOB tools ${work}/pkg/percpu-tools/usr/bin/*)
if(NOT tools)
  message(FATAL_ERROR "percpu-tools has no programs in usr/bin")
endif()
set(tools_need_lib FALSE)
foreach(t ${tools})
  run("readelf -d ${t}" ${have_readelf} -d ${t})
  if(run_out MATCHES "NEEDED[^\n]*\\[libpercpu\\.so")
    set(tools_need_lib TRUE)
  endif()
endforeach()
string(FIND "${percpu-tools_Depends}" "${runtime}" at)
if(tools_need_lib AND at EQUAL -1)
  message(FATAL_ERROR "percpu-tools links libpercpu.so but does not depend on ${runtime}: ${percpu-tools_Depends}")
elseif(NOT tools_need_lib AND NOT at EQUAL -1)
  message(FATAL_ERROR "percpu-tools links libpercpu statically but depends on ${runtime}: ${percpu-tools_Depends}")
endif()
# The shared library: named after its SONAME, with shlibs and the ldconfig trigger.
run("readelf -d" ${have_readelf} -d ${root}/usr/lib/libpercpu.so.${version})
if(NOT run_out MATCHES "SONAME[^\n]*\\[libpercpu\\.so\\.${PCPU_SOVERSION}\\]")
  message(FATAL_ERROR "libpercpu.so.${version}'s SONAME is not libpercpu.so.${PCPU_SOVERSION}:\n${run_out}")
endif()
file(READ ${work}/control/${runtime}/shlibs shlibs)
file(READ ${work}/control/${runtime}/triggers triggers)
if(NOT shlibs MATCHES "^libpercpu ${PCPU_SOVERSION} ${runtime} \\(>= ${version}\\)"
   OR NOT triggers MATCHES "activate-noawait ldconfig")
  message(FATAL_ERROR "${runtime}: shlibs \"${shlibs}\", triggers \"${triggers}\"")
endif()

# ---- contents: what `cmake --install` installs, each file in one package --
run("cmake --install" ${CMAKE_COMMAND} --install ${PCPU_BUILD_DIR} --prefix ${work}/inst/usr)
file(GLOB_RECURSE installed LIST_DIRECTORIES false RELATIVE ${work}/inst ${work}/inst/*)
set(packaged "")
foreach(p ${runtime} libpercpu-dev percpu-tools)
  file(GLOB_RECURSE files LIST_DIRECTORIES false RELATIVE ${work}/pkg/${p} ${work}/pkg/${p}/*)
  foreach(f ${files})
    if(f MATCHES "^usr/share/doc/")
      continue()
    endif()
    if(f MATCHES "^usr/share/man/")
      string(REGEX REPLACE "\\.gz$" "" f "${f}")
    endif()
    if(f IN_LIST packaged)
      message(FATAL_ERROR "${f} is in two packages")
    endif()
    list(APPEND packaged ${f})
  endforeach()
endforeach()
set(missing ${installed})
list(REMOVE_ITEM missing ${packaged})
set(extra ${packaged})
list(REMOVE_ITEM extra ${installed})
if(missing OR extra)
  string(REPLACE ";" "\n  " missing "${missing}")
  string(REPLACE ";" "\n  " extra "${extra}")
  message(FATAL_ERROR "the packages and `cmake --install` disagree (an install() "
    "rule without COMPONENT runtime, dev or tools?)\n"
    "installed but in no package:\n  ${missing}\nin a package but not installed:\n  ${extra}")
endif()
list(LENGTH installed n)
message(STATUS "${n} installed files, each in one package")

# ---- an outside program, with pkg-config ----------------------------------
if(NOT PKG_CONFIG)
  message(FATAL_ERROR "pkg-config not found (Debian: apt-get install pkg-config)")
endif()
set(ENV{PKG_CONFIG_SYSROOT_DIR} ${root})
set(ENV{PKG_CONFIG_LIBDIR} ${root}/usr/lib/pkgconfig)
run("pkg-config --modversion" ${PKG_CONFIG} --modversion percpu)
string(STRIP "${run_out}" v)
pcpu_expect_version("percpu.pc in libpercpu-dev" ${version} "${v}")
run("pkg-config" ${PKG_CONFIG} --cflags --libs percpu)
string(STRIP "${run_out}" flags)
separate_arguments(flags UNIX_COMMAND "${flags}")
message(STATUS "pkg-config flags: ${flags}")
unset(ENV{PKG_CONFIG_SYSROOT_DIR})
unset(ENV{PKG_CONFIG_LIBDIR})
run("compile with pkg-config" ${PCPU_CC} -std=gnu11 -Wall -Wextra -O2 ${PCPU_SOURCE}
  -o ${work}/smoke ${flags} -pthread -ldl)
run("the pkg-config program" ${CMAKE_COMMAND} -E env LD_LIBRARY_PATH=${root}/usr/lib ${work}/smoke)
message(STATUS "${run_out}")
if(NOT run_out MATCHES "library: ${root}/usr/lib/libpercpu\\.so\\.${PCPU_SOVERSION}")
  message(FATAL_ERROR "the program did not run with the packaged library:\n${run_out}")
endif()
pcpu_expect_run_version("${run_out}" ${version} ${hversion_NUMBER})

# ---- an outside program, with find_package --------------------------------
include(${root}/usr/lib/cmake/percpu/percpuConfigVersion.cmake)
pcpu_expect_version("percpuConfigVersion.cmake in libpercpu-dev" ${version} "${PACKAGE_VERSION}")
run("configure the outside project" ${CMAKE_COMMAND} -S ${PCPU_PROJECT} -B ${work}/project
  -DCMAKE_PREFIX_PATH=${root}/usr -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF
  -DCMAKE_C_COMPILER=${PCPU_CC} "-DCMAKE_C_FLAGS=-Wall -Wextra")
run("build the outside project" ${CMAKE_COMMAND} --build ${work}/project)
foreach(app app app_static)
  run("the find_package program ${app}" ${CMAKE_COMMAND} -E env LD_LIBRARY_PATH=${root}/usr/lib
    ${work}/project/${app})
  message(STATUS "${run_out}")
  pcpu_expect_run_version("${run_out}" ${version} ${hversion_NUMBER})
endforeach()
if(NOT run_out MATCHES "library: ${work}/project/app_static")
  message(FATAL_ERROR "app_static is not linked with libpercpu.a:\n${run_out}")
endif()

# ---- lintian ----------------------------------------------------------------
if(LINTIAN)
  file(GLOB debpaths ${work}/debs/*.deb)
  execute_process(COMMAND ${LINTIAN} ${debpaths} RESULT_VARIABLE rc
    OUTPUT_VARIABLE out ERROR_VARIABLE err)
  message(STATUS "lintian:\n${out}")
  if(NOT rc EQUAL 0 OR out MATCHES "(^|\n)E: ")
    message(FATAL_ERROR "lintian found errors (${rc}):\n${out}\n${err}")
  endif()
else()
  message(STATUS "NOTE: lintian is not installed, the packages were not linted "
    "(`make deb` installs it and lints them)")
endif()
file(REMOVE_RECURSE ${work})
