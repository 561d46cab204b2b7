#!/usr/bin/env python3
"""`sluice status PIPELINE` shows who reads each partition, the committed position and the lag.

    status_test.py --sluice build/sluice [--count 20000] [--keep] [--prefix topics]

Two processes of the recruitment pipeline (one group, one SQLite sink, a slow consumer so they
are still reading) share a 4-partition topic. Both are frozen with SIGSTOP (they stay members of
the group until their session times out, and commit nothing meanwhile); then `sluice status
--format json` and, independently, Kafka's own ConsumerGroupCommand (`--describe --members
--verbose`, from the jars of `make services`), the sink's `_sluice_positions` and `kcat -Q`
are read. Checks: each partition's owner (member id) == the group's assignment as Kafka's tool
prints it, and both processes own some; committed == the sink's stored position; end == the end
offset kcat reads; lag == end - committed. Then `--format text` names every partition, and a
pipeline whose source is not Kafka exits 2.

A broker that does not answer (or no kcat, or no Kafka jars): SKIP (exit 77), a FAIL when
CI=true. Topics PREFIX_<run id>_*; deleted at the end unless --keep.
"""

import argparse
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tools"))
import harness  # noqa: E402
import kafka_util as kr  # noqa: E402


def kafka_dir():
    for cand in (os.environ.get("SLUICE_SERVICES_DIR", ""), os.path.join(kr.REPO, "build", "services"),
                 "/work/main/build/services"):
        if cand and os.path.isdir(os.path.join(cand, "kafka", "libs")):
            return os.path.join(cand, "kafka")
    return None


def group_assignment(group, only_topic):
    """{(topic, partition): consumer id} from Kafka's ConsumerGroupCommand (the group reads
    only_topic)."""
    kd = kafka_dir()
    java = os.path.join(kd, "java")
    cmd = [java if os.path.exists(java) else "java", "-Xmx256m", "-XX:TieredStopAtLevel=1",
           "-XX:+UseSerialGC",
           f"-Dlog4j.configuration=file:{os.path.join(kr.REPO, 'scripts', 'kafka', 'tools-log4j.properties')}",
           "-cp", os.path.join(kd, "libs", "*"), "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
           "--bootstrap-server", kr.BROKER, "--describe", "--group", group, "--members", "--verbose"]
    rc, out = harness.run(cmd, timeout=60)
    if rc != 0:
        raise RuntimeError(f"ConsumerGroupCommand exited {rc}: {out[-1500:]}")
    owners = {}
    for line in out.splitlines():
        cols = line.split()
        if len(cols) < 6 or cols[0] != group:
            continue
        member, assignment = cols[1], " ".join(cols[5:])
        # "topic(0,1)"; Kafka 3.9 leaves the topic out ("(0,1)") when the group reads one topic.
        for topic, parts in re.findall(r"([^\s(,]*)\(([\d,]*)\)", assignment):
            for p in parts.split(","):
                if p:
                    owners[(topic or only_topic, int(p))] = member
    return owners, out


class Test(harness.SluiceTest):
    def positions(self, db, name):
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
        try:
            rows = con.execute("SELECT partition, offset FROM _sluice_positions WHERE pipeline = ? "
                               "AND source = ?", (name, kr.SOURCE)).fetchall()
        finally:
            con.close()
        return {int(p): int(o) for p, o in rows}

    def run_test(self):
        topic = f"{self.args.prefix}_{self.token}_status"
        out = os.path.join(self.tmp, "in.ndjson")
        rc, text = harness.run([self.args.sluice, "generate", "--profile", "recruitment", "--to", out,
                                "--count", str(self.args.count), "--rate", "0", "--seed", "16",
                                "--jobs", kr.JOBS], timeout=120)
        if rc != 0:
            raise RuntimeError(f"sluice generate exited {rc}: {text[-800:]}")
        kr.create_topic(topic, 4)
        keyed = os.path.join(self.tmp, "in.keyed")
        kr.produce(topic, 4, keyed, kr.keyed_file([out], keyed), batch=1000)
        name = f"kt_status_{self.token}"
        pipe = kr.pipeline_copy(os.path.join(self.tmp, "status.toml"), name, name, "sqlite", "events",
                                kr.slow_consumer(3000))
        db = os.path.join(self.tmp, "status.db")
        variables = {"TRACKING": f"kafka://{kr.BROKER}/{topic}", "JOBS": kr.JOBS, "SINK": f"sqlite:{db}"}
        procs = []
        for i in range(2):
            v = dict(variables, DLQ=os.path.join(self.tmp, f"{i}.dlq"))
            procs.append(self.start_run(pipe, v, f"member{i}", ["--workers", "1"]))
            if i == 0:
                # The first creates the sink's tables (two SQLite sinks creating them at once
                # race), then the second joins the group.
                harness.wait_for(lambda: procs[0].poll() is not None or "assigned" in self.text(procs[0]),
                                 60, 0.2)
        problems = []

        def settled():
            # Both members hold partitions and every partition has a committed position.
            if any(p.poll() is not None for p in procs):
                return True
            if not all("assigned" in self.text(p) for p in procs):
                return False
            try:
                pos = self.positions(db, name)
            except sqlite3.Error:
                return False
            return all(pos.get(p, 0) > 0 for p in range(4))

        if not harness.wait_for(settled, 90, 0.5) or any(p.poll() is not None for p in procs):
            self.result("status: setup", ["the two members did not both read within 90 s"] +
                        [self.tail(p) for p in procs])
            return
        time.sleep(3)  # past any rebalance the second member's join caused
        for p in procs:
            p.send_signal(signal.SIGSTOP)
        try:
            args = [self.args.sluice, "status", pipe, "--format", "json"]
            for k, v in dict(variables, DLQ=os.path.join(self.tmp, "0.dlq")).items():
                args += ["--var", f"{k}={v}"]
            st = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            owners, tool_out = group_assignment(name, topic)
            so, se = st.communicate(timeout=60)
            stored = self.positions(db, name)
            ends = kr.end_offsets(topic, 4)
        finally:
            for p in procs:
                p.send_signal(signal.SIGCONT)
        if st.returncode != 0:
            problems.append(f"sluice status exited {st.returncode}: {se[-1500:]}")
        else:
            report = json.loads(so)
            rows = {(r["topic"], r["partition"]): r for r in report["partitions"]}
            if sorted(rows) != [(topic, p) for p in range(4)]:
                problems.append(f"status lists {sorted(rows)}, expected the 4 partitions of {topic}")
            members = set()
            for p in range(4):
                r = rows.get((topic, p))
                if r is None:
                    continue
                got_owner = (r["owner"] or {}).get("member_id")
                if got_owner != owners.get((topic, p)):
                    problems.append(f"[{p}] owner {got_owner}, Kafka's tool says {owners.get((topic, p))}")
                members.add(got_owner)
                if r["committed"] != stored.get(p):
                    problems.append(f"[{p}] committed {r['committed']}, the sink holds {stored.get(p)}")
                if r["end"] != ends[p]:
                    problems.append(f"[{p}] end {r['end']}, kcat -Q says {ends[p]}")
                if stored.get(p) is not None and r["lag"] != ends[p] - stored[p]:
                    problems.append(f"[{p}] lag {r['lag']}, expected {ends[p] - stored[p]}")
            if not owners:
                problems.append(f"cannot read Kafka's tool output:\n{tool_out[-1500:]}")
            if len(members - {None}) != 2:
                problems.append(f"the partitions' owners are {members}, expected the two processes\n"
                                f"{tool_out[-1500:]}")
            if not any(0 < ends[p] - stored.get(p, 0) for p in range(4)):
                problems.append("every partition was read to its end: the lag check checked nothing")
        # Text: one line per partition, named topic[p].
        rc, text = harness.run([self.args.sluice, "status", pipe] +
                               [a for k, v in dict(variables, DLQ="x.dlq").items() for a in ("--var", f"{k}={v}")],
                               timeout=60)
        if rc != 0 or any(f"{topic}[{p}]" not in text for p in range(4)):
            problems.append(f"--format text: exit {rc}, output:\n{text[-1200:]}")
        for p in procs:
            harness.stop(p, signal.SIGTERM, 60)
        # A source that is not Kafka: exit 2.
        rc, text = harness.run([self.args.sluice, "status", pipe, "--var", f"TRACKING={out}", "--var",
                                f"JOBS={kr.JOBS}", "--var", f"SINK=sqlite:{db}"], timeout=60)
        if rc != 2:
            problems.append(f"a file source: exit {rc} (expected 2): {text[-600:]}")
        self.result("status: owners == Kafka's group description, committed == the sink, end == "
                    "kcat -Q, lag == end - committed", problems)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--count", type=int, default=40000)
    ap.add_argument("--prefix", default="topics")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args(argv)
    args.sluice = os.path.abspath(args.sluice)
    if shutil.which("kcat") is None or not kr.kafka_ready():
        why = "kcat is missing" if shutil.which("kcat") is None else kr.kafka_missing()
        return harness.Checks().missing(why)
    if kafka_dir() is None:
        return harness.Checks().missing("the Kafka jars of `make services` (build/services/kafka/libs) are missing")
    tmp = tempfile.mkdtemp(prefix="sluice-status-")
    t = Test(args, tmp)
    print(f"     work dir {tmp}, run id {t.token}", flush=True)
    try:
        t.run_test()
    except Exception:  # a setup error or a bug in this test
        import traceback
        t.result("status", [traceback.format_exc()])
    finally:
        t.kill_leftovers()
        if not args.keep:
            kr.delete_topics(f"{args.prefix}_{t.token}_.*")
        t.keep_or_remove(tmp, args.keep)
    return t.finish()


if __name__ == "__main__":
    sys.exit(main())
