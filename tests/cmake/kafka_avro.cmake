# Kafka source with format = "avro" against the broker (127.0.0.1:9092) and the schema registry
# (127.0.0.1:8081) of `make services`, records produced by confluent-kafka's AvroSerializer
# (tests/integration/kafka_avro_test.py): the recruitment pipeline from Avro equals the
# recomputation as from JSON; schema evolution, an unknown id, a corrupt body, a wrong magic byte;
# a registry down for 4 s; the Kafka sink in Avro; `sluice generate --format avro` read back with
# AvroDeserializer. Topics avro_*. Without the servers: SKIP (exit 77), a FAIL when CI=true.
add_test(NAME kafka_avro
         COMMAND ${SLUICE_VENV_PYTHON} ${PROJECT_SOURCE_DIR}/tests/integration/kafka_avro_test.py
                 --sluice $<TARGET_FILE:sluice>
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(kafka_avro PROPERTIES TIMEOUT 600 LABELS "python;integration;kafka"
                     SKIP_RETURN_CODE 77)
