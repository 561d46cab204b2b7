# The Flink side of `make bench-flink` (bench/flink/): no Flink, no servers, nothing downloaded.
#   bench_flink_pieces  bench/flink/selftest.py: the TimeUUID expression of the Flink SQL job
#                       against Python's uuid module, the job dimension against the
#                       recomputation's loader, the connector options, --print-sql without
#                       pyflink, and the direction of the harness's sluice/Flink ratios
# Run: ctest --test-dir build -R bench_flink --output-on-failure
sluice_python_test(bench_flink_pieces bench/flink/selftest.py NO_SLUICE TIMEOUT 60 LABELS python bench)
