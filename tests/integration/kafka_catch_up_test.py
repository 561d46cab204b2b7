#!/usr/bin/env python3
"""`sluice run --until-caught-up` on a Kafka topic finishes the batch, or fails loudly.

    kafka_catch_up_test.py --sluice build/sluice [--only 1,2,3,4,5] [--count 60000] [--keep]
                           [--prefix sluice-kc]

The recruitment pipeline (a copy of examples/recruitment.toml with its own name, group and
SQLite sink per scenario) reads a fresh topic whose records are published by kcat, keyed by
job_id (the helpers of kafka_recruitment_test.py). Expected tables come from the independent
recomputation (tests/tools/recompute_recruitment.py) over exactly the records published.

 1. crash then restart: a service run (2 workers, slow consumer, session.timeout.ms 6000) is
    killed with SIGKILL 1.5 s after its first partition was assigned, and an --until-caught-up
    run starts at once, while the killed members still hold their partitions: it must exit 0
    with the sink's committed positions == the end offsets of all 4 partitions, and the table ==
    the recomputation. (Before, depending on timing: it exited 0 after reading only the
    partitions it was given; scenario 2 shows it every time.)
 2. two lingering processes: two service runs each killed 2 s after start (before or around
    their first assignment), then --until-caught-up: same checks. (Before: it read 0 of 4
    partitions and exited 0 after 16 s.)
 3. several processes together: two --until-caught-up processes of one pipeline (same group
    and sink) start together; both must exit 0, and the table == the recomputation.
 4. a member that never commits: kcat joins the group (holds some partitions, commits nothing
    to the sink); --until-caught-up with catch_up_timeout = "5s" must exit 1 within 60 s,
    saying catch_up_timeout and naming the partitions it waited for.
 5. topic deleted and recreated with fewer records: the committed positions are then beyond
    the partitions' ends; --until-caught-up must log it, read the new topic from its beginning
    and exit 0, with the table == the recomputation over both topics' records, and each
    partition's generation 1 stored with the positions (dead letters of the new topic then keep
    apart from the old one's at the same offsets).

A broker that does not answer (or no kcat): SKIP (exit 77), a FAIL when CI=true. Topics are
named PREFIX-<run id>-*; they are deleted at the end unless --keep.
"""

import argparse
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tools"))
import compare_tables  # noqa: E402
import harness  # noqa: E402
import kafka_util as kr  # noqa: E402
import recompute_recruitment as rr  # noqa: E402

REPO = kr.REPO


class Test(harness.SluiceTest):
    def __init__(self, args, tmp):
        harness.SluiceTest.__init__(self, args, tmp)
        self.seed = 77

    # ------------------------------------------------------------------ building blocks
    def generate(self, count, name):
        self.seed += 1
        out = os.path.join(self.tmp, name)
        rc, text = harness.run([self.args.sluice, "generate", "--profile", "recruitment", "--to", out,
                           "--count", str(count), "--rate", "0", "--seed", str(self.seed),
                           "--jobs", kr.JOBS], timeout=120)
        if rc != 0:
            raise RuntimeError(f"sluice generate exited {rc}: {text[-800:]}")
        return out

    def topic(self, scenario):
        return f"{self.args.prefix}-{self.token}-{scenario}"

    def publish(self, topic, partitions, paths, create=True):
        if create:
            kr.create_topic(topic, partitions)
        keyed = os.path.join(self.tmp, f"{topic}.keyed")
        n = kr.keyed_file(paths, keyed)
        return kr.produce(topic, partitions, keyed, n, batch=1000)

    def pipeline(self, scenario, extra_source=(), extra_pipeline=()):
        name = f"kc_{scenario}_{self.token}"
        path = kr.pipeline_copy(os.path.join(self.tmp, f"{scenario}.toml"), name, name, "sqlite",
                                "events", extra_source)
        if extra_pipeline:
            with open(path, encoding="utf-8") as f:
                text = f.read()
            text = re.sub(r"(?m)^\[pipeline\]\s*$", "[pipeline]\n" + "\n".join(extra_pipeline),
                          text, count=1)
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
        return name, path

    def variables(self, topic, db, dlq):
        return {"TRACKING": f"kafka://{kr.BROKER}/{topic}", "JOBS": kr.JOBS,
                "SINK": f"sqlite:{db}", "DLQ": dlq}

    def start(self, pipe, variables, label, args=()):
        return self.start_run(pipe, variables, label, args)

    def wait(self, p, timeout):
        try:
            return p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            return None

    @staticmethod
    def positions(db, pipeline):
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
        try:
            rows = con.execute("SELECT partition, offset FROM _sluice_positions WHERE pipeline = ? "
                               "AND source = ?", (pipeline, kr.SOURCE)).fetchall()
        finally:
            con.close()
        return {int(p): int(o) for p, o in rows}

    def expected(self, scenario, paths):
        src = kr.concat(paths, os.path.join(self.tmp, f"{scenario}-all.ndjson"))
        db = os.path.join(self.tmp, f"{scenario}-expected.db")
        dlq = os.path.join(self.tmp, f"{scenario}-expected.dlq")
        rr.recompute(src, kr.JOBS, db, "kafka", dlq)
        return db

    def check_complete(self, label, db, pipeline, topic, partitions, expected_db):
        problems = []
        ends = kr.end_offsets(topic, partitions)
        pos = self.positions(db, pipeline)
        for p, end in sorted(ends.items()):
            if pos.get(p, 0 if end == 0 else None) != end:
                problems.append(f"{label}: partition {p}: committed position {pos.get(p)}, the "
                                f"topic ends at {end}")
        problems += [f"{label} vs recompute: {x}"
                     for x in compare_tables.compare(db, expected_db, kr.KEY)]
        return problems

    # ------------------------------------------------------------------ scenarios
    def crash_then_catch_up(self, scenario, kills, after_assigned, title):
        paths = [self.generate(self.args.count, f"{scenario}.ndjson")]
        topic = self.topic(scenario)
        total = self.publish(topic, 4, paths)
        name, pipe = self.pipeline(scenario, kr.slow_consumer(100) +
                                   ('"kafka.session.timeout.ms" = "6000"',))
        db = os.path.join(self.tmp, f"{scenario}.db")
        variables = self.variables(topic, db, os.path.join(self.tmp, f"{scenario}.dlq"))
        # Computed first: the catch-up run must start the moment the last kill lands.
        expected_db = self.expected(scenario, paths)
        problems = []
        for i in range(kills):
            a = self.start(pipe, variables, f"{scenario}-service{i}", ["--workers", "2"])
            if after_assigned:
                deadline = time.monotonic() + 40
                while time.monotonic() < deadline and a.poll() is None and \
                        "assigned" not in self.text(a):
                    time.sleep(0.05)
                if "assigned" not in self.text(a):
                    problems.append(f"service run {i}: no partition within 40 s\n{self.tail(a)}")
                time.sleep(1.5)
            else:
                time.sleep(2.0)
            a.kill()
            a.wait()
        t = time.monotonic()
        b = self.start(pipe, variables, f"{scenario}-catch-up", ["--until-caught-up"])
        rc = self.wait(b, 120)
        secs = time.monotonic() - t
        if rc != 0:
            problems.append(f"--until-caught-up exited {rc}\n{self.tail(b)}")
        else:
            problems += self.check_complete("after --until-caught-up", db, name, topic, 4,
                                            expected_db)
        self.result(f"{title} ({total} records, 4 partitions): --until-caught-up exits 0 with "
                    "every partition committed to its end, table == recompute", problems,
                    [f"--until-caught-up took {secs:.1f}s"])

    def scenario_1(self):
        self.crash_then_catch_up("c1", 1, True, "1 crash then restart")

    def scenario_2(self):
        self.crash_then_catch_up("c2", 2, False, "2 two processes killed 2 s after start")

    def scenario_3(self):
        scenario = "c3"
        paths = [self.generate(self.args.count, f"{scenario}.ndjson")]
        topic = self.topic(scenario)
        total = self.publish(topic, 4, paths)
        name, pipe = self.pipeline(scenario, kr.slow_consumer(50))
        db = os.path.join(self.tmp, f"{scenario}.db")
        procs = []
        for i in range(2):
            variables = self.variables(topic, db, os.path.join(self.tmp, f"{scenario}-{i}.dlq"))
            procs.append(self.start(pipe, variables, f"{scenario}-p{i}",
                                    ["--until-caught-up", "--workers", "2"]))
        expected_db = self.expected(scenario, paths)
        problems = []
        for i, p in enumerate(procs):
            rc = self.wait(p, 150)
            if rc != 0:
                problems.append(f"process {i}: --until-caught-up exited {rc}\n{self.tail(p)}")
        if not problems:
            problems += self.check_complete("two processes", db, name, topic, 4, expected_db)
        self.result(f"3 two --until-caught-up processes together ({total} records): both exit 0, "
                    "table == recompute", problems)

    def scenario_4(self):
        scenario = "c4"
        paths = [self.generate(min(self.args.count, 20000), f"{scenario}.ndjson")]
        topic = self.topic(scenario)
        self.publish(topic, 4, paths)
        name, pipe = self.pipeline(scenario, (), ('catch_up_timeout = "5s"',))
        db = os.path.join(self.tmp, f"{scenario}.db")
        problems = []
        kcat = subprocess.Popen(["kcat", "-b", kr.BROKER, "-G", name, "-q", "-o", "end", topic],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(5)  # kcat joins the group and is given every partition
            if kcat.poll() is not None:
                raise RuntimeError(f"kcat -G exited {kcat.returncode}")
            t = time.monotonic()
            b = self.start(pipe, self.variables(topic, db, os.path.join(self.tmp, "c4.dlq")),
                           f"{scenario}-catch-up", ["--until-caught-up", "--workers", "1"])
            rc = self.wait(b, 60)
            secs = time.monotonic() - t
            out = self.text(b)
            if rc != 1:
                problems.append(f"--until-caught-up exited {rc} after {secs:.1f}s (expected 1: a "
                                f"member of the group holds partitions and commits nothing)\n"
                                f"{self.tail(b)}")
            for want in ("catch_up_timeout", "is another member of group"):
                if want not in out:
                    problems.append(f"the output does not say '{want}'\n{self.tail(b)}")
        finally:
            kcat.terminate()
            kcat.wait()
        self.result("4 a member that never commits: --until-caught-up exits 1 after "
                    "catch_up_timeout (5s) with a clear message", problems,
                    [f"exited after {secs:.1f}s"] if not problems else [])

    def scenario_5(self):
        scenario = "c5"
        first = self.generate(min(self.args.count, 40000), f"{scenario}-a.ndjson")
        second = self.generate(2000, f"{scenario}-b.ndjson")
        topic = self.topic(scenario)
        self.publish(topic, 4, [first])
        name, pipe = self.pipeline(scenario)
        db = os.path.join(self.tmp, f"{scenario}.db")
        variables = self.variables(topic, db, os.path.join(self.tmp, f"{scenario}.dlq"))
        problems = []
        a = self.start(pipe, variables, f"{scenario}-first", ["--until-caught-up"])
        if self.wait(a, 120) != 0:
            problems.append(f"first --until-caught-up exited {a.returncode}\n{self.tail(a)}")
        else:
            kr.delete_topics(topic)
            deadline = time.monotonic() + 60
            while True:  # deletion is asynchronous: retry the creation until the name is free
                try:
                    kr.create_topic(topic, 4)
                    break
                except RuntimeError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(1)
            self.publish(topic, 4, [second], create=False)
            b = self.start(pipe, variables, f"{scenario}-recreated", ["--until-caught-up"])
            rc = self.wait(b, 120)
            if rc != 0:
                problems.append(f"--until-caught-up on the recreated topic exited {rc}\n"
                                f"{self.tail(b)}")
            else:
                if "deleted and recreated" not in self.text(b):
                    problems.append("the run did not log that the topic was recreated\n"
                                    + self.tail(b))
                problems += self.check_complete("recreated topic", db, name, topic, 4,
                                                self.expected(scenario, [first, second]))
                # Each partition's offsets started again: the next generation of the input, stored
                # with the positions (so its dead letters keep apart from the old topic's).
                gen = {p: self.positions(db, name).get(GENERATION_BASE + p) for p in range(4)}
                if gen != {p: 1 for p in range(4)}:
                    problems.append(f"generation of each partition after the recreation: {gen}, "
                                    "expected 1 for each")
        self.result("5 topic deleted and recreated with fewer records: read from the beginning, "
                    "logged, table == recompute over both, generation 1 stored", problems)


# The identity partition that holds partition p's generation (kGenerationPartitionBase + p).
GENERATION_BASE = (1 << 30) + (1 << 29)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--only", help="comma-separated scenario numbers (1-5)")
    ap.add_argument("--count", type=int, default=60000, help="records per scenario")
    ap.add_argument("--prefix", default="sluice-kc", help="topic name prefix")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args(argv)
    args.sluice = os.path.abspath(args.sluice)
    only = set(args.only.split(",")) if args.only else None
    if shutil.which("kcat") is None or not kr.kafka_ready():
        why = "kcat is missing" if shutil.which("kcat") is None else kr.kafka_missing()
        return harness.Checks().missing(why)
    tmp = tempfile.mkdtemp(prefix="sluice-kc-")
    t = Test(args, tmp)
    print(f"     work dir {tmp}, run id {t.token}", flush=True)
    try:
        t.run_scenarios(["1", "2", "3", "4", "5"], only)
    finally:
        t.kill_leftovers()
        if not args.keep:
            kr.delete_topics(f"{args.prefix}-{t.token}-.*")
        t.keep_or_remove(tmp, args.keep)
    return t.finish()


if __name__ == "__main__":
    sys.exit(main())
