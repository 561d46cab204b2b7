# Columnar differential test (tests/integration/columnar_differential_test.py, issue 19): the
# example pipelines (recruitment, ysb into SQLite; viewlog into Parquet; recruitment from CSV) on messy input
# through the row path (SLUICE_COLUMNAR=0) and the columnar path (SLUICE_COLUMNAR=1): the same
# sink rows, dead letters (reason, payload, position) and run counters. No servers needed.
sluice_python_test(columnar_differential tests/integration/columnar_differential_test.py VENV
                   TIMEOUT 600 LABELS python integration parquet)
