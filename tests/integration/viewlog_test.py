#!/usr/bin/env python3
"""End-to-end test of the viewlog pipeline (examples/viewlog.toml): view logs -> 1-minute
event-time windows with a watermark -> Parquet, read back with pyarrow, against the independent
recomputation (tests/tools/recompute_viewlog.py).

    viewlog_test.py --sluice build/sluice [--only golden,seed,generated,kill,kafka]
                    [--seed N] [--count 6000] [--kill-count 100000] [--kills 6]
                    [--kafka-count 60000] [--kafka-kills 4] [--keep]

Scenarios (each runs `sluice run examples/viewlog.toml --var VIEWS=... --var CAMPAIGNS=...
--var OUT=parquet:DIR`, on a fresh DIR; dead letters in DIR/_sluice/dead_letters/):
  golden     every tests/golden/viewlog/<case>: input.ndjson with campaigns.csv; the rows equal
             the hand-worked expected.csv and the dead letters expected_dead_letters.txt.
  seed       the seed sample_view_logs.json with sample_compaign.csv (other column order): rows
             equal the recomputation (two windows); with campaigns1.csv (no campaigns 1 and 2)
             no rows at all and every record dead-lettered.
  generated  `sluice generate --profile viewlog` (--count records, 100 ms apart, out-of-order,
             late and invalid shares) to an NDJSON file; one run == the recomputation.
  kill       a bigger generated file (--kill-count); runs are killed with SIGKILL at random
             moments (seeded RNG) and restarted until one exits 0, in cycles on fresh outputs
             with checkpoint_interval 100ms / 1s / 25ms (copies of the example with that line
             changed) until --kills kills landed mid-run; every cycle's output == the
             recomputation: each window exactly once (no file or row twice), dead letters equal.
  kafka      a single-partition topic (scripts/kafka-topics.sh) on the broker of `make services`
             (127.0.0.1:9092): one generated file published with kcat, then more records by
             `sluice generate --to kafka://...` (checked against the same command --to a file);
             sluice runs as a service through a throttled consumer and is killed with SIGKILL
             --kafka-kills times mid-run, then a last --until-caught-up run exits 0. Output ==
             the recomputation with --open-at-end (windows the final watermark has not closed
             stay in sluice's state); dead letters equal. A second --until-caught-up run changes
             nothing.

Comparison: Parquet files are read with pyarrow.dataset (hive partitioning: network_id and
minute_timestamp come from the directory names); each window key (network_id, minute_timestamp,
campaign_id) must appear once, window_start/window_end/total_count equal, avg_duration within
1e-9 relative. Dead-letter files are parsed line by line as JSON; the counts per reason ('decode:
...' counted as one reason) and the payload multisets must equal the recomputation's.

Skips: pyarrow missing (run it with the project venv, `make deps`), the seed data missing, or no
Kafka broker: a loud SKIP, but a FAIL when CI=true (or 1, yes). Exit 77 when everything asked for was
skipped, 1 on any failure.
"""

import argparse
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "tools"))
import dead_letters  # noqa: E402
import harness  # noqa: E402
import recompute_viewlog as rv  # noqa: E402
from harness import BROKER, run  # noqa: E402
from kafka_util import (delete_topics, ensure_kcat, kafka_ready, topic_payloads,  # noqa: E402
                        topics_tool)
import viewlog_output  # noqa: E402
from viewlog_output import compare_output, read_parquet_output  # noqa: E402,F401  (bench/run.py)

PIPELINE = os.path.join(REPO, "examples", "viewlog.toml")
CAMPAIGNS = os.path.join(REPO, "examples", "data", "campaigns1.csv")
GOLDEN = os.path.join(REPO, "tests", "golden", "viewlog")
SEED = os.path.normpath(os.path.join(REPO, "..", "shared", "seed-data",
                                     "HassanAli-star__big_data_pipeline"))
ASSIGNED = re.compile(r"assigned \S+\[\d+\]")
SCENARIOS = ["golden", "seed", "generated", "kill", "kafka"]
START = "2026-01-01T00:00:00Z"


# ------------------------------------------------------------------------------ reading output


def pipeline_copy(path, interval=None, source_lines=()):
    return viewlog_output.pipeline_copy(path, interval, source_lines, PIPELINE)


def count_lines(path):
    with open(path, "rb") as f:
        return sum(1 for ln in f if ln.strip())


# ------------------------------------------------------------------------------ Kafka


def end_offset(topic):
    rc, out = run(["kcat", "-b", BROKER, "-Q", "-t", f"{topic}:0:-1"], timeout=30)
    m = re.search(r"\[0\] offset (-?\d+)", out)
    if rc != 0 or not m:
        raise RuntimeError(f"kcat -Q {topic} failed (rc {rc}): {out[-800:]}")
    return int(m.group(1))


# ------------------------------------------------------------------------------ test

class Test(harness.SluiceTest):
    def __init__(self, args, tmp):
        harness.SluiceTest.__init__(self, args, tmp)
        self.rng = random.Random(args.seed)

    def start(self, variables, label, pipeline=None, extra=()):
        return self.start_run(pipeline or PIPELINE, variables, label, extra)

    def finish_run(self, p, timeout):
        """Waits for a run; returns its exit code (None: timed out and killed)."""
        try:
            rc = p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            rc = None
        p.log.close()
        return rc

    def clean_run(self, variables, label, pipeline=None, extra=()):
        t = time.monotonic()
        p = self.start(variables, label, pipeline, extra)
        rc = self.finish_run(p, self.args.run_timeout)
        return rc, time.monotonic() - t, p

    def outputs(self, name):
        d = os.path.join(self.tmp, name)
        os.makedirs(d, exist_ok=True)
        # Dead letters live with the results, in the sink's own folder readers skip.
        return os.path.join(d, "out"), os.path.join(d, "out", "_sluice", "dead_letters")

    def generate(self, name, count, seed, start=START, to=None):
        """sluice generate --profile viewlog to a file (and the same to `to` when given)."""
        out = os.path.join(self.tmp, name)
        common = ["generate", "--profile", "viewlog", "--count", str(count), "--rate", "0",
                  "--seed", str(seed), "--start", start, "--set", "spacing=100ms",
                  "--set", f"out_of_order={self.args.out_of_order}",
                  "--set", f"late={self.args.late}", "--set", f"invalid={self.args.invalid}"]
        for dest in [out] + ([to] if to else []):
            rc, text = run([self.args.sluice] + common + ["--to", dest], timeout=180)
            if rc != 0:
                raise RuntimeError(f"sluice generate --to {dest} exited {rc}: {text[-800:]}")
        n = count_lines(out)
        if n != count:
            raise RuntimeError(f"sluice generate wrote {n} records to {out}, asked for {count}")
        return out

    def describe(self, what, res):
        self.say(f"recompute {what}: read {res['read']}, aggregated {res['aggregated']}, late "
                 f"{res['late']}, dead letters {len(res['dead_letters'])}, rows {len(res['rows'])}"
                 + (f", open windows {res['open_windows']}" if res["open_windows"] else ""))

    # -------------------------------------------------------------------------- scenarios
    def scenario_golden(self):
        cases = sorted(d for d in os.listdir(GOLDEN)
                       if os.path.isfile(os.path.join(GOLDEN, d, "expected.csv")))
        for name in cases:
            d = os.path.join(GOLDEN, name)
            out, dlq = self.outputs(f"golden-{name}")
            inp = os.path.join(d, "input.ndjson")
            rc, secs, p = self.clean_run({"VIEWS": inp, "CAMPAIGNS": os.path.join(d, "campaigns.csv"),
                                          "OUT": f"parquet:{out}"}, f"golden-{name}")
            if rc != 0:
                self.result(f"golden {name}", [f"sluice run exited {rc}\n{self.tail(p)}"])
                continue
            try:
                rows, problems, _ = read_parquet_output(out)
            except Exception as e:
                rows, problems = [], [f"cannot read the Parquet output: {type(e).__name__}: {e}"]
            problems += rv.compare_rows(rows, rv.read_rows(os.path.join(d, "expected.csv")),
                                        label="sluice")
            p2, warnings = dead_letters.check(dlq, os.path.join(d, "expected_dead_letters.txt"),
                                              input_path=inp)
            self.result(f"golden {name}: Parquet rows == expected.csv, dead letters == "
                        f"expected_dead_letters.txt ({secs:.2f}s)", problems + p2, warnings)

    def scenario_seed(self):
        sample = os.path.join(SEED, "sample_view_logs.json")
        if not os.path.exists(sample):
            self.skip("seed view_log sample", f"{sample} not found")
            return
        for camp, what in (("sample_compaign.csv", "its own campaigns (other column order)"),
                           ("campaigns1.csv", "campaigns1.csv (campaigns 1 and 2 missing)")):
            out, dlq = self.outputs(f"seed-{camp}")
            expected = rv.recompute(sample, os.path.join(SEED, camp))
            rc, secs, p = self.clean_run({"VIEWS": sample, "CAMPAIGNS": os.path.join(SEED, camp),
                                          "OUT": f"parquet:{out}"}, f"seed-{camp}")
            if rc != 0:
                self.result(f"seed sample with {what}", [f"sluice run exited {rc}\n{self.tail(p)}"])
                continue
            problems, nfiles = compare_output("seed", out, dlq, expected)
            if camp == "campaigns1.csv" and (expected["rows"] or len(expected["dead_letters"]) != 4):
                problems.append(f"recompute: expected no rows and 4 dead letters, got {expected}")
            if camp == "campaigns1.csv" and nfiles:
                problems.append(f"{nfiles} Parquet files written for an input without a valid "
                                "record")
            self.result(f"seed sample_view_logs.json with {what}: {len(expected['rows'])} rows, "
                        f"{len(expected['dead_letters'])} dead letters ({secs:.2f}s)", problems)

    def scenario_generated(self):
        views = self.generate("generated.ndjson", self.args.count, self.args.seed + 1)
        expected = rv.recompute(views, CAMPAIGNS)
        self.describe("generated", expected)
        problems = []
        for reason in ("late", "decode:", "missing view_id", "no campaign for key 999",
                       "end_timestamp before start_timestamp", "unparseable start_timestamp"):
            if not expected["reasons"][reason]:
                problems.append(f"the generated input has no {reason!r} record: the test would "
                                "not exercise it")
        out, dlq = self.outputs("generated")
        rc, secs, p = self.clean_run({"VIEWS": views, "OUT": f"parquet:{out}"},
                                     "generated")
        if rc != 0:
            problems.append(f"sluice run exited {rc}\n{self.tail(p)}")
        else:
            problems += compare_output("generated", out, dlq, expected)[0]
        self.result(f"generated ({self.args.count} records): Parquet == recompute ({secs:.2f}s)",
                    problems)

        # The pipeline's own generator: source (seed 11 in the file) makes the same records as
        # `sluice generate --seed 11` with the same settings.
        views = self.generate("generator-11.ndjson", self.args.count, 11)
        expected = rv.recompute(views, CAMPAIGNS)
        out, dlq = self.outputs("generator-source")
        rc, secs, p = self.clean_run({
            "VIEWS": "generator:", "COUNT": str(self.args.count), "RATE": "0", "START": START,
            "SPACING": "100ms", "OUT_OF_ORDER": str(self.args.out_of_order),
            "LATE": str(self.args.late), "INVALID": str(self.args.invalid),
            "OUT": f"parquet:{out}"}, "generator-source")
        problems = [] if rc == 0 else [f"sluice run exited {rc}\n{self.tail(p)}"]
        if not problems:
            problems += compare_output("generator:", out, dlq, expected)[0]
        self.result(f"VIEWS=generator: (COUNT={self.args.count}) == recompute of `sluice generate "
                    f"--seed 11` ({secs:.2f}s)", problems)

    def scenario_kill(self):
        views = self.generate("kill.ndjson", self.args.kill_count, self.args.seed + 2)
        expected = rv.recompute(views, CAMPAIGNS)
        self.describe("kill input", expected)
        out, dlq = self.outputs("kill-clean")
        rc, clean_secs, p = self.clean_run({"VIEWS": views, "OUT": f"parquet:{out}"},
                                           "kill-clean")
        problems = [] if rc == 0 else [f"uninterrupted run exited {rc}\n{self.tail(p)}"]
        if not problems:
            problems += compare_output("uninterrupted", out, dlq, expected)[0]
        self.result(f"kill input ({self.args.kill_count} records): uninterrupted run == recompute "
                    f"({clean_secs:.2f}s)", problems)
        if problems:
            return
        intervals = ["100ms", None, "25ms"]
        landed = early = cycle = 0
        problems, notes = [], []
        deadline = time.monotonic() + self.args.kill_budget
        while landed < self.args.kills and cycle < 8 and time.monotonic() < deadline:
            cycle += 1
            interval = intervals[(cycle - 1) % len(intervals)]
            pipe = pipeline_copy(os.path.join(self.tmp, f"viewlog-{interval or 'default'}.toml"),
                                 interval)
            out, dlq = self.outputs(f"kill-{cycle}")
            variables = {"VIEWS": views, "OUT": f"parquet:{out}"}
            spent, kills_here, done = 0.0, 0, False
            while kills_here < 3 and landed < self.args.kills:
                remaining = clean_secs - spent
                if remaining < 0.15:
                    break
                delay = self.rng.uniform(0.05, max(0.06, 0.9 * remaining))
                p = self.start(variables, f"kill-{cycle}", pipe)
                try:
                    rc = p.wait(timeout=delay)
                except subprocess.TimeoutExpired:
                    rc = None
                if rc is not None:
                    p.log.close()
                    if rc != 0:
                        problems.append(f"cycle {cycle}: run exited {rc} before the kill\n"
                                        f"{self.tail(p)}")
                        return self.result("kill -9 during file runs", problems, notes)
                    early += 1
                    done = True
                    break
                p.send_signal(signal.SIGKILL)
                p.wait()
                p.log.close()
                landed += 1
                kills_here += 1
                spent += delay
                self.say(f"cycle {cycle} (checkpoint_interval {interval or '1s'}): kill -9 "
                         f"#{landed} after {delay:.3f}s")
            if not done:
                rc, secs, p = self.clean_run(variables, f"kill-{cycle}-final", pipe)
                if rc != 0:
                    problems.append(f"cycle {cycle}: the last restart exited {rc}\n{self.tail(p)}")
                    break
            problems += compare_output(f"cycle {cycle}", out, dlq, expected)[0]
        if landed < self.args.kills:
            problems.append(f"only {landed} of {self.args.kills} kills landed mid-run")
        notes.append(f"{landed} kills landed over {cycle} cycle(s); {early} runs finished before "
                     "their kill")
        self.result(f"kill -9 x{landed} during file runs + restarts: every cycle == recompute",
                    problems, notes)

    def scenario_kafka(self):
        why = ensure_kcat()
        if why:
            self.result("kafka: kcat", [why])
            return
        if not kafka_ready():
            self.skip("kafka scenario", f"Kafka does not answer on {BROKER} (start it with "
                      "`make services` or scripts/services.sh up kafka)")
            return
        topic = f"sluice-viewlog-{self.token}"
        rc, out = topics_tool("--create", "--topic", topic, "--partitions", "1",
                              "--replication-factor", "1", timeout=90)
        if rc != 0:
            self.result("kafka: create topic", [f"kafka-topics.sh exited {rc}: {out[-1500:]}"])
            return
        try:
            self._kafka(topic)
        finally:
            if not self.args.keep:
                delete_topics(topic)

    def _kafka(self, topic):
        n2 = min(4000, self.args.kafka_count // 10)
        n1 = self.args.kafka_count - n2
        first = self.generate("kafka-1.ndjson", n1, self.args.seed + 3)
        with open(first, "rb") as f:
            p = subprocess.run(["kcat", "-P", "-b", BROKER, "-t", topic, "-p", "0", "-z", "none",
                                "-X", "batch.num.messages=500"], stdin=f,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
        if p.returncode != 0:
            raise RuntimeError(f"kcat -P exited {p.returncode}: {p.stdout[-800:]!r}")
        # The second half continues the clock where the first ends, through sluice generate.
        second_start = rv.format_micros(rv.parse_iso(START) + n1 * 100_000, "%Y-%m-%dT%H:%M:%S.%fZ")
        second = self.generate("kafka-2.ndjson", n2, self.args.seed + 4, second_start,
                               to=f"kafka://{BROKER}/{topic}")
        problems = []
        total = end_offset(topic)
        if total != n1 + n2:
            problems.append(f"the topic holds {total} records, expected {n1 + n2}")
        published = topic_payloads(topic)
        with open(first, encoding="utf-8") as f1, open(second, encoding="utf-8") as f2:
            written = [ln.rstrip("\n") for ln in f1] + [ln.rstrip("\n") for ln in f2]
        if published != written:
            problems.append("the topic's records differ from the generated files (kcat + sluice "
                            "generate --to kafka)")
        self.result(f"kafka: {n1} records by kcat + {n2} by `sluice generate --to kafka://` on a "
                    "1-partition topic", problems)
        if problems:
            return
        expected = rv.recompute([first, second], CAMPAIGNS, open_at_end=True)
        self.describe("kafka (--open-at-end)", expected)
        group = f"viewlog-test-{self.token}"
        pipe = pipeline_copy(os.path.join(self.tmp, "viewlog-kafka.toml"), "250ms", (
            f'group = "{group}"', '"kafka.session.timeout.ms" = "6000"',
            # A throttled consumer (see kafka_recruitment_test.slow_consumer): about one
            # producer batch (500 records from kcat) per 100 ms, so kills land with work left.
            '"kafka.fetch.wait.max.ms" = "100"', '"kafka.fetch.min.bytes" = "100000000"',
            '"kafka.max.partition.fetch.bytes" = "1"'))
        out, dlq = self.outputs("kafka")
        variables = {"VIEWS": f"kafka://{BROKER}/{topic}", "OUT": f"parquet:{out}"}
        problems, notes = [], []
        landed = 0
        while landed < self.args.kafka_kills:
            p = self.start(variables, "kafka-service", pipe)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and p.poll() is None \
                    and not ASSIGNED.search(self.text(p)):
                time.sleep(0.05)
            if p.poll() is not None:
                p.log.close()
                problems.append(f"service run exited {p.returncode} by itself\n{self.tail(p)}")
                break
            if not ASSIGNED.search(self.text(p)):
                problems.append(f"no partition assigned within 60 s\n{self.tail(p)}")
                p.kill()
                p.wait()
                p.log.close()
                break
            delay = self.rng.uniform(0.3, 2.0)
            time.sleep(delay)
            if p.poll() is not None:
                p.log.close()
                problems.append(f"service run exited {p.returncode} by itself\n{self.tail(p)}")
                break
            p.send_signal(signal.SIGKILL)
            p.wait()
            p.log.close()
            landed += 1
            self.say(f"kafka: kill -9 #{landed} {delay:.2f}s after the partition was assigned")
        if not problems:
            rc, secs, p = self.clean_run(variables, "kafka-catch-up", pipe, ["--until-caught-up"])
            if rc != 0:
                problems.append(f"--until-caught-up run exited {rc}\n{self.tail(p)}")
            else:
                problems += compare_output("kafka", out, dlq, expected)[0]
                m = re.findall(r": ([\d,]+) records in [\d.]+s", self.text(p))
                left = int(m[-1].replace(",", "")) if m else None
                notes.append(f"--until-caught-up run: {secs:.2f}s, {left} records left for it")
                if not left:
                    problems.append("the service runs consumed the whole topic before the last "
                                    "kill: the kills did not land mid-run (throttle the consumer "
                                    "more or raise --kafka-count)")
        self.result(f"kafka: kill -9 x{landed} mid-run + --until-caught-up == recompute "
                    "--open-at-end", problems, notes)
        if problems:
            return
        before = snapshot(out, dlq)
        rc, secs, p = self.clean_run(variables, "kafka-again", pipe, ["--until-caught-up"])
        problems = [] if rc == 0 else [f"second --until-caught-up run exited {rc}\n{self.tail(p)}"]
        if snapshot(out, dlq) != before:
            problems.append("the second run changed the Parquet files or the dead-letter file")
        self.result(f"kafka: a second --until-caught-up run changes nothing ({secs:.2f}s)",
                    problems)


def snapshot(out_dir, dlq):
    """Data files (relative path -> bytes) and the dead-letter files' (name -> bytes)."""
    files = {}
    for root, dirs, names in os.walk(out_dir):
        dirs[:] = [d for d in dirs if not d.startswith((".", "_"))]
        for n in names:
            path = os.path.join(root, n)
            with open(path, "rb") as f:
                files[os.path.relpath(path, out_dir)] = f.read()
    letters = {}
    for n in sorted(os.listdir(dlq)) if os.path.isdir(dlq) else []:
        with open(os.path.join(dlq, n), "rb") as f:
            letters[n] = f.read()
    return files, letters


def main(argv=None):
    global PIPELINE
    ap = argparse.ArgumentParser(description="viewlog pipeline end to end (Parquet, Kafka).")
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--only", help=f"comma-separated scenarios ({','.join(SCENARIOS)})")
    ap.add_argument("--seed", type=int, default=20240612, help="RNG seed (generator, kill delays)")
    ap.add_argument("--count", type=int, default=6000, help="generated records")
    ap.add_argument("--kill-count", type=int, default=100000, help="records of the kill scenario")
    ap.add_argument("--kills", type=int, default=6, help="kills that must land mid-run (file)")
    ap.add_argument("--kill-budget", type=float, default=90, help="seconds for the kill cycles")
    ap.add_argument("--kafka-count", type=int, default=60000,
                    help="records on the topic (a tenth, at most 4000, by sluice generate)")
    ap.add_argument("--kafka-kills", type=int, default=4)
    ap.add_argument("--out-of-order", type=float, default=0.1)
    ap.add_argument("--late", type=float, default=0.03)
    ap.add_argument("--invalid", type=float, default=0.05)
    ap.add_argument("--run-timeout", type=float, default=90, help="seconds a run may take")
    ap.add_argument("--pipeline", default=PIPELINE,
                    help="the pipeline file under test (default: examples/viewlog.toml)")
    ap.add_argument("--keep", action="store_true", help="keep the work dir (and the topic)")
    args = ap.parse_args(argv)
    args.sluice = os.path.abspath(args.sluice)
    PIPELINE = os.path.abspath(args.pipeline)
    only = [s.strip() for s in args.only.split(",")] if args.only else SCENARIOS
    unknown = set(only) - set(SCENARIOS)
    if unknown:
        ap.error(f"unknown scenario(s) {sorted(unknown)}")
    tmp = tempfile.mkdtemp(prefix="sluice-viewlog-")
    t = Test(args, tmp)
    print(f"     work dir {tmp}, RNG seed {args.seed}", flush=True)
    try:
        try:
            import pyarrow  # noqa: F401
            import pyarrow.dataset  # noqa: F401
        except ImportError as e:
            t.skip("viewlog (all scenarios)", f"pyarrow is not importable by {sys.executable} "
                   f"({e}); run with the project venv (`make deps`)")
            only = []
        if only and not os.access(args.sluice, os.X_OK):
            t.result("sluice binary", [f"not an executable: {args.sluice}"])
            only = []
        t.run_scenarios(only)
    finally:
        t.kill_leftovers()
        t.keep_or_remove(tmp, args.keep)
    return t.finish()


if __name__ == "__main__":
    sys.exit(main())
