#!/usr/bin/env python3
"""The Airflow DAGs of deploy/airflow/dags/ under real Apache Airflow, running the real sluice.

    airflow_test.py --sluice build/sluice [--venv build/airflow-venv] [--keep]

Airflow comes from PyPI into its own virtual environment (tests/deploy/airflow_venv.py: pinned
by deploy/airflow/requirements.txt and constraints-3.11.txt; a few minutes the first time,
nothing on later runs). Each run uses a fresh AIRFLOW_HOME with a SQLite metadata database and
no server; DAG runs go through `airflow dags test`.

Checks:
  1. `airflow db migrate`; `airflow dags list-import-errors` is empty; the DAGs are loaded with
     their schedule (recruitment_incremental: `0 7 * * *`; push_data_to_broker and
     viewlog_report: `@daily`), catchup off, one SluiceBashOperator task each;
  2. generate_events with a small count into a file: the task succeeds and the file holds the
     same events as `sluice generate` with the same seed; with a huge count and duration=3 the
     run is stopped after ~3 s and still succeeds;
  3. recruitment_incremental with Variables pointing at the built sluice, the generated file and
     a temporary SQLite sink: the task succeeds and `events` equals a direct `sluice run` of the
     file; more events appended to the file, the next daily run catches up on them only (equal
     to a direct run over the whole file);
  4. sluice failing makes the task fail: a pipeline file that does not exist, and one that
     sluice rejects (exit 2), both without a retry although the DAG has one;
  5. push_data_to_broker (the users ingest, `@daily`) with `sluice fake-api` and a topic
     airflow_profiles_* on the Kafka of `make services`: COUNT=120 puts exactly the API's first
     120 profiles into the topic (read back with kcat as a read_committed consumer, compared
     with the pages fetched from the API directly); the next run with COUNT=200 adds the next
     80 only; a run without COUNT and duration=4 is stopped by SIGINT, succeeds, and the topic
     holds each profile of the pages it read once; an unused variable (exit 2) fails the task
     without a retry;
  6. viewlog_report (`@daily`) over a 1-partition topic airflow_views_*: the Parquet reports
     equal a direct `sluice run --until-caught-up` over the same events as a file; more events
     in the topic, the next run reads only those and the reports equal a direct run over all;
     a runtime failure (exit 1: OUT under /dev/null) fails the task after its one retry.
  Without Kafka or kcat, 5 and 6 are a loud SKIP (a FAIL under CI=true).
Installing Airflow fails (no PyPI, no venv module): FAIL under CI=true, else SKIP (exit 77).
Prints PASS/FAIL per check and 'N passed, M failed' last; exit 1 on any failure.
"""

import argparse
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tools"))
import airflow_venv  # noqa: E402
import harness  # noqa: E402
import users_api  # noqa: E402
from harness import BROKER  # noqa: E402
from kafka_util import kafka_missing, topic_messages, topics_tool as kafka_topics  # noqa: E402

DAGS = os.path.join(REPO, "deploy", "airflow", "dags")
PIPELINE = os.path.join(REPO, "examples", "recruitment.toml")
INGEST = os.path.join(REPO, "examples", "users-ingest.toml")
VIEWLOG = os.path.join(REPO, "examples", "viewlog.toml")
# DAG id -> (schedule, task id) as the scheduler must see them.
DAG_SHAPES = {
    "recruitment_incremental": ("0 7 * * *", "run_until_caught_up"),
    "push_data_to_broker": ("0 0 * * *", "push_profiles"),  # @daily
    "viewlog_report": ("0 0 * * *", "report"),
}


class Airflow:
    """The airflow CLI of the venv, in an AIRFLOW_HOME of its own."""

    def __init__(self, airflow, home):
        self.airflow = airflow
        self.home = home
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("AIRFLOW", "SLUICE_"))}
        env.update({
            "AIRFLOW_HOME": home,
            "AIRFLOW__CORE__DAGS_FOLDER": DAGS,
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
            "AIRFLOW__CORE__EXECUTOR": "SequentialExecutor",
            # A failed task must fail the run now, not wait for the DAG's retries.
            "SLUICE_AIRFLOW_RETRIES": "0",
        })
        self.env = env
        self.calls = 0

    def run(self, *args, extra_env=None, timeout=300):
        """Runs `airflow ARGS`; returns (exit code, output). The output goes to a log file."""
        self.calls += 1
        env = dict(self.env)
        env.update(extra_env or {})
        log = os.path.join(self.home, f"cli-{self.calls:02d}-{args[0]}-{args[1] if len(args) > 1 else ''}.log")
        try:
            p = subprocess.run([self.airflow, *args], env=env, cwd=self.home, timeout=timeout,
                               capture_output=True, text=True)
            rc, out = p.returncode, p.stdout + p.stderr
        except subprocess.TimeoutExpired as e:
            rc = "timeout"
            out = (e.stdout or b"").decode(errors="replace") + (e.stderr or b"").decode(errors="replace")
        with open(log, "w") as f:
            f.write(out)
        return rc, out

    def json(self, *args, extra_env=None):
        """Runs a listing command with -o json; returns the parsed list (log lines skipped)."""
        rc, out = self.run(*args, "-o", "json", extra_env=extra_env)
        if rc != 0:
            raise RuntimeError(f"airflow {' '.join(args)}: exit {rc}\n{out[-2000:]}")
        for line in out.splitlines():
            if line.startswith("[") and line.rstrip().endswith("]"):
                try:
                    return json.loads(line)
                except ValueError:
                    continue
        raise RuntimeError(f"airflow {' '.join(args)}: no JSON list in the output\n{out[-2000:]}")

    def dag_test(self, dag_id, date, conf=None, extra_env=None, timeout=300):
        """`airflow dags test`; returns (exit code, run state, task states, output)."""
        args = ["dags", "test", dag_id, date]
        if conf is not None:
            args += ["-c", json.dumps(conf)]
        t0 = time.monotonic()
        rc, out = self.run(*args, extra_env=extra_env, timeout=timeout)
        m = re.findall(r"DagRun Finished: .*?run_id=([^,]+), .*?state=(\w+)", out)
        run_id, state = m[-1] if m else (None, None)
        return rc, state, self.task_states(dag_id, run_id), out, time.monotonic() - t0

    def task_tries(self, dag_id, date):
        """{task_id: (state, try_number)} of the run of `airflow dags test DAG date`."""
        con = sqlite3.connect(os.path.join(self.home, "airflow.db"))
        try:
            return {r[0]: (r[1], r[2]) for r in con.execute(
                "SELECT ti.task_id, ti.state, ti.try_number FROM task_instance ti "
                "JOIN dag_run dr ON dr.dag_id = ti.dag_id AND dr.run_id = ti.run_id "
                "WHERE ti.dag_id = ? AND date(dr.execution_date) = ?", (dag_id, date))}
        finally:
            con.close()

    def task_states(self, dag_id, run_id):
        """{task_id: state} of a run, read from the SQLite metadata database itself (the CLI's
        `tasks states-for-dag-run` gives the same, in seconds rather than milliseconds)."""
        if not run_id:
            return {}
        con = sqlite3.connect(os.path.join(self.home, "airflow.db"))
        try:
            return dict(con.execute("SELECT task_id, state FROM task_instance "
                                    "WHERE dag_id = ? AND run_id = ?", (dag_id, run_id)))
        finally:
            con.close()


def table_rows(db, table="events"):
    con = sqlite3.connect(db)
    try:
        cols = [r[1] for r in con.execute(f'PRAGMA table_info("{table}")')]
        rows = con.execute(f'SELECT * FROM "{table}" ORDER BY 1, 2, 3, 4, 5, 6').fetchall()
        return cols, rows
    finally:
        con.close()


def compare_tables(got_db, want_db):
    """Problems (at most a few) where the events table of got_db differs from want_db's."""
    try:
        gc, gr = table_rows(got_db)
        wc, wr = table_rows(want_db)
    except sqlite3.Error as e:
        return [f"cannot read events: {e}"]
    if gc != wc:
        return [f"columns differ: {gc} vs {wc}"]
    if gr == wr:
        return []
    problems = [f"{len(gr)} rows vs {len(wr)} expected"]
    gs, ws = set(gr), set(wr)
    problems += [f"unexpected row {r}" for r in sorted(gs - ws)[:3]]
    problems += [f"missing row {r}" for r in sorted(ws - gs)[:3]]
    return problems


class Test(harness.Checks):
    def __init__(self, args, tmp):
        harness.Checks.__init__(self)
        self.args, self.tmp = args, tmp
        self.topics = []  # Kafka topics to delete at the end

    def sluice(self, *args):
        p = subprocess.run([self.args.sluice, *args], cwd=REPO, capture_output=True, text=True,
                           timeout=300)
        if p.returncode != 0:
            raise RuntimeError(f"sluice {' '.join(args)}: exit {p.returncode}\n{p.stderr[-2000:]}")
        return p

    def expected_events(self, tracking, name):
        db = os.path.join(self.tmp, f"expected-{name}.db")
        self.sluice("run", PIPELINE, "--until-caught-up", "--var", f"TRACKING={tracking}",
                    "--var", f"SINK=sqlite:{db}",
                    "--var", f"DLQ={os.path.join(self.tmp, f'expected-{name}.dlq.ndjson')}")
        return db


def tail(out, n=1500):
    return out[-n:].replace("\n", "\n      ")


def check_loaded(t, af, venv_python):
    problems = []
    rc, out = af.run("db", "migrate")
    if rc != 0:
        t.result("airflow db migrate (SQLite)", [f"exit {rc}: {tail(out)}"])
        return False
    t.result("airflow db migrate (SQLite)", [])

    try:
        errors = af.json("dags", "list-import-errors")
    except RuntimeError as e:
        t.result("DAGs import without errors", [str(e)])
        return False
    if errors:
        problems += [f"import error: {e}" for e in errors]
    # The schedule and the task, as the scheduler sees them (a DagBag in the venv's Python).
    probe = (
        "import json, sys\n"
        "from airflow.models import DagBag\n"
        f"bag = DagBag({DAGS!r}, include_examples=False)\n"
        "out = {}\n"
        "for dag_id, dag in bag.dags.items():\n"
        "    out[dag_id] = {'schedule': str(dag.timetable.summary), 'catchup': dag.catchup,\n"
        "        'tasks': [(t.task_id, type(t).__name__, t.skip_on_exit_code)\n"
        "                  for t in dag.tasks]}\n"
        "print('PROBE' + json.dumps(out, default=str))\n")
    p = subprocess.run([venv_python, "-c", probe], env=af.env, capture_output=True, text=True,
                       timeout=120)
    m = re.search(r"^PROBE(.*)$", p.stdout, re.M)
    if not m:
        problems.append(f"DagBag probe failed: {tail(p.stdout + p.stderr)}")
    else:
        info = json.loads(m.group(1))
        for dag_id in ("generate_events", *DAG_SHAPES):
            if dag_id not in info:
                problems.append(f"DAG {dag_id} not loaded (loaded: {sorted(info)})")
        for dag_id, (schedule, task_id) in DAG_SHAPES.items():
            d = info.get(dag_id, {})
            if d.get("schedule") != schedule:
                problems.append(f"{dag_id} schedule {d.get('schedule')!r}, want {schedule!r}")
            if d.get("catchup") is not False:
                problems.append(f"{dag_id}: catchup is not off")
            # SluiceBashOperator: exit 2 fails the task without retries.
            if [x[:2] for x in d.get("tasks", [])] != [[task_id, "SluiceBashOperator"]]:
                problems.append(f"{dag_id} tasks {d.get('tasks')}, want one SluiceBashOperator "
                                f"{task_id}")
        for dag_id, d in info.items():
            for task_id, _, skip in d["tasks"]:
                if skip not in (None, [], "None"):
                    problems.append(f"{dag_id}.{task_id}: skip_on_exit_code={skip} (a non-zero "
                                    "exit must fail the task, not skip it)")
    t.result("DAGs import without errors; schedules 0 7 * * * and @daily, catchup off, one "
             "SluiceBashOperator each", problems)
    return not problems


def check_generate(t, af):
    sluice_env = {"AIRFLOW_VAR_SLUICE_BIN": t.args.sluice, "SLUICE_PROJECT_DIR": REPO}
    out_file = os.path.join(t.tmp, "generated.ndjson")
    ref_file = os.path.join(t.tmp, "reference.ndjson")
    rc, state, tasks, out, secs = af.dag_test(
        "generate_events", "2026-01-01",
        conf={"to": out_file, "count": 2000, "rate": 0, "seed": 5}, extra_env=sluice_env)
    problems = []
    if rc != 0 or state != "success" or tasks.get("generate") != "success":
        problems.append(f"exit {rc}, run {state}, tasks {tasks}: {tail(out)}")
    else:
        t.sluice("generate", "--profile", "recruitment", "--to", ref_file, "--count", "2000",
                 "--rate", "0", "--seed", "5")
        with open(out_file, "rb") as a, open(ref_file, "rb") as b:
            got, want = a.read(), b.read()
        lines = got.count(b"\n")
        if lines != 2000:
            problems.append(f"{out_file}: {lines} lines, want 2000")
        if got != want:
            problems.append("the DAG's events differ from `sluice generate --seed 5`")
    t.result(f"generate_events: 2000 events into a file == sluice generate  [{secs:.1f}s]",
             problems)

    bounded = os.path.join(t.tmp, "bounded.ndjson")
    rc, state, tasks, out, secs = af.dag_test(
        "generate_events", "2026-01-02",
        conf={"to": bounded, "count": 1000000000, "rate": 500, "seed": 6, "duration": 3},
        extra_env=sluice_env)
    problems = []
    if rc != 0 or state != "success" or tasks.get("generate") != "success":
        problems.append(f"exit {rc}, run {state}, tasks {tasks}: {tail(out)}")
    else:
        with open(bounded, "rb") as f:
            n = sum(1 for _ in f)
        if not 0 < n < 10000:
            problems.append(f"{n} events in 3 s at 500/s")
    t.result(f"generate_events: duration=3 stops an unbounded count; the task succeeds "
             f"[{secs:.1f}s]", problems)
    return out_file


def check_recruitment(t, af, tracking):
    sink = os.path.join(t.tmp, "airflow-events.db")
    dlq = os.path.join(t.tmp, "airflow dead letters.ndjson")  # a space: quoting is exercised
    # sluice_bin from the environment backend, the others from the metadata database.
    env = {"AIRFLOW_VAR_SLUICE_BIN": t.args.sluice}
    for name, value in (("sluice_project_dir", REPO),
                        ("sluice_recruitment_vars",
                         json.dumps({"TRACKING": tracking, "SINK": f"sqlite:{sink}", "DLQ": dlq}))):
        rc, out = af.run("variables", "set", name, value)
        if rc != 0:
            t.result("airflow variables set", [f"{name}: exit {rc}: {tail(out)}"])
            return

    rc, state, tasks, out, secs = af.dag_test("recruitment_incremental", "2026-01-05",
                                              extra_env=env)
    problems = []
    if rc != 0 or state != "success" or tasks.get("run_until_caught_up") != "success":
        problems.append(f"exit {rc}, run {state}, tasks {tasks}: {tail(out)}")
    elif "--until-caught-up" not in out or t.args.sluice not in out:
        problems.append("the task log does not show `sluice run ... --until-caught-up`")
    else:
        problems += compare_tables(sink, t.expected_events(tracking, "first"))
    t.result(f"recruitment_incremental: sluice run --until-caught-up into SQLite == direct run "
             f"[{secs:.1f}s]", problems)
    if problems:
        return

    # New events arrive; the next daily run reads only those (positions in the sink).
    more = os.path.join(t.tmp, "more.ndjson")
    t.sluice("generate", "--profile", "recruitment", "--to", more, "--count", "1500", "--rate",
             "0", "--seed", "9")
    with open(more, "rb") as src, open(tracking, "ab") as dst:
        dst.write(src.read())
    rc, state, tasks, out, secs = af.dag_test("recruitment_incremental", "2026-01-06",
                                              extra_env=env)
    problems = []
    if rc != 0 or state != "success" or tasks.get("run_until_caught_up") != "success":
        problems.append(f"exit {rc}, run {state}, tasks {tasks}: {tail(out)}")
    else:
        m = re.search(r"recruitment: ([\d,]+) records in", out)
        if not m or int(m.group(1).replace(",", "")) != 1500:
            problems.append(f"second run read {m.group(1) if m else '?'} records, want the 1500 "
                            "new ones")
        problems += compare_tables(sink, t.expected_events(tracking, "whole"))
    t.result(f"recruitment_incremental: next day's run catches up on the new events only "
             f"[{secs:.1f}s]", problems)


def check_failures(t, af):
    # One retry, a second apart: exit 2 must not use it.
    env = {"AIRFLOW_VAR_SLUICE_BIN": t.args.sluice, "SLUICE_AIRFLOW_RETRIES": "1",
           "SLUICE_AIRFLOW_RETRY_DELAY": "1"}
    bad = os.path.join(t.tmp, "bad.toml")
    with open(PIPELINE, encoding="utf-8") as f:
        text = f.read()
    with open(bad, "w", encoding="utf-8") as f:
        f.write(text.replace("[pipeline]\n", "[pipeline]\nno_such_setting = 1\n", 1))
    cases = [("a pipeline file that does not exist", os.path.join(t.tmp, "missing.toml"), None),
             ("a pipeline file sluice rejects (exit 2)", bad, 2)]
    for i, (what, pipeline, want_rc) in enumerate(cases):
        env_i = dict(env, AIRFLOW_VAR_SLUICE_RECRUITMENT_PIPELINE=pipeline)
        rc, state, tasks, out, secs = af.dag_test("recruitment_incremental", f"2026-02-0{i + 1}",
                                                  extra_env=env_i)
        problems = []
        if state != "failed" or tasks.get("run_until_caught_up") != "failed":
            problems.append(f"run {state}, task {tasks}: want both failed: {tail(out)}")
        if rc == 0:
            problems.append("`airflow dags test` exited 0")
        m = re.search(r"Command exited with return code (\d+)", out)
        if not m or m.group(1) == "0":
            problems.append(f"sluice's exit code not in the log: {tail(out)}")
        elif want_rc is not None and int(m.group(1)) != want_rc:
            problems.append(f"sluice exited {m.group(1)}, want {want_rc}")
        problems += no_retry(af, "recruitment_incremental", f"2026-02-0{i + 1}", out)
        t.result(f"recruitment_incremental fails when sluice fails, without a retry: {what} "
                 f"[{secs:.1f}s]", problems)


def no_retry(af, dag_id, date, out):
    """Problems when the failed task of that run was tried more than once."""
    tries = af.task_tries(dag_id, date)
    problems = [f"{task}: state {state}, tried {n} times; want failed after 1 try (exit 2 is "
                "not retried)" for task, (state, n) in tries.items() if state != "failed" or n != 1]
    if "AirflowFailException" not in out:
        problems.append("the log does not show AirflowFailException (the no-retry failure)")
    return problems


# ---- Kafka and the fake API (checks 5 and 6) ----


class FakeApi(users_api.FakeApi):
    """A `sluice fake-api` on a free port (no failures injected)."""

    def page_ids(self, seed, page, size):
        """login.uuid of the profiles of one page, fetched from the API directly."""
        url = f"{self.url}?page={page}&results={size}&seed={urllib.parse.quote(seed)}"
        with urllib.request.urlopen(url, timeout=10) as r:
            return [p["login"]["uuid"] for p in json.loads(r.read().decode("utf-8"))["results"]]


def records_in(out):
    m = re.search(r"(?:users-ingest|viewlog): ([\d,]+) records in", out)
    return int(m.group(1).replace(",", "")) if m else None


def run_ok(tasks, task_id, rc, state):
    return rc == 0 and state == "success" and tasks.get(task_id) == "success"


def check_users_ingest(t, af, api):
    topic = f"airflow_profiles_{os.getpid()}_{int(time.time()) % 100000}"
    t.topics.append(topic)
    seed, size = "airflow", 20
    base = {"API": api.url, "PROFILES": f"kafka://{BROKER}/{topic}", "SEED": seed,
            "PAGE_SIZE": str(size), "INTERVAL": "0s",
            "DLQ": os.path.join(t.tmp, "ingest dead letters.ndjson")}
    env = {"AIRFLOW_VAR_SLUICE_BIN": t.args.sluice, "SLUICE_PROJECT_DIR": REPO}

    def day(date, variables, conf=None, extra=None):
        e = dict(env, AIRFLOW_VAR_SLUICE_USERS_INGEST_VARS=json.dumps(variables), **(extra or {}))
        return af.dag_test("push_data_to_broker", date, conf=conf, extra_env=e)

    def want_pages(n_pages):
        return [u for page in range(1, n_pages + 1) for u in api.page_ids(seed, page, size)]

    # Day 1: COUNT=120, caught up when the topic has the first 120 profiles.
    rc, state, tasks, out, secs = day("2026-03-01", dict(base, COUNT="120"))
    problems = []
    if not run_ok(tasks, "push_profiles", rc, state):
        problems.append(f"exit {rc}, run {state}, tasks {tasks}: {tail(out)}")
    elif "--until-caught-up" not in out:
        problems.append("the task log does not show `sluice run ... --until-caught-up`")
    else:
        got = [m.get("login_uuid") for m in topic_messages(topic)]
        if sorted(got) != sorted(want_pages(6)):
            problems.append(f"the topic holds {len(got)} profiles ({len(set(got))} distinct); "
                            "want the API's pages 1-6 (120 profiles) once each")
    t.result(f"push_data_to_broker: COUNT=120 -> the API's first 120 profiles in {topic} "
             f"[{secs:.1f}s]", problems)
    if problems:
        return

    # Day 2: COUNT=200 (a total over all runs): the next 80 profiles only.
    rc, state, tasks, out, secs = day("2026-03-02", dict(base, COUNT="200"))
    problems = []
    if not run_ok(tasks, "push_profiles", rc, state):
        problems.append(f"exit {rc}, run {state}, tasks {tasks}: {tail(out)}")
    else:
        if records_in(out) != 80:
            problems.append(f"the run read {records_in(out)} profiles, want the 80 new ones")
        got = [m.get("login_uuid") for m in topic_messages(topic)]
        if sorted(got) != sorted(want_pages(10)):
            problems.append(f"the topic holds {len(got)} profiles ({len(set(got))} distinct); "
                            "want pages 1-10 (200 profiles) once each")
    t.result(f"push_data_to_broker: next day's run with COUNT=200 adds the next 80 only "
             f"[{secs:.1f}s]", problems)
    if problems:
        return

    # Day 3: no COUNT (the API never runs dry): the run is time-boxed by `duration`.
    rc, state, tasks, out, secs = day("2026-03-03", dict(base, INTERVAL="100ms"),
                                      conf={"duration": 4})
    problems = []
    if not run_ok(tasks, "push_profiles", rc, state):
        problems.append(f"exit {rc}, run {state}, tasks {tasks}: {tail(out)}")
    else:
        if "interrupted by SIGINT" not in out:
            problems.append(f"the summary does not say the run was interrupted by SIGINT: "
                            f"{tail(out)}")
        got = [m.get("login_uuid") for m in topic_messages(topic)]
        if len(got) <= 200 or len(got) % size:
            problems.append(f"the topic holds {len(got)} profiles; want more than 200, in whole "
                            f"pages of {size}")
        elif sorted(got) != sorted(want_pages(len(got) // size)):
            problems.append(f"the topic's {len(got)} profiles ({len(set(got))} distinct) are not "
                            f"pages 1-{len(got) // size} of the API once each")
    t.result(f"push_data_to_broker: without COUNT, duration=4 stops the run (SIGINT, exit 0); "
             f"every profile once [{secs:.1f}s]", problems)

    # A variable the pipeline does not use: exit 2, failed without using the retry.
    rc, state, tasks, out, secs = day("2026-03-04", dict(base, NO_SUCH_VARIABLE="1"),
                                      extra={"SLUICE_AIRFLOW_RETRIES": "1",
                                             "SLUICE_AIRFLOW_RETRY_DELAY": "1"})
    problems = []
    if state != "failed" or tasks.get("push_profiles") != "failed":
        problems.append(f"run {state}, tasks {tasks}: want failed: {tail(out)}")
    if not re.search(r"Command exited with return code 2\b", out):
        problems.append(f"sluice did not exit 2: {tail(out)}")
    problems += no_retry(af, "push_data_to_broker", "2026-03-04", out)
    t.result(f"push_data_to_broker: an unused variable (exit 2) fails the task without a retry "
             f"[{secs:.1f}s]", problems)


def report_rows(out_dir):
    """The rows of every Parquet report under out_dir, each with its partition folders."""
    import pyarrow.parquet as pq  # noqa: PLC0415 (the project venv has it)
    rows = []
    for root, dirs, files in os.walk(out_dir):
        dirs[:] = [d for d in dirs if not d.startswith("_")]  # _sluice: state, dead letters
        for name in files:
            if name.endswith(".parquet"):
                rel = os.path.relpath(root, out_dir)
                for r in pq.read_table(os.path.join(root, name)).to_pylist():
                    # Averages to 9 digits: a window carried over a run's end in the state adds
                    # its sums in another order than one run does.
                    rows.append((rel, tuple(sorted(
                        (k, repr(round(v, 9) if isinstance(v, float) else v))
                        for k, v in r.items()))))
    return sorted(rows)


def compare_reports(got_dir, want_dir):
    try:
        got, want = report_rows(got_dir), report_rows(want_dir)
    except (ImportError, OSError) as e:
        return [f"cannot read the Parquet reports: {e}"]
    if got == want:
        return [] if got else ["no report rows at all"]
    gs, ws = set(got), set(want)
    return ([f"{len(got)} report rows vs {len(want)} expected"] +
            [f"unexpected {r}" for r in sorted(gs - ws)[:3]] +
            [f"missing {r}" for r in sorted(ws - gs)[:3]])


def check_viewlog(t, af):
    topic = f"airflow_views_{os.getpid()}_{int(time.time()) % 100000}"
    rc, out = kafka_topics("--create", "--topic", topic, "--partitions", "1",
                           "--replication-factor", "1")
    if rc != 0:
        t.result("viewlog_report: create a 1-partition topic", [f"exit {rc}: {tail(out)}"])
        return
    t.topics.append(topic)
    # One stream of view logs, split in two days.
    views = os.path.join(t.tmp, "views.ndjson")
    # 50 ms of event time apart: 5 minutes, so the watermark closes windows on both days.
    t.sluice("generate", "--profile", "viewlog", "--to", views, "--count", "6000", "--rate",
             "0", "--seed", "21", "--set", "spacing=50ms")
    with open(views, "rb") as f:
        lines = f.readlines()
    days = [os.path.join(t.tmp, "views-day1.ndjson"), os.path.join(t.tmp, "views-day2.ndjson")]
    for path, part in zip(days, (lines[:4000], lines[4000:])):
        with open(path, "wb") as f:
            f.writelines(part)
    out_dir = os.path.join(t.tmp, "reports")
    env = {"AIRFLOW_VAR_SLUICE_BIN": t.args.sluice, "SLUICE_PROJECT_DIR": REPO,
           "AIRFLOW_VAR_SLUICE_VIEWLOG_VARS": json.dumps(
               {"VIEWS": f"kafka://{BROKER}/{topic}", "OUT": f"parquet:{out_dir}",
                "DLQ": os.path.join(t.tmp, "viewlog dead letters.ndjson")})}

    def expected(name, path):
        ref = os.path.join(t.tmp, f"expected-{name}")
        t.sluice("run", VIEWLOG, "--until-caught-up", "--var", f"VIEWS={path}",
                 "--var", f"OUT=parquet:{ref}",
                 "--var", f"DLQ={os.path.join(t.tmp, f'expected-{name}.dlq.ndjson')}")
        return ref

    for i, path in enumerate(days):
        with open(path, "rb") as f:
            p = subprocess.run(["kcat", "-P", "-b", BROKER, "-t", topic, "-p", "0"], stdin=f,
                               capture_output=True, timeout=120)
        if p.returncode != 0:
            t.result("viewlog_report: produce the view logs", [p.stderr.decode()[-800:]])
            return
        rc, state, tasks, out, secs = af.dag_test("viewlog_report", f"2026-04-0{i + 1}",
                                                  extra_env=env)
        problems = []
        n = len(lines[:4000]) if i == 0 else len(lines[4000:])
        if not run_ok(tasks, "report", rc, state):
            problems.append(f"exit {rc}, run {state}, tasks {tasks}: {tail(out)}")
        else:
            if records_in(out) != n:
                problems.append(f"the run read {records_in(out)} view logs, want the {n} new ones")
            if i == 0:
                problems += compare_reports(out_dir, expected("day1", days[0]))
            else:
                problems += compare_reports(out_dir, expected("both", views))
        what = ("Parquet reports == a direct run over the same events" if i == 0 else
                "next day's run reads the new events only; reports == a direct run over both days")
        t.result(f"viewlog_report from Kafka: {what} [{secs:.1f}s]", problems)
        if problems:
            return

    # A runtime failure (exit 1) fails the task after its one retry.
    env_fail = dict(env, SLUICE_AIRFLOW_RETRIES="1", SLUICE_AIRFLOW_RETRY_DELAY="1",
                    AIRFLOW_VAR_SLUICE_VIEWLOG_VARS=json.dumps(
                        {"VIEWS": days[0], "OUT": "parquet:/dev/null/reports"}))
    rc, state, tasks, out, secs = af.dag_test("viewlog_report", "2026-04-05", extra_env=env_fail)
    problems = []
    codes = re.findall(r"Command exited with return code (\d+)", out)
    tries = af.task_tries("viewlog_report", "2026-04-05")
    if state != "failed" or tasks.get("report") != "failed":
        problems.append(f"run {state}, tasks {tasks}: want failed: {tail(out)}")
    if not codes or set(codes) != {"1"}:
        problems.append(f"sluice's exit codes {codes}, want 1: {tail(out)}")
    if tries.get("report", (None, 0))[1] != 2:
        problems.append(f"task tries {tries}, want 2 (the retry of a runtime failure)")
    t.result(f"viewlog_report: a runtime failure (exit 1) is retried, then fails the task "
             f"[{secs:.1f}s]", problems)


def check_kafka(t, af):
    why = None if shutil.which("kcat") else "kcat is not installed (scripts/services.sh up " \
        "kafka installs it)"
    why = why or kafka_missing()
    if why:
        t.skip("push_data_to_broker and viewlog_report (Kafka)", why)
        return
    api = FakeApi(t.args.sluice, os.path.join(t.tmp, "fake-api.log"))
    try:
        check_users_ingest(t, af, api)
    finally:
        api.stop()
    check_viewlog(t, af)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--venv", default=os.path.join(REPO, "build", "airflow-venv"))
    ap.add_argument("--python", default=None, help="interpreter for the venv (default: python3)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary AIRFLOW_HOME")
    args = ap.parse_args()
    args.sluice = os.path.abspath(args.sluice)

    t0 = time.monotonic()
    try:
        airflow = airflow_venv.ensure(args.venv, args.python)
    except (airflow_venv.VenvError, OSError, subprocess.SubprocessError) as e:
        return harness.Checks().missing(f"cannot install Apache Airflow into {args.venv}: {e}")
    print(f"Airflow environment {args.venv} ready in {time.monotonic() - t0:.1f}s", flush=True)

    tmp = tempfile.mkdtemp(prefix="sluice-airflow-")
    t = Test(args, tmp)
    af = Airflow(airflow, os.path.join(tmp, "airflow-home"))
    os.makedirs(af.home)
    try:
        if check_loaded(t, af, os.path.join(args.venv, "bin", "python")):
            tracking = check_generate(t, af)
            if os.path.exists(tracking):
                check_recruitment(t, af, tracking)
            check_failures(t, af)
            check_kafka(t, af)
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        t.result("unexpected error", [str(e)])
    finally:
        if args.keep or t.failed:
            print(f"AIRFLOW_HOME and files kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
        for topic in t.topics:  # with the sink's .sluice-positions and .sluice-dead-letters
            kafka_topics("--delete", "--topic", f"{topic}.*")
    print(f"airflow_test took {time.monotonic() - t0:.1f}s")
    return t.finish()


if __name__ == "__main__":
    sys.exit(main())
