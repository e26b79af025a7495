"""Reliability drills with figures: faults, kill -9, visibility timeout, Redis restart,
50 copies of one key, replay. Prints a Markdown section and, with ``--write``, puts it
in docs/reliability.md between the ``bench:reliability`` markers.

Every drill runs ``agentjobs worker`` subprocesses against a private Redis and the
simulator; the simulator's per-request-hash counters are the count of real calls.

    .venv/bin/python bench/reliability.py --write
    .venv/bin/python bench/reliability.py --sessions 50 --write   # the agent-session drill

``--sessions N`` runs only the crash drill of agent sessions (``sessions_drill``) and
writes its own section (``bench:reliability-sessions``).
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from report import machine

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # harness/

from agentjobs.contrib.testing import wait_for
from agentjobs.reliability import deadletter
from agentjobs.simulator import SimConfig, run_in_thread
from agentjobs.worker.tasks import complete
from harness.drill import Drill

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


SESSIONS_DOC_START = "<!-- bench:reliability-sessions:start -->"
SESSIONS_DOC_END = "<!-- bench:reliability-sessions:end -->"
SESSIONS_ABOUT = (
    "The support desk of examples/agent_app (router on Haiku, specialists on Sonnet,"
    " tools writing SQLite, refunds approved by the drill) with every worker killed -9"
    " twice at random moments (seeded) and replaced. A model call is counted made again"
    " when the simulator answered the same request twice; it repeats a completed step"
    " only if it began after that step's answer was checkpointed (the answer the record"
    " kept is found in the simulator's log by model, usage and time). A tool run is"
    " counted from the SQLite `attempts` table, against the UNIQUE idempotency-key rows"
    " of the two tools that write; a run of a completed call would begin after the"
    " call's recorded end. Each tool sleeps 0.5 s after its work (`AGENT_APP_TOOL_DELAY_S`)"
    " so that kills land between a committed write and its checkpoint."
    " Repeats of calls in flight at a kill are expected (the killed worker's answer"
    " never reached the record): the claim on the call's key lapses and the redelivered"
    " task calls again."
)


def sessions_drill(n: int, seed: int, stuck_s: float = 180.0) -> dict[str, Any]:
    """``n`` support-desk sessions (examples/agent_app) while every worker (the Haiku and
    Sonnet model workers and the tools worker) is killed -9 twice at random moments and
    replaced; then every session is accounted for, and the repeats are counted: model
    calls by the simulator's per-request-hash counters and its log, tool runs by the
    SQLite ``attempts`` table against the UNIQUE idempotency-key rows of the writes."""
    import importlib.util
    import json
    import random

    rng = random.Random(seed)
    spec = importlib.util.spec_from_file_location(
        "agent_app_demo", Path(__file__).resolve().parent.parent / "examples/agent_app/demo.py"
    )
    assert spec and spec.loader
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    import desk_db

    log_dir = Path(tempfile.mkdtemp(prefix="agentjobs-sessions-drill-"))
    sim_log = log_dir / "sim.jsonl"
    sim = new_sim(latency_median_ms=400, log=str(sim_log))
    env = {
        **FAST,
        "AGENTJOBS_IDEMPOTENCY_LEASE_S": "3",
        # Calls take 0.4 s + output at 70 tokens/s: the 1 s of FAST would time some out
        # (repeats the server finished anyway), which is another drill's subject.
        "AGENTJOBS_REQUEST_TIMEOUT_S": "30",
        "AGENT_APP_DB": str(log_dir / "desk.db"),
        # Each tool sleeps after its work (a write committed) before it returns, so
        # kills land between a write and its checkpoint: the case the UNIQUE key is for.
        "AGENT_APP_TOOL_DELAY_S": "0.5",
    }
    kills: list[dict[str, Any]] = []
    try:
        with Drill(sim, env=env, log_dir=str(log_dir)) as d:
            from agentjobs.worker.app import app

            if app.conf.broker_url != d.env["AGENTJOBS_BROKER_URL"]:
                raise RuntimeError("agentjobs was configured before the drill set its broker")
            desk_db.create(fresh=True)
            workers = demo.worker_processes(str(log_dir), concurrency=8, prefix="drill")
            for w in workers:
                w.launch()
            for w in workers:
                w.wait_ready()
            d.workers += workers
            live = {w.name.split("-")[1]: w for w in workers}  # haiku, sonnet, tools
            # Two kill rounds, each at a random point of the run (sessions ended so far),
            # each worker at its own random moment inside the round.
            marks = sorted([rng.randint(n // 10, n * 4 // 10), rng.randint(n // 2, n * 8 // 10)])

            def tick(ended: int) -> None:
                if not marks or ended < marks[0]:
                    return
                marks.pop(0)
                for role in rng.sample(sorted(live), len(live)):
                    time.sleep(rng.uniform(0, 0.4))
                    old = live[role]
                    pid = old.proc.pid if old.proc else -1
                    old.kill()
                    kills.append({"role": role, "pid": pid, "at": time.time(), "ended": ended})
                    new = demo.worker_processes(str(log_dir), 8, f"drill{len(kills)}")
                    fresh = {w.name.split("-")[1]: w for w in new}[role]
                    fresh.launch()
                    d.workers.append(fresh)
                    live[role] = fresh
                for w in live.values():
                    w.wait_ready()

            # A session not ended after this long is reported as stuck (with where its
            # record stands), not waited for.
            run = demo.run_sessions(
                n, timeout=stuck_s, tag=f"drill{seed}", on_tick=tick, keep_going=True
            )
            sim.flush_log()
            return _account_sessions(demo, desk_db, run, sim, sim_log, kills, log_dir, json)
    finally:
        sim.stop()


def _account_sessions(
    demo: Any,
    desk_db: Any,
    run: dict[str, Any],
    sim: Any,
    sim_log: Path,
    kills: list[dict[str, Any]],
    log_dir: Path,
    json: Any,
) -> dict[str, Any]:
    import sqlite3
    from collections import Counter

    from agentjobs.agents.stores import session_store

    store = session_store()
    records = [store.load(sid) for sid in run["kinds"]]
    status = Counter(r["status"] for r in records)
    steps = sum(len(r["steps"]) for r in records)
    calls = [c for r in records for c in r["tool_calls"]]
    keyed = {c["idempotency_key"]: c for c in calls if not c["name"].startswith("transfer_to_")}
    stats = sim.stats(hashes=True)
    ok_by_hash = stats["ok_by_hash"]
    # Model calls. Each step's request is distinct, so a request hash answered twice is
    # a call made again. Which step it was: the log line of the answer the record kept
    # (same model and usage, answered before the step's checkpoint). A repeat of a
    # completed step would be a request begun after that checkpoint.
    lines = [json.loads(x) for x in sim_log.read_text().splitlines()]
    ok_lines = [e for e in lines if e.get("status") == 200 and e.get("path") == "/v1/messages"]
    by_hash: dict[str, list[dict[str, Any]]] = {}
    for e in ok_lines:
        by_hash.setdefault(e["hash"], []).append(e)
    fields = ("input_tokens", "output_tokens", "cache_creation_input_tokens",
              "cache_read_input_tokens")  # fmt: skip
    mapped = after_checkpoint = 0
    per_step: Counter[int] = Counter()
    for rec in records:
        for st in rec["steps"]:
            usage, end = st.get("usage") or {}, float(st.get("ended_at") or 0)
            cands = [
                e for e in ok_lines
                if e["model"] == st.get("model") and e["ts"] <= end + 0.05
                and all(int(e.get(f, 0)) == int(usage.get(f, 0)) for f in fields)
            ]  # fmt: skip
            if not cands:
                continue
            mapped += 1
            h = max(cands, key=lambda e: e["ts"])["hash"]
            answers = by_hash[h]
            per_step[len(answers)] += 1
            after_checkpoint += sum(
                1 for e in answers if e["ts"] - e["latency_ms"] / 1000 > end + 0.05
            )
    # Tool runs: attempts per key; a run again after the call's result was checkpointed
    # would be an attempt that starts after the recorded end of the call.
    conn = sqlite3.connect(desk_db.path())
    attempts = conn.execute("SELECT idempotency_key, pid, at FROM attempts").fetchall()
    by_key: dict[str, list[tuple[int, float]]] = {}
    for key, pid, at in attempts:
        by_key.setdefault(key, []).append((pid, at))
    killed = {k["pid"] for k in kills}
    twice = {k: v for k, v in by_key.items() if len(v) > 1}
    first_in_killed = sum(1 for v in twice.values() if min(v, key=lambda x: x[1])[0] in killed)
    after_done = sum(
        1
        for key, runs in by_key.items()
        if key in keyed
        and keyed[key].get("ended_at")
        and sorted(at for _, at in runs)[-1] > float(keyed[key]["ended_at"])
    )
    effects = {
        "changes": conn.execute(
            "SELECT COUNT(*), COUNT(DISTINCT idempotency_key) FROM changes"
        ).fetchone(),
        "refunds": conn.execute(
            "SELECT COUNT(*), COUNT(DISTINCT idempotency_key) FROM refunds"
        ).fetchone(),
    }
    answered_as_repeat = sum(
        1
        for c in keyed.values()
        if isinstance(c.get("output"), dict) and c["output"].get("repeated")
    )
    ok_writes = Counter(
        c["name"]
        for c in keyed.values()
        if c["name"] in ("change_booking_nights", "refund_booking") and not c["is_error"]
    )
    conn.close()
    return {
        "sessions": len(records),
        "status": dict(status),
        "steps": steps,
        "tool_calls": len(calls),
        "kills": kills,
        "model_calls_ok": stats["ok"],
        "model_calls_repeated": sum(k - 1 for k in ok_by_hash.values() if k > 1),
        "steps_mapped_to_calls": mapped,
        "model_calls_per_step": dict(sorted(per_step.items())),
        "model_calls_after_step_checkpointed": after_checkpoint,
        "tool_keys": len(keyed),
        "tool_runs": len(attempts),
        "tool_keys_run_twice": len(twice),
        "tool_repeats_first_run_in_killed_worker": first_in_killed,
        "tool_runs_after_done": after_done,
        "writes_answered_as_repeat": answered_as_repeat,
        "write_rows": {k: list(v) for k, v in effects.items()},
        "writes_ok_in_records": dict(ok_writes),
        "approved": len(run["approved"]),
        "session_seconds": _durations(records),
        "unfinished": [_where(r) for r in records if r["session_id"] in run["unfinished"]],
        # Sessions the session sweep (agents/sweep.py) resumed: lost messages found.
        "resumed": sum(1 for r in records if r.get("resumes")),
        "elapsed_s": round(run["elapsed_s"], 1),
        "log_dir": str(log_dir),
    }


def _where(rec: dict[str, Any]) -> dict[str, Any]:
    """Where a session that did not end stands: its last step, the step due, its calls."""
    return {
        "session_id": rec["session_id"],
        "status": rec["status"],
        "agent": rec["agent"],
        "turn": rec.get("turn"),
        "next_step": rec.get("next_step"),
        "steps": [(s["n"], s.get("status")) for s in rec["steps"]],
        "calls": [(c["step"], c["name"], c["status"]) for c in rec["tool_calls"]],
        "idle_s": round(time.time() - float(rec["updated_at"]), 1),
    }


def _durations(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Session wall times, and the longest wait between two events of the slowest one
    (a step or tool call begun or ended): where a session stalled, if it did."""
    spans = sorted(
        (float(r["ended_at"] or r["updated_at"]) - float(r["created_at"]), r) for r in records
    )
    slowest = spans[-1][1]
    events = sorted(
        (float(t), f"{kind} {e.get('n', e.get('name'))} {edge}")
        for kind, items in (("step", slowest["steps"]), ("tool", slowest["tool_calls"]))
        for e in items
        for edge in ("started_at", "ended_at")
        if (t := e.get(edge))
    )
    gap = max(
        ((b[0] - a[0], f"{a[1]} -> {b[1]}") for a, b in itertools.pairwise(events)),
        default=(0.0, ""),
    )
    return {
        "p50": round(spans[len(spans) // 2][0], 1),
        "max": round(spans[-1][0], 1),
        "over_60s": sum(1 for d, _ in spans if d > 60),
        "slowest": slowest["session_id"],
        "slowest_gap_s": round(gap[0], 1),
        "slowest_gap": gap[1],
    }


def render_sessions(command: str, r: dict[str, Any]) -> str:
    kills = ", ".join(f"{k['role']} after {k['ended']} ended" for k in r["kills"])
    status = ", ".join(f"{k} {v}" for k, v in sorted(r["status"].items()))
    ch, rf = r["write_rows"]["changes"], r["write_rows"]["refunds"]
    ok = r["writes_ok_in_records"]
    rows = [
        ("sessions (examples/agent_app: a router, 2 specialists, 4 tools)", r["sessions"]),
        ("sessions by status", status),
        (f"kill -9 ({len(r['kills'])}: each of the 3 workers twice, replaced at once)", kills),
        ("steps / tool calls in the records", f"{r['steps']} / {r['tool_calls']}"),
        ("model calls answered (simulator 200s)", r["model_calls_ok"]),
        ("model calls made again (one request answered twice)", r["model_calls_repeated"]),
        (
            "steps found in the simulator's log / answers per step",
            f"{r['steps_mapped_to_calls']} / "
            + ", ".join(f"{k} answer(s): {v} steps" for k, v in r["model_calls_per_step"].items()),
        ),
        (
            "model calls begun after their step was checkpointed",
            r["model_calls_after_step_checkpointed"],
        ),
        ("tool calls with an idempotency key / tool runs", f"{r['tool_keys']} / {r['tool_runs']}"),
        (
            "tool calls run twice (of them, first run in a killed worker)",
            f"{r['tool_keys_run_twice']} ({r['tool_repeats_first_run_in_killed_worker']})",
        ),
        ("tool runs after the call's result was checkpointed", r["tool_runs_after_done"]),
        ("write rows / distinct keys: changes, refunds", f"{ch[0]}/{ch[1]}, {rf[0]}/{rf[1]}"),
        (
            "writes run again that found their row (answered `repeated`)",
            r["writes_answered_as_repeat"],
        ),
        (
            "successful writes in the records: changes, refunds",
            f"{ok.get('change_booking_nights', 0)}, {ok.get('refund_booking', 0)}",
        ),
        ("refunds approved by the drill", r["approved"]),
        ("sessions resumed by the session sweep (a lost message)", r["resumed"]),
        (
            "sessions not ended after the drill's wait (where each stands)",
            "; ".join(
                f"{u['session_id']}: {u['status']}, step {u['turn']} done, step"
                f" {u['next_step']} due, idle {u['idle_s']} s"
                for u in r["unfinished"]
            )
            or "0",
        ),
        (
            "session wall time p50 / max (sessions over 60 s)",
            f"{r['session_seconds']['p50']} s / {r['session_seconds']['max']} s"
            f" ({r['session_seconds']['over_60s']})",
        ),
    ]
    head = [
        SESSIONS_DOC_START,
        "## Agent sessions under kill -9",
        "",
        SESSIONS_ABOUT,
        "",
        f"Command: `{command}`  ",
        f"Date: {datetime.date.today()}; machine: {machine()}; run time {r['elapsed_s']:.0f} s.",
        "",
        "| figure | value |",
        "|---|---|",
    ]
    return "\n".join([*head, *(f"| {k} | {v} |" for k, v in rows), SESSIONS_DOC_END])


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
    parser.add_argument(
        "--sessions", type=int, default=0, help="only the agent-session crash drill, N sessions"
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the kill moments")
    args = parser.parse_args()
    t0 = time.monotonic()
    if args.sessions:
        result = sessions_drill(args.sessions, args.seed)
        command = ".venv/bin/python bench/reliability.py " + " ".join(sys.argv[1:])
        section = render_sessions(command.strip(), result)
        print(section)
        print(json.dumps({k: v for k, v in result.items() if k != "kills"}, indent=1))
        if args.write:
            text = DOC.read_text() if DOC.exists() else ""
            if SESSIONS_DOC_START in text:
                span = re.escape(SESSIONS_DOC_START) + ".*?" + re.escape(SESSIONS_DOC_END)
                text = re.sub(span, lambda _: section, text, flags=re.S)
            else:
                text += "\n" + section + "\n"
            DOC.write_text(text)
        return
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
