#!/usr/bin/env python3
"""Independent recomputation of the recruitment pipeline's `events` table.

Written from the contract (examples/recruitment.toml and the test brief), not from the
engine's code, so that the engine can be checked against it. Python 3 standard library only.

    recompute_recruitment.py TRACKING JOBS OUT_DB [--sources file] [--dlq DLQ.ndjson] [--json]

TRACKING  a tracking file: .csv (with a header) or .ndjson/.jsonl (one JSON object a line)
JOBS      the job dimension CSV (';' or ',' delimited, sniffed from the header line);
          columns `id` and `company_id` are used
OUT_DB    SQLite file to write; table `events` is (re)created there, with the 15 columns
          job_id, dates, hours, publisher_id, campaign_id, group_id, company_id, clicks,
          bid_set, spend_hour, conversion, qualified_application, disqualified_application,
          sources, latest_update_time
          The surviving records are also kept, in table `_records` (one row per counted record).

Semantics (the contract):
 a. Decode. job_id, bid, publisher_id, campaign_id, group_id are int64. Blank, missing or JSON
    null means null. NDJSON may carry them as JSON numbers or numeric strings. A non-blank value
    that is not a strict integer (optional sign and ASCII digits; in JSON an integral float such
    as 3.0 is accepted) or is out of the int64 range dead-letters the record ("decode: ...").
    A malformed NDJSON line (not JSON, or not an object) or a CSV row with the wrong number of
    fields is dead-lettered too. Decoding happens before any other step.
 b. custom_track blank, or not exactly one of click/conversion/qualified/unqualified: ignored.
    Then a null job_id: ignored.
 c. Event time = the time of create_time when it is a canonical (8-4-4-4-12 hex) version-1 UUID
    (RFC 4122 variant); otherwise ts parsed as 'YYYY-MM-DD HH:MM:SS', 'YYYY-MM-DDTHH:MM:SS' or
    'M/D/YYYY H:MM' (UTC); if neither gives a time the record is dead-lettered ("no event time").
 d. Null bid/publisher_id/campaign_id/group_id become 0. company_id comes from the job CSV for
    job_id (0 when the job is unknown or its company_id is blank).
 e. One SQL query groups the surviving records by (job_id, dates, hours, publisher_id,
    campaign_id, group_id), with event-hour windows.

Choices where the contract is silent (kept out of the golden cases):
  * values are not trimmed: ' 1' is not a strict integer (dead letter), 'click ' is not 'click';
  * ts accepts exactly the three formats (no fractional seconds, no zone); M, D and H may have one
    or two digits; impossible dates/times ('2022-02-30', '24:00:00') are not timestamps;
  * a canonical UUID may use upper- or lower-case hex;
  * blank lines (CSV or NDJSON) are not records; a UTF-8 BOM before the CSV header is dropped;
  * a non-string JSON value in a string field (create_time, ts, custom_track) is taken as its
    JSON text;
  * job CSV: a duplicate id keeps its last row; a blank company_id gives 0.
"""

import argparse
import csv
import io
import datetime as dt
import json
import os
import re
import sqlite3
import sys
import uuid

INT_FIELDS = ("job_id", "bid", "publisher_id", "campaign_id", "group_id")
STR_FIELDS = ("create_time", "ts", "custom_track")
COUNTED_TRACKS = ("click", "conversion", "qualified", "unqualified")
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

STRICT_INT_RE = re.compile(r"[+-]?[0-9]+\Z")
CANONICAL_UUID_RE = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z")
TS_ISO_RE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})[ T]([0-9]{2}):([0-9]{2}):([0-9]{2})\Z")
TS_US_RE = re.compile(r"([0-9]{1,2})/([0-9]{1,2})/([0-9]{4}) ([0-9]{1,2}):([0-9]{2})\Z")
GREGORIAN_EPOCH = dt.datetime(1582, 10, 15)

EVENTS_COLUMNS = (
    "job_id", "dates", "hours", "publisher_id", "campaign_id", "group_id", "company_id",
    "clicks", "bid_set", "spend_hour", "conversion", "qualified_application",
    "disqualified_application", "sources", "latest_update_time",
)
EVENTS_KEY = ("job_id", "dates", "hours", "publisher_id", "campaign_id", "group_id")


class DeadLetter(Exception):
    pass


# ----------------------------------------------------------------------------- decoding

def decode_int_text(name, text):
    """A CSV cell / JSON string for an int64 field -> int or None (blank)."""
    if text == "":
        return None
    if not STRICT_INT_RE.match(text):
        raise DeadLetter(f"decode: field {name}: {text!r} is not an int64")
    v = int(text)
    if not INT64_MIN <= v <= INT64_MAX:
        raise DeadLetter(f"decode: field {name}: {text!r} is out of the int64 range")
    return v


def decode_int_json(name, value):
    if value is None:
        return None
    if isinstance(value, bool):
        raise DeadLetter(f"decode: field {name}: {value!r} is not an int64")
    if isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise DeadLetter(f"decode: field {name}: {value!r} is out of the int64 range")
        return value
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")) or not value.is_integer():
            raise DeadLetter(f"decode: field {name}: {value!r} is not an int64")
        v = int(value)
        if not INT64_MIN <= v <= INT64_MAX:
            raise DeadLetter(f"decode: field {name}: {value!r} is out of the int64 range")
        return v
    if isinstance(value, str):
        return decode_int_text(name, value)
    raise DeadLetter(f"decode: field {name}: {json.dumps(value)} is not an int64")


def decode_str_json(name, value):
    if value is None:
        return None
    if isinstance(value, str):
        return None if value == "" else value
    # Not specified by the contract: a non-string JSON value in a string field is taken as its
    # JSON text (5 -> "5", true -> "true"), not dead-lettered.
    return json.dumps(value, separators=(",", ":"))


def decode_csv_record(header, row):
    if isinstance(row, BadCsvRow):
        raise DeadLetter(row.reason)
    if len(row) != len(header):
        raise DeadLetter(f"decode: csv row has {len(row)} fields, header has {len(header)}")
    cells = dict(zip(header, row))
    rec = {}
    for f in STR_FIELDS:
        v = cells.get(f)
        rec[f] = None if v is None or v == "" else v
    for f in INT_FIELDS:
        v = cells.get(f)
        rec[f] = None if v is None else decode_int_text(f, v)
    return rec


def decode_json_record(line):
    try:
        obj = json.loads(line)
    except ValueError as e:
        raise DeadLetter(f"decode: malformed JSON: {e}")
    if not isinstance(obj, dict):
        raise DeadLetter("decode: JSON value is not an object")
    rec = {}
    for f in STR_FIELDS:
        rec[f] = decode_str_json(f, obj.get(f))
    for f in INT_FIELDS:
        rec[f] = decode_int_json(f, obj.get(f))
    return rec


# ----------------------------------------------------------------------------- reading

class BadCsvRow(list):
    """A CSV record sluice's file source sets aside before decoding, with its reason."""

    def __init__(self, reason):
        super().__init__()
        self.reason = reason


def _quote_open(text):
    """True when `text` ends inside a quoted field: a quote opens a field only at its start
    (a quote inside an unquoted field is stray and opens nothing); "" inside quotes is a quote."""
    in_quote, field_start, i, n = False, True, 0, len(text)
    while i < n:
        c = text[i]
        if in_quote:
            if c == '"':
                if i + 1 < n and text[i + 1] == '"':
                    i += 2
                    continue
                in_quote = False
        elif c == '"' and field_start:
            in_quote = True
        field_start = (not in_quote) and c == ","
        i += 1
    return in_quote


def _stray_quote_column(line):
    """The 1-based column of the first stray quote of a one-line record (a quote inside an
    unquoted field, or text after a closing quote), else None."""
    i, n, column = 0, len(line), 1
    while True:
        if i < n and line[i] == '"':
            i += 1
            while i < n:
                if line[i] == '"':
                    if i + 1 < n and line[i + 1] == '"':
                        i += 2
                        continue
                    break
                i += 1
            i += 1  # past the closing quote
            if i < n and line[i] != ",":
                return column
        else:
            j = line.find(",", i)
            j = n if j < 0 else j
            if '"' in line[i:j]:
                return column
            i = j
        if i >= n:
            return None
        i += 1
        column += 1


def read_csv_records(path):
    """Yields (row, header, raw_text, byte_offset) for each CSV record (quoted newlines handled).

    raw_text is the record's text as it is in the file, without the final line break. As in
    sluice's file source, a record that runs over several lines must still split into the
    header's number of fields: otherwise only its first line is set aside and reading resumes
    at the next line; and a one-line record with a stray quote is set aside. Set-aside records
    come as a BadCsvRow (empty, with a `reason`)."""
    with open(path, "rb") as fb:
        data = fb.read()
    text_lines = data.decode("utf-8").splitlines(keepends=True)
    # Only '\n' (optionally preceded by '\r') ends a line for our purposes; splitlines also splits
    # on other separators (\x0b, \x1c, \u2028...), so re-join those pieces.
    lines = []
    for piece in text_lines:
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += piece
        else:
            lines.append(piece)
    if not lines:
        return
    header = next(csv.reader(io.StringIO(lines[0], newline=""), strict=False), None)
    if header is None:
        return
    if header and header[0].startswith("\ufeff"):
        header[0] = header[0][1:]
    offset = len(lines[0].encode("utf-8"))

    def strip_eol(t):
        if t.endswith("\n"):
            t = t[:-1]
            if t.endswith("\r"):
                t = t[:-1]
        return t

    i = 1
    while i < len(lines):
        j, text = i, lines[i]
        while _quote_open(text) and j + 1 < len(lines):
            j += 1
            text += lines[j]
        raw = strip_eol(text)
        if raw == "":
            offset += len(text.encode("utf-8"))
            i = j + 1
            continue
        row = next(csv.reader(io.StringIO(text, newline=""), strict=False), [])
        if j > i and len(row) != len(header):
            first = strip_eol(lines[i])
            yield (BadCsvRow(f"CSV record: a record over {j - i + 1} lines has {len(row)} fields, "
                             f"the header {len(header)}; its first line was set aside"),
                   header, first, offset)
            offset += len(lines[i].encode("utf-8"))
            i += 1
            continue
        if j == i:
            col = _stray_quote_column(raw)
            if col is not None:
                yield (BadCsvRow(f"CSV record: column {col}: stray quote in unquoted field"),
                       header, raw, offset)
                offset += len(text.encode("utf-8"))
                i = j + 1
                continue
        yield row, header, raw, offset
        offset += len(text.encode("utf-8"))
        i = j + 1


def read_ndjson_lines(path):
    with open(path, "rb") as f:
        data = f.read()
    for raw in data.split(b"\n"):
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        if raw.strip() == b"":
            continue
        yield raw.decode("utf-8", errors="replace")


def is_ndjson(path):
    return path.lower().endswith((".ndjson", ".jsonl", ".json"))


def iter_decoded(path):
    """Yields (record_or_None, dead_letter_reason_or_None, payload)."""
    if is_ndjson(path):
        for line in read_ndjson_lines(path):
            try:
                yield decode_json_record(line), None, line
            except DeadLetter as e:
                yield None, str(e), line
    else:
        for row, header, payload, _ in read_csv_records(path):
            try:
                yield decode_csv_record(header, row), None, payload
            except DeadLetter as e:
                yield None, str(e), payload


# ----------------------------------------------------------------------------- event time

def timeuuid_time(text):
    if text is None or not CANONICAL_UUID_RE.match(text):
        return None
    u = uuid.UUID(text)
    if u.version != 1:  # None unless the variant is RFC 4122
        return None
    return GREGORIAN_EPOCH + dt.timedelta(microseconds=u.time // 10)


def parse_time(text):
    if text is None:
        return None
    m = TS_ISO_RE.match(text)
    try:
        if m:
            y, mo, d, h, mi, s = (int(x) for x in m.groups())
            return dt.datetime(y, mo, d, h, mi, s)
        m = TS_US_RE.match(text)
        if m:
            mo, d, y, h, mi = (int(x) for x in m.groups())
            return dt.datetime(y, mo, d, h, mi, 0)
    except ValueError:  # e.g. 2022-02-30, 25:00
        return None
    return None


def fmt_time(t):
    return t.strftime("%Y-%m-%d %H:%M:%S.%f")  # fixed width: string max == time max


# ----------------------------------------------------------------------------- jobs

def sniff_delimiter(path):
    with open(path, encoding="utf-8", newline="") as f:
        first = f.readline()
    return ";" if first.count(";") > first.count(",") else ","


def load_jobs(path):
    delim = sniff_delimiter(path)
    jobs = {}
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter=delim)
        if reader.fieldnames and reader.fieldnames[0].startswith("\ufeff"):
            reader.fieldnames[0] = reader.fieldnames[0][1:]
        for row in reader:
            id_text = (row.get("id") or "").strip()
            if not STRICT_INT_RE.match(id_text):
                continue
            comp = (row.get("company_id") or "").strip()
            jobs[int(id_text)] = int(comp) if STRICT_INT_RE.match(comp) else 0
    return jobs


# ----------------------------------------------------------------------------- main logic

EVENTS_SQL = """
INSERT INTO events
SELECT job_id,
       substr(event_time, 1, 10)                        AS dates,
       CAST(substr(event_time, 12, 2) AS INTEGER)       AS hours,
       publisher_id, campaign_id, group_id,
       MAX(company_id)                                  AS company_id,
       SUM(custom_track = 'click')                      AS clicks,
       COALESCE(ROUND(AVG(CASE WHEN custom_track = 'click' THEN bid END), 2), 0.0) AS bid_set,
       COALESCE(SUM(CASE WHEN custom_track = 'click' THEN bid END), 0)         AS spend_hour,
       SUM(custom_track = 'conversion')                 AS conversion,
       SUM(custom_track = 'qualified')                  AS qualified_application,
       SUM(custom_track = 'unqualified')                AS disqualified_application,
       :sources                                         AS sources,
       substr(MAX(event_time), 1, 19)                   AS latest_update_time
FROM _records
GROUP BY job_id, dates, hours, publisher_id, campaign_id, group_id
"""


def recompute(tracking, jobs_path, out_db, sources="file", dlq_path=None):
    jobs = load_jobs(jobs_path)
    stats = {"read": 0, "ignored": 0, "dead_lettered": 0, "counted": 0,
             "ignored_by_reason": {}, "dead_by_reason": {}}
    survivors = []
    dead = []

    def ignore(reason):
        stats["ignored"] += 1
        stats["ignored_by_reason"][reason] = stats["ignored_by_reason"].get(reason, 0) + 1

    def dead_letter(reason, payload):
        stats["dead_lettered"] += 1
        key = reason.split(":")[0] if reason.startswith("decode") else reason
        key = "decode" if key.startswith("decode") else key
        stats["dead_by_reason"][key] = stats["dead_by_reason"].get(key, 0) + 1
        dead.append({"reason": reason, "payload": payload})

    for rec, reason, payload in iter_decoded(tracking):
        stats["read"] += 1
        if rec is None:
            dead_letter(reason, payload)
            continue
        track = rec["custom_track"]
        if track is None or track not in COUNTED_TRACKS:
            ignore("custom_track not counted")
            continue
        if rec["job_id"] is None:
            ignore("blank job_id")
            continue
        et = timeuuid_time(rec["create_time"])
        if et is None:
            et = parse_time(rec["ts"])
        if et is None:
            dead_letter("no event time: create_time is not a version-1 TimeUUID and ts is not "
                        "a timestamp", payload)
            continue
        survivors.append((
            rec["job_id"], fmt_time(et), track,
            rec["bid"] if rec["bid"] is not None else 0,
            rec["publisher_id"] if rec["publisher_id"] is not None else 0,
            rec["campaign_id"] if rec["campaign_id"] is not None else 0,
            rec["group_id"] if rec["group_id"] is not None else 0,
            jobs.get(rec["job_id"], 0),
        ))
    stats["counted"] = len(survivors)

    if os.path.exists(out_db):
        os.remove(out_db)
    con = sqlite3.connect(out_db)
    con.execute("""CREATE TABLE _records (job_id INTEGER, event_time TEXT, custom_track TEXT,
                   bid INTEGER, publisher_id INTEGER, campaign_id INTEGER, group_id INTEGER,
                   company_id INTEGER)""")
    con.executemany("INSERT INTO _records VALUES (?,?,?,?,?,?,?,?)", survivors)
    con.execute("""CREATE TABLE events (
        job_id INTEGER NOT NULL, dates TEXT NOT NULL, hours INTEGER NOT NULL,
        publisher_id INTEGER NOT NULL, campaign_id INTEGER NOT NULL, group_id INTEGER NOT NULL,
        company_id INTEGER, clicks INTEGER, bid_set REAL, spend_hour INTEGER,
        conversion INTEGER, qualified_application INTEGER, disqualified_application INTEGER,
        sources TEXT, latest_update_time TEXT,
        PRIMARY KEY (job_id, dates, hours, publisher_id, campaign_id, group_id))""")
    con.execute(EVENTS_SQL, {"sources": sources})
    con.commit()
    stats["rows"] = con.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    totals = con.execute("""SELECT TOTAL(clicks), TOTAL(spend_hour), TOTAL(conversion),
        TOTAL(qualified_application), TOTAL(disqualified_application) FROM events""").fetchone()
    stats["clicks"], stats["spend"], stats["conversions"], stats["qualified"], \
        stats["unqualified"] = (int(x) for x in totals)
    con.close()

    if dlq_path:
        with open(dlq_path, "w", encoding="utf-8") as f:
            for d in dead:
                f.write(json.dumps(d, ensure_ascii=False) + "\n")
    return stats


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("tracking", help="tracking .csv or .ndjson/.jsonl")
    ap.add_argument("jobs", help="job dimension CSV (';' or ',' delimited)")
    ap.add_argument("out_db", help="SQLite output path (table events is recreated)")
    ap.add_argument("--sources", default="file", help="value of the sources column (default file)")
    ap.add_argument("--dlq", help="write the dead-lettered records here as NDJSON")
    ap.add_argument("--json", action="store_true", help="print the counts as one JSON object")
    args = ap.parse_args(argv)
    stats = recompute(args.tracking, args.jobs, args.out_db, args.sources, args.dlq)
    if args.json:
        print(json.dumps(stats, sort_keys=True))
    else:
        print(f"records read:   {stats['read']}")
        print(f"ignored:        {stats['ignored']}  {stats['ignored_by_reason']}")
        print(f"dead-lettered:  {stats['dead_lettered']}  {stats['dead_by_reason']}")
        print(f"counted:        {stats['counted']}")
        print(f"rows:           {stats['rows']}")
        print(f"totals:         clicks={stats['clicks']} spend={stats['spend']} "
              f"conversion={stats['conversions']} qualified={stats['qualified']} "
              f"unqualified={stats['unqualified']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
