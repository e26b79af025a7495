"""``agentjobs worker FAMILY``: the celery argv it builds, that any flag passes through, and
that a worker whose calls cannot succeed refuses to start (one line, exit status 1)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from agentjobs.cli import main
from agentjobs.cli.worker import worker_argv
from agentjobs.contrib.testing import WorkerProcess, free_port
from agentjobs.errors import ConfigurationError
from agentjobs.settings import reset_settings


def test_defaults_equal_the_documented_celery_command() -> None:
    assert worker_argv("haiku") == [
        *("worker", "-Q", "claude.haiku", "-P", "threads", "-c", "32", "-n", "haiku@%h")
    ]


@pytest.mark.parametrize(
    ("extra", "dropped"),
    [
        (["-c", "64"], "-c"),
        (["--concurrency=8"], "-c"),
        (["--autoscale", "64,4"], "-c"),
        (["-P", "gevent"], "-P"),
        (["--pool=solo"], "-P"),
        (["-n", "haiku2@%h"], "-n"),
        (["-Q", "claude.haiku,other"], "-Q"),
    ],
)
def test_given_flags_replace_the_defaults(extra: list[str], dropped: str) -> None:
    argv = worker_argv("sonnet", extra)
    assert argv[-len(extra) :] == extra
    assert dropped not in argv[: -len(extra)]


def test_other_flags_pass_through_unchanged() -> None:
    argv = worker_argv("opus", ["-l", "info", "--without-gossip", "-E"])
    assert argv == [
        *("worker", "-Q", "claude.opus", "-P", "threads", "-c", "32", "-n", "opus@%h"),
        *("-l", "info", "--without-gossip", "-E"),
    ]


def test_unknown_family_is_refused() -> None:
    with pytest.raises(ValueError, match="family must be one of haiku, sonnet, opus"):
        worker_argv("gpt")
    result = CliRunner().invoke(main, ["worker", "gpt"])
    assert result.exit_code == 2
    assert "'gpt' is not one of 'haiku', 'sonnet', 'opus'" in result.output


# -- preflight: a worker that could only dead-letter its tasks does not start ----------

_ANTHROPIC = (
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "ANTHROPIC_BASE_URL",
    "AGENTJOBS_SIM_URL",
)
# Celery warns whoever starts a worker as root (tests and CI do; the image does not).
_NOT_ROOT_WARNING = {"PYTHONWARNINGS": "ignore:You're running the worker with superuser"}


def _worker_cmd(plain_celery: bool) -> list[str]:
    if plain_celery:
        return [sys.executable, "-m", "celery", "-A", "agentjobs", "worker", "-Q", "claude.haiku"]
    return [sys.executable, "-m", "agentjobs", "worker", "haiku"]


def _refused(env: dict[str, str], plain_celery: bool, tmp_path: Path) -> str:
    """Start a worker; assert it exits 1 printing one line; that line."""
    base = {k: v for k, v in os.environ.items() if k not in _ANTHROPIC}
    proc = subprocess.run(
        [*_worker_cmd(plain_celery), "-n", f"preflight-{uuid.uuid4().hex[:6]}@%h"],
        env={**base, **_NOT_ROOT_WARNING, **env},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    out = (proc.stdout + proc.stderr).strip()
    assert proc.returncode == 1, out
    assert len(out.splitlines()) == 1, out
    assert out.startswith("Error: worker not started: "), out
    return out


@pytest.mark.parametrize("plain_celery", [False, True], ids=["agentjobs", "celery"])
def test_no_credentials_no_simulator_refuses_to_start(plain_celery: bool, tmp_path: Path) -> None:
    line = _refused({}, plain_celery, tmp_path)
    assert "no Anthropic credentials" in line and "ANTHROPIC_API_KEY" in line
    assert "ANTHROPIC_BASE_URL=http://127.0.0.1:8788" in line


def test_simulator_url_that_nothing_answers_refuses_to_start(tmp_path: Path) -> None:
    # compose without `--profile sim` and without a key: AGENTJOBS_SIM_URL names a
    # simulator that is not running
    url = f"http://127.0.0.1:{free_port()}"
    line = _refused(
        {"AGENTJOBS_SIM_URL": url, "ANTHROPIC_API_KEY": "", "AGENTJOBS_CONNECT_TIMEOUT_S": "1"},
        False,
        tmp_path,
    )
    assert f"no simulator answers at {url} (AGENTJOBS_SIM_URL)" in line
    assert "set ANTHROPIC_API_KEY" in line


def test_malformed_base_url_refuses_to_start(tmp_path: Path) -> None:
    env = {"ANTHROPIC_API_KEY": "sk-ant-x", "ANTHROPIC_BASE_URL": "127.0.0.1:8788"}
    line = _refused(env, True, tmp_path)
    assert "ANTHROPIC_BASE_URL='127.0.0.1:8788' is not an http(s) URL" in line


@pytest.mark.parametrize("plain_celery", [False, True], ids=["agentjobs", "celery"])
def test_worker_starts_against_the_simulator_without_a_key(
    plain_celery: bool, sim: Any, tmp_path: Path
) -> None:
    # no key: the simulator at a local ANTHROPIC_BASE_URL takes the stand-in key
    w = WorkerProcess(
        "haiku",
        {"ANTHROPIC_API_KEY": "", "ANTHROPIC_BASE_URL": sim.base_url},
        log_dir=str(tmp_path),
        plain_celery=plain_celery,
    )
    try:
        w.start(ready_timeout=60)
        assert "worker not started" not in w.log()
    finally:
        w.stop()


def test_preflight_with_a_key_only_warns_when_the_api_is_unreachable(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from agentjobs.api import client

    for name in _ANTHROPIC:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-x")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", f"http://127.0.0.1:{free_port()}")
    reset_settings()
    try:
        with caplog.at_level("WARNING", logger="agentjobs.api.client"):
            t = client.preflight(wait_s=0)
        assert t.api_key == "sk-ant-x" and not t.stand_in
        assert "cannot be reached now" in caplog.text
        # the same URL without a key is refused: there is no real API to fall back on
        monkeypatch.delenv("ANTHROPIC_API_KEY")
        with pytest.raises(ConfigurationError, match="no simulator answers at"):
            client.preflight(wait_s=0)
    finally:
        monkeypatch.undo()
        reset_settings()


def test_help_quick_start_points_the_worker_at_the_simulator_it_starts() -> None:
    import re

    text = CliRunner().invoke(main, ["--help"]).output
    sim_port = re.search(r"agentjobs sim --port (\d+)", text)
    base_url = re.search(r"export ANTHROPIC_BASE_URL=(http://127\.0\.0\.1:(\d+))", text)
    assert sim_port and base_url, text
    assert base_url.group(2) == sim_port.group(1)
    # in that order: the worker starts after the variable is set
    assert text.index("export ANTHROPIC_BASE_URL") < text.index("agentjobs worker haiku")
