"""Submit ledger + sweeper: a message the Redis broker lost is found and sent again.

The lost state is made exactly: a task is published, then its message is deleted from
the queue list before any worker sees it (what a worker killed between BRPOP and its
unacked record leaves behind). Real Redis, real in-process worker, the simulator.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

import pytest
import redis
from click.testing import CliRunner
from conftest import in_process_worker

from agentjobs import app
from agentjobs.cli import main
from agentjobs.contrib.testing import wait_for
from agentjobs.errors import DeadLetteredError
from agentjobs.reliability import ledger, sweeper
from agentjobs.settings import reset_settings
from agentjobs.worker.tasks import complete
from harness.drill import sim_hash

QUEUE = "claude.haiku"


@pytest.fixture
def broker(redis_server: Any, state_redis: redis.Redis, purge_queues: None) -> Any:
    client = redis.Redis.from_url(f"{redis_server.url}/0")
    client.delete("unacked", "unacked_index")
    yield client
    client.close()


def lose(broker: Any, task_id: str) -> None:
    """Delete ``task_id``'s message from its queue: the state kombu's BRPOP window leaves."""
    for raw in broker.lrange(QUEUE, 0, -1):
        if json.loads(raw)["headers"]["id"] == task_id:
            assert broker.lrem(QUEUE, 1, raw) == 1
            return
    raise AssertionError(f"{task_id} not queued")


def sweep(confirm_s: float = 0.05) -> sweeper.Report:
    """A sweep that judges every entry (grace 0); waits out a worker's sweep in progress."""
    return sweeper.sweep(app, grace_s=0, confirm_s=confirm_s, lock_wait_s=10)


def calls(sim: Any, prompt: str) -> int:
    return int(sim.stats(hashes=True)["ok_by_hash"].get(sim_hash(prompt), 0))


def test_submit_records_and_stamps(broker: Any) -> None:
    res = complete.delay(prompt="ledger entry", idempotency_key="k-entry")
    e = ledger.get([res.id], with_kwargs=True)[res.id]
    assert (e.queue, e.key, e.kwargs) == (QUEUE, "k-entry", json.loads(json.dumps(e.kwargs)))
    assert e.kwargs["prompt"] == "ledger entry" and ledger.get([res.id])[res.id].kwargs is None
    msg = json.loads(broker.lindex(QUEUE, -1))
    assert msg["headers"]["id"] == res.id
    assert msg["headers"][sweeper.SENT_AT] <= e.sent_at  # recorded after the publish


def test_lost_message_is_resent_and_called_once(broker: Any, fresh_sim: Any) -> None:
    prompt = f"lost {uuid.uuid4()}"
    res = complete.delay(prompt=prompt)
    lose(broker, res.id)
    dry = CliRunner().invoke(
        main, ["recover", "--dry-run", "--grace", "0", "--confirm", "0.1", "--json"]
    )
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.output)["lost"] == [res.id] and broker.llen(QUEUE) == 0
    out = CliRunner().invoke(main, ["recover", "--grace", "0", "--confirm", "0.1", "--json"])
    assert out.exit_code == 0, out.output
    report = json.loads(out.output)
    assert report["resent"] == [res.id] and report["in_ledger"] == 1
    assert ledger.stats()["resent"] == 1
    with in_process_worker(concurrency=2):
        assert res.get(timeout=20)["text"]
    assert calls(fresh_sim, prompt) == 1
    assert res.id not in ledger.ids()  # the outcome removed it


def test_backlog_is_not_resent_but_a_lost_one_in_it_is(
    broker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No worker: everything waits in the queue, whatever its age.
    monkeypatch.setattr(sweeper, "ORDER_SLACK_S", 0.0)  # the test's producer is one host
    first = complete.delay(prompt="backlog 0")
    rest = [complete.delay(prompt=f"backlog {i}") for i in range(1, 4)]
    report = sweep()
    assert (report.checked, report.queued, report.lost) == (4, 4, [])
    lose(broker, first.id)  # the oldest: popped, then lost
    report = sweep()
    assert report.resent == [first.id] and report.queued == 3
    assert broker.llen(QUEUE) == 4  # the three others were left alone
    # A task lost in the middle of a backlog is found once the queue has moved past it.
    middle = rest[1]
    lose(broker, middle.id)
    assert sweep().lost == []  # rest[0] still older
    broker.rpop(QUEUE)  # rest[0] consumed (and held elsewhere: drop its entry)
    ledger.remove([rest[0].id])
    assert sweep().resent == [middle.id]


def test_running_and_countdown_tasks_are_not_resent(broker: Any, fresh_sim: Any) -> None:
    with in_process_worker(concurrency=4):
        slow = complete.delay(prompt="[[sim:latency_ms=4000]] in flight")
        later = complete.apply_async(kwargs={"prompt": "countdown"}, countdown=6)
        # The call holds a lease; the countdown task waits unacked in the worker (ETA).
        wait_for(lambda: broker.hlen("unacked") == 2, timeout=10, what="both held unacked")
        wait_for(lambda: fresh_sim.stats()["messages"] >= 1, timeout=10, what="the call")
        report = sweep(confirm_s=0.2)
        assert (report.checked, report.leased, report.unacked, report.lost) == (2, 1, 1, [])
        assert slow.get(timeout=20)["text"] and later.get(timeout=20)["text"]
    assert fresh_sim.stats()["messages"] == 2
    assert ledger.size() == 0


def test_finished_dead_lettered_and_done_keys_leave_the_ledger(broker: Any, fresh_sim: Any) -> None:
    with in_process_worker(concurrency=2):
        ok = complete.delay(prompt="finishes", idempotency_key="k-fin")
        dead = complete.delay(prompt="[[sim:error=400]] dies")
        ok.get(timeout=20)
        with pytest.raises(DeadLetteredError):
            dead.get(timeout=20)
        again = complete.delay(prompt="finishes", idempotency_key="k-fin")  # done: no call
        again.get(timeout=20)
    assert not {ok.id, dead.id, again.id} & ledger.ids()
    assert ledger.size() == 0 and fresh_sim.stats()["messages"] == 2


def test_state_store_down_at_submit_still_submits(
    broker: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from agentjobs.contrib.testing import free_port

    monkeypatch.setenv("AGENTJOBS_REDIS_URL", f"redis://127.0.0.1:{free_port()}/1")
    reset_settings()
    try:
        with caplog.at_level(logging.WARNING, logger="agentjobs.reliability.ledger"):
            res = complete.delay(prompt="state store down")
        assert json.loads(broker.lindex(QUEUE, -1))["headers"]["id"] == res.id
        assert "submit ledger could not record it" in caplog.text
    finally:
        monkeypatch.undo()
        reset_settings()
    assert ledger.size() == 0


def test_ledger_off_and_rabbitmq(broker: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTJOBS_LEDGER_ENABLED", "false")
    reset_settings()
    try:
        complete.delay(prompt="not recorded")
        assert ledger.size() == 0
    finally:
        monkeypatch.undo()
        reset_settings()
    assert ledger.is_redis_broker("rediss://h:6380/0") and ledger.is_redis_broker(["redis://x"])
    assert not ledger.is_redis_broker("amqp://guest@localhost//")

    class Amqp:
        class conf:
            broker_url = "amqp://guest:guest@127.0.0.1:5672//"

    assert sweeper.sweep(Amqp, grace_s=0).skipped is not None
    assert not ledger.enabled(Amqp)


@pytest.mark.slow
def test_a_worker_process_sweeps_and_resends(fresh_sim: Any) -> None:
    """The wiring: ``agentjobs worker`` starts its sweeper at worker_ready."""
    from harness.drill import Drill

    with Drill(fresh_sim, env={"AGENTJOBS_LEDGER_GRACE_S": "0"}) as d:
        prompt = f"lost, found by a worker {uuid.uuid4()}"
        res = d.submit(prompt)  # to claude.haiku, which nobody consumes yet
        broker = redis.Redis.from_url(d.env["AGENTJOBS_BROKER_URL"])
        assert broker.rpop(QUEUE) is not None  # popped, then lost
        d.worker("sonnet", concurrency=1)  # sweeps every queue's entries
        wait_for(lambda: ledger.stats().get("resent") == 1, timeout=15, what="a re-send")
        assert broker.llen(QUEUE) == 1
        d.worker("haiku", concurrency=1)
        assert res.get(timeout=15)["text"]
        assert d.calls_by_task()[res.id] == 1
        wait_for(lambda: ledger.size() == 0, timeout=5, what="the entry removed")
