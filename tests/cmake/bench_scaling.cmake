# bench/scaling.py (`make bench-scaling`) in small: 100k generated keyed events at 1k and 100k
# groups into SQLite, each table compared row by row with the per-key counts and sums pyarrow
# computes from the file, and the check shown to fail on a changed table. No timing is asserted.
# Run: ctest --test-dir build -R bench_scaling --output-on-failure
sluice_python_test(bench_scaling bench/scaling.py VENV TIMEOUT 240
                   ARGS --matrix smoke --no-save --self-check LABELS python bench)
