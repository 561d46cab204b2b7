#!/usr/bin/env python3
"""Reads dead letters and checks them against a golden case's expectations.

Dead letters are stored, one record each, with the keys
    pipeline (str), source (str), partition (int), offset (int), generation (int: which input
    the partition held, 0 for the first; a file replaced at its path is the next), reason (str),
    time (str, UTC ISO 8601), payload (the record: a JSON object/array when it was one, else a
    string), payload_base64 (str, only when the string is not the exact bytes: invalid UTF-8),
    payload_bytes (int), truncated (bool: only the first 64 KiB are kept), payload_sha256 (str,
    of the whole payload).
They live either in an NDJSON file (one record per line) or, by default, in the sink: the
table `_sluice_dead_letters` of an SQLite database (same columns; `payload` holds the JSON text
of the payload value), or the NDJSON files of a Parquet sink's DIR/_sluice/dead_letters/. A
location is a file path, a folder of such files, or `sqlite:PATH` for the table.

An expectation file (expected_dead_letters.txt) has:
    # comment lines
    count: N
    <reason prefix> | <text the payload must contain>     (one line per expected dead letter)
'*' as the reason prefix accepts any reason; the '| text' part is optional. Lines are matched to
dead letters one to one (order does not matter).

    dead_letters.py check LOCATION expected_dead_letters.txt [--input INPUT]
"""

import argparse
import base64
import hashlib
import json
import os
import sqlite3
import sys

REQUIRED_KEYS = {"pipeline": str, "source": str, "partition": int, "offset": int, "generation": int,
                 "reason": str,
                 "time": str, "payload_bytes": int, "truncated": bool, "payload_sha256": str}


def payload_bytes(d):
    """Returns the stored payload's bytes (the first 64 KiB when truncated), or None for a
    payload stored as a JSON value (whose exact bytes are not kept, only its content)."""
    b64 = d.get("payload_base64")
    if isinstance(b64, str):
        return base64.b64decode(b64, validate=True)
    if isinstance(d.get("payload"), str):
        return d["payload"].encode("utf-8")
    return None


def payload_text(d):
    """Returns the payload as text: the string, or the JSON value written compactly."""
    raw = payload_bytes(d)
    if raw is not None:
        return raw.decode("utf-8", errors="replace")
    return json.dumps(d.get("payload"), separators=(",", ":"), ensure_ascii=False)


def payload_key(d):
    """A key equal for equal payloads however they were stored (a JSON document as text or as
    a value, keys in any order), for comparing dead letters as multisets."""
    text = payload_text(d) if isinstance(d, dict) else d
    try:
        value = json.loads(text)
    except ValueError:
        return text
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text


def parse_expected(path):
    count = None
    lines = []
    if path is None or not os.path.exists(path):
        return 0, []
    with open(path, encoding="utf-8") as f:
        for n, raw in enumerate(f, start=1):
            line = raw.rstrip("\n")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            if line.startswith("count:"):
                count = int(line.split(":", 1)[1])
                continue
            if "|" in line:
                prefix, text = line.split("|", 1)
                prefix, text = prefix.strip(), text.strip()
            else:
                prefix, text = line.strip(), ""
            lines.append((prefix, text, n))
    if count is None:
        count = len(lines)
    return count, lines


def _check_record(obj, where, problems):
    for k, t in REQUIRED_KEYS.items():
        v = obj.get(k)
        if not isinstance(v, t) or (t is int and isinstance(v, bool)):
            problems.append(f"{where}: key {k!r} missing or not a {t.__name__}: {v!r}")
    if "payload" not in obj:
        problems.append(f"{where}: no payload")
        return
    raw = payload_bytes(obj)
    if raw is not None and not obj.get("truncated"):
        if "payload_sha256" in obj and hashlib.sha256(raw).hexdigest() != obj["payload_sha256"]:
            problems.append(f"{where}: payload_sha256 is not the hash of the payload")
        if "payload_bytes" in obj and len(raw) != obj["payload_bytes"]:
            problems.append(f"{where}: payload_bytes {obj.get('payload_bytes')} != {len(raw)}")


def load_sqlite(path, pipeline=None):
    """Returns (entries, problems) from the `_sluice_dead_letters` table of an SQLite file."""
    entries, problems = [], []
    if not os.path.exists(path):
        return entries, problems
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        have = con.execute("SELECT count(*) FROM sqlite_master WHERE name = "
                           "'_sluice_dead_letters'").fetchone()[0]
        if not have:
            return entries, problems
        sql = ("SELECT pipeline, source, partition, offset, seq, reason, time, payload, "
               "payload_base64, payload_bytes, truncated, payload_sha256, generation FROM "
               "_sluice_dead_letters")
        rows = con.execute(sql + (" WHERE pipeline = ?" if pipeline else ""),
                           (pipeline,) if pipeline else ()).fetchall()
    finally:
        con.close()
    for r in rows:
        where = f"{path}: dead letter {r[1]}/{r[2]}/{r[3]}/{r[4]}"
        try:
            payload = json.loads(r[7])
        except ValueError as e:
            problems.append(f"{where}: payload column is not JSON text ({e})")
            continue
        obj = {"pipeline": r[0], "source": r[1], "partition": r[2], "offset": r[3],
               "reason": r[5], "time": r[6], "payload": payload, "payload_bytes": r[9],
               "truncated": bool(r[10]), "payload_sha256": r[11], "generation": r[12]}
        if r[8] is not None:
            obj["payload_base64"] = r[8]
        _check_record(obj, where, problems)
        entries.append(obj)
    return entries, problems


def load_dlq(path):
    """Returns (entries, problems) from a location: an NDJSON file, or `sqlite:PATH` for the
    sink's table. A missing file means no dead letters."""
    if path is not None and path.startswith("sqlite:"):
        return load_sqlite(path[len("sqlite:"):])
    entries, problems = [], []
    if path is None or not os.path.exists(path):
        return entries, problems
    if os.path.isdir(path):
        # A folder of dead-letter files (a Parquet sink's DIR/_sluice/dead_letters): the
        # committed ones; names starting with '.' are files still being written.
        for name in sorted(os.listdir(path)):
            if name.endswith(".ndjson") and not name.startswith("."):
                e, p = load_dlq(os.path.join(path, name))
                entries += e
                problems += p
        return entries, problems
    with open(path, "rb") as f:
        data = f.read()
    for n, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw.decode("utf-8"))  # strict: invalid UTF-8 is an error
        except (ValueError, UnicodeDecodeError) as e:
            problems.append(f"{path}:{n}: not a JSON line ({e}): {raw[:120]!r}")
            continue
        if not isinstance(obj, dict):
            problems.append(f"{path}:{n}: not a JSON object")
            continue
        _check_record(obj, f"{path}:{n}", problems)
        entries.append(obj)
    return entries, problems


def _match(expected, entries):
    """Maximum one-to-one matching of expectation lines to entries (Kuhn's algorithm)."""
    def ok(e, d):
        prefix, text, _ = e
        reason = d.get("reason") if isinstance(d.get("reason"), str) else ""
        forms = [payload_text(d)]
        if payload_bytes(d) is None:  # a JSON value: also as commonly written, with spaces
            forms.append(json.dumps(d.get("payload"), ensure_ascii=False))
        return (prefix == "*" or reason.startswith(prefix)) and any(text in f for f in forms)

    adj = [[j for j, d in enumerate(entries) if ok(e, d)] for e in expected]
    owner = [-1] * len(entries)

    def try_assign(i, seen):
        for j in adj[i]:
            if j in seen:
                continue
            seen.add(j)
            if owner[j] == -1 or try_assign(owner[j], seen):
                owner[j] = i
                return True
        return False

    unmatched = [e for i, e in enumerate(expected) if not try_assign(i, set())]
    extra = [entries[j] for j in range(len(entries)) if owner[j] == -1]
    return unmatched, extra


def check(dlq_path, expected_path, input_path=None, require_keys=True):
    """Returns (problems, warnings)."""
    count, expected = parse_expected(expected_path)
    entries, problems = load_dlq(dlq_path)
    if not require_keys:
        problems = [p for p in problems if "key" not in p]
    warnings = []
    if len(entries) != count:
        problems.append(f"dead letters: expected {count}, got {len(entries)}")
    unmatched, extra = _match(expected, entries)
    for prefix, text, n in unmatched:
        problems.append(f"expected dead letter not found (line {n}): reason starting {prefix!r}, "
                        f"payload containing {text!r}")
    if expected:
        for d in extra:
            problems.append(f"unexpected dead letter: reason={d.get('reason')!r} "
                            f"payload={payload_text(d)[:160]!r}")
    if input_path and entries:
        with open(input_path, "rb") as f:
            data = f.read()
        for d in entries:
            off, raw = d.get("offset"), payload_bytes(d)
            if raw is None:  # a JSON value: compare content
                try:
                    end = data.index(b"\n", off) if isinstance(off, int) else -1
                    same = json.loads(data[off:end]) == d.get("payload")
                except (ValueError, TypeError):
                    same = False
            else:
                same = isinstance(off, int) and 0 <= off < len(data) and data[off:].startswith(raw)
            if not same:
                warnings.append(f"offset {off} does not point at the payload in the input "
                                f"(offset is not a byte offset, or payload altered): "
                                f"{payload_text(d)[:60]!r}")
                break
    return problems, warnings


def main(argv=None):
    ap = argparse.ArgumentParser(description="Check dead letters (NDJSON file or sqlite:DB).")
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("check")
    c.add_argument("dlq")
    c.add_argument("expected")
    c.add_argument("--input")
    args = ap.parse_args(argv)
    problems, warnings = check(args.dlq, args.expected, args.input)
    for w in warnings:
        print("warning:", w)
    for p in problems:
        print(p)
    print("OK" if not problems else "MISMATCH")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
