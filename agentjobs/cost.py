"""Cost of a call from the price table in ``catalog``."""

from __future__ import annotations

from agentjobs import catalog
from agentjobs.schemas import Usage

_PER_TOKEN = 1e-6


def cost_usd(model: str, usage: Usage, *, cache_ttl: str = "5m", batch: bool = False) -> float:
    """USD for one call: input, output, cache writes (5 m or 1 h price) and cache reads."""
    price = catalog.resolve(model).price
    write_price = price.cache_write_1h if cache_ttl == "1h" else price.cache_write_5m
    total = (
        usage.input_tokens * price.input
        + usage.output_tokens * price.output
        + usage.cache_creation_input_tokens * write_price
        + usage.cache_read_input_tokens * price.cache_read
    ) * _PER_TOKEN
    if batch:
        total *= catalog.BATCH_DISCOUNT
    return round(total, 10)
