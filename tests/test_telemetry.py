"""OpenTelemetry spans of the task path, recorded by the SDK's InMemorySpanExporter from
a real in-process worker calling the simulator through the real SDK: the tree of one
task (web request -> publish -> task -> API call, one trace), its gen_ai.* attributes,
a failure's; on/off from the standard OTEL_* variables; and agentjobs without
OpenTelemetry installed at all."""

from __future__ import annotations

import ast
import io
import json
import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import agentjobs.agents.tasks  # noqa: F401  (registers the loop's tasks on the app)
from agentjobs import DeadLetteredError, complete
from agentjobs.agents.agent import Agent
from agentjobs.agents.stores import session_store
from agentjobs.agents.tool import tool
from agentjobs.contrib.pytest_plugin import all_queues, in_process_worker, purge
from agentjobs.contrib.testing import wait_for
from agentjobs.settings import reset_settings
from agentjobs.telemetry import logs, setup, trace

PROMPT = "Zebra-quartz telemetry probe 7731: say hello"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Every span of this process's task path, kept in memory for the test."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.use(provider)
    try:
        yield exporter
    finally:
        trace.use(None)
        provider.shutdown()


def _one(found: list[ReadableSpan], name: str) -> ReadableSpan:
    matching = [s for s in found if s.name == name]
    assert len(matching) == 1, [s.name for s in found]
    return matching[0]


def _finished(exporter: InMemorySpanExporter, *names: str) -> list[ReadableSpan]:
    """The finished spans once every name is among them (a task's span ends at postrun,
    just after its result is stored: .get() may return first)."""

    def done() -> list[ReadableSpan] | None:
        found = list(exporter.get_finished_spans())
        have = {s.name for s in found}
        return found if all(n in have for n in names) else None

    return wait_for(done, timeout=30, what=f"spans {names}")


def _parent(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def _no_text(found: list[ReadableSpan], text: str) -> None:
    for s in found:
        for value in (s.attributes or {}).values():
            assert text not in str(value), (s.name, value)
        for event in s.events:
            assert text not in str(dict(event.attributes or {})), (s.name, event.name)


def test_one_task_is_one_trace_from_the_web_request_to_the_api_call(
    spans: InMemorySpanExporter, worker: Any, fresh_sim: Any
) -> None:
    with trace.span("GET /summarise", kind="server") as web:
        async_result = complete.delay(prompt=PROMPT, model="haiku", max_tokens=64)
    result = async_result.get(timeout=60)
    chat = f"chat {result['model']}"
    found = _finished(spans, "run/agentjobs.complete", chat)

    root = _one(found, "GET /summarise")
    publish = _one(found, "apply_async/agentjobs.complete")
    run = _one(found, "run/agentjobs.complete")
    call = _one(found, chat)
    # publish -> task -> API call, through the broker, one trace
    assert root.context.span_id == web.get_span_context().span_id
    assert {s.context.trace_id for s in (root, publish, run, call)} == {root.context.trace_id}
    assert _parent(publish) == root.context.span_id
    assert _parent(run) == publish.context.span_id
    assert _parent(call) == run.context.span_id
    assert (publish.kind, run.kind, call.kind) == (
        SpanKind.PRODUCER,
        SpanKind.CONSUMER,
        SpanKind.CLIENT,
    )

    a = call.attributes or {}
    usage = result["usage"]
    assert a["gen_ai.provider.name"] == "anthropic"
    assert a["gen_ai.system"] == "anthropic"
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.request.model"] == result["model"]  # the resolved id, as sent
    assert a["gen_ai.request.max_tokens"] == 64
    assert a["gen_ai.response.model"] == result["model"]
    assert a["gen_ai.response.id"] == result["id"]
    assert a["gen_ai.response.finish_reasons"] == (result["stop_reason"],)
    assert a["gen_ai.usage.input_tokens"] == (
        usage["input_tokens"]
        + usage["cache_read_input_tokens"]
        + usage["cache_creation_input_tokens"]
    )
    assert a["gen_ai.usage.output_tokens"] == usage["output_tokens"] > 0
    assert a["agentjobs.cost_usd"] == pytest.approx(result["cost_usd"], abs=1e-6)
    assert call.status.status_code == StatusCode.UNSET

    t = run.attributes or {}
    assert t["agentjobs.outcome"] == "succeeded"
    assert t["agentjobs.idempotency_key"] == result["idempotency_key"] == async_result.id
    assert t["agentjobs.queue"] == "claude.haiku"
    assert t["agentjobs.attempts"] == 1
    assert t["messaging.message.id"] == async_result.id
    _no_text(found, "Zebra-quartz")


def test_a_refused_call_is_an_error_span_with_the_api_error_type(
    spans: InMemorySpanExporter, worker: Any, fresh_sim: Any
) -> None:
    async_result = complete.delay(prompt="[[sim:error=400]] " + PROMPT, max_tokens=32)
    with pytest.raises(DeadLetteredError):
        async_result.get(timeout=60)
    found = _finished(spans, "run/agentjobs.complete")
    run = _one(found, "run/agentjobs.complete")
    (call,) = [s for s in found if s.name.startswith("chat ")]
    assert _parent(call) == run.context.span_id
    assert call.status.status_code == StatusCode.ERROR
    a = call.attributes or {}
    assert a["error.type"] == "invalid_request_error"
    assert a["http.response.status_code"] == 400
    assert "gen_ai.response.id" not in a
    t = run.attributes or {}
    assert t["agentjobs.outcome"] == "dead_lettered"
    assert t["agentjobs.failure_kind"] == "bad_request"
    assert str(t["agentjobs.dead_letter"]).startswith("dl_")
    assert run.status.status_code == StatusCode.ERROR
    _no_text(found, "Zebra-quartz")


def test_a_retry_is_a_second_task_span_under_the_first_in_the_same_trace(
    spans: InMemorySpanExporter, worker: Any, fresh_sim: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 529 twice (two attempts allowed, no backoff): the retry is published from inside
    the first attempt, so its task span is a grandchild of it; the first says why."""
    monkeypatch.setenv("AGENTJOBS_RETRY_MAX_ATTEMPTS", "2")
    monkeypatch.setenv("AGENTJOBS_RETRY_BACKOFF_BASE_S", "0")
    reset_settings()
    try:
        async_result = complete.delay(prompt="[[sim:error=529]] " + PROMPT, max_tokens=32)
        with pytest.raises(DeadLetteredError):
            async_result.get(timeout=60)
        found = wait_for(
            lambda: (
                lambda f: f if sum(s.name == "run/agentjobs.complete" for s in f) == 2 else None
            )(list(spans.get_finished_spans())),
            timeout=30,
            what="both attempts' task spans",
        )
    finally:
        monkeypatch.undo()
        reset_settings()
    first, second = sorted(
        (s for s in found if s.name == "run/agentjobs.complete"), key=lambda s: s.start_time or 0
    )
    (retry_publish,) = [
        s
        for s in found
        if s.name == "apply_async/agentjobs.complete"
        and _parent(s) is not None
        and _parent(s) == first.context.span_id
    ]
    assert _parent(second) == retry_publish.context.span_id
    assert first.context.trace_id == second.context.trace_id
    a, b = first.attributes or {}, second.attributes or {}
    assert (a["agentjobs.outcome"], a["agentjobs.failure_kind"]) == ("retried", "overloaded")
    assert (b["agentjobs.outcome"], b["agentjobs.failure_kind"]) == ("dead_lettered", "overloaded")
    assert a["agentjobs.idempotency_key"] == b["agentjobs.idempotency_key"] == async_result.id
    calls = [s for s in found if s.name.startswith("chat ")]
    assert sorted(_parent(c) or 0 for c in calls) == sorted(
        [first.context.span_id, second.context.span_id]
    )
    assert {(c.attributes or {})["error.type"] for c in calls} == {"overloaded_error"}


def test_spans_and_set_attributes_without_a_provider_are_no_ops() -> None:
    trace.use(None)
    trace.reset()
    assert not trace.enabled()
    attributes: dict[str, Any] = {"agentjobs.step": 1}
    with trace.span("invoke_agent x", **attributes) as s:
        trace.set_attributes(**{"gen_ai.usage.output_tokens": 3})
        trace.add_event("retry")
        assert s is None
        assert trace.current_ids() is None
    carrier: dict[str, Any] = {}
    trace.inject(carrier)
    assert carrier == {}


def test_span_records_an_exception_by_type_and_sets_attributes_later(
    spans: InMemorySpanExporter,
) -> None:
    with pytest.raises(KeyError), trace.span("outer", a=1, skipped=None, odd={"x": 1}):
        trace.set_attributes(**{"gen_ai.usage.output_tokens": 7})
        with trace.span("inner"):
            raise KeyError("secret-ish detail")
    inner, outer = spans.get_finished_spans()
    assert _parent(inner) == outer.context.span_id
    assert inner.attributes == {"error.type": "KeyError"}
    assert inner.status.status_code == StatusCode.ERROR
    assert not inner.events  # no exception event: its message and traceback stay out
    assert outer.attributes == {
        "a": 1,
        "odd": "{'x': 1}",
        "gen_ai.usage.output_tokens": 7,
        "error.type": "KeyError",
    }


def test_context_carried_in_a_dict_continues_the_trace(spans: InMemorySpanExporter) -> None:
    carrier: dict[str, Any] = {}
    with trace.span("session start"):
        trace.inject(carrier)
    assert "traceparent" in carrier
    with trace.attached(carrier), trace.span("resumed step"):
        pass
    start, resumed = spans.get_finished_spans()
    assert resumed.context.trace_id == start.context.trace_id
    assert _parent(resumed) == start.context.span_id


@pytest.mark.parametrize(
    ("env", "on"),
    [
        ({}, False),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_TRACES_EXPORTER": "none", "AGENTJOBS_OTEL": "on"}, False),
        ({"AGENTJOBS_OTEL": "on"}, True),
        ({"AGENTJOBS_OTEL": "off", "OTEL_TRACES_EXPORTER": "console"}, False),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "console"}, False),
    ],
)
def test_on_or_off_from_the_standard_variables(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], on: bool
) -> None:
    for name in ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_SDK_DISABLED"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    reset_settings()
    try:
        assert setup.enabled() is on
    finally:
        monkeypatch.undo()
        reset_settings()


def test_an_exporter_no_package_provides_is_one_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "zipkin_nonexistent")
    with pytest.raises(RuntimeError, match="OTEL_TRACES_EXPORTER names 'zipkin_nonexistent'"):
        setup._build()


def _python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_otel_traces_exporter_alone_exports_the_api_call_span(sim: Any) -> None:
    """No code of the user's: OTEL_TRACES_EXPORTER=console and a service name make the
    process build a provider at its first span and print the call's span (the SDK's
    console exporter); importing agentjobs alone builds nothing."""
    code = """
        import sys
        from agentjobs import complete
        import agentjobs.ops.signals
        from agentjobs.api import client
        from agentjobs.telemetry import trace
        # Imported, nothing asked for: not decided, the SDK's tracing and the Celery
        # instrumentation not even loaded (redis-py loads the SDK's metrics itself).
        assert trace._tracer is None
        loaded = ("opentelemetry.sdk.trace", "opentelemetry.instrumentation")
        assert not [m for m in sys.modules if m.startswith(loaded)]
        from opentelemetry import trace as otel
        raw = client.create_message(
            {"model": "claude-haiku-4-5", "max_tokens": 16,
             "messages": [{"role": "user", "content": "hi there, console"}]}
        )
        otel.get_tracer_provider().force_flush()
        print("ID", raw.message.id)
    """
    env = {
        "OTEL_TRACES_EXPORTER": "console",
        "OTEL_SERVICE_NAME": "summariser",
        "ANTHROPIC_BASE_URL": sim.base_url,
        "ANTHROPIC_API_KEY": "sk-ant-test",
    }
    done = _python(code, env)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    printed = json.loads(out[: out.rindex("}") + 1])
    assert printed["name"] == "chat claude-haiku-4-5"
    assert printed["kind"] == "SpanKind.CLIENT"
    assert printed["attributes"]["gen_ai.provider.name"] == "anthropic"
    assert printed["resource"]["attributes"]["service.name"] == "summariser"
    assert f"ID {printed['attributes']['gen_ai.response.id']}" in out


#: Makes the named modules unimportable in a subprocess, as if not installed.
_BLOCK = """
import sys

class Block:
    def find_spec(self, name, path=None, target=None):
        if any(name == b or name.startswith(b + ".") for b in BLOCKED):
            raise ImportError(f"blocked: {name}")
        return None

sys.meta_path.insert(0, Block())
"""


def test_agentjobs_works_without_the_otel_extra(sim: Any) -> None:
    """Without opentelemetry-sdk and the Celery instrumentation (the [otel] extra), even
    with OTEL_TRACES_EXPORTER set: the app, the handlers and a real API call run, spans
    are no-ops, and the one error says what to install."""
    code = (
        "BLOCKED = ('opentelemetry.sdk', 'opentelemetry.instrumentation')\n"
        + _BLOCK
        + """
import agentjobs, agentjobs.worker.app, agentjobs.ops.signals
from agentjobs.api import client
from agentjobs.telemetry import logs, trace
raw = client.create_message(
    {"model": "claude-haiku-4-5", "max_tokens": 16,
     "messages": [{"role": "user", "content": "hi without the extra"}]}
)
assert raw.usage.output_tokens > 0
with trace.span("x", a=1) as s:
    assert s is None
assert not trace.enabled()
logs.install()
print("ok")
"""
    )
    env = {"ANTHROPIC_BASE_URL": sim.base_url, "OTEL_TRACES_EXPORTER": "console"}
    done = _python(code, env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
    assert "opentelemetry-sdk is not installed (pip install 'agentjobs[otel]')" in done.stderr


def test_the_telemetry_package_needs_no_opentelemetry_at_all() -> None:
    """anthropic >= 2 brings opentelemetry-api, older SDKs (>= 0.64 is allowed) do not:
    agentjobs.telemetry, the one place that imports OpenTelemetry (the Celery wiring
    imports the instrumentation inside a function, under ImportError), loads and runs
    with none of it."""
    code = (
        "BLOCKED = ('opentelemetry',)\n"
        + _BLOCK
        + """
import logging, io
from agentjobs.telemetry import genai, logs, setup, trace
with trace.span("x", a=1) as s:
    trace.set_attributes(b=2)
    assert s is None
assert not trace.enabled() and trace.current_ids() is None
stream = io.StringIO()
handler = logging.StreamHandler(stream)
logs.install(handler, fmt="json")
log = logging.getLogger("probe")
log.addHandler(handler)
log.warning("hello")
assert '"message": "hello"' in stream.getvalue()
print("ok")
"""
    )
    done = _python(code, {})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_only_the_telemetry_modules_import_opentelemetry() -> None:
    root = Path(__file__).resolve().parent.parent / "agentjobs"
    allowed = {root / "ops" / "signals" / "telemetry.py", *(root / "telemetry").glob("*.py")}
    for path in root.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            if any(n.startswith("opentelemetry") for n in names):
                assert path in allowed, f"{path} imports {names}"
                assert node not in tree.body, f"{path}: a top-level import of {names}"


# --- an agent session --------------------------------------------------------------------


@tool
def otel_look_up(word: str) -> str:
    """Look a word up."""
    # A line of the user's tool, in the tool call's task: it names the session and trace.
    logging.getLogger("agentjobs.probe").info("looking up a word")
    return f"{word}: a thing that repeats"


def test_an_agent_session_is_one_trace_of_steps_and_tool_calls(
    spans: InMemorySpanExporter, state_redis: Any, fresh_sim: Any
) -> None:
    """Each step and tool call is a task published by the one before it, so the whole
    session hangs under the request that started it: step -> its API call, step ->
    (publish) -> tool call -> (publish) -> next step."""
    queues = (*all_queues(), "agentjobs.tools")
    purge(queues)
    agent = Agent(
        "otel_probe", model="haiku", system="[[sim:tool_rounds=1]] Use tools.", tools=[otel_look_up]
    )
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logs.install(handler, fmt="json")
    probe = logging.getLogger("agentjobs.probe")
    with in_process_worker(queues, concurrency=4):
        logging.getLogger().addHandler(handler)
        before = probe.level
        probe.setLevel(logging.INFO)
        try:
            with trace.span("POST /ask", kind="server"):
                session = agent.start("What is a loop?")
            result = session.wait(timeout=60)
        finally:
            logging.getLogger().removeHandler(handler)
            probe.setLevel(before)
        assert result["status"] == "completed", result
        found = wait_for(lambda: _both_steps(spans), timeout=30, what="both steps' task spans")
    purge(queues)
    by_id = {s.context.span_id: s for s in found}
    root = _one(found, "POST /ask")
    assert {s.context.trace_id for s in found} == {root.context.trace_id}

    def chain(span: ReadableSpan) -> list[str]:
        names = []
        while span.parent is not None:
            span = by_id[span.parent.span_id]
            names.append(span.name)
        return names

    # The GenAI conventions' agent and tool spans: invoke_agent, execute_tool.
    steps = sorted(
        (s for s in found if s.name == "invoke_agent otel_probe"),
        key=lambda s: (s.attributes or {})["agentjobs.step"],
    )
    assert [(s.attributes or {})["agentjobs.step"] for s in steps] == [1, 2]
    for s in steps:
        assert {k: v for k, v in (s.attributes or {}).items() if k.startswith("gen_ai.")} == {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.provider.name": "anthropic",
            "gen_ai.agent.name": "otel_probe",
            "gen_ai.conversation.id": session.id,
        }
        assert (s.attributes or {})["agentjobs.session_id"] == session.id
        assert by_id[_parent(s) or 0].name == "run/agentjobs.agent_step"
    calls = [s for s in found if s.name.startswith("chat ")]
    assert sorted(by_id[_parent(c) or 0].name for c in calls) == ["invoke_agent otel_probe"] * 2
    (tool_span,) = [s for s in found if s.name == "execute_tool otel_look_up"]
    (call,) = session_store().load(session.id)["tool_calls"]
    assert {k: v for k, v in (tool_span.attributes or {}).items() if k.startswith("gen_ai.")} == {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "otel_look_up",
        "gen_ai.tool.call.id": call["tool_use_id"],
        "gen_ai.tool.type": "function",
        "gen_ai.conversation.id": session.id,
    }
    assert chain(tool_span)[:2] == ["run/agentjobs.tool_call", "apply_async/agentjobs.tool_call"]
    # the second step descends from the tool call, which descends from the first step
    second = chain(steps[1])
    assert "run/agentjobs.tool_call" in second and second[-1] == "POST /ask"
    assert chain(steps[0])[-1] == "POST /ask"
    _no_text(found, "What is a loop")
    # the tool's log line: its session, its key (session:step:tool_use_id), its trace
    (line,) = [json.loads(x) for x in stream.getvalue().splitlines() if "looking up" in x]
    assert line["session_id"] == session.id
    assert line["idempotency_key"].startswith(f"{session.id}:1:")
    assert line["queue"] == "agentjobs.tools"
    assert line["trace_id"] == f"{root.context.trace_id:032x}"
    assert line["span_id"] == f"{tool_span.context.span_id:016x}"


def _both_steps(exporter: InMemorySpanExporter) -> list[ReadableSpan] | None:
    """The finished spans once both steps' task spans ended (each ends at postrun)."""
    found = list(exporter.get_finished_spans())
    runs = [s for s in found if s.name == "run/agentjobs.agent_step"]
    return found if len(runs) == 2 else None
