# SPDX-License-Identifier: MIT
# The libFuzzer target fuzz_model (tests/fuzz_model.c): only with
# -DPCPU_FUZZ=ON and clang.  The library is instrumented for coverage
# feedback (fuzzer-no-link) and, like the target, built with ASan+UBSan so
# that memory errors the model cannot see still stop the run.  Everything
# that links the library then needs the sanitizer runtimes too, hence the
# interface link options.
if(NOT PCPU_FUZZ)
  return()
endif()
if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
  message(WARNING "PCPU_FUZZ needs clang; fuzz_model is not built")
  return()
endif()

set(PCPU_FUZZ_SAN -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
set_property(TARGET percpu_obj APPEND PROPERTY COMPILE_OPTIONS -fsanitize=fuzzer-no-link ${PCPU_FUZZ_SAN})
set_property(TARGET percpu_static APPEND PROPERTY INTERFACE_LINK_OPTIONS -fsanitize=address,undefined)
set_property(TARGET percpu APPEND PROPERTY LINK_OPTIONS -fsanitize=address,undefined)

add_executable(fuzz_model ${CMAKE_CURRENT_SOURCE_DIR}/fuzz_model.c ${CMAKE_CURRENT_SOURCE_DIR}/model.c)
target_include_directories(fuzz_model PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
target_compile_options(fuzz_model PRIVATE -fsanitize=fuzzer ${PCPU_FUZZ_SAN})
target_link_options(fuzz_model PRIVATE -fsanitize=fuzzer,address,undefined)
target_link_libraries(fuzz_model PRIVATE percpu_static)

# A short regression run over the seed corpus as part of the test suite.
add_test(NAME fuzz_model.corpus
  COMMAND fuzz_model -runs=0 ${CMAKE_CURRENT_SOURCE_DIR}/corpus)
