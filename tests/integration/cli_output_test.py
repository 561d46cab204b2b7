#!/usr/bin/env python3
"""What `sluice run` tells about itself, and the multi-file `validate` and `init`:

  progress     a log line every --progress-interval when stderr is not a terminal (percent of
               the file, bytes, records/s), a live bar when it is (under a pty)
  summary      done / interrupted by SIGTERM at X% / nothing new since a position, ignored
               records by reason, where the output went; --summary-json FILE and -; --quiet
  json logs    under --log-format json every stdout and stderr line of a normal, a SIGTERM'd
               and a failing run is one JSON object
  validate     several files, the same --var set for each, "unused" judged over all of them
  init         a skeleton for each source/sink pair that validate accepts, and that runs

Expected values come from the input files, counted here (line counts, file sizes, the ignore
rules of examples/recruitment.toml applied in Python), never from sluice's output."""
import argparse
import glob
import json
import os
import pty
import re
import select
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLES = os.path.join(REPO, "examples")
RECRUITMENT = os.path.join(EXAMPLES, "recruitment.toml")
JOBS = os.path.join(EXAMPLES, "data", "job.csv")
COUNTED = {"click", "conversion", "qualified", "unqualified"}
sys.path.insert(0, os.path.join(REPO, "tests", "tools"))
import harness  # noqa: E402

T = harness.Checks()
check = T.check


def expected_counts(path):
    """Records, and ignored records by reason, by the [[step]] rules of recruitment.toml."""
    n = 0
    ignored = {"custom_track not counted": 0, "blank job_id": 0}
    with open(path) as f:
        for line in f:
            n += 1
            d = json.loads(line)
            if d.get("custom_track") not in COUNTED:
                ignored["custom_track not counted"] += 1
            elif d.get("job_id") in (None, ""):
                ignored["blank job_id"] += 1
    return n, ignored


def json_lines(text):
    """Parses each non-empty line; returns (objects, lines that are not a JSON object)."""
    objs, bad = [], []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            o = json.loads(line)
            (objs if isinstance(o, dict) else bad).append(o if isinstance(o, dict) else line)
        except ValueError:
            bad.append(line)
    return objs, bad


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sluice", required=True)
    sluice = os.path.abspath(ap.parse_args().sluice)
    tmp = tempfile.mkdtemp(prefix="sluice_cli_output_")

    def path(name):
        return os.path.join(tmp, name)

    def run(args, env=None, timeout=120):
        return harness.run_captured(args, timeout, cwd=tmp, env=env, tail=900)

    def sigterm_run(args, wait_for, log_name):
        """Starts `args`, waits until stderr has a line matching `wait_for`, sends SIGTERM."""
        err_path, out_path = path(log_name + ".err"), path(log_name + ".out")
        with open(err_path, "w") as err, open(out_path, "w") as out:
            p = subprocess.Popen(args, cwd=tmp, stdout=out, stderr=err)
            deadline = time.time() + 60
            seen = False
            while time.time() < deadline and p.poll() is None:
                if re.search(wait_for, open(err_path).read()):
                    seen = True
                    break
                time.sleep(0.02)
            rc = harness.stop(p, signal.SIGTERM if seen else None)
        return seen, harness.Ran(rc, open(out_path).read(), open(err_path).read(), tail=900)

    small = path("small.ndjson")
    r = run([sluice, "generate", "--to", small, "--count", "5000", "--rate", "0", "--seed", "3", "--jobs", JOBS])
    big = path("big.ndjson")
    r = run([sluice, "generate", "--to", big, "--count", "400000", "--rate", "0", "--seed", "4", "--jobs", JOBS],
            timeout=300)
    check("generate the inputs", r.returncode == 0 and os.path.exists(small) and os.path.exists(big), r)
    small_n, small_ignored = expected_counts(small)
    big_n, _ = expected_counts(big)
    small_size, big_size = os.path.getsize(small), os.path.getsize(big)

    def base(src, db, *more, pipeline=RECRUITMENT):
        return [sluice, "run", pipeline, "--var", "TRACKING=" + src, "--var", "JOBS=" + JOBS,
                "--var", "SINK=sqlite:" + db, *more]

    # Workers report their positions with each checkpoint: the runs that are stopped mid-file
    # checkpoint every 50 ms, so a fast machine still shows a file partly read.
    frequent = path("recruitment-frequent.toml")
    with open(RECRUITMENT) as f:
        text = f.read()
    assert 'checkpoint_interval = "1s"' in text
    with open(frequent, "w") as f:
        f.write(text.replace('checkpoint_interval = "1s"', 'checkpoint_interval = "50ms"'))

    # ---- the text summary and --summary-json ---------------------------------------------------
    sj = path("summary.json")
    r = run(base(small, path("s.db"), "--summary-json", sj))
    lines = r.stdout.strip().splitlines()
    check("summary: done, the file read to its end with its size",
          r.returncode == 0 and lines and lines[0].startswith(f"recruitment: {small_n:,} records in ")
          and f"done, read {small} to its end ({small_size:,} bytes)" in lines[0], r)
    reasons = ", ".join(f"{k}: {v:,}" for k, v in small_ignored.items() if v)
    check("summary: ignored records with their count by reason",
          f"{sum(small_ignored.values()):,} ignored ({reasons})" in r.stdout, f"want ({reasons})\n{r}")
    check("summary: where the output went, rows upserted (not 'rows written')",
          re.search(r"output: sqlite:" + re.escape(path("s.db")) + r" table events: [\d,]+ rows upserted \([\d,]+ inserted, [\d,]+ updated\) in [\d,]+ checkpoints?",
                    r.stdout) and "rows written" not in r.stdout, r)
    # Inserted vs updated, against the table itself: a first run into a new table inserts
    # exactly the rows it holds, and the upserts beyond them were updates.
    m = re.search(r"([\d,]+) rows upserted \(([\d,]+) inserted, ([\d,]+) updated\)", r.stdout)
    con = sqlite3.connect(path("s.db"))
    table_rows = con.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    con.close()
    nums = [int(x.replace(",", "")) for x in m.groups()] if m else None
    check("summary: rows inserted = the rows in the new table, updated = the other upserts",
          nums is not None and nums[1] == table_rows and nums[0] == nums[1] + nums[2],
          f"{nums} vs {table_rows} rows in the table\n{r}")
    try:
        s = json.load(open(sj))
    except (OSError, ValueError) as e:
        s = {"error": str(e)}
    check("--summary-json FILE: the same facts as JSON",
          s.get("event") == "summary" and s.get("outcome") == "done" and s.get("exit_code") == 0
          and s.get("records_in") == small_n and s.get("total_bytes") == small_size
          and s.get("position") == small_size and abs(s.get("percent", 0) - 100.0) < 1e-9
          and s.get("ignored_by_reason") == small_ignored and s.get("ignored") == sum(small_ignored.values())
          and s.get("sink") == "sqlite:" + path("s.db") and s.get("table") == "events"
          and isinstance(s.get("rows_upserted"), int), s)
    con = sqlite3.connect(path("s.db"))
    rows = con.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    con.close()
    check("rows_upserted counts upserts: at least the table's rows", s.get("rows_upserted", -1) >= rows > 0,
          f"rows={rows} {s}")

    # A re-run with nothing new says so, and from where.
    r = run(base(small, path("s.db"), "--summary-json", "-"))
    objs, bad = json_lines(r.stdout)
    check("re-run: --summary-json - is the only thing on stdout", r.returncode == 0 and len(objs) == 1 and not bad, r)
    s = objs[0] if objs else {}
    check("re-run: outcome nothing_new at the end of the file",
          s.get("outcome") == "nothing_new" and s.get("records_in") == 0 and s.get("position") == small_size, s)
    r = run(base(small, path("s.db")))
    check("re-run: the text summary says nothing new since the file's end",
          r.returncode == 0 and f"nothing new since byte {small_size:,} of {small}" in r.stdout, r)

    # --quiet: nothing on stdout, no info lines; the JSON summary is still written.
    q = path("quiet.json")
    r = run(base(small, path("q.db"), "--quiet", "--summary-json", q))
    check("--quiet: empty stdout and stderr on a clean run, the summary file written",
          r.returncode == 0 and r.stdout == "" and r.stderr == "" and json.load(open(q)).get("records_in") == small_n, r)
    r = run(base(small, path("q2.db"), "--quiet", "--summary-json", path("no/such/dir/x.json")))
    check("--summary-json to a path that cannot be written: exit 2 before the run",
          r.returncode == 2 and "--summary-json: cannot write" in r.stderr and not os.path.exists(path("q2.db")), r)

    # ---- progress lines in logs (stderr is not a terminal) ------------------------------------------
    # SIGTERM once a progress line shows the file partly read (a fast machine may read the whole
    # file before the first line: then another try on a fresh sink).
    for attempt in range(4):
        db = path(f"big{attempt}.db")
        seen, r = sigterm_run(base(big, db, "--progress-interval", "0.02", "--workers", "1",
                                   "--summary-json", path("big.json"), pipeline=frequent),
                              r"progress recruitment: \d{1,2}\.\d% of ", "big")
        try:
            done_at = json.load(open(path("big.json"))).get("position")
        except (OSError, ValueError):
            done_at = None
        # The source reads ahead of the aggregation: a signal may land after the whole file was
        # read (an honest "interrupted at 100.0%"); try again for one that lands mid-file.
        if seen and done_at != big_size:
            break
    if done_at == big_size:
        print("     NOTE: every SIGTERM landed after the whole file was read", flush=True)
    # (lines before the first read have no position yet)
    progress = [l for l in r.stderr.splitlines() if "progress recruitment:" in l and "%" in l]
    check("progress lines: percent of the file, its size with separators, records/s, ETA",
          seen and progress and all(re.search(
              r"progress recruitment: [\d.]+% of " + re.escape(big) + r" \([\d,]+ of " + f"{big_size:,}" +
              r" bytes\), [\d,]+ records \([\d,]+/s\)", l) for l in progress)
          and any("ETA" in l for l in progress), r)
    try:
        s = json.load(open(path("big.json")))
    except (OSError, ValueError) as e:
        s = {"error": str(e)}
    pct = s.get("position", -1) / big_size * 100
    check("SIGTERM: exit 0, summary says interrupted by SIGTERM at the file's percent",
          r.returncode == 0 and s.get("outcome") == "interrupted" and s.get("signal") == "SIGTERM"
          and 0 < s.get("position", -1) <= big_size and abs(s.get("percent", -1) - pct) < 1e-3
          and f"interrupted by SIGTERM at {pct:.1f}% of {big}" in r.stdout, f"{s}\n{r}")
    first = s.get("records_in", 0)
    r = run(base(big, db, "--summary-json", path("big2.json"), pipeline=frequent))
    s2 = json.load(open(path("big2.json"))) if os.path.exists(path("big2.json")) else {}
    check("the re-run continues where the interrupted one stopped: their records add up to the file's",
          r.returncode == 0 and s2.get("outcome") == "done" and first + s2.get("records_in", 0) == big_n,
          f"first={first} second={s2.get('records_in')} lines={big_n}")

    # ---- --log-format json: every line of every kind of run is one JSON object ---------------------
    def all_json(name, res, need_summary):
        eo, eb = json_lines(res.stderr)
        oo, ob = json_lines(res.stdout)
        ok = not eb and not ob and eo
        if need_summary:
            ok = ok and len(oo) == 1 and oo[0].get("event") == "summary"
        check(f"--log-format json, {name}: every stdout/stderr line is a JSON object", ok,
              f"bad stderr: {eb[:3]} bad stdout: {ob[:3]}\n{res}")
        return eo, oo

    r = run(base(small, path("j.db"), "--log-format", "json", "--progress-interval", "0.01"))
    eo, oo = all_json("a normal run", r, True)
    check("json: log lines carry the pipeline; the summary the counts",
          r.returncode == 0 and all(o.get("pipeline") == "recruitment" for o in eo)
          and oo and oo[0].get("records_in") == small_n and oo[0].get("ignored_by_reason") == small_ignored, r)
    seen, r = sigterm_run(base(big, path("jbig.db"), "--log-format", "json", "--progress-interval", "0.05",
                               "--workers", "1", pipeline=frequent), r'"event":"progress".*"percent":\d{1,2}\.', "jbig")
    eo, oo = all_json("a SIGTERM'd run", r, True)
    # (a line before the first read has no position yet)
    prog = [o for o in eo if o.get("event") == "progress" and "position" in o]
    sig = [o for o in eo if o.get("event") == "signal"]
    check("json: progress lines have the facts as fields; the signal notice is an object",
          seen and prog and all(isinstance(o.get("records_in"), int) and o.get("total_bytes") == big_size
                                and isinstance(o.get("percent"), float) and isinstance(o.get("partitions"), list)
                                for o in prog)
          and len(sig) == 1 and sig[0].get("signal") == "SIGTERM" and sig[0].get("draining") is True
          and oo and oo[0].get("outcome") == "interrupted", r)
    clash = path("clash.db")
    con = sqlite3.connect(clash)
    con.execute("CREATE TABLE events (x INTEGER)")
    con.commit()
    con.close()
    r = run(base(small, clash, "--log-format", "json", "--summary-json", path("fail.json")))
    eo, _ = json_lines(r.stderr)
    check("json: a failing run exits 1, its error is a JSON object",
          r.returncode == 1 and not json_lines(r.stdout)[1] and any(o.get("level") == "error" and "has columns (x)" in o.get("message", "")
                                                                    for o in eo)
          and not json_lines(r.stderr)[1], r)
    f = json.load(open(path("fail.json"))) if os.path.exists(path("fail.json")) else {}
    check("--summary-json of a failed run: outcome failed, exit_code 1, the error",
          f.get("outcome") == "failed" and f.get("exit_code") == 1 and "has columns (x)" in f.get("error", ""), f)

    # ---- the live bar on a terminal (a pty as stderr) ------------------------------------------------
    master, slave = pty.openpty()
    p = subprocess.Popen(base(big, path("tty.db"), "--workers", "1"), cwd=tmp, stdout=subprocess.PIPE,
                         stderr=slave, stdin=subprocess.DEVNULL)
    os.close(slave)
    tty = b""
    while True:
        ready, _, _ = select.select([master], [], [], 60)
        if not ready:
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        tty += chunk
    out = p.stdout.read().decode()
    p.wait(timeout=60)
    os.close(master)
    text = tty.decode("utf-8", "replace")
    bars = re.findall(r"\r\x1b\[Krecruitment \[[#.]{24}\] ([\d.]+)% [\d.]+ [KMG]?B/[\d.]+ [KMG]?B [\d,]+ records [\d,]+ rec/s", text)
    check("tty: a live bar redrawn in place with %, bytes, records/s, then erased",
          p.returncode == 0 and bars and text.endswith("\r\x1b[K") or (bars and "\r\x1b[K" in text[-20:]),
          repr(text[-600:]))
    check("tty: the bar's percent only grows; the summary stays on stdout",
          bars == sorted(bars, key=float) and f"recruitment: {big_n:,} records in" in out, repr(text[-300:]) + out)
    r = run(base(small, path("nontty.db")))
    check("not a terminal: no bar, no escape codes", "\x1b[K" not in r.stderr and "[#" not in r.stderr, r)

    # ---- validate several files ----------------------------------------------------------------------
    files = sorted(glob.glob(os.path.join(EXAMPLES, "*.toml")))
    common = ["--var", "TRACKING=generator:", "--var", "SINK=sqlite:" + path("v.db"), "--var", "VIEWS=generator:",
              "--var", "OUT=parquet:" + path("pq"), "--var", "EVENTS=generator:"]
    r = run([sluice, "validate", *files, *common])
    check("validate examples/*.toml: each file reported ok, exit 0",
          r.returncode == 0 and all(f in r.stdout for f in files)
          and f"{len(files)} files: {len(files)} ok, 0 failed" in r.stdout, r)
    bad = path("bad.toml")
    with open(bad, "w") as fh:
        fh.write('[pipeline]\nname = "bad"\nnosuchkey = 1\n')
    r = run([sluice, "validate", files[0], bad, *common])
    check("validate: one bad file among several -> exit 2, the others still checked",
          r.returncode == 2 and "2 files: 1 ok, 1 failed" in r.stdout and "nosuchkey" in r.stderr, r)
    r = run([sluice, "validate", *files, *common, "--var", "TRACKNG=x"])
    check("validate: a --var no file references -> exit 2 with a did-you-mean over all files",
          r.returncode == 2 and f"--var TRACKNG: none of the {len(files)} files references ${{TRACKNG}} (did you mean TRACKING?)"
          in r.stderr, r)
    r = run([sluice, "validate", RECRUITMENT, *common])
    check("validate: one file keeps the one-file unused --var check", r.returncode == 2 and "does not reference" in r.stderr, r)

    # ---- init ---------------------------------------------------------------------------------------
    open(path("events.ndjson"), "w").close()  # a file source must exist to validate
    pairs = [("events.ndjson", "sqlite:out.db"), ("events.ndjson", "parquet:out"),
             ("kafka://127.0.0.1:9092/t", "mysql://root@127.0.0.1:3306/db"), ("events.ndjson", "kafka://127.0.0.1:9092/out"),
             ("events.ndjson", "cassandra://127.0.0.1:9042/init_ks"), ("events.ndjson", "stdout:"),
             ("events.ndjson", "ndjson:" + path("out.ndjson"))]
    for src, snk in pairs:
        out_file = path("init-" + re.sub(r"\W", "_", src + snk) + ".toml")
        r = run([sluice, "init", "--source", src, "--sink", snk, "-o", out_file])
        v = run([sluice, "validate", out_file])
        check(f"init --source {src} --sink {snk}: a commented file validate accepts",
              r.returncode == 0 and v.returncode == 0 and v.stdout.strip().endswith("ok")
              and open(out_file).read().count("\n# ") >= 5, f"{r}\n{v}")
    r = run([sluice, "init", "--source", "a.ndjson", "--sink", "sqlite:x.db", "-o", out_file])
    check("init: an existing file is not overwritten without --force -> exit 2",
          r.returncode == 2 and "exists" in r.stderr, r)
    r = run([sluice, "init", "--source", "a.ndjson"])
    check("init: --sink is required -> exit 2", r.returncode == 2, r)
    # The skeleton runs: its aggregate over a small input equals the sums computed here.
    data = path("init.ndjson")
    recs = [{"key": "a", "ts": "2026-01-01T00:10:00Z", "value": 1.5},
            {"key": "a", "ts": "2026-01-01T00:20:00Z", "value": 2.5},
            {"key": "b", "ts": "2026-01-01T01:05:00Z", "value": 4},
            {"key": None, "ts": "2026-01-01T01:05:00Z", "value": 9},
            {"key": "c", "ts": "not a time", "value": 9}]
    with open(data, "w") as fh:
        fh.writelines(json.dumps(x) + "\n" for x in recs)
    skel = path("skel.toml")
    run([sluice, "init", "--source", data, "--sink", "sqlite:" + path("skel.db"), "-o", skel])
    r = run([sluice, "run", skel, "--summary-json", path("skel.json")])
    got = []
    if os.path.exists(path("skel.db")):
        con = sqlite3.connect(path("skel.db"))
        got = sorted(con.execute("SELECT key, events, total FROM events").fetchall())
        con.close()
    s = json.load(open(path("skel.json"))) if os.path.exists(path("skel.json")) else {}
    check("the init skeleton runs: rows per key and hour, the null key ignored, the bad time dead-lettered",
          r.returncode == 0 and got == [("a", 2, 4.0), ("b", 1, 4.0)]
          and s.get("ignored_by_reason") == {"no key": 1}
          and s.get("dead_lettered_by_reason") == {"ts is not a timestamp": 1}, f"{got} {s}\n{r}")

    shutil.rmtree(tmp, ignore_errors=True)
    return T.finish()


if __name__ == "__main__":
    sys.exit(main())
