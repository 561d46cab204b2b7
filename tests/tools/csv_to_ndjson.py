#!/usr/bin/env python3
"""Converts a tracking CSV (with a header) to NDJSON, one JSON object per row.

    csv_to_ndjson.py INPUT.csv OUTPUT.ndjson

Every column is kept. For variety (deterministic, by 0-based data row index i):
  * the int64 columns the pipeline reads (job_id, bid, publisher_id, campaign_id, group_id) are
    written as JSON numbers when i is even and as numeric strings when i is odd -- only when the
    value is a strict integer; anything else (e.g. 'abc', '1.5') stays a string so a record that
    dead-letters in CSV form dead-letters in NDJSON form too;
  * blank values are omitted when i % 3 == 0, written as JSON null when i % 3 == 1, and as ""
    when i % 3 == 2 (all three mean null to the pipeline);
  * every other value is written as a JSON string, unchanged.
A CSV row with the wrong number of fields cannot be mapped to an object; it is written as its raw
text (which is not valid JSON), so it is still a malformed record in the output.
The semantics of the output are identical to the input's under the recruitment contract.
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from recompute_recruitment import INT_FIELDS, STRICT_INT_RE, read_csv_records  # noqa: E402

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def convert(src, dst):
    n = 0
    with open(dst, "w", encoding="utf-8", newline="\n") as out:
        for i, (row, header, raw, _) in enumerate(read_csv_records(src)):
            n += 1
            if len(row) != len(header):
                out.write(raw.replace("\n", " ") + "\n")
                continue
            obj = {}
            for col, val in zip(header, row):
                if val == "":
                    mode = i % 3
                    if mode == 0:
                        continue
                    obj[col] = None if mode == 1 else ""
                elif col in INT_FIELDS and STRICT_INT_RE.match(val) and i % 2 == 0 \
                        and INT64_MIN <= int(val) <= INT64_MAX:
                    obj[col] = int(val)
                else:
                    obj[col] = val
            out.write(json.dumps(obj, ensure_ascii=(i % 5 == 4)) + "\n")
    return n


def main(argv=None):
    ap = argparse.ArgumentParser(description="Convert a tracking CSV to NDJSON.")
    ap.add_argument("input")
    ap.add_argument("output")
    args = ap.parse_args(argv)
    n = convert(args.input, args.output)
    print(f"{n} records written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
