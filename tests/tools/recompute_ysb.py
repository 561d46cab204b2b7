#!/usr/bin/env python3
"""Independent recomputation of the YSB pipeline (examples/ysb.toml) from its raw input.

Contract (the Yahoo Streaming Benchmark's job): read the ad events (NDJSON, one object per
line), keep those whose event_type is 'view', map ad_id to campaign_id with the ads CSV
(ad_id,campaign_id), and count the views per (campaign_id, 10-second tumbling window of
event_time). event_time is epoch milliseconds (a JSON integer) or an ISO 8601 string; any other
value dead-letters the record before the view filter, as the decoder rejects it. window_start is written 'YYYY-MM-DD HH:MM:SS' (UTC), as the SQLite sink
writes timestamps. Views of an ad not in the CSV, and views without a usable event_time, are
counted as dead letters (the pipeline dead-letters them); lines that are not JSON objects are
dead letters too.

  recompute_ysb.py EVENTS.ndjson [MORE.ndjson ...] --ads ADS.csv [--out rows.csv] [--json]
  recompute_ysb.py --write-ads ADS.csv        (re-create examples/data/ysb_ads.csv)
  recompute_ysb.py --compare-sqlite DB EVENTS.ndjson --ads ADS.csv
      compares the table campaign_windows of DB with the recomputation; exit 1 on a difference

Standard library only.
"""

import argparse
import csv
import datetime
import hashlib
import json
import sqlite3
import sys

WINDOW_MS = 10_000


def uuid_from(text):
    """A version-4-shaped UUID derived from `text` (deterministic)."""
    h = bytearray(hashlib.sha256(text.encode()).digest()[:16])
    h[6] = (h[6] & 0x0F) | 0x40
    h[8] = (h[8] & 0x3F) | 0x80
    x = h.hex()
    return "%s-%s-%s-%s-%s" % (x[:8], x[8:12], x[12:16], x[16:20], x[20:])


def write_ads(path, campaigns=100, ads_per_campaign=10):
    """The ads CSV: `campaigns` x `ads_per_campaign` ads, deterministic UUIDs."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["ad_id", "campaign_id"])
        for c in range(campaigns):
            campaign = uuid_from("ysb campaign %d" % c)
            for a in range(ads_per_campaign):
                w.writerow([uuid_from("ysb ad %d %d" % (c, a)), campaign])


def load_ads(path):
    with open(path, newline="") as f:
        return {row["ad_id"]: row["campaign_id"] for row in csv.DictReader(f)}


def parse_iso_ms(text):
    """Epoch ms of an ISO 8601 'YYYY-MM-DD[ T]HH:MM[:SS[.f]][Z|+HH:MM]' (no zone: UTC), else False."""
    t = text.strip()
    if t.endswith("Z"):
        t = t[:-1] + "+00:00"
    try:
        d = datetime.datetime.fromisoformat(t)
    except ValueError:
        return False
    if d.tzinfo is None:
        d = d.replace(tzinfo=datetime.timezone.utc)
    return int(d.timestamp() * 1000)


def window_text(ms):
    start = ms - ms % WINDOW_MS
    t = datetime.datetime(1970, 1, 1) + datetime.timedelta(milliseconds=start)
    return t.strftime("%Y-%m-%d %H:%M:%S")


def recompute(event_paths, ads):
    """Returns ({(window_start, campaign_id): views}, counts)."""
    counts = {"read": 0, "views": 0, "not_views": 0, "dead_letters": 0}
    rows = {}
    for path in event_paths:
        with open(path, "rb") as f:
            for line in f:
                if not line.strip():
                    continue
                counts["read"] += 1
                try:
                    ev = json.loads(line)
                except ValueError:
                    counts["dead_letters"] += 1
                    continue
                if not isinstance(ev, dict):
                    counts["dead_letters"] += 1
                    continue
                # The decoder reads event_time before any step: a value that is not a time
                # dead-letters the record whatever its event_type.
                t = ev.get("event_time")
                if isinstance(t, str):
                    t = parse_iso_ms(t) if t.strip() else None
                    if t is False:
                        counts["dead_letters"] += 1
                        continue
                elif t is not None and (isinstance(t, bool) or not isinstance(t, int)):
                    counts["dead_letters"] += 1
                    continue
                if ev.get("event_type") != "view":
                    counts["not_views"] += 1
                    continue
                if t is None:
                    counts["dead_letters"] += 1
                    continue
                campaign = ads.get(ev.get("ad_id"))
                if campaign is None:
                    counts["dead_letters"] += 1
                    continue
                counts["views"] += 1
                key = (window_text(t), campaign)
                rows[key] = rows.get(key, 0) + 1
    counts["rows"] = len(rows)
    return rows, counts


def read_sqlite(db, table="campaign_windows"):
    con = sqlite3.connect(db)
    try:
        return {(w, c): v for w, c, v in
                con.execute("SELECT window_start, campaign_id, views FROM %s" % table)}
    finally:
        con.close()


def diff(expected, actual, limit=10):
    """Human-readable differences between two {key: views} maps (empty when equal)."""
    out = []
    for k in sorted(set(expected) | set(actual)):
        if expected.get(k) != actual.get(k):
            out.append("%s: expected %s, got %s" % (k, expected.get(k), actual.get(k)))
            if len(out) >= limit:
                out.append("...")
                break
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("events", nargs="*", help="NDJSON event files")
    ap.add_argument("--ads", default="examples/data/ysb_ads.csv")
    ap.add_argument("--out", help="write the rows as CSV (window_start, campaign_id, views)")
    ap.add_argument("--json", action="store_true", help="print the counts as one JSON object")
    ap.add_argument("--write-ads", metavar="CSV", help="write the 100 x 10 ads CSV and exit")
    ap.add_argument("--compare-sqlite", metavar="DB", help="compare DB's campaign_windows")
    args = ap.parse_args(argv)
    if args.write_ads:
        write_ads(args.write_ads)
        return 0
    if not args.events:
        ap.error("no event files")
    rows, counts = recompute(args.events, load_ads(args.ads))
    if args.out:
        with open(args.out, "w", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(["window_start", "campaign_id", "views"])
            for (win, camp), v in sorted(rows.items()):
                w.writerow([win, camp, v])
    if args.compare_sqlite:
        d = diff(rows, read_sqlite(args.compare_sqlite))
        if d:
            print("campaign_windows differs from the recomputation:\n  " + "\n  ".join(d))
            return 1
        counts["equal"] = True
    print(json.dumps(counts) if args.json else
          " ".join("%s=%s" % kv for kv in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
