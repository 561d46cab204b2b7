#!/usr/bin/env bash
# Prepares the Spark side of `make bench-spark`: a Python virtual environment with the pinned
# pyspark (bench/spark/requirements.txt) and the extra jars of bench/spark/pom.xml (Spark's Kafka
# source, the MariaDB JDBC driver). The work is bench/lib/setup_engine.sh's.
#   BENCH_VENV  the environment (default build/bench-venv)
#   BENCH_JARS  where the jars go (default build/bench-spark/jars)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
exec "$root/bench/lib/setup_engine.sh" spark pyspark pyspark jars \
  "${BENCH_VENV:-$root/build/bench-venv}" "${BENCH_JARS:-$root/build/bench-spark/jars}"
