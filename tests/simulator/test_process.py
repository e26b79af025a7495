"""``agentjobs sim`` as a process: help, ready line, environment, SIGTERM."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys

import anthropic
from click.testing import CliRunner

from agentjobs.simulator.command import sim
from agentjobs.simulator.config import SimConfig


def test_help_documents_every_setting() -> None:
    result = CliRunner().invoke(sim, ["--help"], terminal_width=200)
    assert result.exit_code == 0
    for f in dataclasses.fields(SimConfig):
        assert "--" + f.name.replace("_", "-") in result.output, f.name
        assert "AGENTJOBS_SIM_" + f.name.upper() in result.output, f.name
    for word in ("[[sim:output_tokens=N]]", "[[sim:error=CODE]]", "/_sim/stats", "--port"):
        assert word in result.output


def test_bad_setting_is_a_usage_error() -> None:
    result = CliRunner().invoke(sim, ["--fault-529", "0.8", "--fault-500", "0.8"])
    assert result.exit_code == 2 and "sum to at most 1" in result.output


def test_from_env() -> None:
    config = SimConfig.from_env(
        {"AGENTJOBS_SIM_RPM": "50", "AGENTJOBS_SIM_ROUND_REMAINING": "false",
         "AGENTJOBS_SIM_SPEND_LIMIT_USD": "", "AGENTJOBS_SIM_HAIKU_ITPM": "30000"}
    )  # fmt: skip
    assert config.rpm == 50 and config.round_remaining is False
    assert config.spend_limit_usd is None and config.limit("haiku", "itpm") == 30_000


def test_subprocess_ready_line_env_and_sigterm(tmp_path: str) -> None:
    env = {**os.environ, "AGENTJOBS_SIM_RPM": "77", "AGENTJOBS_SIM_LATENCY_MEDIAN_MS": "0"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentjobs.simulator", "--port", "0", "--seed", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # blocks until ready (or the process dies)
        assert line.startswith("agentjobs simulator listening on http://127.0.0.1:"), line
        url = line.split()[-1]
        with anthropic.Anthropic(base_url=url, api_key="k", max_retries=0) as c:
            raw = c.messages.with_raw_response.create(
                model="haiku", max_tokens=5, messages=[{"role": "user", "content": "hi"}]
            )
        assert raw.headers["anthropic-ratelimit-requests-limit"] == "77"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
