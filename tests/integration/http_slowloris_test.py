#!/usr/bin/env python3
"""Slow clients must not starve the HTTP server of a running sluice (issue 14 item 3; see
src/http/README.md, "Slow and hostile clients").

On loopback only, bounded in time (about 50 s):

  1. `sluice run examples/recruitment.toml --http 127.0.0.1:PORT` on the generator;
  2. 60 "slow loris" connections, each sending one header line every 2 s and never finishing its
     request (reconnecting when the server closes it, as an attacker would);
  3. meanwhile /healthz, /readyz and /metrics are requested every 0.5 s, each on a new
     connection: every answer must come within 2 s, with 200 (ready: the pipeline is healthy);
  4. the server must close slow connections: no connection stays open longer than the headers
     deadline; 8 connections (under the per-client cap) trickling a line a second are each closed
     with 408 at the deadline, whose clock their bytes do not restart; of 96 half-sent requests,
     at most the per-client cap is kept;
  5. SIGTERM still ends the run with exit 0 while the slow connections are open.

With --connections/--seconds the script is also the reproducer of the issue.
"""
import argparse
import os
import socket
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))
from harness import Checks, main_guard  # noqa: E402
from http_util import SluiceRun  # noqa: E402

DEADLINE_S = 10        # the server's headers deadline (src/http/http_server.h) is 10 s
PER_CLIENT_CAP = 32    # incomplete requests kept per client address


class SlowLoris:
    """Keeps `n` connections each sending one header line every `every` seconds."""

    def __init__(self, port, n, every):
        self.port, self.n, self.every = port, n, every
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.socks = []            # (socket, opened at)
        self.closed_by_server = 0
        self.longest_open = 0.0    # longest a connection stayed open before the server closed it
        self.lines_sent = 0
        self.connects = 0
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def connect(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=2)
        s.setblocking(False)
        try:
            s.send(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        except OSError:
            pass
        self.connects += 1
        return (s, time.monotonic())

    def loop(self):
        for _ in range(self.n):
            try:
                self.socks.append(self.connect())
            except OSError:
                pass
        while not self.stop.wait(self.every):
            alive = []
            for s, opened in self.socks:
                dead = False
                try:
                    data = s.recv(4096)
                    if data == b"" or data:  # closed, or an error answer (then closed)
                        dead = True
                except BlockingIOError:
                    pass
                except OSError:
                    dead = True
                if not dead:
                    try:
                        s.send(b"X-Slow: %d\r\n" % self.lines_sent)
                        self.lines_sent += 1
                    except BlockingIOError:
                        pass
                    except OSError:
                        dead = True
                if dead:
                    with self.lock:
                        self.closed_by_server += 1
                        self.longest_open = max(self.longest_open, time.monotonic() - opened)
                    s.close()
                    try:
                        alive.append(self.connect())  # an attacker reconnects at once
                    except OSError:
                        pass
                else:
                    alive.append((s, opened))
            self.socks = alive

    def start(self):
        self.thread.start()

    def finish(self):
        self.stop.set()
        self.thread.join(timeout=10)
        for s, _ in self.socks:
            s.close()


def timed_get(port, path, timeout):
    """One GET on a fresh connection: returns (status, seconds); status 0 on timeout/error."""
    start = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.settimeout(max(0.01, timeout - (time.monotonic() - start)))
            s.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.") else 0
        return status, time.monotonic() - start
    except (OSError, ValueError, IndexError):
        return 0, time.monotonic() - start


def count_incomplete_kept(port, n, wait_s):
    """Opens n connections that send half a request, waits, returns how many the server kept."""
    socks = []
    for _ in range(n):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=2)
            s.sendall(b"GET /healthz HTTP/1.1\r\n")
            socks.append(s)
        except OSError:
            pass
    time.sleep(wait_s)
    kept = 0
    for s in socks:
        s.setblocking(False)
        try:
            if s.recv(1) == b"":
                continue
            continue  # an answer means it was turned away too
        except BlockingIOError:
            kept += 1
        except OSError:
            pass
    for s in socks:
        s.close()
    return kept, len(socks)


def deadline_lifetimes(port, n, every, limit_s):
    """Opens n connections (fewer than the per-client cap) that each send a header line every
    `every` seconds; returns [(seconds open, answer bytes)] as the server closes them."""
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=2)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        s.setblocking(False)
        socks.append([s, time.monotonic(), b""])
    done = []
    end = time.monotonic() + limit_s
    while socks and time.monotonic() < end:
        time.sleep(every)
        left = []
        for entry in socks:
            s, opened, got = entry
            closed = False
            try:
                while True:
                    data = s.recv(4096)
                    if not data:
                        closed = True
                        break
                    got += data
            except BlockingIOError:
                pass
            except OSError:
                closed = True
            if not closed:
                try:
                    s.send(b"X-Trickle: 1\r\n")
                except OSError:
                    closed = True
            if closed:
                done.append((time.monotonic() - opened, got))
                s.close()
            else:
                left.append([s, opened, got])
        socks = left
    for s, opened, _ in socks:
        s.close()
    return done, len(socks)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--connections", type=int, default=60)
    ap.add_argument("--seconds", type=float, default=24, help="how long health is probed under attack")
    ap.add_argument("--probe-timeout", type=float, default=2.0)
    args = ap.parse_args()
    t = Checks()
    with tempfile.TemporaryDirectory(prefix="sluice-slowloris-") as tmp:
        run = SluiceRun(args.sluice, tmp, rate=2000)
        try:
            if not t.check("run --http serves /healthz", run.wait_serving(), run.log()[-2000:]):
                return t.finish()
            # Readiness needs a first checkpoint; wait for it before the attack.
            for _ in range(60):
                if timed_get(run.port, "/readyz", 2)[0] == 200:
                    break
                time.sleep(0.25)
            loris = SlowLoris(run.port, args.connections, 2.0)
            loris.start()
            time.sleep(1.0)
            failures = []
            worst = 0.0
            probes = 0
            end = time.monotonic() + args.seconds
            while time.monotonic() < end:
                for path in ("/healthz", "/readyz", "/metrics"):
                    status, secs = timed_get(run.port, path, args.probe_timeout)
                    probes += 1
                    worst = max(worst, secs)
                    if status != 200:
                        failures.append(f"{path}: status {status} after {secs:.2f}s")
                time.sleep(0.5)
            print(f"slow loris: {args.connections} connections, {loris.connects} connects, "
                  f"{loris.lines_sent} header lines sent, {loris.closed_by_server} closed by the server "
                  f"(longest open {loris.longest_open:.1f}s); {probes} probes, worst {worst:.3f}s, "
                  f"{len(failures)} failed", flush=True)
            t.check(f"/healthz, /readyz, /metrics answer 200 within {args.probe_timeout}s throughout "
                    f"{args.seconds:.0f}s of {args.connections} slow connections ({probes} probes)",
                    probes > 0 and not failures, failures[:10])
            t.check("the server closes slow connections (cap and deadline), never keeps one longer "
                    "than its headers deadline",
                    loris.closed_by_server >= args.connections // 2
                    and loris.longest_open <= DEADLINE_S + 4.5,
                    f"closed {loris.closed_by_server}, longest open {loris.longest_open:.1f}s")
            loris.finish()
            # Under the cap, nobody is evicted: the deadline alone closes a trickling request,
            # not restarted by its bytes, with a 408.
            closed, still_open = deadline_lifetimes(run.port, 8, 1.0, DEADLINE_S + 8)
            lifetimes = sorted(round(secs, 1) for secs, _ in closed)
            t.check(f"a request head trickling one line a second is closed at the {DEADLINE_S}s deadline "
                    "with 408",
                    still_open == 0 and len(closed) == 8
                    and all(DEADLINE_S - 1 <= secs <= DEADLINE_S + 3 and got.startswith(b"HTTP/1.1 408")
                            for secs, got in closed),
                    f"lifetimes {lifetimes}, still open {still_open}, answers {[g[:20] for _, g in closed]}")
            kept, opened = count_incomplete_kept(run.port, 3 * PER_CLIENT_CAP, 1.5)
            t.check(f"at most {PER_CLIENT_CAP} incomplete requests kept per client",
                    opened == 3 * PER_CLIENT_CAP and kept <= PER_CLIENT_CAP,
                    f"kept {kept} of {opened}")
            status, secs = timed_get(run.port, "/healthz", args.probe_timeout)
            t.check("/healthz still answers after the attack", status == 200, f"{status} {secs:.2f}s")
            loris = SlowLoris(run.port, args.connections, 2.0)
            loris.start()
            time.sleep(1.0)
            start = time.monotonic()
            rc = run.stop(timeout=30)
            loris.finish()
            t.check("SIGTERM during the attack exits 0 promptly", rc == 0 and time.monotonic() - start < 25,
                    f"rc={rc} after {time.monotonic() - start:.1f}s {run.log()[-2000:]}")
        finally:
            if run.proc.poll() is None:
                run.proc.kill()
                run.proc.wait()
    return t.finish()


if __name__ == "__main__":
    main_guard(main)
