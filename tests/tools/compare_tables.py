#!/usr/bin/env python3
"""Compares two tables as multisets of rows, aligned on a key.

    compare_tables.py A B --key job_id,dates,hours,publisher_id,campaign_id,group_id
                      [--table events] [--table-a T] [--table-b T] [--max-report 10]

A and B are each an SQLite database (the table is read from it) or a .csv file with a header.
Columns whose name starts with '_' are ignored. Both sides must have the same set of remaining
columns (order does not matter). Values are normalised before comparison:
  * NULL and '' are the same (a CSV cannot tell them apart);
  * anything that looks like a number is compared as a number: integers exactly, other numbers
    exactly after rounding to 6 decimals (so 2, 2.0 and '2' are equal; 1.67 and 1.670000001 too);
  * everything else is compared as text.
Rows are grouped by key; for every key the multisets of rows must be equal. The first
differences are reported (missing on one side, or the differing columns). Exit 0 when equal,
1 when different, 2 on a usage/IO error.

Importable: compare(a, b, key, table_a, table_b) -> list of difference lines ([] when equal).
"""

import argparse
import csv
import os
import re
import sqlite3
import sys
from collections import defaultdict

NUM_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\Z")
INT_RE = re.compile(r"[+-]?[0-9]+\Z")


def normalise(v):
    if v is None:
        return None
    if isinstance(v, bytes):
        return ("blob", v.hex())
    if isinstance(v, bool):
        v = int(v)
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        if v.is_integer() and abs(v) < 2**63:
            return int(v)
        return round(v, 6)
    s = str(v)
    if s == "":
        return None
    if INT_RE.match(s):
        return int(s)
    if NUM_RE.match(s):
        return normalise(float(s))
    return s


class Table:
    def __init__(self, label, columns, rows):
        self.label = label
        self.columns = columns  # visible column names, in source order
        self.rows = rows        # list of tuples (visible columns only)


def load(path, table):
    if path.lower().endswith(".csv"):
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None:
                raise ValueError(f"{path}: empty CSV (no header)")
            keep = [i for i, c in enumerate(header) if not c.startswith("_")]
            rows = []
            for n, r in enumerate(reader, start=2):
                if r == []:
                    continue
                if len(r) != len(header):
                    raise ValueError(f"{path}:{n}: {len(r)} fields, header has {len(header)}")
                rows.append(tuple(r[i] for i in keep))
            return Table(path, [header[i] for i in keep], rows)
    if not os.path.exists(path):
        raise ValueError(f"{path}: no such file")
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        cur = con.execute(f'SELECT * FROM "{table}"')
        names = [d[0] for d in cur.description]
        keep = [i for i, c in enumerate(names) if not c.startswith("_")]
        rows = [tuple(r[i] for i in keep) for r in cur.fetchall()]
    except sqlite3.Error as e:
        raise ValueError(f"{path}: table {table}: {e}")
    finally:
        con.close()
    return Table(f"{path}:{table}", [names[i] for i in keep], rows)


def _fmt_row(cols, row):
    return "{" + ", ".join(f"{c}={v!r}" for c, v in zip(cols, row)) + "}"


def compare_loaded(ta, tb, key, max_report=10):
    diffs = []
    sa, sb = set(ta.columns), set(tb.columns)
    if sa != sb:
        if sa - sb:
            diffs.append(f"columns only in {ta.label}: {sorted(sa - sb)}")
        if sb - sa:
            diffs.append(f"columns only in {tb.label}: {sorted(sb - sa)}")
        return diffs
    missing_key = [k for k in key if k not in sa]
    if missing_key:
        return [f"key columns not in the tables: {missing_key}"]
    cols = list(key) + [c for c in ta.columns if c not in key]
    ia = [ta.columns.index(c) for c in cols]
    ib = [tb.columns.index(c) for c in cols]
    nk = len(key)

    def group(t, idx):
        g = defaultdict(list)
        for r in t.rows:
            nr = tuple(normalise(r[i]) for i in idx)
            g[nr[:nk]].append(nr)
        return g

    ga, gb = group(ta, ia), group(tb, ib)

    def sort_key(k):
        return tuple((0, "") if v is None else (1, v) if isinstance(v, (int, float)) else (2, v)
                     for v in k)

    keys = sorted(set(ga) | set(gb), key=sort_key)
    n_diff = 0
    only_a = only_b = changed = 0
    for k in keys:
        ra = sorted(ga.get(k, []), key=sort_key)
        rb = sorted(gb.get(k, []), key=sort_key)
        if ra == rb:
            continue
        n_diff += 1
        if not rb:
            only_a += 1
        elif not ra:
            only_b += 1
        else:
            changed += 1
        if n_diff > max_report:
            continue
        kdesc = ", ".join(f"{c}={v!r}" for c, v in zip(key, k))
        if len(ra) == 1 and len(rb) == 1:
            delta = [f"{c}: {x!r} != {y!r}" for c, x, y in zip(cols, ra[0], rb[0]) if x != y]
            diffs.append(f"key ({kdesc}): " + "; ".join(delta)
                         + f"   [left {ta.label} | right {tb.label}]")
        else:
            diffs.append(f"key ({kdesc}): {len(ra)} row(s) in {ta.label}, {len(rb)} in {tb.label}")
            for r in ra:
                diffs.append(f"    left : {_fmt_row(cols, r)}")
            for r in rb:
                diffs.append(f"    right: {_fmt_row(cols, r)}")
    if n_diff:
        if n_diff > max_report:
            diffs.append(f"... {n_diff - max_report} more differing keys not shown")
        diffs.append(f"summary: {len(ta.rows)} rows in {ta.label}, {len(tb.rows)} in {tb.label}; "
                     f"{n_diff} keys differ ({only_a} only left, {only_b} only right, "
                     f"{changed} changed)")
    return diffs


def compare(a, b, key, table_a="events", table_b="events", max_report=10):
    try:
        ta, tb = load(a, table_a), load(b, table_b)
    except ValueError as e:
        return [f"error: {e}"]
    return compare_loaded(ta, tb, key, max_report)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Compare two tables (SQLite or CSV) as multisets of rows.")
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--key", required=True, help="comma-separated key columns")
    ap.add_argument("--table", default="events", help="table name for SQLite inputs")
    ap.add_argument("--table-a")
    ap.add_argument("--table-b")
    ap.add_argument("--max-report", type=int, default=10)
    ap.add_argument("-q", "--quiet", action="store_true")
    args = ap.parse_args(argv)
    key = [k.strip() for k in args.key.split(",") if k.strip()]
    try:
        ta = load(args.a, args.table_a or args.table)
        tb = load(args.b, args.table_b or args.table)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    diffs = compare_loaded(ta, tb, key, args.max_report)
    if diffs:
        for d in diffs:
            print(d)
        return 1
    if not args.quiet:
        print(f"equal: {len(ta.rows)} rows, columns {', '.join(ta.columns)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
