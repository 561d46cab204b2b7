#!/usr/bin/env python3
"""Differential test: every example pipeline that runs on local input (files, the generator,
sluice fake-api), the same input through several paths, must give the same rows (issue 13,
"Tests"; lateness judged per partition, issue 16).

    differential_test.py --sluice build/sluice [--only recruitment,recruitment_mysql,viewlog,ysb,users]
                         [--full] [--kills N] [--seed S] [--keep]

`--full` (or SLUICE_DIFFERENTIAL_FULL=1 in the environment, e.g.
`SLUICE_DIFFERENTIAL_FULL=1 ctest -R differential`) runs the long version: 20 kills per pipeline
and bigger inputs. The suite version (ctest) uses 4 kills and small inputs to stay within ~3
minutes on 2 cores.

Pipelines and inputs (file sources, except users):
  recruitment        examples/recruitment.toml, the seed tracking.csv repeated (as
                     tests/tools/recruitment_input.py builds it, with decode and field-count dead
                     letters) with the
                     seed job.csv, into SQLite
  recruitment_mysql  the same into MariaDB/MySQL (root@127.0.0.1:3306 of `make services`, or
                     SLUICE_TEST_MYSQL), a fresh database diff_h_<pid>_<variant> per variant, dropped at the end
  viewlog            examples/viewlog.toml (append mode, 1-minute windows, watermark, late and
                     invalid records) on `sluice generate --profile viewlog` output, into Parquet
                     read back with pyarrow
  ysb                examples/ysb.toml on `sluice generate --profile ysb` output, into SQLite
  users              examples/users-local.toml (the users pipeline without servers: a
                     randomuser-style JSON API -> flattened profiles upserted by id into SQLite)
                     against `sluice fake-api`, which the test starts on a free port; the
                     recomputation fetches the same pages with urllib and flattens them in
                     Python (tests/tools/users_api.py). Its input is no file: no split variants.
  (users.toml reads Kafka and writes Cassandra: tests/integration/users_test.py kills and
  restarts it.)

Variants, each on a fresh sink, every run with `--until-caught-up` (the mode a scheduler uses):
  single   one run
  kill     the run is killed with SIGKILL and restarted, --kills times, at random moments (seeded
           RNG): about one kill in five during start-up (0..150 ms after the start, before or
           around the first commit), the others after the run has committed at least once more
           (its sink's commit marker moved), a random time later; then restarted until a run
           exits 0. The kill runs use a copy of the pipeline with checkpoint_interval 25ms so
           that commits happen between kills.
  split    the input cut in two at a line boundary: the first part written at a path and run,
           then the second part written to a new file and `mv`d over the same path (a daily
           export replacing yesterday's), and run again
  w1 w2 w4 one run with --workers 1, 2 and 4 (a file is one partition, read by one worker)
  viewlog only:
  split-bounded  the split without --until-caught-up: each file's end is final, so its open
           windows are written; no window may be written twice and every record must be in a
           row or a dead letter (not compared with the single run: the second file's records
           for windows the first run wrote are late)
  partitioned    the pipeline's generator source with partitions = 4, read by 1, 2 and 4
           workers: the same rows and dead letters. A record is late by its own partition's
           watermark (issue 16), so which records are late does not depend on how far apart
           the workers' partitions are.

Checks: the single run equals the independent recomputation (tests/tools/recompute_*.py; for
viewlog with open windows left open, as --until-caught-up keeps them in the checkpointed state),
and every other variant equals the single run, row for row after sorting by key (Parquet: the
rows of every data file, each window at most once), and its dead letters equal the single run's
as a multiset of (reason, payload) (read by dead_letter_multiset()).

Seed data missing or pyarrow missing or no MariaDB: that pipeline is skipped loudly (a FAIL under
CI=true); exit 77 when everything asked for was skipped, 1 on any failure.
"""

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "tools"))
import compare_tables  # noqa: E402
import harness  # noqa: E402
import recompute_recruitment as rr  # noqa: E402
import recompute_viewlog as rv  # noqa: E402
import recompute_ysb  # noqa: E402
from mysql_client import Server, dump_csv  # noqa: E402
from recruitment_input import build_input  # noqa: E402

SHARED = os.path.normpath(os.path.join(REPO, "..", "shared"))
TRACKING_SEED = os.path.join(SHARED, "seed-data", "TrannXuanTien__ETL-streaming-project")
ALL = ["recruitment", "recruitment_mysql", "viewlog", "ysb", "users"]
VARIANTS = ["single", "kill", "split", "w1", "w2", "w4"]
IDENTITY_BASE = 1 << 30  # position partitions from here up hold a file's identity


# ------------------------------------------------------------------------------ dead letters

def dead_letter_multiset(ctx):
    """The dead letters a variant's run left, as a Counter of (reason, payload).

    Today they are in the NDJSON file named by the pipeline's DLQ variable. When dead letters
    move into the sink's own store (a _sluice_dead_letters table, DIR/_sluice/dead_letters/),
    this is the one function to change: ctx has the variant's sink (ctx["sink"], ctx["db"] for
    SQLite, ctx["mysql_db"], ctx["out_dir"] for Parquet) and its DLQ path (ctx["dlq"])."""
    c = Counter()
    path = ctx["dlq"]
    if not os.path.exists(path):
        return c
    with open(path, "rb") as f:
        for ln in f:
            if not ln.strip():
                continue
            try:
                o = json.loads(ln)
                c[(o.get("reason"), canonical_payload(o.get("payload")))] += 1
            except ValueError:
                c[("<not a JSON line>", ln.decode("utf-8", "replace"))] += 1
    return c


def canonical_payload(payload):
    """A payload as one canonical text: a record that is a JSON object or array (which the
    dead-letter record stores as that JSON value) compares by its content, not its spacing or
    key order; anything else stays the exact text."""
    if isinstance(payload, str):
        try:
            value = json.loads(payload)
        except ValueError:
            return payload
        if not isinstance(value, (dict, list)):
            return payload
        payload = value
    return json.dumps(payload, sort_keys=True, separators=(",", ":"))


def canonical(multiset):
    out = Counter()
    for (reason, payload), n in multiset.items():
        out[(reason, canonical_payload(payload))] += n
    return out


def diff_multisets(a, b, label_a, label_b, limit=5):
    a, b = canonical(a), canonical(b)
    out = []
    extra, missing = b - a, a - b
    if extra or missing:
        out.append(f"dead letters differ: {sum(extra.values())} in {label_b} only, "
                   f"{sum(missing.values())} in {label_a} only ({label_a} {sum(a.values())}, "
                   f"{label_b} {sum(b.values())})")
        for (reason, payload), n in list(extra.items())[:limit]:
            out.append(f"  only in {label_b} (x{n}): {reason}: {payload[:120]!r}")
        for (reason, payload), n in list(missing.items())[:limit]:
            out.append(f"  only in {label_a} (x{n}): {reason}: {payload[:120]!r}")
    return out


# ------------------------------------------------------------------------------ MySQL

class MySQL(Server):
    """The discovered server (harness.MYSQL) and the databases this test made on it."""

    def __init__(self):
        super().__init__()
        self.databases = []

    def fresh(self, name):
        db = f"diff_h_{os.getpid()}_{name}"
        self.run(f"DROP DATABASE IF EXISTS `{db}`; CREATE DATABASE `{db}` CHARACTER SET utf8mb4")
        self.databases.append(db)
        return db

    def drop_all(self):
        for db in self.databases:
            try:
                self.run(f"DROP DATABASE IF EXISTS `{db}`")
            except (RuntimeError, subprocess.TimeoutExpired):
                pass


# ------------------------------------------------------------------------------ pipelines

class Pipeline:
    """One example pipeline: how to build its input, point its variables at a sink, read its
    rows back sorted by key, and recompute them independently."""
    name = ""
    pipeline = ""
    input_var = ""
    table = None
    no_variants = ()  # variants that do not apply (no file input: no split)

    def close(self):
        """Stops what build() started."""

    def __init__(self, test):
        self.t = test
        self.tmp = os.path.join(test.tmp, self.name)
        os.makedirs(self.tmp, exist_ok=True)

    def skip_reason(self):
        return None

    # ctx: a dict per variant run (its sink and dead-letter file)
    def make_ctx(self, variant):
        d = os.path.join(self.tmp, variant)
        os.makedirs(d, exist_ok=True)
        ctx = {"variant": variant, "dir": d, "dlq": os.path.join(d, "dlq.ndjson")}
        self.add_sink(ctx)
        return ctx

    def add_sink(self, ctx):
        ctx["db"] = os.path.join(ctx["dir"], "out.db")
        ctx["sink"] = f"sqlite:{ctx['db']}"

    def variables(self, ctx, input_path):
        return {self.input_var: input_path, "SINK": ctx["sink"], "DLQ": ctx["dlq"]}

    def commit_marker(self, ctx):
        """Something that changes with every commit (None before the first)."""
        try:
            import sqlite3
            con = sqlite3.connect(f"file:{ctx['db']}?mode=ro", uri=True, timeout=0.2)
            try:
                return con.execute("SELECT SUM(offset) FROM _sluice_positions WHERE partition < ?",
                                   (IDENTITY_BASE,)).fetchone()[0]
            finally:
                con.close()
        except Exception:
            return None

    def split_input(self, path):
        """(first part, second part) of the input, cut at a line boundary near the middle."""
        with open(path, "rb") as f:
            lines = f.readlines()
        header = []
        if path.endswith(".csv"):
            header, lines = lines[:1], lines[1:]
        cut = len(lines) // 2
        if header:  # CSV: not inside a quoted field, so the quotes before the cut pair up
            quotes = sum(ln.count(b'"') for ln in lines[:cut])
            while cut < len(lines) and quotes % 2:
                quotes += lines[cut].count(b'"')
                cut += 1
        ext = os.path.splitext(path)[1]
        a, b = os.path.join(self.tmp, "part-a" + ext), os.path.join(self.tmp, "part-b" + ext)
        with open(a, "wb") as f:
            f.writelines(header + lines[:cut])
        with open(b, "wb") as f:
            f.writelines(header + lines[cut:])
        return a, b

    def read_rows(self, ctx):
        """(rows sorted by key, problems)"""
        raise NotImplementedError

    def compare_rows(self, got, want, label_got, label_want):
        raise NotImplementedError

    def recompute_check(self, ctx):
        """Problems of the single run against the independent recomputation."""
        raise NotImplementedError


class SqlTable(Pipeline):
    key = ()

    def read_rows(self, ctx):
        try:
            t = compare_tables.load(ctx["db"], self.table)
        except ValueError as e:
            return None, [str(e)]
        return t, []

    def compare_rows(self, got, want, label_got, label_want):
        got.label, want.label = label_got, label_want
        return compare_tables.compare_loaded(want, got, list(self.key))


class Recruitment(SqlTable):
    name = "recruitment"
    pipeline = "examples/recruitment.toml"
    input_var = "TRACKING"
    table = "events"
    key = rr.EVENTS_KEY

    def skip_reason(self):
        if not os.path.exists(os.path.join(TRACKING_SEED, "tracking.csv")):
            return f"seed data not found at {TRACKING_SEED}"
        return None

    def build(self):
        self.input = os.path.join(self.t.tmp, "tracking.csv")
        if not os.path.exists(self.input):
            build_input(os.path.join(TRACKING_SEED, "tracking.csv"), self.t.copies, self.input)
        self.jobs = os.path.join(TRACKING_SEED, "job.csv")
        self.expected_db = os.path.join(self.t.tmp, "recruitment-recompute.db")
        if not os.path.exists(self.expected_db):
            self.stats = rr.recompute(self.input, self.jobs, self.expected_db, "file")
            self.t.shared_stats = self.stats
        else:
            self.stats = self.t.shared_stats
        return (f"{self.stats['read']} records, {self.stats['rows']} rows, "
                f"{self.stats['dead_lettered']} dead letters")

    def variables(self, ctx, input_path):
        v = super().variables(ctx, input_path)
        v["JOBS"] = self.jobs
        return v

    def recompute_check(self, ctx):
        got, problems = self.read_rows(ctx)
        if got is None:
            return problems
        want = compare_tables.load(self.expected_db, "events")
        problems = self.compare_rows(got, want, "single", "recompute")
        n = sum(dead_letter_multiset(ctx).values())
        if n != self.stats["dead_lettered"]:
            problems.append(f"{n} dead letters, the recomputation has {self.stats['dead_lettered']}")
        return problems


class RecruitmentMySQL(Recruitment):
    name = "recruitment_mysql"

    def skip_reason(self):
        return super().skip_reason() or self.t.mysql.reachable()

    def add_sink(self, ctx):
        ctx["mysql_db"] = self.t.mysql.fresh(ctx["variant"])
        ctx["sink"] = f"{harness.MYSQL_URI}/{ctx['mysql_db']}"

    def commit_marker(self, ctx):
        try:
            rows = self.t.mysql.run("SELECT SUM(`offset`) FROM _sluice_positions WHERE "
                                    f"`partition` < {IDENTITY_BASE}", ctx["mysql_db"], timeout=5)
            return rows[1][0]
        except Exception:
            return None

    def read_rows(self, ctx):
        path = os.path.join(ctx["dir"], "events.csv")
        try:
            dump_csv(self.t.mysql, ctx["mysql_db"], "events", path)
            return compare_tables.load(path, "events"), []
        except (RuntimeError, ValueError) as e:
            return None, [f"cannot read table events: {e}"]


class Ysb(Pipeline):
    name = "ysb"
    pipeline = "examples/ysb.toml"
    input_var = "EVENTS"
    table = "campaign_windows"

    def build(self):
        self.input = self.t.generate("ysb", self.t.ysb_count, self.t.args.seed)
        self.ads = os.path.join(REPO, "examples", "data", "ysb_ads.csv")
        self.expected, self.counts = recompute_ysb.recompute([self.input],
                                                             recompute_ysb.load_ads(self.ads))
        return (f"{self.counts['read']} records, {self.counts['rows']} rows, "
                f"{self.counts['dead_letters']} dead letters")

    def variables(self, ctx, input_path):
        v = super().variables(ctx, input_path)
        v["ADS"] = self.ads
        return v

    def read_rows(self, ctx):
        try:
            return recompute_ysb.read_sqlite(ctx["db"]), []
        except Exception as e:
            return None, [f"cannot read campaign_windows: {e}"]

    def compare_rows(self, got, want, label_got, label_want):
        return [f"(window_start, campaign_id) {d} [{label_want} vs {label_got}]"
                for d in recompute_ysb.diff(want, got)]

    def recompute_check(self, ctx):
        got, problems = self.read_rows(ctx)
        if got is None:
            return problems
        problems = self.compare_rows(got, self.expected, "single", "recompute")
        n = sum(dead_letter_multiset(ctx).values())
        if n != self.counts["dead_letters"]:
            problems.append(f"{n} dead letters, the recomputation has {self.counts['dead_letters']}")
        return problems


class Viewlog(Pipeline):
    name = "viewlog"
    pipeline = "examples/viewlog.toml"
    input_var = "VIEWS"

    def skip_reason(self):
        try:
            import pyarrow.dataset  # noqa: F401
        except ImportError:
            return f"pyarrow is not importable by {sys.executable} (use the project venv)"
        return None

    def build(self):
        self.input = self.t.generate("viewlog", self.t.viewlog_count, self.t.args.seed + 1,
                                     ["--set", "spacing=5ms"])
        self.campaigns = os.path.join(REPO, "examples", "data", "campaigns1.csv")
        e = rv.recompute([self.input], self.campaigns, open_at_end=self.t.open_at_end)
        self.expected = e
        return (f"{e['read']} records, {len(e['rows'])} rows, {len(e['dead_letters'])} dead "
                f"letters ({e['late']} late), {e['open_windows']} window(s) left open")

    def add_sink(self, ctx):
        ctx["out_dir"] = os.path.join(ctx["dir"], "out")
        ctx["sink"] = f"parquet:{ctx['out_dir']}"

    def variables(self, ctx, input_path):
        return {"VIEWS": input_path, "CAMPAIGNS": self.campaigns, "OUT": ctx["sink"],
                "DLQ": ctx["dlq"]}

    def commit_marker(self, ctx):
        try:
            st = os.stat(os.path.join(ctx["out_dir"], "_sluice", "viewlog.state"))
            return (st.st_ino, st.st_mtime_ns, st.st_size)
        except OSError:
            return None

    def read_rows(self, ctx):
        from viewlog_output import read_parquet_output
        try:
            rows, problems, _ = read_parquet_output(ctx["out_dir"])
        except Exception as e:
            return None, [f"cannot read the Parquet output: {type(e).__name__}: {e}"]
        rows.sort(key=lambda r: tuple(r[k] for k in rv.KEY))
        return rows, problems

    def compare_rows(self, got, want, label_got, label_want):
        return rv.compare_rows(got, want, label=label_got)

    def recompute_check(self, ctx):
        got, problems = self.read_rows(ctx)
        if got is None:
            return problems
        problems = problems + self.compare_rows(got, self.expected["rows"], "single", "recompute")
        want = Counter((reason, payload) for reason, payload, _, _ in self.expected["dead_letters"])
        # Reasons 'decode: ...' carry the decoder's message: compare those by class.
        got_dl = Counter({(rv.reason_class(r), p): n
                          for (r, p), n in dead_letter_multiset(ctx).items()})
        want = Counter({(rv.reason_class(r), p): n for (r, p), n in want.items()})
        problems += diff_multisets(want, got_dl, "recompute", "single")
        return problems


class Users(SqlTable):
    name = "users"
    pipeline = "examples/users-local.toml"
    input_var = "API"
    table = "users_profile"
    key = ("id",)
    no_variants = ("split",)
    seed = "differential"

    def build(self):
        from users_api import COLUMNS, FakeApi, fetch_page, flatten
        self.page_size = 50
        self.pages = 100 if self.t.args.full else 30
        self.api = FakeApi(self.t.args.sluice, os.path.join(self.tmp, "fake-api.log"))
        self.input = self.api.url
        rows = {}
        for page in range(1, self.pages + 1):
            for prof in fetch_page(self.api.url, self.seed, page, self.page_size):
                row = flatten(prof)
                rows[row["id"]] = row  # upserted by id: a later page's profile wins
        self.expected_db = os.path.join(self.tmp, "users-recompute.db")
        import sqlite3
        con = sqlite3.connect(self.expected_db)
        con.execute("DROP TABLE IF EXISTS users_profile")
        con.execute("CREATE TABLE users_profile (" + ", ".join(f'"{c}" TEXT' for c in COLUMNS) +
                    ")")
        con.executemany("INSERT INTO users_profile VALUES (" + ", ".join("?" for _ in COLUMNS) +
                        ")", [tuple(r[c] for c in COLUMNS) for r in rows.values()])
        con.commit()
        con.close()
        return (f"{self.pages * self.page_size} profiles in {self.pages} pages from sluice "
                f"fake-api, {len(rows)} distinct ids")

    def close(self):
        if getattr(self, "api", None):
            self.api.stop()

    def variables(self, ctx, input_path):
        return {"API": input_path, "SINK": ctx["sink"], "DLQ": ctx["dlq"], "SEED": self.seed,
                "PAGE_SIZE": str(self.page_size), "COUNT": str(self.pages * self.page_size),
                # Paced, so that kills land between the commits of a run, before its input ends.
                "INTERVAL": "20ms"}

    def recompute_check(self, ctx):
        got, problems = self.read_rows(ctx)
        if got is None:
            return problems
        want = compare_tables.load(self.expected_db, "users_profile")
        problems = self.compare_rows(got, want, "single", "recompute")
        n = sum(dead_letter_multiset(ctx).values())
        if n:
            problems.append(f"{n} dead letters, the recomputation has none")
        return problems


PIPELINES = {"recruitment": Recruitment, "recruitment_mysql": RecruitmentMySQL,
             "viewlog": Viewlog, "ysb": Ysb, "users": Users}


# ------------------------------------------------------------------------------ the test

class Test(harness.Checks):
    def __init__(self, args, tmp):
        self.args, self.tmp = args, tmp
        self.rng = random.Random(args.seed)
        harness.Checks.__init__(self)
        self.runs = 0
        self.mysql = MySQL()
        self.shared_stats = None
        full = args.full
        self.kills = args.kills if args.kills is not None else (20 if full else 4)
        self.copies = 60 if full else 24
        self.ysb_count = 2_000_000 if full else 500_000
        self.viewlog_count = 1_000_000 if full else 200_000
        # --until-caught-up: a file source keeps its open windows for the next run.
        self.open_at_end = True
        self.pipeline_copies = {}

    def generate(self, profile, count, seed, extra=()):
        path = os.path.join(self.tmp, f"{profile}-{count}-{seed}.ndjson")
        if not os.path.exists(path):
            cmd = [self.args.sluice, "generate", "--profile", profile, "--to", path, "--count",
                   str(count), "--seed", str(seed), "--rate", "0", *extra]
            p = subprocess.run(cmd, cwd=REPO, capture_output=True, timeout=300)
            if p.returncode != 0:
                raise RuntimeError(f"{' '.join(cmd)} exited {p.returncode}: "
                                   f"{p.stderr.decode(errors='replace')[-500:]}")
        return path

    def pipeline_with_interval(self, pl, interval):
        key = (pl.pipeline, interval)
        if key not in self.pipeline_copies:
            with open(os.path.join(REPO, pl.pipeline), encoding="utf-8") as f:
                text = f.read()
            text, n = re.subn(r'(?m)^checkpoint_interval\s*=\s*"[^"]*"',
                              f'checkpoint_interval = "{interval}"', text)
            if n != 1:
                raise RuntimeError(f"{pl.pipeline}: cannot find checkpoint_interval")
            path = os.path.join(self.tmp, f"{pl.name}-{interval}.toml")
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
            self.pipeline_copies[key] = path
        return self.pipeline_copies[key]

    def start(self, pl, ctx, input_path, pipeline=None, extra=(), caught_up=True):
        self.runs += 1
        log = os.path.join(ctx["dir"], f"run-{self.runs:03d}.log")
        cmd = [self.args.sluice, "run", pipeline or pl.pipeline, *extra]
        if caught_up:
            cmd.append("--until-caught-up")
        for k, v in pl.variables(ctx, input_path).items():
            cmd += ["--var", f"{k}={v}"]
        f = open(log, "wb")
        f.write((" ".join(cmd) + "\n").encode())
        f.flush()
        p = subprocess.Popen(cmd, cwd=REPO, stdout=f, stderr=subprocess.STDOUT)
        p.log, p.log_path = f, log
        return p

    def finish_run(self, p, timeout=None):
        try:
            rc = p.wait(timeout=timeout or self.args.run_timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            rc = "timeout"
        p.log.close()
        return rc

    @staticmethod
    def tail(p, n=12):
        with open(p.log_path, "rb") as f:
            lines = f.read().decode("utf-8", "replace").strip().splitlines()
        return "\n".join("      | " + ln for ln in lines[-n:])

    def run(self, pl, ctx, input_path, pipeline=None, extra=(), caught_up=True):
        p = self.start(pl, ctx, input_path, pipeline, extra, caught_up)
        rc = self.finish_run(p)
        return [] if rc == 0 else [f"{ctx['variant']}: run exited {rc}\n{self.tail(p)}"]

    # -------------------------------------------------------------------------- variants
    def variant_single(self, pl, ctx):
        t0 = time.monotonic()
        problems = self.run(pl, ctx, pl.input)
        pl.clean_secs = time.monotonic() - t0
        return problems, []

    def variant_workers(self, pl, ctx, n):
        return self.run(pl, ctx, pl.input, extra=["--workers", str(n)]), []

    def variant_split(self, pl, ctx, caught_up=True):
        a, b = pl.split_input(pl.input)
        path = os.path.join(ctx["dir"], "input" + os.path.splitext(pl.input)[1])
        shutil.copyfile(a, path)
        problems = self.run(pl, ctx, path, caught_up=caught_up)
        if problems:
            return problems, []
        tmp = path + ".new"
        shutil.copyfile(b, tmp)
        os.replace(tmp, path)  # mv over the old file: a new inode at the same path
        return self.run(pl, ctx, path, caught_up=caught_up), []

    def bounded_split(self, pl):
        """Append mode, plain runs (no --until-caught-up): the first file's end is final, so
        its open windows are written; records of the second file for those windows are late.
        No window may be written twice, and every record is counted once."""
        ctx = pl.make_ctx("split-bounded")
        problems, _ = self.variant_split(pl, ctx, caught_up=False)
        if not problems:
            rows, problems = pl.read_rows(ctx)
            if rows is not None:
                counted = sum(r["total_count"] for r in rows)
                letters = sum(dead_letter_multiset(ctx).values())
                if counted + letters != pl.expected["read"]:
                    problems.append(f"{counted} records in rows + {letters} dead letters != "
                                    f"{pl.expected['read']} records read")
        self.result(f"{pl.name}: input split in two files, plain runs (each file's end final): "
                    "no window written twice", problems)

    def variant_kill(self, pl, ctx):
        pipeline = self.pipeline_with_interval(pl, "25ms")
        problems, notes = [], []
        landed = startup = mid_input = early = resets = 0
        soon = False  # after a reset: kill within a few milliseconds of a commit
        consumed = False  # a run has exited 0: the input is read; later kills hit restarts
        attempts = 0
        # On a fast, idle machine a run can end before its kill; try again (bounded).
        while landed < self.kills and attempts < self.kills * 10:
            attempts += 1
            during_startup = consumed or self.rng.random() < 0.2
            before = pl.commit_marker(ctx)
            p = self.start(pl, ctx, pl.input, pipeline)
            t_start = time.monotonic()
            rc = None
            if during_startup:
                try:
                    # A restart with nothing left to read ends within tens of milliseconds.
                    rc = p.wait(timeout=self.rng.uniform(0.0, 0.04 if consumed else 0.15))
                except subprocess.TimeoutExpired:
                    pass
            else:
                # Wait for a commit of this run, then a random moment later.
                while rc is None and pl.commit_marker(ctx) == before:
                    rc = p.poll()
                    if time.monotonic() - t_start > self.args.run_timeout:
                        break
                    time.sleep(0.01)
                if rc is None:
                    hi = 0.005 if soon else max(0.05, 0.6 * pl.clean_secs / (self.kills + 1))
                    try:
                        rc = p.wait(timeout=self.rng.uniform(0.0, hi))
                    except subprocess.TimeoutExpired:
                        pass
            if rc is not None:
                p.log.close()
                if rc != 0:
                    problems.append(f"kill: run exited {rc} before its kill\n{self.tail(p)}")
                    return problems, notes
                early += 1
                if not during_startup and landed - startup == 0 and resets < self.kills:
                    # The whole input was read before a kill after a commit could land (a fast
                    # run): start the variant again on an empty sink, killing sooner after the
                    # first commit, rather than only killing restarts from here on.
                    resets += 1
                    soon = True
                    shutil.rmtree(ctx["dir"], ignore_errors=True)
                    os.makedirs(ctx["dir"])
                    pl.add_sink(ctx)
                    landed = startup = mid_input = 0
                    continue
                consumed = True
                continue
            p.send_signal(signal.SIGKILL)
            p.wait()
            p.log.close()
            landed += 1
            startup += during_startup
            mid_input += not consumed
        for _ in range(3):
            rc_problems = self.run(pl, ctx, pl.input, pipeline)
            if not rc_problems:
                break
            problems += rc_problems
        else:
            problems.append("kill: no restart exited 0")
        if landed < self.kills:
            problems.append(f"kill: only {landed} of {self.kills} kills landed")
        if mid_input < 1 or landed - startup < 1:
            problems.append(f"kill: {mid_input} kills landed before the input was read, "
                            f"{landed - startup} after a commit of their run: need one of each "
                            "(a bigger input is needed)")
        notes.append(f"{landed} kills: {landed - startup} after a commit of their run, {startup} "
                     f"during start-up; {mid_input} before the input was read; {early} run(s) "
                     f"finished before their kill; {resets} restart(s) of the variant on an empty sink")
        return problems, notes

    # -------------------------------------------------------------------------- one pipeline
    def pipeline(self, cls):
        pl = cls(self)
        why = pl.skip_reason()
        if why:
            self.skip(pl.name, why)
            return
        try:
            self._pipeline(pl)
        finally:
            pl.close()

    def _pipeline(self, pl):
        desc = pl.build()
        self.say(f"{pl.name}: input {pl.input}: {desc}")
        ctx = pl.make_ctx("single")
        problems, notes = self.variant_single(pl, ctx)
        if not problems:
            problems = pl.recompute_check(ctx)
        self.result(f"{pl.name}: single run == recomputation ({pl.clean_secs:.2f}s)", problems)
        if problems:
            return
        base_rows, _ = pl.read_rows(ctx)
        base_dl = dead_letter_multiset(ctx)
        for variant in [v for v in VARIANTS[1:] if v in self.args.variants and v not in pl.no_variants]:
            vctx = pl.make_ctx(variant)
            t0 = time.monotonic()
            if variant == "kill":
                problems, notes = self.variant_kill(pl, vctx)
            elif variant == "split":
                problems, notes = self.variant_split(pl, vctx)
            else:
                problems, notes = self.variant_workers(pl, vctx, int(variant[1:]))
            secs = time.monotonic() - t0
            if not problems:
                rows, problems = pl.read_rows(vctx)
                if rows is not None:
                    problems += pl.compare_rows(rows, base_rows, variant, "single")
                problems += diff_multisets(base_dl, dead_letter_multiset(vctx), "single", variant)
            what = {"kill": f"killed -9 and restarted x{self.kills}",
                    "split": "input split in two files, the second mv'd over the first",
                    "w1": "--workers 1", "w2": "--workers 2", "w4": "--workers 4"}[variant]
            self.result(f"{pl.name}: {what} == single run ({secs:.2f}s)", problems, notes)
        if isinstance(pl, Viewlog) and "split-bounded" in self.args.variants:
            self.bounded_split(pl)
        if isinstance(pl, Viewlog) and "partitioned" in self.args.variants:
            self.partitioned_workers(pl)

    def partitioned_workers(self, pl):
        """A source with several partitions, so that the workers really split them: the
        pipeline's own generator with partitions = 4, COUNT records, read by 1, 2 and 4 workers.
        Lateness is judged per partition (issue 16), so all three must agree."""
        path = os.path.join(self.tmp, f"{pl.name}-partitions-4.toml")
        with open(os.path.join(REPO, pl.pipeline), encoding="utf-8") as f:
            text = f.read()
        text, n = re.subn(r"(?m)^\[source\]\s*$", "[source]\npartitions = 4", text)
        if n != 1:
            raise RuntimeError(f"{pl.pipeline}: cannot find [source]")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        base = base_dl = None
        for workers in (1, 2, 4):
            ctx = pl.make_ctx(f"partitioned-w{workers}")
            p = self.start(pl, ctx, "generator:", path, ["--workers", str(workers), "--var",
                                                         f"COUNT={self.viewlog_count}", "--var",
                                                         "RATE=0", "--var", "SPACING=5ms"],
                           caught_up=False)
            rc = self.finish_run(p)
            problems = [] if rc == 0 else [f"run exited {rc}\n{self.tail(p)}"]
            if not problems:
                rows, problems = pl.read_rows(ctx)
                dl = dead_letter_multiset(ctx)
                if base is None:
                    base, base_dl = rows, dl
                    if not rows:
                        problems.append("no rows")
                elif rows is not None:
                    problems += pl.compare_rows(rows, base, f"{workers} workers", "1 worker")
                    problems += diff_multisets(base_dl, dl, "1 worker", f"{workers} workers")
            self.result(f"{pl.name}: generator with 4 partitions, --workers {workers}"
                        + (" (the reference)" if workers == 1 else " == --workers 1"), problems)
            if problems and workers == 1:
                return


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--only", default=",".join(ALL), help="comma-separated: " + ",".join(ALL))
    ap.add_argument("--full", action="store_true",
                    default=os.environ.get("SLUICE_DIFFERENTIAL_FULL", "") not in ("", "0"),
                    help="20 kills per pipeline and bigger inputs (also SLUICE_DIFFERENTIAL_FULL=1)")
    ap.add_argument("--kills", type=int, help="kills per pipeline (default 4, 20 with --full)")
    ap.add_argument("--seed", type=int, default=int(os.environ.get("SLUICE_DIFFERENTIAL_SEED",
                                                                   "1313")))
    ap.add_argument("--variants",
                    help="comma-separated, besides the single run: " +
                    ",".join(VARIANTS[1:] + ["split-bounded", "partitioned"]) +
                    " (the last two: viewlog only)")
    ap.add_argument("--run-timeout", type=float, default=120)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args(argv)
    args.sluice = os.path.abspath(args.sluice)
    if args.variants is None:
        args.variants = ",".join(VARIANTS[1:] + ["split-bounded", "partitioned"])
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in PIPELINES]
    if unknown:
        ap.error(f"unknown pipeline(s) {unknown}; known: {ALL}")
    tmp = tempfile.mkdtemp(prefix="sluice-differential-")
    t = Test(args, tmp)
    print(f"     work dir {tmp}, RNG seed {args.seed}, {'full' if args.full else 'suite'} version "
          f"({t.kills} kills per pipeline)", flush=True)
    try:
        for n in names:
            t.pipeline(PIPELINES[n])
    finally:
        t.mysql.drop_all()
        t.keep_or_remove(tmp, args.keep)
    return t.finish()


if __name__ == "__main__":
    sys.exit(main())
