#!/usr/bin/env python3
"""The YSB pipeline (examples/ysb.toml) end to end, checked against independent expectations.

  golden     tests/golden/ysb/: a hand-worked fixture (events, ads, expected rows, dead letters)
  generated  `sluice generate --profile ysb` to an NDJSON file, run from the file == the
             recomputation of tests/tools/recompute_ysb.py over that file and the ads CSV;
             the in-process generator (same seed, count, spacing) gives the same table;
             the generated events have the documented shape (fields, value sets, 1000 ads of
             100 campaigns, all ads used)

  mysql      the hand-worked fixture into MariaDB/MySQL (root@127.0.0.1:3306, `make services`),
             read back with the mariadb client; no server: a loud SKIP of this part (a FAIL when
             CI=true)

  ysb_test.py --sluice build/sluice [--count N]
"""

import argparse
import collections
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tests", "tools"))
import harness  # noqa: E402
import recompute_ysb  # noqa: E402
from harness import MYSQL  # noqa: E402

PIPELINE = os.path.join(REPO, "examples", "ysb.toml")
ADS = os.path.join(REPO, "examples", "data", "ysb_ads.csv")
GOLDEN = os.path.join(REPO, "tests", "golden", "ysb")

UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\Z")

T = harness.Checks()


def check(cond, what):
    return T.check(what, cond)


def run_pipeline(sluice, work, name, events, ads, extra_vars=()):
    db = os.path.join(work, name + ".db")
    dlq = os.path.join(work, name + ".dlq.ndjson")
    cmd = [sluice, "run", PIPELINE, "--var", "EVENTS=" + events, "--var", "ADS=" + ads,
           "--var", "SINK=sqlite:" + db, "--var", "DLQ=" + dlq]
    for v in extra_vars:
        cmd += ["--var", v]
    r = subprocess.run(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=240)
    if r.returncode != 0:
        print(r.stdout, r.stderr)
    check(r.returncode == 0, "%s: sluice run exits 0" % name)
    return db, dlq


def dead_letters(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def golden(sluice, work):
    events = os.path.join(GOLDEN, "events.ndjson")
    ads = os.path.join(GOLDEN, "ads.csv")
    db, dlq = run_pipeline(sluice, work, "golden", events, ads)
    with open(os.path.join(GOLDEN, "expected.csv")) as f:
        lines = f.read().split("\n")[1:]
    expected = {}
    for line in lines:
        if line:
            w, c, v = line.split(",")
            expected[(w, c)] = int(v)
    actual = recompute_ysb.read_sqlite(db)
    d = recompute_ysb.diff(expected, actual)
    check(not d, "golden: campaign_windows == expected.csv " + "; ".join(d))
    dl = dead_letters(dlq)
    # A JSON event is stored as a JSON value in the dead-letter record.
    payloads = sorted(x["payload"]["user_id"] for x in dl)
    check(payloads == ["u10", "u8"], "golden: dead letters are u8 (unknown ad) and u10 (bad "
          "event_time), got %s" % payloads)
    reasons = [x["reason"] for x in dl]
    check(any("ad-zz" in r for r in reasons), "golden: the unknown ad's reason names it: %s" % reasons)


def golden_mysql(sluice, work):
    client = shutil.which("mariadb") or shutil.which("mysql")
    base = [client, f"--host={MYSQL.host}", f"--port={MYSQL.port}", f"--user={MYSQL.user}", "--protocol=TCP",
            "--batch", "--skip-column-names", "--connect-timeout=5"] if client else None
    if not base or subprocess.run(base + ["-e", "SELECT 1"], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL).returncode != 0:
        T.skip("mysql", f"no MariaDB at {MYSQL.address} or no client (make services)")
        return
    db = "bench_ysb_test"
    subprocess.run(base + ["-e", "DROP DATABASE IF EXISTS %s; CREATE DATABASE %s" % (db, db)],
                   check=True)
    try:
        run_pipeline(sluice, work, "golden-mysql", os.path.join(GOLDEN, "events.ndjson"),
                     os.path.join(GOLDEN, "ads.csv"),
                     [f"SINK={harness.MYSQL_URI}/{db}"])
        out = subprocess.run(base + [db, "-e", "SELECT window_start, campaign_id, views FROM "
                                     "campaign_windows"], stdout=subprocess.PIPE, text=True,
                             check=True).stdout
        actual = {}
        for line in out.splitlines():
            w, c, v = line.split("\t")
            actual[(w, c)] = int(v)
        with open(os.path.join(GOLDEN, "expected.csv")) as f:
            expected = {(w, c): int(v) for w, c, v in
                        (line.split(",") for line in f.read().split("\n")[1:] if line)}
        d = recompute_ysb.diff(expected, actual)
        check(not d, "mysql: campaign_windows == expected.csv " + "; ".join(d))
    finally:
        subprocess.run(base + ["-e", "DROP DATABASE IF EXISTS %s" % db])


def generated(sluice, work, count):
    events = os.path.join(work, "ysb.ndjson")
    r = subprocess.run([sluice, "generate", "--profile", "ysb", "--count", str(count), "--rate", "0",
                        "--seed", "1", "--set", "spacing=10us", "--to", events], cwd=REPO,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
    check(r.returncode == 0, "generate --profile ysb exits 0 " + r.stderr[-300:])

    # Shape of the events.
    ads = recompute_ysb.load_ads(ADS)
    check(len(ads) == 1000 and len(set(ads.values())) == 100,
          "ads CSV: 1000 ads of 100 campaigns")
    per_campaign = collections.Counter(ads.values())
    check(set(per_campaign.values()) == {10}, "ads CSV: 10 ads per campaign")
    fields = {"user_id", "page_id", "ad_id", "ad_type", "event_type", "event_time", "ip_address"}
    types = collections.Counter()
    ad_types = collections.Counter()
    seen_ads = set()
    bad = 0
    last_time = None
    monotone = True
    with open(events) as f:
        lines = f.readlines()
    for line in lines:
        ev = json.loads(line)
        if set(ev) != fields or not UUID_RE.match(ev["user_id"]) or \
                not UUID_RE.match(ev["page_id"]) or \
                ev["ad_id"] not in ads or len(ev["ip_address"].split(".")) != 4:
            bad += 1
        types[ev["event_type"]] += 1
        ad_types[ev["ad_type"]] += 1
        seen_ads.add(ev["ad_id"])
        if last_time is not None and ev["event_time"] < last_time:
            monotone = False
        last_time = ev["event_time"]
    check(len(lines) == count, "generate wrote %d events" % count)
    check(bad == 0, "every event has the 7 YSB fields, UUID ids, a known ad, an IPv4 address")
    check(set(types) == {"view", "click", "purchase"} and
          all(abs(v / count - 1 / 3) < 0.02 for v in types.values()),
          "event types view/click/purchase about a third each: %s" % dict(types))
    check(set(ad_types) == {"banner", "modal", "sponsored-search", "mail", "mobile"},
          "ad types: %s" % dict(ad_types))
    check(count < 20000 or len(seen_ads) == 1000, "every ad appears (%d)" % len(seen_ads))
    check(monotone, "event_time never decreases (generator clock, 10 us apart)")
    check(json.loads(lines[0])["event_time"] == 1767225600000, "first event at 2026-01-01 (epoch ms)")

    # Determinism: the same seed gives the same bytes.
    again = os.path.join(work, "ysb-again.ndjson")
    subprocess.run([sluice, "generate", "--profile", "ysb", "--count", "1000", "--rate", "0",
                    "--seed", "1", "--set", "spacing=10us", "--to", again], cwd=REPO,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    with open(again) as f:
        check(f.readlines() == lines[:1000], "same seed, same events")

    expected, counts = recompute_ysb.recompute([events], ads)
    db, dlq = run_pipeline(sluice, work, "file", events, ADS)
    d = recompute_ysb.diff(expected, recompute_ysb.read_sqlite(db))
    check(not d, "file run == recomputation (%d rows, %d views) %s" %
          (len(expected), counts["views"], "; ".join(d)))
    check(not dead_letters(dlq), "file run: no dead letters")

    db2, _ = run_pipeline(sluice, work, "inprocess", "generator:", ADS,
                          ["COUNT=%d" % count, "RATE=0"])
    d = recompute_ysb.diff(expected, recompute_ysb.read_sqlite(db2))
    check(not d, "in-process generator run == recomputation of the generated file " + "; ".join(d))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--count", type=int, default=200000)
    args = ap.parse_args()
    sluice = os.path.abspath(args.sluice)
    work = tempfile.mkdtemp(prefix="sluice-ysb-")
    try:
        golden(sluice, work)
        golden_mysql(sluice, work)
        generated(sluice, work, args.count)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return T.finish()


if __name__ == "__main__":
    sys.exit(main())
