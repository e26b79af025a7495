"""Structured logs of the task path: every line a task writes carries its fields (task
id, idempotency key, queue, session, failure kind), as text or JSON, and none carries
the prompt or the API key unless AGENTJOBS_LOG_PROMPTS asks. Against a real in-process
worker and the simulator through the real SDK, with DEBUG on, where the SDK itself
logs each request's body."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from celery.signals import task_failure

import agentjobs.agents.tasks  # noqa: F401  (registers the loop's tasks on the app)
from agentjobs import DeadLetteredError, complete
from agentjobs.agents.agent import Agent
from agentjobs.agents.tool import tool
from agentjobs.api.client import reset_client
from agentjobs.api.events import api_call_started
from agentjobs.contrib.pytest_plugin import all_queues, in_process_worker, purge
from agentjobs.contrib.testing import WorkerProcess, wait_for
from agentjobs.settings import reset_settings
from agentjobs.telemetry import logs

PROMPT = "Quokka-marmalade ledger 4417 tells the story of the blue heron at dawn"
KEY = "sk-ant-api03-DistinctiveTestKey-4417-abcdefghijklmnop"
#: Loggers whose lines, written in the task's thread, are the task path's.
TASK_PATH = ("celery.app.trace", "agentjobs", "anthropic", "httpx", "httpcore")


@pytest.fixture
def captured(request: pytest.FixtureRequest, worker: Any) -> Iterator[io.StringIO]:
    """Every line of the process at DEBUG, through a handler with agentjobs' filter and
    the format under test (the param), as a project's own handler would be; added
    after the worker started (its logging setup sets the root logger's level)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logs.install(handler, fmt=request.param)
    root = logging.getLogger()
    before = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(before)


@pytest.fixture
def api_key(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A distinctive API key, the one the worker's client sends (the simulator takes any)."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    reset_client()
    yield KEY
    monkeypatch.undo()
    reset_client()


def _run_tasks(captured: io.StringIO) -> tuple[dict[str, Any], str]:
    """One task that succeeds and one the API refuses (dead-lettered); their ids, once
    Celery's line of the failure is written (after the result is stored)."""
    ok = complete.delay(prompt=PROMPT, max_tokens=48, idempotency_key="probe-ok").get(timeout=60)
    refused = complete.delay(prompt="[[sim:error=400]] " + PROMPT, max_tokens=48)
    with pytest.raises(DeadLetteredError):
        refused.get(timeout=60)
    wait_for(lambda: f"Task agentjobs.complete[{refused.id}]" in captured.getvalue())
    return ok, refused.id


def _pieces(text: str) -> list[str]:
    return [text, text[:20], text[-20:], "Quokka-marmalade", "blue heron"]


@pytest.mark.parametrize("captured", ["text", "json"], indirect=True)
def test_no_prompt_text_or_api_key_in_any_line(
    captured: io.StringIO, api_key: str, worker: Any, fresh_sim: Any
) -> None:
    ok, refused_id = _run_tasks(captured)
    # A careless line naming the key, as a project's or a library's could.
    logging.getLogger("myproject").warning("calling with key %s", api_key)
    out = captured.getvalue()
    assert ok["task_id"] in out and refused_id in out  # the tasks' lines were captured
    assert "anthropic._base_client" in out  # with the SDK's request lines (their bodies)
    for piece in _pieces(PROMPT):
        assert piece not in out
    assert api_key not in out and api_key[:24] not in out
    assert "calling with key [redacted]" in out


@pytest.mark.parametrize("captured", ["text"], indirect=True)
def test_log_prompts_lets_the_text_through(
    captured: io.StringIO, worker: Any, fresh_sim: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The debug setting, and the proof that the capture above would see a leak."""
    monkeypatch.setenv("AGENTJOBS_LOG_PROMPTS", "true")
    reset_settings()
    try:
        complete.delay(prompt=PROMPT, max_tokens=48).get(timeout=60)
    finally:
        monkeypatch.undo()
        reset_settings()
    assert PROMPT in captured.getvalue()


@pytest.mark.parametrize("captured", ["json"], indirect=True)
def test_every_json_line_of_the_task_path_carries_the_task_fields(
    captured: io.StringIO, worker: Any, fresh_sim: Any
) -> None:
    def on_failure(**_: Any) -> None:
        logging.getLogger("myproject.failures").warning("a task failed")

    task_failure.connect(on_failure, weak=False)
    try:
        ok, refused_id = _run_tasks(captured)
        wait_for(lambda: "myproject.failures" in captured.getvalue())
    finally:
        task_failure.disconnect(on_failure)
    lines = [json.loads(line) for line in captured.getvalue().splitlines() if line.strip()]
    by_task: dict[str, list[dict[str, Any]]] = {}
    for line in lines:
        if "task_id" in line:
            by_task.setdefault(line["task_id"], []).append(line)
    ours = by_task[ok["task_id"]]
    assert {line["idempotency_key"] for line in ours} == {"probe-ok"}
    assert {line["queue"] for line in ours} == {"claude.haiku"}
    # The SDK's request lines, written in the task's thread (Celery's "succeeded" line is
    # INFO, which the in-process worker's tracer, built at WARNING, does not write).
    assert any(line["logger"].startswith("anthropic") for line in ours)
    assert not any("failure_kind" in line for line in ours)
    refused = by_task[refused_id]
    assert {line["idempotency_key"] for line in refused} == {refused_id}  # the key: its id
    dead = [line for line in refused if line["logger"] == "agentjobs.reliability.recovery"]
    assert dead and all(line["failure_kind"] == "bad_request" for line in dead)
    # A line written after the failure (a project's task_failure handler, connected
    # after agentjobs'): the failure kind bound then, not read off an exception.
    (after,) = [line for line in refused if line["logger"] == "myproject.failures"]
    assert after["failure_kind"] == "bad_request"
    failed = [line for line in refused if line["logger"] == "celery.app.trace"]
    assert failed and all(line["failure_kind"] == "bad_request" for line in failed)
    # Lines of the task path written in a worker thread: every one names its task.
    worker_lines = [
        line
        for line in lines
        if line["logger"].startswith(TASK_PATH) and line["thread"] != "MainThread"
    ]
    assert worker_lines
    missing = [line for line in worker_lines if "task_id" not in line]
    assert not missing, missing[:3]
    for line in lines:
        assert {"ts", "level", "logger", "message"} <= set(line)


def test_the_filter_and_the_formats() -> None:
    record = logging.LogRecord(
        "agentjobs.x", logging.WARNING, __file__, 1, "hello %s", ("you",), None
    )
    tokens = logs.bind([PROMPT], task_id="t1", idempotency_key="k1", queue="claude.haiku")
    try:
        tokens += logs.bind(failure_kind="rate_limited", session_id=None)
        assert logs.ContextFilter().filter(record)
        assert logs.current() == {
            "task_id": "t1",
            "idempotency_key": "k1",
            "queue": "claude.haiku",
            "failure_kind": "rate_limited",
        }
        assert logs.scrub(f"said {PROMPT[:50]}...") == "said [redacted]..."
    finally:
        logs.unbind(tokens)
    assert logs.current() == {}
    assert logs.scrub(PROMPT) == PROMPT  # the task ended: its texts are no secret now
    inner = logging.Formatter("[%(levelname)s] %(message)s")
    text = logs.TextFormatter(inner).format(record)
    assert text == (
        "[WARNING] hello you [task_id=t1 idempotency_key=k1 queue=claude.haiku "
        "failure_kind=rate_limited]"
    )
    line = json.loads(logs.JsonFormatter().format(record))
    assert line["message"] == "hello you"
    assert (line["task_id"], line["queue"], line["failure_kind"]) == (
        "t1",
        "claude.haiku",
        "rate_limited",
    )
    assert "session_id" not in line and "trace_id" not in line


def test_install_keeps_a_handlers_formatter_and_is_idempotent() -> None:
    handler = logging.StreamHandler(io.StringIO())
    mine = logging.Formatter("%(message)s")
    handler.setFormatter(mine)
    logs.install(handler, fmt="text")
    logs.install(handler, fmt="text")
    assert isinstance(handler.formatter, logs.TextFormatter)
    assert handler.formatter.inner is mine
    assert sum(isinstance(f, logs.ContextFilter) for f in handler.filters) == 1
    logs.install(handler, fmt="json")
    assert isinstance(handler.formatter, logs.JsonFormatter)


def test_celerys_result_and_argument_lines_keep_their_ids_and_lose_the_text() -> None:
    context = {
        "id": "t9",
        "name": "agentjobs.complete",
        "runtime": 0.5,
        "return_value": {"id": "msg_1", "text": PROMPT, "content": [{"text": PROMPT}]},
        "kwargs": repr({"prompt": PROMPT}),
    }
    record = logging.LogRecord(
        "celery.app.trace",
        logging.INFO,
        __file__,
        1,
        "Task %(name)s[%(id)s] succeeded in %(runtime)ss: %(return_value)s",
        (context,),
        None,
    )
    record.__dict__["data"] = dict(context)  # Celery's extra={'data': ...}
    logs.ContextFilter().filter(record)
    message = record.getMessage()
    assert "t9" in message and "msg_1" in message
    assert PROMPT not in message and PROMPT not in json.dumps(record.__dict__["data"])


def test_a_worker_process_writes_json_lines_through_celerys_logging_setup(
    agentjobs_redis: Any, sim: Any, purge_queues: None
) -> None:
    """``agentjobs worker`` with AGENTJOBS_LOG_FORMAT=json: Celery sets its logging up,
    agentjobs puts the filter and the format on Celery's handler. Its "succeeded" line
    (INFO, the result's repr with the answer in it) names the task and carries no
    prompt, answer or key."""
    env = {
        **agentjobs_redis.env,
        "ANTHROPIC_BASE_URL": sim.base_url,
        "ANTHROPIC_API_KEY": KEY,
        "AGENTJOBS_LOG_FORMAT": "json",
    }
    worker = WorkerProcess("haiku", env).start(ready_timeout=60)
    try:
        ok = complete.delay(prompt=PROMPT, max_tokens=48).get(timeout=60)
        wait_for(lambda: f"[{ok['task_id']}] succeeded" in worker.log(), timeout=30)
    finally:
        worker.stop()
    text = worker.log()
    lines = [json.loads(x) for x in text.splitlines() if x.startswith("{")]
    (done,) = [x for x in lines if f"[{ok['task_id']}] succeeded" in x["message"]]
    assert done["logger"] == "celery.app.trace"
    assert (done["task_id"], done["idempotency_key"], done["queue"]) == (
        ok["task_id"],
        ok["task_id"],
        "claude.haiku",
    )
    # Celery prints the result's repr, answer and all: it is dropped whole
    assert done["message"].endswith("s: [redacted]") and ok["text"] not in text
    assert any("ready." in x["message"] for x in lines)  # the worker's own lines, as JSON
    # Written by the consumer in the main thread, before the task's fields are bound:
    # the task id still comes as a field, from Celery's own arguments of the line.
    (received,) = [x for x in lines if f"[{ok['task_id']}] received" in x["message"]]
    assert received["thread"] == "MainThread" and received["task_id"] == ok["task_id"]
    for piece in _pieces(PROMPT):
        assert piece not in text
    assert KEY not in text


def test_agent_and_tool_names_are_not_taken_for_prompt_text() -> None:
    # The loop's task kwargs name the agent and the tool; the worker's own lines carry
    # them in the task's name (agent:{agent}:...), which redaction must leave readable.
    step = {"session_id": "s" * 32, "n": 1, "agent": "support_desk_router", "model": "sonnet"}
    call = {
        "session_id": "s" * 32,
        "n": 1,
        "tool_use_id": "toolu_" + "x" * 24,
        "name": "lookup_booking",
    }
    assert logs.texts_of(step) == [] and logs.texts_of(call) == []
    prompt = {
        "prompt": "Summarise the quarterly report for the board",
        "agent": "support_desk_router",
    }
    assert logs.texts_of(prompt) == ["Summarise the quarterly report for the board"]


# --- an agent session ----------------------------------------------------------------

SYSTEM = "Heron-ledger 5521 system text: answer only about the Ravensworth quokka archive"
QUESTION = "Tell me about the marmalade tapestry of Ravensworth, folio 5521 please"
TOOL_ANSWER = "folio 5521 of Ravensworth: a hedgehog-shaped teapot kept in the east wing"


@tool
def logs_probe_look_up(word: str) -> str:
    """Look a word up in the archive."""
    return f"{word}: {TOOL_ANSWER}"


def test_an_agent_sessions_text_is_in_no_line_at_debug(api_key: str, fresh_sim: Any) -> None:
    """An agent step's task has no prompt in its arguments (the conversation, system
    prompt and tool results are in the session's record), yet the SDK's DEBUG line of
    each request prints the whole body: the line keeps the model and max_tokens, and
    none of the session's text (question, system prompt, tool result, answers)."""
    queues = (*all_queues(), "agentjobs.tools")
    purge(queues)
    agent = Agent(
        "logs_probe",
        model="haiku",
        system=SYSTEM + " [[sim:tool_rounds=1]]",
        tools=[logs_probe_look_up],
    )
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logs.install(handler, fmt="text")
    root = logging.getLogger()

    def users_hook(sender: Any = None, params: Any = None, **_: Any) -> None:
        # A project's own receiver of agentjobs' signal, logging what a step sends.
        logging.getLogger("proj.hooks").info("sending %s", params)

    api_call_started.connect(users_hook, weak=False)
    with in_process_worker(queues, concurrency=4):
        before = root.level
        root.addHandler(handler)
        root.setLevel(logging.DEBUG)
        try:
            session = agent.start(QUESTION)
            result = session.wait(timeout=60)
        finally:
            root.removeHandler(handler)
            root.setLevel(before)
            api_call_started.disconnect(users_hook)
    purge(queues)
    assert result["status"] == "completed" and result["tool_calls"] == 1, result
    out = stream.getvalue()
    hooked = [x for x in out.splitlines() if "proj.hooks: sending" in x]
    assert len(hooked) == 2 and all("[redacted]" in x for x in hooked), hooked
    requests = [x for x in out.splitlines() if "Request options:" in x]
    assert len(requests) == 2, requests  # both steps' calls, each with its body's fields
    assert all("'model': 'claude-haiku-4-5'" in x and "'max_tokens':" in x for x in requests)
    assert all(f"session_id={session.id}" in x for x in requests)
    for text in (SYSTEM, QUESTION, TOOL_ANSWER, result["output"]):
        for piece in (text, text[:20], text[-20:]):
            assert piece not in out
    for word in ("Heron-ledger", "Ravensworth", "hedgehog", "marmalade"):
        assert word not in out
    assert api_key not in out
