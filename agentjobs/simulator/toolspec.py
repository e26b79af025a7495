"""Tool definitions (``tools``) and ``tool_choice``, validated as the API does.

Custom tools need a name matching ``^[a-zA-Z0-9_-]{1,128}$``, unique across all
tools, and an ``input_schema`` of type object. Server tools (``web_search_20250305``
and the like: a type ending in a date) are passed through unchecked, as the simulator
does not run them. ``tool_choice`` must name a defined tool when it is ``tool``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from agentjobs.simulator import tokens
from agentjobs.simulator.apierror import invalid

NAME = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
_SERVER_TYPE = re.compile(r"^[a-z][a-z0-9_]*_\d{8}$")
_CUSTOM_KEYS = frozenset(
    {"name", "input_schema", "description", "cache_control", "strict", "type"}
    | {"allowed_callers", "defer_loading", "eager_input_streaming", "input_examples"}
)
CHOICES = ("auto", "any", "tool", "none")


@dataclass
class Tools:
    """The request's tools: custom ones by name (their input schemas), every name."""

    custom: dict[str, dict[str, Any]] = field(default_factory=dict)
    names: list[str] = field(default_factory=list)
    choice: dict[str, Any] | None = None

    @property
    def forced(self) -> bool:
        return self.choice is not None and self.choice.get("type") in ("any", "tool")

    @property
    def parallel(self) -> bool:
        return not (self.choice and self.choice.get("disable_parallel_tool_use"))


#: The tools of a request that has none; never changed.
NO_TOOLS = Tools()


def check_tool(tool: Any, i: int, tools: Tools) -> int:
    """Validate ``tools[i]``, add it to ``tools``; its tokens."""
    if not isinstance(tool, dict):
        raise invalid(f"tools.{i}: Input should be a valid dictionary")
    kind = tool.get("type")
    if kind is None or kind == "custom":
        _custom(tool, i, tools)
    elif isinstance(kind, str) and _SERVER_TYPE.match(kind):
        name = tool.get("name")
        if not isinstance(name, str):
            raise invalid(f"tools.{i}.{kind}.name: Field required")
        tools.names.append(name)
    else:
        raise invalid(
            f"tools.{i}: Input tag {kind!r} found using 'type' does not match any of the "
            "expected tags: 'custom' or a server tool type such as 'web_search_20250305'"
        )
    return tokens.tool_tokens(tool)


def _custom(tool: dict[str, Any], i: int, tools: Tools) -> None:
    path = f"tools.{i}.custom"
    for key in tool:
        if key not in _CUSTOM_KEYS:
            raise invalid(f"{path}.{key}: Extra inputs are not permitted")
    name = tool.get("name")
    if name is None:
        raise invalid(f"{path}.name: Field required")
    if not isinstance(name, str) or not NAME.match(name):
        raise invalid(f"{path}.name: String should match pattern '{NAME.pattern}'")
    schema = tool.get("input_schema")
    if schema is None:
        raise invalid(f"{path}.input_schema: Field required")
    if not isinstance(schema, dict):
        raise invalid(f"{path}.input_schema: Input should be a valid dictionary")
    if "type" not in schema:
        raise invalid(f"{path}.input_schema.type: Field required")
    if schema["type"] != "object":
        raise invalid(f"{path}.input_schema.type: Input should be 'object'")
    description = tool.get("description")
    if description is not None and not isinstance(description, str):
        raise invalid(f"{path}.description: Input should be a valid string")
    strict = tool.get("strict")
    if strict is not None and not isinstance(strict, bool):
        raise invalid(f"{path}.strict: Input should be a valid boolean")
    tools.custom[name] = schema
    tools.names.append(name)


def check_unique(tools: Tools) -> None:
    if len(set(tools.names)) != len(tools.names):
        raise invalid("tools: Tool names must be unique.")


def check_choice(value: Any, tools: Tools) -> None:
    """Validate ``tool_choice`` against the defined tools; store it on ``tools``."""
    if value is None:
        return
    if not isinstance(value, dict):
        raise invalid("tool_choice: Input should be a valid dictionary")
    kind = value.get("type")
    if kind not in CHOICES:
        raise invalid(
            f"tool_choice: Input tag {kind!r} found using 'type' does not match any of the "
            f"expected tags: {', '.join(repr(c) for c in CHOICES)}"
        )
    allowed = {"type"} | ({"name"} if kind == "tool" else set())
    allowed |= {"disable_parallel_tool_use"} if kind != "none" else set()
    for key in value:
        if key not in allowed:
            raise invalid(f"tool_choice.{kind}.{key}: Extra inputs are not permitted")
    flag = value.get("disable_parallel_tool_use")
    if flag is not None and not isinstance(flag, bool):
        raise invalid(
            f"tool_choice.{kind}.disable_parallel_tool_use: Input should be a valid boolean"
        )
    if kind == "tool":
        name = value.get("name")
        if not isinstance(name, str):
            raise invalid("tool_choice.tool.name: Field required")
        if name not in tools.names:
            raise invalid(f"tool_choice.tool.name: Tool '{name}' not found in provided tools")
    elif kind == "any" and not tools.names:
        raise invalid("tool_choice: `any` requires at least one tool in `tools`")
    tools.choice = value
