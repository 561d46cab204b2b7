#!/usr/bin/env python3
"""Independent recomputation of the viewlog pipeline (examples/viewlog.toml), from its contract
alone (Python standard library; no sluice code):

  * Records are NDJSON lines (a line's trailing CR/LF stripped; empty lines skipped), read in
    order over all the files given. Fields read: view_id, start_timestamp, end_timestamp (text:
    a JSON string as is, a number as its token, true/false as text) and campaign_id (int64: a
    JSON integer, an integral float, or a string holding an integer; a blank string is null).
  * Dead-letter reasons, first match wins, in this order:
      decode: ...                            not a JSON object, or campaign_id of another type
      missing view_id                        null/absent/blank (spaces, tabs, line breaks)
      missing start_timestamp / missing end_timestamp / missing campaign_id
      unparseable start_timestamp / unparseable end_timestamp
      end_timestamp before start_timestamp   view_duration = end - start (seconds) < 0
      no campaign for key N                  campaign_id not in the campaigns CSV
      late                                   see the watermark below
      group key network_id is null           the campaign's network_id is blank
    (late before the null group key, as sluice's aggregate judges a record's window before
    the key it computes for that window; a record dead-lettered for either does not move W)
  * Timestamps: ISO 8601 'YYYY-MM-DD', optionally followed by 'T'/'t'/' ' and 'HH:MM[:SS[.f]]'
    ('.' or ','; digits past microseconds truncated), an optional space and zone ('Z', '+HH:MM',
    '+HHMM', '+HH'); no zone is UTC; surrounding spaces/tabs ignored; fields range-checked
    (second 60 allowed).
  * Windows: 1-minute tumbling on the start time, key (network_id, campaign_id), avg_duration =
    avg(view_duration), total_count = count(); minute_timestamp = window start as
    YYYY-MM-DD-HH-MM (UTC).
  * Watermark (single partition, in order): W starts at -infinity; a record that passed every
    check above with window end `we` is late when we + allowed_lateness <= W (dead-lettered,
    reason 'late', not aggregated); then maxT = max(maxT, t) and W = maxT - watermark_delay.
    Dead-lettered records do not move W.
  * Output: a bounded input (a file) ends with every window emitted once; with --open-at-end
    (an unbounded source stopped when caught up) only windows with we + allowed_lateness <= W.
  * --by-partition (a Kafka topic read by several processes, issue 16): the input is the topic
    as `kcat -C -e -f '%p\t%o\t%s\n'` prints it (partition, offset, payload per line). Each
    partition is judged on its own, in offset order, with its own W as above (a record is late
    iff we + allowed_lateness <= its own partition's W); a window is emitted iff we +
    allowed_lateness <= the minimum of all partitions' final W (none while a partition has no
    W); the others stay open. Dead letters carry their partition and offset.

    recompute_viewlog.py VIEWS.ndjson [MORE.ndjson ...] --campaigns CAMPAIGNS.csv
        [--open-at-end | --by-partition] [--watermark-delay 10] [--allowed-lateness 0]
        [--out rows.csv] [--dlq dead_letters.ndjson]

prints records read / aggregated / dead letters per reason / rows (and open windows); --out
writes the rows as CSV (network_id, minute_timestamp, campaign_id, window_start, window_end,
avg_duration, total_count; times as 'YYYY-MM-DD HH:MM:SS' UTC), --dlq the dead letters as NDJSON
({"reason", "payload", "offset"}; offset = byte offset in its file; with --by-partition also
"partition", and offset is the record's offset).
"""

import argparse
import csv
import datetime
import json
import math
import re
import sys
from collections import Counter

MICROS = 1_000_000
WINDOW = 60 * MICROS
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
ROW_COLUMNS = ["network_id", "minute_timestamp", "campaign_id", "window_start", "window_end",
               "avg_duration", "total_count"]
KEY = ("network_id", "minute_timestamp", "campaign_id")
BLANK = " \t\r\n\f\v"
_EPOCH_ORDINAL = datetime.date(1970, 1, 1).toordinal()
_ISO = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})"
    r"(?:[Tt ]([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:[.,]([0-9]+))?)?"
    r" ?(?:([Zz])|([+-])([0-9]{2}):?([0-9]{2})?)?)?")


class _Num(str):
    """A JSON number kept as its token text."""
    is_float = False


class _Float(_Num):
    is_float = True


def _reject_constant(name):
    raise ValueError(f"invalid literal {name}")


def decode_json(line):
    """Parses one record: (object, None) or (None, reason starting with 'decode:')."""
    try:
        obj = json.loads(line, parse_int=_Num, parse_float=_Float,
                         parse_constant=_reject_constant)
    except ValueError as e:
        return None, f"decode: malformed JSON: {e}"
    if not isinstance(obj, dict):
        return None, "decode: JSON record is not an object"
    return obj, None


def as_text(v):
    """A string field's value: None for null/absent."""
    if v is None:
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):  # strings and number tokens
        return str(v)
    return json.dumps(v, separators=(",", ":"))  # objects/arrays: their (minified) text


def as_int64(name, v):
    """(value, None) or (None, decode reason)."""
    if v is None:
        return None, None
    if isinstance(v, bool) or isinstance(v, (dict, list)):
        return None, f"decode: field {name}: not an int64"
    if isinstance(v, _Num):
        if v.is_float:
            f = float(v)
            if not math.isfinite(f) or f != math.trunc(f) or not (-2.0**63 <= f < 2.0**63):
                return None, f"decode: field {name}: '{v}' is not an int64"
            return int(f), None
        n = int(v)
        if not INT64_MIN <= n <= INT64_MAX:
            return None, f"decode: field {name}: '{v}' is not an int64"
        return n, None
    s = v.strip(BLANK)
    if not s:
        return None, None
    if s.startswith("+"):
        s = s[1:]
        if s.startswith("-"):
            return None, f"decode: field {name}: '{v}' is not an int64"
    if not re.fullmatch(r"-?[0-9]+", s) or not INT64_MIN <= int(s) <= INT64_MAX:
        return None, f"decode: field {name}: '{v}' is not an int64"
    return int(s), None


def parse_iso(text):
    """Microseconds since the epoch (UTC), or None."""
    s = text.lstrip(" \t").rstrip(" \t\r")
    m = _ISO.fullmatch(s)
    if not m:
        return None
    year, month, day = int(m.group(1)), int(m.group(2)), int(m.group(3))
    hour = int(m.group(4) or 0)
    minute = int(m.group(5) or 0)
    second = int(m.group(6) or 0)
    frac = (m.group(7) or "")[:6].ljust(6, "0")
    if not (1 <= year <= 9999 and 1 <= month <= 12 and hour <= 23 and minute <= 59
            and second <= 60):
        return None
    try:
        days = datetime.date(year, month, day).toordinal() - _EPOCH_ORDINAL
    except ValueError:
        return None
    offset = 0
    if m.group(9):
        oh, om = int(m.group(10)), int(m.group(11) or 0)
        if oh > 23 or om > 59:
            return None
        offset = (oh * 3600 + om * 60) * MICROS * (1 if m.group(9) == "+" else -1)
    return (((days * 24 + hour) * 60 + minute) * 60 + second) * MICROS + int(frac) - offset


def format_micros(us, pattern="%Y-%m-%d %H:%M:%S"):
    dt = datetime.datetime(1970, 1, 1) + datetime.timedelta(microseconds=us)
    return dt.strftime(pattern)


def load_campaigns(path):
    """{campaign_id: network_id or None} from a CSV with a header (',' or ';'), any column order.
    Rows whose campaign_id is not an integer are skipped; a later row replaces an earlier one."""
    with open(path, newline="", encoding="utf-8") as f:
        text = f.read()
    first = text.split("\n", 1)[0]
    delim = ";" if first.count(";") > first.count(",") else ","
    out = {}
    for row in csv.DictReader(text.splitlines(), delimiter=delim):
        cid, err = as_int64("campaign_id", row.get("campaign_id"))
        if err or cid is None:
            continue
        nid, err = as_int64("network_id", row.get("network_id"))
        out[cid] = None if err else nid
    return out


def read_records(paths):
    """Yields (path, byte offset, payload text) for every non-empty line, files in order."""
    for path in paths:
        with open(path, "rb") as f:
            data = f.read()
        pos = 0
        while pos < len(data):
            nl = data.find(b"\n", pos)
            end = len(data) if nl < 0 else nl + 1
            raw = data[pos:end].rstrip(b"\r\n")
            if raw:
                yield path, pos, raw
            pos = end


def check(obj, campaigns):
    """Runs the pipeline's checks on a decoded record: (fields, None) or (None, reason)."""
    view_id = as_text(obj.get("view_id"))
    start_text = as_text(obj.get("start_timestamp"))
    end_text = as_text(obj.get("end_timestamp"))
    campaign, err = as_int64("campaign_id", obj.get("campaign_id"))
    if err:
        return None, err
    if view_id is None or not view_id.strip(BLANK):
        return None, "missing view_id"
    if start_text is None or not start_text.strip(BLANK):
        return None, "missing start_timestamp"
    if end_text is None or not end_text.strip(BLANK):
        return None, "missing end_timestamp"
    if campaign is None:
        return None, "missing campaign_id"
    start = parse_iso(start_text)
    if start is None:
        return None, "unparseable start_timestamp"
    end = parse_iso(end_text)
    if end is None:
        return None, "unparseable end_timestamp"
    if end < start:
        return None, "end_timestamp before start_timestamp"
    if campaign not in campaigns:
        return None, f"no campaign for key {campaign}"
    rec = {"start": start, "duration": (end - start) / MICROS, "campaign_id": campaign,
           "network_id": campaigns[campaign]}
    if rec["network_id"] is None:
        return rec, NULL_NETWORK  # dead-lettered, unless late (judge_record)
    return rec, None


NULL_NETWORK = "group key network_id is null"


def judge(raw, campaigns):
    """Decodes and checks one record (bytes): (fields, None) or (None, dead-letter reason)."""
    rec, reason = judge_record(raw, campaigns)
    return (None, reason) if reason else (rec, None)


def judge_record(raw, campaigns):
    """As judge(), but a record whose only fault is its null network_id comes with its fields
    and that reason: late or not is judged first (the callers' watermark)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None, "decode: malformed JSON: invalid UTF-8"
    obj, reason = decode_json(text)
    if obj is None:
        return None, reason
    return check(obj, campaigns)


def reason_class(reason):
    """Groups reasons for comparison: every 'decode: ...' message is one class."""
    return "decode:" if reason.startswith("decode:") else reason


def recompute(paths, campaigns_path, open_at_end=False, watermark_delay=10.0,
              allowed_lateness=0.0):
    """Returns a dict: rows (list of dicts, ROW_COLUMNS; window times in microseconds),
    dead_letters (list of (reason, payload, path, offset) in input order), reasons (Counter of
    reason_class), read, aggregated, late, open_windows, open_records, watermark (micros or
    None)."""
    if isinstance(paths, str):
        paths = [paths]
    campaigns = load_campaigns(campaigns_path)
    delay = round(watermark_delay * MICROS)
    lateness = round(allowed_lateness * MICROS)
    windows = {}  # (window_start, network_id, campaign_id) -> [sum, count]
    dead = []
    read = aggregated = late = 0
    max_t = None
    wm = None  # None: -infinity
    for path, offset, raw in read_records(paths):
        read += 1
        payload = raw.decode("utf-8", "replace")
        rec, reason = judge_record(raw, campaigns)
        if rec is None:
            dead.append((reason, payload, path, offset))
            continue
        t = rec["start"]
        ws = t // WINDOW * WINDOW
        we = ws + WINDOW
        if wm is not None and we + lateness <= wm:
            late += 1
            dead.append(("late", payload, path, offset))
        elif reason:
            dead.append((reason, payload, path, offset))
            continue
        else:
            aggregated += 1
            acc = windows.setdefault((ws, rec["network_id"], rec["campaign_id"]), [0.0, 0])
            acc[0] += rec["duration"]
            acc[1] += 1
        max_t = t if max_t is None else max(max_t, t)
        wm = max_t - delay
    rows, open_windows, open_records = [], set(), 0
    for (ws, network, campaign), (total, count) in sorted(windows.items()):
        we = ws + WINDOW
        if open_at_end and (wm is None or we + lateness > wm):
            open_windows.add(ws)
            open_records += count
            continue
        rows.append({"network_id": network, "minute_timestamp": format_micros(ws, "%Y-%m-%d-%H-%M"),
                     "campaign_id": campaign, "window_start": ws, "window_end": we,
                     "avg_duration": total / count, "total_count": count})
    rows.sort(key=lambda r: tuple(r[k] for k in KEY))
    return {"rows": rows, "dead_letters": dead,
            "reasons": Counter(reason_class(d[0]) for d in dead), "read": read,
            "aggregated": aggregated, "late": late, "open_windows": len(open_windows),
            "open_records": open_records, "watermark": wm}


def recompute_by_partition(partitions, campaigns_path, watermark_delay=10.0,
                           allowed_lateness=0.0):
    """The rule of a topic read by any number of processes (issue 16): partitions is
    {partition: [(offset, payload bytes), ...]}, each list in offset order (every partition of
    the topic, empty ones too: a partition without a watermark holds every window open).
    Returns recompute()'s dict, with dead_letters as (reason, payload, partition, offset), the
    watermark the minimum over the partitions (None while one has none), watermarks
    {partition: W or None}, and not_late_behind: records counted although their window's end
    was at or before their partition's watermark (kept by allowed_lateness alone)."""
    campaigns = load_campaigns(campaigns_path)
    delay = round(watermark_delay * MICROS)
    lateness = round(allowed_lateness * MICROS)
    windows = {}  # (window_start, network_id, campaign_id) -> [sum, count]
    dead = []
    read = aggregated = late = behind = 0
    watermarks = {}
    for p in sorted(partitions):
        max_t = wm = None  # None: -infinity
        for offset, raw in partitions[p]:
            read += 1
            rec, reason = judge_record(raw, campaigns)
            if rec is None:
                dead.append((reason, raw.decode("utf-8", "replace"), p, offset))
                continue
            t = rec["start"]
            ws = t // WINDOW * WINDOW
            we = ws + WINDOW
            if wm is not None and we + lateness <= wm:
                late += 1
                dead.append(("late", raw.decode("utf-8", "replace"), p, offset))
                continue
            if reason:
                dead.append((reason, raw.decode("utf-8", "replace"), p, offset))
                continue
            if wm is not None and we <= wm:
                behind += 1
            aggregated += 1
            acc = windows.setdefault((ws, rec["network_id"], rec["campaign_id"]), [0.0, 0])
            acc[0] += rec["duration"]
            acc[1] += 1
            max_t = t if max_t is None else max(max_t, t)
            wm = max_t - delay
        watermarks[p] = wm
    bound = None if not watermarks or None in watermarks.values() else min(watermarks.values())
    rows, open_windows, open_records = [], set(), 0
    for (ws, network, campaign), (total, count) in sorted(windows.items()):
        we = ws + WINDOW
        if bound is None or we + lateness > bound:
            open_windows.add((ws, network, campaign))
            open_records += count
            continue
        rows.append({"network_id": network, "minute_timestamp": format_micros(ws, "%Y-%m-%d-%H-%M"),
                     "campaign_id": campaign, "window_start": ws, "window_end": we,
                     "avg_duration": total / count, "total_count": count})
    rows.sort(key=lambda r: tuple(r[k] for k in KEY))
    return {"rows": rows, "dead_letters": dead,
            "reasons": Counter(reason_class(d[0]) for d in dead), "read": read,
            "aggregated": aggregated, "late": late, "open_windows": len(open_windows),
            "open_records": open_records, "watermark": bound, "watermarks": watermarks,
            "not_late_behind": behind}


def read_partitioned(paths):
    """{partition: [(offset, payload bytes)]} from files of kcat lines 'PARTITION\tOFFSET\t
    PAYLOAD', each partition sorted by offset."""
    out = {}
    for path, _, raw in read_records(paths):
        parts = raw.split(b"\t", 2)
        if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
            raise ValueError(f"{path}: not a 'PARTITION<TAB>OFFSET<TAB>PAYLOAD' line: {raw[:80]!r}")
        out.setdefault(int(parts[0]), []).append((int(parts[1]), parts[2]))
    for recs in out.values():
        recs.sort(key=lambda r: r[0])
    return out


def write_rows(rows, path):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(ROW_COLUMNS)
        for r in rows:
            w.writerow([r["network_id"], r["minute_timestamp"], r["campaign_id"],
                        format_micros(r["window_start"]), format_micros(r["window_end"]),
                        repr(r["avg_duration"]), r["total_count"]])


def read_rows(path):
    """Reads a CSV written by write_rows (or hand-written the same way) back into row dicts."""
    def micros(s):
        us = parse_iso(s)
        if us is None:
            raise ValueError(f"{path}: not a time: {s!r}")
        return us
    rows = []
    with open(path, newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            rows.append({"network_id": int(r["network_id"]),
                         "minute_timestamp": r["minute_timestamp"],
                         "campaign_id": int(r["campaign_id"]),
                         "window_start": micros(r["window_start"]),
                         "window_end": micros(r["window_end"]),
                         "avg_duration": float(r["avg_duration"]),
                         "total_count": int(r["total_count"])})
    return rows


def compare_rows(got, expected, rel_tol=1e-9, label="got"):
    """Compares row lists as multisets keyed by KEY; returns a list of problems (each window key
    must appear exactly once on each side; avg_duration within rel_tol)."""
    problems = []

    def index(rows, side):
        out = {}
        for r in rows:
            k = tuple(r[c] for c in KEY)
            if k in out:
                problems.append(f"{side}: window {k} appears more than once")
            out[k] = r
        return out
    g, e = index(got, label), index(expected, "expected")
    for k in sorted(set(e) - set(g)):
        problems.append(f"missing row {k}: {e[k]}")
    for k in sorted(set(g) - set(e)):
        problems.append(f"unexpected row {k}: {g[k]}")
    for k in sorted(set(g) & set(e)):
        a, b = g[k], e[k]
        for c in ("window_start", "window_end", "total_count"):
            if a[c] != b[c]:
                problems.append(f"row {k}: {c} {label} {a[c]} != expected {b[c]}")
        if not math.isclose(a["avg_duration"], b["avg_duration"], rel_tol=rel_tol, abs_tol=1e-12):
            problems.append(f"row {k}: avg_duration {label} {a['avg_duration']!r} != expected "
                            f"{b['avg_duration']!r}")
    return problems


def main(argv=None):
    ap = argparse.ArgumentParser(description="Recompute the viewlog pipeline's output.")
    ap.add_argument("views", nargs="+", help="NDJSON view logs, read in order")
    ap.add_argument("--campaigns", required=True)
    ap.add_argument("--open-at-end", action="store_true",
                    help="unbounded input stopped caught up: only windows the watermark closed")
    ap.add_argument("--by-partition", action="store_true",
                    help="the input is a topic as kcat -f '%%p\\t%%o\\t%%s\\n' prints it: "
                         "lateness by each partition's own watermark, windows closed by the "
                         "minimum of the partitions' watermarks")
    ap.add_argument("--watermark-delay", type=float, default=10.0, help="seconds")
    ap.add_argument("--allowed-lateness", type=float, default=0.0, help="seconds")
    ap.add_argument("--out", help="write the rows as CSV")
    ap.add_argument("--dlq", help="write the dead letters as NDJSON")
    args = ap.parse_args(argv)
    if args.by_partition and args.open_at_end:
        ap.error("--by-partition keeps windows open by itself: leave --open-at-end out")
    if args.by_partition:
        res = recompute_by_partition(read_partitioned(args.views), args.campaigns,
                                     args.watermark_delay, args.allowed_lateness)
    else:
        res = recompute(args.views, args.campaigns, args.open_at_end, args.watermark_delay,
                        args.allowed_lateness)
    if args.out:
        write_rows(res["rows"], args.out)
    if args.dlq:
        with open(args.dlq, "w", encoding="utf-8") as f:
            for reason, payload, where, offset in res["dead_letters"]:
                d = {"reason": reason, "payload": payload, "offset": offset}
                if args.by_partition:
                    d["partition"] = where
                f.write(json.dumps(d) + "\n")
    print(f"read {res['read']}, aggregated {res['aggregated']}, dead-lettered "
          f"{len(res['dead_letters'])} (late {res['late']}), rows {len(res['rows'])}"
          + (f", open windows {res['open_windows']} ({res['open_records']} records)"
             if args.open_at_end or args.by_partition else ""))
    for reason, n in sorted(res["reasons"].items()):
        print(f"  {n:8d}  {reason}")
    if not args.out:
        w = csv.writer(sys.stdout, lineterminator="\n")
        w.writerow(ROW_COLUMNS)
        for r in res["rows"]:
            w.writerow([r["network_id"], r["minute_timestamp"], r["campaign_id"],
                        format_micros(r["window_start"]), format_micros(r["window_end"]),
                        repr(r["avg_duration"]), r["total_count"]])
    return 0


if __name__ == "__main__":
    sys.exit(main())
