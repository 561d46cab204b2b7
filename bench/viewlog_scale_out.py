"""The viewlog pipeline from Kafka over 1, 2 and 3 processes of one consumer group (issue 16), for
bench/run.py (`--only viewlog_scale_out`).

The pipeline is tests/integration/scale_out_viewlog.toml with examples/viewlog.toml's Parquet
sink (partitioned by network_id and minute_timestamp): append mode, 1-minute windows,
watermark_delay 10s, allowed_lateness 30s, idle_timeout 1h, and `[source] keyed_by =
["campaign_id"]` over an 8-partition topic where each campaign is in one partition (campaign c
in partition c % 8): each window belongs to one partition's task (variant "keyed"). The
"repartition" variant runs the same records without `keyed_by` from a second 8-partition topic
whose producers do not key by the group key (record i of the keyed topic's partition p goes to
partition (p + i) % 8, keyed by its view id, so every campaign is in every partition): each
process runs both stages of issue 16 (stage one into `<pipeline>-repartition`, stage two from
it into the Parquet sink), and its CPU per event minus the keyed row's is the repartition
stage's cost per event (logged, and as `extra_cpu_us_per_event_vs_keyed` in its rows). A
repartition run whose log does not say it repartitioned (a build that runs such a pipeline into
Parquet in one stage) lists the variant as not measured rather than measuring one stage under
its name.

Two measurements per process count N:

  throughput  the seeded input of tests/integration/scale_out_append_test.py (out of order, 2%
              15-150 s behind, about 4% invalid), pre-loaded into a fresh topic; N processes
              start at once with --until-caught-up and must all exit 0. events/CPU-s = records /
              (user + sys CPU of all N processes); wall = first start to last exit. REPEATS
              rounds over the counts in turn; each row is its median run by CPU.
  freshness   a fresh topic; N processes run (no --until-caught-up) while a paced producer
              sends records at a fixed rate for a fixed time, with event times that follow the
              wall clock SPEED (6) times as fast, so that windows close every 10 s. A window
              can be written once every partition's watermark has passed
              its end + allowed_lateness, that is once every partition holds a counted record
              with a start time >= end + allowed_lateness + watermark_delay: the latest of
              those records' production times (Kafka CreateTime, read back) is the window's
              earliest possible time. freshness(window) = the moment its Parquet file appeared
              (the dataset directory is listed every 50 ms) - that earliest possible time: the
              delay sluice adds (fetch, checkpoint interval, commit, and with N > 1 learning the
              other processes' committed progress).

Every run's dataset and dead letters are checked against recompute_viewlog.py's --by-partition
recomputation of the records read back from the topic (each window exactly once, equal values;
dead letters as a set of (partition, offset, reason)); a difference raises WrongResult. The
check is checked too: with one expected row dropped and with one count changed it must report a
difference, or the benchmark aborts. `fault` ("drop-row", "drop-dead-letter") damages the output
before the check, to show that it fails.

On the 2-core development machine 3 processes (each with its own worker and client threads)
measure what coordination costs, not a speed-up.
"""

import datetime as dt
import glob
import json
import os
import random
import re
import shutil
import signal
import subprocess
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

import recompute_viewlog as rv  # noqa: E402  (bench/run.py puts tests/tools on the path)
import scale_out_append_test as sat  # noqa: E402  (and tests/integration)
import viewlog_output  # noqa: E402
import dead_letters  # noqa: E402

PROCESSES = (1, 2, 3)
PARTITIONS = sat.PARTITIONS
VARIANTS = {"keyed": "keyed_by campaign_id (no repartition stage)",
            "repartition": "no keyed_by, producers keyed by view id: both stages of the repartition "
                           "stage in each process"}
NOT_BUILT = {}
# Throughput load, records (full, quick): per partition a eighth of it.
EVENTS = (320_000, 40_000)
# Catch-up runs per process count (full, quick): a single run on the busy 2-core machine varies
# by a third from one run to the next.
REPEATS = (3, 1)
# Freshness: (records/s, seconds) (full, quick). Event time runs SPEED times as fast as the wall
# clock, so the 1-minute windows close every 10 s of the run (all 40 campaigns' at once), the
# first 7.5 s in (it ends 5 event-s in; + 30 s lateness + 10 s delay).
FRESH = ((2_000, 120), (1_000, 40))
SPEED = 6
FAULTS = ("drop-row", "drop-dead-letter")
SINK_SECTION = sat.ParquetSink.section(None)
CLAIM = re.compile(r"(\w+)\[(\d+)\]: task claimed \(fence \d+\)")
SOURCE = "views"  # the pipeline's [source] name (stage two's is views_repartition)


class CheckFailed(Exception):
    """The output differs from the recomputation (bench/run.py turns it into WrongResult)."""


class NotRepartitioned(Exception):
    """A repartition run went in one stage (a build that does not repartition into Parquet):
    the variant is listed as not measured."""


def pipeline_file(work, variant="keyed"):
    """scale_out_viewlog.toml with the Parquet sink section of examples/viewlog.toml; for the
    "repartition" variant without its `keyed_by` line (the stage re-keys instead)."""
    with open(sat.PIPELINE, encoding="utf-8") as f:
        head, sep, _ = f.read().partition("\n[sink]\n")
    if not sep:
        raise RuntimeError("%s has no [sink] section" % sat.PIPELINE)
    if variant == "repartition":
        keyed = 'keyed_by = ["campaign_id"]\n'
        if keyed not in head:
            raise RuntimeError("%s has no line %r" % (sat.PIPELINE, keyed))
        head = head.replace(keyed, "")
    path = os.path.join(work, "scale_out_viewlog_parquet_%s.toml" % variant)
    with open(path, "w", encoding="utf-8") as f:
        f.write(head + "\n" + SINK_SECTION)
    return path


def read_back(topic):
    """[(partition, offset, create_time_ms, payload)] of every record of topic (kcat)."""
    p = subprocess.run(["kcat", "-C", "-b", sat.BROKER, "-t", topic, "-e", "-q",
                        "-f", "%p\t%o\t%T\t%s\n"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=300)
    if p.returncode != 0:
        raise RuntimeError("kcat -C %s exited %d: %s" % (topic, p.returncode, p.stderr[-500:]))
    out = []
    for ln in p.stdout.split(b"\n"):
        if ln:
            part, off, ts, payload = ln.split(b"\t", 3)
            out.append((int(part), int(off), int(ts), payload))
    return out


def recompute(records, campaigns):
    by_part = {p: [] for p in range(PARTITIONS)}
    for p, o, _, payload in records:
        by_part[p].append((o, payload))
    for v in by_part.values():
        v.sort()
    return rv.recompute_by_partition(by_part, campaigns, watermark_delay=sat.DELAY,
                                     allowed_lateness=sat.LATENESS)


def read_output(out_dir):
    """(rows, [(partition, offset, reason class)], problems) of a Parquet dataset."""
    rows, problems, _ = viewlog_output.read_parquet_output(out_dir)
    entries, dl_problems = dead_letters.load_dlq(os.path.join(out_dir, "_sluice", "dead_letters"))
    letters = [(e["partition"], e["offset"], rv.reason_class(e["reason"])) for e in entries]
    return rows, letters, problems + dl_problems


def differences(rows, letters, expected):
    """Problems of (rows, letters) against a recompute_by_partition result."""
    problems = rv.compare_rows(rows, expected["rows"])
    want = sorted((p, o, rv.reason_class(r)) for r, _, p, o in expected["dead_letters"])
    got = sorted(letters)
    if len(set(got)) != len(got):
        problems.append("%d dead letters written twice" % (len(got) - len(set(got))))
    if set(got) != set(want):
        missing, extra = set(want) - set(got), set(got) - set(want)
        problems.append("dead letters differ: %d missing (e.g. %s), %d unexpected (e.g. %s)" % (
            len(missing), sorted(missing)[:2], len(extra), sorted(extra)[:2]))
    return problems


def check(out_dir, expected, label):
    """Compares the dataset with the recomputation; raises CheckFailed. Also requires the
    comparison to notice a dropped row and a changed count (a check that cannot fail is none).
    Returns the check's text for the results."""
    rows, letters, problems = read_output(out_dir)
    problems += differences(rows, letters, expected)
    if problems:
        raise CheckFailed("%s: the Parquet dataset differs from recompute_viewlog "
                          "--by-partition:\n  %s" % (label, "\n  ".join(problems[:10])))
    if not expected["rows"]:
        raise CheckFailed("%s: the recomputation closes no window: nothing was checked" % label)
    changed = [dict(r) for r in rows]
    changed[len(changed) // 2]["total_count"] += 1
    if not differences(rows[1:], letters, expected) or not differences(changed, letters, expected):
        raise CheckFailed("%s: the check does not notice a dropped or changed row" % label)
    return "== recompute_viewlog --by-partition (%d rows, %d dead letters)" % (
        len(rows), len(letters))


def damage(out_dir, fault):
    """Damages a dataset the way a wrong engine would: one row gone, or one dead letter gone."""
    import pyarrow.parquet as pq
    if fault == "drop-row":
        files = sorted(glob.glob(os.path.join(out_dir, "network_id=*", "*", "*.parquet")))
        t = pq.read_table(files[0], partitioning=None)
        pq.write_table(t.slice(1), files[0])
        return "dropped a row of %s" % os.path.relpath(files[0], out_dir)
    files = sorted(glob.glob(os.path.join(out_dir, "_sluice", "dead_letters", "*.ndjson")))
    with open(files[0], "rb") as f:
        lines = f.readlines()
    with open(files[0], "wb") as f:
        f.writelines(lines[1:])
    return "dropped a dead letter of %s" % os.path.relpath(files[0], out_dir)


class Procs:
    """N `sluice run` processes of one pipeline; CPU and peak RSS of each from wait4 and
    /proc (PeakRss of bench/run.py)."""

    def __init__(self, bench, label, n, cmd_for):
        self.bench, self.label = bench, label
        self.procs, self.peaks, self.errs, self.ru = [], [], [], {}
        self.start = time.monotonic()
        for i in range(n):
            err = os.path.join(bench.work, "%s-%d.stderr" % (label, i))
            self.errs.append(err)
            with open(err, "w") as f:
                p = subprocess.Popen(cmd_for(i), cwd=REPO, stdout=subprocess.DEVNULL, stderr=f)
            self.procs.append(p)
            self.peaks.append(bench.peak_rss(p.pid))
        self.end = None

    def wait(self, timeout):
        """Waits for every process; returns {index: exit code} (None: killed at the timeout)."""
        deadline = time.monotonic() + timeout
        codes = {}
        while len(codes) < len(self.procs):
            for i, p in enumerate(self.procs):
                if i in codes:
                    continue
                pid, status, ru = os.wait4(p.pid, os.WNOHANG)
                if pid == p.pid:
                    codes[i] = os.waitstatus_to_exitcode(status)
                    self.ru[i] = ru
                    p.returncode = codes[i]
            if len(codes) < len(self.procs) and time.monotonic() > deadline:
                for i, p in enumerate(self.procs):
                    if i not in codes:
                        p.kill()
                        _, status, self.ru[i] = os.wait4(p.pid, 0)
                        p.returncode = codes[i] = None
                break
            time.sleep(0.01)
        self.end = time.monotonic()
        self.rss = [pk.stop() for pk in self.peaks]
        return codes

    def terminate(self, timeout):
        for p in self.procs:
            p.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def cpu(self):
        return sum(r.ru_utime + r.ru_stime for r in self.ru.values())

    def claimed(self):
        """Partitions whose task each process claimed (its log), as sorted lists."""
        out = []
        for err in self.errs:
            with open(err, errors="replace") as f:
                out.append(sorted({int(m.group(2)) for m in CLAIM.finditer(f.read())
                                   if m.group(1) == SOURCE}))
        return out

    def repartitioned(self):
        """True when every process's log says it ran the two stages of a repartitioned run."""
        for err in self.errs:
            with open(err, errors="replace") as f:
                if "repartitions through topic" not in f.read():
                    return False
        return True

    def tail(self, i):
        with open(self.errs[i], errors="replace") as f:
            return f.read()[-1500:]


class ScaleOut:
    def __init__(self, bench, fault=None):
        self.bench = bench
        self.fault = fault
        self.work = os.path.join(bench.work, "scale-out")
        os.makedirs(self.work, exist_ok=True)
        self.pipelines = {v: pipeline_file(self.work, v) for v in VARIANTS}
        self.campaigns = os.path.join(self.work, "campaigns.csv")
        sat.campaigns_csv(self.campaigns)

    def name(self, what, n):
        return "%s_scaleview_%s_%dp_%s" % (self.bench.args.prefix, what, n, self.bench.stamp)

    def cmd(self, name, topic, out, extra=(), variant="keyed"):
        v = {"NAME": name, "GROUP": name, "VIEWS": "kafka://%s/%s" % (sat.BROKER, topic),
             "CAMPAIGNS": self.campaigns, "SINK": "parquet:" + out}
        cmd = [self.bench.sluice, "run", self.pipelines[variant]]
        for k, x in v.items():
            cmd += ["--var", "%s=%s" % (k, x)]
        return cmd + list(extra)

    def checked(self, out, expected, label):
        if self.fault:
            self.bench.log("%s: FAULT INJECTED (--scale-out-fault): %s" % (
                label, damage(out, self.fault)))
        return check(out, expected, label)

    # ------------------------------------------------------------ throughput
    def catch_up(self, n, variant, round_):
        """One catch-up run of n processes; checked. Returns its measurements."""
        name = self.name("catchup_%s_r%d" % (variant, round_), n)
        out = os.path.join(self.work, "out-catchup-%s-%dp" % (variant, n))
        shutil.rmtree(out, ignore_errors=True)
        load = os.getloadavg()
        procs = Procs(self.bench, "scaleview-catchup-%s-%dp" % (variant, n), n,
                      lambda i: self.cmd(name, self.topics[variant], out, ["--until-caught-up"], variant))
        codes = procs.wait(900)
        bad = {i: c for i, c in codes.items() if c != 0}
        if bad:
            i = sorted(bad)[0]
            raise RuntimeError("viewlog scale-out %dp: process %d exited %s:\n%s" % (
                n, i, bad[i], procs.tail(i)))
        if variant == "repartition" and not procs.repartitioned():
            raise NotRepartitioned("this build runs the pipeline without keyed_by into Parquet in one "
                                   "stage (no 'repartitions through topic' in its log)")
        chk = self.checked(out, self.expected_by[variant], "viewlog_kafka_%dp_%s" % (n, variant))
        claimed = procs.claimed()
        if any(not c for c in claimed):
            # Every process must have read something, or n processes were not measured.
            raise RuntimeError("viewlog scale-out %dp: a process claimed no partition (%s)" % (
                n, claimed))
        ru = [r for _, r in sorted(procs.ru.items())]
        return {"wall": procs.end - procs.start, "cpu": procs.cpu(),
                "user": sum(r.ru_utime for r in ru), "sys": sum(r.ru_stime for r in ru),
                "each": [round(r.ru_utime + r.ru_stime, 2) for r in ru], "rss": procs.rss,
                "claimed": claimed, "load": load, "check": chk}

    def throughput(self, n_procs, variant="keyed"):
        """The catch-up rows of one variant (VARIANTS) over the pre-loaded topic: REPEATS rounds
        over the process counts in turn (so that a change of load hits every count alike); each
        row is the run with the median CPU, with every run's CPU alongside."""
        if variant not in VARIANTS:
            raise RuntimeError("variant %s: %s" % (variant, NOT_BUILT.get(variant, "unknown")))
        events = EVENTS[1 if self.bench.quick else 0]
        runs = {n: [] for n in n_procs}
        for round_ in range(REPEATS[1 if self.bench.quick else 0]):
            for n in n_procs:
                try:
                    runs[n].append(self.catch_up(n, variant, round_))
                except NotRepartitioned as e:
                    self.bench.skipped["viewlog_scale_out_" + variant] = str(e)
                    self.bench.log("viewlog_kafka_%s: not measured: %s" % (variant, e))
                    return []
                m = runs[n][-1]
                self.bench.log("viewlog_kafka_%dp_%s round %d: %.2f CPU-s, %.2f s" % (
                    n, variant, round_ + 1, m["cpu"], m["wall"]))
        rows = []
        for n in n_procs:
            ordered = sorted(runs[n], key=lambda m: m["cpu"])
            m = ordered[(len(ordered) - 1) // 2]
            label = "viewlog_kafka_%dp_%s" % (n, variant)
            note = ("%s; median of %d runs by CPU (all: %s CPU-s); partitions claimed per process "
                    "%s; CPU per process %s s; load average at start %.1f" % (
                        VARIANTS[variant], len(ordered),
                        ", ".join("%.2f" % x["cpu"] for x in runs[n]), m["claimed"], m["each"],
                        m["load"][0]))
            self.bench.record(label, "kafka (8 partitions, %d process%s, --until-caught-up)" % (
                n, "es" if n > 1 else ""), "parquet", events, m["wall"], m["user"], m["sys"],
                sum(m["rss"]), m["check"], note=note)
            r = self.bench.results[-1]
            r.update({"processes": n, "variant": variant, "partitions_claimed": m["claimed"],
                      "cpu_s_each": m["each"], "runs": len(ordered),
                      "cpu_s_runs": [round(x["cpu"], 3) for x in runs[n]],
                      "wall_s_runs": [round(x["wall"], 3) for x in runs[n]],
                      "load_average_at_start": [round(x, 2) for x in m["load"]],
                      "peak_rss_mib_each": [round(x, 1) for x in m["rss"]]})
            rows.append(r)
        if variant == "repartition":
            self.repartition_cost(n_procs, events)
        return rows

    def repartition_cost(self, n_procs, events):
        """Logs and records the repartition rows' CPU per event minus the keyed rows'."""
        by_name = {r["name"]: r for r in self.bench.results if "name" in r}
        for n in n_procs:
            keyed = by_name.get("viewlog_kafka_%dp_keyed" % n)
            rep = by_name.get("viewlog_kafka_%dp_repartition" % n)
            if not keyed or not rep:
                continue
            cpu = lambda r: r["cpu_user_s"] + r["cpu_sys_s"]  # noqa: E731
            extra = (cpu(rep) - cpu(keyed)) / events * 1e6
            rep["extra_cpu_us_per_event_vs_keyed"] = round(extra, 2)
            self.bench.log("viewlog_kafka_%dp: the repartition stage costs %.2f CPU-us per event "
                           "(%.2f vs %.2f CPU-s for %d events)" % (n, extra, cpu(rep), cpu(keyed), events))

    def prepare_load(self):
        events = EVENTS[1 if self.bench.quick else 0]
        self.topics, self.expected_by = {}, {}
        records = sat.make_records(random.Random(16), events // PARTITIONS)
        # keyed: campaign c in partition c % 8; repartition: the same records spread over every
        # partition, keyed by view id (producers that do not key by the group key).
        # Record by record in time order (index i of every partition before index i + 1), so
        # each partition of the spread topic stays as much in event-time order as the keyed one.
        spread = {p: [] for p in range(PARTITIONS)}
        for i in range(max(len(recs) for recs in records.values())):
            for p, recs in sorted(records.items()):
                if i < len(recs):
                    spread[(p + i) % PARTITIONS].append(("v%d-%d" % (p, i), recs[i][1]))
        for variant, layout in (("keyed", records), ("repartition", spread)):
            if variant not in VARIANTS:
                continue
            topic = self.bench.kafka_topic("scaleview" if variant == "keyed" else "scaleview_unkeyed", PARTITIONS)
            self.bench.log("pre-loading %d viewlog records (scale_out_append_test's generator, %s) into %s" % (
                events, "campaign c in partition c % 8" if variant == "keyed" else "keyed by view id", topic))
            for p, recs in layout.items():
                sat.kcat_produce(topic, p, recs, batch=1000)
            back = read_back(topic)
            if len(back) != events:
                raise RuntimeError("%s holds %d records, produced %d" % (topic, len(back), events))
            self.topics[variant] = topic
            self.expected_by[variant] = recompute(back, self.campaigns)
            e = self.expected_by[variant]
            self.bench.log("recomputation (%s): %d rows written, %d windows open, dead letters %s" % (
                variant, len(e["rows"]), e["open_windows"], dict(e["reasons"])))

    # ------------------------------------------------------------ freshness
    def freshness(self, n_procs):
        rate, duration = FRESH[1 if self.bench.quick else 0]
        out_rows = []
        for n in n_procs:
            topic = self.bench.kafka_topic("scaleview_fresh_%dp" % n, PARTITIONS)
            name = self.name("fresh", n)
            out = os.path.join(self.work, "out-fresh-%dp" % n)
            shutil.rmtree(out, ignore_errors=True)
            os.makedirs(out)
            load = os.getloadavg()
            seen = FileWatch(out)
            procs = Procs(self.bench, "scaleview-fresh-%dp" % n, n,
                          lambda i: self.cmd(name, topic, out))
            try:
                time.sleep(6)  # the group's first rebalance waits 3 s for more members
                for i, p in enumerate(procs.procs):
                    if p.poll() is not None:
                        raise RuntimeError("process %d exited %s:\n%s" % (i, p.returncode,
                                                                          procs.tail(i)))
                self.bench.log("viewlog_fresh_%dp: producing %d records/s for %d s into %s" % (
                    n, rate, duration, topic))
                produced, behind = produce_paced(topic, rate, duration, random.Random(100))
                back = read_back(topic)
                if len(back) != produced:
                    raise RuntimeError("%s holds %d records, produced %d" % (
                        topic, len(back), produced))
                expected = recompute(back, self.campaigns)
                keys = {tuple(r[k] for k in rv.KEY) for r in expected["rows"]}
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline and not keys <= seen.keys():
                    time.sleep(0.2)
            finally:
                codes = procs.terminate(60)
                seen.stop()
            bad = {i: c for i, c in codes.items() if c != 0}
            if bad:
                i = sorted(bad)[0]
                raise RuntimeError("viewlog_fresh_%dp: process %d exited %s after SIGTERM:\n%s" % (
                    n, i, bad[i], procs.tail(i)))
            label = "viewlog_fresh_%dp" % n
            chk = self.checked(out, expected, label)
            lags = window_freshness(back, expected, seen, self.campaigns)
            cpu = procs.cpu()
            wall = procs.end - procs.start
            lags.sort()
            row = {"name": label, "processes": n, "variant": "keyed", "offered_rate": rate,
                   "duration_s": duration, "produced": produced,
                   "producer_max_behind_ms": round(behind * 1000, 1), "windows": len(lags),
                   "p50_ms": round(pct(lags, 0.5), 1), "p99_ms": round(pct(lags, 0.99), 1),
                   "max_ms": round(lags[-1], 1), "min_ms": round(lags[0], 1),
                   "sluice_cpu_s": round(cpu, 2), "sluice_wall_s": round(wall, 1),
                   "cpu_share": round(cpu / wall, 3),
                   "peak_rss_mib": round(sum(procs.rss), 1),
                   "partitions_claimed": procs.claimed(),
                   "load_average_at_start": [round(x, 2) for x in load], "check": chk}
            out_rows.append(row)
            self.bench.log("%s: window freshness p50 %.0f ms  p99 %.0f ms  max %.0f ms over %d "
                           "windows; %d records, sluice %.2f CPU-s (%.0f%% of a core) [%s]" % (
                               label, row["p50_ms"], row["p99_ms"], row["max_ms"], len(lags),
                               produced, cpu, 100 * row["cpu_share"], chk))
        return out_rows


def pct(xs, q):
    return xs[min(len(xs) - 1, int(q * len(xs)))]


class FileWatch:
    """Lists a dataset directory every 50 ms: the wall time each data file was first seen, and
    the window keys (network_id, minute_timestamp, campaign_id) of the files seen."""

    def __init__(self, out_dir, interval=0.05):
        self.dir, self.interval = out_dir, interval
        self.first = {}     # relative path -> wall time first seen
        self._keys = {}     # relative path -> set of keys (read once)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _scan(self):
        now = time.time()
        for root, dirs, names in os.walk(self.dir):
            dirs[:] = [d for d in dirs if not d.startswith((".", "_"))]
            for nm in names:
                if nm.endswith(".parquet") and not nm.startswith((".", "_")):
                    rel = os.path.relpath(os.path.join(root, nm), self.dir)
                    with self._lock:
                        self.first.setdefault(rel, now)

    def _run(self):
        while not self._stop.is_set():
            self._scan()
            self._stop.wait(self.interval)

    def stop(self):
        self._stop.set()
        self._thread.join()
        self._scan()

    def file_keys(self):
        """{window key: relative path of the file holding it}."""
        import pyarrow.parquet as pq
        with self._lock:
            paths = list(self.first)
        out = {}
        for rel in paths:
            if rel not in self._keys:
                m = re.fullmatch(r"network_id=(-?\d+)/minute_timestamp=([^/]+)/[^/]+\.parquet", rel)
                try:
                    ids = pq.read_table(os.path.join(self.dir, rel),
                                        partitioning=None).column("campaign_id").to_pylist()
                except Exception:  # removed or being replaced: read at the next call
                    continue
                self._keys[rel] = {(int(m.group(1)), m.group(2), c) for c in ids} if m else set()
            for k in self._keys[rel]:
                out.setdefault(k, rel)
        return out

    def keys(self):
        return set(self.file_keys())


def window_freshness(records, expected, seen, campaigns_path):
    """Per written window: the time its file was first seen - the window's earliest possible
    time (ms); see the module docstring."""
    campaigns = rv.load_campaigns(campaigns_path)
    delay = round(sat.DELAY * rv.MICROS)
    lateness = round(sat.LATENESS * rv.MICROS)
    # Per partition, in offset order: (start, create time) of the counted records, with the
    # running maximum of start, so the first record reaching a bound is a bisection away.
    import bisect
    runs = {}
    for p in range(PARTITIONS):
        recs = sorted((o, ts, raw) for q, o, ts, raw in records if q == p)
        highs, times, high = [], [], None
        wm = None
        for _, ts, raw in recs:
            rec, _ = rv.judge(raw, campaigns)
            if rec is None:
                continue
            we = rec["start"] // rv.WINDOW * rv.WINDOW + rv.WINDOW
            if wm is not None and we + lateness <= wm:
                continue  # late: does not move the watermark
            if high is None or rec["start"] > high:
                high = rec["start"]
                highs.append(high)
                times.append(ts)
                wm = high - delay
        runs[p] = (highs, times)
    where = seen.file_keys()
    lags = []
    for r in expected["rows"]:
        need = r["window_end"] + lateness + delay
        earliest = 0
        for highs, times in runs.values():
            i = bisect.bisect_left(highs, need)
            earliest = max(earliest, times[i])
        rel = where[tuple(r[k] for k in rv.KEY)]
        lags.append(seen.first[rel] * 1000.0 - earliest)
    return lags


def produce_paced(topic, rate, duration, rng):
    """Sends `rate` records/s for `duration` s: campaign c to partition c % 8 (one kcat per
    partition), start times following the wall clock SPEED times as fast, from 55 s before a
    minute (the first window ends 5 event-s in), up to 8 s out of order, 1% 15-150 s behind,
    1% without a view_id. Returns (records, worst lag behind the schedule in s)."""
    kcats = [subprocess.Popen(["kcat", "-P", "-b", sat.BROKER, "-t", topic, "-p", str(p), "-K",
                               "\t", "-z", "none", "-X", "linger.ms=5"], stdin=subprocess.PIPE,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for p in range(PARTITIONS)]
    t0 = time.time()
    base = dt.datetime(2026, 2, 1, 6, 0, 0) - dt.timedelta(seconds=55)
    total = int(rate * duration)
    sent, behind, i = 0, 0.0, 0
    try:
        while sent < total:
            now = time.time()
            due = min(total, int((now - t0) * rate) + 1)
            behind = max(behind, (now - t0) - sent / rate)
            lines = [[] for _ in range(PARTITIONS)]
            while sent < due:
                c = rng.choice(sat.CAMPAIGNS)
                t = base + dt.timedelta(seconds=SPEED * (time.time() - t0))
                start = t - dt.timedelta(seconds=rng.randint(0, 8),
                                         milliseconds=125 * rng.randint(0, 7))
                r = rng.random()
                if r < 0.01:
                    start = t - dt.timedelta(seconds=rng.randint(15, 150))
                end = start + dt.timedelta(milliseconds=125 * rng.randint(0, 4800))
                obj = {"view_id": "v%d" % i, "start_timestamp": sat.iso(start, rng),
                       "end_timestamp": sat.iso(end, rng), "campaign_id": c}
                if 0.01 <= r < 0.02:
                    obj["view_id"] = " "
                payload = json.dumps(obj, separators=(",", ":"))
                lines[sat.partition_of(c)].append("%d\t%s\n" % (c, payload))
                sent += 1
                i += 1
            for p, ls in enumerate(lines):
                if ls:
                    kcats[p].stdin.write("".join(ls).encode())
                    kcats[p].stdin.flush()
            time.sleep(0.01)
    finally:
        for k in kcats:
            k.stdin.close()
        for p, k in enumerate(kcats):
            if k.wait(timeout=60) != 0:
                raise RuntimeError("kcat -P %s[%d] exited %d: %s" % (topic, p, k.returncode,
                                                                    k.stderr.read()[-500:]))
    return sent, behind
