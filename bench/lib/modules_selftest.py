"""Checks that no two directories on bench/run.py's sys.path hold a module of the same name.

bench/run.py puts tests/integration, tests/tools and bench/lib ahead of bench/ on sys.path, so a
module of a later directory that shares its name with one of an earlier one is silently replaced
(a `make bench` from a clean clone once failed that way: bench/scale_out.py was shadowed by
tests/tools/scale_out.py). Exits 1 naming each shadowed module."""

import importlib.util
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = os.path.dirname(HERE)
REPO = os.path.dirname(BENCH)


def run_py_path():
    """sys.path as bench/run.py sets it up: its own directory first, then each insert(0, ...)
    in the order of its source."""
    path = [BENCH]
    with open(os.path.join(BENCH, "run.py")) as f:
        for line in f:
            line = line.strip()
            if line.startswith("sys.path.insert(0, os.path.join("):
                args = line[len("sys.path.insert(0, os.path.join("):].rstrip(")").split(",")
                base = {"HERE": BENCH, "REPO": REPO}[args[0].strip()]
                parts = [a.strip().strip('"') for a in args[1:]]
                path.insert(0, os.path.join(base, *parts))
    return path


def modules(d):
    return sorted(n[:-3] for n in os.listdir(d) if n.endswith(".py"))


def shadowed(path):
    """(module, file that is hidden, file found first) for each module of a directory on `path`
    that an earlier directory also holds."""
    found = []
    first = {}
    for d in path:
        for module in modules(d):
            if module in first:
                found.append((module, os.path.join(d, module + ".py"), first[module]))
            else:
                first[module] = os.path.join(d, module + ".py")
    return found


def main():
    path = run_py_path()
    if len(path) < 2:
        print("bench/run.py no longer sets sys.path as this check expects; update it")
        return 1
    bad = shadowed(path)
    for module, want, got in bad:
        print("module %r: %s is shadowed by %s on bench/run.py's sys.path: rename one"
              % (module, want, got))
    if not bad:
        print("%d modules, none shadowed (sys.path: %s)" % (
            sum(len(modules(d)) for d in path), ", ".join(path)))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
