# The users pipeline without servers (examples/users-local.toml): `sluice fake-api` (started by
# the test on a free loopback port) -> SQLite upserted by id, and the same rows into an ndjson:
# file; kill -9 after a commit and reruns, checked against the same pages fetched with urllib and
# flattened in Python.
add_test(NAME users_local
         COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/integration/users_local_test.py
                 --sluice $<TARGET_FILE:sluice>
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(users_local PROPERTIES TIMEOUT 300 LABELS "python;integration;http")
