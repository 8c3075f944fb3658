# SPDX-License-Identifier: MIT
# concat.cmake - the text Doxygen reads: <percpu.h>'s opening comment, then
# every topic header it includes, in its order (cmake -P, from
# docs/CMakeLists.txt).
#
#   -DINCLUDE=<the include directory> -DOUT=<the file to write>
#
# Each topic header becomes a part with a banner naming its file
# ("/* ---- counter.h ---- */", which docs/pages.txt's "@section" lines
# map to pages) followed by its opening comment without the first line
# (its name and "Part of <percpu.h>"): that comment describes the page.
# The headers under percpu/bits/ are machinery and are not read.
cmake_minimum_required(VERSION 3.18)
file(READ ${INCLUDE}/percpu.h umbrella)
string(REGEX MATCH "/\\*\n \\* percpu\\.h[^\n]*\n([^*]|\\*[^/])*\\*/" top "${umbrella}")
set(text "${top}\n")
string(REGEX MATCHALL "#include \"percpu/[a-z_]+\\.h\"" incs "${umbrella}")
foreach(inc ${incs})
  string(REGEX REPLACE "#include \"percpu/([a-z_]+\\.h)\"" "\\1" name "${inc}")
  file(READ ${INCLUDE}/percpu/${name} body)
  # Drop the SPDX line and the first line of the opening comment.
  string(REGEX REPLACE "^/\\* SPDX[^\n]*\n" "" body "${body}")
  string(REGEX REPLACE "^/\\*\n( \\*[^\n]*\n)* \\* Part of <percpu\\.h>: include that\\.\n( \\*\n)?" "" body "${body}")
  string(APPEND text "/* ------------------------------------------------------------------------\n * ${name}\n * ------------------------------------------------------------------------ */\n/*\n${body}\n")
endforeach()
file(WRITE ${OUT} "${text}")
