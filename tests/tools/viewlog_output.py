"""Reading the viewlog pipeline's output for the tests: the Parquet dataset (hive directories
network_id=N/minute_timestamp=M, read with pyarrow, so run with the project venv's python) and
the dead letters, compared with a recompute_viewlog.py result; copies of examples/viewlog.toml."""
import json
import os
import re
from collections import Counter, defaultdict

import dead_letters
import recompute_viewlog as rv

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PIPELINE = os.path.join(REPO, "examples", "viewlog.toml")


def read_parquet_output(out_dir):
    """Reads a parquet:DIR result. Returns (rows, problems, files): rows as recompute_viewlog
    row dicts (network_id and minute_timestamp from the hive directory names), files the number
    of data files."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    problems, files = [], []
    for root, dirs, names in os.walk(out_dir):
        dirs[:] = [d for d in dirs if not d.startswith((".", "_"))]
        for n in names:
            if not n.startswith((".", "_")):
                files.append(os.path.join(root, n))
    for f in files:
        if not f.endswith(".parquet"):
            problems.append(f"{os.path.relpath(f, out_dir)}: not a .parquet file, but a reader of "
                            "the dataset would read it")
    files = [f for f in files if f.endswith(".parquet")]
    if not files:
        return [], problems, 0

    def micros(col):
        if pa.types.is_timestamp(col.type):
            return pc.cast(col, pa.timestamp("us", tz=col.type.tz)).cast(pa.int64()).to_pylist()
        raise ValueError(f"window column of type {col.type}, expected a timestamp")

    part = ds.partitioning(pa.schema([("network_id", pa.int64()),
                                      ("minute_timestamp", pa.string())]), flavor="hive")
    dataset = ds.dataset(out_dir, format="parquet", partitioning=part)
    table = dataset.to_table()
    want = {"network_id", "minute_timestamp", "campaign_id", "window_start", "window_end",
            "avg_duration", "total_count"}
    if set(table.column_names) != want:
        problems.append(f"dataset columns {sorted(table.column_names)}, expected {sorted(want)}")
        return [], problems, len(files)
    rows = []
    cols = {c: table.column(c) for c in want}
    starts, ends = micros(cols["window_start"]), micros(cols["window_end"])
    for i in range(table.num_rows):
        rows.append({"network_id": cols["network_id"][i].as_py(),
                     "minute_timestamp": cols["minute_timestamp"][i].as_py(),
                     "campaign_id": cols["campaign_id"][i].as_py(),
                     "window_start": starts[i], "window_end": ends[i],
                     "avg_duration": cols["avg_duration"][i].as_py(),
                     "total_count": cols["total_count"][i].as_py()})
    # Each file on its own: its directory names its partition, and its rows belong there.
    per_file_rows = 0
    where = defaultdict(list)
    for f in files:
        rel = os.path.relpath(f, out_dir)
        m = re.fullmatch(r"network_id=(-?\d+)/minute_timestamp=([^/]+)/[^/]+\.parquet", rel)
        if not m:
            problems.append(f"{rel}: not under network_id=N/minute_timestamp=M/")
            continue
        t = pq.read_table(f)
        per_file_rows += t.num_rows
        if {"network_id", "minute_timestamp"} & set(t.column_names):
            problems.append(f"{rel}: the file repeats a partition column")
        ws = micros(t.column("window_start")) if "window_start" in t.column_names else []
        for s, c in zip(ws, t.column("campaign_id").to_pylist()):
            if rv.format_micros(s, "%Y-%m-%d-%H-%M") != m.group(2):
                problems.append(f"{rel}: a row of window {rv.format_micros(s)} in the wrong "
                                "minute_timestamp directory")
            where[(int(m.group(1)), m.group(2), c)].append(os.path.basename(f))
    if per_file_rows != len(rows):
        problems.append(f"the files hold {per_file_rows} rows, the dataset {len(rows)}")
    for key, fs in where.items():
        if len(fs) > 1:
            problems.append(f"window {key} is written {len(fs)} times (files {sorted(fs)})")
    for r in rows:
        if r["window_end"] - r["window_start"] != rv.WINDOW:
            problems.append(f"row {r}: window is not 1 minute")
    return rows, problems, len(files)


def load_dlq(path):
    """(Counter by reason class, Counter of payloads, lines, problems) of an NDJSON file or of
    every committed file of a dead-letter folder (temporary files start with '.')."""
    reasons, payloads, problems, lines = Counter(), Counter(), [], 0
    if not os.path.exists(path):
        return reasons, payloads, 0, problems
    paths = [path]
    if os.path.isdir(path):
        paths = [os.path.join(path, n) for n in sorted(os.listdir(path))
                 if n.endswith(".ndjson") and not n.startswith(".")]
    for p in paths:
        with open(p, "rb") as f:
            for n, ln in enumerate(f, start=1):
                if not ln.strip():
                    continue
                lines += 1
                try:
                    o = json.loads(ln.decode("utf-8"))
                    reasons[rv.reason_class(o["reason"])] += 1
                    payloads[dead_letters.payload_key(o)] += 1
                except (ValueError, KeyError, TypeError) as e:
                    problems.append(f"{p}:{n}: not a dead-letter JSON line ({e}): {ln[:100]!r}")
    return reasons, payloads, lines, problems


def compare_output(label, out_dir, dlq_path, expected):
    """Problems of a run's output against a recompute_viewlog result."""
    try:
        rows, problems, nfiles = read_parquet_output(out_dir)
    except Exception as e:  # an unreadable file is a finding, not a crash of the test
        return [f"{label}: cannot read the Parquet output: {type(e).__name__}: {e}"], 0
    problems = [f"{label}: {p}" for p in problems]
    problems += [f"{label}: {p}" for p in rv.compare_rows(rows, expected["rows"], label="sluice")]
    reasons, payloads, lines, bad = load_dlq(dlq_path)
    problems += [f"{label}: {p}" for p in bad]
    if reasons != expected["reasons"]:
        diff = sorted(set(reasons) | set(expected["reasons"]))
        problems.append(f"{label}: dead letters per reason differ (sluice / recompute): " +
                        ", ".join(f"{r!r} {reasons[r]}/{expected['reasons'][r]}" for r in diff
                                  if reasons[r] != expected["reasons"][r]))
    exp_payloads = Counter(dead_letters.payload_key(d[1]) for d in expected["dead_letters"])
    if payloads != exp_payloads:
        problems.append(f"{label}: dead-letter payloads differ: "
                        f"{sum((payloads - exp_payloads).values())} extra, "
                        f"{sum((exp_payloads - payloads).values())} missing")
    return problems, nfiles


def pipeline_copy(path, interval=None, source_lines=(), pipeline=PIPELINE):
    """pipeline (examples/viewlog.toml) with checkpoint_interval replaced and lines added under [source].
    Its defaults name files next to examples/viewlog.toml (data/...): the copy names them there."""
    with open(pipeline, encoding="utf-8") as f:
        text = f.read()
    text = text.replace(":-data/", ":-" + os.path.join(os.path.dirname(pipeline), "data") + "/")
    if interval:
        text, n = re.subn(r'(?m)^checkpoint_interval\s*=\s*"[^"]*"',
                          f'checkpoint_interval = "{interval}"', text)
        if n != 1:
            raise RuntimeError(f"{pipeline}: cannot find checkpoint_interval to override")
    if source_lines:
        text, n = re.subn(r"(?m)^\[source\]\s*$", "[source]\n" + "\n".join(source_lines), text)
        if n != 1:
            raise RuntimeError(f"{pipeline}: cannot find [source]")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path
