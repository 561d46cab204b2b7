# The YSB workload and the benchmark tooling (no timing is ever asserted).
#   ysb              examples/ysb.toml: a hand-worked fixture (into SQLite, and into the MariaDB of
#                    `make services` when it runs), and generated events from a file and from
#                    the in-process generator == tests/tools/recompute_ysb.py
#   bench_freshness  the freshness arithmetic of bench/lib/freshness.py on a hand-worked case
#   bench_micro      every micro-benchmark runs once (smoke: they still build and work)
# Run: ctest --test-dir build -L bench --output-on-failure
find_package(Python3 REQUIRED COMPONENTS Interpreter)

add_test(NAME ysb
         COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/integration/ysb_test.py
                 --sluice $<TARGET_FILE:sluice>
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(ysb PROPERTIES TIMEOUT 300 LABELS "python;golden;bench;mysql"
                     RESOURCE_LOCK mariadb)

add_test(NAME bench_freshness
         COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/bench/lib/freshness.py
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(bench_freshness PROPERTIES TIMEOUT 60 LABELS "python;bench")

if(EXISTS ${PROJECT_SOURCE_DIR}/bench/CMakeLists.txt)
  add_test(NAME bench_micro
           COMMAND $<TARGET_FILE:sluice_bench_micro> --benchmark_min_time=0.01
           WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
  set_tests_properties(bench_micro PROPERTIES TIMEOUT 300 LABELS "bench")
endif()
