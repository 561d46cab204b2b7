"""Describes the machine and build a benchmark ran on (standard library only)."""

import os
import platform
import re
import subprocess


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def _cmd(args, cwd=None):
    try:
        return subprocess.run(args, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def describe(repo, build_dir):
    cpuinfo = _read("/proc/cpuinfo")
    m = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    meminfo = _read("/proc/meminfo")
    mem = re.search(r"^MemTotal:\s*(\d+) kB", meminfo, re.M)
    os_release = dict(re.findall(r'^(\w+)="?([^"\n]*)"?$', _read("/etc/os-release"), re.M))
    cache = _read(os.path.join(build_dir, "CMakeCache.txt"))

    def cache_value(name):
        mm = re.search(r"^%s:\w+=(.*)$" % re.escape(name), cache, re.M)
        return mm.group(1) if mm else ""

    compiler = cache_value("CMAKE_CXX_COMPILER") or "c++"
    commit = _cmd(["git", "rev-parse", "HEAD"], cwd=repo)
    dirty = _cmd(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo)
    return {
        "host": platform.node(),
        "cpu_model": m.group(1).strip() if m else platform.processor(),
        "cores": os.cpu_count(),
        "ram_gib": round(int(mem.group(1)) / 1024 / 1024, 1) if mem else None,
        "kernel": platform.release(),
        "os": os_release.get("PRETTY_NAME", platform.platform()),
        "compiler": (_cmd([compiler, "--version"]).split("\n") or [""])[0],
        "build_type": cache_value("CMAKE_BUILD_TYPE"),
        "git_commit": commit,
        "git_dirty": bool(dirty),
        "load_average_at_start": list(os.getloadavg()),
    }
