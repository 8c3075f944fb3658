# SPDX-License-Identifier: MIT
# license.cmake - every file the project wrote says its license.
#
# Included by tests/CMakeLists.txt, it adds the test "license.spdx", which
# runs this same file as a script (cmake -P) over the source tree: every
# file (`git ls-files`, tracked or new and not ignored, in a git checkout;
# otherwise every file under the source directory but .git, the build
# trees and what .gitignore names)
# must carry "SPDX-License-Identifier: MIT" on its first line, or on its
# second after a "#!" line.  C and C++ files (.c, .h, .cpp) spell it
# exactly "/* SPDX-License-Identifier: MIT */"; the others in their own
# comment syntax ("# ...", "<!-- ... -->").  Not checked: LICENSE itself
# and the fuzz corpus (tests/corpus: input data, not source).  The failure
# lists every file without the line.

if(NOT CMAKE_SCRIPT_MODE_FILE)
  add_test(NAME license.spdx
    COMMAND ${CMAKE_COMMAND}
      -DPCPU_SOURCE_DIR=${PROJECT_SOURCE_DIR}
      -DPCPU_BINARY_DIR=${PROJECT_BINARY_DIR}
      -P ${CMAKE_CURRENT_LIST_FILE})
  set_tests_properties(license.spdx PROPERTIES TIMEOUT 60)
  return()
endif()

# ---- script mode ---------------------------------------------------------
cmake_minimum_required(VERSION 3.18)
set(src ${PCPU_SOURCE_DIR})

set(files "")
set(how "")
find_program(GIT git)
if(GIT AND EXISTS ${src}/.git)
  # Tracked files, and new ones not yet added that .gitignore does not
  # keep out (so the test speaks before the commit does).
  execute_process(COMMAND ${GIT} -c core.quotePath=false -C ${src}
      ls-files --cached --others --exclude-standard
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(rc EQUAL 0)
    string(REGEX REPLACE "\n$" "" out "${out}")
    string(REPLACE "\n" ";" files "${out}")
    set(how "git ls-files")
  else()
    message(STATUS "git ls-files failed (${rc}: ${err}); looking at the files instead")
  endif()
endif()
if(how STREQUAL "")
  # Not a git checkout (a release tarball, an exported tree): every file
  # but the build trees and what .gitignore keeps out of the repository.
  file(GLOB_RECURSE all LIST_DIRECTORIES false RELATIVE ${src} ${src}/*)
  file(RELATIVE_PATH bin ${src} ${PCPU_BINARY_DIR})
  foreach(f ${all})
    string(FIND "${f}" "${bin}/" at)
    if(f MATCHES "^(\\.git|build[^/]*)/" OR at EQUAL 0
       OR f MATCHES "(^|/)(crash-|leak-|timeout-)[^/]*$|\\.(o|gcda|gcno)$")
      continue()
    endif()
    list(APPEND files ${f})
  endforeach()
  set(how "the files under ${src}")
endif()

set(missing "")
set(n 0)
foreach(f ${files})
  if(f STREQUAL "LICENSE" OR f MATCHES "^tests/corpus/" OR NOT EXISTS ${src}/${f}
     OR IS_DIRECTORY ${src}/${f})
    continue()
  endif()
  math(EXPR n "${n} + 1")
  file(READ ${src}/${f} head LIMIT 512)
  string(REGEX MATCH "^[^\n]*" line "${head}")
  if(line MATCHES "^#!")
    string(REGEX MATCH "^[^\n]*\n([^\n]*)" pair "${head}")
    set(line "${CMAKE_MATCH_1}")
  endif()
  if(f MATCHES "\\.(c|h|cpp)$")
    if(NOT line STREQUAL "/* SPDX-License-Identifier: MIT */")
      list(APPEND missing "${f}  (first line must be: /* SPDX-License-Identifier: MIT */)")
    endif()
  elseif(NOT line MATCHES "SPDX-License-Identifier: MIT")
    list(APPEND missing "${f}")
  endif()
endforeach()

if(n LESS 20)
  message(FATAL_ERROR "only ${n} files found through ${how}: is ${src} the source tree?")
endif()
if(missing)
  list(LENGTH missing nm)
  string(REPLACE ";" "\n  " missing "${missing}")
  message(FATAL_ERROR "${nm} of ${n} files (${how}) have no SPDX-License-Identifier line "
    "at the top (first line, or second after #!):\n  ${missing}\n"
    "Add \"SPDX-License-Identifier: MIT\" in the file's comment syntax.")
endif()
message(STATUS "${n} files (${how}) carry SPDX-License-Identifier: MIT")
