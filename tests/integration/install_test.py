#!/usr/bin/env python3
"""`make install` end to end (cmake/install.cmake): install the build into a fresh temporary
prefix, move the prefix elsewhere, then run the installed sluice with neither the checkout, the
build tree nor the Python venv reachable:

  * layout: bin/sluice (stripped, .gnu_debuglink -> bin/.debug/sluice.debug, which gdb finds),
    lib/sluice/ (the Arrow/Parquet libraries), every examples/*.toml and examples/data/ file,
    every deploy/ file, the bash completion;
  * RUNPATH is $ORIGIN/../lib/sluice and `ldd` resolves every library, Arrow/Parquet into the
    prefix, nothing into the checkout, the build tree or the venv (even while the venv exists);
  * in a user+mount namespace (unshare -rm) with tmpfs mounted over the checkout, the build tree
    and the venv, with a clean environment, from an unrelated working directory:
      - `sluice --version` and `sluice version` print "sluice <project version>";
      - `sluice demo` for a few seconds with the installed examples/recruitment.toml (its JOBS
        from the installed examples/data): exit 0 and rows in its SQLite table;
      - `sluice generate --profile viewlog` to a file, then the installed examples/viewlog.toml
        into Parquet: read back with pyarrow == tests/tools/recompute_viewlog.py's recomputation
        (rows and dead letters per reason);
  * the installed bash completion completes subcommands, options and --log-format's choices,
    and offers every subcommand the installed binary's --help lists.

With --package, `make package` instead: cpack builds the .tar.gz and the .deb into the
temporary directory; the .deb's Depends must name the Debian package owning each library the
binary links (readelf NEEDED -> ldd -> dpkg -S; a virtual package the owner provides counts)
and nothing for the bundled Arrow/Parquet, its files are laid out as above and its sluice runs
isolated; the tarball, unpacked, is the prefix every check above runs on.

Without unshare (user namespaces disabled), the runs use only the clean environment and the
ldd checks, said loudly; with CI=true that is a failure.

    install_test.py --build-dir BUILD --version X.Y.Z [--venv DIR] [--package] [--keep]
"""

import argparse
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "tools"))
import harness  # noqa: E402
import recompute_viewlog as rv  # noqa: E402
import viewlog_output  # noqa: E402  (compare_output: Parquet + dead letters vs a recomputation)

CLEAN_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
VIEWS_COUNT = 4000


class Test(harness.Checks):
    def __init__(self, args):
        harness.Checks.__init__(self)
        self.args = args
        self.tmp = tempfile.mkdtemp(prefix="sluice-install-")
        self.hidden = []
        self.namespace = False

    def check(self, ok, what):
        return harness.Checks.check(self, what, ok)

    def sh(self, cmd, timeout=60, **kw):
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           errors="replace", timeout=timeout, **kw)
        return p.returncode, p.stdout

    def isolated(self, cmd, cwd, env=None, timeout=60):
        """cmd with the clean environment, from cwd, and (when possible) with the checkout, the
        build tree and the venv hidden under empty tmpfs mounts."""
        env = dict(CLEAN_ENV, HOME=self.tmp, **(env or {}))
        if self.namespace:
            script = ('for d in ' + ' '.join(f"'{h}'" for h in self.hidden) +
                      '; do mount -t tmpfs tmpfs "$d" || exit 99; done; cd "$0" && exec "$@"')
            cmd = ["unshare", "-rm", "sh", "-c", script, cwd] + cmd
        return self.sh(cmd, timeout=timeout, cwd=cwd, env=env)

    # --------------------------------------------------------------------------------- steps

    def install(self):
        stage = os.path.join(self.tmp, "stage")
        rc, out = self.sh(["cmake", "--install", self.args.build_dir, "--prefix", stage],
                          timeout=120)
        if not self.check(rc == 0, f"cmake --install --prefix {stage}"):
            print(out[-3000:])
            return None
        # A prefix that moved after installation keeps working: nothing in it is absolute.
        prefix = os.path.join(self.tmp, "moved", "opt", "sluice")
        os.makedirs(os.path.dirname(prefix))
        os.rename(stage, prefix)
        return prefix

    def layout(self, p):
        expected = ["bin/sluice", "bin/.debug/sluice.debug",
                    "share/bash-completion/completions/sluice", "share/doc/sluice/README.md"]
        for name in sorted(os.listdir(os.path.join(REPO, "examples"))):
            if name.endswith((".toml", ".sql")):
                expected.append(f"share/sluice/examples/{name}")
        for name in sorted(os.listdir(os.path.join(REPO, "examples", "data"))):
            expected.append(f"share/sluice/examples/data/{name}")
        for root, dirs, files in os.walk(os.path.join(REPO, "deploy")):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            for f in files:
                if not f.endswith(".pyc"):
                    rel = os.path.relpath(os.path.join(root, f), REPO)
                    expected.append(f"share/sluice/{rel}")
        missing = [e for e in expected if not os.path.isfile(os.path.join(p, e))]
        self.check(not missing, f"{len(expected)} files installed where README says"
                   + (f"; missing: {missing}" if missing else ""))
        libs = sorted(os.listdir(os.path.join(p, "lib", "sluice")))
        self.check(any(n.startswith("libarrow.so.") for n in libs) and
                   any(n.startswith("libparquet.so.") for n in libs),
                   f"lib/sluice holds libarrow and libparquet: {libs}")

    def debug_info(self, p):
        binary, debug = os.path.join(p, "bin", "sluice"), os.path.join(p, "bin", ".debug",
                                                                       "sluice.debug")
        _, sections = self.sh(["readelf", "-S", "-W", binary])
        _, dsections = self.sh(["readelf", "-S", "-W", debug])
        self.check(".debug_info" not in sections and ".symtab" not in sections,
                   "installed bin/sluice is stripped (no .debug_info, no .symtab)")
        _, link = self.sh(["readelf", "--string-dump=.gnu_debuglink", binary])
        self.check("sluice.debug" in link, "bin/sluice's .gnu_debuglink names sluice.debug")
        self.check(".debug_info" in dsections and ".debug_line" in dsections,
                   "bin/.debug/sluice.debug holds .debug_info and .debug_line")
        # Stripping took something away: the installed binary is smaller than the build tree's.
        # (Against the debug file's size it is not a rule: a Debug build with sanitizers has
        # more code than debug information.)
        built = os.path.join(self.args.build_dir, "sluice")
        self.check(os.path.getsize(binary) < os.path.getsize(built),
                   f"stripped binary ({os.path.getsize(binary) >> 20} MiB) smaller than the build "
                   f"tree's unstripped one ({os.path.getsize(built) >> 20} MiB)")
        if shutil.which("gdb"):
            # gdb follows the debuglink to bin/.debug/: source lines of main() are known.
            rc, out = self.sh(["gdb", "-nx", "-batch", "-ex", "info line main", binary])
            self.check(rc == 0 and "main.cc" in out, "gdb finds main() in apps/sluice/main.cc via "
                       f"the debug file: {out.strip()[-200:]}")

    def runpath(self, p):
        binary = os.path.join(p, "bin", "sluice")
        _, dyn = self.sh(["readelf", "-d", binary])
        rp = [ln.split("[", 1)[1].rstrip("]") for ln in dyn.splitlines()
              if "(RUNPATH)" in ln or "(RPATH)" in ln]
        self.check(rp == ["$ORIGIN/../lib/sluice"], f"RUNPATH of bin/sluice is {rp}, "
                   "expected ['$ORIGIN/../lib/sluice']")
        # Outside the namespace the venv exists: the libraries must still come from the prefix.
        self.ldd(p, self.sh(["ldd", binary], env=CLEAN_ENV), "with the venv present")

    def ldd(self, p, result, label):
        rc, out = result
        lines = [ln.strip() for ln in out.splitlines() if "=>" in ln]
        bad = [ln for ln in lines if "not found" in ln]
        leaks = [ln for ln in lines for h in self.hidden if h in ln]
        arrow = [ln for ln in lines if ln.startswith(("libarrow.so", "libparquet.so"))]
        libdir = os.path.join(p, "lib", "sluice")
        inprefix = [ln for ln in arrow
                    if os.path.dirname(os.path.normpath(ln.split()[2])) == libdir]
        self.check(rc == 0 and not bad and not leaks and len(arrow) == 2 and inprefix == arrow,
                   f"ldd ({label}): every library found, Arrow/Parquet from PREFIX/lib/sluice, "
                   f"none from the checkout, build tree or venv"
                   + (f"\n  not found: {bad}\n  leaks: {leaks}\n  arrow: {arrow}"
                      if bad or leaks or inprefix != arrow or len(arrow) != 2 else ""))

    def runs(self, p):
        sluice = os.path.join(p, "bin", "sluice")
        share = os.path.join(p, "share", "sluice", "examples")
        cwd = os.path.join(self.tmp, "elsewhere")
        os.makedirs(cwd)
        if self.namespace:
            listing = "find " + " ".join(self.hidden) + " -mindepth 1 | wc -l"
            rc, out = self.isolated(["sh", "-c", listing], cwd)
            self.check(rc == 0 and out.strip() == "0", "in the namespace the checkout, build "
                       f"tree and venv are empty: {out.strip()}")
        self.ldd(p, self.isolated(["ldd", sluice], cwd), "isolated")

        want = f"sluice {self.args.version}"
        for cmd in (["--version"], ["version"]):
            rc, out = self.isolated([sluice] + cmd, cwd)
            self.check(rc == 0 and out.strip() == want,
                       f"sluice {' '.join(cmd)} -> rc {rc}, {out.strip()[-300:]!r} (want {want!r})")

        # The demo, with the installed pipeline file and its job dimension.
        db = os.path.join(self.tmp, "demo", "recruitment.db")
        os.makedirs(os.path.dirname(db))
        rc, out = self.isolated([sluice, "demo", "--duration", "3", "--rate", "5000", "--no-http",
                                 "--pipeline", os.path.join(share, "recruitment.toml"),
                                 "--db", db], cwd,
                                env={"JOBS": os.path.join(share, "data", "job.csv")}, timeout=40)
        rows = 0
        if os.path.exists(db):
            with sqlite3.connect(db) as c:
                rows = c.execute("SELECT count(*) FROM events").fetchone()[0]
        self.check(rc == 0 and rows > 0, f"sluice demo --duration 3 -> rc {rc}, {rows} rows in "
                   "events" + ("" if rc == 0 and rows > 0 else f"\n{out[-2000:]}"))

        # A Parquet pipeline: generated view logs -> the installed examples/viewlog.toml.
        camp = os.path.join(share, "data", "campaigns1.csv")
        views = os.path.join(self.tmp, "views.ndjson")
        rc, out = self.isolated([sluice, "generate", "--profile", "viewlog", "--to", views,
                                 "--count", str(VIEWS_COUNT), "--rate", "0", "--seed", "5",
                                 "--start", "2026-01-01T00:00:00Z", "--set", "spacing=100ms",
                                 "--set", f"campaigns={camp}"], cwd)
        if not self.check(rc == 0, f"sluice generate --profile viewlog -> rc {rc}"
                          + ("" if rc == 0 else f"\n{out[-2000:]}")):
            return
        out_dir, dlq = os.path.join(self.tmp, "viewlog"), os.path.join(self.tmp, "viewlog.dlq")
        # A plain run: the end of a file is the end of its input, so every window is written
        # (--until-caught-up would leave the last open windows for the next run).
        rc, out = self.isolated([sluice, "run", os.path.join(share, "viewlog.toml"),
                                 "--var", f"VIEWS={views}",
                                 "--var", f"OUT=parquet:{out_dir}", "--var", f"CAMPAIGNS={camp}",
                                 "--var", f"DLQ={dlq}"], cwd, timeout=60)
        if not self.check(rc == 0, f"sluice run viewlog.toml -> rc {rc}"
                          + ("" if rc == 0 else f"\n{out[-2000:]}")):
            return
        # The recomputation reads the checkout's campaigns file, not the installed copy.
        expected = rv.recompute([views], os.path.join(REPO, "examples", "data", "campaigns1.csv"))
        self.check(len(expected["rows"]) > 0 and len(expected["dead_letters"]) > 0,
                   f"the generated input gives rows ({len(expected['rows'])}) and dead letters "
                   f"({len(expected['dead_letters'])})")
        problems, nfiles = viewlog_output.compare_output("installed viewlog", out_dir, dlq, expected)
        self.check(not problems and nfiles > 0,
                   f"Parquet ({nfiles} files) read back with pyarrow == recompute_viewlog.py "
                   f"({len(expected['rows'])} rows, {len(expected['dead_letters'])} dead letters)"
                   + "".join(f"\n  {x}" for x in problems[:10]))

    def completion(self, p):
        script = os.path.join(p, "share", "bash-completion", "completions", "sluice")
        sluice = os.path.join(p, "bin", "sluice")

        def complete(*words):
            prog = ('source "$1"; shift; COMP_WORDS=("$@"); '
                    'COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 )); _sluice; '
                    'printf "%s\\n" "${COMPREPLY[@]}"')
            rc, out = self.sh(["bash", "-c", prog, "x", script, "sluice"] + list(words))
            return rc, sorted(w for w in out.split("\n") if w)

        cases = [(("r",), ["run"]),
                 (("--log-format", "json", "run", "--unt"), ["--until-caught-up"]),
                 (("--log-format", ""), ["json", "text"]),
                 (("demo", "--du"), ["--duration"]),
                 (("generate", "--pro"), ["--profile"])]
        for words, want in cases:
            rc, got = complete(*words)
            self.check(rc == 0 and got == want,
                       f"completion of `sluice {' '.join(words)}` -> {got} (want {want})")
        # Every subcommand the installed binary lists, in its --help's own words.
        rc, out = self.isolated([sluice, "--help"], self.tmp)
        subs, on = [], False
        for ln in out.splitlines():
            if ln.startswith("Subcommands:"):
                on = True
            elif on and ln.startswith("  ") and ln.strip():
                subs.append(ln.split()[0])
            elif on and not ln.startswith(" "):
                on = False
        rc, got = complete("")
        self.check(subs and got == sorted(subs),
                   f"completion of `sluice ` offers the {len(subs)} subcommands of --help: {got}")

    # ----------------------------------------------------------------------------------- main

    def setup_isolation(self):
        candidates = [REPO, self.args.build_dir]
        if self.args.venv:
            candidates += [self.args.venv, os.path.realpath(self.args.venv)]
        for c in candidates:
            c = os.path.realpath(c)
            if os.path.isdir(c) and c not in self.hidden:
                self.hidden.append(c)
        # A directory inside another hidden one (build/ in the checkout) is hidden with it.
        self.hidden = [h for h in self.hidden
                       if not any(h.startswith(o + os.sep) for o in self.hidden)]
        if shutil.which("unshare"):
            rc, _ = self.sh(["unshare", "-rm", "sh", "-c",
                             f"mount -t tmpfs tmpfs '{self.tmp}'"])
            self.namespace = rc == 0
        if not self.namespace:
            msg = ("unshare -rm (user + mount namespaces) is not available: the installed binary "
                   "runs with a clean environment, but the checkout, build tree and venv are not "
                   "hidden; only ldd shows nothing resolves into them")
            if harness.in_ci():
                self.check(False, msg)
            else:
                harness.loud(msg)

    def package(self):
        """`make package` (cpack) into the temporary directory. Returns the prefix unpacked from
        the tarball (for the checks an installed prefix gets), after checking the .deb."""
        out = os.path.join(self.tmp, "packages")
        config = os.path.join(self.args.build_dir, "CPackConfig.cmake")
        rc, log = self.sh(["cpack", "--config", config, "-G", "TGZ;DEB", "-B", out], timeout=300)
        if not self.check(rc == 0, f"cpack -G 'TGZ;DEB' -> rc {rc}"
                          + ("" if rc == 0 else log[-3000:])):
            return None
        debs = [f for f in os.listdir(out) if f.endswith(".deb")]
        tgzs = [f for f in os.listdir(out) if f.endswith(".tar.gz")]
        if not self.check(len(debs) == 1 and len(tgzs) == 1,
                          f"one .deb and one .tar.gz: {debs} {tgzs}"):
            return None
        self.deb(os.path.join(out, debs[0]))
        moved = os.path.join(self.tmp, "moved")
        os.makedirs(moved)
        rc, log = self.sh(["tar", "-xzf", os.path.join(out, tgzs[0]), "-C", moved])
        tops = os.listdir(moved)
        if not self.check(rc == 0 and len(tops) == 1,
                          f"the tarball unpacks into one directory: {tops}"):
            return None
        return os.path.join(moved, tops[0])

    def deb(self, deb):
        rc, depends = self.sh(["dpkg-deb", "-f", deb, "Depends"])
        have = {d.strip().split()[0] for d in depends.split(",") if d.strip()}
        root = os.path.join(self.tmp, "deb")
        self.sh(["dpkg-deb", "-x", deb, root])
        prefix = os.path.join(root, "usr")
        binary = os.path.join(prefix, "bin", "sluice")
        # Expected: the Debian package owning each library the binary needs directly (NEEDED),
        # found through ldd and dpkg -S; the bundled Arrow/Parquet are in the package itself.
        _, dyn = self.sh(["readelf", "-d", binary])
        needed = [ln.split("[", 1)[1].rstrip("]") for ln in dyn.splitlines() if "(NEEDED)" in ln]
        _, ldd = self.sh(["ldd", binary], env=CLEAN_ENV)
        where = {ln.split()[0]: ln.split()[2] for ln in ldd.splitlines() if " => /" in ln}
        want, unowned = set(), []
        for lib in needed:
            if lib.startswith(("libarrow.so", "libparquet.so")):
                continue
            rc, owner = self.sh(["dpkg", "-S", os.path.realpath(where.get(lib, lib))])
            if rc != 0:
                rc, owner = self.sh(["dpkg", "-S", where.get(lib, lib)])
            if rc == 0:
                want.add(owner.split(":")[0].strip())
            else:
                unowned.append(lib)
        # A dependency may name a virtual package the owner provides (libspdlog1.10-fmt9).
        missing = []
        for pkg in sorted(want - have):
            _, provides = self.sh(["dpkg-query", "-W", "-f", "${Provides}", pkg])
            if not {x.strip().split()[0] for x in provides.split(",") if x.strip()} & have:
                missing.append(pkg)
        self.check(rc == 0 and not missing and not unowned and
                   not any("arrow" in d or "parquet" in d for d in have),
                   f".deb Depends has the package of every library sluice links ({len(want)}: "
                   f"{', '.join(sorted(want))}), none for the bundled Arrow/Parquet"
                   + (f"; missing {missing}, unowned {unowned}; Depends: {depends.strip()}"
                      if missing or unowned else ""))
        for key in ("librdkafka1", "libmariadb3", "libsqlite3-0", "libssl3"):
            self.check(key in have, f".deb depends on {key}")
        self.layout(prefix)
        self.runpath(prefix)
        cwd = os.path.join(self.tmp, "deb-elsewhere")
        os.makedirs(cwd)
        self.ldd(prefix, self.isolated(["ldd", binary], cwd), ".deb contents, isolated")
        rc, out = self.isolated([binary, "--version"], cwd)
        self.check(rc == 0 and out.strip() == f"sluice {self.args.version}",
                   f".deb's usr/bin/sluice --version -> rc {rc}, {out.strip()[-300:]!r}")

    def main(self):
        try:
            self.setup_isolation()
            prefix = self.package() if self.args.package else self.install()
            if prefix:
                self.layout(prefix)
                self.debug_info(prefix)
                self.runpath(prefix)
                self.runs(prefix)
                self.completion(prefix)
        finally:
            if self.args.keep:
                print(f"kept {self.tmp}")
            else:
                shutil.rmtree(self.tmp, ignore_errors=True)
        return self.finish()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--version", required=True, help="the project version sluice must report")
    ap.add_argument("--venv", help="the Python environment whose pyarrow the build links")
    ap.add_argument("--package", action="store_true",
                    help="check `make package` instead: the .deb (Depends, contents, --version) "
                    "and the tarball unpacked as the prefix")
    ap.add_argument("--keep", action="store_true", help="keep the temporary prefix")
    return Test(ap.parse_args()).main()


if __name__ == "__main__":
    sys.exit(main())
