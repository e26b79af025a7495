"""Deterministic answers: the same request always gets the same length and text.

Everything derives from the request's hash, so a retried or duplicated call is
indistinguishable from the first, as a cached answer would be. The vocabulary is
three-letter words, so the text is exactly 4 characters per token and feeding an answer
back as an assistant turn costs what its ``output_tokens`` said.

Directives (``[[sim:key=value]]`` anywhere in the request text) steer one request:
tests and benchmarks use them to get a given length, latency, error or fault.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

_VOCABULARY = (
    "the and for are but not you all any can had her was one our out day get has him "
    "his how man new now old see two way who boy did its let put say she too use art "
    "sky sea sun ink map oak owl fox bee elm ivy jam kit log mud net orb pen rye tea "
    "urn van wax yak zen arc bay cog dew fig gem hat ice jar key lid mix nut ore pod"
)
_WORDS = _VOCABULARY.split()
_CORPUS_WORDS = 8192
_rng = random.Random(20251001)
_CORPUS = " ".join(_rng.choice(_WORDS) for _ in range(_CORPUS_WORDS))
# Twice over, so that any window of up to _CORPUS_WORDS words is one slice.
_LOOP = _CORPUS + " " + _CORPUS

DIRECTIVE = re.compile(r"\[\[sim:([a-z_]+)=([^\]\s]*)\]\]")
#: ``batch`` steers a Message Batches entry; POST /v1/messages ignores it.
#: ``tool_rounds``, ``parallel``, ``thinking_tokens`` and ``stop_reason`` steer tool calls,
#: thinking and the stop reason (see tooluse and compose).
DIRECTIVE_KEYS = (
    *("output_tokens", "latency_ms", "error", "fault", "batch"),
    *("tool_rounds", "parallel", "thinking_tokens", "stop_reason"),
)
FAULT_KINDS = ("drop", "slow", "529", "500", "stream_error")


@dataclass
class Answer:
    text: str
    output_tokens: int
    stop_reason: str
    stop_sequence: str | None


def directives(raw: str) -> dict[str, str]:
    """The ``[[sim:key=value]]`` directives of a raw request body (last one wins)."""
    found = dict(DIRECTIVE.findall(raw))
    unknown = set(found) - set(DIRECTIVE_KEYS)
    if unknown:
        raise ValueError(f"unknown simulator directive(s): {', '.join(sorted(unknown))}")
    return found


def output_length(seed: int, low: int, high: int, forced: int | None) -> int:
    """Wanted output tokens before max_tokens: the directive's, or one from the seed."""
    if forced is not None:
        return max(1, forced)
    return low + seed % (high - low + 1)


def text_of(seed: int, n: int) -> str:
    """``n`` tokens (words) of text, a window of the corpus chosen by ``seed``."""
    if n <= 0:
        return ""
    start = (seed % _CORPUS_WORDS) * 4
    if n <= _CORPUS_WORDS:
        return _LOOP[start : start + 4 * n - 1] + "."
    whole, rest = divmod(n, _CORPUS_WORDS)
    parts = [_CORPUS] * whole
    if rest:
        parts.append(_LOOP[start : start + 4 * rest - 1])
    return " ".join(parts) + "."


def answer(
    seed: int, wanted: int, max_tokens: int, stop_sequences: list[str] | None = None
) -> Answer:
    """The answer to a request: cut at max_tokens or at the first stop sequence."""
    n = min(wanted, max_tokens)
    text = text_of(seed, n)
    reason = "max_tokens" if wanted > max_tokens else "end_turn"
    if stop_sequences:
        hits = [(text.find(s), s) for s in stop_sequences if s in text]
        if hits:
            at, seq = min(hits)
            text = text[:at]
            return Answer(text, max(1, (len(text) + 3) // 4), "stop_sequence", seq)
    return Answer(text, n, reason, None)
