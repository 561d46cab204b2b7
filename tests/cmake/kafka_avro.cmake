# Kafka source with format = "avro" against the broker (127.0.0.1:9092) and the schema registry
# (127.0.0.1:8081) of `make services`, records produced by confluent-kafka's AvroSerializer
# (tests/integration/kafka_avro_test.py): the recruitment pipeline from Avro equals the
# recomputation as from JSON; schema evolution, an unknown id, a corrupt body, a wrong magic byte;
# a registry down for 4 s; the Kafka sink in Avro; `sluice generate --format avro` read back with
# AvroDeserializer. Topics avro_*. Without the servers: SKIP (exit 77), a FAIL when CI=true.
sluice_python_test(kafka_avro tests/integration/kafka_avro_test.py VENV TIMEOUT 600
                   LABELS python integration kafka)
