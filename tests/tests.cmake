# Python-driven tests for the recruitment pipeline (included by the top-level CMakeLists.txt).
#   tools_selftest       the test tooling checked against the hand-written golden expectations
#                        and the seed data (needs no engine)
#   golden_recruitment   golden cases + seed acceptance against the sluice binary
#   restart_recruitment  kill -9 / SIGINT / restart exactness (file and generator sources)
#   mysql_recruitment    the same into a real MariaDB/MySQL (needs `make services`)
#   viewlog, viewlog_kafka  the viewlog pipeline into Parquet (file sources; Kafka)
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

# File positions bound to the file's identity: a replaced file (longer, shorter), an append, a
# prefix-keeping rewrite, a shrink refused until --reset-source; a directory as the source exits 2.
add_test(NAME file_identity
         COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/integration/file_identity_test.py
                 --sluice $<TARGET_FILE:sluice>
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(file_identity PROPERTIES TIMEOUT 300 LABELS "python;integration" SKIP_RETURN_CODE 77)

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

# viewlog pipeline end to end (tests/integration/viewlog_test.py): view logs -> 1-minute
# event-time windows with a watermark -> Parquet read back with pyarrow (hence the project
# venv's interpreter, SLUICE_VENV_PYTHON), against tests/tools/recompute_viewlog.py: the
# hand-worked golden cases, the seed view_log sample, generated data, and kill -9 during file
# runs. Missing seed data or pyarrow: a SKIP (exit 77), a FAIL when CI=true.
add_test(NAME viewlog
         COMMAND ${SLUICE_VENV_PYTHON} ${PROJECT_SOURCE_DIR}/tests/integration/viewlog_test.py
                 --sluice $<TARGET_FILE:sluice> --only golden,seed,generated,kill
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(viewlog PROPERTIES TIMEOUT 300 LABELS "python;integration;parquet"
                     SKIP_RETURN_CODE 77)
# The same pipeline from a 1-partition Kafka topic (broker of `make services`): kill -9 mid-run,
# then --until-caught-up == the recomputation with --open-at-end. No broker: SKIP (exit 77), a
# FAIL when CI=true.
add_test(NAME viewlog_kafka
         COMMAND ${SLUICE_VENV_PYTHON} ${PROJECT_SOURCE_DIR}/tests/integration/viewlog_test.py
                 --sluice $<TARGET_FILE:sluice> --only kafka
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(viewlog_kafka PROPERTIES TIMEOUT 300
                     LABELS "python;integration;kafka;parquet" RUN_SERIAL TRUE
                     SKIP_RETURN_CODE 77)

# HTTP endpoints and dashboard (src/http/README.md). http_endpoints needs nothing but the binary;
# http_promtool and http_prometheus need Debian's `prometheus` package (promtool, the server),
# dashboard_chromium needs `chromium`: without them a loud SKIP (exit 77), a FAIL when CI=true.
# Each picks free loopback ports. The dashboard test saves test-artifacts/dashboard.png here.
add_test(NAME http_endpoints
         COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/integration/http_metrics_test.py
                 --sluice $<TARGET_FILE:sluice> --part endpoints
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(http_endpoints PROPERTIES TIMEOUT 240 LABELS "python;integration;http")
# Slow clients (issue 14): 60 slow-loris connections on loopback while /healthz, /readyz and
# /metrics must answer within 2 s; the headers deadline and the per-client cap. About 50 s.
add_test(NAME http_slowloris
         COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/integration/http_slowloris_test.py
                 --sluice $<TARGET_FILE:sluice>
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(http_slowloris PROPERTIES TIMEOUT 180 LABELS "python;integration;http")
add_test(NAME http_promtool
         COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/integration/http_metrics_test.py
                 --sluice $<TARGET_FILE:sluice> --part promtool
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(http_promtool PROPERTIES TIMEOUT 120 LABELS "python;integration;http"
                     SKIP_RETURN_CODE 77)
add_test(NAME http_prometheus
         COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/integration/http_metrics_test.py
                 --sluice $<TARGET_FILE:sluice> --part prometheus
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(http_prometheus PROPERTIES TIMEOUT 240 LABELS "python;integration;http"
                     SKIP_RETURN_CODE 77)
add_test(NAME dashboard_chromium
         COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/integration/dashboard_test.py
                 --sluice $<TARGET_FILE:sluice> --artifacts ${CMAKE_BINARY_DIR}/test-artifacts
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(dashboard_chromium PROPERTIES TIMEOUT 300 LABELS "python;integration;http"
                     SKIP_RETURN_CODE 77)

# Dimensions that follow their source (issue: change data capture): a MySQL table polled by
# updated_at, and Kafka CDC topics (Kafka Connect JDBC rows, Debezium with and without the
# envelope, deletes included), while events flow. Needs `make services` (MariaDB and Kafka);
# CI=true turns a missing server into a FAIL.
add_test(NAME dimension_cdc
         COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/integration/dimension_cdc_test.py
                 --sluice $<TARGET_FILE:sluice>
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(dimension_cdc PROPERTIES TIMEOUT 300 LABELS "python;integration;mysql;kafka")

# deploy/ (Grafana, Prometheus, systemd, Airflow), tests/deploy/. Run: ctest -L deploy
#   deploy_files          provisioning + dashboard models, SQL macro expansion, PromQL names
#                         against the metrics contract, promtool check config, systemd-analyze
#   deploy_grafana_mysql  every business-dashboard query run on MariaDB (`make services`) over
#                         an events table written by sluice; numbers == Python over SQLite
#   deploy_prometheus     a real Prometheus scraping `sluice run --http`: every operations
#                         query accepted and with data; SIGTERM exits 0
#   deploy_airflow        real Apache Airflow (PyPI, pinned, venv in the build tree: minutes
#                         the first time, reused after) runs the four DAGs with `airflow dags
#                         test`; push_data_to_broker and viewlog_report use the Kafka of `make
#                         services` (topics airflow_*) and read the Parquet reports with pyarrow
#                         (hence the project venv's interpreter, SLUICE_VENV_PYTHON)
# A missing server or tool is a loud SKIP (exit 77), a FAIL when CI=true.
add_test(NAME deploy_files
         COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/deploy/deploy_files_test.py
                 --sluice $<TARGET_FILE:sluice>
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(deploy_files PROPERTIES TIMEOUT 120 LABELS "python;deploy"
                     SKIP_RETURN_CODE 77)
add_test(NAME deploy_grafana_mysql
         COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/deploy/grafana_mysql_test.py
                 --sluice $<TARGET_FILE:sluice>
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(deploy_grafana_mysql PROPERTIES TIMEOUT 180
                     LABELS "python;integration;mysql;deploy" SKIP_RETURN_CODE 77)
add_test(NAME deploy_prometheus
         COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/deploy/prometheus_test.py
                 --sluice $<TARGET_FILE:sluice>
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(deploy_prometheus PROPERTIES TIMEOUT 180
                     LABELS "python;integration;deploy" SKIP_RETURN_CODE 77)
add_test(NAME deploy_airflow
         COMMAND ${SLUICE_VENV_PYTHON} ${PROJECT_SOURCE_DIR}/tests/deploy/airflow_test.py
                 --sluice $<TARGET_FILE:sluice> --venv ${CMAKE_BINARY_DIR}/airflow-venv
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(deploy_airflow PROPERTIES TIMEOUT 1800
                     LABELS "python;integration;airflow;deploy;kafka" SKIP_RETURN_CODE 77)

# Incremental MySQL table source: the seed log loaded into MariaDB in bursts that share a
# timestamp, read by (inserted_at, id) in small pages; a re-run changes nothing; a transaction
# that commits after a later one within the grace period is not skipped. Needs `make services`.
add_test(NAME table_source
         COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/integration/table_source_test.py
                 --sluice $<TARGET_FILE:sluice>
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(table_source PROPERTIES TIMEOUT 300 LABELS "python;integration;mysql")

# mysql_recruitment restarts the shared MariaDB; the other tests that use it must not overlap.
set_tests_properties(mysql_recruitment dimension_cdc table_source deploy_grafana_mysql
                     PROPERTIES RESOURCE_LOCK mariadb)

# Further test groups, one file per area (tests/cmake/*.cmake), each with its own add_test()s.
file(GLOB SLUICE_TEST_GROUPS CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/tests/cmake/*.cmake)
foreach(group IN LISTS SLUICE_TEST_GROUPS)
  include(${group})
endforeach()

# Dead letters: every record valid JSON on a binary input (file and SQLite table), two sinks in
# one working directory (A, B, A against MariaDB: skipped without the server, exit 77, or a FAIL
# when CI=true), a dead-letter file shared by two sinks refused, and a file replaced at its path
# with its bad row at the old one's offset: both letters stored and counted (SQLite, the NDJSON
# file and MariaDB), told apart by their generation.
add_test(NAME dead_letters
         COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/integration/dead_letters_test.py
                 --sluice $<TARGET_FILE:sluice>
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(dead_letters PROPERTIES TIMEOUT 300 LABELS "python;integration;mysql"
                     SKIP_RETURN_CODE 77)
# What a run tells about itself: progress lines and the live bar (under a pty), the summary
# (done / interrupted at X% / nothing new), --summary-json, --quiet, every line JSON under
# --log-format json; validate with several files; init skeletons that validate and run.
add_test(NAME cli_output
         COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/integration/cli_output_test.py
                 --sluice $<TARGET_FILE:sluice>
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(cli_output PROPERTIES TIMEOUT 300 LABELS "python;integration")

# sluice takeover: a Spark-filled `events` table (SQLite and MySQL) is planned, applied, and
# continued from a byte offset; compared with the independent recomputation.
add_test(NAME takeover
         COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/integration/takeover_test.py
                 --sluice $<TARGET_FILE:sluice>
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(takeover PROPERTIES TIMEOUT 300 SKIP_RETURN_CODE 77 LABELS "python;integration;mysql")
