# SPDX-License-Identifier: MIT
# script_util.cmake - what the tests that run a .cmake file as a script
# (cmake -P: docs.cmake, install.cmake, trace.cmake, package.cmake) share.  Included in
# their script-mode part.

# run(WHAT COMMAND...): run the command; stop the test with its output
# unless it exits 0.  Leaves its stdout in run_out, its stderr in run_err.
function(run what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${what} failed (${rc}):\n${out}\n${err}")
  endif()
  set(run_out "${out}" PARENT_SCOPE)
  set(run_err "${err}" PARENT_SCOPE)
endfunction()

# install_to_temp_prefix(NAME): `cmake --install` of the build tree
# PCPU_BUILD_DIR into a fresh prefix, as a user of that prefix would have
# it.  Sets work (<build>/NAME-test-<random>, to remove at the end) and
# prefix (${work}/prefix).
macro(install_to_temp_prefix name)
  string(RANDOM LENGTH 8 tag)
  set(work ${PCPU_BUILD_DIR}/${name}-test-${tag})
  set(prefix ${work}/prefix)
  file(REMOVE_RECURSE ${work})
  file(MAKE_DIRECTORY ${work})
  run("cmake --install" ${CMAKE_COMMAND} --install ${PCPU_BUILD_DIR} --prefix ${prefix})
endmacro()
