# The layers of src/ (CMakeLists.txt, "Layers"): no #include may point up a layer or sideways
# between connectors. --self-test first proves the checker catches both on a made-up tree.
find_package(Python3 REQUIRED COMPONENTS Interpreter)
add_test(NAME layers
         COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/tools/check_layers.py --self-test
                 --root ${PROJECT_SOURCE_DIR})
set_tests_properties(layers PROPERTIES TIMEOUT 60 LABELS "python;house")
