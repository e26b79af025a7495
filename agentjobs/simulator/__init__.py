"""An Anthropic-compatible HTTP server for tests and benchmarks (``agentjobs sim``).

Point the real ``anthropic`` SDK at it with ``ANTHROPIC_BASE_URL`` or ``base_url=``;
see docs/simulator.md for settings, directives and admin routes.

The server needs aiohttp (the ``[sim]`` extra), imported only when the server is: the
configuration and ``agentjobs sim --help`` work on the core install.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from agentjobs.simulator.config import SimConfig

if TYPE_CHECKING:
    from agentjobs.simulator.runner import SimHandle, run_in_thread
    from agentjobs.simulator.server import Simulator

__all__ = ["SimConfig", "SimHandle", "Simulator", "run_in_thread"]

_LAZY = {
    "SimHandle": "agentjobs.simulator.runner",
    "run_in_thread": "agentjobs.simulator.runner",
    "Simulator": "agentjobs.simulator.server",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
