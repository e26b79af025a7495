"""Model ids, aliases, families, rate-limit groups and prices.

One table, so the simulator, the router, the limiter and the cost code agree on what
a model is. Prices are USD per million tokens and can be overridden by users with
``AGENTJOBS_PRICES_FILE`` (a JSON object ``{model_id: {input: .., output: ..}}``, read
by ``read_prices`` when the settings load).
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Callable
from dataclasses import MISSING, dataclass, fields, replace
from functools import lru_cache
from pathlib import Path

from agentjobs.errors import UnknownModelError

log = logging.getLogger(__name__)

FAMILIES = ("haiku", "sonnet", "opus")

#: Batch API usage is billed at this fraction of the list price.
BATCH_DISCOUNT = 0.5


@dataclass(frozen=True)
class Price:
    """USD per million tokens, and per thousand web searches (a server tool)."""

    input: float
    cache_write_5m: float
    cache_write_1h: float
    cache_read: float
    output: float
    #: USD per 1,000 ``web_search`` requests (``usage.server_tool_use``); optional in
    #: the prices file.
    web_search_per_1k: float = 10.0


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
    names = [f.name for f in fields(Price) if f.default is MISSING]
    optional = [f.name for f in fields(Price) if f.default is not MISSING]
    want = (
        f"{{{', '.join(names)}}}, numbers >= 0 (USD per million tokens), and optionally "
        f"{', '.join(optional)}"
    )
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: want a JSON object {{model_id: {want}}}")
    known = {m.id for m in _MODELS}
    prices = {}
    for model_id, given in raw.items():
        if model_id not in known and family_of(model_id) is None:
            raise ValueError(f"{path}: unknown model {model_id!r} (model ids, not aliases)")
        if not (
            isinstance(given, dict)
            and set(names) <= set(given) <= set(names) | set(optional)
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
    for model_id, price in overrides.items():
        if model_id not in table:  # a release this table does not list, priced by the user
            table[model_id] = replace(_like(table, model_id), price=price)
    return table


#: ``claude-<family>-...`` (current ids) or ``claude-<version>-<family>...`` (older).
_FAMILY_IN_ID = re.compile(r"^claude-(?:[0-9][0-9.-]*-)?(haiku|sonnet|opus)(?:-|$)")


def family_of(model_id: str) -> str | None:
    """The family a model id names (``claude-sonnet-4-7``: sonnet), or None."""
    match = _FAMILY_IN_ID.match(model_id.lower()) if isinstance(model_id, str) else None
    return match.group(1) if match else None


def _like(table: dict[str, Model], model_id: str) -> Model:
    """An unlisted model, as its family's newest (its alias's target): price, rate-limit
    group, output and cache limits; the API, not us, says whether the id exists."""
    family = family_of(model_id)
    assert family is not None
    return replace(table[ALIASES[family]], id=model_id)


_reported: set[str] = set()
_reported_lock = threading.Lock()


def _report_unknown(model_id: str, like: Model) -> None:
    with _reported_lock:
        if model_id in _reported:
            return
        _reported.add(model_id)
    log.warning(
        "model %r is not in agentjobs' catalog: treated as the newest %s (%s): its price, "
        "rate-limit group and limits; set AGENTJOBS_PRICES_FILE to price it",
        model_id,
        like.family,
        ALIASES[like.family],
    )


def resolve(name: str) -> Model:
    """A model from an alias (``haiku``) or a full id; UnknownModelError otherwise.

    An id the table does not list but whose family its name makes clear (a new
    release, ``claude-sonnet-4-7``) is the family's newest model under that id, and
    is logged once per process as unknown.
    """
    if not isinstance(name, str) or not name:
        raise UnknownModelError(f"model must be a non-empty string, got {name!r}")
    model_id = ALIASES.get(name.lower(), name)
    table = models()
    if model_id in table:
        return table[model_id]
    if family_of(model_id) is not None:
        model = _like(table, model_id)
        _report_unknown(model_id, model)
        return model
    known = ", ".join([*ALIASES, *table])
    raise UnknownModelError(
        f"unknown model {name!r}; known: {known}, or an id naming its family "
        "(claude-haiku-..., claude-sonnet-..., claude-opus-...)"
    )
