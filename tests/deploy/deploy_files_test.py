#!/usr/bin/env python3
"""Static checks of deploy/: Grafana provisioning and dashboards, Prometheus, systemd.

    deploy_files_test.py [--sluice build/sluice]

Checks (no server needed):
  1. provisioning: a MySQL and a Prometheus data source with fixed uids and no literal
     credentials; a file dashboard provider whose path (SLUICE_DEPLOY_DIR=deploy) is
     deploy/grafana/dashboards;
  2. each dashboard is a Grafana model (uid, title, schemaVersion, panels with unique ids, grid
     positions, targets), every data source uid (panels, targets, variables) is provisioned;
  3. every SQL query expands (variables, then the MySQL data source's macros with Grafana's own
     argument rules) to plain SQL; the queries run against MariaDB in grafana_mysql_test.py;
  4. every PromQL expression names only metrics of sluice's metrics contract, with their
     labels; the operations dashboard shows each metric of the contract;
  5. `promtool check config deploy/prometheus/prometheus.yml`;
  6. `systemd-analyze verify` of deploy/systemd/sluice@.service (a copy with ExecStart pointing
     at --sluice) prints nothing, and its `security --offline` exposure is at most 3.0.
Tools missing (promtool: Debian prometheus; systemd-analyze): FAIL under CI=true, else SKIP of
that check. Prints PASS/FAIL per check and 'N passed, M failed' last; exit 1 on any failure.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tools"))
import grafana_model as gm  # noqa: E402
import harness  # noqa: E402

REPO = gm.REPO
UNIT = os.path.join(REPO, "deploy", "systemd", "sluice@.service")
PROMETHEUS_YML = os.path.join(REPO, "deploy", "prometheus", "prometheus.yml")


class Test(harness.Checks):
    def result(self, name, problems, notes=()):
        return harness.Checks.result(self, name, problems, notes, limit=30)

    def missing_tool(self, name, why):
        self.skip(name, why)


def check_provisioning(t):
    problems = []
    ds = gm.datasources(problems)
    types = {d.get("type") for d in ds.values()}
    for want in ("mysql", "prometheus"):
        if want not in types:
            problems.append(f"no {want} data source")
    for uid, d in ds.items():
        secure = d.get("secureJsonData") or {}
        for k, v in secure.items():
            if not re.fullmatch(r"\$\{?\w+\}?", str(v)):
                problems.append(f"{uid}: secureJsonData.{k} is a literal, not $ENV")
        if d.get("type") == "mysql":
            jd = d.get("jsonData") or {}
            for k, v in (("url", d.get("url")), ("user", d.get("user")),
                         ("jsonData.database", jd.get("database"))):
                if not v or "$" not in str(v):
                    problems.append(f"{uid}: {k} should come from the environment, got {v!r}")
            if jd.get("timezone") not in ("+00:00", "UTC"):
                problems.append(f"{uid}: jsonData.timezone {jd.get('timezone')!r}: the "
                                "events table is in UTC")
    env = {"SLUICE_DEPLOY_DIR": gm.DEPLOY}
    for p in gm.dashboard_providers(problems):
        path = gm.expand_env(str((p.get("options") or {}).get("path", "")), env)
        if os.path.realpath(path) != os.path.realpath(gm.DASHBOARDS):
            problems.append(f"provider {p.get('name')}: path {path} is not {gm.DASHBOARDS}")
    t.result(f"provisioning: data sources {sorted(ds)} and the dashboard provider", problems)
    return ds


def check_dashboards(t, ds):
    models = gm.dashboards()
    if len(models) < 2:
        t.result("dashboards", [f"found {[n for n, _ in models]}, want the business and the "
                                "operations dashboards"])
        return models
    uids = [m.get("uid") for _, m in models]
    for name, model in models:
        problems = gm.check_model(name, model, ds)
        if uids.count(model.get("uid")) > 1:
            problems.append(f"uid {model.get('uid')} shared with another dashboard")
        n_panels = sum(1 for p in gm.all_panels(model) if p.get("type") != "row")
        t.result(f"{name}: Grafana model, {n_panels} panels, data source uids provisioned",
                 problems)
    return models


def check_sql_expansion(t, models):
    t_from, t_to = 1767225600, 1767398400
    values = dict(gm.builtin_sql_values(t_from, t_to))
    for name, model in models:
        qs = [q for q in gm.queries(model) if q["kind"] == "sql"]
        if not qs:
            continue
        vs = {v["name"]: v for v in model.get("templating", {}).get("list", [])}
        vals = dict(values)
        for v in vs.values():
            cur = (v.get("current") or {}).get("value")
            if v.get("type") == "query":
                vals[v["name"]] = v.get("allValue") or gm.sql_value(["1"])
            elif isinstance(cur, str):
                vals[v["name"]] = cur
        problems = []
        for q in qs:
            try:
                gm.mysql_macros(gm.interpolate(q["text"], vals), t_from, t_to)
            except ValueError as e:
                problems.append(f"{q['where']}: {e}")
        t.result(f"{name}: {len(qs)} SQL queries expand to plain SQL (Grafana's macro rules)",
                 problems)


def check_promql(t, models):
    used = {}
    for name, model in models:
        qs = [q for q in gm.queries(model) if q["kind"] == "promql"]
        if not qs:
            continue
        problems = []
        for q in qs:
            expr, listed_label = q["text"], None
            if q["panel"] is None:
                expr, listed_label = gm.split_variable_query(expr)
                if expr is None:
                    continue
            selectors, grouping = gm.promql_selectors(expr)
            if not selectors:
                problems.append(f"{q['where']}: no metric in {expr!r}")
            available = set(gm.TARGET_LABELS)
            for metric, labels in selectors:
                if metric is None:
                    problems.append(f"{q['where']}: a selector without a metric name")
                    continue
                if metric not in gm.CONTRACT:
                    problems.append(f"{q['where']}: {metric} is not a metric sluice exports")
                    continue
                used.setdefault(metric, []).append(f"{name} {q['where']}")
                allowed = gm.CONTRACT[metric] | gm.TARGET_LABELS
                for label in labels - allowed:
                    problems.append(f"{q['where']}: {metric} has no label {label}")
                available |= allowed
            for label in grouping - available:
                problems.append(f"{q['where']}: groups by {label}, which none of its metrics has")
            if listed_label and listed_label not in available:
                problems.append(f"{q['where']}: lists label {listed_label}, which its metric lacks")
        t.result(f"{name}: {len(qs)} PromQL expressions name only contract metrics and labels",
                 problems)
    missing = sorted(set(gm.CONTRACT) - set(used))
    t.result("the operations dashboard shows every metric of the contract",
             [f"not shown: {m}" for m in missing])
    return used


def check_promtool(t):
    promtool = shutil.which("promtool")
    name = "promtool check config deploy/prometheus/prometheus.yml"
    if not promtool:
        t.missing_tool(name, "promtool not found (Debian package prometheus)")
        return
    p = subprocess.run([promtool, "check", "config", PROMETHEUS_YML], capture_output=True,
                       text=True, timeout=60)
    problems = [] if p.returncode == 0 else [f"exit {p.returncode}: {p.stdout}{p.stderr}"]
    text = open(PROMETHEUS_YML, encoding="utf-8").read()
    if "127.0.0.1:8080" not in re.sub(r"(?m)#.*$", "", text):
        problems.append("no scrape target 127.0.0.1:8080 (the demo's address)")
    t.result(name, problems)


def check_systemd(t, sluice):
    tool = shutil.which("systemd-analyze")
    name = "systemd-analyze verify sluice@recruitment.service"
    if not tool:
        t.missing_tool(name, "systemd-analyze not found")
        return
    with open(UNIT, encoding="utf-8") as f:
        unit = f.read()
    problems = []
    for want in ("KillSignal=SIGTERM", "Restart=on-failure", "TimeoutStopSec=",
                 "EnvironmentFile=", "NoNewPrivileges=yes", "/etc/sluice/%i.toml"):
        if want not in unit:
            problems.append(f"the unit has no {want}")
    if "/usr/local/bin/sluice" not in unit:
        problems.append("ExecStart is not /usr/local/bin/sluice")
    tmp = tempfile.mkdtemp(prefix="sluice-systemd-")
    try:
        # verify needs ExecStart's binary to exist: point it at the built one.
        with open(os.path.join(tmp, "sluice@.service"), "w", encoding="utf-8") as f:
            f.write(unit.replace("/usr/local/bin/sluice", os.path.abspath(sluice)))
        os.symlink("sluice@.service", os.path.join(tmp, "sluice@recruitment.service"))
        env = dict(os.environ, SYSTEMD_LOG_COLOR="0", SYSTEMD_PAGER="")
        p = subprocess.run([tool, "verify", "sluice@recruitment.service"], cwd=tmp, env=env,
                           capture_output=True, text=True, timeout=60)
        # Warnings (unknown keys, bad values) are printed but leave the exit code 0.
        out = (p.stdout + p.stderr).strip()
        if p.returncode != 0 or out:
            problems.append(f"verify: exit {p.returncode}: {out}")
        notes = []
        s = subprocess.run([tool, "security", "--offline=yes", "--no-pager",
                            "sluice@recruitment.service"], cwd=tmp, env=env,
                           capture_output=True, text=True, timeout=60)
        m = re.search(r"Overall exposure level for \S+: ([\d.]+)", s.stdout + s.stderr)
        if m:
            notes.append(f"systemd-analyze security: exposure {m.group(1)}")
            if float(m.group(1)) > 3.0:
                problems.append(f"exposure {m.group(1)} > 3.0: hardening options lost?")
        else:
            notes.append("systemd-analyze security --offline not available here")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    t.result(name, problems, notes)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sluice", default=os.path.join(REPO, "build", "sluice"))
    args = ap.parse_args()
    t = Test()
    why = gm.ensure_yaml()
    if why:
        return t.missing(why)
    ds = check_provisioning(t)
    models = check_dashboards(t, ds)
    check_sql_expansion(t, models)
    check_promql(t, models)
    check_promtool(t)
    if os.path.exists(args.sluice):
        check_systemd(t, args.sluice)
    else:
        t.result("systemd unit", [f"--sluice {args.sluice} not found"])
    return t.finish()


if __name__ == "__main__":
    sys.exit(main())
