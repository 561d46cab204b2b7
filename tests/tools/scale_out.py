"""What the scale-out tests (tests/integration/scale_out_test.py and scale_out_append_test.py)
share: producing to and reading back one partition with kcat, watching a sink's committed
positions, reading the positions, task owners and dead letters sluice keeps in an SQLite or
MariaDB sink, and the steps of a run over several processes (waiting for a process's own
commit, killing it -9 after one, waiting until every record is committed, stopping it).

The tests' sink classes derive from SqliteTasks and MysqlTasks and add what their pipeline
writes (its table, the audit of its writes). The test class mixes in ScaleOutSteps, which
uses the test's rng, total (records produced) and tail(proc)."""

import os
import signal
import sqlite3
import subprocess
import time

import dead_letters
import harness
from harness import BROKER, run


# ------------------------------------------------------------------------------ the topic

def kcat_produce(topic, partition, lines, batch, keys=None):
    """Produces lines to one partition, in order; with keys (one per line) as message keys."""
    args = ["kcat", "-P", "-b", BROKER, "-t", topic, "-p", str(partition), "-z", "none",
            "-X", f"batch.num.messages={batch}", "-X", "linger.ms=50"]
    if keys is not None:
        for key, line in zip(keys, lines):
            if "\t" in key or "\t" in line or "\n" in line:
                raise RuntimeError(f"a record the test cannot send through kcat -K: {line!r}")
        lines = [f"{key}\t{line}" for key, line in zip(keys, lines)]
        args[6:6] = ["-K", "\t"]
    data = ("\n".join(lines) + "\n").encode("utf-8")
    p = subprocess.run(args, input=data, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=120)
    if p.returncode != 0:
        raise RuntimeError(f"kcat -P {topic}[{partition}] exited {p.returncode}: "
                           f"{p.stdout.decode('utf-8', 'replace')[-800:]}")


def read_topic(topic, keys=False):
    """[(partition, offset, payload)] of every record, read back with kcat; with keys,
    [(partition, offset, key, payload)]."""
    fmt = "%p\t%o\t%k\t%s\n" if keys else "%p\t%o\t%s\n"
    rc, out = run(["kcat", "-C", "-b", BROKER, "-t", topic, "-e", "-q", "-f", fmt], timeout=180)
    if rc != 0:
        raise RuntimeError(f"kcat -C {topic} exited {rc}: {out[-800:]}")
    fields = 4 if keys else 3
    recs = []
    for ln in out.split("\n"):
        if ln:
            parts = ln.split("\t", fields - 1)
            recs.append((int(parts[0]), int(parts[1]), *parts[2:]))
    return recs


# ------------------------------------------------------------------------------ sinks

class Watch:
    """Polls a sink's committed positions: their sum, and that none ever goes back."""

    def __init__(self, sink):
        self.sink = sink
        self.seen = {}
        self.regressions = []

    def committed(self):
        pos = self.sink.positions()
        if not pos:
            return None
        for p, o in pos.items():
            hi = self.seen.get(p)
            if hi is not None and o < hi and len(self.regressions) < 20:
                self.regressions.append(f"partition {p}: the committed position went back from "
                                        f"{hi} to {o}")
            if hi is None or o > hi:
                self.seen[p] = o
        return sum(pos.values())


class SqliteTasks:
    """What sluice keeps in an SQLite sink of pipeline `name`, reading source `source`
    (positions below `identity_base`: above are file identities)."""
    kind = "sqlite"

    def __init__(self, workdir, name, source, identity_base):
        self.path = os.path.join(workdir, f"{name}.db")
        self.pipeline = name
        self.source = source
        self.identity_base = identity_base
        self.uri = f"sqlite:{self.path}"
        self.tasks_seen = False

    def _query(self, sql, args=()):
        if not os.path.exists(self.path):
            return None
        try:
            con = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=2)
            try:
                return con.execute(sql, args).fetchall()
            finally:
                con.close()
        except sqlite3.Error:
            return None

    def positions(self):
        """{partition: committed position} (None: unreadable)."""
        rows = self._query("SELECT partition, offset FROM _sluice_positions WHERE pipeline = ? "
                           "AND source = ? AND partition < ?",
                           (self.pipeline, self.source, self.identity_base))
        return None if rows is None else {int(p): int(o) for p, o in rows}

    def owned_positions(self, pid):
        """{partition: committed position} of the tasks the process pid owns (None: unreadable)."""
        rows = self._query(
            "SELECT p.partition, p.offset FROM _sluice_positions p JOIN _sluice_tasks t ON "
            "t.pipeline = p.pipeline AND t.source = p.source AND t.partition = p.partition "
            "WHERE p.pipeline = ? AND t.owner LIKE ?", (self.pipeline, f"% pid {pid}"))
        return None if rows is None else {int(p): int(o) for p, o in rows}

    def has_tasks(self):
        if not self.tasks_seen:  # once seen, a locked or busy file does not unsee them
            rows = self._query("SELECT COUNT(*) FROM _sluice_tasks WHERE pipeline = ?",
                               (self.pipeline,))
            self.tasks_seen = bool(rows and rows[0][0])
        return self.tasks_seen

    def letters(self):
        """[(partition, offset, reason)] of the stored dead letters."""
        entries, problems = dead_letters.load_sqlite(self.path, self.pipeline)
        if problems:
            raise RuntimeError("; ".join(problems[:5]))
        return [(e["partition"], e["offset"], e["reason"]) for e in entries]

    def cleanup(self):
        pass


class MysqlTasks:
    """What sluice keeps in database `db` of the MariaDB `server` (tests/tools/mysql_client.py)
    for pipeline `name`, reading source `source`."""
    kind = "mysql"

    def __init__(self, server, db, name, source, identity_base):
        self.server = server
        self.db = db[:64]
        self.pipeline = name
        self.source = source
        self.identity_base = identity_base
        self.uri = server.uri(self.db)
        self.tasks_seen = False
        server.run(f"CREATE DATABASE IF NOT EXISTS `{self.db}`")

    def _rows(self, sql):
        try:
            return self.server.run(sql, self.db, timeout=30)
        except (RuntimeError, subprocess.TimeoutExpired):
            return None

    def positions(self):
        rows = self._rows("SELECT `partition`, `offset` FROM `_sluice_positions` WHERE `pipeline` = "
                          f"'{self.pipeline}' AND `source` = '{self.source}' AND `partition` < "
                          f"{self.identity_base}")
        return None if rows is None else {int(p): int(o) for p, o in rows[1:]}

    def has_tasks(self):
        if not self.tasks_seen:
            rows = self._rows("SELECT COUNT(*) FROM `_sluice_tasks` WHERE `pipeline` = "
                              f"'{self.pipeline}'")
            self.tasks_seen = bool(rows and len(rows) > 1 and int(rows[1][0]) > 0)
        return self.tasks_seen

    def owned_positions(self, pid):
        if not self.has_tasks():
            return None
        rows = self._rows(
            "SELECT p.`partition`, p.`offset` FROM `_sluice_positions` p JOIN `_sluice_tasks` t ON "
            "t.`pipeline` = p.`pipeline` AND t.`source` = p.`source` AND t.`partition` = "
            f"p.`partition` WHERE p.`pipeline` = '{self.pipeline}' AND t.`owner` LIKE '% pid {pid}'")
        return None if rows is None else {int(p): int(o) for p, o in rows[1:]}

    def letters(self):
        rows = self.server.run("SELECT `partition`, `offset`, `reason` FROM `_sluice_dead_letters` "
                               f"WHERE `pipeline` = '{self.pipeline}'", self.db)
        return [(int(p), int(o), r) for p, o, r in rows[1:]]

    def cleanup(self):
        try:
            self.server.run(f"DROP DATABASE IF EXISTS `{self.db}`")
        except RuntimeError as e:
            print(f"     note: dropping {self.db}: {e}")


# ------------------------------------------------------------------------------ the steps

class ScaleOutSteps:
    """Steps of a run over several processes, for a harness.SluiceTest with rng, total (the
    records produced) and tail(proc)."""

    def wait_commit_of(self, proc, sink, watch, timeout):
        """Waits until proc has committed positions of its own: a partition whose task it owns
        (claimed, owner ... pid N) moved on while it owned it. A sink without task rows tells no
        owners: then until any commit moved the positions. True when seen."""
        base = {}
        any_first = watch.committed()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
            now_any = watch.committed()
            own = sink.owned_positions(proc.pid)
            if own:
                if any(p in base and o > base[p] for p, o in own.items()):
                    return True
                base = dict(own)  # a partition it no longer owns is dropped
            elif own is None and not sink.has_tasks() and now_any is not None \
                    and (any_first is None or now_any > any_first):
                return True
        return False

    def dwell(self, watch, seconds):
        """Lets the processes work for a while, watching the committed positions."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            watch.committed()
            time.sleep(0.2)

    def kill_after_commit(self, proc, sink, watch, problems, notes):
        if not self.wait_commit_of(proc, sink, watch, 40):
            problems.append(f"{proc.label} committed nothing of its own within 40s\n"
                            f"{self.tail(proc)}")
            return
        delay = self.rng.uniform(0.2, 2.0)
        landed = harness.kill9_at_random(proc, self.rng, delay, delay + 0.001)
        at = watch.committed()
        notes.append(f"{proc.label} killed -9 {delay:.2f}s after a commit of its own "
                     f"(committed {at} of {self.total})")
        if not landed:
            problems.append(f"{proc.label} had exited before its kill -9\n{self.tail(proc)}")
        if at is not None and at >= self.total:
            problems.append(f"{proc.label} was killed after all the work was committed: the test "
                            "did not exercise a kill mid-run (raise --per-partition)")

    def wait_done(self, watch, procs, timeout):
        """True once every record produced is committed; False when every process has exited
        before that, or at the timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            c = watch.committed()
            if c is not None and c >= self.total:
                return True
            if all(p.poll() is not None for p in procs):
                return False
            time.sleep(0.3)
        return False

    def stop_proc(self, proc, problems, timeout=40):
        rc = harness.stop(proc, signal.SIGTERM, timeout)
        if rc != 0:
            problems.append(f"{proc.label}: exit {rc} after SIGTERM (expected 0)\n{self.tail(proc)}")
        return rc
