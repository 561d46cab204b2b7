#!/usr/bin/env bash
# Prepares the Flink side of `make bench-flink`: a Python virtual environment with the pinned
# apache-flink (bench/flink/requirements.txt) and the extra jars of bench/flink/pom.xml (the
# Kafka and JDBC connectors, the MariaDB JDBC driver) copied by Maven. Quick when both are
# already there.
#   FLINK_VENV  the environment (default build/bench-flink/venv)
#   FLINK_JARS  where the jars go (default build/bench-flink/jars)
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
here="$root/bench/flink"
venv="${FLINK_VENV:-$root/build/bench-flink/venv}"
jars="${FLINK_JARS:-$root/build/bench-flink/jars}"
python="${PYTHON:-python3}"

for tool in java mvn "$python"; do
  if ! command -v "$tool" >/dev/null; then
    echo "bench-flink: $tool not found (scripts/install-deps.sh installs Java 17 and Maven)" >&2
    exit 1
  fi
done

stamp="$venv/.bench-requirements"
want="$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "bench-flink: installing $(grep -v '^#' "$here/requirements.txt" | tr '\n' ' ')into $venv (a few minutes the first time)"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    -r "$here/requirements.txt"
  echo "$want" >"$stamp"
fi

jstamp="$jars/.pom-sha256"
want="$(sha256sum "$here/pom.xml" | cut -d' ' -f1)"
if [ "$(cat "$jstamp" 2>/dev/null)" != "$want" ]; then
  echo "bench-flink: copying the Kafka and JDBC connector and driver jars into $jars"
  rm -rf "$jars"
  mkdir -p "$jars"
  # A warm local repository is enough; go to the network only when it is not.
  if mvn -B -o -q -f "$here/pom.xml" dependency:copy-dependencies -DoutputDirectory="$jars" \
       >/dev/null 2>&1; then
    :
  else
    mvn -B -q -f "$here/pom.xml" dependency:copy-dependencies -DoutputDirectory="$jars"
  fi
  # The apache-flink wheel already ships these libraries (flink-dist holds Flink's own classes,
  # slf4j...); two copies on one class path would make the version that wins depend on order.
  pylib="$("$venv/bin/python" -c 'import os, pyflink; print(os.path.join(os.path.dirname(pyflink.__file__), "lib"))')"
  for j in "$jars"/*.jar; do
    base="$(basename "$j" | sed -E 's/-[0-9][0-9.]*.*\.jar$//')"
    if compgen -G "$pylib/$base-[0-9]*.jar" >/dev/null; then
      rm -f "$j"
    fi
  done
  echo "$want" >"$jstamp"
fi
echo "bench-flink: apache-flink $("$venv/bin/python" -c 'from importlib.metadata import version; print(version("apache-flink"))'), jars: $(cd "$jars" && ls *.jar | tr '\n' ' ')"
