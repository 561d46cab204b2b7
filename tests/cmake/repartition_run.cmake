# `sluice run` of a repartitioning pipeline (tests/integration/repartition_run_test.py, issue 16
# package 4): the viewlog variant of scale_out_viewlog.toml without keyed_by over a 4-partition
# topic (repart_*) whose producers key by view id, into SQLite, both stages in each process:
# one --until-caught-up process, two at once (reading slowly), and a run stopped with SIGTERM
# then caught up, and a stage one that fails (exit 1). Every table == recompute_viewlog.py --by-partition, each window once, dead
# letters exact. No broker or kcat: SKIP (exit 77), a FAIL when CI=true. About 1 min.
sluice_python_test(repartition_run tests/integration/repartition_run_test.py SERIAL
                   TIMEOUT 300 LABELS python integration kafka)
