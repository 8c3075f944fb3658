# Static per-CPU variables in a dlopen()ed shared library.
#
# A dlopened module and the program must share one copy of the allocator,
# so test_statics (created by the glob in CMakeLists.txt) is relinked
# against the shared libpercpu through a testutil built for that, and the
# module links the shared libpercpu too.

add_library(pcpu_testutil_shared STATIC ${CMAKE_CURRENT_SOURCE_DIR}/testutil.c)
set_target_properties(pcpu_testutil_shared PROPERTIES POSITION_INDEPENDENT_CODE ON)
target_include_directories(pcpu_testutil_shared PUBLIC ${CMOCKA_INCLUDE} ${CMAKE_CURRENT_SOURCE_DIR})
target_link_libraries(pcpu_testutil_shared PUBLIC percpu ${CMOCKA_LIB})

add_library(pcpu_testlib MODULE ${CMAKE_CURRENT_SOURCE_DIR}/libs/pcpu_testlib.c)
target_link_libraries(pcpu_testlib PRIVATE percpu)
set_target_properties(pcpu_testlib PROPERTIES PREFIX "")

if(TARGET test_statics)
  # Replace the static pcpu_testutil the glob linked in.
  set_property(TARGET test_statics PROPERTY LINK_LIBRARIES pcpu_testutil_shared ${CMAKE_DL_LIBS})
  target_compile_definitions(test_statics PRIVATE PCPU_TESTLIB_PATH="$<TARGET_FILE:pcpu_testlib>")
  add_dependencies(test_statics pcpu_testlib)
endif()
