"""Helpers for testing with agentjobs, kept out of the product's import graph.

``pytest_plugin``: the fixtures (a private Redis, the simulator, an in-process worker)
for users' test suites and this one; ``testing``: the processes they, the benchmarks and
``make demo`` start; ``drill``: fault drills over subprocess workers; ``roundtrips``:
state-store round trips counted with MONITOR; ``limiter_load``: a many-process load on
one rate-limit group. Only the CLI (the demo) imports from here, nothing below it (the
layers in pyproject.toml).
"""
