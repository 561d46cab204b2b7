# The YSB workload and the benchmark tooling (no timing is ever asserted).
#   ysb              examples/ysb.toml: a hand-worked fixture (into SQLite, and into the MariaDB of
#                    `make services` when it runs), and generated events from a file and from
#                    the in-process generator == tests/tools/recompute_ysb.py
#   bench_freshness  the freshness arithmetic of bench/lib/freshness.py on a hand-worked case
#   bench_micro      every micro-benchmark runs once (smoke: they still build and work)
#   bench_modules    no bench/ module is shadowed on bench/run.py's sys.path
# Run: ctest --test-dir build -L bench --output-on-failure
find_package(Python3 REQUIRED COMPONENTS Interpreter)

sluice_python_test(ysb tests/integration/ysb_test.py TIMEOUT 300 LOCK mariadb
                   LABELS python golden bench mysql)

sluice_python_test(bench_freshness bench/lib/freshness.py NO_SLUICE TIMEOUT 60 LABELS python bench)

if(EXISTS ${PROJECT_SOURCE_DIR}/bench/CMakeLists.txt)
  add_test(NAME bench_micro
           COMMAND $<TARGET_FILE:sluice_bench_micro> --benchmark_min_time=0.01
           WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
  set_tests_properties(bench_micro PROPERTIES TIMEOUT 300 LABELS "bench")
endif()

# bench_modules: no module of bench/ is shadowed on bench/run.py's sys.path by one of bench/lib,
# tests/tools or tests/integration (bench/lib/modules_selftest.py)
sluice_python_test(bench_modules bench/lib/modules_selftest.py NO_SLUICE TIMEOUT 60 LABELS python bench)
