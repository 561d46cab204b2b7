"""Larger recruitment inputs for the kill -9 and differential tests: the seed tracking log
repeated, each copy's TimeUUIDs (create_time) shifted by SHIFT so no two copies share a key,
with a decode dead letter and a wrong-field-count line per copy. Python 3 standard library only."""
import csv
import datetime as dt
import re
import uuid

SHIFT = dt.timedelta(days=3, hours=1, minutes=7)
CANON = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z")


def shifted_uuid(text, ticks):
    if not CANON.match(text):
        return text
    u = uuid.UUID(text)
    if u.version != 1:
        return text
    t = u.time + ticks
    return str(uuid.UUID(fields=(t & 0xFFFFFFFF, (t >> 32) & 0xFFFF,
                                 ((t >> 48) & 0x0FFF) | 0x1000, u.clock_seq_hi_variant,
                                 u.clock_seq_low, u.node)))


def build_input(seed_tracking, copies, out):
    with open(seed_tracking, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = list(reader)
    ct, bid = header.index("create_time"), header.index("bid")
    ctrack, job = header.index("custom_track"), header.index("job_id")
    shift_ticks = int(SHIFT.total_seconds()) * 10_000_000
    n = 0
    with open(out, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        for k in range(copies):
            for i, r in enumerate(rows):
                r2 = list(r)
                r2[ct] = shifted_uuid(r[ct], k * shift_ticks)
                w.writerow(r2)
                n += 1
                if i == 1000 + k:  # a decode dead letter
                    bad = list(r2)
                    bad[bid], bad[ctrack], bad[job] = f"x{k}", "click", "188"
                    w.writerow(bad)
                    n += 1
                if i == 3000 + k:  # a wrong field count
                    f.write(",".join(["bad", str(k), "row"]) + "\n")
                    n += 1
    return n
