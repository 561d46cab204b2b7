#!/usr/bin/env python3
"""A second SIGTERM/SIGINT while draining ends the run at once with exit 1, committing nothing.

    signal_twice_test.py --sluice build/sluice

For each signal (SIGTERM, SIGINT): the recruitment pipeline runs on the generator into SQLite;
once a checkpoint is committed the test takes SQLite's exclusive lock on the database (so the
final checkpoint cannot commit and the drain keeps retrying), sends the signal, checks the
process is still draining 2 s later, sends it again, and requires: exit 1 within 5 s, the
"second signal" notice on stderr, and the committed positions exactly as they were before the
first signal (read under the same lock, then after releasing it). Exit 1 on any failure.
"""

import argparse
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))
import harness  # noqa: E402

REPO = harness.REPO


def committed(db):
    try:
        c = sqlite3.connect(db, timeout=1)
        rows = c.execute("SELECT * FROM _sluice_positions ORDER BY 1, 2, 3").fetchall()
        c.close()
        return rows
    except sqlite3.Error:
        return []


def case(sluice, sig, tmp):
    problems = []
    db = os.path.join(tmp, f"{sig.name}.db")
    p = subprocess.Popen([sluice, "run", os.path.join(REPO, "examples", "recruitment.toml"),
                          "--var", "TRACKING=generator:", "--var", f"SINK=sqlite:{db}",
                          "--var", "RATE=5000"],
                         cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not committed(db):
            if p.poll() is not None or time.monotonic() > deadline:
                return [f"no checkpoint committed (exit {p.poll()}): {p.stderr.read()[-500:]}"]
            time.sleep(0.2)
        lock = sqlite3.connect(db, timeout=10, isolation_level=None)
        lock.execute("BEGIN EXCLUSIVE")
        before = lock.execute("SELECT * FROM _sluice_positions ORDER BY 1, 2, 3").fetchall()
        p.send_signal(sig)
        time.sleep(2)
        if p.poll() is not None:
            problems.append(f"exited {p.returncode} 2 s after the first {sig.name}, while its "
                            "final checkpoint could not commit (the lock did not hold it)")
        t0 = time.monotonic()
        p.send_signal(sig)
        try:
            rc = p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return problems + [f"still running 5 s after the second {sig.name}"]
        took = time.monotonic() - t0
        stderr = p.stderr.read()
        if rc != 1:
            problems.append(f"exit {rc} after the second {sig.name}, want 1")
        if "second signal, exiting without a final checkpoint" not in stderr:
            problems.append(f"no second-signal notice on stderr: {stderr[-400:]}")
        lock.execute("ROLLBACK")
        lock.close()
        after = committed(db)
        if after != before:
            problems.append(f"positions moved: {before} -> {after}")
        print(f"    {sig.name}: exit {rc} {took:.2f} s after the second signal; "
              f"{len(before)} committed position(s) unchanged")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    return problems


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sluice", required=True)
    a = ap.parse_args()
    sluice = os.path.abspath(a.sluice)
    t = harness.Checks()
    with tempfile.TemporaryDirectory(prefix="sluice-sig2-") as tmp:
        for sig in (signal.SIGTERM, signal.SIGINT):
            t.result(f"second {sig.name} while draining", case(sluice, sig, tmp))
    return t.finish()

if __name__ == "__main__":
    sys.exit(main())
