#!/usr/bin/env python3
"""Operating a repartitioned pipeline (issue 16): --http of both stages, `sluice status` of both
stages, and the repartition topic purged up to stage two's committed positions.

    repartition_ops_test.py --sluice build/sluice [--per-partition 1500] [--seed N] [--keep]

Input and pipeline as tests/integration/repartition_run_test.py (viewlog without keyed_by over
a 4-partition topic whose producers key by view id, into SQLite; expected values from
recompute_viewlog.py --by-partition over the records read back with kcat). Steps:

 1. A run reading slowly (no --until-caught-up) with --http: once stage two wrote rows,
    /api/status has `stages` one and two, each with the 4 partitions this one process owns
    (stage one: the source topic's, sink the repartition topic; stage two: the repartition
    topic's), a committed position never past the read position, and for stage one a partition
    watermark never above the recomputed final one; /metrics has both stages' series
    (stage="one", stage="two"), each family declared once; /readyz and /healthz answer 200.
    `sluice status --format json` shows both stages, owned by this process's members, stage
    two in the group <group>-repartition.
 2. SIGTERM: exit 0; the repartition topic's low offsets moved past 0 (purged at the end of the
    run) and are at most stage two's committed positions as `sluice status` shows them.
 3. An --until-caught-up run after that purge: exit 0, the table equals the recomputation, each
    window once, dead letters exact. Then `sluice status` (JSON and text): stage one's committed
    position is every source partition's end (records produced: per-partition count), lag 0,
    its task watermark the recomputed partition watermark; stage two's committed position is
    every repartition partition's end, lag 0, its task watermark the recomputed minimum; the
    repartition topic's low offsets equal stage two's committed positions (purged up to them).

Needs the broker of `make services` and kcat: without them a loud SKIP (exit 77), a FAIL when
CI=true. Prints PASS/FAIL per check; exit 1 on any failure.
"""

import json
import os
import re
import sqlite3
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "tools"))
sys.path.insert(0, HERE)
import harness  # noqa: E402
import http_util  # noqa: E402
import repartition_run_test as rr  # noqa: E402  (input, recomputation, table checks)
from kafka_util import delete_topics, end_offsets, ensure_kcat, kafka_missing  # noqa: E402

PARTITIONS = rr.PARTITIONS


def low_offsets(topic, partitions):
    """{partition: the first offset still stored} (kcat -Q with -2: the log start offset)."""
    cmd = ["kcat", "-b", harness.BROKER, "-Q"]
    for p in range(partitions):
        cmd += ["-t", f"{topic}:{p}:-2"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    offs = {int(m.group(1)): int(m.group(2)) for m in re.finditer(r"\[(\d+)\] offset (-?\d+)", out.stdout)}
    if out.returncode != 0 or len(offs) != partitions:
        raise RuntimeError(f"kcat -Q {topic} failed (rc {out.returncode}): {out.stderr[-800:]}")
    return offs


def metric_families(text):
    """{family: times declared} of a Prometheus text."""
    declared = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            name = line.split()[2]
            declared[name] = declared.get(name, 0) + 1
    return declared


class Test(rr.Test):
    def status(self, variables, fmt="json"):
        r = harness.run_sluice(self.sluice, self.pipeline, variables, extra=["--format", fmt], command="status",
                               timeout=90)
        if r.returncode != 0:
            return None, r
        return (json.loads(r.stdout) if fmt == "json" else r.stdout), r

    def check_live(self, label, url, name, wms):
        """Step 1's checks of /api/status, /metrics, /readyz and /healthz while the run goes on."""
        def both_committed():
            st = http_util.get_json(url + "/api/status")
            if not st or len(st.get("stages", [])) != 2:
                return None
            parts = [p for s in st["stages"] for p in s["partitions"]]
            return st if len(parts) == 2 * PARTITIONS and all(p["committed"] is not None for p in parts) else None
        st = harness.wait_for(both_committed, 60)
        self.check(f"{label}: /api/status shows both stages, each partition with a committed position",
                   st is not None, json.dumps(http_util.get_json(url + "/api/status"))[:1500])
        if not st:
            return
        one, two = st["stages"]
        self.check(f"{label}: stage one reads the source into the repartition topic",
                   one["stage"] == "one" and one["source"] == "views" and one["sink"] == f"{name}-repartition" and
                   sorted(p["partition"] for p in one["partitions"]) == list(range(PARTITIONS)),
                   json.dumps(one)[:800])
        self.check(f"{label}: stage two reads the repartition topic into the sink",
                   two["stage"] == "two" and two["source"] == "views_repartition" and two["sink"] == "events" and
                   sorted(p["partition"] for p in two["partitions"]) == list(range(PARTITIONS)) and
                   st["source"] == "views_repartition",
                   json.dumps(two)[:800])
        bad = [(s["stage"], p) for s in st["stages"] for p in s["partitions"] if p["committed"] > p["position"]]
        self.check(f"{label}: no committed position past the read position", not bad, f"{bad[:3]}")
        over = [p for p in one["partitions"] if p["watermark_micros"] is None or
                (wms[p["partition"]] is not None and p["watermark_micros"] > wms[p["partition"]])]
        self.check(f"{label}: stage one's partition watermarks known, never above the recomputed final ones",
                   not over, f"{over[:3]} vs {wms}")
        status, body, _ = http_util.get(url + "/metrics")
        families = metric_families(body)
        self.check(f"{label}: /metrics has both stages' series, each family once",
                   status == 200 and
                   re.search(r'^sluice_source_records_total\{pipeline="[^"]+",source="views",stage="one"\} \d+$',
                             body, re.M) is not None and
                   re.search(r'^sluice_source_records_total\{pipeline="[^"]+",source="views_repartition",'
                             r'stage="two"\} \d+$', body, re.M) is not None and
                   re.search(r'^sluice_source_partition_committed_position\{.*partition="0",stage="two"\} \d+$',
                             body, re.M) is not None and
                   all(n == 1 for n in families.values()),
                   f"status {status}, declared twice: {[f for f, n in families.items() if n > 1]}: {body[:600]}")
        ready = harness.wait_for(lambda: http_util.get(url + "/readyz")[0] == 200, 20)
        self.check(f"{label}: /readyz and /healthz answer 200", ready and http_util.get(url + "/healthz")[0] == 200,
                   http_util.get(url + "/readyz")[1])

    def main(self):
        why = kafka_missing() or ensure_kcat()
        if why:
            return self.missing(why)
        try:
            res, dead = self.produce()
            wms = res["watermarks"]
            name = f"repart_{self.run_id}_ops"
            db = os.path.join(self.work, f"{name}.db")
            v = self.variables(name, db, True)
            repartition = f"{name}-repartition"

            # 1. A long-running run with --http.
            port = harness.free_port()
            url = f"http://127.0.0.1:{port}"
            p = harness.start_sluice(self.sluice, self.pipeline, os.path.join(self.work, "ops_0.log"), v,
                                     extra=["--progress-interval", "2", "--http", f"127.0.0.1:{port}"])

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
                self.check("1: stage two wrote rows while the run goes on", p.poll() is None and rows() > 0,
                           harness.log_tail(p.logpath, 20))
                self.check_live("1", url, name, wms)
                st, r = self.status(v)
                ok = st is not None and [s["stage"] for s in st.get("stages", [])] == ["one", "two"]
                self.check("1: sluice status shows both stages while the run goes on", ok,
                           f"exit {r.returncode}: {r.stderr[-600:]} {r.stdout[:600]}")
                if ok:
                    one, two = st["stages"]
                    self.check("1: sluice status: stage one's partitions owned by the run's members, stage two "
                               "in the group <group>-repartition",
                               st["repartition"] == {"topic": repartition, "partitions": PARTITIONS} and
                               one["group"] == f"{name}-group" and two["group"] == f"{name}-group-repartition" and
                               all(x["owner"] is not None for x in one["partitions"] + two["partitions"]) and
                               [x["topic"] for x in two["partitions"]] == [repartition] * PARTITIONS,
                               json.dumps(st)[:1500])
                rc = harness.stop(p)
            finally:
                harness.kill_all([p])
            self.check("2: SIGTERM stops the run, exit 0", rc == 0, harness.log_tail(p.logpath, 20))
            st, r = self.status(v)
            low = low_offsets(repartition, PARTITIONS)
            if st is not None and len(st.get("stages", [])) == 2:
                committed = {x["partition"]: x["committed"] or 0 for x in st["stages"][1]["partitions"]}
                self.check("2: the repartition topic is purged, never past stage two's committed positions",
                           any(low.values()) and all(low[q] <= committed[q] for q in low),
                           f"low {low}, committed {committed}")
            else:
                self.check("2: sluice status after the run", False, f"exit {r.returncode}: {r.stderr[-600:]}")

            # 3. Caught up after the purge: exact, and every position where status says.
            q = harness.start_sluice(self.sluice, self.pipeline, os.path.join(self.work, "ops_1.log"), v,
                                     extra=["--until-caught-up"])
            try:
                q.wait(timeout=240)
            finally:
                harness.kill_all([q])
            self.check("3: the --until-caught-up run after the purge exits 0", q.returncode == 0,
                       harness.log_tail(q.logpath, 20))
            if q.returncode != 0:
                return self.finish()
            self.check_table("3", name, db, res, dead)
            st, r = self.status(v)
            self.check("3: sluice status --format json", st is not None and len(st.get("stages", [])) == 2,
                       f"exit {r.returncode}: {r.stderr[-600:]}")
            if st is None or len(st.get("stages", [])) != 2:
                return self.finish()
            one, two = st["stages"]
            n = self.args.per_partition
            got_one = {x["partition"]: (x["committed"], x["end"], x["lag"]) for x in one["partitions"]}
            self.check("3: stage one committed every source partition to its end (lag 0)",
                       got_one == {q: (n, n, 0) for q in range(PARTITIONS)}, f"{got_one}")
            got_wm = {x["partition"]: (x["task"] or {}).get("watermark_micros") for x in one["partitions"]}
            self.check("3: stage one's task watermarks are the recomputed partition watermarks",
                       got_wm == {q: wms[q] for q in range(PARTITIONS)}, f"{got_wm} vs {wms}")
            ends = end_offsets(repartition, PARTITIONS)
            got_two = {x["partition"]: (x["committed"], x["end"], x["lag"]) for x in two["partitions"]}
            self.check("3: stage two committed every repartition partition to its end (lag 0)",
                       got_two == {q: (ends[q], ends[q], 0) for q in range(PARTITIONS)}, f"{got_two} vs {ends}")
            two_wm = {x["partition"]: (x["task"] or {}).get("watermark_micros") for x in two["partitions"]}
            self.check("3: stage two's task watermarks are the recomputed minimum",
                       two_wm == {q: res["watermark"] for q in range(PARTITIONS)}, f"{two_wm} vs {res['watermark']}")
            low = low_offsets(repartition, PARTITIONS)
            committed = {x["partition"]: x["committed"] for x in two["partitions"]}
            self.check("3: the repartition topic is purged up to stage two's committed positions",
                       low == committed, f"low {low}, committed {committed}")
            text, r = self.status(v, "text")
            self.check("3: sluice status (text) labels the stages",
                       text is not None and f"repartitions through topic {repartition} ({PARTITIONS} partitions)" in text
                       and "\nstage one: source views, group " in text and
                       "\nstage two: source views_repartition, group " in text,
                       (text or r.stderr)[:1200])
        finally:
            if not self.args.keep:
                delete_topics(f"repart_{self.run_id}_.*")
            self.keep_or_remove(self.work, self.args.keep)
        return self.finish()


def main(argv=None):
    return rr.main(argv, Test, __doc__)


if __name__ == "__main__":
    harness.main_guard(main)
