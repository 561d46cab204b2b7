#!/usr/bin/env python3
"""Kafka sink acceptance test: exactly-once output into a real broker across kill -9.

    kafka_sink_test.py --sluice build/sluice [--kills 5] [--copies 40] [--seed N] [--keep]

Needs the broker of `make services` (127.0.0.1:9092) and kcat (Debian package). Without them:
exit 77 (a loud SKIP), or a FAIL when CI=true.

Input: the seed tracking log (tracking.csv, 6,766 rows) read here with Python's csv module,
copied --copies times, each record given a unique `seq`; the expected output is computed here
from that input, never from sluice.

 1. file -> kafka: the records as an NDJSON file; a select pipeline (seq, create_time, job_id,
    bid, custom_track) into topic ksink-<run>-file-out keyed by seq. sluice is killed with
    SIGKILL up to --kills times, each 0-0.5 s after the positions topic (read with kcat) shows
    progress beyond the previous run's, restarted each time; the last run is left to finish
    (exit 0). At least one restart must resume from committed positions.
 2. kafka -> kafka: the first 6 copies published with kcat to a 3-partition topic; a pipeline
    with a Kafka source (slow consumer, so kills land mid-run) and the sink committing the
    consumed offsets to the source's group too (consumer_group/consumer_topic). Killed the same
    way; a last `run --until-caught-up` exits 0.

Checks for each: a read_committed reader (kcat -X isolation.level=read_committed) sees every
input record exactly once, with key = seq and the JSON object equal to the input's fields; a
read_uncommitted reader sees at least as many (the surplus is records of transactions aborted
by the kills, which must not be visible to read_committed readers, and is reported). For 2,
the source's group has nothing left to consume (its committed offsets are the end).
"""

import argparse
import csv
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "tools"))
import harness  # noqa: E402
from harness import BROKER, SEED_TRACKING, run_split as run  # noqa: E402
from kafka_util import kafka_missing, topics_tool  # noqa: E402

FIELDS = ["seq", "create_time", "job_id", "bid", "custom_track"]

T = harness.Checks()
check = T.check


def to_int(text):
    text = text.strip()
    return int(text) if text else None


def load_input(copies):
    """The input records, computed from the seed CSV independently of sluice."""
    with open(SEED_TRACKING, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    records = []
    for c in range(copies):
        for i, r in enumerate(rows):
            records.append({"seq": c * len(rows) + i, "create_time": r["create_time"],
                            "job_id": to_int(r["job_id"]), "bid": to_int(r["bid"]),
                            "custom_track": r["custom_track"]})
    return records


def normalized(rec):
    # A blank string may be read back as "" or null; both mean "no value" in the input.
    return tuple((k, "" if rec.get(k) is None and k in ("create_time", "custom_track") else rec.get(k))
                 for k in FIELDS)


def read_topic(topic, isolation):
    """[(partition, key, value)] of every record of `topic` visible at `isolation`."""
    rc, out, err = run(["kcat", "-C", "-b", BROKER, "-t", topic, "-e", "-q", "-o", "beginning",
                        "-X", f"isolation.level={isolation}", "-f", "%p\t%k\t%s\n"], timeout=300)
    if rc != 0:
        raise RuntimeError(f"kcat -C {topic} failed (rc {rc}): {err[-1500:]}")
    recs = []
    for line in out.split("\n"):
        if not line:
            continue
        p, k, v = line.split("\t", 2)
        recs.append((int(p), k, v))
    return recs


def verify(name, topic, records):
    committed = read_topic(topic, "read_committed")
    raw = read_topic(topic, "read_uncommitted")
    expected = {r["seq"]: normalized(r) for r in records}
    seen = Counter()
    bad_key, bad_value, unknown = [], [], []
    for _, key, value in committed:
        try:
            obj = json.loads(value)
        except ValueError:
            bad_value.append(value[:200])
            continue
        seq = obj.get("seq")
        seen[seq] += 1
        if seq not in expected:
            unknown.append(value[:200])
            continue
        if key != str(seq):
            bad_key.append((key, seq))
        if list(obj.keys()) != FIELDS or normalized(obj) != expected[seq]:
            bad_value.append(value[:200])
    dups = {s: n for s, n in seen.items() if n > 1}
    missing = [s for s in expected if s not in seen]
    check(f"{name}: read_committed holds every input record exactly once "
          f"({len(committed)} records, {len(expected)} expected)",
          not dups and not missing and not unknown,
          f"{len(missing)} missing (e.g. {missing[:5]}), {len(dups)} duplicated "
          f"(e.g. {list(dups.items())[:5]}), {len(unknown)} unknown (e.g. {unknown[:2]})")
    check(f"{name}: every key is the record's seq", not bad_key, f"{bad_key[:5]}")
    check(f"{name}: every value is the input's fields as a JSON object", not bad_value, f"{bad_value[:3]}")
    check(f"{name}: read_uncommitted sees at least as many records ({len(raw)} >= {len(committed)})",
          len(raw) >= len(committed))
    if len(raw) > len(committed):
        print(f"     {len(raw) - len(committed)} records of aborted transactions are hidden from "
              "read_committed readers", flush=True)
    else:
        print("     NOTE: no kill landed inside a transaction with records in flight", flush=True)


def start(sluice, pipeline, log_path, extra=()):
    log = open(log_path, "ab")
    return subprocess.Popen([sluice, "run", pipeline, *extra], stdout=log, stderr=subprocess.STDOUT,
                            cwd=REPO), log


def committed_progress(positions_topic):
    """The sum of the source offsets committed in the sink's positions topic (read_committed,
    latest value per key), read with kcat: how far the pipeline has durably got."""
    rc, out, _ = run(["kcat", "-C", "-b", BROKER, "-t", positions_topic, "-e", "-q", "-o", "beginning",
                      "-X", "isolation.level=read_committed", "-f", "%k\t%s\n"], timeout=60)
    latest = {}
    for line in out.split("\n"):
        if line.startswith('["position"') and "\t" in line:
            key, value = line.split("\t", 1)
            if json.loads(key)[2] == "tracking":
                latest[key] = int(value)
    return sum(latest.values())


def kill_loop(name, sluice, pipeline, log_path, kills, rng, positions_topic, total):
    """Runs sluice `kills` times; each run is killed with SIGKILL at a random moment (0-0.5 s)
    after it has committed progress beyond the previous run's, so restarts resume mid-input
    and kills land inside later transactions. Stops early once the committed progress reaches
    `total` (the whole input)."""
    landed = 0
    progress = committed_progress(positions_topic)
    for k in range(kills):
        if progress >= total:
            break
        with open(log_path, "ab") as f:
            f.write(f"\n===== run {k + 1} (killed) =====\n".encode())
        proc, log = start(sluice, pipeline, log_path)
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            now = committed_progress(positions_topic)
            if now > progress:
                progress = now
                break
            time.sleep(0.2)
        time.sleep(rng.uniform(0.0, 0.5))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            landed += 1
        proc.wait()
        log.close()
    print(f"     {name}: {landed} of {kills} kills landed mid-run (committed progress {progress})",
          flush=True)
    return landed


def resumed_check(name, log_path):
    """At least one restart resumed from positions committed by a killed run."""
    with open(log_path, encoding="utf-8", errors="replace") as f:
        counts = [int(n) for n in re.findall(r"(\d+) committed position\(s\) in the sink", f.read())]
    # The count leaves out the dead-letter file's length.
    check(f"{name}: runs after a kill resumed from committed positions ({counts})",
          any(n > 0 for n in counts[1:]))


def write_pipeline(path, name, source_lines, sink_lines, dlq):
    text = ('select = ["seq", "create_time", "job_id", "bid", "custom_track"]\n'
            f'[pipeline]\nname = "{name}"\ncheckpoint_interval = "200ms"\n'
            '[source]\nname = "tracking"\n' + "\n".join(source_lines) + "\n"
            '[source.fields]\nseq = "int64"\ncreate_time = "string"\njob_id = "int64"\n'
            'bid = "int64"\ncustom_track = "string"\n'
            '[sink]\n' + "\n".join(sink_lines) + "\n"
            f'[dead_letter]\npath = "{dlq}"\n')
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def scenario_file(args, work, records, run_id, rng):
    name = f"ksink-{run_id}-file"
    topic = f"ksink-{run_id}-file-out"
    data = os.path.join(work, "tracking.ndjson")
    with open(data, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    pipeline = os.path.join(work, "file.toml")
    write_pipeline(pipeline, name, [f'uri = "{data}"'],
                   [f'uri = "kafka://{BROKER}/{topic}"', 'key = "seq"'],
                   os.path.join(work, "file.dlq.ndjson"))
    log_path = os.path.join(work, "file.log")
    rc, _, err = run([args.sluice, "validate", pipeline], timeout=60)
    if not check("file->kafka: sluice validate accepts the pipeline", rc == 0, err[-1500:]):
        return
    kill_loop("file->kafka", args.sluice, pipeline, log_path, args.kills, rng, topic + ".sluice-positions",
              os.path.getsize(data))
    with open(log_path, "ab") as f:
        f.write(b"\n===== last run =====\n")
    proc, log = start(args.sluice, pipeline, log_path)
    try:
        rc = proc.wait(timeout=300)
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = None
    log.close()
    if not check("file->kafka: the last run finishes with exit 0", rc == 0, f"rc {rc}; see {log_path}"):
        print(open(log_path, encoding="utf-8", errors="replace").read()[-3000:])
        return
    resumed_check("file->kafka", log_path)
    verify("file->kafka", topic, records)


def scenario_kafka(args, work, records, run_id, rng):
    name = f"ksink-{run_id}-kafka"
    in_topic = f"ksink-{run_id}-in"
    topic = f"ksink-{run_id}-kafka-out"
    rc, out = topics_tool("--create", "--topic", in_topic, "--partitions", "3",
                          "--replication-factor", "1", timeout=120)
    if not check(f"kafka->kafka: create input topic {in_topic}", rc == 0, out[-1500:]):
        return
    keyed = os.path.join(work, "keyed.txt")
    with open(keyed, "w", encoding="utf-8") as f:
        for r in records:
            f.write(f"{r['seq']}\t{json.dumps(r)}\n")
    with open(keyed, "rb") as f:
        p = subprocess.run(["kcat", "-P", "-b", BROKER, "-t", in_topic, "-K", "\t", "-z", "none",
                            "-X", "batch.num.messages=1000"], stdin=f, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=300)
    if not check("kafka->kafka: input published with kcat", p.returncode == 0,
                 p.stdout.decode("utf-8", "replace")[-1500:]):
        return
    pipeline = os.path.join(work, "kafka.toml")
    write_pipeline(pipeline, name,
                   [f'uri = "kafka://{BROKER}/{in_topic}"', f'group = "{name}"',
                    '"kafka.session.timeout.ms" = "6000"', '"kafka.fetch.wait.max.ms" = "400"',
                    '"kafka.fetch.min.bytes" = "100000000"', '"kafka.max.partition.fetch.bytes" = "1"'],
                   [f'uri = "kafka://{BROKER}/{topic}"', 'key = "seq"',
                    f'consumer_group = "{name}"', f'consumer_topic = "{in_topic}"'],
                   os.path.join(work, "kafka.dlq.ndjson"))
    log_path = os.path.join(work, "kafka.log")
    kill_loop("kafka->kafka", args.sluice, pipeline, log_path, args.kills, rng, topic + ".sluice-positions",
              len(records))
    with open(log_path, "ab") as f:
        f.write(b"\n===== last run (--until-caught-up) =====\n")
    proc, log = start(args.sluice, pipeline, log_path, ["--until-caught-up"])
    try:
        rc = proc.wait(timeout=400)
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = None
    log.close()
    if not check("kafka->kafka: the --until-caught-up run exits 0", rc == 0, f"rc {rc}; see {log_path}"):
        print(open(log_path, encoding="utf-8", errors="replace").read()[-3000:])
        return
    resumed_check("kafka->kafka", log_path)
    verify("kafka->kafka", topic, records)
    # The group's committed offsets are the end: a group member has nothing left to read.
    rc, out, err = run(["kcat", "-b", BROKER, "-G", name, "-e", "-q", "-f", "%o\n",
                        "-X", "auto.offset.reset=earliest", "-X", "enable.auto.commit=false",
                        in_topic], timeout=90)
    left = [line for line in out.split("\n") if line]
    check("kafka->kafka: the source's group has committed offsets at the end of the input",
          rc == 0 and not left, f"rc {rc}, {len(left)} records left to consume; {err[-500:]}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--kills", type=int, default=5)
    ap.add_argument("--copies", type=int, default=60)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--only", default="1,2")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    args.sluice = os.path.abspath(args.sluice)
    problems = []
    if not shutil.which("kcat"):
        problems.append("kcat is not installed (Debian package kcat; scripts/install-deps.sh)")
    elif kafka_missing():
        problems.append(kafka_missing())
    if not os.path.exists(SEED_TRACKING):
        problems.append(f"seed data missing: {SEED_TRACKING}")
    if problems:
        return T.missing("; ".join(problems))
    rng = random.Random(args.seed)
    run_id = f"{args.seed}-{os.getpid()}"
    print(f"seed {args.seed}, topics ksink-{run_id}-*", flush=True)
    records = load_input(args.copies)
    work = tempfile.mkdtemp(prefix="ksink-")
    try:
        only = set(args.only.split(","))
        if "1" in only:
            scenario_file(args, work, records, run_id, rng)
        if "2" in only:
            # The Kafka run uses fewer records: the slow consumer reads about 1000 records per
            # partition per 400 ms.
            scenario_kafka(args, work, records[: 6766 * 6], run_id, rng)
    finally:
        if args.keep or T.failed:
            print(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    if not T.passed and not T.failed:
        check("at least one scenario ran", False, f"--only {args.only}")
    return T.finish()


if __name__ == "__main__":
    sys.exit(main())
