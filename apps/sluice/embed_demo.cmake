# Turns the demo's pipeline and job dimension into a C++ source file, so `sluice demo` runs from
# any working directory and from an installed binary (nothing is read from the source tree).
# Run as: cmake -DOUTPUT=out.cc -DINPUT_DIR=examples -DFILES=recruitment.toml,data/job.csv -P embed_demo.cmake
cmake_minimum_required(VERSION 3.25)
string(REPLACE "," ";" FILES "${FILES}")

set(body "// Generated from ${INPUT_DIR} by apps/sluice/embed_demo.cmake. Do not edit.\n")
string(APPEND body "#include \"demo_files.h\"\n\nnamespace sluice::cli {\nnamespace {\n\n")
set(table "")
set(index 0)
foreach(name IN LISTS FILES)
  file(READ "${INPUT_DIR}/${name}" hex HEX)
  string(LENGTH "${hex}" hex_length)
  math(EXPR size "${hex_length} / 2")
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
  string(REGEX REPLACE "((0x[0-9a-f][0-9a-f],){32})" "\\1\n" bytes "${bytes}")
  string(APPEND body "const unsigned char kFile${index}[] = {\n${bytes}0x00};\n\n")
  string(APPEND table "    {\"${name}\", std::string_view(reinterpret_cast<const char*>(kFile${index}), ${size})},\n")
  math(EXPR index "${index} + 1")
endforeach()
string(APPEND body "const DemoFile kFiles[] = {\n${table}};\n\n}  // namespace\n\n")
string(APPEND body "std::span<const DemoFile> DemoFiles() { return kFiles; }\n\n}  // namespace sluice::cli\n")

# Rewrite only on change.
if(EXISTS "${OUTPUT}")
  file(READ "${OUTPUT}" old)
  if(old STREQUAL body)
    return()
  endif()
endif()
file(WRITE "${OUTPUT}" "${body}")
