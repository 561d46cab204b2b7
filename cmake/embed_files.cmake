# Turns files into a C++ source file that holds their bytes, so the binary reads nothing from the
# source tree at run time: the dashboard (web/) and the demo's pipeline and data (examples/).
# Run as:
#   cmake -DOUTPUT=out.cc -DINPUT_DIR=web -DFILES=index.html,app.js -DNAMESPACE=sluice::http
#         -DFUNCTION=EmbeddedWebFiles -P embed_files.cmake
# which defines `std::span<const sluice::EmbeddedFile> NAMESPACE::FUNCTION()` (core/embedded_file.h),
# one entry per file in FILES order, `path` as given in FILES.
cmake_minimum_required(VERSION 3.25)
string(REPLACE "," ";" FILES "${FILES}")

set(body "// Generated from ${INPUT_DIR} by cmake/embed_files.cmake. Do not edit.\n")
string(APPEND body "#include <span>\n\n#include \"core/embedded_file.h\"\n\nnamespace ${NAMESPACE} {\nnamespace {\n\n")
set(table "")
set(index 0)
foreach(name IN LISTS FILES)
  file(READ "${INPUT_DIR}/${name}" hex HEX)
  string(LENGTH "${hex}" hex_length)
  math(EXPR size "${hex_length} / 2")
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
  # Break the byte list into lines of 32 bytes (160 characters).
  string(REGEX REPLACE "((0x[0-9a-f][0-9a-f],){32})" "\\1\n" bytes "${bytes}")
  string(APPEND body "const unsigned char kFile${index}[] = {\n${bytes}0x00};\n\n")
  string(APPEND table "    {\"${name}\", std::string_view(reinterpret_cast<const char*>(kFile${index}), ${size})},\n")
  math(EXPR index "${index} + 1")
endforeach()
string(APPEND body "const ::sluice::EmbeddedFile kFiles[] = {\n${table}};\n\n}  // namespace\n\n")
string(APPEND body "std::span<const ::sluice::EmbeddedFile> ${FUNCTION}() { return kFiles; }\n\n}  // namespace ${NAMESPACE}\n")

# Rewrite only on change, so unchanged files rebuild nothing.
if(EXISTS "${OUTPUT}")
  file(READ "${OUTPUT}" old)
  if(old STREQUAL body)
    return()
  endif()
endif()
file(WRITE "${OUTPUT}" "${body}")
