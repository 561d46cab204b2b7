# Python-driven tests for the recruitment pipeline (included by the top-level CMakeLists.txt).
#   tools_selftest       the test tooling checked against the hand-written golden expectations
#                        and the seed data (needs no engine)
#   golden_recruitment   golden cases + seed acceptance against the sluice binary
#   restart_recruitment  kill -9 / SIGINT / restart exactness (file and generator sources)
#   mysql_recruitment    the same into a real MariaDB/MySQL (needs `make services`)
# Run: ctest --test-dir build -R 'recruitment|tools' --output-on-failure
# CI=true in the environment turns a missing seed-data directory from a SKIP into a FAIL.
# Python is required: without it the golden and restart tests would silently not run.
find_package(Python3 REQUIRED COMPONENTS Interpreter)

add_test(NAME tools_selftest
         COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/tools/selftest.py
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(tools_selftest PROPERTIES TIMEOUT 120 LABELS "python;golden")

add_test(NAME golden_recruitment
         COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/golden/run_golden.py
                 --sluice $<TARGET_FILE:sluice>
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(golden_recruitment PROPERTIES TIMEOUT 300 LABELS "python;golden")

add_test(NAME restart_recruitment
         COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/integration/restart_test.py
                 --sluice $<TARGET_FILE:sluice>
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(restart_recruitment PROPERTIES TIMEOUT 240 LABELS "python;integration"
                     RUN_SERIAL TRUE)

# MySQL/MariaDB sink end to end: seed and kill -9 runs into a real server == recomputation.
# Needs the server of `make services` (root@127.0.0.1:3306) and the mariadb client: without
# them the test is skipped (exit 77), or fails when CI=true.
add_test(NAME mysql_recruitment
         COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/integration/mysql_recruitment_test.py
                 --sluice $<TARGET_FILE:sluice>
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(mysql_recruitment PROPERTIES TIMEOUT 300 LABELS "python;integration;mysql"
                     SKIP_RETURN_CODE 77)

add_test(NAME cli
         COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/integration/cli_test.py
                 --sluice $<TARGET_FILE:sluice>
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(cli PROPERTIES TIMEOUT 180 LABELS "python;integration")

# Kafka source end to end, against the broker of `make services` (127.0.0.1:9092): records
# published by kcat keyed by job_id; --until-caught-up and its re-run, kill -9 x10 + restarts,
# scale-out (two processes, one group, rebalances), broker restart mid-run; every result must
# equal the independent recomputation. Without a broker: a loud SKIP (exit 0), a FAIL when
# CI=true. Restarts the shared broker and takes ~2.5 min: RUN_SERIAL.
add_test(NAME kafka_recruitment_sqlite
         COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/integration/kafka_recruitment_test.py
                 --sluice $<TARGET_FILE:sluice> --sink sqlite
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(kafka_recruitment_sqlite PROPERTIES TIMEOUT 330
                     LABELS "python;integration;kafka" RUN_SERIAL TRUE)
# The same scenarios into MariaDB (a table per scenario).
add_test(NAME kafka_recruitment_mysql
         COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/integration/kafka_recruitment_test.py
                 --sluice $<TARGET_FILE:sluice> --sink mysql
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(kafka_recruitment_mysql PROPERTIES TIMEOUT 330
                     LABELS "python;integration;kafka;mysql" RUN_SERIAL TRUE)
