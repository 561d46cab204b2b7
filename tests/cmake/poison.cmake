# Poison records (issue 14 item 2): rows the sink refuses for good (a MariaDB key longer than its
# column, an SQLite null key) are dead-lettered with the server's reason and the rest of the
# checkpoint commits; restarts continue; a checkpoint failing for another reason exits 1. The
# SQLite part always runs; the MariaDB part needs the server of `make services` (database
# poison_mysql) and the mariadb client, else the test is skipped (exit 77), a FAIL when CI=true.
# Cassandra, Kafka and Parquet refusals are covered by sluice_tests (CassandraSinkTest.*,
# KafkaSink.RowOver*, ParquetSinkTest.ARowWhosePartitionFolderCannotExistIsDeadLettered).
add_test(NAME poison_records
         COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/integration/poison_records_test.py
                 --sluice $<TARGET_FILE:sluice>
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(poison_records PROPERTIES TIMEOUT 300 LABELS "python;integration;mysql"
                     SKIP_RETURN_CODE 77 RESOURCE_LOCK mariadb)
