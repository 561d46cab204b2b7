#!/usr/bin/env python3
"""Kafka lag in a run's progress lines and summary, against offsets read by kcat.

    kafka_lag_test.py --sluice build/sluice [--count 150000] [--keep] [--prefix airflow_lag]

A 3-partition topic gets a backlog (`sluice generate --profile viewlog`, nothing is written to
it after that); kcat -Q reads each partition's end offset (the independent side). The viewlog
pipeline (a copy of examples/viewlog.toml with its own name, so its own consumer group) then
reads it with --until-caught-up --workers 1 --log-format json --progress-interval 0.1. Over 3
partitions viewlog repartitions (two stages in the process): stage one reads the source, so its
progress lines and its summary (field `stage`: "stage one"; stage two's are about the repartition
topic) are the ones checked:

 1. every progress line is one JSON object; each partition it lists has `end` == kcat's end
    offset and `lag` == end - position; the line's `lag` == the sum of the partitions' lags
    (kcat's end offsets minus the positions), and its message says `lag N messages`;
 2. the lag goes down and only down: a lag above 0 is seen (the backlog; how many lines see it
    shrink depends on read speed), each line's lag <= the one before; a line with a lag above 0 and a
    rate has an `eta_seconds`;
 3. stage one's summary (stdout: one JSON object per stage and line) lists every partition at kcat's end offset with
    lag 0;
 4. a second run, with nothing new, says `nothing_new` and still lists every partition at its
    end with lag 0 (the partitions are reported from their assignment, before any record).
 5. on a terminal (stderr a pty, text logs) the live bar shows the lag (`... rec/s ETA 2s lag
    189,408`), from the beginning of the topic again (another sink, so no positions); a run
    that reads the backlog between two redraws shows none by timing alone, so up to three runs,
    each into a fresh sink under a pipeline name of its own (stage one's positions are in Kafka
    under the pipeline's name), and one must show it.

No broker or no kcat: SKIP (exit 77), a FAIL when CI=true. The topic is deleted at the end
unless --keep.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "tools"))
import harness  # noqa: E402
from harness import BROKER, run_split as run  # noqa: E402
from kafka_util import delete_topics, kafka_missing, slow_consumer, topics_tool  # noqa: E402
VIEWLOG = os.path.join(REPO, "examples", "viewlog.toml")
CAMPAIGNS = os.path.join(REPO, "examples", "data", "campaigns1.csv")
PARTITIONS = 3


def end_offsets(topic):
    """{partition: end offset} as kcat -Q reports them (offset -1: the end)."""
    args = ["kcat", "-b", BROKER, "-Q"]
    for p in range(PARTITIONS):
        args += ["-t", f"{topic}:{p}:-1"]
    rc, out, err = run(args, timeout=60)
    if rc != 0:
        raise RuntimeError(f"kcat -Q: exit {rc}: {err[-800:]}")
    ends = {int(m.group(1)): int(m.group(2))
            for m in re.finditer(r"\[(\d+)\] offset (\d+)", out)}
    if sorted(ends) != list(range(PARTITIONS)):
        raise RuntimeError(f"kcat -Q: unexpected output {out!r}")
    return ends


class Test(harness.Checks):
    def __init__(self, args):
        self.args = args
        harness.Checks.__init__(self)
        self.tmp = tempfile.mkdtemp(prefix="sluice-kafka-lag-")
        token = f"{os.getpid()}_{int(time.time()) % 100000}"
        self.topic = f"{args.prefix}_{token}"
        self.name = f"{args.prefix.replace('_', '-')}-{token}"

    def pipeline(self, name=None):
        """examples/viewlog.toml under its own name (its own consumer group, and its own stage-one
        positions: the topic <name>-repartition.sluice-positions)."""
        name = name or self.name
        with open(VIEWLOG, encoding="utf-8") as f:
            text = f.read()
        text, n = re.subn(r'(?m)^name = "viewlog"$', f'name = "{name}"', text)
        if n != 1:
            raise RuntimeError("examples/viewlog.toml: no `name = \"viewlog\"` line")
        # A slow consumer (one record batch per partition per 100 ms fetch): with viewlog over
        # the columns the backlog was read before the first progress line (or a redraw of the
        # bar, every 250 ms) could see a lag, even with small fetches alone.
        text, n = re.subn(r"(?m)^\[source\]$",
                          lambda _: "[source]\n" + "\n".join(slow_consumer(100)), text)
        if n != 1:
            raise RuntimeError("examples/viewlog.toml: no [source] line")
        path = os.path.join(self.tmp, f"{name}.toml")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    def bar_run(self, pipeline, attempt=0):
        """The live bar's redraws of a run whose stderr is a pty (into a fresh sink per attempt,
        so each reads the whole backlog)."""
        import pty  # noqa: PLC0415
        master, slave = pty.openpty()
        cmd = [self.args.sluice, "run", pipeline, "--until-caught-up", "--workers", "1",
               "--var", f"VIEWS=kafka://{BROKER}/{self.topic}", "--var", f"CAMPAIGNS={CAMPAIGNS}",
               "--var", f"OUT=parquet:{os.path.join(self.tmp, f'out-bar-{attempt}')}",
               "--var", f"DLQ={os.path.join(self.tmp, f'dead-letters-bar-{attempt}.ndjson')}"]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=slave)
        os.close(slave)
        chunks = []
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the process closed the pty
                break
            if not data:
                break
            chunks.append(data)
        os.close(master)
        rc = proc.wait(timeout=120)
        text = b"".join(chunks).decode("utf-8", "replace")
        return rc, [x for x in re.split(r"[\r\n]", text) if "rec/s" in x]

    def sluice_run(self, pipeline):
        """Returns (exit code, progress lines, summary, problems)."""
        # One worker: with several, the group's first rebalance moves partitions between them
        # and the total covers the partitions assigned at that moment (it may rise as one joins).
        cmd = [self.args.sluice, "--log-format", "json", "run", pipeline, "--until-caught-up",
               "--workers", "1", "--progress-interval", "0.1", "--var", f"VIEWS=kafka://{BROKER}/{self.topic}",
               "--var", f"CAMPAIGNS={CAMPAIGNS}",
               "--var", f"OUT=parquet:{os.path.join(self.tmp, 'out')}",
               "--var", f"DLQ={os.path.join(self.tmp, 'dead-letters.ndjson')}"]
        rc, out, err = run(cmd, timeout=180)
        problems, progress = [], []
        if rc != 0:
            problems.append(f"exit {rc}: {err[-1500:]}")
        for line in err.splitlines():
            try:
                obj = json.loads(line)
            except ValueError:
                problems.append(f"a stderr line that is not JSON: {line[:200]!r}")
                continue
            # viewlog repartitions over the 3 partitions: stage one reads the source (its lag);
            # stage two's lines are about the repartition topic.
            if obj.get("event") == "progress" and obj.get("stage") in (None, "stage one"):
                progress.append(obj)
        summaries = []
        for line in out.splitlines():
            try:
                summaries.append(json.loads(line))
            except ValueError:
                problems.append(f"a stdout line that is not a JSON object: {line[:300]!r}")
        mine = [x for x in summaries if x.get("stage") in (None, "stage one")]
        summary = mine[0] if len(mine) == 1 else {}
        if len(mine) != 1:
            problems.append(f"stdout holds {len(mine)} summaries of the source's stage: {out[-500:]!r}")
        return rc, progress, summary, problems

    def check_partitions(self, where, parts, ends):
        """Problems with a list of partition objects against kcat's end offsets."""
        problems = []
        for part in parts:
            p, pos, lag = part.get("partition"), part.get("position"), part.get("lag")
            if p not in ends:
                problems.append(f"{where}: partition {p} is not a partition of the topic")
                continue
            if part.get("end") != ends[p]:
                problems.append(f"{where}: partition {p} end {part.get('end')}, kcat says "
                                f"{ends[p]}")
            if lag != ends[p] - pos:
                problems.append(f"{where}: partition {p} lag {lag}, want {ends[p]} - {pos}")
        return problems

    def main(self):
        why = kafka_missing() if shutil.which("kcat") else "kcat is not installed " \
            "(scripts/services.sh up kafka installs it)"
        if why:
            return self.missing(why)
        rc, err = topics_tool("--create", "--topic", self.topic, "--partitions", str(PARTITIONS),
                              "--replication-factor", "1", timeout=120)
        if rc != 0:
            self.result("create the topic", [f"kafka-topics.sh: exit {rc}: {err[-800:]}"])
            return self.finish()
        try:
            self.scenarios()
        finally:
            if not self.args.keep:
                delete_topics(self.topic)
                delete_topics(f"{self.name}.*-repartition.*")
                shutil.rmtree(self.tmp, ignore_errors=True)
            else:
                print(f"kept {self.tmp} and topic {self.topic}")
        return self.finish()

    def scenarios(self):
        rc, _, err = run([self.args.sluice, "generate", "--profile", "viewlog", "--to",
                          f"kafka://{BROKER}/{self.topic}", "--count", str(self.args.count),
                          "--rate", "0", "--seed", "3"], timeout=300)
        if rc != 0:
            self.result("a backlog in the topic", [f"sluice generate: exit {rc}: {err[-800:]}"])
            return
        ends = end_offsets(self.topic)
        if sum(ends.values()) != self.args.count or min(ends.values()) == 0:
            self.result("a backlog in every partition",
                        [f"end offsets {ends}, want {self.args.count} messages over "
                         f"{PARTITIONS} partitions"])
            return
        pipeline = self.pipeline()

        rc, progress, summary, problems = self.sluice_run(pipeline)
        with_lag = [x for x in progress if "lag" in x]
        for i, x in enumerate(with_lag):
            parts = x.get("partitions", [])
            problems += self.check_partitions(f"progress line {i}", parts, ends)
            want = sum(ends[p["partition"]] - p["position"] for p in parts if p["partition"] in ends)
            if x["lag"] != want:
                problems.append(f"progress line {i}: lag {x['lag']}, want {want} (kcat's end "
                                "offsets minus the positions)")
            if f"lag {x['lag']:,} messages" not in x.get("message", ""):
                problems.append(f"progress line {i}: message {x.get('message')!r} does not say "
                                f"lag {x['lag']:,} messages")
        self.result(f"run over a backlog of {self.args.count:,} messages: {len(with_lag)} of "
                    f"{len(progress)} progress lines with a lag, each == kcat's end offsets "
                    "minus the positions", problems)

        problems = []
        lags = [x["lag"] for x in with_lag]
        # How many lines see the backlog shrink depends on read speed (150k messages can go in one
        # progress interval): the backlog must be seen, and the lag must never go up.
        if not any(v > 0 for v in lags):
            problems.append(f"lags {lags}: want a lag above 0 (the backlog, seen before it is read)")
        if any(b > a for a, b in zip(lags, lags[1:])):
            problems.append(f"the lag went up: {lags}")
        for x in with_lag:
            if x["lag"] > 0 and x.get("records_per_second", 0) > 0 and "eta_seconds" not in x:
                problems.append(f"a line with lag {x['lag']} and a rate has no eta_seconds")
                break
        self.result(f"the lag goes down and only down: {lags[:6]}{' ...' if len(lags) > 6 else ''}"
                    f" -> {lags[-1] if lags else None}", problems)

        parts = summary.get("partitions", [])
        problems = self.check_partitions("summary", parts, ends)
        if sorted(p.get("partition") for p in parts) != list(range(PARTITIONS)):
            problems.append(f"summary partitions {parts}: want all {PARTITIONS}")
        problems += [f"summary: partition {p['partition']} at {p['position']} with lag "
                     f"{p['lag']}, want {ends.get(p['partition'])} and 0"
                     for p in parts if p.get("lag") != 0 or p.get("position") != ends.get(p.get("partition"))]
        if summary.get("records_in") != self.args.count:
            problems.append(f"summary records_in {summary.get('records_in')}, want "
                            f"{self.args.count}")
        self.result("the summary lists every partition at kcat's end offset, lag 0", problems)

        rc, progress, summary, problems = self.sluice_run(pipeline)
        parts = summary.get("partitions", [])
        if summary.get("outcome") != "nothing_new":
            problems.append(f"outcome {summary.get('outcome')!r}, want 'nothing_new'")
        if sorted(p.get("partition") for p in parts) != list(range(PARTITIONS)):
            problems.append(f"summary partitions {parts}: want all {PARTITIONS}")
        problems += self.check_partitions("re-run summary", parts, ends)
        problems += [f"re-run summary: partition {p['partition']} lag {p['lag']}, want 0"
                     for p in parts if p.get("lag") != 0]
        self.result("a re-run with nothing new lists every partition at its end, lag 0",
                    problems)

        # The bar is redrawn every 250 ms: a run that reads the backlog between two redraws
        # before its end offsets are known shows no lag by timing alone (seen once in CI on a
        # busy machine), so up to three runs, each over the whole backlog; one must show it.
        for attempt in range(3):
            # Each under its own name: stage one keeps its positions in Kafka by pipeline name,
            # not in the fresh sink.
            rc, bars = self.bar_run(self.pipeline(f"{self.name}-bar{attempt}"), attempt)
            lagged = [int(m.group(1).replace(",", "")) for b in bars
                      for m in [re.search(r"rec/s(?: ETA \S+)? lag ([\d,]+)", b)] if m]
            problems = [] if rc == 0 else [f"exit {rc}"]
            if not lagged or max(lagged) <= 0 or max(lagged) > self.args.count:
                problems.append(f"no bar with a lag between 1 and {self.args.count:,}: "
                                f"{bars[:5]}")
            if not problems or rc != 0:
                break
            self.say(f"run {attempt + 1}: {problems[-1][:160]}; again")
        self.result(f"the live bar shows the lag ({len(lagged)} of {len(bars)} redraws, e.g. "
                    f"{bars[len(bars) // 2].strip()[-60:] if bars else None!r})", problems)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--count", type=int, default=150000)
    ap.add_argument("--prefix", default="airflow_lag")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    args.sluice = os.path.abspath(args.sluice)
    return Test(args).main()


if __name__ == "__main__":
    sys.exit(main())
