# SPDX-License-Identifier: MIT
# docs.cmake - every public name has a man page that man finds and renders.
#
# Included by tests/CMakeLists.txt, it adds the test "docs.manpages", which
# runs this same file as a script (cmake -P): `cmake --install` into a
# fresh temporary prefix, then with MANPATH=<prefix>/share/man, as a user
# of that prefix would have it:
#   - every function the installed libpercpu.so exports (nm -D, the public
#     pcpu_* of src/percpu.map, not the pcpu__ internals) and every public
#     function-like macro of the public headers (PCPU_NEW, pcpu_this_inc, ...)
#     has a page: `man NAME` shows a page that mentions NAME (its own, or
#     its family's through a link page);
#   - `man 7 percpu` shows the overview;
#   - `man -l` renders every installed page without a groff warning
#     (also the tools' pages in man1).
# It also says whether `man` will find pages installed under the build's
# CMAKE_INSTALL_PREFIX without MANPATH (/usr/local/share/man: yes), and
# shows Doxygen's warnings about the header's comments.
#
# Skipped (output "SKIPPED: ...") where Doxygen or man is missing.

if(NOT CMAKE_SCRIPT_MODE_FILE)
  if(NOT PCPU_HAVE_DOCS)
    set(PCPU_HAVE_DOCS 0)
  endif()
  add_test(NAME docs.manpages
    COMMAND ${CMAKE_COMMAND}
      -DPCPU_HAVE_DOCS=${PCPU_HAVE_DOCS}
      -DPCPU_BUILD_DIR=${PROJECT_BINARY_DIR}
      -DPCPU_INCLUDE=${PROJECT_SOURCE_DIR}/include
      -DPCPU_NM=${CMAKE_NM}
      -DPCPU_MANDIR=${CMAKE_INSTALL_MANDIR}
      -DPCPU_PREFIX=${CMAKE_INSTALL_PREFIX}
      -DPCPU_DOXYGEN_LOG=${PCPU_DOCS_WARNINGS}
      -P ${CMAKE_CURRENT_LIST_FILE})
  set_tests_properties(docs.manpages PROPERTIES TIMEOUT 300 COST 30
    SKIP_REGULAR_EXPRESSION "SKIPPED:" RESOURCE_LOCK pcpu_install)
  return()
endif()

# ---- script mode ---------------------------------------------------------
cmake_minimum_required(VERSION 3.18)
if(NOT PCPU_HAVE_DOCS)
  message("SKIPPED: built without Doxygen (Debian: apt-get install doxygen), no man pages")
  return()
endif()
find_program(MAN man)
find_program(MANPATH_PROGRAM manpath)
if(NOT MAN)
  message("SKIPPED: man not found (Debian: apt-get install man-db)")
  return()
endif()

include(${CMAKE_CURRENT_LIST_DIR}/script_util.cmake)
install_to_temp_prefix(docs)
set(mandir ${prefix}/${PCPU_MANDIR})
if(NOT IS_DIRECTORY ${mandir}/man3)
  message(FATAL_ERROR "no man pages installed under ${mandir}")
endif()

# The public names: the library's exported functions and the header's
# function-like macros.
file(GLOB_RECURSE sos ${prefix}/*/libpercpu.so)
run("nm -D" ${PCPU_NM} -D --defined-only ${sos})
string(REGEX MATCHALL "[0-9a-f]+ [TW] pcpu_[A-Za-z0-9_]+" exported "${run_out}")
set(names "")
foreach(e ${exported})
  string(REGEX REPLACE ".* " "" n "${e}")
  if(NOT n MATCHES "^pcpu__")
    list(APPEND names ${n})
  endif()
endforeach()
list(LENGTH names nfuncs)
if(nfuncs LESS 10)
  message(FATAL_ERROR "nm found only ${nfuncs} public functions in ${sos}:\n${run_out}")
endif()
file(GLOB headers ${PCPU_INCLUDE}/percpu.h ${PCPU_INCLUDE}/percpu/*.h)
set(defines "")
foreach(h ${headers})
  file(STRINGS ${h} d REGEX "^#[ \t]*define[ \t]+(pcpu|PCPU)_[A-Za-z0-9_]*\\(")
  list(APPEND defines ${d})
endforeach()
foreach(d ${defines})
  string(REGEX REPLACE "^#[ \t]*define[ \t]+([A-Za-z0-9_]+)\\(.*" "\\1" n "${d}")
  if(NOT n MATCHES "^(pcpu|PCPU)__")
    list(APPEND names ${n})
  endif()
endforeach()
list(REMOVE_DUPLICATES names)
list(LENGTH names n)
message(STATUS "${nfuncs} exported functions, ${n} public names in all")

# `man NAME` as a user with MANPATH=<prefix>/share/man.
set(ENV{MANPATH} ${mandir})
set(ENV{MANWIDTH} 80)
set(ENV{MANPAGER} cat)
set(ENV{PAGER} cat)
set(missing "")
foreach(n ${names})
  execute_process(COMMAND ${MAN} -w ${n} RESULT_VARIABLE rc OUTPUT_VARIABLE where ERROR_QUIET)
  string(STRIP "${where}" where)
  if(NOT rc EQUAL 0 OR NOT where MATCHES "^${mandir}/")
    list(APPEND missing ${n})
    continue()
  endif()
  execute_process(COMMAND ${MAN} ${n} RESULT_VARIABLE rc OUTPUT_VARIABLE page ERROR_VARIABLE err)
  string(FIND "${page}" "${n}" at)
  if(NOT rc EQUAL 0 OR at EQUAL -1 OR NOT page MATCHES "\nNAME\n")
    message(FATAL_ERROR "`man ${n}` (${where}) does not show a page about ${n} (${rc}):\n${page}\n${err}")
  endif()
endforeach()
if(missing)
  string(REPLACE ";" " " missing "${missing}")
  message(FATAL_ERROR "no man page for: ${missing}\n"
    "Give each a kernel-doc comment in its header under include/ (/** name - summary ... */), "
    "or put it on its family's page in docs/pages.txt.")
endif()

run("man 7 percpu" ${MAN} 7 percpu)
if(NOT run_out MATCHES "per-CPU" OR NOT run_out MATCHES "SEE ALSO")
  message(FATAL_ERROR "`man 7 percpu` is not the overview:\n${run_out}")
endif()

# Every page renders, without groff warnings.
file(GLOB pages ${mandir}/man1/*.1 ${mandir}/man3/*.3 ${mandir}/man7/*.7)
set(nreal 0)
foreach(p ${pages})
  file(READ ${p} head LIMIT 16)
  if(head MATCHES "^\\.so ")
    continue()
  endif()
  math(EXPR nreal "${nreal} + 1")
  run("man -l ${p}" ${MAN} --warnings -l ${p})
  if(NOT run_out MATCHES "\nNAME\n" OR NOT run_err STREQUAL "")
    message(FATAL_ERROR "`man -l ${p}` does not render cleanly:\n${run_err}\n${run_out}")
  endif()
endforeach()
list(LENGTH pages npages)
message(STATUS "${nreal} pages and ${npages} files in ${mandir} render")

# Where `make install` puts the pages for this build, and whether man
# looks there by itself.
unset(ENV{MANPATH})
if(MANPATH_PROGRAM)
  execute_process(COMMAND ${MANPATH_PROGRAM} -g OUTPUT_VARIABLE global ERROR_QUIET)
  string(STRIP "${global}" global)
  string(REPLACE ":" ";" global "${global}")
  if("${PCPU_PREFIX}/${PCPU_MANDIR}" IN_LIST global)
    message(STATUS "man finds pages installed in ${PCPU_PREFIX}/${PCPU_MANDIR} without MANPATH")
  else()
    message(STATUS "NOTE: man does not search ${PCPU_PREFIX}/${PCPU_MANDIR} by itself; "
                   "users of that prefix need MANPATH")
  endif()
endif()

if(EXISTS ${PCPU_DOXYGEN_LOG})
  file(READ ${PCPU_DOXYGEN_LOG} warnings)
  if(NOT warnings STREQUAL "")
    message(STATUS "Doxygen's warnings about the public headers:\n${warnings}")
  endif()
endif()
file(REMOVE_RECURSE ${work})
