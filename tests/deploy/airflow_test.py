#!/usr/bin/env python3
"""The Airflow DAGs of deploy/airflow/dags/ under real Apache Airflow, running the real sluice.

    airflow_test.py --sluice build/sluice [--venv build/airflow-venv] [--keep]

Airflow comes from PyPI into its own virtual environment (tests/deploy/airflow_venv.py: pinned
by deploy/airflow/requirements.txt and constraints-3.11.txt; a few minutes the first time,
nothing on later runs). Each run uses a fresh AIRFLOW_HOME with a SQLite metadata database and
no server; DAG runs go through `airflow dags test`.

Checks:
  1. `airflow db migrate`; `airflow dags list-import-errors` is empty; both DAGs are loaded with
     their schedule (recruitment_incremental: `0 7 * * *`, catchup off, one BashOperator task);
  2. generate_events with a small count into a file: the task succeeds and the file holds the
     same events as `sluice generate` with the same seed; with a huge count and duration=3 the
     run is stopped after ~3 s and still succeeds;
  3. recruitment_incremental with Variables pointing at the built sluice, the generated file and
     a temporary SQLite sink: the task succeeds and `events` equals a direct `sluice run` of the
     file; more events appended to the file, the next daily run catches up on them only (equal
     to a direct run over the whole file);
  4. sluice failing makes the task fail: a pipeline file that does not exist, and one that
     sluice rejects (exit 2).
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

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import airflow_venv  # noqa: E402

DAGS = os.path.join(REPO, "deploy", "airflow", "dags")
PIPELINE = os.path.join(REPO, "examples", "recruitment.toml")
IN_CI = os.environ.get("CI", "").lower() == "true"
SKIP = 77


def loud(msg):
    bar = "!" * 78
    print(f"{bar}\n{msg}\n{bar}", flush=True)


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


class Test:
    def __init__(self, args, tmp):
        self.args, self.tmp = args, tmp
        self.passed = self.failed = 0
        self.t0 = time.monotonic()

    def result(self, name, problems, notes=()):
        if problems:
            self.failed += 1
        else:
            self.passed += 1
        print(f"{'FAIL' if problems else 'PASS'} {name}  [{time.monotonic() - self.t0:.1f}s]",
              flush=True)
        for n in notes:
            print(f"    note: {n}")
        for p in problems[:25]:
            print(f"    {p}")
        sys.stdout.flush()

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
        "        'tasks': [(t.task_id, type(t).__name__, t.skip_on_exit_code) for t in dag.tasks]}\n"
        "print('PROBE' + json.dumps(out, default=str))\n")
    p = subprocess.run([venv_python, "-c", probe], env=af.env, capture_output=True, text=True,
                       timeout=120)
    m = re.search(r"^PROBE(.*)$", p.stdout, re.M)
    if not m:
        problems.append(f"DagBag probe failed: {tail(p.stdout + p.stderr)}")
    else:
        info = json.loads(m.group(1))
        for dag_id in ("recruitment_incremental", "generate_events"):
            if dag_id not in info:
                problems.append(f"DAG {dag_id} not loaded (loaded: {sorted(info)})")
        ri = info.get("recruitment_incremental", {})
        if ri.get("schedule") != "0 7 * * *":
            problems.append(f"recruitment_incremental schedule {ri.get('schedule')!r}, "
                            "want '0 7 * * *'")
        if ri.get("catchup") is not False:
            problems.append("recruitment_incremental: catchup is not off")
        if [x[:2] for x in ri.get("tasks", [])] != [["run_until_caught_up", "BashOperator"]]:
            problems.append(f"recruitment_incremental tasks {ri.get('tasks')}, want one "
                            "BashOperator")
        for dag_id, d in info.items():
            for task_id, _, skip in d["tasks"]:
                if skip not in (None, [], "None"):
                    problems.append(f"{dag_id}.{task_id}: skip_on_exit_code={skip} (a non-zero "
                                    "exit must fail the task, not skip it)")
    t.result("DAGs import without errors; schedule 0 7 * * *, catchup off, one BashOperator",
             problems)
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
    env = {"AIRFLOW_VAR_SLUICE_BIN": t.args.sluice}
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
        t.result(f"recruitment_incremental fails when sluice fails: {what} [{secs:.1f}s]",
                 problems)


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
        if IN_CI:
            print(f"FAIL installing Apache Airflow (CI=true): {e}")
            print("0 passed, 1 failed")
            return 1
        loud(f"SKIP airflow_test: cannot install Apache Airflow into {args.venv}: {e}")
        return SKIP
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
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        t.result("unexpected error", [str(e)])
    finally:
        if args.keep or t.failed:
            print(f"AIRFLOW_HOME and files kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"airflow_test took {time.monotonic() - t0:.1f}s")
    print(f"{t.passed} passed, {t.failed} failed")
    return 1 if t.failed else 0


if __name__ == "__main__":
    sys.exit(main())
