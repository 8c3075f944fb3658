# This-CPU operations at every width and per-CPU lists: extra runs.
#
# Every program below also runs without glibc's rseq registration
# (norseq: the library registers its own area), in CID index mode, both,
# and in the atomic fallback (atomic: PCPU_TEST_ATOMIC=1 makes the test
# configure fewer units than CPUs, see tests/ops_util.h), on both backends.

foreach(t test_ops_shadow test_ops_stress test_list test_list_signal)
  if(NOT TARGET ${t})
    continue()
  endif()
  foreach(backend vm km)
    foreach(variant norseq cid norseq_cid atomic)
      set(env "PERCPU_BACKEND=${backend}" "CMOCKA_MESSAGE_OUTPUT=stdout")
      if(variant MATCHES "norseq")
        list(APPEND env "GLIBC_TUNABLES=glibc.pthread.rseq=0")
      endif()
      if(variant MATCHES "cid")
        list(APPEND env "PERCPU_INDEX=cid")
      endif()
      if(variant STREQUAL "atomic")
        list(APPEND env "PCPU_TEST_ATOMIC=1")
      endif()
      add_test(NAME ${t}.${backend}.${variant} COMMAND ${t})
      set_tests_properties(${t}.${backend}.${variant} PROPERTIES
        ENVIRONMENT "${env}" TIMEOUT 600)
    endforeach()
  endforeach()
endforeach()
