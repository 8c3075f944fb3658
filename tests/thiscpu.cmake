# This-CPU operations: extra runs and the C++ test.
#
# The shadow and stress tests also run without glibc's rseq registration
# (the library then registers its own area per thread) and in CID index
# mode, on both backends; test_thiscpu_cxx compiles the header as C++17.

foreach(t test_thiscpu_shadow test_thiscpu_stress)
  if(NOT TARGET ${t})
    continue()
  endif()
  foreach(backend vm km)
    foreach(variant norseq cid norseq_cid)
      set(env "PERCPU_BACKEND=${backend}" "CMOCKA_MESSAGE_OUTPUT=stdout")
      if(variant MATCHES "norseq")
        list(APPEND env "GLIBC_TUNABLES=glibc.pthread.rseq=0")
      endif()
      if(variant MATCHES "cid")
        list(APPEND env "PERCPU_INDEX=cid")
      endif()
      add_test(NAME ${t}.${backend}.${variant} COMMAND ${t})
      set_tests_properties(${t}.${backend}.${variant} PROPERTIES
        ENVIRONMENT "${env}" TIMEOUT 600)
    endforeach()
  endforeach()
endforeach()

add_executable(test_thiscpu_cxx ${CMAKE_CURRENT_SOURCE_DIR}/cxx_ops.cpp)
target_link_libraries(test_thiscpu_cxx PRIVATE percpu_static)
set_target_properties(test_thiscpu_cxx PROPERTIES CXX_STANDARD 17 CXX_STANDARD_REQUIRED ON)
pcpu_backend_tests(test_thiscpu_cxx)
foreach(backend vm km)
  add_test(NAME test_thiscpu_cxx.${backend}.norseq_cid COMMAND test_thiscpu_cxx)
  set_tests_properties(test_thiscpu_cxx.${backend}.norseq_cid PROPERTIES
    ENVIRONMENT "PERCPU_BACKEND=${backend};PERCPU_INDEX=cid;GLIBC_TUNABLES=glibc.pthread.rseq=0"
    TIMEOUT 600)
endforeach()
