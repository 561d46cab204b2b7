#!/usr/bin/env python3
"""Writes the seed corpus of the `repartition` fuzz target (tests/fuzz/corpus/repartition/).

The records are written here from the layout documented in src/runtime/repartition_record.h and
core/serialize.h (little-endian int64 lengths and numbers), independently of the C++ encoder,
for the [aggregate] of repartition_fuzz.cc. Run it again after changing that layout:
    python3 tests/fuzz/make_repartition_seeds.py
"""
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "repartition")
FINGERPRINT = "60000000|k:network_id|k:campaign|m:views:count|m:spend:sum|m:top:max|m:price:last"

# core/value.h Type tags as BinaryWriter::PutValue writes them.
NULL, BOOL, INT, DOUBLE, STRING, TIME = range(6)


def i64(v):
    return struct.pack("<q", v)


def string(b):
    if isinstance(b, str):
        b = b.encode()
    return i64(len(b)) + b


def value(tag, v=None):
    if tag == NULL:
        return bytes([NULL])
    if tag == BOOL:
        return bytes([BOOL, 1 if v else 0])
    if tag in (INT, TIME):
        return bytes([tag]) + i64(v)
    if tag == DOUBLE:
        return bytes([DOUBLE]) + struct.pack("<d", v)
    return bytes([STRING]) + string(v)


def fnv1a64(text):
    h = 14695981039346656037
    for c in text.encode():
        h = ((h ^ c) * 1099511628211) % 2**64
    return h


def header(fingerprint=FINGERPRINT, version=1):
    return b"SR" + bytes([version]) + struct.pack("<Q", fnv1a64(fingerprint))


def metric(count=0, isum=0, dsum=0.0, val=(NULL,), at=-(2**63)):
    return i64(count) + i64(isum) + struct.pack("<d", dsum) + value(*val) + i64(at)


def partial(window_start, keys, metrics):
    row = i64(window_start) + i64(len(keys)) + b"".join(value(*k) for k in keys)
    row += i64(len(metrics)) + b"".join(metrics)
    return header() + b"P" + i64(1) + row


def control(topic_index, partition, watermark, max_event_time, flags):
    body = i64(topic_index) + i64(partition) + i64(watermark) + i64(max_event_time) + bytes([flags])
    return header() + b"C" + body


def dead_letter(reason, payload, source, partition, offset, time_micros, seq, generation):
    body = string(reason) + string(payload) + string(source)
    body += i64(partition) + i64(offset) + i64(time_micros) + i64(seq) + i64(generation)
    return header() + b"D" + body


NO_WATERMARK = -(2**63)
EVERY_METRIC = [
    metric(count=3),
    metric(count=2, dsum=-1.25),
    metric(count=1, val=(STRING, "zeta")),
    metric(count=4, val=(DOUBLE, 9.5), at=59_000_000),
]

SEEDS = {
    "partial_every_metric": partial(120_000_000, [(INT, 7), (STRING, "café €")], EVERY_METRIC),
    "partial_null_keys_negative_window": partial(-60_000_000, [(NULL,), (NULL,)], EVERY_METRIC),
    "partial_time_and_bool_values": partial(
        0, [(INT, -1), (STRING, "")],
        [metric(count=1), metric(), metric(val=(TIME, -5)), metric(val=(BOOL, True), at=0)]),
    "control_plain": control(0, 3, 110_000_000, 120_000_000, 0),
    "control_idle": control(1, 0, 50_000_000, 60_000_000, 1),
    "control_end_no_watermark": control(0, 7, NO_WATERMARK, NO_WATERMARK, 2),
    "dead_letter": dead_letter("late: window closed", b'{"a":1}', "view_log", 5, 123, 1_700_000_000_000_000, 0, 1),
    "dead_letter_binary_payload": dead_letter("decode", b"\xff\x00\xfe", "s", 0, 0, 0, 3, 0),
    # Refused ones: another [aggregate], a newer version, a truncated partial, an unknown kind.
    "other_aggregate": header(fingerprint="60000000|k:user|m:n:count") + b"C" + i64(0) * 4 + b"\x00",
    "newer_version": header(version=2) + b"C" + i64(0) * 4 + b"\x00",
    "truncated_partial": partial(0, [(INT, 1), (STRING, "x")], EVERY_METRIC)[:-5],
    "unknown_kind": header() + b"Z",
}


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
    print(f"wrote {len(SEEDS)} seeds to {OUT}")


if __name__ == "__main__":
    main()
