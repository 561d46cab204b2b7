"""Reading deploy/grafana/ the way Grafana does, for the deploy tests.

- the provisioning files (data sources with their uids, the dashboard provider),
- the dashboard JSON models, checked for what Grafana needs to load and draw them,
- template variables interpolated as Grafana's frontend does, then the MySQL data source's
  macros expanded as its backend does (same argument splitting: a macro's arguments end at the
  first ')' and are split at every ','; a time expression with parentheses or commas breaks),
- PromQL: the metric names and labels an expression uses.
"""

import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
DEPLOY = os.path.join(REPO, "deploy")
GRAFANA = os.path.join(DEPLOY, "grafana")
DASHBOARDS = os.path.join(GRAFANA, "dashboards")

# The metrics sluice exports (the contract with src/http/), with their labels. Prometheus adds
# `instance` and `job` to every series it scrapes.
CONTRACT = {
    "sluice_source_records_total": {"pipeline", "source"},
    "sluice_source_bytes_total": {"pipeline", "source"},
    "sluice_records_aggregated_total": {"pipeline"},
    "sluice_records_ignored_total": {"pipeline", "reason"},
    "sluice_records_dead_lettered_total": {"pipeline"},
    "sluice_records_late_total": {"pipeline"},
    "sluice_decode_errors_total": {"pipeline"},
    "sluice_lookup_misses_total": {"pipeline"},
    "sluice_sink_rows_written_total": {"pipeline", "sink"},
    "sluice_sink_retries_total": {"pipeline", "sink"},
    "sluice_sink_up": {"pipeline", "sink"},
    "sluice_source_partition_position": {"pipeline", "source", "partition"},
    "sluice_source_partition_lag_records": {"pipeline", "source", "partition"},
    "sluice_watermark_timestamp_seconds": {"pipeline"},
    "sluice_watermark_delay_seconds": {"pipeline"},
    "sluice_open_windows": {"pipeline"},
    "sluice_checkpoints_total": {"pipeline"},
    "sluice_checkpoint_failures_total": {"pipeline"},
    "sluice_checkpoint_duration_seconds_sum": {"pipeline"},
    "sluice_checkpoint_duration_seconds_count": {"pipeline"},
    "sluice_last_checkpoint_timestamp_seconds": {"pipeline"},
    "process_resident_memory_bytes": set(),
    "process_cpu_seconds_total": set(),
}
TARGET_LABELS = {"instance", "job"}

PANEL_TYPES = {"row", "stat", "timeseries", "table", "barchart", "gauge", "bargauge", "text",
               "piechart", "state-timeline", "status-history", "heatmap", "histogram", "logs"}


def load_yaml(path):
    import yaml  # PyYAML; the test entry points make sure it is importable
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def ensure_yaml():
    """Re-executes the running script under Debian's python3 (python3-yaml) when this
    interpreter has no PyYAML. Returns an error message when neither has it."""
    try:
        import yaml  # noqa: F401
        return None
    except ImportError:
        pass
    system = "/usr/bin/python3"
    if os.path.realpath(sys.executable) != os.path.realpath(system) and os.path.exists(system):
        import subprocess
        if subprocess.run([system, "-c", "import yaml"], capture_output=True).returncode == 0:
            os.execv(system, [system] + sys.argv)
    return "PyYAML is missing (Debian: python3-yaml, installed by scripts/install-deps.sh)"


def expand_env(text, env):
    """Grafana's provisioning expansion: $NAME and ${NAME} from the environment."""
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: env.get(m.group(1) or m.group(2), ""), text)


def datasources(problems):
    """{uid: datasource} from deploy/grafana/provisioning/datasources/*.yaml."""
    out = {}
    d = os.path.join(GRAFANA, "provisioning", "datasources")
    files = sorted(f for f in os.listdir(d) if f.endswith((".yaml", ".yml")))
    if not files:
        problems.append(f"no data source files in {d}")
    for f in files:
        doc = load_yaml(os.path.join(d, f))
        if doc.get("apiVersion") != 1:
            problems.append(f"{f}: apiVersion is not 1")
        for ds in doc.get("datasources") or []:
            for key in ("name", "uid", "type", "access", "url"):
                if not ds.get(key):
                    problems.append(f"{f}: data source {ds.get('name')!r} has no {key}")
            uid = ds.get("uid", "")
            if not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", uid):
                problems.append(f"{f}: uid {uid!r} is not a valid Grafana uid")
            if uid in out:
                problems.append(f"{f}: uid {uid} defined twice")
            out[uid] = ds
    return out


def dashboard_providers(problems):
    d = os.path.join(GRAFANA, "provisioning", "dashboards")
    providers = []
    for f in sorted(os.listdir(d)):
        if not f.endswith((".yaml", ".yml")):
            continue
        doc = load_yaml(os.path.join(d, f))
        if doc.get("apiVersion") != 1:
            problems.append(f"{f}: apiVersion is not 1")
        for p in doc.get("providers") or []:
            if p.get("type") != "file":
                problems.append(f"{f}: provider {p.get('name')} is not of type file")
            providers.append(p)
    if not providers:
        problems.append(f"no dashboard provider in {d}")
    return providers


def dashboards():
    """[(file name, model)] of deploy/grafana/dashboards/*.json."""
    out = []
    for f in sorted(os.listdir(DASHBOARDS)):
        if f.endswith(".json"):
            with open(os.path.join(DASHBOARDS, f), encoding="utf-8") as fh:
                out.append((f, json.load(fh)))
    return out


def all_panels(model):
    for p in model.get("panels", []):
        yield p
        for sub in p.get("panels", []) or []:  # collapsed rows keep their panels inside
            yield sub


def check_model(name, model, ds_uids):
    """Problems with one dashboard model: what Grafana needs, and known data source uids."""
    problems = []
    for key, typ in (("uid", str), ("title", str), ("schemaVersion", int), ("panels", list)):
        if not isinstance(model.get(key), typ):
            problems.append(f"{name}: `{key}` missing or not a {typ.__name__}")
    if problems:
        return problems
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", model["uid"]):
        problems.append(f"{name}: uid {model['uid']!r} is not a valid Grafana uid")
    if model["schemaVersion"] < 30:
        problems.append(f"{name}: schemaVersion {model['schemaVersion']} is too old")
    if "id" in model and model["id"] is not None:
        problems.append(f"{name}: a provisioned dashboard must not carry a database id")

    def check_ds(where, ds):
        if not isinstance(ds, dict) or "uid" not in ds:
            problems.append(f"{where}: datasource {ds!r} is not a {{type, uid}} reference")
        elif ds["uid"] not in ds_uids:
            problems.append(f"{where}: datasource uid {ds['uid']!r} is not provisioned "
                            f"(known: {sorted(ds_uids)})")
        elif ds.get("type") != ds_uids[ds["uid"]].get("type"):
            problems.append(f"{where}: datasource type {ds.get('type')!r} != provisioned "
                            f"{ds_uids[ds['uid']].get('type')!r}")

    ids = set()
    rows_seen = 0
    for p in all_panels(model):
        where = f"{name}: panel {p.get('id')} {p.get('title')!r}"
        if not isinstance(p.get("id"), int):
            problems.append(f"{where}: no integer id")
        elif p["id"] in ids:
            problems.append(f"{where}: id {p['id']} used twice")
        ids.add(p.get("id"))
        if p.get("type") not in PANEL_TYPES:
            problems.append(f"{where}: unknown panel type {p.get('type')!r}")
        if not p.get("title"):
            problems.append(f"{where}: no title")
        g = p.get("gridPos") or {}
        if not all(isinstance(g.get(k), int) for k in "hwxy"):
            problems.append(f"{where}: gridPos needs integer h, w, x, y")
        elif g["x"] < 0 or g["w"] < 1 or g["x"] + g["w"] > 24:
            problems.append(f"{where}: gridPos {g} is outside the 24 columns")
        if p.get("type") == "row":
            rows_seen += 1
            continue
        targets = p.get("targets") or []
        if not targets:
            problems.append(f"{where}: no targets")
        check_ds(where, p.get("datasource"))
        refs = [t.get("refId") for t in targets]
        if len(set(refs)) != len(refs) or not all(refs):
            problems.append(f"{where}: refIds {refs} not unique")
        for t in targets:
            check_ds(f"{where} target {t.get('refId')}", t.get("datasource"))
            if "rawSql" not in t and "expr" not in t:
                problems.append(f"{where} target {t.get('refId')}: neither rawSql nor expr")
            if "rawSql" in t and t.get("format") not in ("table", "time_series"):
                problems.append(f"{where} target {t.get('refId')}: format "
                                f"{t.get('format')!r}, want table or time_series")
    for v in model.get("templating", {}).get("list", []):
        if v.get("type") == "query":
            check_ds(f"{name}: variable {v.get('name')}", v.get("datasource"))
    return problems


def queries(model):
    """Every query of a dashboard: dicts with where, kind (sql/promql), text, target."""
    out = []
    for p in all_panels(model):
        for t in p.get("targets") or []:
            where = f"panel {p.get('id')} {p.get('title')!r} {t.get('refId')}"
            if "rawSql" in t:
                out.append({"where": where, "kind": "sql", "text": t["rawSql"], "target": t,
                            "panel": p})
            elif "expr" in t:
                out.append({"where": where, "kind": "promql", "text": t["expr"], "target": t,
                            "panel": p})
    for v in model.get("templating", {}).get("list", []):
        if v.get("type") != "query":
            continue
        q = v.get("query")
        text = q.get("query") if isinstance(q, dict) else q
        kind = "promql" if v.get("datasource", {}).get("type") == "prometheus" else "sql"
        out.append({"where": f"variable {v['name']}", "kind": kind, "text": text, "target": v,
                    "panel": None})
    return out


# ----------------------------------------------------------------------------- interpolation

# Grafana's frontend variable syntax: $name, [[name]], [[name:fmt]], ${name}, ${name:fmt}.
VARIABLE_RE = re.compile(r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^\}]+))?(?::([^\}]+))?\}")


def interpolate(text, values):
    """Replaces the variables named in `values` (already formatted strings); leaves others,
    such as $__timeFilter, for the data source."""
    def repl(m):
        name = m.group(1) or m.group(2) or m.group(4)
        return values[name] if name in values else m.group(0)
    return VARIABLE_RE.sub(repl, text)


def sql_value(values):
    """A multi-value MySQL variable as Grafana formats it: each value quoted, comma-joined."""
    return ",".join("'" + str(v).replace("'", "''") + "'" for v in values)


def prom_value(values):
    """A multi-value Prometheus variable: regex-escaped values as (a|b)."""
    # Grafana escapes regex characters, then the backslash for the PromQL string: \\.
    esc = [re.sub(r"([\\^$.|?*+()\[\]{}])", r"\\\\\1", str(v)) for v in values]
    return esc[0] if len(esc) == 1 else "(" + "|".join(esc) + ")"


def parse_interval(s):
    m = re.fullmatch(r"\s*['\"]?(\d+)(ms|s|m|h|d|w)['\"]?\s*", s)
    if not m:
        raise ValueError(f"cannot parse interval {s!r}")
    return int(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400,
                              "w": 604800}[m.group(2)]


# The MySQL data source's macro syntax (Grafana's pkg/tsdb/mysql macros.go).
MACRO_RE = re.compile(r"\$([_a-zA-Z0-9]+)\(([^\)]*)\)")


def mysql_macros(sql, t_from, t_to):
    """Expands Grafana's MySQL macros for the time range [t_from, t_to] (unix seconds)."""
    errors = []

    def repl(m):
        name, args = m.group(1), [a.strip(" ") for a in m.group(2).split(",")]
        if name in ("__time", "__timeEpoch"):
            return f"UNIX_TIMESTAMP({args[0]}) as time_sec"
        if name == "__timeFilter":
            return f"{args[0]} BETWEEN FROM_UNIXTIME({t_from}) AND FROM_UNIXTIME({t_to})"
        if name == "__timeFrom":
            return f"FROM_UNIXTIME({t_from})"
        if name == "__timeTo":
            return f"FROM_UNIXTIME({t_to})"
        if name in ("__timeGroup", "__timeGroupAlias"):
            if len(args) < 2:
                errors.append(f"macro {name} needs time column and interval")
                return "macro_error()"
            secs = parse_interval(args[1])
            out = f"UNIX_TIMESTAMP({args[0]}) DIV {secs:.0f} * {secs:.0f}"
            return out + ' AS "time"' if name == "__timeGroupAlias" else out
        if name == "__unixEpochFilter":
            return f"{args[0]} >= {t_from} AND {args[0]} <= {t_to}"
        if name == "__unixEpochFrom":
            return str(t_from)
        if name == "__unixEpochTo":
            return str(t_to)
        if name in ("__unixEpochGroup", "__unixEpochGroupAlias"):
            secs = parse_interval(args[1])
            out = f"{args[0]} DIV {secs:g} * {secs:g}"
            return out + ' AS "time"' if name == "__unixEpochGroupAlias" else out
        errors.append(f"unknown macro ${name}")
        return "macro_error()"

    out = MACRO_RE.sub(repl, sql)
    if errors:
        raise ValueError("; ".join(errors))
    left = re.findall(r"\$\w+", out)
    if left:
        raise ValueError(f"not expanded: {sorted(set(left))}")
    return out


def builtin_sql_values(t_from, t_to):
    span = t_to - t_from
    return {"__interval": "1h", "__interval_ms": "3600000", "__range": f"{span}s",
            "__range_s": str(span), "__from": str(t_from * 1000), "__to": str(t_to * 1000)}


def builtin_prom_values():
    return {"__rate_interval": "1m", "__interval": "15s", "__range": "1h", "__range_s": "3600"}


# ----------------------------------------------------------------------------- PromQL

PROMQL_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool",
                   "and", "or", "unless", "offset", "atan2", "inf", "nan", "start", "end"}


LABEL_VALUES_RE = re.compile(r"^\s*label_values\((?:(.*),)?\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*$", re.S)


def split_variable_query(text):
    """Grafana's Prometheus variable functions: label_values([SELECTOR,] LABEL) gives the
    PromQL selector (or None) and the label it lists; other queries are PromQL as they are."""
    m = LABEL_VALUES_RE.match(text)
    if m:
        return (m.group(1) or "").strip() or None, m.group(2)
    return text, None


def promql_selectors(expr):
    """[(metric name, {label names})] of every vector selector in a PromQL expression, and the
    label names of its by/without/on/ignoring clauses."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)  # strings
    grouping = set()
    for m in re.finditer(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", e):
        grouping |= {x.strip() for x in m.group(1).split(",") if x.strip()}
    e = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    e = re.sub(r"\[[^\]]*\]", " ", e)  # range and subquery durations
    e = re.sub(r"\boffset\s+-?\w+", " ", e)
    selectors = []
    for m in re.finditer(r"([A-Za-z_:][A-Za-z0-9_:]*)?\s*(\{[^}]*\})?", e):
        name, braces = m.group(1), m.group(2)
        if not name and not braces:
            continue
        if name and (name.lower() in PROMQL_KEYWORDS or re.match(r"\s*\(", e[m.end(1):])):
            if braces:
                name = None  # keyword followed by a bare selector; unusual
            else:
                continue
        labels = set()
        if braces:
            for lm in re.finditer(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)", braces):
                labels.add(lm.group(1))
        if name and m.start(1) > 0 and (e[m.start(1) - 1].isdigit() or e[m.start(1) - 1] == "."):
            continue  # the exponent or unit of a number (1e3, 5m)
        selectors.append((name, labels))
    return selectors, grouping
