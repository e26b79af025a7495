"""``agentjobs submit``'s progress: done and failed counts, dollars so far, rate, ETA; plain
lines off a terminal, one line redrawn on one (a real pseudo-terminal)."""

from __future__ import annotations

import io
import json
import os
import pty
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner

from agentjobs.cli import main
from agentjobs.cli.jobfile import Item
from agentjobs.cli.progress import Progress, duration
from agentjobs.cli.table import usd

_LINE = re.compile(
    r"^running: (\d+)/(\d+) done, (\d+) failed, \$(\d+\.\d{4,}) so far, .*elapsed \d", re.M
)


@pytest.fixture(autouse=True)
def _clean_state_store(state_redis: redis.Redis) -> None:
    """No limiter pause, budget or cached answer left by an earlier test."""


def _requests(path: Path, n: int, failing: set[int]) -> Path:
    lines = []
    for i in range(n):
        prompt = f"progress {i}" + (" [[sim:error=400]]" if i in failing else "")
        lines.append(json.dumps({"prompt": prompt, "model": "haiku", "max_tokens": 40}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _cost(out: Path) -> float:
    records = [json.loads(x) for x in out.read_text().splitlines()]
    return sum(r["result"]["cost_usd"] for r in records if r["status"] == "SUCCESS")


def test_plain_lines_count_failures_and_dollars(
    tmp_path: Path, fresh_sim: Any, worker: Any
) -> None:
    src = _requests(tmp_path / "in.jsonl", 10, failing={2, 7})
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(main, ["submit", str(src), "-o", str(out), "--timeout", "60"])
    assert result.exit_code == 1, result.output  # two failed
    # Not a terminal: no redraws, one plain line for each tenth of the batch (1 task).
    assert "\r" not in result.stderr and "\x1b[" not in result.stderr
    found = [tuple(m.groups()) for m in _LINE.finditer(result.stderr)]
    assert len(found) == 10, result.stderr
    finished = [int(done) + int(failed) for done, _, failed, _ in found]
    assert finished == list(range(1, 11))
    assert all(total == "10" for _, total, _, _ in found)
    done, _, failed, dollars = found[-1]
    assert (done, failed) == ("8", "2")
    assert float(dollars) == pytest.approx(_cost(out), abs=5e-5)  # what the results cost
    assert float(found[0][3]) <= float(dollars)
    # Then the summary, which agrees.
    assert "done 8/10, failed 2" in result.stdout


def test_terminal_line_is_redrawn_in_place(tmp_path: Path, fresh_sim: Any, worker: Any) -> None:
    src = _requests(tmp_path / "in.jsonl", 6, failing={4})
    out = tmp_path / "out.jsonl"
    master, slave = pty.openpty()
    chunks: list[bytes] = []

    def read() -> None:
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO: the child closed its end
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "agentjobs", "submit", str(src), "-o", str(out)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=slave,
            timeout=120,
        )
    finally:
        os.close(slave)
    reader.join(10)
    os.close(master)
    shown = b"".join(chunks).decode()
    assert proc.returncode == 1, shown
    # Every state is drawn over the last one: \r, the line, erase to its end.
    assert "\r" in shown and "\x1b[K" in shown
    states = [s.removesuffix("\x1b[K") for s in shown.split("\r") if s.strip()]
    assert all("\n" not in s for s in states[:-1]), states  # no line feeds but the last
    final = states[-1].strip()
    m = _LINE.match(final)
    assert m is not None, final
    assert m.group(1, 2, 3) == ("5", "6", "1")
    assert float(m.group(4)) == pytest.approx(_cost(out), abs=5e-5)
    assert "ETA" not in final  # nothing left
    assert "done 5/6, failed 1" in proc.stdout.decode()  # the summary, on stdout


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _item(status: str, cost: float = 0.0) -> Item:
    item = Item(line=1, status=status)
    if status == "SUCCESS":
        item.result = {"cost_usd": cost}
    return item


def test_rate_and_eta_follow_the_last_minute() -> None:
    clock, stream = _Clock(), io.StringIO()
    p = Progress(200, stream=stream, tty=False, clock=clock)
    for _ in range(40):  # 40 in the first 20 s: 2/s
        clock.now += 0.5
        p.on_done(_item("SUCCESS", 0.01))
    assert p.rate() == pytest.approx(2.0)
    assert "2.0/s, ETA 1m20s" in p.line()  # 160 left at 2/s
    clock.now += 100  # a pause: nothing finished for 100 s
    for _ in range(10):
        clock.now += 1
        p.on_done(_item("FAILURE"))
    assert p.rate() == pytest.approx(10 / 60)  # only the last minute counts
    line = p.line()
    assert "40/200 done, 10 failed, $0.4000 so far, 10.0/min, ETA 15m00s" in line
    for _ in range(150):
        p.on_done(_item("TIMEOUT"))
    p.close()
    lines = stream.getvalue().splitlines()
    assert lines[-1].startswith("running: 40/200 done, 10 failed, 150 timed out, $0.4000")
    assert "ETA" not in lines[-1]
    # A line at the first finish, at each tenth (20 tasks), and when 30 s passed in
    # silence (the pause).
    heads = [ln.split(" done")[0].removeprefix("running: ") for ln in lines[:4]]
    assert heads == ["1/200", "20/200", "40/200", "40/200"]
    assert len(lines) == len(set(lines))


def test_duration() -> None:
    assert [duration(s) for s in (0, 59.4, 61, 3599, 3600, 7380)] == [
        "0s",
        "59s",
        "1m01s",
        "59m59s",
        "1h00m",
        "2h03m",
    ]


def test_a_few_cheap_calls_show_what_they_cost() -> None:
    # One Haiku call is about $0.00004: four decimals would print "$0.0000 so far".
    p = Progress(2, stream=io.StringIO(), clock=_Clock())
    p.on_done(_item("SUCCESS", 0.00004))
    assert "$0.000040 so far" in p.line()
    p.on_done(_item("SUCCESS", 0.25))
    assert "$0.2500 so far" in p.line()
    assert [usd(v) for v in (0, 0.0000123, 0.00099, 12.5, 1234.5)] == [
        "0.0000",
        "0.000012",
        "0.0010",
        "12.5000",
        "1,234.50",
    ]
