# `sluice inspect SINK` and the stored dead letters on /metrics (tests/integration/inspect_test.py):
# each sink after a real run with dead letters, checked against an independent reader (Python's
# sqlite3, the mysql client, json over the Parquet sink's dead-letter files, pyarrow), the exit
# codes of bad URIs and unreachable servers, and sluice_dead_letters_stored across a restart.
sluice_python_test(inspect_sqlite tests/integration/inspect_test.py TIMEOUT 300
                   ARGS --part sqlite,errors,metrics LABELS python integration http)
# The Parquet part reads the dataset with pyarrow: the project venv's interpreter.
sluice_python_test(inspect_parquet tests/integration/inspect_test.py VENV TIMEOUT 300
                   ARGS --part parquet LABELS python integration parquet)
# Needs the MariaDB of `make services`: SKIP (exit 77) without it, a FAIL when CI=true.
sluice_python_test(inspect_mysql tests/integration/inspect_test.py TIMEOUT 300 LOCK mariadb
                   ARGS --part mysql LABELS python integration mysql)
# Cassandra of `make services` (127.0.0.1:9042), keyspace inspect_<pid>, read back with the venv's
# cassandra-driver: SKIP (exit 77) without the server, a FAIL when CI=true.
sluice_python_test(inspect_cassandra tests/integration/inspect_test.py VENV TIMEOUT 300
                   ARGS --part cassandra LABELS python integration cassandra)
