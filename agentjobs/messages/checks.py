"""Rules of a whole request that no single field can check.

``scan`` walks the raw keyword arguments once, before any model is built: nesting depth
(the queue's JSON encoder, and any parser after it, would fail far below Python's
recursion limit with a bare RecursionError), lone surrogates (not Unicode: the API and
UTF-8 encoders refuse them) and the request's size. The conversation rules (a tool
result answers the tool use just before it; at most 4 cache breakpoints) need the parsed
messages.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from agentjobs.messages.content import Message, ToolResultBlock, ToolUseBlock, all_blocks

#: Deepest nesting of lists and objects accepted, counted from the kwargs themselves:
#: far beyond any real schema, tool input or metadata, far below what breaks the JSON
#: encoder and decoder of the queue (Python's recursion limit, 1,000 frames).
MAX_DEPTH = 128
#: The API's limit of cache_control breakpoints in one request.
MAX_BREAKPOINTS = 4

_SURROGATE = re.compile("[\ud800-\udfff]")


def scan(kwargs: dict[str, Any]) -> int:
    """Check nesting and text of ``kwargs``; the characters of its strings (a lower
    bound of the JSON body's size). Raises ValueError naming the place."""
    chars = 0
    # (value, depth, path) on an explicit stack: a recursive walk is what must not fail
    stack: list[tuple[Any, int, tuple[Any, ...]]] = [(v, 1, (k,)) for k, v in kwargs.items()]
    while stack:
        value, depth, path = stack.pop()
        if isinstance(value, str):
            chars += len(value)
            if not value.isascii():
                _text(value, path)
            continue
        if isinstance(value, dict):
            items: Iterable[tuple[Any, Any]] = value.items()
        elif isinstance(value, list | tuple):
            items = enumerate(value)
        else:
            continue
        if depth >= MAX_DEPTH:
            raise ValueError(f"{path[0]}: nested more than {MAX_DEPTH} levels deep")
        for key, item in items:
            if isinstance(key, str):
                chars += len(key)
                if not key.isascii():
                    _text(key, path)
            stack.append((item, depth + 1, (*path, key)))
    return chars


def _text(value: str, path: tuple[Any, ...]) -> None:
    bad = _SURROGATE.search(value)
    if bad is not None:
        where = ".".join(str(p) for p in path)
        if len(where) > 120:
            where = where[:117] + "..."
        raise ValueError(
            f"{where}: a lone surrogate {bad.group()!a} at character {bad.start()} is not "
            "valid Unicode (the API refuses it)"
        )


def check_tool_results(messages: list[Message]) -> None:
    """The API's pairing rule: a user message after an assistant message with
    ``tool_use`` blocks starts with one ``tool_result`` per tool_use id, and every
    ``tool_result`` answers a ``tool_use`` of the message just before it."""
    asked: list[str] = []
    for i, m in enumerate(messages):
        blocks = m.blocks
        results = [b for b in blocks if isinstance(b, ToolResultBlock)]
        if m.role == "user":
            lead = 0
            while lead < len(blocks) and isinstance(blocks[lead], ToolResultBlock):
                lead += 1
            for r in results:
                if r.tool_use_id not in asked:
                    raise ValueError(
                        f"messages.{i}: tool_result for {r.tool_use_id!r} answers no tool_use "
                        "of the message just before it"
                    )
            if asked:
                answered = [r.tool_use_id for r in results[:lead]]
                missing = [t for t in asked if t not in answered]
                late = [r.tool_use_id for r in results[lead:]]
                if missing or late:
                    why = (
                        f"missing {_ids([t for t in missing if t not in late])}"
                        if set(missing) - set(late)
                        else f"{_ids(late)} after other content"
                    )
                    raise ValueError(
                        f"messages.{i}: must start with one tool_result for each tool_use "
                        f"of messages.{i - 1} ({_ids(asked)}); {why}"
                    )
                if len(answered) != len(set(answered)):
                    raise ValueError(f"messages.{i}: a tool_use id is answered twice")
        elif results:
            raise ValueError(f"messages.{i}: tool_result blocks belong in user messages")
        asked = (
            [b.id for b in blocks if isinstance(b, ToolUseBlock)] if m.role == "assistant" else []
        )


def _ids(ids: list[str]) -> str:
    shown = ", ".join(i[:40] for i in ids[:4])
    return shown + (f" and {len(ids) - 4} more" if len(ids) > 4 else "")


def breakpoints(system: Any, tools: Any, messages: list[Message] | None) -> list[str]:
    """The lifetime ("5m", "1h") of each cache_control breakpoint of the parts given
    (system blocks, tool definitions, message blocks at any depth)."""
    marks: list[Any] = []
    for part in (system if isinstance(system, list) else [], tools or (), all_blocks(messages)):
        marks.extend(getattr(p, "cache_control", None) for p in part)
    return [cc.ttl or "5m" for cc in marks if cc is not None]
