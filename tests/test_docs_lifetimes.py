"""Docs that state lifetimes and record fields say what the code does: keys.py's
lease and lock lifetimes and reliability.md's visibility and grace figures come from
``Settings.call_timeout_s`` (no "request timeout", which bounds only non-Messages
calls), and record.py's docstring names every field a resumed record holds. The
record is a real one: a session created and resumed against the private Redis."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentjobs import keys
from agentjobs.agents import control, record
from agentjobs.agents.agent import Agent
from agentjobs.contrib.pytest_plugin import all_queues, purge
from agentjobs.settings import Settings

DOCS = Path(__file__).resolve().parents[1] / "docs"
QUEUES = (*all_queues(), "agentjobs.tools")
PLAIN = Agent("docs_plain", model="haiku", max_tokens=64)


def default(name: str) -> float:
    return float(Settings.model_fields[name].default)


def test_lifetimes_are_the_call_bound_not_the_request_timeout() -> None:
    doc = keys.__doc__ or ""
    assert "request timeout" not in doc
    bound = (
        default("connect_timeout_s")
        + default("stream_first_token_allowance_s")
        + 1024 / default("stream_min_tokens_per_s")
    )
    assert f"= {bound:g} s at" in doc  # the worked figure of call_timeout_s(1024)
    for entry in ("limiter:{{fp}:{g}}:leases", "budget:{day}:leases", ":lock", "inflight"):
        assert entry in doc
    # the fixed part of a live task's hold: the call's first parts and every wait
    waits = (
        default("connect_timeout_s")
        + default("stream_first_token_allowance_s")
        + default("cache_wait_s")
        + default("idempotency_wait_s")
        + default("limiter_max_sleep_s")
    )
    reliability = (DOCS / "reliability.md").read_text()
    section = reliability.split("## Visibility timeout and shutdown")[1].split("\n## ")[0]
    section = " ".join(section.split())  # as read, whatever the line breaks
    limits = " ".join(reliability.split("## Known limits")[1].split("\n## ")[0].split())
    assert "request timeout" not in section
    assert f"{waits:g} s + max_tokens / 10" in section
    held = round(waits + 1024 / default("stream_min_tokens_per_s"))
    assert f"{held} s at 1,024 tokens" in section
    grace = waits + default("soft_shutdown_s")
    operations = " ".join((DOCS / "operations.md").read_text().split())
    assert f"{grace:g} s + max_tokens / 10" in operations
    assert f"{grace:g} s + max_tokens / 10 for a model worker" in limits  # the pod's grace
    assert "above the request timeout" not in limits


@pytest.fixture
def no_worker(state_redis: Any) -> Iterator[None]:
    purge(QUEUES)
    yield
    purge(QUEUES)


def named(doc: str) -> set[str]:
    return set(re.findall(r'"(\w+)"', doc))


def test_the_record_docstring_names_what_resume_writes(no_worker: None) -> None:
    session = PLAIN.start("Say hello.")  # no worker: its step waits, queued
    rec = control.resume(session.id, by="docs-test")
    assert rec["resumes"] == 1 and rec["resumed_by"] == "docs-test"
    fields = named(record.__doc__ or "")
    assert set(rec) - fields == set()
    for entry in rec["steps"]:
        assert set(entry) - fields == set()
    # the fields a replay writes into the step it re-opens (agents/control.py _reopen)
    assert {"replays", "replayed_from"} <= fields
    control.cancel(session.id)
