#!/usr/bin/env python3
"""Columnar differential test (issue 19): the example pipelines, on messy input, give
the same output through the row path (SLUICE_COLUMNAR=0) and the columnar path
(SLUICE_COLUMNAR=1): the same sink rows, the same dead letters (reason, payload, partition,
offset) and the same counters of the run summary.

    columnar_differential_test.py --sluice build/sluice [--only recruitment,ysb,viewlog,recruitment_csv]
                                  [--records N] [--seed S] [--keep]

Inputs: `sluice generate` output for each pipeline with about one line in six replaced by a
messy variant of itself (a declared field missing, of the wrong type, null, a huge or
fractional number, escaped, bad UTF-8, a NUL byte, truncated, an array or object, spaces and a
CR, an empty line), for viewlog one in four (half of them blank, padded or edge-case ISO
strings, or an end before the start), and for recruitment the seed tracking log (real data) as
JSON lines too.
recruitment_csv reads CSV with the seed log's header: the seed log's records and generated ones,
one in six messy (a field missing or extra, a stray quote, text after a closing quote, doubled
quotes, an embedded line break, a CR, blanks, empty and wrong-typed values, every field quoted).
Neither path is the reference here: the other tests compare the row path with independent
recomputations; this one proves the columnar path changes nothing. Exit 1 on any difference;
viewlog (Parquet) is skipped without pyarrow (a FAIL under CI=true).
"""

import argparse
import csv
import glob
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SEED_TRACKING = os.path.normpath(os.path.join(
    REPO, "..", "shared", "seed-data", "TrannXuanTien__ETL-streaming-project", "tracking.csv"))

PIPELINES = {
    # name: (pipeline file, profile, input variable, sink kind)
    "recruitment": ("examples/recruitment.toml", "recruitment", "TRACKING", "sqlite"),
    "ysb": ("examples/ysb.toml", "ysb", "EVENTS", "sqlite"),
    "viewlog": ("examples/viewlog.toml", "viewlog", "VIEWS", "parquet"),
    # The same pipeline reading CSV (build_csv_input): the columnar CSV decoder.
    "recruitment_csv": ("examples/recruitment.toml", "recruitment", "TRACKING", "sqlite"),
}


# How many leading steps the columnar run must evaluate over the columns (the worker logs it):
# all of them: recruitment's two filters, its event-time `let`, the dead_letter_if on it, its
# four coalesce() `let`s, the job lookup and `let company_id`; ysb's filter, its dead_letter_if
# and the ads lookup; viewlog's four dead_letter_ifs (trim(x) = '', is null), its two
# parse_time(x, 'iso') `let`s and their dead_letter_ifs, `let view_duration` (seconds_between),
# the dead_letter_if on it and the campaign lookup. Then their aggregates read the columns too
# (no row per record).
COLUMN_STEPS = {"recruitment": 10, "recruitment_csv": 10, "ysb": 3, "viewlog": 11}
AGGREGATE_OVER_COLUMNS = {"recruitment", "recruitment_csv", "ysb", "viewlog"}

# Dead letters each run must have for the test to prove anything about a step over columns
# (ysb's lookup misses run the lookup step on a row: its dead letters must be the row path's).
MUST_DEAD_LETTER = {
    "recruitment": ["no event time"],
    "recruitment_csv": ["no event time"],
    "ysb": ["no event_time", "no ads for key"],
    "viewlog": ["missing view_id", "missing start_timestamp", "missing end_timestamp",
                "missing campaign_id", "unparseable start_timestamp", "unparseable end_timestamp",
                "end_timestamp before start_timestamp", "no campaign for key"],
}

# viewlog's own messy values (mess_viewlog): blank strings of every byte trim() strips and of
# Unicode spaces it keeps, padded values, and ISO timestamps at the edges. A start time is only
# ever made earlier (late, one record), never later, so the watermark stays where it was.
BLANKS = ["", " ", "\t", "\n", "\r\n", "\f", "\x0b", " \t\n\r\f\x0b ", "\u00a0", " \u00a0 ",
          "\u2003", "\u3000", "\u0085", "\u200b"]
START_EDGES = ["2026-02-29T00:00:00", "2024-02-29T00:00:00", "2024-02-29T23:59:59.999999+02:00",
               "2025-12-31T23:59:60", "0000-01-01T00:00:00", "1/1/2026 00:00", "2026-01-01",
               "2026-1-1T00:00:00", "2026-01-01T00:00:00.Z", "2026-01-01T00:00:00+25:00",
               "2025-12-31T23:59:59+0100", "2026-01-01t00:00:00", "yesterday"]
END_EDGES = ["9999-12-31T23:59:59.999999Z", "2026-01-01T24:00:00", "2026-01-01T00:00:00.1234567",
             "2028-02-29T00:00:00-12:00", "2026-13-01T00:00:00", "2026-01-01T00:00:00+14:00",
             "2025-12-31T23:59:59.999999"]


def mess(line, rng):
    """Returns a messy variant of one JSON line (bytes)."""
    try:
        obj = json.loads(line)
    except ValueError:
        return line
    if not isinstance(obj, dict) or not obj:
        return line
    key = rng.choice(sorted(obj))
    kind = rng.randrange(22)
    if kind == 0:
        del obj[key]
    elif kind == 1:
        obj[key] = None
    elif kind == 2:
        obj[key] = "abc"
    elif kind == 3:
        obj[key] = 12.5
    elif kind == 4:
        obj[key] = 12.0
    elif kind == 5:
        obj[key] = True
    elif kind == 6:
        obj[key] = [1, 2]
    elif kind == 7:
        obj[key] = {"a": {"b": 1}}
    elif kind == 8:
        obj[key] = 99999999999999999999
    elif kind == 9:
        obj[key] = -9223372036854775808
    elif kind == 10:
        obj[key] = ""
    elif kind == 11:
        obj[key] = " 42 "
    elif kind == 12:
        return line[: rng.randrange(1, max(2, len(line)))]
    elif kind == 13:
        return b""
    elif kind == 14:
        return b"   \r"
    elif kind == 15:
        # Escaped key and value (the same text once unescaped).
        text = json.dumps(obj, ensure_ascii=True)
        return text.replace('"%s"' % key, '"%s"' % "".join("\\u%04x" % ord(c) for c in key), 1).encode()
    elif kind == 16:
        obj[key] = "caf\u00e9 \"q\" \\ \t"
        return json.dumps(obj, ensure_ascii=rng.random() < 0.5).encode()
    elif kind == 17:
        return line.replace(b'":"', b'":"\xff\xfe', 1)
    elif kind == 18:
        return line.replace(b",", b"\x00,", 1)
    elif kind == 19:
        return b"  " + json.dumps(obj, indent=None, separators=(" , ", " : ")).encode() + b" \r"
    elif kind == 20:
        return line + b" trailing"
    else:
        obj[key] = "1e3" if rng.random() < 0.5 else "2026-01-01T00:00:00Z"
    return json.dumps(obj).encode()


def mess_viewlog(line, rng):
    """Returns a variant of one viewlog JSON line (bytes) with a blank, padded or edge-case
    string in view_id, start_timestamp or end_timestamp, or its end before its start."""
    try:
        obj = json.loads(line)
    except ValueError:
        return line
    key = rng.choice(["view_id", "start_timestamp", "end_timestamp"])
    kind = rng.randrange(5)
    if kind == 0:
        obj[key] = rng.choice(BLANKS)
    elif kind == 1 and isinstance(obj.get(key), str):
        obj[key] = rng.choice(BLANKS) + obj[key] + rng.choice(BLANKS)
    elif kind == 2:
        obj["start_timestamp"] = rng.choice(START_EDGES)
    elif kind == 3:
        obj["end_timestamp"] = rng.choice(END_EDGES)
    else:
        obj["end_timestamp"] = "2025-12-31T23:59:59"  # before every generated start
    return json.dumps(obj, ensure_ascii=rng.random() < 0.5).encode()


def seed_tracking_lines(limit):
    if not os.path.exists(SEED_TRACKING):
        return []
    out = []
    with open(SEED_TRACKING, newline="", encoding="utf-8", errors="replace") as f:
        for i, row in enumerate(csv.DictReader(f)):
            if i >= limit:
                break
            obj = {}
            for k, v in row.items():
                if k is None:
                    continue
                if v == "" and i % 3 == 0:
                    obj[k] = None
                elif v and i % 2 == 0 and v.lstrip("-").isdigit() and len(v) < 19:
                    obj[k] = int(v)
                else:
                    obj[k] = v
            out.append(json.dumps(obj).encode())
    return out


def csv_field(v):
    """One CSV cell as Python's csv module writes it: quoted only when it must be."""
    if v is None:
        return ""
    if isinstance(v, bool):
        v = "TRUE" if v else "FALSE"
    v = str(v)
    if any(c in v for c in ',"\r\n'):
        return '"' + v.replace('"', '""') + '"'
    return v


def mess_csv(cells, rng):
    """Returns a messy variant of one CSV record (its cells unquoted), without terminator."""
    cells = list(cells)
    at = rng.randrange(len(cells))
    kind = rng.randrange(20)
    plain = lambda: ",".join(csv_field(c) for c in cells)  # noqa: E731
    if kind == 0:
        del cells[at]  # a field missing
    elif kind == 1:
        cells.append("extra")
    elif kind == 2:
        return plain().replace(",", ',ab"c"d,', 1)  # stray quotes (and one field more)
    elif kind == 3:
        out = [csv_field(c) for c in cells]
        out[at] = '"%s"x' % cells[at].replace('"', '""')  # text after the closing quote
        return ",".join(out)
    elif kind == 4:
        cells[at] = "abc"
    elif kind == 5:
        cells[at] = " 42 "
    elif kind == 6:
        cells[at] = 'say "hi", ok'
    elif kind == 7:
        cells[at] = "two\nlines"
    elif kind == 8:
        return plain() + "\r"  # CRLF once the source takes the \n
    elif kind == 9:
        cells = [""] * len(cells)
    elif kind == 10:
        return ""
    elif kind == 11:
        cells[at] = "99999999999999999999"
    elif kind == 12:
        cells[at] = "12.5"
    elif kind == 13:
        return ",".join('"%s"' % c.replace('"', '""') for c in cells)  # every field quoted
    elif kind == 14:
        cells[at] = "nul\x00byte"
    elif kind == 15:
        cells[at] = " "
    elif kind == 16:
        cells[at] = "-0"
    elif kind == 17:
        cells[at] = "+7"
    elif kind == 18:
        cells[at] = '"'
    else:
        cells[at] = "caf\u00e9 \t"
    return plain()


def build_csv_input(sluice, records, seed, path):
    """The recruitment pipeline's input as CSV with the seed log's header: generated events and
    the seed log's records, about one in six replaced by a messy variant."""
    raw = path + ".ndjson"
    subprocess.run([sluice, "generate", "--profile", "recruitment", "--count", str(records), "--rate", "0",
                    "--seed", str(seed), "--to", raw], check=True, cwd=REPO,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if not os.path.exists(SEED_TRACKING):
        raise Skip("seed tracking.csv not found at " + SEED_TRACKING)
    with open(SEED_TRACKING, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], [r for r in rows[1:] if r]
    with open(raw, encoding="utf-8") as f:
        for ln in f:
            obj = json.loads(ln)
            body.append(["" if obj.get(k) is None else obj[k] for k in header])
    os.remove(raw)
    rng = random.Random(seed)
    rng.shuffle(body)
    lines = []
    for cells in body:
        cells = [c if isinstance(c, str) else csv_field(c) for c in cells]
        if rng.random() < 1 / 6:
            lines.append(mess_csv(cells, rng))
        else:
            lines.append(",".join(csv_field(c) for c in cells))
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(",".join(header) + "\n" + "\n".join(lines) + "\n")
    return len(lines)


class Skip(Exception):
    pass


def build_input(sluice, profile, records, seed, path):
    raw = path + ".clean"
    subprocess.run([sluice, "generate", "--profile", profile, "--count", str(records), "--rate", "0",
                    "--seed", str(seed), "--to", raw], check=True, cwd=REPO,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rng = random.Random(seed)
    with open(raw, "rb") as f:
        lines = f.read().split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if profile == "viewlog":
        out = [(mess(ln, rng) if rng.random() < 0.5 else mess_viewlog(ln, rng))
               if rng.random() < 1 / 4 else ln for ln in lines]
    else:
        out = [mess(ln, rng) if rng.random() < 1 / 6 else ln for ln in lines]
    if profile == "recruitment":
        extra = seed_tracking_lines(2000)
        for ln in extra:
            out.insert(rng.randrange(len(out) + 1), ln)
    with open(path, "wb") as f:
        f.write(b"\n".join(out) + b"\n")
    os.remove(raw)
    return len(out)


def sqlite_tables(db):
    con = sqlite3.connect(db)
    out = {}
    for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"):
        if name.startswith("_sluice") and name != "_sluice_dead_letters":
            continue  # positions and markers: not output
        rows = con.execute('SELECT * FROM "%s"' % name).fetchall()
        if name == "_sluice_dead_letters":
            cols = [d[0] for d in con.execute('SELECT * FROM "%s" LIMIT 0' % name).description]
            keep = [i for i, c in enumerate(cols) if c not in ("time", "dead_lettered_at", "at", "wall_time")]
            rows = [tuple(r[i] for i in keep) for r in rows]
        out[name] = sorted(rows, key=repr)
    con.close()
    return out


def parquet_rows(out_dir):
    import pyarrow.parquet as pq  # noqa: E402 (optional)
    rows = []
    for path in glob.glob(os.path.join(out_dir, "**", "*.parquet"), recursive=True):
        rel = os.path.relpath(path, out_dir)
        part = os.path.dirname(rel)
        for r in pq.read_table(path).to_pylist():
            rows.append((part, tuple(sorted((k, repr(v)) for k, v in r.items()))))
    return {"parquet": sorted(rows, key=repr)}


def dead_letters(path):
    c = Counter()
    if not os.path.exists(path):
        return c
    with open(path, "rb") as f:
        for ln in f:
            if not ln.strip():
                continue
            o = json.loads(ln)
            c[(o.get("reason"), json.dumps(o.get("payload"), sort_keys=True), o.get("source"),
               o.get("partition"), o.get("offset"))] += 1
    return c


def counters(summary):
    """The summary without what differs from run to run (times, rates, sizes in memory)."""
    drop = ("seconds", "elapsed", "rate", "per_second", "time", "rss", "started", "ended",
            "duration", "_ms", "_us", "at")

    def clean(v):
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()
                    if not any(k == d or k.endswith(d) for d in drop)}
        if isinstance(v, list):
            return [clean(x) for x in v]
        return v
    return clean(summary)


def run(sluice, name, work, input_path, columnar):
    pipeline, _, var, sink = PIPELINES[name]
    tag = "columnar" if columnar else "row"
    d = os.path.join(work, "%s-%s" % (name, tag))
    os.makedirs(d)
    dlq = os.path.join(d, "dlq.ndjson")
    summary = os.path.join(d, "summary.json")
    cmd = [sluice, "run", os.path.join(REPO, pipeline), "--var", "%s=%s" % (var, input_path),
           "--var", "DLQ=%s" % dlq, "--summary-json", summary, "-q", "--log-level", "debug"]
    if sink == "sqlite":
        cmd += ["--var", "SINK=sqlite:%s" % os.path.join(d, "out.db")]
    else:
        cmd += ["--var", "OUT=parquet:%s" % os.path.join(d, "out")]
    env = dict(os.environ, SLUICE_COLUMNAR="1" if columnar else "0")
    p = subprocess.run(cmd, env=env, cwd=d, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        raise AssertionError("%s (%s) exited %d:\n%s" % (name, tag, p.returncode, p.stderr[-2000:]))
    # The test proves nothing unless each run took the path it asked for.
    want = "the %s path" % ("columnar" if columnar else "row")
    if columnar and name in COLUMN_STEPS:
        want += " (%d step(s) over columns" % COLUMN_STEPS[name]
        want += ", the aggregate over columns)" if name in AGGREGATE_OVER_COLUMNS else ")"
    if want not in p.stderr:
        raise AssertionError("%s (%s): the worker did not log '%s':\n%s" % (name, tag, want, p.stderr[-2000:]))
    with open(summary) as f:
        s = json.loads(f.read().replace(d, "<run dir>"))
    if sink == "sqlite":
        rows = sqlite_tables(os.path.join(d, "out.db"))
    else:
        rows = parquet_rows(os.path.join(d, "out"))
    return rows, dead_letters(dlq), counters(s)


def compare(name, row, col):
    problems = []
    (rows_a, dl_a, c_a), (rows_b, dl_b, c_b) = row, col
    if rows_a != rows_b:
        for table in sorted(set(rows_a) | set(rows_b)):
            a, b = rows_a.get(table, []), rows_b.get(table, []),
            if a != b:
                only_a = [r for r in a if r not in set(b)][:3]
                only_b = [r for r in b if r not in set(a)][:3]
                problems.append("%s: table %s differs (%d rows vs %d); row only: %r; columnar only: %r"
                                % (name, table, len(a), len(b), only_a, only_b))
    if dl_a != dl_b:
        problems.append("%s: dead letters differ: row only %r; columnar only %r"
                        % (name, list((dl_a - dl_b).items())[:3], list((dl_b - dl_a).items())[:3]))
    if c_a != c_b:
        problems.append("%s: counters differ:\n  row      %s\n  columnar %s"
                        % (name, json.dumps(c_a, sort_keys=True), json.dumps(c_b, sort_keys=True)))
    return problems


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--only", default=",".join(PIPELINES))
    ap.add_argument("--records", type=int, default=30000)
    ap.add_argument("--seed", type=int, default=19)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args(argv)
    sluice = os.path.abspath(args.sluice)
    work = tempfile.mkdtemp(prefix="columnar_diff_")
    failures, ran, skipped = [], 0, []
    try:
        for name in args.only.split(","):
            if PIPELINES[name][3] == "parquet":
                try:
                    import pyarrow.parquet  # noqa: F401
                except ImportError:
                    skipped.append(name + " (no pyarrow)")
                    continue
            try:
                if name.endswith("_csv"):
                    path = os.path.join(work, name + ".csv")
                    n = build_csv_input(sluice, args.records, args.seed, path)
                else:
                    path = os.path.join(work, name + ".ndjson")
                    n = build_input(sluice, PIPELINES[name][1], args.records, args.seed, path)
            except Skip as e:
                skipped.append("%s (%s)" % (name, e))
                continue
            try:
                row = run(sluice, name, work, path, columnar=False)
                col = run(sluice, name, work, path, columnar=True)
            except AssertionError as e:
                failures.append(str(e))
                continue
            problems = compare(name, row, col)
            dl = sum(row[1].values())
            print("%s: %d lines, %d dead letters, %s" % (name, n, dl,
                  "identical" if not problems else "DIFFERENT"))
            if dl == 0:
                problems.append("%s: no dead letters at all: the messy lines did not reach the decoder" % name)
            for reason in MUST_DEAD_LETTER.get(name, []):
                if not any(k[0].startswith(reason) for k in row[1]):
                    problems.append("%s: no dead letter '%s...': the step over columns was not exercised"
                                    % (name, reason))
            failures += problems
            ran += 1
    finally:
        if args.keep:
            print("kept", work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    for s in skipped:
        print("SKIPPED", s)
    if skipped and os.environ.get("CI") == "true":
        failures.append("skipped under CI: " + ", ".join(skipped))
    for f in failures:
        print("FAIL", f)
    if failures:
        return 1
    return 0 if ran else 77


if __name__ == "__main__":
    sys.exit(main())
