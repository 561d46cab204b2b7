# The users pipeline (examples/users-ingest.toml, examples/users.toml) end to end:
# `sluice fake-api` over HTTP -> Kafka (transactional) -> Cassandra, checked against the API's
# JSON fetched and flattened by the test itself and the rows read back with the Python
# cassandra-driver (hence the project venv's interpreter); plus the recruitment pipeline reading
# the seed tracking log from a Cassandra table. Needs Kafka and Cassandra of `make services`:
# without them a loud SKIP (exit 77), a FAIL when CI=true. Creates its own topics and keyspaces
# (users_*), dropped at the end.
#   users              clean run, re-run, injected API errors (retried / dead-lettered), kill -9
#   users_avro         the clean run with the profiles in Avro through the schema registry
#                      (FORMAT=avro), read back with confluent-kafka's AvroDeserializer
#   users_messages     hand-written messages (generated ids, postcodes, non-profiles)
#   users_recruitment  recruitment from Cassandra == recompute_recruitment.py, re-run unchanged
sluice_python_test(users tests/integration/users_test.py VENV TIMEOUT 900
                   ARGS --only clean,errors,dead,kill LABELS python integration kafka cassandra)
sluice_python_test(users_avro tests/integration/users_test.py VENV TIMEOUT 300
                   ARGS --only avro LABELS python integration kafka cassandra)
sluice_python_test(users_messages tests/integration/users_test.py VENV TIMEOUT 300
                   ARGS --only messages LABELS python integration kafka cassandra)
sluice_python_test(users_recruitment tests/integration/users_test.py VENV TIMEOUT 300
                   ARGS --only recruitment LABELS python integration cassandra)
