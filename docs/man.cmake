# SPDX-License-Identifier: MIT
# man.cmake - finish Doxygen's man pages (cmake -P, from docs/CMakeLists.txt).
#
#   -DIN=<doxygen's man3 directory> -DOUT=<the tree to install: man3, man7>
#
# Keeps the pages of docs/pages.txt (Doxygen's groups) and the header's
# overview, which becomes percpu(7); gives every page a LIBRARY section
# and "#include <percpu.h>" in its SYNOPSIS, drops an empty "Detailed
# Description", and gives it the license: an SPDX comment on its first
# line and a COPYRIGHT section (from LICENSE); and writes a link page (".so man3/<page>.3") for every
# other public name a page declares, so that `man pcpu_this_inc` or
# `man PCPU_NEW` finds its family's page.
cmake_minimum_required(VERSION 3.18)
file(REMOVE_RECURSE ${OUT})
file(MAKE_DIRECTORY ${OUT}/man3 ${OUT}/man7)
file(GLOB pages RELATIVE ${IN} ${IN}/*.3)
if(NOT pages)
  message(FATAL_ERROR "Doxygen wrote no man pages into ${IN}")
endif()
file(STRINGS ${CMAKE_CURRENT_LIST_DIR}/../LICENSE copyright REGEX "^Copyright ")
if(NOT copyright)
  message(FATAL_ERROR "no Copyright line in LICENSE")
endif()
string(REPLACE "(c)" "\\(co" copyright "${copyright}")
set(license_head ".\\\" SPDX-License-Identifier: MIT\n")
set(license_tail ".SH COPYRIGHT\n${copyright}.\n.PP\npercpu is free software under the MIT license (SPDX-License-Identifier: MIT):\nsee the file LICENSE of its source, or the copyright file of its package\n(/usr/share/doc/libpercpu-dev/copyright).\n")

set(names "")
foreach(f ${pages})
  string(REGEX REPLACE "\\.3$" "" page ${f})
  if(page MATCHES "^(pcpu|PCPU)__")
    continue()    # internal
  endif()
  file(READ ${IN}/${f} roff)
  set(roff "${roff}${license_tail}")
  if(page STREQUAL "percpu")
    string(REGEX REPLACE "^\\.TH \"percpu\" 3" ".TH \"percpu\" 7" roff "${roff}")
    file(WRITE ${OUT}/man7/percpu.7 "${license_head}${roff}")
    continue()
  endif()
  string(REPLACE ".SH SYNOPSIS\n.br\n.PP\n"
    ".SH LIBRARY\npercpu (\\fIlibpercpu\\fP, \\fI-lpercpu\\fP; pkg-config percpu; CMake percpu::percpu)\n.SH SYNOPSIS\n.nf\n\\fB#include <percpu.h>\\fP\n.fi\n.PP\n"
    roff "${roff}")
  string(REGEX REPLACE "\\.SH \"Detailed Description\"\n(\\.PP *\n|\n)*\\.SH" ".SH" roff "${roff}")
  file(WRITE ${OUT}/man3/${f} "${license_head}${roff}")
  list(APPEND names ${page})

  # The names it declares: the first bold name of each declaration in
  # the SYNOPSIS (the .RI line after ".ti -1c"; the one after ".br" is a
  # summary), every enumerator of an enum.
  string(REGEX REPLACE "\n\\.SH \"?Detailed Description.*|\n\\.SH \"[A-Z][a-z].*" "" synopsis "${roff}")
  string(REGEX MATCHALL "\\.ti -1c\n\\.RI \"[^\n]*" decls "${synopsis}")
  foreach(d ${decls})
    string(REGEX MATCHALL "\\\\fB[A-Za-z_][A-Za-z0-9_]*\\\\fP" bold "${d}")
    if(d MATCHES "^\\.ti -1c\n\\.RI \"enum ")
      set(declared ${bold})
    elseif(d MATCHES "\\\\fB([A-Za-z_][A-Za-z0-9_]*)\\\\fP \\(")
      # A function: the bold name before its parameters (a pointer return
      # type may be bold too, and comes first).
      set(declared "\\fB${CMAKE_MATCH_1}\\fP")
    else()
      list(GET bold 0 declared)
    endif()
    foreach(b ${declared})
      string(REGEX REPLACE "^\\\\fB|\\\\fP$" "" n "${b}")
      if(n MATCHES "^(pcpu|PCPU)_" AND NOT n MATCHES "^(pcpu|PCPU)__" AND NOT n STREQUAL page)
        list(APPEND link_${page} ${n})
      endif()
    endforeach()
  endforeach()
endforeach()

foreach(page ${names})
  foreach(n ${link_${page}})
    if(NOT n IN_LIST names AND NOT EXISTS ${OUT}/man3/${n}.3)
      file(WRITE ${OUT}/man3/${n}.3 ".so man3/${page}.3\n")
    endif()
  endforeach()
endforeach()
