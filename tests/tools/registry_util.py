"""Producing to Kafka through confluent-kafka's schema-registry serializers, and a private
schema registry (tests/tools/schema_registry.py on a free port) that a test can stop and start:
shared by the Avro and Protobuf integration tests."""
import os
import sqlite3
import subprocess
import sys
import time

import dead_letters
import harness

REGISTRY_SCRIPT = os.path.join(harness.TOOLS, "schema_registry.py")


def publish(topic, values):
    """Produces each value (bytes) to `topic`, idempotently, and waits for delivery."""
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": harness.BROKER, "enable.idempotence": True,
                  "linger.ms": 20})
    for v in values:
        p.produce(topic, value=v)
        p.poll(0)
    left = p.flush(30)
    if left:
        raise RuntimeError(f"{left} records to {topic} not delivered")


def serialize(ser, topic, record):
    """A value of `topic` serialized by a confluent-kafka serializer."""
    from confluent_kafka.serialization import MessageField, SerializationContext
    return ser(record, SerializationContext(topic, MessageField.VALUE))


class PrivateRegistry:
    """A registry of its own on a free loopback port, its state in `state`."""

    def __init__(self, state):
        self.port = harness.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.cmd = [sys.executable, REGISTRY_SCRIPT, "--port", str(self.port), "--state", state]
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        harness.wait_for(lambda: harness.port_open("127.0.0.1", self.port), 10, 0.1)

    def stop(self):
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


def scenario_registry_down(checks, sluice, work, name, topic, publish_records, pipeline_text):
    """The registry is down when sluice starts and back 4 s later: the run retries (no dead
    letter, no crash) and ends with every record in the sink.

    publish_records(url, topic) registers its schema with the registry at `url` and publishes
    20 records; pipeline_text is a format string (name, broker, topic, registry, db, dlq) of a
    pipeline writing table `rows` into SQLite."""
    registry = PrivateRegistry(os.path.join(work, "private_registry.json"))
    registry.start()
    try:
        publish_records(registry.url, topic)
    finally:
        registry.stop()
    db = os.path.join(work, "down.db")
    dlq = os.path.join(work, "down_dlq.ndjson")
    pipe = os.path.join(work, "down.toml")
    with open(pipe, "w", encoding="utf-8") as f:
        f.write(pipeline_text.format(name=name, broker=harness.BROKER, topic=topic,
                                     registry=registry.url, db=db, dlq=dlq))
    p = subprocess.Popen([sluice, "run", pipe, "--until-caught-up"], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, cwd=harness.REPO)
    time.sleep(4)
    registry.start()
    try:
        out, _ = p.communicate(timeout=120)
    finally:
        registry.stop()
    text = out.decode("utf-8", "replace")
    checks.check("registry down: exit 0 after the registry came back", p.returncode == 0,
                 text[-2000:])
    checks.check("registry down: the source retried",
                 "retrying in" in text and "schema registry" in text, text[-1500:])
    if p.returncode == 0:
        con = sqlite3.connect(db)
        n = con.execute("SELECT count(*) FROM rows").fetchone()[0]
        con.close()
        entries, _ = dead_letters.load_dlq(dlq)
        checks.check("registry down: 20 rows, no dead letters", n == 20 and not entries,
                     f"{n} rows, dead letters {[e.get('reason') for e in entries][:3]}")
