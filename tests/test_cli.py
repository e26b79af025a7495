"""The command line's own behaviour: configuration errors are one line, not a traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    ("var", "value", "expected"),
    [
        ("AGENTJOBS_RESULT_TTL_S", "abc", "AGENTJOBS_RESULT_TTL_S"),
        ("AGENTJOBS_RETRY_POLICIES", '{"opus": {"max_atempts": 8}}', "max_atempts"),
        ("AGENTJOBS_BUDGET_TENANTS", "{bad", "AGENTJOBS_BUDGET_TENANTS: not valid JSON"),
        ("AGENTJOBS_RETRY_POLICIES", '{"opus": ', "AGENTJOBS_RETRY_POLICIES: not valid JSON"),
        ("AGENTJOBS_PRICES_FILE", "/nonexistent/prices.json", "AGENTJOBS_PRICES_FILE"),
    ],
)
def test_a_bad_setting_is_one_clear_line(var: str, value: str, expected: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "agentjobs", "worker", "haiku"],
        env={**os.environ, var: value},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "bad setting" in proc.stderr and expected in proc.stderr
    assert "Traceback" not in proc.stderr
    assert "\n" not in proc.stderr.strip()  # one line
