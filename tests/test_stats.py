"""`agentjobs stats`: the table, --json, --queue, --watch, and clear errors."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
import redis
from click.testing import CliRunner

from agentjobs import app, complete
from agentjobs.cli import main
from agentjobs.ops import metrics
from agentjobs.ops.exporter import AgentJobsCollector
from agentjobs.settings import reset_settings


def _seed(now: float | None = None) -> None:
    b = metrics.Update()
    for _ in range(3):
        b.inc("api_requests", ("claude.haiku", "claude-haiku-4-5", "200"))
    b.inc("api_requests", ("claude.haiku", "claude-haiku-4-5", "429"))
    b.inc("rate_limited", ("claude.haiku", "claude-haiku-4-5"))
    b.inc("api_requests", ("claude.sonnet", "claude-sonnet-4-6", "529"))
    b.inc("tasks", ("claude.haiku", "claude-haiku-4-5", "succeeded"), 3)
    b.inc("cache_hits", ("claude.haiku", "claude-haiku-4-5"))
    b.inc("cache_misses", ("claude.haiku", "claude-haiku-4-5"), 3)
    b.inc("tokens", ("claude.haiku", "claude-haiku-4-5", "output"), 120)
    b.inc("cost_usd", ("claude.haiku", "claude-haiku-4-5"), 0.0006)
    b.observe("call_seconds", ("claude.haiku", "claude-haiku-4-5"), 2.0)
    b.commit(now=now)


def test_json_window_total_and_queue_filter(state_redis: redis.Redis) -> None:
    metrics.reset()
    _seed(now=1_000_000.0)  # long ago: in the total only
    _seed()
    out = CliRunner().invoke(main, ["stats", "--json", "--minutes", "5"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    win, tot = data["window"], data["total"]
    assert win["api_requests"] == 5 and tot["api_requests"] == 10
    assert win["rate_limited"] == 1 and win["rate_limited_share"] == pytest.approx(0.2)
    assert win["api_error_rate"] == pytest.approx(0.2)  # the 529; 429s are counted apart
    assert win["cache_hit_rate"] == pytest.approx(0.25)
    assert tot["tokens"]["output"] == 240 and tot["cost_usd"] == pytest.approx(0.0012)
    assert 1.0 < win["call"]["p99_s"] <= 2.5
    assert data["live"]["queue_depth"] is not None
    out = CliRunner().invoke(main, ["stats", "--json", "--queue", "claude.sonnet"])
    sonnet = json.loads(out.output)
    assert sonnet["total"]["api_requests"] == 2 and sonnet["total"]["rate_limited"] == 0
    assert sonnet["total"]["api_requests_by_status"] == {"529": 2}


def test_table_and_watch(state_redis: redis.Redis) -> None:
    metrics.reset()
    _seed()
    out = CliRunner().invoke(main, ["stats", "--minutes", "10"])
    assert out.exit_code == 0, out.output
    assert "last 10 min" in out.output and "429 share" in out.output
    assert "20.00%" in out.output and "queue depth:" in out.output
    assert CliRunner().invoke(main, ["stats", "--watch", "0"]).exit_code != 0


def test_backlog_depth_matches_broker_in_stats_and_exporter(
    state_redis: redis.Redis, purge_queues: None
) -> None:
    for i in range(6):
        complete.delay(prompt=f"waiting {i}", model="sonnet")
    broker = redis.Redis.from_url(os.environ["AGENTJOBS_BROKER_URL"])
    own = broker.llen("claude.sonnet")
    assert own == 6
    data = json.loads(CliRunner().invoke(main, ["stats", "--json"]).output)
    assert data["live"]["queue_depth"]["claude.sonnet"] == own
    samples = {
        (s.name, tuple(s.labels.items())): s.value
        for fam in AgentJobsCollector(app).collect()
        for s in fam.samples
    }
    assert samples[("agentjobs_queue_depth", (("queue", "claude.sonnet"),))] == own


def test_state_store_down_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    from agentjobs.contrib.testing import free_port

    monkeypatch.setenv("AGENTJOBS_REDIS_URL", f"redis://127.0.0.1:{free_port()}/1")
    reset_settings()
    try:
        out = CliRunner().invoke(main, ["stats"])
        assert out.exit_code == 1
        assert "cannot read metrics from the state store" in out.output
        assert "Traceback" not in out.output
    finally:
        monkeypatch.undo()
        reset_settings()


def _host_address() -> str | None:
    """This host's address on its default route, or None (no network but loopback)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 1))  # UDP: picks a route, sends nothing
        except OSError:
            return None
        addr = str(s.getsockname()[0])
    return None if addr.startswith("127.") else addr


def _connects(host: str, port: int) -> bool:
    import socket

    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError:
        return False
    return True


@pytest.mark.parametrize("wide", [False, True], ids=["default", "address-0.0.0.0"])
def test_exporter_listens_on_loopback_unless_told(wide: bool, tmp_path: Any) -> None:
    import subprocess
    import sys

    from agentjobs.contrib.testing import free_port, spawn, terminate, wait_for

    host = _host_address()
    if host is None:
        pytest.skip("no address but loopback to try a wider listener from")
    port = free_port()
    argv = [sys.executable, "-m", "agentjobs", "exporter", "--port", str(port)]
    argv += ["--address", "0.0.0.0"] if wide else []
    log = tmp_path / "exporter.log"
    with open(log, "wb") as out:
        proc = spawn(argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(
            lambda: proc.poll() is None and b"listening on" in log.read_bytes(),
            timeout=30,
            what="exporter",
        )
        assert _connects("127.0.0.1", port)
        assert _connects(host, port) is wide, log.read_text()
        expected = "0.0.0.0" if wide else "127.0.0.1"
        assert f"listening on http://{expected}:{port}/metrics" in log.read_text()
    finally:
        terminate(proc, 10)
