"""Eval cases: one JSON object a line, validated whole before anything runs.

    {"name": "summary", "request": {"prompt": "...", "model": "haiku"}, "repeat": 20,
     "expect": {"stop_reason": "end_turn", "contains": "..."}}
    {"name": "desk", "agent": "support_desk:router", "input": "...",
     "expect": {"status": "completed", "tool_called": ["lookup_booking"], "max_steps": 4}}

A ``request`` case is the kwargs of one ``complete`` call (checked as ``.delay()`` checks
them); an ``agent`` case names an ``Agent`` as ``module:attribute`` and gives the first
user turn as ``input``. A bad line is one EvalError naming ``file:line`` and the field.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from agentjobs.errors import AgentJobsError, EvalError

#: Case names: they are keys of the baseline and labels of the report.
NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,80}$")
#: Repeats of a case when the line does not say: enough for a p95 that is not just the
#: slowest run (with 20, the p95 interpolates between the two slowest).
DEFAULT_REPEAT = 20


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


class Expect(BaseModel):
    """What every run of a case must show; a field left out is not checked."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    #: The answer's stop_reason (a request) or the session's (agent; None when it
    #: completed): one value or a list of allowed ones.
    stop_reason: list[str | None] | None = None
    #: The session's status (agent cases): completed, stopped, failed, ...
    status: list[str] | None = None
    #: Substrings the text (a request's ``text``, a session's ``output``) must contain.
    contains: list[str] | None = None
    #: A JSON Schema the text, parsed as JSON, must satisfy (needs ``jsonschema``).
    json_schema: dict[str, Any] | None = Field(default=None, alias="schema")
    #: Tools that must be called (a request: tool_use blocks; agent: its tool calls).
    tool_called: list[str] | None = None
    tool_not_called: list[str] | None = None
    #: At most this many model steps (a request is one).
    max_steps: int | None = Field(default=None, ge=1)
    #: At most this many US dollars per run.
    max_cost_usd: float | None = Field(default=None, ge=0)

    @field_validator("stop_reason", mode="before")
    @classmethod
    def _stop_reason(cls, value: Any) -> Any:
        return [value] if value is None or isinstance(value, str) else value

    @field_validator("status", "contains", "tool_called", "tool_not_called", mode="before")
    @classmethod
    def _many(cls, value: Any) -> Any:
        return _one_or_many(value)

    @field_validator("json_schema")
    @classmethod
    def _schema(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            validator_for(value)  # a bad schema or a missing jsonschema: at load
        return value


class Case(BaseModel):
    """One line of a cases file."""

    model_config = ConfigDict(extra="forbid")

    name: str
    request: dict[str, Any] | None = None
    agent: str | None = None
    input: Any = None
    repeat: int = Field(default=DEFAULT_REPEAT, ge=1, le=10_000)
    #: Runs made first and not measured: the first call of a run pays for connections
    #: (broker, result backend, the API's TLS) that the rest reuse.
    warmup: int = Field(default=1, ge=0, le=100)
    timeout_s: float = Field(default=300.0, gt=0)
    expect: Expect = Field(default_factory=Expect)
    #: Set by ``load``: where the case came from, for messages.
    where: str = Field(default="", exclude=True)

    @property
    def kind(self) -> Literal["request", "agent"]:
        return "agent" if self.agent is not None else "request"

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME.match(value):
            raise ValueError("1-80 of letters, digits, _ . : -")
        return value

    @field_validator("agent")
    @classmethod
    def _agent(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^[\w.]+:\w+$", value):
            raise ValueError("'module:attribute', e.g. 'myapp.agents:support'")
        return value

    @model_validator(mode="after")
    def _kind(self) -> Case:
        if (self.request is None) == (self.agent is None):
            raise ValueError("give exactly one of 'request' (complete kwargs) or 'agent'")
        if self.agent is not None and self.input is None:
            raise ValueError("an agent case needs 'input' (the first user turn)")
        if self.request is not None:
            if self.input is not None:
                raise ValueError("'input' belongs to agent cases; a request has 'prompt'")
            from agentjobs.messages.request import parse_request

            try:
                parse_request(self.request)
            except AgentJobsError as exc:
                raise ValueError(f"request: {exc}") from None
        return self

    def kwargs(self) -> dict[str, Any]:
        """The ``complete`` kwargs of one run: the response cache off unless the case
        asks for it, since a cached repeat would measure the cache, not the call."""
        return {"cache": False, **(self.request or {})}


def validator_for(schema: dict[str, Any]) -> Any:
    """A jsonschema validator of ``schema``; EvalError if jsonschema is missing or the
    schema is not one."""
    try:
        import jsonschema
    except ModuleNotFoundError:
        raise EvalError(
            "expect.schema needs jsonschema, which is not installed: pip install 'agentjobs[eval]'"
        ) from None
    cls = jsonschema.validators.validator_for(schema)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise ValueError(f"not a JSON Schema: {exc.message}") from None
    return cls(schema)


def _problem(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)


def parse(lines: Iterable[str], source: str = "<cases>") -> list[Case]:
    """The cases of ``lines`` (blank lines and lines starting with ``#`` skipped)."""
    cases: list[Case] = []
    seen: dict[str, str] = {}
    for n, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        where = f"{source}:{n}"
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise EvalError(f"{where}: not JSON: {exc.msg} (column {exc.colno})") from None
        if not isinstance(data, dict):
            raise EvalError(f"{where}: a case is a JSON object, not {type(data).__name__}")
        try:
            case = Case.model_validate(data)
        except ValidationError as exc:
            name = data.get("name")
            label = f" (case {name!r})" if isinstance(name, str) else ""
            raise EvalError(f"{where}{label}: {_problem(exc)}") from None
        except EvalError as exc:
            raise EvalError(f"{where}: {exc}") from None
        if case.name in seen:
            raise EvalError(f"{where}: case {case.name!r} again (first at {seen[case.name]})")
        seen[case.name] = where
        case.where = where
        cases.append(case)
    if not cases:
        raise EvalError(f"{source}: no cases")
    return cases


def load(path: str | Path) -> list[Case]:
    """The cases of the file at ``path``."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise EvalError(f"cannot read {p}: {exc.strerror or exc}") from None
    return parse(text.splitlines(), str(p))


def resolve_agent(case: Case) -> Any:
    """The Agent a case names, importing its module (EvalError naming the case's line)."""
    assert case.agent is not None
    module, _, attribute = case.agent.partition(":")
    try:
        obj = getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError) as exc:
        where = f"{case.where} (case {case.name!r})"
        raise EvalError(f"{where}: cannot load {case.agent}: {exc}") from None
    if not callable(getattr(obj, "start", None)):
        raise EvalError(f"{case.where} (case {case.name!r}): {case.agent} is not an Agent")
    return obj


def agent_modules(cases: Iterable[Case]) -> list[str]:
    """The modules agent cases name (workers must import them: ``-I``)."""
    out: list[str] = []
    for c in cases:
        if c.agent is not None:
            module = c.agent.partition(":")[0]
            if module not in out:
                out.append(module)
    return out
