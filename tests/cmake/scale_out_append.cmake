# Scale-out of an append-mode pipeline with `[source] keyed_by`
# (tests/integration/scale_out_append_test.py, issue 16 "Tests"): the viewlog variant
# tests/integration/scale_out_viewlog.toml (allowed_lateness 30s, keyed_by campaign_id) over an
# 8-partition topic (scaleview_*) with out-of-order, late and invalid records, each campaign in
# one partition: (a) 3 processes join, two are killed with -9 after commits of their own, one
# rejoins, then an --until-caught-up run finishes; (b) the same topic through 1 process gives
# the same table; (c) a rebalance storm loses nothing; (d) two --until-caught-up runs at once,
# twice, over a topic produced in two halves. Every table == the per-partition
# recomputation (recompute_viewlog.py --by-partition), each window written by exactly one
# committed transaction (triggers), dead letters exact. No broker or kcat: SKIP (exit 77), a
# FAIL when CI=true. About 2 min each; RUN_SERIAL (timing-sensitive on a loaded machine).
# SQLite: a 15-s storm as the others (the suite's time; the storm's minute is scale_out_sqlite's).
sluice_python_test(scale_out_append_sqlite tests/integration/scale_out_append_test.py SERIAL
                   TIMEOUT 360 ARGS --sink sqlite --storm-seconds 15 LABELS python integration kafka)
# The same into MariaDB (a database scaleview_* per scenario): a, b and d; the storm (c) runs into
# SQLite and Parquet here and repartitioned into SQLite (the suite's time).
sluice_python_test(scale_out_append_mysql tests/integration/scale_out_append_test.py SERIAL
                   TIMEOUT 360 ARGS --sink mysql --only a,b,d LABELS python integration kafka mysql)
# The same into a Parquet dataset partitioned as examples/viewlog.toml, read with pyarrow (the
# venv's interpreter); positions and owners from `sluice status --format json`; a 15-s storm.
sluice_python_test(scale_out_append_parquet tests/integration/scale_out_append_test.py VENV SERIAL
                   TIMEOUT 360 ARGS --sink parquet --storm-seconds 15 LABELS python integration kafka parquet)
