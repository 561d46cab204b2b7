# Operating a repartitioned pipeline (tests/integration/repartition_ops_test.py, issue 16): the
# pipeline of repartition_run over its own 4-partition topic (repart_*): a slow run with --http
# (/api/status and /metrics of both stages, /readyz, /healthz), `sluice status` of both stages,
# SIGTERM, the repartition topic purged up to stage two's committed positions (low offsets), an
# --until-caught-up run after the purge: the table == recompute_viewlog.py --by-partition, and
# `sluice status` shows every position at its end with the recomputed watermarks. No broker or
# kcat: SKIP (exit 77), a FAIL when CI=true. About 1 min.
sluice_python_test(repartition_ops tests/integration/repartition_ops_test.py SERIAL
                   TIMEOUT 300 LABELS python integration kafka)
