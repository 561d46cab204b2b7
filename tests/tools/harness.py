"""The one harness of the Python integration tests (tests/integration/*.py, tests/deploy/*.py).

Server discovery: the servers of `make services` on 127.0.0.1, each overridable by one
environment variable (HOST:PORT, or a URI such as mysql://USER@HOST:PORT), e.g.
SLUICE_TEST_KAFKA=127.0.0.1:1 points the Kafka tests at a port where nothing listens:

    SLUICE_TEST_MYSQL      MariaDB/MySQL     127.0.0.1:3306 (root, no password)
    SLUICE_TEST_KAFKA      Kafka broker      127.0.0.1:9092 (else SLUICE_KAFKA_BROKERS's first)
    SLUICE_TEST_CASSANDRA  Cassandra         127.0.0.1:9042
    SLUICE_TEST_REGISTRY   schema registry   127.0.0.1:8081

The one CI rule: with CI set to true, 1 or yes (any case) a missing server, tool or seed data is
a FAIL; otherwise the test prints loudly why and exits with ctest's skip code 77 (registered
with SKIP_RETURN_CODE 77) when nothing else ran, so ctest says "Skipped", never "Passed".

Also: subprocess helpers (run with a timeout and capture, start sluice, kill -9 at a random
moment, wait for output), temporary directories kept on failure, and PASS/FAIL counting with a
final "N passed, M failed[, K skipped]" line and the exit code (Checks.finish()).
Python 3 standard library only.
"""
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from urllib.parse import urlparse

TOOLS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(TOOLS))
SEED_DATA = os.path.normpath(os.path.join(REPO, "..", "shared", "seed-data"))
if not os.path.isdir(SEED_DATA):  # a checkout elsewhere on this machine
    SEED_DATA = "/work/shared/seed-data"
SEED_DIR = os.path.join(SEED_DATA, "TrannXuanTien__ETL-streaming-project")
SEED_TRACKING = os.path.join(SEED_DIR, "tracking.csv")
SKIP = 77


def in_ci():
    """The one CI rule: CI=true, 1 or yes (any case) turns every skip into a failure."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


IN_CI = in_ci()


# ----------------------------------------------------------------------------- discovery

class Server:
    """Where one of the servers of `make services` is expected: HOST:PORT from its environment
    variable, else 127.0.0.1 and the port scripts/services.sh uses."""

    def __init__(self, kind, env, port, user=None, also=None):
        self.kind, self.env, self.user = kind, env, user
        text = os.environ.get(env, "").strip() or os.environ.get(also or "", "").split(",")[0].strip()
        host, p = "127.0.0.1", str(port)
        if text:
            if "://" in text:
                u = urlparse(text)
                host, p, self.user = u.hostname or "", str(u.port or port), u.username or user
            else:
                host, _, p = text.rpartition(":")
        if not host or not p.isdigit():
            raise SystemExit(f"{env}={text!r}: expected HOST:PORT")
        self.host, self.port = host, int(p)

    @property
    def address(self):
        return f"{self.host}:{self.port}"

    def up(self, timeout=2.0):
        return port_open(self.host, self.port, timeout)

    def why_down(self):
        """None when something listens on the port, else why (with how to start it)."""
        if self.up():
            return None
        return (f"{self.kind} does not answer on {self.address} (start it with `make services`; "
                f"{self.env} overrides the address)")


MYSQL = Server("MariaDB", "SLUICE_TEST_MYSQL", 3306, user="root")
KAFKA = Server("Kafka", "SLUICE_TEST_KAFKA", 9092, also="SLUICE_KAFKA_BROKERS")  # as sluice_tests
CASSANDRA = Server("Cassandra", "SLUICE_TEST_CASSANDRA", 9042)
REGISTRY = Server("the schema registry", "SLUICE_TEST_REGISTRY", 8081)

BROKER = KAFKA.address
MYSQL_URI = f"mysql://{MYSQL.user}@{MYSQL.address}"   # + /DATABASE[/TABLE]
REGISTRY_URL = f"http://{REGISTRY.address}"


def port_open(host, port, timeout=2.0):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tool_missing(name, package):
    return f"{name} not found (Debian package {package}; scripts/install-deps.sh installs it)"


# ----------------------------------------------------------------------------- reporting

def loud(msg):
    print(f"{'!' * 78}\n{msg}\n{'!' * 78}", flush=True)


class Missing(Exception):
    """A server, tool or seed data the test needs is not there (Checks.run_main: missing())."""


class Checks:
    """PASS/FAIL counting. check() for one condition, result() for a list of problems; skip()
    and missing() apply the CI rule; finish() prints the summary and returns the exit code."""

    def __init__(self, name=None, skip_on_any=False):
        """skip_on_any: exit 77 when any part was skipped (and none failed), not only when
        nothing passed."""
        self.test_name = name or os.path.basename(sys.argv[0]).removesuffix(".py")
        self.skip_on_any = skip_on_any
        self.passed = self.failed = self.skipped = 0
        self.t0 = time.monotonic()

    def elapsed(self):
        return time.monotonic() - self.t0

    def check(self, name, ok, detail=""):
        if ok:
            self.passed += 1
            print("PASS " + name, flush=True)
        else:
            self.failed += 1
            detail = str(detail)
            if len(detail) > 3000:
                detail = "..." + detail[-3000:]
            print("FAIL " + name + (": " + detail if detail else ""), flush=True)
        return ok

    def result(self, name, problems, notes=(), limit=25):
        """PASS when problems is empty, else FAIL with each problem; with the elapsed time."""
        if problems:
            self.failed += 1
        else:
            self.passed += 1
        print(f"{'FAIL' if problems else 'PASS'} {name}  [{self.elapsed():.1f}s]", flush=True)
        for n in notes:
            print(f"    note: {n}")
        for p in problems[:limit]:
            print(f"    {p}")
        if len(problems) > limit:
            print(f"    ... {len(problems) - limit} more")
        sys.stdout.flush()
        return not problems

    def say(self, msg):
        print(f"     {msg}  [{self.elapsed():.1f}s]", flush=True)

    def skip(self, name, why):
        """A missing prerequisite of one part: FAIL under CI, else a loud SKIP. Returns False."""
        if in_ci():
            self.result(name, [f"{why} (CI={os.environ.get('CI')}: not skipping)"])
        else:
            self.skipped += 1
            loud(f"SKIP {name}: {why}")
        return False

    def keep_or_remove(self, path, keep=False):
        """At the end: removes the work directory path, or keeps it (and says so) when keep is
        set or a check failed."""
        keep_or_remove(path, keep or self.failed)

    def require_tool(self, name, package):
        """The tool's path, or None after skip() (a FAIL under CI)."""
        path = shutil.which(name)
        if not path:
            self.skip(name, tool_missing(name, package))
        return path

    def missing(self, why):
        """A missing prerequisite of the whole test: records it (skip()) and returns finish()."""
        self.skip(self.test_name, why)
        return self.finish()

    def run_main(self, body, cleanup=None):
        """body(), then cleanup() in any case; returns finish(), or missing() when body raised
        Missing."""
        try:
            body()
        except Missing as e:
            return self.missing(str(e))
        finally:
            if cleanup is not None:
                cleanup()
        return self.finish()

    def code(self):
        if self.failed:
            return 1
        if self.skipped and (self.skip_on_any or not self.passed):
            return SKIP
        return 0

    def finish(self):
        print(f"{self.passed} passed, {self.failed} failed"
              + (f", {self.skipped} skipped" if self.skipped else ""), flush=True)
        return self.code()


class SluiceTest(Checks):
    """Checks plus the sluice processes a test starts, each logging to its own file in tmp
    (numbered in start order), and a token that names the test's topics and groups."""

    def __init__(self, args, tmp):
        Checks.__init__(self)
        self.args, self.tmp = args, tmp
        self.procs = []
        self.token = f"{os.getpid()}{int(time.time()) % 100000}"

    def start_run(self, pipeline, variables, label, extra=()):
        """`sluice run PIPELINE --var K=V ... EXTRA` in the background (start_sluice)."""
        log = os.path.join(self.tmp, f"{len(self.procs) + 1:03d}-{label}.log")
        p = start_sluice(self.args.sluice, pipeline, log, variables, extra)
        p.label = label
        self.procs.append(p)
        return p

    @staticmethod
    def text(p):
        return read_text(p.logpath)

    @staticmethod
    def tail(p, n=12):
        return log_tail(p.logpath, n)

    def kill_leftovers(self):
        kill_all(self.procs)

    def run_scenarios(self, keys, only=None):
        """Runs self.scenario_KEY() for each key (in `only` when given). A scenario that raises
        fails with its error (RuntimeError: a setup problem, its message; anything else: the
        traceback) and the others still run; every scenario's processes are killed after it."""
        for key in keys:
            if only and key not in only:
                continue
            try:
                getattr(self, f"scenario_{key}")()
            except RuntimeError as e:
                self.result(f"scenario {key}: setup", [str(e)])
            except Exception:  # a bug in the test itself
                import traceback
                self.result(f"scenario {key}", [traceback.format_exc()])
            finally:
                self.kill_leftovers()


def main_guard(fn, *args):
    """sys.exit(fn(*args)); Ctrl-C exits 130 without a traceback."""
    try:
        sys.exit(fn(*args))
    except KeyboardInterrupt:
        sys.exit(130)


# ----------------------------------------------------------------------------- processes

def run(cmd, timeout, **kw):
    """Runs a short command (cwd: the repository unless given); returns (rc, stdout+stderr
    text); rc None on timeout, 127 when it cannot start."""
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout,
                           cwd=kw.pop("cwd", REPO), **kw)
        return p.returncode, p.stdout.decode("utf-8", "replace")
    except subprocess.TimeoutExpired as e:
        return None, (e.stdout or b"").decode("utf-8", "replace") + f"\n(timed out after {timeout}s)"
    except OSError as e:
        return 127, str(e)


def _text(b):
    return b.decode("utf-8", "replace") if isinstance(b, bytes) else (b or "")


class Ran:
    """What a finished command left: returncode (None: killed at its timeout; 127: it could not
    start), stdout and stderr text; str() shows their tails (for a FAIL line's detail)."""

    def __init__(self, returncode, stdout, stderr, tail=700):
        self.returncode, self.stdout, self.stderr, self.tail = returncode, stdout, stderr, tail

    def __str__(self):
        return (f"rc={self.returncode}\nstdout: {self.stdout[-self.tail:]}\n"
                f"stderr: {self.stderr[-self.tail:]}")


def run_captured(cmd, timeout, cwd=REPO, env=None, tail=700, **kw):
    """Runs cmd to its end with stdout and stderr captured apart; env adds variables to this
    process's environment. Returns a Ran."""
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=timeout,
                           cwd=cwd, env=dict(os.environ, **(env or {})), **kw)
        return Ran(p.returncode, p.stdout, p.stderr, tail)
    except subprocess.TimeoutExpired as e:
        return Ran(None, _text(e.stdout), _text(e.stderr) + f"\n(timed out after {timeout}s)", tail)
    except OSError as e:
        return Ran(127, "", str(e), tail)


def run_split(cmd, timeout, **kw):
    """Like run(), with stdout and stderr apart: (rc, stdout text, stderr text); rc None on
    timeout, 127 when it cannot start."""
    r = run_captured(cmd, timeout, **kw)
    return r.returncode, r.stdout, r.stderr


def sluice_args(sluice, command, pipeline=None, variables=None, extra=()):
    cmd = [sluice, command] + ([pipeline] if pipeline else [])
    for k, v in (variables or {}).items():
        cmd += ["--var", f"{k}={v}"]
    return cmd + list(extra)


def run_sluice(sluice, pipeline, variables=None, extra=(), timeout=180, command="run", cwd=REPO,
               env=None):
    """`sluice run PIPELINE --var K=V ... EXTRA` to the end; a CompletedProcess with text
    stdout and stderr. A run past its timeout is killed and returns code None."""
    cmd = sluice_args(sluice, command, pipeline, variables, extra)
    try:
        return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired as e:
        return subprocess.CompletedProcess(cmd, None, _text(e.stdout),
                                           _text(e.stderr) + f"\n(timed out after {timeout}s)")


def start_sluice(sluice, pipeline, log_path, variables=None, extra=(), command="run", cwd=REPO,
                 env=None):
    """Starts sluice in the background, stdout and stderr into a new file at log_path; returns
    the Popen with .logpath and .log (the open file: close it, or kill_all(), when it is over)."""
    cmd = sluice_args(sluice, command, pipeline, variables, extra)
    log = open(log_path, "wb")
    p = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
    p.log, p.logpath = log, log_path
    return p


def kill_all(procs):
    """kill -9 what is still running of procs (Popens) and closes their logs (start_sluice)."""
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()
        log = getattr(p, "log", None)
        if log is not None and not log.closed:
            log.close()


def kill9(proc):
    """SIGKILL (if still running) and reap; returns the exit code."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGKILL)
    return proc.wait()


def kill9_at_random(proc, rng, low, high):
    """Sleeps a random time in [low, high) s, then kill -9s proc. True when the kill landed
    on a running process, False when it had already exited."""
    deadline = time.monotonic() + rng.uniform(low, high)
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        time.sleep(0.02)
    landed = proc.poll() is None
    kill9(proc)
    return landed


def stop(proc, sig=signal.SIGTERM, timeout=60):
    """Sends sig (None: none) if it still runs, waits up to timeout s, then kill -9s; returns
    the exit code."""
    if sig is not None and proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def wait_for(predicate, timeout, interval=0.25):
    """Polls predicate() until it returns a truthy value (returned) or the timeout passes (None)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return None


def read_text(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def log_tail(path, n=12):
    """The last n lines of a log file, indented with a bar (for a FAIL's details)."""
    return "\n".join("      | " + ln for ln in read_text(path).strip().splitlines()[-n:])


def wait_output(path, pattern, timeout, proc=None):
    """Waits until the file at path (a process's log) matches the regex; returns the match, or
    None at the timeout or when proc exits first without it."""
    rx = re.compile(pattern)

    def found():
        m = rx.search(read_text(path))
        if m or (proc is not None and proc.poll() is not None):
            return m or False
        return None

    m = wait_for(lambda: found() is not None, timeout, 0.1)
    return rx.search(read_text(path)) if m else None


# ----------------------------------------------------------------------------- temp dirs

def keep_or_remove(path, keep=False):
    """Removes the directory path, or says it is kept."""
    if keep:
        print(f"     kept {path}", flush=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def temp_dir(prefix, keep=False, checks=None):
    """A fresh temporary directory, removed at the end unless keep is set or checks failed
    (then its path is printed)."""
    path = tempfile.mkdtemp(prefix=prefix)
    try:
        yield path
    finally:
        if checks is not None:
            checks.keep_or_remove(path, keep)
        else:
            keep_or_remove(path, keep)
