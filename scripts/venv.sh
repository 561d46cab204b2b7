#!/usr/bin/env bash
# Creates the project's Python virtual environment (.venv) and installs requirements.txt into
# it: the Parquet reader for the tests and, without a system Arrow, the Arrow/Parquet C++
# libraries sluice links (from the pyarrow wheel). Installs python3-venv (sudo when not root)
# when the venv module is missing. Does nothing, quickly, when the environment already matches
# requirements.txt. SLUICE_VENV overrides the location.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${SLUICE_VENV:-$root/.venv}"
requirements="$root/requirements.txt"
stamp="$venv/.sluice-requirements"

python="${PYTHON:-python3}"
if ! command -v "$python" >/dev/null; then
  echo "venv: $python not found (scripts/install-deps.sh installs python3)" >&2
  exit 1
fi

want="$(sha256sum "$requirements" | cut -d' ' -f1) $("$python" -c 'import sys; print(sys.version.split()[0])')"
if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] &&
   "$venv/bin/python" -c 'import sys' 2>/dev/null; then
  exit 0
fi

# Debian's python3 ships the venv module (and ensurepip) separately.
if ! "$python" -c 'import venv, ensurepip' 2>/dev/null; then
  if ! command -v apt-get >/dev/null; then
    echo "venv: the Python venv module is missing; install python3-venv" >&2
    exit 1
  fi
  SUDO=""
  if [ "$(id -u)" != "0" ]; then
    if command -v sudo >/dev/null; then SUDO="sudo"; else
      echo "venv: not root and no sudo; install python3-venv" >&2
      exit 1
    fi
  fi
  echo "venv: installing python3-venv"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends python3-venv
fi

mkdir -p "$venv"
# Two builds starting at once must not install into the same environment concurrently.
exec 9>"$venv/.sluice-lock"
command -v flock >/dev/null && flock 9

# An environment whose interpreter is gone (Python upgraded or moved) is rebuilt from scratch.
if [ -e "$venv/bin/python" ] && ! "$venv/bin/python" -c 'import sys' 2>/dev/null; then
  echo "venv: $venv is broken; recreating it"
  find "$venv" -mindepth 1 -maxdepth 1 ! -name .sluice-lock -exec rm -rf {} +
fi
if [ ! -x "$venv/bin/python" ]; then
  echo "venv: creating $venv"
  "$python" -m venv "$venv"
fi
echo "venv: installing $(grep -v '^#' "$requirements" | grep -v '^$' | tr '\n' ' ')"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
echo "$want" >"$stamp"
