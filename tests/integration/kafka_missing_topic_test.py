#!/usr/bin/env python3
"""A Kafka source never creates the topic it reads, and says so when the topic is not there.

    kafka_missing_topic_test.py --sluice build/sluice [--only 1,2,3] [--keep] [--prefix ktopic]

The broker of `make services` has auto.create.topics.enable=true (as many dev brokers do): a
client that asks for one topic by name creates it. Whether a topic exists is read from the list
of ALL topics (`kcat -L`, never `kcat -L -t NAME`, which would create it).

 1. a typo: topic PREFIX_<id>_orders exists (3 records); a pipeline reading PREFIX_<id>_ordrs
    with --until-caught-up exits 1 with `topic "..._ordrs" does not exist on BROKER (did you
    mean "..._orders"?)`, and afterwards the typo topic does not exist; `sluice verify` of the
    same pipeline fails the same way.
 2. a plain run started before its topic exists: it logs the warning (without stopping), the
    topic still does not exist while it runs, /metrics shows
    sluice_kafka_missing_topic_checks_total >= 1; then the topic is created (scripts/kafka-topics.sh,
    2 partitions) and 6 records produced with kcat: the run writes exactly those 6 values (read
    from the sink, compared with what was produced), and SIGTERM ends it with exit 0.
 3. a pattern matching no topic, with --until-caught-up: exit 1 naming the pattern; no topic
    matching it appears.

A broker that does not answer (or no kcat): SKIP (exit 77), a FAIL when CI=true. Topics are named
PREFIX_<run id>_*; they are deleted at the end unless --keep.
"""

import argparse
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tools"))
import harness  # noqa: E402
import kafka_util as kr  # noqa: E402

BROKER = harness.BROKER


def all_topics():
    """Every topic of the cluster, from the list of all topics (names no topic: creates none)."""
    rc, out = harness.run(["kcat", "-b", BROKER, "-L", "-m", "10"], timeout=30)
    if rc != 0:
        raise RuntimeError(f"kcat -L exited {rc}: {out[-800:]}")
    return set(re.findall(r'topic "([^"]+)" with', out))


def missing_checks(port):
    """sluice_kafka_missing_topic_checks_total from /metrics (None: not there)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
            text = r.read().decode()
    except OSError:
        return None
    m = re.search(r"^sluice_kafka_missing_topic_checks_total\{[^}]*\} (\d+)", text, re.M)
    return int(m.group(1)) if m else None


class Test(harness.SluiceTest):
    def topic(self, what):
        return f"{self.args.prefix}_{self.token}_{what}"

    def pipeline(self, label, source_lines):
        path = os.path.join(self.tmp, f"{label}.toml")
        db = os.path.join(self.tmp, f"{label}.db")
        with open(path, "w", encoding="utf-8") as f:
            f.write('select = ["x"]\n[pipeline]\n'
                    f'name = "ktopic_{label}_{self.token}"\n[source]\n'
                    + "".join(line + "\n" for line in source_lines)
                    + 'format = "json"\n[source.fields]\nx = "int"\n'
                    f'[sink]\nuri = "sqlite:{db}"\ntable = "t"\n')
        return path, db

    def produce(self, topic, values):
        data = "".join(f'{{"x": {v}}}\n' for v in values).encode()
        p = subprocess.run(["kcat", "-P", "-b", BROKER, "-t", topic], input=data,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        if p.returncode != 0:
            raise RuntimeError(f"kcat -P {topic}: {p.stdout.decode(errors='replace')[-800:]}")

    def scenario_1(self):
        good, typo = self.topic("orders"), self.topic("ordrs")
        kr.create_topic(good, 1)
        self.produce(good, [1, 2, 3])
        path, _ = self.pipeline("typo", [f'uri = "kafka://{BROKER}/{typo}"'])
        expected = f'topic "{typo}" does not exist on {BROKER} (did you mean "{good}"?)'
        problems = []
        for command, extra in (("run", ["--until-caught-up"]), ("verify", [])):
            r = harness.run_captured(harness.sluice_args(self.args.sluice, command, path, extra=extra), 180)
            if r.returncode != 1:
                problems.append(f"{command}: exit {r.returncode}, expected 1\n{r}")
            if expected not in r.stdout + r.stderr:
                problems.append(f"{command}: the output lacks {expected!r}\n{r}")
        topics = all_topics()
        if good not in topics:
            problems.append(f"{good} is not in the topic list: the listing does not work")
        if typo in topics:
            problems.append(f"the typo topic {typo} exists now: sluice created it")
        self.result("1 a typo in the topic: exit 1, did-you-mean, the topic is not created", problems)

    def scenario_2(self):
        later = self.topic("later")
        path, db = self.pipeline("later", [f'uri = "kafka://{BROKER}/{later}"'])
        port = harness.free_port()
        run = self.start_run(path, {}, "later", ["--http", f"127.0.0.1:{port}"])
        problems = []
        warning = f'topic "{later}" does not exist on {BROKER}'
        deadline = time.monotonic() + 60
        while warning not in self.text(run) and run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        if warning not in self.text(run):
            problems.append(f"no warning {warning!r} within 60 s\n{self.tail(run)}")
        time.sleep(3)
        if run.poll() is not None:
            problems.append(f"the run stopped (exit {run.returncode}) instead of waiting\n{self.tail(run)}")
        if later in all_topics():
            problems.append(f"{later} exists before anyone created it: sluice created it")
        checks = missing_checks(port)
        if checks is None or checks < 1:
            problems.append(f"/metrics: sluice_kafka_missing_topic_checks_total is {checks}, expected >= 1")
        if not problems:
            kr.create_topic(later, 2)
            values = [7, 11, 13, 17, 19, 23]
            self.produce(later, values)
            got = []
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and run.poll() is None:
                try:
                    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
                    got = sorted(v for (v,) in con.execute("SELECT x FROM t"))
                    con.close()
                except sqlite3.Error:
                    got = []
                if len(got) >= len(values):
                    break
                time.sleep(1)
            if got != sorted(values):
                problems.append(f"the sink holds {got}, expected {sorted(values)}\n{self.tail(run, 30)}")
        rc = harness.stop(run, signal.SIGTERM, 60)
        if rc != 0:
            problems.append(f"SIGTERM: exit {rc}\n{self.tail(run)}")
        self.result("2 a run started before its topic exists warns, then reads it once created", problems)

    def scenario_3(self):
        prefix = self.topic("nomatch")
        path, _ = self.pipeline("nomatch", [f'uri = "kafka://{BROKER}"', f'topic_pattern = "^{prefix}_.*"'])
        r = harness.run_captured(harness.sluice_args(self.args.sluice, "run", path, extra=["--until-caught-up"]), 180)
        problems = []
        if r.returncode != 1:
            problems.append(f"exit {r.returncode}, expected 1\n{r}")
        expected = f"no topic on {BROKER} matches ^{prefix}_.*"
        if expected not in r.stdout + r.stderr:
            problems.append(f"the output lacks {expected!r}\n{r}")
        created = [t for t in all_topics() if t.startswith(prefix)]
        if created:
            problems.append(f"topics matching the pattern appeared: {created}")
        self.result("3 a pattern matching no topic under --until-caught-up: exit 1", problems)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--only", help="comma-separated scenario numbers (1-3)")
    ap.add_argument("--prefix", default="ktopic", help="topic name prefix")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args(argv)
    args.sluice = os.path.abspath(args.sluice)
    only = set(args.only.split(",")) if args.only else None
    if shutil.which("kcat") is None or not kr.kafka_ready():
        why = "kcat is missing" if shutil.which("kcat") is None else kr.kafka_missing()
        return harness.Checks().missing(why)
    tmp = tempfile.mkdtemp(prefix="sluice-ktopic-")
    t = Test(args, tmp)
    print(f"     work dir {tmp}, run id {t.token}", flush=True)
    try:
        t.run_scenarios(["1", "2", "3"], only)
    finally:
        t.kill_leftovers()
        if not args.keep:
            kr.delete_topics(f"{args.prefix}_{t.token}_.*")
        t.keep_or_remove(tmp, args.keep)
    return t.finish()


if __name__ == "__main__":
    sys.exit(main())
