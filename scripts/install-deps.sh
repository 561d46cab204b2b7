#!/usr/bin/env bash
# Installs the Debian packages sluice builds and tests with, when any is missing.
# Uses sudo when not root. Safe to run repeatedly: it does nothing when all are present.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config python3
  libsimdjson-dev libtomlplusplus-dev libcli11-dev libspdlog-dev libfmt-dev
  libsqlite3-dev sqlite3 libcpp-httplib-dev libgtest-dev libgmock-dev libbenchmark-dev
  librdkafka-dev libmariadb-dev
  libavro-dev  # Kafka source format = "avro": Apache Avro C decodes the records
  libprotobuf-dev libprotoc-dev  # Kafka source format = "protobuf": .proto parser, dynamic messages
  libssl-dev openssl  # https: linked ahead of the pyarrow libraries; the tests make a certificate
  prometheus chromium  # HTTP tests: promtool and a Prometheus server; headless Chromium
  python3-yaml  # deploy tests: Grafana provisioning files
  kcat  # Kafka tests: an independent producer and read_committed reader
  libpg-query-dev  # SQL pipelines (.sql): the PostgreSQL 15 parser as a library
  clang libclang-rt-dev  # `make fuzz` and the fuzz_regression test: clang's libFuzzer and sanitizers
)
if [ "${SLUICE_EXTRA_PACKAGES:-}" != "" ]; then
  # shellcheck disable=SC2206
  packages+=(${SLUICE_EXTRA_PACKAGES})
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null; then
  echo "install-deps: apt-get not found; install these packages by hand: ${missing[*]}" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
  if command -v sudo >/dev/null; then SUDO="sudo"; else
    echo "install-deps: not root and no sudo; install: ${missing[*]}" >&2
    exit 1
  fi
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
