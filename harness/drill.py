"""Fault drills: a batch of tasks against subprocess workers, with every task accounted for.

Used by ``tests/test_reliability.py`` and ``bench/reliability.py``. A ``Drill`` owns
a private Redis (broker DB 0, state DB 1, results DB 2; ``persist=True`` for restart
drills), a simulator on a thread, and ``agentjobs worker`` subprocesses; it submits
through a Celery app of its own, so it never touches another test's queues.

The simulator's per-hash counters are the count of real calls; ``sim_hash`` computes
a request's hash the way the simulator does, so calls can be counted per task.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import uuid
from dataclasses import dataclass, field
from typing import Any

import redis
from celery import Celery
from celery.states import READY_STATES

from agentjobs import catalog
from agentjobs.contrib.testing import RedisServer, WorkerProcess, wait_for
from agentjobs.settings import get_settings, reset_settings

TASK = "agentjobs.complete"


def sim_hash(prompt: str, model: str = "haiku", max_tokens: int | None = None) -> str:
    """The simulator's hash of a ``complete(prompt=...)`` request (see simulator/server.py)."""
    mt = max_tokens if max_tokens is not None else get_settings().default_max_tokens
    body = [catalog.resolve(model).id, None, [{"role": "user", "content": prompt}], mt]
    body += [None, None, None]
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class Accounting:
    """Where every submitted task ended."""

    submitted: int = 0
    succeeded: list[str] = field(default_factory=list)
    dead_lettered: list[str] = field(default_factory=list)
    #: Not ended yet, but in the submit ledger: queued, running, or lost and to be re-sent.
    in_flight: list[str] = field(default_factory=list)
    other: dict[str, str] = field(default_factory=dict)  # task id -> state/error: a bug
    #: Tasks the ledger sweeper found lost by the broker and sent again (all drills).
    resent: int = 0

    @property
    def balanced(self) -> bool:
        ended = len(self.succeeded) + len(self.dead_lettered) + len(self.in_flight)
        return not self.other and self.submitted == ended

    @property
    def ended(self) -> bool:
        """submitted = succeeded + dead-lettered: every task ended, none still in flight."""
        return self.balanced and not self.in_flight

    def summary(self) -> dict[str, Any]:
        return {
            "submitted": self.submitted,
            "succeeded": len(self.succeeded),
            "dead_lettered": len(self.dead_lettered),
            "in_flight": len(self.in_flight),
            "unaccounted": len(self.other),
            "resent": self.resent,
        }


class Drill:
    """A private Redis + simulator + subprocess workers, and a producer bound to them."""

    def __init__(
        self,
        sim: Any,
        *,
        persist: bool = False,
        env: dict[str, str] | None = None,
        log_dir: str | None = None,
    ) -> None:
        self.sim = sim
        self.redis = RedisServer(persist=persist).start()
        self.log_dir = log_dir or tempfile.mkdtemp(prefix="agentjobs-drill-")
        url = self.redis.url
        self.env = {
            # The workers' ledger sweepers look every second at entries 3 s old, so a
            # message the broker loses is sent again within seconds (drill scale).
            "AGENTJOBS_LEDGER_GRACE_S": "3",
            "AGENTJOBS_LEDGER_SWEEP_INTERVAL_S": "1",
            "AGENTJOBS_BROKER_URL": f"{url}/0",
            "AGENTJOBS_REDIS_URL": f"{url}/1",
            "AGENTJOBS_RESULT_BACKEND": f"{url}/2",
            "ANTHROPIC_BASE_URL": sim.base_url,
            "ANTHROPIC_API_KEY": "sk-ant-drill",
            **(env or {}),
        }
        self.workers: list[WorkerProcess] = []
        self._saved = {k: os.environ.get(k) for k in self.env}
        os.environ.update(self.env)  # the state store read by this process (dead letters)
        reset_settings()
        self.app = Celery("agentjobs-drill")
        self.app.config_from_object("agentjobs.worker.config")
        self.app.conf.update(
            broker_url=self.env["AGENTJOBS_BROKER_URL"],
            result_backend=self.env["AGENTJOBS_RESULT_BACKEND"],
            broker_connection_retry_on_startup=False,
        )
        self.results: list[Any] = []
        self.prompts: dict[str, str] = {}  # task id -> prompt

    # -- processes ---------------------------------------------------------------------

    def worker(self, family: str = "haiku", concurrency: int = 8) -> WorkerProcess:
        w = WorkerProcess(
            family,
            self.env,
            args=("-c", str(concurrency)),
            log_dir=self.log_dir,
            name=f"{family}-{uuid.uuid4().hex[:6]}",
        )
        self.workers.append(w.start())
        return w

    def state(self) -> redis.Redis:
        return redis.Redis.from_url(self.env["AGENTJOBS_REDIS_URL"])

    def calling(self, w: WorkerProcess) -> set[str]:
        """Keys whose lease this worker holds: its calls in flight."""
        from agentjobs.reliability import idempotency

        held = idempotency.held_leases()
        return {k for k, token in held.items() if token.startswith(f"{w.name}@")}

    def kill(self, w: WorkerProcess) -> dict[str, Any]:
        """SIGKILL, then note what the worker held (its in-flight keys: a dead holder's
        lease outlives it by up to a lease length), which tasks were done and the calls
        so far. (A SIGSTOP first would widen kombu's BRPOP window: a stopped worker's
        pending BRPOP is still served, and the message dies with it; docs/reliability.md.)
        """
        from agentjobs.reliability import idempotency

        assert w.proc is not None
        w.kill()
        in_flight = self.calling(w)
        done = {tid for tid in self.prompts if idempotency.outcome(tid) is not None}
        calls = self.calls_by_task()
        return {"in_flight": in_flight, "done": done, "calls": calls}

    # -- the batch ---------------------------------------------------------------------

    def submit(self, prompt: str, **kwargs: Any) -> Any:
        """Publish, then record in the submit ledger (what ``complete.apply_async`` does)."""
        from agentjobs.reliability import ledger

        task_id = str(uuid.uuid4())
        body = {"prompt": prompt, **kwargs}
        res = self.app.send_task(TASK, kwargs=body, queue="claude.haiku", task_id=task_id)
        ledger.record(task_id, body, "claude.haiku")
        self.results.append(res)
        self.prompts[task_id] = prompt
        return res

    def all_taken(self) -> bool:
        """Is every submitted task either calling (its lease held) or finished, the queue empty?"""
        from agentjobs.reliability import idempotency

        broker = redis.Redis.from_url(self.env["AGENTJOBS_BROKER_URL"])
        if broker.llen("claude.haiku"):
            return False
        held = idempotency.held_leases()
        return all(tid in held or idempotency.outcome(tid) for tid in self.prompts)

    def held(self) -> set[str]:
        """Task ids of this drill whose key is leased: calls running now."""
        from agentjobs.reliability import idempotency

        return set(idempotency.held_leases()) & set(self.prompts)

    def outcome(self, task_id: str) -> dict[str, Any] | None:
        from agentjobs.reliability import idempotency

        return idempotency.outcome(task_id)

    def finished(self) -> int:
        from agentjobs.reliability import idempotency

        return sum(1 for tid in self.prompts if idempotency.outcome(tid) is not None)

    def account(self, timeout: float = 120.0) -> Accounting:
        """Wait until every task ended (or ``timeout``), and say where each one is."""

        def all_ready() -> bool:
            return all(r.state in ("SUCCESS", "FAILURE") for r in self.results)

        from agentjobs.reliability import ledger

        with contextlib.suppress(TimeoutError):
            wait_for(all_ready, timeout=timeout, interval=0.2, what="every task to end")
        in_ledger = ledger.ids()
        acc = Accounting(submitted=len(self.results), resent=ledger.stats().get("resent", 0))
        for r in self.results:
            state = r.state
            if state == "SUCCESS":
                acc.succeeded.append(r.id)
            elif state == "FAILURE" and type(r.result).__name__ == "DeadLetteredError":
                acc.dead_lettered.append(r.id)
            elif state not in READY_STATES and r.id in in_ledger:
                # Not ended yet. A FAILURE that is not a dead letter is never in flight,
                # even while its ledger entry is left: Celery gave up on it (a bug).
                acc.in_flight.append(r.id)
            else:
                acc.other[r.id] = f"{state}: {r.result!r}"[:200]
        return acc

    def diagnose(self, task_id: str) -> dict[str, Any]:
        """Where a task is: its key's outcome and lease, its message, what the workers logged."""
        from agentjobs.reliability import idempotency

        broker = redis.Redis.from_url(self.env["AGENTJOBS_BROKER_URL"])
        queued = any(task_id.encode() in m for m in broker.lrange("claude.haiku", 0, -1))
        tags = [t for t, m in broker.hgetall("unacked").items() if task_id.encode() in m]
        unacked = bool(tags)
        index = [broker.zscore("unacked_index", t) for t in tags]
        lines = [line for w in self.workers for line in w.log().splitlines() if task_id in line]
        from agentjobs.reliability import ledger

        return {
            "ledger": ledger.get([task_id]).get(task_id),
            "outcome": idempotency.outcome(task_id),
            "lease": idempotency.held_leases().get(task_id),
            "queued": queued,
            "unacked": unacked,
            "unacked_index": index,
            "unacked_mutex_ttl": broker.ttl("unacked_mutex"),
            "log": lines[-10:],
        }

    def calls_by_task(self) -> dict[str, int]:
        """Real 200 answers per task (the simulator's per-hash counters)."""
        ok = self.sim.stats(hashes=True)["ok_by_hash"]
        return {tid: int(ok.get(sim_hash(p), 0)) for tid, p in self.prompts.items()}

    def attempts_by_task(self) -> dict[str, int]:
        calls = self.sim.stats(hashes=True)["calls_by_hash"]
        return {tid: int(calls.get(sim_hash(p), 0)) for tid, p in self.prompts.items()}

    def received(self) -> int:
        """Deliveries of tasks to workers (each worker log's ``Task ... received``)."""
        return sum(w.log().count("] received") for w in self.workers)

    def close(self) -> None:
        for w in self.workers:
            w.stop(timeout=20)
        self.app.close()
        self.redis.cleanup()
        for k, v in self._saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        reset_settings()

    def __enter__(self) -> Drill:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
