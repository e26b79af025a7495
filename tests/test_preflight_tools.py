"""The preflight of a worker that makes no Claude call: ``agentjobs worker tools``
(agent sessions' tool calls) starts with no credentials and no simulator, while any
worker that also consumes a ``claude.*`` queue still refuses to start without them."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

from agentjobs.contrib.testing import WorkerProcess

# No key, no token, no base URL, no simulator: a model worker could only dead-letter.
NOTHING = {
    "ANTHROPIC_API_KEY": "",
    "ANTHROPIC_AUTH_TOKEN": "",
    "ANTHROPIC_BASE_URL": "",
    "AGENTJOBS_SIM_URL": "",
    "PYTHONWARNINGS": "ignore:You're running the worker with superuser",
}


def test_a_tools_worker_starts_without_credentials(tmp_path: Path) -> None:
    w = WorkerProcess("tools", NOTHING, args=("-c", "2"), log_dir=str(tmp_path))
    try:
        w.start(ready_timeout=60)
        assert "worker not started" not in w.log()
        assert "agentjobs.tools" in w.log()
    finally:
        w.stop()


def test_a_worker_of_tools_and_a_claude_queue_still_needs_them(tmp_path: Path) -> None:
    cmd = [
        sys.executable,
        "-m",
        "agentjobs",
        "worker",
        "tools",
        "-Q",
        "agentjobs.tools,claude.haiku",
    ]
    proc = subprocess.run(
        [*cmd, "-n", f"preflight-{uuid.uuid4().hex[:6]}@%h"],
        env={**os.environ, **NOTHING},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    out = (proc.stdout + proc.stderr).strip()
    assert proc.returncode == 1, out
    assert out.startswith("Error: worker not started: no Anthropic credentials"), out
    assert len(out.splitlines()) == 1, out
