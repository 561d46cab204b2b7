# The SQL examples against the real servers of `make services`, each beside its TOML twin on the
# same input (tests/integration/sql_twin_servers_test.py): the same sink contents read back by
# the server's own client, sorted by key, and the same dead letters; each run also equal to the
# independent computation. A missing server is a loud SKIP (exit 77), a FAIL when CI=true.
#   sql_twin_recruitment_mysql  recruitment.sql / .toml into MariaDB (the mariadb client), on the
#                               seed tracking log and on `sluice generate` events; ysb.sql / .toml
#                               into MariaDB on tests/golden/ysb and on generated events
#   sql_twin_users              users-ingest.sql / .toml (fake API -> Kafka, read with kcat) and
#                               users.sql / .toml (Kafka -> Cassandra, read with cassandra-driver)
#                               on the fake API's profiles and on hand-written messages
#   sql_twin_users_avro         the same with the profiles in Avro through the schema registry
# (sql_twin_recruitment and sql_twin_viewlog, in tests/tests.cmake, need no server.)
sluice_python_test(sql_twin_recruitment_mysql tests/integration/sql_twin_servers_test.py
                   TIMEOUT 300 ARGS --only mysql LABELS python integration golden mysql)
sluice_python_test(sql_twin_users tests/integration/sql_twin_servers_test.py VENV TIMEOUT 300
                   ARGS --only users LABELS python integration golden kafka cassandra)
sluice_python_test(sql_twin_users_avro tests/integration/sql_twin_servers_test.py VENV TIMEOUT 300
                   ARGS --only users-avro LABELS python integration golden kafka cassandra)
