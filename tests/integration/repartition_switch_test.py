#!/usr/bin/env python3
"""A pipeline whose shape changes between runs (issue 16, docs/notes-16/repartition.md, "A
pipeline that ran in one stage before"): `sluice run` refuses to start when the sink's stored
positions were written by the other shape, and `[source] repartition = false` keeps a pipeline
in one stage.

    repartition_switch_test.py --sluice build/sluice [--per-partition 300] [--seed N] [--keep]

Input (seeded, produced with kcat -p to each partition of a fresh 2-partition topic
repswitch_<run>_views): the viewlog records of tests/integration/scale_out_viewlog.toml, campaign
c in partition c % 2 (keyed by campaign, so `keyed_by = ["campaign_id"]` holds), start times over
6 minutes each up to 8 s behind its partition's running time (none late); a second batch, 3
minutes on, for the last case. Expected tables: tests/tools/recompute_viewlog.py's
--by-partition rule over the records read back (kcat), open windows left out.

Cases (each its own pipeline name, group and SQLite file; every run --until-caught-up):
 keyed    a run with keyed_by (one stage): the table equals the recomputation; then the pipeline
          without keyed_by (it would repartition) exits 2 naming the pipeline, the sink, "it ran
          in one stage" and what to do; the table and positions are as before and the
          repartition topic was never made.
 reverse  a run without keyed_by (two stages): the table equals the recomputation; then with
          keyed_by: exit 2, "it ran in two stages", the table and positions as before.
 optout   a run with `repartition = false` (one stage; validate says so): the table equals the
          recomputation; without it: exit 2; then the second batch is produced and a run with
          `repartition = false` again goes on from the one-stage state: the table equals the
          recomputation over both batches.

Needs the broker of `make services` and kcat: without them a loud SKIP (exit 77), a FAIL when
CI=true. Prints PASS/FAIL per check; exit 1 on any failure. About 30 s.
"""

import argparse
import datetime as dt
import json
import os
import random
import sqlite3
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "tools"))
sys.path.insert(0, HERE)
import harness  # noqa: E402
import recompute_viewlog as rv  # noqa: E402
import scale_out  # noqa: E402
import scale_out_append_test as base  # noqa: E402  (input helpers, row decoding)
from kafka_util import create_topic, delete_topics, ensure_kcat, kafka_missing  # noqa: E402

PARTITIONS = 2
SPAN = dt.timedelta(minutes=6)
LATENESS = 30.0
DELAY = 10.0
KEYED_BY = 'keyed_by = ["campaign_id"]\n'


def make_records(rng, per_partition, start):
    """{partition: [(key, payload)]}: campaign c in partition c % 2, keyed by campaign."""
    out = {p: [] for p in range(PARTITIONS)}
    for p in range(PARTITIONS):
        campaigns = [c for c in base.CAMPAIGNS if c % PARTITIONS == p]
        for i in range(per_partition):
            at = start + dt.timedelta(seconds=3 * p) + (i / per_partition) * SPAN
            c = rng.choice(campaigns)
            t0 = at - dt.timedelta(seconds=rng.randint(0, 8), milliseconds=125 * rng.randint(0, 7))
            t1 = t0 + dt.timedelta(milliseconds=125 * rng.randint(0, 4800))
            obj = {"view_id": f"v{start:%H%M}-{p}-{i}", "start_timestamp": base.iso(t0, rng),
                   "end_timestamp": base.iso(t1, rng), "campaign_id": c}
            out[p].append((str(c), json.dumps(obj, separators=(",", ":"))))
    return out


class Test(harness.SluiceTest):
    def __init__(self, args):
        self.work = tempfile.mkdtemp(prefix="sluice_repswitch_")
        harness.SluiceTest.__init__(self, args, self.work)
        self.sluice = os.path.abspath(args.sluice)
        self.run_id = f"{os.getpid()}_{int(time.time())}"
        self.topic = f"repswitch_{self.run_id}_views"
        self.campaigns = os.path.join(self.work, "campaigns.csv")
        base.campaigns_csv(self.campaigns)
        with open(base.PIPELINE, encoding="utf-8") as f:
            text = f.read()
        if KEYED_BY not in text:
            raise RuntimeError(f"{base.PIPELINE} has no keyed_by line")
        self.files = {}
        for shape, line in (("keyed", KEYED_BY), ("plain", ""), ("optout", "repartition = false\n")):
            self.files[shape] = os.path.join(self.work, f"viewlog_{shape}.toml")
            with open(self.files[shape], "w", encoding="utf-8") as f:
                f.write(text.replace(KEYED_BY, line))

    def variables(self, name, db):
        return {"NAME": name, "VIEWS": f"kafka://{harness.BROKER}/{self.topic}", "GROUP": f"{name}-group",
                "CAMPAIGNS": self.campaigns, "SINK": f"sqlite:{db}"}

    def run(self, shape, name, db):
        return harness.run_sluice(self.sluice, self.files[shape], self.variables(name, db),
                                  extra=["--until-caught-up"], timeout=120)

    def produce(self, start):
        records = make_records(random.Random(self.args.seed + start.minute), self.args.per_partition, start)
        for p in range(PARTITIONS):
            scale_out.kcat_produce(self.topic, p, [v for _, v in records[p]], base.BATCH,
                                   keys=[k for k, _ in records[p]])

    def expected(self):
        """recompute_viewlog's --by-partition rows ({key: row}) of what the topic holds."""
        back = base.read_topic(self.topic)
        by_part = {p: [] for p in range(PARTITIONS)}
        for p, o, _, payload in back:
            by_part[p].append((o, payload.encode("utf-8")))
        res = rv.recompute_by_partition(by_part, self.campaigns, watermark_delay=DELAY, allowed_lateness=LATENESS)
        return {tuple(r[k] for k in rv.KEY): r for r in res["rows"]}, len(back)

    @staticmethod
    def stored(name, db):
        """(the table's rows as {key: row} plus a count of keys stored twice, the positions)."""
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            rows = [base.row_dict(r) for r in con.execute(f"SELECT {base.ROW_SQL} FROM events")]
            positions = sorted(con.execute("SELECT source, partition, offset FROM _sluice_positions "
                                           "WHERE pipeline = ?", (name,)))
        finally:
            con.close()
        table = {tuple(r[k] for k in rv.KEY): r for r in rows}
        return table, len(rows) - len(table), positions

    def check_table(self, label, name, db, expected):
        table, twice, positions = self.stored(name, db)
        missing = sorted(set(expected) - set(table))
        extra = sorted(set(table) - set(expected))
        differ = [k for k in expected if k in table and expected[k] != table[k]]
        self.check(f"{label}: the table equals the recomputation ({len(expected)} rows), each window once",
                   not missing and not extra and not differ and twice == 0,
                   f"missing {len(missing)} {missing[:3]}, extra {len(extra)} {extra[:3]}, differ {len(differ)} "
                   f"{[(expected[k], table[k]) for k in differ[:2]]}, {twice} twice")
        return table, positions

    def ran(self, label, r):
        ok = r.returncode == 0
        self.check(f"{label}: exit 0", ok, f"exit {r.returncode}: {r.stderr[-1500:]}")
        return ok

    def refused(self, label, r, name, db, before, expected, was, now):
        """r exited 2 with the message; the sink holds what it held (`before`: table, positions); a
        run that would have been in two stages made no repartition topic."""
        err = r.stderr
        self.check(f"{label}: refused with exit 2, naming the pipeline, the sink, both shapes and what to do",
                   r.returncode == 2 and f"pipeline {name}: the sink sqlite:{db} holds positions of source " in err
                   and f"it ran in {was}, and would run in {now} now (" in err
                   and "a new name ([pipeline] name) and a new table or directory" in err,
                   f"exit {r.returncode}: {err[-1500:]}")
        table, twice, positions = self.stored(name, db)
        self.check(f"{label}: the sink is unchanged (table equals the recomputation, positions as before)",
                   table == expected == before[0] and twice == 0 and positions == before[1],
                   f"{len(table)} rows vs {len(expected)} expected; positions {positions} vs {before[1]}")
        self.check(f"{label}: nothing was read (no stage started)",
                   "(stage one)" not in r.stdout + err and "records in" not in r.stdout, r.stdout[-600:])
        if now == "two":
            rc, listed = harness.run(["kcat", "-b", harness.BROKER, "-L"], timeout=30)
            # A listing that failed would hold no topic: it proves nothing, so it fails the check.
            self.check(f"{label}: the repartition topic was not made",
                       rc == 0 and " topics:" in listed and f'"{name}-repartition"' not in listed,
                       f"kcat -L exit {rc}; {name}-repartition listed or no listing: {listed[-300:]}")

    def case_keyed(self, expected):
        name, db = f"repswitch_{self.run_id}_keyed", os.path.join(self.work, "keyed.db")
        if not self.ran("keyed: the keyed_by run", self.run("keyed", name, db)):
            return
        before = self.check_table("keyed: the keyed_by run", name, db, expected)
        self.refused("keyed: without keyed_by", self.run("plain", name, db), name, db, before, expected,
                     "one stage", "two")

    def case_reverse(self, expected):
        name, db = f"repswitch_{self.run_id}_reverse", os.path.join(self.work, "reverse.db")
        r = self.run("plain", name, db)
        if not self.ran("reverse: the two-stage run", r):
            return
        self.check("reverse: the run was in two stages", "(stage two)" in r.stdout + r.stderr,
                   r.stdout[-600:] + r.stderr[-600:])
        before = self.check_table("reverse: the two-stage run", name, db, expected)
        r = self.run("keyed", name, db)
        self.refused("reverse: with keyed_by", r, name, db, before, expected, "two stages", "one")
        self.check("reverse: the message says why (keyed_by)",
                   "[source] keyed_by = [campaign_id] says the records of a group are in one partition" in r.stderr,
                   r.stderr[-800:])

    def case_optout(self, expected):
        name, db = f"repswitch_{self.run_id}_optout", os.path.join(self.work, "optout.db")
        v = harness.run_sluice(self.sluice, self.files["optout"], self.variables(name, db), command="validate")
        self.check("optout: validate says one stage and why",
                   v.returncode == 0 and "repartition no: [source] repartition = false: one stage" in v.stdout,
                   f"exit {v.returncode}: {v.stdout[-600:]} {v.stderr[-600:]}")
        r = self.run("optout", name, db)
        if not self.ran("optout: the repartition = false run", r):
            return
        self.check("optout: the run was in one stage", "(stage" not in r.stdout + r.stderr, r.stderr[-600:])
        before = self.check_table("optout: the repartition = false run", name, db, expected)
        self.refused("optout: without repartition = false", self.run("plain", name, db), name, db, before, expected,
                     "one stage", "two")
        self.produce(base.T0 + dt.timedelta(minutes=9))
        both, n = self.expected()
        self.check("the topic holds both batches", n == 2 * PARTITIONS * self.args.per_partition, f"{n} records")
        if self.ran("optout: repartition = false again after more records", self.run("optout", name, db)):
            self.check_table("optout: repartition = false again, over both batches", name, db, both)

    def main(self):
        why = kafka_missing() or ensure_kcat()
        if why:
            return self.missing(why)
        try:
            create_topic(self.topic, PARTITIONS)
            self.produce(base.T0)
            expected, n = self.expected()
            self.check("the topic holds every record", n == PARTITIONS * self.args.per_partition, f"{n} records")
            print(f"recomputation: {len(expected)} rows")
            only = self.args.only.split(",") if self.args.only else None
            # optout last: it adds the second batch to the topic.
            for label, case in (("keyed", self.case_keyed), ("reverse", self.case_reverse),
                                ("optout", self.case_optout)):
                if not only or label in only:
                    case(expected)
        finally:
            if not self.args.keep:
                delete_topics(f"repswitch_{self.run_id}_.*")
            self.keep_or_remove(self.work, self.args.keep)
        return self.finish()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sluice", default=os.path.join(REPO, "build", "sluice"))
    ap.add_argument("--per-partition", type=int, default=300)
    ap.add_argument("--seed", type=int, default=16)
    ap.add_argument("--only", default="")
    ap.add_argument("--keep", action="store_true")
    return Test(ap.parse_args(argv)).main()


if __name__ == "__main__":
    harness.main_guard(main)
