"""``model="auto"``: pick Haiku or Sonnet for a request, and say why.

The policy (docs/cost.md), first rule that applies wins:

1. hint: ``metadata.complexity`` ``"low"``/``"simple"`` -> Haiku,
   ``"high"``/``"complex"`` -> Sonnet;
2. long output: ``max_tokens`` > ``AGENTJOBS_ROUTE_LONG_OUTPUT_TOKENS`` -> Sonnet;
3. long input: the messages (not the system prompt, which is usually a shared, cached
   instruction block) estimated over ``AGENTJOBS_ROUTE_LONG_TOKENS`` -> Sonnet;
4. cues of code or multi-step reasoning in the user's text (a code fence, "debug",
   "refactor", "prove", "step by step", ...) -> Sonnet;
5. with ``AGENTJOBS_ROUTE_CLASSIFIER=true``, a small Haiku call classifies the rest as
   SIMPLE (Haiku) or COMPLEX (Sonnet); its cost is recorded under queue ``router``;
6. otherwise Haiku.

Rules 1-4 and 6 are pure functions of the request: the same request always routes the
same way, so it also hits the same response-cache entry.
"""

from __future__ import annotations

import re
from typing import Any

from agentjobs import catalog
from agentjobs.api import client
from agentjobs.call import Call
from agentjobs.errors import AgentJobsError
from agentjobs.messages.request import CompleteRequest, TextBlock, parse_request
from agentjobs.messages.usage import cost_usd, usage_of
from agentjobs.settings import get_settings
from agentjobs.spend import cost

HAIKU = catalog.ALIASES["haiku"]
SONNET = catalog.ALIASES["sonnet"]

_LOW = {"low", "simple", "easy"}
_HIGH = {"high", "complex", "hard"}

#: Cues that the request wants code or careful multi-step reasoning.
_CUES = re.compile(
    r"```|\b(?:def|class|function|import|SELECT)\s|\bdebug|\brefactor|\bstack ?trace"
    r"|\b(?:prove|proof|derive|theorem)\b|\bstep[- ]by[- ]step\b|\balgorithm"
    r"|\btrade-?offs?\b|\bedge cases?\b|\bcomplexity\b|\barchitecture\b"
    r"|\bwrite (?:a |an |the )?(?:program|function|script|class|query|code)\b",
    re.IGNORECASE,
)

_CLASSIFIER_SYSTEM = (
    "You route requests to a language model. Reply with exactly one word: SIMPLE if a "
    "small fast model can answer the request well (lookup, rewrite, short summary, "
    "extraction, classification, chit-chat), COMPLEX if it needs careful reasoning, "
    "code, mathematics or long structured writing."
)
_CLASSIFIER_CHARS = 4_000


def _user_text(req: CompleteRequest) -> str:
    if req.prompt is not None:
        return req.prompt
    parts: list[str] = []
    for m in req.messages or ():
        if m.role != "user":
            continue
        if isinstance(m.content, str):
            parts.append(m.content)
        else:
            parts.extend(b.text for b in m.content if isinstance(b, TextBlock))
    return "\n".join(parts)


def decide(req: CompleteRequest) -> tuple[str | None, str]:
    """Rules 1-4: (model id or None when undecided, reason)."""
    s = get_settings()
    hint = (req.metadata or {}).get("complexity")
    if isinstance(hint, str) and hint.lower() in _LOW:
        return HAIKU, f"hint: metadata.complexity={hint!r}"
    if isinstance(hint, str) and hint.lower() in _HIGH:
        return SONNET, f"hint: metadata.complexity={hint!r}"
    if req.max_tokens is not None and req.max_tokens > s.route_long_output_tokens:
        return SONNET, f"long output: max_tokens {req.max_tokens} > {s.route_long_output_tokens}"
    message_tokens = req.input_estimate(s.limiter_chars_per_token).messages
    if message_tokens > s.route_long_tokens:
        return SONNET, f"long input: ~{message_tokens} tokens > {s.route_long_tokens}"
    cue = _CUES.search(_user_text(req))
    if cue:
        return SONNET, f"code/reasoning cue {cue.group(0).strip()!r}"
    return None, f"short (~{message_tokens} tokens), no code/reasoning cue"


def route(call: Call, next: Any) -> Any:
    """The pipeline's routing step: ``model="auto"`` becomes a model, with the reason.

    On the submit path, so the queue is the chosen family's; again on the worker for a
    task sent without ``apply_async`` (``send_task``), which skipped the submit path."""
    if not call.routed:
        call.request = choose_model(call.request)
    return next(call)


def choose_model(req: CompleteRequest) -> CompleteRequest:
    """The request with ``model`` resolved from ``"auto"`` and ``route_reason`` set."""
    model, reason = decide(req)
    if model is None and get_settings().route_classifier:
        model, reason = classify(req)
    if model is None:
        model = HAIKU
    return req.model_copy(update={"model": model, "route_reason": f"auto -> {model}: {reason}"})


def queue_for_auto(kwargs: dict[str, Any]) -> dict[str, str] | None:
    """Celery router for ``send_task`` with ``model="auto"`` (which skips ``prepare``):
    the queue of the rules' choice, without a classifier call; None for invalid kwargs
    (the worker validates again and dead-letters them)."""
    try:
        req = parse_request(kwargs)
    except AgentJobsError:
        return None
    model, _ = decide(req)
    return {"queue": catalog.resolve(model or HAIKU).queue}


def classify(req: CompleteRequest) -> tuple[str | None, str]:
    """Rule 5: ask Haiku; (model, reason), or (None, why) if the call failed."""
    text = _user_text(req)[:_CLASSIFIER_CHARS]
    try:
        raw = client.create_message(
            {
                "model": HAIKU,
                "max_tokens": 5,
                "temperature": 0,
                "system": _CLASSIFIER_SYSTEM,
                "messages": [{"role": "user", "content": text}],
            }
        )
    except Exception as exc:  # a failed classifier must not fail the submit
        return None, f"classifier failed ({type(exc).__name__}), default"
    usage = usage_of(raw.message)
    cost.record(
        model=HAIKU,
        queue="router",
        tenant=req.tenant,
        usage=usage,
        cost=cost_usd(HAIKU, usage),
    )
    return verdict("".join(getattr(b, "text", "") for b in raw.message.content))


def verdict(answer: str) -> tuple[str | None, str]:
    """The classifier's answer as (model, reason); None when it is neither word."""
    word = answer.strip().strip(".").upper()
    if word.startswith("COMPLEX"):
        return SONNET, "classifier: COMPLEX"
    if word.startswith("SIMPLE"):
        return HAIKU, "classifier: SIMPLE"
    return None, f"classifier answered {answer.strip()[:20]!r}, default"
