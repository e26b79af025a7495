"""``make demo-agent``: 50 support-desk sessions through real worker processes.

    python examples/agent_app/demo.py [--sessions 50] [--json]

Starts a private Redis and the simulator (as ``make demo`` does; with
``ANTHROPIC_API_KEY`` set it uses the real API and 5 sessions unless told more),
creates and seeds the SQLite database, starts three workers (``claude.haiku`` for the
router, ``claude.sonnet`` for the specialists, ``agentjobs.tools`` for the tools, each
with ``-I desk``), starts the sessions, approves every refund that waits for approval
(a person would: ``agentjobs sessions approve ID``), and prints status counts, steps,
tool calls and cost per session, and what the tools wrote.

The simulator is steered by ``[[sim:...]]`` directives in each message (a real model
reads the words around them): ``tool_rounds`` rounds of tool calls, the tools the
message names called in turn, inputs drawn from each tool's schema.

``run_sessions`` and ``worker_processes`` are also what tests/test_agent_app.py and
bench/reliability.py (the crash drill) use, against services they start themselves.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import click  # noqa: E402
import desk_db  # noqa: E402

#: What the customers write: (kind, text, the tools a simulated model is to call, rounds).
SCENARIOS: tuple[tuple[str, str, str, int], ...] = (
    (
        "booking_lookup",
        "Hi, can you confirm the dates of my booking {b}?",
        "transfer_to_desk_bookings lookup_booking",
        2,
    ),
    (
        "booking_change",
        "Please change booking {b} to a different number of nights.",
        "transfer_to_desk_bookings lookup_booking change_booking_nights",
        3,
    ),
    (
        "invoice",
        "What do I still owe on booking {b}?",
        "transfer_to_desk_billing lookup_invoice",
        2,
    ),
    (
        "refund",
        "I was charged for a night I did not stay (booking {b}); I would like a refund.",
        "transfer_to_desk_billing lookup_invoice refund_booking",
        3,
    ),
)


def message(i: int) -> tuple[str, str]:
    """Session i's kind and first message."""
    kind, text, tools, rounds = SCENARIOS[i % len(SCENARIOS)]
    booking = desk_db.FIRST_BOOKING + (i * 7) % desk_db.BOOKINGS
    return kind, (
        f"[[sim:tool_rounds={rounds}]] Ticket {i}: {text.format(b=booking)} (simulator: {tools})"
    )


def worker_processes(log_dir: str, concurrency: int = 8, prefix: str = "desk") -> list[Any]:
    """The three workers the sessions need, not yet launched: one per model queue the
    agents use, and one for the tools; each imports ``desk`` from this folder."""
    from agentjobs.contrib.testing import WorkerProcess

    env = {
        "PYTHONPATH": os.pathsep.join([str(HERE), *filter(None, [os.environ.get("PYTHONPATH")])]),
        "AGENT_APP_DB": str(desk_db.path()),
    }
    # The desk's agents and tools, in every worker (the loop's tasks are agentjobs').
    include = ("-I", "desk", "-c", str(concurrency))
    return [
        WorkerProcess(family, env, args=include, name=f"{prefix}-{family}", log_dir=log_dir)
        for family in ("haiku", "sonnet", "tools")
    ]


def run_sessions(
    n: int,
    *,
    timeout: float = 300.0,
    approve: bool = True,
    tag: str = "",
    on_tick: Any = None,
    keep_going: bool = False,
) -> dict[str, Any]:
    """Start ``n`` sessions of the router, approve what waits (when ``approve``), wait
    until every one has ended; the results (TimeoutError after ``timeout``, or, with
    ``keep_going``, the results of those that ended and ``unfinished``)."""
    import desk

    from agentjobs.agents import control
    from agentjobs.agents.stores import session_store
    from agentjobs.errors import SessionStateError

    store = session_store()
    t0 = time.monotonic()
    kinds: dict[str, str] = {}
    for i in range(n):
        kind, text = message(i)
        session = desk.router.start(text, session_id=f"desk-{tag or os.getpid()}-{i:03d}")
        kinds[session.id] = kind
    approved: set[str] = set()
    results: dict[str, Any] = {}
    deadline = time.monotonic() + timeout
    while len(results) < n:
        if time.monotonic() > deadline:
            left = sorted(set(kinds) - set(results))
            if not keep_going:
                raise TimeoutError(f"{len(left)} sessions not ended after {timeout:g}s: {left[:5]}")
            break
        for sid in kinds:
            if sid in results:
                continue
            rec = store.get(sid)
            if rec is None:
                continue
            if rec["status"] == "waiting_approval" and approve:
                with contextlib.suppress(SessionStateError):
                    control.approve(sid, by="demo")
                    approved.add(sid)
            elif rec["status"] in ("completed", "stopped", "failed", "cancelled"):
                results[sid] = control.result(rec)
        if on_tick is not None:
            on_tick(len(results))
        time.sleep(0.1)
    elapsed = time.monotonic() - t0
    return {
        "results": results,
        "kinds": kinds,
        "approved": sorted(approved),
        "elapsed_s": elapsed,
        "unfinished": sorted(set(kinds) - set(results)),
    }


def summary(run: dict[str, Any]) -> dict[str, Any]:
    results = list(run["results"].values())

    def dist(values: list[float], digits: int = 2) -> dict[str, float]:
        values = sorted(values)
        p95 = values[min(len(values) - 1, round(0.95 * (len(values) - 1)))]
        return {
            "mean": round(statistics.fmean(values), digits),
            "p50": round(statistics.median(values), digits),
            "p95": round(p95, digits),
            "max": round(values[-1], digits),
        }

    return {
        "sessions": len(results),
        "status": dict(Counter(r["status"] for r in results)),
        "stop_reasons": dict(Counter(r["stop_reason"] for r in results if r["stop_reason"])),
        "by_kind": dict(Counter(run["kinds"].values())),
        "steps": dist([r["steps"] for r in results]),
        "tool_calls": dist([r["tool_calls"] for r in results]),
        "cost_usd": {
            **dist([r["cost_usd"] for r in results], 6),
            "total": round(sum(r["cost_usd"] for r in results), 6),
        },
        "approved_by_demo": len(run["approved"]),
        "elapsed_s": round(run["elapsed_s"], 2),
        "database": desk_db.counts(),
    }


def _text(s: dict[str, Any]) -> str:
    lines = [
        f"{s['sessions']} sessions in {s['elapsed_s']} s ("
        + ", ".join(f"{k} {v}" for k, v in sorted(s["by_kind"].items()))
        + ")",
        "status:      " + ", ".join(f"{k} {v}" for k, v in sorted(s["status"].items())),
    ]
    if s["stop_reasons"]:
        lines.append("stopped by:  " + ", ".join(f"{k} {v}" for k, v in s["stop_reasons"].items()))
    for name, unit in (("steps", ""), ("tool_calls", ""), ("cost_usd", " USD")):
        d = s[name]
        extra = f", total {d['total']}{unit}" if "total" in d else ""
        lines.append(
            f"{name + ':':<13}mean {d['mean']}, p50 {d['p50']}, p95 {d['p95']},"
            f" max {d['max']}{unit} per session{extra}"
        )
    db = s["database"]
    lines += [
        f"approvals:   {_count(s['approved_by_demo'], 'refund')} waited for approval and were"
        " approved by this demo (a person would run `agentjobs sessions approve ID`)",
        f"database:    {db['attempts']} tool runs for {db['keys']} idempotency keys,"
        f" {_count(db['changes'], 'booking change')}, {_count(db['refunds'], 'refund')}"
        f" ({db['refunded_usd']} USD)",
    ]
    return "\n".join(lines)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _say(msg: str) -> None:
    click.echo(click.style("demo-agent: ", fg="cyan") + msg, err=True)


@click.command()
@click.option(
    "--sessions",
    "n",
    type=click.IntRange(min=1),
    default=None,
    help="How many sessions [default: 50; 5 with a real ANTHROPIC_API_KEY].",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("-c", "--concurrency", default=8, show_default=True, help="Threads per worker.")
def main(n: int | None, as_json: bool, concurrency: int) -> None:
    """Run support-desk sessions through real workers, then stop everything."""
    import json
    import signal

    from agentjobs.cli import demo

    signal.signal(signal.SIGTERM, demo._on_sigterm)
    log_dir = tempfile.mkdtemp(prefix="agentjobs-demo-agent-")
    real_api = bool(os.environ.get("ANTHROPIC_API_KEY"))
    n = n or (5 if real_api else 50)
    os.environ.setdefault("AGENT_APP_DB", str(Path(log_dir) / "desk.sqlite3"))
    workers: list[Any] = []
    try:
        with contextlib.ExitStack() as stack:
            env = demo._redis(stack)
            if not real_api:
                env.update(demo._simulator(stack, log_dir))
            os.environ.update(env)
            from agentjobs.settings import reset_settings

            reset_settings()
            _say(f"database {desk_db.create(fresh=True)}")
            workers += worker_processes(log_dir, concurrency)
            for w in workers:
                stack.callback(w.stop, 15.0)
                w.launch()
            for w in workers:
                w.wait_ready()
            _say(f"workers up: {', '.join(w.name for w in workers)}; starting {n} sessions")
            run = run_sessions(n, tag=str(int(time.time())))
            s = summary(run)
            click.echo(json.dumps(s, indent=2) if as_json else _text(s))
            _say(f"stopping everything the demo started (logs in {log_dir})")
    except KeyboardInterrupt:
        _say("interrupted: stopped everything the demo started")
        sys.exit(130)
    except Exception as exc:
        for w in workers:
            click.echo(f"--- {w.name} log (tail) ---\n{w.log()[-3000:]}", err=True)
        raise click.ClickException(f"{type(exc).__name__}: {exc}") from None
    sys.exit(0 if s["status"].get("completed", 0) == s["sessions"] else 1)


if __name__ == "__main__":
    main()
