#!/usr/bin/env bash
# Local servers for sluice's connector tests, on loopback only:
#   MariaDB    127.0.0.1:3306  user root, no password, database `sluice`
#   Kafka      127.0.0.1:9092  (KRaft controller on 127.0.0.1:9093), single node
#   Cassandra  127.0.0.1:9042  CQL native protocol (storage port 127.0.0.1:7000), single node
#   Registry   127.0.0.1:8081  a Confluent-compatible schema registry (REST subset, see
#                              tests/tools/schema_registry.py and scripts/README.md for why)
#
# Usage: scripts/services.sh up|down|restart [mariadb|kafka|cassandra|registry]...  (default: all)
#        scripts/services.sh status
#        scripts/services.sh jars   (only fetch the Kafka jars; used by kafka-topics.sh)
#
# All run as our own processes with everything under build/services/ (see scripts/README.md),
# never as the system's services, so tests get the same servers on every machine and a reset is
# `rm -rf build/services`. `up` is idempotent: what already runs is left alone.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SVC_DIR=${SLUICE_SERVICES_DIR:-$ROOT/build/services}

# The tests connect to exactly these ports. The overrides exist for trying this script while
# another server holds a port, and for the soak test (tests/integration/soak_test.py), which runs
# its own private MariaDB and Kafka on other ports with their own SLUICE_SERVICES_DIR so that it
# can restart them without touching these; other tests will not find servers moved elsewhere.
readonly HOST=127.0.0.1
readonly MARIADB_PORT=${SLUICE_MARIADB_PORT:-3306}
readonly KAFKA_PORT=${SLUICE_KAFKA_PORT:-9092}
readonly KAFKA_CONTROLLER_PORT=${SLUICE_KAFKA_CONTROLLER_PORT:-9093}
readonly CASSANDRA_PORT=${SLUICE_CASSANDRA_PORT:-9042}
readonly CASSANDRA_STORAGE_PORT=${SLUICE_CASSANDRA_STORAGE_PORT:-7000}
# Extra lines for MariaDB's my.cnf (newline-separated option=value), appended after ours so that
# they win; empty by default. The soak test gives its private MariaDB a smaller buffer pool.
readonly MARIADB_EXTRA_CNF=${SLUICE_MARIADB_EXTRA_CNF:-}
readonly REGISTRY_PORT=${SLUICE_REGISTRY_PORT:-8081}

MARIADB_DIR=$SVC_DIR/mariadb
MARIADB_DATA=$MARIADB_DIR/data
MARIADB_CNF=$MARIADB_DIR/my.cnf
MARIADB_LOG=$MARIADB_DIR/mariadb.log
MARIADB_SOCK=$MARIADB_DIR/mariadb.sock
MARIADB_PIDFILE=$SVC_DIR/mariadb.pid
MARIADB_TIMEOUT=60

KAFKA_DIR=$SVC_DIR/kafka
KAFKA_LIBS=$KAFKA_DIR/libs
KAFKA_DATA=$KAFKA_DIR/data
KAFKA_PROPS=$KAFKA_DIR/server.properties
KAFKA_LOG=$KAFKA_DIR/kafka.log
KAFKA_PIDFILE=$SVC_DIR/kafka.pid
KAFKA_POM=$ROOT/scripts/kafka/pom.xml
KAFKA_TIMEOUT=90
# A fixed cluster id (base64 of the 16 bytes "sluice-local-dev"), so the storage can be
# formatted without asking Kafka for a random one first.
readonly KAFKA_CLUSTER_ID=c2x1aWNlLWxvY2FsLWRldg

CASSANDRA_DIR=$SVC_DIR/cassandra
CASSANDRA_LIBS=$CASSANDRA_DIR/libs
CASSANDRA_YAML=$CASSANDRA_DIR/cassandra.yaml
CASSANDRA_LOG=$CASSANDRA_DIR/cassandra.log
CASSANDRA_PIDFILE=$SVC_DIR/cassandra.pid
CASSANDRA_POM=$ROOT/scripts/cassandra/pom.xml
# A first start (system keyspaces created) takes ~15 s on two idle cores; leave room for a
# loaded machine.
CASSANDRA_TIMEOUT=120

REGISTRY_DIR=$SVC_DIR/registry
# The registry's state (schemas and subjects); also the marker on its command line.
REGISTRY_STATE=$REGISTRY_DIR/registry.json
REGISTRY_LOG=$REGISTRY_DIR/registry.log
REGISTRY_PIDFILE=$SVC_DIR/registry.pid
REGISTRY_TIMEOUT=30

say() { echo "services: $*"; }
die() { echo "services: error: $*" >&2; exit 1; }

# Prints the pid recorded in pid file $1 when that process is alive and its command line contains
# $2 (our config file's path), so a stale pid file or a recycled pid is never taken for ours.
# Zombies have an empty command line and count as gone.
running_pid() {
  local pid
  [ -f "$1" ] || return 1
  pid=$(cat "$1" 2>/dev/null || true)
  [[ $pid =~ ^[0-9]+$ ]] && has_marker "$pid" "$2" && echo "$pid"
}

has_marker() {
  local cmdline
  cmdline=$(tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline") || return 1
  [[ $cmdline == *"$2"* ]]
}

# True when something accepts TCP connections on 127.0.0.1:$1 (bash's /dev/tcp: no extra tool).
port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# Who listens on port $1, for error messages (ss may be missing or show no process as non-root).
port_owner() {
  local line
  line=$(ss -Hltnp "sport = :$1" 2>/dev/null | head -1 || true)
  echo "${line:-unknown process}"
}

# Our server may run without its pid file: take it back when the process listening on port $1
# has our config file ($3) on its command line, writing pid file $2. When build/services itself
# was deleted under it (`make clean` while it ran), its data is gone: stop it instead ($4: name).
adopt_orphan() {
  local pid
  pid=$(ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2 || true)
  [ -n "$pid" ] && has_marker "$pid" "$3" || return 1
  mkdir -p "$(dirname "$2")"
  echo "$pid" >"$2"
  [ -f "$3" ] && return 0
  # On stderr: callers use stdout for the pid.
  say "$4: pid $pid still runs although its directory was deleted (make clean?); stopping it" >&2
  stop_server "$4" "$2" "$3" 30 >&2
  return 1
}

# Fails, saying why, when port $1 is taken by a process that is not ours ($2: who needs it,
# $3: a hint on stopping the usual suspect).
port_free() {
  port_open "$1" || return 0
  echo "services: error: port $1 on $HOST is already in use by another process: $(port_owner "$1")
  $2 needs this port (the tests connect to it). Stop that process$3, then run 'make services' again." >&2
  return 1
}

# Starts "$@" detached from this shell and terminal: setsid, so Ctrl-C on `make test` does not
# reach the servers; nohup and </dev/null, so nothing waits on their input or output. A
# background child of a script is not a process-group leader, so setsid does not fork and $!
# is the server's pid. Output is appended to log file $1. fd 9 is closed: it holds our lock
# (take_lock), and a server keeping it would block every later `up` and `down`.
launch() {
  local log=$1
  shift
  nohup setsid "$@" >>"$log" 2>&1 </dev/null 9>&- &
  LAUNCHED_PID=$!
}

# Stops the server recorded in pid file $2 (name $1, command-line marker $3): SIGTERM, which both
# servers handle as a clean shutdown, then SIGKILL after $4 seconds.
stop_server() {
  local name=$1 pidfile=$2 marker=$3 timeout=$4 pid deadline
  if ! pid=$(running_pid "$pidfile" "$marker"); then
    rm -f "$pidfile"
    say "$name: not running"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$((SECONDS + timeout))
  while running_pid "$pidfile" "$marker" >/dev/null; do
    if [ $SECONDS -ge $deadline ]; then
      say "$name: pid $pid did not stop within ${timeout}s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 1
      break
    fi
    sleep 0.2
  done
  rm -f "$pidfile"
  say "$name: stopped (pid $pid)"
}

# Called when a server did not come up: shows why, stops what is left of it, and fails.
fail_start() {
  local name=$1 pidfile=$2 marker=$3 log=$4 reason=$5 pid
  {
    echo "services: error: $name $reason"
    echo "---- last 40 lines of $log ----"
    tail -n 40 "$log" 2>/dev/null || echo "(no log)"
    echo "----"
    echo "services: error: $name $reason (full log: $log; to start it from scratch, losing its" \
      "data: rm -rf $(dirname "$log"))"
  } >&2
  if pid=$(running_pid "$pidfile" "$marker"); then kill -KILL "$pid" 2>/dev/null || true; fi
  rm -f "$pidfile"
  return 1
}

# What every server kind shares: NAME_pid, NAME_start and NAME_wait below are these with the
# server's pid file, command-line marker, port, log and readiness probe.

# Prints the pid of our running server $1 (pid file $2, command-line marker $3), taking back an
# orphan that listens on its port $4.
server_pid() {
  running_pid "$2" "$3" ||
    { adopt_orphan "$4" "$2" "$3" "$1" && running_pid "$2" "$3"; }
}

# Succeeds, saying so, when server $1 already runs ($1_pid finds it); otherwise removes its stale
# pid file $2 and fails, and the caller starts it.
already_running() {
  local pid
  if pid=$("$1_pid"); then
    say "$1: already running (pid $pid)"
    return 0
  fi
  rm -f "$2"
  return 1
}

# Records the process launch just started as server $1 in pid file $2.
started() {
  echo "$LAUNCHED_PID" >"$2"
  say "$1: started (pid $LAUNCHED_PID)"
}

# Starts log $1 over once it gets big (it is appended to across restarts).
rotate_log() {
  if [ -f "$1" ] && [ "$(stat -c %s "$1")" -gt $((50 * 1024 * 1024)) ]; then
    mv -f "$1" "$1.1"
  fi
}

# Polls "${@:8}" every $6 s until it succeeds for server $1 (pid file $2, marker $3, log $4);
# fails through fail_start when the server exits first or does not answer within $5 s ($7: where
# it was asked, for the message).
wait_ready() {
  local name=$1 pidfile=$2 marker=$3 log=$4 timeout=$5 interval=$6 where=$7 deadline
  shift 7
  deadline=$((SECONDS + timeout))
  until "$@"; do
    if ! running_pid "$pidfile" "$marker" >/dev/null; then
      fail_start "$name" "$pidfile" "$marker" "$log" "exited during startup"
      return 1
    fi
    if [ $SECONDS -ge $deadline ]; then
      fail_start "$name" "$pidfile" "$marker" "$log" "did not answer $where within ${timeout}s"
      return 1
    fi
    sleep "$interval"
  done
}

# ---------------------------------------------------------------------------------------------
# Tools: installed through the repo's installer, and only when one is missing, so a warm `up`
# does not spend time on package checks.

MARIADBD=""
find_mariadbd() {
  # /usr/sbin is not on a normal user's PATH.
  MARIADBD=$(command -v mariadbd || true)
  [ -n "$MARIADBD" ] || { [ -x /usr/sbin/mariadbd ] && MARIADBD=/usr/sbin/mariadbd; } || true
  [ -n "$MARIADBD" ]
}

JAVA=""
# Kafka 3.9 runs on Java 11+, but we require 17 (what Debian 12 ships and what we test with).
# Takes $JAVA_HOME, then java on PATH, then any JDK under /usr/lib/jvm.
find_java() {
  local j v candidates=()
  [ -n "${JAVA_HOME:-}" ] && candidates+=("$JAVA_HOME/bin/java")
  command -v java >/dev/null && candidates+=("$(command -v java)")
  candidates+=(/usr/lib/jvm/*/bin/java)
  for j in "${candidates[@]}"; do
    [ -x "$j" ] || continue
    v=$("$j" -version 2>&1 | sed -n 's/.* version "\([0-9]*\).*/\1/p' | head -1)
    if [ "${v:-0}" -ge 17 ]; then JAVA=$j; return 0; fi
  done
  return 1
}

# The Kafka jars are current when the stamp in libs/ holds the hash of the pom they came from.
kafka_libs_current() {
  [ -f "$KAFKA_LIBS/.pom.sha256" ] &&
    [ "$(cat "$KAFKA_LIBS/.pom.sha256")" = "$(sha256sum "$KAFKA_POM" | cut -d' ' -f1)" ]
}

cassandra_libs_current() {
  [ -f "$CASSANDRA_LIBS/.pom.sha256" ] &&
    [ "$(cat "$CASSANDRA_LIBS/.pom.sha256")" = "$(sha256sum "$CASSANDRA_POM" | cut -d' ' -f1)" ]
}

# $@: which servers need their tools (mariadb, kafka, cassandra).
ensure_tools() {
  local need=()
  if [[ " $* " == *" mariadb "* ]]; then
    find_mariadbd || need+=(mariadb-server)
    command -v mariadb >/dev/null || need+=(mariadb-client)
  fi
  if [[ " $* " == *" kafka "* ]]; then
    find_java || need+=(openjdk-17-jre-headless)
    command -v kcat >/dev/null || need+=(kcat) # readiness check and the tests' own produce/consume
    kafka_libs_current || command -v mvn >/dev/null || need+=(maven)
  fi
  if [[ " $* " == *" cassandra "* ]]; then
    find_java || need+=(openjdk-17-jre-headless)
    command -v python3 >/dev/null || need+=(python3) # readiness check (scripts/cassandra/cql_ping.py)
    cassandra_libs_current || command -v mvn >/dev/null || need+=(maven)
  fi
  if [[ " $* " == *" registry "* ]]; then
    command -v python3 >/dev/null || need+=(python3)
  fi
  if [ ${#need[@]} -gt 0 ]; then
    # Each of kafka and cassandra may ask for Java and Maven.
    mapfile -t need < <(printf '%s\n' "${need[@]}" | awk '!seen[$0]++')
    say "installing ${need[*]}"
    # On failure the checks below say what exactly is missing.
    SLUICE_EXTRA_PACKAGES="${need[*]}" "$ROOT/scripts/install-deps.sh" ||
      echo "services: could not install ${need[*]} (see above)" >&2
  fi
  if [[ " $* " == *" mariadb "* ]]; then
    find_mariadbd || die "MariaDB is required: install mariadb-server (apt-get install mariadb-server)"
    command -v mariadb >/dev/null || die "the mariadb client is required: install mariadb-client"
  fi
  if [[ " $* " == *" kafka "* ]]; then
    find_java || die "Java 17 is required to run Kafka: install openjdk-17-jre-headless" \
      "(apt-get install openjdk-17-jre-headless) or point JAVA_HOME at a JDK 17+"
    command -v kcat >/dev/null || die "kcat is required to check the Kafka broker: install kcat"
    kafka_libs_current || command -v mvn >/dev/null ||
      die "Maven is required once to download the Kafka jars: install maven (apt-get install maven)"
  fi
  if [[ " $* " == *" cassandra "* ]]; then
    find_java || die "Java 17 is required to run Cassandra: install openjdk-17-jre-headless" \
      "(apt-get install openjdk-17-jre-headless) or point JAVA_HOME at a JDK 17+"
    command -v python3 >/dev/null || die "python3 is required to check Cassandra: install python3"
    cassandra_libs_current || command -v mvn >/dev/null ||
      die "Maven is required once to download the Cassandra jars: install maven (apt-get install maven)"
  fi
}

# Copies the broker's jars out of ~/.m2 into build/services/kafka/libs, downloading them with
# Maven on the very first run. Offline first (-o), so a warm ~/.m2 needs no network at all.
ensure_kafka_libs() {
  kafka_libs_current && return 0
  local tmp=$KAFKA_LIBS.tmp mvn_log=$KAFKA_DIR/mvn.log
  mkdir -p "$KAFKA_DIR"
  rm -rf "$tmp"
  local mvn=(mvn -B -q -f "$KAFKA_POM" dependency:copy-dependencies -DoutputDirectory="$tmp")
  if ! "${mvn[@]}" -o >"$mvn_log" 2>&1; then
    say "kafka: downloading the Kafka jars with Maven into ~/.m2 (first run only)"
    rm -rf "$tmp"
    "${mvn[@]}" >"$mvn_log" 2>&1 || {
      tail -n 30 "$mvn_log" >&2
      die "Maven could not fetch the Kafka jars (full output: $mvn_log)"
    }
  fi
  ls "$tmp"/kafka_2.13-*.jar >/dev/null 2>&1 || die "Maven ran but $tmp has no kafka_2.13 jar"
  sha256sum "$KAFKA_POM" | cut -d' ' -f1 >"$tmp/.pom.sha256"
  rm -rf "$KAFKA_LIBS"
  mv "$tmp" "$KAFKA_LIBS"
}

# ---------------------------------------------------------------------------------------------
# MariaDB

mariadb_cli() { mariadb --no-defaults --protocol=socket --socket="$MARIADB_SOCK" -uroot "$@"; }

write_mariadb_cnf() {
  # Regenerated each start so edits here take effect; --defaults-file keeps /etc/mysql out of it.
  cat >"$MARIADB_CNF" <<EOF
# Generated by scripts/services.sh; edit that script instead.
[mariadbd]
datadir=$MARIADB_DATA
socket=$MARIADB_SOCK
pid-file=$MARIADB_DIR/mariadbd.pid
log-error=$MARIADB_LOG
port=$MARIADB_PORT
bind-address=$HOST
# No DNS here: accounts are matched by address (root@127.0.0.1), and connects stay fast.
skip-name-resolve
character-set-server=utf8mb4
collation-server=utf8mb4_unicode_ci
innodb-buffer-pool-size=256M
max-connections=200
# Level 2 logs every aborted connection (port probes, killed test runs): too noisy here.
log-warnings=1
EOF
  # mariadbd refuses to run as root unless told to. As any other user it runs as that user, and
  # the data directory belongs to them, so the same script works with and without root.
  if [ "$(id -u)" = 0 ]; then echo "user=root" >>"$MARIADB_CNF"; fi
  if [ -n "$MARIADB_EXTRA_CNF" ]; then
    printf '# From SLUICE_MARIADB_EXTRA_CNF:\n%s\n' "$MARIADB_EXTRA_CNF" >>"$MARIADB_CNF"
  fi
}

# Our running mariadbd's pid, if any.
mariadb_pid() { server_pid mariadb "$MARIADB_PIDFILE" "$MARIADB_CNF" "$MARIADB_PORT"; }

mariadb_can_start() {
  mariadb_pid >/dev/null ||
    port_free "$MARIADB_PORT" "MariaDB" " (a system MariaDB or MySQL: 'sudo service mariadb stop')"
}

mariadb_start() {
  already_running mariadb "$MARIADB_PIDFILE" && return 0
  # A Unix socket path is limited to 107 bytes.
  [ ${#MARIADB_SOCK} -lt 100 ] ||
    die "socket path $MARIADB_SOCK is too long for a Unix socket;" \
      "set SLUICE_SERVICES_DIR to a shorter directory"
  mkdir -p "$MARIADB_DIR"
  write_mariadb_cnf
  if [ ! -d "$MARIADB_DATA/mysql" ]; then
    say "mariadb: initialising $MARIADB_DATA"
    rm -rf "$MARIADB_DATA"
    # normal: root@localhost without password, so the socket login below works for any OS user
    # (the default, unix_socket, would only let the OS root in).
    mariadb-install-db --defaults-file="$MARIADB_CNF" --auth-root-authentication-method=normal \
      --skip-test-db --skip-name-resolve >>"$MARIADB_LOG" 2>&1 ||
      {
        tail -n 30 "$MARIADB_LOG" >&2
        rm -rf "$MARIADB_DATA"
        die "mariadb-install-db failed (log: $MARIADB_LOG)"
      }
  fi
  launch "$MARIADB_LOG" "$MARIADBD" --defaults-file="$MARIADB_CNF"
  started mariadb "$MARIADB_PIDFILE"
}

# Waits until MariaDB answers, then makes sure of the accounts and database the tests use
# (idempotent, so it also repairs a data directory made by an older version of this script).
# Fails rather than exits, so that `up` still waits for Kafka; every step checks for itself.
mariadb_answers() { mariadb_cli --connect-timeout=2 -e 'SELECT 1' >/dev/null 2>&1; }

mariadb_wait() {
  local h
  wait_ready mariadb "$MARIADB_PIDFILE" "$MARIADB_CNF" "$MARIADB_LOG" "$MARIADB_TIMEOUT" 0.2 \
    "on $MARIADB_SOCK" mariadb_answers || return 1
  # With skip-name-resolve, TCP from 127.0.0.1 matches root@127.0.0.1, not root@localhost.
  mariadb_cli -e "
    CREATE USER IF NOT EXISTS 'root'@'127.0.0.1';
    GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
    CREATE DATABASE IF NOT EXISTS sluice;" || {
    echo "services: error: could not create the sluice database or root@127.0.0.1 (log: $MARIADB_LOG)" >&2
    return 1
  }
  # mariadb-install-db also adds root@<hostname>, which skip-name-resolve ignores with a warning
  # at every start.
  for h in $(mariadb_cli -N -e "SELECT host FROM mysql.user WHERE user = 'root'
               AND host NOT IN ('localhost', '127.0.0.1', '::1', '%')"); do
    mariadb_cli -e "DROP USER 'root'@'$h'" || true
  done
  if ! mariadb --no-defaults --connect-timeout=5 -h"$HOST" -P"$MARIADB_PORT" -uroot -e 'SELECT 1' \
    sluice >/dev/null; then
    echo "services: error: MariaDB runs, but 'mariadb -h$HOST -P$MARIADB_PORT -uroot sluice' fails" \
      "(log: $MARIADB_LOG)" >&2
    return 1
  fi
  say "mariadb: ready on $HOST:$MARIADB_PORT (root, no password, database sluice)"
}

# ---------------------------------------------------------------------------------------------
# Kafka

write_kafka_props() {
  cat >"$KAFKA_PROPS" <<EOF
# Generated by scripts/services.sh; edit that script instead.
# One process that is both KRaft controller and broker.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://$HOST:$KAFKA_PORT,CONTROLLER://$HOST:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$KAFKA_DATA

# Tests may produce to topics nobody created; they get 4 partitions.
auto.create.topics.enable=true
num.partitions=4
default.replication.factor=1
min.insync.replicas=1
delete.topic.enable=true

# A single node can only hold one replica of the internal topics. Fewer partitions than the
# default 50 make the first consumer group and the first transaction start much faster.
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
# Consumer groups form at once instead of after the default 3 s.
group.initial.rebalance.delay.ms=0
# After a kill -9 the restarted broker cannot register until its old session expires (default
# 9 s); the controller is in the same process, so a short session costs nothing.
broker.session.timeout.ms=4000
broker.heartbeat.interval.ms=1000

# Two cores: keep the thread pools small.
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
EOF
}

# Our running broker's pid, if any.
kafka_pid() { server_pid kafka "$KAFKA_PIDFILE" "$KAFKA_PROPS" "$KAFKA_PORT"; }

kafka_can_start() {
  kafka_pid >/dev/null && return 0
  port_free "$KAFKA_PORT" "Kafka" "" &&
    port_free "$KAFKA_CONTROLLER_PORT" "Kafka's KRaft controller" ""
}

kafka_start() {
  already_running kafka "$KAFKA_PIDFILE" && return 0
  ensure_kafka_libs
  # scripts/kafka-topics.sh runs the same java as the broker.
  ln -sfn "$JAVA" "$KAFKA_DIR/java"
  write_kafka_props
  rotate_log "$KAFKA_LOG"
  local tools_log4j=-Dlog4j.configuration=file:$ROOT/scripts/kafka/tools-log4j.properties
  if [ ! -f "$KAFKA_DATA/meta.properties" ]; then
    say "kafka: formatting $KAFKA_DATA (cluster id $KAFKA_CLUSTER_ID)"
    "$JAVA" -Xmx256m "$tools_log4j" -cp "$KAFKA_LIBS/*" kafka.tools.StorageTool format \
      -t "$KAFKA_CLUSTER_ID" -c "$KAFKA_PROPS" --ignore-formatted >>"$KAFKA_LOG" 2>&1 ||
      { tail -n 30 "$KAFKA_LOG" >&2; die "formatting the Kafka storage failed (log: $KAFKA_LOG)"; }
  fi
  # The GC settings of Kafka's own kafka-server-start.sh, with a smaller heap. IPv4 only, so the
  # listeners are plain 127.0.0.1 sockets rather than IPv6 ones bound to ::ffff:127.0.0.1.
  launch "$KAFKA_LOG" "$JAVA" -Xms256m -Xmx512m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent \
    -Djava.awt.headless=true -Djava.net.preferIPv4Stack=true \
    -Dlog4j.configuration="file:$ROOT/scripts/kafka/log4j.properties" -Dkafka.logs.dir="$KAFKA_DIR" \
    -cp "$KAFKA_LIBS/*" kafka.Kafka "$KAFKA_PROPS"
  started kafka "$KAFKA_PIDFILE"
}

# Ready means a client gets metadata naming our broker, the same first step the tests take.
kafka_ready() {
  local meta
  meta=$(kcat -b "$HOST:$KAFKA_PORT" -L -m 2 2>/dev/null) || return 1
  [[ $meta == *"broker 1 at $HOST:$KAFKA_PORT"* ]]
}

kafka_wait() {
  wait_ready kafka "$KAFKA_PIDFILE" "$KAFKA_PROPS" "$KAFKA_LOG" "$KAFKA_TIMEOUT" 0.5 \
    "on $HOST:$KAFKA_PORT" kafka_ready || return 1
  say "kafka: ready on $HOST:$KAFKA_PORT (controller $HOST:$KAFKA_CONTROLLER_PORT)"
}

# ---------------------------------------------------------------------------------------------
# Cassandra

# Copies the node's jars out of ~/.m2 into build/services/cassandra/libs, as for Kafka.
ensure_cassandra_libs() {
  cassandra_libs_current && return 0
  local tmp=$CASSANDRA_LIBS.tmp mvn_log=$CASSANDRA_DIR/mvn.log
  mkdir -p "$CASSANDRA_DIR"
  rm -rf "$tmp"
  local mvn=(mvn -B -q -f "$CASSANDRA_POM" dependency:copy-dependencies -DoutputDirectory="$tmp")
  if ! "${mvn[@]}" -o >"$mvn_log" 2>&1; then
    say "cassandra: downloading the Cassandra jars with Maven into ~/.m2 (first run only)"
    rm -rf "$tmp"
    "${mvn[@]}" >"$mvn_log" 2>&1 || {
      tail -n 30 "$mvn_log" >&2
      die "Maven could not fetch the Cassandra jars (full output: $mvn_log)"
    }
  fi
  ls "$tmp"/cassandra-all-*.jar >/dev/null 2>&1 || die "Maven ran but $tmp has no cassandra-all jar"
  sha256sum "$CASSANDRA_POM" | cut -d' ' -f1 >"$tmp/.pom.sha256"
  rm -rf "$CASSANDRA_LIBS"
  mv "$tmp" "$CASSANDRA_LIBS"
}

write_cassandra_yaml() {
  # Everything not set here keeps Cassandra 5.0's default (see conf/cassandra.yaml upstream).
  cat >"$CASSANDRA_YAML" <<YAML
# Generated by scripts/services.sh; edit that script instead.
cluster_name: sluice-local
# One node owning the whole ring through one fixed token: no token allocation, no random pick.
num_tokens: 1
initial_token: 0
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "$HOST:$CASSANDRA_STORAGE_PORT"
endpoint_snitch: SimpleSnitch

listen_address: $HOST
storage_port: $CASSANDRA_STORAGE_PORT
rpc_address: $HOST
start_native_transport: true
native_transport_port: $CASSANDRA_PORT
# No JMX: services.sh sets no cassandra.jmx.*.port property, so nothing listens for it.

data_file_directories:
  - $CASSANDRA_DIR/data
commitlog_directory: $CASSANDRA_DIR/commitlog
saved_caches_directory: $CASSANDRA_DIR/saved_caches
hints_directory: $CASSANDRA_DIR/hints
cdc_raw_directory: $CASSANDRA_DIR/cdc_raw
commitlog_sync: periodic
commitlog_sync_period: 10000ms

# A fresh single node: the newest storage format, no upgrade path to keep.
storage_compatibility_mode: NONE
authenticator: AllowAllAuthenticator
authorizer: AllowAllAuthorizer
# Tests drop and truncate tables all the time; a snapshot each time only fills the disk.
auto_snapshot: false
# Two cores shared with everything else.
concurrent_compactors: 1
concurrent_reads: 8
concurrent_writes: 8
concurrent_counter_writes: 8
YAML
}

# Our running node's pid, if any (the marker is the yaml path on its command line).
cassandra_pid() { server_pid cassandra "$CASSANDRA_PIDFILE" "$CASSANDRA_YAML" "$CASSANDRA_PORT"; }

cassandra_can_start() {
  cassandra_pid >/dev/null && return 0
  port_free "$CASSANDRA_PORT" "Cassandra" " (a system Cassandra: 'sudo service cassandra stop')" &&
    port_free "$CASSANDRA_STORAGE_PORT" "Cassandra's storage (gossip) port" ""
}

cassandra_start() {
  already_running cassandra "$CASSANDRA_PIDFILE" && return 0
  ensure_cassandra_libs
  mkdir -p "$CASSANDRA_DIR"
  write_cassandra_yaml
  rotate_log "$CASSANDRA_LOG"
  # One option per line; "--add-opens X" is two arguments to java.
  local jvm_opts=() words
  while read -r -a words; do
    jvm_opts+=("${words[@]}")
  done < <(sed -e 's/#.*//' "$ROOT/scripts/cassandra/jvm17-server.options")
  [ -d "$CASSANDRA_DIR/data/system" ] || say "cassandra: first start, creating $CASSANDRA_DIR/data"
  # Small heap; G1 as upstream. ExitOnOutOfMemoryError: a node that ran out of memory must not
  # keep serving. Startup shortcuts for a single node that has no peers to wait for: no gossip
  # settling, a short ring delay. IPv4 only, like Kafka.
  launch "$CASSANDRA_LOG" "$JAVA" -Xms512m -Xmx1g -XX:+UseG1GC -XX:+ParallelRefProcEnabled \
    -XX:MaxGCPauseMillis=300 -XX:+ExitOnOutOfMemoryError -Xss512k \
    "${jvm_opts[@]}" \
    -Djava.awt.headless=true -Djava.net.preferIPv4Stack=true \
    -Dcassandra.config="file://$CASSANDRA_YAML" -Dcassandra-foreground=yes \
    -Dcassandra.storagedir="$CASSANDRA_DIR" -Dcassandra.logdir="$CASSANDRA_DIR" \
    -Dlogback.configurationFile="$ROOT/scripts/cassandra/logback.xml" \
    -Dcassandra.skip_wait_for_gossip_to_settle=0 -Dcassandra.ring_delay_ms=1000 \
    -cp "$CASSANDRA_LIBS/*" org.apache.cassandra.service.CassandraDaemon
  started cassandra "$CASSANDRA_PIDFILE"
}

# Ready means the node answers a CQL OPTIONS request with SUPPORTED, as a driver's first step.
cassandra_ready() { python3 "$ROOT/scripts/cassandra/cql_ping.py" "$HOST" "$CASSANDRA_PORT"; }

cassandra_wait() {
  wait_ready cassandra "$CASSANDRA_PIDFILE" "$CASSANDRA_YAML" "$CASSANDRA_LOG" \
    "$CASSANDRA_TIMEOUT" 0.5 "CQL on $HOST:$CASSANDRA_PORT" cassandra_ready || return 1
  say "cassandra: ready on $HOST:$CASSANDRA_PORT (CQL, no authentication; storage port $CASSANDRA_STORAGE_PORT)"
}

# ---------------------------------------------------------------------------------------------
# Schema registry

registry_pid() { server_pid registry "$REGISTRY_PIDFILE" "$REGISTRY_STATE" "$REGISTRY_PORT"; }

registry_can_start() {
  registry_pid >/dev/null || port_free "$REGISTRY_PORT" "The schema registry" ""
}

registry_start() {
  already_running registry "$REGISTRY_PIDFILE" && return 0
  mkdir -p "$REGISTRY_DIR"
  [ -s "$REGISTRY_STATE" ] || echo '{"schemas": {}, "subjects": {}}' >"$REGISTRY_STATE"
  launch "$REGISTRY_LOG" python3 "$ROOT/tests/tools/schema_registry.py" --host "$HOST" \
    --port "$REGISTRY_PORT" --state "$REGISTRY_STATE"
  started registry "$REGISTRY_PIDFILE"
}

registry_wait() {
  wait_ready registry "$REGISTRY_PIDFILE" "$REGISTRY_STATE" "$REGISTRY_LOG" "$REGISTRY_TIMEOUT" 0.2 \
    "on $HOST:$REGISTRY_PORT" port_open "$REGISTRY_PORT" || return 1
  say "registry: ready on http://$HOST:$REGISTRY_PORT (Confluent REST subset, state ${REGISTRY_STATE#"$ROOT"/})"
}

# ---------------------------------------------------------------------------------------------

status_line() {
  local name=$1 pidfile=$2 marker=$3 port=$4 where=$5 pid
  if pid=$(running_pid "$pidfile" "$marker"); then
    if port_open "$port"; then
      printf '%-9s running  pid %-7s %s:%s  %s\n' "$name" "$pid" "$HOST" "$port" "$where"
    else
      printf '%-9s starting pid %-7s %s:%s not answering yet  %s\n' "$name" "$pid" "$HOST" "$port" "$where"
    fi
    return 0
  fi
  if port_open "$port"; then
    printf '%-9s stopped  (port %s is used by another process: %s)\n' "$name" "$port" "$(port_owner "$port")"
  else
    printf '%-9s stopped\n' "$name"
  fi
  return 1
}

status() {
  local rc=0
  status_line mariadb "$MARIADB_PIDFILE" "$MARIADB_CNF" "$MARIADB_PORT" \
    "data ${MARIADB_DATA#"$ROOT"/}, log ${MARIADB_LOG#"$ROOT"/}" || rc=3
  status_line kafka "$KAFKA_PIDFILE" "$KAFKA_PROPS" "$KAFKA_PORT" \
    "data ${KAFKA_DATA#"$ROOT"/}, log ${KAFKA_LOG#"$ROOT"/}" || rc=3
  status_line cassandra "$CASSANDRA_PIDFILE" "$CASSANDRA_YAML" "$CASSANDRA_PORT" \
    "data ${CASSANDRA_DIR#"$ROOT"/}/data, log ${CASSANDRA_LOG#"$ROOT"/}" || rc=3
  status_line registry "$REGISTRY_PIDFILE" "$REGISTRY_STATE" "$REGISTRY_PORT" \
    "state ${REGISTRY_STATE#"$ROOT"/}, log ${REGISTRY_LOG#"$ROOT"/}" || rc=3
  return $rc
}

# One `up` or `down` at a time (e.g. two `make test` started together).
take_lock() {
  mkdir -p "$SVC_DIR"
  exec 9>"$SVC_DIR/.lock"
  if command -v flock >/dev/null; then
    flock -w 300 9 || die "another scripts/services.sh is still running (lock $SVC_DIR/.lock)"
  fi
}

# $@: the servers to act on (mariadb, kafka, cassandra). One that cannot start (port taken, crash)
# does not keep the others from starting, but `up` fails at the end.
up() {
  local start=$SECONDS s startable=() failed=()
  take_lock
  ensure_tools "$@"
  for s in "$@"; do
    if "${s}_can_start"; then startable+=("$s"); else failed+=("$s"); fi
  done
  # All are launched first and waited for afterwards, so they start side by side.
  for s in "${startable[@]}"; do "${s}_start"; done
  for s in "${startable[@]}"; do "${s}_wait" || failed+=("$s"); done
  [ ${#failed[@]} -eq 0 ] || die "not running: ${failed[*]} (reasons above)"
  say "up in $((SECONDS - start))s"
}

down() {
  take_lock
  # Cassandra flushes its memtables on SIGTERM (a few seconds); the commit log would replay them
  # anyway, but a clean stop makes the next start faster.
  if [[ " $* " == *" cassandra "* ]]; then
    stop_server cassandra "$CASSANDRA_PIDFILE" "$CASSANDRA_YAML" 60
  fi
  if [[ " $* " == *" kafka "* ]]; then stop_server kafka "$KAFKA_PIDFILE" "$KAFKA_PROPS" 60; fi
  if [[ " $* " == *" mariadb "* ]]; then stop_server mariadb "$MARIADB_PIDFILE" "$MARIADB_CNF" 60; fi
  if [[ " $* " == *" registry "* ]]; then
    stop_server registry "$REGISTRY_PIDFILE" "$REGISTRY_STATE" 10
  fi
}

command=${1:-}
if [ $# -gt 0 ]; then shift; fi
servers=("$@")
[ ${#servers[@]} -gt 0 ] || servers=(mariadb kafka cassandra registry)
for s in "${servers[@]}"; do
  [[ $s == mariadb || $s == kafka || $s == cassandra || $s == registry ]] ||
    { echo "services: unknown server '$s' (mariadb, kafka, cassandra, registry)" >&2; exit 2; }
done

case "$command" in
  up) up "${servers[@]}" ;;
  down) down "${servers[@]}" ;;
  restart) down "${servers[@]}" && up "${servers[@]}" ;;
  status) status ;;
  jars)
    take_lock
    ensure_tools kafka
    ensure_kafka_libs
    ln -sfn "$JAVA" "$KAFKA_DIR/java"
    ;;
  *)
    echo "usage: $0 up|down|restart [mariadb|kafka|cassandra|registry]... | status | jars" >&2
    exit 2
    ;;
esac
