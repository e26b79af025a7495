"""``agentjobs submit``: validation with line numbers, ordered results, summary, timeout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner

from agentjobs import app
from agentjobs.cli import main
from agentjobs.cli.jobfile import percentile, read_requests
from agentjobs.contrib.testing import free_port

QUEUES = ("claude.haiku", "claude.sonnet", "claude.opus")


@pytest.fixture(autouse=True)
def _clean_state_store(state_redis: redis.Redis) -> None:
    """Each test starts with an empty state store: no limiter pause, budget or cache left
    by an earlier test in the session."""


def write_jsonl(path: Path, lines: list[Any]) -> Path:
    path.write_text(
        "\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n",
        encoding="utf-8",
    )
    return path


def queued() -> int:
    client = redis.Redis.from_url(app.conf.broker_url)
    try:
        return sum(int(client.llen(q)) for q in QUEUES)
    finally:
        client.close()


def test_percentile_nearest_rank() -> None:
    assert percentile([], 50) is None
    assert percentile([5.0], 99) == 5.0
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0


def test_read_requests_reports_each_bad_line_by_number() -> None:
    lines = [
        '{"prompt": "fine"}',
        "",  # blank lines are skipped but still counted
        '{"prompt": "broken"',
        '["a", "list"]',
        '{"prompt": "x", "max_tokens": 0}',
        '{"messages": [], "model": "sonnet"}',
    ]
    items = read_requests(lines)
    assert [i.line for i in items] == [1, 3, 4, 5, 6]
    assert items[0].status == "PENDING" and items[0].kwargs == {"prompt": "fine"}
    errors = {i.line: i.error["message"] for i in items if i.error}
    assert errors[3].startswith("not valid JSON: Expecting ',' delimiter")
    assert errors[4] == "expected a JSON object of complete() keyword arguments, got list"
    assert "max_tokens must be at least 1" in errors[5]
    assert "messages must not be empty" in errors[6]


def test_bytes_that_are_not_utf8_name_their_line() -> None:
    items = read_requests([b'\xef\xbb\xbf{"prompt": "bom"}\n', b'{"prompt": "\xff"}\n'])
    assert items[0].kwargs == {"prompt": "bom"}
    assert items[1].status == "INVALID" and items[1].line == 2
    assert items[1].error == {
        "type": "RequestError",
        "message": "not UTF-8 text: invalid start byte at byte 12",
    }


def test_invalid_file_submits_nothing_and_names_the_lines(
    tmp_path: Path, purge_queues: None
) -> None:
    src = write_jsonl(
        tmp_path / "in.jsonl",
        [{"prompt": "ok"}, "not json", {"prompt": "x", "model": "gpt-9"}, {"prompt": "ok 2"}],
    )
    before = queued()
    result = CliRunner().invoke(main, ["submit", str(src), "-o", str(tmp_path / "out.jsonl")])
    assert result.exit_code == 2, result.output
    assert "2 of 4 lines are invalid; nothing was submitted" in result.stderr
    assert "line 2: not valid JSON" in result.stderr
    assert "line 3: invalid agentjobs.complete request: model: unknown model 'gpt-9'" in (
        result.stderr
    )
    assert "Traceback" not in result.output
    assert queued() == before
    assert not (tmp_path / "out.jsonl").exists()


def test_empty_file_is_a_usage_error(tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", ["", "  "])
    result = CliRunner().invoke(main, ["submit", str(src)])
    assert result.exit_code == 2
    assert "no requests" in result.stderr


def test_submit_writes_results_in_input_order_with_failures_and_summary(
    tmp_path: Path, fresh_sim: Any, worker: Any
) -> None:
    requests = [
        {"prompt": "first", "model": "haiku", "max_tokens": 50},
        {"prompt": "second [[sim:output_tokens=30]]", "model": "sonnet"},
        {"prompt": "third [[sim:error=400]]", "model": "haiku"},
        {"messages": [{"role": "user", "content": "fourth"}], "model": "opus", "max_tokens": 5},
        "this line is not JSON",
    ]
    src = write_jsonl(tmp_path / "in.jsonl", requests)
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(
        main, ["submit", str(src), "-o", str(out), "--json", "--skip-invalid", "--timeout", "60"]
    )
    assert result.exit_code == 1, result.output  # one failed, one invalid
    assert "skipping 1 invalid lines" in result.stderr
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["line"] for x in lines] == [1, 2, 3, 4, 5]
    assert [x["status"] for x in lines] == ["SUCCESS", "SUCCESS", "FAILURE", "SUCCESS", "INVALID"]
    ok = [x["result"] for x in lines if x["status"] == "SUCCESS"]
    assert [r["queue"] for r in ok] == ["claude.haiku", "claude.sonnet", "claude.opus"]
    assert ok[1]["usage"]["output_tokens"] == 30
    assert ok[2]["usage"]["output_tokens"] == 5 and ok[2]["stop_reason"] == "max_tokens"
    assert all(x["task_id"] for x in lines[:4]) and lines[4]["task_id"] is None
    failure = lines[2]["error"]
    assert "BadRequestError" in f"{failure['type']}: {failure['message']}"  # the API's 400
    assert lines[4]["error"]["message"].startswith("not valid JSON")

    summary = json.loads(result.stdout)
    assert summary["total"] == 5
    assert (summary["done"], summary["failed"], summary["invalid"]) == (3, 1, 1)
    assert summary["tokens"]["input"] == sum(r["usage"]["input_tokens"] for r in ok)
    assert summary["tokens"]["output"] == sum(r["usage"]["output_tokens"] for r in ok)
    assert summary["cost_usd"] == pytest.approx(sum(r["cost_usd"] for r in ok), abs=1e-6)
    assert summary["latency_ms"]["p50"] is not None and summary["latency_ms"]["p99"] is not None
    assert summary["limiter_wait_ms"]["p99"] == max(r["limiter_wait_ms"] for r in ok)
    assert summary["cached"] == 0
    assert summary["by_queue"] == {"claude.haiku": 1, "claude.opus": 1, "claude.sonnet": 1}
    # The simulator saw exactly the four valid requests, and answered what we recorded.
    stats = fresh_sim.stats()
    assert stats["messages"] == 4
    assert stats["output_tokens"] == summary["tokens"]["output"]


def test_text_summary_and_stdout_results(tmp_path: Path, fresh_sim: Any, worker: Any) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", [{"prompt": f"q{i}"} for i in range(3)])
    result = CliRunner().invoke(main, ["submit", str(src), "--no-progress"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(x) for x in result.stdout.splitlines()]
    assert [x["line"] for x in lines] == [1, 2, 3]
    assert "done 3/3, failed 0, invalid 0, timed out 0" in result.stderr
    assert "p50" in result.stderr and "p99" in result.stderr and "cost $" in result.stderr


def test_timeout_writes_unfinished_tasks_as_timeout(tmp_path: Path, purge_queues: None) -> None:
    # No worker runs: nothing can finish, so --timeout decides.
    src = write_jsonl(tmp_path / "in.jsonl", [{"prompt": "a"}, {"prompt": "b", "model": "opus"}])
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(
        main, ["submit", str(src), "-o", str(out), "--timeout", "0.3", "--json"]
    )
    assert result.exit_code == 1, result.output
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["status"] for x in lines] == ["TIMEOUT", "TIMEOUT"]
    assert "no result after 0.3 s" in lines[0]["error"]["message"]
    assert json.loads(result.stdout)["timed_out"] == 2


def test_unreachable_broker_is_one_clear_line(tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", [{"prompt": "hi"}])
    dead = f"redis://127.0.0.1:{free_port()}"
    env = {**os.environ, "AGENTJOBS_BROKER_URL": f"{dead}/0", "AGENTJOBS_REDIS_URL": f"{dead}/1"}
    env.pop("AGENTJOBS_RESULT_BACKEND", None)
    proc = subprocess.run(
        [sys.executable, "-m", "agentjobs", "submit", str(src)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith("Error: cannot reach the broker redis://")
    assert "Traceback" not in proc.stderr


def test_ctrl_c_writes_the_results_so_far_and_says_what_still_runs(
    tmp_path: Path, purge_queues: None
) -> None:
    """SIGINT to a real ``agentjobs submit`` once every line is sent (no worker runs, so
    none can finish first): the output has each line as INTERRUPTED with its task id,
    the tasks stay queued (nothing is revoked), and stderr says so and where results go."""
    import signal

    from agentjobs.contrib.testing import wait_for

    before = queued()
    src = write_jsonl(tmp_path / "in.jsonl", [{"prompt": f"q{i}"} for i in range(3)])
    out = tmp_path / "out.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentjobs", "submit", str(src), "-o", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: queued() == before + 3, timeout=60, what="the 3 tasks sent")
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, stderr
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["status"] for x in lines] == ["INTERRUPTED"] * 3
    assert all(x["task_id"] for x in lines)
    assert "still queued or running" in lines[0]["error"]["message"]
    assert queued() == before + 3  # still there for the workers
    assert f"results so far written to {out}" in stderr
    assert "3 task(s) already sent are still queued or running" in stderr
    assert "result backend for 86,400 s" in stderr and "celery -A agentjobs result" in stderr
    assert "Traceback" not in stderr and stdout == ""
