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
add_test(NAME users
         COMMAND ${SLUICE_VENV_PYTHON} ${PROJECT_SOURCE_DIR}/tests/integration/users_test.py
                 --sluice $<TARGET_FILE:sluice> --only clean,errors,dead,kill
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(users PROPERTIES TIMEOUT 900 LABELS "python;integration;kafka;cassandra"
                     SKIP_RETURN_CODE 77)
add_test(NAME users_avro
         COMMAND ${SLUICE_VENV_PYTHON} ${PROJECT_SOURCE_DIR}/tests/integration/users_test.py
                 --sluice $<TARGET_FILE:sluice> --only avro
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(users_avro PROPERTIES TIMEOUT 300
                     LABELS "python;integration;kafka;cassandra" SKIP_RETURN_CODE 77)
add_test(NAME users_messages
         COMMAND ${SLUICE_VENV_PYTHON} ${PROJECT_SOURCE_DIR}/tests/integration/users_test.py
                 --sluice $<TARGET_FILE:sluice> --only messages
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(users_messages PROPERTIES TIMEOUT 300
                     LABELS "python;integration;kafka;cassandra" SKIP_RETURN_CODE 77)
add_test(NAME users_recruitment
         COMMAND ${SLUICE_VENV_PYTHON} ${PROJECT_SOURCE_DIR}/tests/integration/users_test.py
                 --sluice $<TARGET_FILE:sluice> --only recruitment
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(users_recruitment PROPERTIES TIMEOUT 300 LABELS "python;integration;cassandra"
                     SKIP_RETURN_CODE 77)
