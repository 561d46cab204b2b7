#!/usr/bin/env python3
"""The README's first example runs from a plain clone, and its table is right.

    readme_example_test.py --sluice build/sluice

Takes the first ```sh block of README.md's "Running a pipeline" section, checks that it names
nothing outside the clone (no ../shared seed data), and runs it with bash in a scratch copy of
what a plain clone has (examples/, and build/sluice as the built binary), where ../shared does
not exist. The events table it writes must equal the independent recomputation
(tests/tools/recompute_recruitment.py) over examples/data/tracking.csv and examples/data/job.csv,
and the block's query must print rows. Exit 1 on any failure.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))
import compare_tables  # noqa: E402
import harness  # noqa: E402
import recompute_recruitment  # noqa: E402

REPO = harness.REPO
KEY = list(recompute_recruitment.EVENTS_KEY)


def first_example():
    with open(os.path.join(REPO, "README.md")) as f:
        text = f.read()
    section = text[text.index("## Running a pipeline"):]
    return re.search(r"```sh\n(.*?)```", section, re.S).group(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    t = harness.Checks()
    block = first_example()
    t.check("the README's first example names nothing outside the clone",
            "../" not in block and "shared" not in block, block)
    if shutil.which("sqlite3") is None:
        # The block ends with a sqlite3 query; without the client, run only the sluice part.
        block = "\n".join(line for line in block.splitlines() if not line.startswith("sqlite3"))
    with harness.temp_dir("sluice-readme-", keep=a.keep, checks=t) as tmp:
        clone = os.path.join(tmp, "clone")  # no ../shared beside it
        shutil.copytree(os.path.join(REPO, "examples"), os.path.join(clone, "examples"))
        os.makedirs(os.path.join(clone, "build"))
        os.symlink(os.path.abspath(a.sluice), os.path.join(clone, "build", "sluice"))
        r = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=clone, text=True,
                           capture_output=True, timeout=300)
        t.check("the example runs (exit 0)", r.returncode == 0,
                f"exit {r.returncode}\n{r.stdout[-1500:]}\n{r.stderr[-1500:]}")
        if "sqlite3" in block:
            t.check("its query prints rows", len(r.stdout.strip().splitlines()) >= 1, r.stdout[-500:])
        db = os.path.join(clone, "build", "events.db")
        expected = os.path.join(tmp, "expected.db")
        recompute_recruitment.recompute(os.path.join(REPO, "examples", "data", "tracking.csv"),
                                        os.path.join(REPO, "examples", "data", "job.csv"), expected)
        problems = compare_tables.compare(db, expected, KEY) if os.path.exists(db) else \
            [f"{db} was not written"]
        t.result("the events table equals the independent recomputation", problems)
    return t.finish()


if __name__ == "__main__":
    sys.exit(main())
