# Kafka sink end to end against the broker of `make services` (127.0.0.1:9092), read back with
# kcat as a read_committed consumer: a file source and a Kafka source into Kafka topics, each
# killed with SIGKILL several times and restarted; every input record must appear exactly once
# with its key. Without a broker or kcat: SKIP (exit 77), a FAIL when CI=true. Uses topics
# named ksink-*; does not restart the broker.
sluice_python_test(kafka_sink tests/integration/kafka_sink_test.py TIMEOUT 600
                   LABELS python integration kafka)
