#!/usr/bin/env python3
"""The users pipeline without servers: `sluice fake-api` -> examples/users-local.toml -> SQLite
upserted by id, and the same flattening into an `ndjson:` file; both killed with kill -9.

    users_local_test.py --sluice build/sluice [--only sqlite,stdout,ndjson] [--keep]

No server but the fake API, which the test starts itself on a free loopback port. Expected values
never come from sluice: the test fetches the same pages (same seed and page size) with urllib,
flattens each profile in Python as examples/users.toml documents (users_test.flatten), and
compares with what sluice wrote, read with Python's sqlite3 and json.

Scenarios:
  sqlite  examples/users-local.toml run until its first commit, killed with kill -9, rerun with
          --until-caught-up: the table holds one row per distinct id fetched, every column equal
          to the Python flattening, `id` is the primary key; a third run changes nothing
  stdout  SINK=stdout: prints exactly the first COUNT profiles as JSON lines on stdout (the
          summary on stderr); `sluice validate` refuses an update-mode aggregate into stdout: and
          ndjson:, and a table sink's [sink] on ndjson:, with exit 2
  ndjson  the same flattening into ndjson:PATH (the example without `key`), killed with kill -9
          after commits several times (twice leaving uncommitted lines behind, as a kill between
          a checkpoint's lines and its positions would) and restarted: the file's lines are exactly the profiles
          in page order, each once (no duplicate, no missing line), and a rerun adds nothing
"""

import argparse
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "tools"))
import harness  # noqa: E402
from users_api import COLUMNS, FakeApi, fetch_page, flatten  # noqa: E402

EXAMPLE = os.path.join(REPO, "examples", "users-local.toml")
SEED, PAGE_SIZE, PAGES = "local-1", 10, 30
COUNT = PAGE_SIZE * PAGES


def expected_profiles(api):
    """The flattened profiles of pages 1..PAGES, in page order."""
    out = []
    for page in range(1, PAGES + 1):
        out.extend(flatten(p) for p in fetch_page(api, SEED, page, PAGE_SIZE))
    return out


class Test(harness.Checks):
    def __init__(self, args):
        harness.Checks.__init__(self)
        self.sluice = os.path.abspath(args.sluice)
        self.tmp = tempfile.mkdtemp(prefix="sluice-users-local-")
        self.keep = args.keep

    def say(self, msg):
        print(msg, flush=True)

    def check(self, ok, msg):
        return harness.Checks.check(self, msg, ok)

    def cmd(self, pipeline, sink, api, *extra):
        return [self.sluice, "run", pipeline, "--var", f"SINK={sink}", "--var", f"API={api}",
                "--var", f"SEED={SEED}", "--var", f"PAGE_SIZE={PAGE_SIZE}",
                "--var", f"COUNT={COUNT}", "--var", "INTERVAL=150ms",
                "--var", "DLQ=" + os.path.join(self.tmp, os.path.basename(sink) + ".dlq.ndjson"),
                *extra]

    def run_to_end(self, cmd, label):
        with open(os.path.join(self.tmp, label + ".log"), "wb") as log:
            rc = subprocess.run(cmd + ["--until-caught-up"], stdout=log, stderr=subprocess.STDOUT,
                                timeout=240).returncode
        self.check(rc == 0, f"{label}: exit {rc} (log {log.name})")

    def kill_after_commit(self, cmd, label, committed):
        """Starts `cmd`, waits until `committed()` is true (something was committed), kill -9.
        Returns True when the kill landed before the run finished by itself."""
        with open(os.path.join(self.tmp, label + ".log"), "wb") as log:
            p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
            deadline = time.time() + 60
            while time.time() < deadline and p.poll() is None and not committed():
                time.sleep(0.05)
            landed = p.poll() is None
            if landed:
                p.send_signal(signal.SIGKILL)
            p.wait()
        return landed

    # ---- sqlite: examples/users-local.toml as shipped ----

    def scenario_sqlite(self, api, want):
        db = os.path.join(self.tmp, "users.db")
        cmd = self.cmd(EXAMPLE, "sqlite:" + db, api)

        def committed():
            try:
                with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as c:
                    n = c.execute("SELECT count(*) FROM _sluice_positions WHERE "
                                  "pipeline = 'users-local' AND source = 'api'").fetchone()[0]
                    return n > 0
            except sqlite3.Error:
                return False

        landed = self.kill_after_commit(cmd, "sqlite-killed", committed)
        self.check(landed, "sqlite: the run finished before the kill -9 (make INTERVAL slower)")
        with sqlite3.connect(db) as c:
            before = c.execute("SELECT count(*) FROM users_profile").fetchone()[0]
        self.check(0 < before < len(want), f"sqlite: after the kill the table holds {before} rows, "
                   f"expected some but not all of {len(want)}")
        self.run_to_end(cmd, "sqlite-rerun")
        rows = self.table(db)
        by_id = {}
        for r in want:
            by_id[r["id"]] = r  # the last profile of an id wins, as the upsert's
        self.check(len(rows) == len(by_id),
                   f"sqlite: {len(rows)} rows, expected {len(by_id)} distinct ids")
        diff = [(k, rows.get(k), v) for k, v in by_id.items() if rows.get(k) != v]
        self.check(not diff, f"sqlite: {len(diff)} rows differ from the Python flattening, "
                   f"e.g. {diff[:1]}")
        extra = set(rows) - set(by_id)
        self.check(not extra, f"sqlite: rows of ids never fetched: {sorted(extra)[:3]}")
        with sqlite3.connect(db) as c:
            pk = [r[0] for r in c.execute("SELECT name FROM pragma_table_info('users_profile') "
                                         "WHERE pk > 0")]
        self.check(pk == ["id"], f"sqlite: primary key {pk}, expected ['id']")
        # A third run over the same pages: nothing new, nothing changed.
        self.run_to_end(cmd, "sqlite-third")
        self.check(self.table(db) == rows, "sqlite: a rerun changed the table")
        self.say(f"sqlite: {before} rows before the kill -9, {len(rows)} after the rerun "
                 f"({len(want)} profiles fetched)")

    def table(self, db):
        with sqlite3.connect(db) as c:
            c.row_factory = sqlite3.Row
            return {r["id"]: {k: r[k] for k in COLUMNS}
                    for r in c.execute("SELECT * FROM users_profile")}

    # ---- stdout: a quick look, and what validate refuses ----

    def scenario_stdout(self, api, want):
        n = 25
        cmd = self.cmd(EXAMPLE, "stdout:", api)
        cmd[cmd.index(f"COUNT={COUNT}")] = f"COUNT={n}"
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
        self.check(p.returncode == 0, f"stdout: exit {p.returncode}: {p.stderr[-500:]!r}")
        lines = p.stdout.decode("utf-8").splitlines()
        try:
            got = [json.loads(line) for line in lines]
        except ValueError as e:
            got = []
            self.check(False, f"stdout: a line is not JSON ({e}): {lines[-1:]!r}")
        self.check(got == want[:n], f"stdout: {len(got)} lines, expected the first {n} profiles")
        self.check(b"records in" in p.stderr, "stdout: the summary is not on stderr")
        recruitment = os.path.join(REPO, "examples", "recruitment.toml")
        # recruitment is an update-mode aggregate (with `table`, which ndjson: refuses first).
        for pipeline, sink, needle in (
                (recruitment, "stdout:", 'mode = "append"'),
                (recruitment, "ndjson:" + os.path.join(self.tmp, "r.ndjson"), "has no tables"),
                (EXAMPLE, "ndjson:" + os.path.join(self.tmp, "u.ndjson"), "has no tables")):
            extra = ["--var", "TRACKING=generator:"] if pipeline == recruitment else []
            v = subprocess.run([self.sluice, "validate", pipeline, "--var", f"SINK={sink}", *extra],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
            out = v.stdout.decode("utf-8", "replace")
            self.check(v.returncode == 2 and needle in out,
                       f"validate {os.path.basename(pipeline)} into {sink}: exit {v.returncode}, "
                       f"expected 2 and {needle!r}: {out[-400:]!r}")
        v = subprocess.run([self.sluice, "validate", EXAMPLE, "--var", "SINK=stdout:"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        self.check(v.returncode == 0, f"validate users-local into stdout: exit {v.returncode}")
        self.say(f"stdout: {len(got)} lines; validate refuses update mode, "
                 "and table/key on ndjson:")

    # ---- ndjson: the same pipeline into ndjson:PATH ----

    def scenario_ndjson(self, api, want):
        text = open(EXAMPLE, encoding="utf-8").read()
        text, n = re.subn(r'(?m)^(table = "users_profile"|key = "id")\n', "", text)
        assert n == 2, "examples/users-local.toml no longer has the [sink] lines this test drops"
        pipeline = os.path.join(self.tmp, "users-ndjson.toml")
        with open(pipeline, "w", encoding="utf-8") as f:
            f.write(text)
        out = os.path.join(self.tmp, "out", "users.ndjson")
        sidecar = out + ".sluice-positions"
        cmd = self.cmd(pipeline, "ndjson:" + out, api)
        kills = 0
        for attempt in range(4):
            mtime = os.stat(sidecar).st_mtime_ns if os.path.exists(sidecar) else None

            def committed():
                # A new commit since this attempt started, then a little more work.
                return (os.path.exists(sidecar) and os.stat(sidecar).st_mtime_ns != mtime)

            if self.kill_after_commit(cmd, f"ndjson-killed-{attempt}", committed):
                kills += 1
                # A kill -9 rarely lands between a checkpoint's fsync of its lines and the rename
                # of the sidecar; leave on disk what it would leave there: the next rows as the
                # uncommitted checkpoint wrote them, and a torn line. The restart must cut both.
                if attempt % 2 == 0 and os.path.exists(out):
                    done = len(open(out, "rb").read().splitlines())
                    with open(out, "ab") as f:
                        for r in want[done:done + 3]:
                            f.write(json.dumps(r, separators=(",", ":")).encode() + b"\n")
                        f.write(b'{"id":"torn')
        self.check(kills >= 2, f"ndjson: only {kills} kill -9 landed mid-run")
        self.run_to_end(cmd, "ndjson-rerun")
        got = self.lines(out)
        self.compare_lines(got, want, "ndjson after kills")
        self.run_to_end(cmd, "ndjson-third")
        self.compare_lines(self.lines(out), want, "ndjson after a rerun")
        self.say(f"ndjson: {kills} kill -9 after commits, then {len(got)} lines "
                 f"({len(want)} profiles fetched)")

    def lines(self, path):
        with open(path, "rb") as f:
            data = f.read()
        self.check(data.endswith(b"\n"), "ndjson: the file does not end with a newline")
        out = []
        for i, line in enumerate(data.decode("utf-8", "replace").splitlines()):
            try:
                out.append(json.loads(line))
            except ValueError:
                self.check(False, f"ndjson: line {i + 1} is not JSON: {line[:80]!r}")
                out.append(None)
        return out

    def compare_lines(self, got, want, label):
        ids = [r.get("id") for r in got if r is not None]
        dups = len(ids) - len(set(ids))
        self.check(dups == 0, f"{label}: {dups} duplicate lines")
        missing = {r["id"] for r in want} - set(ids)
        self.check(not missing, f"{label}: {len(missing)} profiles missing")
        first = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b),
                     min(len(got), len(want)))
        self.check(got == want, f"{label}: {len(got)} lines differ from the {len(want)} profiles "
                   f"in page order (first difference at line {first})")
        self.check(all(r is not None and list(r) == COLUMNS for r in got),
                   f"{label}: keys are not {COLUMNS}")

    def main(self, only):
        api = FakeApi(self.sluice, os.path.join(self.tmp, "fake-api.log"))
        try:
            want = expected_profiles(api.url)
            assert len(want) == COUNT
            for name in ("sqlite", "stdout", "ndjson"):
                if name in only:
                    self.say(f"== {name}")
                    getattr(self, "scenario_" + name)(api.url, want)
        finally:
            api.stop()
        if self.failed:
            print(f"files in {self.tmp}")
        elif not self.keep:
            shutil.rmtree(self.tmp, ignore_errors=True)
        return self.finish()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--only", default="sqlite,stdout,ndjson")
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    sys.exit(Test(a).main(set(a.only.split(","))))
