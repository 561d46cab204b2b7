# Fuzz regression (tests/fuzz/README.md): builds the libFuzzer targets with clang in
# build/fuzz (only the parsers' sources) and runs each target on its seed corpus, every crash
# ever found included, then 2000 mutations with a fixed seed. Measured: 87 s of CPU from a cold
# build without ccache (build and runs), 13 s when built. Fails on any crash, leak or UBSan report. `make fuzz` is the long run. Without clang and
# libFuzzer: a SKIP (exit 77), a FAIL when CI=true.
add_test(NAME fuzz_regression
         COMMAND ${PROJECT_SOURCE_DIR}/tests/fuzz/run.sh --build-dir ${CMAKE_BINARY_DIR}/fuzz --runs 2000
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(fuzz_regression PROPERTIES TIMEOUT 600 LABELS "fuzz" SKIP_RETURN_CODE 77)
