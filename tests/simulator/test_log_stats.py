"""The JSONL request log, the stats counters and the admin routes."""

from __future__ import annotations

import json
from pathlib import Path

import anthropic
import httpx2
import pytest

from agentjobs.contrib.testing import wait_for

from .conftest import StartSim, sdk, user


def test_log_lines_and_stats(start_sim: StartSim, tmp_path: Path) -> None:
    log = tmp_path / "requests.jsonl"
    s = start_sim(log=str(log), rpm=60, burst_s=2)  # faults use no capacity
    with sdk(s) as c:
        first = c.messages.create(model="haiku", max_tokens=50, messages=user("same"))
        c.messages.create(model="haiku", max_tokens=50, messages=user("same"))  # duplicate
        with pytest.raises(anthropic.OverloadedError):
            c.messages.create(model="haiku", max_tokens=50, messages=user("[[sim:fault=529]]"))
        with pytest.raises(anthropic.RateLimitError):
            c.messages.create(model="haiku", max_tokens=50, messages=user("other"))
        with pytest.raises(anthropic.NotFoundError):
            c.messages.create(model="nope", max_tokens=50, messages=user("x"))
        c.messages.count_tokens(model="sonnet", messages=user("count me"))

    # Flushed within a second, without stopping the server.
    wait_for(lambda: log.exists() and len(log.read_text().splitlines()) == 6, timeout=5.0)
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [line["status"] for line in lines] == [200, 200, 529, 429, 404, 200]
    ok = lines[0]
    assert ok["model"] == "claude-haiku-4-5" and ok["group"] == "haiku"
    assert ok["input_tokens"] == first.usage.input_tokens
    assert ok["output_tokens"] == first.usage.output_tokens
    assert ok["request_id"].startswith("req_") and len(ok["hash"]) == 64
    assert lines[1]["hash"] == ok["hash"]
    assert lines[2]["fault"] == "529" and lines[2]["error_type"] == "overloaded_error"
    assert lines[3]["error_type"] == "rate_limit_error"
    assert lines[4]["model"] is None and lines[4]["hash"] is None
    assert lines[5]["path"] == "/v1/messages/count_tokens"
    assert {"ts", "latency_ms", "cache_creation_input_tokens", "cache_read_input_tokens"} <= set(ok)

    stats = s.stats(hashes=True)
    assert stats["requests"] == 6 and stats["messages"] == 5 and stats["count_tokens"] == 1
    assert stats["ok"] == 3 and stats["by_status"] == {"200": 3, "404": 1, "429": 1, "529": 1}
    assert stats["rate_limited"] == 1 and stats["faults"] == {"529": 1}
    assert stats["duplicates"] == 1
    assert stats["calls_by_hash"][ok["hash"]] == 2 and stats["ok_by_hash"][ok["hash"]] == 2
    assert stats["by_group"] == {"haiku": 4, "sonnet": 1}
    assert stats["output_tokens"] == 2 * first.usage.output_tokens
    assert stats["cost_usd"] > 0 and stats["in_flight"] == 0


def test_log_flushed_on_stop(start_sim: StartSim, tmp_path: Path) -> None:
    log = tmp_path / "stop.jsonl"
    s = start_sim(log=str(log))
    with sdk(s) as c:
        for i in range(3):
            c.messages.create(model="haiku", max_tokens=5, messages=user(f"n{i}"))
    s.stop()
    assert len(log.read_text().splitlines()) == 3


def test_admin_routes(start_sim: StartSim) -> None:
    s = start_sim(rpm=60, burst_s=1)
    body = {"model": "haiku", "max_tokens": 5, "messages": user("hi")}
    with httpx2.Client(base_url=s.base_url, headers={"x-api-key": "k"}) as h:
        assert h.get("/_sim/health").json() == {"ok": True}
        assert h.post("/v1/messages", json=body).status_code == 200
        assert h.post("/v1/messages", json=body).status_code == 429
        stats = h.get("/_sim/stats").json()
        assert stats["requests"] == 2 and "calls_by_hash" not in stats
        assert len(h.get("/_sim/stats?hashes=1").json()["calls_by_hash"]) == 1
        assert h.post("/_sim/reset").json() == {"ok": True}
        assert h.get("/_sim/stats").json()["requests"] == 0
        assert h.post("/v1/messages", json=body).status_code == 200  # bucket refilled
        changed = h.post("/_sim/config", json={"rpm": "600", "fault_529": 1}).json()
        assert changed["rpm"] == 600 and changed["fault_529"] == 1.0
        assert h.post("/v1/messages", json=body).status_code == 529
        assert h.post("/_sim/config", json={"nope": 1}).status_code == 400
        assert h.post("/_sim/config", json={"otpm_mode": "weird"}).status_code == 400
        assert h.get("/_sim/config").json()["rpm"] == 600
    assert s.config.rpm == 600
