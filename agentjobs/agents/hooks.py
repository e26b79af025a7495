"""What the loop reports: session metrics (``ops/session_metrics.py``) and a trace span
per step and tool call (``telemetry/trace.py``). Both are best effort: a metric that
cannot be written never fails a step."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import Any

from agentjobs.agents.store import Record
from agentjobs.ops import session_metrics
from agentjobs.telemetry import trace

log = logging.getLogger(__name__)


def _safely(fn: Callable[..., None], *args: Any, **kwargs: Any) -> None:
    try:
        fn(*args, **kwargs)
    except Exception:  # a metric must never fail the session
        log.warning("session metric %s not recorded", fn.__name__, exc_info=True)


def started(agent: str, session_id: str) -> None:
    _safely(session_metrics.started, agent, session_id=session_id)


def ended(rec: Record) -> None:
    _safely(session_metrics.ended, rec)


def reopened(rec: Record) -> None:
    _safely(session_metrics.reopened, rec)


def tool_done(tool: str, kind: str, duration_s: float) -> None:
    _safely(session_metrics.tool_done, tool, kind, duration_s)


def approval_waited(tool: str, seconds: float) -> None:
    _safely(session_metrics.approval_waited, tool, seconds)


@contextlib.contextmanager
def span(name: str, **attributes: Any) -> Iterator[None]:
    """The telemetry span ``name`` around the block (a no-op without OpenTelemetry); a
    span that cannot be opened is logged, and the block runs all the same."""
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(trace.span(name, **attributes))
        except Exception:
            log.warning("span %s not opened", name, exc_info=True)
        yield
