# `sluice status PIPELINE` (tests/integration/status_test.py): two processes of the recruitment
# pipeline share a 4-partition topic; frozen with SIGSTOP, the owners `sluice status --format
# json` reports == the group's assignment as Kafka's ConsumerGroupCommand prints it, committed
# == the SQLite sink's positions, end == kcat -Q, lag == end - committed; each partition's task
# (update mode with allowed_lateness) is owned by the pid of the process that reads it, with the
# watermark recomputed from the records before its position, and released after a clean stop.
# No broker, kcat or Kafka jars: SKIP (exit 77), a FAIL when CI=true. Topics topics_*; ~30 s.
sluice_python_test(status tests/integration/status_test.py TIMEOUT 300
                   LABELS python integration kafka)
