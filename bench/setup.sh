#!/usr/bin/env bash
# Install what the benchmark needs beyond the project's own venv: pyftpdlib
# (a peer server), psutil and matplotlib (the plot) into the venv and lftp
# (a peer client) from Debian.
# Idempotent: each step runs only if its tool is missing.
set -euo pipefail

VENV="${VENV:-$(cd "$(dirname "$0")/.." && pwd)/.venv}"
PY="$VENV/bin/python"

if ! "$PY" -c 'import pyftpdlib' 2>/dev/null; then
    "$VENV/bin/pip" install --quiet pyftpdlib
fi
if ! "$PY" -c 'import psutil' 2>/dev/null; then
    "$VENV/bin/pip" install --quiet psutil
fi
if ! "$PY" -c 'import matplotlib' 2>/dev/null; then
    # The plot beside the tables (bench/plot.py); the `bench` extra of setup.cfg.
    "$VENV/bin/pip" install --quiet matplotlib
fi

if ! command -v lftp >/dev/null 2>&1; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq lftp
fi

"$PY" -c 'import pyftpdlib, psutil, matplotlib; print("pyftpdlib", pyftpdlib.__ver__, "psutil", psutil.__version__, "matplotlib", matplotlib.__version__)'
lftp --version | head -n 1
