"""The models the simulated API serves: ids, rate-limit groups, sizes and list prices.

The simulator's own table, not agentjobs' catalog: it stands in for the API, so what
it bills and refuses must not follow what the client believes (a client-side price
override or a model the client guesses at changes nothing here). Prices are USD per
million tokens, as published by Anthropic.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Message Batches usage is billed at this fraction of the list price.
BATCH_DISCOUNT = 0.5


@dataclass(frozen=True)
class Price:
    input: float
    cache_write_5m: float
    cache_write_1h: float
    cache_read: float
    output: float


@dataclass(frozen=True)
class Model:
    id: str
    #: Models of one group share one set of rate-limit buckets.
    group: str
    max_output_tokens: int
    #: Below this prefix length (tokens) a cache_control breakpoint caches nothing.
    min_cache_tokens: int
    #: Input plus output may not pass this; a longer prompt is refused.
    context_window: int
    price: Price


_HAIKU = Price(1.0, 1.25, 2.0, 0.10, 5.0)
_SONNET = Price(3.0, 3.75, 6.0, 0.30, 15.0)
_OPUS = Price(5.0, 6.25, 10.0, 0.50, 25.0)
_WINDOW = 200_000

MODELS: dict[str, Model] = {
    m.id: m
    for m in (
        Model("claude-haiku-4-5", "haiku", 64_000, 4096, _WINDOW, _HAIKU),
        Model("claude-haiku-4-5-20251001", "haiku", 64_000, 4096, _WINDOW, _HAIKU),
        Model("claude-sonnet-4-5", "sonnet", 64_000, 1024, _WINDOW, _SONNET),
        Model("claude-sonnet-4-5-20250929", "sonnet", 64_000, 1024, _WINDOW, _SONNET),
        Model("claude-sonnet-4-6", "sonnet", 64_000, 1024, _WINDOW, _SONNET),
        Model("claude-opus-4-5", "opus", 64_000, 4096, _WINDOW, _OPUS),
        Model("claude-opus-4-6", "opus", 64_000, 4096, _WINDOW, _OPUS),
        Model("claude-opus-4-7", "opus", 64_000, 2048, _WINDOW, _OPUS),
        Model("claude-opus-4-8", "opus", 64_000, 1024, _WINDOW, _OPUS),
    )
}

#: Short names tests and examples pass; the API itself knows only full ids, the
#: simulator takes these too so that ``model="haiku"`` works against it directly.
ALIASES: dict[str, str] = {
    "haiku": "claude-haiku-4-5",
    "sonnet": "claude-sonnet-4-6",
    "opus": "claude-opus-4-8",
}


def resolve(name: str) -> Model | None:
    """The model an id or alias names, or None (the API answers 404)."""
    return MODELS.get(ALIASES.get(name.lower(), name))
