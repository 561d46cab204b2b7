"""Freshness measurement: how long after a record is produced to Kafka its effect is visible in
MySQL, for any engine (sluice, Spark) that reads the topic and writes the table.

The method (see bench/README.md):
  * every record of the input counts exactly once in a number the table exposes, e.g.
    SUM(clicks + conversion + qualified_application + disqualified_application) of `events`
    when the input has only counted recruitment events;
  * the records go to ONE partition, so the engine consumes them in order and every commit
    makes a prefix of them visible;
  * a paced producer (sluice_bench_fresh produce) sends them at a fixed rate and stamps each
    record's hand-over time;
  * a poller (sluice_bench_fresh poll) runs the SQL every few milliseconds and notes when the
    number changes;
  * record n (0-based) became visible at the first poll that returned a value > n;
    freshness(n) = that time - production time of n.

Standard library only, so any interpreter can use it.
"""

import array
import os
import subprocess
import sys


def percentile(sorted_values, q):
    """Nearest-rank percentile (q in 0..100) of an ascending list."""
    if not sorted_values:
        return None
    rank = max(1, int(-(-q * len(sorted_values) // 100)))  # ceil(q/100 * n)
    return sorted_values[min(rank, len(sorted_values)) - 1]


def read_times(path):
    """Production times written by `sluice_bench_fresh produce` (int64 micros per record)."""
    a = array.array("q")
    with open(path, "rb") as f:
        data = f.read()
    a.frombytes(data[: len(data) - len(data) % 8])
    if sys.byteorder != "little":
        a.byteswap()
    return a


def read_samples(path):
    """(wall_micros, value) pairs written by `sluice_bench_fresh poll`, in time order."""
    out = []
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 2:
                out.append((int(parts[0]), int(parts[1])))
    return out


def compute(produce_times, samples):
    """Freshness per record from production times and poll samples.

    Returns a dict: count (records measured), visible (records seen), p50_ms, p99_ms, max_ms,
    mean_ms. Records never seen are counted in `missing` (a run with missing > 0 is wrong)."""
    lat = []
    i = 0
    n_samples = len(samples)
    for n, t_prod in enumerate(produce_times):
        while i < n_samples and samples[i][1] <= n:
            i += 1
        if i == n_samples:
            break
        lat.append((samples[i][0] - t_prod) / 1000.0)
    lat_sorted = sorted(lat)
    return {
        "count": len(produce_times),
        "visible": len(lat),
        "missing": len(produce_times) - len(lat),
        "p50_ms": percentile(lat_sorted, 50),
        "p99_ms": percentile(lat_sorted, 99),
        "max_ms": lat_sorted[-1] if lat_sorted else None,
        "mean_ms": (sum(lat) / len(lat)) if lat else None,
    }


class Poller:
    """Runs `sluice_bench_fresh poll` in the background until `target` or `timeout`."""

    def __init__(self, tool, sql, target, out_path, mysql="127.0.0.1:3306", user="root",
                 database="bench", interval_ms=10, timeout=120):
        self.out_path = out_path
        self.cmd = [tool, "poll", "--mysql", mysql, "--user", user, "--database", database,
                    "--sql", sql, "--target", str(target), "--out", out_path,
                    "--interval-ms", str(interval_ms), "--timeout", str(timeout)]
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(self.cmd)
        return self

    def wait(self, timeout=None):
        """Returns the exit code: 0 target reached, 3 timed out, 1/2 errors."""
        return self.proc.wait(timeout=timeout)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait()

    def samples(self):
        return read_samples(self.out_path)


def produce(tool, brokers, topic, input_path, rate, duration, times_path, partition=0,
            linger_ms=5):
    """Runs `sluice_bench_fresh produce` to completion; returns its JSON summary as a dict
    (produced, seconds, max_behind_ms). Raises RuntimeError on failure."""
    import json
    cmd = [tool, "produce", "--brokers", brokers, "--topic", topic, "--input", input_path,
           "--rate", str(rate), "--duration", str(duration), "--times", times_path,
           "--partition", str(partition), "--linger-ms", str(linger_ms)]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        raise RuntimeError("paced producer failed (%d): %s" % (r.returncode, r.stderr.strip()))
    return json.loads(r.stdout.strip().splitlines()[-1])


def measure(tool, brokers, topic, input_path, rate, duration, sql, work_dir,
            mysql="127.0.0.1:3306", user="root", database="bench", interval_ms=10,
            settle_timeout=60):
    """Produces `input_path` at `rate` for `duration` seconds while polling `sql`; the engine
    under test must already be consuming `topic` (one partition) into the table `sql` reads.

    Waits until every produced record is visible (or `settle_timeout` seconds after the
    producer finished), then returns compute()'s dict plus `produced`, `max_behind_ms`
    (producer pacing lag) and `offered_rate`."""
    os.makedirs(work_dir, exist_ok=True)
    times_path = os.path.join(work_dir, "%s.times" % topic)
    samples_path = os.path.join(work_dir, "%s.samples" % topic)
    with open(input_path, "rb") as f:
        available = sum(1 for line in f if line.strip())
    target = min(int(rate * duration), available)
    poller = Poller(tool, sql, target, samples_path, mysql=mysql, user=user, database=database,
                    interval_ms=interval_ms, timeout=duration + settle_timeout + 30).start()
    try:
        summary = produce(tool, brokers, topic, input_path, rate, duration, times_path)
        produced = summary["produced"]
        rc = poller.wait(timeout=duration + settle_timeout + 60)
    finally:
        poller.stop()
    samples = read_samples(samples_path)
    result = compute(read_times(times_path), samples)
    result.update({"produced": produced, "max_behind_ms": summary["max_behind_ms"],
                   "offered_rate": rate, "poll_rc": rc})
    return result


if __name__ == "__main__":
    # Self-check of compute() on a hand-worked case.
    times = [1000, 2000, 3000, 4000]
    samples = [(1500, 0), (2500, 1), (5000, 3), (9000, 4)]
    r = compute(times, samples)
    assert r["visible"] == 4 and r["missing"] == 0, r
    # record 0 -> 2.5 ms - 1 ms = 1.5; 1 -> 5-2 = 3; 2 -> 5-3 = 2; 3 -> 9-4 = 5
    assert r["max_ms"] == 5.0 and r["p50_ms"] == 2.0, r
    print("ok")
