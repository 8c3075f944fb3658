# SPDX-License-Identifier: MIT
# deb-docs.cmake - what a Debian package has beyond the install rules
# (CPACK_PRE_BUILD_SCRIPTS of cmake/package.cmake: CPack runs it after it
# has installed each component into its staging tree, before it builds
# the .debs).  For every package:
#   usr/share/doc/<package>/copyright     the license, machine-readable
#                                         (Debian calls MIT "Expat")
#   usr/share/doc/<package>/changelog.gz  the Debian changelog of this
#                                         native package: one entry per
#                                         version, pointing at NEWS.md
# and for libpercpu-dev also NEWS.md.gz; man pages are compressed with
# gzip -9n, and the link pages (".so man3/page.3") become symbolic links
# to the compressed page, as Debian's policy asks; the static library
# loses its debugging information, as dh_strip would do (CPack strips
# programs and shared libraries, not archives; the USDT notes stay).
cmake_minimum_required(VERSION 3.19)

find_program(GZIP gzip REQUIRED)
function(gz file)
  execute_process(COMMAND ${GZIP} -9nf ${file} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "gzip -9n ${file} failed (${rc})")
  endif()
endfunction()

# copyright: the MIT text of LICENSE as a DEP-5 license paragraph.
file(STRINGS ${CPACK_PCPU_LICENSE} license_lines)
set(holder "")
set(text "")
set(body FALSE)
foreach(l IN LISTS license_lines)
  if(l MATCHES "^Copyright \\(c\\) (.*)")
    set(holder "${CMAKE_MATCH_1}")
    set(body TRUE)
    continue()
  endif()
  if(NOT body)
    continue()
  endif()
  if(l STREQUAL "")
    if(NOT text STREQUAL "")
      string(APPEND text " .\n")
    endif()
  else()
    string(APPEND text " ${l}\n")
  endif()
endforeach()
if(holder STREQUAL "" OR text STREQUAL "")
  message(FATAL_ERROR "no copyright line or license text in ${CPACK_PCPU_LICENSE}")
endif()
set(copyright "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: percpu
Comment: percpu is distributed under the MIT license (SPDX-License-Identifier:
 MIT), which Debian calls Expat.

Files: *
Copyright: ${holder}
License: Expat
${text}")

# changelog.gz: one entry for this version, dated SOURCE_DATE_EPOCH or now.
string(TIMESTAMP date "%a, %d %b %Y %H:%M:%S +0000" UTC)
set(changelog "percpu (${CPACK_PACKAGE_VERSION}) unstable; urgency=medium

  * percpu ${CPACK_PACKAGE_VERSION}. What each version added, changed and fixed
    is in NEWS.md (/usr/share/doc/libpercpu-dev/NEWS.md.gz).

 -- ${CPACK_DEBIAN_PACKAGE_MAINTAINER}  ${date}
")

file(GLOB components LIST_DIRECTORIES true ${CPACK_TEMPORARY_DIRECTORY}/*)
set(done "")
foreach(dir IN LISTS components)
  get_filename_component(comp ${dir} NAME)
  string(TOUPPER ${comp} COMP)
  set(pkg "${CPACK_DEBIAN_${COMP}_PACKAGE_NAME}")
  if(NOT IS_DIRECTORY ${dir} OR pkg STREQUAL "")
    continue()
  endif()
  set(doc ${dir}${CPACK_PACKAGING_INSTALL_PREFIX}/share/doc/${pkg})
  file(MAKE_DIRECTORY ${doc})
  file(WRITE ${doc}/copyright "${copyright}")
  file(WRITE ${doc}/changelog "${changelog}")
  gz(${doc}/changelog)
  if(comp STREQUAL "dev")
    configure_file(${CPACK_PCPU_NEWS} ${doc}/NEWS.md COPYONLY)
    gz(${doc}/NEWS.md)
    file(GLOB_RECURSE archives ${dir}/*.a)
    foreach(a IN LISTS archives)
      if(CPACK_PCPU_STRIP)
        execute_process(COMMAND ${CPACK_PCPU_STRIP} --strip-debug --remove-section=.comment
          --enable-deterministic-archives ${a}
          RESULT_VARIABLE rc)
        if(NOT rc EQUAL 0)
          message(FATAL_ERROR "strip --strip-debug ${a} failed (${rc})")
        endif()
      endif()
    endforeach()
  endif()

  file(GLOB_RECURSE pages ${dir}${CPACK_PACKAGING_INSTALL_PREFIX}/share/man/man*/*)
  foreach(p IN LISTS pages)
    if(p MATCHES "\\.gz$" OR IS_SYMLINK ${p})
      continue()
    endif()
    file(READ ${p} head LIMIT 256)
    if(head MATCHES "^\\.so (man[0-9])/([^\n]+)")
      set(target "${CMAKE_MATCH_2}.gz")
      get_filename_component(pdir ${p} DIRECTORY)
      get_filename_component(section ${pdir} NAME)
      if(NOT section STREQUAL CMAKE_MATCH_1)
        set(target "../${CMAKE_MATCH_1}/${target}")
      endif()
      file(REMOVE ${p})
      file(CREATE_LINK ${target} ${p}.gz SYMBOLIC)
    else()
      gz(${p})
    endif()
  endforeach()
  list(APPEND done ${pkg})
endforeach()
if(done STREQUAL "")
  message(FATAL_ERROR "deb-docs.cmake: no component staging tree under ${CPACK_TEMPORARY_DIRECTORY}")
endif()
message(STATUS "deb-docs.cmake: copyright, changelog.gz and compressed man pages for ${done}")
