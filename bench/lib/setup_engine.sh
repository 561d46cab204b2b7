#!/usr/bin/env bash
# Prepares the other engine of a side-by-side benchmark: a Python virtual environment with the
# pinned package (bench/ENGINE/requirements.txt) and the extra jars of bench/ENGINE/pom.xml copied
# by Maven. Quick when both are already there. bench/spark/setup.sh and bench/flink/setup.sh call
# it with their engine's settings:
#   setup_engine.sh ENGINE PACKAGE MODULE LIBDIR VENV JARS
#     ENGINE   folder under bench/ (spark, flink); also the `bench-ENGINE` prefix of messages
#     PACKAGE  the distribution whose version is printed (pyspark, apache-flink)
#     MODULE   the Python module that ships the engine's own jars (pyspark, pyflink)
#     LIBDIR   the folder of those jars inside MODULE (jars, lib)
#     VENV     the environment to create or reuse
#     JARS     where the connector and driver jars go
# A jar the wheel already ships is removed from JARS: two copies on one class path would make
# the version that wins depend on the order of the jar list.
set -euo pipefail

if [ "$#" -ne 6 ]; then
  echo "usage: $0 ENGINE PACKAGE MODULE LIBDIR VENV JARS" >&2
  exit 2
fi
engine="$1" package="$2" module="$3" libdir="$4" venv="$5" jars="$6"
root="$(cd "$(dirname "$0")/../.." && pwd)"
here="$root/bench/$engine"
python="${PYTHON:-python3}"
say() { echo "bench-$engine: $*"; }

for tool in java mvn "$python"; do
  if ! command -v "$tool" >/dev/null; then
    say "$tool not found (scripts/install-deps.sh installs Java 17 and Maven)" >&2
    exit 1
  fi
done

stamp="$venv/.bench-requirements"
want="$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "installing $(grep -v '^#' "$here/requirements.txt" | tr '\n' ' ')into $venv (a few minutes the first time)"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    -r "$here/requirements.txt"
  echo "$want" >"$stamp"
fi

jstamp="$jars/.pom-sha256"
want="$(sha256sum "$here/pom.xml" | cut -d' ' -f1)"
if [ "$(cat "$jstamp" 2>/dev/null)" != "$want" ]; then
  say "copying the connector and driver jars of bench/$engine/pom.xml into $jars"
  rm -rf "$jars"
  mkdir -p "$jars"
  # A warm local repository is enough; go to the network only when it is not.
  if mvn -B -o -q -f "$here/pom.xml" dependency:copy-dependencies -DoutputDirectory="$jars" \
       >/dev/null 2>&1; then
    :
  else
    mvn -B -q -f "$here/pom.xml" dependency:copy-dependencies -DoutputDirectory="$jars"
  fi
  shipped="$("$venv/bin/python" -c "import os, $module; print(os.path.join(os.path.dirname($module.__file__), '$libdir'))")"
  for j in "$jars"/*.jar; do
    base="$(basename "$j" | sed -E 's/-[0-9][0-9.]*.*\.jar$//')"
    if compgen -G "$shipped/$base-[0-9]*.jar" >/dev/null; then
      rm -f "$j"
    fi
  done
  echo "$want" >"$jstamp"
fi
say "$package $("$venv/bin/python" -c "from importlib.metadata import version; print(version('$package'))"), jars: $(cd "$jars" && ls *.jar | tr '\n' ' ')"
