# A pipeline whose shape changes between runs (tests/integration/repartition_switch_test.py,
# issue 16): over a 2-partition topic keyed by campaign (repswitch_*), into SQLite, every run
# --until-caught-up: a keyed_by run then one without keyed_by (it would repartition) is refused
# with exit 2; a two-stage run then one with keyed_by is refused; `[source] repartition = false`
# keeps a one-stage pipeline in one stage and goes on from its state. Each refusal leaves the
# sink as it was (the table == recompute_viewlog.py --by-partition, positions unchanged, no
# repartition topic). No broker or kcat: SKIP (exit 77), a FAIL when CI=true. About 30 s.
sluice_python_test(repartition_switch tests/integration/repartition_switch_test.py SERIAL
                   TIMEOUT 240 LABELS python integration kafka)
