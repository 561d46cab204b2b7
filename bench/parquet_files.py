#!/usr/bin/env python3
"""Files per 1M events and checkpoint (commit) time of the Parquet sink, for one or more sluice
binaries and partition layouts (issue 19, "Parquet sized for readers and for recovery").

    .venv/bin/python bench/parquet_files.py [--sluice build/sluice ...] [--count 2000000]
                                            [--span-hours 168] [--layouts minute,hour]

A viewlog backfill from a generated file (--count records spread evenly over --span-hours of
event time: the default is the issue's week of view_log, 2M events) runs through
examples/viewlog.toml into a fresh parquet:DIR, once per binary and layout:

  minute  the shipped layout: partition_by = network_id, minute_timestamp (a directory per
          network and minute, hence a file per network and minute at least)
  hour    hourly directories with the minute as a column: the key `hour =
          format_time(window_start, '%Y-%m-%d-%H')` added, partition_by = network_id, hour

Reported per run: part files, their mean size, rows, files per 1M events, commits of the sink
(renames of DIR/_sluice/viewlog.state), the longest commit and the sum of all commits, fsync and
syncfs calls, and the wall time. Commit times come from `strace -f --seccomp-bpf -tt` of the
sink's own system calls (openat, rename, fsync, fdatasync, syncfs), the same for every binary: a
commit runs from the first system call on a part or state file after the previous state rename
to its own state rename. Without strace only the file counts are reported. The output is checked
against tests/tools/recompute_viewlog.py (minute layout; the hour layout only by row count).
Nothing is asserted: the numbers are for BENCHMARKS.md ("Parquet files and checkpoint time").
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "tools"))
PIPELINE = os.path.join(REPO, "examples", "viewlog.toml")
CAMPAIGNS = os.path.join(REPO, "examples", "data", "campaigns1.csv")
START = "2026-01-01T00:00:00Z"
PART = re.compile(r"part-viewlog-\d{10}-[0-9a-f]{16}\.parquet")
# strace -tt lines: [pid] HH:MM:SS.ffffff syscall(args) = result
LINE = re.compile(r"^(?:\[pid\s+\d+\]\s+|\d+\s+)?(\d\d):(\d\d):(\d\d\.\d+)\s+(\w+)\((.*)$")


def generate(sluice, path, count, span_hours, seed=11):
    if os.path.exists(path) and os.path.exists(path + ".done"):
        return path
    spacing_us = int(span_hours * 3600e6 / count)
    subprocess.run([sluice, "generate", "--profile", "viewlog", "--count", str(count), "--rate",
                    "0", "--seed", str(seed), "--start", START, "--set", f"spacing={spacing_us}us",
                    "--set", f"campaigns={CAMPAIGNS}", "--to", path], check=True, cwd=REPO,
                   stdout=subprocess.DEVNULL)
    open(path + ".done", "w").close()
    return path


def pipeline_for(layout, work):
    """examples/viewlog.toml, or its hourly-directory variant, written into work/."""
    with open(PIPELINE, encoding="utf-8") as f:
        text = f.read()
    text = text.replace(":-data/", ":-" + os.path.join(os.path.dirname(PIPELINE), "data") + "/")
    if layout == "hour":
        text, n1 = re.subn(r'(?m)^  "network_id",\n',
                           '  "network_id",\n  "hour = format_time(window_start, \'%Y-%m-%d-%H\')",\n',
                           text)
        text, n2 = re.subn(r'(?m)^partition_by = .*$', 'partition_by = "network_id, hour"', text)
        if n1 != 1 or n2 != 1:
            raise RuntimeError("cannot make the hourly variant of examples/viewlog.toml")
    elif layout != "minute":
        raise ValueError(f"unknown layout {layout}")
    path = os.path.join(work, f"viewlog-{layout}.toml")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def commits_from_trace(path):
    """(commit durations in seconds, syncs) from an strace -f -tt log of a run."""
    durations, syncs, start = [], 0, None
    with open(path, errors="replace") as f:
        for line in f:
            m = LINE.match(line)
            if not m:
                continue
            t = int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))
            call, args = m.group(4), m.group(5)
            if call in ("fsync", "fdatasync", "syncfs"):
                syncs += 1
                continue
            sink_file = "/.part-viewlog-" in args or "viewlog.state" in args
            if not sink_file:
                continue
            if start is None:
                start = t
            if call.startswith("rename") and "viewlog.state.tmp" in args:
                durations.append(max(0.0, t - start))
                start = None
    return durations, syncs


def dataset_files(out):
    files, size = 0, 0
    for root, dirs, names in os.walk(out):
        dirs[:] = [d for d in dirs if not d.startswith((".", "_"))]
        for n in names:
            if PART.fullmatch(n):
                files += 1
                size += os.path.getsize(os.path.join(root, n))
    return files, size


def measure(sluice, views, events, layout, work, expected=None, use_strace=True):
    """Runs one backfill; returns a dict of the numbers (see the module docstring)."""
    out = os.path.join(work, f"out-{layout}")
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sluice, "run", pipeline_for(layout, work), "--var", f"VIEWS={views}",
           "--var", f"OUT=parquet:{out}", "--var", f"CAMPAIGNS={CAMPAIGNS}"]
    trace = os.path.join(work, f"strace-{layout}.txt")
    strace = shutil.which("strace") if use_strace else None
    if strace:
        cmd = [strace, "-f", "--seccomp-bpf", "-tt", "-o", trace, "-e",
               "trace=openat,rename,renameat,renameat2,fsync,fdatasync,syncfs"] + cmd
    t = time.monotonic()
    proc = subprocess.run(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True)
    wall = time.monotonic() - t
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[-7:])} exited {proc.returncode}: {proc.stderr[-1500:]}")
    files, size = dataset_files(out)
    r = {"layout": layout, "events": events, "files": files,
         "files_per_1m_events": round(files * 1e6 / events, 1),
         "mean_file_bytes": round(size / files) if files else 0, "wall_s": round(wall, 2)}
    import pyarrow.dataset as ds
    r["rows"] = ds.dataset(out, format="parquet", partitioning="hive").count_rows()
    if expected is not None:
        import viewlog_output
        import recompute_viewlog as rv
        if layout == "minute":
            rows, problems, _ = viewlog_output.read_parquet_output(out)
            problems += rv.compare_rows(rows, expected["rows"])
        else:
            problems = [] if r["rows"] == len(expected["rows"]) else [
                f"{r['rows']} rows, the recomputation has {len(expected['rows'])}"]
        r["check"] = "== recompute_viewlog" if not problems else "DIFFERS: " + problems[0]
    if strace:
        durations, syncs = commits_from_trace(trace)
        r.update({"commits": len(durations), "syncs": syncs,
                  "max_commit_s": round(max(durations, default=0), 3),
                  "total_commit_s": round(sum(durations), 3)})
        os.remove(trace)
    return r


def table(results):
    cols = [("binary", "binary"), ("layout", "layout"), ("files", "files"),
            ("files_per_1m_events", "files / 1M events"), ("mean_file_bytes", "mean file B"),
            ("rows", "rows"), ("commits", "commits"), ("syncs", "fsync+syncfs"),
            ("max_commit_s", "longest commit s"), ("total_commit_s", "all commits s"),
            ("wall_s", "wall s (under strace)"), ("check", "check")]
    lines = ["| " + " | ".join(h for _, h in cols) + " |",
             "|" + "---|" * len(cols)]
    for r in results:
        lines.append("| " + " | ".join(str(r.get(k, "-")) for k, _ in cols) + " |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sluice", action="append",
                    help="a sluice binary (repeatable; default build/sluice)")
    ap.add_argument("--count", type=int, default=2_000_000)
    ap.add_argument("--span-hours", type=float, default=24 * 7)
    ap.add_argument("--layouts", default="minute,hour")
    ap.add_argument("--work", help="work directory (default: a temporary one)")
    ap.add_argument("--no-strace", action="store_true")
    args = ap.parse_args()
    binaries = [os.path.abspath(b) for b in (args.sluice or [os.path.join(REPO, "build", "sluice")])]
    work = args.work or tempfile.mkdtemp(prefix="sluice-parquet-files-")
    os.makedirs(work, exist_ok=True)
    views = generate(binaries[-1], os.path.join(work, f"views-{args.count}-{args.span_hours:g}h.ndjson"),
                     args.count, args.span_hours)
    import recompute_viewlog as rv
    expected = rv.recompute([views], CAMPAIGNS)
    results = []
    for b in binaries:
        for layout in args.layouts.split(","):
            r = measure(b, views, args.count, layout, work, expected, not args.no_strace)
            r["binary"] = b
            results.append(r)
            print(r, flush=True)
    print(table(results))
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
