#!/usr/bin/env bash
# Test the lower bounds pyproject.toml declares: a second venv gets exactly the lowest
# version of every runtime dependency and of the [sim] and [ops] extras the tests need
# (pinned with ==; pip resolves everything else),
# and a representative subset of the tests runs under it: an in-process worker end to
# end against the simulator, validation, the limiter, retries and dead letters, costs,
# the exporter, configuration. `make test-lower` runs it (and `make test` does too).
#
# Every runtime dependency must declare a lower bound (>=). The venv is kept in
# $LOWER_VENV (default .venv/lower) and rebuilt only when the pins change.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${LOWER_VENV:-.venv/lower}
TESTS=(
  tests/test_validation.py tests/test_limiter.py tests/test_limiter_worker.py
  tests/test_deadletter.py tests/test_retry.py tests/test_client.py tests/test_cost.py
  tests/test_metrics_e2e.py tests/test_cli.py tests/test_config.py
  # agentjobs.install leans on Celery's app internals (_load_config, _task_from_fun).
  tests/test_install.py
)

# name==lowest for each runtime dependency and those of the [sim] and [ops] extras (a
# dependency's own extras dropped: a constraint has none), then
# the test runner's own requirements from the dev extra.
read_pyproject() {
  "$PYTHON" - "$1" <<'EOF'
import re
import sys
import tomllib

with open("pyproject.toml", "rb") as fh:
    project = tomllib.load(fh)["project"]
if sys.argv[1] == "pins":
    # The core and the extras the tests below need (the simulator, the exporter).
    extras = project["optional-dependencies"]
    for dep in [*project["dependencies"], *extras["sim"], *extras["ops"]]:
        found = re.match(r"^([A-Za-z0-9_.-]+)(\[[^\]]*\])?\s*(.*)$", dep)
        name, spec = found.group(1), found.group(3)
        lowest = re.search(r">=\s*([0-9][^,;\s]*)", spec)
        if lowest is None:
            sys.exit(f"lower-bounds: {dep!r} in pyproject.toml declares no lower bound (>=)")
        print(f"{name}=={lowest.group(1)}")
else:
    print("\n".join(d for d in project["optional-dependencies"]["dev"] if d.startswith("pytest")))
EOF
}

pins=$(read_pyproject pins)
test_deps=$(read_pyproject test)
stamp="$VENV/.lower-bounds"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$pins" ]; then
  echo "lower-bounds: building $VENV with $(echo "$pins" | tr '\n' ' ')" >&2
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  echo "$pins" > "$VENV/constraints.txt"
  # shellcheck disable=SC2086
  "$VENV/bin/python" -m pip install -q -c "$VENV/constraints.txt" -e '.[sim,ops]' $test_deps
  echo "$pins" > "$stamp"
fi

# The pins took: every runtime dependency is installed at exactly its lower bound.
"$VENV/bin/python" - "$VENV/constraints.txt" <<'EOF'
import sys
from importlib.metadata import version

try:
    from packaging.version import Version
except ImportError:  # not a dependency of every release: pip's own copy
    from pip._vendor.packaging.version import Version

wrong = []
for line in open(sys.argv[1]).read().split():
    name, want = line.split("==")
    if Version(version(name)) != Version(want):
        wrong.append(f"{name} {version(name)} (wanted {want})")
if wrong:
    sys.exit("lower-bounds: not at the declared lower bound: " + ", ".join(wrong))
EOF

exec "$VENV/bin/python" -m pytest -q -p no:cacheprovider "${TESTS[@]}"
