#!/usr/bin/env bash
# Prepares the Spark side of `make bench-spark`: a Python virtual environment with the pinned
# pyspark (bench/spark/requirements.txt) and the extra jars of bench/spark/pom.xml (Spark's Kafka
# source, the MariaDB JDBC driver) copied by Maven. Quick when both are already there.
#   BENCH_VENV  the environment (default build/bench-venv)
#   BENCH_JARS  where the jars go (default build/bench-spark/jars)
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
here="$root/bench/spark"
venv="${BENCH_VENV:-$root/build/bench-venv}"
jars="${BENCH_JARS:-$root/build/bench-spark/jars}"
python="${PYTHON:-python3}"

for tool in java mvn "$python"; do
  if ! command -v "$tool" >/dev/null; then
    echo "bench-spark: $tool not found (scripts/install-deps.sh installs Java 17 and Maven)" >&2
    exit 1
  fi
done

stamp="$venv/.bench-requirements"
want="$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "bench-spark: installing $(grep -v '^#' "$here/requirements.txt" | tr '\n' ' ')into $venv"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    -r "$here/requirements.txt"
  echo "$want" >"$stamp"
fi

jstamp="$jars/.pom-sha256"
want="$(sha256sum "$here/pom.xml" | cut -d' ' -f1)"
if [ "$(cat "$jstamp" 2>/dev/null)" != "$want" ]; then
  echo "bench-spark: copying the Kafka source and JDBC driver jars into $jars"
  rm -rf "$jars"
  mkdir -p "$jars"
  # A warm local repository is enough; go to the network only when it is not.
  if mvn -B -o -q -f "$here/pom.xml" dependency:copy-dependencies -DoutputDirectory="$jars" \
       >/dev/null 2>&1; then
    :
  else
    mvn -B -q -f "$here/pom.xml" dependency:copy-dependencies -DoutputDirectory="$jars"
  fi
  # The pyspark wheel already ships these libraries; two copies on one class path would make
  # the version that wins depend on the order of the jar list.
  pyjars="$("$venv/bin/python" -c 'import os, pyspark; print(os.path.join(os.path.dirname(pyspark.__file__), "jars"))')"
  for j in "$jars"/*.jar; do
    base="$(basename "$j" | sed -E 's/-[0-9][0-9.]*.*\.jar$//')"
    if compgen -G "$pyjars/$base-[0-9]*.jar" >/dev/null; then
      rm -f "$j"
    fi
  done
  echo "$want" >"$jstamp"
fi
echo "bench-spark: pyspark $("$venv/bin/python" -c 'import pyspark; print(pyspark.__version__)'), jars: $(cd "$jars" && ls *.jar | tr '\n' ' ')"
