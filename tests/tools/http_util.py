"""HTTP helpers of the HTTP tests: a sluice run with --http on a free loopback port and plain
requests (the PASS/FAIL/SKIP bookkeeping is tests/tools/harness.py's)."""
import json
import os
import signal
import socket
import subprocess
import urllib.error
import urllib.request

from harness import REPO, free_port, wait_for


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
