"""Kafka helpers of the integration tests (kcat, scripts/kafka-topics.sh, scripts/services.sh)
against the broker harness.KAFKA discovers (127.0.0.1:9092 of `make services`, or
SLUICE_TEST_KAFKA), and the recruitment pipeline's Kafka variant (examples/recruitment.toml
copied with its own name, consumer group and table). Python 3 standard library only, but for
avro_topic_records (confluent-kafka of the project venv)."""
import json
import os
import re
import shutil
import subprocess
import time

import recompute_recruitment as rr
from harness import BROKER, KAFKA, REPO, run, run_split

PIPELINE = os.path.join(REPO, "examples", "recruitment.toml")
JOBS = os.path.join(REPO, "examples", "data", "job.csv")
KEY = list(rr.EVENTS_KEY)
SOURCE = "tracking"


def slow_consumer(wait_ms):
    """[source] lines for a slow consumer: each fetch waits wait_ms on the broker for more data
    than it may return (fetch.min.bytes above what one fetch can carry), so with the topic
    produced in batches of 1000 records a member reads about 1000 records per partition per
    wait_ms. Runs then last long enough for kills and rebalances to land with work left, and
    with records in flight."""
    return (f'"kafka.fetch.wait.max.ms" = "{wait_ms}"', '"kafka.fetch.min.bytes" = "100000000"',
            '"kafka.max.partition.fetch.bytes" = "1"')


def kafka_ready():
    if not KAFKA.up():
        return False
    rc, out = run(["kcat", "-b", BROKER, "-L", "-m", "5"], timeout=15)
    return rc == 0 and f"at {BROKER}" in out


def ensure_kcat():
    if shutil.which("kcat"):
        return None
    print("     kcat not found: installing it (SLUICE_EXTRA_PACKAGES=kcat scripts/install-deps.sh)",
          flush=True)
    env = dict(os.environ, SLUICE_EXTRA_PACKAGES="kcat")
    rc, out = run([os.path.join(REPO, "scripts", "install-deps.sh")], timeout=600, env=env)
    if shutil.which("kcat"):
        return None
    return f"kcat is missing and could not be installed (rc {rc}):\n{out[-2000:]}"


def broker_process():
    """(pid, services dir) of the Kafka broker serving 127.0.0.1:9092, found by its command line
    (`... kafka.Kafka DIR/kafka/server.properties`, as scripts/services.sh starts it), so the
    broker can be restarted through scripts/services.sh whichever SLUICE_SERVICES_DIR it uses."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                args = [a.decode("utf-8", "replace") for a in f.read().split(b"\0") if a]
        except OSError:
            continue
        if "kafka.Kafka" not in args or not args[-1].endswith("/kafka/server.properties"):
            continue
        props = args[-1]
        try:
            with open(props, encoding="utf-8") as f:
                if f"PLAINTEXT://{BROKER}" not in f.read():
                    continue
        except OSError:
            pass  # the file may have been regenerated or removed; the process is still a match
        found.append((int(pid), os.path.dirname(os.path.dirname(props))))
    return found[0] if len(found) == 1 else (None, None)


def restart_broker():
    """Restarts the broker with scripts/services.sh; returns a list of problems."""
    pid, svc = broker_process()
    if pid is None:
        return [f"cannot find the Kafka broker process serving {BROKER} (started by "
                "scripts/services.sh) to restart it"]
    env = dict(os.environ, SLUICE_SERVICES_DIR=svc)
    rc, out = run([os.path.join(REPO, "scripts", "services.sh"), "restart", "kafka"],
                  timeout=180, env=env)
    if rc != 0:
        return [f"SLUICE_SERVICES_DIR={svc} scripts/services.sh restart kafka exited {rc}: "
                f"{out[-1500:]}"]
    new_pid, _ = broker_process()
    if new_pid == pid:
        return [f"scripts/services.sh restart kafka did not restart the broker (still pid {pid})"]
    return []


def restart_mariadb():
    """Restarts the MariaDB of scripts/services.sh (the one next to the broker); returns a list
    of problems."""
    pid, svc = broker_process()
    if svc is None:
        return ["cannot find the services directory of scripts/services.sh to restart MariaDB"]
    env = dict(os.environ, SLUICE_SERVICES_DIR=svc)
    script = os.path.join(REPO, "scripts", "services.sh")
    rc, out = run([script, "down", "mariadb"], timeout=60, env=env)
    if rc != 0:
        return [f"SLUICE_SERVICES_DIR={svc} scripts/services.sh down mariadb exited {rc}: {out[-1500:]}"]
    # Down long enough for several checkpoints (1 s apart) to fail and be retried.
    time.sleep(3)
    rc, out = run([script, "up", "mariadb"], timeout=180, env=env)
    if rc != 0:
        return [f"SLUICE_SERVICES_DIR={svc} scripts/services.sh up mariadb exited {rc}: {out[-1500:]}"]
    return []


def topics_tool(*args, timeout=120):
    """scripts/kafka-topics.sh ARGS against the discovered broker; returns (rc, output). A
    worktree without its own services uses the jars of the tree that runs them."""
    env = dict(os.environ)
    if not os.path.isdir(os.path.join(REPO, "build", "services", "kafka", "libs")):
        for cand in (os.environ.get("SLUICE_SERVICES_DIR", ""), "/work/main/build/services"):
            if cand and os.path.isdir(os.path.join(cand, "kafka", "libs")):
                env["SLUICE_SERVICES_DIR"] = cand
                break
    return run([os.path.join(REPO, "scripts", "kafka-topics.sh"), *args,
                "--bootstrap-server", BROKER], timeout=timeout, env=env)


def create_topic(topic, partitions):
    rc, out = topics_tool("--create", "--topic", topic, "--partitions", str(partitions),
                          "--replication-factor", "1", timeout=90)
    if rc != 0:
        raise RuntimeError(f"creating topic {topic} failed (rc {rc}): {out[-1500:]}")


def delete_topics(pattern):
    topics_tool("--delete", "--topic", pattern, timeout=90)


def end_offsets(topic, partitions):
    cmd = ["kcat", "-b", BROKER, "-Q"]
    for p in range(partitions):
        cmd += ["-t", f"{topic}:{p}:-1"]
    rc, out = run(cmd, timeout=30)
    offs = {}
    for m in re.finditer(r"\[(\d+)\] offset (-?\d+)", out):
        offs[int(m.group(1))] = int(m.group(2))
    if rc != 0 or len(offs) != partitions:
        raise RuntimeError(f"kcat -Q {topic} failed (rc {rc}): {out[-800:]}")
    return offs


def keyed_file(ndjson_paths, out):
    """KEY<TAB>VALUE lines for kcat -K '\\t': key = job_id as text (empty when absent)."""
    n = 0
    with open(out, "w", encoding="utf-8", newline="\n") as f:
        for path in ndjson_paths:
            with open(path, encoding="utf-8") as src:
                for line in src:
                    line = line.rstrip("\n")
                    if not line.strip():
                        continue
                    if "\t" in line:
                        raise RuntimeError(f"{path}: a record contains a tab; cannot key it for kcat")
                    try:
                        o = json.loads(line)
                        k = o.get("job_id") if isinstance(o, dict) else None
                    except ValueError:
                        k = None
                    f.write(("" if k is None else str(k)) + "\t" + line + "\n")
                    n += 1
    return n


def produce(topic, partitions, keyed, expected_total, batch=None):
    """Publishes KEY<TAB>VALUE lines with kcat; checks the topic then holds expected_total.
    batch: kcat's batch.num.messages (records per producer batch), None for kcat's default."""
    cmd = ["kcat", "-P", "-b", BROKER, "-t", topic, "-K", "\t", "-z", "none"]
    if batch:
        cmd += ["-X", f"batch.num.messages={batch}"]
    with open(keyed, "rb") as f:
        try:
            p = subprocess.run(cmd,
                               stdin=f, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               timeout=120)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"kcat -P {topic} did not finish within 120s")
    if p.returncode != 0:
        raise RuntimeError(f"kcat -P {topic} exited {p.returncode}: "
                           f"{p.stdout.decode('utf-8', 'replace')[-1500:]}")
    deadline = time.monotonic() + 20
    while True:
        total = sum(end_offsets(topic, partitions).values())
        if total == expected_total or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    if total != expected_total:
        raise RuntimeError(f"topic {topic} holds {total} records after kcat, expected {expected_total}")
    return total


def check_keying(topic, expected_total):
    """Reads the topic back with kcat: record count, and one partition per non-empty key."""
    rc, out = run(["kcat", "-C", "-b", BROKER, "-t", topic, "-e", "-q", "-f", "%p\t%k\n"],
                  timeout=60)
    if rc != 0:
        return [f"kcat -C {topic} exited {rc}: {out[-800:]}"]
    lines = [ln for ln in out.splitlines() if ln]
    problems = []
    if len(lines) != expected_total:
        problems.append(f"read back {len(lines)} records from {topic}, expected {expected_total}")
    parts = {}
    for ln in lines:
        p, _, k = ln.partition("\t")
        if k:
            parts.setdefault(k, set()).add(p)
    split = [k for k, ps in parts.items() if len(ps) > 1]
    if split:
        problems.append(f"{len(split)} keys are in more than one partition (e.g. {split[:3]})")
    if len(parts) < 10:
        problems.append(f"only {len(parts)} distinct keys: records are not keyed by job_id")
    return problems


def pipeline_copy(path, name, group, sink_kind, table, extra_source=()):
    """examples/recruitment.toml with [pipeline] name, [source] group (+extra lines), [sink] table
    set; the SQLite variant drops [sink] column_types (the SQLite sink may reject it)."""
    with open(PIPELINE, encoding="utf-8") as f:
        lines = f.read().split("\n")
    out, section, seen = [], None, set()
    for ln in lines:
        m = re.match(r"\s*\[([^\[\]]+)\]\s*(#.*)?$", ln)
        if m:
            section = m.group(1).strip()
            out.append(ln)
            if section == "source":
                out.append(f'group = "{group}"')
                out.extend(extra_source)
                seen.add("group")
            continue
        if section == "pipeline" and re.match(r"\s*name\s*=", ln):
            out.append(f'name = "{name}"')
            seen.add("name")
            continue
        if section == "source" and re.match(r"\s*group\s*=", ln):
            continue
        if section == "sink" and re.match(r"\s*table\s*=", ln):
            out.append(f'table = "{table}"')
            seen.add("table")
            continue
        if section == "sink" and sink_kind == "sqlite" and re.match(r"\s*column_types\s*=", ln):
            continue
        out.append(ln)
    missing = {"name", "group", "table"} - seen
    if missing:
        raise RuntimeError(f"{PIPELINE}: cannot set {sorted(missing)} in the copy")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(out))
    return path


def concat(paths, out):
    with open(out, "wb") as o:
        for p in paths:
            with open(p, "rb") as f:
                shutil.copyfileobj(f, o)
    return out


def kafka_missing():
    """None when the broker answers kcat -L (call ensure_kcat() first), else why not."""
    if not kafka_ready():
        return KAFKA.why_down() or f"Kafka does not answer kcat -L on {BROKER}"
    return None


def topic_payloads(topic):
    """Every record value of the topic (kcat -C -e), in partition order."""
    rc, out = run(["kcat", "-C", "-b", BROKER, "-t", topic, "-e", "-q", "-f", "%s\n"], timeout=120)
    if rc != 0:
        raise RuntimeError(f"kcat -C {topic} exited {rc}: {out[-800:]}")
    return [ln for ln in out.split("\n") if ln]


def avro_topic_records(topic, registry):
    """(partition, key text, value) of every committed message of `topic`, sorted by partition
    and offset, the value decoded with confluent-kafka's AvroDeserializer (the writer schema
    fetched from the registry at `registry`, http://HOST:PORT, by the id in each message).
    Read with a read_committed consumer until two reads 1.5 s apart agree, as topic_messages."""
    from confluent_kafka import Consumer, TopicPartition  # noqa: PLC0415
    from confluent_kafka.schema_registry import SchemaRegistryClient  # noqa: PLC0415
    from confluent_kafka.schema_registry.avro import AvroDeserializer  # noqa: PLC0415
    from confluent_kafka.serialization import MessageField, SerializationContext  # noqa: PLC0415
    des = AvroDeserializer(SchemaRegistryClient({"url": registry}))

    def read_once():
        c = Consumer({"bootstrap.servers": BROKER, "group.id": f"sluice-test-{os.getpid()}",
                      "isolation.level": "read_committed", "enable.auto.commit": False})
        try:
            parts = c.list_topics(topic, timeout=10).topics[topic].partitions
            ends = {}
            for p in parts:
                # With read_committed the high watermark is the last stable offset.
                lo, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                if hi > lo:
                    ends[p] = hi
            c.assign([TopicPartition(topic, p, 0) for p in ends])
            out, deadline = [], time.time() + 60
            while ends and time.time() < deadline:
                m = c.poll(0.5)
                if m is None:
                    # Idle: a partition is read when the position has passed its end, which
                    # in a transactional topic lies past the last commit marker, not a message.
                    for p in list(ends):
                        if c.position([TopicPartition(topic, p)])[0].offset >= ends[p]:
                            ends.pop(p)
                    continue
                if m.error():
                    continue
                key = m.key().decode("utf-8", "replace") if m.key() is not None else None
                out.append((m.partition(), m.offset(), key,
                            des(m.value(), SerializationContext(topic, MessageField.VALUE))))
            return [(p, k, v) for p, _, k, v in sorted(out, key=lambda r: r[:2])]
        finally:
            c.close()

    last, deadline = None, time.time() + 20
    while True:
        msgs = read_once()
        if (last is not None and len(msgs) == len(last)) or time.time() > deadline:
            return msgs
        last = msgs
        time.sleep(1.5)


def topic_messages(topic):
    """The committed messages of `topic` (all partitions), as parsed JSON objects.

    A producer's commit returns before the broker has written the commit markers into every
    partition, and until then a read_committed reader stops short of that partition's
    messages. So the topic is read until two reads 1.5 s apart agree (20 s at most)."""
    last, deadline = None, time.time() + 20
    while True:
        rc, out, err = run_split(["kcat", "-C", "-b", BROKER, "-t", topic, "-e", "-q", "-X",
                                  "isolation.level=read_committed", "-f", "%s\\n"], timeout=120)
        if rc != 0:
            raise RuntimeError(f"kcat -C {topic} exited {rc}: {err[-800:]}")
        msgs = [json.loads(ln) for ln in out.splitlines() if ln.strip()]
        if (last is not None and len(msgs) == len(last)) or time.time() > deadline:
            return msgs
        last = msgs
        time.sleep(1.5)
