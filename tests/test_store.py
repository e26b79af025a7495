"""The state store's shared parts: values held once per process, Lua script files, unlock."""

from __future__ import annotations

import glob
import os
import re
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from agentjobs import store
from agentjobs.api import client
from agentjobs.limiter.admission import get_limiter
from agentjobs.reliability import ledger
from agentjobs.settings import reset_settings

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "agentjobs"


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    yield monkeypatch
    monkeypatch.undo()
    reset_settings()
    client.reset_client()


def in_child(fn: Callable[[], bytes], timeout: float = 10.0) -> bytes | None:
    """Run ``fn`` in a forked child; what it wrote, or None if it did not finish in time
    (the child is killed)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: no pytest machinery, just the answer
        try:
            os.write(w, fn())
        finally:
            os._exit(0)
    os.close(w)
    deadline = time.monotonic() + timeout
    while os.waitpid(pid, os.WNOHANG) == (0, 0):
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            os.close(r)
            return None
        time.sleep(0.01)  # polling the child's exit, with a deadline
    try:
        return os.read(r, 1024)
    finally:
        os.close(r)


# -- per_process ------------------------------------------------------------------------


def test_per_process_builds_once_per_arguments() -> None:
    built: list[tuple[int, str]] = []

    @store.per_process
    def make(n: int, *, tag: str = "") -> object:
        built.append((n, tag))
        return object()

    a = make(1)
    assert make(1) is a and built == [(1, "")]
    b = make(2)
    assert b is not a and make(2) is b
    assert make(1) is not a  # only the latest arguments' value is kept
    assert make(1, tag="x") is not make(1)
    c = make(1)
    make.reset()
    assert make(1) is not c
    assert built == [(1, ""), (2, ""), (1, ""), (1, "x"), (1, ""), (1, "")]


def test_per_process_compares_arguments_by_value() -> None:
    @store.per_process
    def make(url: str) -> object:
        return object()

    a = make("redis://h/1")
    assert make("".join(["redis://h/", "1"])) is a  # an equal, not identical, argument


def test_a_forked_child_builds_its_own_value() -> None:
    @store.per_process
    def make() -> object:
        return object()

    parent = make()
    assert in_child(lambda: b"own" if make() is not parent else b"inherited") == b"own"
    assert make() is parent


def test_a_fork_while_another_thread_builds_cannot_deadlock_the_child() -> None:
    started, finish = threading.Event(), threading.Event()

    @store.per_process
    def make() -> str:
        if threading.current_thread().name == "slow-builder":
            started.set()
            finish.wait(10)
        return "built"

    t = threading.Thread(target=make, name="slow-builder")
    t.start()
    try:
        assert started.wait(5)  # the builder holds the lock now
        assert in_child(lambda: make().encode(), timeout=5) == b"built"
    finally:
        finish.set()
        t.join(5)


@pytest.mark.parametrize(
    "accessor",
    [store.state_redis, ledger.client, client.get_client, get_limiter],
    ids=["state_redis", "ledger", "api_client", "limiter"],
)
def test_the_process_singletons_are_rebuilt_after_a_fork(
    accessor: Callable[[], Any], env: pytest.MonkeyPatch
) -> None:
    env.setenv("ANTHROPIC_API_KEY", "sk-ant-test-fork")  # a client needs credentials
    reset_settings()
    client.reset_client()
    parent = accessor()
    assert accessor() is parent
    assert in_child(lambda: b"own" if accessor() is not parent else b"inherited") == b"own"


def test_state_redis_follows_the_url(env: pytest.MonkeyPatch, redis_server: Any) -> None:
    first = store.state_redis()
    reset_settings()
    assert store.state_redis() is first  # new settings, same URL: the same pool
    env.setenv("AGENTJOBS_REDIS_URL", f"{redis_server.url}/3")
    reset_settings()
    other = store.state_redis()
    assert other is not first and other.connection_pool.connection_kwargs["db"] == 3


def test_the_limiter_follows_the_api_key(env: pytest.MonkeyPatch) -> None:
    env.setenv("ANTHROPIC_API_KEY", "sk-ant-first")
    lim = get_limiter()
    reset_settings()
    assert get_limiter() is lim  # the same values: the same limiter
    env.setenv("ANTHROPIC_API_KEY", "sk-ant-second")
    other = get_limiter()
    assert other is not lim and other.key_fingerprint != lim.key_fingerprint


# -- Lua scripts ------------------------------------------------------------------------


def _lua_files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.lua"))


def test_no_lua_inline_in_python() -> None:
    inline = [
        str(p.relative_to(ROOT))
        for p in PACKAGE.rglob("*.py")
        if "redis.call(" in p.read_text(encoding="utf-8")
    ]
    assert inline == []


def test_every_script_states_its_keys_and_argv_and_is_loaded() -> None:
    code = "\n".join(p.read_text(encoding="utf-8") for p in PACKAGE.rglob("*.py"))
    loaded = set(re.findall(r"""lua\(\s*"(agentjobs[\w.]*)",\s*"([\w.]+\.lua)"\s*\)""", code))
    assert loaded, "no store.lua(...) call found"
    files = {
        (p.parent.parent.relative_to(ROOT).as_posix().replace("/", "."), p.name)
        for p in _lua_files()
    }
    assert loaded == files  # every file is used, every name loaded exists
    for package, name in loaded:
        lines = store.lua(package, name).splitlines()
        header = "\n".join(line for line in _leading_comments(lines))
        assert header, f"{name} has no header comment"
        for used in sorted(set(re.findall(r"\b(KEYS|ARGV)\[", "\n".join(lines)))):
            assert f"{used}[" in header, f"{name} uses {used} without stating it in its header"


def _leading_comments(lines: list[str]) -> Iterator[str]:
    for line in lines:
        if not line.startswith("--"):
            return
        yield line


def test_every_script_is_shipped_in_the_package() -> None:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = data["tool"]["setuptools"]["package-data"]["agentjobs"]
    shipped = {m for pat in patterns for m in glob.glob(pat, root_dir=PACKAGE)}
    scripts = [p.relative_to(PACKAGE).as_posix() for p in _lua_files()]
    assert [p for p in scripts if p not in shipped] == []


def test_unlock_deletes_only_while_the_token_holds(state_redis: redis.Redis) -> None:
    state_redis.set("lock", "mine")
    assert store.unlock(state_redis, "lock", "theirs") is False
    assert state_redis.get("lock") == b"mine"
    assert store.unlock(state_redis, "lock", "mine") is True
    assert not state_redis.exists("lock")
    assert store.unlock(state_redis, "lock", "mine") is False  # already gone
