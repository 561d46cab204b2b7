# Kafka lag in progress lines and the summary (tests/integration/kafka_lag_test.py): a backlog
# in a 3-partition topic on the broker of `make services`, read with --log-format json and
# --progress-interval 0.1; every partition's end and lag == the end offsets kcat -Q reads, the
# total lag goes down to 0, and a re-run with nothing new still lists every partition at its
# end. No broker or kcat: SKIP (exit 77), a FAIL when CI=true. Topics airflow_lag_*.
sluice_python_test(kafka_lag tests/integration/kafka_lag_test.py TIMEOUT 300
                   LABELS python integration kafka)
