#!/usr/bin/env bash
# The core install, as a web process that only calls .delay() has it: `pip install .`
# (a wheel built from this tree) into a fresh venv with no extra, pip resolving the core
# dependencies itself; then scripts/core_check.py runs there, outside the checkout: a
# publish that loads no optional library, a worker without extras answering it, the
# commands that need an extra naming it, the wheel's contents. `make test-core` runs it
# (and `make test` does too). It needs the package index on first use: the venv
# ($CORE_VENV, default .venv/core) is rebuilt only when the core dependencies change;
# agentjobs itself is reinstalled from this tree each time.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${CORE_VENV:-.venv/core}
# The simulator is not in the core install: it runs from the development venv.
SIM_PYTHON=${SIM_PYTHON:-$PWD/.venv/bin/python}

# Built from a copy of the tree's files (tracked, and new ones not ignored): setuptools'
# build/ in the tree would keep files deleted since, and ship them.
src=$(mktemp -d)
trap 'rm -rf "$src"' EXIT
git ls-files -z --cached --others --exclude-standard \
  | tar --null -T - --ignore-failed-read -cf - 2>/dev/null | tar -xf - -C "$src"

deps=$("$PYTHON" -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))')
stamp="$VENV/.core-deps"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$deps" ]; then
  echo "core-install: building $VENV (pip install ., no extra)" >&2
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q "$src"
  echo "$deps" > "$stamp"
else
  # The dependencies pip resolved for this very list are in place: only agentjobs anew.
  "$VENV/bin/python" -m pip install -q --no-deps --force-reinstall "$src"
fi

checkout=$PWD
cd "$(mktemp -d)"  # not the checkout: `import agentjobs` must find the installed one
"$(cd "$checkout" && realpath "$VENV")/bin/python" "$checkout/scripts/core_check.py" "$checkout" "$SIM_PYTHON"
