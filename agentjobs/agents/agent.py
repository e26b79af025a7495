"""Agents: a model, a system prompt, tools, hand-offs and ceilings, registered by name.

    support = agentjobs.Agent("support", model="sonnet", system="...", tools=[lookup],
                              max_steps=10, max_tool_calls=20, max_cost_usd=0.50,
                              handoffs=["bookings"])
    session = support.start("Where is my booking B-1001?")
    result = session.wait(timeout=120)

An agent is a definition, held in the registry of the process that defines it; a
session refers to it by name, so every worker that runs its steps or tool calls must
import the module that defines it (``agentjobs worker sonnet -I myapp.agents``). The
ceilings are copied into the session's record at ``start``, so a session keeps the
limits it started with.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from agentjobs import catalog
from agentjobs.agents import dispatch, handoff, hooks, record
from agentjobs.agents.handoff import Handoff
from agentjobs.agents.session import Session
from agentjobs.agents.store import Record
from agentjobs.agents.stores import session_store
from agentjobs.agents.tool import Tool, get_tool
from agentjobs.errors import RequestError, UnknownAgentError
from agentjobs.messages.request import parse_request

#: Session ids: they go into idempotency keys and task names.
SESSION_ID = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
#: What ``start`` accepts as ``session_id``, said in an error.
_ID_RULE = "1-128 characters of letters, digits, _ . -"

#: Every agent defined in this process, by name.
AGENTS: dict[str, Agent] = {}


def get_agent(name: str) -> Agent:
    """The agent registered under ``name``; UnknownAgentError names the known ones."""
    try:
        return AGENTS[name]
    except KeyError:
        known = ", ".join(sorted(AGENTS)) or "none"
        raise UnknownAgentError(
            f"unknown agent {name!r} (known here: {known}); load the module that defines it"
            " in this worker with -I"
        ) from None


class Agent:
    """A model with a system prompt, tools, hand-offs and hard ceilings per session.

    ``tools``: ``@tool`` functions (or their names). ``handoffs``: names of agents
    (or ``Handoff(name, payload=Model)``) this one may pass the session to; each is a
    tool ``transfer_to_{name}``. Ceilings per session (None: no ceiling):
    ``max_steps`` model calls, ``max_tool_calls``, ``max_cost_usd`` (each step's
    estimated cost is reserved before it is made), ``timeout_s`` of wall clock,
    ``max_tool_errors`` (tool errors and invalid inputs tolerated; one more stops the
    session). ``on_stop(record)`` gives the output of a session a ceiling stopped.
    ``prompt_cache`` ("5m", "1h" or None) marks the system prompt, the tool
    definitions and the transcript prefix for the API's prompt cache; ``cache`` is the
    response cache of ``complete`` (off: an answer drives tools, and another
    session's identical answer was not asked for by this one).
    """

    def __init__(
        self,
        name: str,
        model: str = "sonnet",
        system: str | None = None,
        tools: Iterable[Tool | str] = (),
        *,
        max_steps: int | None = 20,
        max_tool_calls: int | None = 50,
        max_cost_usd: float | None = None,
        timeout_s: float | None = 600.0,
        max_tool_errors: int | None = 5,
        handoffs: Iterable[str | Handoff] = (),
        on_stop: Callable[[Record], Any] | None = None,
        max_tokens: int = 4096,
        temperature: float | None = None,
        thinking: dict[str, Any] | None = None,
        prompt_cache: str | None = "5m",
        cache: bool = False,
        description: str | None = None,
    ) -> None:
        if not isinstance(name, str) or not handoff.NAME.match(name):
            raise RequestError(f"agent name {name!r} must be 1-64 of letters, digits, _ -")
        self.name = name
        self.model = catalog.resolve(model).id  # UnknownModelError now, not in a worker
        self.system = system
        self.tools: list[Tool | str] = list(tools)
        self.handoffs: list[Handoff] = [handoff.as_handoff(h) for h in handoffs]
        self.limits: dict[str, Any] = {
            "max_steps": max_steps,
            "max_tool_calls": max_tool_calls,
            "max_cost_usd": max_cost_usd,
            "timeout_s": timeout_s,
            "max_tool_errors": max_tool_errors,
        }
        self.on_stop = on_stop
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.thinking = thinking
        self.prompt_cache = prompt_cache
        self.cache = cache
        self.description = description
        AGENTS[name] = self

    def __repr__(self) -> str:
        return f"<Agent {self.name} model={self.model}>"

    @property
    def queue(self) -> str:
        """The queue of this agent's model steps: its model family's."""
        return catalog.resolve(self.model).queue

    # -- tools -------------------------------------------------------------------------

    def tool(self, name: str) -> Tool | None:
        """This agent's tool of that name (None: not one of its tools)."""
        for t in self.tools:
            if (t.name if isinstance(t, Tool) else t) == name:
                return t if isinstance(t, Tool) else get_tool(t)
        return None

    def handoff(self, tool_name: str) -> Handoff | None:
        """The hand-off behind a ``transfer_to_*`` tool of this agent (None: not one)."""
        for h in self.handoffs:
            if h.tool_name == tool_name:
                return h
        return None

    def definitions(self) -> list[dict[str, Any]]:
        """The tool definitions the model sees: the tools, then the hand-offs."""
        tools = [(t if isinstance(t, Tool) else get_tool(t)).definition() for t in self.tools]
        return [*tools, *(h.definition() for h in self.handoffs)]

    # -- the request of one step -------------------------------------------------------

    def request(
        self,
        transcript: Sequence[dict[str, Any]],
        *,
        session_id: str,
        n: int,
        tenant: str | None = None,
        max_tokens: int | None = None,
    ) -> dict[str, Any]:
        """The ``complete`` kwargs of step ``n``: the transcript so far, keyed
        ``{session_id}:{n}``, the prompt cache on the system prompt, the tools and the
        transcript prefix (every step resends them), on the synchronous lane."""
        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": list(transcript),
            "max_tokens": max_tokens or self.max_tokens,
            "idempotency_key": f"{session_id}:{n}",
            "lane": "sync",  # a batch would hold the session for hours
            "cache": self.cache,
        }
        if self.prompt_cache:
            kwargs["prompt_cache"] = self.prompt_cache
        if self.system:
            kwargs["system"] = self.system
        if tenant is not None:
            kwargs["tenant"] = tenant
        if self.temperature is not None:
            kwargs["temperature"] = self.temperature
        if self.thinking is not None:
            kwargs["thinking"] = self.thinking
        tools = self.definitions()
        if tools:
            kwargs["tools"] = tools
        else:
            used = _tools_used(transcript)
            if used:
                # The API wants tools defined when the transcript holds tool blocks (an
                # earlier agent's): name them, and let this agent call none.
                kwargs["tools"] = [
                    {"name": u, "description": "Not available.", "input_schema": {"type": "object"}}
                    for u in used
                ]
                kwargs["tool_choice"] = {"type": "none"}
        return kwargs

    # -- sessions ----------------------------------------------------------------------

    def start(
        self, input: Any, session_id: str | None = None, tenant: str | None = None
    ) -> Session:
        """Create the session's record and enqueue its first step; returns at once.

        ``input`` is the first user turn (text, or a list of content blocks). The
        first request is validated here, so bad input raises RequestError and nothing
        is enqueued. SessionExists when ``session_id`` is taken.
        """
        sid = session_id if session_id is not None else uuid.uuid4().hex
        if not isinstance(sid, str) or not SESSION_ID.match(sid):
            raise RequestError(f"session_id must be {_ID_RULE}, got {sid!r}")
        rec = record.new_record(sid, self.name, input, tenant=tenant, limits=self.limits)
        # The caller sees a bad request now (its model, tools, tenant, input).
        parse_request(self.request(rec["transcript"], session_id=sid, n=1, tenant=tenant))
        session_store().create(rec)
        hooks.started(self.name, sid)
        dispatch.send_step(sid, 1, self.name, self.model)
        return Session(sid)


def _tools_used(transcript: Sequence[dict[str, Any]]) -> list[str]:
    names: list[str] = []
    for m in transcript:
        content = m.get("content")
        if not isinstance(content, list):
            continue
        for b in content:
            if isinstance(b, dict) and b.get("type") == "tool_use" and b["name"] not in names:
                names.append(b["name"])
    return names
