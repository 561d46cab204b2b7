#!/usr/bin/env python3
"""Soak test: the recruitment pipeline Kafka -> MariaDB under faults, for minutes or hours.

    soak_test.py --sluice build/sluice [--minutes 2.5] [--seed N] [--workdir DIR]
                 [--summary-json FILE] [--sink-poison] [--no-disk-full] [--keep]
                 [--faults kill,broker,database,disk-full] [--database-dies-on-full-disk]

`make soak SOAK_MINUTES=60` runs it for an hour; the suite's `soak` test (tests/cmake/soak.cmake)
for two minutes.

Servers. The test restarts its servers, so it never uses the shared ones of `make services`: it
starts its own MariaDB and Kafka with scripts/services.sh (SLUICE_SERVICES_DIR=WORKDIR/svc, free
loopback ports picked at start, SLUICE_MARIADB_EXTRA_CNF for a small buffer pool) and stops them
at the end, also on failure, Ctrl-C or SIGTERM (a run killed harder leaves them running: the
next run on the same WORKDIR stops them first, through their pid files, and unmounts the tmpfs). The sink's database
`soak_sink` is a directory of MariaDB's datadir on its own small tmpfs (mounted by the test:
root only), so that the sink's disk can be filled and freed; without the right to mount, the
disk-full episodes are left out and the summary says so. (A size-capped InnoDB system
tablespace was tried instead: MariaDB 10.11 aborts itself with "[FATAL] InnoDB: Error (Out of
disk space) in rollback" when a statement fails there, and nothing frees such a tablespace short
of a bigger cap, so it cannot model a disk that fills and frees.)

Pipeline. examples/recruitment.toml (name and group `soak`, table `events`,
kafka.session.timeout.ms = 6000) reading topic `soak` (4 partitions) into
SINK=mysql://root@127.0.0.1:PORT/soak_sink, dead letters in the sink's `_sluice_dead_letters`.
Two `sluice run` processes in one consumer group, as services (no --until-caught-up).

Driver. A seeded RNG picks, every 1-4 s, one of:
  burst       500-5000 `sluice generate` records, with poison records mixed in 7 times in 10,
              published with kcat (idempotent producer, keyed by job_id)
  kill        kill -9 one sluice process, restart it after 0-3 s
  broker      restart the broker: `services.sh restart kafka`, or kill -9 and `up`
  database    restart MariaDB: `services.sh down`, or kill -9; `up` after 1-5 s
  disk-full   fill the sink's tmpfs with a file until ENOSPC, publish a burst with poison records
              (new rows and 64 KiB dead letters need new pages), hold 3-10 s, free
Every kind happens at least once (the first five actions are one of each, shuffled). A sluice
process that exits on its own (not killed by the driver) is a failure; it is restarted so the
run goes on. MariaDB itself may not survive a full disk: InnoDB aborts with "[FATAL] InnoDB:
Error (Out of disk space) in rollback" when a statement fails there. After every action (and
every 5 s while draining) the driver checks that its MariaDB answers; one that is gone is
started again (crash recovery) once the disk is freed, one that runs but has not answered for
60 s is killed and started again, and either counts as a database restart (and in the summary's
database_recoveries). A disk-full hold ends early when mariadbd stops.
--database-dies-on-full-disk kills mariadbd (-9) in every disk-full hold, so that this recovery
is exercised on purpose (InnoDB's own abort comes in about one short run of four).

Poison records (always): malformed JSON, a JSON value that is not an object, invalid UTF-8
outside and inside strings (a lone continuation byte, an overlong e0 8b 80, f5-ff lead bytes),
a NUL before '}', a number beyond int64, a non-numeric job_id, a record without create_time and
ts (missing fields: no event time), a 200 kB ts (no event time; the dead letter keeps 64 KiB
and the hash of all). Each carries a unique sequence number. Records that must be *ignored*
rather than dead-lettered ride along too (no job_id, a 100 kB custom_track).
--sink-poison adds records the decoder accepts but the sink must reject: a click with bid 10^12
under a job id of its own, whose row's bid_set does not fit DECIMAL(10,2) (error 1264). Such a
row is expected absent from the table and dead-lettered with the server's reason. Off by default
until the MySQL sink isolates rejected rows (issue 14, item 2).

End. The driver stops faulting, waits until the committed positions (`_sluice_positions`) reach
the topic's end offsets, and stops both processes with SIGTERM (each must exit 0). Then:
  * the topic holds exactly the records published (end offsets vs the published count);
  * `events` == tests/tools/recompute_recruitment.py over the published records (sources =
    'kafka'), compared by tests/tools/compare_tables.py on every column not starting with '_';
  * `_sluice_dead_letters` holds exactly the recomputation's dead letters, matched by the SHA-256
    of each record's bytes (payload_sha256), each with the recomputation's reason ('decode...'
    for the decoder's, the step's reason otherwise), so every poison record is there with its
    reason;
  * committed positions never went back (read every loop);
  * the run had poison records, kills, broker and database restarts (and disk-full episodes
    when the tmpfs could be mounted): a run without them would prove nothing.
A summary line (kills, broker restarts, database restarts, disk-full episodes, records, poison
records, duration) is printed and written as JSON to --summary-json (default WORKDIR/summary.json).
Exit 0 on success, 1 on a failure, 77 (SKIP) when a tool is missing (mariadbd, java, kcat) unless
CI=true.
"""

import argparse
import errno
import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "tools"))
import compare_tables  # noqa: E402
import harness  # noqa: E402
import recompute_recruitment as rr  # noqa: E402
from harness import free_port, run  # noqa: E402

PIPELINE = os.path.join(REPO, "examples", "recruitment.toml")
JOBS = os.path.join(REPO, "examples", "data", "job.csv")
SERVICES = os.path.join(REPO, "scripts", "services.sh")
TOPICS = os.path.join(REPO, "scripts", "kafka-topics.sh")
HOST = "127.0.0.1"
NAME = "soak"
TOPIC = "soak"
PARTITIONS = 4
DATABASE = "soak_sink"
TABLE = "events"
KEY = list(rr.EVENTS_KEY)
TMPFS_SIZE = "512m"
NO_EVENT_TIME = "no event time: create_time is not a version-1 TimeUUID and ts is not a timestamp"
DECIMAL_10_2_MAX = 99999999.99


class Skip(Exception):
    pass


# ------------------------------------------------------------------------------- poison

def poison_records(seq, rng, sink_poison):
    """Returns [(kind, bytes, expect)] for one round: expect is 'decode', 'no event time',
    'ignored' or 'sink'. seq makes every payload unique."""
    ok_ts = "2026-01-01 05:00:00"
    out = [
        ("malformed JSON", f'{{"job_id": 12, "custom_track": "click", "ts": "{ok_ts}", "n": {seq}'
         .encode(), "decode"),
        ("not JSON", f"poison {seq} <<<not json>>>".encode(), "decode"),
        ("JSON array", f"[1, 2, {seq}]".encode(), "decode"),
        ("invalid UTF-8 outside strings", b"\xff\xfe" + f'{{"n": {seq}}}'.encode(), "decode"),
        ("invalid UTF-8 in job_id", b'{"job_id": "\xc3\x28", "custom_track": "click", "ts": "'
         + ok_ts.encode() + f'", "n": {seq}}}'.encode(), "decode"),
        ("overlong UTF-8 in job_id", b'{"job_id": "1\xe0\x8b\x80", "custom_track": "click", '
         b'"n": ' + str(seq).encode() + b"}", "decode"),
        ("f5 lead byte in job_id", b'{"job_id": "\xf5\x80\x80\x80", "custom_track": "click", '
         b'"n": ' + str(seq).encode() + b"}", "decode"),
        ("NUL before }", f'{{"job_id": 3, "custom_track": "click", "n": {seq}'.encode()
         + b"\x00}", "decode"),
        ("number beyond int64", f'{{"job_id": 99999999999999999999999, "custom_track": "click", '
         f'"ts": "{ok_ts}", "n": {seq}}}'.encode(), "decode"),
        ("non-numeric job_id", f'{{"job_id": "abc{seq}", "custom_track": "click", "ts": "{ok_ts}"}}'
         .encode(), "decode"),
        ("missing create_time and ts", f'{{"job_id": 1808, "custom_track": "click", "n": {seq}}}'
         .encode(), "no event time"),
        ("200 kB ts", (f'{{"job_id": 1572, "custom_track": "conversion", "n": {seq}, "ts": "'
                       + "9" * 200_000 + '"}').encode(), "no event time"),
        ("no job_id (ignored)", f'{{"custom_track": "click", "ts": "{ok_ts}", "n": {seq}}}'.encode(),
         "ignored"),
        ("100 kB custom_track (ignored)", (f'{{"job_id": 5, "ts": "{ok_ts}", "n": {seq}, '
                                           '"custom_track": "' + "c" * 100_000 + '"}').encode(),
         "ignored"),
    ]
    if sink_poison:
        # A job id of its own per record: the row holds this record alone.
        out.append(("bid beyond DECIMAL(10,2) (sink)",
                    f'{{"job_id": {900_000_000 + seq}, "custom_track": "click", "bid": '
                    f'1000000000000, "ts": "{ok_ts}", "n": {seq}}}'.encode(), "sink"))
    rng.shuffle(out)
    return out


# ------------------------------------------------------------------------------- servers

class Servers:
    """The private MariaDB and Kafka of this run, through scripts/services.sh."""

    def __init__(self, workdir, log):
        self.workdir = workdir
        self.svc = os.path.join(workdir, "svc")
        self.log = log
        self.mariadb_port = self.kafka_port = self.controller_port = None
        self.mount = os.path.join(self.svc, "mariadb", "data", DATABASE)
        self.mounted = False

    def env(self):
        e = dict(os.environ, SLUICE_SERVICES_DIR=self.svc,
                 SLUICE_MARIADB_PORT=str(self.mariadb_port),
                 SLUICE_KAFKA_PORT=str(self.kafka_port),
                 SLUICE_KAFKA_CONTROLLER_PORT=str(self.controller_port),
                 SLUICE_MARIADB_EXTRA_CNF="innodb-buffer-pool-size=64M\nmax-connections=100")
        return e

    def services(self, *args, timeout=300):
        rc, out = run([SERVICES, *args], timeout=timeout, env=self.env())
        self.log(f"services.sh {' '.join(args)}: rc {rc}" + (f"\n{out[-3000:]}" if rc else ""))
        if rc != 0:
            raise RuntimeError(f"scripts/services.sh {' '.join(args)} exited {rc}:\n{out[-3000:]}")

    def stop_stale(self):
        """Stops what a killed earlier run on this workdir left behind (pid files are ours)."""
        if not os.path.isdir(self.svc):
            return
        ports_file = os.path.join(self.workdir, "ports.json")
        try:
            with open(ports_file, encoding="utf-8") as f:
                p = json.load(f)
            self.mariadb_port, self.kafka_port, self.controller_port = (
                p["mariadb"], p["kafka"], p["controller"])
        except (OSError, ValueError, KeyError):
            self.mariadb_port, self.kafka_port, self.controller_port = 1, 2, 3
        run([SERVICES, "down", "mariadb", "kafka"], timeout=120, env=self.env())
        self.unmount_all()

    def unmount_all(self):
        """Unmounts every mount below the workdir (ours: the tmpfs of the sink's database)."""
        try:
            with open("/proc/mounts", encoding="utf-8") as f:
                points = [ln.split()[1] for ln in f]
        except OSError:
            return
        base = os.path.realpath(self.workdir) + "/"
        for mp in sorted(points, key=len, reverse=True):
            mp = mp.replace("\\040", " ")
            if mp.startswith(base):
                run(["umount", mp], timeout=60)
        self.mounted = False

    def start(self):
        self.mariadb_port, self.kafka_port, self.controller_port = free_port(), free_port(), free_port()
        while len({self.mariadb_port, self.kafka_port, self.controller_port}) < 3:
            self.controller_port = free_port()
        os.makedirs(self.svc, exist_ok=True)
        with open(os.path.join(self.workdir, "ports.json"), "w", encoding="utf-8") as f:
            json.dump({"mariadb": self.mariadb_port, "kafka": self.kafka_port,
                       "controller": self.controller_port}, f)
        self.services("up", "mariadb", "kafka", timeout=600)

    def mount_sink_disk(self):
        """The sink database's directory on its own tmpfs. False when mounting is not allowed."""
        os.makedirs(self.mount, exist_ok=True)
        rc, out = run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE},mode=0755", "tmpfs",
                       self.mount], timeout=30)
        if rc != 0:
            os.rmdir(self.mount)
            self.log(f"cannot mount a tmpfs for the sink ({out.strip()}): no disk-full episodes")
            return False
        self.mounted = True
        return True

    def mysql(self, sql, timeout=60):
        """Runs SQL with the mariadb client (--batch); returns rows of text (NULL as None)."""
        cmd = ["mariadb", "--no-defaults", f"-h{HOST}", f"-P{self.mariadb_port}", "-uroot",
               "--protocol=TCP", "--batch", "--connect-timeout=5", "-e", sql]
        p = subprocess.run(cmd, capture_output=True, timeout=timeout)
        if p.returncode != 0:
            raise RuntimeError(p.stderr.decode("utf-8", "replace").strip()[-800:])
        lines = p.stdout.decode("utf-8", "replace").split("\n")
        if lines and lines[-1] == "":
            lines.pop()

        def unescape(v):
            if v == "NULL":
                return None
            return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t", "0": "\0"}.get(
                m.group(1), m.group(1)), v)
        return [tuple(unescape(v) for v in ln.split("\t")) for ln in lines]

    def pidfile_pid(self, name):
        try:
            with open(os.path.join(self.svc, f"{name}.pid"), encoding="utf-8") as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def mariadb_running(self):
        """True while our mariadbd process exists (not a zombie)."""
        pid = self.pidfile_pid("mariadb")
        if not pid:
            return False
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"mariadbd" not in f.read():
                    return False  # gone, and the pid taken by another process
            with open(f"/proc/{pid}/stat", "rb") as f:
                return f.read().split(b")")[-1].split()[0] != b"Z"
        except (OSError, IndexError):
            return False

    def mariadb_answers(self, timeout=10):
        try:
            self.mysql("SELECT 1", timeout=timeout)
            return True
        except (RuntimeError, subprocess.TimeoutExpired):
            return False

    def mariadb_fatal(self):
        """The last [FATAL] / [ERROR] lines of MariaDB's log (why it stopped), or ''."""
        path = os.path.join(self.svc, "mariadb", "mariadb.log")
        try:
            with open(path, "rb") as f:
                f.seek(max(0, os.path.getsize(path) - 400_000))
                lines = f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return ""
        # Only what this server logged since it became ready (the log spans every start).
        ready = [i for i, ln in enumerate(lines) if "ready for connections" in ln]
        lines = lines[ready[-1] + 1:] if ready else lines
        fatal = [ln.strip() for ln in lines if "[FATAL]" in ln or "got signal" in ln]
        bad = fatal or [ln.strip() for ln in lines if "[ERROR]" in ln]
        return " | ".join(bad[-3:])[:600]

    def kill9(self, name):
        pid = self.pidfile_pid(name)
        if pid:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    with open(f"/proc/{pid}/stat", "rb") as f:
                        if f.read().split(b")")[-1].split()[0] == b"Z":
                            break
                except OSError:
                    break
                time.sleep(0.1)


# ------------------------------------------------------------------------------- sluice

class Proc:
    def __init__(self, args, label, n, pipe, variables, logdir):
        self.label = label
        self.logpath = os.path.join(logdir, f"{label}-{n:03d}.log")
        self.log = open(self.logpath, "wb")
        cmd = [args.sluice, "run", pipe]
        for k, v in variables.items():
            cmd += ["--var", f"{k}={v}"]
        self.p = subprocess.Popen(cmd, cwd=REPO, stdout=self.log, stderr=subprocess.STDOUT)
        self.killed = False

    def alive(self):
        return self.p.poll() is None

    def tail(self, n=15):
        try:
            with open(self.logpath, "rb") as f:
                lines = f.read().decode("utf-8", "replace").strip().splitlines()
        except OSError:
            return ""
        return "\n".join("      | " + ln[:300] for ln in lines[-n:])

    def close(self):
        if not self.log.closed:
            self.log.close()


class Soak:
    def __init__(self, args):
        self.args = args
        self.workdir = os.path.abspath(args.workdir)
        self.rng = random.Random(args.seed)
        self.t0 = time.monotonic()
        self.events = open(os.path.join(self.workdir, "events.log"), "w", encoding="utf-8")
        self.servers = Servers(self.workdir, self.note)
        self.problems = []
        self.counts = Counter()
        self.procs = {}
        self.starts = Counter()
        self.seen_positions = {}
        self.produced_file = os.path.join(self.workdir, "published.ndjson")
        self.produced = 0
        self.poison = []  # (kind, sha256, expect)
        self.seq = 0
        self.gen_seed = args.seed * 1000
        self.disk = False
        self.db_silent_since = None  # when the running MariaDB first did not answer
        self.db_stops = []  # why MariaDB stopped by itself (its log's last errors), per recovery

    # ------------------------------------------------------------------ output
    def stamp(self):
        return f"[{time.monotonic() - self.t0:7.1f}s]"

    def note(self, msg):
        self.events.write(f"{self.stamp()} {msg}\n")
        self.events.flush()

    def say(self, msg):
        print(f"soak {self.stamp()} {msg}", flush=True)
        self.note(msg)

    def problem(self, msg):
        self.problems.append(msg)
        self.say(f"PROBLEM: {msg}")

    # ------------------------------------------------------------------ setup
    def setup(self):
        srv = self.servers
        self.say(f"servers in {os.path.relpath(srv.svc, REPO)}")
        srv.start()
        self.say(f"MariaDB on {HOST}:{srv.mariadb_port}, Kafka on {HOST}:{srv.kafka_port} "
                 f"(controller {srv.controller_port})")
        if self.args.disk_full and "disk-full" in self.args.faults:
            self.disk = srv.mount_sink_disk()
        if not self.disk:
            srv.mysql(f"CREATE DATABASE IF NOT EXISTS `{DATABASE}` CHARACTER SET utf8mb4")
        else:
            self.say(f"sink database {DATABASE} on a {TMPFS_SIZE} tmpfs ({srv.mount})")
        rc, out = run([TOPICS, "--create", "--topic", TOPIC, "--partitions", str(PARTITIONS),
                       "--replication-factor", "1"], timeout=180, env=srv.env())
        if rc != 0:
            raise RuntimeError(f"kafka-topics.sh --create {TOPIC} exited {rc}: {out[-1500:]}")
        self.pipe = self.pipeline_copy()
        self.variables = {"TRACKING": f"kafka://{HOST}:{srv.kafka_port}/{TOPIC}", "JOBS": JOBS,
                          "SINK": f"mysql://root@{HOST}:{srv.mariadb_port}/{DATABASE}"}
        self.logdir = os.path.join(self.workdir, "logs")
        os.makedirs(self.logdir, exist_ok=True)
        open(self.produced_file, "wb").close()
        self.burst()  # work before the processes start
        for label in ("A", "B"):
            self.start_proc(label)

    def pipeline_copy(self):
        with open(PIPELINE, encoding="utf-8") as f:
            text = f.read()
        subs = [(r'(?m)^name = "recruitment"$', f'name = "{NAME}"'),
                (r'(?m)^\[source\]$', f'[source]\ngroup = "{NAME}"\n'
                 '"kafka.session.timeout.ms" = "6000"'),
                (r'(?m)^table = "events"$', f'table = "{TABLE}"')]
        for pat, rep in subs:
            text, n = re.subn(pat, rep, text)
            if n != 1:
                raise RuntimeError(f"{PIPELINE}: cannot find {pat!r} to adapt it")
        path = os.path.join(self.workdir, "soak.toml")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    def start_proc(self, label):
        self.starts[label] += 1
        self.procs[label] = Proc(self.args, label, self.starts[label], self.pipe, self.variables,
                                 self.logdir)
        self.note(f"started sluice {label} (pid {self.procs[label].p.pid})")

    # ------------------------------------------------------------------ producing
    def burst(self, size=None, poison=None):
        if size is None:
            # The same sizes in long runs: an hour publishes about 2 million records, which the
            # recomputation (all in memory) still handles.
            size = self.rng.randint(500, 5000)
        self.gen_seed += 1
        gen = os.path.join(self.workdir, "burst.ndjson")
        start = f"2026-01-0{1 + self.rng.randint(0, 2)}T{self.rng.randint(0, 23):02d}:00:00Z"
        rc, out = run([self.args.sluice, "generate", "--profile", "recruitment", "--to", gen,
                       "--count", str(size), "--rate", "0", "--seed", str(self.gen_seed),
                       "--jobs", JOBS, "--start", start], timeout=300)
        if rc != 0:
            raise RuntimeError(f"sluice generate exited {rc}: {out[-800:]}")
        with open(gen, "rb") as f:
            records = [ln for ln in f.read().split(b"\n") if ln.strip()]
        if len(records) != size:
            raise RuntimeError(f"sluice generate wrote {len(records)} records, asked for {size}")
        with_poison = self.rng.random() < 0.7 if poison is None else poison
        poison = []
        if with_poison:
            self.seq += 1
            poison = poison_records(self.seq, self.rng, self.args.sink_poison)
            for kind, payload, expect in poison:
                records.insert(self.rng.randint(0, len(records)), payload)
        keyed = os.path.join(self.workdir, "burst.keyed")
        with open(keyed, "wb") as f:
            for r in records:
                if b"\t" in r or b"\n" in r or b"\r" in r:
                    raise RuntimeError("a record holds a tab or a line break; cannot key it")
                key = b""
                try:
                    o = json.loads(r.decode("utf-8"))
                    if isinstance(o, dict) and isinstance(o.get("job_id"), (int, str)):
                        key = str(o["job_id"]).encode()
                except (ValueError, UnicodeDecodeError):
                    pass
                f.write(key + b"\t" + r + b"\n")
        cmd = ["kcat", "-P", "-b", f"{HOST}:{self.servers.kafka_port}", "-t", TOPIC, "-K", "\t",
               "-z", "none", "-X", "enable.idempotence=true", "-X", "message.timeout.ms=120000"]
        with open(keyed, "rb") as f:
            rc, out = run(cmd, timeout=180, stdin=f)
        if rc != 0:
            raise RuntimeError(f"kcat -P exited {rc}: {out[-1500:]}")
        with open(self.produced_file, "ab") as f:
            for r in records:
                f.write(r + b"\n")
        self.produced += len(records)
        for kind, payload, expect in poison:
            self.poison.append((kind, hashlib.sha256(payload).hexdigest(), expect))
        self.counts["bursts"] += 1
        self.counts["poison"] += len(poison)
        self.note(f"burst: {len(records)} records ({len(poison)} poison), {self.produced} in all")

    def end_offsets(self):
        cmd = ["kcat", "-b", f"{HOST}:{self.servers.kafka_port}", "-Q"]
        for p in range(PARTITIONS):
            cmd += ["-t", f"{TOPIC}:{p}:-1"]
        rc, out = run(cmd, timeout=60)
        offs = {int(m.group(1)): int(m.group(2))
                for m in re.finditer(r"\[(\d+)\] offset (-?\d+)", out)}
        if rc != 0 or len(offs) != PARTITIONS:
            raise RuntimeError(f"kcat -Q failed (rc {rc}): {out[-800:]}")
        return offs

    # ------------------------------------------------------------------ watching
    def positions(self):
        """{partition: committed offset} of the pipeline, or None while unreadable."""
        try:
            rows = self.servers.mysql(
                f"SELECT `partition`, `offset` FROM `{DATABASE}`.`_sluice_positions` WHERE "
                f"`pipeline` = '{NAME}' AND `source` = 'tracking'", timeout=10)[1:]
        except (RuntimeError, subprocess.TimeoutExpired):
            return None
        pos = {int(p): int(o) for p, o in rows}
        for p, o in pos.items():
            hi = self.seen_positions.get(p)
            if hi is not None and o < hi:
                self.problem(f"partition {p}: the committed position went back from {hi} to {o}")
            if hi is None or o > hi:
                self.seen_positions[p] = o
        return pos

    def check_procs(self):
        for label, pr in list(self.procs.items()):
            if pr.alive():
                continue
            rc = pr.p.returncode
            pr.close()
            self.counts["unexpected_exits"] += 1
            self.problem(f"sluice {label} exited {rc} on its own ({pr.logpath}):\n{pr.tail()}")
            self.start_proc(label)

    # ------------------------------------------------------------------ faults
    def kill(self):
        label = self.rng.choice(sorted(self.procs))
        pr = self.procs[label]
        if pr.alive():
            pr.p.send_signal(signal.SIGKILL)
            pr.p.wait()
        pr.close()
        self.counts["kills"] += 1
        delay = self.rng.uniform(0, 3)
        self.note(f"kill -9 sluice {label}; restart in {delay:.1f}s")
        time.sleep(delay)
        self.start_proc(label)

    def restart_broker(self):
        srv = self.servers
        if self.rng.random() < 0.5:
            self.note("broker: services.sh restart kafka")
            srv.services("restart", "kafka")
        else:
            self.note("broker: kill -9, then services.sh up kafka")
            srv.kill9("kafka")
            time.sleep(self.rng.uniform(0, 3))
            srv.services("up", "kafka")
        self.counts["broker_restarts"] += 1

    def restart_database(self):
        srv = self.servers
        down = self.rng.uniform(1, 5)
        if self.rng.random() < 0.5:
            self.note(f"database: services.sh down mariadb, up after {down:.1f}s")
            srv.services("down", "mariadb")
        else:
            self.note(f"database: kill -9 mariadbd, up after {down:.1f}s")
            srv.kill9("mariadb")
        time.sleep(down)
        self.start_database()
        self.counts["database_restarts"] += 1

    def start_database(self):
        """`services.sh up mariadb` (InnoDB's crash recovery runs at start), tried three times:
        a start can fail on a loaded machine (it did not answer in time)."""
        for attempt in range(1, 4):
            try:
                self.servers.services("up", "mariadb")
                return
            except RuntimeError as e:
                if attempt == 3:
                    raise
                self.note(f"database: start {attempt} failed ({str(e)[-300:]}); again")
                self.servers.kill9("mariadb")
                time.sleep(2)

    def free_disk(self):
        filler = os.path.join(self.servers.mount, "soak-filler.bin")
        if os.path.exists(filler):
            os.remove(filler)
            self.note("disk freed")

    def ensure_database(self):
        """Brings the driver's MariaDB back when it stopped by itself: InnoDB aborts on a full
        disk ("[FATAL] InnoDB: Error (Out of disk space) in rollback"), and a server that is
        down when the faults stop would leave both processes waiting for their sink (as they
        should) until the run fails. A process that is gone is started again, after the disk is
        freed (its crash recovery needs space); one that runs but has not answered for 60 s is
        killed and started again. Either counts as a database restart (and a recovery).
        Returns True when the server answers."""
        srv = self.servers
        if srv.mariadb_answers():
            self.db_silent_since = None
            return True
        if srv.mariadb_running():
            # Busy (crash recovery, a loaded machine) or wedged: give it a minute.
            now = time.monotonic()
            if self.db_silent_since is None:
                self.db_silent_since = now
            if now - self.db_silent_since < 60:
                return False
            self.note("database: mariadbd runs but has not answered for 60 s; kill -9")
            srv.kill9("mariadb")
        self.db_silent_since = None
        why = srv.mariadb_fatal()
        self.db_stops.append(f"[{time.monotonic() - self.t0:.0f}s] {why or 'no reason logged'}")
        self.say(f"database: MariaDB stopped by itself ({why or 'no reason logged'}); "
                 "freeing the disk and starting it again")
        if self.disk:
            self.free_disk()
        self.start_database()
        self.counts["database_restarts"] += 1
        self.counts["database_recoveries"] += 1
        return srv.mariadb_answers(timeout=30)

    def disk_full(self):
        filler = os.path.join(self.servers.mount, "soak-filler.bin")
        chunk = b"\0" * (1 << 20)
        written = 0
        try:
            with open(filler, "wb") as f:
                while True:
                    f.write(chunk)
                    f.flush()
                    written += len(chunk)
        except OSError as e:
            if e.errno != errno.ENOSPC:
                raise
        hold = self.rng.uniform(3, 10)
        self.note(f"disk full: {written >> 20} MiB filler written until ENOSPC; hold {hold:.1f}s")
        end = time.monotonic() + hold
        # Work that needs new pages (new rows, 64 KiB dead letters), so checkpoints fail meanwhile.
        self.burst(self.rng.randint(2000, 8000), poison=True)
        if self.args.database_dies:
            self.note("disk full: kill -9 mariadbd (--database-dies-on-full-disk)")
            self.servers.kill9("mariadb")
        # InnoDB may abort itself on the full disk; then the hold ends early (nothing to wait for).
        while time.monotonic() < end and self.servers.mariadb_running():
            time.sleep(0.25)
        self.free_disk()
        self.counts["disk_full_episodes"] += 1
        self.ensure_database()

    # ------------------------------------------------------------------ the run
    def chaos(self):
        actions = {"burst": (self.burst, 4), "kill": (self.kill, 3),
                   "broker": (self.restart_broker, 1), "database": (self.restart_database, 1)}
        if self.disk:
            actions["disk-full"] = (self.disk_full, 1)
        actions = {k: v for k, v in actions.items() if k == "burst" or k in self.args.faults}
        first = list(actions)
        self.rng.shuffle(first)
        self.chaos_start = time.monotonic()
        deadline = self.chaos_start + self.args.minutes * 60
        last_report = time.monotonic()
        while time.monotonic() < deadline or first:
            if first:
                name = first.pop(0)
            else:
                names = sorted(actions)
                name = self.rng.choices(names, [actions[n][1] for n in names])[0]
            actions[name][0]()
            self.check_procs()
            self.ensure_database()
            self.positions()
            time.sleep(self.rng.uniform(1, 4))
            self.check_procs()
            if time.monotonic() - last_report > 30 and time.monotonic() < deadline:
                last_report = time.monotonic()
                self.say(self.progress())

    def progress(self):
        c = self.counts
        return (f"{self.produced:,} records published ({c['poison']} poison), {c['kills']} kills, "
                f"{c['broker_restarts']} broker restarts, {c['database_restarts']} database "
                f"restarts, {c['disk_full_episodes']} disk-full episodes")

    def drain(self):
        offs = self.end_offsets()
        total = sum(offs.values())
        if total != self.produced:
            self.problem(f"the topic holds {total} records, {self.produced} were published")
        self.fault_duration = time.monotonic() - self.chaos_start
        self.say(f"faults stopped; waiting for the committed positions to reach {total}")
        timeout = 300 if self.args.minutes < 10 else 900
        deadline = time.monotonic() + timeout
        last = None
        last_db_check = 0
        while time.monotonic() < deadline:
            self.check_procs()
            if time.monotonic() - last_db_check > 5:
                last_db_check = time.monotonic()
                self.ensure_database()
            pos = self.positions()
            last = pos
            if pos is not None and all(pos.get(p, 0) >= o for p, o in offs.items()):
                break
            time.sleep(1)
        else:
            self.problem(f"the committed positions {last} did not reach the end offsets {offs} "
                         f"within {timeout}s")
        self.drain_time = time.monotonic()
        for label, pr in sorted(self.procs.items()):
            if pr.alive():
                pr.p.send_signal(signal.SIGTERM)
        for label, pr in sorted(self.procs.items()):
            try:
                rc = pr.p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                pr.p.kill()
                pr.p.wait()
                rc = "no exit within 60s of SIGTERM"
            pr.close()
            if rc != 0:
                self.problem(f"sluice {label} after SIGTERM: exit {rc}:\n{pr.tail()}")
        self.positions()

    def verify(self):
        c = self.counts
        wanted = {"poison": "burst", "kills": "kill", "broker_restarts": "broker",
                  "database_restarts": "database", "disk_full_episodes": "disk-full"}
        if self.args.database_dies and self.disk and c["disk_full_episodes"] \
                and c["database_recoveries"] < c["disk_full_episodes"]:
            self.problem(f"{c['disk_full_episodes']} disk-full episodes killed MariaDB, but the "
                         f"driver brought it back {c['database_recoveries']} times")
        for what, fault in wanted.items():
            if fault in self.args.faults + ["burst"] and (self.disk or fault != "disk-full") \
                    and not c[what]:
                self.problem(f"the run had no {what.replace('_', ' ')}: it proves nothing about them")
        self.say("recomputing the expected table and dead letters")
        expected_db = os.path.join(self.workdir, "expected.db")
        expected_dlq = os.path.join(self.workdir, "expected.dlq.ndjson")
        stats = rr.recompute(self.produced_file, JOBS, expected_db, "kafka", expected_dlq)
        self.stats = stats
        # The raw bytes of each dead letter's record, by the text the recomputation saw (it
        # reads the file as UTF-8 with replacement characters); poison records carry a sequence
        # number, so equal texts are equal records.
        with open(expected_dlq, encoding="utf-8") as f:
            dead = [json.loads(ln) for ln in f]
        wanted = {d["payload"] for d in dead}
        raw_by_text = {}
        with open(self.produced_file, "rb") as f:
            for raw in f:
                raw = raw.rstrip(b"\n")
                text = raw.decode("utf-8", "replace")
                if text in wanted:
                    raw_by_text.setdefault(text, raw)
        expected = Counter()
        for d in dead:
            raw = raw_by_text[d["payload"]]
            cat = "decode" if d["reason"].startswith("decode") else d["reason"]
            expected[(hashlib.sha256(raw).hexdigest(), cat)] += 1

        # The table.
        sink_rows = []
        if self.args.sink_poison:
            import sqlite3
            con = sqlite3.connect(expected_db)
            sink_rows = con.execute(f"SELECT {', '.join(KEY)} FROM events WHERE bid_set > ?",
                                    (DECIMAL_10_2_MAX,)).fetchall()
            con.execute("DELETE FROM events WHERE bid_set > ?", (DECIMAL_10_2_MAX,))
            con.commit()
            con.close()
        got_csv = os.path.join(self.workdir, "events.csv")
        rows = self.servers.mysql(f"SELECT * FROM `{DATABASE}`.`{TABLE}`", timeout=300)
        import csv
        with open(got_csv, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f, lineterminator="\n")
            for r in rows:
                w.writerow(["" if v is None else v for v in r])
        self.rows = len(rows) - 1
        for d in compare_tables.compare(got_csv, expected_db, KEY):
            self.problem(f"events vs recomputation: {d}")

        # The dead letters.
        got = Counter()
        sink_letters = []
        letters = self.servers.mysql(
            "SELECT `payload_sha256`, `reason`, `partition`, `offset` FROM "
            f"`{DATABASE}`.`_sluice_dead_letters` WHERE `pipeline` = '{NAME}'", timeout=300)[1:]
        for sha, reason, part, off in letters:
            cat = "decode" if reason.startswith("decode") else reason
            if (sha, cat) not in expected and self.args.sink_poison and cat not in (
                    "decode", NO_EVENT_TIME):
                sink_letters.append((sha, reason))
                continue
            got[(sha, cat)] += 1
        self.dead_letters = len(letters)
        missing = expected - got
        extra = got - expected
        for (sha, cat), n in list(missing.items())[:10]:
            kinds = [k for k, s, _ in self.poison if s == sha]
            self.problem(f"dead letter missing x{n}: sha256 {sha[:16]}.. reason {cat!r}"
                         + (f" (poison: {kinds[0]})" if kinds else ""))
        for (sha, cat), n in list(extra.items())[:10]:
            self.problem(f"unexpected dead letter x{n}: sha256 {sha[:16]}.. reason {cat!r}")
        if len(missing) + len(extra) > 20:
            self.problem(f"{sum(missing.values())} dead letters missing, "
                         f"{sum(extra.values())} unexpected in all")
        # Every poison record by its own check, so a failure names its kind.
        for kind, sha, expect in self.poison:
            if expect in ("ignored", "sink"):
                continue
            cat = "decode" if expect == "decode" else NO_EVENT_TIME
            if got[(sha, cat)] != 1:
                self.problem(f"poison record '{kind}' ({sha[:16]}..) is {got[(sha, cat)]} times in "
                             f"the dead letters with reason {cat!r}")
        if self.args.sink_poison and len(sink_letters) < len(sink_rows):
            self.problem(f"{len(sink_rows)} rows the sink must reject (bid_set beyond "
                         f"DECIMAL(10,2)), {len(sink_letters)} sink dead letters")

    def log_counts(self):
        """What the sluice processes logged about the faults: checkpoints that failed on a full
        disk (error 1114), retries of an unreachable sink, checkpoints that failed otherwise."""
        n = Counter()
        logdir = getattr(self, "logdir", None)
        for name in sorted(os.listdir(logdir)) if logdir and os.path.isdir(logdir) else []:
            with open(os.path.join(self.logdir, name), "rb") as f:
                for ln in f.read().decode("utf-8", "replace").splitlines():
                    if "checkpoint" in ln and "failed" in ln:
                        n["checkpoint_failures_disk_full" if "error 1114" in ln
                          else "checkpoint_failures_other"] += 1
                    elif "sink not available" in ln or "sink not reachable" in ln:
                        n["sink_unreachable_retries"] += 1
                    elif "reading positions from the sink failed" in ln:
                        n["position_reads_failed"] += 1
        return dict(n)

    def summary(self, status):
        c = self.counts
        duration = time.monotonic() - self.t0
        s = {
            "status": status, "seed": self.args.seed, "minutes_asked": self.args.minutes,
            "duration_s": round(duration, 1),
            "records": self.produced, "bursts": c["bursts"], "poison_records": c["poison"],
            "kills": c["kills"], "broker_restarts": c["broker_restarts"],
            "database_restarts": c["database_restarts"],
            "database_recoveries": c["database_recoveries"],
            "database_stopped_by_itself": self.db_stops,
            "disk_full_episodes": c["disk_full_episodes"],
            "disk_full": "tmpfs" if self.disk else "not available (no permission to mount)",
            "unexpected_exits": c["unexpected_exits"],
            "sluice_starts": sum(self.starts.values()),
            "fault_duration_s": round(getattr(self, "fault_duration", 0), 1),
            "logged": self.log_counts(),
            "rows": getattr(self, "rows", None),
            "dead_letters": getattr(self, "dead_letters", None),
            "expected": {k: self.stats[k] for k in ("read", "ignored", "dead_lettered", "counted",
                                                    "rows")} if hasattr(self, "stats") else None,
            "problems": self.problems[:50],
            "sink_poison": self.args.sink_poison,
            "faults": self.args.faults,
            "machine": machine(),
        }
        path = self.args.summary_json or os.path.join(self.workdir, "summary.json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(s, f, indent=2)
            f.write("\n")
        m, sec = divmod(int(duration), 60)
        print(f"soak: {status} in {m}m{sec:02d}s: {self.produced:,} records ({c['poison']} poison), "
              f"{c['kills']} kills, {c['broker_restarts']} broker restarts, "
              f"{c['database_restarts']} database restarts ({c['database_recoveries']} after MariaDB "
              f"stopped by itself), {c['disk_full_episodes']} disk-full "
              f"episodes, {c['unexpected_exits']} unexpected exits; {len(self.problems)} problems "
              f"(summary: {path})", flush=True)

    def cleanup(self):
        for pr in self.procs.values():
            if pr.alive():
                pr.p.kill()
                pr.p.wait()
            pr.close()
        if self.servers.mariadb_port:
            run([SERVICES, "down", "mariadb", "kafka"], timeout=180, env=self.servers.env())
        self.servers.unmount_all()
        self.events.close()


def machine():
    cpu = "?"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for ln in f:
                if ln.startswith("model name"):
                    cpu = ln.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = "?"
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            kb = int(f.readline().split()[1])
            mem = f"{kb / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return f"{os.cpu_count()} cores ({cpu}), {mem} RAM, load {os.getloadavg()[0]:.1f} at the end"


def missing_tools():
    missing = []
    if not (shutil.which("mariadbd") or os.access("/usr/sbin/mariadbd", os.X_OK)):
        missing.append("mariadbd (mariadb-server)")
    for tool, pkg in (("mariadb", "mariadb-client"), ("kcat", "kcat"), ("java", "openjdk-17-jre-headless")):
        if not shutil.which(tool) and not (tool == "java" and any(
                os.path.exists(f"/usr/lib/jvm/{d}/bin/java") for d in os.listdir("/usr/lib/jvm")
                if os.path.isdir("/usr/lib/jvm"))):
            missing.append(f"{tool} ({pkg})")
    return missing


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--minutes", type=float, default=2.5, help="how long faults are injected")
    ap.add_argument("--seed", type=int, default=int(time.time()) % 100000)
    ap.add_argument("--workdir", default=os.path.join(REPO, "build", "soak"))
    ap.add_argument("--summary-json")
    ap.add_argument("--sink-poison", action="store_true",
                    help="also publish records the sink must reject (a bid_set beyond DECIMAL(10,2))")
    ap.add_argument("--no-disk-full", dest="disk_full", action="store_false")
    ap.add_argument("--faults", default="kill,broker,database,disk-full",
                    help="the kinds of fault to inject, comma-separated (default: all four)")
    ap.add_argument("--database-dies-on-full-disk", dest="database_dies", action="store_true",
                    help="kill -9 MariaDB in every disk-full hold, as InnoDB's own abort does "
                         "at times: checks that the driver brings it back")
    ap.add_argument("--keep", action="store_true", help="keep WORKDIR's data after a pass")
    args = ap.parse_args()
    args.sluice = os.path.abspath(args.sluice)
    args.faults = [f for f in args.faults.split(",") if f]
    unknown = set(args.faults) - {"kill", "broker", "database", "disk-full"}
    if unknown:
        ap.error(f"unknown fault kinds {sorted(unknown)} (kill, broker, database, disk-full)")

    missing = missing_tools()
    if missing:
        return harness.Checks().missing(f"missing {', '.join(missing)} (scripts/install-deps.sh)")

    workdir = os.path.abspath(args.workdir)
    Servers(workdir, lambda m: None).stop_stale()
    # The Kafka jars services.sh copied from ~/.m2 last time are kept: copying them takes ~20 s.
    libs = os.path.join(workdir, "svc", "kafka", "libs")
    kept = os.path.join(os.path.dirname(workdir), f".{os.path.basename(workdir)}-kafka-libs")
    if os.path.isdir(libs):
        shutil.rmtree(kept, ignore_errors=True)
        os.rename(libs, kept)
    shutil.rmtree(workdir, ignore_errors=True)
    os.makedirs(workdir, exist_ok=True)
    if os.path.isdir(kept):
        os.makedirs(os.path.dirname(libs))
        os.rename(kept, libs)
    print(f"soak: seed {args.seed}, {args.minutes} min of faults, workdir {workdir}", flush=True)
    soak = Soak(args)

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_signal)
    status = "FAIL"
    try:
        soak.setup()
        soak.chaos()
        soak.say(soak.progress())
        soak.drain()
        soak.verify()
        status = "PASS" if not soak.problems else "FAIL"
    except KeyboardInterrupt as e:
        soak.problem(f"interrupted ({e})")
    except Exception as e:  # noqa: BLE001 - reported, then the servers are stopped
        import traceback
        soak.problem(f"{type(e).__name__}: {e}\n{traceback.format_exc()}")
    finally:
        soak.cleanup()
    soak.summary(status)
    if status == "PASS" and not args.keep:
        for sub in ("svc/mariadb", "svc/kafka/data", "published.ndjson", "expected.db",
                    "burst.ndjson", "burst.keyed"):
            p = os.path.join(workdir, sub)
            shutil.rmtree(p, ignore_errors=True) if os.path.isdir(p) else (
                os.path.exists(p) and os.remove(p))
    return 0 if status == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
