# Issue 16's "Seen" scenario, scaled down (tests/integration/partition_watermark_test.py): a
# 6-partition view_log topic (partwm_viewlog_<pid>), records at most 6 s behind the newest,
# watermark_delay 10 s, read by one sluice process with --until-caught-up into Parquet while two
# other members of its consumer group (kcat -G) join and leave: zero records late, and the Parquet
# dataset equals the independent recomputation. Needs the broker of `make services` and kcat:
# without them SKIP (exit 77), a FAIL when CI=true. About 30 s.
sluice_python_test(partition_watermark tests/integration/partition_watermark_test.py VENV TIMEOUT 300
                   LABELS python integration kafka parquet)
