"""A model the catalog does not list yet (a new release): accepted when its name says its
family, as the family's newest model (price, rate-limit group, limits), reported once;
its price can be set in the prices file like any model's."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentjobs import catalog
from agentjobs.errors import UnknownModelError
from agentjobs.messages.request import parse_request
from agentjobs.messages.result import Usage
from agentjobs.messages.usage import cost_usd
from agentjobs.settings import reset_settings


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    monkeypatch.delenv("AGENTJOBS_PRICES_FILE", raising=False)
    reset_settings()
    yield monkeypatch
    reset_settings()


@pytest.mark.parametrize(
    ("model_id", "like"),
    [
        ("claude-sonnet-4-7", "claude-sonnet-4-6"),
        ("claude-haiku-5-0", "claude-haiku-4-5"),
        ("claude-opus-5-20270101", "claude-opus-4-8"),
        ("claude-3-9-sonnet-latest", "claude-sonnet-4-6"),
    ],
)
def test_an_unlisted_release_is_its_family_s_newest(env: object, model_id: str, like: str) -> None:
    m = catalog.resolve(model_id)
    newest = catalog.resolve(like)
    assert m.id == model_id
    assert (m.family, m.group, m.price, m.max_output_tokens) == (
        newest.family,
        newest.group,
        newest.price,
        newest.max_output_tokens,
    )
    assert m.queue == f"claude.{newest.family}"
    # accepted at .delay(), and priced
    req = parse_request({"prompt": "hi", "model": model_id, "max_tokens": 10})
    assert req.model == model_id
    assert cost_usd(model_id, Usage(input_tokens=1_000_000)) == newest.price.input


@pytest.mark.parametrize("model_id", ["gpt-4o", "claude-7", "claude-sonnetish-1", "sonnet-4-7"])
def test_an_id_without_a_clear_family_is_still_refused(env: object, model_id: str) -> None:
    with pytest.raises(UnknownModelError, match="unknown model"):
        catalog.resolve(model_id)


def test_an_unlisted_model_is_reported_once_per_process(
    env: object, caplog: pytest.LogCaptureFixture
) -> None:
    model_id = "claude-haiku-9-9-report-once"
    with caplog.at_level(logging.WARNING, logger="agentjobs.catalog"):
        for _ in range(3):
            catalog.resolve(model_id)
    reports = [r for r in caplog.records if model_id in r.getMessage()]
    assert len(reports) == 1
    assert "newest haiku" in reports[0].getMessage()


def test_the_prices_file_prices_an_unlisted_release(
    env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    prices = {"input": 4, "cache_write_5m": 5, "cache_write_1h": 8, "cache_read": 0.4, "output": 20}
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"claude-sonnet-4-7": prices}))
    env.setenv("AGENTJOBS_PRICES_FILE", str(path))
    reset_settings()
    m = catalog.resolve("claude-sonnet-4-7")
    assert m.price == catalog.Price(4, 5, 8, 0.4, 20)
    assert m.group == "sonnet"
    assert catalog.resolve("claude-sonnet-4-6").price.input == 3.0
