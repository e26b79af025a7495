"""Run eval cases through the real task path and measure each case.

A request case is ``complete.apply_async`` to whatever workers the broker reaches and
``AsyncResult.get``; an agent case is ``agent.start(input)`` and ``Session.wait``. Each
is run ``repeat`` times (``concurrency`` at once). Latency is wall time from the submit
to the result: for a session, to the ``ended_at`` its record has (``wait`` polls, and
its polling interval is not the session's latency).
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

from agentjobs.evals import expect
from agentjobs.evals.cases import Case, resolve_agent
from agentjobs.evals.expect import Outcome


@dataclass
class Run:
    """One run of a case."""

    latency_s: float
    outcome: Outcome
    failures: list[str]


@dataclass
class CaseResult:
    """A case's runs and the figures a baseline keeps."""

    case: Case
    runs: list[Run] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.case.name

    def figures(self) -> dict[str, float]:
        """p50/p95 latency (s), mean cost (USD), tokens and steps per run."""
        lat = [r.latency_s for r in self.runs]
        n = max(1, len(self.runs))
        outs = [r.outcome for r in self.runs]
        return {
            "p50_s": round(percentile(lat, 50), 4),
            "p95_s": round(percentile(lat, 95), 4),
            "cost_usd": round(sum(o.cost_usd for o in outs) / n, 8),
            "input_tokens": round(sum(o.input_tokens for o in outs) / n, 1),
            "output_tokens": round(sum(o.output_tokens for o in outs) / n, 1),
            "steps": round(sum(o.steps for o in outs) / n, 2),
            "runs": len(self.runs),
        }

    def failures(self) -> list[str]:
        """Each failed expectation once, with how many runs it failed in."""
        counts = Counter(f for r in self.runs for f in r.failures)
        total = len(self.runs)
        return [f"{msg} ({n}/{total} runs)" for msg, n in counts.items()]

    @property
    def passed(self) -> bool:
        return not any(r.failures for r in self.runs)


def percentile(values: Sequence[float], pct: float) -> float:
    """Linear interpolation between the closest ranks (numpy's default); 0 when empty."""
    if not values:
        return 0.0
    s = sorted(values)
    k = (len(s) - 1) * pct / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def run_request(case: Case, submit: Callable[..., Any] | None = None) -> Run:
    """One run of a request case: submit, wait for the result, check it."""
    if submit is None:
        from agentjobs.worker.tasks import complete

        submit = complete.apply_async
    t0 = time.perf_counter()
    try:
        handle = submit(kwargs=case.kwargs())
        result = handle.get(timeout=case.timeout_s)
        latency = time.perf_counter() - t0
        out = expect.from_result(result)
    except Exception as exc:
        latency = time.perf_counter() - t0
        out = Outcome(error=f"{type(exc).__name__}: {exc}")
    return Run(latency, out, expect.check(case.expect, out))


def run_agent(case: Case, agent: Any) -> Run:
    """One run of an agent case: start a session, wait until it ends, check it. A
    session that waits for approval fails the run and is cancelled (an eval has no one
    to approve)."""
    from agentjobs.agents import control

    t0 = time.time()
    try:
        session = agent.start(case.input)
        result = session.wait(case.timeout_s, until=("waiting_approval",))
        record = session.record()
        latency = float(record.get("ended_at") or time.time()) - t0
        if result["status"] == "waiting_approval":
            control.cancel(session.id, reason="eval: nobody approves")
            out = Outcome(error=f"session {session.id} waits for approval")
        else:
            out = expect.from_session(dict(result), record)
    except Exception as exc:
        latency = time.time() - t0
        out = Outcome(error=f"{type(exc).__name__}: {exc}")
    return Run(latency, out, expect.check(case.expect, out))


def run_case(
    case: Case,
    *,
    concurrency: int = 1,
    submit: Callable[..., Any] | None = None,
    on_run: Callable[[Case, Run], None] | None = None,
) -> CaseResult:
    """``case`` run ``case.warmup`` times unmeasured, then ``case.repeat`` times,
    ``concurrency`` at a time."""
    if case.kind == "agent":
        agent = resolve_agent(case)

        def one(_: int) -> Run:
            return run_agent(case, agent)
    else:

        def one(_: int) -> Run:
            return run_request(case, submit)

    for i in range(case.warmup):
        one(-1 - i)
    result = CaseResult(case)

    def done(run: Run) -> None:
        result.runs.append(run)
        if on_run is not None:
            on_run(case, run)

    if concurrency <= 1:
        for i in range(case.repeat):
            done(one(i))
    else:
        with ThreadPoolExecutor(min(concurrency, case.repeat), "agentjobs-eval") as pool:
            for future in as_completed([pool.submit(one, i) for i in range(case.repeat)]):
                done(future.result())
    return result


def run_cases(
    cases: Sequence[Case],
    *,
    concurrency: int = 1,
    submit: Callable[..., Any] | None = None,
    on_run: Callable[[Case, Run], None] | None = None,
) -> list[CaseResult]:
    """Every case, one after another (cases never share the workers, so one case's
    latency is not another's queueing)."""
    return [run_case(c, concurrency=concurrency, submit=submit, on_run=on_run) for c in cases]
