#!/usr/bin/env python3
"""A small Confluent-compatible schema registry for the tests (the REST subset sluice and
confluent-kafka's SchemaRegistryClient use), started by scripts/services.sh on 127.0.0.1:8081.

    schema_registry.py [--host 127.0.0.1] [--port 8081] [--state FILE]

It stands in for a real registry only because none could be run here (scripts/README.md says
what was tried: Karapace is not on PyPI; Apicurio Registry's Maven modules depend on artifacts
Maven Central does not serve; Confluent's registry is not on Maven Central). Serves:

  POST /subjects/S/versions      {"schema": TEXT, "schemaType"?, "references"?} -> {"id": N}
                                 (the same schema text gets the same id under every subject;
                                 registering it again under S returns the existing id)
  POST /subjects/S               lookup of a schema under S -> {"subject","id","version","schema"}
  GET  /schemas/ids/N            -> {"schema": TEXT} (+ "schemaType" when not AVRO, + "references"
                                 [{"name","subject","version"}] when it has any)
  GET  /schemas/ids/N/versions   -> [{"subject","version"}]
  GET  /subjects                 -> [S, ...]
  GET  /subjects/S/versions      -> [1, 2, ...]
  GET  /subjects/S/versions/V    V a number or "latest" -> {"subject","id","version","schema"}
                                 (+ "schemaType", "references" as above; the lookup too)
schemaType is AVRO (the default), PROTOBUF or JSON. A PROTOBUF schema is served as it was
registered: .proto text, or the base64 FileDescriptorProto that confluent-kafka's Python
ProtobufSerializer registers (Confluent's registry would hand back .proto text; sluice reads both).
  GET  /config, /config/S        -> {"compatibilityLevel": "NONE"} (no compatibility checks)
  DELETE /subjects/S             -> the versions deleted
Errors are Confluent's: 404 {"error_code": 40401 subject / 40402 version / 40403 schema,
"message": ...}, 422 {"error_code": 42201} for a schema that is not JSON (Avro) text.

State is kept in FILE (JSON, rewritten on each change; none: in memory), so ids survive a
restart: the tests stop and start a private one to play a registry that is down for a while.
"""

import argparse
import json
import os
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlparse

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


class Store:
    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()
        self.schemas = {}   # id -> {"schema": text, "schemaType": type, "references": [...]}
        self.subjects = {}  # subject -> [id of version 1, id of version 2, ...]
        if path and os.path.exists(path) and os.path.getsize(path) > 0:
            with open(path, encoding="utf-8") as f:
                state = json.load(f)
            self.schemas = {int(k): v for k, v in state["schemas"].items()}
            self.subjects = state["subjects"]

    def save(self):
        if not self.path:
            return
        tmp = self.path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"schemas": self.schemas, "subjects": self.subjects}, f)
        os.replace(tmp, self.path)

    @staticmethod
    def canonical(text, schema_type):
        if schema_type == "AVRO":
            return json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))
        return text

    def find(self, text, schema_type, references=None):
        """The id of this schema (text, type and references, as Confluent compares them)."""
        key = self.canonical(text, schema_type)
        for sid, s in self.schemas.items():
            if (s["schemaType"] == schema_type and self.canonical(s["schema"], schema_type) == key
                    and (s.get("references") or []) == (references or [])):
                return sid
        return None


def error(status, code, message):
    return status, {"error_code": code, "message": message}


def handle(store, method, path, body):
    parts = [unquote(p) for p in path.strip("/").split("/") if p]
    with store.lock:
        if method == "GET" and parts[:1] == ["config"] and len(parts) <= 2:
            return 200, {"compatibilityLevel": "NONE"}
        if parts[:2] == ["schemas", "ids"] and len(parts) >= 3 and method == "GET":
            try:
                sid = int(parts[2])
            except ValueError:
                return error(404, 40403, f"Schema {parts[2]} not found")
            s = store.schemas.get(sid)
            if s is None:
                return error(404, 40403, f"Schema {sid} not found")
            if len(parts) == 4 and parts[3] == "versions":
                return 200, [{"subject": subj, "version": i + 1}
                             for subj, ids in store.subjects.items()
                             for i, x in enumerate(ids) if x == sid]
            out = {"schema": s["schema"]}
            if s["schemaType"] != "AVRO":
                out["schemaType"] = s["schemaType"]
            if s.get("references"):
                out["references"] = s["references"]
            return 200, out
        if parts == ["subjects"] and method == "GET":
            return 200, sorted(store.subjects)
        if len(parts) >= 2 and parts[0] == "subjects":
            subject = parts[1]
            if method == "DELETE" and len(parts) == 2:
                if subject not in store.subjects:
                    return error(404, 40401, f"Subject '{subject}' not found.")
                versions = list(range(1, len(store.subjects.pop(subject)) + 1))
                store.save()
                return 200, versions
            if method == "POST":
                try:
                    req = json.loads(body or b"{}")
                    text = req["schema"]
                    schema_type = req.get("schemaType") or "AVRO"
                    if schema_type == "AVRO":
                        json.loads(text)
                except (ValueError, KeyError, TypeError) as e:
                    return error(422, 42201, f"Invalid schema: {e}")
                sid = store.find(text, schema_type, req.get("references"))
                if len(parts) == 2:  # lookup
                    ids = store.subjects.get(subject)
                    if ids is None:
                        return error(404, 40401, f"Subject '{subject}' not found.")
                    if sid is None or sid not in ids:
                        return error(404, 40403, "Schema not found")
                    out = {"subject": subject, "id": sid, "version": ids.index(sid) + 1,
                           "schema": text}
                    if schema_type != "AVRO":
                        out["schemaType"] = schema_type
                    if store.schemas[sid].get("references"):
                        out["references"] = store.schemas[sid]["references"]
                    return 200, out
                if len(parts) == 3 and parts[2] == "versions":
                    if sid is None:
                        sid = max(store.schemas, default=0) + 1
                        store.schemas[sid] = {"schema": text, "schemaType": schema_type,
                                              "references": req.get("references") or []}
                    ids = store.subjects.setdefault(subject, [])
                    if sid not in ids:
                        ids.append(sid)
                    store.save()
                    return 200, {"id": sid}
            if method == "GET" and len(parts) >= 3 and parts[2] == "versions":
                ids = store.subjects.get(subject)
                if not ids:
                    return error(404, 40401, f"Subject '{subject}' not found.")
                if len(parts) == 3:
                    return 200, list(range(1, len(ids) + 1))
                v = parts[3]
                if v in ("latest", "-1"):
                    n = len(ids)
                elif re.fullmatch(r"\d+", v) and 1 <= int(v) <= len(ids):
                    n = int(v)
                else:
                    return error(404, 40402, f"Version {v} not found.")
                sid = ids[n - 1]
                s = store.schemas[sid]
                out = {"subject": subject, "id": sid, "version": n, "schema": s["schema"]}
                if s["schemaType"] != "AVRO":
                    out["schemaType"] = s["schemaType"]
                if s.get("references"):
                    out["references"] = s["references"]
                if len(parts) == 5 and parts[4] == "schema":
                    return 200, json.loads(s["schema"])
                return 200, out
        return error(404, 404, f"{method} {path}: not served by this registry")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8081)
    ap.add_argument("--state", default="", help="JSON file holding the state (none: in memory)")
    args = ap.parse_args()
    store = Store(args.state)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self, method):
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n) if n else b""
            try:
                status, out = handle(store, method, urlparse(self.path).path, body)
            except Exception as e:  # noqa: BLE001 - a bug here must answer, not hang the client
                status, out = error(500, 50001, f"{type(e).__name__}: {e}")
            data = json.dumps(out).encode()
            self.send_response(status)
            self.send_header("Content-Type", CONTENT_TYPE)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):  # noqa: N802
            self._serve("GET")

        def do_POST(self):  # noqa: N802
            self._serve("POST")

        def do_DELETE(self):  # noqa: N802
            self._serve("DELETE")

        def do_PUT(self):  # noqa: N802
            self._serve("PUT")

        def log_message(self, fmt, *a):
            sys.stderr.write("schema_registry: " + (fmt % a) + "\n")

    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    print(f"schema_registry: serving on http://{args.host}:{args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
