"""The tool decorator: schemas from type hints, validation before the call, errors,
timeouts and output as the tool_result content. Pure units (no services)."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from collections.abc import Iterator
from typing import Annotated, Any, Literal

import jsonschema
import pytest
from pydantic import BaseModel, Field

from agentjobs.agents import tool as toolmod
from agentjobs.agents.tool import (
    TOOLS,
    TOOLS_QUEUE,
    Tool,
    ToolDefinitionError,
    ToolOutcome,
    UnknownToolError,
    get_tool,
    tool,
)
from agentjobs.errors import AgentJobsError
from agentjobs.messages.tools import CustomTool
from agentjobs.simulator.toolspec import Tools, check_tool

KEY = "sess-1:2:toolu_01"


@pytest.fixture(autouse=True)
def _registry() -> Iterator[None]:
    saved = dict(TOOLS)
    TOOLS.clear()
    yield
    TOOLS.clear()
    TOOLS.update(saved)


def check_definition(t: Tool) -> dict[str, Any]:
    """The definition is valid JSON Schema 2020-12 and passes the API's tool checks."""
    d = t.definition()
    jsonschema.Draft202012Validator.check_schema(d["input_schema"])
    CustomTool.model_validate(d)
    check_tool(d, 0, Tools())
    return d


class Address(BaseModel):
    city: str
    postcode: str | None = None


class Refund(BaseModel):
    booking_id: str = Field(description="The booking to refund")
    amount_usd: float = Field(gt=0)
    reason: Literal["late", "cancelled", "other"]


# -- schemas -------------------------------------------------------------------------


def test_schema_from_type_hints() -> None:
    @tool
    def find_booking(
        booking_id: Annotated[str, Field(description="e.g. B-1001", pattern=r"^B-\d+$")],
        nights: int = 1,
        tags: list[str] | None = None,
        address: Address | None = None,
    ) -> dict[str, Any]:
        """Look up one booking by its id.

        Returns the booking as a dict; this paragraph is not in the description.
        """
        return {}

    d = check_definition(find_booking)
    schema = d["input_schema"]
    assert d["name"] == "find_booking"
    assert d["description"] == "Look up one booking by its id."
    assert schema["type"] == "object"
    assert schema["required"] == ["booking_id"]
    assert schema["additionalProperties"] is False
    assert list(schema["properties"]) == ["booking_id", "nights", "tags", "address"]
    assert schema["properties"]["booking_id"] == {
        "description": "e.g. B-1001",
        "pattern": r"^B-\d+$",
        "type": "string",
    }
    assert schema["properties"]["nights"] == {"default": 1, "type": "integer"}
    assert "Address" in schema["$defs"]
    assert "title" not in str(schema)  # pydantic's generated titles are dropped
    v = jsonschema.Draft202012Validator(schema)
    assert v.is_valid({"booking_id": "B-1", "address": {"city": "Oslo"}})
    assert not v.is_valid({"booking_id": "X"})
    assert not v.is_valid({"booking_id": "B-1", "other": 1})


def test_titles_in_data_are_kept() -> None:
    # A default or an example is data, not a schema: its "title" key is not pydantic's.
    @tool
    def address(
        to: Annotated[dict[str, str], Field(examples=[{"title": "Dr", "name": "Ada"}])] = {  # noqa: B006
            "title": "Mx"
        },
        salutation: Literal["title", "name"] = "title",
    ) -> str:
        """Address a letter."""
        return f"{to.get('title')} {salutation}"

    schema = check_definition(address)["input_schema"]
    assert schema["properties"]["to"]["default"] == {"title": "Mx"}
    assert schema["properties"]["to"]["examples"] == [{"title": "Dr", "name": "Ada"}]
    assert schema["properties"]["salutation"]["enum"] == ["title", "name"]
    assert "Title" not in str(schema) and "Salutation" not in str(schema)


def test_a_property_called_title_or_json_is_kept() -> None:
    @tool
    def rename(title: str, json: bool = False, model_config: int = 0) -> str:
        """Rename."""
        return f"{title}:{json}:{model_config}"

    d = check_definition(rename)
    assert list(d["input_schema"]["properties"]) == ["title", "json", "model_config"]
    assert rename.run({"title": "a", "json": True}, idempotency_key=KEY).output == "a:True:0"


def test_single_pydantic_model_parameter_is_the_whole_input() -> None:
    seen: list[Refund] = []

    @tool(requires_approval=True)
    def refund(req: Refund) -> Refund:
        """Refund a booking."""
        seen.append(req)
        return req

    d = check_definition(refund)
    assert d["input_schema"]["required"] == ["booking_id", "amount_usd", "reason"]
    assert d["input_schema"]["properties"]["amount_usd"] == {
        "exclusiveMinimum": 0,
        "type": "number",
    }
    assert refund.requires_approval is True
    out = refund.run({"booking_id": "B-1", "amount_usd": 12, "reason": "late"}, idempotency_key=KEY)
    assert out.kind == "ok"
    assert isinstance(seen[0], Refund)
    assert out.output == {"booking_id": "B-1", "amount_usd": 12.0, "reason": "late"}


def test_no_parameters_is_an_empty_object() -> None:
    @tool
    def ping() -> str:
        """Ping."""
        return "pong"

    d = check_definition(ping)
    assert d["input_schema"]["properties"] == {}
    assert ping.run({}, idempotency_key=KEY).content() == "pong"


def test_defaults_and_attributes() -> None:
    @tool(name="lookup-v2", queue="slow.tools", timeout_s=5)
    def lookup(q: str) -> str:
        return q

    assert get_tool("lookup-v2") is lookup
    assert lookup.queue == "slow.tools"
    assert lookup.timeout_s == 5
    assert lookup.requires_approval is False
    assert lookup.description == ""
    assert "description" not in lookup.definition()
    assert lookup("x") == "x"  # calling the tool calls the plain function
    assert lookup.__wrapped__ is lookup.fn  # type: ignore[attr-defined]

    @tool
    def other(q: str) -> str:
        return q

    assert other.queue == TOOLS_QUEUE == "agentjobs.tools"


# -- the idempotency key -------------------------------------------------------------


def test_idempotency_key_is_passed_through_and_not_in_the_schema() -> None:
    @tool
    def book(room: str, idempotency_key: str) -> str:
        """Book a room."""
        return f"{room}@{idempotency_key}"

    @tool
    def peek(room: str) -> str:
        """Peek."""
        return room

    assert book.takes_idempotency_key is True
    assert peek.takes_idempotency_key is False
    assert "idempotency_key" not in book.input_schema["properties"]
    assert book.input_schema["required"] == ["room"]
    assert book.run({"room": "12"}, idempotency_key=KEY).output == f"12@{KEY}"
    assert peek.run({"room": "12"}, idempotency_key=KEY).output == "12"
    # The model cannot send the key itself: it is not a field.
    bad = book.run({"room": "12", "idempotency_key": "mine"}, idempotency_key=KEY)
    assert bad.kind == "invalid_input"
    assert "idempotency_key: Extra inputs are not permitted" in (bad.error or "")


def test_idempotency_key_with_a_model_parameter() -> None:
    @tool
    def refund(req: Refund, *, idempotency_key: str) -> str:
        """Refund."""
        return f"{req.booking_id}@{idempotency_key}"

    assert refund.takes_idempotency_key
    assert "idempotency_key" not in str(refund.input_schema)
    out = refund.run({"booking_id": "B-2", "amount_usd": 1, "reason": "other"}, idempotency_key=KEY)
    assert out.output == f"B-2@{KEY}"


# -- validation before the call ------------------------------------------------------


def test_invalid_input_goes_back_readable_and_the_function_does_not_run() -> None:
    calls: list[Any] = []

    @tool
    def move(booking_id: str, nights: int, when: dt.date) -> None:
        """Move a booking."""
        calls.append(1)

    out = move.run({"nights": "three", "when": "2026-13-01", "x": 1}, idempotency_key=KEY)
    assert calls == []
    assert out.kind == "invalid_input" and out.is_error and out.output is None
    msg = out.content()
    assert msg.startswith("Invalid input for tool move: ")
    assert "booking_id: Field required" in msg
    assert "nights: Input should be a valid integer" in msg and "(got 'three')" in msg
    assert "when: " in msg and "2026-13-01" in msg
    assert "x: Extra inputs are not permitted" in msg
    assert "\n" not in msg

    ok = move.run({"booking_id": "B", "nights": "3", "when": "2026-12-01"}, idempotency_key=KEY)
    assert ok.kind == "ok" and calls == [1]
    assert ok.content() == "null"


def test_a_long_bad_value_is_cut_in_the_message() -> None:
    @tool
    def count(n: int) -> int:
        return n

    out = count.run({"n": "y" * 500}, idempotency_key=KEY)
    assert out.kind == "invalid_input"
    assert len(out.error or "") < 200 and "..." in (out.error or "")


def test_nested_model_errors_name_the_path() -> None:
    @tool
    def ship(to: Address) -> str:
        return to.city

    @tool
    def ship2(to: Address, express: bool = False) -> str:
        return to.city

    assert ship.run({"city": "Oslo"}, idempotency_key=KEY).output == "Oslo"
    out = ship2.run({"to": {"postcode": 1}}, idempotency_key=KEY)
    assert "to.city: Field required" in (out.error or "")
    assert "to.postcode: Input should be a valid string" in (out.error or "")


# -- the function's failures ---------------------------------------------------------


def test_exception_becomes_an_error_result() -> None:
    @tool
    def fail(booking_id: str) -> str:
        raise LookupError(f"no booking {booking_id}")

    out = fail.run({"booking_id": "B-9"}, idempotency_key=KEY)
    assert out == ToolOutcome(
        output=None,
        is_error=True,
        error="LookupError: no booking B-9",
        kind="error",
        duration_s=out.duration_s,
    )
    assert out.content() == "LookupError: no booking B-9"

    @tool
    def bare() -> None:
        raise RuntimeError()

    assert bare.run({}, idempotency_key=KEY).error == "RuntimeError"


def test_timeout_abandons_the_thread() -> None:
    release = threading.Event()
    finished = threading.Event()

    @tool(timeout_s=0.05)
    def stuck() -> str:
        release.wait(60)  # never set before the deadline: the call always times out
        finished.set()
        return "late"

    out = stuck.run({}, idempotency_key=KEY)
    assert out.kind == "timeout" and out.is_error
    assert out.error == "TimeoutError: tool stuck took over 0.05s"
    assert not finished.is_set()  # still running in its thread: Python cannot kill it
    release.set()
    assert finished.wait(10)


def test_within_timeout_returns_and_reraises_in_the_thread() -> None:
    @tool(timeout_s=60)
    def quick(n: int) -> int:
        if n < 0:
            raise ValueError("negative")
        return n * 2

    assert quick.run({"n": 4}, idempotency_key=KEY).output == 8
    assert quick.run({"n": -1}, idempotency_key=KEY).error == "ValueError: negative"


def test_async_tools_run_and_are_cancelled_at_their_deadline() -> None:
    cancelled: list[bool] = []

    @tool
    async def fetch(q: str) -> dict[str, str]:
        await asyncio.sleep(0)
        return {"q": q}

    @tool(timeout_s=0.05)
    async def hang() -> None:
        try:
            await asyncio.Event().wait()  # never set
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    assert fetch.is_async
    assert fetch.run({"q": "a"}, idempotency_key=KEY).output == {"q": "a"}
    out = hang.run({}, idempotency_key=KEY)
    assert out.kind == "timeout"
    assert cancelled == [True]

    async def from_a_loop() -> ToolOutcome:
        return fetch.run({"q": "b"}, idempotency_key=KEY)

    assert asyncio.run(from_a_loop()).output == {"q": "b"}


# -- output --------------------------------------------------------------------------


def test_output_is_json_for_the_tool_result() -> None:
    @tool
    def info() -> dict[str, Any]:
        return {"when": dt.date(2026, 12, 1), "addr": Address(city="Bergen"), "n": {1, 2}}

    out = info.run({}, idempotency_key=KEY)
    assert out.output == {
        "when": "2026-12-01",
        "addr": {"city": "Bergen", "postcode": None},
        "n": [1, 2],
    }
    assert out.content() == (
        '{"when": "2026-12-01", "addr": {"city": "Bergen", "postcode": null}, "n": [1, 2]}'
    )

    @tool
    def unicode() -> list[str]:
        return ["Zürich"]

    assert unicode.run({}, idempotency_key=KEY).content() == '["Zürich"]'

    @tool
    def opaque() -> object:
        return object()

    bad = opaque.run({}, idempotency_key=KEY)
    assert bad.kind == "error"
    assert (bad.error or "").startswith("TypeError: tool opaque returned a value that is not JSON")


def test_outcome_round_trips_through_a_dict() -> None:
    out = ToolOutcome(output={"a": 1}, is_error=False, error=None, kind="ok", duration_s=0.5)
    assert ToolOutcome.from_dict(out.to_dict()) == out
    err = ToolOutcome.from_dict({"is_error": True, "error": "x"})
    assert err.kind == "error" and err.content() == "x"


# -- refused at decoration -----------------------------------------------------------


def test_decoration_errors_are_clear() -> None:
    def untyped(a, b: int) -> None:  # type: ignore[no-untyped-def,unused-ignore]
        pass

    def star(*args: int) -> None:
        pass

    def kw(a: int, **kwargs: int) -> None:
        pass

    def spaced(a: int) -> None:
        pass

    def unresolved(a: NotDefinedAnywhere) -> None:  # type: ignore[name-defined]  # noqa: F821
        pass

    def arbitrary(a: threading.Event) -> None:
        pass

    cases: list[tuple[Any, dict[str, Any], str]] = [
        (untyped, {}, "tool untyped: parameter 'a' has no type hint"),
        (star, {}, "tool star: *args cannot be described"),
        (kw, {}, "tool kw: **kwargs cannot be described"),
        (spaced, {"name": "has space"}, "tool name 'has space' must match"),
        (spaced, {"name": "x" * 129}, "must match ^[a-zA-Z0-9_-]{1,128}$"),
        (spaced, {"name": ""}, "tool name '' must match"),
        (spaced, {"timeout_s": 0}, "timeout_s must be > 0"),
        (unresolved, {}, "tool unresolved: cannot resolve its type hints (NameError"),
        (arbitrary, {}, "tool arbitrary: its parameters cannot be validated"),
    ]
    for fn, kwargs, expected in cases:
        with pytest.raises(ToolDefinitionError) as info:
            tool(**kwargs)(fn)
        assert expected in str(info.value), (fn.__name__, str(info.value))
        assert "\n" not in str(info.value)
        assert isinstance(info.value, AgentJobsError)
    assert TOOLS == {}


def test_duplicate_names() -> None:
    def make() -> Tool:
        @tool(name="dup")
        def first(a: int) -> int:
            return a

        return first

    a = make()
    b = make()  # the same function defined again (a reload) replaces its entry
    assert get_tool("dup") is b and a is not b

    def second(a: int) -> int:
        return a

    with pytest.raises(ToolDefinitionError, match=r"tool name 'dup' is taken by .*first"):
        tool(name="dup")(second)
    assert get_tool("dup") is b


def test_unknown_tool() -> None:
    @tool
    def known() -> None:
        pass

    with pytest.raises(UnknownToolError) as info:
        get_tool("nope")
    assert isinstance(info.value, AgentJobsError)
    assert str(info.value) == (
        "unknown tool 'nope' (known here: known); load the module that defines it"
        " in this worker with -I"
    )


def test_module_docstring_explains_timeouts() -> None:
    assert "cannot kill a thread" in (toolmod.__doc__ or "")
