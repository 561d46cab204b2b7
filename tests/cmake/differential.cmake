# Differential test (tests/integration/differential_test.py, issues 13 and 16): every example
# pipeline that runs on local input (recruitment into SQLite and into MariaDB, viewlog into
# Parquet, ysb, and users-local against `sluice fake-api`) on the same input through one run, a
# run killed with SIGKILL and restarted at random moments, the input split into two files with a
# replace (mv) in between (file sources), and --workers 1, 2 and 4: all give the same rows,
# sorted by key, and the same dead letters; the single run equals the independent
# recomputation. Viewlog also runs from its generator with 4 partitions read by 1, 2 and 4
# workers (lateness judged per partition: the same rows and late records). The suite version
# makes 4 kills per pipeline on small inputs (a few minutes on 2 cores); the full one (20 kills,
# bigger inputs):
#   SLUICE_DIFFERENTIAL_FULL=1 ctest -R differential --output-on-failure   (or make differential)
# MariaDB missing: that part is skipped (exit 77 when nothing else ran), a FAIL when CI=true.
# Databases diff_h_<pid>_*, dropped at the end.
sluice_python_test(differential tests/integration/differential_test.py VENV TIMEOUT 900
                   LABELS python integration parquet mysql)
