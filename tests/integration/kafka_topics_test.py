#!/usr/bin/env python3
"""A Kafka source that reads several topics (a list, or a pattern) is exact, keeps the positions
it stored when it read one topic, and names the topic wherever it shows a partition.

    kafka_topics_test.py --sluice build/sluice [--only 1,2] [--count 20000] [--keep]
                         [--prefix topics]

The recruitment pipeline (examples/recruitment.toml copied with its own name, group and SQLite
sink) reads topics published by kcat, keyed by job_id (kafka_util.py). Expected tables come from
the independent recomputation (tests/tools/recompute_recruitment.py) over exactly the records
published; expected positions from the topics' end offsets (kcat -Q); expected partition ids
from the rule of src/connectors/kafka/kafka_ids.h computed here (FNV-1a 64 of the topic name).

 1. a list: the pipeline first reads topic A alone (--until-caught-up), then A and B
    (`kafka://HOST/A,B`, 4 and 3 partitions, B with some invalid records): a service run with 2
    workers is killed with -9 after its first commit of B, then `--until-caught-up` finishes.
    Checks: exit 0; table == recompute over everything published to A and B (A's first batch
    counted once: its stored positions kept their meaning); every partition's committed position
    == its topic's end offset, under id slot << 12 | partition (A in slot 0); each slot's topic
    recorded; dead letters name their topic ("tracking:B") and its partition, as many per topic
    as the recomputation finds; the run's JSON summary and /metrics-like progress name topic
    and partition, not the id.
 2. a pattern: `topic_pattern` matching TOPIC-x (present at start) and TOPIC-y (created and
    published while the run goes): both are read to their ends, table == recompute over both,
    positions == end offsets.

A broker that does not answer (or no kcat): SKIP (exit 77), a FAIL when CI=true. Topics are
named PREFIX_<run id>_*; they are deleted at the end unless --keep.
"""

import argparse
import json
import os
import shutil
import signal
import sqlite3
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tools"))
import compare_tables  # noqa: E402
import harness  # noqa: E402
import kafka_util as kr  # noqa: E402
import recompute_recruitment as rr  # noqa: E402

IDENTITY_BASE = 1 << 30
TOPIC_SLOT_BASE = IDENTITY_BASE + (1 << 28)
SLOTS = 1 << 17

# Records the recomputation dead-letters (rule a: not a strict integer; rule c: no event time).
BAD_LINES = [
    '{"job_id":"seven","custom_track":"click","ts":"2022-07-01 10:00:00","bid":1}',
    '{"job_id":12,"custom_track":"click","ts":"yesterday","bid":1}',
    'not json at all',
]


def fnv1a64(text):
    h = 14695981039346656037
    for c in text.encode("utf-8"):
        h = ((h ^ c) * 1099511628211) % (1 << 64)
    return h


def signed64(u):
    return u - (1 << 64) if u >= (1 << 63) else u


def slot_of(topic):
    """A topic's slot when it is not the first of a list (kafka_ids.h DefaultTopicSlot)."""
    return 1 + fnv1a64(topic) % (SLOTS - 1)


class Test(harness.SluiceTest):
    def __init__(self, args, tmp):
        harness.SluiceTest.__init__(self, args, tmp)
        self.seed = 160

    def generate(self, count, name, bad=False):
        self.seed += 1
        out = os.path.join(self.tmp, name)
        rc, text = harness.run([self.args.sluice, "generate", "--profile", "recruitment", "--to", out,
                                "--count", str(count), "--rate", "0", "--seed", str(self.seed),
                                "--jobs", kr.JOBS], timeout=120)
        if rc != 0:
            raise RuntimeError(f"sluice generate exited {rc}: {text[-800:]}")
        if bad:
            with open(out, "a", encoding="utf-8") as f:
                for line in BAD_LINES:
                    f.write(line + "\n")
        return out

    def topic(self, what):
        return f"{self.args.prefix}_{self.token}_{what}"

    def publish(self, topic, partitions, paths, create=True):
        if create:
            kr.create_topic(topic, partitions)
        keyed = os.path.join(self.tmp, f"{topic}-{time.monotonic_ns()}.keyed")
        n = kr.keyed_file(paths, keyed)
        # A topic just created may not answer kcat -Q yet: it holds nothing.
        before = 0 if create else sum(kr.end_offsets(topic, partitions).values())
        return kr.produce(topic, partitions, keyed, before + n, batch=1000)

    def pipeline(self, scenario, extra_source=()):
        name = f"kt_{scenario}_{self.token}"
        path = kr.pipeline_copy(os.path.join(self.tmp, f"{scenario}.toml"), name, name, "sqlite",
                                "events", extra_source)
        return name, path

    @staticmethod
    def positions(db, pipeline):
        try:
            con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
        except sqlite3.Error:
            return {}
        try:
            rows = con.execute("SELECT partition, offset FROM _sluice_positions WHERE pipeline = ? "
                               "AND source = ?", (pipeline, kr.SOURCE)).fetchall()
        except sqlite3.Error:
            return {}
        finally:
            con.close()
        return {int(p): int(o) for p, o in rows}

    def expected(self, label, paths):
        src = kr.concat(paths, os.path.join(self.tmp, f"{label}-all.ndjson"))
        db = os.path.join(self.tmp, f"{label}-expected.db")
        dlq = os.path.join(self.tmp, f"{label}-expected.dlq")
        rr.recompute(src, kr.JOBS, db, "kafka", dlq)
        with open(dlq, encoding="utf-8") as f:
            dead = sum(1 for line in f if line.strip())
        return db, dead

    def check_positions(self, db, name, topics):
        """topics: [(topic, partitions, slot)]; every id's position == the end offset, no other
        input partition, and each slot's topic recorded."""
        problems = []
        pos = self.positions(db, name)
        want = {}
        for topic, partitions, slot in topics:
            for p, end in kr.end_offsets(topic, partitions).items():
                want[(slot << 12) | p] = (f"{topic}[{p}]", end)
            if pos.get(TOPIC_SLOT_BASE + slot) != signed64(fnv1a64(topic)):
                problems.append(f"slot {slot}: recorded topic fingerprint "
                                f"{pos.get(TOPIC_SLOT_BASE + slot)}, expected that of {topic}")
        for pid, (label, end) in sorted(want.items()):
            got = pos.get(pid, 0 if end == 0 else None)
            if got != end:
                problems.append(f"{label} (id {pid}): committed position {got}, the topic ends at {end}")
        extra = sorted(p for p in pos if p < IDENTITY_BASE and p not in want)
        if extra:
            problems.append(f"positions under ids no topic has: {extra}")
        return problems

    @staticmethod
    def letters(path):
        out = []
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                out = [json.loads(line) for line in f if line.strip()]
        return out

    # ------------------------------------------------------------------ scenarios
    def scenario_1(self):
        a, b = self.topic("a"), self.topic("b")
        a1 = self.generate(self.args.count, "a1.ndjson")
        a2 = self.generate(self.args.count // 2, "a2.ndjson")
        b1 = self.generate(self.args.count, "b1.ndjson", bad=True)
        self.publish(a, 4, [a1])
        name, pipe = self.pipeline("list", kr.slow_consumer(300))
        db = os.path.join(self.tmp, "list.db")
        problems, notes = [], []
        # The pipeline as it was: one topic.
        one = self.start_run(pipe, {"TRACKING": f"kafka://{kr.BROKER}/{a}", "JOBS": kr.JOBS,
                                    "SINK": f"sqlite:{db}", "DLQ": os.path.join(self.tmp, "one.dlq")},
                             "one-topic", ["--until-caught-up", "--workers", "1"])
        if one.wait(300) != 0:
            problems.append(f"the one-topic run exited {one.returncode}\n{self.tail(one)}")
        before = self.positions(db, name)
        if any(p >= 4 and p < IDENTITY_BASE for p in before) or TOPIC_SLOT_BASE in before:
            problems.append(f"a one-topic run stored ids other than partition numbers: {sorted(before)}")
        # Then two topics, A first: A's stored positions stay valid.
        self.publish(a, 4, [a2], create=False)
        self.publish(b, 3, [b1])
        expected_db, _ = self.expected("list", [a1, a2, b1])
        _, dead_a2 = self.expected("a2", [a2])
        _, dead_b = self.expected("b1", [b1])
        dlq = os.path.join(self.tmp, "list.dlq")
        variables = {"TRACKING": f"kafka://{kr.BROKER}/{a},{b}", "JOBS": kr.JOBS,
                     "SINK": f"sqlite:{db}", "DLQ": dlq}
        slot_b = slot_of(b)
        service = self.start_run(pipe, variables, "two-topics", ["--workers", "2"])
        committed_b = harness.wait_for(
            lambda: service.poll() is not None or
            any((p >> 12) == slot_b and p < IDENTITY_BASE and o > 0
                for p, o in self.positions(db, name).items()), 120, 0.1)
        if service.poll() is not None or not committed_b:
            problems.append(f"the two-topic run committed nothing of {b} within 120 s "
                            f"(exit {service.poll()})\n{self.tail(service)}")
        time.sleep(0.3)
        harness.kill9(service)
        killed_at = {p: o for p, o in self.positions(db, name).items() if p < IDENTITY_BASE}
        # One worker: with two, a worker that reaches the end before the other joins the group
        # hands its partitions over uncommitted, and they are read twice (also with one topic,
        # kafka_catch_up scenario 5; not this test's subject).
        catch_up = self.start_run(pipe, variables, "catch-up",
                                  ["--until-caught-up", "--workers", "1", "--log-format", "json"])
        rc = catch_up.wait(300) if catch_up.poll() is None else catch_up.returncode
        if rc != 0:
            problems.append(f"--until-caught-up after kill -9 exited {rc}\n{self.tail(catch_up)}")
        else:
            problems += [f"table vs recompute: {x}"
                         for x in compare_tables.compare(db, expected_db, kr.KEY)]
            problems += self.check_positions(db, name, [(a, 4, 0), (b, 3, slot_b)])
            letters = self.letters(dlq)
            by_source = {}
            for d in letters:
                by_source[d.get("source")] = by_source.get(d.get("source"), 0) + 1
            want = {f"{kr.SOURCE}:{a}": dead_a2, f"{kr.SOURCE}:{b}": dead_b}
            want = {k: v for k, v in want.items() if v}
            if by_source != want:
                problems.append(f"dead letters by source {by_source}, expected {want}")
            notes.append(f"dead letters by source: {by_source}")
            bad_partition = [d for d in letters if not 0 <= d.get("partition", -1) < 4]
            if bad_partition:
                problems.append(f"dead letters with a partition that is not the topic's: {bad_partition[:2]}")
            text = self.text(catch_up)
            if f"{b}[" not in text + self.text(service):
                problems.append(f"the runs' logs never name {b}[p]\n{self.tail(catch_up)}")
            total = sum(kr.end_offsets(a, 4).values()) + sum(kr.end_offsets(b, 3).values())
            if sum(killed_at.values()) >= total:
                notes.append("everything was committed before the kill (a faster machine: raise --count)")
            # The JSON summary's partitions: topic and the topic's partition number.
            summary = [json.loads(line) for line in text.splitlines()
                       if line.startswith("{") and '"partitions"' in line]
            parts = [p for s in summary[-1:] for p in s.get("partitions", [])] if summary else []
            named = sorted((p.get("topic"), p.get("partition")) for p in parts)
            want_named = sorted([(a, p) for p in range(4)] + [(b, p) for p in range(3)])
            if named != want_named:
                problems.append(f"the JSON summary's partitions {named[:8]}, expected each topic's "
                                f"partitions {want_named}")
        self.result("1 two topics (A read alone first), kill -9 after a commit, --until-caught-up: "
                    "table == recompute, positions per topic == end offsets, dead letters name "
                    "their topic", problems,
                    [f"killed with {sum(killed_at.values())} records committed"] + notes)

    def scenario_2(self):
        x, y = self.topic("p-x"), self.topic("p-y")
        px = self.generate(self.args.count // 2, "px.ndjson")
        py = self.generate(self.args.count // 2, "py.ndjson")
        self.publish(x, 2, [px])
        pattern = f"^{self.args.prefix}_{self.token}_p-.*"
        name, pipe = self.pipeline("pattern", (f'topic_pattern = "{pattern}"',
                                               '"kafka.topic.metadata.refresh.interval.ms" = "1000"'))
        db = os.path.join(self.tmp, "pattern.db")
        variables = {"TRACKING": f"kafka://{kr.BROKER}", "JOBS": kr.JOBS, "SINK": f"sqlite:{db}",
                     "DLQ": os.path.join(self.tmp, "pattern.dlq")}
        expected_db, _ = self.expected("pattern", [px, py])
        problems = []
        run = self.start_run(pipe, variables, "pattern", ["--workers", "2"])

        def at_end(topics):
            pos = self.positions(db, name)
            for topic, partitions in topics:
                slot = slot_of(topic)
                for p, end in kr.end_offsets(topic, partitions).items():
                    if pos.get((slot << 12) | p, 0 if end == 0 else -1) != end:
                        return False
            return True

        if not harness.wait_for(lambda: run.poll() is not None or at_end([(x, 2)]), 120, 0.5) \
                or run.poll() is not None:
            problems.append(f"{x} was not read to its end within 120 s\n{self.tail(run)}")
        else:
            self.publish(y, 2, [py])  # a topic the pattern matches, created mid-run
            if not harness.wait_for(lambda: run.poll() is not None or at_end([(x, 2), (y, 2)]), 120, 0.5) \
                    or run.poll() is not None:
                problems.append(f"{y}, created mid-run, was not read to its end within 120 s\n"
                                f"{self.tail(run)}")
        rc = harness.stop(run, signal.SIGTERM, 60)
        if rc != 0:
            problems.append(f"SIGTERM: exit {rc}\n{self.tail(run)}")
        if not problems:
            problems += [f"table vs recompute: {x}"
                         for x in compare_tables.compare(db, expected_db, kr.KEY)]
            problems += self.check_positions(db, name, [(x, 2, slot_of(x)), (y, 2, slot_of(y))])
        self.result("2 a pattern: a topic created mid-run is read too; table == recompute, "
                    "positions == end offsets", problems)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--only", help="comma-separated scenario numbers (1-2)")
    ap.add_argument("--count", type=int, default=20000, help="records per input")
    ap.add_argument("--prefix", default="topics", help="topic name prefix")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args(argv)
    args.sluice = os.path.abspath(args.sluice)
    only = set(args.only.split(",")) if args.only else None
    if shutil.which("kcat") is None or not kr.kafka_ready():
        why = "kcat is missing" if shutil.which("kcat") is None else kr.kafka_missing()
        return harness.Checks().missing(why)
    tmp = tempfile.mkdtemp(prefix="sluice-kt-")
    t = Test(args, tmp)
    print(f"     work dir {tmp}, run id {t.token}", flush=True)
    try:
        t.run_scenarios(["1", "2"], only)
    finally:
        t.kill_leftovers()
        if not args.keep:
            kr.delete_topics(f"{args.prefix}_{t.token}_.*")
        t.keep_or_remove(tmp, args.keep)
    return t.finish()


if __name__ == "__main__":
    sys.exit(main())
