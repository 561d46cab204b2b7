"""Helpers shared by the HTTP tests: a sluice run with --http on a free loopback port, HTTP
requests, polling, and the PASS/FAIL/SKIP bookkeeping of the other integration tests
(a missing tool is a SKIP, exit 77, unless CI=true, where it FAILS)."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IN_CI = os.environ.get("CI", "").lower() == "true"
SKIP = 77


class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, name, ok, detail=""):
        if ok:
            self.passed += 1
            print("PASS " + name, flush=True)
        else:
            self.failed += 1
            print("FAIL " + name + (": " + str(detail) if detail != "" else ""), flush=True)
        return ok

    def finish(self):
        print(f"{self.passed} passed, {self.failed} failed", flush=True)
        return 1 if self.failed else 0


def require_tool(name, package):
    """Returns the tool's path, or None after printing a loud SKIP (a FAIL line under CI)."""
    path = shutil.which(name)
    if path:
        return path
    why = f"{name} not found (Debian package {package}; scripts/install-deps.sh installs it)"
    if IN_CI:
        print(f"FAIL {why} (CI=true: not skipping)", flush=True)
    else:
        print(f"{'!' * 78}\nSKIP {why}\n{'!' * 78}", flush=True)
    return None


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url, timeout=5):
    """Returns (status, body text, headers); status 0 when the server cannot be reached."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), dict(e.headers)
    except (urllib.error.URLError, ConnectionError, socket.timeout, TimeoutError):
        return 0, "", {}


def get_json(url):
    status, body, _ = get(url)
    return json.loads(body) if status == 200 else None


def wait_for(predicate, timeout, interval=0.25):
    """Polls predicate() until it returns a truthy value (returned) or the timeout passes (None)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return None


class SluiceRun:
    """`sluice run examples/recruitment.toml` on the generator with --http on a free port."""

    def __init__(self, sluice, tmp, port=None, count="", rate=5000, start=None, linger=0, extra=()):
        self.port = port or free_port()
        self.db = os.path.join(tmp, "recruitment.db")
        self.url = f"http://127.0.0.1:{self.port}"
        args = [sluice, "run", "examples/recruitment.toml",
                "--var", "TRACKING=generator:", "--var", f"SINK=sqlite:{self.db}",
                "--var", "DLQ=" + os.path.join(tmp, "dead-letters.ndjson"),
                "--var", f"COUNT={count}", "--var", f"RATE={rate}",
                "--http", f"127.0.0.1:{self.port}"]
        if start:
            args += ["--var", f"START={start}"]
        if linger:
            args += ["--http-linger", str(linger)]
        args += list(extra)
        self.stderr_path = os.path.join(tmp, f"sluice-{self.port}.stderr")
        self.stderr = open(self.stderr_path, "w")
        self.proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=self.stderr, text=True)

    def wait_serving(self, timeout=30):
        return wait_for(lambda: self.proc.poll() is None and get(self.url + "/healthz")[0] == 200, timeout)

    def status(self):
        return get_json(self.url + "/api/status")

    def stop(self, timeout=60):
        """Sends SIGTERM (drain, checkpoint, exit) and returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
        self.stderr.close()
        return self.proc.returncode

    def log(self):
        with open(self.stderr_path) as f:
            return f.read()


def main_guard(fn):
    try:
        sys.exit(fn())
    except KeyboardInterrupt:
        sys.exit(130)
