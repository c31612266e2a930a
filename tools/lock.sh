#!/usr/bin/env bash
# Refresh constraints.txt, the lock of every dependency's exact version, from pyproject.toml's
# dependencies and its dev extra (never from whatever happens to be installed in .venv), with
# pip-tools' pip-compile in a throwaway virtual environment. pip-compile resolves with pip's own
# configuration (pip.conf, PIP_* variables), so torch and torchvision come from the same place as a
# plain `pip install` takes them.
#
#   tools/lock.sh                          keep the current pins; add or drop only what pyproject.toml changed
#   tools/lock.sh --upgrade                every package to the newest version that resolves
#   tools/lock.sh --upgrade-package numpy  that one package (and what it needs) only
#
# Then reinstall: .venv/bin/pip install -c constraints.txt -e '.[dev]'
set -euo pipefail
cd "$(dirname "$0")/.."
PIP_TOOLS=pip-tools==7.6.2

python3 -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' ||
  echo "warning: locking with $(python3 --version); CI and the README's install use Python 3.11" >&2

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install -q "$PIP_TOOLS"
# --strip-extras: a constraints file may not name extras. --allow-unsafe: pin setuptools too (torch
# needs it). No index or find-links lines: every machine brings its own pip configuration.
CUSTOM_COMPILE_COMMAND="tools/lock.sh" "$tmp/venv/bin/pip-compile" --quiet \
  --extra dev --strip-extras --allow-unsafe \
  --no-emit-index-url --no-emit-find-links --no-emit-trusted-host \
  --output-file constraints.txt "$@" pyproject.toml
echo "constraints.txt: $(grep -c '^[A-Za-z0-9]' constraints.txt) packages pinned" >&2
