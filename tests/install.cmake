# install.cmake - check an installed percpu the way a user's build sees it.
#
# Included by tests/CMakeLists.txt, it adds the test "install.pkgconfig",
# which runs this same file as a script (cmake -P): `cmake --install` the
# build tree into a fresh temporary prefix, compile tests/install_smoke.c
# outside the tree with nothing but `pkg-config --cflags --libs percpu`
# (PKG_CONFIG_PATH pointing into the prefix), and run it against the
# installed shared library (checked: it prints the library it resolved).
#
# percpu.pc names the configure-time prefix, so the test passes the temp
# prefix with --define-variable=prefix=..., as one does for a staged
# install (DESTDIR-style relocation).

if(NOT CMAKE_SCRIPT_MODE_FILE)
  # A sanitizer build's library needs the sanitizer runtime in the program.
  set(san "")
  if(PCPU_SANITIZE)
    set(san "-fsanitize=address,undefined")
  elseif(PCPU_TSAN)
    set(san "-fsanitize=thread")
  endif()
  add_test(NAME install.pkgconfig
    COMMAND ${CMAKE_COMMAND}
      -DPCPU_BUILD_DIR=${PROJECT_BINARY_DIR}
      -DPCPU_SAN_FLAGS=${san}
      -DPCPU_SOURCE=${CMAKE_CURRENT_LIST_DIR}/install_smoke.c
      -DPCPU_CC=${CMAKE_C_COMPILER}
      -P ${CMAKE_CURRENT_LIST_FILE})
  set_tests_properties(install.pkgconfig PROPERTIES TIMEOUT 300)
  return()
endif()

# ---- script mode ---------------------------------------------------------
find_program(PKG_CONFIG NAMES pkg-config pkgconf)
if(NOT PKG_CONFIG)
  message(FATAL_ERROR "pkg-config not found (Debian: apt-get install pkg-config)")
endif()

string(RANDOM LENGTH 8 tag)
set(work ${PCPU_BUILD_DIR}/install-test-${tag})
set(prefix ${work}/prefix)
file(REMOVE_RECURSE ${work})
file(MAKE_DIRECTORY ${work})

function(run what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${what} failed (${rc}):\n${out}\n${err}")
  endif()
  set(run_out "${out}" PARENT_SCOPE)
endfunction()

run("cmake --install" ${CMAKE_COMMAND} --install ${PCPU_BUILD_DIR} --prefix ${prefix})

file(GLOB_RECURSE pcs ${prefix}/*/percpu.pc)
list(LENGTH pcs n)
if(NOT n EQUAL 1)
  message(FATAL_ERROR "expected one installed percpu.pc under ${prefix}, found: ${pcs}")
endif()
get_filename_component(pcdir ${pcs} DIRECTORY)
get_filename_component(libdir ${pcdir} DIRECTORY)

set(ENV{PKG_CONFIG_PATH} ${pcdir})
set(ENV{PKG_CONFIG_LIBDIR} ${pcdir})   # only ours, not a system-wide percpu
run("pkg-config" ${PKG_CONFIG} --define-variable=prefix=${prefix} --cflags --libs percpu)
string(STRIP "${run_out}" flags)
separate_arguments(flags UNIX_COMMAND "${flags}")
message(STATUS "pkg-config flags: ${flags}")

# Outside the source and build trees' include paths: only the flags above.
run("compile" ${PCPU_CC} -std=gnu11 -Wall -Wextra -O2 ${PCPU_SOURCE} -o ${work}/install_smoke
    ${flags} ${PCPU_SAN_FLAGS} -pthread -ldl)

run("installed program" ${CMAKE_COMMAND} -E env LD_LIBRARY_PATH=${libdir} ${work}/install_smoke)
message(STATUS "${run_out}")
string(FIND "${run_out}" "library: ${prefix}/" at)
if(at EQUAL -1)
  message(FATAL_ERROR "the program did not run against the installed library:\n${run_out}")
endif()
file(REMOVE_RECURSE ${work})
