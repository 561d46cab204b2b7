#!/usr/bin/env python3
"""Renders a bench/results/*.json file as the markdown tables of BENCHMARKS.md.

  bench/report.py RESULTS.json                 print the tables
  bench/report.py RESULTS.json --update BENCHMARKS.md
      replace the text between <!-- results:begin --> and <!-- results:end --> in that file

Standard library only.
"""

import argparse
import json
import sys

BEGIN = "<!-- results:begin -->"
END = "<!-- results:end -->"

# Targets of the benchmark issue, shown next to the measured value (reported, not asserted).
TARGETS = {
    "recruitment_json_file": ("events/CPU-s", 2_000_000,
                              ">= 2M recruitment JSON events/s per core, file source"),
    "ysb_generator": ("events/CPU-s", 5_000_000, ">= 5M YSB events/s per core in-process"),
}


def fmt_int(v):
    if v is None:
        return "-"
    return "{:,}".format(int(v)).replace(",", " ")


def fmt_rate(v):
    if v is None:
        return "-"
    if v >= 1e6:
        return "%.2f M" % (v / 1e6)
    if v >= 1e3:
        return "%.0f k" % (v / 1e3)
    return "%.0f" % v


def render(doc):
    m = doc["machine"]
    out = []
    out.append("Measured %s with `%s`%s, commit `%s`%s, build %s." % (
        doc["date"], doc.get("command", "bench/run.py"), " (quick mode)" if doc.get("quick") else "",
        (m.get("git_commit") or "?")[:12], " + local changes" if m.get("git_dirty") else "",
        m.get("build_type") or "?"))
    out.append("Machine: %s, %s cores, %s GiB RAM, %s, kernel %s, %s; load average at start %s." % (
        m.get("cpu_model"), m.get("cores"), m.get("ram_gib"), m.get("os"), m.get("kernel"),
        m.get("compiler"), " / ".join("%.1f" % x for x in m.get("load_average_at_start", []))))
    out.append("")
    if doc.get("aborted"):
        out.append("**ABORTED (wrong result): %s**" % doc["aborted"])
        out.append("")
    if any(not r.get("processes") for r in doc.get("throughput", [])):
        out.append("| run | source | sink | events | events/s | events/CPU-s | peak RSS | "
                   "result check |")
        out.append("|---|---|---|---:|---:|---:|---:|---|")
        for r in doc["throughput"]:
            if r.get("processes"):
                continue  # in the scale-out table below
            out.append("| %s | %s | %s | %s | %s | %s | %.0f MiB | %s |" % (
                r["name"], r["source"], r["sink"], fmt_int(r["events"]), fmt_rate(r["events_per_s"]),
                fmt_rate(r["events_per_cpu_s"]), r["peak_rss_mib"], r["check"]))
        out.append("")
    if doc.get("freshness"):
        out.append("Freshness, Kafka (1 partition) -> recruitment pipeline -> MariaDB "
                   "(production to visible in `events`):")
        out.append("")
        out.append("| offered rate | checkpoint interval | records | p50 | p99 | max | "
                   "sluice CPU (share of a core) | checkpoints (mean duration) | peak RSS | check |")
        out.append("|---:|---|---:|---:|---:|---:|---:|---:|---:|---|")
        for r in doc["freshness"]:
            mean = r.get("checkpoint_mean_s")
            out.append("| %s/s | %s | %s | %.0f ms | %.0f ms | %.0f ms | %.1f s (%.0f%%) | %s | %.0f MiB | %s |" % (
                fmt_rate(r["offered_rate"]), r["checkpoint_interval"], fmt_int(r["produced"]),
                r["p50_ms"], r["p99_ms"], r["max_ms"], r["sluice_cpu_s"], 100 * r["cpu_share"],
                "%s (%.2f s)" % (r.get("checkpoints"), mean) if mean is not None else "-",
                r["peak_rss_mib"], r["check"]))
        out.append("")
    scale = [r for r in doc.get("throughput", []) if r.get("processes")]
    if scale:
        out.append("Viewlog from Kafka over several processes of one group (8 partitions, `[source] "
                   "keyed_by`, Parquet; bench/viewlog_scale_out.py): events/CPU-s sums the CPU of all "
                   "processes; each row is the median run by CPU:")
        out.append("")
        out.append("| run | processes | variant | events | wall | events/s | events/CPU-s | CPU "
                   "per process | CPU-s of each run | peak RSS (sum) | partitions claimed per "
                   "process | load average at start | result check |")
        out.append("|---|---:|---|---:|---:|---:|---:|---|---|---:|---|---:|---|")
        for r in scale:
            out.append("| %s | %d | %s | %s | %.2f s | %s | %s | %s s | %s | %.0f MiB | %s | %.1f "
                       "| %s |" % (
                r["name"], r["processes"], r["variant"], fmt_int(r["events"]), r["wall_s"],
                fmt_rate(r["events_per_s"]), fmt_rate(r["events_per_cpu_s"]),
                " + ".join("%.2f" % x for x in r.get("cpu_s_each", [])),
                ", ".join("%.2f" % x for x in r.get("cpu_s_runs", [])) or "-", r["peak_rss_mib"],
                " / ".join(",".join(map(str, c)) for c in r.get("partitions_claimed", [])),
                (r.get("load_average_at_start") or [0])[0], r["check"]))
        out.append("")
    if doc.get("scale_out_freshness"):
        out.append("Window freshness, the same pipeline fed live (file first seen - the window's "
                   "earliest possible time, over the windows written):")
        out.append("")
        out.append("| run | processes | offered rate | seconds | records | windows | p50 | p99 | "
                   "max | sluice CPU (share of a core) | load average at start | check |")
        out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        for r in doc["scale_out_freshness"]:
            out.append("| %s | %d | %s/s | %d | %s | %d | %.0f ms | %.0f ms | %.0f ms | "
                       "%.1f s (%.0f%%) | %.1f | %s |" % (
                           r["name"], r["processes"], fmt_rate(r["offered_rate"]),
                           r["duration_s"], fmt_int(r["produced"]), r["windows"], r["p50_ms"],
                           r["p99_ms"], r["max_ms"], r["sluice_cpu_s"], 100 * r["cpu_share"],
                           r["load_average_at_start"][0], r["check"]))
        out.append("")
    by_name = {r["name"]: r for r in doc.get("throughput", [])}
    rows = []
    for name, (unit, target, text) in TARGETS.items():
        if name in by_name:
            got = by_name[name]["events_per_cpu_s"]
            rows.append("| %s | %s %s | %.2fx |" % (text, fmt_rate(got), unit,
                                                    (got or 0) / target))
    fresh100 = [r for r in doc.get("freshness", []) if r["offered_rate"] == 100_000]
    for r in fresh100:
        rows.append("| freshness p99 <= 500 ms at 100k events/s (checkpoint %s) | %.0f ms | %s |" % (
            r["checkpoint_interval"], r["p99_ms"], "met" if r["p99_ms"] <= 500 else "not met"))
    if rows:
        out.append("Targets (reported, not asserted; the Spark ratios come from `make bench-spark`):")
        out.append("")
        out.append("| target | measured | ratio / status |")
        out.append("|---|---:|---|")
        out.extend(rows)
        out.append("")
    if doc.get("micro"):
        out.append("Micro-benchmarks (`sluice_bench_micro`, one thread):")
        out.append("")
        out.append("| benchmark | items/s | bytes/s |")
        out.append("|---|---:|---:|")
        for r in doc["micro"]:
            out.append("| %s | %s | %s |" % (r["name"], fmt_rate(r["items_per_s"]),
                                             fmt_rate(r["bytes_per_s"]) + "B" if r["bytes_per_s"] else "-"))
        out.append("")
    if doc.get("skipped"):
        out.append("Not measured: " + "; ".join("%s (%s)" % kv for kv in doc["skipped"].items()))
        out.append("")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results")
    ap.add_argument("--update", metavar="MARKDOWN")
    args = ap.parse_args()
    with open(args.results) as f:
        doc = json.load(f)
    text = render(doc)
    if not args.update:
        print(text)
        return 0
    with open(args.update) as f:
        md = f.read()
    if BEGIN not in md or END not in md:
        print("%s has no %s ... %s markers" % (args.update, BEGIN, END), file=sys.stderr)
        return 2
    head, rest = md.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    with open(args.update, "w") as f:
        f.write(head + BEGIN + "\n" + text + "\n" + END + tail)
    print("updated " + args.update)
    return 0


if __name__ == "__main__":
    sys.exit(main())
