#!/usr/bin/env python3
"""The HTTP endpoints of a running sluice, end to end (see src/http/README.md).

  --part endpoints   /healthz, /readyz, /api/status, /api/results and /metrics of a live run;
                     a busy port (run: exit 1; demo: a warning, the demo goes on); --no-http;
                     --log-format json (every stderr line one JSON object, per-record problems
                     not logged per record)
  --part promtool    `promtool check metrics` on the live /metrics output of a running pipeline
  --part prometheus  a real Prometheus server (127.0.0.1, free port, temp config and storage)
                     scrapes sluice until sluice_source_records_total > 0 and every metric of
                     the contract is stored

promtool and prometheus come from Debian's `prometheus` package. Missing: a loud SKIP (exit 77),
a FAIL when CI=true (or 1, yes).
"""
import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))
from harness import REPO, Checks, free_port, wait_for  # noqa: E402
from http_util import SluiceRun, get, get_json  # noqa: E402

# The metric names other tools (the Grafana dashboard) rely on. Series that are omitted while
# their value is unknown (lag without a source reporting it, the watermark in update mode) are
# listed separately: their HELP/TYPE lines are always there.
CONTRACT = [
    "sluice_source_records_total", "sluice_source_bytes_total",
    "sluice_records_aggregated_total", "sluice_records_ignored_total",
    "sluice_records_dead_lettered_total", "sluice_records_late_total", "sluice_decode_errors_total",
    "sluice_lookup_misses_total",
    "sluice_sink_rows_written_total", "sluice_sink_retries_total", "sluice_sink_up",
    "sluice_source_partition_position", "sluice_open_windows",
    "sluice_checkpoints_total", "sluice_checkpoint_failures_total",
    "sluice_checkpoint_duration_seconds_sum", "sluice_checkpoint_duration_seconds_count",
    "sluice_last_checkpoint_timestamp_seconds",
    "process_resident_memory_bytes", "process_cpu_seconds_total", "process_start_time_seconds",
]
DECLARED_ONLY = ["sluice_source_partition_lag_records", "sluice_watermark_timestamp_seconds",
                 "sluice_watermark_delay_seconds"]


def sample_names(text):
    names = set()
    for line in text.splitlines():
        if line and not line.startswith("#"):
            names.add(line.split("{")[0].split(" ")[0])
    return names


def wait_checkpointed(run, timeout=30):
    return wait_for(lambda: (lambda s: s and s["checkpoints"]["count"] >= 1 and s["counts"]["records_in"] > 0
                             and s)(run.status()), timeout)


def part_endpoints(args, t, tmp):
    run = SluiceRun(args.sluice, tmp, rate=5000)
    try:
        t.check("run --http serves /healthz", run.wait_serving(), run.log())
        status = wait_checkpointed(run)
        t.check("/api/status: running, records in, a checkpoint", status is not None and status["state"] == "running",
                status)
        code, body, _ = get(run.url + "/readyz")
        ok = wait_for(lambda: get(run.url + "/readyz")[0] == 200, 10)
        t.check("/readyz 200 while running", ok, f"{code} {body}")
        code, body, headers = get(run.url + "/metrics")
        t.check("/metrics content type is the 0.0.4 text format",
                code == 200 and headers.get("Content-Type", "").startswith("text/plain; version=0.0.4"), headers)
        names = sample_names(body)
        missing = [n for n in CONTRACT if n not in names]
        t.check("/metrics has every contract metric", not missing, missing)
        undeclared = [n for n in DECLARED_ONLY if f"# TYPE {n} gauge" not in body]
        t.check("/metrics declares lag and watermark families", not undeclared, undeclared)
        t.check("/metrics labels", 'sluice_source_records_total{pipeline="recruitment",source="tracking"}' in body
                and 'sluice_sink_up{pipeline="recruitment",sink="events"} 1' in body, body[:2000])
        results = get_json(run.url + "/api/results")
        t.check("/api/results: recruitment metrics and top lists",
                results is not None and results["mode"] == "aggregate"
                and {m["name"] for m in results["metrics"]} >= {"clicks", "spend_hour", "conversion"}
                and set(results["top"]) >= {"job_id", "campaign_id", "publisher_id"}, results)
        code, body, _ = get(run.url + "/")
        t.check("/ serves the dashboard", code == 200 and "app.js" in body, body[:200])

        # A second run on the same port: an explicit --http that cannot bind is an error.
        r = subprocess.run([args.sluice, "run", "examples/recruitment.toml", "--var", "TRACKING=generator:",
                            "--var", "COUNT=10",
                            "--var", "SINK=sqlite:" + os.path.join(tmp, "second.db"),
                            "--http", f"127.0.0.1:{run.port}"], cwd=REPO, capture_output=True, text=True, timeout=60)
        t.check("run --http on a busy port exits 1 naming the address",
                r.returncode == 1 and f"127.0.0.1:{run.port}" in r.stderr, f"rc={r.returncode} {r.stderr}")
        # The demo only warns and runs.
        r = subprocess.run([args.sluice, "demo", "--duration", "2", "--db", os.path.join(tmp, "demo1.db"),
                            "--http", f"127.0.0.1:{run.port}"], cwd=REPO, capture_output=True, text=True, timeout=60)
        t.check("demo on a busy port warns and continues",
                r.returncode == 0 and "dashboard not served" in r.stderr and "records in" in r.stdout,
                f"rc={r.returncode} {r.stderr}")
        r = subprocess.run([args.sluice, "run", "examples/recruitment.toml", "--var", "TRACKING=generator:",
                            "--var", "SINK=sqlite:" + os.path.join(tmp, "third.db"), "--http", "nonsense:port"],
                           cwd=REPO, capture_output=True, text=True, timeout=60)
        t.check("run --http with a bad address exits 2", r.returncode == 2 and "HOST:PORT" in r.stderr, r.stderr)
    finally:
        rc = run.stop()
    t.check("SIGTERM drains and exits 0", rc == 0, f"rc={rc} {run.log()[-2000:]}")

    # demo: on by default (here on a chosen free port), off with --no-http.
    port = free_port()
    demo = subprocess.Popen([args.sluice, "demo", "--duration", "6", "--db", os.path.join(tmp, "demo2.db"),
                             "--http", f"127.0.0.1:{port}"], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    seen = wait_for(lambda: (lambda s: s and s["counts"]["records_in"] > 0)(get_json(f"http://127.0.0.1:{port}/api/status")), 20)
    out, err = demo.communicate(timeout=60)
    t.check("demo serves /api/status while it runs", seen and demo.returncode == 0, err)
    r = subprocess.run([args.sluice, "demo", "--duration", "2", "--no-http", "--db", os.path.join(tmp, "demo3.db")],
                       cwd=REPO, capture_output=True, text=True, timeout=60)
    t.check("demo --no-http serves nothing", r.returncode == 0 and "http:" not in r.stderr
            and "dashboard" not in r.stdout, r.stderr + r.stdout)

    # --log-format json, before or after the subcommand: each stderr line is one JSON object.
    for args_order in (["--log-format", "json", "run", "examples/recruitment.toml"],
                       ["run", "examples/recruitment.toml", "--log-format", "json"]):
        db = os.path.join(tmp, "json.db")
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(db + suffix):
                os.remove(db + suffix)
        r = subprocess.run([args.sluice] + args_order + ["--var", "TRACKING=generator:",
                                                         "--var", "COUNT=3000", "--var", "RATE=0",
                                                         "--var", "SINK=sqlite:" + db],
                           cwd=REPO, capture_output=True, text=True, timeout=60)
        lines = [l for l in r.stderr.splitlines() if l.strip()]
        parsed = []
        for l in lines:
            try:
                parsed.append(json.loads(l))
            except ValueError:
                parsed.append(None)
        t.check("--log-format json: one JSON object per line (%s)" % " ".join(args_order[:2]),
                r.returncode == 0 and lines and all(p is not None and {"time", "level", "message"} <= set(p)
                                                    for p in parsed), r.stderr)
    r = subprocess.run([args.sluice, "--log-format", "json", "run", "examples/recruitment.toml", "--var", "NOEQUALS"],
                       cwd=REPO, capture_output=True, text=True, timeout=60)
    try:
        err = json.loads(r.stderr.strip().splitlines()[-1])
    except (ValueError, IndexError):
        err = {}
    t.check("--log-format json: errors are JSON too", r.returncode == 2 and err.get("level") == "error"
            and "NAME=VALUE" in err.get("message", ""), r.stderr)
    r = subprocess.run([args.sluice, "--log-format", "xml", "version"], cwd=REPO, capture_output=True, text=True)
    t.check("--log-format rejects other values", r.returncode != 0, r.stderr)

    # Per-record problems are counted, not logged one line each: 500 undecodable records.
    bad = os.path.join(tmp, "bad.ndjson")
    with open(bad, "w") as f:
        for i in range(250):
            f.write('{"custom_track": "click", "job_id": "abc%d", "ts": "2026-01-01 00:00:00"}\n' % i)
            f.write("not json %d\n" % i)
    r = subprocess.run([args.sluice, "--log-format", "json", "run", "examples/recruitment.toml",
                        "--var", "TRACKING=" + bad, "--var", "SINK=sqlite:" + os.path.join(tmp, "bad.db")],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    # Dead letters go into the sink's table by default.
    try:
        con = sqlite3.connect(os.path.join(tmp, "bad.db"))
        dead = con.execute("SELECT count(*) FROM _sluice_dead_letters").fetchone()[0]
        con.close()
    except sqlite3.Error:
        dead = 0
    t.check("500 bad records: dead-lettered, not logged one line each",
            r.returncode == 0 and dead == 500 and len(lines) < 20,
            f"rc={r.returncode} dead letters={dead} log lines={len(lines)}: {r.stderr[-1500:]}")


def live_run(args, t, tmp):
    run = SluiceRun(args.sluice, tmp, rate=5000)
    if not t.check("sluice serves /healthz", run.wait_serving(), run.log()):
        run.stop()
        return None
    t.check("a checkpoint committed", wait_checkpointed(run) is not None)
    return run


def part_promtool(args, t, tmp):
    promtool = t.require_tool("promtool", "prometheus")
    if promtool is None:
        return "missing"
    run = live_run(args, t, tmp)
    if run is None:
        return None
    try:
        for i in range(2):  # early and later in the run
            code, body, _ = get(run.url + "/metrics")
            r = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, text=True, timeout=60)
            t.check(f"promtool check metrics on live output ({i + 1})",
                    code == 200 and r.returncode == 0 and not r.stdout.strip() and not r.stderr.strip(),
                    f"rc={r.returncode} {r.stdout} {r.stderr}")
            time.sleep(2)
    finally:
        run.stop()


def part_prometheus(args, t, tmp):
    prometheus = t.require_tool("prometheus", "prometheus")
    if prometheus is None:
        return "missing"
    run = live_run(args, t, tmp)
    if run is None:
        return None
    prom_port = free_port()
    config = os.path.join(tmp, "prometheus.yml")
    with open(config, "w") as f:
        f.write(f"""global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: sluice
    scrape_interval: 1s
    static_configs:
      - targets: ["127.0.0.1:{run.port}"]
""")
    storage = os.path.join(tmp, "prometheus-data")
    log_path = os.path.join(tmp, "prometheus.log")
    log = open(log_path, "w")
    prom = subprocess.Popen([prometheus, f"--config.file={config}", f"--storage.tsdb.path={storage}",
                             f"--web.listen-address=127.0.0.1:{prom_port}", "--storage.tsdb.retention.time=1h"],
                            stdout=log, stderr=subprocess.STDOUT, cwd=tmp)
    api = f"http://127.0.0.1:{prom_port}/api/v1"

    def query(q):
        data = get_json(api + "/query?query=" + urllib.parse.quote(q))
        if not data or data.get("status") != "success":
            return []
        return data["data"]["result"]

    try:
        ready = wait_for(lambda: prom.poll() is None and get(f"http://127.0.0.1:{prom_port}/-/ready")[0] == 200, 60)
        if not t.check("prometheus starts", ready, open(log_path).read()[-3000:]):
            return None
        value = wait_for(lambda: [float(r["value"][1]) for r in query("sluice_source_records_total")
                                  if float(r["value"][1]) > 0], 60)
        t.check("prometheus scraped sluice_source_records_total > 0", value, open(log_path).read()[-3000:])
        up = query('up{job="sluice"}')
        t.check("the sluice target is up", up and up[0]["value"][1] == "1", up)
        labels = query("sluice_source_records_total")
        t.check("labels pipeline and source stored",
                labels and labels[0]["metric"].get("pipeline") == "recruitment"
                and labels[0]["metric"].get("source") == "tracking", labels)
        names = set((get_json(api + "/label/__name__/values") or {}).get("data", []))
        missing = [n for n in CONTRACT if n not in names]
        t.check("every contract metric is stored by prometheus", not missing, missing)
        rate = wait_for(lambda: [r for r in query("rate(sluice_source_records_total[5s])") if float(r["value"][1]) > 0], 30)
        t.check("rate() over the scraped counter is positive", rate, rate)
    finally:
        prom.terminate()
        try:
            prom.wait(timeout=30)
        except subprocess.TimeoutExpired:
            prom.kill()
            prom.wait()
        log.close()
        run.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--part", choices=["endpoints", "promtool", "prometheus"], required=True)
    ap.add_argument("--keep", action="store_true", help="keep the temp directory")
    args = ap.parse_args()
    args.sluice = os.path.abspath(args.sluice)
    tmp = tempfile.mkdtemp(prefix=f"sluice_http_{args.part}_")
    t = Checks()
    try:
        # A missing tool (the part returns "missing") is a skip() of t: exit 77, a FAIL under CI.
        {"endpoints": part_endpoints, "promtool": part_promtool,
         "prometheus": part_prometheus}[args.part](args, t, tmp)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return t.finish()


if __name__ == "__main__":
    sys.exit(main())
