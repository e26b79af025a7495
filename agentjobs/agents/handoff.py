"""Hand-offs: an agent passes the session to another, as a tool call with a typed payload.

Each agent named in ``Agent(handoffs=[...])`` becomes a tool ``transfer_to_{name}``
whose input schema is the payload's (``HandoffPayload``, ``{reason, context}``, unless
a ``Handoff`` names a pydantic model of its own). When the model calls it, the loop
validates the payload (an invalid one goes back as an ``is_error`` tool_result, like a
tool's), answers the call with a tool_result that carries the payload, and runs the
next step as the receiving agent: its own system prompt and tools, the whole
transcript so far, and the payload in that last tool_result. The record's ``chain``
gets ``{"agent", "from_agent", "step", "payload"}``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from agentjobs.agents.signature import without_titles

#: The prefix of a hand-off tool's name.
PREFIX = "transfer_to_"
#: Agent names: what a tool name may hold after the prefix (the API's ``^[a-zA-Z0-9_-]``).
NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class HandoffPayload(BaseModel):
    """The default payload of a hand-off: why, and what the next agent needs to know."""

    reason: str
    context: str


@dataclass(frozen=True)
class Handoff:
    """A hand-off target: the agent's name and the payload model the model fills in."""

    agent: str
    payload: type[BaseModel] = HandoffPayload
    description: str | None = None

    @property
    def tool_name(self) -> str:
        return PREFIX + self.agent

    def definition(self) -> dict[str, Any]:
        """The tool definition the model sees."""
        text = self.description or (
            f"Hand the conversation over to the {self.agent} agent, with what it needs to know."
        )
        return {
            "name": self.tool_name,
            "description": text,
            # The same schema a tool's parameters get: no generated titles (signature.py).
            "input_schema": without_titles(self.payload.model_json_schema()),
        }

    def validate(self, value: Any) -> tuple[dict[str, Any] | None, str | None]:
        """The payload as JSON, or None and why it is invalid (one line)."""
        try:
            model = self.payload.model_validate(value)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'payload'}: {e['msg']}"
                for e in exc.errors(include_url=False)
            )
            return None, f"invalid hand-off payload: {problems}"
        return model.model_dump(mode="json"), None


def as_handoff(value: str | Handoff) -> Handoff:
    return value if isinstance(value, Handoff) else Handoff(value)


def result_content(from_agent: str, to_agent: str, payload: dict[str, Any]) -> str:
    """The tool_result of a hand-off: the payload, said plainly for the next agent."""
    return json.dumps(
        {"handed_off_to": to_agent, "from": from_agent, "payload": payload},
        separators=(",", ":"),
    )
