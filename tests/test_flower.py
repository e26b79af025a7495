"""Flower against a live worker: auth required when configured, dead letters listed as
failures, /metrics open for Prometheus; and the auth rule of `agentjobs flower`."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import time
from typing import Any

import click
import pytest

from agentjobs import complete
from agentjobs.cli.flower import flower_argv
from agentjobs.contrib.testing import free_port, wait_for
from agentjobs.contrib.testing import http_get as _get
from agentjobs.settings import reset_settings


def test_auth_required_off_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGENTJOBS_FLOWER_BASIC_AUTH", raising=False)
    reset_settings()
    assert flower_argv("127.0.0.1", 5555, False) == ["flower", "--address=127.0.0.1", "--port=5555"]
    with pytest.raises(click.ClickException, match="AGENTJOBS_FLOWER_BASIC_AUTH"):
        flower_argv("0.0.0.0", 5555, False)
    assert "--basic-auth" not in " ".join(flower_argv("0.0.0.0", 5555, True))
    monkeypatch.setenv("AGENTJOBS_FLOWER_BASIC_AUTH", "ops:pw")
    reset_settings()
    assert flower_argv("0.0.0.0", 1, False)[-1] == "--basic-auth=ops:pw"
    monkeypatch.setenv("AGENTJOBS_FLOWER_BASIC_AUTH", "nopassword")
    reset_settings()
    with pytest.raises(click.ClickException, match="user:password"):
        flower_argv("127.0.0.1", 1, False)
    monkeypatch.undo()
    reset_settings()


@pytest.mark.parametrize(
    ("extra", "env"),
    [
        (("--basic-auth=ops:pw",), {}),
        (("--basic_auth=ops:pw,dev:pw2",), {}),
        (("--auth=.*@example.com", "--auth_provider=flower.views.auth.GithubLoginHandler"), {}),
        ((), {"FLOWER_BASIC_AUTH": "ops:pw"}),
        ((), {"FLOWER_AUTH": "ops@example.com"}),
    ],
)
def test_flowers_own_auth_is_accepted_off_loopback(
    extra: tuple[str, ...], env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AGENTJOBS_FLOWER_BASIC_AUTH", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    reset_settings()
    try:
        argv = flower_argv("0.0.0.0", 5555, False, extra)
        # Flower's own options reach it untouched; none of ours is added.
        assert argv == ["flower", "--address=0.0.0.0", "--port=5555", *extra]
    finally:
        monkeypatch.undo()
        reset_settings()


@pytest.mark.parametrize(
    ("extra", "env"),
    [
        (("--basic-auth=",), {}),  # empty: Flower would run without a password
        (("--oauth2_key=k", "--oauth2_secret=s"), {}),  # Flower ignores these without --auth
        (("--url-prefix=flower",), {"FLOWER_BASIC_AUTH": ""}),
    ],
)
def test_no_real_auth_is_still_refused_off_loopback(
    extra: tuple[str, ...], env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AGENTJOBS_FLOWER_BASIC_AUTH", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    reset_settings()
    try:
        with pytest.raises(click.ClickException, match="needs authentication"):
            flower_argv("0.0.0.0", 5555, False, extra)
    finally:
        monkeypatch.undo()
        reset_settings()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "env"),
    [
        ((), {"FLOWER_BASIC_AUTH": "ops:s3cret"}),
        (("--basic-auth=ops:s3cret",), {}),
        (
            (
                "--auth=ops@example.com",
                "--auth_provider=flower.views.auth.GithubLoginHandler",
                "--oauth2_key=k",
                "--oauth2_secret=s",
                "--oauth2_redirect_uri=http://127.0.0.1/login",
            ),
            {},
        ),
    ],
    ids=["FLOWER_BASIC_AUTH", "--basic-auth", "--auth"],
)
def test_flower_starts_off_loopback_with_its_own_auth(
    args: tuple[str, ...], env: dict[str, str], tmp_path: Any
) -> None:
    port = free_port()
    full_env = {k: v for k, v in os.environ.items() if k != "AGENTJOBS_FLOWER_BASIC_AUTH"}
    log_path = tmp_path / "flower.log"
    log = open(log_path, "wb")  # noqa: SIM115 - closed below
    argv = [sys.executable, "-m", "agentjobs", "flower", "--address", "0.0.0.0"]
    proc = subprocess.Popen(
        [*argv, "--port", str(port), *args],
        env={**full_env, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"flower exited:\n{log_path.read_text()}")
        return _get(base + "/healthcheck")[0] == 200

    try:
        wait_for(up, timeout=30, what="flower up")
        if any(a.startswith("--auth=") for a in args):
            # OAuth: without a session cookie every page sends the browser to log in
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/api/tasks")
            resp = conn.getresponse()
            assert resp.status == 302 and resp.getheader("Location", "").startswith("/login")
            conn.close()
        else:
            assert _get(base + "/api/tasks")[0] == 401
            assert _get(base + "/api/tasks", "ops:wrong")[0] == 401
            assert _get(base + "/api/tasks", "ops:s3cret")[0] == 200
    finally:
        proc.terminate()
        proc.wait(15)
        log.close()


@pytest.mark.slow
def test_flower_live_with_auth(worker: Any, fresh_sim: Any, tmp_path: Any) -> None:
    port = free_port()
    env = {**os.environ, "AGENTJOBS_FLOWER_BASIC_AUTH": "ops:s3cret"}
    log = open(tmp_path / "flower.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentjobs", "flower", "--address", "0.0.0.0", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _get(base + "/healthcheck")[0] == 200, timeout=30, what="flower up")

        # Flower learns of tasks from events, which are not kept: one sent before its
        # event receiver has subscribed is never shown. Healthcheck answers before that,
        # so wait until a probe task shows up (a fresh probe each round).
        def listed() -> dict[str, Any]:
            status, body = _get(base + "/api/tasks", "ops:s3cret")
            return json.loads(body) if status == 200 else {}

        def probe_seen() -> bool:
            probe = complete.delay(prompt=f"flower probe {time.monotonic_ns()}", model="haiku")
            probe.get(timeout=30)
            try:
                wait_for(lambda: probe.id in listed(), timeout=3, what="probe")
            except TimeoutError:
                return False
            return True

        wait_for(probe_seen, timeout=90, interval=0, what="flower receiving task events")
        ok = complete.delay(prompt="flower ok", model="haiku")
        bad = complete.delay(prompt="flower bad [[sim:error=400]]", model="haiku")
        ok.get(timeout=30)
        with pytest.raises(Exception, match="dead-lettered"):
            bad.get(timeout=30)

        assert _get(base + "/api/tasks")[0] == 401
        assert _get(base + "/api/tasks", "ops:wrong")[0] == 401
        assert _get(base + "/", "ops:wrong")[0] == 401

        def failed() -> dict[str, Any]:
            status, body = _get(base + "/api/tasks?state=FAILURE", "ops:s3cret")
            return json.loads(body) if status == 200 else {}

        tasks = wait_for(lambda: bad.id in failed() and failed(), timeout=20, what="failure")
        assert ok.id not in tasks
        entry = tasks[bad.id]
        assert entry["state"] == "FAILURE"
        assert "DeadLetteredError" in entry["exception"] and "dl_" in entry["exception"]
        status, _ = _get(base + "/api/workers?refresh=1", "ops:s3cret")
        assert status == 200
        # Flower's own Prometheus endpoint, for the scrape config in deploy/
        status, body = _get(base + "/metrics")
        assert status == 200 and b"flower_events_total" in body
    finally:
        proc.terminate()
        proc.wait(15)
        log.close()
