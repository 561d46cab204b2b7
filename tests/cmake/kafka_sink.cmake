# Kafka sink end to end against the broker of `make services` (127.0.0.1:9092), read back with
# kcat as a read_committed consumer: a file source and a Kafka source into Kafka topics, each
# killed with SIGKILL several times and restarted; every input record must appear exactly once
# with its key. Without a broker or kcat: SKIP (exit 77), a FAIL when CI=true. Uses topics
# named ksink-*; does not restart the broker.
add_test(NAME kafka_sink
         COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/integration/kafka_sink_test.py
                 --sluice $<TARGET_FILE:sluice>
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(kafka_sink PROPERTIES TIMEOUT 600 LABELS "python;integration;kafka"
                     SKIP_RETURN_CODE 77)
