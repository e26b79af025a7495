# agentjobs: `make demo` runs the demo on the simulator, `make test` runs the test suite.
# Both create .venv and install what they need on first use.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install demo demo-agent test test-lower eval test-core lint format bench services clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "agentjobs needs Python 3.11+; run: make PYTHON=python3.11 ...")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

demo: install
	$(PY) -m agentjobs.cli.demo

# 50 support-desk agent sessions through real workers (examples/agent_app/README.md).
demo-agent: install
	$(PY) examples/agent_app/demo.py

# Two pytest processes, each given whole files (--dist loadfile: a file's tests share its
# fixtures and run in order); each process has its own private Redis and simulator.
# TEST_PROCS=0 runs them in this process, one after another. The 15 slowest tests are
# listed at the end, so a run that grows toward the 10-minute budget says where.
TEST_PROCS ?= 2

test: install services lint
	$(PY) -m pytest -q -p no:cacheprovider --durations=15 $(if $(filter 0,$(TEST_PROCS)),,-n $(TEST_PROCS) --dist loadfile)
	$(MAKE) eval
	$(MAKE) test-lower
	$(MAKE) test-core

# The committed eval suite (evals/cases.jsonl) against the simulator, a private Redis and
# a worker it starts (about 15 s), gated on evals/baseline.json; the report goes to
# .run/eval-report.md. At 0.5 a p95 may grow by half before it fails: the p95 of this shared
# machine moves by +-20% between two identical runs (docs/evals.md), a regression is 2x+.
eval: install
	$(PY) -m agentjobs eval evals/cases.jsonl --local -c 4 --baseline evals/baseline.json \
		--max-regression 0.5 --report .run/eval-report.md

# The lowest versions pyproject.toml declares, in a venv of their own (.venv/lower): a
# subset of the tests (scripts/lower-bounds.sh says which).
test-lower: services
	PYTHON=$(PYTHON) LOWER_VENV=$(VENV)/lower bash scripts/lower-bounds.sh

# `pip install .` with no extra, in a venv of its own (.venv/core): what a web process that
# only calls .delay() gets (scripts/core-install.sh says what it checks).
test-core: install services
	PYTHON=$(PYTHON) CORE_VENV=$(VENV)/core SIM_PYTHON=$(abspath $(PY)) bash scripts/core-install.sh

# Markdown is left out of the format check: ruff >= 0.17 also reformats code blocks in
# .md files (undoing the docs' aligned comments), older versions do not.
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check --extend-exclude '*.md' .
	$(VENV)/bin/mypy agentjobs harness celeryconfig.py
	$(VENV)/bin/lint-imports

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format --extend-exclude '*.md' .

services:
	bash scripts/services.sh

bench: install services
	$(PY) bench/simulator.py
	$(PY) bench/overhead.py
	$(PY) bench/ratelimit.py
	$(PY) bench/cost.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
