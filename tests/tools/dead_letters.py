#!/usr/bin/env python3
"""Reads dead-letter files and checks them against a golden case's expectations.

A dead-letter file is NDJSON, one object per dead letter, with keys
reason (string), payload (string: the original record), source (string), partition (int),
offset (int).

An expectation file (expected_dead_letters.txt) has:
    # comment lines
    count: N
    <reason prefix> | <text the payload must contain>     (one line per expected dead letter)
'*' as the reason prefix accepts any reason; the '| text' part is optional. Lines are matched to
dead letters one to one (order does not matter).

    dead_letters.py check DLQ.ndjson expected_dead_letters.txt [--input INPUT]
"""

import argparse
import json
import os
import sys

REQUIRED_KEYS = {"reason": str, "payload": str, "source": str, "partition": int, "offset": int}


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


def load_dlq(path):
    """Returns (entries, problems). A missing file means no dead letters."""
    entries, problems = [], []
    if path is None or not os.path.exists(path):
        return entries, problems
    with open(path, "rb") as f:
        data = f.read()
    for n, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            problems.append(f"{path}:{n}: not a JSON line ({e}): {raw[:120]!r}")
            continue
        if not isinstance(obj, dict):
            problems.append(f"{path}:{n}: not a JSON object")
            continue
        for k, t in REQUIRED_KEYS.items():
            v = obj.get(k)
            if not isinstance(v, t) or isinstance(v, bool):
                problems.append(f"{path}:{n}: key {k!r} missing or not a {t.__name__}: {v!r}")
        entries.append(obj)
    return entries, problems


def _match(expected, entries):
    """Maximum one-to-one matching of expectation lines to entries (Kuhn's algorithm)."""
    def ok(e, d):
        prefix, text, _ = e
        reason = d.get("reason") if isinstance(d.get("reason"), str) else ""
        payload = d.get("payload") if isinstance(d.get("payload"), str) else ""
        return (prefix == "*" or reason.startswith(prefix)) and text in payload

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
                            f"payload={str(d.get('payload'))[:160]!r}")
    if input_path and entries:
        with open(input_path, "rb") as f:
            data = f.read()
        for d in entries:
            off, payload = d.get("offset"), d.get("payload")
            if isinstance(off, int) and isinstance(payload, str) and not (
                    0 <= off < len(data) and data[off:].startswith(payload.encode("utf-8"))):
                warnings.append(f"offset {off} does not point at the payload in the input "
                                f"(offset is not a byte offset, or payload altered): "
                                f"{payload[:60]!r}")
                break
    return problems, warnings


def main(argv=None):
    ap = argparse.ArgumentParser(description="Check a dead-letter NDJSON file.")
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
