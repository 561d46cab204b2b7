#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz with clang and runs each of them on its seed corpus
# (tests/fuzz/corpus/<target>/). See tests/fuzz/README.md.
#   run.sh --seconds N   fuzz each target for N seconds (`make fuzz FUZZ_SECONDS=N`); what it
#                        learns is kept in BUILD_DIR/corpus/<target>/ for the next run
#   run.sh --runs N      the corpus, then N mutations with a fixed seed (the fuzz_regression
#                        test of `make test`): every crash ever found stays fixed
# Options: --build-dir DIR (default build-fuzz), --targets "decoder expr ..." (default: all).
# A crash, leak or UBSan report fails the run; the input is saved under BUILD_DIR/artifacts/.
# Without clang: exit 77 (a ctest skip), or 1 when CI=true.
set -uo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
build_dir="$root/build-fuzz"
seconds=""
runs=""
targets="decoder columnar_json columnar_csv pipeline_config expr cql http_body kafka_cdc avro protobuf sql repartition"
while [ $# -gt 0 ]; do
  case "$1" in
    --build-dir) build_dir="$2"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    --targets) targets="$2"; shift 2 ;;
    *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
if [ -z "$seconds" ] && [ -z "$runs" ]; then seconds=60; fi

clangxx=""
for c in clang++ clang++-14; do
  if command -v "$c" >/dev/null; then clangxx="$(command -v "$c")"; break; fi
done
probe='extern "C" int LLVMFuzzerTestOneInput(const char*, unsigned long) { return 0; }'
if [ -z "$clangxx" ] || ! echo "$probe" | "$clangxx" -x c++ -fsanitize=fuzzer,address,undefined -o /dev/null - 2>/dev/null; then
  msg="fuzz: clang++ with libFuzzer not found (Debian: clang and libclang-rt-dev; scripts/install-deps.sh)"
  # The CI rule of tests/tools/harness.py: CI=true, 1 or yes (any case) makes it a failure.
  case "$(echo "${CI:-}" | tr '[:upper:]' '[:lower:]')" in
    1 | true | yes) echo "$msg" >&2; exit 1 ;;
  esac
  echo "SKIP: $msg" >&2
  exit 77
fi

start=$(date +%s)
if [ ! -f "$build_dir/build.ninja" ]; then
  cmake -S "$root/tests/fuzz" -B "$build_dir" -G Ninja -DCMAKE_CXX_COMPILER="$clangxx" >/dev/null || exit 1
fi
cmake --build "$build_dir" || exit 1
echo "fuzz: built in $(( $(date +%s) - start )) s ($build_dir)"

# The Debian toolchain's symbolizer, so that reports name files and lines.
for s in llvm-symbolizer llvm-symbolizer-14 /usr/lib/llvm-14/bin/llvm-symbolizer; do
  if command -v "$s" >/dev/null; then export ASAN_SYMBOLIZER_PATH="$(command -v "$s")"; break; fi
done
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

failed=0
printf '%-16s %12s %8s %8s  %s\n' target executions seconds corpus result
for t in $targets; do
  bin="$build_dir/${t}_fuzz"
  seeds="$root/tests/fuzz/corpus/$t"
  artifacts="$build_dir/artifacts/$t/"
  log="$build_dir/logs/$t.log"
  mkdir -p "$artifacts" "$(dirname "$log")"
  if [ -n "$runs" ]; then
    # New inputs go to a scratch folder, never into the source tree.
    work="$(mktemp -d)"
    args=(-runs="$runs" -seed=1)
  else
    work="$build_dir/corpus/$t"
    mkdir -p "$work"
    args=(-max_total_time="$seconds")
  fi
  # The shipped example pipelines seed the SQL target too (copied, not kept twice in the tree).
  if [ "$t" = sql ]; then cp "$root"/examples/*.sql "$work"/; fi
  t0=$(date +%s)
  "$bin" "${args[@]}" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=256 -max_len=65536 -print_final_stats=1 \
    -artifact_prefix="$artifacts" "$work" "$seeds" >"$log" 2>&1
  rc=$?
  elapsed=$(( $(date +%s) - t0 ))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  corpus=$(find "$work" "$seeds" -type f | wc -l)
  if [ -n "$runs" ]; then rm -rf "$work"; fi
  if [ $rc -eq 0 ]; then
    result=ok
  else
    result="FAILED (exit $rc): $(grep -m1 -E 'ERROR|runtime error|SUMMARY' "$log"); see $log and $artifacts"
    failed=1
  fi
  printf '%-16s %12s %8s %8s  %s\n' "$t" "${execs:-?}" "$elapsed" "$corpus" "$result"
done
echo "fuzz: done in $(( $(date +%s) - start )) s"
exit $failed
