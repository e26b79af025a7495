"""The names and attributes of agentjobs' spans in OpenTelemetry's ``gen_ai.*`` semantic
conventions: a Messages API call is the ``chat`` operation of the ``anthropic``
provider, an agent session's step ``invoke_agent`` (the session id is the
conversation's), a tool's run ``execute_tool``.

Never the prompt, the system prompt or the answer: the conventions make message
content opt-in, and agentjobs does not opt in. ``gen_ai.usage.input_tokens`` counts
every input token, cached ones included (the conventions' rule for Anthropic, whose
own ``input_tokens`` leaves cache reads and writes out); the cache's share is in
``gen_ai.usage.cache_read.input_tokens`` and ``...cache_creation.input_tokens``.
"""

from __future__ import annotations

from typing import Any

PROVIDER = "anthropic"
OPERATION = "chat"
AGENT_OPERATION = "invoke_agent"
TOOL_OPERATION = "execute_tool"

#: Request parameters copied as ``gen_ai.request.<name>``.
_REQUEST = ("max_tokens", "temperature", "top_p", "top_k")


def span_name(params: dict[str, Any]) -> str:
    """``chat <model>``, the conventions' span name."""
    model = params.get("model")
    return f"{OPERATION} {model}" if model else OPERATION


def request_attributes(params: dict[str, Any], *, streamed: bool) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": OPERATION,
        "gen_ai.provider.name": PROVIDER,
        # The name before gen_ai.provider.name (semconv < 1.37), still read by many backends.
        "gen_ai.system": PROVIDER,
        "gen_ai.request.model": params.get("model"),
        "gen_ai.request.stream": streamed,
    }
    for name in _REQUEST:
        if params.get(name) is not None:
            attrs[f"gen_ai.request.{name}"] = params[name]
    stops = params.get("stop_sequences")
    if isinstance(stops, list) and stops:
        attrs["gen_ai.request.stop_sequences.count"] = len(stops)  # their text stays out
    return attrs


def response_attributes(message: Any, usage: Any, cost_usd: float) -> dict[str, Any]:
    """Of the answer (an SDK ``Message``) and its usage (``messages.result.Usage``)."""
    cache_read = int(getattr(usage, "cache_read_input_tokens", 0) or 0)
    cache_write = int(getattr(usage, "cache_creation_input_tokens", 0) or 0)
    stop = getattr(message, "stop_reason", None)
    return {
        "gen_ai.response.id": getattr(message, "id", None),
        "gen_ai.response.model": getattr(message, "model", None),
        "gen_ai.response.finish_reasons": [stop] if stop else None,
        "gen_ai.usage.input_tokens": int(usage.input_tokens) + cache_read + cache_write,
        "gen_ai.usage.output_tokens": int(usage.output_tokens),
        "gen_ai.usage.cache_read.input_tokens": cache_read,
        "gen_ai.usage.cache_creation.input_tokens": cache_write,
        "agentjobs.cost_usd": round(float(cost_usd), 6),
    }


def agent_span(agent: str, session_id: str, step: int) -> tuple[str, dict[str, Any]]:
    """The name and attributes of one agent step's span: ``invoke_agent <agent>``."""
    return f"{AGENT_OPERATION} {agent}", {
        "gen_ai.operation.name": AGENT_OPERATION,
        "gen_ai.provider.name": PROVIDER,
        "gen_ai.agent.name": agent,
        "gen_ai.conversation.id": session_id,
        "agentjobs.session_id": session_id,
        "agentjobs.agent": agent,
        "agentjobs.step": step,
    }


def tool_span(
    tool: str, tool_use_id: str, session_id: str, step: int
) -> tuple[str, dict[str, Any]]:
    """The name and attributes of one tool run's span: ``execute_tool <tool>`` (never
    its input or output)."""
    return f"{TOOL_OPERATION} {tool}", {
        "gen_ai.operation.name": TOOL_OPERATION,
        "gen_ai.tool.name": tool,
        "gen_ai.tool.call.id": tool_use_id,
        "gen_ai.tool.type": "function",
        "gen_ai.conversation.id": session_id,
        "agentjobs.session_id": session_id,
        "agentjobs.step": step,
        "agentjobs.tool": tool,
    }


def error_attributes(exc: BaseException) -> dict[str, Any]:
    """``error.type``: the API's error type (``rate_limit_error``, ``overloaded_error``)
    when it sent one, else the exception's class; and the HTTP status."""
    status = getattr(exc, "status_code", None)
    body = getattr(exc, "body", None)
    kind = None
    if isinstance(body, dict):
        err = body.get("error")
        kind = err.get("type") if isinstance(err, dict) else body.get("type")
    return {
        "error.type": kind if isinstance(kind, str) and kind else type(exc).__qualname__,
        "http.response.status_code": status if isinstance(status, int) else None,
    }
