"""The console's dead-letter replay of an agent step re-opens its session, as
``agentjobs dlq replay`` does: a step dead-lettered by a permanent error (the simulator
refusing the workers' key), the cause fixed, replayed from the page in headless
Chromium; the page links the re-opened session and the session completes. Real Redis,
an in-process worker, the simulator."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import agentjobs.agents.tasks  # noqa: F401  (registers the loop's tasks on the app)
from agentjobs.agents import record
from agentjobs.agents.agent import Agent
from agentjobs.agents.tool import tool
from agentjobs.console.app import Console
from agentjobs.console.server import make
from agentjobs.contrib.pytest_plugin import all_queues, in_process_worker, purge
from agentjobs.contrib.testing import wait_for
from agentjobs.keys import dead_letter_id
from agentjobs.reliability import deadletter

CHROMIUM = "/usr/bin/chromium"
QUEUES = (*all_queues(), "agentjobs.tools")
pw_sync = pytest.importorskip("playwright.sync_api")


@tool
def console_echo(word: str) -> str:
    """Say a word back."""
    return word


AGENT = Agent(
    "console_replay",
    model="haiku",
    system="[[sim:tool_rounds=1]]",
    tools=[console_echo],
    max_tokens=128,
)


@pytest.fixture
def refusing(state_redis: Any, fresh_sim: Any) -> Iterator[Any]:
    """A worker, and a simulator that refuses its key until the test fixes it."""
    purge(QUEUES)
    with in_process_worker(QUEUES, concurrency=4):
        fresh_sim.configure(api_key="not-the-workers-key")
        try:
            yield fresh_sim
        finally:
            fresh_sim.configure(api_key=None)
    purge(QUEUES)


@pytest.fixture
def page(agentjobs_redis: Any) -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHROMIUM} missing: CI must run the browser tests")
        pytest.skip(f"{CHROMIUM} missing (apt-get install chromium)")
    with pw_sync.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        server = make("127.0.0.1", 0, Console(), {})  # loopback: no auth
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield browser.new_context(base_url=f"http://127.0.0.1:{server.server_port}").new_page()
        finally:
            server.shutdown()
            server.server_close()
            browser.close()


def test_replaying_a_dead_step_from_the_page_reopens_its_session(refusing: Any, page: Any) -> None:
    session = AGENT.start("Echo 'console'.")
    assert session.wait(timeout=60)["status"] == "failed"
    dl_id = dead_letter_id(f"{session.id}:1")
    assert deadletter.get(dl_id) is not None
    refusing.configure(api_key=None)  # the cause fixed

    page.goto(f"/deadletters/{dl_id}")
    page.locator("form[action='/deadletters/replay'] button").first.click()
    status = page.get_by_role("status")
    pw_sync.expect(status).to_contain_text(f"session {session.id} step 1")
    reopened = page.locator("#reopened").get_by_role("link", name=f"session {session.id}")
    pw_sync.expect(reopened).to_have_count(1)

    result = session.wait(timeout=60)
    assert result["status"] == "completed" and result["error"] is None
    first = record.step_entry(session.record(), 1)
    assert first is not None and first["status"] == "done" and first["replays"] == 1
    wait_for(lambda: deadletter.get(dl_id) is None, timeout=20)  # the step's success

    reopened.click()
    pw_sync.expect(page).to_have_url(re.compile(f"/sessions/{session.id}$"))
    assert "completed" in page.locator("table.pairs").inner_text()
