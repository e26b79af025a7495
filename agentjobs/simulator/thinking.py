"""Extended thinking: the ``thinking`` setting, the blocks an answer starts with, and
the signatures that prove a block came back unmodified.

A signature is an HMAC of the block's thinking text under a key fixed for every
simulator, as the API's signatures are valid across its servers: a transcript outlives
a simulator restart, but a block whose text was edited, or a signature made up, fails.
With thinking on, the API checks the blocks it gets back: each must carry a valid
signature, and the last assistant turn of a tool loop must start with its thinking
(``redacted_thinking`` counts), else the request is a 400.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from agentjobs.simulator.apierror import invalid

MIN_BUDGET = 1024
TYPES = ("adaptive", "between_tools", "disabled", "enabled")
DISPLAYS = ("summarized", "omitted")
_KEY = b"agentjobs simulator: thinking block signatures"
_DOCS = "https://docs.claude.com/en/docs/build-with-claude/extended-thinking"

MISSING_MESSAGE = (
    "{path}.type: Expected `thinking` or `redacted_thinking`, but found `{found}`. When "
    "`thinking` is enabled, a final `assistant` message must start with a thinking block "
    "(preceeding the lastmost set of `tool_use` and `tool_result` blocks). We recommend you "
    "include thinking blocks from previous turns. To avoid this requirement, disable "
    f"`thinking`. Please consult our documentation at {_DOCS}"
)


@dataclass(frozen=True)
class Thinking:
    """Thinking as requested: ``budget`` is None unless ``type`` is ``enabled``."""

    type: str
    budget: int | None
    display: str


def parse(value: Any, max_tokens: int | None) -> Thinking | None:
    """The ``thinking`` field (None when absent or disabled); ApiError if invalid.

    ``max_tokens`` is None for count_tokens, which has no output to compare with.
    """
    if value is None:
        return None
    if not isinstance(value, dict):
        raise invalid("thinking: Input should be a valid dictionary")
    kind = value.get("type")
    if kind not in TYPES:
        raise invalid(
            f"thinking: Input tag {kind!r} found using 'type' does not match any of the "
            f"expected tags: {', '.join(repr(t) for t in TYPES)}"
        )
    allowed = {"type"} | ({"budget_tokens", "display"} if kind == "enabled" else set())
    allowed |= {"display"} if kind == "adaptive" else set()
    for key in value:
        if key not in allowed:
            raise invalid(f"thinking.{kind}.{key}: Extra inputs are not permitted")
    if kind == "disabled":
        return None
    display = value.get("display") or "summarized"
    if display not in DISPLAYS:
        raise invalid(f"thinking.{kind}.display: Input should be 'summarized' or 'omitted'")
    budget = None
    if kind == "enabled":
        budget = value.get("budget_tokens")
        if budget is None:
            raise invalid("thinking.enabled.budget_tokens: Field required")
        if isinstance(budget, bool) or not isinstance(budget, int):
            raise invalid("thinking.enabled.budget_tokens: Input should be a valid integer")
        if budget < MIN_BUDGET:
            raise invalid(
                f"thinking.enabled.budget_tokens: Input should be greater than or equal to "
                f"{MIN_BUDGET}"
            )
        if max_tokens is not None and budget >= max_tokens:
            raise invalid(
                "`max_tokens` must be greater than `thinking.budget_tokens`. Please consult "
                f"our documentation at {_DOCS}#max-tokens-and-context-window-size"
            )
    return Thinking(kind, budget, display)


def check_sampling(body: dict[str, Any]) -> None:
    """Sampling settings thinking does not allow (the API's documented restrictions)."""
    temperature = body.get("temperature")
    if temperature is not None and temperature != 1:
        raise invalid(
            "`temperature` may only be set to 1 when thinking is enabled. Please consult our "
            f"documentation at {_DOCS}#feature-compatibility"
        )
    if body.get("top_k") is not None:
        raise invalid(
            "`top_k` may not be set when thinking is enabled. Please consult our "
            f"documentation at {_DOCS}#feature-compatibility"
        )
    top_p = body.get("top_p")
    if isinstance(top_p, int | float) and not 0.95 <= top_p <= 1:
        raise invalid(
            "`top_p` must be between 0.95 and 1 when thinking is enabled. Please consult "
            f"our documentation at {_DOCS}#feature-compatibility"
        )


def sign(text: str) -> str:
    digest = hmac.new(_KEY, text.encode("utf-8", "surrogatepass"), hashlib.sha256).digest()
    return "Sim" + base64.b64encode(digest).decode()


def verify(block: dict[str, Any]) -> bool:
    """Whether a thinking block's signature is the one its text was given."""
    signature = block.get("signature")
    text = block.get("thinking")
    if not isinstance(signature, str) or not isinstance(text, str):
        return False
    return hmac.compare_digest(signature, sign(text))


def wanted_tokens(thinking: Thinking, seed: int, forced: int | None) -> int:
    """How long the thinking is, before the output budget cuts it."""
    n = max(0, forced) if forced is not None else 40 + seed % 200
    if thinking.budget is not None:
        n = min(n, thinking.budget)
    return n
