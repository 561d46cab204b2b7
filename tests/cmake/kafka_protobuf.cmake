# Kafka source with format = "protobuf" against the broker (127.0.0.1:9092) and the schema
# registry (127.0.0.1:8081) of `make services`, records produced by confluent-kafka's
# ProtobufSerializer and by hand-framed Python protobuf bodies (tests/integration/
# kafka_protobuf_test.py): the recruitment pipeline from Protobuf equals the recomputation as from
# JSON; a schema evolved mid-stream (text and base64 schemas, references, well-known types), an
# unknown id, a corrupt body, a bad message index; a registry down for 4 s. Topics proto_*.
# Without the servers: SKIP (exit 77), a FAIL when CI=true.
add_test(NAME kafka_protobuf
         COMMAND ${SLUICE_VENV_PYTHON} ${PROJECT_SOURCE_DIR}/tests/integration/kafka_protobuf_test.py
                 --sluice $<TARGET_FILE:sluice>
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(kafka_protobuf PROPERTIES TIMEOUT 600 LABELS "python;integration;kafka"
                     SKIP_RETURN_CODE 77)
