"""`agentjobs stats`: the table, --json, --queue, --watch, and clear errors."""

from __future__ import annotations

import json
import os
import re
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
    assert "20.00%" in out.output
    assert re.search(r"^queue +depth +in flight +workers$", out.output, re.M), out.output
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


def test_per_minute_series_first_token_and_sessions_in_json(state_redis: redis.Redis) -> None:
    import time

    from agentjobs.ops import session_metrics

    metrics.reset()
    now = time.time()
    for ago, n in ((0, 4), (2, 1), (20, 9)):  # 20 min ago: outside a 5-minute window
        b = metrics.Update()
        b.inc("tasks", ("claude.haiku", "claude-haiku-4-5", "succeeded"), n)
        b.inc("rate_limited", ("claude.haiku", "claude-haiku-4-5"), n - 1)
        b.inc("cost_usd", ("claude.haiku", "claude-haiku-4-5"), 0.001 * n)
        b.observe("first_token_seconds", ("claude.haiku", "claude-haiku-4-5"), 0.4)
        b.commit(now=now - ago * 60)
    session_metrics.started("triage", session_id="s1")
    session_metrics.ended(
        {"session_id": "s1", "agent": "triage", "status": "completed", "steps": [{}] * 3,
         "tool_calls": [{}] * 2, "cost_usd": 0.02, "created_at": now - 5, "ended_at": now}
    )  # fmt: skip
    out = CliRunner().invoke(main, ["stats", "--json", "--minutes", "5"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    pm = data["per_minute"]
    assert set(pm) == {"start", "tasks_finished", "api_requests", "rate_limited", "cost_usd"}
    assert all(len(pm[k]) == 5 for k in pm if k != "start")

    def at(ago: int) -> int:  # index of the minute `ago` minutes back
        return int(((now - ago * 60) // 60 * 60 - pm["start"]) // 60)

    assert pm["tasks_finished"][at(0)] == 4 and pm["tasks_finished"][at(2)] == 1
    assert pm["rate_limited"][at(0)] == 3 and pm["rate_limited"][at(2)] == 0
    assert pm["cost_usd"][at(2)] == pytest.approx(0.001)
    assert sum(pm["tasks_finished"]) == data["window"]["tasks_succeeded"] == 5  # one read
    assert data["total"]["tasks_succeeded"] == 14
    assert data["window"]["first_token"]["count"] == 2
    assert 0.25 < data["window"]["first_token"]["p50_s"] <= 0.5
    sessions = data["sessions"]
    assert sessions["window"]["by_status"] == {"completed": 1}
    assert sessions["total"]["started"] == 1 and sessions["total"]["open"] == 0
    assert 2 < sessions["total"]["steps"]["p50"] <= 3


def _lines_fit(text: str, width: int) -> None:
    from agentjobs.cli.table import visible_len

    too_wide = [line for line in text.splitlines() if visible_len(line) > width]
    assert not too_wide, too_wide


def test_table_is_aligned_fits_80_columns_and_draws_sparklines(
    state_redis: redis.Redis,
) -> None:
    import time

    from agentjobs.cli.stats import render
    from agentjobs.cli.table import visible_len
    from agentjobs.limiter import pause
    from agentjobs.ops.stats import collect

    pause.pause_spend("sonnet", "spend limit reached " + "and a very long reason " * 6, 600)
    for _ in range(3):  # seeded and read in one minute (else the cells shift by one)
        metrics.reset()
        now = time.time()
        for ago in range(15):
            b = metrics.Update()
            b.inc("tasks", ("claude.haiku", "claude-haiku-4-5", "succeeded"), ago + 1)
            b.inc("rate_limited", ("claude.haiku", "claude-haiku-4-5"), 1 if ago == 3 else 0)
            b.inc("cost_usd", ("claude.haiku", "claude-haiku-4-5"), 12_345.678)  # wide
            b.observe("first_token_seconds", ("claude.haiku", "claude-haiku-4-5"), 0.7)
            b.commit(now=now - ago * 60)
        out = CliRunner().invoke(main, ["stats", "--minutes", "15"])
        if time.time() // 60 == now // 60:
            break
    assert out.exit_code == 0, out.output
    text = out.output
    assert "\x1b[" not in text  # not a terminal: no colour
    _lines_fit(text, 80)
    # Numbers right-aligned: every figure row ends its two columns at the same places.
    rows = [ln for ln in text.splitlines() if ln.startswith(("tasks ", "429", "cost USD"))]
    rows = [ln for ln in rows if not set(ln) & set("▁▂▃▄▅▆▇█")]  # not the sparklines
    ends = {tuple(m.end() for m in re.finditer(r"\S+", ln))[-2:] for ln in rows}
    assert len(ends) == 1, rows
    assert "cost USD" in text and "185,185.17" in text  # 15 x 12,345.678, widened to fit
    assert "first token (TTFT)" in text
    spark = next(ln for ln in text.splitlines() if ln.startswith("tasks  "))
    bars = spark.split()[1]
    assert len(bars) == 15 and bars[0] == "█" and bars[-1] == "▁"  # oldest (15) left
    line429 = next(ln for ln in text.splitlines() if ln.startswith("429s") and "█" in ln)
    assert line429.split()[1] == "█"  # one minute of 429s, the others blank
    assert line429.index("█") == spark.index(bars) + 11  # 3 minutes ago
    assert "sonnet: spend_limit" in text and "lift with `agentjobs limiter resume sonnet`" in text
    assert "agent sessions: none" in text

    # A narrow terminal (and piped): the per-minute rows keep their sums and peaks whole,
    # the spark's header is the short wording; the batch lane's line wraps, uncut.
    narrow = CliRunner(env={"COLUMNS": "60"}).invoke(main, ["stats", "--minutes", "15"])
    assert narrow.exit_code == 0, narrow.output
    _lines_fit(narrow.output, 60)
    assert "\x1b[" not in narrow.output
    head = next(ln for ln in narrow.output.splitlines() if "1 cell = 1 min" in ln)
    assert head.split()[-2:] == ["window", "peak/min"] and "oldest left" not in head
    usd = next(ln for ln in narrow.output.splitlines() if ln.startswith("USD "))
    assert usd.split()[-2:] == ["185,185.17", "12,345.68"]  # whole, right-aligned
    assert visible_len(usd) == visible_len(head)
    assert "saved $0.0000" in narrow.output and "…" not in usd

    # A week on a wide terminal, in colour: cells of several minutes, still fitted.
    data = collect(app, 10_080)
    wide = render(data, width=100, colour=True)
    assert "\x1b[" in wide
    _lines_fit(wide, 100)
    assert "1 cell = " in wide and "1 cell = 1 min" not in wide
    assert "sonnet: spend_limit" in wide


def test_no_color_and_sparkline_and_table_units(monkeypatch: pytest.MonkeyPatch) -> None:
    from agentjobs.cli.table import sparkline, table, use_colour

    class Tty:
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    assert use_colour(Tty())  # type: ignore[arg-type]
    monkeypatch.setenv("NO_COLOR", "1")
    assert not use_colour(Tty())  # type: ignore[arg-type]
    assert sparkline([0, 1, 2, 4, 8]) == " ▁▂▄█"
    assert sparkline([0, 0, 0]) == "▁▁▁"
    assert sparkline([1, 1, 0, 0, 5, 3], cells=3) == "▂ █"  # pairs summed: 2, 0, 8
    assert table([["a", "1"], ["long name", "1,234"]], header=["", "n"]) == [
        "               n",
        "a              1",
        "long name  1,234",
    ]
