# Modules, static variables and re-initialisation.
#
# test_modules_dlclose and test_statics_stable dlopen() modules, which must
# share one allocator with the program: like test_statics (dlopen.cmake)
# they are relinked against the shared libpercpu through
# pcpu_testutil_shared.  pcpu_oplib runs this-CPU operations on its own
# PCPU_DEFINE variables and on cookies the program hands in;
# pcpu_oplib_novar is the same source without any PCPU_DEFINE.
#
# These two and test_reinit_first_use (first use after pcpu_exit(); it
# needs no module and keeps the static link) also run in CID index mode,
# without glibc's rseq registration (the library registers its own) and
# both, on both backends; the glob in CMakeLists.txt adds the default runs.

add_library(pcpu_oplib MODULE ${CMAKE_CURRENT_SOURCE_DIR}/libs/pcpu_oplib.c)
target_link_libraries(pcpu_oplib PRIVATE percpu)
set_target_properties(pcpu_oplib PROPERTIES PREFIX "")

add_library(pcpu_oplib_novar MODULE ${CMAKE_CURRENT_SOURCE_DIR}/libs/pcpu_oplib.c)
target_link_libraries(pcpu_oplib_novar PRIVATE percpu)
target_compile_definitions(pcpu_oplib_novar PRIVATE OPLIB_NO_STATICS)
set_target_properties(pcpu_oplib_novar PROPERTIES PREFIX "")

foreach(t test_modules_dlclose test_statics_stable)
  if(NOT TARGET ${t})
    continue()
  endif()
  set_property(TARGET ${t} PROPERTY LINK_LIBRARIES pcpu_testutil_shared Threads::Threads
    ${CMAKE_DL_LIBS})
  target_compile_definitions(${t} PRIVATE
    PCPU_OPLIB_PATH="$<TARGET_FILE:pcpu_oplib>"
    PCPU_OPLIB_NOVAR_PATH="$<TARGET_FILE:pcpu_oplib_novar>")
  add_dependencies(${t} pcpu_oplib pcpu_oplib_novar)
endforeach()

foreach(t test_modules_dlclose test_statics_stable test_reinit_first_use)
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
