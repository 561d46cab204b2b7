#!/usr/bin/env python3
"""Creates the virtual environment with Apache Airflow that tests/deploy/airflow_test.py uses.

    airflow_venv.py --venv build/airflow-venv [--python python3]

Installs deploy/airflow/requirements.txt with the pins of deploy/airflow/constraints-X.Y.txt
(X.Y: the interpreter's version) from PyPI. Does nothing, quickly, when the environment was
made from the same files by the same interpreter (a stamp file holds their hash); otherwise the
environment is rebuilt from scratch. Two runs at once wait for each other (a lock file next to
the environment). Prints the environment's `airflow` path last; exit 1 on any failure.
"""

import argparse
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
AIRFLOW_DIR = os.path.join(REPO, "deploy", "airflow")
REQUIREMENTS = os.path.join(AIRFLOW_DIR, "requirements.txt")
STAMP = ".sluice-airflow-requirements"


class VenvError(Exception):
    pass


def interpreter_version(python):
    out = subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2]); "
                          "print(sys.version.split()[0])"],
                         capture_output=True, text=True, check=True).stdout.split()
    return out[0], out[1]


def wanted_stamp(python, constraints):
    h = hashlib.sha256()
    for path in (REQUIREMENTS, constraints):
        with open(path, "rb") as f:
            h.update(f.read())
    return f"{h.hexdigest()} {interpreter_version(python)[1]} {os.path.realpath(python)}"


def ensure(venv, python=None, log=print):
    """Returns the path of the environment's airflow executable, installing it when needed."""
    python = python or shutil.which("python3") or sys.executable
    if not python or not os.path.exists(python):
        raise VenvError(f"no Python interpreter ({python})")
    major_minor, _ = interpreter_version(python)
    constraints = os.path.join(AIRFLOW_DIR, f"constraints-{major_minor}.txt")
    if not os.path.exists(constraints):
        raise VenvError(f"{python} is Python {major_minor}: there is no {constraints} "
                        "(the pins are made for Python 3.11; see its header)")
    want = wanted_stamp(python, constraints)
    venv = os.path.abspath(venv)
    airflow = os.path.join(venv, "bin", "airflow")
    stamp = os.path.join(venv, STAMP)

    def current():
        try:
            with open(stamp) as f:
                return f.read().strip() == want and os.access(airflow, os.X_OK)
        except OSError:
            return False

    if current():
        return airflow
    os.makedirs(os.path.dirname(venv), exist_ok=True)
    with open(venv + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if current():  # another run finished it while we waited
            return airflow
        if os.path.exists(venv):
            log(f"airflow-venv: {venv} is out of date; recreating it")
            shutil.rmtree(venv)
        started = time.monotonic()
        log(f"airflow-venv: creating {venv} with {python} (Python {major_minor})")
        run([python, "-m", "venv", venv])
        pip = [os.path.join(venv, "bin", "python"), "-m", "pip", "--disable-pip-version-check",
               "--no-input", "--timeout", "60", "--retries", "5"]
        log(f"airflow-venv: installing {os.path.relpath(REQUIREMENTS, REPO)} with "
            f"{os.path.relpath(constraints, REPO)} from PyPI (a few minutes the first time)")
        run(pip + ["install", "--quiet", "-r", REQUIREMENTS, "-c", constraints])
        version = run([airflow, "version"], env=quiet_env(venv)).strip().splitlines()[-1]
        with open(stamp, "w") as f:
            f.write(want + "\n")
        log(f"airflow-venv: Airflow {version} ready in {time.monotonic() - started:.0f} s")
    return airflow


def quiet_env(venv):
    env = dict(os.environ)
    env["AIRFLOW_HOME"] = os.path.join(venv, "airflow-home")
    env["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    return env


def run(cmd, env=None):
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        raise VenvError(f"{' '.join(cmd)} failed with exit code {p.returncode}:\n"
                        f"{p.stdout[-3000:]}{p.stderr[-3000:]}")
    return p.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--venv", required=True)
    ap.add_argument("--python", default=None, help="interpreter for the venv (default: python3)")
    args = ap.parse_args()
    try:
        print(ensure(args.venv, args.python))
    except (VenvError, OSError, subprocess.SubprocessError) as e:
        print(f"airflow-venv: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
