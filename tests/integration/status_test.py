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

The pipeline runs in update mode with `allowed_lateness`, so the SQLite sink keeps its state per
partition (tasks), and each process names its consumer (`kafka.client.id` = CLIENT). Each
partition's task must be owned by the pid of the process whose client id Kafka's tool shows for
the partition, with the committed max event time == the highest event time of the records
before the committed position (read back from the broker with kcat, decoded by the reference
decoder of recompute_recruitment.py) and the watermark == that minus watermark_delay; the text
form shows the same pid and watermark. After SIGTERM of both: every task released (owner null,
`task owner -`), its progress that of the final positions. A copy of the pipeline without
lateness (no state per partition), run to the end with --until-caught-up, shows no tasks
("task" null, no task lines) and committed == the end of every partition.

A broker that does not answer (or no kcat, or no Kafka jars): SKIP (exit 77), a FAIL when
CI=true. Topics PREFIX_<run id>_*; deleted at the end unless --keep.
"""

import argparse
import datetime as dt
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
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tools"))
import harness  # noqa: E402
import kafka_util as kr  # noqa: E402
import recompute_recruitment as rr  # noqa: E402


def kafka_dir():
    for cand in (os.environ.get("SLUICE_SERVICES_DIR", ""), os.path.join(kr.REPO, "build", "services"),
                 "/work/main/build/services"):
        if cand and os.path.isdir(os.path.join(cand, "kafka", "libs")):
            return os.path.join(cand, "kafka")
    return None


def group_assignment(group, only_topic):
    """({(topic, partition): consumer id}, {(topic, partition): client id}, the tool's output)
    from Kafka's ConsumerGroupCommand (the group reads only_topic)."""
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
    owners, clients = {}, {}
    for line in out.splitlines():
        # GROUP CONSUMER-ID HOST CLIENT-ID #PARTITIONS ASSIGNMENT
        cols = line.split()
        if len(cols) < 6 or cols[0] != group:
            continue
        member, client, assignment = cols[1], cols[3], " ".join(cols[5:])
        # "topic(0,1)"; Kafka 3.9 leaves the topic out ("(0,1)") when the group reads one topic.
        for topic, parts in re.findall(r"([^\s(,]*)\(([\d,]*)\)", assignment):
            for p in parts.split(","):
                if p:
                    owners[(topic or only_topic, int(p))] = member
                    clients[(topic or only_topic, int(p))] = client
    return owners, clients, out


WATERMARK_DELAY_MICROS = 10_000_000  # the pipeline's watermark_delay = "10s" (with_lateness)
GREGORIAN_OFFSET = 0x01B21DD213814000  # 100 ns ticks from 1582-10-15 to 1970-01-01


def with_lateness(path):
    """Sets [aggregate] allowed_lateness and watermark_delay in the pipeline at path, so the
    update-mode runner keeps state per task (_sluice_tasks) in the SQLite sink."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if "\n[aggregate]\n" not in text:
        raise RuntimeError(f"{path}: no [aggregate] section")
    text = text.replace("\n[aggregate]\n", '\n[aggregate]\nallowed_lateness = "1h"\nwatermark_delay = "10s"\n', 1)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def event_micros(line):
    """The event time (µs since the epoch, UTC) the recruitment pipeline gives the record, or
    None when it never reaches the aggregate (ignored, dead-lettered): recomputed with the
    reference decoder of recompute_recruitment.py, independently of sluice."""
    try:
        rec = rr.decode_json_record(line)
    except rr.DeadLetter:
        return None
    if rec["custom_track"] not in rr.COUNTED_TRACKS or rec["job_id"] is None:
        return None
    text = rec["create_time"]
    if text is not None and rr.CANONICAL_UUID_RE.match(text):
        u = uuid.UUID(text)
        if u.version == 1:
            return (u.time - GREGORIAN_OFFSET) // 10
    t = rr.parse_time(rec["ts"])
    if t is None:
        return None
    return int(t.replace(tzinfo=dt.timezone.utc).timestamp()) * 1_000_000


def topic_event_times(topic):
    """{partition: [(offset, event µs or None)]} read back from the broker with kcat."""
    rc, out = harness.run(["kcat", "-C", "-b", kr.BROKER, "-t", topic, "-o", "beginning", "-e", "-q",
                           "-f", "%p\t%o\t%s\n"], timeout=120)
    if rc != 0:
        raise RuntimeError(f"kcat -C {topic} exited {rc}: {out[-800:]}")
    parts = {}
    for line in out.splitlines():
        if not line.strip():
            continue
        p, o, payload = line.split("\t", 2)
        parts.setdefault(int(p), []).append((int(o), event_micros(payload)))
    return parts


def expected_progress(records, committed):
    """{partition: (max event time, watermark)} up to each committed position (None: no record
    with an event time before it)."""
    out = {}
    for p, pos in committed.items():
        times = [t for o, t in records.get(p, []) if o < pos and t is not None]
        out[p] = (max(times), max(times) - WATERMARK_DELAY_MICROS) if times else (None, None)
    return out


def check_tasks(report, topic, partitions, expected, owner_pid, problems, when):
    """Checks each partition's "task" in `sluice status --format json`: owner (pid owner_pid[p],
    or None: released), the committed max event time and watermark == expected[p]."""
    rows = {(r["topic"], r["partition"]): r for r in report["partitions"]}
    for p in range(partitions):
        task = (rows.get((topic, p)) or {}).get("task")
        if task is None:
            problems.append(f"{when}: [{p}] has no task: {rows.get((topic, p))}")
            continue
        want_pid = owner_pid.get(p)
        if want_pid is None:
            if task["owner"] is not None:
                problems.append(f"{when}: [{p}] owner {task['owner']!r}, expected none (released)")
        elif not re.search(rf" pid {want_pid}$", task["owner"] or ""):
            problems.append(f"{when}: [{p}] owner {task['owner']!r}, expected the process with pid {want_pid}")
        max_t, wm = expected[p]
        if task["max_event_time_micros"] != max_t or task["watermark_micros"] != wm:
            problems.append(f"{when}: [{p}] max event time {task['max_event_time_micros']} watermark "
                            f"{task['watermark_micros']}, expected {max_t} and {wm} (records before the "
                            f"committed position)")
        if wm is not None and task["watermark"] != iso(wm):
            problems.append(f"{when}: [{p}] watermark shown as {task['watermark']!r}, expected {iso(wm)}")


def iso(micros):
    t = dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=micros)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ" if micros % 1_000_000 == 0 else "%Y-%m-%dT%H:%M:%S.%fZ")


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
        # Each process names its consumer (CLIENT), so Kafka's tool says which process reads what.
        pipe = kr.pipeline_copy(os.path.join(self.tmp, "status.toml"), name, name, "sqlite", "events",
                                kr.slow_consumer(3000) + ('"kafka.client.id" = "${CLIENT}"',))
        with_lateness(pipe)
        db = os.path.join(self.tmp, "status.db")
        variables = {"TRACKING": f"kafka://{kr.BROKER}/{topic}", "JOBS": kr.JOBS, "SINK": f"sqlite:{db}"}
        status_args = [self.args.sluice, "status", pipe]
        for k, v in dict(variables, DLQ=os.path.join(self.tmp, "0.dlq"), CLIENT="status").items():
            status_args += ["--var", f"{k}={v}"]
        procs = []
        for i in range(2):
            v = dict(variables, DLQ=os.path.join(self.tmp, f"{i}.dlq"), CLIENT=f"{name}-member{i}")
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
            st = subprocess.Popen(status_args + ["--format", "json"], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
            owners, clients, tool_out = group_assignment(name, topic)
            so, se = st.communicate(timeout=60)
            stored = self.positions(db, name)
            ends = kr.end_offsets(topic, 4)
            rc, frozen_text = harness.run(status_args, timeout=60)
        finally:
            for p in procs:
                p.send_signal(signal.SIGCONT)
        # Which process reads each partition: the client id Kafka's tool shows for its member.
        pids = {f"{name}-member{i}": procs[i].pid for i in range(2)}
        reader_pid = {p: pids.get(clients.get((topic, p))) for p in range(4)}
        records = topic_event_times(topic)
        expected = expected_progress(records, stored)
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
            # The tasks: each owned by the process that reads the partition, with the event-time
            # progress of the records before the committed position.
            if sorted(set(reader_pid.values()) - {None}) != sorted(pids.values()):
                problems.append(f"Kafka's tool shows the readers {clients}, expected both of {sorted(pids)}")
            check_tasks(report, topic, 4, expected, reader_pid, problems, "running")
        # Text: one line per partition, named topic[p], and under it its task with its owner.
        if rc != 0 or any(f"{topic}[{p}]" not in frozen_text for p in range(4)):
            problems.append(f"--format text: exit {rc}, output:\n{frozen_text[-1200:]}")
        for p in range(4):
            m = re.search(rf"{re.escape(topic)}\[{p}\][^\n]*\n\s+task owner \S+@\S+ pid (\d+)  fence \d+  "
                          rf"watermark (\S+)", frozen_text)
            want = (str(reader_pid.get(p)), iso(expected[p][1]) if expected[p][1] else "-")
            if not m or m.groups() != want:
                problems.append(f"--format text: [{p}] task line {m.groups() if m else None}, expected "
                                f"pid {want[0]} watermark {want[1]}:\n{frozen_text[-1200:]}")
        for p in procs:
            rc = harness.stop(p, signal.SIGTERM, 60)
            if rc != 0:  # then its tasks cannot have been released: say why
                problems.append(f"{p.label}: exit {rc} after SIGTERM (expected 0)\n{self.tail(p)}")
        # After a clean stop every task is released, its progress that of the last commit.
        st = subprocess.run(status_args + ["--format", "json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, timeout=60)
        if st.returncode != 0:
            problems.append(f"sluice status after the stop exited {st.returncode}: {st.stderr[-1500:]}")
        else:
            stored = self.positions(db, name)
            check_tasks(json.loads(st.stdout), topic, 4, expected_progress(records, stored), {}, problems,
                        "stopped")
        rc, text = harness.run(status_args, timeout=60)
        for p in range(4):
            if not re.search(rf"{re.escape(topic)}\[{p}\][^\n]*\n\s+task owner -  fence", text):
                problems.append(f"--format text after the stop: [{p}] not shown as released:\n{text[-1200:]}")
        # A pipeline without state per partition (update mode, no lateness, no hold): no task
        # rows, so every partition's "task" is null and the text has no task lines.
        plain = kr.pipeline_copy(os.path.join(self.tmp, "plain.toml"), name + "_plain", name + "_plain", "sqlite",
                                 "events")
        plain_vars = dict(variables, SINK=f"sqlite:{os.path.join(self.tmp, 'plain.db')}",
                          DLQ=os.path.join(self.tmp, "plain.dlq"))
        plain_args = [a for k, v in plain_vars.items() for a in ("--var", f"{k}={v}")]
        rc, text = harness.run([self.args.sluice, "run", plain, "--until-caught-up", "--quiet"] + plain_args,
                               timeout=180)
        if rc != 0:
            problems.append(f"the pipeline without tasks exited {rc}: {text[-800:]}")
        else:
            st = subprocess.run([self.args.sluice, "status", plain, "--format", "json"] + plain_args,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
            rows = json.loads(st.stdout)["partitions"] if st.returncode == 0 else []
            if len(rows) != 4 or any(r["task"] is not None for r in rows) or \
                    any(r["committed"] != ends[r["partition"]] for r in rows):
                problems.append(f"without tasks: exit {st.returncode}, partitions {rows} (expected 4, each "
                                f"with task null and committed == the end), {st.stderr[-600:]}")
            rc, text = harness.run([self.args.sluice, "status", plain] + plain_args, timeout=60)
            if rc != 0 or "task owner" in text or any(f"{topic}[{p}]" not in text for p in range(4)):
                problems.append(f"--format text without tasks: exit {rc}, output:\n{text[-1200:]}")
        # A source that is not Kafka: exit 2.
        rc, text = harness.run([self.args.sluice, "status", pipe, "--var", f"TRACKING={out}", "--var",
                                f"JOBS={kr.JOBS}", "--var", f"SINK=sqlite:{db}", "--var", "CLIENT=x"],
                               timeout=60)
        if rc != 2:
            problems.append(f"a file source: exit {rc} (expected 2): {text[-600:]}")
        self.result("status: owners == Kafka's group description, committed == the sink, end == "
                    "kcat -Q, lag == end - committed; task owner == the reading process (released "
                    "after a stop), watermark == max event time before the position - delay", problems)


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
