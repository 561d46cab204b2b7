#!/usr/bin/env python3
"""The SQL examples and their TOML twins against the real servers: the same sink contents.

    sql_twin_servers_test.py --sluice build/sluice --only mysql|users|users-avro [--keep]
                             (users: the project venv's python, for cassandra-driver)

mysql   examples/recruitment.sql and recruitment.toml into MariaDB (mysql://root@127.0.0.1:3306,
        a database per run, sqlsrv_twin_*), on the seed tracking log (../shared/seed-data,
        all 6766 rows) and on 20000 events of `sluice generate --profile recruitment`. Read
        back with the mariadb client: the view `events` has the same columns and types and the
        same rows, byte for byte, sorted by the key; `_sluice_dead_letters` the same records
        (source, partition, offset, generation, reason, payload hash) as a multiset; the
        records ignored (--summary-json) as many for the same reasons. Each table
        equals tests/tools/recompute_recruitment.py's and has rows; as many dead letters as the
        recomputation, and the generated input has some. Then examples/ysb.sql and ysb.toml
        (update mode) the same way, on tests/golden/ysb's hand-worked events (ysb has no seed
        data) and on 20000 `sluice generate --profile ysb` events: campaign_windows equal to
        tests/tools/recompute_ysb.py's, and the same in both, with the same dead letters.
users   examples/users-ingest.sql and .toml (the HTTP API -> Kafka): both read the same
        `sluice fake-api` (seeded, a fifth of its pages answered with truncated JSON every
        time) into topics of their own (sqlsrv-twin-*): the same messages read back with kcat
        (read_committed), partition, key and value, and the same dead-lettered pages; each
        message equals the API's profile fetched and flattened here with urllib, and the pages
        dead-lettered are the ones urllib cannot parse. Then examples/users.sql and users.toml
        (Kafka -> Cassandra, keyspaces sqlsrv_twin_*) read that topic (the generated data) and a
        topic of hand-written messages (profiles without a login.uuid, with a blank one,
        numeric and text postcodes, a partial address; truncated JSON, an array, an object
        that is no profile, a profile with none of id, name, email and username): read back
        with cassandra-driver, the same table schema and the same rows sorted by id, each equal
        to tests/tools/users_api.py's flattening (ids by Python's uuid5), and the same dead
        letters, as many as the bad messages. The users pipelines have no seed data: the seed
        repositories hold none for them (../shared/seed-data/SOURCES.md).
users-avro  the generated half of users with FORMAT=avro and the schema registry of `make
        services` (SCHEMA_REGISTRY, 127.0.0.1:8081): the messages decoded with confluent-kafka's
        AvroDeserializer, and both ingest files register the same value schema.

A missing server, client or seed file is a loud SKIP (exit 77), a FAIL under CI=true. Databases,
topics and keyspaces are dropped at the end unless --keep or a check failed. Exit 1 on a failure.
"""

import argparse
import collections
import json
import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))
import compare_tables  # noqa: E402
import dead_letters  # noqa: E402
import harness  # noqa: E402
import recompute_recruitment as rr  # noqa: E402
import recompute_ysb  # noqa: E402
from mysql_client import Server, dump_csv  # noqa: E402
from users_api import COLUMNS, FakeApi, flat_message, flatten, get, text  # noqa: E402

REPO = harness.REPO
JOBS = os.path.join(REPO, "examples", "data", "job.csv")
KEY = list(rr.EVENTS_KEY)
LANGS = ("sql", "toml")

# users-ingest's message: each field and where it is in the API's answer (examples/users-ingest.toml's
# header); the ages are numbers, everything else text as sent (a number as its digits).
INGEST_FIELDS = {
    "gender": "gender", "name_title": "name.title", "name_first": "name.first",
    "name_last": "name.last", "location_street_number": "location.street.number",
    "location_street_name": "location.street.name", "location_city": "location.city",
    "location_state": "location.state", "location_country": "location.country",
    "location_postcode": "location.postcode",
    "location_latitude": "location.coordinates.latitude",
    "location_longitude": "location.coordinates.longitude",
    "location_timezone_offset": "location.timezone.offset",
    "location_timezone_description": "location.timezone.description", "email": "email",
    "login_uuid": "login.uuid", "login_username": "login.username", "dob_date": "dob.date",
    "dob_age": "dob.age", "registered_date": "registered.date", "registered_age": "registered.age",
    "phone": "phone", "cell": "cell", "id_name": "id.name", "id_value": "id.value",
    "picture_large": "picture.large", "picture_medium": "picture.medium",
    "picture_thumbnail": "picture.thumbnail", "nat": "nat",
}
AGES = ("dob_age", "registered_age")


def run_logged(sluice, tmp, name, pipeline, variables, extra=(), timeout=240):
    """harness.run_sluice, its output also kept in tmp/NAME.log (kept when a check fails)."""
    r = harness.run_sluice(sluice, pipeline, variables, extra=extra, timeout=timeout)
    with open(os.path.join(tmp, name + ".log"), "w", encoding="utf-8") as f:
        f.write(f"rc={r.returncode}\n{r.stdout}\n{r.stderr}")
    return r


def letter_key(d):
    """What makes two dead letters the same record for the same reason (not the time)."""
    return (d.get("source"), d.get("partition"), d.get("offset"), d.get("generation"),
            d.get("reason"), d.get("payload_sha256"))


def ndjson_letters(path):
    entries, problems = dead_letters.load_dlq(path)
    return collections.Counter(letter_key(e) for e in entries), problems


def same_letters(t, label, letters):
    t.check(f"{label}: SQL and TOML dead-letter the same records for the same reasons "
            f"({sum(letters['sql'].values())})", letters["sql"] == letters["toml"],
            f"sql only: {list((letters['sql'] - letters['toml']).elements())[:5]}\n"
            f"toml only: {list((letters['toml'] - letters['sql']).elements())[:5]}")


# ----------------------------------------------------------------------------- MariaDB

class MysqlTwins:
    def __init__(self, t, sluice, tmp, keep):
        self.t, self.sluice, self.tmp, self.keep = t, sluice, tmp, keep
        self.server = Server()
        self.databases = []

    def database(self, name):
        db = f"sqlsrv_twin_{os.getpid()}_{name}"
        self.server.run(f"DROP DATABASE IF EXISTS `{db}`; CREATE DATABASE `{db}` CHARACTER SET utf8mb4")
        self.databases.append(db)
        return db

    def columns(self, db, table="events"):
        return self.server.run(
            "SELECT COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE FROM information_schema.COLUMNS WHERE "
            f"TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '{table}' ORDER BY ORDINAL_POSITION", db)[1:]

    def rows(self, db, table="events", key=KEY):
        """Every row of the table as the client prints it (header first), sorted by the key."""
        order = ", ".join(f"`{k}`" for k in key)
        return self.server.run(f"SELECT * FROM `{table}` ORDER BY {order}", db)

    def letters(self, db):
        rows = self.server.run("SELECT `source`, `partition`, `offset`, `generation`, `reason`, "
                               "`payload_sha256` FROM _sluice_dead_letters", db)[1:]
        return collections.Counter(
            (r[0], int(r[1]), int(r[2]), int(r[3]), r[4], r[5]) for r in rows)

    def twins(self, label, tracking):
        t = self.t
        expected = os.path.join(self.tmp, f"expected-{label}.db")
        stats = rr.recompute(tracking, JOBS, expected)
        dbs, rows, cols, letters, ignored = {}, {}, {}, {}, {}
        for lang in LANGS:
            dbs[lang] = db = self.database(f"{label}_{lang}")
            summary = os.path.join(self.tmp, f"{db}.summary.json")
            r = run_logged(self.sluice, self.tmp, db,
                           os.path.join("examples", f"recruitment.{lang}"),
                           {"TRACKING": tracking, "JOBS": JOBS, "SINK": self.server.uri(db)},
                           extra=["--summary-json", summary])
            try:
                with open(summary) as f:
                    ignored[lang] = json.load(f).get("ignored_by_reason")
            except (OSError, ValueError):
                ignored[lang] = None
            ok = t.check(f"{label}: recruitment.{lang} into MariaDB {db} runs to the end (exit 0)",
                         r.returncode == 0,
                         f"rc={r.returncode}\n{r.stdout[-1200:]}\n{r.stderr[-1200:]}")
            if not ok:
                return
            dump = os.path.join(self.tmp, f"{db}.csv")
            dump_csv(self.server, db, "events", dump)
            problems = compare_tables.compare(dump, expected, KEY, "events", "events")
            t.result(f"{label}: recruitment.{lang}: MariaDB events == the recomputation "
                     f"({stats['rows']} rows)", problems)
            rows[lang], cols[lang], letters[lang] = self.rows(db), self.columns(db), self.letters(db)
            t.check(f"{label}: recruitment.{lang}: as many dead letters as the recomputation "
                    f"({stats['dead_lettered']})",
                    sum(letters[lang].values()) == stats["dead_lettered"],
                    f"{sum(letters[lang].values())} != {stats['dead_lettered']}")
        t.check(f"{label}: the input is not trivial ({stats['rows']} rows)",
                stats["rows"] > 0 and len(rows["sql"]) == stats["rows"] + 1, "")
        t.check(f"{label}: SQL and TOML give events the same columns and MariaDB types",
                cols["sql"] == cols["toml"] and len(cols["sql"]) == 15,
                f"sql {cols['sql']}\ntoml {cols['toml']}")
        diff = [(a, b) for a, b in zip(rows["sql"], rows["toml"]) if a != b]
        t.check(f"{label}: SQL and TOML write the same events rows, sorted by the key "
                f"({len(rows['sql']) - 1})",
                rows["sql"] == rows["toml"],
                f"sql {len(rows['sql'])} rows, toml {len(rows['toml'])}; first differences "
                f"{diff[:3]}")
        same_letters(t, label, letters)
        t.check(f"{label}: SQL and TOML ignore as many records for the same reasons as the "
                f"recomputation ({stats['ignored_by_reason']})",
                ignored["sql"] == ignored["toml"] == stats["ignored_by_reason"],
                f"sql {ignored['sql']}, toml {ignored['toml']}")
        return stats

    def ysb(self, label, events, ads):
        """examples/ysb.sql and ysb.toml (update mode, JOIN ... on_missing = 'dead_letter') into
        MariaDB: campaign_windows == tests/tools/recompute_ysb.py in each, the same in both."""
        t = self.t
        expected, counts = recompute_ysb.recompute([events], recompute_ysb.load_ads(ads))
        rows, cols, letters = {}, {}, {}
        for lang in LANGS:
            db = self.database(f"ysb_{label}_{lang}")
            r = run_logged(self.sluice, self.tmp, db, os.path.join("examples", f"ysb.{lang}"),
                           {"EVENTS": events, "ADS": ads, "SINK": self.server.uri(db)})
            if not t.check(f"ysb {label}: ysb.{lang} into MariaDB {db} runs to the end (exit 0)",
                           r.returncode == 0,
                           f"rc={r.returncode}\n{r.stdout[-1200:]}\n{r.stderr[-1200:]}"):
                return
            rows[lang] = self.rows(db, "campaign_windows", ["window_start", "campaign_id"])
            cols[lang], letters[lang] = self.columns(db, "campaign_windows"), self.letters(db)
            header = rows[lang][0] if rows[lang] else []
            got = {}
            if {"window_start", "campaign_id", "views"} <= set(header):
                w, c, v = (header.index(n) for n in ("window_start", "campaign_id", "views"))
                got = {(r[w], r[c]): int(r[v]) for r in rows[lang][1:]}
            d = recompute_ysb.diff(expected, got)
            t.check(f"ysb {label}: ysb.{lang}: MariaDB campaign_windows == the recomputation "
                    f"({len(expected)} rows, {counts['views']} views)",
                    expected and not d and len(got) == len(rows[lang]) - 1, "\n".join(d))
            t.check(f"ysb {label}: ysb.{lang}: as many dead letters as the recomputation "
                    f"({counts['dead_letters']})",
                    sum(letters[lang].values()) == counts["dead_letters"],
                    f"{sum(letters[lang].values())}")
        t.check(f"ysb {label}: SQL and TOML give campaign_windows the same columns and types",
                cols["sql"] == cols["toml"] and cols["sql"], f"sql {cols['sql']}\ntoml {cols['toml']}")
        t.check(f"ysb {label}: SQL and TOML write the same campaign_windows rows, sorted by "
                f"the key ({len(rows['sql']) - 1})", rows["sql"] == rows["toml"],
                f"sql {len(rows['sql'])} rows, toml {len(rows['toml'])}")
        same_letters(t, f"ysb {label}", letters)

    def run(self):
        why = self.server.reachable()
        if why:
            raise harness.Missing(why)
        if not os.path.exists(harness.SEED_TRACKING):
            self.t.skip("seed data", f"seed tracking log missing: {harness.SEED_TRACKING}")
        else:
            self.twins("seed", harness.SEED_TRACKING)
        generated = os.path.join(self.tmp, "generated.ndjson")
        rc, out = harness.run([self.sluice, "generate", "--profile", "recruitment", "--count",
                               "20000", "--rate", "0", "--seed", "3", "--to", generated],
                              timeout=120)
        if self.t.check("sluice generate writes 20000 tracking events", rc == 0, out[-800:]):
            stats = self.twins("generated", generated)
            self.t.check("generated: the input has dead letters (so their comparison counts)",
                         stats is not None and stats["dead_lettered"] > 0, "")
        # ysb has no seed data: the hand-worked events of tests/golden/ysb stand in for it.
        golden = os.path.join(REPO, "tests", "golden", "ysb")
        self.ysb("golden", os.path.join(golden, "events.ndjson"), os.path.join(golden, "ads.csv"))
        events = os.path.join(self.tmp, "ysb.ndjson")
        rc, out = harness.run([self.sluice, "generate", "--profile", "ysb", "--count", "20000",
                               "--rate", "0", "--seed", "5", "--set", "spacing=2ms", "--to", events],
                              timeout=120)
        if self.t.check("sluice generate --profile ysb writes 20000 events", rc == 0, out[-800:]):
            self.ysb("generated", events, os.path.join(REPO, "examples", "data", "ysb_ads.csv"))

    def cleanup(self, keep):
        if keep:
            print(f"     kept databases {self.databases}", flush=True)
            return
        for db in self.databases:
            try:
                self.server.run(f"DROP DATABASE IF EXISTS `{db}`")
            except (RuntimeError, subprocess.TimeoutExpired):
                pass


# ----------------------------------------------------------------------------- Kafka, Cassandra

def kcat_messages(topic):
    """(partition, key, value) of every committed message of the topic, sorted; read until two
    reads 1.5 s apart agree (a commit's markers reach the partitions a moment later)."""
    last, deadline = None, time.time() + 20
    while True:
        rc, out, err = harness.run_split(
            ["kcat", "-C", "-b", harness.BROKER, "-t", topic, "-e", "-q", "-X",
             "isolation.level=read_committed", "-f", "%p\\t%k\\t%s\\n"], timeout=120)
        if rc != 0:
            raise RuntimeError(f"kcat -C {topic} exited {rc}: {err[-800:]}")
        msgs = sorted(tuple(ln.split("\t", 2)) for ln in out.splitlines() if ln.strip())
        if (last is not None and msgs == last) or time.time() > deadline:
            return msgs
        last = msgs
        time.sleep(1.5)


def api_pages(api, seed, size, count):
    """The pages the API answers with JSON (their profiles, in order, until `count`) and the
    numbers of the pages it does not, fetched with urllib as users-ingest asks for them."""
    profiles, bad, page = [], [], 1
    while len(profiles) < count and page < 1000:
        url = f"{api}?results={size}&seed={urllib.parse.quote(seed)}&page={page}"
        with urllib.request.urlopen(url, timeout=10) as r:
            body = r.read().decode("utf-8")
        try:
            profiles.extend(json.loads(body)["results"])
        except (ValueError, KeyError):
            bad.append(page)
        page += 1
    return profiles[:count], bad


def ingest_message(p):
    return {k: (get(p, path) if k in AGES else text(get(p, path)))
            for k, path in INGEST_FIELDS.items()}


BASE = {
    "gender": "male", "name": {"title": "Mr", "first": "Åke", "last": "Nguyễn"},
    "location": {"street": {"number": 17, "name": "Rue de l'Église"}, "city": "Lyon",
                 "state": "Rhône", "country": "France", "postcode": 69001},
    "email": "ake@example.org",
    "login": {"uuid": "5f0c6f0e-1b1a-4c55-9d1e-0a6b7c2d3e4f", "username": "ake69"},
    "dob": {"date": "1979-11-30T01:02:03.004Z"}, "registered": {"date": "2011-05-06T07:08:09.010Z"},
    "phone": "04-78-00-00-00", "picture": {"medium": "https://example.org/med/ake.jpg"},
}


def variant(**changes):
    """BASE with a__b=value set (Ellipsis: removed)."""
    p = json.loads(json.dumps(BASE))
    for path, value in changes.items():
        obj, parts = p, path.split("__")
        for part in parts[:-1]:
            obj = obj[part]
        if value is Ellipsis:
            obj.pop(parts[-1], None)
        else:
            obj[parts[-1]] = value
    return p


FIXTURE = [
    BASE,
    variant(login__uuid=Ellipsis, email="no-uuid@example.org"),
    variant(login__uuid="", name__first="Blank"),
    variant(login__uuid=" ", phone=None),
    variant(login__uuid="5f0c6f0e-0000-4000-8000-000000000001", location__postcode="SW1A 1AA"),
    variant(login__uuid="5f0c6f0e-0000-4000-8000-000000000002", location__street=Ellipsis,
            location__state=Ellipsis),
    variant(login__uuid="5f0c6f0e-0000-4000-8000-000000000003", location=Ellipsis),
    variant(login__uuid="5f0c6f0e-0000-4000-8000-000000000004", name__last="Smith \"Jr\"",
            location__street__number="12b"),
]
# Messages that are not profiles: each dead-lettered with a reason.
NOT_PROFILES = ['{"login_uuid": "x", "email": ', "[1, 2, 3]", '"just text"', '{"foo": 1}',
                '{"login_uuid": "  ", "gender": "female", "phone": "1"}']


class UsersTwins:
    def __init__(self, t, sluice, tmp, keep, avro=False):
        self.t, self.sluice, self.tmp, self.keep, self.avro = t, sluice, tmp, keep, avro
        self.token = f"{os.getpid()}_{int(time.time()) % 100000}" + ("_avro" if avro else "")
        # The profiles' format on the topics: JSON, or Avro through the schema registry.
        self.format = {"FORMAT": "avro", "SCHEMA_REGISTRY": harness.REGISTRY_URL} if avro else {}
        self.topics, self.keyspaces, self.apis = [], [], []
        self.cluster = self.session = None

    def topic(self, name):
        topic = f"sqlsrv-twin-{self.token}-{name}"
        self.topics.append(topic)
        return topic

    def keyspace(self, name):
        ks = f"sqlsrv_twin_{self.token}_{name}"
        self.keyspaces.append(ks)
        return ks

    def table(self, ks):
        rows = self.session.execute(f"SELECT {', '.join(COLUMNS)} FROM {ks}.users_profile")
        return sorted((tuple(r) for r in rows), key=lambda r: r[0])

    def schema(self, ks):
        rows = self.session.execute(
            "SELECT column_name, kind, type FROM system_schema.columns WHERE keyspace_name = %s "
            "AND table_name = 'users_profile'", (ks,))
        return sorted(tuple(r) for r in rows)

    def ingest(self):
        """users-ingest twins: the API -> two topics. Returns (topic, profiles) or None."""
        t = self.t
        seed, size, count = "sqlsrv-twin", 20, 200
        api = FakeApi(self.sluice, os.path.join(self.tmp, "fake-api.log"), "--error-rate", "0.2",
                      "--errors", "malformed")
        self.apis.append(api)
        profiles, bad_pages = api_pages(api.url, seed, size, count)
        msgs, letters, topics = {}, {}, {}
        for lang in LANGS:
            topics[lang] = topic = self.topic(f"ingest-{lang}")
            dlq = os.path.join(self.tmp, f"ingest-{lang}.dlq.ndjson")
            r = run_logged(self.sluice, self.tmp, f"ingest-{lang}",
                           os.path.join("examples", f"users-ingest.{lang}"),
                           {"API": api.url, "PROFILES": f"kafka://{harness.BROKER}/{topic}",
                            "COUNT": str(count), "PAGE_SIZE": str(size), "SEED": seed,
                            "INTERVAL": "0s", "DLQ": dlq, **self.format}, timeout=120)
            if not t.check(f"generated: users-ingest.{lang} -> Kafka {topic} runs to the end "
                           "(exit 0)", r.returncode == 0,
                           f"rc={r.returncode}\n{r.stdout[-1200:]}\n{r.stderr[-1200:]}"):
                return None
            msgs[lang] = self.messages(topic)
            letters[lang], problems = ndjson_letters(dlq)
            t.result(f"generated: users-ingest.{lang}: the dead letters are well formed", problems)
            want = {p["login"]["uuid"]: ingest_message(p) for p in profiles}
            got = {}
            for _, key, value in msgs[lang]:
                got.setdefault(key, []).append(value)
            wrong = [k for k in want if got.get(k) != [want[k]]]
            t.check(f"generated: users-ingest.{lang}: {count} messages, one per profile, keyed "
                    "by login.uuid, each equal to the API's profile flattened with urllib",
                    len(msgs[lang]) == count and len(want) == count and not wrong and
                    set(got) == set(want),
                    f"{len(msgs[lang])} messages, {len(got)} keys; {len(wrong)} differ, e.g. "
                    f"{[(k, got.get(k), want[k]) for k in wrong[:1]]}")
            pages = sorted(k[2] for k in letters[lang].elements())
            t.check(f"generated: users-ingest.{lang}: the pages dead-lettered are those the API "
                    f"answers with truncated JSON ({bad_pages})", pages == bad_pages and bad_pages,
                    f"dead-lettered pages {pages}")
        t.check(f"generated: users-ingest.sql and .toml write the same messages (partition, key, "
                f"value; {len(msgs['sql'])})", msgs["sql"] == msgs["toml"],
                f"sql only {[m for m in msgs['sql'] if m not in msgs['toml']][:2]}\n"
                f"toml only {[m for m in msgs['toml'] if m not in msgs['sql']][:2]}")
        if self.avro:
            schemas = {lang: self.value_schema(topics[lang]) for lang in LANGS}
            t.check("generated: users-ingest.sql and .toml register the same value schema "
                    "(TOPIC-value)", schemas["sql"] is not None and schemas["sql"] == schemas["toml"],
                    f"sql {schemas['sql']}\ntoml {schemas['toml']}")
        same_letters(t, "generated: users-ingest", letters)
        return topics["sql"], profiles

    def messages(self, topic):
        """(partition, key, value as a dict) of each committed message, sorted."""
        if self.avro:
            import kafka_util  # noqa: PLC0415
            return sorted(((str(p), k, v) for p, k, v in
                           kafka_util.avro_topic_records(topic, harness.REGISTRY_URL)),
                          key=lambda m: (m[0], m[1] or "", json.dumps(m[2], sort_keys=True)))
        return [(p, k, json.loads(v)) for p, k, v in kcat_messages(topic)]

    @staticmethod
    def value_schema(topic):
        url = f"{harness.REGISTRY_URL}/subjects/{urllib.parse.quote(topic)}-value/versions/latest"
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                return json.loads(json.loads(r.read().decode("utf-8"))["schema"])
        except (OSError, ValueError, KeyError):
            return None

    def users(self, label, topic, want, n_bad):
        """users.sql and users.toml on `topic` into keyspaces of their own."""
        t = self.t
        tables, schemas, letters = {}, {}, {}
        for lang in LANGS:
            ks = self.keyspace(f"{label.replace('-', '_')}_{lang}")
            dlq = os.path.join(self.tmp, f"users-{label}-{lang}.dlq.ndjson")
            r = run_logged(self.sluice, self.tmp, f"users-{label}-{lang}",
                           os.path.join("examples", f"users.{lang}"),
                           {"PROFILES": f"kafka://{harness.BROKER}/{topic}",
                            "CASSANDRA": f"cassandra://{harness.CASSANDRA.address}/{ks}",
                            "DLQ": dlq, **self.format}, extra=["--until-caught-up"], timeout=180)
            if not t.check(f"{label}: users.{lang} -> Cassandra {ks} runs to the end (exit 0)",
                           r.returncode == 0,
                           f"rc={r.returncode}\n{r.stdout[-1200:]}\n{r.stderr[-1200:]}"):
                return
            tables[lang], schemas[lang] = self.table(ks), self.schema(ks)
            letters[lang], problems = ndjson_letters(dlq)
            t.result(f"{label}: users.{lang}: the dead letters are well formed", problems)
            got = {r[0]: dict(zip(COLUMNS, r)) for r in tables[lang]}
            wrong = [k for k in want if got.get(k) != want[k]]
            t.check(f"{label}: users.{lang}: users_profile holds one row per profile "
                    f"({len(want)}), each equal to the flattening in Python",
                    len(tables[lang]) == len(want) and len(want) > 0 and not wrong,
                    f"{len(tables[lang])} rows; {len(wrong)} differ, e.g. "
                    f"{[(k, got.get(k), want[k]) for k in wrong[:1]]}")
            t.check(f"{label}: users.{lang}: as many dead letters as messages that are not "
                    f"profiles ({n_bad})", sum(letters[lang].values()) == n_bad,
                    f"{sum(letters[lang].values())} dead letters")
        t.check(f"{label}: users.sql and users.toml create the same users_profile columns",
                schemas["sql"] == schemas["toml"] and len(schemas["sql"]) == len(COLUMNS),
                f"sql {schemas['sql']}\ntoml {schemas['toml']}")
        t.check(f"{label}: users.sql and users.toml write the same rows, sorted by id "
                f"({len(tables['sql'])})", tables["sql"] == tables["toml"],
                f"sql only {sorted(set(tables['sql']) - set(tables['toml']))[:2]}\n"
                f"toml only {sorted(set(tables['toml']) - set(tables['sql']))[:2]}")
        same_letters(t, f"{label}: users", letters)

    def fixture(self):
        topic = self.topic("fixture")
        lines = [json.dumps(flat_message(p), ensure_ascii=False) for p in FIXTURE]
        lines = lines[:3] + NOT_PROFILES[:3] + lines[3:] + NOT_PROFILES[3:]
        p = subprocess.run(["kcat", "-P", "-b", harness.BROKER, "-t", topic, "-p", "0"],
                           input="".join(ln + "\n" for ln in lines).encode("utf-8"),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        if not self.t.check(f"kcat writes the {len(lines)} hand-written messages to {topic}",
                            p.returncode == 0, p.stdout[-800:]):
            return
        want = {}
        for prof in FIXTURE:
            row = flatten(prof)
            want[row["id"]] = row
        self.t.check("hand-written: the profiles have distinct ids, three of them generated",
                     len(want) == len(FIXTURE) and
                     sum(1 for prof in FIXTURE if not (get(prof, "login.uuid") or "").strip()) == 3,
                     "")
        self.users("hand-written", topic, want, len(NOT_PROFILES))

    def run(self):
        import kafka_util  # noqa: PLC0415
        why = kafka_util.ensure_kcat() or kafka_util.kafka_missing()
        if why:
            raise harness.Missing(why)
        if self.avro:
            try:
                import confluent_kafka.schema_registry.avro  # noqa: F401, PLC0415
            except ImportError as e:
                raise harness.Missing(f"confluent-kafka with Avro support is missing ({e}); run "
                                      "scripts/venv.sh and use .venv/bin/python") from e
            if self.value_schema("sqlsrv-no-such-topic") is None and not harness.REGISTRY.up():
                raise harness.Missing(harness.REGISTRY.why_down())
        import cassandra_util  # noqa: PLC0415
        self.cluster, self.session = cassandra_util.session()
        got = self.ingest()
        if got is not None:
            topic, profiles = got
            self.users("generated", topic, {flatten(p)["id"]: flatten(p) for p in profiles}, 0)
        if not self.avro:  # hand-written messages are JSON
            self.fixture()

    def cleanup(self, keep):
        for a in self.apis:
            a.stop()
        if keep:
            print(f"     kept topics {self.topics}, keyspaces {self.keyspaces}", flush=True)
            return
        if self.session is not None:
            for ks in self.keyspaces:
                try:
                    self.session.execute(f"DROP KEYSPACE IF EXISTS {ks}")
                except Exception:  # noqa: BLE001 - best effort
                    pass
        if self.cluster is not None:
            self.cluster.shutdown()
        if self.topics:
            import kafka_util  # noqa: PLC0415
            # One call (a JVM start each): every topic of this run, with the positions and
            # dead-letter topics the Kafka sinks add.
            kafka_util.delete_topics(f"sqlsrv-twin-{self.token}-.*")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--only", required=True, choices=["mysql", "users", "users-avro"])
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    sluice = os.path.abspath(a.sluice)
    t = harness.Checks(f"sql_twin_servers_test --only {a.only}")
    with harness.temp_dir(f"sluice-sqlsrv-{a.only}-", keep=a.keep, checks=t) as tmp:
        if a.only == "mysql":
            part = MysqlTwins(t, sluice, tmp, a.keep)
        else:
            part = UsersTwins(t, sluice, tmp, a.keep, avro=a.only == "users-avro")
        return t.run_main(part.run, lambda: part.cleanup(a.keep or t.failed))


if __name__ == "__main__":
    harness.main_guard(main)
