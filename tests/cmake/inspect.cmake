# `sluice inspect SINK` and the stored dead letters on /metrics (tests/integration/inspect_test.py):
# each sink after a real run with dead letters, checked against an independent reader (Python's
# sqlite3, the mysql client, json over the Parquet sink's dead-letter files, pyarrow), the exit
# codes of bad URIs and unreachable servers, and sluice_dead_letters_stored across a restart.
add_test(NAME inspect_sqlite
         COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/integration/inspect_test.py
                 --sluice $<TARGET_FILE:sluice> --part sqlite,errors,metrics
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(inspect_sqlite PROPERTIES TIMEOUT 300 LABELS "python;integration;http")
# The Parquet part reads the dataset with pyarrow: the project venv's interpreter.
add_test(NAME inspect_parquet
         COMMAND ${SLUICE_VENV_PYTHON} ${PROJECT_SOURCE_DIR}/tests/integration/inspect_test.py
                 --sluice $<TARGET_FILE:sluice> --part parquet
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(inspect_parquet PROPERTIES TIMEOUT 300 LABELS "python;integration;parquet"
                     SKIP_RETURN_CODE 77)
# Needs the MariaDB of `make services`: SKIP (exit 77) without it, a FAIL when CI=true.
add_test(NAME inspect_mysql
         COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/integration/inspect_test.py
                 --sluice $<TARGET_FILE:sluice> --part mysql
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(inspect_mysql PROPERTIES TIMEOUT 300 LABELS "python;integration;mysql"
                     SKIP_RETURN_CODE 77 RESOURCE_LOCK mariadb)
# Cassandra of `make services` (127.0.0.1:9042), keyspace inspect_<pid>, read back with the venv's
# cassandra-driver: SKIP (exit 77) without the server, a FAIL when CI=true.
add_test(NAME inspect_cassandra
         COMMAND ${SLUICE_VENV_PYTHON} ${PROJECT_SOURCE_DIR}/tests/integration/inspect_test.py
                 --sluice $<TARGET_FILE:sluice> --part cassandra
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(inspect_cassandra PROPERTIES TIMEOUT 300 LABELS "python;integration;cassandra"
                     SKIP_RETURN_CODE 77)
