# Issue 19's crash loop (tests/integration/parquet_crash_loop_test.py): a viewlog backfill of a
# generated file (1,000,000 records over a day, about 5,760 partition directories) into Parquet,
# killed with SIGKILL 1-3.5 s after each start, 12 times (fewer when a run finishes first): every
# killed run must have advanced the committed state, no commit wrote more than
# max_files_per_checkpoint files, and the dataset read with pyarrow equals the recomputation. No
# server needed; without pyarrow a SKIP (exit 77), a FAIL when CI=true. About 1-2 minutes; the
# issue's full scenario (2M records over a week, 40 kills) is `--long`.
sluice_python_test(parquet_crash_loop tests/integration/parquet_crash_loop_test.py VENV TIMEOUT 400
                   LABELS python integration parquet)
