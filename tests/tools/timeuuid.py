#!/usr/bin/env python3
"""Makes and reads version-1 TimeUUIDs, for writing test fixtures by hand.

    timeuuid.py make '2022-07-06 10:59:59.999999' [--extra-ticks N] [--clock-seq N] [--node HEX]
    timeuuid.py read 5af328a0-0d60-11ed-90e9-7cd44fe229db

Times are UTC. A TimeUUID counts 100 ns ticks since 1582-10-15; --extra-ticks (0..9) adds ticks
below the microsecond. `read` prints the time the recruitment contract derives (microseconds,
ticks below a microsecond truncated), or 'not a version-1 UUID'.
"""

import argparse
import datetime as dt
import sys
import uuid

GREGORIAN_EPOCH = dt.datetime(1582, 10, 15)


def make(t, extra_ticks=0, clock_seq=0x1234, node=0x7CD44FE229DB):
    delta = t - GREGORIAN_EPOCH
    ticks = (delta.days * 86400 + delta.seconds) * 10_000_000 + delta.microseconds * 10 + extra_ticks
    time_low = ticks & 0xFFFFFFFF
    time_mid = (ticks >> 32) & 0xFFFF
    time_hi_version = ((ticks >> 48) & 0x0FFF) | (1 << 12)
    clock_seq_hi_variant = ((clock_seq >> 8) & 0x3F) | 0x80
    clock_seq_low = clock_seq & 0xFF
    return uuid.UUID(fields=(time_low, time_mid, time_hi_version, clock_seq_hi_variant,
                             clock_seq_low, node))


def read(text):
    u = uuid.UUID(text)
    if u.version != 1:
        return None
    return GREGORIAN_EPOCH + dt.timedelta(microseconds=u.time // 10)


def parse_time(s):
    for fmt in ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S.%f",
                "%Y-%m-%dT%H:%M:%S"):
        try:
            return dt.datetime.strptime(s, fmt)
        except ValueError:
            pass
    raise SystemExit(f"cannot parse time {s!r}")


def main(argv=None):
    ap = argparse.ArgumentParser(description="Make or read version-1 TimeUUIDs.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("time", nargs="+")
    m.add_argument("--extra-ticks", type=int, default=0)
    m.add_argument("--clock-seq", type=int, default=0x1234)
    m.add_argument("--node", default="7cd44fe229db")
    r = sub.add_parser("read")
    r.add_argument("uuid", nargs="+")
    args = ap.parse_args(argv)
    if args.cmd == "make":
        for t in args.time:
            print(make(parse_time(t), args.extra_ticks, args.clock_seq, int(args.node, 16)), t)
    else:
        for u in args.uuid:
            t = read(u)
            print(u, t.strftime("%Y-%m-%d %H:%M:%S.%f") if t else "not a version-1 UUID")
    return 0


if __name__ == "__main__":
    sys.exit(main())
