# Kafka lag in progress lines and the summary (tests/integration/kafka_lag_test.py): a backlog
# in a 3-partition topic on the broker of `make services`, read with --log-format json and
# --progress-interval 0.1; every partition's end and lag == the end offsets kcat -Q reads, the
# total lag goes down to 0, and a re-run with nothing new still lists every partition at its
# end. No broker or kcat: SKIP (exit 77), a FAIL when CI=true. Topics airflow_lag_*.
add_test(NAME kafka_lag
         COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/integration/kafka_lag_test.py
                 --sluice $<TARGET_FILE:sluice>
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(kafka_lag PROPERTIES TIMEOUT 300 LABELS "python;integration;kafka"
                     SKIP_RETURN_CODE 77)
