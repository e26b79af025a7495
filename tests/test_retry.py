"""Failure classification and retry policies: pure units, no sleeping, no network."""

from __future__ import annotations

import anthropic
import pytest
import redis
import tenacity

try:  # anthropic >= 2 is built on httpx2
    import httpx2 as httpx
except ImportError:  # pragma: no cover
    import httpx  # type: ignore[no-redef]

from agentjobs.errors import (
    BudgetDeferredError,
    BudgetExceededError,
    RateLimitedError,
    RequestError,
    SpendLimitError,
)
from agentjobs.reliability import retry
from agentjobs.reliability.retry import Action, History, Policy, classify, decide
from agentjobs.settings import Settings

_REQ = httpx.Request("POST", "https://api.anthropic.com/v1/messages")


def api_error(status: int, body: dict | None = None, headers: dict | None = None) -> Exception:
    """The exception the real SDK raises for this HTTP answer."""
    body = body or {"type": "error", "error": {"type": "x", "message": f"status {status}"}}
    resp = httpx.Response(status, json=body, headers=headers or {}, request=_REQ)
    client = anthropic.Anthropic(api_key="k", max_retries=0)
    return client._make_status_error_from_response(resp)


@pytest.mark.parametrize(
    ("status", "kind", "action"),
    [
        (400, "bad_request", Action.DEAD_LETTER),
        (401, "auth", Action.DEAD_LETTER),
        (403, "permission", Action.DEAD_LETTER),
        (404, "not_found", Action.DEAD_LETTER),
        (413, "too_large", Action.DEAD_LETTER),
        (429, "rate_limited", Action.WAIT),
        (500, "server_error", Action.BACKOFF),
        (502, "server_error", Action.BACKOFF),
        (503, "server_error", Action.BACKOFF),
        (504, "timeout", Action.BACKOFF),
        (529, "overloaded", Action.BACKOFF),
    ],
)
def test_status_codes_map_to_the_table(status: int, kind: str, action: Action) -> None:
    failure = classify(api_error(status))
    assert (failure.kind, failure.action, failure.status) == (kind, action, status)
    assert failure.message == f"status {status}"


def test_spend_limit_429_is_told_apart_from_a_rate_limit() -> None:
    body = {
        "type": "error",
        "error": {
            "type": "rate_limit_error",
            "message": "You have reached your specified API usage limits.",
            "details": {"error_code": "enforced_spend_limit_reached"},
        },
    }
    failure = classify(api_error(429, body))
    assert failure.kind == "spend_limit"
    assert failure.action is Action.PAUSE
    d = decide(failure, Policy(), History(), 0.0, max_countdown_s=100)
    assert (d.retry, d.pause) == (False, True)


def test_retry_after_header_is_read_from_a_429() -> None:
    failure = classify(api_error(429, headers={"retry-after": "7"}))
    assert failure.retry_after_s == 7.0
    d = decide(failure, Policy(max_attempts=1), History(errors=0), 0.0, max_countdown_s=100)
    assert d.retry and d.countdown == 7.0
    assert not d.counted  # a 429 does not use up the error budget, even with max_attempts=1


def test_retry_after_http_date() -> None:
    assert (
        retry.retry_after({"retry-after": "Thu, 01 Jan 2026 00:00:10 GMT"}, now=1767225600.0) == 10
    )
    assert retry.retry_after({"retry-after": "soon"}) is None
    assert retry.retry_after({}) is None


def test_connection_errors_and_timeouts() -> None:
    assert classify(anthropic.APIConnectionError(request=_REQ)).kind == "connection"
    assert classify(anthropic.APITimeoutError(request=_REQ)).kind == "timeout"
    assert classify(redis.ConnectionError("down")).action is Action.BACKOFF


def test_our_own_errors() -> None:
    assert classify(RequestError("bad")).action is Action.DEAD_LETTER
    assert classify(BudgetExceededError("over")).kind == "budget"
    limited = classify(RateLimitedError("wait", retry_after_s=3.0))
    assert (limited.action, limited.retry_after_s) == (Action.WAIT, 3.0)
    assert classify(BudgetDeferredError("later", retry_after_s=60)).action is Action.WAIT
    assert classify(SpendLimitError("cap")).action is Action.PAUSE
    assert classify(ZeroDivisionError("bug")).action is Action.DEAD_LETTER  # no retry of bugs


def test_every_kind_has_an_action() -> None:
    kinds = set(retry._STATUS_KINDS.values()) | {"connection", "timeout", "state_store"}
    assert kinds <= set(retry.ACTIONS)


FIXED = tenacity.wait_exponential(multiplier=1, max=60)  # deterministic: 1, 2, 4, ...


def test_backoff_stops_after_max_attempts() -> None:
    policy = Policy(max_attempts=3, backoff_base_s=1, backoff_max_s=60, max_total_s=1e9)
    f = classify(api_error(529))
    d1 = decide(f, policy, History(errors=0, first_at=0), 0, max_countdown_s=1e9, wait=FIXED)
    d2 = decide(f, policy, History(errors=1, first_at=0), 0, max_countdown_s=1e9, wait=FIXED)
    d3 = decide(f, policy, History(errors=2, first_at=0), 0, max_countdown_s=1e9, wait=FIXED)
    assert (d1.retry, d1.countdown) == (True, 1.0)
    assert (d2.retry, d2.countdown) == (True, 2.0)
    assert not d3.retry and "3 failed attempts" in d3.reason


def test_full_jitter_stays_within_the_exponential_ceiling() -> None:
    policy = Policy(backoff_base_s=2, backoff_max_s=10)
    for n in range(1, 8):
        ceiling = min(10, 2 * 2 ** (n - 1))
        draws = [retry.backoff(policy, n) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in draws)
        assert max(draws) > ceiling / 2  # actually jittered over the range


def test_total_time_bounds_error_retries() -> None:
    policy = Policy(max_attempts=100, backoff_base_s=10, backoff_max_s=10, max_total_s=30)
    f = classify(api_error(500))
    ten = tenacity.wait_fixed(10)
    early = decide(f, policy, History(errors=1, first_at=0), 15, max_countdown_s=1e9, wait=ten)
    late = decide(f, policy, History(errors=1, first_at=0), 25, max_countdown_s=1e9, wait=ten)
    assert early.retry and not late.retry
    assert "max_total_s" in late.reason


def test_countdown_is_capped_below_the_visibility_timeout() -> None:
    policy = Policy(backoff_base_s=100, backoff_max_s=1000, max_total_s=1e9)
    long = tenacity.wait_fixed(1000)
    d = decide(classify(api_error(529)), policy, History(), 0, max_countdown_s=150, wait=long)
    assert d.countdown == 150
    r = classify(api_error(429, headers={"retry-after": "900"}))
    assert decide(r, policy, History(), 0, max_countdown_s=150).countdown == 150


def test_rate_limit_waits_have_their_own_time_bound() -> None:
    policy = Policy(max_total_s=10, rate_limit_max_total_s=100)
    r = classify(api_error(429, headers={"retry-after": "5"}))
    assert decide(r, policy, History(first_at=0), 50, max_countdown_s=1e9).retry
    late = decide(r, policy, History(first_at=0), 99, max_countdown_s=1e9)
    assert not late.retry and "rate limited" in late.reason


def test_permanent_errors_are_never_retried() -> None:
    for status in (400, 401, 403, 404, 413):
        d = decide(classify(api_error(status)), Policy(), History(), 0, max_countdown_s=100)
        assert not d.retry and not d.pause


def test_policies_per_queue_from_settings() -> None:
    s = Settings(
        retry_max_attempts=4,
        retry_backoff_base_s=0.5,
        retry_policies={"opus": {"max_attempts": 8, "backoff_max_s": 5}},
    )
    assert retry.policy_for("haiku", s) == Policy(max_attempts=4, backoff_base_s=0.5)
    opus = retry.policy_for("opus", s)
    assert (opus.max_attempts, opus.backoff_base_s, opus.backoff_max_s) == (8, 0.5, 5)


def test_policy_json_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTJOBS_RETRY_POLICIES", '{"sonnet": {"max_total_s": 42}}')
    assert retry.policy_for("sonnet", Settings()).max_total_s == 42
    monkeypatch.setenv("AGENTJOBS_RETRY_POLICIES", '{"sonnet": {"attempts": 3}}')
    with pytest.raises(ValueError, match="attempts"):
        retry.policy_for("sonnet", Settings())


def test_broker_and_shutdown_settings_follow_the_reliability_design() -> None:
    import celeryconfig
    from agentjobs.settings import get_settings

    s = get_settings()
    options = celeryconfig.broker_transport_options
    assert options["visibility_timeout"] == s.visibility_timeout_s == 300
    # Killed workers' messages are swept every tenth of the timeout (<= 10 s), not 100 s.
    assert options["unacked_restore_interval"] * options["unacked_restore_throttle"] <= 10
    # A sweeper killed inside a sweep holds its mutex a tenth of the timeout, not 300 s.
    assert 5 <= options["unacked_mutex_expire"] <= s.visibility_timeout_s // 10
    assert celeryconfig.task_acks_late and celeryconfig.task_reject_on_worker_lost
    assert celeryconfig.worker_prefetch_multiplier == 1
    assert celeryconfig.worker_soft_shutdown_timeout == s.soft_shutdown_s > 0
    assert celeryconfig.worker_enable_soft_shutdown_on_idle  # countdown retries handed back
    assert celeryconfig.worker_cancel_long_running_tasks_on_connection_loss is False
    # Every retry countdown stays below the timeout, so a waiting retry is not redelivered.
    assert s.retry_backoff_max_s < s.visibility_timeout_s / 2
    # A live task holds its message less than the timeout: call + idempotency wait.
    assert s.request_timeout_s + s.idempotency_wait_s + s.limiter_max_sleep_s < 300


def test_a_bad_retry_policy_is_refused_when_the_settings_load(monkeypatch):
    from agentjobs.errors import ConfigurationError
    from agentjobs.settings import get_settings, reset_settings

    for bad, why in [
        ('{"opus": {"max_atempts": 8}}', "max_atempts"),
        ('{"gpt": {}}', "unknown family"),
        ('{"haiku": {"max_attempts": 0}}', "greater than or equal to 1"),
    ]:
        monkeypatch.setenv("AGENTJOBS_RETRY_POLICIES", bad)
        reset_settings()
        with pytest.raises(ConfigurationError, match=why):
            get_settings()
    monkeypatch.setenv("AGENTJOBS_RETRY_POLICIES", '{"opus": {"max_attempts": 8}}')
    reset_settings()
    assert get_settings().retry_policies == {"opus": {"max_attempts": 8}}
    monkeypatch.delenv("AGENTJOBS_RETRY_POLICIES")
    reset_settings()
