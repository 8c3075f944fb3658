# SPDX-License-Identifier: MIT
# trace.cmake - the USDT tracepoints (src/trace.h) as a tracer sees them.
#
# Included by tests/CMakeLists.txt, it builds tests/trace_hits.c and adds
# two tests, which run this same file as a script (cmake -P):
#
#   trace.usdt_notes     `cmake --install` into a fresh temporary prefix,
#                        then `readelf -n` on the installed libpercpu.so and
#                        libpercpu.a must list every percpu:* probe, each
#                        with its number of arguments;
#   trace.bpftrace_hits  bpftrace lists every probe of the installed
#                        libpercpu.so, then counts the hits of each while
#                        trace_hits runs (linked with the static library, so
#                        that `bpftrace -c` finds the probes in the program
#                        itself before it starts) and compares them with
#                        what the program says it did.  Skipped where
#                        bpftrace is missing or cannot attach uprobes here
#                        (no root, no uprobes in the kernel, a container).
#
# Both are skipped (output "SKIPPED: ...") in a build without <sys/sdt.h>,
# where the probes compile to nothing.

# name:number of arguments, as src/trace.h promises them.
set(PCPU_PROBES alloc:4 alloc_fail:3 free:1 create_chunk:1 destroy_chunk:1
  populate:3 depopulate:3)

if(NOT CMAKE_SCRIPT_MODE_FILE)
  add_executable(trace_hits ${CMAKE_CURRENT_SOURCE_DIR}/trace_hits.c)
  target_link_libraries(trace_hits PRIVATE percpu_static)
  if(NOT PCPU_HAVE_SDT)
    set(PCPU_HAVE_SDT 0)
  endif()
  foreach(kind usdt_notes bpftrace_hits)
    add_test(NAME trace.${kind}
      COMMAND ${CMAKE_COMMAND}
        -DPCPU_TRACE_TEST=${kind}
        -DPCPU_HAVE_SDT=${PCPU_HAVE_SDT}
        -DPCPU_BUILD_DIR=${PROJECT_BINARY_DIR}
        -DPCPU_READELF=${CMAKE_READELF}
        -DPCPU_TRACE_HITS=$<TARGET_FILE:trace_hits>
        -P ${CMAKE_CURRENT_LIST_FILE})
    set_tests_properties(trace.${kind} PROPERTIES TIMEOUT 300
      SKIP_REGULAR_EXPRESSION "SKIPPED:" RESOURCE_LOCK pcpu_install)
  endforeach()
  return()
endif()

# ---- script mode ---------------------------------------------------------
cmake_minimum_required(VERSION 3.18)
if(NOT PCPU_HAVE_SDT)
  message("SKIPPED: built without <sys/sdt.h> (Debian: systemtap-sdt-dev), no probes")
  return()
endif()

include(${CMAKE_CURRENT_LIST_DIR}/script_util.cmake)
install_to_temp_prefix(trace)
file(GLOB_RECURSE sos ${prefix}/*/libpercpu.so)
file(GLOB_RECURSE archives ${prefix}/*/libpercpu.a)
if(NOT sos OR NOT archives)
  message(FATAL_ERROR "no libpercpu.so or libpercpu.a installed under ${prefix}")
endif()

if(PCPU_TRACE_TEST STREQUAL "usdt_notes")
  # GNU readelf's layout (a clang build's CMAKE_READELF is llvm-readelf,
  # which prints the notes differently).
  find_program(GNU_READELF readelf)
  if(GNU_READELF)
    set(PCPU_READELF ${GNU_READELF})
  endif()
  foreach(lib ${sos} ${archives})
    run("readelf -n ${lib}" ${PCPU_READELF} -n ${lib})
    # One note per probe site: Provider, Name, Location, Arguments lines.
    string(REGEX MATCHALL "Provider: [^\n]*\n[ \t]*Name: [^\n]*\n[^\n]*\n[ \t]*Arguments:[^\n]*"
           notes "${run_out}")
    set(found "")
    foreach(note ${notes})
      string(REGEX REPLACE "Provider: ([^\n]*)\n.*" "\\1" provider "${note}")
      string(REGEX REPLACE ".*Name: ([^\n]*)\n.*" "\\1" name "${note}")
      string(REGEX REPLACE ".*Arguments:[ \t]*" "" args "${note}")
      string(STRIP "${args}" args)
      separate_arguments(args UNIX_COMMAND "${args}")
      list(LENGTH args nargs)
      if(provider STREQUAL "percpu")
        list(APPEND found "${name}:${nargs}")
      endif()
    endforeach()
    list(REMOVE_DUPLICATES found)
    foreach(probe ${PCPU_PROBES})
      if(NOT probe IN_LIST found)
        message(FATAL_ERROR "${lib}: no USDT note percpu:${probe} (name:arguments); "
                            "readelf -n lists: ${found}")
      endif()
    endforeach()
    message(STATUS "${lib}: ${found}")
  endforeach()

elseif(PCPU_TRACE_TEST STREQUAL "bpftrace_hits")
  find_program(BPFTRACE bpftrace)
  if(NOT BPFTRACE)
    message("SKIPPED: bpftrace not found (Debian: apt-get install bpftrace)")
    file(REMOVE_RECURSE ${work})
    return()
  endif()
  # Can this machine attach a uprobe at all?  If not (not root, no BPF or
  # uprobes in a container), there is nothing to count: skip, saying why.
  execute_process(COMMAND ${BPFTRACE} -e "uprobe:${PCPU_TRACE_HITS}:main { exit(); }"
                          -c ${PCPU_TRACE_HITS}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 120)
  if(NOT rc EQUAL 0)
    message("SKIPPED: bpftrace cannot attach a uprobe here (${rc}):\n${out}\n${err}")
    file(REMOVE_RECURSE ${work})
    return()
  endif()

  # The installed shared library's probes, as bpftrace resolves them.
  run("bpftrace -l" ${BPFTRACE} -l "usdt:${sos}:*")
  foreach(probe ${PCPU_PROBES})
    string(REGEX REPLACE ":.*" "" name ${probe})
    string(FIND "${run_out}" "usdt:${sos}:percpu:${name}\n" at)
    if(at EQUAL -1)
      message(FATAL_ERROR "bpftrace -l does not list percpu:${name} in ${sos}:\n${run_out}")
    endif()
  endforeach()

  # Count every hit in the program; the arguments of alloc and free are
  # checked too: bytes, reserved calls, and every cookie freed once.
  set(u "usdt:${PCPU_TRACE_HITS}:percpu")
  set(script "
${u}:alloc { @alloc = count(); @alloc_bytes = sum(arg1); @reserved = sum(arg3);
             @cookie_balance = sum((int64)arg0); }
${u}:alloc_fail { @alloc_fail = count(); @reserved = sum(arg2); }
${u}:free { @free = count(); @cookie_balance = sum(-(int64)arg0); }
${u}:create_chunk { @create_chunk = count(); }
${u}:destroy_chunk { @destroy_chunk = count(); }
${u}:populate { @populate = count(); }
${u}:depopulate { @depopulate = count(); }
")
  file(WRITE ${work}/hits.bt "${script}")
  run("bpftrace -c trace_hits" ${BPFTRACE} ${work}/hits.bt -c ${PCPU_TRACE_HITS})
  message(STATUS "${run_out}")
  string(REGEX MATCH "expect [^\n]*" expect "${run_out}")
  if(NOT expect)
    message(FATAL_ERROR "trace_hits printed no expectations:\n${run_out}\n${run_err}")
  endif()
  string(REPLACE "expect " "" expect "${expect}")
  separate_arguments(expect UNIX_COMMAND "${expect}")
  list(APPEND expect cookie_balance=0)
  foreach(kv ${expect})
    string(REGEX REPLACE "=.*" "" key "${kv}")
    string(REGEX REPLACE ".*=" "" want "${kv}")
    set(got 0)    # bpftrace prints no map that was never written
    if("${run_out}" MATCHES "@${key}: (-?[0-9]+)")
      set(got ${CMAKE_MATCH_1})
    endif()
    if(NOT got EQUAL want)
      message(FATAL_ERROR "percpu:${key}: bpftrace counted ${got}, the program expected ${want}\n"
                          "${run_out}\n${run_err}")
    endif()
  endforeach()

else()
  message(FATAL_ERROR "PCPU_TRACE_TEST=${PCPU_TRACE_TEST}: usdt_notes or bpftrace_hits")
endif()
file(REMOVE_RECURSE ${work})
