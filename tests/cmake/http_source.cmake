# The http source against `sluice fake-api` (started by the test on a free loopback port; no
# other server): error injection -> retries and dead letters with reasons, counters, kill -9 +
# restart exactness. Expected rows come from fetching the same pages with urllib.
sluice_python_test(http_source tests/integration/http_source_test.py TIMEOUT 300
                   LABELS python integration http)
