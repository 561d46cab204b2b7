#!/usr/bin/env python3
"""`sluice run` of a repartitioning pipeline (issue 16, package 4): the viewlog pipeline of
tests/integration/scale_out_viewlog.toml without its `keyed_by` line (so it repartitions) over a
4-partition topic whose producers key their messages by view id, not by the group key: every
campaign is in every partition. One `sluice run` process runs stage one (source -> steps ->
partials into <pipeline>-repartition) and stage two (that topic -> the SQLite sink) as two
runners.

    repartition_run_test.py --sluice build/sluice [--per-partition 1500] [--seed N] [--keep]

Input (seeded, produced once with kcat -p to each partition of a fresh topic
repart_<run>_views, keyed by view id): per partition, start times over 12 minutes (partition p
5p s later), each up to 8 s behind the partition's running time; 2% 15-150 s behind (late or not
by the rule below); about 2.5% invalid (scale_out_append_test.py's kinds); campaigns drawn from
all 40 (and 77, 88) in every partition.

Expected: tests/tools/recompute_viewlog.py's --by-partition rule over the records read back
(kcat): a record is late iff its window's end + allowed_lateness (30 s) is at or before its own
partition's watermark; a window is written iff its end + allowed_lateness is at or before the
minimum of the partitions' final watermarks (the others stay open in stage two's state).

Cases (each with its own pipeline name, consumer group and SQLite file):
 one  one `sluice run --until-caught-up` process: exit 0; the table equals the recomputation,
      one row per window; the dead letters (stage one's, stored through stage two) are exactly
      the recomputation's as (partition, offset, reason); the progress/summary name the stages.
 two  two `--until-caught-up` processes started at once, reading slowly (about 100 records per
      partition per 300 ms fetch): both exit 0, each one's stage one read part of the source,
      the same checks. (sluice before package 4, which ran this pipeline in one stage, fails it:
      both processes wrote some windows, each with its own partitions' share.)
 stop one process without --until-caught-up (reading slowly) gets SIGTERM once stage two wrote
      rows: exit 0 after both stages' summaries; then an --until-caught-up run: the same checks.
 gap  after case one (whose end purged the repartition topic up to its sink's positions), the
      same pipeline name into a fresh SQLite file: stage two's partitions start past offset 0,
      so the run fails at start (exit 1, naming what was deleted and how to reset the pipeline)
      and writes no row; then the repartition topic deleted and created again (by hand, with the
      broker's default retention: warned about) under case one's file, whose positions lie
      beyond the new topic's ends: exit 1 too. (Before the fix the first run read on from the
      first offset left and wrote windows without the purged counts, with no message.)
 fail the repartition topic exists with 2 partitions: stage one refuses it, the run exits 1 and
      stage two is stopped (its summary printed).

Needs the broker of `make services` and kcat: without them a loud SKIP (exit 77), a FAIL when
CI=true. Prints PASS/FAIL per check; exit 1 on any failure.
"""

import argparse
import datetime as dt
import json
import os
import random
import re
import sqlite3
import sys
import tempfile
import time
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "tools"))
sys.path.insert(0, HERE)
import harness  # noqa: E402
import recompute_viewlog as rv  # noqa: E402
import scale_out  # noqa: E402
import scale_out_append_test as base  # noqa: E402  (input helpers, row decoding)
from kafka_util import create_topic, delete_topics, ensure_kcat, kafka_missing  # noqa: E402

PARTITIONS = 4
SPAN = dt.timedelta(minutes=12)
LATENESS = 30.0
DELAY = 10.0
ALL_CAMPAIGNS = base.CAMPAIGNS + [base.NO_NETWORK, base.UNKNOWN]


def make_records(rng, per_partition):
    """{partition: [(key, payload)]}: keyed by view id, campaigns in every partition."""
    out = {p: [] for p in range(PARTITIONS)}
    n = 0
    for p in range(PARTITIONS):
        for i in range(per_partition):
            n += 1
            base_t = base.T0 + dt.timedelta(seconds=5 * p) + (i / per_partition) * SPAN
            campaign = rng.choice(base.CAMPAIGNS)
            start = base_t - dt.timedelta(seconds=rng.randint(0, 8), milliseconds=125 * rng.randint(0, 7))
            r = rng.random()
            if r < 0.02:
                start = base_t - dt.timedelta(seconds=rng.randint(15, 150))
            end = start + dt.timedelta(milliseconds=125 * rng.randint(0, 4800))
            vid = f"v{p}-{i}"
            obj = {"view_id": vid, "start_timestamp": base.iso(start, rng),
                   "end_timestamp": base.iso(end, rng), "campaign_id": campaign}
            if 0.02 <= r < 0.045:
                kind = rng.randrange(6)
                if kind == 0:
                    out[p].append((vid, f"not JSON {n}"))
                    continue
                if kind == 1:
                    obj["campaign_id"] = "abc"
                elif kind == 2:
                    obj["view_id"] = "  "
                elif kind == 3:
                    obj["start_timestamp"] = "yesterday"
                elif kind == 4:
                    obj["campaign_id"] = base.UNKNOWN
                else:
                    obj["campaign_id"] = base.NO_NETWORK
            out[p].append((vid, json.dumps(obj, separators=(",", ":"))))
    return out


def recompute(records, campaigns_path):
    by_part = {p: [] for p in range(PARTITIONS)}
    for p, o, _, payload in records:
        by_part[p].append((o, payload.encode("utf-8")))
    res = rv.recompute_by_partition(by_part, campaigns_path, watermark_delay=DELAY,
                                    allowed_lateness=LATENESS)
    dead = Counter((p, o, rv.reason_class(reason)) for reason, _, p, o in res["dead_letters"])
    return res, dead


class Test(harness.SluiceTest):
    def __init__(self, args):
        self.work = tempfile.mkdtemp(prefix="sluice_repart_")
        harness.SluiceTest.__init__(self, args, self.work)
        self.sluice = os.path.abspath(args.sluice)
        self.run_id = f"{os.getpid()}_{int(time.time())}"
        self.topic = f"repart_{self.run_id}_views"
        self.campaigns = os.path.join(self.work, "campaigns.csv")
        base.campaigns_csv(self.campaigns)
        # The viewlog pipeline without keyed_by: it repartitions.
        with open(base.PIPELINE, encoding="utf-8") as f:
            text = f.read()
        if 'keyed_by = ["campaign_id"]\n' not in text:
            raise RuntimeError(f"{base.PIPELINE} has no keyed_by line to drop")
        self.pipeline = os.path.join(self.work, "viewlog_repartition.toml")
        with open(self.pipeline, "w", encoding="utf-8") as f:
            f.write(text.replace('keyed_by = ["campaign_id"]\n', ""))

    def variables(self, name, db, throttled):
        v = {"NAME": name, "VIEWS": f"kafka://{harness.BROKER}/{self.topic}",
             "GROUP": f"{name}-group", "CAMPAIGNS": self.campaigns, "SINK": f"sqlite:{db}"}
        if throttled:
            # A slow consumer (about one producer batch per partition per fetch wait): both
            # processes join while the source is still being read, so each reads part of it.
            v.update({"FETCH_WAIT_MS": "300", "FETCH_MIN_BYTES": "100000000", "PARTITION_FETCH_BYTES": "1"})
        return v

    def check_table(self, label, name, db, res, dead):
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            stored = con.execute(f"SELECT {base.ROW_SQL} FROM events").fetchall()
        finally:
            con.close()
        rows = [base.row_dict(r) for r in stored]
        keys = Counter(tuple(r[k] for k in rv.KEY) for r in rows)
        twice = [k for k, c in keys.items() if c > 1]
        self.check(f"{label}: each window once", not twice, f"{len(twice)} windows twice, e.g. {twice[:3]}")
        expected = {tuple(r[k] for k in rv.KEY): r for r in res["rows"]}
        got = {tuple(r[k] for k in rv.KEY): r for r in rows}
        missing = sorted(set(expected) - set(got))
        extra = sorted(set(got) - set(expected))
        differ = [k for k in expected if k in got and expected[k] != got[k]]
        self.check(f"{label}: the table equals the recomputation ({len(expected)} rows, "
                   f"{res['open_windows']} windows open)",
                   not missing and not extra and not differ,
                   f"missing {len(missing)} {missing[:3]}, extra {len(extra)} {extra[:3]}, "
                   f"differ {len(differ)} {[(expected[k], got[k]) for k in differ[:2]]}")
        sink = scale_out.SqliteTasks(self.work, name, "views", base.IDENTITY_BASE)
        sink.path = db
        letters = Counter((p, o, rv.reason_class(r)) for p, o, r in sink.letters())
        self.check(f"{label}: dead letters exact ({sum(dead.values())})", letters == dead,
                   f"missing {list((dead - letters).items())[:5]}, extra {list((letters - dead).items())[:5]}")

    def run_case(self, label, processes, res, dead):
        name = f"repart_{self.run_id}_{label}"
        db = os.path.join(self.work, f"{name}.db")
        procs = []
        started = []
        for i in range(processes):
            procs.append(harness.start_sluice(
                self.sluice, self.pipeline, os.path.join(self.work, f"{label}_{i}.log"),
                self.variables(name, db, processes > 1), extra=["--until-caught-up", "--progress-interval", "2"]))
        try:
            for p in procs:
                p.wait(timeout=240)
            started = [harness.read_text(p.logpath) for p in procs]
        except Exception:  # noqa: BLE001
            harness.kill_all(procs)
        finally:
            for p in procs:
                p.log.close()
        for i, p in enumerate(procs):
            log = harness.read_text(p.logpath)
            self.check(f"{label}: process {i} exits 0", p.returncode == 0,
                       f"exit {p.returncode}: {harness.log_tail(p.logpath, 25)}")
            self.check(f"{label}: process {i} ran both stages",
                       "repartitions through topic" in log and "(stage one)" in log and "(stage two)" in log,
                       harness.log_tail(p.logpath, 25))
        if processes > 1 and started:
            # Each process read part of the source (else the case tests one process again).
            read = [sum(int(n.replace(",", "")) for n in re.findall(r"\(stage one\): ([\d,]+) records in", t))
                    for t in started]
            self.check(f"{label}: every process's stage one read part of the source", all(read), f"{read}")
        if all(p.returncode == 0 for p in procs):
            self.check_table(label, name, db, res, dead)
            return True
        return False

    @staticmethod
    def rows(db):
        """The rows of the events table of the SQLite file `db` (0 without it)."""
        try:
            con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
            try:
                return con.execute("SELECT COUNT(*) FROM events").fetchone()[0]
            finally:
                con.close()
        except sqlite3.Error:
            return 0

    def run_gap_case(self):
        """Case one's pipeline name again (its repartition topic purged up to its sink's
        positions at its end): into a fresh sink, then, the topic recreated, into case one's."""
        name = f"repart_{self.run_id}_one"
        reset = f"delete the topics {name}-repartition and {name}-repartition.sluice-positions"
        fresh = os.path.join(self.work, f"{name}_fresh.db")
        r = harness.run_sluice(self.sluice, self.pipeline, self.variables(name, fresh, False),
                               extra=["--until-caught-up"], timeout=120)
        self.check("gap: a fresh sink after the purge fails at start with exit 1 and what to do",
                   r.returncode == 1 and "were deleted before this sink read them" in r.stderr and reset in r.stderr,
                   f"exit {r.returncode}: {r.stderr[-1500:]}")
        self.check("gap: nothing written to the fresh sink", self.rows(fresh) == 0, f"{self.rows(fresh)} rows")
        topic = f"{name}-repartition"
        delete_topics(topic)
        for attempt in range(30):
            try:
                create_topic(topic, PARTITIONS)
                break
            except RuntimeError:
                if attempt == 29:
                    raise
                time.sleep(1)  # still being deleted
        db = os.path.join(self.work, f"{name}.db")
        before = self.rows(db)
        r = harness.run_sluice(self.sluice, self.pipeline, self.variables(name, db, False),
                               extra=["--until-caught-up"], timeout=120)
        self.check("gap: the recreated repartition topic under the old sink fails with exit 1 and what to do",
                   r.returncode == 1 and "is beyond the partition's end" in r.stderr and reset in r.stderr,
                   f"exit {r.returncode}: {r.stderr[-1500:]}")
        self.check("gap: the recreated topic's finite retention is warned about with the fix",
                   "--add-config retention.ms=-1" in r.stderr, r.stderr[-1500:])
        self.check("gap: the old sink keeps its rows", self.rows(db) == before, f"{before} -> {self.rows(db)}")

    def run_stop_case(self, res, dead):
        """A run without --until-caught-up stopped by SIGTERM once stage two wrote rows: exit 0
        after both stages' final checkpoints; then an --until-caught-up run goes on from what
        both stages committed."""
        label = "stop"
        name = f"repart_{self.run_id}_{label}"
        db = os.path.join(self.work, f"{name}.db")
        v = self.variables(name, db, True)
        p = harness.start_sluice(self.sluice, self.pipeline, os.path.join(self.work, f"{label}_0.log"), v,
                                 extra=["--progress-interval", "2"])

        def rows():
            try:
                con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
                try:
                    return con.execute("SELECT COUNT(*) FROM events").fetchone()[0]
                finally:
                    con.close()
            except sqlite3.Error:
                return 0
        try:
            harness.wait_for(lambda: rows() > 0 or p.poll() is not None, 120)
            self.check(f"{label}: stage two wrote rows while the run goes on",
                       p.poll() is None and rows() > 0, harness.log_tail(p.logpath, 20))
            rc = harness.stop(p)
        finally:
            harness.kill_all([p])
        log = harness.read_text(p.logpath)
        self.check(f"{label}: SIGTERM stops both stages, exit 0", rc == 0 and "SIGTERM received" in log and
                   "(stage one): " in log and "(stage two): " in log, f"exit {rc}: {harness.log_tail(p.logpath, 20)}")
        q = harness.start_sluice(self.sluice, self.pipeline, os.path.join(self.work, f"{label}_1.log"), v,
                                 extra=["--until-caught-up"])
        try:
            q.wait(timeout=240)
        finally:
            harness.kill_all([q])
        self.check(f"{label}: the --until-caught-up run after it exits 0", q.returncode == 0,
                   harness.log_tail(q.logpath, 20))
        if q.returncode == 0:
            self.check_table(label, name, db, res, dead)

    def run_fail_case(self):
        """A stage that fails ends the run: the repartition topic exists with another partition
        count, so stage one's sink refuses to open; exit 1 naming stage one, stage two stopped."""
        name = f"repart_{self.run_id}_fail"
        create_topic(f"{name}-repartition", 2)
        db = os.path.join(self.work, f"{name}.db")
        r = harness.run_sluice(self.sluice, self.pipeline, self.variables(name, db, False),
                               extra=["--until-caught-up"], timeout=120)
        self.check("fail: a failed stage one ends the run with exit 1 and stops stage two",
                   r.returncode == 1 and "(stage one) failed" in r.stderr and "has 2 partitions" in r.stderr and
                   "(stage two): " in r.stdout, f"exit {r.returncode}: {r.stderr[-1200:]} {r.stdout[-400:]}")

    def produce(self):
        """Creates the topic and fills it with make_records' records (--seed, --per-partition),
        checks the broker holds them all, and returns recompute()'s (res, dead) of what it holds."""
        records = make_records(random.Random(self.args.seed), self.args.per_partition)
        create_topic(self.topic, PARTITIONS)
        for p in range(PARTITIONS):
            scale_out.kcat_produce(self.topic, p, [v for _, v in records[p]], base.BATCH,
                                   keys=[k for k, _ in records[p]])
        back = base.read_topic(self.topic)
        self.check("the topic holds every record", len(back) == PARTITIONS * self.args.per_partition,
                   f"{len(back)} records")
        return recompute(back, self.campaigns)

    def main(self):
        why = kafka_missing() or ensure_kcat()
        if why:
            return self.missing(why)
        try:
            res, dead = self.produce()
            print(f"recomputation: {len(res['rows'])} rows, {res['open_windows']} open windows, "
                  f"{res['late']} late, {dict(res['reasons'])}")
            only = self.args.only.split(",") if self.args.only else None
            for label, n in (("one", 1), ("two", 2)):
                if only and label not in only:
                    continue
                if self.run_case(label, n, res, dead) and label == "one" and (not only or "gap" in only):
                    self.run_gap_case()
            if not only or "stop" in only:
                self.run_stop_case(res, dead)
            if not only or "fail" in only:
                self.run_fail_case()
        finally:
            if not self.args.keep:
                delete_topics(f"repart_{self.run_id}_.*")
            self.keep_or_remove(self.work, self.args.keep)
        return self.finish()


def main(argv=None, test=Test, doc=__doc__):
    """Runs `test` (this file's Test or a subclass) with this file's options."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sluice", default=os.path.join(REPO, "build", "sluice"))
    ap.add_argument("--per-partition", type=int, default=1500)
    ap.add_argument("--seed", type=int, default=16)
    ap.add_argument("--only", default="")
    ap.add_argument("--keep", action="store_true")
    return test(ap.parse_args(argv)).main()


if __name__ == "__main__":
    harness.main_guard(main)
