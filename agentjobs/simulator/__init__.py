"""An Anthropic-compatible HTTP server for tests and benchmarks (``agentjobs sim``).

Point the real ``anthropic`` SDK at it with ``ANTHROPIC_BASE_URL`` or ``base_url=``;
see docs/simulator.md for settings, directives and admin routes.
"""

from agentjobs.simulator.config import SimConfig
from agentjobs.simulator.runner import SimHandle, run_in_thread
from agentjobs.simulator.server import Simulator

__all__ = ["SimConfig", "SimHandle", "Simulator", "run_in_thread"]
