"""Which API the client talks to: the real one is one variable away."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agentjobs.api import client
from agentjobs.errors import ConfigurationError
from agentjobs.settings import reset_settings

_VARS = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL", "AGENTJOBS_SIM_URL")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    for var in _VARS:
        monkeypatch.delenv(var, raising=False)
    reset_settings()
    client.reset_client()
    yield monkeypatch
    reset_settings()
    client.reset_client()


def _target(monkeypatch: pytest.MonkeyPatch, **env: str) -> tuple[str, str | None]:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    reset_settings()
    client.reset_client()
    c = client.get_client()
    return str(c.base_url).rstrip("/"), c.api_key


def test_key_alone_means_the_real_api_even_with_a_simulator_configured(clean_env):
    url, key = _target(clean_env, ANTHROPIC_API_KEY="sk-ant-real", AGENTJOBS_SIM_URL="http://sim:1")
    assert (url, key) == ("https://api.anthropic.com", "sk-ant-real")


def test_no_key_uses_the_simulator_url(clean_env):
    url, key = _target(clean_env, AGENTJOBS_SIM_URL="http://simulator:8788")
    assert url == "http://simulator:8788"
    assert key == client._LOCAL_KEY


def test_empty_variables_count_as_unset(clean_env):
    # docker compose's "${VAR:-}" passes empty strings
    url, _ = _target(
        clean_env, ANTHROPIC_API_KEY="", ANTHROPIC_BASE_URL="", AGENTJOBS_SIM_URL="http://s:2"
    )
    assert url == "http://s:2"
    url, key = _target(clean_env, ANTHROPIC_API_KEY="sk-ant-real")
    assert (url, key) == ("https://api.anthropic.com", "sk-ant-real")


def test_a_local_base_url_needs_no_key(clean_env):
    url, key = _target(clean_env, ANTHROPIC_BASE_URL="http://127.0.0.1:8788")
    assert (url, key) == ("http://127.0.0.1:8788", client._LOCAL_KEY)


def test_no_credentials_for_a_remote_api_is_a_clear_error(clean_env):
    with pytest.raises(ConfigurationError, match="ANTHROPIC_API_KEY"):
        _target(clean_env, ANTHROPIC_BASE_URL="https://proxy.example.com")
