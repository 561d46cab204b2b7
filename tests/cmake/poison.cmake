# Poison records (issue 14 item 2): rows the sink refuses for good (a MariaDB key longer than its
# column, an SQLite null key) are dead-lettered with the server's reason and the rest of the
# checkpoint commits; restarts continue; a checkpoint failing for another reason exits 1. The
# SQLite part always runs; the MariaDB part needs the server of `make services` (database
# poison_mysql) and the mariadb client, else the test is skipped (exit 77), a FAIL when CI=true.
# Cassandra, Kafka and Parquet refusals are covered by sluice_tests (CassandraSinkTest.*,
# KafkaSink.RowOver*, ParquetSinkTest.ARowWhosePartitionFolderCannotExistIsDeadLettered).
sluice_python_test(poison_records tests/integration/poison_records_test.py TIMEOUT 300 LOCK mariadb
                   LABELS python integration mysql)
