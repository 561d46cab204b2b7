#!/usr/bin/env python3
"""The operations dashboard's PromQL against a real Prometheus scraping a live sluice.

    prometheus_test.py --sluice build/sluice [--keep]

Runs the recruitment pipeline on the generator (2000 events/s, SQLite sink in a temporary
directory) with `--http 127.0.0.1:PORT`, and a Prometheus server (Debian's `prometheus`) with
deploy/prometheus/prometheus.yml, its target moved to that port and its interval to 1 s.
Checks:
  1. /metrics exports every metric the dashboard names (a summary's _sum/_count through its
     family), with the labels the dashboard uses, and every metric of the contract in
     grafana_model.CONTRACT;
  2. Prometheus scrapes it (up == 1);
  3. every PromQL expression of deploy/grafana/dashboards/*.json, interpolated as Grafana does
     ($pipeline, $instance, $__rate_interval, $__range), is accepted by Prometheus, and returns
     data whenever all its metrics have samples in /metrics; each variable query lists values;
  4. SIGTERM makes sluice drain, checkpoint and exit 0 (what deploy/systemd/sluice@.service
     relies on).
Prometheus missing: FAIL under CI=true, else SKIP (exit 77).
Prints PASS/FAIL per check and 'N passed, M failed' last; exit 1 on any failure.
"""

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tools"))
import grafana_model as gm  # noqa: E402
import harness  # noqa: E402
from harness import free_port  # noqa: E402

REPO = gm.REPO
PIPELINE = os.path.join(REPO, "examples", "recruitment.toml")
PROMETHEUS_YML = os.path.join(REPO, "deploy", "prometheus", "prometheus.yml")


def http_get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode("utf-8", "replace")


def prom_query(base, expr):
    """Returns (status, result or error) of an instant query."""
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        body = json.loads(http_get(url, timeout=10))
    except urllib.error.HTTPError as e:
        body = json.loads(e.read().decode("utf-8", "replace") or "{}")
    if body.get("status") != "success":
        return "error", f"{body.get('errorType')}: {body.get('error')}"
    return "success", body["data"]["result"]


def parse_metrics(text):
    """({family: type}, {sample name: [label dicts]}) of a Prometheus text exposition."""
    families, samples = {}, {}
    for line in text.splitlines():
        m = re.match(r"# TYPE (\S+) (\S+)", line)
        if m:
            families[m.group(1)] = m.group(2)
            continue
        if not line or line.startswith("#"):
            continue
        m = re.match(r"([A-Za-z_:][A-Za-z0-9_:]*)(\{(.*)\})?\s", line)
        if m:
            labels = dict(re.findall(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"',
                                     m.group(3) or ""))
            samples.setdefault(m.group(1), []).append(labels)
    return families, samples


def exported(name, families):
    if name in families:
        return True
    base = re.sub(r"_(sum|count|bucket)$", "", name)
    return base != name and families.get(base) in ("summary", "histogram")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    t = harness.Checks()

    def result(name, problems, notes=()):
        t.result(name, problems, notes, limit=30)

    prometheus = t.require_tool("prometheus", "prometheus")
    if not prometheus:
        return t.finish()

    tmp = tempfile.mkdtemp(prefix="sluice-prometheus-")
    sluice_port, prom_port = free_port(), free_port()
    procs = []
    try:
        sluice_log = open(os.path.join(tmp, "sluice.log"), "wb")
        sluice = subprocess.Popen(
            [args.sluice, "run", PIPELINE, "--var", "TRACKING=generator:", "--var", "RATE=2000",
             "--var", f"SINK=sqlite:{os.path.join(tmp, 'events.db')}",
             "--var", f"DLQ={os.path.join(tmp, 'dlq.ndjson')}",
             "--http", f"127.0.0.1:{sluice_port}"],
            cwd=REPO, stdout=sluice_log, stderr=subprocess.STDOUT)
        procs.append(sluice)

        with open(PROMETHEUS_YML, encoding="utf-8") as f:
            config = f.read()
        config = config.replace("127.0.0.1:8080", f"127.0.0.1:{sluice_port}")
        config = re.sub(r"(scrape_interval|evaluation_interval):\s*15s", r"\1: 1s", config)
        config = re.sub(r"scrape_timeout:\s*10s", "scrape_timeout: 1s", config)
        with open(os.path.join(tmp, "prometheus.yml"), "w", encoding="utf-8") as f:
            f.write(config)
        prom_log = open(os.path.join(tmp, "prometheus.log"), "wb")
        prom = subprocess.Popen(
            [prometheus, f"--config.file={os.path.join(tmp, 'prometheus.yml')}",
             f"--storage.tsdb.path={os.path.join(tmp, 'data')}",
             f"--web.listen-address=127.0.0.1:{prom_port}"],
            stdout=prom_log, stderr=subprocess.STDOUT)
        procs.append(prom)
        base = f"http://127.0.0.1:{prom_port}"

        # 1. /metrics of the live process.
        text, deadline = None, time.monotonic() + 30
        while time.monotonic() < deadline and sluice.poll() is None:
            try:
                text = http_get(f"http://127.0.0.1:{sluice_port}/metrics")
                if "sluice_checkpoints_total" in text and re.search(
                        r"^sluice_checkpoints_total\S* [1-9]", text, re.M):
                    break
            except OSError:
                pass
            time.sleep(0.3)
        if text is None:
            result("sluice run --http serves /metrics", [f"no /metrics on port {sluice_port}"
                                                         f" (sluice exit {sluice.poll()})"])
            return t.finish()
        families, samples = parse_metrics(text)
        models = gm.dashboards()
        queries = [(name, q) for name, m in models for q in gm.queries(m) if q["kind"] == "promql"]
        problems = []
        for metric in sorted(gm.CONTRACT):
            if not exported(metric, families):
                problems.append(f"contract metric {metric} is not exported")
        for name, q in queries:
            expr = q["text"] if q["panel"] else gm.split_variable_query(q["text"])[0]
            if expr is None:
                continue
            sels, grouping = gm.promql_selectors(expr)
            for metric, labels in sels:
                if not exported(metric, families):
                    problems.append(f"{name} {q['where']}: {metric} is not in /metrics")
                    continue
                have = set().union(*samples.get(metric, [{}])) | gm.TARGET_LABELS
                if samples.get(metric):
                    for label in (labels | (grouping & gm.CONTRACT.get(metric, set()))) - have:
                        problems.append(f"{name} {q['where']}: {metric} samples have no "
                                        f"label {label}")
        absent = sorted(m for m in gm.CONTRACT if exported(m, families) and m not in samples)
        result(f"/metrics of `sluice run --http` exports every metric the dashboards name "
               f"({len(families)} families)", problems,
               [f"declared without samples in this run (no Kafka / watermark): {absent}"]
               if absent else [])

        # 2. Prometheus scrapes it.
        up, deadline = None, time.monotonic() + 40
        while time.monotonic() < deadline:
            try:
                status, res = prom_query(base, 'up{job="sluice"}')
                if status == "success" and res and res[0]["value"][1] == "1":
                    up = res[0]["metric"]
                    # Enough samples for rate() over 1m.
                    status, res = prom_query(base, "count_over_time(sluice_checkpoints_total[1m])")
                    if status == "success" and res and float(res[0]["value"][1]) >= 5:
                        break
            except OSError:
                pass
            time.sleep(0.5)
        result("Prometheus (deploy/prometheus/prometheus.yml) scrapes sluice: up == 1",
               [] if up else ["no successful scrape within 40 s"])
        if not up:
            return t.finish()

        # 3. Every expression, as Grafana sends it.
        instance = up.get("instance", f"127.0.0.1:{sluice_port}")
        values = dict(gm.builtin_prom_values(), pipeline=gm.prom_value(["recruitment"]),
                      instance=gm.prom_value([instance]))
        for name, model in models:
            qs = [q for q in gm.queries(model) if q["kind"] == "promql"]
            if not qs:
                continue
            problems, with_data = [], 0
            for q in qs:
                expr = gm.interpolate(q["text"], values)
                listed = None
                if q["panel"] is None:
                    expr, listed = gm.split_variable_query(expr)
                    if expr is None:
                        continue
                left = re.findall(r"\$\w+", expr)
                if left:
                    problems.append(f"{q['where']}: variables not interpolated: {left}")
                    continue
                status, res = prom_query(base, expr)
                if status != "success":
                    problems.append(f"{q['where']}: Prometheus rejects {expr!r}: {res}")
                    continue
                sels, _ = gm.promql_selectors(expr)
                if res:
                    with_data += 1
                elif all(samples.get(m) for m, _ in sels):
                    problems.append(f"{q['where']}: no data for {expr!r}")
                if listed and res and not any(listed in r["metric"] for r in res):
                    problems.append(f"{q['where']}: the series have no label {listed}")
            result(f"{name}: {len(qs)} PromQL expressions accepted by Prometheus, "
                   f"{with_data} with data from the live pipeline", problems)

        # 4. SIGTERM drains and exits 0.
        sluice.send_signal(signal.SIGTERM)
        try:
            rc = sluice.wait(timeout=60)
        except subprocess.TimeoutExpired:
            rc = "still running after 60 s"
        sluice_log.flush()
        with open(os.path.join(tmp, "sluice.log"), "rb") as f:
            tail = f.read().decode(errors="replace")[-1500:]
        result("SIGTERM: sluice drains, checkpoints and exits 0 (the systemd unit's KillSignal)",
               [] if rc == 0 else [f"exit {rc}: {tail}"])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        if args.keep or t.failed:
            print(f"logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return t.finish()


if __name__ == "__main__":
    sys.exit(main())
