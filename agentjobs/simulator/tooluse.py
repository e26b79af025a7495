"""When the simulated model calls tools, which ones, and with what input.

The rule, deterministic so that tests can script a tool loop:

- ``tool_choice`` ``none``, or no custom tool: never.
- ``tool_choice`` ``any`` or ``tool``: always (the API forces a call on every turn),
  with no text before the calls (the API prefills the turn).
- otherwise (``auto``): while the tool rounds done since the last human turn are fewer
  than ``[[sim:tool_rounds=N]]``, or, without that directive, fewer than one when the
  human turn names a defined tool; a short sentence comes before the calls.

``[[sim:parallel=N]]`` makes N calls in one turn (one with
``disable_parallel_tool_use``). The tool is the forced one, else the named ones in
turn, else the defined ones in turn. Inputs are valid instances of the tool's
``input_schema`` (``schemagen``); ids are derived from the request hash.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from agentjobs.simulator import tokens
from agentjobs.simulator.validation import Parsed


def mentioned(parsed: Parsed) -> list[str]:
    """The custom tools the last human turn names, in definition order."""
    text = parsed.user_text
    if not text:
        return []
    return [
        name
        for name in parsed.tools.custom
        if name in text and re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text)
    ]


def plan(parsed: Parsed, rounds: int | None, parallel: int | None) -> list[str]:
    """The tools this answer calls, in order (empty: answer with text)."""
    tools = parsed.tools
    choice = (tools.choice or {}).get("type", "auto")
    if not tools.custom or choice == "none":
        return []
    named = mentioned(parsed)
    if not tools.forced:
        wanted = rounds if rounds is not None else (1 if named else 0)
        if parsed.tool_rounds >= wanted:
            return []
    n = max(1, parallel or 1) if tools.parallel else 1
    if choice == "tool":
        name = tools.choice["name"] if tools.choice else ""
        # A forced server tool is not run here: the answer is text.
        return [name] * n if name in tools.custom else []
    pool = named or list(tools.custom)
    return [pool[(parsed.tool_rounds + k) % len(pool)] for k in range(n)]


def tool_id(digest: str, k: int) -> str:
    return "toolu_sim" + hashlib.sha256(f"{digest}:{k}".encode()).hexdigest()[:21]


def block_tokens(name: str, value: dict[str, Any]) -> int:
    """Output tokens of a tool_use block: the same count as on input."""
    return tokens.text_tokens(name) + tokens.json_tokens(value) + 3


def cut_input(value: dict[str, Any], budget: int) -> dict[str, Any]:
    """The input written when the output budget ends inside it: the leading properties
    that fit whole (what a client parsing the partial JSON keeps)."""
    out: dict[str, Any] = {}
    for key, item in value.items():
        if tokens.json_tokens({**out, key: item}) > budget:
            break
        out[key] = item
    return out


def json_text(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))
