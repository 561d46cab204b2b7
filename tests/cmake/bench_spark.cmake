# The Spark side of `make bench-spark` (bench/spark/): no Spark, no servers, no timing here.
#   bench_spark_parse  the PySpark job and the side-by-side harness compile and print their
#                      usage (the harness imports bench/lib and tests/tools, so a renamed
#                      helper shows up here rather than in the middle of a benchmark run)
# Run: ctest --test-dir build -R bench_spark --output-on-failure
find_package(Python3 REQUIRED COMPONENTS Interpreter)

add_test(NAME bench_spark_parse
         COMMAND ${CMAKE_COMMAND} -E env PYTHONDONTWRITEBYTECODE=1 sh -c
                 "${Python3_EXECUTABLE} -c 'import ast, sys; [ast.parse(open(p).read(), p) for p in sys.argv[1:]]' bench/spark/recruitment_spark.py bench/spark/run_bench.py && ${Python3_EXECUTABLE} bench/spark/recruitment_spark.py --help >/dev/null && ${Python3_EXECUTABLE} bench/spark/run_bench.py --help >/dev/null"
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(bench_spark_parse PROPERTIES TIMEOUT 60 LABELS "python;bench")
