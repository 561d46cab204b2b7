# The users pipeline without servers (examples/users-local.toml): `sluice fake-api` (started by
# the test on a free loopback port) -> SQLite upserted by id, and the same rows into an ndjson:
# file; kill -9 after a commit and reruns, checked against the same pages fetched with urllib and
# flattened in Python.
sluice_python_test(users_local tests/integration/users_local_test.py TIMEOUT 300
                   LABELS python integration http)
