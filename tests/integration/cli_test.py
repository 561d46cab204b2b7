#!/usr/bin/env python3
"""Command-line behaviour of the sluice binary: validate, error reporting, exit codes, variables,
paths, demo, generate. Expected values are written here by hand from the documented contract
(README.md, "Exit codes" and "Variables and paths").

Every command runs with the binary copied out of the build tree and from a working directory that
is not the repository, as an installed sluice runs: nothing may depend on either."""
import argparse
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLES = os.path.join(REPO, "examples")
RECRUITMENT = os.path.join(EXAMPLES, "recruitment.toml")
JOBS = os.path.join(EXAMPLES, "data", "job.csv")
sys.path.insert(0, os.path.join(REPO, "tests", "tools"))
import harness  # noqa: E402

T = harness.Checks()
check = T.check


def same(x, y):
    try:
        return open(x, "rb").read() == open(y, "rb").read()
    except OSError:
        return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sluice", required=True)
    built = os.path.abspath(ap.parse_args().sluice)
    tmp = tempfile.mkdtemp(prefix="sluice_cli_")
    os.makedirs(os.path.join(tmp, "bin"))
    sluice = os.path.join(tmp, "bin", "sluice")
    shutil.copy2(built, sluice)
    work = os.path.join(tmp, "work")  # the working directory of every run
    os.makedirs(work)

    def run(args, cwd=work, env=None, timeout=60):
        return harness.run_captured(args, timeout, cwd=cwd, env=env)

    def path(name):
        return os.path.join(tmp, name)

    with open(RECRUITMENT) as f:
        text = f.read()
    lines = text.split("\n")
    gen = ["--var", "TRACKING=generator:", "--var", "RATE=0"]

    # ---- validate: the plan, and each variable with where its value came from -------------------
    r = run([sluice, "validate", RECRUITMENT, "--var", "TRACKING=generator:"],
            env={"SINK": "sqlite:" + path("env.db")})
    check("validate prints the plan and ok", r.returncode == 0 and "aggregate tumbling 3600s" in r.stdout
          and r.stdout.strip().endswith("ok"), r)
    check("validate names each variable's origin: --var, environment, default",
          'TRACKING = "generator:" (--var)' in r.stdout
          and f'SINK = "sqlite:{path("env.db")}" (environment)' in r.stdout
          and 'JOBS = "data/job.csv" (default)' in r.stdout, r)
    check("validate shows the default path resolved against the pipeline file's folder",
          f"dimension job: {JOBS}, " in r.stdout, r)
    r = run([sluice, "run", RECRUITMENT, *gen, "--var", "COUNT=500", "--var", "SINK=sqlite:" + path("vars.db")])
    check("run logs each variable's origin", r.returncode == 0
          and 'variable COUNT = "500" (--var)' in r.stderr and 'variable START = "2026-01-01T00:00:00Z" (default)' in r.stderr, r)

    # ---- nothing runs on a guess -------------------------------------------------------------------
    typo_db = path("typo.db")
    for command in ("run", "validate"):
        r = run([sluice, command, RECRUITMENT, "--var", "TRACKNG=tracking.csv", "--var", "SINK=sqlite:" + typo_db,
                 "--var", "COUNT=2000", "--var", "RATE=0"])
        check(f"{command}: a --var the pipeline does not reference -> exit 2 with a did-you-mean",
              r.returncode == 2 and "TRACKNG" in r.stderr and "did you mean TRACKING?" in r.stderr
              and not os.path.exists(typo_db), r)
    r = run([sluice, "run", RECRUITMENT, "--var", "SINK=sqlite:" + typo_db, "--var", "COUNT=2000", "--var", "RATE=0"])
    check("the recruitment pipeline needs TRACKING: no synthetic fallback",
          r.returncode == 2 and "TRACKING" in r.stderr and "not set" in r.stderr and not os.path.exists(typo_db), r)
    for example in ("viewlog.toml", "ysb.toml"):
        r = run([sluice, "validate", os.path.join(EXAMPLES, example)])
        check(f"{example}: its input is required, not a generator default",
              r.returncode == 2 and "is not set" in r.stderr, r)

    # ---- pipeline file errors: file:line:column, exit 2, never a crash ----------------------------
    r = run([sluice, "run", path("no-such-pipeline.toml")])
    check("a pipeline file that does not exist -> exit 2 naming it",
          r.returncode == 2 and "no-such-pipeline.toml" in r.stderr, r)
    r = run([sluice, "run", RECRUITMENT, "--no-such-option"])
    check("an unknown option -> exit 2", r.returncode == 2, r)

    bad = path("bad.toml")
    at = lines.index('[pipeline]') + 1
    with open(bad, "w") as f:
        f.write("\n".join(lines[:at] + ['nmae = "typo"'] + lines[at:]))
    r = run([sluice, "validate", bad, "--var", "TRACKING=generator:", "--var", "SINK=sqlite:x.db"])
    check("unknown key -> exit 2 with file:line", r.returncode == 2 and f"{bad}:{at + 1}:" in r.stderr
          and "unknown key 'nmae'" in r.stderr, r)

    i = next(k for k, l in enumerate(lines) if l.startswith('ignore_if = "job_id is null"'))
    with open(bad, "w") as f:
        f.write("\n".join(lines[:i] + ['ignore_if = "job_id + 1"'] + lines[i + 1:]))
    r = run([sluice, "validate", bad, "--var", "TRACKING=generator:", "--var", "SINK=sqlite:x.db", "--var", "JOBS=" + JOBS])
    check("non-boolean condition -> exit 2 with file:line:col", r.returncode == 2 and f"{bad}:{i + 1}:" in r.stderr, r)

    # Issue 14, item 1: a step without its expression crashed (exit 139).
    base = '[pipeline]\nname = "p"\n[source]\nuri = "generator:"\nfields = { a = "int64" }\n'
    for name, step, want in (("let without expr", '[[step]]\nlet = "x"\n', "let needs expr"),
                             ("lookup without key", '[[step]]\nlookup = "job"\nfields = ["a"]\n', "lookup needs key")):
        p = path("step.toml")
        with open(p, "w") as f:
            f.write(base + step + '[sink]\nuri = "sqlite:s.db"\n')
        for command in ("validate", "run"):
            r = run([sluice, command, p])
            check(f"{command}: {name} -> exit 2 at file:line:col", r.returncode == 2
                  and f"{p}:6:1:" in r.stderr and want in r.stderr, r)

    # Issue 14, item 7: a dimension that cannot be loaded, at the setting that names it.
    dim_line = next(k for k, l in enumerate(lines) if l.startswith('uri = "${JOBS')) + 1
    r = run([sluice, "validate", RECRUITMENT, *gen, "--var", "SINK=sqlite:x.db", "--var", "JOBS=" + path("nojobs.csv")])
    check("a dimension that cannot be loaded -> exit 2 at file:line:col of its uri",
          r.returncode == 2 and f"{RECRUITMENT}:{dim_line}:8: dimension job:" in r.stderr and "nojobs.csv" in r.stderr, r)

    # ---- one check path: validate rejects what run rejects -----------------------------------------
    pq_pipe, pq_dir = path("pq.toml"), path("pq-out")
    with open(pq_pipe, "w") as f:
        f.write(base.replace('a = "int64"', 'a = "int64", ts = "timestamp"')
                + '[aggregate]\ntime = "ts"\nwindow = "1m"\nkeys = ["a"]\nmetrics = ["n = count()"]\n'
                f'[sink]\nuri = "parquet:{pq_dir}"\n')
    rv = run([sluice, "validate", pq_pipe])
    rr = run([sluice, "run", pq_pipe])
    want = 'needs [aggregate] mode = "append"'
    check("validate rejects an update-mode pipeline into parquet: (exit 2)", rv.returncode == 2 and want in rv.stderr, rv)
    check("run rejects it the same way, before touching the sink", rr.returncode == 2 and want in rr.stderr
          and not os.path.exists(pq_dir), rr)

    # The MySQL sink's column_types are checked without a connection (nothing listens on port 1).
    ct = path("coltypes.toml")
    with open(ct, "w") as f:
        f.write(re.sub(r'(?m)^column_types = .*$', 'column_types = "nosuch:INT"', text))
    for command in ("validate", "run"):
        r = run([sluice, command, ct, *gen, "--var", "JOBS=" + JOBS, "--var", "SINK=mysql://root@127.0.0.1:1/db"],
                timeout=30)
        check(f"{command}: a sink setting that cannot fit the output -> exit 2 without connecting",
              r.returncode == 2 and "column_types names column nosuch" in r.stderr, r)

    # A Cassandra table without a key is refused by validate too, without connecting.
    cq = path("cassandra.toml")
    with open(cq, "w") as f:
        f.write(base + '[sink]\nuri = "cassandra://127.0.0.1:1/ks"\ntable = "t"\n')
    r = run([sluice, "validate", cq], timeout=30)
    check("validate: a Cassandra sink without a key -> exit 2 without connecting",
          r.returncode == 2 and "needs a primary key" in r.stderr, r)

    # ---- exit codes ----------------------------------------------------------------------------------
    r = run([sluice, "run", RECRUITMENT, *gen, "--var", "COUNT=2000", "--var", "SINK=sqlite:" + path("done.db")])
    check("exit 0: a bounded input ends", r.returncode == 0 and "recruitment: 2,000 records in" in r.stdout, r)

    log = open(path("sigterm.log"), "w")
    p = subprocess.Popen([sluice, "run", RECRUITMENT, "--var", "TRACKING=generator:", "--var", "RATE=2000",
                          "--var", "SINK=sqlite:" + path("sigterm.db")], cwd=work, stdout=log, stderr=log)
    deadline = time.time() + 20
    while time.time() < deadline and not os.path.exists(path("sigterm.db")):
        time.sleep(0.1)
    time.sleep(1.5)
    rc = harness.stop(p)
    log.close()
    check("exit 0: SIGTERM drains, checkpoints and stops cleanly", rc == 0, f"rc={rc} " + open(path("sigterm.log")).read()[-800:])

    r = run([sluice, "run", RECRUITMENT, "--var", "TRACKING=" + path("missing.csv"), "--var", "SINK=sqlite:" + path("x.db")])
    check("exit 2: missing input file, named", r.returncode == 2 and "missing.csv" in r.stderr, r)
    os.makedirs(path("adir.csv"))
    r = run([sluice, "run", RECRUITMENT, "--var", "TRACKING=" + path("adir.csv"), "--var", "SINK=sqlite:" + path("x.db")],
            timeout=30)
    check("exit 2: a source path that is a directory fails at start", r.returncode == 2 and "is a directory" in r.stderr, r)
    r = run([sluice, "run", RECRUITMENT, "--var", "NOEQUALS"])
    check("exit 2: --var without =", r.returncode == 2 and "NAME=VALUE" in r.stderr, r)

    # A runtime failure (the sink's table has other columns) exits 1, not 2, and the run says so
    # once: no success-shaped summary, no error printed twice.
    clash = path("clash.db")
    con = sqlite3.connect(clash)
    con.execute("CREATE TABLE events (x INTEGER)")
    con.commit()
    con.close()
    r = run([sluice, "run", RECRUITMENT, *gen, "--var", "COUNT=100", "--var", "SINK=sqlite:" + clash])
    check("exit 1: a sink failure at run time", r.returncode == 1 and "has columns (x)" in r.stderr, r)
    check("a failed run prints no summary, names the pipeline, reports the error once",
          "records in" not in r.stdout and r.stderr.count("has columns (x)") == 1
          and "pipeline recruitment failed after" in r.stderr, r)
    headers = path("headers.csv")
    with open(headers, "w") as f:
        f.write("foo,bar\n1,2\n")
    r = run([sluice, "run", RECRUITMENT, "--var", "TRACKING=" + headers, "--var", "SINK=sqlite:" + path("h.db")])
    check("exit 1: a source failure at run time, reported once",
          r.returncode == 1 and r.stderr.count("CSV columns missing") == 1 and "records in" not in r.stdout, r)

    # ---- paths: the file's own against its folder, variables against the working directory --------
    pipes = path("pipes")
    os.makedirs(os.path.join(pipes, "data"))
    shutil.copy(RECRUITMENT, pipes)
    with open(JOBS) as f:
        job_lines = f.read().splitlines()
    with open(os.path.join(pipes, "data", "job.csv"), "w") as f:
        f.write("\n".join(job_lines[:11]) + "\n")  # the header and 10 jobs
    r = run([sluice, "generate", "--to", "events.ndjson", "--count", "300", "--rate", "0", "--jobs", JOBS])
    r = run([sluice, "run", os.path.join(pipes, "recruitment.toml"), "--var", "TRACKING=events.ndjson",
             "--var", "SINK=sqlite:rel.db"])
    check("a default path in the file resolves against the file's folder, --var paths against the "
          "working directory", r.returncode == 0 and os.path.exists(os.path.join(work, "rel.db"))
          and "dimension job: 10 keys from " + os.path.join(pipes, "data", "job.csv") in r.stderr
          and "300 records in" in r.stdout, r)

    # ---- generate == generator source (same seed) ---------------------------------------------------
    gen_file = path("gen.ndjson")
    r = run([sluice, "generate", "--to", gen_file, "--count", "3000", "--rate", "0", "--seed", "5", "--jobs", JOBS])
    check("generate to a file", r.returncode == 0 and sum(1 for _ in open(gen_file)) == 3000, r)

    def table(db):
        con = sqlite3.connect(db)
        rows = con.execute("SELECT job_id, dates, hours, publisher_id, campaign_id, group_id, company_id, "
                           "clicks, bid_set, spend_hour, conversion, qualified_application, "
                           "disqualified_application, latest_update_time FROM events ORDER BY 1,2,3,4,5,6").fetchall()
        con.close()
        return rows

    # Without --jobs (or the ysb ads), generate uses the copy of examples/data/ built into the
    # binary: from any directory, the same events as naming the shipped file.
    for profile, setting in (("recruitment", ["--jobs", JOBS]),
                             ("ysb", ["--set", "campaigns=" + os.path.join(EXAMPLES, "data", "ysb_ads.csv")])):
        named, built_in = path(profile + "-named.ndjson"), path(profile + "-builtin.ndjson")
        common = ["generate", "--profile", profile, "--count", "500", "--rate", "0", "--seed", "9"]
        r1 = run([sluice, *common, "--to", named, *setting])
        r2 = run([sluice, *common, "--to", built_in])
        check(f"generate --profile {profile} needs no source tree (built-in data == the shipped file)",
              r1.returncode == 0 and r2.returncode == 0 and same(named, built_in) and os.path.getsize(named) > 0,
              f"{r1}\n{r2}")

    a, b = path("a.db"), path("b.db")
    r1 = run([sluice, "run", RECRUITMENT, "--var", "TRACKING=" + gen_file, "--var", "SINK=sqlite:" + a])
    # The toml's generator seed is 7; pass the file's seed through a copy of the pipeline.
    seed5 = path("seed5.toml")
    with open(seed5, "w") as f:
        f.write(text.replace("seed = 7", "seed = 5"))
    r2 = run([sluice, "run", seed5, *gen, "--var", "COUNT=3000", "--var", "JOBS=" + JOBS, "--var", "SINK=sqlite:" + b])
    ta, tb = (table(a), table(b)) if r1.returncode == 0 and r2.returncode == 0 else ([], [1])
    check("generate == generator source (same seed)", len(ta) > 100 and ta == tb,
          "%d vs %d rows; %s %s" % (len(ta), len(tb), r1, r2))

    # ---- the demo: self-contained, from any directory, says where and what -------------------------
    r = run([sluice, "demo", "--duration", "2", "--rate", "5000", "--no-http", "--dir", "demo"])
    demo_dir = os.path.join(work, "demo")
    demo_db = os.path.join(demo_dir, "recruitment.db")
    rows = sqlite3.connect(demo_db).execute("SELECT COUNT(*), SUM(clicks) FROM events").fetchone() \
        if os.path.exists(demo_db) else (0, 0)
    check("demo runs from another directory with a copied binary, stops after --duration, leaves results",
          r.returncode == 0 and rows[0] > 0 and (rows[1] or 0) > 0, f"{r} rows={rows}")

    check("demo writes its built-in pipeline and job dimension under the directory it names",
          same(os.path.join(demo_dir, "recruitment.toml"), RECRUITMENT)
          and same(os.path.join(demo_dir, "data", "job.csv"), JOBS)
          and f"writing under {os.path.realpath(demo_dir)}" in r.stdout.replace(work, os.path.realpath(work)), r)
    check("demo says it generates synthetic events", "synthetic" in r.stdout and "generator" in r.stdout, r)

    r = run([sluice, "version"])
    check("version", r.returncode == 0 and r.stdout.startswith("sluice "), r)

    shutil.rmtree(tmp, ignore_errors=True)
    return T.finish()


if __name__ == "__main__":
    sys.exit(main())
