#!/usr/bin/env python3
"""Refuses an #include that points up a layer, or sideways between two connectors.

CMake links the layers in one direction only (GLOBAL_DEPENDS_NO_CYCLES) but cannot see includes:
a header-only use of a higher layer would compile and link until the day it does not. This walks
every source under src/ and apps/ and checks each quoted include against the layer order below,
the same order CMakeLists.txt builds in. Tests (src/*/tests/, src/connectors/*/tests/) may use
any layer: they link everything.

Usage: check_layers.py [--root DIR] [--self-test]
Exit 0 when every include points down or within its own module, 1 otherwise (each offending
line is printed as FILE:LINE: message), 2 on bad usage.
"""
import argparse
import os
import re
import sys
import tempfile

# Lowest first. A module may include its own files and those of any module in an earlier layer.
LAYERS = [
    ["core"],
    ["expr"],
    ["config"],
    ["operators"],
    ["sql"],               # pipelines written in SQL -> the config the planner reads
    ["runtime"],
    ["http"],
    ["connectors/table"],  # shared by the table sources (MySQL, SQLite, Cassandra)
    ["connectors/*"],      # every connector folder: never another connector
    ["connectors"],        # src/connectors/builtin.cc: the registration list
    ["apps"],
]

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def module_of(rel_path):
    """Maps a path under src/ (or apps/...) to its module: "core", "connectors/kafka", ..."""
    parts = rel_path.split("/")
    if parts[0] == "apps":
        return "apps"
    if parts[0] == "connectors":
        if len(parts) == 2:  # a file directly in src/connectors/
            return "connectors"
        return "connectors/" + parts[1]
    return parts[0]


def layer_of(module):
    for i, names in enumerate(LAYERS):
        for name in names:
            if name == module:
                return i
            if name == "connectors/*" and module.startswith("connectors/") and module != "connectors/table":
                return i
    return None


def check(root):
    problems = []
    files = []
    for top in ("src", "apps"):
        for dirpath, dirnames, filenames in os.walk(os.path.join(root, top)):
            rel_dir = os.path.relpath(dirpath, root)
            if "/tests" in "/" + rel_dir.replace(os.sep, "/") + "/" and rel_dir.replace(os.sep, "/").split("/")[-1] == "tests":
                dirnames[:] = []
                continue
            dirnames[:] = [d for d in dirnames if d != "tests"]
            for f in filenames:
                if f.endswith((".cc", ".h")):
                    files.append(os.path.join(dirpath, f))
    if not files:
        return ["no sources under " + root + "/src"]
    for path in sorted(files):
        rel = os.path.relpath(path, root).replace(os.sep, "/")
        own = module_of(rel[len("src/"):] if rel.startswith("src/") else rel)
        own_layer = layer_of(own)
        if own_layer is None:
            problems.append(f"{rel}:1: module '{own}' is in no layer; add it to LAYERS in tests/tools/check_layers.py and to CMakeLists.txt")
            continue
        with open(path, encoding="utf-8", errors="replace") as fh:
            for lineno, line in enumerate(fh, 1):
                m = INCLUDE.match(line)
                if not m:
                    continue
                target = m.group(1)
                if "/" not in target:
                    continue  # a header beside the file (apps/) or a generated one
                dep = module_of(target)
                if dep == own:
                    continue
                dep_layer = layer_of(dep)
                if dep_layer is None:
                    continue  # not one of ours (a third-party header with a path)
                if dep_layer > own_layer:
                    problems.append(f"{rel}:{lineno}: {own} includes {target}, from {dep}, a higher layer")
                elif dep_layer == own_layer:
                    problems.append(f"{rel}:{lineno}: {own} includes {target}, from {dep}: connectors must not use each other (move what they share into a lower layer)")
    return problems


def self_test():
    """The check must fail on an upward and a sideways include, and pass on a clean tree."""
    with tempfile.TemporaryDirectory() as root:
        def write(rel, text):
            full = os.path.join(root, rel)
            os.makedirs(os.path.dirname(full), exist_ok=True)
            with open(full, "w") as fh:
                fh.write(text)
        write("src/core/a.h", '#pragma once\n#include <string>\n')
        write("src/runtime/b.cc", '#include "core/a.h"\n#include "runtime/b.h"\n#include "sql/s.h"\n')
        write("src/sql/s.cc", '#include "operators/o.h"\n#include "sql/s.h"\n')
        write("src/connectors/kafka/k.cc", '#include "runtime/b.h"\n')
        write("src/connectors/kafka/tests/k_test.cc", '#include "connectors/mysql/m.h"\n')
        write("src/connectors/builtin.cc", '#include "connectors/kafka/k.h"\n')
        write("apps/sluice/main.cc", '#include "connectors/kafka/k.h"\n#include "local.h"\n')
        clean = check(root)
        if clean:
            print("self-test: a clean tree was refused:", *clean, sep="\n  ")
            return False
        write("src/core/up.cc", '#include "runtime/b.h"\n')
        write("src/connectors/mysql/m.cc", '#include "connectors/kafka/k.h"\n')
        write("src/sql/up.cc", '#include "runtime/b.h"\n')
        found = check(root)
        want = ["src/core/up.cc:1: core includes runtime/b.h", "src/connectors/mysql/m.cc:1: connectors/mysql includes connectors/kafka/k.h",
                "src/sql/up.cc:1: sql includes runtime/b.h"]
        for w in want:
            if not any(p.startswith(w) for p in found):
                print("self-test: not reported:", w, "\n  got:", *found, sep="\n  ")
                return False
        if len(found) != len(want):
            print("self-test: unexpected reports:", *found, sep="\n  ")
            return False
    return True


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    parser.add_argument("--self-test", action="store_true", help="also check that the checker catches violations")
    args = parser.parse_args()
    if args.self_test and not self_test():
        return 1
    problems = check(os.path.abspath(args.root))
    for p in problems:
        print(p)
    if problems:
        print(f"{len(problems)} include(s) break the layers (see CMakeLists.txt, 'Layers')")
        return 1
    print("layers: every include points down a layer or stays in its module")
    return 0


if __name__ == "__main__":
    sys.exit(main())
