"""What this repository's tests and benchmarks share, and users do not: not in the wheel.

``drill``: fault drills over subprocess workers; ``roundtrips``: state-store round trips
counted with Redis MONITOR; ``limiter_load``: a many-process load on one rate-limit
group. They build on ``agentjobs.contrib.testing`` (the processes) as a user's own
harness would. The tests find this package at the repository's root (``pythonpath`` in
pyproject.toml's pytest settings); the benchmarks put the root on ``sys.path``.
"""
