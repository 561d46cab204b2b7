# The Cassandra raw store read by the recruitment pipeline (tests/integration/
# cassandra_source_test.py): 30,000 tracking rows with null cells (tombstones: more than the
# server's tombstone_failure_threshold among the pipeline's fields) in a table keyed by
# create_time (scanned in bounded pages) and in one keyed by (day, create_time) (read bucket by
# bucket); each run killed after its first commit and restarted, events == recompute_recruitment.py;
# reads failing for give_up_after end --until-caught-up with exit 1. Needs Cassandra of
# `make services` and the venv's cassandra-driver: without them a loud SKIP (exit 77), a FAIL
# when CI=true. Keyspace cass_src_<pid>_<time>, dropped at the end.
sluice_python_test(cassandra_source tests/integration/cassandra_source_test.py VENV TIMEOUT 900
                   LABELS python integration cassandra)
