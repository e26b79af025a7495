"""The Messages API through the real SDK: shapes, credentials, validation, errors."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest

from agentjobs.simulator import SimHandle
from agentjobs.simulator.config import SimConfig

from .conftest import StartSim, sdk, user

RATE_HEADERS = [
    f"anthropic-ratelimit-{kind}-{part}"
    for kind in ("requests", "input-tokens", "output-tokens", "tokens")
    for part in ("limit", "remaining", "reset")
]


def test_message_shape_and_headers(client: anthropic.Anthropic) -> None:
    raw = client.messages.with_raw_response.create(
        model="claude-haiku-4-5", max_tokens=1000, messages=user("Hello there")
    )
    msg = raw.parse()
    assert msg.id.startswith("msg_") and msg.type == "message" and msg.role == "assistant"
    assert msg.model == "claude-haiku-4-5"
    assert msg.content[0].type == "text" and msg.content[0].text
    assert msg.stop_reason == "end_turn" and msg.stop_sequence is None
    assert 20 <= msg.usage.output_tokens <= 300
    assert msg.usage.input_tokens > 0
    assert msg.usage.cache_creation_input_tokens == 0
    assert msg.usage.cache_read_input_tokens == 0
    assert raw.headers["request-id"].startswith("req_")
    for name in RATE_HEADERS:
        assert name in raw.headers, name
    assert raw.headers["anthropic-ratelimit-requests-limit"] == "1000"
    # The default bucket holds two seconds of refill: 1000 x 2 / 60 = 33.3 requests.
    assert raw.headers["anthropic-ratelimit-requests-remaining"] == "32"
    assert raw.headers["anthropic-ratelimit-input-tokens-limit"] == "2000000"
    # Token remaining (66,666 less a few) is rounded down to the thousand at real-size limits.
    assert raw.headers["anthropic-ratelimit-input-tokens-remaining"] == "66000"
    assert raw.headers["anthropic-ratelimit-requests-reset"].endswith("Z")


def test_alias_resolves_and_is_echoed(client: anthropic.Anthropic) -> None:
    msg = client.messages.create(model="opus", max_tokens=50, messages=user("hi"))
    assert msg.model == "claude-opus-4-8"


def test_same_request_same_answer_and_max_tokens_cut(client: anthropic.Anthropic) -> None:
    kw: dict[str, Any] = {"model": "sonnet", "max_tokens": 1000, "messages": user("Same?")}
    a, b = client.messages.create(**kw), client.messages.create(**kw)
    assert a.content[0].text == b.content[0].text  # type: ignore[union-attr]
    assert a.usage.output_tokens == b.usage.output_tokens
    other = client.messages.create(**{**kw, "messages": user("Different?")})
    assert other.content[0].text != a.content[0].text  # type: ignore[union-attr]
    cut = client.messages.create(model="sonnet", max_tokens=5, messages=user("x" * 50))
    assert cut.stop_reason == "max_tokens" and cut.usage.output_tokens == 5


def test_output_tokens_directive_and_text_is_four_chars_per_token(
    client: anthropic.Anthropic,
) -> None:
    msg = client.messages.create(
        model="haiku", max_tokens=2000, messages=user("go [[sim:output_tokens=500]]")
    )
    assert msg.usage.output_tokens == 500 and msg.stop_reason == "end_turn"
    assert len(msg.content[0].text) == 2000  # type: ignore[union-attr]
    capped = client.messages.create(
        model="haiku", max_tokens=100, messages=user("go [[sim:output_tokens=500]]")
    )
    assert capped.usage.output_tokens == 100 and capped.stop_reason == "max_tokens"


def test_stop_sequence(client: anthropic.Anthropic) -> None:
    full = client.messages.create(
        model="haiku", max_tokens=300, messages=user("stop [[sim:output_tokens=200]]")
    )
    word = full.content[0].text.split()[50]  # type: ignore[union-attr]
    msg = client.messages.create(
        model="haiku",
        max_tokens=300,
        stop_sequences=[word],
        messages=user("stop [[sim:output_tokens=200]]"),
    )
    assert msg.stop_reason == "stop_sequence" and msg.stop_sequence == word
    assert msg.usage.output_tokens <= 51


def test_count_tokens_equals_charged_input(client: anthropic.Anthropic) -> None:
    kw: dict[str, Any] = {
        "model": "haiku",
        "system": [{"type": "text", "text": "You are terse." * 10}],
        "messages": [
            {"role": "user", "content": "What is 2+2?"},
            {"role": "assistant", "content": [{"type": "text", "text": "4"}]},
            {"role": "user", "content": "And 3+3?"},
        ],
        "tools": [{"name": "calc", "input_schema": {"type": "object"}}],
    }
    counted = client.messages.count_tokens(**kw).input_tokens
    msg = client.messages.create(max_tokens=10, **kw)
    assert msg.usage.input_tokens == counted


def test_credentials(start_sim: StartSim) -> None:
    open_sim = start_sim()
    # The SDK sends Authorization: Bearer; the API also takes x-api-key.
    with sdk(open_sim) as c:
        assert c.messages.create(model="haiku", max_tokens=5, messages=user("hi"))
    import httpx2

    body = {"model": "haiku", "max_tokens": 5, "messages": user("hi")}
    url = open_sim.base_url + "/v1/messages"
    assert httpx2.post(url, json=body, headers={"x-api-key": "k"}).status_code == 200
    missing = httpx2.post(url, json=body)
    assert missing.status_code == 401
    assert missing.json()["error"]["type"] == "authentication_error"
    assert missing.headers["request-id"].startswith("req_")

    locked = start_sim(api_key="sk-right")
    with sdk(locked, api_key="sk-wrong") as c, pytest.raises(anthropic.AuthenticationError):
        c.messages.create(model="haiku", max_tokens=5, messages=user("hi"))
    with sdk(locked, api_key="sk-right") as c:
        assert c.messages.create(model="haiku", max_tokens=5, messages=user("hi"))
    url = locked.base_url + "/v1/messages"
    assert httpx2.post(url, json=body, headers={"x-api-key": "sk-right"}).status_code == 200


BAD_REQUESTS: list[tuple[dict[str, Any], str]] = [
    ({"max_tokens": 5, "messages": user("hi")}, "model: Field required"),
    ({"model": 3, "max_tokens": 5, "messages": user("hi")}, "model: Input should be"),
    ({"model": "haiku", "messages": user("hi")}, "max_tokens: Field required"),
    # 0 is valid (it only fills the prompt cache); below that is not.
    ({"model": "haiku", "max_tokens": -1, "messages": user("hi")}, "greater than or equal"),
    ({"model": "haiku", "max_tokens": "5", "messages": user("hi")}, "valid integer"),
    ({"model": "haiku", "max_tokens": 10**6, "messages": user("hi")}, "maximum allowed"),
    ({"model": "haiku", "max_tokens": 5}, "messages: Field required"),
    ({"model": "haiku", "max_tokens": 5, "messages": []}, "at least one message"),
    ({"model": "haiku", "max_tokens": 5, "messages": [{"role": "bot", "content": "x"}]}, "role"),
    ({"model": "haiku", "max_tokens": 5, "messages": user("")}, "non-empty"),
    (
        {
            "model": "haiku",
            "max_tokens": 5,
            "messages": [{"role": "user", "content": [{"type": "video", "text": "x"}]}],
        },
        "Input tag 'video'",
    ),
    ({"model": "haiku", "max_tokens": 5, "messages": user("hi"), "bogus": 1}, "Extra inputs"),
    ({"model": "haiku", "max_tokens": 5, "messages": user("hi"), "temperature": 2}, "between"),
]


@pytest.mark.parametrize(("body", "message"), BAD_REQUESTS)
def test_validation_errors_are_400(
    client: anthropic.Anthropic, body: dict[str, Any], message: str
) -> None:
    with pytest.raises(anthropic.BadRequestError) as info:
        client.post("/v1/messages", body=body, cast_to=object)
    err = info.value
    assert err.status_code == 400 and err.type == "invalid_request_error"
    assert message in (err.api_message or "")
    assert err.request_id and err.request_id.startswith("req_")
    assert isinstance(err.body, dict) and err.body["type"] == "error"


def test_unknown_model_is_404(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as info:
        client.messages.create(model="claude-nonexistent-9", max_tokens=5, messages=user("hi"))
    assert info.value.type == "not_found_error"
    assert info.value.api_message == "model: claude-nonexistent-9"


def test_body_over_limit_is_413(start_sim: StartSim) -> None:
    small = start_sim(max_body_bytes=10_000)
    with sdk(small) as c:
        assert c.messages.create(model="haiku", max_tokens=5, messages=user("x" * 9000))
        with pytest.raises(anthropic.APIStatusError) as info:
            c.messages.create(model="haiku", max_tokens=5, messages=user("x" * 20_000))
    assert info.value.status_code == 413 and info.value.type == "request_too_large"


def test_default_limit_is_32_mb() -> None:
    assert SimConfig().max_body_bytes == 32 * 1024 * 1024


FORCED = [
    ("400", anthropic.BadRequestError, "invalid_request_error"),
    ("401", anthropic.AuthenticationError, "authentication_error"),
    ("402", anthropic.PaymentRequiredError, "billing_error"),
    ("403", anthropic.PermissionDeniedError, "permission_error"),
    ("404", anthropic.NotFoundError, "not_found_error"),
    ("413", anthropic.ContentTooLargeError, "request_too_large"),
    ("429", anthropic.RateLimitError, "rate_limit_error"),
    ("500", anthropic.InternalServerError, "api_error"),
    ("504", anthropic.GatewayTimeoutError, "timeout_error"),
    ("529", anthropic.OverloadedError, "overloaded_error"),
]


@pytest.mark.parametrize(("code", "exc", "error_type"), FORCED)
def test_error_directive_maps_to_sdk_exception(
    client: anthropic.Anthropic, code: str, exc: type[Exception], error_type: str
) -> None:
    with pytest.raises(exc) as info:
        client.messages.create(
            model="haiku", max_tokens=5, messages=user(f"fail [[sim:error={code}]]")
        )
    err = info.value
    assert isinstance(err, anthropic.APIStatusError)
    assert err.status_code == int(code) and err.type == error_type
    assert err.response.headers["anthropic-ratelimit-requests-limit"] == "1000"
    if code == "429":
        assert err.response.headers["retry-after"] == "1"
    if code in ("500", "504", "529"):
        assert isinstance(err, anthropic.InternalServerError)


def test_unknown_directive_is_400(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError, match="unknown simulator directive"):
        client.messages.create(model="haiku", max_tokens=5, messages=user("[[sim:nope=1]]"))


def test_unknown_route_is_json_404(server: SimHandle) -> None:
    import httpx2

    r = httpx2.get(server.base_url + "/v1/nothing")
    assert r.status_code == 404 and r.json()["error"]["type"] == "not_found_error"
