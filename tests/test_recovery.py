"""After a failure: a state store that is down hands the message back to the broker."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from celery.exceptions import Reject

from agentjobs.contrib.testing import free_port
from agentjobs.reliability import idempotency, recovery
from agentjobs.settings import reset_settings
from agentjobs.worker.tasks import complete


@pytest.fixture
def store_down(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Nothing listens at the state store's address; no retrying of its errors."""
    monkeypatch.setenv("AGENTJOBS_REDIS_URL", f"redis://127.0.0.1:{free_port()}/1")
    monkeypatch.setenv("AGENTJOBS_STATE_RETRY_S", "0")
    reset_settings()
    complete.push_request(id="t-store-down", hostname="w@test", delivery_info={})
    yield
    complete.pop_request()
    monkeypatch.undo()
    reset_settings()


def _requeued(exc: BaseException) -> str:
    assert isinstance(exc, Reject) and exc.requeue
    return str(exc.reason)


def test_every_step_of_recovery_requeues_when_the_state_store_is_down(store_down: None) -> None:
    with pytest.raises(Reject) as claimed:  # before the call: the key cannot be claimed
        recovery.claim(complete, {"prompt": "hi"})
    assert "state store unreachable, key not claimed" in _requeued(claimed.value)

    c = idempotency.Claim("k-down", "token", "claimed", task_id="t-store-down")
    with pytest.raises(Reject) as stored:  # after a paid answer: it cannot be stored
        recovery.succeeded(c, {"text": "paid for"})
    assert "state store unreachable, result not stored" in _requeued(stored.value)

    # after a failure: neither the retry nor the dead letter can be recorded
    out = recovery.failed(complete, {"prompt": "hi"}, c, RuntimeError("boom"), time.time())
    reason = _requeued(out)
    assert "state store unreachable" in reason and "RuntimeError('boom')" in reason
