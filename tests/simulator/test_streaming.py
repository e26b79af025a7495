"""``stream: true`` and pacing: the API's event sequence, the SDK's stream helpers, the
time an answer takes (first token, then output speed), errors after the 200, and OTPM
debited while the answer is generated."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import anthropic
import httpx2
import pytest

from agentjobs.contrib.testing import wait_for

from .conftest import StartSim, sdk, user

WEATHER = {
    "name": "get_weather",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city"],
    },
}

VARIANTS: dict[str, dict[str, Any]] = {
    "text": {"messages": user("Tell me [[sim:output_tokens=1500]]")},
    "thinking and a tool call": {
        "messages": user("get_weather please"),
        "tools": [WEATHER],
        "thinking": {"type": "enabled", "budget_tokens": 1024},
    },
    "json": {
        "messages": user("Rate it."),
        "output_config": {
            "format": {
                "type": "json_schema",
                "schema": {"type": "object", "properties": {"n": {"type": "integer"}}},
            }
        },
    },
    "cut at max_tokens": {"messages": user("Long [[sim:output_tokens=5000]]"), "max_tokens": 700},
    "refusal": {"messages": user("[[sim:stop_reason=refusal]]")},
}


@pytest.mark.parametrize("kw", list(VARIANTS.values()), ids=list(VARIANTS))
def test_stream_final_message_equals_the_plain_answer(
    client: anthropic.Anthropic, kw: dict[str, Any]
) -> None:
    kw = {"model": "sonnet", "max_tokens": 4000, **kw}
    with client.messages.stream(**kw) as stream:
        texts = list(stream.text_stream)
        final = stream.get_final_message()
    plain = client.messages.create(**kw)
    streamed, answered = final.model_dump(), plain.model_dump()
    assert streamed.pop("id") != answered.pop("id")
    assert streamed == answered
    if kw["messages"][0]["content"].startswith("Tell me"):
        assert len(texts) > 1  # in several deltas, not one


def sse(response: httpx2.Response) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for chunk in response.text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in chunk.split("\n"))
        events.append((lines["event"], json.loads(lines["data"])))
    return events


def test_event_sequence(start_sim: StartSim) -> None:
    s = start_sim()
    body = {
        "model": "sonnet",
        "max_tokens": 4000,
        "stream": True,
        "tools": [WEATHER],
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "messages": user("get_weather [[sim:thinking_tokens=1200]]"),
    }
    r = httpx2.post(s.base_url + "/v1/messages", json=body, headers={"x-api-key": "k"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    assert r.headers["request-id"].startswith("req_")
    assert "anthropic-ratelimit-requests-remaining" in r.headers
    events = sse(r)
    kinds = [k for k, _ in events]
    assert kinds[:2] == ["message_start", "ping"] and kinds[-2:] == [
        "message_delta",
        "message_stop",
    ]
    start = events[0][1]["message"]
    assert start["content"] == [] and start["stop_reason"] is None
    assert start["usage"]["input_tokens"] > 0
    blocks: dict[int, list[str]] = {}
    for kind, data in events:
        assert data["type"] == kind
        if kind == "content_block_start":
            blocks[data["index"]] = [data["content_block"]["type"]]
        elif kind == "content_block_delta":
            blocks[data["index"]].append(data["delta"]["type"])
        elif kind == "content_block_stop":
            blocks[data["index"]].append("stop")
    thinking, *rest = blocks.values()
    # 1,024 thinking tokens (the budget) in 512-token deltas, then the signature.
    assert thinking == ["thinking", "thinking_delta", "thinking_delta", "signature_delta", "stop"]
    assert rest[0][0] == "text" and rest[-1][0] == "tool_use"
    assert set(rest[-1][1:-1]) == {"input_json_delta"}
    delta = events[-2][1]
    assert delta["delta"]["stop_reason"] == "tool_use"
    assert delta["usage"]["output_tokens"] > 1024  # cumulative: the whole answer


def test_pacing_first_token_then_speed(start_sim: StartSim) -> None:
    # 1 s to the first token, 100 tokens/s: 200 tokens take 3 simulated s = 0.3 real s.
    s = start_sim(latency_median_ms=1000, latency_spread=0, output_tokens_per_s=100, time_scale=0.1)
    kw: dict[str, Any] = {
        "model": "haiku",
        "max_tokens": 1000,
        "messages": user("[[sim:output_tokens=200]]"),
    }
    with sdk(s) as c:
        t0 = time.monotonic()
        with c.messages.stream(**kw) as stream:
            first = None
            for event in stream:
                if event.type == "content_block_delta" and first is None:
                    first = time.monotonic() - t0
        streamed = time.monotonic() - t0
        t0 = time.monotonic()
        c.messages.create(**kw)
        plain = time.monotonic() - t0
    assert first is not None and 0.1 <= first < 0.25  # the first delta after the first token
    assert 0.3 <= streamed < 0.6
    assert 0.3 <= plain < 0.6  # paced the same, nothing sent until complete


def test_zero_latency_stays_fast(start_sim: StartSim) -> None:
    s = start_sim(latency_median_ms=0)
    with sdk(s) as c:
        t0 = time.monotonic()
        c.messages.create(
            model="haiku", max_tokens=20000, messages=user("[[sim:output_tokens=12000]]")
        )
        with c.messages.stream(
            model="haiku", max_tokens=20000, messages=user("s [[sim:output_tokens=12000]]")
        ) as stream:
            stream.get_final_message()
    assert time.monotonic() - t0 < 2.0  # 24,000 tokens at 70 tokens/s would be 6 minutes


def test_latency_directive_fixes_the_whole_answer(start_sim: StartSim) -> None:
    s = start_sim(output_tokens_per_s=10, time_scale=0.01)  # 100 tokens: 10 s generating
    with sdk(s) as c:
        t0 = time.monotonic()
        c.messages.create(
            model="haiku",
            max_tokens=200,
            messages=user("[[sim:latency_ms=20000]] [[sim:output_tokens=100]]"),
        )
    assert 0.2 <= time.monotonic() - t0 < 0.4  # 20 s simulated in all, not 20 s + 10 s


def test_error_event_after_the_200(start_sim: StartSim) -> None:
    s = start_sim()
    kw: dict[str, Any] = {
        "model": "haiku",
        "max_tokens": 2000,
        "messages": user("[[sim:fault=stream_error]] [[sim:output_tokens=1500]]"),
    }
    with sdk(s) as c:
        got: list[str] = []
        with pytest.raises(anthropic.APIStatusError) as info, c.messages.stream(**kw) as stream:
            got.extend(stream.text_stream)
        assert info.value.status_code == 200  # the error came after the headers
        assert info.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]
        assert 0 < len("".join(got)) < 4 * 1500  # part of the answer came first
        with pytest.raises(anthropic.OverloadedError):
            c.messages.create(**kw)  # not streamed: a 529 after the wait
    stats = s.stats()
    assert stats["faults"] == {"stream_error": 2}
    assert stats["output_tokens"] == 0 and stats["cost_usd"] == 0  # neither was billed
    fault_on = start_sim(fault_stream_error=1.0)
    with sdk(fault_on) as c, pytest.raises(anthropic.OverloadedError):
        c.messages.create(model="haiku", max_tokens=50, messages=user("x"))


def level(s: Any) -> float:
    return float(
        s.call(lambda: s.simulator.limits.groups["haiku"].output.refill(s.simulator.clock()))
    )


@pytest.mark.parametrize("streamed", [True, False])
def test_output_tokens_debited_while_generated(start_sim: StartSim, streamed: bool) -> None:
    # 60 OTPM refills one token a simulated second (0.1 real s): next to 3,000 tokens
    # generated over 0.6 real s the refill hardly shows.
    s = start_sim(
        otpm=60, latency_median_ms=1, latency_spread=0, output_tokens_per_s=500, time_scale=0.1
    )
    kw: dict[str, Any] = {
        "model": "haiku",
        "max_tokens": 4000,
        "messages": user("[[sim:output_tokens=3000]]"),
    }
    midway: list[float] = []

    def call() -> None:
        with sdk(s) as c:
            if streamed:
                with c.messages.stream(**kw) as stream:
                    stream.get_final_message()
            else:
                c.messages.create(**kw)

    worker = threading.Thread(target=call)
    worker.start()
    wait_for(lambda: level(s) < -500, timeout=5.0, what="part of the output debited")
    midway.append(level(s))
    assert s.stats()["in_flight"] == 1  # still generating
    worker.join(10)
    assert -3000 < midway[0] < -500
    assert level(s) < -2900  # all of it by the end
