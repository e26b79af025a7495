"""Model ids, aliases, families, rate-limit groups and prices.

One table, so the simulator, the router, the limiter and the cost code agree on what
a model is. Prices are USD per million tokens and can be overridden by users with
``AGENTJOBS_PRICES_FILE`` (a JSON object ``{model_id: {input: .., output: ..}}``, read
by ``read_prices`` when the settings load).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from functools import lru_cache
from pathlib import Path

from agentjobs.errors import UnknownModelError

FAMILIES = ("haiku", "sonnet", "opus")

#: Batch API usage is billed at this fraction of the list price.
BATCH_DISCOUNT = 0.5


@dataclass(frozen=True)
class Price:
    """USD per million tokens."""

    input: float
    cache_write_5m: float
    cache_write_1h: float
    cache_read: float
    output: float


@dataclass(frozen=True)
class Model:
    id: str
    family: str
    #: Models sharing a group share one rate-limit bucket at Anthropic.
    group: str
    max_output_tokens: int
    #: Below this prompt length (tokens) a cache_control breakpoint caches nothing.
    min_cache_tokens: int
    price: Price

    @property
    def queue(self) -> str:
        return queue_for(self.family)


_HAIKU = Price(1.0, 1.25, 2.0, 0.10, 5.0)
_SONNET = Price(3.0, 3.75, 6.0, 0.30, 15.0)
_OPUS = Price(5.0, 6.25, 10.0, 0.50, 25.0)

_MODELS: tuple[Model, ...] = (
    Model("claude-haiku-4-5", "haiku", "haiku", 64_000, 4096, _HAIKU),
    Model("claude-haiku-4-5-20251001", "haiku", "haiku", 64_000, 4096, _HAIKU),
    Model("claude-sonnet-4-5", "sonnet", "sonnet", 64_000, 1024, _SONNET),
    Model("claude-sonnet-4-5-20250929", "sonnet", "sonnet", 64_000, 1024, _SONNET),
    Model("claude-sonnet-4-6", "sonnet", "sonnet", 64_000, 1024, _SONNET),
    Model("claude-opus-4-5", "opus", "opus", 64_000, 4096, _OPUS),
    Model("claude-opus-4-6", "opus", "opus", 64_000, 4096, _OPUS),
    Model("claude-opus-4-7", "opus", "opus", 64_000, 2048, _OPUS),
    Model("claude-opus-4-8", "opus", "opus", 64_000, 1024, _OPUS),
)

#: Short names users pass as ``model=``; each points at the newest model of its family.
ALIASES: dict[str, str] = {
    "haiku": "claude-haiku-4-5",
    "sonnet": "claude-sonnet-4-6",
    "opus": "claude-opus-4-8",
}


def queue_for(family: str) -> str:
    """The Celery queue that serves a model family."""
    return f"claude.{family}"


def read_prices(path: str | os.PathLike[str]) -> dict[str, Price]:
    """Price overrides from a JSON file ``{model_id: {input, cache_write_5m,
    cache_write_1h, cache_read, output}}`` (USD per million tokens); ValueError, one
    line, when the file cannot be read or names an unknown model or field."""
    try:
        with open(path, encoding="utf-8") as fh:
            raw = json.load(fh)
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise ValueError(f"{path} is not valid JSON ({exc})") from None
    names = [f.name for f in fields(Price)]
    want = f"{{{', '.join(names)}}}, numbers >= 0 (USD per million tokens)"
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: want a JSON object {{model_id: {want}}}")
    known = {m.id for m in _MODELS}
    prices = {}
    for model_id, given in raw.items():
        if model_id not in known:
            raise ValueError(f"{path}: unknown model {model_id!r} (model ids, not aliases)")
        if not (
            isinstance(given, dict)
            and sorted(given) == sorted(names)
            and all(
                isinstance(v, int | float) and not isinstance(v, bool) and v >= 0
                for v in given.values()
            )
        ):
            raise ValueError(f"{path}: {model_id}: want {want}")
        prices[model_id] = Price(**{k: float(v) for k, v in given.items()})
    return prices


#: Where the price overrides are: settings.py points this at its ``prices_file`` when
#: it loads (this table sits below the settings, so it is told rather than asks).
def _no_prices_file() -> Path | None:
    return None


_prices_file: Callable[[], Path | None] = _no_prices_file


def prices_from(source: Callable[[], Path | None]) -> None:
    """Read price overrides from the file ``source()`` names (settings.py calls this)."""
    global _prices_file
    _prices_file = source
    _table.cache_clear()


def forget_prices() -> None:
    """Read the price file again on next use (the settings were reset)."""
    _table.cache_clear()


def models() -> dict[str, Model]:
    """Every known model by id, with user price overrides (AGENTJOBS_PRICES_FILE) applied."""
    return _table(_prices_file())


@lru_cache(maxsize=4)
def _table(path: Path | None) -> dict[str, Model]:
    overrides = read_prices(path) if path else {}
    table = {}
    for m in _MODELS:
        table[m.id] = replace(m, price=overrides[m.id]) if m.id in overrides else m
    return table


def resolve(name: str) -> Model:
    """A model from an alias (``haiku``) or a full id; UnknownModelError otherwise."""
    if not isinstance(name, str) or not name:
        raise UnknownModelError(f"model must be a non-empty string, got {name!r}")
    model_id = ALIASES.get(name.lower(), name)
    try:
        return models()[model_id]
    except KeyError:
        known = ", ".join([*ALIASES, *models()])
        raise UnknownModelError(f"unknown model {name!r}; known: {known}") from None
