#!/usr/bin/env python3
"""The live dashboard in headless Chromium against a running recruitment pipeline.

`sluice run examples/recruitment.toml` on the generator (COUNT events across an hour boundary,
SQLite sink in a temp dir) with --http on a free port and --http-linger. Chromium (Debian's
`chromium`, --headless --dump-dom with a virtual time budget, so the page's own polling runs)
loads the page while the run goes on (the page must update in place) and again after it
finished; the numbers its panels show (total clicks, conversions, qualified and disqualified
applications, spend; the top job, campaign and publisher with their clicks) must equal SQL over
the SQLite sink. A screenshot goes to --artifacts (build/test-artifacts/dashboard.png).

Chromium missing: a loud SKIP (exit 77), a FAIL when CI=true.
"""
import argparse
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from html.parser import HTMLParser

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))
from harness import Checks, wait_for  # noqa: E402
from http_util import SluiceRun, get_json  # noqa: E402

KPIS = {"clicks": "SUM(clicks)", "conversion": "SUM(conversion)",
        "qualified_application": "SUM(qualified_application)",
        "disqualified_application": "SUM(disqualified_application)", "spend_hour": "SUM(spend_hour)"}
TOPS = ["job_id", "campaign_id", "publisher_id"]


class Dom(HTMLParser):
    """Collects the attributes of elements with an id, and the rows of the top tables."""

    def __init__(self):
        super().__init__()
        self.by_id = {}
        self.top_rows = {}
        self._table = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.by_id[a["id"]] = a
        if tag == "table" and a.get("id", "").startswith("top-"):
            self._table = a["id"][4:]
            self.top_rows[self._table] = []
        if tag == "tr" and self._table and "data-key" in a:
            self.top_rows[self._table].append((a["data-key"], a["data-value"]))

    def handle_endtag(self, tag):
        if tag == "table":
            self._table = None


def chromium_args(chromium, profile):
    return [chromium, "--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars",
            "--no-first-run", "--disable-extensions", f"--user-data-dir={profile}"]


def dump_dom(chromium, profile, url, budget_ms=4000):
    r = subprocess.run(chromium_args(chromium, profile) + [f"--virtual-time-budget={budget_ms}", "--dump-dom", url],
                       capture_output=True, text=True, timeout=120)
    dom = Dom()
    dom.feed(r.stdout)
    return dom, r


def number(s):
    return float(s) if s not in (None, "") else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--artifacts", required=True, help="directory for dashboard.png")
    ap.add_argument("--count", type=int, default=150000)
    ap.add_argument("--rate", type=int, default=10000)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    args.sluice = os.path.abspath(args.sluice)
    t = Checks()
    chromium = t.require_tool("chromium", "chromium")
    if chromium is None:
        return t.finish()

    tmp = tempfile.mkdtemp(prefix="sluice_dashboard_")
    profile = os.path.join(tmp, "chromium-profile")
    # Event time advances 1e6/RATE us per event: start a few seconds before an hour boundary so
    # the run fills two hourly windows.
    span = args.count / args.rate
    start = "2026-01-01T00:59:%02dZ" % max(0, int(60 - span / 2))
    run = SluiceRun(args.sluice, tmp, count=str(args.count), rate=args.rate, start=start, linger=300)
    try:
        if not t.check("sluice serves the dashboard", run.wait_serving(), run.log()):
            return t.finish()
        page = run.url + "/"
        wait_for(lambda: (lambda s: s and s["checkpoints"]["count"] >= 1)(run.status()), 30)

        # While the run goes on: the page polls and shows live numbers without reloading.
        mid, r = dump_dom(chromium, profile, page, 3500)
        state = mid.by_id.get("state", {}).get("data-state")
        polls = int(mid.by_id.get("updated", {}).get("data-polls", "0"))
        mid_clicks = number(mid.by_id.get("kpi-clicks", {}).get("data-value"))
        t.check("mid-run: the page updates in place (several polls, pipeline running)",
                state == "running" and polls >= 2 and mid_clicks is not None,
                f"state={state} polls={polls} clicks={mid_clicks} {r.stderr[-500:]}")

        finished = wait_for(lambda: (lambda s: s and s["state"] == "finished" and s)(run.status()), 180)
        if not t.check("the run finished", finished, run.log()[-2000:]):
            return t.finish()
        results = get_json(run.url + "/api/results")

        dom = None
        for _ in range(3):  # the page must have caught up with the final commit
            dom, r = dump_dom(chromium, profile, page, 3000)
            if (dom.by_id.get("state", {}).get("data-state") == "finished"
                    and dom.by_id.get("business", {}).get("data-commits") == str(results["commits"])):
                break
        t.check("after the run: the page shows the finished state and the last commit",
                dom.by_id.get("state", {}).get("data-state") == "finished"
                and dom.by_id.get("business", {}).get("data-commits") == str(results["commits"]),
                f"{dom.by_id.get('state')} {dom.by_id.get('business')} commits={results['commits']}")

        con = sqlite3.connect(run.db)
        for metric, expr in KPIS.items():
            want = con.execute(f"SELECT {expr} FROM events").fetchone()[0]
            shown = number(dom.by_id.get(f"kpi-{metric}", {}).get("data-value"))
            t.check(f"panel {metric} = sink ({want})", shown is not None and shown == want, f"page shows {shown}")
        t.check("mid-run clicks <= final clicks", mid_clicks is not None
                and mid_clicks <= con.execute("SELECT SUM(clicks) FROM events").fetchone()[0], mid_clicks)
        for key in TOPS:
            want = con.execute(f"SELECT {key}, SUM(clicks) AS c FROM events GROUP BY {key} "
                               f"ORDER BY c DESC, {key} LIMIT 3").fetchall()
            rows = dom.top_rows.get(key, [])[:3]
            shown = [(int(k), number(v)) for k, v in rows]
            t.check(f"top {key} by clicks = sink {want}", shown == [(k, c) for k, c in want], f"page shows {shown}")
        # The hourly series behind the charts.
        want = con.execute("SELECT hours, SUM(clicks), SUM(spend_hour) FROM events GROUP BY dates, hours "
                           "ORDER BY dates, hours").fetchall()
        got = [(int(w["start"][11:13]), w["values"]["clicks"], w["values"]["spend_hour"]) for w in results["windows"]]
        t.check(f"hourly series = sink {want}", got == want and len(want) == 2, got)
        con.close()
        status = run.status()
        t.check("health panels: records in, checkpoints", number(dom.by_id["h-records"]["data-value"]) == args.count
                and number(dom.by_id["h-checkpoints"]["data-value"]) == status["checkpoints"]["count"],
                f"{dom.by_id.get('h-records')} {dom.by_id.get('h-checkpoints')}")
        t.check("dead letters panel = status", number(dom.by_id["h-dead"]["data-value"]) == status["counts"]["dead_lettered"],
                dom.by_id.get("h-dead"))

        os.makedirs(args.artifacts, exist_ok=True)
        shot = os.path.join(args.artifacts, "dashboard.png")
        if os.path.exists(shot):
            os.remove(shot)
        r = subprocess.run(chromium_args(chromium, profile) + ["--virtual-time-budget=3000", "--window-size=1400,1900",
                                                              f"--screenshot={shot}", page],
                           capture_output=True, text=True, timeout=120)
        t.check(f"screenshot saved to {shot}", os.path.exists(shot) and os.path.getsize(shot) > 10000, r.stderr[-500:])
    finally:
        rc = run.stop()
        t.check("SIGTERM ends the linger, exit 0", rc == 0, f"rc={rc}")
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return t.finish()


if __name__ == "__main__":
    sys.exit(main())
