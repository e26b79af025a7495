"""Fixtures for the simulator's own tests: a fresh server per test, the real SDK."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import anthropic
import httpx2 as httpx
import pytest

from agentjobs.simulator import SimConfig, SimHandle, run_in_thread

#: Defaults for tests: no latency, reproducible draws, no header rounding surprises.
TEST_DEFAULTS: dict[str, Any] = {"latency_median_ms": 0, "seed": 1}

StartSim = Callable[..., SimHandle]


@pytest.fixture
def start_sim() -> Iterator[StartSim]:
    """Start a simulator with ``SimConfig(**TEST_DEFAULTS | overrides)``; stopped after."""
    handles: list[SimHandle] = []

    def start(**overrides: Any) -> SimHandle:
        handle = run_in_thread(SimConfig(**{**TEST_DEFAULTS, **overrides}), port=0)
        handles.append(handle)
        return handle

    yield start
    for handle in handles:
        handle.stop()


@pytest.fixture
def server(start_sim: StartSim) -> SimHandle:
    return start_sim()


def sdk(handle: SimHandle, **kwargs: Any) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url=handle.base_url, api_key=kwargs.pop("api_key", "test"), max_retries=0, **kwargs
    )


@pytest.fixture
def client(server: SimHandle) -> Iterator[anthropic.Anthropic]:
    with sdk(server) as c:
        yield c


@pytest.fixture
def http(server: SimHandle) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, headers={"x-api-key": "test"}) as c:
        yield c


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]
