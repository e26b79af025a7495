"""What an agent session costs over the model calls it makes: sessions against a plain
chain of ``complete`` calls making the same requests, same run.

One private redis-server, the simulator (a subprocess, zero latency: every millisecond
measured is ours), a Haiku worker (``-c 16``) that runs both sides' model calls and a
tools worker for the sessions (both with ``-I agent_app_bench``). The workload
(bench/agent_app_bench.py): four model steps and three tool calls per session.

- **session**: ``agent.start(...)``; the loop runs each step as an ``agent_step`` task
  (the ``complete`` pipeline plus the record's reads and checkpoints) and each tool
  call as a ``tool_call`` task on ``agentjobs.tools``.
- **chain**: the same requests (``agent.request(...)``, so the same messages, tools,
  prompt-cache marks), each ``complete.delay(...).get()`` in turn, the tools run inline
  in the caller: what a user's own loop over ``complete`` costs.

Measured, the sides alternating each round:

- added latency per step, one session (or chain) at a time: a session's wall time
  (record: created to ended) minus its model calls' latency (each step's
  ``latency_s``) and its tools' run time, divided by its steps; the chain's the same
  way from its results' ``latency_ms``. p50 and p99 over the sessions;
- steps per second: ``--concurrent`` sessions started at once (or chains, one thread
  each) until all have ended.

    .venv/bin/python bench/agents.py [--sessions 40] [--concurrent 40] [--rounds 3] [--record]
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from report import machine, markers, write_section

from agentjobs.contrib.testing import RedisServer, SimProcess, WorkerProcess

BENCH = Path(__file__).resolve().parent
START, END = markers("agents")
HUGE = str(10**9)


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered)) - 1))]


def session_run(tag: str, i: int) -> str:
    import agent_app_bench as ab

    return ab.agent.start(ab.message(i), session_id=f"bench-{tag}-{i}").id


def session_figures(sid: str) -> tuple[float, float, int]:
    """(wall s, model + tool s, steps) of an ended session, from its record."""
    from agentjobs.agents.stores import session_store

    rec = session_store().load(sid)
    model = sum(float(s.get("latency_s") or 0) for s in rec["steps"])
    tools = sum(float(c.get("duration_s") or 0) for c in rec["tool_calls"])
    wall = float(rec["ended_at"]) - float(rec["created_at"])
    return wall, model + tools, len(rec["steps"])


def wait_sessions(ids: list[str], timeout: float = 300) -> None:
    from agentjobs.agents.store import FINAL
    from agentjobs.agents.stores import session_store

    store = session_store()
    deadline = time.monotonic() + timeout
    left = set(ids)
    while left:
        left = {s for s in left if store.load(s)["status"] not in FINAL}
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(left)} sessions not ended")
        if left:
            time.sleep(0.01)
    for s in ids:
        status = store.load(s)["status"]
        if status != "completed":
            raise RuntimeError(f"session {s} {status}")


def chain_run(tag: str, i: int) -> tuple[float, float, int]:
    """The same requests through ``complete``, tools inline: (wall s, model + tool s, steps)."""
    import agent_app_bench as ab

    from agentjobs.agents.tool import get_tool
    from agentjobs.worker.tasks import complete

    t0 = time.perf_counter()
    messages: list[dict[str, Any]] = [{"role": "user", "content": ab.message(i)}]
    inner = 0.0
    for n in range(1, 20):
        kwargs = ab.agent.request(messages, session_id=f"chain-{tag}-{i}", n=n)
        r = complete.delay(**kwargs).get(timeout=120)
        inner += float(r["latency_ms"]) / 1000
        if r["stop_reason"] != "tool_use":
            return time.perf_counter() - t0, inner, n
        messages.append({"role": "assistant", "content": r["content"]})
        results = []
        for b in r["content"]:
            if b["type"] == "tool_use":
                out = get_tool(b["name"]).run(b["input"], idempotency_key=f"{i}:{n}:{b['id']}")
                inner += out.duration_s
                results.append(
                    {
                        "type": "tool_result",
                        "tool_use_id": b["id"],
                        "content": out.content(),
                        "is_error": out.is_error,
                    }
                )
        messages.append({"role": "user", "content": results})
    raise RuntimeError("chain did not end")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=40, help="sequential, per round")
    parser.add_argument("--concurrent", type=int, default=40, help="at once, per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("-c", "--concurrency", type=int, default=16, help="worker threads")
    parser.add_argument("--record", action="store_true", help="write docs/benchmarks.md")
    args = parser.parse_args()

    log_dir = tempfile.mkdtemp(prefix="agentjobs-bench-agents-")
    redis_server = RedisServer().start()
    sim = SimProcess(
        "--latency-median-ms", "0", "--rpm", HUGE, "--itpm", HUGE, "--otpm", HUGE,
        log_dir=log_dir,
    ).start()  # fmt: skip
    env = {
        "AGENTJOBS_BROKER_URL": f"{redis_server.url}/0",
        "AGENTJOBS_REDIS_URL": f"{redis_server.url}/1",
        "AGENTJOBS_RESULT_BACKEND": f"{redis_server.url}/2",
        "ANTHROPIC_BASE_URL": sim.base_url,
        "ANTHROPIC_API_KEY": "sk-ant-bench",
        "AGENTJOBS_LIMIT_HAIKU_RPM": HUGE,
        "AGENTJOBS_LIMIT_HAIKU_ITPM": HUGE,
        "AGENTJOBS_LIMIT_HAIKU_OTPM": HUGE,
        "AGENTJOBS_LIMIT_HAIKU_CONCURRENCY": HUGE,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(BENCH), os.environ.get("PYTHONPATH")])),
    }
    os.environ.update(env)
    include = ("-I", "agentjobs.agents.tasks,agent_app_bench", "-c", str(args.concurrency))
    workers = [
        WorkerProcess("haiku", {}, args=include, name="bench-haiku", log_dir=log_dir),
        WorkerProcess(
            "haiku",
            {},
            args=("-Q", "agentjobs.tools", *include),
            name="bench-tools",
            log_dir=log_dir,
        ),
    ]
    seq: dict[str, list[float]] = {"session": [], "chain": []}
    rate: dict[str, list[float]] = {"session": [], "chain": []}
    try:
        for w in workers:
            w.launch()
        for w in workers:
            w.wait_ready()
        import agent_app_bench  # noqa: F401 - the agent and tools, in this process too

        for rnd in range(args.rounds):
            # sequential: added latency per step
            for i in range(args.sessions):
                sid = session_run(f"s{rnd}", i)
                wait_sessions([sid])
                wall, inner, steps = session_figures(sid)
                seq["session"].append((wall - inner) / steps)
                wall, inner, steps = chain_run(f"s{rnd}", i)
                seq["chain"].append((wall - inner) / steps)
            # concurrent: steps per second
            t0 = time.perf_counter()
            ids = [session_run(f"c{rnd}", i) for i in range(args.concurrent)]
            wait_sessions(ids)
            steps = sum(session_figures(s)[2] for s in ids)
            rate["session"].append(steps / (time.perf_counter() - t0))
            t0 = time.perf_counter()
            with ThreadPoolExecutor(args.concurrent) as pool:
                tags = [f"c{rnd}"] * args.concurrent
                done = list(pool.map(chain_run, tags, range(args.concurrent)))
            rate["chain"].append(sum(d[2] for d in done) / (time.perf_counter() - t0))
            print(f"round {rnd + 1}: steps/s session {rate['session'][-1]:.1f},"
                  f" chain {rate['chain'][-1]:.1f}", file=sys.stderr)  # fmt: skip
    finally:
        for w in workers:
            w.stop(20)
        sim.stop()
        redis_server.cleanup()

    ms = {side: [v * 1000 for v in vals] for side, vals in seq.items()}
    row = {
        side: {
            "p50": statistics.median(ms[side]),
            "p99": percentile(ms[side], 99),
            "steps_s": max(rate[side]),
        }
        for side in ms
    }
    s, c = row["session"], row["chain"]
    command = ".venv/bin/python bench/agents.py " + " ".join(sys.argv[1:])
    lines = [
        START,
        "## Agent sessions against a chain of `complete` calls",
        "",
        f"Command: `{command.strip()}`  ",
        f"Date: {datetime.date.today()}; machine: {machine()}; workers: one Haiku worker"
        f" (-c {args.concurrency}) for both sides' model calls, one tools worker; simulator"
        " at zero latency; 4 model steps and 3 tool calls per session.",
        "",
        "| | added latency per step p50 | p99 | steps/s"
        f" ({args.concurrent} at once, best of {args.rounds}) |",
        "|---|---:|---:|---:|",
        f"| session (agent_step + tool_call tasks, record checkpoints) | {s['p50']:.1f} ms |"
        f" {s['p99']:.1f} ms | {s['steps_s']:.1f} |",
        f"| chain of `complete` calls, tools inline | {c['p50']:.1f} ms | {c['p99']:.1f} ms |"
        f" {c['steps_s']:.1f} |",
        f"| session / chain | {s['p50'] / c['p50']:.2f} | {s['p99'] / c['p99']:.2f} |"
        f" {s['steps_s'] / c['steps_s']:.2f} |",
        "",
        f"Added latency: wall time minus model call latency and tool run time, per step,"
        f" over {len(ms['session'])} sequential sessions and as many chains. A session's step"
        " adds a tool_call task per tool round and the record's reads and version-checked"
        " checkpoints to what a `complete` call costs.",
        END,
    ]
    section = "\n".join(lines)
    print(section)
    if args.record:
        write_section(section, START, END)


if __name__ == "__main__":
    main()
