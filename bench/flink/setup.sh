#!/usr/bin/env bash
# Prepares the Flink side of `make bench-flink`: a Python virtual environment with the pinned
# apache-flink (bench/flink/requirements.txt) and the extra jars of bench/flink/pom.xml (the Kafka
# and JDBC connectors, the MariaDB JDBC driver). The work is bench/lib/setup_engine.sh's.
#   FLINK_VENV  the environment (default build/bench-flink/venv)
#   FLINK_JARS  where the jars go (default build/bench-flink/jars)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
exec "$root/bench/lib/setup_engine.sh" flink apache-flink pyflink lib \
  "${FLINK_VENV:-$root/build/bench-flink/venv}" "${FLINK_JARS:-$root/build/bench-flink/jars}"
