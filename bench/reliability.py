"""Reliability drills with figures: faults, kill -9, visibility timeout, Redis restart,
50 copies of one key, replay. Prints a Markdown section and, with ``--write``, puts it
in docs/reliability.md between the ``bench:reliability`` markers.

Every drill runs ``agentjobs worker`` subprocesses against a private Redis and the
simulator; the simulator's per-request-hash counters are the count of real calls.

    .venv/bin/python bench/reliability.py --write
"""

from __future__ import annotations

import argparse
import datetime
import re
import sys
import time
from pathlib import Path
from typing import Any

from report import machine

from agentjobs.contrib.drill import Drill
from agentjobs.contrib.testing import wait_for
from agentjobs.reliability import deadletter
from agentjobs.simulator import SimConfig, run_in_thread
from agentjobs.worker.tasks import complete

FAST = {
    "AGENTJOBS_RETRY_MAX_ATTEMPTS": "3",
    "AGENTJOBS_RETRY_BACKOFF_BASE_S": "0.05",
    "AGENTJOBS_RETRY_BACKOFF_MAX_S": "0.5",
    "AGENTJOBS_VISIBILITY_TIMEOUT_S": "4",
    "AGENTJOBS_IDEMPOTENCY_LEASE_S": "1.5",
    "AGENTJOBS_REQUEST_TIMEOUT_S": "1",
}
DOC = Path(__file__).resolve().parent.parent / "docs" / "reliability.md"
rows: list[tuple[str, dict[str, Any]]] = []


def new_sim(**cfg: Any) -> Any:
    return run_in_thread(SimConfig(latency_spread=0, seed=11, **cfg))


def extra_calls(d: Drill) -> int:
    return sum(max(0, c - 1) for c in d.calls_by_task().values())


def faults_and_replay(n: int) -> None:
    sim = new_sim(latency_median_ms=50)
    sim.configure(fault_529=0.05, fault_500=0.05, fault_drop=0.05, fault_slow=0.05, slow_ms=3000)
    try:
        with Drill(sim, env=FAST) as d:
            d.worker(concurrency=16)
            d.worker(concurrency=16)
            for i in range(n):
                d.submit(f"fault drill {i}")
            acc = d.account(timeout=300)
            stats = sim.stats()
            dead = list(deadletter.records())
            whole = sum(1 for r in dead if sum(a.counted for a in r.attempts) == 3)
            calls = d.calls_by_task()
            late = sum(calls[t] for t in acc.dead_lettered)
            rows.append(
                (
                    f"faults 20% (529/500/drop/timeout 5% each), {n} tasks, 3 attempts",
                    {
                        **acc.summary(),
                        "faults": sum(stats["faults"].values()),
                        "calls": stats["messages"],
                        "duplicates": extra_calls(d) + late,
                        "note": f"{whole}/{len(dead)} dead letters used all 3 attempts; "
                        f"duplicates are timed-out calls the server finished anyway "
                        f"({stats['faults'].get('slow', 0)} timeouts)",
                    },
                )
            )
            # Replay after the fault is removed.
            sim.configure(fault_529=0, fault_500=0, fault_drop=0, fault_slow=0)
            before = deadletter.count()
            replays = [deadletter.replay_one(r.id, complete.apply_async) for r in dead]
            ok = sum(1 for r in replays if _succeeds(r))
            rows.append(
                (
                    "replay after the fault is removed",
                    {
                        "submitted": len(replays),
                        "succeeded": ok,
                        "dead_lettered": deadletter.count(),
                        "unaccounted": len(replays) - ok,
                        "note": f"dead-letter store {before} -> {deadletter.count()}",
                    },
                )
            )
    finally:
        sim.stop()


def _succeeds(res: Any) -> bool:
    try:
        res.get(timeout=60)
        return True
    except Exception:
        return False


def permanent(n: int) -> None:
    sim = new_sim(latency_median_ms=20)
    try:
        with Drill(sim, env=FAST) as d:
            d.worker(concurrency=8)
            for i in range(n):
                d.submit(f"[[sim:error=400]] permanent {i}")
            acc = d.account(timeout=60)
            rows.append(
                (
                    f"permanent error (400), {n} tasks",
                    {**acc.summary(), "calls": sim.stats()["messages"], "duplicates": 0},
                )
            )
    finally:
        sim.stop()


def kill_twice(n: int) -> None:
    sim = new_sim(latency_median_ms=400)
    try:
        with Drill(sim, env={**FAST, "AGENTJOBS_IDEMPOTENCY_LEASE_S": "3"}) as d:
            a, b = d.worker(concurrency=4), d.worker(concurrency=4)
            for i in range(n):
                d.submit(f"kill drill {i}")
            wait_for(lambda: d.finished() >= n // 4, timeout=120)
            first = d.kill(a)
            d.worker(concurrency=4)
            wait_for(lambda: d.finished() >= n // 2, timeout=120)
            second = d.kill(b)
            d.worker(concurrency=4)
            acc = d.account(timeout=180)
            calls = d.calls_by_task()
            repeated = {t for t, c in calls.items() if c > 1}
            in_flight = first["in_flight"] | second["in_flight"]
            stored_again = sum(calls[t] - k["calls"][t] for k in (first, second) for t in k["done"])
            rows.append(
                (
                    f"kill -9 of a worker mid-batch, twice, {n} tasks",
                    {
                        **acc.summary(),
                        "calls": sim.stats()["messages"],
                        "duplicates": extra_calls(d),
                        "note": f"{len(in_flight)} calls in flight at the kills; "
                        f"{len(repeated)} tasks repeated, all of them in flight: "
                        f"{repeated <= in_flight}; calls for tasks already stored: "
                        f"{stored_again}",
                    },
                )
            )
    finally:
        sim.stop()


def visibility(n: int) -> None:
    sim = new_sim(latency_median_ms=50)
    env = {
        **FAST,
        "AGENTJOBS_VISIBILITY_TIMEOUT_S": "10",
        "AGENTJOBS_IDEMPOTENCY_LEASE_S": "3",
        "AGENTJOBS_REQUEST_TIMEOUT_S": "60",
    }
    try:
        with Drill(sim, env=env) as d:
            d.worker(concurrency=n)
            d.worker(concurrency=n)
            for i in range(n):
                d.submit(f"[[sim:latency_ms=15000]] slow call {i}")
            acc = d.account(timeout=120)
            rows.append(
                (
                    f"visibility timeout 10 s, 15-second calls, {n} tasks",
                    {
                        **acc.summary(),
                        "calls": sim.stats()["messages"],
                        "duplicates": extra_calls(d),
                        "note": f"{d.received()} deliveries of {n} messages (redelivered "
                        f"while running); the copies waited on the lease",
                    },
                )
            )
    finally:
        sim.stop()


def redis_restart(runs: int, backlog: bool) -> None:
    import kombu.exceptions
    import redis

    sim = new_sim(latency_median_ms=300 if backlog else 3000)
    env = {**FAST, "AGENTJOBS_IDEMPOTENCY_LEASE_S": "10", "AGENTJOBS_REQUEST_TIMEOUT_S": "10"}
    total = {"submitted": 0, "succeeded": 0, "dead_lettered": 0, "lost": 0, "resent": 0}
    dup = calls = 0
    producer: list[str] = []
    try:
        for _ in range(runs):
            sim.reset()
            with Drill(sim, persist=True, env=env) as d:
                d.worker(concurrency=8)
                d.worker(concurrency=8)
                for i in range(40 if backlog else 16):
                    d.submit(f"restart drill {i}")
                if backlog:
                    wait_for(lambda: d.finished() >= 10, timeout=60)
                else:
                    wait_for(d.all_taken, timeout=60)
                d.redis.stop()
                try:
                    d.submit("during the outage")
                    producer.append("ok")
                except (kombu.exceptions.OperationalError, redis.ConnectionError):
                    producer.append("error")
                d.redis.start()
                acc = d.account(timeout=60)
                total["submitted"] += acc.submitted
                total["succeeded"] += len(acc.succeeded)
                total["dead_lettered"] += len(acc.dead_lettered)
                total["lost"] += len(acc.other) + len(acc.in_flight)
                total["resent"] += acc.resent
                dup += extra_calls(d)
                calls += sim.stats()["messages"]
    finally:
        sim.stop()
    what = "with a backlog (workers polling)" if backlog else "all calls in flight, queue empty"
    rows.append(
        (
            f"Redis restart mid-batch, {what}, {runs} runs",
            {
                "submitted": total["submitted"],
                "succeeded": total["succeeded"],
                "dead_lettered": total["dead_lettered"],
                "unaccounted": total["lost"],
                "resent": total["resent"],
                "calls": calls,
                "duplicates": dup,
                "note": f"producer during the outage: {producer.count('error')} clear errors, "
                f"{producer.count('ok')} sent",
            },
        )
    )


def same_key(n: int) -> None:
    sim = new_sim(latency_median_ms=500)
    try:
        with Drill(sim, env=FAST) as d:
            d.worker(concurrency=16)
            d.worker(concurrency=16)
            results = [d.submit("one question", idempotency_key="same-key") for _ in range(n)]
            outs = [r.get(timeout=120) for r in results]
            rows.append(
                (
                    f"same idempotency key submitted {n} times at once",
                    {
                        "submitted": n,
                        "succeeded": len(outs),
                        "dead_lettered": 0,
                        "unaccounted": 0,
                        "calls": sim.stats()["messages"],
                        "duplicates": sim.stats()["messages"] - 1,
                        "note": f"{sum(o == outs[0] for o in outs)} identical results",
                    },
                )
            )
    finally:
        sim.stop()


def render(command: str, elapsed: float) -> str:
    lines = [
        "<!-- bench:reliability:start -->",
        f"Command: `{command}`  ",
        f"Date: {datetime.date.today()}; machine: {machine()}; run time {elapsed:.0f} s.",
        "",
        "| drill | submitted | succeeded | dead-lettered | unaccounted | re-sent by the "
        "ledger | calls | duplicate calls | notes |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, r in rows:
        if r.get("in_flight"):  # not ended when the drill stopped waiting
            r = {**r, "note": f"{r.get('note', '')}; {r['in_flight']} still in flight".lstrip("; ")}
        lines.append(
            f"| {name} | {r['submitted']} | {r['succeeded']} | {r['dead_lettered']} | "
            f"{r['unaccounted']} | {r.get('resent', '')} | {r.get('calls', '')} | "
            f"{r.get('duplicates', '')} | "
            f"{r.get('note', '')} |"
        )
    lines.append("<!-- bench:reliability:end -->")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=500, help="tasks of the fault drill")
    parser.add_argument("--restarts", type=int, default=5, help="runs of each restart drill")
    parser.add_argument("--write", action="store_true", help="update docs/reliability.md")
    parser.add_argument(
        "--restarts-only", action="store_true", help="only the restart drill with a backlog"
    )
    args = parser.parse_args()
    t0 = time.monotonic()
    if args.restarts_only:
        redis_restart(args.restarts, backlog=True)
        print(render("(restarts only)", time.monotonic() - t0))
        return
    faults_and_replay(args.tasks)
    permanent(20)
    kill_twice(200)
    visibility(8)
    redis_restart(args.restarts, backlog=False)
    redis_restart(args.restarts, backlog=True)
    same_key(50)
    command = ".venv/bin/python bench/reliability.py " + " ".join(sys.argv[1:])
    section = render(command.strip(), time.monotonic() - t0)
    print(section)
    if args.write:
        text = DOC.read_text() if DOC.exists() else ""
        pattern = re.compile(
            r"<!-- bench:reliability:start -->.*<!-- bench:reliability:end -->", re.S
        )
        if pattern.search(text):
            text = pattern.sub(lambda _: section, text)
        else:
            text += "\n" + section + "\n"
        DOC.write_text(text)


if __name__ == "__main__":
    main()
