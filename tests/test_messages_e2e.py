"""An agent's calls end to end: ``complete.delay`` through a real in-process worker, the
real SDK streaming over HTTP from the simulator. Every next request is built only from
the previous result's ``content``; a long answer at a realistic output speed arrives
with the default settings, in one call paid once."""

from __future__ import annotations

import base64
import json
import struct
import zlib
from collections.abc import Iterator
from typing import Any

import pytest

from agentjobs import complete
from agentjobs.settings import Settings, reset_settings

TOOLS = [
    {
        "name": "lookup",
        "description": "Look a word up in the dictionary.",
        "input_schema": {
            "type": "object",
            "properties": {"word": {"type": "string"}},
            "required": ["word"],
        },
    },
    {
        "name": "calculate",
        "description": "Evaluate an arithmetic expression.",
        "input_schema": {
            "type": "object",
            "properties": {"expression": {"type": "string"}},
            "required": ["expression"],
        },
    },
]


def png(width: int, height: int) -> str:
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    rows = zlib.compress(b"".join(b"\x00" + b"\x00" * width for _ in range(height)))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    raw = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")
    return base64.b64encode(raw).decode()


def pdf(pages: int) -> str:
    objects = b"".join(b"<< /Type /Page >>\n" for _ in range(pages))
    return base64.b64encode(b"%PDF-1.7\n" + objects + b"%%EOF").decode()


def _tool_loop(thinking: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Three tool rounds, then the answer; each request is the last one plus the
    result's content as the assistant turn and one tool_result per tool_use."""
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "[[sim:tool_rounds=3]] Define 'loop' and add 2+2."}
    ]
    extra: dict[str, Any] = {"thinking": thinking} if thinking else {}
    results = []
    for _ in range(4):
        r = complete.delay(
            messages=messages, tools=TOOLS, model="sonnet", max_tokens=4096, **extra
        ).get(timeout=60)
        results.append(r)
        messages = [*messages, {"role": "assistant", "content": r["content"]}]
        uses = [b for b in r["content"] if b["type"] == "tool_use"]
        if r["stop_reason"] != "tool_use":
            break
        messages.append(
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": u["id"], "content": f"ok {u['name']}"}
                    for u in uses
                ],
            }
        )
    return results


def test_a_three_round_tool_loop_from_the_results_content(worker: Any, fresh_sim: Any) -> None:
    results = _tool_loop(None)
    assert [r["stop_reason"] for r in results] == ["tool_use"] * 3 + ["end_turn"]
    for r in results[:3]:
        (use,) = [b for b in r["content"] if b["type"] == "tool_use"]
        assert use["name"] in ("lookup", "calculate") and isinstance(use["input"], dict)
    assert results[-1]["text"]
    assert fresh_sim.stats()["ok"] == 4


def test_the_tool_loop_with_thinking_keeps_the_signatures(worker: Any, fresh_sim: Any) -> None:
    results = _tool_loop({"type": "enabled", "budget_tokens": 1024})
    assert [r["stop_reason"] for r in results] == ["tool_use"] * 3 + ["end_turn"]
    for r in results:
        thinking = [b for b in r["content"] if b["type"] == "thinking"]
        assert thinking and all(b["signature"] for b in thinking)
    # each request sent every earlier thinking block back, and the simulator verified
    # their signatures (a changed one is a 400): four answers, no error
    assert fresh_sim.stats()["by_status"] == {"200": 4}


def test_an_image_and_a_pdf(worker: Any, fresh_sim: Any) -> None:
    content = [
        {"type": "text", "text": "What do these show?"},
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": png(300, 200)},
        },
        {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": pdf(2)},
            "title": "Report",
        },
    ]
    r = complete.delay(
        messages=[{"role": "user", "content": content}], model="haiku", max_tokens=200
    ).get(timeout=60)
    assert r["stop_reason"] == "end_turn" and r["text"]
    # the simulator counts the image (300 x 200 / 750 = 80) and 2,000 per PDF page
    assert r["usage"]["input_tokens"] >= 80 + 2 * 2000


def test_json_schema_output_parses(worker: Any, fresh_sim: Any) -> None:
    schema = {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "days": {"type": "array", "items": {"type": "integer"}},
            "rain": {"type": "boolean"},
        },
        "required": ["city", "days", "rain"],
        "additionalProperties": False,
    }
    r = complete.delay(
        prompt="The forecast for Oslo as JSON.",
        model="sonnet",
        max_tokens=500,
        output_config={"format": {"type": "json_schema", "schema": schema}},
    ).get(timeout=60)
    answer = json.loads(r["text"])
    assert set(answer) == {"city", "days", "rain"}
    assert isinstance(answer["city"], str) and isinstance(answer["rain"], bool)
    assert all(isinstance(d, int) for d in answer["days"])


#: Real seconds per simulated second: the simulator's clock, and agentjobs' durations.
SCALE = 0.02
#: agentjobs' settings that are durations of a call, and a rate: the defaults, moved to
#: the simulator's clock (so the test is the default configuration against a real-speed
#: API, a few real seconds long).
_DURATIONS = (
    "connect_timeout_s",
    "request_timeout_s",
    "stream_idle_timeout_s",
    "stream_first_token_allowance_s",
)


@pytest.fixture
def realistic_speed(fresh_sim: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, float]]:
    """The simulator at the API's pace (time to first token ~1 s, 70 output tokens/s)
    on a clock ``SCALE`` times real time; agentjobs' default timeouts on the same clock."""
    fresh_sim.configure(time_scale=SCALE, latency_median_ms=1000, output_tokens_per_s=70)
    defaults = Settings()
    scaled = {name: getattr(defaults, name) * SCALE for name in _DURATIONS}
    scaled["stream_min_tokens_per_s"] = defaults.stream_min_tokens_per_s / SCALE
    for name, value in scaled.items():
        monkeypatch.setenv(f"AGENTJOBS_{name.upper()}", str(value))
    reset_settings()
    yield scaled
    monkeypatch.undo()
    reset_settings()


def test_a_12000_token_answer_at_api_speed_is_one_call_paid_once(
    realistic_speed: dict[str, float], worker: Any, fresh_sim: Any
) -> None:
    # 12,000 tokens at 70 tokens/s: about 170 simulated seconds, past the plain call's
    # 120 s read timeout (on the same clock): the plain transport times out and pays again.
    r = complete.delay(
        prompt="[[sim:output_tokens=12000]] Write the whole report.",
        model="sonnet",
        max_tokens=16000,
    ).get(timeout=120)
    stats = fresh_sim.stats()
    assert r["stop_reason"] == "end_turn"
    assert r["usage"]["output_tokens"] == 12000
    assert r["attempts"] == 1
    assert (stats["requests"], stats["ok"]) == (1, 1)
    assert stats["output_tokens"] == 12000  # billed once
    assert r["cost_usd"] == pytest.approx(stats["cost_usd"], abs=1e-6)
    simulated_s = r["latency_ms"] / 1000 / SCALE
    assert simulated_s > 120  # it did take longer than the plain call waits
    assert r["ttft_ms"] is not None and r["output_tokens_per_s"] is not None
