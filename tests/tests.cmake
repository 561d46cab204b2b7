# Python-driven tests for the recruitment pipeline (included by the top-level CMakeLists.txt).
#   tools_selftest       the test tooling checked against the hand-written golden expectations
#                        and the seed data (needs no engine)
#   golden_recruitment   golden cases + seed acceptance against the sluice binary
#   golden_hop           hopping-window cases (tests/golden/hop) against the sluice binary
#   golden_sql           SQL golden cases (tests/golden/sql): rows and errors worked out by hand
#   restart_recruitment  kill -9 / SIGINT / restart exactness (file and generator sources)
#   mysql_recruitment    the same into a real MariaDB/MySQL (needs `make services`)
#   viewlog, viewlog_kafka  the viewlog pipeline into Parquet (file sources; Kafka)
# Run: ctest --test-dir build -R 'recruitment|tools' --output-on-failure
# Every test here and in tests/cmake/ goes through sluice_python_test(): a missing server, tool
# or seed data is a SKIP (exit 77) outside CI, a FAIL when CI is true, 1 or yes
# (tests/tools/harness.py).
# Python is required: without it the golden and restart tests would silently not run.
find_package(Python3 REQUIRED COMPONENTS Interpreter)

# sluice_python_test(NAME SCRIPT [VENV] [NO_SLUICE] [SERIAL] [TIMEOUT s] [LOCK resource]
#                    [ARGS ...] [LABELS ...]): one Python test run from the checkout,
# `python SCRIPT --sluice build/sluice ARGS...` (NO_SLUICE: without --sluice), with the project
# venv's interpreter (VENV: pyarrow, cassandra-driver) or the system one. Every test may skip:
# tests/tools/harness.py exits 77 when a server, tool or seed data is missing outside CI (a FAIL
# when CI is true, 1 or yes), and ctest reports 77 as Skipped (SKIP_RETURN_CODE 77).
function(sluice_python_test name script)
  cmake_parse_arguments(T "VENV;NO_SLUICE;SERIAL" "TIMEOUT;LOCK" "ARGS;LABELS" ${ARGN})
  set(python ${Python3_EXECUTABLE})
  if(T_VENV)
    set(python ${SLUICE_VENV_PYTHON})
  endif()
  set(sluice_arg --sluice $<TARGET_FILE:sluice>)
  if(T_NO_SLUICE)
    set(sluice_arg)
  endif()
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 300)
  endif()
  add_test(NAME ${name}
           COMMAND ${python} ${PROJECT_SOURCE_DIR}/${script} ${sluice_arg} ${T_ARGS}
           WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
  set_tests_properties(${name} PROPERTIES TIMEOUT ${T_TIMEOUT} LABELS "${T_LABELS}"
                       SKIP_RETURN_CODE 77)
  if(T_SERIAL)
    set_tests_properties(${name} PROPERTIES RUN_SERIAL TRUE)
  endif()
  if(T_LOCK)
    set_tests_properties(${name} PROPERTIES RESOURCE_LOCK ${T_LOCK})
  endif()
endfunction()

sluice_python_test(tools_selftest tests/tools/selftest.py NO_SLUICE TIMEOUT 120
                   LABELS python golden)

sluice_python_test(golden_recruitment tests/golden/run_golden.py TIMEOUT 300 LABELS python golden)

# Hopping windows (window/slide): hand-worked cases under tests/golden/hop, each also recomputed
# independently by the runner.
sluice_python_test(golden_hop tests/golden/run_hop.py TIMEOUT 120 LABELS python golden)

# SQL golden suite: .sql pipelines, hand-worked rows and exact error messages (tests/golden/sql).
sluice_python_test(golden_sql tests/golden/run_sql_suite.py TIMEOUT 120 LABELS python golden)

sluice_python_test(restart_recruitment tests/integration/restart_test.py SERIAL TIMEOUT 240
                   LABELS python integration)

# MySQL/MariaDB sink end to end: seed and kill -9 runs into a real server == recomputation.
# Needs the server of `make services` (root@127.0.0.1:3306) and the mariadb client: without
# them the test is skipped (exit 77), or fails when CI=true.
sluice_python_test(mysql_recruitment tests/integration/mysql_recruitment_test.py TIMEOUT 300
                   LABELS python integration mysql)

sluice_python_test(cli tests/integration/cli_test.py TIMEOUT 180 LABELS python integration)

# The README's first example, run with bash in a scratch copy of a plain clone (no ../shared):
# its table == the independent recomputation over examples/data/tracking.csv.
sluice_python_test(readme_example tests/integration/readme_example_test.py TIMEOUT 300
                   LABELS python integration)

# File positions bound to the file's identity: a replaced file (longer, shorter), an append, a
# prefix-keeping rewrite, a shrink refused until --reset-source; a directory as the source exits 2.
sluice_python_test(file_identity tests/integration/file_identity_test.py TIMEOUT 300
                   LABELS python integration)

# Kafka source end to end, against the broker of `make services` (127.0.0.1:9092): records
# published by kcat keyed by job_id; --until-caught-up and its re-run, kill -9 x10 + restarts,
# scale-out (two processes, one group, rebalances), broker restart mid-run; every result must
# equal the independent recomputation. Without a broker: a loud SKIP (exit 77), a FAIL when
# CI=true. Restarts the shared broker and takes ~2.5 min: RUN_SERIAL.
sluice_python_test(kafka_recruitment_sqlite tests/integration/kafka_recruitment_test.py SERIAL
                   TIMEOUT 330 ARGS --sink sqlite LABELS python integration kafka)
# The same scenarios into MariaDB (a table per scenario).
sluice_python_test(kafka_recruitment_mysql tests/integration/kafka_recruitment_test.py SERIAL
                   TIMEOUT 330 ARGS --sink mysql LABELS python integration kafka mysql)

# viewlog pipeline end to end (tests/integration/viewlog_test.py): view logs -> 1-minute
# event-time windows with a watermark -> Parquet read back with pyarrow (hence the project
# venv's interpreter, SLUICE_VENV_PYTHON), against tests/tools/recompute_viewlog.py: the
# hand-worked golden cases, the seed view_log sample, generated data, and kill -9 during file
# runs. Missing seed data or pyarrow: a SKIP (exit 77), a FAIL when CI=true.
sluice_python_test(viewlog tests/integration/viewlog_test.py VENV TIMEOUT 300
                   ARGS --only golden,seed,generated,kill LABELS python integration parquet)
# The same pipeline from a 1-partition Kafka topic (broker of `make services`): kill -9 mid-run,
# then --until-caught-up == the recomputation with --open-at-end. No broker: SKIP (exit 77), a
# FAIL when CI=true.
sluice_python_test(viewlog_kafka tests/integration/viewlog_test.py VENV SERIAL TIMEOUT 300
                   ARGS --only kafka LABELS python integration kafka parquet)

# HTTP endpoints and dashboard (src/http/README.md). http_endpoints needs nothing but the binary;
# http_promtool and http_prometheus need Debian's `prometheus` package (promtool, the server),
# dashboard_chromium needs `chromium`: without them a loud SKIP (exit 77), a FAIL when CI=true.
# Each picks free loopback ports. The dashboard test saves test-artifacts/dashboard.png here.
sluice_python_test(http_endpoints tests/integration/http_metrics_test.py TIMEOUT 240
                   ARGS --part endpoints LABELS python integration http)
# Slow clients (issue 14): 60 slow-loris connections on loopback while /healthz, /readyz and
# /metrics must answer within 2 s; the headers deadline and the per-client cap. About 50 s.
sluice_python_test(http_slowloris tests/integration/http_slowloris_test.py TIMEOUT 180
                   LABELS python integration http)
sluice_python_test(http_promtool tests/integration/http_metrics_test.py TIMEOUT 120
                   ARGS --part promtool LABELS python integration http)
sluice_python_test(http_prometheus tests/integration/http_metrics_test.py TIMEOUT 240
                   ARGS --part prometheus LABELS python integration http)
sluice_python_test(dashboard_chromium tests/integration/dashboard_test.py TIMEOUT 300
                   ARGS --artifacts ${CMAKE_BINARY_DIR}/test-artifacts
                   LABELS python integration http)

# Dimensions that follow their source (issue: change data capture): a MySQL table polled by
# updated_at, and Kafka CDC topics (Kafka Connect JDBC rows flat and in the JsonConverter's
# envelope, Debezium with and without the envelope, deletes included, and both in Avro and in
# Protobuf written by confluent-kafka's AvroSerializer and ProtobufSerializer, hence the venv's
# interpreter), while events flow. Needs
# `make services` (MariaDB, Kafka and the schema registry); CI=true turns a missing server into
# a FAIL.
sluice_python_test(dimension_cdc tests/integration/dimension_cdc_test.py VENV TIMEOUT 300
                   LABELS python integration mysql kafka)

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
#   deploy_kubernetes     deploy/kubernetes/ against the Kubernetes schema (kubernetes-validate,
#                         strict), wiring between the manifests, `sluice validate` of the
#                         ConfigMap's pipeline with the Deployment's env (no cluster needed)
# A missing server or tool is a loud SKIP (exit 77), a FAIL when CI=true.
sluice_python_test(deploy_kubernetes tests/deploy/kubernetes_test.py VENV TIMEOUT 120
                   LABELS python deploy)
sluice_python_test(deploy_files tests/deploy/deploy_files_test.py TIMEOUT 120 LABELS python deploy)
sluice_python_test(deploy_grafana_mysql tests/deploy/grafana_mysql_test.py TIMEOUT 180
                   LABELS python integration mysql deploy)
sluice_python_test(deploy_prometheus tests/deploy/prometheus_test.py TIMEOUT 180
                   LABELS python integration deploy)
sluice_python_test(deploy_airflow tests/deploy/airflow_test.py VENV TIMEOUT 1800
                   ARGS --venv ${CMAKE_BINARY_DIR}/airflow-venv
                   LABELS python integration airflow deploy kafka)

# Incremental MySQL table source: the seed log loaded into MariaDB in bursts that share a
# timestamp, read by (inserted_at, id) in small pages; a re-run changes nothing; a transaction
# that commits after a later one within the grace period is not skipped. Needs `make services`.
sluice_python_test(table_source tests/integration/table_source_test.py TIMEOUT 300
                   LABELS python integration mysql)

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
sluice_python_test(dead_letters tests/integration/dead_letters_test.py TIMEOUT 300
                   LABELS python integration mysql)
# What a run tells about itself: progress lines and the live bar (under a pty), the summary
# (done / interrupted at X% / nothing new), --summary-json, --quiet, every line JSON under
# --log-format json; validate with several files; init skeletons that validate and run.
sluice_python_test(cli_output tests/integration/cli_output_test.py TIMEOUT 300
                   LABELS python integration)

# sluice takeover: a Spark-filled `events` table (SQLite and MySQL) is planned, applied, and
# continued from a byte offset; compared with the independent recomputation.
sluice_python_test(takeover tests/integration/takeover_test.py TIMEOUT 300
                   LABELS python integration mysql)

# SQL pipelines: examples/recruitment.sql and its TOML twin give the same events table (each equal
# to the independent recomputation) and dead letters; validate/explain of a .sql file from another
# directory, exit 2 with file:line:column for a bad one; examples/ysb.sql and ysb.toml give the same
# campaign_windows (== tests/tools/recompute_ysb.py) and dead letters; users-local.sql and .toml the
# same users_profile rows and dead-lettered pages; users-ingest.sql and users.sql plan as their TOML
# twins (explain --format json; they run against the servers in tests/cmake/sql_twin.cmake).
sluice_python_test(sql_twin_recruitment tests/integration/sql_twin_test.py TIMEOUT 300
                   LABELS python integration golden)
# examples/viewlog.sql (CHECKs as the dead-letter steps, JOIN ... on_missing = 'dead_letter',
# append mode) and viewlog.toml into Parquet on the seed sample and on generated view logs: each
# == tests/tools/recompute_viewlog.py, and the same rows (read with pyarrow) and dead letters.
sluice_python_test(sql_twin_viewlog tests/integration/sql_viewlog_test.py VENV TIMEOUT 300
                   LABELS python integration golden)

# A MariaDB sink whose disk is full when `sluice run` starts (a database on a filled tmpfs):
# the run waits and says why, then writes the hand-worked sums and exits 0 once space is freed.
# No server, client or tmpfs mount permission: SKIP (exit 77), a FAIL when CI=true. About 10 s.
sluice_python_test(mysql_disk_full tests/integration/mysql_disk_full_test.py TIMEOUT 120
                   LABELS python integration mysql)
