# Issue 19's crash loop (tests/integration/parquet_crash_loop_test.py): a viewlog backfill of a
# generated file (600,000 records over 4 hours, 960 partition directories) into Parquet,
# each run killed with SIGKILL 1-3.5 s after its start until one finishes on its own: that must
# happen within 40 restarts, at least half of the killed runs must have advanced the committed
# state, no commit may write more than max_files_per_checkpoint files, and the dataset read with
# pyarrow must equal the recomputation, one row per window key. No server needed; without
# pyarrow a SKIP (exit 77), a FAIL when CI=true. About 1.5 minutes on the loaded 2-core machine;
# the issue's full scenario (2M records over a week) is `--long`.
sluice_python_test(parquet_crash_loop tests/integration/parquet_crash_loop_test.py VENV TIMEOUT 400
                   LABELS python integration parquet)
