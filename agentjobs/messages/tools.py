"""Tool definitions and ``tool_choice``, as the Messages API takes them.

A custom tool (no ``type``, or ``"custom"``) is checked as the API checks it: its name,
an object ``input_schema``, no unknown field. A server tool (``web_search_20250305``,
``code_execution_...``, a toolset, ...) is the API's to check: it passes through as given.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, StrictBool, StrictStr, Tag, field_validator

from agentjobs.messages.content import CacheControl, Loose, Part

TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")


class CustomTool(Part):
    """A tool the caller runs: the model answers with a ``tool_use`` block for it."""

    type: Literal["custom"] | None = None
    name: StrictStr
    description: StrictStr | None = None
    input_schema: dict[str, Any]
    strict: StrictBool | None = None
    cache_control: CacheControl | None = None
    allowed_callers: list[StrictStr] | None = None
    defer_loading: StrictBool | None = None
    eager_input_streaming: StrictBool | None = None
    input_examples: list[dict[str, Any]] | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not TOOL_NAME.match(v):
            raise ValueError(f"tool name {v[:40]!r} does not match ^[a-zA-Z0-9_-]{{1,128}}$")
        return v

    @field_validator("input_schema")
    @classmethod
    def _schema(cls, v: dict[str, Any]) -> dict[str, Any]:
        if v.get("type") != "object":
            raise ValueError('input_schema must be a JSON schema with "type": "object"')
        props = v.get("properties")
        if props is not None and not isinstance(props, dict):
            raise ValueError("input_schema.properties must be an object")
        required = v.get("required")
        if required is not None and not (
            isinstance(required, list) and all(isinstance(r, str) for r in required)
        ):
            raise ValueError("input_schema.required must be a list of property names")
        return v


class ServerTool(Loose):
    """A tool the API runs (web search, code execution, ...), passed through as given."""

    type: StrictStr
    name: StrictStr | None = None
    cache_control: CacheControl | None = None


def _tool_kind(value: Any) -> str:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return "custom" if kind in (None, "custom") else "server"


Tool = Annotated[
    Annotated[CustomTool, Tag("custom")] | Annotated[ServerTool, Tag("server")],
    Discriminator(_tool_kind),
]


class ToolChoiceAuto(Part):
    type: Literal["auto"]
    disable_parallel_tool_use: StrictBool | None = None


class ToolChoiceAny(Part):
    type: Literal["any"]
    disable_parallel_tool_use: StrictBool | None = None


class ToolChoiceTool(Part):
    type: Literal["tool"]
    name: StrictStr
    disable_parallel_tool_use: StrictBool | None = None


class ToolChoiceNone(Part):
    type: Literal["none"]


ToolChoice = Annotated[
    ToolChoiceAuto | ToolChoiceAny | ToolChoiceTool | ToolChoiceNone,
    Field(discriminator="type"),
]


def check_tools(tools: list[CustomTool | ServerTool] | None, choice: Any) -> None:
    """Names unique across all tools; a ``tool_choice`` of one tool names a defined one."""
    names: list[str] = [t.name for t in tools or () if t.name is not None]
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"tools: tool names must be unique: {name!r} is defined twice")
        seen.add(name)
    if isinstance(choice, ToolChoiceTool) and choice.name not in seen:
        raise ValueError(f"tool_choice names tool {choice.name!r}, but no tool has that name")


#: Tokens of the tool-use system prompt the API adds when tools are given (its docs,
#: Claude 4 models): a little more when the model may also answer without a tool.
TOOL_PROMPT_TOKENS = {"auto": 346, "none": 346, "any": 313, "tool": 313}
