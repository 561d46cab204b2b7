#!/usr/bin/env python3
"""Issue 16's "Seen" scenario, scaled down: lateness judged per partition does not depend on read
speed or on rebalances.

    partition_watermark_test.py --sluice build/sluice [--count 30000] [--seed N] [--keep]

A 6-partition view_log topic (named partwm_viewlog_<pid>) on the broker of `make services`
(127.0.0.1:9092) gets --count viewlog records (examples/viewlog.toml's input) spread over the
partitions at random, none more than 6 s behind the newest record before it (watermark_delay is
10 s, so no record is late under any read order), plus one record per partition an hour later
that makes every earlier window closable. One sluice process reads it with --until-caught-up into
Parquet, its consumer throttled, while two other members of its consumer group (kcat -G) join and
leave during the first seconds: the group rebalances four times, partitions are taken from
sluice and given back later, and sluice reads some partitions long before others.

Checks: sluice exits 0; the rebalances really happened (sluice logged partitions given up and
assigned again); zero records dead-lettered (none late); the Parquet dataset equals the
independent recomputation (tests/tools/recompute_viewlog.py over the records in production order,
--open-at-end: the last hour's windows stay in the state).

Before issue 16's rule, a partition not assigned yet did not hold the watermark back: the
partitions read first dragged it past the others and thousands of records were declared late.

No broker or no kcat: SKIP (exit 77), a FAIL when CI=true.
"""

import argparse
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "tools"))
import harness  # noqa: E402
import recompute_viewlog as rv  # noqa: E402
from harness import BROKER  # noqa: E402
from kafka_util import ensure_kcat, kafka_missing, topics_tool  # noqa: E402
from viewlog_output import compare_output, load_dlq, pipeline_copy  # noqa: E402

VIEWLOG = os.path.join(REPO, "examples", "viewlog.toml")
CAMPAIGNS = os.path.join(REPO, "examples", "data", "campaigns1.csv")
PARTITIONS = 6
MAX_BEHIND = 6.0  # seconds; the pipeline's watermark_delay is 10 s
ASSIGNED = re.compile(r"assigned (\S+)\[(\d+)\]")


def campaign_ids():
    ids = []
    with open(CAMPAIGNS, encoding="utf-8") as f:
        next(f)
        for line in f:
            parts = line.strip().split(",")
            if len(parts) >= 2 and parts[1].strip().isdigit():
                ids.append(int(parts[1]))
    return ids


def generate(tmp, count, seed):
    """Writes the records in production order (all.ndjson) and per partition; returns paths."""
    rng = random.Random(seed)
    ids = campaign_ids()
    base = rv.parse_iso("2026-03-01T00:00:00Z")
    spacing = 10_000  # 10 ms of event time per record
    per_partition = [[] for _ in range(PARTITIONS)]
    ordered = []

    def iso(us):
        return rv.format_micros(us, "%Y-%m-%dT%H:%M:%S.%fZ")

    def record(i, start):
        end = start + rng.randint(1, 120) * 1_000_000
        return ('{"view_id":"v%d","start_timestamp":"%s","end_timestamp":"%s","campaign_id":%d}'
                % (i, iso(start), iso(end), rng.choice(ids)))

    for i in range(count):
        # Never more than MAX_BEHIND behind the newest record produced before it.
        start = base + i * spacing - rng.randint(0, int(MAX_BEHIND * 1_000_000) - spacing)
        line = record(i, start)
        ordered.append(line)
        per_partition[rng.randrange(PARTITIONS)].append(line)
    last = base + count * spacing + 3600 * 1_000_000
    for p in range(PARTITIONS):
        line = record(count + p, last)
        ordered.append(line)
        per_partition[p].append(line)
    all_path = os.path.join(tmp, "all.ndjson")
    with open(all_path, "w", encoding="utf-8") as f:
        f.write("\n".join(ordered) + "\n")
    paths = []
    for p, lines in enumerate(per_partition):
        path = os.path.join(tmp, f"p{p}.ndjson")
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        paths.append(path)
    return all_path, paths


def group_member(topic, group, log):
    """A kcat balanced consumer in `group`: a member that joins, takes partitions, and leaves on
    SIGINT."""
    return subprocess.Popen(["kcat", "-b", BROKER, "-G", group, "-q", "-o", "beginning",
                             "-X", "session.timeout.ms=6000", topic],
                            stdout=subprocess.DEVNULL, stderr=log)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--count", type=int, default=30000)
    ap.add_argument("--seed", type=int, default=16)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args(argv)
    sluice = os.path.abspath(args.sluice)

    t = harness.Checks()
    skip = t.missing

    try:
        import pyarrow.dataset  # noqa: F401
    except ImportError:
        return skip(f"pyarrow is not importable by {sys.executable} (use the project venv)")
    why = ensure_kcat()
    if why:
        return skip(why)
    why = kafka_missing()
    if why:
        return skip(why)

    tmp = tempfile.mkdtemp(prefix="sluice-partwm-")
    token = f"{os.getpid()}"
    topic = f"partwm_viewlog_{token}"
    group = f"partwm-viewlog-{token}"
    problems, notes = [], []
    members = []
    try:
        rc, out = topics_tool("--create", "--topic", topic, "--partitions", str(PARTITIONS),
                              "--replication-factor", "1")
        if rc != 0:
            t.result("setup", [f"kafka-topics.sh --create exited {rc}: {out[-1500:]}"])
            return t.finish()
        all_path, paths = generate(tmp, args.count, args.seed)
        for p, path in enumerate(paths):
            with open(path, "rb") as f:
                # Small producer batches: the throttled consumer below fetches one per partition
                # per 100 ms, so reading takes seconds and the rebalances land mid-read.
                r = subprocess.run(["kcat", "-P", "-b", BROKER, "-t", topic, "-p", str(p), "-z",
                                    "none", "-X", "batch.num.messages=100"], stdin=f,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
            if r.returncode != 0:
                t.result("setup", [f"kcat -P exited {r.returncode}: {r.stdout[-800:]!r}"])
                return t.finish()
        expected = rv.recompute([all_path], CAMPAIGNS, open_at_end=True)
        if expected["late"] != 0 or expected["dead_letters"]:
            t.result("setup", [f"the generated input is not what the test needs: the recomputation has "
                  f"{expected['late']} late record(s), {len(expected['dead_letters'])} dead letters"])
            return t.finish()
        print(f"     {args.count + PARTITIONS} records on {PARTITIONS} partitions of {topic}: "
              f"{len(expected['rows'])} closed windows, {expected['open_windows']} left open",
              flush=True)

        pipe = pipeline_copy(os.path.join(tmp, "viewlog-kafka.toml"), "250ms", (
            f'group = "{group}"', '"kafka.session.timeout.ms" = "6000"',
            '"kafka.fetch.wait.max.ms" = "100"', '"kafka.fetch.min.bytes" = "100000000"',
            '"kafka.max.partition.fetch.bytes" = "1"'))
        # A name of its own: viewlog repartitions over the 6 partitions, and its stage one keeps its
        # positions in the Kafka topic <name>-repartition.sluice-positions, where the shipped
        # name would meet other runs' (another topic, another partition count).
        with open(pipe, encoding="utf-8") as f:
            text = f.read()
        text, n = re.subn(r'(?m)^name = "viewlog"$', f'name = "{group}"', text)
        if n != 1:
            raise RuntimeError(f"{pipe}: no name = \"viewlog\" line")
        with open(pipe, "w", encoding="utf-8") as f:
            f.write(text)
        out_dir = os.path.join(tmp, "out")
        log_path = os.path.join(tmp, "sluice.log")
        member_log = open(os.path.join(tmp, "members.log"), "w")
        with open(log_path, "w") as log:
            started = time.monotonic()
            p = subprocess.Popen([sluice, "run", pipe, "--until-caught-up",
                                  "--var", f"VIEWS=kafka://{BROKER}/{topic}",
                                  "--var", f"OUT=parquet:{out_dir}"],
                                 stdout=log, stderr=subprocess.STDOUT, cwd=tmp)

            def text():
                with open(log_path, encoding="utf-8", errors="replace") as f:
                    return f.read()

            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and p.poll() is None and not ASSIGNED.search(text()):
                time.sleep(0.05)
            # Members join and leave while sluice reads: four rebalances in the first seconds.
            plan = [(0.3, "join"), (1.2, "join"), (3.5, "leave"), (5.5, "leave")]
            t0 = time.monotonic()
            for at, what in plan:
                time.sleep(max(0.0, t0 + at - time.monotonic()))
                if what == "join":
                    members.append(group_member(topic, group, member_log))
                else:
                    m = members.pop(0)
                    m.send_signal(signal.SIGINT)
                    try:
                        m.wait(timeout=15)
                    except subprocess.TimeoutExpired:
                        m.kill()
                        m.wait()
            try:
                rc = p.wait(timeout=240)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                rc = None
            secs = time.monotonic() - started
        member_log.close()
        log_text = text()
        tail = "\n".join(log_text.splitlines()[-15:])
        if rc != 0:
            problems.append(f"sluice exited {rc}\n{tail}")
        assigned = ASSIGNED.findall(log_text)
        rounds = len(assigned) / PARTITIONS
        notes.append(f"{len(assigned)} partition assignments logged ({rounds:.1f} x {PARTITIONS}), "
                     f"run {secs:.1f}s")
        if len(assigned) <= PARTITIONS:
            problems.append("no rebalance took a partition away from sluice: the test proved "
                            "nothing (the group members did not join in time?)\n" + tail)
        reasons, _, lines, bad = load_dlq(os.path.join(out_dir, "_sluice", "dead_letters"))
        problems += bad
        if lines:
            problems.append(f"{lines} record(s) dead-lettered ({dict(reasons)}); none is late by "
                            "issue 16's rule")
        if rc == 0:
            problems += compare_output("sluice", out_dir, os.path.join(out_dir, "_sluice", "dead_letters"),
                                       expected)[0]
    finally:
        for m in members:
            m.kill()
            m.wait()
        if not args.keep:
            topics_tool("--delete", "--topic", topic)
            # The repartition stage's topics (the pipeline runs under a name of its own).
            topics_tool("--delete", "--topic", f"{group}-repartition.*")
        if args.keep or problems:
            print(f"     kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    t.result("6-partition view_log topic read while group members join and leave: zero late, "
             "Parquet == recomputation", problems, notes, limit=20)
    return t.finish()


if __name__ == "__main__":
    sys.exit(main())
