#!/usr/bin/env bash
# Kafka's own topic tool (what bin/kafka-topics.sh of a Kafka download runs), from the jars that
# scripts/services.sh keeps in build/services/kafka/libs. Talks to the local broker unless
# --bootstrap-server is given. Examples:
#   scripts/kafka-topics.sh --create --topic clicks --partitions 4 --replication-factor 1
#   scripts/kafka-topics.sh --describe --topic clicks
#   scripts/kafka-topics.sh --list
#   scripts/kafka-topics.sh --delete --topic clicks
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
KAFKA_DIR=${SLUICE_SERVICES_DIR:-$ROOT/build/services}/kafka

# The jars and the java link appear with the first `make services`; fetch them if that has not
# happened yet (the tool is still useless without a running broker, but says so itself).
if [ ! -f "$KAFKA_DIR/libs/.pom.sha256" ] || [ ! -x "$KAFKA_DIR/java" ]; then
  "$ROOT/scripts/services.sh" jars >&2
fi

args=("$@")
if [[ " $* " != *" --bootstrap-server"* && " $* " != *" --help "* && " $* " != *" --version "* ]]; then
  args+=(--bootstrap-server "127.0.0.1:${SLUICE_KAFKA_PORT:-9092}")
fi

# A short-lived client: the C1 compiler alone and a small heap start it fastest.
exec "$KAFKA_DIR/java" -Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC \
  -Dlog4j.configuration="file:$ROOT/scripts/kafka/tools-log4j.properties" \
  -cp "$KAFKA_DIR/libs/*" org.apache.kafka.tools.TopicCommand "${args[@]}"
