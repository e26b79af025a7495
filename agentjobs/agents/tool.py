"""Tools: typed Python functions the model may call, checked at the boundary.

    @agentjobs.tool
    def get_booking(booking_id: Annotated[str, Field(description="e.g. B-1001")]) -> dict:
        '''Look up one booking by its id.'''

The decorator reads the function once, at import: the input schema comes from its type
hints (``Annotated[..., Field(description=...)]`` describes a parameter; a parameter
with a default is optional), or from the model when the function takes a single
pydantic-model parameter (then that model is the whole input); the description is the
docstring's first paragraph. A parameter named ``idempotency_key`` is left out of the
schema and receives ``session_id:step:tool_use_id``, the same on every retry or
redelivery of that call, so a tool that writes can make a repeat a no-op.

``Tool.run`` never raises for what the model sent or what the function did: the input
is validated before the function runs (a mistake goes back to the model as an
``is_error`` tool_result it can correct), the function's exception becomes an
``is_error`` result, and a per-tool ``timeout_s`` bounds the call.

Timeouts: a synchronous tool runs in a daemon thread that is abandoned at its deadline.
Python cannot kill a thread, so the function keeps running to its end in the
background (holding whatever it holds, and doing whatever writes it was going to do);
its result is thrown away. A tool that writes should therefore take an
``idempotency_key``, so that a retry after a timeout does not write twice, and should
bound its own I/O (socket and database timeouts). An ``async def`` tool is run with
``asyncio.run`` and cancelled at its deadline (at its next ``await``).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal, overload

from pydantic import ValidationError
from pydantic_core import PydanticSerializationError, to_jsonable_python

from agentjobs.agents.signature import (
    Signature,
    description,
    validation_message,
)
from agentjobs.errors import ToolDefinitionError, UnknownToolError
from agentjobs.messages.tools import TOOL_NAME

#: The queue tool calls go to unless a tool names another (``agentjobs worker tools``).
TOOLS_QUEUE = "agentjobs.tools"

Kind = Literal["ok", "invalid_input", "error", "timeout"]


@dataclass
class ToolOutcome:
    """What one call of a tool came to; ``content()`` is the tool_result's content."""

    output: Any
    is_error: bool
    error: str | None
    kind: Kind
    duration_s: float

    def content(self) -> str:
        """The text for the tool_result block: the error, or the output as JSON
        (a string output as it is)."""
        if self.is_error:
            return self.error or f"tool call failed ({self.kind})"
        if isinstance(self.output, str):
            return self.output
        return json.dumps(self.output, ensure_ascii=False)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ToolOutcome:
        return cls(
            output=data.get("output"),
            is_error=bool(data.get("is_error")),
            error=data.get("error"),
            kind=data.get("kind") or ("error" if data.get("is_error") else "ok"),
            duration_s=float(data.get("duration_s") or 0.0),
        )


class Tool:
    """A function the model may call: its definition for the API and a safe ``run``.

    Calling the tool object calls the plain function.
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        requires_approval: bool = False,
        queue: str | None = None,
        timeout_s: float | None = None,
    ) -> None:
        self.fn = fn
        self.name = name if name is not None else getattr(fn, "__name__", "")
        if not isinstance(self.name, str) or not TOOL_NAME.match(self.name):
            raise ToolDefinitionError(
                f"tool name {self.name!r} must match ^[a-zA-Z0-9_-]{{1,128}}$"
                " (pass name=... to @tool)"
            )
        if timeout_s is not None and not timeout_s > 0:
            raise ToolDefinitionError(f"tool {self.name}: timeout_s must be > 0, not {timeout_s}")
        self.description = description(fn)
        self.requires_approval = bool(requires_approval)
        self.queue = queue or TOOLS_QUEUE
        self.timeout_s = timeout_s
        self.is_async = inspect.iscoroutinefunction(fn)
        self._signature = Signature(fn, self.name)
        self.takes_idempotency_key = self._signature.takes_key
        self.input_model = self._signature.model
        self.input_schema = self._signature.schema()
        _functools_wraps(self, fn)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<Tool {self.name} queue={self.queue}>"

    def definition(self) -> dict[str, Any]:
        """The tool as the Messages API takes it in ``tools``."""
        out: dict[str, Any] = {"name": self.name, "input_schema": self.input_schema}
        if self.description:
            out["description"] = self.description
        return out

    def run(self, input: dict[str, Any], *, idempotency_key: str) -> ToolOutcome:
        """Validate ``input``, call the function within the timeout; never raises for
        bad input, the function's exception or a timeout."""
        started = time.monotonic()

        def outcome(kind: Kind, output: Any = None, error: str | None = None) -> ToolOutcome:
            return ToolOutcome(
                output=output,
                is_error=kind != "ok",
                error=error,
                kind=kind,
                duration_s=round(time.monotonic() - started, 6),
            )

        try:
            args, kwargs = self._signature.arguments(input, idempotency_key)
        except ValidationError as exc:
            return outcome("invalid_input", error=validation_message(self.name, exc))
        try:
            value = self._invoke(args, kwargs)
        except _Timeout:
            return outcome(
                "timeout", error=f"TimeoutError: tool {self.name} took over {self.timeout_s:g}s"
            )
        except Exception as exc:  # the tool's own failure goes back to the model
            return outcome("error", error=_exception_message(exc))
        try:
            output = to_jsonable_python(value)
        except PydanticSerializationError as exc:
            return outcome(
                "error",
                error=f"TypeError: tool {self.name} returned a value that is not JSON: {exc}",
            )
        return outcome("ok", output=output)

    def _invoke(self, args: list[Any], kwargs: dict[str, Any]) -> Any:
        if self.is_async:
            return _run_async(self.fn, args, kwargs, self.timeout_s)
        if self.timeout_s is None:
            return self.fn(*args, **kwargs)
        return _run_in_thread(self.fn, args, kwargs, self.timeout_s, self.name)


#: Every tool defined in this process, by name.
TOOLS: dict[str, Tool] = {}


@overload
def tool(fn: Callable[..., Any], /) -> Tool: ...


@overload
def tool(
    fn: None = None,
    /,
    *,
    name: str | None = None,
    requires_approval: bool = False,
    queue: str | None = None,
    timeout_s: float | None = None,
) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    requires_approval: bool = False,
    queue: str | None = None,
    timeout_s: float | None = None,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Make a function a tool and register it by name: ``@tool`` or ``@tool(...)``.

    ``requires_approval=True`` pauses the session until the call is approved or denied;
    ``queue`` sends its calls to another queue than ``agentjobs.tools``; ``timeout_s``
    bounds one call (see the module docstring for what a timeout cannot stop).
    """

    def make(f: Callable[..., Any]) -> Tool:
        t = Tool(
            f, name=name, requires_approval=requires_approval, queue=queue, timeout_s=timeout_s
        )
        register(t)
        return t

    return make(fn) if fn is not None else make


def register(t: Tool) -> Tool:
    """Add a tool to ``TOOLS``. The same function defined again (a module imported
    twice, a reload) replaces its entry; another function under a taken name is refused."""
    old = TOOLS.get(t.name)
    if old is not None and _origin(old.fn) != _origin(t.fn):
        raise ToolDefinitionError(
            f"tool name {t.name!r} is taken by {_origin(old.fn)}: pass name=... to @tool"
        )
    TOOLS[t.name] = t
    return t


def get_tool(name: str) -> Tool:
    """The tool registered under ``name``; UnknownToolError names the known ones."""
    try:
        return TOOLS[name]
    except KeyError:
        known = ", ".join(sorted(TOOLS)) or "none"
        raise UnknownToolError(
            f"unknown tool {name!r} (known here: {known}); load the module that defines it"
            " in this worker with -I"
        ) from None


def _origin(fn: Callable[..., Any]) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', '?')}"


def _functools_wraps(t: Tool, fn: Callable[..., Any]) -> None:
    for attr in ("__module__", "__qualname__", "__doc__"):
        value = getattr(fn, attr, None)
        if value is not None:
            setattr(t, attr, value)
    t.__wrapped__ = fn  # type: ignore[attr-defined]


# -- messages for the model ----------------------------------------------------------


def _exception_message(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# -- running with a deadline ---------------------------------------------------------


class _Timeout(Exception):
    pass


def _run_in_thread(
    fn: Callable[..., Any], args: list[Any], kwargs: dict[str, Any], timeout_s: float, name: str
) -> Any:
    return _in_thread(lambda: fn(*args, **kwargs), timeout_s, f"tool-{name}")


def _run_async(
    fn: Callable[..., Any], args: list[Any], kwargs: dict[str, Any], timeout_s: float | None
) -> Any:
    async def bounded() -> Any:
        try:
            return await asyncio.wait_for(fn(*args, **kwargs), timeout_s)
        except TimeoutError:
            raise _Timeout() from None

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(bounded())
    # Called from inside an event loop: asyncio.run needs a thread of its own (which
    # bounded() ends at the deadline, so it is waited for to the end).
    return _in_thread(lambda: asyncio.run(bounded()), None, "tool-async")


def _in_thread(call: Callable[[], Any], timeout_s: float | None, name: str) -> Any:
    """``call()`` in a daemon thread (an abandoned call must not keep the worker process
    from exiting): its value or its exception; _Timeout past ``timeout_s``."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = call()
        except BaseException as exc:  # handed to the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        raise _Timeout()
    if "error" in box:
        raise box["error"]
    return box.get("value")
