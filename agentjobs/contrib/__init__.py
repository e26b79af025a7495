"""Helpers for testing with agentjobs, kept out of the product's import graph.

``pytest_plugin``: the fixtures (a private Redis, the simulator, an in-process worker)
for users' test suites and this one; ``pytest_eval``: evals as pytest items; ``testing``:
the processes they, the benchmarks and ``make demo`` start; ``local``: a private stack
for the demo and the evals. Only the CLI imports from here, nothing below it (the
layers in pyproject.toml).
"""
