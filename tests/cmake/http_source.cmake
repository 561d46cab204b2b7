# The http source against `sluice fake-api` (started by the test on a free loopback port; no
# other server): error injection -> retries and dead letters with reasons, counters, kill -9 +
# restart exactness. Expected rows come from fetching the same pages with urllib.
add_test(NAME http_source
         COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/integration/http_source_test.py
                 --sluice $<TARGET_FILE:sluice>
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(http_source PROPERTIES TIMEOUT 300 LABELS "python;integration;http")
