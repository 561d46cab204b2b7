#!/usr/bin/env python3
"""The users pipeline end to end: fake API over HTTP -> Kafka -> Cassandra, and the recruitment
pipeline reading its tracking log from Cassandra.

    users_test.py --sluice build/sluice [--only clean,errors,dead,kill,messages,recruitment] [--keep]

Needs Kafka (127.0.0.1:9092) and Cassandra (127.0.0.1:9042) of `make services`, kcat, and the
Python cassandra-driver (requirements.txt, in .venv: run with the venv's python). A missing
server or tool is a loud SKIP (exit 77), a FAIL when CI=true.

Expected values never come from sluice: the test fetches the fake API's pages itself with
urllib from a second fake-api process without errors (same seed, same pages), flattens them in
Python as examples/users.toml documents, and compares with the rows read back with the Python
cassandra-driver. Topics are read with kcat in read_committed mode.

Scenarios (each in its own topic and keyspace):
  clean        N profiles -> topic -> table: exactly N rows, every column as specified; a second
               run of both pipelines changes nothing (same rows, same write times, same topic)
  errors       the API fails 40% of pages once (5xx, timeouts, truncated JSON): 5xx and timeouts
               are retried and counted, truncated pages are dead-lettered and counted, every
               other profile arrives (the failing pages found independently with urllib)
  dead         the API fails 25% of pages on every request: those pages are dead-lettered with
               their reason and counted, the run goes on, the table holds exactly the profiles
               of the pages that answered (each failing page checked with urllib)
  kill         kill -9 of the ingest run and of the users run at random moments, restarts: every
               profile is in the topic exactly once and in the table
  messages     hand-written messages: no/blank login.uuid (generated id == Python's uuid5),
               numeric and text postcodes, a partial address, and records that are not profiles
               or not JSON (dead-lettered with a reason; the run goes on); a replay keeps the ids
  avro         the clean scenario with the profiles in Avro (FORMAT=avro, SCHEMA_REGISTRY of
               `make services`, 127.0.0.1:8081): the topic read back with a read_committed
               consumer and confluent-kafka's AvroDeserializer holds the N profiles with every
               field as the API sent it (ages as numbers) and the value schema under TOPIC-value;
               the table equals the flattening in Python, exactly as for JSON; a re-run of both
               changes nothing
  recruitment  the seed tracking log loaded into a Cassandra table with the driver, read by
               examples/recruitment.toml (TRACKING=cassandra://...) into SQLite: the totals equal
               tests/tools/recompute_recruitment.py; a re-run changes nothing
"""

import argparse
import csv
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
import urllib.error
import urllib.parse
import urllib.request
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "tools"))
import cassandra_util  # noqa: E402
import compare_tables  # noqa: E402
import harness  # noqa: E402
import recompute_recruitment as rr  # noqa: E402
from harness import BROKER, SEED_TRACKING, run  # noqa: E402
from kafka_util import avro_topic_records, delete_topics, kafka_missing, topic_messages  # noqa: E402
from users_api import COLUMNS, FakeApi, fetch_page, flat_message, flatten, get, text  # noqa: E402,F401

CASSANDRA_HOST, CASSANDRA_PORT = harness.CASSANDRA.host, harness.CASSANDRA.port
REGISTRY = harness.REGISTRY_URL
INGEST = os.path.join(REPO, "examples", "users-ingest.toml")
USERS = os.path.join(REPO, "examples", "users.toml")
RECRUITMENT = os.path.join(REPO, "examples", "recruitment.toml")
JOBS = os.path.join(REPO, "examples", "data", "job.csv")
# The namespace examples/users.toml derives missing ids from (see its header).


# ---- the independent side: the API's JSON, flattened in Python ----


# ---- servers and tools ----


def avro_topic_messages(topic):
    """The committed messages of `topic`, decoded with confluent-kafka's AvroDeserializer
    (kafka_util.avro_topic_records)."""
    return [value for _, _, value in avro_topic_records(topic, REGISTRY)]


def produce(topic, lines):
    data = "".join(ln + "\n" for ln in lines).encode("utf-8")
    p = subprocess.run(["kcat", "-P", "-b", BROKER, "-t", topic, "-p", "0"], input=data,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    if p.returncode != 0:
        raise RuntimeError(f"kcat -P exited {p.returncode}: {p.stdout[-800:]!r}")


# ---- the test ----

class Test(harness.Checks):
    def __init__(self, args):
        self.args = args
        self.sluice = os.path.abspath(args.sluice)
        self.tmp = tempfile.mkdtemp(prefix="sluice-users-")
        self.token = f"{os.getpid()}_{int(time.time()) % 100000}"
        harness.Checks.__init__(self)
        self.apis = []
        self.keyspaces = []
        self.topics = []
        self.cluster = self.session = None
        self.clean_api = None
        self.format_vars = []  # --var FORMAT=avro ... in the avro scenario

    # reporting
    # plumbing
    def api(self, *args):
        a = FakeApi(self.sluice, os.path.join(self.tmp, f"fake-api-{len(self.apis)}.log"), *args)
        self.apis.append(a)
        return a

    def expected(self, seed, pages, size):
        """The flattened profiles of pages 1..pages, fetched from the error-free fake API."""
        if self.clean_api is None:
            self.clean_api = self.api()
        out = {}
        for page in pages:
            for p in fetch_page(self.clean_api.url, seed, page, size):
                row = flatten(p)
                out[row["id"]] = row
        return out

    def names(self, scenario):
        topic = f"sluice-users-{scenario}-{self.token}"
        ks = f"users_{scenario}_{self.token}"
        self.topics.append(topic)
        self.keyspaces.append(ks)
        return topic, ks

    def ingest_cmd(self, api, topic, count, seed, extra=(), page_size=20, interval="50ms",
                   dlq=None):
        return [self.sluice, "run", INGEST, *self.format_vars, "--var", f"API={api}",
                "--var", f"PROFILES=kafka://{BROKER}/{topic}", "--var", f"COUNT={count}",
                "--var", f"SEED={seed}", "--var", f"PAGE_SIZE={page_size}",
                "--var", f"INTERVAL={interval}",
                "--var", f"DLQ={dlq or os.path.join(self.tmp, topic + '.ingest-dlq.ndjson')}",
                *extra]

    def users_cmd(self, topic, ks, until_caught_up=True, dlq=None):
        cmd = [self.sluice, "run", USERS, *self.format_vars,
               "--var", f"PROFILES=kafka://{BROKER}/{topic}",
               "--var", f"CASSANDRA=cassandra://{CASSANDRA_HOST}:{CASSANDRA_PORT}/{ks}",
               "--var", f"DLQ={dlq or os.path.join(self.tmp, ks + '.dlq.ndjson')}"]
        return cmd + (["--until-caught-up"] if until_caught_up else [])

    def users_until(self, topic, ks, rows, dlq=None, dead=0, settle=3.0, timeout=180):
        """Runs examples/users.toml until the table holds `rows` rows (and the dead-letter file
        `dead` records) and nothing changed for `settle` seconds, then stops it with SIGTERM
        (drain and checkpoint). Returns (exit code, log). Used where the test watches the table
        while the pipeline runs; the clean scenario's re-run uses --until-caught-up."""
        dlq = dlq or os.path.join(self.tmp, ks + ".dlq.ndjson")
        log_path = os.path.join(self.tmp, f"users-{ks}-{time.time():.3f}.log")
        with open(log_path, "wb") as log:
            p = subprocess.Popen(self.users_cmd(topic, ks, until_caught_up=False, dlq=dlq),
                                 stdout=log, stderr=subprocess.STDOUT)
            deadline = time.time() + timeout
            last, since = None, time.time()
            while time.time() < deadline and p.poll() is None:
                time.sleep(0.5)
                try:
                    n = self.session.execute(f"SELECT count(*) FROM {ks}.users_profile").one()[0]
                except Exception:  # noqa: BLE001 - the table may not exist yet
                    n = -1
                state = (n, len(self.dead_letters(dlq)))
                if state != last:
                    last, since = state, time.time()
                elif state == (rows, dead) and time.time() - since >= settle:
                    break
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(60)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        with open(log_path, encoding="utf-8", errors="replace") as f:
            out = f.read()
        if last != (rows, dead):
            out += (f"\n[users_test] stopped with {last} (rows, dead letters), expected "
                    f"{(rows, dead)}")
        return p.returncode, out

    def table(self, ks, extra=""):
        cols = ", ".join(COLUMNS) + (", " + extra if extra else "")
        rows = self.session.execute(f"SELECT {cols} FROM {ks}.users_profile")
        return [r._asdict() for r in rows]

    def compare_rows(self, label, got_rows, want):
        problems = []
        got = {}
        for r in got_rows:
            if r["id"] in got:
                problems.append(f"{label}: id {r['id']} twice")
            got[r["id"]] = {c: r[c] for c in COLUMNS}
        missing = sorted(set(want) - set(got))
        extra = sorted(set(got) - set(want))
        if missing:
            problems.append(f"{label}: {len(missing)} of {len(want)} profiles missing, e.g. "
                            f"{missing[:3]}")
        if extra:
            problems.append(f"{label}: {len(extra)} unexpected rows, e.g. {extra[:3]}")
        bad = 0
        for k in sorted(set(got) & set(want)):
            if got[k] != want[k]:
                bad += 1
                if bad <= 3:
                    diff = {c: (got[k][c], want[k][c]) for c in COLUMNS if got[k][c] != want[k][c]}
                    problems.append(f"{label}: row {k} differs (got, want): {diff}")
        if bad:
            problems.append(f"{label}: {bad} rows differ")
        return problems

    def dead_letters(self, path):
        if not os.path.exists(path):
            return []
        with open(path, encoding="utf-8") as f:
            return [json.loads(ln) for ln in f if ln.strip()]

    # ---- scenarios ----

    def scenario_clean(self):
        topic, ks = self.names("clean")
        seed, n, size = "clean-1", 200, 20
        want = self.expected(seed, range(1, n // size + 1), size)
        api = self.api()
        rc, out = run(self.ingest_cmd(api.url, topic, n, seed), timeout=180)
        problems = [] if rc == 0 else [f"ingest exited {rc}:\n{out[-2000:]}"]
        msgs = topic_messages(topic) if rc == 0 else []
        ids = [m.get("login_uuid") for m in msgs]
        if rc == 0 and (len(msgs) != n or set(ids) != set(want)):
            problems.append(f"the topic holds {len(msgs)} committed messages ({len(set(ids))} "
                            f"distinct login_uuid), expected the {n} profiles of the API")
        self.result(f"clean: ingest of {n} profiles ({n // size} pages) -> {n} messages", problems)
        if problems:
            return
        rc, out = self.users_until(topic, ks, n)
        problems = [] if rc == 0 else [f"users exited {rc}:\n{out[-2000:]}"]
        if rc == 0:
            problems += self.compare_rows("table", self.table(ks), want)
        self.result(f"clean: users -> {n} rows, every column as specified", problems)
        if problems:
            return
        before = {r["id"]: r for r in self.table(ks, "writetime(email) AS wt")}
        # The re-run is a batch run: --until-caught-up must end on a topic written in
        # transactions (its end offset lies past the last record, at the commit marker).
        rc1, out1 = run(self.users_cmd(topic, ks, until_caught_up=True), timeout=120)
        rc2, out2 = run(self.ingest_cmd(api.url, topic, n, seed), timeout=180)
        after = {r["id"]: r for r in self.table(ks, "writetime(email) AS wt")}
        problems = []
        if rc1 != 0:
            problems.append(f"users re-run exited {rc1}:\n{out1[-1500:]}")
        if rc2 != 0:
            problems.append(f"ingest re-run exited {rc2}:\n{out2[-1500:]}")
        if before != after:
            changed = [k for k in before if before[k] != after.get(k)]
            problems.append(f"the re-run changed {len(changed)} rows (values or write times), "
                            f"e.g. {changed[:3]}; rows {len(before)} -> {len(after)}")
        if len(topic_messages(topic)) != n:
            problems.append("the ingest re-run added messages to the topic")
        self.result("clean: re-running both pipelines leaves the topic and the table unchanged "
                    "(same rows, same write times)", problems)

    def scenario_avro(self):
        """The clean scenario through Avro topics; the expected values are the same."""
        try:
            import confluent_kafka.schema_registry.avro  # noqa: F401, PLC0415
        except ImportError as e:
            raise harness.Missing(f"confluent-kafka with Avro support is missing ({e}); run scripts/venv.sh")
        try:
            urllib.request.urlopen(REGISTRY + "/subjects", timeout=5).read()
        except (OSError, urllib.error.URLError) as e:
            raise harness.Missing(f"the schema registry does not answer on {REGISTRY} ({e}); start it with "
                       "`make services`") from e
        topic, ks = self.names("avro")
        seed, n, size = "avro-1", 200, 20
        want = self.expected(seed, range(1, n // size + 1), size)
        # The topic's content, independently: the API's profiles as users-ingest.toml lays them
        # out (flat, named by path), every field as sent (ages numbers, the rest text).
        api_profiles = []
        for page in range(1, n // size + 1):
            api_profiles += fetch_page(self.clean_api.url, seed, page, size)
        self.format_vars = ["--var", "FORMAT=avro", "--var", f"SCHEMA_REGISTRY={REGISTRY}"]
        try:
            api = self.api()
            rc, out = run(self.ingest_cmd(api.url, topic, n, seed), timeout=180)
            problems = [] if rc == 0 else [f"ingest exited {rc}:\n{out[-2000:]}"]
            msgs = avro_topic_messages(topic) if rc == 0 else []
            if rc == 0:
                by_id = {m.get("login_uuid"): m for m in msgs}
                if len(msgs) != n or set(by_id) != {text(get(p, "login.uuid")) for p in api_profiles}:
                    problems.append(f"the topic holds {len(msgs)} committed Avro messages "
                                    f"({len(by_id)} distinct login_uuid), expected the {n} "
                                    "profiles of the API")
                bad = []
                for p in api_profiles:
                    m = by_id.get(text(get(p, "login.uuid")), {})
                    for col, path in (("name_first", "name.first"), ("email", "email"),
                                      ("location_postcode", "location.postcode"),
                                      ("dob_date", "dob.date"), ("nat", "nat")):
                        if m.get(col) != text(get(p, path)):
                            bad.append((col, m.get(col), get(p, path)))
                    for col, path in (("dob_age", "dob.age"), ("registered_age", "registered.age")):
                        if m.get(col) != get(p, path):
                            bad.append((col, m.get(col), get(p, path)))
                if bad:
                    problems.append(f"{len(bad)} Avro fields differ from the API's (field, got, "
                                    f"want): {bad[:5]}")
                try:
                    with urllib.request.urlopen(
                            f"{REGISTRY}/subjects/{topic}-value/versions/latest", timeout=5) as r:
                        schema = json.loads(json.loads(r.read())["schema"])
                    if len(schema.get("fields", [])) != 29:
                        problems.append(f"the value schema has {len(schema.get('fields', []))} "
                                        "fields, expected the 29 columns")
                except (OSError, ValueError, KeyError) as e:
                    problems.append(f"no value schema under {topic}-value: {e}")
            self.result(f"avro: ingest of {n} profiles -> {n} Avro messages (AvroDeserializer)",
                        problems)
            if problems:
                return
            rc, out = self.users_until(topic, ks, n)
            problems = [] if rc == 0 else [f"users exited {rc}:\n{out[-2000:]}"]
            if rc == 0:
                problems += self.compare_rows("table", self.table(ks), want)
            dead = self.dead_letters(os.path.join(self.tmp, ks + ".dlq.ndjson"))
            if dead:
                problems.append(f"{len(dead)} dead letters, e.g. {dead[0]}")
            self.result(f"avro: users from Avro -> {n} rows, every column as for JSON", problems)
            if problems:
                return
            before = {r["id"]: r for r in self.table(ks, "writetime(email) AS wt")}
            rc1, out1 = run(self.users_cmd(topic, ks, until_caught_up=True), timeout=120)
            rc2, out2 = run(self.ingest_cmd(api.url, topic, n, seed), timeout=180)
            after = {r["id"]: r for r in self.table(ks, "writetime(email) AS wt")}
            problems = []
            if rc1 != 0:
                problems.append(f"users re-run exited {rc1}:\n{out1[-1500:]}")
            if rc2 != 0:
                problems.append(f"ingest re-run exited {rc2}:\n{out2[-1500:]}")
            if before != after:
                problems.append("the re-run changed the table")
            if len(avro_topic_messages(topic)) != n:
                problems.append("the ingest re-run added messages to the topic")
            self.result("avro: re-running both pipelines leaves the topic and the table unchanged",
                        problems)
        finally:
            self.format_vars = []

    def scenario_errors(self):
        topic, ks = self.names("errors")
        # A seed whose first 10 pages include every kind of failure (page 4 malformed, 6 late,
        # 7 and 9 5xx); the test finds them by itself below.
        seed, n, size = "errors-9", 200, 20
        pages = n // size
        # Every failing page fails on its first request only; the ingest times a request out
        # after 2 s, the API's "timeout" answers come after 3 s.
        args = ("--error-rate", "0.4", "--fail-times", "1", "--hang", "3000")
        # The independent account: a second API with the same settings, each page requested once
        # with urllib (1 s timeout), tells which pages fail and how.
        # `count` counts the profiles received: a malformed page brings none, so the ingest asks
        # for pages until it has received n profiles (page n // size + 1 for each malformed one).
        probe = self.api(*args)
        kind_of = {}
        page, received = 0, 0
        while received < n:
            page += 1
            try:
                fetch_page(probe.url, seed, page, size, timeout=1)
            except urllib.error.HTTPError as e:
                kind_of[page] = "http_5xx" if e.code >= 500 else f"http_{e.code}"
            except (TimeoutError, urllib.error.URLError, OSError):
                kind_of[page] = "timeout"
            except ValueError:
                kind_of[page] = "invalid_body"
            if kind_of.get(page) != "invalid_body":
                received += size
        pages = page
        kinds = {k: sum(1 for v in kind_of.values() if v == k)
                 for k in ("http_5xx", "timeout", "invalid_body")}
        # Failed requests (5xx, timeouts) are retried and then answered; a body that is not JSON
        # is not retried (the API answered 200): that page is dead-lettered.
        malformed = sorted(p for p, k in kind_of.items() if k == "invalid_body")
        want = self.expected(seed, [p for p in range(1, pages + 1) if p not in malformed], size)
        api = self.api(*args)
        dlq = os.path.join(self.tmp, topic + ".ingest-dlq.ndjson")
        rc, out = run(self.ingest_cmd(api.url, topic, n, seed, dlq=dlq), timeout=300)
        problems = [] if rc == 0 else [f"ingest exited {rc}:\n{out[-2000:]}"]
        counters = dict((k, int(v)) for k, v in re.findall(r"\b([a-z_0-9]+)=(\d+)", out))
        notes = [f"failing pages (urllib against the same API settings): {kind_of}",
                 f"ingest counters: {' '.join(f'{k}={v}' for k, v in sorted(counters.items()))}"]
        if not kind_of:
            problems.append("no page failed: the error rate should have made some fail")
        for k, v in kinds.items():
            if counters.get(k, -1) != v:
                problems.append(f"ingest counted {k}={counters.get(k)}, the API failed {v} "
                                "pages that way")
        retried = kinds["http_5xx"] + kinds["timeout"]
        if counters.get("retries", -1) != retried:
            problems.append(f"ingest counted retries={counters.get('retries')}, expected one per "
                            f"page answered 5xx or late ({retried})")
        dead = self.dead_letters(dlq)
        if len(dead) != len(malformed):
            problems.append(f"{len(dead)} pages dead-lettered, expected the {len(malformed)} "
                            "malformed ones")
        if any("json" not in str(d.get("reason", "")).lower() for d in dead):
            problems.append(f"a dead letter's reason does not say the JSON was invalid: {dead}")
        if rc == 0:
            msgs = topic_messages(topic)
            if len(msgs) != len(want) or {m.get("login_uuid") for m in msgs} != set(want):
                problems.append(f"the topic holds {len(msgs)} messages, expected the "
                                f"{len(want)} profiles of the {pages} pages that were not malformed")
            rc, out = self.users_until(topic, ks, len(want))
            if rc != 0:
                problems.append(f"users exited {rc}:\n{out[-2000:]}")
            else:
                problems += self.compare_rows("table", self.table(ks), want)
        self.result("errors: pages answered 5xx or too late once are retried and counted, "
                    "malformed pages dead-lettered and counted; every other profile arrives",
                    problems, notes)

    def scenario_dead(self):
        topic, ks = self.names("dead")
        # A seed whose first 10 pages include every kind of failure (2 late, 5 5xx, 7 malformed).
        seed, n, size = "dead-12", 200, 20
        api = self.api("--error-rate", "0.25", "--fail-times", "0", "--hang", "3000")
        dlq = os.path.join(self.tmp, topic + ".ingest-dlq.ndjson")
        rc, out = run(self.ingest_cmd(api.url, topic, n, seed, dlq=dlq), timeout=400)
        problems = [] if rc == 0 else [f"ingest exited {rc}:\n{out[-2000:]}"]
        notes = []
        if problems:
            self.result("dead: pages failing every time are dead-lettered", problems)
            return
        msgs = topic_messages(topic)
        # Which pages answered: look each page up in the error-free API.
        last_page = 0
        by_page = {}
        for page in range(1, 200):
            rows = self.expected(seed, [page], size)
            by_page[page] = rows
            if {m.get("login_uuid") for m in msgs} >= set(rows):
                last_page = page
            if sum(len(v) for p, v in by_page.items()) > n * 3:
                break
        got_ids = {m.get("login_uuid") for m in msgs}
        answered = [p for p, rows in by_page.items() if set(rows) <= got_ids]
        missing = [p for p in range(1, last_page + 1) if p not in answered]
        dead = self.dead_letters(dlq)
        notes.append(f"{len(msgs)} messages from pages {answered[:12]}...; pages dead-lettered: "
                     f"{missing}; dead letters: {len(dead)}")
        if not missing:
            problems.append("no page failed: the error rate should have made some fail")
        if len(dead) != len(missing):
            problems.append(f"{len(dead)} dead letters for {len(missing)} missing pages")
        for d in dead:
            if not str(d.get("reason", "")).strip():
                problems.append(f"a dead letter without a reason: {d}")
                break
        notes.append("dead-letter reasons: " + "; ".join(sorted({str(d.get('reason'))[:60]
                                                                 for d in dead})[:5]))
        for p in missing:
            try:
                fetch_page(api.url, seed, p, size, timeout=1)
                problems.append(f"page {p} is missing from the topic but the API answers it")
            except (urllib.error.URLError, TimeoutError, ValueError, OSError):
                pass
        if any(p > min(missing or [0]) for p in answered):
            notes.append("pages after the first dead one still arrived: the run went on")
        elif missing:
            problems.append("no page after the first dead-lettered one arrived")
        if len(msgs) != len(got_ids):
            problems.append(f"{len(msgs) - len(got_ids)} duplicate messages in the topic")
        want = {}
        for p in answered:
            want.update(by_page[p])
        rc, out = self.users_until(topic, ks, len(want))
        if rc != 0:
            problems.append(f"users exited {rc}:\n{out[-2000:]}")
        else:
            problems += self.compare_rows("table", self.table(ks), want)
        self.result("dead: pages failing on every request are dead-lettered with their reason, "
                    "the run goes on, the table holds exactly the answered pages' profiles",
                    problems, notes)

    def scenario_kill(self):
        topic, ks = self.names("kill")
        seed, n, size = "kill-1", 400, 10
        want = self.expected(seed, range(1, n // size + 1), size)
        api = self.api("--delay", "30")
        rng = random.Random(self.args.seed)
        problems, notes = [], []
        kills = 0
        for attempt in range(12):
            cmd = self.ingest_cmd(api.url, topic, n, seed, interval="60ms", page_size=size)
            log = open(os.path.join(self.tmp, f"kill-ingest-{attempt}.log"), "wb")
            p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
            delay = rng.uniform(0.8, 2.5)
            try:
                p.wait(delay if kills < 4 else 120)
            except subprocess.TimeoutExpired:
                p.send_signal(signal.SIGKILL)
                p.wait()
                kills += 1
                log.close()
                continue
            log.close()
            if p.returncode != 0:
                problems.append(f"ingest run {attempt} exited {p.returncode}")
            break
        notes.append(f"ingest: {kills} kill -9 landed mid-run")
        msgs = topic_messages(topic)
        ids = [m.get("login_uuid") for m in msgs]
        if len(ids) != n or set(ids) != set(want):
            problems.append(f"after kills the topic holds {len(ids)} committed messages "
                            f"({len(set(ids))} distinct), expected each of the {n} exactly once")
        ukills = 0
        for attempt in range(4):
            log = open(os.path.join(self.tmp, f"kill-users-{attempt}.log"), "wb")
            p = subprocess.Popen(self.users_cmd(topic, ks, until_caught_up=False), stdout=log,
                                 stderr=subprocess.STDOUT)
            time.sleep(rng.uniform(0.5, 3.0))
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                ukills += 1
            p.wait()
            log.close()
        rc, out = self.users_until(topic, ks, n)
        notes.append(f"users: {ukills} kill -9 of a continuous run, then a last run")
        if rc != 0:
            problems.append(f"users' last run exited {rc}:\n{out[-2000:]}")
        else:
            problems += self.compare_rows("table", self.table(ks), want)
        if kills == 0:
            problems.append("no kill landed during the ingest run")
        self.result(f"kill: kill -9 during both pipelines, restarts: {n} profiles in the topic "
                    "exactly once and in the table", problems, notes)

    def scenario_messages(self):
        topic, ks = self.names("messages")
        # Profiles in the API's shape, written to the topic as users-ingest.toml writes them.
        base = {
            "gender": "female", "name": {"title": "Ms", "first": "Zoë", "last": "O'Brien"},
            "location": {"street": {"number": 8929, "name": "Valwood Pkwy"}, "city": "Billings",
                         "state": "Michigan", "country": "United States", "postcode": 63104},
            "email": "zoe@example.com",
            "login": {"uuid": "7a0eed16-9430-4d68-901f-c0d4c1c3bf00", "username": "zoe117"},
            "dob": {"date": "1992-03-08T15:13:16.688Z"},
            "registered": {"date": "2007-07-09T05:51:59.390Z"},
            "phone": "(272) 790-0888", "picture": {"medium": "https://example.com/med/1.jpg"},
        }

        def variant(**changes):
            p = json.loads(json.dumps(base))
            for path, value in changes.items():
                obj = p
                parts = path.split("__")
                for part in parts[:-1]:
                    obj = obj[part]
                if value is Ellipsis:
                    obj.pop(parts[-1], None)
                else:
                    obj[parts[-1]] = value
            return p

        profiles = [
            base,
            variant(login__uuid=Ellipsis, email="no-uuid@example.com"),
            variant(login__uuid="  ", email="blank-uuid@example.com"),
            variant(login__uuid="2b5c6a3e-0000-4000-8000-000000000001",
                    location__postcode="EC1A 1BB"),
            variant(login__uuid="2b5c6a3e-0000-4000-8000-000000000002",
                    location__street=Ellipsis, location__city=Ellipsis),
            variant(login__uuid="2b5c6a3e-0000-4000-8000-000000000003", location=Ellipsis,
                    phone=None),
        ]
        lines = [json.dumps(flat_message(p), ensure_ascii=False) for p in profiles]
        bad = ['{"login_uuid": "x", "email": ', "[1, 2, 3]", '{"foo": 1}']
        produce(topic, lines[:3] + bad + lines[3:])
        want = {}
        for p in profiles:
            row = flatten(p)
            want[row["id"]] = row
        dlq = os.path.join(self.tmp, ks + ".dlq.ndjson")
        rc, out = self.users_until(topic, ks, len(want), dlq=dlq, dead=len(bad))
        problems = [] if rc == 0 else [f"users exited {rc}:\n{out[-2000:]}"]
        notes = []
        if rc == 0:
            problems += self.compare_rows("table", self.table(ks), want)
            dead = self.dead_letters(dlq)
            notes.append("dead letters: " + "; ".join(str(d.get("reason"))[:70] for d in dead))
            if len(dead) != len(bad):
                problems.append(f"{len(dead)} dead letters, expected {len(bad)} (truncated JSON, "
                                "an array, an object that is no profile)")
            if any(not str(d.get("reason", "")).strip() for d in dead):
                problems.append("a dead letter without a reason")
        self.result("messages: generated ids == uuid5 in Python, postcode as text, partial "
                    "address, non-profiles dead-lettered with a reason", problems, notes)
        if problems:
            return
        # A replay from the beginning (a new keyspace: no stored offsets) gives the same ids.
        ks2 = ks + "_replay"
        self.keyspaces.append(ks2)
        rc, out = self.users_until(topic, ks2, len(want), dlq=dlq + ".2", dead=len(bad))
        problems = [] if rc == 0 else [f"users replay exited {rc}:\n{out[-2000:]}"]
        if rc == 0:
            problems += self.compare_rows("replay", self.table(ks2), want)
        self.result("messages: a replay of the topic derives the same ids", problems)

    def scenario_recruitment(self):
        if not os.path.exists(SEED_TRACKING):
            self.skip("recruitment: seed data", f"seed tracking log missing: {SEED_TRACKING}")
            return
        ks = f"users_rec_{self.token}"
        self.keyspaces.append(ks)
        s = self.session
        s.execute(f"CREATE KEYSPACE {ks} WITH replication = "
                  "{'class': 'SimpleStrategy', 'replication_factor': 1}")
        ints = {"bid", "campaign_id", "cd", "ev", "group_id", "job_id", "publisher_id", "tz", "v"}
        with open(SEED_TRACKING, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames
            rows = list(reader)
        cols = ", ".join(f"{c} {'timeuuid' if c == 'create_time' else 'int' if c in ints else 'text'}"
                         for c in header)
        s.execute(f"CREATE TABLE {ks}.tracking ({cols}, PRIMARY KEY (create_time))")
        from cassandra.concurrent import execute_concurrent_with_args  # noqa: PLC0415
        insert = s.prepare(f"INSERT INTO {ks}.tracking ({', '.join(header)}) "
                           f"VALUES ({', '.join('?' for _ in header)})")

        def value(c, v):
            if v == "":
                return None
            if c == "create_time":
                return uuid.UUID(v)
            return int(v) if c in ints else v

        params = [tuple(value(c, r[c]) for c in header) for r in rows]
        results = execute_concurrent_with_args(s, insert, params, concurrency=50)
        failed = [r for r in results if not r.success]
        count = s.execute(f"SELECT count(*) FROM {ks}.tracking").one()[0]
        if failed or count != len(rows):
            self.result("recruitment: load the seed log into Cassandra",
                        [f"{len(failed)} inserts failed, {count} rows of {len(rows)}"])
            return
        want = os.path.join(self.tmp, "recruitment.expected.db")
        rr.recompute(SEED_TRACKING, JOBS, want, self.args.recruitment_sources)
        db = os.path.join(self.tmp, "recruitment.db")
        cmd = [self.sluice, "run", RECRUITMENT, "--until-caught-up",
               "--var", f"TRACKING=cassandra://{CASSANDRA_HOST}:{CASSANDRA_PORT}/{ks}/tracking"
               "?order_by=create_time",
               "--var", f"SINK=sqlite:{db}", "--var", f"JOBS={JOBS}",
               "--var", f"DLQ={db}.dlq"]
        rc, out = run(cmd, timeout=300)
        key = ["job_id", "dates", "hours", "publisher_id", "campaign_id", "group_id"]
        problems = [] if rc == 0 else [f"recruitment exited {rc}:\n{out[-2000:]}"]
        if rc == 0:
            problems += compare_tables.compare(db, want, key)
        self.result(f"recruitment: {len(rows)} tracking rows read from Cassandra == "
                    "recompute_recruitment.py", problems)
        if problems:
            return
        before = compare_tables.load(db, "events")
        rc, out = run(cmd, timeout=300)
        after = compare_tables.load(db, "events")
        problems = [] if rc == 0 else [f"re-run exited {rc}:\n{out[-2000:]}"]
        if before.rows != after.rows:
            problems.append("the re-run changed the events table")
        problems += compare_tables.compare(db, want, key)
        self.result("recruitment: a re-run over the same Cassandra table changes nothing",
                    problems)

    # ---- driver ----

    def main(self):
        only = set(self.args.only.split(",")) if self.args.only else None
        if only is None or only - {"recruitment"}:
            why = kafka_missing()
            if why:
                raise harness.Missing(why)
        self.cluster, self.session = cassandra_util.session()
        for name in ("clean", "avro", "errors", "dead", "kill", "messages", "recruitment"):
            if only and name not in only:
                continue
            try:
                getattr(self, "scenario_" + name)()
            except harness.Missing:
                raise
            except Exception as e:  # one broken scenario must not hide the others
                import traceback  # noqa: PLC0415
                self.result(f"{name}: unexpected error", [f"{type(e).__name__}: {e}",
                                                          traceback.format_exc()[-1500:]])

    def cleanup(self):
        for a in self.apis:
            a.stop()
        if self.args.keep:
            print(f"kept {self.tmp}, keyspaces {self.keyspaces}, topics {self.topics}")
            return
        if self.session is not None:
            for ks in self.keyspaces:
                try:
                    self.session.execute(f"DROP KEYSPACE IF EXISTS {ks}")
                except Exception:  # noqa: BLE001 - best effort
                    pass
        if self.cluster is not None:
            self.cluster.shutdown()
        for t in self.topics:
            for name in (t, t + ".sluice-positions", t + ".sluice-dead-letters"):
                delete_topics(name)
        shutil.rmtree(self.tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--only", default="", help="comma-separated scenarios")
    ap.add_argument("--seed", type=int, default=5, help="seed of the kill timings")
    ap.add_argument("--recruitment-sources", default="cassandra",
                    help="the `sources` value the recruitment pipeline writes for this source")
    ap.add_argument("--keep", action="store_true", help="keep topics, keyspaces and files")
    args = ap.parse_args()
    t = Test(args)
    return t.run_main(t.main, t.cleanup)


if __name__ == "__main__":
    sys.exit(main())
