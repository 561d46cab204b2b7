#!/usr/bin/env python3
"""`sluice explain PIPELINE...` and `sluice inspect kafka://...`, checked against independent readers.

Parts (--part, comma-separated; default all):
  examples  every examples/*.toml at once, from a scratch directory (not the repository root),
            text and --format json: exit 0, one explanation per file, and each JSON object's
            facts equal what Python's tomllib reads from the file (pipeline and source names,
            fields with types and paths, the steps in order with their kind, lookups with
            dimension, fields and on_missing, window size, mode, lateness, keys, metrics,
            window columns, the sink's table and key, select columns); the internal columns
            listed are the ones avg() and last() need; nothing is created where the sinks point.
  errors    exit 2 for a bad file (the message names it; the good files are still explained),
            a missing file, an unused --var, an unknown --format; `sluice inspect` of a Kafka
            broker that cannot be reached exits 1 within about 10 s.
  mysql     recruitment and ysb explained into MariaDB (database explain_<pid>): the pipeline
            then runs (generator, a few hundred events) so sluice creates its own table, and
            the printed merge statement is PREPAREd against that table and EXECUTEd twice for a
            new key with values this test chose; the row must hold the merge worked out here
            (counts and sums added, the average from the summed hidden sum and count, last()
            by its event time, max()). Needs `make services`: SKIP (exit 77) without the server,
            a FAIL when CI=true.
  kafka     the `sluice init` pipeline (append mode) into a Kafka topic explain_<pid>, with rows
            whose ts is unreadable; `sluice inspect kafka://127.0.0.1:9092/explain_<pid>` (text
            and --json) must say: the committed position of the input file (its size), state
            stored, the last checkpoint time (within the run), the dead letters by reason (the
            rows the test wrote bad, also counted in the dead-letter topic with confluent_kafka,
            read_committed) with the newest samples; a topic no pipeline wrote exits 2 and is
            not created. Needs the Kafka of `make services`: SKIP (exit 77) without it.
"""

import argparse
import glob
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import tomllib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SKIP = 77
IN_CI = os.environ.get("CI") == "true"

failures = []


def check(what, ok, detail=""):
    print(("ok   " if ok else "FAIL ") + what + ("" if ok else f": {detail}"), flush=True)
    if not ok:
        failures.append(what)


def sluice_run(sluice, *argv, cwd=None, timeout=120):
    return subprocess.run([sluice, *argv], capture_output=True, text=True, cwd=cwd, timeout=timeout)


def one_line(text):
    """An expression on one line, as explain shows it (white space outside quotes collapsed)."""
    out, quoted, space = [], False, False
    for c in text:
        if not quoted and c.isspace():
            space = bool(out)
            continue
        if space:
            out.append(" ")
        space = False
        if c == "'":
            quoted = not quoted
        out.append(c)
    return "".join(out)


def seconds(duration):
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)", duration)
    assert m, duration
    return float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def split_column(text):
    """'name = expr' -> (name, expr); 'name' -> (name, '')."""
    if "=" in text and re.match(r"^\s*\w+\s*=[^=]", text):
        name, expr = text.split("=", 1)
        return name.strip(), expr.strip()
    return text.strip(), ""


STEP_KINDS = {"let": "derive", "ignore_if": "ignore_if", "dead_letter_if": "dead_letter_if",
              "filter": "filter", "lookup": "lookup"}


def expected_facts(path):
    """What the pipeline file says, read with tomllib (independently of sluice)."""
    with open(path, "rb") as f:
        doc = tomllib.load(f)
    facts = {"pipeline": doc["pipeline"]["name"], "source": doc["source"]["name"]}
    fields = {}
    for name, spec in doc["source"]["fields"].items():
        if isinstance(spec, str):
            fields[name] = (spec, "")
        else:
            fields[name] = (spec["type"], spec.get("path", ""))
    facts["fields"] = fields
    steps = []
    for s in doc.get("step", []):
        kind = next(k for k in STEP_KINDS if k in s)
        step = {"kind": STEP_KINDS[kind]}
        if kind == "let":
            step["field"], step["expr"] = s["let"], one_line(s["expr"])
        elif kind == "lookup":
            step["dimension"], step["key"] = s["lookup"], one_line(s["key"])
            step["fields"], step["on_missing"] = s["fields"], s.get("on_missing", "default")
        else:
            step["expr"] = one_line(s[kind])
            if "reason" in s:
                step["reason"] = s["reason"]
        steps.append(step)
    facts["steps"] = steps
    a = doc.get("aggregate")
    if a:
        keys = [split_column(k) for k in a["keys"]]
        metrics = [split_column(m) for m in a["metrics"]]
        internal = []
        if a.get("mode", "update") == "update":
            for name, expr in metrics:
                fn = expr.split("(")[0] if not expr.startswith("round(") else expr[6:].split("(")[0]
                if fn == "avg":
                    internal.append([f"_{name}_sum", f"_{name}_count"])
                elif fn == "last":
                    internal.append([f"_{name}_at"])
                else:
                    internal.append([])
        else:
            internal = [[] for _ in metrics]
        facts["aggregate"] = {
            "time": a["time"], "window_seconds": seconds(a["window"]), "mode": a.get("mode", "update"),
            "slide_seconds": seconds(a.get("slide", a["window"])),
            "window": "tumbling" if seconds(a.get("slide", a["window"])) == seconds(a["window"]) else "hopping",
            "watermark_delay_seconds": seconds(a.get("watermark_delay", "10s")),
            "allowed_lateness_seconds": seconds(a["allowed_lateness"]) if "allowed_lateness" in a else None,
            "window_columns": a.get("window_columns", ["window_start", "window_end"]),
            "keys": keys, "metrics": [m[0] for m in metrics], "internal": internal,
        }
    else:
        facts["aggregate"] = None
        facts["select"] = [split_column(c)[0] for c in doc.get("select", [])]
    facts["keyed_by"] = doc["source"].get("keyed_by", [])
    facts["table"] = doc["sink"].get("table", "")
    key = doc["sink"].get("key")
    facts["sink_key"] = [key] if isinstance(key, str) else (key or [])
    return facts


def expected_repartition(want, uri):
    """Whether the pipeline would repartition, and why not (docs/notes-16/repartition.md, "When
    it runs"), from the file's facts and the source URI it read."""
    scheme = uri.split(":", 1)[0] if re.match(r"^[a-z]+:", uri) else ""
    a = want["aggregate"]
    if a is None:
        return "no_aggregate"
    if a["mode"] != "append":
        return "update_mode"
    if scheme in ("", "file"):
        return "file_source"
    if scheme != "kafka":
        return "other_source"
    if want["keyed_by"]:
        return "keyed_by"
    return "append_unkeyed"


def compare(path, got):
    want = expected_facts(path)
    name = os.path.basename(path)
    check(f"{name}: pipeline and source names", (got["pipeline"], got["source"]["name"]) ==
          (want["pipeline"], want["source"]), (got["pipeline"], got["source"]["name"]))
    fields = {f["name"]: (f["type"], f.get("path", "")) for f in got["source"]["fields"]}
    check(f"{name}: the fields read, with types and paths", fields == want["fields"],
          (fields, want["fields"]))
    steps = []
    for s in got["steps"]:
        step = {"kind": s["kind"]}
        if s["kind"] == "derive":
            step["field"], step["expr"] = s["field"], s["expr"]
        elif s["kind"] == "lookup":
            step["dimension"], step["key"] = s["dimension"], s["key"]
            step["fields"], step["on_missing"] = s["fields"], s["on_missing"]
        else:
            step["expr"] = s["expr"]
            # A filter without a reason gets one generated from its condition.
            if "reason" in s and s["kind"] != "filter" or "reason" in s and s["kind"] == "filter" and \
                    s["reason"] != "filter " + s["expr"]:
                step["reason"] = s["reason"]
        steps.append(step)
    check(f"{name}: the steps in order", steps == want["steps"], (steps, want["steps"]))
    check(f"{name}: step numbers 1..n", [s["number"] for s in got["steps"]] ==
          list(range(1, len(want["steps"]) + 1)))
    wa, ga = want["aggregate"], got["aggregate"]
    if wa is None:
        check(f"{name}: no aggregate, the select columns", ga is None and
              [c["name"] for c in got["select"]] == want["select"], (ga, got.get("select")))
        check(f"{name}: no event time without an aggregate", got["source"]["event_time"] is None)
    else:
        keys = [(k["name"], k.get("expr", "")) for k in ga["keys"]]
        want_keys = [(n, e) for n, e in wa["keys"]]
        check(f"{name}: group keys with their expressions", keys == want_keys, (keys, want_keys))
        for field in ("time", "window_seconds", "mode", "watermark_delay_seconds",
                      "allowed_lateness_seconds", "window_columns"):
            check(f"{name}: aggregate {field}", ga[field] == wa[field], (ga[field], wa[field]))
        check(f"{name}: event time and watermark on the source", got["source"]["event_time"] == wa["time"]
              and got["source"]["watermark"]["delay_seconds"] == wa["watermark_delay_seconds"])
        check(f"{name}: metrics in order", [m["name"] for m in ga["metrics"]] == wa["metrics"])
        check(f"{name}: internal columns per metric (state kept per group)",
              [m["internal_columns"] for m in ga["metrics"]] == wa["internal"],
              ([m["internal_columns"] for m in ga["metrics"]], wa["internal"]))
        check(f"{name}: a window kind and its slide", (ga["window"], ga["slide_seconds"]) ==
              (wa["window"], wa["slide_seconds"]), (ga["window"], ga["slide_seconds"]))
    reason = expected_repartition(want, got["source"]["uri"])
    rp = got["repartition"]
    check(f"{name}: whether it would repartition, and why", (rp["would"], rp["reason"], rp["built"]) ==
          (reason == "append_unkeyed", reason, True), (rp, reason))
    if rp["would"]:
        check(f"{name}: the repartition topic", rp["topic"] == want["pipeline"] + "-repartition", rp)
    check(f"{name}: the sink's table", got["sink"]["table"] == want["table"], got["sink"]["table"])
    if want["sink_key"]:
        check(f"{name}: the sink's key", got["sink"]["key"] == want["sink_key"], got["sink"]["key"])
    elif wa is not None:
        check(f"{name}: the sink's key is the window columns and group keys",
              got["sink"]["key"] == wa["window_columns"] + [k[0] for k in wa["keys"]], got["sink"]["key"])


def example_vars(tmp, sink):
    return ["--var", "TRACKING=generator:", "--var", "VIEWS=generator:", "--var", "EVENTS=generator:",
            "--var", f"SINK={sink}", "--var", f"OUT=parquet:{os.path.join(tmp, 'out')}"]


def part_examples(sluice, tmp):
    files = sorted(glob.glob(os.path.join(ROOT, "examples", "*.toml")))
    check("examples: there are pipeline files", len(files) >= 5, files)
    cwd = os.path.join(tmp, "elsewhere")
    os.makedirs(cwd)
    db = os.path.join(tmp, "x.db")
    before = set(os.listdir(tmp))
    r = sluice_run(sluice, "explain", *files, *example_vars(tmp, f"sqlite:{db}"), "--format", "json", cwd=cwd)
    check("examples: --format json exits 0", r.returncode == 0, r.stderr[-600:])
    lines = [ln for ln in r.stdout.split("\n") if ln.strip()]
    check("examples: one JSON object per file and line", len(lines) == len(files), len(lines))
    for path, line in zip(files, lines):
        try:
            got = json.loads(line)
        except ValueError as e:
            check(f"{os.path.basename(path)}: the line is JSON", False, e)
            continue
        check(f"{os.path.basename(path)}: names its file", got["file"] == path and got["language"] == "toml",
              (got["file"], got["language"]))
        compare(path, got)
        if got["sink"]["kind"] == "sqlite":
            roles = [s["role"] for s in got["sink"]["statements"]]
            check(f"{os.path.basename(path)}: the SQLite sink's statements", "create table" in roles and
                  ("merge" in roles or "write" in roles), roles)
    check("examples: explain creates nothing where the sinks point",
          set(os.listdir(tmp)) == before and os.listdir(cwd) == [], (set(os.listdir(tmp)) - before, os.listdir(cwd)))
    r = sluice_run(sluice, "explain", *files, *example_vars(tmp, f"sqlite:{db}"), cwd=cwd)
    check("examples: text exits 0", r.returncode == 0, r.stderr[-600:])
    check("examples: the text counts the files",
          f"{len(files)} files: {len(files)} explained, 0 failed" in r.stdout, r.stdout[-200:])
    for path in files:
        name = expected_facts(path)["pipeline"]
        check(f"examples: the text has a block for {name}", f"pipeline {name} ({path}, toml)" in r.stdout)
    # viewlog (append mode, no keyed_by) over Kafka would repartition; explain and validate say
    # so, and that run does not do it yet (nothing is connected to: the broker is a closed port).
    viewlog = os.path.join(ROOT, "examples", "viewlog.toml")
    kafka_vars = ["--var", "VIEWS=kafka://127.0.0.1:9/view_log", "--var", f"OUT=parquet:{os.path.join(tmp, 'out')}"]
    r = sluice_run(sluice, "explain", viewlog, *kafka_vars, "--format", "json", cwd=cwd)
    check("examples: viewlog over Kafka explains (json)", r.returncode == 0, r.stderr[-600:])
    if r.returncode == 0:
        got = json.loads(r.stdout)
        compare(viewlog, got)
        check("examples: viewlog over Kafka would repartition through viewlog-repartition",
              got["repartition"]["would"] and got["repartition"]["topic"] == "viewlog-repartition" and
              got["repartition"]["partitions"] is None, got["repartition"])
    r = sluice_run(sluice, "explain", viewlog, *kafka_vars, cwd=cwd)
    check("examples: ... and says so in text (built: no 'not built yet')", r.returncode == 0 and
          "repartition: when the source's topics have more than one partition in all" in r.stdout and
          "not built yet" not in r.stdout, r.stdout[-800:])
    r = sluice_run(sluice, "validate", viewlog, *kafka_vars, cwd=cwd)
    check("examples: ... validate too", r.returncode == 0 and
          "  repartition when the source's topics have more than one partition in all" in r.stdout and
          "    topic viewlog-repartition, as many partitions as the source's topics in all" in r.stdout,
          (r.stdout[-800:], r.stderr[-300:]))
    # A relative path on the command line works from another directory too.
    rel = os.path.relpath(os.path.join(ROOT, "examples", "ysb.toml"), cwd)
    r = sluice_run(sluice, "explain", rel, "--var", "EVENTS=generator:", "--var", f"SINK=sqlite:{db}", cwd=cwd)
    check("examples: a relative pipeline path from another directory", r.returncode == 0 and
          "aggregate tumbling 10s windows on event_time, update mode" in r.stdout, r.stderr[-300:])


def part_errors(sluice, tmp):
    good = os.path.join(ROOT, "examples", "ysb.toml")
    bad = os.path.join(tmp, "bad.toml")
    with open(bad, "w") as f:
        f.write('[pipeline]\nname = "bad"\n[source]\nuri = "generator:"\nnosuch = 1\n[source.fields]\n'
                'a = "string"\n[sink]\nuri = "stdout:"\n')
    v = ["--var", "EVENTS=generator:", "--var", "SINK=sqlite:" + os.path.join(tmp, "e.db")]
    r = sluice_run(sluice, "explain", good, bad, *v)
    check("errors: a bad file among good ones exits 2", r.returncode == 2, (r.returncode, r.stderr[-300:]))
    check("errors: the message names the bad file", bad in r.stderr, r.stderr[-300:])
    check("errors: the good file is still explained", "pipeline ysb (" in r.stdout and
          "2 files: 1 explained, 1 failed" in r.stdout, r.stdout[-300:])
    r = sluice_run(sluice, "explain", os.path.join(tmp, "missing.toml"))
    check("errors: a missing file exits 2", r.returncode == 2, r.returncode)
    r = sluice_run(sluice, "explain", good, *v, "--var", "EVENT=x")
    check("errors: an unused --var exits 2 with a hint", r.returncode == 2 and "did you mean EVENTS" in r.stderr,
          (r.returncode, r.stderr[-300:]))
    r = sluice_run(sluice, "explain", good, *v, "--format", "yaml")
    check("errors: an unknown --format exits 2", r.returncode == 2, r.returncode)
    # sluice inspect of a Kafka sink whose broker cannot be reached: a runtime failure (1), not a
    # bad argument, reported within the 10 s inspect waits for the broker's topic list.
    started = time.time()
    r = sluice_run(sluice, "inspect", "kafka://127.0.0.1:1/explain_nowhere", timeout=60)
    check("errors: inspect of an unreachable Kafka broker exits 1 and names it",
          r.returncode == 1 and "127.0.0.1:1" in r.stderr and r.stdout == "", (r.returncode, r.stderr[-300:]))
    check("errors: ... in one line, without librdkafka's own log", r.stderr.count("\n") == 1, r.stderr[-500:])
    check("errors: ... within about 10 s", time.time() - started < 25, time.time() - started)


def mysql(sql, db=None):
    argv = ["mysql", "-h", "127.0.0.1", "-P", "3306", "-u", "root", "--batch", "--skip-column-names"]
    if db:
        argv.append(db)
    return subprocess.run(argv, input=sql, capture_output=True, text=True, timeout=60)


def literal(v):
    if v is None:
        return "NULL"
    if isinstance(v, str):
        return "'" + v.replace("'", "''") + "'"
    return repr(v)


def part_mysql(sluice, tmp):
    try:
        socket.create_connection(("127.0.0.1", 3306), timeout=2).close()
    except OSError:
        print("SKIP mysql: no MariaDB on 127.0.0.1:3306", flush=True)
        return SKIP if not IN_CI else check("mysql: the server is there", False) or 0
    db = f"explain_{os.getpid()}"
    r = mysql(f"DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db};")
    check("mysql: scratch database", r.returncode == 0, r.stderr)
    uri = f"mysql://root@127.0.0.1:3306/{db}"
    try:
        pipelines = {"recruitment": os.path.join(ROOT, "examples", "recruitment.toml"),
                     "ysb": os.path.join(ROOT, "examples", "ysb.toml")}
        r = sluice_run(sluice, "explain", *pipelines.values(), "--var", "TRACKING=generator:",
                       "--var", "EVENTS=generator:", "--var", f"SINK={uri}", "--format", "json", cwd=tmp)
        check("mysql: explain exits 0", r.returncode == 0, r.stderr[-500:])
        got = {}
        for line in r.stdout.strip().split("\n"):
            e = json.loads(line)
            got[e["pipeline"]] = e
        tables = mysql("SHOW TABLES", db).stdout.split()
        check("mysql: explain created no table", tables == [], tables)
        # The pipelines create their tables themselves.
        for name, extra in (("recruitment", ["--var", "TRACKING=generator:", "--var", "COUNT=300", "--var", "RATE=0"]),
                            ("ysb", ["--var", "EVENTS=generator:", "--var", "COUNT=300"])):
            r = sluice_run(sluice, "run", pipelines[name], "--var", f"SINK={uri}", *extra, timeout=180)
            check(f"mysql: {name} runs into the database", r.returncode == 0, r.stderr[-500:])
        for name, e in got.items():
            statements = {s["role"]: s for s in e["sink"]["statements"]}
            check(f"mysql: {name}: create table and merge statements", {"create table", "merge"} <= set(statements)
                  and all(s["dialect"] == "mysql" for s in statements.values()), list(statements))
        # recruitment: a key of its own, merged twice.
        merge = got["recruitment"]["sink"]["statements"]
        merge = next(s["text"] for s in merge if s["role"] == "merge")
        columns = re.findall(r"`(\w+)`", merge[:merge.index(" VALUES ")])[1:]
        key = {"job_id": 987654321, "dates": "2030-01-02", "hours": 5, "publisher_id": 1, "campaign_id": 2,
               "group_id": 3}
        deltas = [
            {"company_id": 11, "_company_id_at": 2000, "clicks": 3, "bid_set": 2.0, "_bid_set_sum": 6,
             "_bid_set_count": 3, "spend_hour": 6, "conversion": 1, "qualified_application": 0,
             "disqualified_application": 2, "sources": "a", "_sources_at": 2000,
             "latest_update_time": "2030-01-02 05:10:00"},
            {"company_id": 22, "_company_id_at": 1000, "clicks": 4, "bid_set": 1.25, "_bid_set_sum": 5,
             "_bid_set_count": 4, "spend_hour": 5, "conversion": 0, "qualified_application": 7,
             "disqualified_application": 1, "sources": "b", "_sources_at": 3000,
             "latest_update_time": "2030-01-02 05:05:00"},
        ]
        check("mysql: the merge names every column once", sorted(columns) == sorted(list(key) + list(deltas[0])),
              columns)
        sql = f"PREPARE m FROM {literal(merge)};\n"
        for d in deltas:
            values = {**key, **d}
            sets = ", ".join(f"@p{i} = {literal(values[c])}" for i, c in enumerate(columns))
            sql += f"SET {sets};\nEXECUTE m USING {', '.join(f'@p{i}' for i in range(len(columns)))};\n"
        sql += ("SELECT company_id, clicks, bid_set, spend_hour, conversion, qualified_application, "
                "disqualified_application, sources, latest_update_time FROM events WHERE job_id = 987654321;\n")
        r = mysql(sql, db)
        check("mysql: recruitment's merge statement prepares and runs on the table sluice made",
              r.returncode == 0, r.stderr[-500:])
        row = r.stdout.strip().split("\t")
        # Worked out here: counts and sums add; the average is (6 + 5) / (3 + 4) rounded to 2
        # places; company_id keeps the value of the later time (2000), sources the later (3000);
        # latest_update_time is the max.
        want = ["11", "7", "1.57", "11", "1", "7", "3", "b", "2030-01-02 05:10:00"]
        check("mysql: recruitment's merge gives the merged row", row == want, (row, want))
        # ysb: count by window and campaign.
        merge = next(s["text"] for s in got["ysb"]["sink"]["statements"] if s["role"] == "merge")
        sql = (f"PREPARE m FROM {literal(merge)};\n"
               "SET @w = '2030-01-01 00:00:10', @c = 'explain-campaign', @n = 5; EXECUTE m USING @w, @c, @n;\n"
               "SET @n = 8; EXECUTE m USING @w, @c, @n;\n"
               "SELECT views FROM campaign_windows WHERE campaign_id = 'explain-campaign';\n")
        r = mysql(sql, db)
        check("mysql: ysb's merge adds the counts (5 + 8)", r.returncode == 0 and r.stdout.strip() == "13",
              (r.stdout, r.stderr[-300:]))
    finally:
        mysql(f"DROP DATABASE IF EXISTS {db}")
    return 0


def part_kafka(sluice, tmp):
    try:
        socket.create_connection(("127.0.0.1", 9092), timeout=2).close()
        import confluent_kafka  # noqa: F401, PLC0415
    except (OSError, ImportError) as e:
        print(f"SKIP kafka: {e}", flush=True)
        return SKIP if not IN_CI else check("kafka: the broker and confluent_kafka are there", False) or 0
    from confluent_kafka import Consumer, TopicPartition  # noqa: PLC0415
    from confluent_kafka.admin import AdminClient  # noqa: PLC0415
    topic = f"explain_{os.getpid()}_{int(time.time())}"
    data = os.path.join(tmp, "input.ndjson")
    bad_ts, rows = 0, []
    for i in range(60):
        # In order, so that nothing is late: the bad times are the only dead letters.
        ts = "not a time" if i % 7 == 3 else f"2030-01-01T{i // 20:02d}:{i % 20 * 3:02d}:00Z"
        bad_ts += ts == "not a time"
        rows.append(json.dumps({"key": f"k{i % 4}", "ts": ts, "value": i}))
    with open(data, "w") as f:
        f.write("\n".join(rows) + "\n")
    pipeline = os.path.join(tmp, "to-kafka.toml")
    r = sluice_run(sluice, "init", "--source", data, "--sink", f"kafka://127.0.0.1:9092/{topic}",
                   "-o", pipeline, "--name", "explain-kafka")
    check("kafka: init writes the pipeline", r.returncode == 0, r.stderr[-300:])
    started = time.time()
    r = sluice_run(sluice, "run", pipeline, timeout=180)
    ended = time.time()
    check("kafka: the pipeline runs into Kafka", r.returncode == 0, r.stderr[-500:])
    admin = AdminClient({"bootstrap.servers": "127.0.0.1:9092"})
    try:
        topics_before = set(admin.list_topics(timeout=10).topics)
        r = sluice_run(sluice, "inspect", f"kafka://127.0.0.1:9092/{topic}", "--json", "--samples", "2")
        check("kafka: inspect --json exits 0", r.returncode == 0, r.stderr[-500:])
        inv = json.loads(r.stdout)
        pipes = {p["pipeline"]: p for p in inv["pipelines"]}
        check("kafka: the pipeline is listed", list(pipes) == ["explain-kafka"], list(pipes))
        p = pipes.get("explain-kafka", {})
        src = {s["source"]: s for s in p.get("sources", [])}
        size = os.path.getsize(data)
        part0 = [x["offset"] for x in src.get("input", {}).get("partitions", []) if x["partition"] == 0]
        check("kafka: committed position of the file = its size", part0 == [size], (part0, size, src))
        check("kafka: the file's identity is stored with it", src.get("input", {}).get("file_identity") is not None
              and src["input"]["file_identity"]["inode"] == os.stat(data).st_ino, src.get("input"))
        check("kafka: state stored (append mode)", (p.get("state_bytes") or 0) > 0, p.get("state_bytes"))
        last = p.get("last_checkpoint_micros") or 0
        check("kafka: last checkpoint within the run", started - 2 <= last / 1e6 <= ended + 2,
              (started, last / 1e6, ended))
        # The dead-letter topic read independently, read_committed.
        c = Consumer({"bootstrap.servers": "127.0.0.1:9092", "group.id": f"explain-check-{os.getpid()}",
                      "isolation.level": "read_committed", "enable.auto.commit": False,
                      "auto.offset.reset": "earliest", "enable.partition.eof": True})
        dl_topic = f"{topic}.sluice-dead-letters"
        n = len(admin.list_topics(topic=dl_topic, timeout=10).topics[dl_topic].partitions)
        c.assign([TopicPartition(dl_topic, i, 0) for i in range(n)])
        letters, eof = [], set()
        deadline = time.time() + 30
        while len(eof) < n and time.time() < deadline:
            m = c.poll(1)
            if m is None:
                continue
            if m.error():
                eof.add(m.partition())
                continue
            letters.append(json.loads(m.value()))
        c.close()
        by_reason = {}
        for d in letters:
            by_reason[d["reason"]] = by_reason.get(d["reason"], 0) + 1
        dl = p.get("dead_letters") or {}
        got = {x["reason"]: x["count"] for x in dl.get("by_reason", [])}
        check("kafka: dead letters by reason = the topic's = the rows written bad",
              got == by_reason == {"ts is not a timestamp": bad_ts}, (got, by_reason, bad_ts))
        samples = [s for x in dl.get("by_reason", []) for s in x["samples"]]
        # Newest: dead-lettered last (their `time`), then latest in the input.
        newest = sorted(letters, key=lambda d: (d["time"], d["offset"]))[-2:][::-1]
        check("kafka: the two newest samples, newest first",
              [(s["offset"], json.loads(s["payload_json"])) for s in samples] ==
              [(d["offset"], d["payload"]) for d in newest], (samples, newest))
        check("kafka: dead letters are said to be in the topic", dl.get("location") == f"topic {dl_topic}",
              dl.get("location"))
        r = sluice_run(sluice, "inspect", f"kafka://127.0.0.1:9092/{topic}")
        check("kafka: inspect text", r.returncode == 0 and "pipeline explain-kafka" in r.stdout and
              f"offset {size:,}" in r.stdout and f"{bad_ts}  ts is not a timestamp" in r.stdout, r.stdout)
        none = topic + "_none"
        r = sluice_run(sluice, "inspect", f"kafka://127.0.0.1:9092/{none}")
        check("kafka: a topic no pipeline wrote exits 2", r.returncode == 2 and "no topic" in r.stderr,
              (r.returncode, r.stderr[-300:]))
        # Only names inspect was given count: other tests may create topics on the broker meanwhile.
        topics_after = {t for t in admin.list_topics(timeout=10).topics if t.startswith(topic)}
        check("kafka: inspect created no topic", topics_after - topics_before == set(),
              topics_after - topics_before)
    finally:
        names = [t for t in admin.list_topics(timeout=10).topics if t.startswith(topic)]
        if names:
            for f in admin.delete_topics(names).values():
                try:
                    f.result(timeout=30)
                except Exception:  # noqa: BLE001
                    pass
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--part", default="examples,errors,mysql,kafka")
    args = ap.parse_args()
    sluice = os.path.abspath(args.sluice)
    parts = args.part.split(",")
    skipped = False
    tmp = tempfile.mkdtemp(prefix="sluice-explain-")
    try:
        for part in parts:
            sub = os.path.join(tmp, part)
            os.makedirs(sub)
            rc = {"examples": part_examples, "errors": part_errors, "mysql": part_mysql,
                  "kafka": part_kafka}[part](sluice, sub)
            skipped |= rc == SKIP
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print(f"{len(failures)} checks failed", flush=True)
        return 1
    return SKIP if skipped else 0


if __name__ == "__main__":
    sys.exit(main())
