#!/usr/bin/env python3
"""A MariaDB sink whose disk is full when `sluice run` starts: sluice waits, it does not exit.

    mysql_disk_full_test.py --sluice build/sluice [--server mysql://root@127.0.0.1:3306] [--keep]

The sink's database is a directory of the server's datadir on its own small tmpfs (a symlink
to a tmpfs mounted by the test; the server must run on this machine, as `make services`'s does).
The tmpfs is filled with a file until ENOSPC, then `sluice run --until-caught-up` starts on a
small hand-written input: creating its tables fails with errno 28. Checks:
  1. the run does not end while the disk is full (it retries, logging why: the server's error
     and "disk is full");
  2. once the file is removed, the run creates its tables, writes, and exits 0;
  3. the table holds the hand-worked sums.
Before this was fixed the run exited 1 at start ("Error writing file ... (Errcode: 28 ...)"),
which is what the soak test's disk-full episode met when it came before a process's start.
No server or client, no permission to mount a tmpfs, or a server whose datadir is not on this
machine: SKIP (exit 77) with the reason, a FAIL when CI=true (the test would prove nothing).
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "tools"))
import harness  # noqa: E402
from mysql_client import Server  # noqa: E402

PIPELINE = """\
[pipeline]
name = "diskfull"
checkpoint_interval = "200ms"

[source]
name = "in"
uri = "${IN}"

[source.fields]
team = "string"
points = "int"
ts = "timestamp"

[aggregate]
time = "ts"
window = "1h"
mode = "update"
keys = ["team"]
metrics = ["total = sum(points)", "games = count()"]

[sink]
uri = "${SINK}"
table = "scores"
"""

# Hand-worked: red 3 + 4 = 7 over 2 records, blue 10 over 1, all in the 00:00 hour.
RECORDS = [
    '{"team":"red","points":3,"ts":"2026-01-01T00:05:00Z"}',
    '{"team":"blue","points":10,"ts":"2026-01-01T00:10:00Z"}',
    '{"team":"red","points":4,"ts":"2026-01-01T00:20:00Z"}',
]
EXPECTED = {("red", "7", "2"), ("blue", "10", "1")}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--server", default=None)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    args.sluice = os.path.abspath(args.sluice)
    t = harness.Checks()
    server = Server(args.server)
    why = server.reachable()
    if why:
        return t.missing(why)
    if server.host not in ("127.0.0.1", "localhost", "::1"):
        return t.missing(f"the server {server.host} is not on this machine")
    datadir = server.run("SELECT @@datadir")[1][0]
    database = f"sluice_diskfull_{os.getpid()}"
    tmp = tempfile.mkdtemp(prefix="sluice-diskfull-")
    mount = os.path.join(tmp, "disk")
    link = os.path.join(datadir, database)
    os.makedirs(mount)
    rc, out = harness.run(["mount", "-t", "tmpfs", "-o", "size=16m,mode=0755", "tmpfs", mount],
                          timeout=30)
    if rc != 0:
        harness.keep_or_remove(tmp)
        return t.missing(f"cannot mount a tmpfs ({out.strip()}): no full disk to test with")
    proc = None
    try:
        target = os.path.join(mount, database)
        os.makedirs(target)
        st = os.stat(datadir)
        os.chown(target, st.st_uid, st.st_gid)
        try:
            os.symlink(target, link)
        except OSError as e:
            return t.missing(f"cannot link a database into the server's datadir {datadir} ({e})")
        if database not in {r[0] for r in server.run("SHOW DATABASES")[1:]}:
            return t.missing(f"the server does not see {link} (its datadir is not this machine's)")
        filler = os.path.join(mount, "filler.bin")
        chunk = b"\0" * (1 << 20)
        try:
            with open(filler, "wb") as f:
                while True:
                    f.write(chunk)
                    f.flush()
        except OSError:
            pass  # ENOSPC: the disk is full
        infile = os.path.join(tmp, "scores.ndjson")
        with open(infile, "w") as f:
            f.write("\n".join(RECORDS) + "\n")
        pipeline = os.path.join(tmp, "diskfull.toml")
        with open(pipeline, "w") as f:
            f.write(PIPELINE)
        log = os.path.join(tmp, "run.log")
        proc = harness.start_sluice(args.sluice, pipeline, log,
                                    {"IN": infile, "SINK": server.uri(database)},
                                    ["--until-caught-up"], cwd=tmp)
        time.sleep(4)
        text = harness.read_text(log)
        t.check("the run waits while the sink's disk is full (no exit)", proc.poll() is None,
                f"exited {proc.returncode}: {harness.log_tail(log)}")
        t.check("it says why it waits", "disk is full" in text and "28" in text,
                harness.log_tail(log))
        os.remove(filler)
        try:
            rc = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            rc = None
        t.check("after the space is freed the run ends with exit 0", rc == 0,
                f"exit {rc}: {harness.log_tail(log)}")
        try:
            got = {tuple(r) for r in server.run("SELECT team, total, games FROM scores", database)[1:]}
        except RuntimeError as e:
            got = {("no table", str(e)[-200:])}
        t.check("the table holds the hand-worked sums", got == EXPECTED, f"{sorted(got)}")
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc is not None:
            proc.log.close()
        try:
            server.run(f"DROP DATABASE IF EXISTS `{database}`")
        except RuntimeError as e:
            print(f"note: dropping {database}: {e}")
        if os.path.islink(link):
            os.remove(link)
        harness.run(["umount", mount], timeout=60)
        harness.keep_or_remove(tmp, args.keep or t.failed)
    return t.finish()


if __name__ == "__main__":
    harness.main_guard(main)
