# SPDX-License-Identifier: MIT
# headers.cmake - the public headers keep their promise: <percpu.h> is the
# one include a user needs, compiles alone as C (gnu11 and c11) and C++
# with every warning an error, brings no <stdio.h> with glibc, and every
# header under percpu/ (topic headers and machinery) refuses to be
# included alone with a message naming <percpu.h>.  Topic headers stay
# readable in one sitting (under 600 lines).
#
# Included by tests/CMakeLists.txt (adds the test "headers.include"); runs
# as a script (cmake -P) from there.
if(NOT CMAKE_SCRIPT_MODE_FILE)
  add_test(NAME headers.include
    COMMAND ${CMAKE_COMMAND}
      -DPCPU_INCLUDE=${PROJECT_SOURCE_DIR}/include
      -DPCPU_CC=${CMAKE_C_COMPILER}
      -DPCPU_CXX=${CMAKE_CXX_COMPILER}
      -DPCPU_WORK=${CMAKE_CURRENT_BINARY_DIR}/headers-test
      -P ${CMAKE_CURRENT_LIST_FILE})
  set_tests_properties(headers.include PROPERTIES TIMEOUT 120)
  return()
endif()

cmake_minimum_required(VERSION 3.18)
file(REMOVE_RECURSE ${PCPU_WORK})
file(MAKE_DIRECTORY ${PCPU_WORK})
set(problems "")

function(try_compile_text lang std text out_rc out_err)
  if(lang STREQUAL "c")
    set(file ${PCPU_WORK}/t.c)
    set(cc ${PCPU_CC})
  else()
    set(file ${PCPU_WORK}/t.cpp)
    set(cc ${PCPU_CXX})
  endif()
  file(WRITE ${file} "${text}")
  execute_process(COMMAND ${cc} -std=${std} -Wall -Wextra -Werror -fsyntax-only
                          -I${PCPU_INCLUDE} ${file}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE o ERROR_VARIABLE e)
  set(${out_rc} ${rc} PARENT_SCOPE)
  set(${out_err} "${o}${e}" PARENT_SCOPE)
endfunction()

# The umbrella alone, in C and C++; without <stdio.h> (FILE is not known).
set(use "#include <percpu.h>\nint main(void) { long *c = PCPU_NEW(long); pcpu_this_inc(c); return (int)pcpu_sum(c); }\n")
foreach(std gnu11 c11)
  try_compile_text(c ${std} "${use}" rc err)
  if(NOT rc EQUAL 0)
    list(APPEND problems "<percpu.h> alone does not compile as C (${std}):\n${err}")
  endif()
endforeach()
try_compile_text(cxx c++17 "${use}" rc err)
if(NOT rc EQUAL 0)
  list(APPEND problems "<percpu.h> alone does not compile as C++17:\n${err}")
endif()
try_compile_text(c gnu11 "#include <percpu.h>\nFILE *f;\n" rc err)
if(rc EQUAL 0)
  execute_process(COMMAND ${PCPU_CC} -dM -E -x c -include features.h /dev/null
                  OUTPUT_VARIABLE m ERROR_QUIET)
  if(m MATCHES "__GLIBC__")
    list(APPEND problems "<percpu.h> brings in <stdio.h> (FILE is known without it)")
  endif()
endif()

# Every header under percpu/ alone: refused, with a message naming <percpu.h>.
file(GLOB_RECURSE headers RELATIVE ${PCPU_INCLUDE} ${PCPU_INCLUDE}/percpu/*.h)
list(LENGTH headers nh)
if(nh LESS 10)
  list(APPEND problems "only ${nh} headers under ${PCPU_INCLUDE}/percpu")
endif()
foreach(h ${headers})
  try_compile_text(c gnu11 "#include <${h}>\n" rc err)
  if(rc EQUAL 0 OR NOT err MATCHES "#include <percpu.h>")
    list(APPEND problems "<${h}> alone is not refused with a message naming <percpu.h>:\n${err}")
  endif()
  if(NOT h MATCHES "/bits/")
    file(STRINGS ${PCPU_INCLUDE}/${h} lines)
    list(LENGTH lines n)
    if(n GREATER 600)
      list(APPEND problems "<${h}> has ${n} lines: a user-facing header is read in one sitting (at most 600)")
    endif()
  endif()
endforeach()

if(problems)
  string(REPLACE ";" "\n" problems "${problems}")
  message(FATAL_ERROR "${problems}")
endif()
message(STATUS "${nh} headers under percpu/: each refused alone; <percpu.h> compiles alone as C and C++")
