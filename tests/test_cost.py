"""Cost per call from the price table, per-day totals, and `agentjobs cost`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from click.testing import CliRunner

from agentjobs import catalog, complete
from agentjobs.cli import main
from agentjobs.messages.result import CacheCreation, Usage
from agentjobs.messages.usage import cost_usd
from agentjobs.settings import reset_settings
from agentjobs.spend import cost

M = 1_000_000


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    yield monkeypatch
    monkeypatch.undo()
    reset_settings()


# -- arithmetic: each usage field at its price, for every model -----------------------


@pytest.mark.parametrize("model", sorted(catalog.models()))
def test_each_usage_field_is_priced_at_its_rate(model: str) -> None:
    p = catalog.resolve(model).price
    assert cost_usd(model, Usage(input_tokens=M)) == pytest.approx(p.input)
    assert cost_usd(model, Usage(output_tokens=M)) == pytest.approx(p.output)
    assert cost_usd(model, Usage(cache_read_input_tokens=M)) == pytest.approx(p.cache_read)
    writes = Usage(cache_creation_input_tokens=M)
    assert cost_usd(model, writes) == pytest.approx(p.cache_write_5m)
    assert cost_usd(model, writes, cache_ttl="1h") == pytest.approx(p.cache_write_1h)
    assert cost_usd(model, Usage(input_tokens=M), batch=True) == pytest.approx(
        p.input * catalog.BATCH_DISCOUNT
    )


def test_known_figures_from_the_price_list() -> None:
    # Sonnet 4.6: 3 / 3.75 / 6 / 0.30 / 15 per million
    u = Usage(
        input_tokens=1_000,
        output_tokens=500,
        cache_creation_input_tokens=2_000,
        cache_read_input_tokens=10_000,
    )
    expected = (1_000 * 3 + 500 * 15 + 2_000 * 3.75 + 10_000 * 0.30) / M
    assert cost_usd("sonnet", u) == pytest.approx(expected, abs=1e-12)
    assert cost_usd("sonnet", u, batch=True) == pytest.approx(expected / 2, abs=1e-12)
    # Haiku 4.5: 1 / 1.25 / 2 / 0.10 / 5
    assert cost_usd("haiku", u) == pytest.approx(
        (1_000 * 1 + 500 * 5 + 2_000 * 1.25 + 10_000 * 0.10) / M, abs=1e-12
    )


def test_reported_write_split_beats_the_ttl_argument() -> None:
    u = Usage(
        cache_creation_input_tokens=3_000,
        cache_creation=CacheCreation(
            ephemeral_5m_input_tokens=1_000, ephemeral_1h_input_tokens=2_000
        ),
    )
    expected = (1_000 * 1.25 + 2_000 * 2.0) / M
    assert cost_usd("haiku", u, cache_ttl="5m") == pytest.approx(expected, abs=1e-12)
    # an inconsistent split is ignored: the TTL argument prices all writes
    bad = u.model_copy(update={"cache_creation_input_tokens": 5_000})
    assert cost_usd("haiku", bad, cache_ttl="1h") == pytest.approx(5_000 * 2.0 / M)


def test_user_price_override(env: pytest.MonkeyPatch, tmp_path: Any) -> None:
    path = tmp_path / "prices.json"
    fields = {
        "input": 10,
        "cache_write_5m": 20,
        "cache_write_1h": 30,
        "cache_read": 1,
        "output": 50,
    }
    path.write_text(json.dumps({"claude-haiku-4-5": fields}))
    env.setenv("AGENTJOBS_PRICES_FILE", str(path))
    reset_settings()  # a setting, read when the settings load
    assert cost_usd("haiku", Usage(input_tokens=M, output_tokens=M)) == pytest.approx(60)
    assert cost_usd("sonnet", Usage(input_tokens=M)) == pytest.approx(3)  # untouched


# -- totals per model, queue, tenant and day ------------------------------------------


def test_totals_per_model_queue_tenant_and_day(state_redis: redis.Redis) -> None:
    u = Usage(input_tokens=100, output_tokens=10)
    day, other = "2026-01-02", "2026-01-01"
    record = cost.record
    record(model="claude-haiku-4-5", queue="claude.haiku", tenant="a", usage=u, cost=0.25, day=day)
    record(model="claude-sonnet-4-6", queue="claude.sonnet", tenant="a", usage=u, cost=1.5, day=day)
    record(model="claude-haiku-4-5", queue="claude.haiku", tenant=None, usage=u, cost=0.0,
           cached=True, saved_usd=0.25, day=day)  # fmt: skip
    record(model="claude-haiku-4-5", queue="claude.haiku", tenant="b", usage=u, cost=9.0, day=other)
    t = cost.day_totals(day)
    assert t.totals["usd"] == pytest.approx(1.75)
    assert t.totals["calls"] == 3 and t.totals["hits"] == 1
    assert t.totals["saved_usd"] == pytest.approx(0.25)
    assert t.totals["in"] == 200  # a cache hit sends no tokens
    assert t.by["model"]["claude-haiku-4-5"]["usd"] == pytest.approx(0.25)
    assert t.by["model"]["claude-haiku-4-5"]["calls"] == 2
    assert t.by["model"]["claude-sonnet-4-6"]["usd"] == pytest.approx(1.5)
    assert t.by["queue"]["claude.sonnet"]["usd"] == pytest.approx(1.5)
    assert t.by["tenant"]["a"]["usd"] == pytest.approx(1.75)
    assert t.by["tenant"][cost.NO_TENANT]["hits"] == 1
    assert cost.day_totals(other).totals["usd"] == pytest.approx(9.0)
    ttl = state_redis.ttl(cost.day_key(day))
    assert 89 * 86_400 < ttl <= 90 * 86_400


def test_worker_results_carry_cost_and_feed_the_totals(
    worker: Any, fresh_sim: Any, state_redis: redis.Redis
) -> None:
    system = "You are a careful assistant. " * 800  # ~5,600 tokens: over every cache minimum
    results = [
        complete.delay(
            prompt=f"q{i}", system=system, model=model, prompt_cache=ttl, tenant="t1"
        ).get(timeout=30)
        for i, (model, ttl) in enumerate(
            [("haiku", "5m"), ("haiku", "5m"), ("sonnet", "1h"), ("sonnet", "1h")]
        )
    ]
    assert results[0]["usage"]["cache_creation_input_tokens"] > 4_096
    assert results[1]["usage"]["cache_read_input_tokens"] > 4_096
    assert results[2]["usage"]["cache_creation"]["ephemeral_1h_input_tokens"] > 1_024
    for r in results:
        u = Usage.model_validate(r["usage"])
        assert r["cost_usd"] == pytest.approx(cost_usd(r["model"], u), abs=1e-9)
    # the simulator bills independently: the same total
    total = sum(r["cost_usd"] for r in results)
    assert total == pytest.approx(fresh_sim.stats()["cost_usd"], abs=1e-6)  # sim rounds to 1e-6
    t = cost.day_totals(cost.today())
    assert t.by["tenant"]["t1"]["usd"] == pytest.approx(total, rel=1e-6)
    assert t.totals["cache_read"] == sum(r["usage"]["cache_read_input_tokens"] for r in results)
    assert t.by["model"]["claude-sonnet-4-6"]["cache_write"] > 1_024
    assert t.by["queue"]["claude.sonnet"]["calls"] == 2


# -- the command ----------------------------------------------------------------------


def test_cost_command_json_and_table(state_redis: redis.Redis) -> None:
    u = Usage(input_tokens=100, output_tokens=10)
    today = cost.today()
    cost.record(model="claude-haiku-4-5", queue="claude.haiku", tenant="acme", usage=u, cost=0.5)
    cost.record(model="claude-sonnet-4-6", queue="claude.sonnet", tenant="beta", usage=u, cost=2.0)
    runner = CliRunner()
    out = runner.invoke(main, ["cost", "--days", "2", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data["days"][0]["day"] == today and len(data["days"]) == 2
    assert data["total_usd"] == pytest.approx(2.5)
    assert data["by"]["tenant"]["beta"]["usd"] == pytest.approx(2.0)
    assert data["by"]["model"]["claude-haiku-4-5"]["calls"] == 1
    table = runner.invoke(main, ["cost", "--by", "tenant"])
    assert table.exit_code == 0, table.output
    assert "acme" in table.output and "beta" in table.output and "2.5000" in table.output
    bad = runner.invoke(main, ["cost", "--days", "0"])
    assert bad.exit_code != 0 and "Traceback" not in bad.output


def test_totals_are_best_effort_after_a_paid_call(
    env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from agentjobs.contrib.testing import free_port
    from agentjobs.messages.result import ClaudeResult

    env.setenv("AGENTJOBS_REDIS_URL", f"redis://127.0.0.1:{free_port()}/1")  # nobody there
    reset_settings()
    result = ClaudeResult(
        id="m", model="claude-haiku-4-5", text="", content=[], stop_reason="end_turn",
        usage=Usage(input_tokens=1), cost_usd=0.001, latency_ms=1, attempts=1, cached=False,
        queue="claude.haiku", worker="w", idempotency_key="k", task_id="t1",
    )  # fmt: skip
    cost.record_result(result)  # logs, does not raise: raising would pay for the call twice
    assert "cost of task t1 not added to the totals" in caplog.text
