# sluice: the two commands are `make demo` and `make test`; both install what they need.
BUILD_DIR ?= build
ASAN_DIR ?= build-asan
TSAN_DIR ?= build-tsan
FUZZ_DIR ?= build-fuzz
FUZZ_SECONDS ?= 60
BUILD_TYPE ?= RelWithDebInfo
JOBS ?= $(shell nproc)
CTEST_ARGS ?=

.PHONY: all deps build demo test test-unit asan tsan fuzz clean help docs

all: build

help:
	@echo "make demo      build and run the recruitment pipeline on generated data (no servers)"
	@echo "make test      build and run the whole test suite"
	@echo "make build     build build/sluice"
	@echo "make asan      build with AddressSanitizer/UBSan and run the suite"
	@echo "make tsan      build with ThreadSanitizer and run the threaded tests (tests/tsan/tsan.supp)"
	@echo "make fuzz      build the libFuzzer targets with clang and fuzz each for FUZZ_SECONDS (60)"
	@echo "make services  start MariaDB, Kafka, Cassandra and a schema registry on 127.0.0.1 (data under build/services)"
	@echo "make services-down  stop them"
	@echo "make differential  the long differential test (20 kills per pipeline; see tests/cmake/differential.cmake)"
	@echo "make scale-out-soak  the scale-out test with 480,000 records and a SCALE_OUT_STORM (600) s rebalance storm"
	@echo "make bench     benchmarks (BENCH_QUICK=1 for a short run); see BENCHMARKS.md"
	@echo "make bench-spark / bench-flink / bench-compare  sluice beside Spark, Flink, or both (BENCHMARKS.md)"
	@echo "make bench-scaling  cost per event and per group from 1M to 100M events, 1k to 10M groups (SCALING=full)"
	@echo "make sigterm-long  SIGTERM at random moments to every example pipeline (SIGTERM_ROUNDS=10)"
	@echo "make soak      Kafka -> MariaDB under kills, restarts, a full disk and poison records for SOAK_MINUTES (60); see RELIABILITY.md"
	@echo "make docs      regenerate docs/connectors.md from the connectors' option tables"
	@echo "make clean     remove build trees"
	@echo "make install   install into PREFIX (default /usr/local; DESTDIR honoured), see README"
	@echo "make package   build/sluice-*.tar.gz and build/sluice_*.deb (CPack)"

deps:
	@scripts/install-deps.sh
	@scripts/venv.sh

$(BUILD_DIR)/build.ninja: CMakeLists.txt | deps
	cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE)

build: deps $(BUILD_DIR)/build.ninja
	cmake --build $(BUILD_DIR) -j $(JOBS)

demo: build
	$(BUILD_DIR)/sluice demo --dir $(BUILD_DIR)/demo

test: build services
	cd $(BUILD_DIR) && ctest --output-on-failure -j 2 $(CTEST_ARGS)

test-unit: build
	$(BUILD_DIR)/sluice_tests

docs: build
	$(BUILD_DIR)/sluice connectors -o docs/connectors.md

asan: deps services
	cmake -S . -B $(ASAN_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DSLUICE_SANITIZE=ON
	cmake --build $(ASAN_DIR) -j $(JOBS)
	cd $(ASAN_DIR) && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --output-on-failure -j 2 $(CTEST_ARGS)

# ThreadSanitizer: the tests that run threads (workers, the checkpoint coordinator and its committer, holds and
# dimension refresh, the HTTP server (slow clients too) and source, bounded shutdown, waiting for
# the sink on an assignment; TSAN_GTEST), the Python tests that drive the
# binary with them (TSAN_CTEST), and Kafka scale-out: two processes in one group, rebalancing
# (scenario 3 of kafka_recruitment, smaller). A Debug build, as measured;
# restart_recruitment and viewlog are left out: their run bounds (60 s, 90 s) are too tight
# under TSan at -O0 (they time out, with no report).
# tests/tsan/tsan.supp says why each suppression is there.
TSAN_GTEST ?= RunnerTest.*:PipelinedCommitTest.*:WindowRunTest.*:HoldTest.*:CsvDimensionRefreshTest.*:DimensionTableTest.*:HttpServerTest.*:GuardedServerTest.*:HttpSourceLive.*:HttpSourceMetrics.*:FakeApi.*:DeadLetterFileTest.*:ShutdownTest.*:AssignmentTest.*
TSAN_CTEST ?= ^(golden_recruitment|cli|http_source|http_endpoints)$$
TSAN_ENV = TSAN_OPTIONS="suppressions=$(CURDIR)/tests/tsan/tsan.supp halt_on_error=1 second_deadlock_stack=1 history_size=4"
tsan: deps services
	cmake -S . -B $(TSAN_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DSLUICE_TSAN=ON
	cmake --build $(TSAN_DIR) -j $(JOBS) --target sluice sluice_tests
	$(TSAN_ENV) $(TSAN_DIR)/sluice_tests --gtest_filter='$(TSAN_GTEST)'
	cd $(TSAN_DIR) && $(TSAN_ENV) ctest --output-on-failure -R '$(TSAN_CTEST)' $(CTEST_ARGS)
	$(TSAN_ENV) .venv/bin/python tests/integration/kafka_recruitment_test.py --sluice $(TSAN_DIR)/sluice \
	  --sink sqlite --only 1,3 --gen-count 20000 --scale-count 50000 --run-timeout 300

# libFuzzer targets (tests/fuzz/README.md), built with clang in $(FUZZ_DIR): each fuzzed for
# FUZZ_SECONDS; the corpus it grows is kept in $(FUZZ_DIR)/corpus, crashes in $(FUZZ_DIR)/artifacts.
fuzz: deps
	tests/fuzz/run.sh --build-dir $(FUZZ_DIR) --seconds $(FUZZ_SECONDS)

clean:
	rm -rf $(BUILD_DIR) $(ASAN_DIR) $(TSAN_DIR) $(FUZZ_DIR)

# Install (README "Install"): the stripped binary with its debug file, the Arrow/Parquet
# libraries beside it, examples, deploy/ and the bash completion; cmake/install.cmake.
.PHONY: install package
PREFIX ?= /usr/local
install: build
	cmake --install $(BUILD_DIR) --prefix $(PREFIX)

package: build
	cd $(BUILD_DIR) && cpack

# Local MariaDB (127.0.0.1:3306), Kafka (127.0.0.1:9092) and Cassandra (127.0.0.1:9042) for the connector tests; see scripts/README.md.
.PHONY: services services-down
services:
	@scripts/services.sh up

services-down:
	@scripts/services.sh down

# The differential test at full length (tests/integration/differential_test.py): every example
# pipeline with a file source through one run, 20 kill -9 + restarts, a replaced input file and
# 1/2/4 workers, all equal. The suite's `ctest -R differential` runs a short version.
.PHONY: differential
differential: build services
	cd $(BUILD_DIR) && SLUICE_DIFFERENTIAL_FULL=1 ctest -R '^differential$$' --output-on-failure

# The scale-out test at soak length (tests/integration/scale_out_test.py): 480,000 records and a
# rebalance storm of SCALE_OUT_STORM seconds. The suite's `ctest -R scale_out` takes ~3.5 minutes.
SCALE_OUT_STORM ?= 600
.PHONY: scale-out-soak
scale-out-soak: build services
	python3 tests/integration/scale_out_test.py --sluice $(BUILD_DIR)/sluice --per-partition 60000 \
	  --storm-seconds $(SCALE_OUT_STORM) --run-timeout 900

# Benchmarks (bench/README.md, BENCHMARKS.md): an optimised build in $(BENCH_BUILD_DIR), then the
# end-to-end runs and micro-benchmarks; results in bench/results/. BENCH_QUICK=1: about a minute.
BENCH_BUILD_DIR ?= build-bench
.PHONY: bench
bench: deps
	@scripts/services.sh up || echo "make bench: Kafka/MariaDB not started; the runs that need them are skipped"
	cmake -S . -B $(BENCH_BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build $(BENCH_BUILD_DIR) -j $(JOBS) --target sluice sluice_bench_micro sluice_bench_fresh sluice_bench_limits
	.venv/bin/python bench/run.py --build-dir $(BENCH_BUILD_DIR)

# How cost grows (bench/scaling.py, BENCHMARKS.md): generated keyed events into SQLite, each
# input in a temporary directory deleted after its run. SCALING=default: 1M and 10M events at
# 100k groups, 1k..1M groups at 10M events (~5 min loaded); SCALING=full adds 100M events (about 6 GB
# of input on disk for one run) and 10M groups; SCALING=smoke: 100k events (the ctest case).
SCALING ?= default
.PHONY: bench-scaling
bench-scaling: deps
	cmake -S . -B $(BENCH_BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build $(BENCH_BUILD_DIR) -j $(JOBS) --target sluice
	.venv/bin/python bench/scaling.py --matrix $(SCALING) --sluice $(BENCH_BUILD_DIR)/sluice

# sluice and Spark Structured Streaming side by side on the recruitment job (bench/spark/,
# BENCHMARKS.md): the build of `make bench`, a pinned pyspark with its Kafka and JDBC jars, then
# both engines on the same Kafka topics into MariaDB. BENCH_QUICK=1: a shorter run (~10 min).
.PHONY: bench-spark
bench-spark: deps services
	cmake -S . -B $(BENCH_BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build $(BENCH_BUILD_DIR) -j $(JOBS) --target sluice sluice_bench_fresh
	bench/spark/setup.sh
	.venv/bin/python bench/spark/run_bench.py --build-dir $(BENCH_BUILD_DIR)

# sluice and Flink SQL side by side on the same job (bench/flink/, BENCHMARKS.md): the same
# harness as bench-spark with Flink as the other engine (PyFlink 1.20 in build/bench-flink/venv,
# its Kafka and JDBC connector jars through Maven). bench-compare: sluice, Spark and Flink in one
# run on one machine. BENCH_QUICK=1: shorter runs. BENCH_ARGS: more run_bench.py options.
BENCH_ARGS ?=
.PHONY: bench-flink bench-compare
bench-flink: deps services
	cmake -S . -B $(BENCH_BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build $(BENCH_BUILD_DIR) -j $(JOBS) --target sluice sluice_bench_fresh
	bench/flink/setup.sh
	.venv/bin/python bench/spark/run_bench.py --build-dir $(BENCH_BUILD_DIR) --engines sluice,flink $(BENCH_ARGS)

bench-compare: deps services
	cmake -S . -B $(BENCH_BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build $(BENCH_BUILD_DIR) -j $(JOBS) --target sluice sluice_bench_fresh
	bench/spark/setup.sh
	bench/flink/setup.sh
	.venv/bin/python bench/spark/run_bench.py --build-dir $(BENCH_BUILD_DIR) --engines sluice,spark,flink $(BENCH_ARGS)

# SIGTERM at random moments to every example pipeline on every source (tests/integration/
# sigterm_test.py), SIGTERM_ROUNDS signals per case instead of the suite's one.
SIGTERM_ROUNDS ?= 10
.PHONY: sigterm-long
sigterm-long: build
	python3 tests/integration/sigterm_test.py --sluice $(BUILD_DIR)/sluice --rounds $(SIGTERM_ROUNDS)

# The soak test (tests/integration/soak_test.py, RELIABILITY.md): the recruitment pipeline Kafka
# -> MariaDB with two processes in one group, while a driver kills -9 them, restarts the broker
# and MariaDB, fills and frees the sink's disk and publishes bursts and poison records, for
# SOAK_MINUTES; then the table must equal the recomputation and every poison record be in the
# dead letters. Its own servers on free ports (never those of `make services`); the suite's
# `ctest -R soak` is a 1.5-minute version with every kind of fault (RELIABILITY.md).
# Summary in $(BUILD_DIR)/soak-long/summary.json.
SOAK_MINUTES ?= 60
.PHONY: soak
soak: build
	python3 tests/integration/soak_test.py --sluice $(BUILD_DIR)/sluice --minutes $(SOAK_MINUTES) \
	  --workdir $(BUILD_DIR)/soak-long
