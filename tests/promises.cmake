# Promises of issue items 4-9: extra run variants.
#
# The this-CPU compare (test_cmpxchg_remote) and the statistics
# (test_stats_exact) also run without glibc's rseq registration (the
# library registers its own area) and in CID index mode, on both backends,
# like the other this-CPU tests (see thiscpu.cmake).

foreach(t test_cmpxchg_remote test_stats_exact)
  if(NOT TARGET ${t})
    continue()
  endif()
  foreach(backend vm km)
    foreach(variant cid norseq norseq_cid)
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
